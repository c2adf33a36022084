//! Keyed digests of secret values (client secrets, authorization codes) for status.
//!
//! Status records which secret was applied so a change can be noticed without storing the
//! secret. A plain SHA-256 there lets anyone who can read the object test guesses offline, so
//! the digest is an HMAC-SHA256 under a per-installation key that only the operator reads: a
//! Secret in its own namespace ([`KEY_SECRET_NAME`]), made with 32 random bytes on first start.
//!
//! The HMAC is taken over the value's legacy tag (`sha256:<hex>`, what earlier versions
//! stored), so a legacy record upgrades to exactly the keyed digest of the same value without
//! knowing the value: [`Digester::upgrade`]. Records look like `hmac-sha256:<keyid>:<hex>`;
//! the key id (a hash of the key, not of any secret) tells digests of another key apart.

use hmac::{Hmac, Mac};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use sha2::{Digest, Sha256};

use super::secrets::hash_tag;

/// Name of the Secret, in the operator's namespace, that holds the digest key.
pub const KEY_SECRET_NAME: &str = "alexa-skill-operator-digest-key";
/// Key of that Secret's data holding the raw key bytes.
pub const KEY_DATA_KEY: &str = "key";
/// Length of a key the operator makes, and the least it accepts.
pub const KEY_BYTES: usize = 32;

const PREFIX: &str = "hmac-sha256:";
const LEGACY_PREFIX: &str = "sha256:";
/// Hex characters of the key id (32 bits: tells keys apart, says nothing about them).
const KEY_ID_HEX: usize = 8;

/// What a recorded digest says about a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// The keyed digest of this value under the current key.
    Same,
    /// A legacy plain digest (`sha256:`) of this value: counts as the same value, and is
    /// replaced by [`Digester::upgrade`] on the next status write.
    Legacy,
    /// A digest under the current key (or a legacy one) of another value.
    Different,
    /// A digest under another key (the key Secret was deleted or replaced), or not a digest:
    /// which value it was made from cannot be told.
    Unknown,
}

/// Why the digest key could not be loaded or made at start-up.
#[derive(Debug, thiserror::Error)]
pub enum DigestKeyError {
    /// The Kubernetes API refused or failed.
    #[error(
        "cannot read or create the digest key Secret {namespace}/{KEY_SECRET_NAME}: {source}; the operator needs get and create on it (deploy/base/digest-key-rbac.yaml)"
    )]
    Api {
        /// The operator's namespace (`--lease-namespace`).
        namespace: String,
        /// Underlying error.
        #[source]
        source: kube::Error,
    },
    /// The Secret exists but holds no usable key.
    #[error(
        "Secret {namespace}/{KEY_SECRET_NAME} has no key {KEY_DATA_KEY:?} of at least {KEY_BYTES} bytes; restore it from backup, or delete it to have a new key made (see docs/OPERATIONS.md for what a new key costs)"
    )]
    BadKey {
        /// The operator's namespace.
        namespace: String,
    },
}

/// Makes and checks the keyed digests status records. Cheap to clone.
#[derive(Clone)]
pub struct Digester {
    key: std::sync::Arc<[u8]>,
    key_id: String,
}

