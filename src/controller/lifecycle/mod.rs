//! The reconcile lifecycle both kinds share: finalizer, pause, validation, deletion policy,
//! status write, events, metrics and requeue. Each kind supplies only what to do with Amazon
//! ([`ManagedKind::apply`]: observe → plan → execute, and [`ManagedKind::cleanup`]); the rules
//! both kinds follow are pure functions in [`policy`].

pub mod policy;

use std::collections::hash_map::DefaultHasher;
use std::fmt::Debug;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Api, Resource, ResourceExt};
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use self::policy::{AfterFailedCleanup, DRIFT_REPAIRED, Failures, NamespacePhase};
use super::conditions::{self, Outcome, Phase, Reason};
use super::context::{Context, FIELD_MANAGER};
use super::outcomes::{for_alexa_error, for_secret_error};
use super::secrets::SecretError;
use crate::alexa::AlexaError;
use crate::crd::common::{
    DeletionPolicy, FINALIZER, ManagementPolicy, PAUSED_ANNOTATION, RECONCILE_REQUESTED_ANNOTATION,
    RESYNC_PERIOD_ANNOTATION,
};

/// Status fields the lifecycle writes for every kind.
pub trait CommonStatus:
    Clone + Default + PartialEq + Serialize + DeserializeOwned + Debug + Send + Sync
{
    /// Current conditions.
    fn conditions(&self) -> &[Condition];
    /// Replaces the conditions.
    fn set_conditions(&mut self, conditions: Vec<Condition>);
    /// Records which generation this status describes.
    fn set_observed_generation(&mut self, generation: Option<i64>);
    /// Last acknowledged value of the reconcile-requested-at annotation.
    fn last_handled_reconcile_at(&self) -> Option<&str>;
    /// Acknowledges a reconcile-requested-at value.
    fn set_last_handled_reconcile_at(&mut self, value: Option<String>);
}

/// Implements [`CommonStatus`] for a status struct with the usual field names.
#[macro_export]
macro_rules! impl_common_status {
    ($status:ty) => {
        impl $crate::controller::lifecycle::CommonStatus for $status {
            fn conditions(&self) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition] {
                &self.conditions
            }
            fn set_conditions(
                &mut self,
                conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
            ) {
                self.conditions = conditions;
            }
            fn set_observed_generation(&mut self, generation: Option<i64>) {
                self.observed_generation = generation;
            }
            fn last_handled_reconcile_at(&self) -> Option<&str> {
                self.last_handled_reconcile_at.as_deref()
            }
            fn set_last_handled_reconcile_at(&mut self, value: Option<String>) {
                self.last_handled_reconcile_at = value;
            }
        }
    };
}

/// A Kubernetes event the kind wants published (Amazon-side changes, drift repairs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Warning instead of Normal.
    pub warning: bool,
    /// CamelCase reason, e.g. `Created`, `DriftRepaired`.
    pub reason: &'static str,
    /// CamelCase action, e.g. `UpdateAccountLinking`.
    pub action: &'static str,
    /// Human sentence without secret values.
    pub message: String,
}

impl Note {
    /// A Normal event.
    pub fn normal(reason: &'static str, action: &'static str, message: impl Into<String>) -> Self {
        Self {
            warning: false,
            reason,
            action,
            message: message.into(),
        }
    }
}

/// What stays on Amazon when the operator gives up an object's cleanup (its namespace went
/// with the credentials), for the Warning event that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// What is left, e.g. "the account linking of skill X stage Y".
    pub what: String,
    /// How a human removes it, e.g. an ASK CLI command.
    pub remove_with: String,
}

/// When to look at the object again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Healthy: the next periodic resync (drift detection).
    Resync,
    /// Transient failure: exponential back-off per object, never sooner than `retry_after`.
    Backoff {
        /// Amazon's Retry-After, when it sent one.
        retry_after: Option<Duration>,
    },
    /// Check again after a fixed delay (e.g. a conflict detected from the cache).
    After(Duration),
    /// Needs a human; re-check slowly in case the cause went away outside Kubernetes.
    Slow,
    /// Needs a change to the object or its Secrets; watches bring it back.
    AwaitChange,
}

