//! The reconciler of `AlexaCredentials` and `ClusterAlexaCredentials`: checks the Secret with
//! Login with Amazon (Ready or CredentialsInvalid), counts the objects using it, and holds its
//! deletion (finalizer) while any object still references it.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Instant;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::resolve::{self, CredentialsKey, Deletion, IN_USE_RECHECK};
use crate::controller::conditions::{self, Outcome};
use crate::controller::context::Context;
use crate::controller::lifecycle::policy::{self, Failures};
use crate::controller::lifecycle::write_status;
use crate::controller::lifecycle::{Retry, trigger_hash};
use crate::controller::outcomes::{for_alexa_error, for_secret_error};
use crate::controller::secrets::read_credentials_versioned;
use crate::crd::credentials::{
    AlexaCredentials, ClusterAlexaCredentials, CredentialsStatus, IN_USE_FINALIZER,
};
use crate::crd::{SkillAccountLinking, SkillEnablement};

/// What both credentials kinds provide to the reconciler.
pub trait SharedCredentials:
    Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Kind name for metrics, logs and messages.
    const KIND: &'static str;
    /// The key its users' specs resolve to.
    fn key(&self) -> CredentialsKey;
    /// Namespace and name of its Secret.
    fn secret(&self) -> (String, String);
    /// Current status.
    fn status_of(&self) -> Option<&CredentialsStatus>;
    /// The API of objects like this one (its namespace's, or cluster-wide).
    fn api_for(&self, client: &kube::Client) -> Api<Self>;
    /// Where its users can live (`None`: every namespace).
    fn users_namespace(&self) -> Option<String>;
    /// The object a key names, if it is of this kind.
    fn ref_of(key: &CredentialsKey) -> Option<ObjectRef<Self>>;
}

impl SharedCredentials for AlexaCredentials {
    const KIND: &'static str = "AlexaCredentials";
    fn key(&self) -> CredentialsKey {
        CredentialsKey::Namespaced {
            namespace: self.namespace().unwrap_or_default(),
            name: self.name_any(),
        }
    }
    fn secret(&self) -> (String, String) {
        (
            self.namespace().unwrap_or_default(),
            self.spec.secret_ref.name.clone(),
        )
    }
    fn status_of(&self) -> Option<&CredentialsStatus> {
        self.status.as_ref()
    }
    fn api_for(&self, client: &kube::Client) -> Api<Self> {
        Api::namespaced(client.clone(), &self.namespace().unwrap_or_default())
    }
    fn users_namespace(&self) -> Option<String> {
        self.namespace()
    }
    fn ref_of(key: &CredentialsKey) -> Option<ObjectRef<Self>> {
        match key {
            CredentialsKey::Namespaced { namespace, name } => {
                Some(ObjectRef::new(name).within(namespace))
            }
            _ => None,
        }
    }
}

impl SharedCredentials for ClusterAlexaCredentials {
    const KIND: &'static str = "ClusterAlexaCredentials";
    fn key(&self) -> CredentialsKey {
        CredentialsKey::Cluster {
            name: self.name_any(),
        }
    }
    fn secret(&self) -> (String, String) {
        (
            self.spec.secret_ref.namespace.clone(),
            self.spec.secret_ref.name.clone(),
        )
    }
    fn status_of(&self) -> Option<&CredentialsStatus> {
        self.status.as_ref()
    }
    fn api_for(&self, client: &kube::Client) -> Api<Self> {
        Api::all(client.clone())
    }
    fn users_namespace(&self) -> Option<String> {
        None
    }
    fn ref_of(key: &CredentialsKey) -> Option<ObjectRef<Self>> {
        match key {
            CredentialsKey::Cluster { name } => Some(ObjectRef::new(name)),
            _ => None,
        }
    }
}

/// Failures of a credentials reconcile (what users see is in status; these drive requeues).
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// Writing status failed; retried with back-off.
    #[error("failed to write status: {0}")]
    StatusWrite(#[source] kube::Error),
    /// Listing the objects that may use the credentials failed; retried with back-off.
    #[error("cannot list the objects that may use these credentials: {0}")]
    ListUsers(#[source] kube::Error),
    /// Objects still use the credentials; the finalizer stays.
    #[error("in use: {0}")]
    InUse(String),
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<CredentialsError>>),
}

