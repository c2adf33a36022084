//! Reading referenced Secrets and mapping Secret changes to the objects that use them.
//!
//! Secrets are watched metadata-only (`PartialObjectMetadata` list and watch requests: no secret
//! data reaches the operator or its cache, so memory does not grow with the cluster's Secrets);
//! the data is read with one GET when an object is reconciled.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
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

/// A Secret's data, read once per reconcile.
pub struct SecretData {
    namespace: String,
    name: String,
    secret: Secret,
}

impl SecretData {
    /// Reads a Secret by name.
    pub async fn read(
        client: &kube::Client,
        namespace: &str,
        name: &str,
    ) -> Result<Self, SecretError> {
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        match api.get_opt(name).await {
            Ok(Some(secret)) => Ok(Self {
                namespace: namespace.to_string(),
                name: name.to_string(),
                secret,
            }),
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

    /// One key's value as text (surrounding whitespace, such as a trailing newline from
    /// `kubectl create secret --from-file`, is removed).
    pub fn get(&self, key: &str) -> Result<String, SecretError> {
        let from_data = self
            .secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|bytes| String::from_utf8(bytes.0.clone()).ok());
        let from_string_data = self
            .secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(key))
            .cloned()
            .map(Some);
        let value = match from_data.or(from_string_data) {
            None => {
                return Err(SecretError::MissingKey {
                    namespace: self.namespace.clone(),
                    name: self.name.clone(),
                    key: key.to_string(),
                });
            }
            Some(value) => value,
        };
        match value.map(|v| v.trim().to_string()) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(SecretError::BadValue {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                key: key.to_string(),
            }),
        }
    }
}

/// Reads one key of a Secret.
pub async fn read_key(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<String, SecretError> {
    SecretData::read(client, namespace, name).await?.get(key)
}

/// Reads a Login with Amazon credentials Secret (keys client-id, client-secret, refresh-token).
pub async fn read_credentials(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<LwaCredentials, SecretError> {
    read_credentials_versioned(client, namespace, name)
        .await
        .map(|(creds, _)| creds)
}

/// Like [`read_credentials`], with the Secret's resourceVersion (what a credentials object's
/// status records so that its users notice a rotation, without recording anything secret).
pub async fn read_credentials_versioned(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<(LwaCredentials, Option<String>), SecretError> {
    let data = SecretData::read(client, namespace, name).await?;
    let creds = LwaCredentials::new(
        data.get(CLIENT_ID_KEY)?,
        data.get(CLIENT_SECRET_KEY)?,
        data.get(REFRESH_TOKEN_KEY)?,
    );
    Ok((creds, data.secret.metadata.resource_version.clone()))
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
        SecretData {
            namespace: "skills".into(),
            name: "lwa".into(),
            secret: Secret {
                data: Some(map),
                ..Secret::default()
            },
        }
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