/// How a kind's apply ended when it got as far as it meant to: the condition to show, when to
/// look again, and the events to publish. The status fields it changed are in the `&mut` status
/// the kind was handed.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    /// kstatus outcome.
    pub outcome: Outcome,
    /// Requeue policy.
    pub retry: Retry,
    /// Events to publish.
    pub notes: Vec<Note>,
}

impl Done {
    /// Amazon matches the spec: Ready, checked again at the next resync.
    pub fn ready(message: impl Into<String>) -> Done {
        Done::new(Outcome::ready(message), Retry::Resync)
    }

    /// Any outcome, without events.
    pub fn new(outcome: Outcome, retry: Retry) -> Done {
        Done {
            outcome,
            retry,
            notes: Vec::new(),
        }
    }

    /// The same, with one more event.
    pub fn with_note(mut self, note: Note) -> Done {
        self.notes.push(note);
        self
    }

    /// The same, with these events first.
    pub fn with_notes(mut self, notes: Vec<Note>) -> Done {
        let mut all = notes;
        all.append(&mut self.notes);
        self.notes = all;
        self
    }
}

/// Why an apply or cleanup stopped early: the condition users see and when to try again. Made
/// from a Secret or Amazon failure with `?` (see [`Doing`]), so kinds do not spell out the
/// mapping; [`super::outcomes`] holds the one table.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// kstatus outcome (Stalled or Progressing, with the reason and message).
    pub outcome: Outcome,
    /// Requeue policy.
    pub retry: Retry,
}

impl Failure {
    /// A failure with this outcome and retry.
    pub fn new(outcome: Outcome, retry: Retry) -> Failure {
        Failure { outcome, retry }
    }
}

impl From<SecretError> for Failure {
    fn from(err: SecretError) -> Failure {
        let (outcome, retry) = for_secret_error(&err);
        Failure { outcome, retry }
    }
}

impl From<Failure> for Done {
    fn from(failure: Failure) -> Done {
        Done::new(failure.outcome, failure.retry)
    }
}

/// Adds what the operator was doing to an Amazon failure, turning it into a [`Failure`]:
/// `client.call().await.doing("read the account linking from Amazon")?`.
pub trait Doing<T> {
    /// The failure, with the condition message "cannot {what}: {error}".
    fn doing(self, what: &str) -> Result<T, Failure>;
}

impl<T> Doing<T> for Result<T, AlexaError> {
    fn doing(self, what: &str) -> Result<T, Failure> {
        self.map_err(|err| {
            let (outcome, retry) = for_alexa_error(&err, what);
            Failure { outcome, retry }
        })
    }
}

/// The shared [`Context`] plus the state only kind `K` needs (for SkillEnablement, the caches
/// used to detect stage conflicts). Derefs to the shared context.
pub struct KindContext<K: ManagedKind> {
    /// What every kind shares.
    pub shared: Arc<Context>,
    /// What only this kind keeps.
    pub state: K::State,
}

impl<K: ManagedKind> KindContext<K> {
    /// A kind context with fresh kind state.
    pub fn new(shared: Arc<Context>) -> Self {
        KindContext {
            shared,
            state: K::State::default(),
        }
    }
}

impl<K: ManagedKind> Deref for KindContext<K> {
    type Target = Context;
    fn deref(&self) -> &Context {
        &self.shared
    }
}

