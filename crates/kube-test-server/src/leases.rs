//! Leader-election hooks: failing Lease writes (optionally only those of one holder identity,
//! like an API server or network that stops answering one replica) and the history of every
//! Lease write the server accepted, so tests can prove from the records that two replicas
//! never held a Lease at once.

use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::Method;
use parking_lot::Mutex;
use serde_json::Value;

use crate::error::ApiError;
use crate::{Inner, TestServer};

/// How a failed Lease write is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseAnswer {
    /// An error status (500 InternalError, 503 ServiceUnavailable, ...).
    Status(u16),
    /// No answer for an hour: the client's own timeout decides (an overloaded API server).
    Hang,
}

/// Fails every create/update/patch of a Lease until [`TestServer::clear_lease_faults`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseFault {
    /// Only writes by this holder: the body's `spec.holderIdentity`, or for a body without
    /// one (a patch), the stored Lease's holder (None: every Lease write).
    pub holder: Option<String>,
    /// What the failed writes get.
    pub answer: LeaseAnswer,
}

/// One Lease write the server accepted, as stored after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseWrite {
    /// When the write was stored (this process's monotonic clock).
    pub at: Instant,
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// `spec.holderIdentity` after the write (None or empty: released).
    pub holder: Option<String>,
    /// `spec.leaseDurationSeconds` after the write.
    pub lease_duration_seconds: Option<i64>,
    /// `spec.acquireTime` as written.
    pub acquire_time: Option<String>,
    /// `spec.renewTime` as written.
    pub renew_time: Option<String>,
    /// `spec.leaseTransitions` after the write.
    pub lease_transitions: Option<i64>,
}

/// The server's Lease hooks (a field of the shared state).
#[derive(Default)]
pub(crate) struct Leases {
    faults: Mutex<Vec<LeaseFault>>,
    history: Mutex<Vec<LeaseWrite>>,
}

/// A write request to a Lease: its namespace, name (from the path, or the body on create)
/// and the holder the body names.
pub(crate) struct Target {
    namespace: String,
    name: String,
    holder: Option<String>,
}

impl Target {
    /// The Lease a POST/PUT/PATCH request writes, if it writes one.
    pub(crate) fn of(method: &Method, path: &str, body: &Bytes) -> Option<Target> {
        if !matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
            return None;
        }
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let (namespace, rest) = match segs.as_slice() {
            [
                "apis",
                "coordination.k8s.io",
                "v1",
                "namespaces",
                ns,
                "leases",
                rest @ ..,
            ] => (*ns, rest),
            _ => return None,
        };
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let field = |pointer: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.pointer(pointer))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let name = match rest {
            [] => field("/metadata/name")?,
            [name] => (*name).to_string(),
            _ => return None,
        };
        Some(Target {
            namespace: namespace.to_string(),
            name,
            holder: field("/spec/holderIdentity"),
        })
    }
}

impl Inner {
    fn stored_lease(&self, namespace: &str, name: &str) -> Option<Value> {
        let rt = self
            .registry
            .read()
            .get("coordination.k8s.io", "v1", "leases")?;
        self.state.lock().get(&rt.key, namespace, name).cloned()
    }

    /// The answer of a pending Lease fault matching this write, if any.
    pub(crate) async fn lease_fault(&self, target: &Target) -> Option<Response> {
        let answer = {
            let faults = self.leases.faults.lock();
            if faults.is_empty() {
                return None;
            }
            let stored_holder = || {
                self.stored_lease(&target.namespace, &target.name)
                    .and_then(|l| holder_of(&l))
            };
            let holder = target.holder.clone().or_else(stored_holder);
            faults
                .iter()
                .find(|f| f.holder.is_none() || f.holder == holder)?
                .answer
        };
        Some(match answer {
            LeaseAnswer::Status(code) => ApiError::new(
                code,
                "InternalError",
                "injected fault: Lease writes fail for this holder",
            )
            .into_response(),
            LeaseAnswer::Hang => {
                tokio::time::sleep(Duration::from_secs(3_600)).await;
                ApiError::new(504, "Timeout", "injected fault: Lease write timed out")
                    .into_response()
            }
        })
    }

    /// Appends the Lease as stored after an accepted write to the history.
    pub(crate) fn record_lease_write(&self, target: &Target) {
        let Some(lease) = self.stored_lease(&target.namespace, &target.name) else {
            return;
        };
        let spec = |key: &str| lease.pointer(&format!("/spec/{key}")).cloned();
        let text = |key: &str| spec(key).and_then(|v| v.as_str().map(str::to_string));
        let number = |key: &str| spec(key).and_then(|v| v.as_i64());
        self.leases.history.lock().push(LeaseWrite {
            at: Instant::now(),
            namespace: target.namespace.clone(),
            name: target.name.clone(),
            holder: holder_of(&lease),
            lease_duration_seconds: number("leaseDurationSeconds"),
            acquire_time: text("acquireTime"),
            renew_time: text("renewTime"),
            lease_transitions: number("leaseTransitions"),
        });
    }
}

fn holder_of(lease: &Value) -> Option<String> {
    lease
        .pointer("/spec/holderIdentity")
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())
        .map(str::to_string)
}

impl TestServer {
    /// Fails Lease writes as `fault` says until [`TestServer::clear_lease_faults`] (reads
    /// still work, as when an API server or a network path is overloaded for one replica).
    pub fn fail_lease_writes(&self, fault: LeaseFault) {
        self.inner.leases.faults.lock().push(fault);
    }

    /// Lease writes succeed again.
    pub fn clear_lease_faults(&self) {
        self.inner.leases.faults.lock().clear();
    }

    /// Every accepted write of a Lease, oldest first, as stored after it.
    pub fn lease_history(&self) -> Vec<LeaseWrite> {
        self.inner.leases.history.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let put = Bytes::from(r#"{"metadata":{"name":"l"},"spec":{"holderIdentity":"a"}}"#);
        let t = Target::of(
            &Method::PUT,
            "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l",
            &put,
        )
        .unwrap();
        assert_eq!((t.namespace.as_str(), t.name.as_str()), ("ns", "l"));
        assert_eq!(t.holder.as_deref(), Some("a"));
        let post = Target::of(
            &Method::POST,
            "/apis/coordination.k8s.io/v1/namespaces/ns/leases",
            &put,
        )
        .unwrap();
        assert_eq!(post.name, "l");
        let get = Target::of(
            &Method::GET,
            "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l",
            &put,
        );
        assert!(get.is_none());
        let other = Target::of(&Method::PUT, "/api/v1/namespaces/ns/secrets/l", &put);
        assert!(other.is_none());
    }
}
