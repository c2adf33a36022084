//! The leader-election decisions, as pure functions over what was read from the Lease and a
//! monotonic clock (the shell in `leader.rs` does the API calls). They follow client-go's
//! `leaderelection`: a Lease held by another replica counts as expired only once its record has
//! stayed unchanged for its `leaseDurationSeconds` on *this* replica's monotonic clock (never
//! the `renewTime` written by another machine's wall clock), and a leader that cannot renew
//! within the renew deadline, shorter than the lease, stops leading.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;
use tokio::time::Instant;

/// The election's timing, all derived from `--lease-duration` in controller-runtime's
/// proportions (15 s lease, 10 s renew deadline, 2 s retry period).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Timing {
    /// How long a Lease record stays valid without renewal (`leaseDurationSeconds`).
    pub(super) lease: Duration,
    /// How long the leader keeps leading without a successful renewal: 2/3 of the lease.
    pub(super) renew_deadline: Duration,
    /// Pause between attempts to acquire or renew: 2/15 of the lease.
    pub(super) retry: Duration,
}

impl Timing {
    /// The timing for `--lease-duration` (whole seconds, as the Lease stores them; at least 1).
    pub(super) fn from_lease_duration(lease_duration: Duration) -> Timing {
        let lease = Duration::from_secs(lease_duration.as_secs_f64().ceil().max(1.0) as u64);
        Timing {
            lease,
            renew_deadline: lease * 2 / 3,
            retry: lease * 2 / 15,
        }
    }

    /// `leaseDurationSeconds` of the records this replica writes.
    pub(super) fn lease_seconds(&self) -> i32 {
        i32::try_from(self.lease.as_secs()).unwrap_or(i32::MAX)
    }
}

/// The Lease as last read, and when this replica first saw that exact record.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Observed {
    /// The record (holder, times, duration, transitions).
    pub(super) spec: LeaseSpec,
    /// The resourceVersion to use as the precondition of the next write.
    pub(super) resource_version: Option<String>,
    /// When this replica first saw `spec` (monotonic; the expiry clock starts here).
    pub(super) since: Instant,
}

/// Folds a fresh read into what was observed before: the expiry clock restarts only when the
/// record changed (a renewal by the holder changes `renewTime`).
pub(super) fn observe(
    previous: Option<&Observed>,
    spec: LeaseSpec,
    resource_version: Option<String>,
    now: Instant,
) -> Observed {
    let since = match previous {
        Some(p) if p.spec == spec => p.since,
        _ => now,
    };
    Observed {
        spec,
        resource_version,
        since,
    }
}

/// What to do after reading the Lease.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Decision {
    /// No Lease exists: create it, holding it.
    Create,
    /// Write this record (renewing or taking over) with the observed resourceVersion.
    Write(LeaseSpec),
    /// Another replica holds an unexpired Lease: wait and read again.
    HeldBy(String),
}

/// The holder named by a record, if any (an empty name is a released Lease).
pub(super) fn holder(spec: &LeaseSpec) -> Option<&str> {
    spec.holder_identity.as_deref().filter(|h| !h.is_empty())
}

/// Whether a Lease observed as `observed` has expired at `now` (its record unchanged for its
/// own `leaseDurationSeconds`, or `fallback` when it has none).
pub(super) fn expired(observed: &Observed, fallback: Duration, now: Instant) -> bool {
    let lease = observed
        .spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(fallback, Duration::from_secs);
    now >= observed.since + lease
}

/// Decides, from the Lease as read (None: it does not exist), whether `me` may write it now
/// and with what record (`wall` is the wall-clock time written as `renewTime`).
pub(super) fn decide(
    me: &str,
    observed: Option<&Observed>,
    timing: &Timing,
    now: Instant,
    wall: Timestamp,
) -> Decision {
    let Some(observed) = observed else {
        return Decision::Create;
    };
    let spec = &observed.spec;
    let current = holder(spec);
    if let Some(other) = current.filter(|h| *h != me) {
        if !expired(observed, timing.lease, now) {
            return Decision::HeldBy(other.to_string());
        }
    }
    let transitions = spec.lease_transitions.unwrap_or(0);
    let (acquire_time, transitions) = if current == Some(me) {
        (spec.acquire_time.clone(), transitions)
    } else {
        (Some(MicroTime(wall)), transitions.saturating_add(1))
    };
    Decision::Write(LeaseSpec {
        holder_identity: Some(me.to_string()),
        lease_duration_seconds: Some(timing.lease_seconds()),
        acquire_time,
        renew_time: Some(MicroTime(wall)),
        lease_transitions: Some(transitions),
        ..spec.clone()
    })
}