/// What each custom resource kind implements so the shared lifecycle can drive it.
pub trait ManagedKind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The kind's status type.
    type Status: CommonStatus;
    /// State only this kind keeps across reconciles (see [`KindContext`]).
    type State: Default + Send + Sync + 'static;
    /// Kind name for metrics and logs.
    const KIND: &'static str;

    /// Current status, if any.
    fn current_status(&self) -> Option<&Self::Status>;
    /// What the spec says to do on Amazon's side when the object is deleted.
    fn deletion_policy(&self) -> DeletionPolicy;
    /// Whether the operator may write to Amazon for this object.
    fn management_policy(&self) -> ManagementPolicy;
    /// Names of the Secrets (same namespace) the object reads; their changes trigger a reconcile.
    fn secret_names(&self) -> Vec<String>;
    /// The credentials (object or Secret) its owner-mode calls use; changes of a credentials
    /// object trigger a reconcile of the objects using it.
    fn credentials_key(&self) -> Option<super::credentials::CredentialsKey> {
        None
    }
    /// Defence-in-depth validation of what the CRD schema should already have rejected.
    fn validate(&self) -> Result<(), String>;
    /// Where on Amazon the object lives, for messages and events ("skill X stage Y").
    fn location(&self) -> String;
    /// What a skipped cleanup leaves on Amazon and how to remove it by hand.
    fn left_on_amazon(&self) -> Leftover;
    /// Status fields derived from the spec alone (e.g. the Mode column), set on every status
    /// write, also while paused or invalid.
    fn describe(&self, _status: &mut Self::Status) {}
    /// Makes Amazon match the spec (or observes, in Observe mode): observe → plan → execute.
    /// `status` starts as the latest status this operator knows (see [`Context::latest_status`])
    /// and keeps the kind's changes also when it fails; `checkpoint` saves it before a call
    /// whose effect must not be lost if the operator dies right after it.
    fn apply(
        &self,
        ctx: &KindContext<Self>,
        status: &mut Self::Status,
        checkpoint: &Checkpoint<'_, Self>,
    ) -> impl Future<Output = Result<Done, Failure>> + Send;
    /// Removes the object's state from Amazon. `Err` keeps the finalizer and reports why.
    fn cleanup(
        &self,
        ctx: &KindContext<Self>,
        status: &Self::Status,
    ) -> impl Future<Output = Result<Vec<Note>, Failure>> + Send;
}

/// Writes a kind's status in the middle of `apply`, before an Amazon call that cannot be
/// safely repeated or whose effect Amazon does not return (the write-only client secret), so
/// that a crash between Amazon's answer and the final status write loses nothing.
pub struct Checkpoint<'a, K: ManagedKind> {
    obj: &'a K,
    ctx: &'a Context,
    api: &'a Api<K>,
    written: Mutex<Option<K::Status>>,
}

impl<'a, K: ManagedKind> Checkpoint<'a, K> {
    fn new(obj: &'a K, ctx: &'a Context, api: &'a Api<K>) -> Self {
        Self {
            obj,
            ctx,
            api,
            written: Mutex::new(None),
        }
    }

    /// Persists `status` with the conditions of `outcome` (normally Creating or Updating), so
    /// users also see what is in flight.
    pub async fn save(&self, status: &K::Status, outcome: &Outcome) -> Result<(), kube::Error> {
        let mut status = status.clone();
        let generation = self.obj.meta().generation;
        status.set_conditions(conditions::build(
            status.conditions(),
            outcome,
            generation,
            Timestamp::now(),
        ));
        status.set_observed_generation(generation);
        self.obj.describe(&mut status);
        write_status(self.obj, self.api, &status).await?;
        self.ctx.remember_status(self.obj);
        *self.written.lock() = Some(status);
        Ok(())
    }

    /// The status last saved, if any.
    fn into_saved(self) -> Option<K::Status> {
        self.written.into_inner()
    }
}

/// Server-side applies the whole status as this operator's field manager (every kind the
/// operator reconciles writes its status this way).
pub(crate) async fn write_status<K, S>(obj: &K, api: &Api<K>, status: &S) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
}

/// Failures of the lifecycle itself (Amazon failures are reported in status, not here).
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// Writing status failed; retried with back-off.
    #[error("failed to write status: {0}")]
    StatusWrite(#[source] kube::Error),
    /// Cleanup on Amazon's side has not succeeded yet; the finalizer stays.
    #[error("cleanup pending: {message}")]
    CleanupPending {
        /// When to try again.
        after: Duration,
        /// Why it is pending.
        message: String,
    },
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<LifecycleError>>),
    /// The object has no namespace (cannot happen for these namespaced kinds).
    #[error("object has no namespace")]
    NoNamespace,
}

