//! Shared credentials (`AlexaCredentials`, `ClusterAlexaCredentials`): which Login with Amazon
//! credentials an object's owner-mode calls use ([`owner_credentials`], the thin I/O shell
//! around [`resolve`]'s decisions), which objects use each credentials object ([`Users`]), and
//! the credentials objects' own reconciler ([`reconciler`]).
//!
//! The token cache and the rate budget are keyed by the credentials' values (see
//! [`crate::alexa::LwaCredentials::fingerprint`]), so every object using one credentials object,
//! in whatever namespace, shares one access token and one budget; stage conflicts go by
//! [`CredentialsKey`].

pub mod reconciler;
pub mod resolve;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use parking_lot::Mutex;
use tokio::sync::broadcast;

pub use self::resolve::{CredentialsKey, Refusal, key_of};
use super::conditions::{Outcome, Reason};
use super::context::Context;
use super::keys::Uid;
use super::lifecycle::{Failure, Retry};
use super::secrets::read_credentials;
use crate::alexa::LwaCredentials;
use crate::crd::common::SecretRef;
use crate::crd::credentials::{AlexaCredentials, ClusterAlexaCredentials, CredentialsRef};

/// The credentials objects as the managed controllers' watches of them last saw them, so that a
/// reconcile finds its credentials object in memory rather than with a GET (steady state costs
/// the apiserver nothing). Each kind's cache is the first watch registered: with several watched
/// namespaces, objects of the others miss and are read with a GET, as is one not listed yet.
#[derive(Default)]
pub struct Caches {
    local: OnceLock<(Option<String>, Store<AlexaCredentials>)>,
    cluster: OnceLock<Store<ClusterAlexaCredentials>>,
}

impl Caches {
    /// Serves AlexaCredentials of `namespace` (`None`: every namespace) from `store`.
    pub fn serve_local(&self, namespace: Option<String>, store: Store<AlexaCredentials>) {
        let _ = self.local.set((namespace, store));
    }

    /// Serves ClusterAlexaCredentials from `store`.
    pub fn serve_cluster(&self, store: Store<ClusterAlexaCredentials>) {
        let _ = self.cluster.set(store);
    }

    fn local(&self, namespace: &str, name: &str) -> Option<Arc<AlexaCredentials>> {
        let (scope, store) = self.local.get()?;
        if scope.as_deref().is_some_and(|s| s != namespace) {
            return None;
        }
        store.get(&ObjectRef::new(name).within(namespace))
    }

    fn cluster(&self, name: &str) -> Option<Arc<ClusterAlexaCredentials>> {
        self.cluster.get()?.get(&ObjectRef::new(name))
    }
}

/// Which object (by uid) uses which credentials object, as seen by this replica's reconciles,
/// for the in-use count in the credentials objects' status. Changes are broadcast so that the
/// credentials object recounts at once. (Deletion protection does not rely on this: it lists
/// the users from the API server.)
pub struct Users {
    /// Per user (uid): the credentials object it uses and its "Kind namespace/name".
    by_uid: Mutex<HashMap<Uid, (CredentialsKey, Box<str>)>>,
    changed: broadcast::Sender<CredentialsKey>,
}

impl Default for Users {
    fn default() -> Self {
        Self {
            by_uid: Mutex::new(HashMap::new()),
            changed: broadcast::channel(1024).0,
        }
    }
}

impl Users {
    /// Records that object `uid` (shown as `user`, "Kind namespace/name") uses `key` (`None`
    /// or a plain Secret: no credentials object).
    pub fn note(&self, uid: &str, key: Option<CredentialsKey>, user: String) {
        let key = key.filter(CredentialsKey::is_object);
        let uid = Uid::new(uid);
        let before = {
            let mut by_uid = self.by_uid.lock();
            match &key {
                Some(k) => by_uid.insert(uid, (k.clone(), user.into())),
                None => by_uid.remove(&uid),
            }
        };
        let before = before.map(|(k, _)| k);
        if before != key {
            for k in before.into_iter().chain(key) {
                let _ = self.changed.send(k);
            }
        }
    }

    /// Forgets an object that is gone.
    pub fn forget(&self, uid: &str) {
        if let Some((key, _)) = self.by_uid.lock().remove(&Uid::new(uid)) {
            let _ = self.changed.send(key);
        }
    }

    /// The users of `key` ("Kind namespace/name").
    pub fn of(&self, key: &CredentialsKey) -> Vec<String> {
        self.by_uid
            .lock()
            .values()
            .filter(|(k, _)| k == key)
            .map(|(_, user)| user.to_string())
            .collect()
    }

    /// Credentials objects whose users changed, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<CredentialsKey> {
        self.changed.subscribe()
    }
}