/// The record of a new Lease held by `me`.
pub(super) fn created(me: &str, timing: &Timing, wall: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(me.to_string()),
        lease_duration_seconds: Some(timing.lease_seconds()),
        acquire_time: Some(MicroTime(wall)),
        renew_time: Some(MicroTime(wall)),
        lease_transitions: Some(0),
        ..LeaseSpec::default()
    }
}

/// The record that releases a Lease held by `me` on a clean shutdown (no holder, 1 s duration,
/// like client-go's `ReleaseOnCancel`), so a standby takes over at its next attempt; None when
/// `me` does not hold it (nothing to release).
pub(super) fn released(me: &str, spec: &LeaseSpec, wall: Timestamp) -> Option<LeaseSpec> {
    (holder(spec) == Some(me)).then(|| LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        renew_time: Some(MicroTime(wall)),
        ..spec.clone()
    })
}

/// The JSON merge patch that makes a Lease at resourceVersion `rv` hold `spec`: the
/// resourceVersion makes it conditional, and fields `spec` lacks are removed (`null`), so a
/// release really clears the holder.
pub(super) fn merge_patch(spec: &LeaseSpec, rv: &str) -> Result<Value, serde_json::Error> {
    let mut fields = match serde_json::to_value(spec)? {
        Value::Object(fields) => fields,
        _ => serde_json::Map::new(),
    };
    for key in [
        "holderIdentity",
        "acquireTime",
        "renewTime",
        "leaseDurationSeconds",
    ] {
        fields.entry(key).or_insert(Value::Null);
    }
    let mut patch = serde_json::Map::new();
    patch.insert(
        "metadata".into(),
        Value::Object(serde_json::Map::from_iter([(
            "resourceVersion".to_string(),
            Value::String(rv.to_string()),
        )])),
    );
    patch.insert("spec".into(), Value::Object(fields));
    Ok(Value::Object(patch))
}