impl LifecycleError {
    /// Bounded label for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            LifecycleError::StatusWrite(_) => "status_write",
            LifecycleError::CleanupPending { .. } => "cleanup_pending",
            LifecycleError::Finalizer(_) => "finalizer",
            LifecycleError::NoNamespace => "invalid_object",
        }
    }
}

/// Whether the paused annotation is set to "true".
pub fn is_paused<K: Resource>(obj: &K) -> bool {
    obj.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(PAUSED_ANNOTATION))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The value of the reconcile-requested-at annotation, if set.
pub fn requested_at<K: Resource>(obj: &K) -> Option<String> {
    obj.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(RECONCILE_REQUESTED_ANNOTATION))
        .cloned()
}

/// Hash of everything that should trigger a reconcile: spec generation, deletion, finalizers,
/// the operator's annotations and the uid. Status writes change none of these, so the operator's
/// own status updates do not make it reconcile again.
pub fn trigger_hash<K: Resource>(obj: &K) -> Option<u64> {
    let meta = obj.meta();
    let mut h = DefaultHasher::new();
    meta.uid.hash(&mut h);
    meta.generation.hash(&mut h);
    meta.deletion_timestamp.is_some().hash(&mut h);
    meta.finalizers.hash(&mut h);
    if let Some(annotations) = &meta.annotations {
        annotations.get(PAUSED_ANNOTATION).hash(&mut h);
        annotations.get(RECONCILE_REQUESTED_ANNOTATION).hash(&mut h);
        annotations.get(RESYNC_PERIOD_ANNOTATION).hash(&mut h);
    }
    Some(h.finish())
}

fn result_label(phase: Phase) -> &'static str {
    match phase {
        Phase::Ready => "ready",
        Phase::Progressing => "progressing",
        Phase::Stalled => "stalled",
        Phase::Idle => "idle",
    }
}

/// Whether a finalizer patch failed only because the object no longer exists.
fn finalizer_target_gone(err: &kube::runtime::finalizer::Error<LifecycleError>) -> bool {
    matches!(
        err,
        kube::runtime::finalizer::Error::RemoveFinalizer(kube::Error::Api(status))
            if status.code == 404
    )
}

/// The reconcile function handed to kube-runtime's `Controller` for kind `K`.
pub async fn reconcile<K: ManagedKind>(
    obj: Arc<K>,
    ctx: Arc<KindContext<K>>,
) -> Result<Action, LifecycleError> {
    let start = Instant::now();
    let ns = obj.namespace().ok_or(LifecycleError::NoNamespace)?;
    ctx.track(K::KIND, &ns, &obj.uid().unwrap_or_default());
    let api: Api<K> = Api::namespaced(ctx.kube.clone(), &ns);
    let result = finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            FinalizerEvent::Apply(o) => apply_flow(o.as_ref(), &ctx, &api).await,
            FinalizerEvent::Cleanup(o) => cleanup_flow(o.as_ref(), &ctx, &api).await,
        }
    })
    .await;
    let result = result.map_err(|err| match err {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => LifecycleError::Finalizer(Box::new(other)),
    });
    // Removing the finalizer of an object that is already gone: a reconcile of a stale copy.
    let result = match result {
        Err(LifecycleError::Finalizer(err)) if finalizer_target_gone(&err) => {
            Ok(Action::await_change())
        }
        other => other,
    };
    if let Err(err) = &result {
        ctx.metrics
            .reconciled(K::KIND, "error", start.elapsed().as_secs_f64());
        ctx.metrics
            .reconcile_errors
            .get_or_create(&crate::metrics::ErrorLabels {
                kind: K::KIND.to_string(),
                category: err.category().to_string(),
            })
            .inc();
    }
    result
}