/// The reconcile function of a credentials controller.
pub async fn reconcile<C: SharedCredentials>(
    obj: Arc<C>,
    ctx: Arc<Context>,
) -> Result<Action, CredentialsError> {
    let start = Instant::now();
    // Tracked, so that the managed kinds' sweeps keep its failure count and metric state.
    ctx.track(
        C::KIND,
        &obj.namespace().unwrap_or_default(),
        &obj.uid().unwrap_or_default(),
    );
    let api = obj.api_for(&ctx.kube);
    let result = finalizer(&api, IN_USE_FINALIZER, obj, |event| async {
        match event {
            FinalizerEvent::Apply(o) => apply(o.as_ref(), &ctx, &api).await,
            FinalizerEvent::Cleanup(o) => cleanup(o.as_ref(), &ctx, &api).await,
        }
    })
    .await
    .map_err(|err| match err {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => CredentialsError::Finalizer(Box::new(other)),
    });
    let label = if result.is_ok() { "ready" } else { "error" };
    ctx.metrics
        .reconciled(C::KIND, label, start.elapsed().as_secs_f64());
    result
}

/// Requeue after a failed reconcile: soon while in use (the users may be gone by then),
/// back-off otherwise.
pub fn error_policy<C: SharedCredentials>(
    obj: Arc<C>,
    err: &CredentialsError,
    ctx: Arc<Context>,
) -> Action {
    if let CredentialsError::InUse(_) = err {
        return Action::requeue(IN_USE_RECHECK);
    }
    let failures = ctx.failures.record(&obj.uid().unwrap_or_default());
    tracing::warn!(kind = C::KIND, name = obj.name_any(), error = %err, "reconcile failed");
    Action::requeue(ctx.settings.backoff.delay(failures))
}

/// Checks the Secret with Login with Amazon (a cached access token counts: no request) and
/// records the outcome and the in-use count.
async fn apply<C: SharedCredentials>(
    obj: &C,
    ctx: &Context,
    api: &Api<C>,
) -> Result<Action, CredentialsError> {
    let (ns, name) = obj.secret();
    let (outcome, retry, version) = match read_credentials_versioned(&ctx.secrets, &ns, &name).await
    {
        Err(e) => {
            let (outcome, retry) = for_secret_error(&e);
            (outcome, retry, None)
        }
        Ok((creds, version)) => match ctx.alexa.verify_credentials(&creds).await {
            Ok(()) => (
                Outcome::ready(format!(
                    "Login with Amazon accepted the credentials in Secret {ns}/{name}"
                )),
                Retry::Resync,
                version,
            ),
            Err(e) => {
                let (outcome, retry) = for_alexa_error(&e, "get an access token with them");
                (outcome, retry, version)
            }
        },
    };
    let users = ctx.credential_users.of(&obj.key());
    let mut status = obj.status_of().cloned().unwrap_or_default();
    status.in_use = Some(resolve::in_use(users));
    status.secret_resource_version = version;
    finish(obj, ctx, api, status, &outcome).await?;
    let uid = obj.uid().unwrap_or_default();
    let failures = match policy::failures_after(retry) {
        Failures::Count => ctx.failures.record(&uid),
        Failures::Reset => {
            ctx.failures.reset(&uid);
            0
        }
    };
    Ok(
        policy::requeue_after(retry, failures, &ctx.settings, rand::random::<f64>())
            .map_or_else(Action::await_change, Action::requeue),
    )
}

/// Deletion: the finalizer goes once no SkillAccountLinking or SkillEnablement references the
/// object (listed from the API server, so a restarted operator cannot miss one).
async fn cleanup<C: SharedCredentials>(
    obj: &C,
    ctx: &Context,
    api: &Api<C>,
) -> Result<Action, CredentialsError> {
    let users = list_users(ctx, &obj.key(), obj.users_namespace().as_deref()).await?;
    let what = obj.key().to_string();
    match resolve::deletion(&what, &users) {
        Deletion::Release => {
            ctx.forget(&obj.uid().unwrap_or_default());
            Ok(Action::await_change())
        }
        Deletion::Wait(outcome) => {
            let mut status = obj.status_of().cloned().unwrap_or_default();
            status.in_use = Some(resolve::in_use(users));
            finish(obj, ctx, api, status, &outcome).await?;
            Err(CredentialsError::InUse(outcome.message))
        }
    }
}

