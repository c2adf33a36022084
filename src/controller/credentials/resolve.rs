//! Pure decisions about shared credentials: which credentials object an object uses (the key
//! stage conflicts and the in-use count go by), whether a ClusterAlexaCredentials admits a
//! namespace, and what a credentials object's status says. The I/O is in [`super`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};

use crate::controller::conditions::{Outcome, Reason};
use crate::controller::lifecycle::Retry;
use crate::crd::common::SecretRef;
use crate::crd::credentials::{CredentialsKind, CredentialsRef, InUse, MAX_NAMED_USERS};

/// How often a credentials object whose deletion waits for its users looks again (the users'
/// deletions also wake it; this covers one this replica did not see).
pub const IN_USE_RECHECK: Duration = Duration::from_secs(5);

/// The credentials an object's owner-mode calls are made with, as the spec names them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CredentialsKey {
    /// `credentialsSecretRef`: a Secret in the object's namespace.
    Secret {
        /// Namespace of the Secret (the object's).
        namespace: String,
        /// Name of the Secret.
        name: String,
    },
    /// `credentialsRef` to an AlexaCredentials (in the object's namespace).
    Namespaced {
        /// Namespace of the AlexaCredentials (the object's).
        namespace: String,
        /// Its name.
        name: String,
    },
    /// `credentialsRef` to a ClusterAlexaCredentials.
    Cluster {
        /// Its name.
        name: String,
    },
}

impl CredentialsKey {
    /// Whether this names a credentials object (not a plain Secret).
    pub fn is_object(&self) -> bool {
        !matches!(self, CredentialsKey::Secret { .. })
    }
}

impl fmt::Display for CredentialsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialsKey::Secret { namespace, name } => write!(f, "Secret {namespace}/{name}"),
            CredentialsKey::Namespaced { namespace, name } => {
                write!(f, "AlexaCredentials {namespace}/{name}")
            }
            CredentialsKey::Cluster { name } => write!(f, "ClusterAlexaCredentials {name}"),
        }
    }
}

/// The credentials an object in `namespace` uses: its credentialsRef if set, else its
/// credentialsSecretRef (`None`: neither, e.g. customer mode).
pub fn key_of(
    namespace: &str,
    secret_ref: Option<&SecretRef>,
    credentials_ref: Option<&CredentialsRef>,
) -> Option<CredentialsKey> {
    match (credentials_ref, secret_ref) {
        (Some(r), _) => Some(match r.kind {
            CredentialsKind::AlexaCredentials => CredentialsKey::Namespaced {
                namespace: namespace.to_string(),
                name: r.name.clone(),
            },
            CredentialsKind::ClusterAlexaCredentials => CredentialsKey::Cluster {
                name: r.name.clone(),
            },
        }),
        (None, Some(s)) => Some(CredentialsKey::Secret {
            namespace: namespace.to_string(),
            name: s.name.clone(),
        }),
        (None, None) => None,
    }
}

/// Why an object may not use the credentials it references.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The credentials object does not exist.
    #[error(
        "{key} not found; create it or fix spec.credentialsRef (the object is retried when it appears)"
    )]
    NotFound {
        /// What was referenced.
        key: CredentialsKey,
    },
    /// A ClusterAlexaCredentials' allowedNamespaces does not select the object's namespace.
    #[error(
        "ClusterAlexaCredentials {name} does not allow namespace {namespace}: its spec.allowedNamespaces selector ({selector}) does not match the namespace's labels; label the namespace or ask the credentials' owner to widen the selector"
    )]
    NotAllowed {
        /// The ClusterAlexaCredentials.
        name: String,
        /// The refused namespace.
        namespace: String,
        /// The selector, as kubectl's `-l` syntax.
        selector: String,
    },
    /// The selector cannot be evaluated (an unknown operator, which the CRD schema cannot
    /// rule out).
    #[error(
        "ClusterAlexaCredentials {name} has an unusable spec.allowedNamespaces ({error}); no namespace may use it until it is fixed"
    )]
    BadSelector {
        /// The ClusterAlexaCredentials.
        name: String,
        /// What is wrong with the selector.
        error: String,
    },
}