/// The error policy handed to `Controller::run`: back-off per object.
pub fn error_policy<K: ManagedKind>(
    obj: Arc<K>,
    err: &LifecycleError,
    ctx: Arc<KindContext<K>>,
) -> Action {
    match err {
        LifecycleError::CleanupPending { after, .. } => Action::requeue(*after),
        other => {
            let uid = obj.uid().unwrap_or_default();
            let failures = ctx.failures.record(&uid);
            let delay = ctx.settings.backoff.delay(failures);
            tracing::warn!(kind = K::KIND, namespace = obj.namespace().unwrap_or_default(), name = obj.name_any(), error = %other, retry_in_ms = delay.as_millis() as u64, "reconcile failed");
            Action::requeue(delay)
        }
    }
}

/// Pause and validation first (no calls to Amazon for either), then the kind's apply.
async fn apply_flow<K: ManagedKind>(
    obj: &K,
    ctx: &KindContext<K>,
    api: &Api<K>,
) -> Result<Action, LifecycleError> {
    let start = Instant::now();
    let previous: K::Status = ctx.latest_status(obj, api).await;
    let mut status = previous.clone();
    let checkpoint = Checkpoint::new(obj, ctx, api);
    let done = if is_paused(obj) {
        Done::new(
            Outcome::idle(
                Reason::Paused,
                format!("{PAUSED_ANNOTATION} is \"true\": no calls to Amazon until it is removed"),
            ),
            Retry::AwaitChange,
        )
    } else if let Err(why) = obj.validate() {
        Done::new(
            Outcome::stalled(Reason::InvalidSpec, why),
            Retry::AwaitChange,
        )
    } else {
        obj.apply(ctx, &mut status, &checkpoint)
            .await
            .unwrap_or_else(Done::from)
    };
    obj.describe(&mut status);
    let phase = done.outcome.phase;
    let saved = checkpoint.into_saved();
    let delay = finish(obj, ctx, api, status, done, &previous, saved.as_ref()).await?;
    ctx.metrics
        .reconciled(K::KIND, result_label(phase), start.elapsed().as_secs_f64());
    Ok(delay.map_or_else(Action::await_change, Action::requeue))
}

/// Deletion: Orphan, Observe and paused objects leave Amazon alone; others clean up, and the
/// finalizer stays until that worked.
async fn cleanup_flow<K: ManagedKind>(
    obj: &K,
    ctx: &KindContext<K>,
    api: &Api<K>,
) -> Result<Action, LifecycleError> {
    let uid = obj.uid().unwrap_or_default();
    // Observe mode never writes to Amazon, not even on delete.
    let orphan = obj.deletion_policy() == DeletionPolicy::Orphan
        || !policy::Policy::of(obj.management_policy()).may_write;
    if orphan || is_paused(obj) {
        let why = if orphan {
            "deletionPolicy is Orphan"
        } else {
            "the object is paused"
        };
        let note = Note::normal(
            "Orphaned",
            "Delete",
            format!("left Amazon's state in place because {why}"),
        );
        publish(ctx, obj, &note).await;
        ctx.forget(&uid);
        return Ok(Action::await_change());
    }
    if ctx.was_cleaned_up(&uid) {
        // Amazon is already cleaned up: only the finalizer's removal is left (or this is a
        // stale copy of an object already gone, see `reconcile`).
        return Ok(Action::await_change());
    }
    let previous: K::Status = ctx.latest_status(obj, api).await;
    match obj.cleanup(ctx, &previous).await {
        Ok(notes) => {
            for note in &notes {
                publish(ctx, obj, note).await;
            }
            let ns = obj.namespace().unwrap_or_default();
            ctx.cleaned_up(K::KIND, &ns, &uid);
            Ok(Action::await_change())
        }
        Err(failure) => cleanup_failed(obj, ctx, api, previous, failure).await,
    }
}

