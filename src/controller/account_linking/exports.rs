//! `spec.exports.configMapName`: the redirect URLs Amazon assigned, kept in a ConfigMap owned
//! by the SkillAccountLinking so tools (an OAuth server's configuration job, a GitOps check)
//! can read them without parsing status.
//!
//! The decisions are pure ([`desired_data`], [`decide`], [`combine`]); [`sync`] is the thin I/O
//! around them: one GET per reconcile, and a write only when the content differs, so a steady
//! state makes no writes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};

use crate::controller::conditions::{Outcome, Phase, Reason};
use crate::controller::context::FIELD_MANAGER;
use crate::controller::lifecycle::{Done, Failure, Note, Retry};
use crate::crd::account_linking::SkillAccountLinking;

/// Key holding the redirect URLs, one per line.
pub const REDIRECT_URLS_KEY: &str = "redirect-urls";
/// Key holding the redirect URLs as a JSON array of strings.
pub const REDIRECT_URLS_JSON_KEY: &str = "redirect-urls.json";
/// Label on every exported ConfigMap, so `kubectl get cm -l` finds them.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// Why the ConfigMap could not be kept; the message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A ConfigMap of that name exists and this object does not own it.
    #[error(
        "ConfigMap {namespace}/{name} (spec.exports.configMapName) exists and is not owned by this SkillAccountLinking{owner}; the operator does not overwrite it. Delete or rename that ConfigMap, or choose another spec.exports.configMapName"
    )]
    NotOwned {
        /// Namespace of the ConfigMap.
        namespace: String,
        /// Its name.
        name: String,
        /// " (owned by Kind/name)" or empty.
        owner: String,
    },
    /// The Kubernetes API failed; retried with back-off.
    #[error("cannot {doing} ConfigMap {namespace}/{name} (spec.exports.configMapName): {source}")]
    Api {
        /// read, create or update.
        doing: &'static str,
        /// Namespace of the ConfigMap.
        namespace: String,
        /// Its name.
        name: String,
        /// Underlying error.
        #[source]
        source: kube::Error,
    },
}

impl From<ExportError> for Failure {
    fn from(err: ExportError) -> Failure {
        match err {
            ExportError::NotOwned { .. } => Failure::new(
                Outcome::stalled(Reason::ExportConflict, err.to_string()),
                Retry::Slow,
            ),
            ExportError::Api { .. } => Failure::new(
                Outcome::progressing(Reason::ApiUnavailable, err.to_string()),
                Retry::Backoff { retry_after: None },
            ),
        }
    }
}

/// The ConfigMap's data for these redirect URLs.
pub fn desired_data(redirect_urls: &[String]) -> BTreeMap<String, String> {
    let lines: String = redirect_urls.iter().map(|u| format!("{u}\n")).collect();
    let json = serde_json::to_string(redirect_urls).unwrap_or_else(|_| "[]".to_owned());
    BTreeMap::from([
        (REDIRECT_URLS_KEY.to_owned(), lines),
        (REDIRECT_URLS_JSON_KEY.to_owned(), json),
    ])
}

/// Checks `spec.exports.configMapName` is a Kubernetes object name (lower-case RFC 1123
/// subdomain), so a bad name stalls as InvalidSpec instead of failing every create.
pub fn validate_name(name: &str) -> Result<(), String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "invalid spec: spec.exports.configMapName {name:?} is not a ConfigMap name (lower-case letters, digits, '-' and '.', at most 253 characters)"
        ))
    }
}

/// What to do with the ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportAction {
    /// It does not exist: create it, owned by the object.
    Create,
    /// Owned and different: write the data, conditional on the resourceVersion read.
    Update {
        /// resourceVersion of the ConfigMap as read.
        resource_version: Option<String>,
    },
    /// Owned and already right: nothing to write.
    UpToDate,
    /// Someone else's: refuse. Holds " (owned by Kind/name)" or "".
    Refuse(String),
}

