//! Reading referenced Secrets and mapping Secret changes to the objects that use them.
//!
//! Secrets are watched metadata-only (`PartialObjectMetadata` list and watch requests: no secret
//! data comes through the watch, so memory does not grow with the cluster's Secrets). A
//! referenced Secret's data is read with one GET and kept in [`SecretReader`]'s cache, keyed by
//! namespace, name and resourceVersion: the next reconcile uses it without a request as long as
//! the metadata watch has not reported another resourceVersion (or a deletion).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::alexa::LwaCredentials;

/// Keys of a Login with Amazon credentials Secret.
pub const CLIENT_ID_KEY: &str = "client-id";
/// Key of the LWA client secret.
pub const CLIENT_SECRET_KEY: &str = "client-secret";
/// Key of the LWA refresh token.
pub const REFRESH_TOKEN_KEY: &str = "refresh-token";

/// A problem with a referenced Secret; the message tells the user what to create or fix and never
/// contains secret data.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The Secret does not exist.
    #[error(
        "Secret {namespace}/{name} not found; create it (the object is retried as soon as it appears)"
    )]
    NotFound {
        /// Namespace looked in.
        namespace: String,
        /// Secret name.
        name: String,
    },
    /// The Secret exists but lacks a key.
    #[error("Secret {namespace}/{name} has no key {key:?}; add it")]
    MissingKey {
        /// Namespace of the Secret.
        namespace: String,
        /// Secret name.
        name: String,
        /// Missing key.
        key: String,
    },
    /// The key's value is empty or not UTF-8 text.
    #[error("Secret {namespace}/{name} key {key:?} is empty or not UTF-8 text")]
    BadValue {
        /// Namespace of the Secret.
        namespace: String,
        /// Secret name.
        name: String,
        /// Offending key.
        key: String,
    },
    /// The Kubernetes API failed; retried with back-off.
    #[error("cannot read Secret {namespace}/{name}: {source}")]
    Api {
        /// Namespace of the Secret.
        namespace: String,
        /// Secret name.
        name: String,
        /// Underlying error.
        #[source]
        source: kube::Error,
    },
}

impl SecretError {
    /// Whether retrying without a change can help (only API failures).
    pub fn is_transient(&self) -> bool {
        matches!(self, SecretError::Api { .. })
    }
}

/// A Secret's data (its `data` keys, else `stringData`'s), shared by the cache and the reconciles
/// that read it. No `Debug`: it holds secret values.
#[derive(Clone)]
pub struct SecretData(Arc<Read>);

/// One read of a Secret. Compact on purpose: the cache holds one per referenced Secret (at
/// 100,000 objects, 80,000 in the benchmark); `String`s, a `BTreeMap` and copies of the names
/// made it ≈ 0.75 KiB each (heaptrack), this ≈ 0.3 KiB.
struct Read {
    /// `namespace/name`, shared with the cache's key.
    key: Arc<str>,
    /// Key and value pairs, keys unique (a Secret has a few keys).
    values: Box<[Pair]>,
    /// The Secret's resourceVersion when it was read.
    resource_version: Option<Box<str>>,
}

/// One key of a Secret and its value.
type Pair = (Box<str>, Box<[u8]>);

/// The cache key of a Secret: `namespace/name` (neither may contain a `/`).
fn cache_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

impl SecretData {
    /// The data of `secret`, read under `key` ([`cache_key`]).
    fn of(key: Arc<str>, secret: &Secret) -> Self {
        let mut values: BTreeMap<&str, &[u8]> = BTreeMap::new();
        for (k, v) in secret.string_data.iter().flatten() {
            values.insert(k, v.as_bytes());
        }
        for (k, v) in secret.data.iter().flatten() {
            values.insert(k, &v.0);
        }
        Self(Arc::new(Read {
            key,
            values: values
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            resource_version: secret.metadata.resource_version.as_deref().map(Into::into),
        }))
    }

    fn namespace_and_name(&self) -> (String, String) {
        let (namespace, name) = self.0.key.split_once('/').unwrap_or(("", &self.0.key));
        (namespace.to_string(), name.to_string())
    }

    fn resource_version(&self) -> Option<&str> {
        self.0.resource_version.as_deref()
    }