/// A cleanup that failed: given up if the namespace is going and took the credentials with it
/// ([`policy::after_failed_cleanup`]), else CleanupPending with the failure in status.
async fn cleanup_failed<K: ManagedKind>(
    obj: &K,
    ctx: &KindContext<K>,
    api: &Api<K>,
    previous: K::Status,
    failure: Failure,
) -> Result<Action, LifecycleError> {
    // Only a missing Secret can end in an orphan: no namespace read for other failures.
    if failure.outcome.reason == Reason::SecretNotFound {
        let ns = obj.namespace().unwrap_or_default();
        let (phase, reference) = namespace_phase(ctx, &ns).await;
        if policy::after_failed_cleanup(failure.outcome.reason, phase) == AfterFailedCleanup::Orphan
        {
            let object = format!("{} {ns}/{}", K::KIND, obj.name_any());
            let note = policy::namespace_orphan_note(
                &object,
                &ns,
                &failure.outcome.message,
                &obj.left_on_amazon(),
            );
            tracing::warn!(kind = K::KIND, namespace = ns, name = obj.name_any(), message = %note.message, "cleanup skipped: the namespace is being deleted");
            publish_about(ctx, K::KIND, &reference, &note).await;
            ctx.forget(&obj.uid().unwrap_or_default());
            return Ok(Action::await_change());
        }
    }
    let outcome = policy::cleanup_pending(failure.outcome);
    let message = outcome.message.clone();
    let done = Done::new(outcome, failure.retry);
    let after = finish(obj, ctx, api, previous.clone(), done, &previous, None)
        .await?
        .unwrap_or(ctx.settings.stalled_retry);
    Err(LifecycleError::CleanupPending { after, message })
}

/// The phase of namespace `ns`, and the reference events about it use. Events about a
/// terminating namespace's objects cannot be recorded in it (the apiserver refuses new content
/// there), so they are recorded about the Namespace, in `default`.
async fn namespace_phase(ctx: &Context, ns: &str) -> (NamespacePhase, ObjectReference) {
    let api: Api<Namespace> = Api::all(ctx.kube.clone());
    let fallback = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Namespace".into()),
        name: Some(ns.to_string()),
        ..ObjectReference::default()
    };
    match api.get_opt(ns).await {
        Ok(found) => (
            NamespacePhase::of(found.as_ref()),
            found.map_or(fallback, |n| n.object_ref(&())),
        ),
        Err(err) => {
            tracing::debug!(namespace = ns, error = %err, "cannot read the namespace; treating it as not terminating");
            (NamespacePhase::Unknown, fallback)
        }
    }
}

/// Writes status and events for a finished apply or cleanup and turns its retry policy into a
/// requeue delay (`None`: wait for a change). `saved` is what a [`Checkpoint`] wrote during
/// this reconcile; conditions and events still compare with `previous`.
async fn finish<K: ManagedKind>(
    obj: &K,
    ctx: &Context,
    api: &Api<K>,
    status: K::Status,
    done: Done,
    previous: &K::Status,
    saved: Option<&K::Status>,
) -> Result<Option<Duration>, LifecycleError> {
    let now = Timestamp::now();
    let mut status = status;
    status.set_conditions(conditions::build(
        previous.conditions(),
        &done.outcome,
        obj.meta().generation,
        now,
    ));
    status.set_observed_generation(obj.meta().generation);
    let requested = requested_at(obj);
    if requested.is_some() {
        status.set_last_handled_reconcile_at(requested);
    }
    if &status != saved.unwrap_or(previous) {
        write_status(obj, api, &status)
            .await
            .map_err(LifecycleError::StatusWrite)?;
        ctx.remember_status(obj);
    }
    report(obj, ctx, &done, previous, now).await;
    let resync = resync_override(obj, ctx).await;
    Ok(requeue(obj, ctx, done.retry, &resync))
}

/// The object's resync-period annotation, parsed; an unusable value is warned about once
/// ([`policy::warn_about`]) and the default applies.
async fn resync_override<K: ManagedKind>(obj: &K, ctx: &Context) -> policy::ResyncOverride {
    let value = obj
        .meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(RESYNC_PERIOD_ANNOTATION));
    let parsed = policy::ResyncOverride::parse(value.map(String::as_str));
    let uid = super::keys::Uid::new(obj.meta().uid.as_deref().unwrap_or_default());
    let Some(note) = parsed.warning(ctx.settings.resync_period) else {
        ctx.resync_warned.lock().remove(&uid);
        return parsed;
    };
    let value = value.cloned().unwrap_or_default();
    let warn = {
        let mut warned = ctx.resync_warned.lock();
        let warn = policy::warn_about(&value, warned.get(&uid).map(String::as_str));
        warned.insert(uid, value);
        warn
    };
    if warn {
        publish(ctx, obj, &note).await;
    }
    parsed
}