/// Decides from the ConfigMap as read (`None`: absent), the object's uid and the desired data.
/// Only a ConfigMap whose ownerReferences name this object (by uid) is written; any other is
/// left alone, also one owned by an earlier object of the same name.
pub fn decide(
    existing: Option<&ConfigMap>,
    owner_uid: &str,
    data: &BTreeMap<String, String>,
) -> ExportAction {
    let Some(cm) = existing else {
        return ExportAction::Create;
    };
    let owners = cm.metadata.owner_references.as_deref().unwrap_or_default();
    if !owners.iter().any(|o| o.uid == owner_uid) {
        let owner = owners
            .iter()
            .find(|o| o.controller == Some(true))
            .or(owners.first())
            .map(|o| format!(" (owned by {}/{})", o.kind, o.name))
            .unwrap_or_default();
        return ExportAction::Refuse(owner);
    }
    let current = cm.data.clone().unwrap_or_default();
    if &current == data && cm.binary_data.as_ref().is_none_or(BTreeMap::is_empty) {
        ExportAction::UpToDate
    } else {
        ExportAction::Update {
            resource_version: cm.metadata.resource_version.clone(),
        }
    }
}

/// The outcome of a reconcile with its export: a failed export replaces an outcome that says
/// all is well (Ready, or Observe mode's DriftDetected) and keeps its events; a reconcile that
/// already reports trouble keeps reporting that. A written ConfigMap adds its event.
pub fn combine(done: Done, export: Result<Option<Note>, Failure>) -> Done {
    match export {
        Ok(Some(note)) => done.with_note(note),
        Ok(None) => done,
        Err(failure) if matches!(done.outcome.phase, Phase::Ready | Phase::Idle) => Done {
            outcome: failure.outcome,
            retry: failure.retry,
            notes: done.notes,
        },
        Err(_) => done,
    }
}

/// Keeps the exported ConfigMap of `obj` (if `spec.exports` asks for one) holding
/// `redirect_urls`. Returns the event of a write, `None` when nothing was written.
pub async fn sync(
    kube: &kube::Client,
    obj: &SkillAccountLinking,
    redirect_urls: &[String],
) -> Result<Option<Note>, ExportError> {
    let Some(exports) = &obj.spec.exports else {
        return Ok(None);
    };
    let namespace = obj.namespace().unwrap_or_default();
    let name = exports.config_map_name.as_str();
    let api: Api<ConfigMap> = Api::namespaced(kube.clone(), &namespace);
    let api_error = |doing, source| ExportError::Api {
        doing,
        namespace: namespace.clone(),
        name: name.to_owned(),
        source,
    };
    let existing = api.get_opt(name).await.map_err(|e| api_error("read", e))?;
    let data = desired_data(redirect_urls);
    let uid = obj.uid().unwrap_or_default();
    let verb = match decide(existing.as_ref(), &uid, &data) {
        ExportAction::UpToDate => return Ok(None),
        ExportAction::Refuse(owner) => {
            return Err(ExportError::NotOwned {
                namespace: namespace.clone(),
                name: name.to_owned(),
                owner,
            });
        }
        ExportAction::Create => {
            let cm = owned_config_map(obj, name, data);
            api.create(&PostParams::default(), &cm)
                .await
                .map_err(|e| api_error("create", e))?;
            "created"
        }
        ExportAction::Update { resource_version } => {
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": resource_version},
                "data": data,
                "binaryData": null,
            });
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PatchParams::default()
            };
            api.patch(name, &params, &Patch::Merge(&patch))
                .await
                .map_err(|e| api_error("update", e))?;
            "updated"
        }
    };
    Ok(Some(Note::normal(
        "Exported",
        "ExportRedirectUrls",
        format!(
            "{verb} ConfigMap {namespace}/{name} with the {} redirect URL(s) Amazon assigned",
            redirect_urls.len()
        ),
    )))
}