impl std::fmt::Debug for Digester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Digester")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Digester {
    /// A digester for `key`; `None` when it is shorter than [`KEY_BYTES`].
    pub fn new(key: &[u8]) -> Option<Digester> {
        (key.len() >= KEY_BYTES).then(|| Digester::of_key(key))
    }

    fn of_key(key: &[u8]) -> Digester {
        let mut id = Sha256::new();
        id.update(b"alexa-skill-operator digest key id\0");
        id.update(key);
        let mut key_id = hex::encode(id.finalize());
        key_id.truncate(KEY_ID_HEX);
        Digester {
            key: key.into(),
            key_id,
        }
    }

    /// A digester with a fresh random key (what a first start stores; unit tests).
    pub fn random() -> Digester {
        let key: [u8; KEY_BYTES] = rand::random();
        Digester::of_key(&key)
    }

    /// Identifies the key in every digest it makes.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// `hmac-sha256:<keyid>:<hex>` of `value`.
    pub fn digest(&self, value: &str) -> String {
        self.wrap(&hash_tag(value))
    }

    /// What `recorded` says about `value`.
    pub fn matches(&self, recorded: &str, value: &str) -> Match {
        if recorded == self.digest(value) {
            Match::Same
        } else if is_legacy(recorded) {
            if recorded == hash_tag(value) {
                Match::Legacy
            } else {
                Match::Different
            }
        } else if recorded.starts_with(&format!("{PREFIX}{}:", self.key_id)) {
            Match::Different
        } else {
            Match::Unknown
        }
    }

    /// Replaces a legacy plain digest (`sha256:<hex>`) in `record` with the keyed digest of the
    /// same value; other records are left alone. Returns whether it changed anything.
    pub fn upgrade(&self, record: &mut Option<String>) -> bool {
        match record.as_deref() {
            Some(legacy) if is_legacy(legacy) => {
                *record = Some(self.wrap(legacy));
                true
            }
            _ => false,
        }
    }

    /// For single-use values (authorization codes): the record to compare `value`'s
    /// [`Digester::digest`] with. A record that cannot be read (another key) counts as this
    /// value's: some code was sent, and a code is never risked twice.
    pub fn recorded_code(&self, recorded: Option<&str>, value: &str) -> Option<String> {
        let recorded = recorded?;
        Some(match self.matches(recorded, value) {
            Match::Different => recorded.to_owned(),
            Match::Same | Match::Legacy | Match::Unknown => self.digest(value),
        })
    }

    /// A key for log fingerprints derived from this one: fingerprints stay stable across
    /// restarts and replicas, and cannot be recomputed without the key.
    pub fn fingerprint_key(&self) -> [u8; 32] {
        self.mac(b"alexa-skill-operator log fingerprint")
    }

    /// The keyed form of a legacy tag (or of any identity string).
    pub fn wrap(&self, tag: &str) -> String {
        let mac = self.mac(tag.as_bytes());
        format!("{PREFIX}{}:{}", self.key_id, hex::encode(mac))
    }

    fn mac(&self, data: &[u8]) -> [u8; 32] {
        // HMAC accepts keys of any length: new_from_slice cannot fail.
        match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(mut mac) => {
                mac.update(data);
                mac.finalize().into_bytes().into()
            }
            Err(_) => Sha256::digest(data).into(),
        }
    }
}

fn is_legacy(recorded: &str) -> bool {
    recorded
        .strip_prefix(LEGACY_PREFIX)
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Reads the digest key from its Secret in `namespace`, creating the Secret with a fresh random
/// key when it does not exist. Two replicas starting at once: one create wins, the other gets
/// a conflict and reads the winner's key.
pub async fn load_or_create(
    client: &kube::Client,
    namespace: &str,
) -> Result<Digester, DigestKeyError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let api_error = |source| DigestKeyError::Api {
        namespace: namespace.to_owned(),
        source,
    };
    if let Some(found) = api.get_opt(KEY_SECRET_NAME).await.map_err(api_error)? {
        return from_secret(&found, namespace);
    }
    let key: [u8; KEY_BYTES] = rand::random();
    match api.create(&PostParams::default(), &key_secret(&key)).await {
        Ok(_) => {
            tracing::info!(
                namespace,
                secret = KEY_SECRET_NAME,
                "created the digest key"
            );
            Ok(Digester::of_key(&key))
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let winner = api.get(KEY_SECRET_NAME).await.map_err(api_error)?;
            from_secret(&winner, namespace)
        }
        Err(e) => Err(api_error(e)),
    }
}

/// The digester of a key Secret.
pub fn from_secret(secret: &Secret, namespace: &str) -> Result<Digester, DigestKeyError> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(KEY_DATA_KEY))
        .and_then(|k| Digester::new(&k.0))
        .ok_or(DigestKeyError::BadKey {
            namespace: namespace.to_owned(),
        })
}