/// The instant after which a leader whose last successful renewal *started* at `renewed` must
/// stop (the start, not the end, of the request: the API server may have written the record
/// at any moment in between, and a standby counts from the write).
pub(super) fn renew_deadline(renewed: Instant, timing: &Timing) -> Instant {
    renewed + timing.renew_deadline
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, seconds: i32, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            lease_duration_seconds: Some(seconds),
            acquire_time: Some(MicroTime(Timestamp::UNIX_EPOCH)),
            renew_time: Some(MicroTime(Timestamp::UNIX_EPOCH)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn timing_follows_controller_runtime_proportions() {
        let cases = [
            (Duration::from_secs(15), 15, 10_000, 2_000),
            (Duration::from_secs(3), 3, 2_000, 400),
            (Duration::from_millis(3_500), 4, 2_666, 533),
            (Duration::from_secs(60), 60, 40_000, 8_000),
        ];
        for (flag, lease, deadline_ms, retry_ms) in cases {
            let t = Timing::from_lease_duration(flag);
            assert_eq!(t.lease, Duration::from_secs(lease), "{flag:?}");
            assert_eq!(t.renew_deadline.as_millis(), deadline_ms, "{flag:?}");
            assert_eq!(t.retry.as_millis(), retry_ms, "{flag:?}");
            assert!(t.retry < t.renew_deadline && t.renew_deadline < t.lease);
        }
    }

    #[test]
    fn the_expiry_clock_restarts_only_when_the_record_changes() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(5);
        let first = observe(None, spec(Some("a"), 3, 0), Some("1".into()), t0);
        assert_eq!(first.since, t0);
        let same = observe(Some(&first), spec(Some("a"), 3, 0), Some("1".into()), later);
        assert_eq!(same.since, t0, "an unchanged record keeps its age");
        let mut renewed = spec(Some("a"), 3, 0);
        renewed.renew_time = Some(MicroTime(Timestamp::constant(10, 0)));
        let changed = observe(Some(&first), renewed, Some("2".into()), later);
        assert_eq!(changed.since, later, "a renewal restarts the clock");
    }

    #[test]
    fn decisions() {
        let timing = Timing::from_lease_duration(Duration::from_secs(3));
        let t0 = Instant::now();
        let wall = Timestamp::constant(1_000, 0);
        let at = |holder: Option<&str>, seconds, age_ms: u64| {
            let observed = observe(None, spec(holder, seconds, 4), None, t0);
            (observed, t0 + Duration::from_millis(age_ms))
        };
        // (holder, its leaseDurationSeconds, age of the unchanged record, expected)
        // expected: None = held by the other; Some((acquire_time is new, transitions))
        type Expected = Option<(bool, i32)>;
        let cases: [(Option<&str>, i32, u64, Expected); 7] = [
            (Some("other"), 3, 0, None),
            (Some("other"), 3, 2_999, None),
            (Some("other"), 3, 3_000, Some((true, 5))),
            (Some("other"), 10, 9_000, None),
            (Some("me"), 3, 100_000, Some((false, 4))),
            (None, 3, 0, Some((true, 5))),
            (Some(""), 3, 0, Some((true, 5))),
        ];
        for (holder, seconds, age, expected) in cases {
            let (observed, now) = at(holder, seconds, age);
            let got = decide("me", Some(&observed), &timing, now, wall);
            match (expected, got) {
                (None, Decision::HeldBy(h)) => assert_eq!(Some(h.as_str()), holder),
                (Some((new_term, transitions)), Decision::Write(s)) => {
                    assert_eq!(s.holder_identity.as_deref(), Some("me"));
                    assert_eq!(s.lease_duration_seconds, Some(3));
                    assert_eq!(s.renew_time, Some(MicroTime(wall)));
                    assert_eq!(s.lease_transitions, Some(transitions), "{holder:?} {age}");
                    let acquire = if new_term {
                        wall
                    } else {
                        Timestamp::UNIX_EPOCH
                    };
                    assert_eq!(s.acquire_time, Some(MicroTime(acquire)), "{holder:?}");
                }
                (e, got) => panic!("{holder:?} age {age}: expected {e:?}, got {got:?}"),
            }
        }
        assert_eq!(
            decide("me", None, &timing, t0, wall),
            Decision::Create,
            "no Lease yet"
        );
    }

    #[test]
    fn release_only_what_is_held() {
        let wall = Timestamp::constant(2_000, 0);
        let held = spec(Some("me"), 15, 2);
        let out = released("me", &held, wall).expect("held by me");
        assert_eq!(out.holder_identity, None);
        assert_eq!(out.lease_duration_seconds, Some(1));
        assert_eq!(out.lease_transitions, Some(2));
        assert_eq!(out.acquire_time, held.acquire_time);
        assert_eq!(released("me", &spec(Some("other"), 15, 2), wall), None);
        assert_eq!(released("me", &spec(None, 15, 2), wall), None);
    }

    #[test]
    fn writes_are_conditional_merge_patches_that_clear_what_is_gone() {
        let held = spec(Some("me"), 15, 2);
        let patch = merge_patch(&held, "42").unwrap();
        assert_eq!(patch["metadata"]["resourceVersion"], "42");
        assert_eq!(patch["spec"]["holderIdentity"], "me");
        assert_eq!(patch["spec"]["leaseTransitions"], 2);
        let release = released("me", &held, Timestamp::UNIX_EPOCH).unwrap();
        let patch = merge_patch(&release, "43").unwrap();
        assert!(patch["spec"]["holderIdentity"].is_null());
        assert!(
            patch["spec"]
                .as_object()
                .unwrap()
                .contains_key("holderIdentity"),
            "an explicit null removes the holder"
        );
        assert_eq!(patch["spec"]["leaseDurationSeconds"], 1);
    }

    #[test]
    fn the_deadline_counts_from_the_start_of_the_last_successful_renewal() {
        let timing = Timing::from_lease_duration(Duration::from_secs(15));
        let t0 = Instant::now();
        assert_eq!(renew_deadline(t0, &timing), t0 + Duration::from_secs(10));
        assert!(renew_deadline(t0, &timing) < t0 + timing.lease);
    }
}