    /// One key's value as text (surrounding whitespace, such as a trailing newline from
    /// `kubectl create secret --from-file`, is removed).
    pub fn get(&self, key: &str) -> Result<String, SecretError> {
        let Some((_, bytes)) = self.0.values.iter().find(|(k, _)| &**k == key) else {
            let (namespace, name) = self.namespace_and_name();
            return Err(SecretError::MissingKey {
                namespace,
                name,
                key: key.to_string(),
            });
        };
        match std::str::from_utf8(bytes).map(str::trim) {
            Ok(v) if !v.is_empty() => Ok(v.to_string()),
            _ => {
                let (namespace, name) = self.namespace_and_name();
                Err(SecretError::BadValue {
                    namespace,
                    name,
                    key: key.to_string(),
                })
            }
        }
    }
}

/// What the metadata watch said about a cached Secret since its cache entry was made.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Watched {
    /// Nothing: a change after the entry was made would have been reported.
    #[default]
    Quiet,
    /// This resourceVersion (from an event or a re-list).
    Version(Box<str>),
    /// The Secret was deleted.
    Deleted,
}

/// Whether data read at resourceVersion `read_rv` may be used instead of a GET: only when a
/// metadata watch covers the Secret's namespace and has reported no other resourceVersion.
/// (resourceVersions are opaque: a report of a different one, older or newer, means read again.)
pub fn cached_is_current(covered: bool, watched: &Watched, read_rv: &str) -> bool {
    covered
        && match watched {
            Watched::Quiet => true,
            Watched::Version(rv) => **rv == *read_rv,
            Watched::Deleted => false,
        }
}

/// One cache entry: the watch's latest word and the data last read (with its resourceVersion).
#[derive(Default)]
struct Entry {
    watched: Watched,
    read: Option<SecretData>,
    /// Held across a GET, so concurrent reconciles that miss wait for one GET instead of each
    /// sending their own (at start-up every object reads the shared credentials at once).
    /// Dropped once the data is cached.
    reading: Option<Arc<tokio::sync::Mutex<()>>>,
}

/// Which namespaces the running metadata watches of Secrets cover.
#[derive(Default)]
struct Coverage {
    all: bool,
    namespaces: HashSet<String>,
}

/// Reads referenced Secrets, with a cache keyed by namespace, name and resourceVersion that the
/// metadata watches of Secrets keep honest ([`SecretReader::observe`]): in steady state a
/// reconcile reads no Secret from the API server. Cheap to clone (shared cache).
#[derive(Clone)]
pub struct SecretReader {
    client: kube::Client,
    cache: Arc<Mutex<HashMap<Arc<str>, Entry>>>,
    coverage: Arc<Mutex<Coverage>>,
}