fn key_secret(key: &[u8]) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(KEY_SECRET_NAME.to_owned()),
            labels: Some(
                [(
                    "app.kubernetes.io/part-of".to_owned(),
                    "alexa-skill-operator".to_owned(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        data: Some([(KEY_DATA_KEY.to_owned(), ByteString(key.to_vec()))].into()),
        type_: Some("Opaque".to_owned()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_keyed_self_describing_and_stable() {
        let a = Digester::new(&[1; 32]).unwrap();
        let b = Digester::new(&[2; 32]).unwrap();
        let d = a.digest("hunter2-client-secret");
        assert!(
            d.starts_with(&format!("hmac-sha256:{}:", a.key_id())),
            "{d}"
        );
        assert_eq!(d.len(), "hmac-sha256:".len() + 8 + 1 + 64);
        assert_eq!(
            d,
            Digester::new(&[1; 32])
                .unwrap()
                .digest("hunter2-client-secret")
        );
        assert_ne!(a.key_id(), b.key_id());
        assert_ne!(
            d,
            b.digest("hunter2-client-secret"),
            "another key, another digest"
        );
        // Nobody without the key can test a guess: the plain digest appears nowhere.
        let plain = hash_tag("hunter2-client-secret");
        assert!(!d.contains(plain.trim_start_matches("sha256:")));
        assert!(Digester::new(&[1; 31]).is_none(), "short keys are refused");
    }

    #[test]
    fn matches_tells_same_legacy_different_and_unknown_apart() {
        let a = Digester::new(&[1; 32]).unwrap();
        let b = Digester::new(&[2; 32]).unwrap();
        let cases = [
            (a.digest("s1"), "s1", Match::Same),
            (a.digest("s1"), "s2", Match::Different),
            (hash_tag("s1"), "s1", Match::Legacy),
            (hash_tag("s1"), "s2", Match::Different),
            (b.digest("s1"), "s1", Match::Unknown),
            ("sha256:not-hex".to_string(), "s1", Match::Unknown),
            (String::new(), "s1", Match::Unknown),
        ];
        for (recorded, value, expected) in cases {
            assert_eq!(
                a.matches(&recorded, value),
                expected,
                "{recorded} vs {value}"
            );
        }
    }

    #[test]
    fn a_legacy_record_upgrades_to_the_keyed_digest_of_the_same_value() {
        let a = Digester::new(&[1; 32]).unwrap();
        let mut record = Some(hash_tag("s1"));
        assert!(a.upgrade(&mut record));
        assert_eq!(record, Some(a.digest("s1")));
        assert!(!a.upgrade(&mut record), "keyed records stay");
        let mut none = None;
        assert!(!a.upgrade(&mut none));
    }

    #[test]
    fn an_unreadable_code_record_counts_as_this_code() {
        let a = Digester::new(&[1; 32]).unwrap();
        let other_key = Digester::new(&[2; 32]).unwrap().digest("c1");
        let cases = [
            (None, None),
            (Some(a.digest("c1")), Some(a.digest("c1"))),
            (Some(hash_tag("c1")), Some(a.digest("c1"))),
            (Some(a.digest("c0")), Some(a.digest("c0"))),
            (Some(other_key), Some(a.digest("c1"))),
        ];
        for (recorded, expected) in cases {
            assert_eq!(
                a.recorded_code(recorded.as_deref(), "c1"),
                expected,
                "{recorded:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_key_is_created_once_and_read_back() {
        let server = kube_test_server::TestServer::new();
        let kube = server.client();
        let first = load_or_create(&kube, "op").await.unwrap();
        let second = load_or_create(&kube, "op").await.unwrap();
        assert_eq!(
            first.digest("x"),
            second.digest("x"),
            "the stored key is reused"
        );
        let api: Api<Secret> = Api::namespaced(kube.clone(), "op");
        // Two replicas at once: whoever loses the create reads the winner's key.
        api.delete(KEY_SECRET_NAME, &Default::default())
            .await
            .unwrap();
        let (a, b) = tokio::join!(load_or_create(&kube, "op"), load_or_create(&kube, "op"));
        assert_eq!(a.unwrap().digest("x"), b.unwrap().digest("x"));
        let mut broken = api.get(KEY_SECRET_NAME).await.unwrap();
        broken.data = Some([(KEY_DATA_KEY.to_owned(), ByteString(vec![1; 8]))].into());
        broken.metadata.managed_fields = None;
        api.replace(KEY_SECRET_NAME, &Default::default(), &broken)
            .await
            .unwrap();
        let err = load_or_create(&kube, "op").await.unwrap_err().to_string();
        assert!(err.contains("at least 32 bytes"), "{err}");
    }
}