/// The skill owner's credentials of an object in `namespace` (`user`: "Kind namespace/name",
/// `uid`: its uid): from its credentialsSecretRef, or the Secret its credentialsRef's object
/// points to once that object admits the namespace. Records the use in [`Users`].
pub async fn owner_credentials(
    ctx: &Context,
    (namespace, user, uid): (&str, String, &str),
    secret_ref: Option<&SecretRef>,
    credentials_ref: Option<&CredentialsRef>,
) -> Result<LwaCredentials, Failure> {
    let key = key_of(namespace, secret_ref, credentials_ref);
    ctx.credential_users.note(uid, key.clone(), user);
    let (secret_ns, secret_name) = match key {
        None => {
            return Err(Failure::new(
                Outcome::stalled(
                    Reason::InvalidSpec,
                    "invalid spec: set spec.credentialsSecretRef or spec.credentialsRef",
                ),
                Retry::AwaitChange,
            ));
        }
        Some(CredentialsKey::Secret { namespace, name }) => (namespace, name),
        Some(key) => secret_of(ctx, key, namespace).await?,
    };
    Ok(read_credentials(&ctx.secrets, &secret_ns, &secret_name).await?)
}

/// The Secret (namespace, name) a credentials object points to, if it exists and admits
/// `namespace`.
async fn secret_of(
    ctx: &Context,
    key: CredentialsKey,
    namespace: &str,
) -> Result<(String, String), Failure> {
    let api_failure = |e: kube::Error| {
        Failure::new(
            Outcome::progressing(Reason::ApiUnavailable, format!("cannot read {key}: {e}")),
            Retry::Backoff { retry_after: None },
        )
    };
    match &key {
        CredentialsKey::Namespaced { namespace, name } => {
            if let Some(c) = ctx.credential_caches.local(namespace, name) {
                return Ok((namespace.clone(), c.spec.secret_ref.name.clone()));
            }
            let api: Api<AlexaCredentials> = Api::namespaced(ctx.kube.clone(), namespace);
            match api.get_opt(name).await.map_err(api_failure)? {
                Some(c) => Ok((namespace.clone(), c.spec.secret_ref.name)),
                None => Err(Refusal::NotFound { key }.into()),
            }
        }
        CredentialsKey::Cluster { name } => {
            let c = match ctx.credential_caches.cluster(name) {
                Some(c) => c,
                None => {
                    let api: Api<ClusterAlexaCredentials> = Api::all(ctx.kube.clone());
                    match api.get_opt(name).await.map_err(api_failure)? {
                        Some(c) => Arc::new(c),
                        None => return Err(Refusal::NotFound { key }.into()),
                    }
                }
            };
            let namespaces: Api<Namespace> = Api::all(ctx.kube.clone());
            let ns = namespaces.get_opt(namespace).await.map_err(api_failure)?;
            let labels = ns.as_ref().and_then(|n| n.metadata.labels.as_ref());
            let empty = Default::default();
            resolve::admit(
                name,
                &c.spec.allowed_namespaces,
                namespace,
                Some(labels.unwrap_or(&empty)).filter(|_| ns.is_some()),
            )?;
            Ok((
                c.spec.secret_ref.namespace.clone(),
                c.spec.secret_ref.name.clone(),
            ))
        }
        CredentialsKey::Secret { namespace, name } => Ok((namespace.clone(), name.clone())),
    }
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Failure {
        let (outcome, retry) = refusal.outcome();
        Failure::new(outcome, retry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_counted_per_credentials_object_and_changes_are_announced() {
        let users = Users::default();
        let mut changes = users.subscribe();
        let shared = CredentialsKey::Cluster {
            name: "shared".into(),
        };
        let secret = CredentialsKey::Secret {
            namespace: "a".into(),
            name: "lwa".into(),
        };
        users.note("u1", Some(shared.clone()), "SkillEnablement a/x".into());
        users.note("u2", Some(shared.clone()), "SkillEnablement b/y".into());
        users.note("u3", Some(secret.clone()), "SkillEnablement a/z".into());
        let mut of = users.of(&shared);
        of.sort();
        assert_eq!(of, ["SkillEnablement a/x", "SkillEnablement b/y"]);
        assert!(
            users.of(&secret).is_empty(),
            "plain Secrets are not counted"
        );
        // Noting the same use again announces nothing; switching and forgetting do.
        users.note("u1", Some(shared.clone()), "SkillEnablement a/x".into());
        users.note("u2", Some(secret), "SkillEnablement b/y".into());
        users.forget("u1");
        let mut announced = Vec::new();
        while let Ok(key) = changes.try_recv() {
            announced.push(key);
        }
        assert_eq!(announced, vec![shared.clone(); 4]);
        assert!(users.of(&shared).is_empty());
    }
}