/// A new ConfigMap `name` holding `data`, owned by `obj` (garbage-collected with it).
fn owned_config_map(
    obj: &SkillAccountLinking,
    name: &str,
    data: BTreeMap<String, String>,
) -> ConfigMap {
    let owner = OwnerReference {
        api_version: SkillAccountLinking::api_version(&()).into_owned(),
        kind: SkillAccountLinking::kind(&()).into_owned(),
        name: obj.name_any(),
        uid: obj.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: None,
    };
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: obj.namespace(),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.to_owned(),
                FIELD_MANAGER.to_owned(),
            )])),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn config_map_names_are_checked() {
        for good in ["urls", "weather-redirect-urls", "a.b-c", "x1"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        let long = "x".repeat(254);
        for bad in ["", "Urls", "-urls", "urls-", "a..b", "a_b", long.as_str()] {
            let err = validate_name(bad).unwrap_err();
            assert!(err.contains("spec.exports.configMapName"), "{err}");
        }
    }

    #[test]
    fn data_has_one_url_per_line_and_a_json_array() {
        let data = desired_data(&urls(&["https://a/x", "https://b/y"]));
        assert_eq!(data[REDIRECT_URLS_KEY], "https://a/x\nhttps://b/y\n");
        assert_eq!(
            data[REDIRECT_URLS_JSON_KEY],
            r#"["https://a/x","https://b/y"]"#
        );
        let empty = desired_data(&[]);
        assert_eq!(empty[REDIRECT_URLS_KEY], "");
        assert_eq!(empty[REDIRECT_URLS_JSON_KEY], "[]");
    }

    fn config_map(owner_uids: &[(&str, bool)], data: &BTreeMap<String, String>) -> ConfigMap {
        let owners = owner_uids
            .iter()
            .map(|(uid, controller)| OwnerReference {
                api_version: "v1".into(),
                kind: "Other".into(),
                name: format!("name-{uid}"),
                uid: uid.to_string(),
                controller: Some(*controller),
                block_owner_deletion: None,
            })
            .collect::<Vec<_>>();
        ConfigMap {
            metadata: ObjectMeta {
                resource_version: Some("7".into()),
                owner_references: (!owners.is_empty()).then_some(owners),
                ..ObjectMeta::default()
            },
            data: Some(data.clone()),
            ..ConfigMap::default()
        }
    }

    #[test]
    fn only_an_owned_config_map_is_written_and_only_when_it_differs() {
        let want = desired_data(&urls(&["https://a/x"]));
        let stale = desired_data(&urls(&["https://old"]));
        let update = ExportAction::Update {
            resource_version: Some("7".into()),
        };
        // (ConfigMap as read, expected)
        let cases = [
            (None, ExportAction::Create),
            (
                Some(config_map(&[("me", true)], &want)),
                ExportAction::UpToDate,
            ),
            (Some(config_map(&[("me", true)], &stale)), update.clone()),
            // Owned but not as controller (someone added us): still ours to keep.
            (
                Some(config_map(&[("x", true), ("me", false)], &stale)),
                update,
            ),
            (
                Some(config_map(&[], &want)),
                ExportAction::Refuse(String::new()),
            ),
            (
                Some(config_map(&[("earlier-object", true)], &want)),
                ExportAction::Refuse(" (owned by Other/name-earlier-object)".into()),
            ),
        ];
        for (existing, expected) in cases {
            assert_eq!(
                decide(existing.as_ref(), "me", &want),
                expected,
                "{existing:?}"
            );
        }
    }

    #[test]
    fn a_failed_export_replaces_only_an_all_is_well_outcome() {
        let conflict = || {
            Failure::from(ExportError::NotOwned {
                namespace: "ns".into(),
                name: "urls".into(),
                owner: String::new(),
            })
        };
        let created = Note::normal("Created", "UpdateAccountLinking", "created");
        let ready = Done::ready("fine").with_note(created.clone());
        let drift = Done::new(Outcome::idle(Reason::DriftDetected, "d"), Retry::Resync);
        let failing = Done::new(
            Outcome::progressing(Reason::ApiUnavailable, "503"),
            Retry::Backoff { retry_after: None },
        );
        // (done, export, expected reason, expected retry, expected event reasons)
        let exported = Note::normal("Exported", "ExportRedirectUrls", "created");
        let cases = [
            (
                ready.clone(),
                Ok(Some(exported)),
                Reason::Synced,
                Retry::Resync,
                vec!["Created", "Exported"],
            ),
            (
                ready.clone(),
                Ok(None),
                Reason::Synced,
                Retry::Resync,
                vec!["Created"],
            ),
            (
                ready,
                Err(conflict()),
                Reason::ExportConflict,
                Retry::Slow,
                vec!["Created"],
            ),
            (
                drift,
                Err(conflict()),
                Reason::ExportConflict,
                Retry::Slow,
                vec![],
            ),
            (
                failing,
                Err(conflict()),
                Reason::ApiUnavailable,
                Retry::Backoff { retry_after: None },
                vec![],
            ),
        ];
        for (done, export, reason, retry, notes) in cases {
            let out = combine(done, export);
            assert_eq!(out.outcome.reason, reason);
            assert_eq!(out.retry, retry);
            let got: Vec<&str> = out.notes.iter().map(|n| n.reason).collect();
            assert_eq!(got, notes);
        }
        let message = conflict().outcome.message;
        assert!(
            message.contains("ConfigMap ns/urls") && message.contains("spec.exports.configMapName"),
            "{message}"
        );
        assert_eq!(conflict().outcome.phase, Phase::Stalled);
    }
}