impl SecretReader {
    /// A reader with an empty cache; nothing is cached until [`SecretReader::watching`] says a
    /// watch covers the namespace.
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            cache: Arc::default(),
            coverage: Arc::default(),
        }
    }

    /// Notes that a metadata watch of Secrets runs in `namespace` (`None`: every namespace), so
    /// data read there may be cached.
    pub fn watching(&self, namespace: Option<&str>) {
        let mut coverage = self.coverage.lock();
        match namespace {
            None => coverage.all = true,
            Some(ns) => {
                coverage.namespaces.insert(ns.to_string());
            }
        }
    }

    fn covers(&self, namespace: &str) -> bool {
        let coverage = self.coverage.lock();
        coverage.all || coverage.namespaces.contains(namespace)
    }

    /// Records what a metadata watch reported about a Secret (`None`: deleted). Only Secrets
    /// read before are tracked, so memory follows the referenced Secrets, not the cluster's.
    pub fn observe(&self, namespace: &str, name: &str, resource_version: Option<&str>) {
        let mut cache = self.cache.lock();
        if let Some(entry) = cache.get_mut(cache_key(namespace, name).as_str()) {
            entry.watched = match resource_version {
                Some(rv) => Watched::Version(rv.into()),
                None => Watched::Deleted,
            };
            if entry.watched == Watched::Deleted {
                entry.read = None;
            }
        }
    }

    /// The cached data of a Secret, if still current; else registers interest, so a change
    /// reported while the GET is in flight is not lost.
    /// On a miss, also the entry's read lock to take before the GET.
    fn cached(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<SecretData, (Arc<str>, Arc<tokio::sync::Mutex<()>>)> {
        let covered = self.covers(namespace);
        let mut cache = self.cache.lock();
        let key: Arc<str> = cache
            .get_key_value(key)
            .map_or_else(|| key.into(), |(shared, _)| shared.clone());
        let entry = cache.entry(key.clone()).or_default();
        match &entry.read {
            Some(data)
                if cached_is_current(
                    covered,
                    &entry.watched,
                    data.resource_version().unwrap_or_default(),
                ) =>
            {
                Ok(data.clone())
            }
            _ => Err((key, entry.reading.get_or_insert_with(Arc::default).clone())),
        }
    }

    /// Reads a Secret by name: from the cache when its resourceVersion is unchanged, else with
    /// one GET.
    pub async fn read(&self, namespace: &str, name: &str) -> Result<SecretData, SecretError> {
        let key = cache_key(namespace, name);
        let (key, reading) = match self.cached(namespace, &key) {
            Ok(data) => return Ok(data),
            Err(miss) => miss,
        };
        let _one_get = reading.lock().await;
        if let Ok(data) = self.cached(namespace, &key) {
            return Ok(data);
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        match api.get_opt(name).await {
            Ok(Some(secret)) => {
                let data = SecretData::of(key.clone(), &secret);
                // Only where a watch reports changes: elsewhere a cached value could go stale.
                if data.resource_version().is_some() && self.covers(namespace) {
                    if let Some(entry) = self.cache.lock().get_mut(&*key) {
                        entry.read = Some(data.clone());
                        entry.reading = None;
                    }
                }
                Ok(data)
            }
            Ok(None) => Err(SecretError::NotFound {
                namespace: namespace.to_string(),
                name: name.to_string(),
            }),
            Err(source) => Err(SecretError::Api {
                namespace: namespace.to_string(),
                name: name.to_string(),
                source,
            }),
        }
    }
}

/// Reads one key of a Secret.
pub async fn read_key(
    secrets: &SecretReader,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<String, SecretError> {
    secrets.read(namespace, name).await?.get(key)
}

/// Reads a Login with Amazon credentials Secret (keys client-id, client-secret, refresh-token).
pub async fn read_credentials(
    secrets: &SecretReader,
    namespace: &str,
    name: &str,
) -> Result<LwaCredentials, SecretError> {
    read_credentials_versioned(secrets, namespace, name)
        .await
        .map(|(creds, _)| creds)
}

/// Like [`read_credentials`], with the Secret's resourceVersion (what a credentials object's
/// status records so that its users notice a rotation, without recording anything secret).
pub async fn read_credentials_versioned(
    secrets: &SecretReader,
    namespace: &str,
    name: &str,
) -> Result<(LwaCredentials, Option<String>), SecretError> {
    let data = secrets.read(namespace, name).await?;
    let creds = LwaCredentials::new(
        data.get(CLIENT_ID_KEY)?,
        data.get(CLIENT_SECRET_KEY)?,
        data.get(REFRESH_TOKEN_KEY)?,
    );
    Ok((creds, data.resource_version().map(String::from)))
}

/// `sha256:<hex>` of a value. Not for status on its own (anyone reading it could test guesses
/// offline): status records [`super::digest::Digester`]'s keyed form of it. Earlier versions
/// recorded this plain form; the digester upgrades such records.
pub fn hash_tag(value: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(value.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn data(pairs: &[(&str, &[u8])]) -> SecretData {
        let mut map = BTreeMap::new();
        for (k, v) in pairs {
            map.insert(k.to_string(), ByteString(v.to_vec()));
        }
        let secret = Secret {
            data: Some(map),
            ..Secret::default()
        };
        SecretData::of("skills/lwa".into(), &secret)
    }

    #[test]
    fn value_is_trimmed_and_missing_keys_are_named() {
        let d = data(&[
            ("client-id", b"abc\n"),
            ("empty", b"  "),
            ("binary", &[0xff, 0xfe]),
        ]);
        assert_eq!(d.get("client-id").unwrap(), "abc");
        let err = d.get("refresh-token").unwrap_err().to_string();
        assert!(
            err.contains("skills/lwa") && err.contains("refresh-token"),
            "{err}"
        );
        assert!(matches!(d.get("empty"), Err(SecretError::BadValue { .. })));
        assert!(matches!(d.get("binary"), Err(SecretError::BadValue { .. })));
    }

    #[test]
    fn cached_data_is_used_only_while_the_watch_reports_no_other_version() {
        use Watched::*;
        let v = |rv: &str| Version(rv.into());
        // (covered by a watch, what the watch said, resourceVersion read) → use the cache
        let table = [
            (true, Quiet, "5", true),
            (true, v("5"), "5", true),
            (true, v("6"), "5", false),
            (true, v("4"), "5", false),
            (true, Deleted, "5", false),
            (false, Quiet, "5", false),
            (false, v("5"), "5", false),
        ];
        for (covered, watched, read, expected) in table {
            assert_eq!(
                cached_is_current(covered, &watched, read),
                expected,
                "{covered} {watched:?} {read}"
            );
        }
    }

    fn secret_gets(server: &kube_test_server::TestServer) -> usize {
        server
            .requests()
            .iter()
            .filter(|r| r.verb == "get" && r.path.contains("/secrets/"))
            .count()
    }

    async fn put_secret(client: &kube::Client, value: &str) -> String {
        let api: Api<Secret> = Api::namespaced(client.clone(), "skills");
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "lwa"}, "stringData": {"client-id": value}
        }))
        .unwrap();
        let params = kube::api::PatchParams::apply("test").force();
        let applied = api
            .patch("lwa", &params, &kube::api::Patch::Apply(&secret))
            .await
            .unwrap();
        applied.metadata.resource_version.unwrap()
    }

    #[tokio::test]
    async fn a_secret_is_read_again_only_after_the_watch_reports_another_version() {
        let server = kube_test_server::TestServer::new().with_namespaces(&["skills"]);
        let client = server.client();
        let rv1 = put_secret(&client, "one").await;
        let reader = SecretReader::new(client.clone());
        let read = || async {
            read_key(&reader, "skills", "lwa", "client-id")
                .await
                .unwrap()
        };

        assert_eq!(read().await, "one");
        assert_eq!(read().await, "one");
        assert_eq!(
            secret_gets(&server),
            2,
            "no watch covers skills: never cached"
        );

        reader.watching(Some("skills"));
        server.clear_requests();
        assert_eq!(read().await, "one");
        reader.observe("skills", "lwa", Some(&rv1));
        assert_eq!(read().await, "one");
        assert_eq!(read().await, "one");
        assert_eq!(secret_gets(&server), 1, "cached while the version stays");

        let rv2 = put_secret(&client, "two").await;
        reader.observe("skills", "other", Some("99"));
        assert_eq!(read().await, "one", "the watch has not told yet");
        reader.observe("skills", "lwa", Some(&rv2));
        assert_eq!(read().await, "two");
        assert_eq!(read().await, "two");
        assert_eq!(secret_gets(&server), 2, "one more read after the change");

        reader.observe("skills", "lwa", None);
        Api::<Secret>::namespaced(client.clone(), "skills")
            .delete("lwa", &Default::default())
            .await
            .unwrap();
        let gone = read_key(&reader, "skills", "lwa", "client-id").await;
        assert!(matches!(gone, Err(SecretError::NotFound { .. })));
    }

    #[tokio::test]
    async fn concurrent_reads_of_one_secret_send_one_get() {
        let server = kube_test_server::TestServer::new().with_namespaces(&["skills"]);
        let client = server.client();
        put_secret(&client, "one").await;
        let reader = SecretReader::new(client.clone());
        reader.watching(None);
        server.clear_requests();
        let reads = (0..20).map(|_| read_key(&reader, "skills", "lwa", "client-id"));
        for value in futures::future::join_all(reads).await {
            assert_eq!(value.unwrap(), "one");
        }
        assert_eq!(secret_gets(&server), 1);
    }

    #[test]
    fn errors_never_contain_values() {
        // A real secret that is unusable (not UTF-8 because of its last byte): the error names
        // the Secret and key, never the value.
        let d = data(&[("client-secret", b"hunter2-client-secret\xff")]);
        let err = d.get("client-secret").unwrap_err();
        assert!(matches!(err, SecretError::BadValue { .. }), "{err}");
        let text = format!("{err} {err:?}");
        assert!(
            text.contains("skills/lwa") && text.contains("client-secret"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(hash_tag("hunter2").len(), "sha256:".len() + 64);
        assert!(!hash_tag("hunter2").contains("hunter2"));
    }
}