impl Refusal {
    /// The condition users of the refused object see, and when it is looked at again. Slow:
    /// the credentials objects' watch brings it back on their changes, the slow retry covers
    /// namespace label changes (Namespaces are not watched).
    pub fn outcome(&self) -> (Outcome, Retry) {
        let reason = match self {
            Refusal::NotFound { .. } => Reason::CredentialsNotFound,
            Refusal::NotAllowed { .. } | Refusal::BadSelector { .. } => Reason::NamespaceNotAllowed,
        };
        (Outcome::stalled(reason, self.to_string()), Retry::Slow)
    }
}

/// A selector as kubectl's `-l` syntax; `{}` (every namespace) reads "everything".
pub fn describe_selector(selector: &LabelSelector) -> String {
    match Selector::try_from(selector.clone()) {
        Ok(s) if s.selects_all() => "everything".to_string(),
        Ok(s) => s.to_string(),
        Err(e) => format!("unusable: {e}"),
    }
}

/// Whether ClusterAlexaCredentials `name` with `allowed` admits `namespace`, whose labels are
/// `labels` (`None`: the namespace could not be found, so nothing selects it).
pub fn admit(
    name: &str,
    allowed: &LabelSelector,
    namespace: &str,
    labels: Option<&BTreeMap<String, String>>,
) -> Result<(), Refusal> {
    let selector = Selector::try_from(allowed.clone()).map_err(|e| Refusal::BadSelector {
        name: name.to_string(),
        error: e.to_string(),
    })?;
    let empty = BTreeMap::new();
    if labels.is_some() && selector.matches(labels.unwrap_or(&empty)) {
        return Ok(());
    }
    Err(Refusal::NotAllowed {
        name: name.to_string(),
        namespace: namespace.to_string(),
        selector: describe_selector(allowed),
    })
}

/// The in-use summary of a credentials object: how many users, and the first
/// [`MAX_NAMED_USERS`] of them sorted ("Kind namespace/name").
pub fn in_use(users: impl IntoIterator<Item = String>) -> InUse {
    let mut names: Vec<String> = users.into_iter().collect();
    names.sort();
    names.dedup();
    let count = u32::try_from(names.len()).unwrap_or(u32::MAX);
    names.truncate(MAX_NAMED_USERS);
    InUse { count, names }
}

/// What a credentials object being deleted does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deletion {
    /// Nothing uses it: the finalizer goes.
    Release,
    /// Objects still use it: the deletion waits, and the condition names them.
    Wait(Outcome),
}