/// Events (the kind's, then a condition change's), the drift-repair metric, the log line of a
/// condition change, and the object-state metrics.
async fn report<K: ManagedKind>(
    obj: &K,
    ctx: &Context,
    done: &Done,
    previous: &K::Status,
    now: Timestamp,
) {
    for note in &done.notes {
        if note.reason == DRIFT_REPAIRED {
            count_for::<K>(&ctx.metrics.drift_repairs);
        }
        publish(ctx, obj, note).await;
    }
    let previous_ready = conditions::ready_condition(previous.conditions());
    if let Some(note) =
        policy::transition_note(previous_ready.map(|c| c.reason.as_str()), &done.outcome)
    {
        tracing::info!(
            kind = K::KIND,
            namespace = obj.namespace().unwrap_or_default(),
            name = obj.name_any(),
            ready = done.outcome.is_ready(),
            reason = done.outcome.reason.as_str(),
            message = %done.outcome.message,
            "condition changed"
        );
        if done.outcome.reason == Reason::NotConverging {
            count_for::<K>(&ctx.metrics.not_converging);
        }
        publish(ctx, obj, &note).await;
    }
    let uid = obj.uid().unwrap_or_default();
    if previous_ready.is_some_and(|c| c.status == "True") {
        ctx.metrics.already_ready(&uid);
    }
    let age = obj
        .meta()
        .creation_timestamp
        .as_ref()
        .map(|t| (now.as_millisecond() - t.0.as_millisecond()) as f64 / 1000.0);
    ctx.metrics.object_state(
        K::KIND,
        &uid,
        done.outcome.is_ready(),
        done.outcome.reason.as_str(),
        age,
    );
}

/// Counts one more for kind `K` in a per-kind counter.
fn count_for<K: ManagedKind>(
    family: &prometheus_client::metrics::family::Family<
        crate::metrics::KindLabels,
        prometheus_client::metrics::counter::Counter,
    >,
) {
    family
        .get_or_create(&crate::metrics::KindLabels {
            kind: K::KIND.to_string(),
        })
        .inc();
}

/// Updates the object's failure count and computes the requeue delay ([`policy::requeue_after`]).
/// `resync` is the object's own resync period, if its annotation sets one.
fn requeue<K: ManagedKind>(
    obj: &K,
    ctx: &Context,
    retry: Retry,
    resync: &policy::ResyncOverride,
) -> Option<Duration> {
    let uid = obj.uid().unwrap_or_default();
    let failures = match policy::failures_after(retry) {
        Failures::Count => ctx.failures.record(&uid),
        Failures::Reset => {
            ctx.failures.reset(&uid);
            0
        }
    };
    let settings = resync.apply(&ctx.settings);
    policy::requeue_after(retry, failures, &settings, rand::random::<f64>())
}

/// Publishes one event about `obj`; failures to publish are logged, never fatal.
pub async fn publish<K: ManagedKind>(ctx: &Context, obj: &K, note: &Note) {
    publish_about(ctx, K::KIND, &obj.object_ref(&()), note).await;
}

/// Publishes one event about any object (`kind` names the operator's kind in the log line).
pub(crate) async fn publish_about(
    ctx: &Context,
    kind: &str,
    reference: &ObjectReference,
    note: &Note,
) {
    let event = KubeEvent {
        type_: if note.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: note.reason.to_string(),
        note: Some(conditions::bound_message(&note.message)),
        action: note.action.to_string(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder().publish(&event, reference).await {
        let name = reference.name.as_deref().unwrap_or_default();
        tracing::warn!(kind, name, error = %err, "failed to publish event");
    }
}