/// Every SkillAccountLinking and SkillEnablement (in `namespace`, or everywhere) whose spec
/// references `key`, as "Kind namespace/name".
async fn list_users(
    ctx: &Context,
    key: &CredentialsKey,
    namespace: Option<&str>,
) -> Result<Vec<String>, CredentialsError> {
    let linkings: Api<SkillAccountLinking> = match namespace {
        Some(ns) => Api::namespaced(ctx.kube.clone(), ns),
        None => Api::all(ctx.kube.clone()),
    };
    let enablements: Api<SkillEnablement> = match namespace {
        Some(ns) => Api::namespaced(ctx.kube.clone(), ns),
        None => Api::all(ctx.kube.clone()),
    };
    let params = ListParams::default();
    let mut users = Vec::new();
    for o in linkings
        .list(&params)
        .await
        .map_err(CredentialsError::ListUsers)?
    {
        let ns = o.namespace().unwrap_or_default();
        if resolve::key_of(&ns, None, o.spec.credentials_ref.as_ref()).as_ref() == Some(key) {
            users.push(format!("SkillAccountLinking {ns}/{}", o.name_any()));
        }
    }
    for o in enablements
        .list(&params)
        .await
        .map_err(CredentialsError::ListUsers)?
    {
        let ns = o.namespace().unwrap_or_default();
        if resolve::key_of(&ns, None, o.spec.credentials_ref.as_ref()).as_ref() == Some(key) {
            users.push(format!("SkillEnablement {ns}/{}", o.name_any()));
        }
    }
    Ok(users)
}

/// Writes the status with `outcome`'s conditions if it changed, and publishes an event and
/// logs when the Ready reason changed; updates the objects gauge.
async fn finish<C: SharedCredentials>(
    obj: &C,
    ctx: &Context,
    api: &Api<C>,
    mut status: CredentialsStatus,
    outcome: &Outcome,
) -> Result<(), CredentialsError> {
    let previous = obj.status_of().cloned().unwrap_or_default();
    let generation = obj.meta().generation;
    status.conditions =
        conditions::build(&previous.conditions, outcome, generation, Timestamp::now());
    status.observed_generation = generation;
    if status != previous {
        write_status(obj, api, &status)
            .await
            .map_err(CredentialsError::StatusWrite)?;
    }
    let previous_reason =
        conditions::ready_condition(&previous.conditions).map(|c| c.reason.clone());
    if let Some(note) = policy::transition_note(previous_reason.as_deref(), outcome) {
        tracing::info!(kind = C::KIND, name = obj.name_any(), ready = outcome.is_ready(), reason = outcome.reason.as_str(), message = %outcome.message, "condition changed");
        crate::controller::lifecycle::publish_about(ctx, C::KIND, &obj.object_ref(&()), &note)
            .await;
    }
    let uid = obj.uid().unwrap_or_default();
    ctx.metrics.object_state(
        C::KIND,
        &uid,
        outcome.is_ready(),
        outcome.reason.as_str(),
        None,
    );
    Ok(())
}

/// The credentials objects in `store` whose Secret is `secret`.
fn objects_using_secret<C: SharedCredentials>(
    store: &Store<C>,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<C>> {
    let wanted = (secret.namespace().unwrap_or_default(), secret.name_any());
    store
        .state()
        .into_iter()
        .filter(|c| c.secret() == wanted)
        .map(|c| ObjectRef::from_obj(&*c))
        .collect()
}

/// Credentials objects whose users changed (see [`super::Users`]).
fn user_changes<C: SharedCredentials>(
    changes: tokio::sync::broadcast::Receiver<CredentialsKey>,
) -> impl Stream<Item = ObjectRef<C>> + Send {
    futures::stream::unfold(changes, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(key) => return Some((C::ref_of(&key), rx)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .filter_map(|r| async move { r })
}

/// The controller of credentials kind `C`: `api` is its scope (one namespace, or the whole
/// cluster) and `secrets` the changes of the Secrets there.
pub fn controller<C: SharedCredentials>(
    ctx: Arc<Context>,
    api: Api<C>,
    secrets: crate::controller::runner::SecretChanges,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> impl Stream<Item = ()> + Send
where
    C::DynamicType: Default,
{
    let (reader, writer) = reflector::store();
    let objects = watcher::watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|o: &mut C| o.managed_fields_mut().clear())
        .reflect(writer)
        .applied_objects()
        .predicate_filter(trigger_hash::<C>, Default::default());
    let store = reader.clone();
    Controller::for_stream(objects, reader)
        // Users arrive in bursts (every object at start-up): count them once per second, not
        // once per user.
        .with_config(
            controller::Config::default()
                .concurrency(2)
                .debounce(std::time::Duration::from_secs(1)),
        )
        .reconcile_on(user_changes::<C>(ctx.credential_users.subscribe()))
        .watches_stream(secrets, move |secret| objects_using_secret(&store, &secret))
        .graceful_shutdown_on(shutdown)
        .run(reconcile::<C>, error_policy::<C>, ctx)
        .map(|result| {
            if let Err(err) = result {
                tracing::debug!(error = %err, "credentials controller event");
            }
        })
}