/// The deletion decision for `credentials` (e.g. "ClusterAlexaCredentials shared") given its
/// users, as listed from the API server.
pub fn deletion(credentials: &str, users: &[String]) -> Deletion {
    if users.is_empty() {
        return Deletion::Release;
    }
    let summary = in_use(users.iter().cloned());
    let more = summary.count as usize - summary.names.len();
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    Deletion::Wait(Outcome::stalled(
        Reason::InUse,
        format!(
            "deletion of {credentials} waits: {} object(s) still use it: {}{tail}; delete them or point their spec.credentialsRef elsewhere",
            summary.count,
            summary.names.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn selector(match_labels: &[(&str, &str)], exprs: &[(&str, &str, &[&str])]) -> LabelSelector {
        LabelSelector {
            match_labels: (!match_labels.is_empty()).then(|| labels(match_labels)),
            match_expressions: (!exprs.is_empty()).then(|| {
                exprs
                    .iter()
                    .map(|(key, op, values)| LabelSelectorRequirement {
                        key: key.to_string(),
                        operator: op.to_string(),
                        values: Some(values.iter().map(|v| v.to_string()).collect()),
                    })
                    .collect()
            }),
        }
    }

    #[test]
    fn the_selector_decides_which_namespaces_may_use_cluster_credentials() {
        let team_a = selector(&[("team", "a")], &[]);
        let not_sandbox = selector(&[], &[("env", "NotIn", &["sandbox"])]);
        let everything = selector(&[], &[]);
        type Case<'a> = (&'a LabelSelector, Option<BTreeMap<String, String>>, bool);
        let cases: [Case<'_>; 7] = [
            (&team_a, Some(labels(&[("team", "a")])), true),
            (&team_a, Some(labels(&[("team", "b")])), false),
            (&team_a, Some(labels(&[])), false),
            (&not_sandbox, Some(labels(&[("env", "prod")])), true),
            (&not_sandbox, Some(labels(&[("env", "sandbox")])), false),
            (&everything, Some(labels(&[])), true),
            (&everything, None, false),
        ];
        for (sel, ns_labels, allowed) in cases {
            let got = admit("shared", sel, "ns1", ns_labels.as_ref());
            assert_eq!(got.is_ok(), allowed, "{sel:?} {ns_labels:?}: {got:?}");
        }
        let refusal = admit("shared", &team_a, "ns1", Some(&labels(&[]))).unwrap_err();
        let (outcome, retry) = refusal.outcome();
        assert_eq!(outcome.reason, Reason::NamespaceNotAllowed);
        assert_eq!(retry, Retry::Slow);
        assert!(
            outcome.message.contains("ClusterAlexaCredentials shared")
                && outcome.message.contains("namespace ns1")
                && outcome.message.contains("(team=a)"),
            "{}",
            outcome.message
        );
        let bad = selector(&[], &[("env", "Sometimes", &["x"])]);
        let (outcome, _) = admit("shared", &bad, "ns1", Some(&labels(&[])))
            .unwrap_err()
            .outcome();
        assert_eq!(outcome.reason, Reason::NamespaceNotAllowed);
        assert!(outcome.message.contains("unusable"), "{}", outcome.message);
    }

    #[test]
    fn the_reference_wins_over_the_secret_and_names_the_object() {
        let secret = SecretRef { name: "lwa".into() };
        let cluster = CredentialsRef {
            kind: CredentialsKind::ClusterAlexaCredentials,
            name: "shared".into(),
        };
        let local = CredentialsRef {
            kind: CredentialsKind::AlexaCredentials,
            name: "team".into(),
        };
        let key = |s, r| key_of("ns1", s, r).map(|k| k.to_string());
        assert_eq!(key(Some(&secret), None).as_deref(), Some("Secret ns1/lwa"));
        assert_eq!(
            key(None, Some(&cluster)).as_deref(),
            Some("ClusterAlexaCredentials shared")
        );
        assert_eq!(
            key(None, Some(&local)).as_deref(),
            Some("AlexaCredentials ns1/team")
        );
        assert_eq!(key(None, None), None);
        // Two namespaces using one ClusterAlexaCredentials have one key; with their own
        // AlexaCredentials of the same name they do not.
        assert_eq!(
            key_of("a", None, Some(&cluster)),
            key_of("b", None, Some(&cluster))
        );
        assert_ne!(
            key_of("a", None, Some(&local)),
            key_of("b", None, Some(&local))
        );
    }

    #[test]
    fn deletion_waits_for_users_and_names_the_first_ten() {
        assert_eq!(deletion("AlexaCredentials ns/x", &[]), Deletion::Release);
        let users: Vec<String> = (0..12)
            .map(|i| format!("SkillEnablement ns/e{i:02}"))
            .collect();
        let Deletion::Wait(outcome) = deletion("AlexaCredentials ns/x", &users) else {
            panic!("in use")
        };
        assert_eq!(outcome.reason, Reason::InUse);
        assert!(
            outcome.message.contains("12 object(s)")
                && outcome.message.contains("SkillEnablement ns/e00")
                && outcome.message.contains("SkillEnablement ns/e09")
                && !outcome.message.contains("e10")
                && outcome.message.contains("and 2 more"),
            "{}",
            outcome.message
        );
        let summary = in_use(["b".to_string(), "a".to_string(), "a".to_string()]);
        assert_eq!(summary.count, 2);
        assert_eq!(summary.names, vec!["a", "b"]);
    }
}
