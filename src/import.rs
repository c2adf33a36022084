//! `alexa-skill-operator import`: prints YAML for objects that adopt what already exists on
//! Amazon (a skill stage's account linking, and its enablement for the skill owner), in
//! `managementPolicy: Observe`, so applying them changes nothing and `status.drift` shows
//! whether they match before anyone switches to Manage.
//!
//! [`render`] is pure (Amazon's answers in, YAML text out); [`run`] is the thin I/O around it:
//! credentials from the ASK CLI's environment variables or a Secret, then two GETs.

use std::collections::BTreeMap;

use crate::alexa::{AccountLinkingInfo, AlexaClient, AlexaError, ClientConfig, LwaCredentials};
use crate::cli::ImportArgs;
use crate::controller::secrets::{SecretError, read_credentials};
use crate::crd::account_linking::{AccountLinkingSpec, AccountLinkingType};
use crate::crd::common::Stage;

/// The environment variables the ASK CLI reads its credentials from, in the order
/// [`LwaCredentials::new`] takes them: client id, client secret ("confirmation"), refresh token.
pub const ASK_ENV: [&str; 3] = [
    "ASK_LWA_CLIENT_ID",
    "ASK_LWA_CLIENT_CONFIRMATION",
    "ASK_REFRESH_TOKEN",
];

/// Name of the credentials Secret the output refers to when the credentials came from the
/// environment (the user creates it; its values are never printed).
pub const PLACEHOLDER_CREDENTIALS_SECRET: &str = "lwa-credentials";

/// Why an import failed; the message says what to do and never contains a credential.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Neither `--credentials-secret` nor all ASK CLI variables are set (a usage error: exit 2).
    #[error(
        "no credentials: set {missing} (the ASK CLI's environment variables), or pass --credentials-secret NAMESPACE/NAME"
    )]
    NoCredentials {
        /// The missing variables, comma-separated.
        missing: String,
    },
    /// The kubeconfig could not be loaded (for `--credentials-secret`).
    #[error("cannot use the kubeconfig to read --credentials-secret: {0}")]
    KubeConfig(#[source] kube::Error),
    /// The credentials Secret could not be read.
    #[error("{0}")]
    Secret(#[from] SecretError),
    /// Amazon refused or failed.
    #[error("cannot {doing}: {source}")]
    Alexa {
        /// What was being read.
        doing: &'static str,
        /// Amazon's error (never holds a credential).
        #[source]
        source: AlexaError,
    },
    /// Nothing to import: no account linking and the stage is not enabled for the owner.
    #[error(
        "skill {skill_id} stage {stage} has no account linking and is not enabled for the skill owner on Amazon: nothing to import"
    )]
    Nothing {
        /// The skill.
        skill_id: String,
        /// The stage.
        stage: Stage,
    },
    /// Amazon's account linking lacks a field every object needs.
    #[error(
        "Amazon's account linking of skill {skill_id} stage {stage} has no {field}; set it in the developer console or write the object by hand"
    )]
    Incomplete {
        /// The skill.
        skill_id: String,
        /// The stage.
        stage: Stage,
        /// The missing field.
        field: &'static str,
    },
    /// The YAML could not be rendered (a bug).
    #[error("cannot render YAML: {0}")]
    Render(String),
}

impl ImportError {
    /// Whether the command line was at fault (exit 2) rather than the world (exit 1).
    pub fn is_usage(&self) -> bool {
        matches!(self, ImportError::NoCredentials { .. })
    }
}

/// What was read from Amazon, and how the output should refer to things.
#[derive(Debug, Clone)]
pub struct Imported {
    /// Skill ID.
    pub skill_id: String,
    /// Stage.
    pub stage: Stage,
    /// Name of both objects.
    pub name: String,
    /// Namespace of both objects (`None`: left to `kubectl -n`).
    pub namespace: Option<String>,
    /// Credentials Secret the objects reference.
    pub credentials_secret: String,
    /// Whether that Secret is a placeholder to create (credentials came from the environment).
    pub credentials_placeholder: bool,
    /// Amazon's account linking, if any.
    pub linking: Option<AccountLinkingInfo>,
    /// Whether the stage is enabled for the skill owner.
    pub enabled: bool,
}

/// The default object name: `skill-<last part of the skill ID>-<stage>`, cut to a valid name.
pub fn default_name(skill_id: &str, stage: Stage) -> String {
    let tail = skill_id.rsplit('.').next().unwrap_or(skill_id);
    let clean: String = tail
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    let clean = clean.trim_matches('-');
    if clean.is_empty() {
        format!("skill-{stage}")
    } else {
        format!("skill-{clean}-{stage}")
    }
}

/// Name of the client secret Secret the output's `clientSecretRef` points at.
pub fn client_secret_placeholder(name: &str) -> String {
    format!("{name}-oauth-client")
}

/// The spec fields that reproduce Amazon's account linking: what Amazon returns, except the
/// redirect URLs (left to Amazon) and the write-only fields (`clientSecret`: a placeholder
/// reference; `skipOnEnablement`: unset).
pub fn spec_from_amazon(
    info: &AccountLinkingInfo,
    imported: &Imported,
) -> Result<AccountLinkingSpec, ImportError> {
    let missing = |field| ImportError::Incomplete {
        skill_id: imported.skill_id.clone(),
        stage: imported.stage,
        field,
    };
    let type_ = info.type_.ok_or_else(|| missing("type"))?;
    let client_secret_ref =
        (type_ == AccountLinkingType::AuthCode).then(|| crate::crd::common::SecretKeyRef {
            name: client_secret_placeholder(&imported.name),
            key: "client-secret".into(),
        });
    Ok(AccountLinkingSpec {
        type_,
        authorization_url: info
            .authorization_url
            .clone()
            .ok_or_else(|| missing("authorizationUrl"))?,
        domains: info.domains.clone(),
        client_id: info.client_id.clone().ok_or_else(|| missing("clientId"))?,
        scopes: info.scopes.clone(),
        access_token_url: info.access_token_url.clone(),
        client_secret_ref,
        access_token_scheme: info.access_token_scheme,
        default_token_expiration_in_seconds: info.default_token_expiration_in_seconds,
        redirect_urls: Vec::new(),
        authorization_urls_by_platform: info.authorization_urls_by_platform.clone(),
        skip_on_enablement: None,
        voice_forward_account_linking: info.voice_forward_account_linking,
    })
}

/// The YAML stream to print: a header comment, then a SkillAccountLinking (if Amazon has an
/// account linking) and a SkillEnablement (if the stage is enabled for the owner), both in
/// Observe mode. No credential is in it: Amazon never returns the client secret, and the LWA
/// credentials are only referenced by Secret name.
pub fn render(imported: &Imported) -> Result<String, ImportError> {
    if imported.linking.is_none() && !imported.enabled {
        return Err(ImportError::Nothing {
            skill_id: imported.skill_id.clone(),
            stage: imported.stage,
        });
    }
    let mut out = header(imported);
    if let Some(info) = &imported.linking {
        let spec = spec_from_amazon(info, imported)?;
        let mut object = object(imported, "SkillAccountLinking");
        object["spec"]["accountLinking"] =
            serde_json::to_value(&spec).map_err(|e| ImportError::Render(e.to_string()))?;
        out.push_str("---\n");
        out.push_str(&annotate(&yaml(&object)?, imported, info));
    }
    if imported.enabled {
        out.push_str("---\n");
        out.push_str(&yaml(&object(imported, "SkillEnablement"))?);
    }
    Ok(out)
}

fn header(imported: &Imported) -> String {
    let mut lines = vec![
        format!(
            "# Imported from Amazon: skill {} stage {}.",
            imported.skill_id, imported.stage
        ),
        "# managementPolicy: Observe reads and compares only; after `kubectl apply`, check that"
            .into(),
        "# status.drift is empty (kubectl get sal -o yaml), then set managementPolicy: Manage."
            .into(),
    ];
    if imported.credentials_placeholder {
        lines.push(format!(
            "# Create Secret {} (keys client-id, client-secret, refresh-token) from the ASK CLI's",
            imported.credentials_secret
        ));
        lines.push("# credentials before applying; they are not printed here.".into());
    }
    if !imported.enabled {
        lines.push(format!(
            "# Stage {} is not enabled for the skill owner: no SkillEnablement.",
            imported.stage
        ));
    }
    if imported.linking.is_none() {
        lines.push(format!(
            "# Stage {} has no account linking on Amazon: no SkillAccountLinking.",
            imported.stage
        ));
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// apiVersion, kind, metadata and the spec fields both kinds share.
fn object(imported: &Imported, kind: &str) -> serde_json::Value {
    let mut metadata = serde_json::json!({ "name": imported.name });
    if let Some(ns) = &imported.namespace {
        metadata["namespace"] = ns.clone().into();
    }
    serde_json::json!({
        "apiVersion": "alexa.operator.dev/v1alpha1",
        "kind": kind,
        "metadata": metadata,
        "spec": {
            "skillId": imported.skill_id,
            "stage": imported.stage,
            "credentialsSecretRef": {"name": imported.credentials_secret},
            "managementPolicy": "Observe",
        }
    })
}

fn yaml(value: &serde_json::Value) -> Result<String, ImportError> {
    serde_saphyr::to_string(value).map_err(|e| ImportError::Render(e.to_string()))
}

/// Comments on the lines that need a human: the client secret placeholder, and the redirect
/// URLs Amazon assigned (left out of the spec: Amazon chooses them).
fn annotate(text: &str, imported: &Imported, info: &AccountLinkingInfo) -> String {
    let mut notes: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    notes.insert(
        "clientSecretRef:",
        vec![
            "Amazon never returns the client secret, so it cannot be read back: create".into(),
            format!(
                "Secret {} with key client-secret holding the secret Alexa uses at your token endpoint.",
                client_secret_placeholder(&imported.name)
            ),
        ],
    );
    let mut redirect = vec!["redirectUrls are left to Amazon; it currently assigns:".to_owned()];
    redirect.extend(info.redirect_urls.iter().map(|u| format!("  {u}")));
    notes.insert("accountLinking:", redirect);
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if let Some((_, comment)) = notes.iter().find(|(key, _)| trimmed.starts_with(**key)) {
            for c in comment {
                out.push_str(&format!("{indent}# {c}\n"));
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Where the credentials come from: a Secret (`--credentials-secret`) or the environment.
async fn credentials(
    args: &ImportArgs,
    kube: Option<kube::Client>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LwaCredentials, ImportError> {
    if let Some((ns, name)) = &args.credentials_secret {
        let client = match kube {
            Some(client) => client,
            None => kube::Client::try_default()
                .await
                .map_err(ImportError::KubeConfig)?,
        };
        let secrets = crate::controller::secrets::SecretReader::new(client);
        return Ok(read_credentials(&secrets, ns, name).await?);
    }
    let values: Vec<Option<String>> = ASK_ENV
        .iter()
        .map(|k| env(k).filter(|v| !v.trim().is_empty()))
        .collect();
    match values.as_slice() {
        [Some(id), Some(secret), Some(token)] => Ok(LwaCredentials::new(
            id.trim().to_owned(),
            secret.trim().to_owned(),
            token.trim().to_owned(),
        )),
        _ => Err(ImportError::NoCredentials {
            missing: ASK_ENV
                .iter()
                .zip(&values)
                .filter(|(_, v)| v.is_none())
                .map(|(k, _)| *k)
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Reads Amazon's state and renders it. `kube` is the client for `--credentials-secret`
/// (`None`: from the kubeconfig); `env` looks up the ASK CLI's variables.
pub async fn run(
    args: &ImportArgs,
    kube: Option<kube::Client>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ImportError> {
    let creds = credentials(args, kube, env).await?;
    let config = ClientConfig {
        smapi_url: args.smapi_url.trim_end_matches('/').to_owned(),
        lwa_url: args.lwa_url.clone(),
        ..ClientConfig::default()
    };
    let alexa = AlexaClient::new(config).map_err(|source| ImportError::Alexa {
        doing: "set up the Alexa client",
        source,
    })?;
    let (skill, stage) = (args.skill_id.as_str(), args.stage);
    let linking = alexa
        .get_account_linking(&creds, skill, stage)
        .await
        .map_err(|source| ImportError::Alexa {
            doing: "read the account linking from Amazon",
            source,
        })?;
    let enabled = alexa
        .stage_enabled(&creds, skill, stage)
        .await
        .map_err(|source| ImportError::Alexa {
            doing: "read the stage enablement from Amazon",
            source,
        })?;
    let (namespace, credentials_secret, credentials_placeholder) = match &args.credentials_secret {
        Some((ns, name)) => (Some(ns.clone()), name.clone(), false),
        None => (None, PLACEHOLDER_CREDENTIALS_SECRET.to_owned(), true),
    };
    render(&Imported {
        skill_id: args.skill_id.clone(),
        stage,
        name: args
            .name
            .clone()
            .unwrap_or_else(|| default_name(skill, stage)),
        namespace: args.namespace.clone().or(namespace),
        credentials_secret,
        credentials_placeholder,
        linking: linking.map(|v| v.value),
        enabled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::account_linking::AccessTokenScheme;

    fn imported(linking: Option<AccountLinkingInfo>, enabled: bool) -> Imported {
        Imported {
            skill_id: "amzn1.ask.skill.ABC-123".into(),
            stage: Stage::Development,
            name: "weather".into(),
            namespace: Some("skills".into()),
            credentials_secret: "lwa".into(),
            credentials_placeholder: false,
            linking,
            enabled,
        }
    }

    fn auth_code() -> AccountLinkingInfo {
        AccountLinkingInfo {
            type_: Some(AccountLinkingType::AuthCode),
            authorization_url: Some("https://auth.example.com/authorize".into()),
            client_id: Some("alexa".into()),
            access_token_url: Some("https://auth.example.com/token".into()),
            access_token_scheme: Some(AccessTokenScheme::HttpBasic),
            scopes: vec!["profile".into()],
            redirect_urls: vec!["https://pitangui.amazon.com/api/skill/link/V".into()],
            ..AccountLinkingInfo::default()
        }
    }

    fn docs(text: &str) -> Vec<serde_json::Value> {
        text.split("---\n")
            .skip(1)
            .map(|d| serde_saphyr::from_str(d).unwrap())
            .collect()
    }

    #[test]
    fn default_names_are_valid_object_names() {
        let cases = [
            (
                "amzn1.ask.skill.00000000-0000-0000-0000-000000000001",
                "skill-00000000-0000-0000-0000-000000000001-development",
            ),
            ("amzn1.ask.skill.AbC_d", "skill-abc-d-development"),
            ("...", "skill-development"),
        ];
        for (skill, want) in cases {
            assert_eq!(default_name(skill, Stage::Development), want);
        }
    }

    #[test]
    fn what_is_printed_follows_what_amazon_has() {
        // (linking, enabled, expected kinds)
        let cases = [
            (
                Some(auth_code()),
                true,
                vec!["SkillAccountLinking", "SkillEnablement"],
            ),
            (Some(auth_code()), false, vec!["SkillAccountLinking"]),
            (None, true, vec!["SkillEnablement"]),
        ];
        for (linking, enabled, kinds) in cases {
            let text = render(&imported(linking, enabled)).unwrap();
            let got: Vec<String> = docs(&text)
                .iter()
                .map(|d| d["kind"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(got, kinds, "{text}");
            for doc in docs(&text) {
                assert_eq!(doc["spec"]["managementPolicy"], "Observe");
                assert_eq!(doc["metadata"]["namespace"], "skills");
                assert_eq!(doc["spec"]["credentialsSecretRef"]["name"], "lwa");
            }
        }
        assert!(matches!(
            render(&imported(None, false)),
            Err(ImportError::Nothing { .. })
        ));
    }

    #[test]
    fn the_account_linking_matches_amazon_with_a_commented_secret_placeholder() {
        let text = render(&imported(Some(auth_code()), false)).unwrap();
        let doc = &docs(&text)[0];
        let al = &doc["spec"]["accountLinking"];
        assert_eq!(
            al["clientSecretRef"],
            serde_json::json!({"name": "weather-oauth-client", "key": "client-secret"})
        );
        assert!(al.get("redirectUrls").is_none(), "left to Amazon");
        assert!(text.contains("cannot be read back"), "{text}");
        assert!(
            text.contains("https://pitangui.amazon.com/api/skill/link/V"),
            "{text}"
        );
        let sal: crate::crd::SkillAccountLinking = serde_json::from_value(doc.clone()).unwrap();
        crate::controller::account_linking::validate_spec(
            &sal.spec.account_linking,
            &sal.spec.skill_id,
        )
        .unwrap();
        // The spec reproduces Amazon's state: no drift.
        let request =
            crate::alexa::AccountLinkingRequest::from_spec(&sal.spec.account_linking, None);
        assert!(auth_code().differences_from(&request).is_empty());
        // IMPLICIT needs no client secret.
        let mut implicit = auth_code();
        implicit.type_ = Some(AccountLinkingType::Implicit);
        implicit.access_token_url = None;
        implicit.access_token_scheme = None;
        let text = render(&imported(Some(implicit), false)).unwrap();
        assert!(
            docs(&text)[0]["spec"]["accountLinking"]
                .get("clientSecretRef")
                .is_none()
        );
        // Amazon without a client id cannot be imported.
        let mut broken = auth_code();
        broken.client_id = None;
        let err = render(&imported(Some(broken), false))
            .unwrap_err()
            .to_string();
        assert!(err.contains("clientId"), "{err}");
    }

    #[tokio::test]
    async fn credentials_come_from_the_ask_cli_variables_and_missing_ones_are_named() {
        let args = |extra: &[&str]| {
            let mut argv = vec![
                "alexa-skill-operator",
                "import",
                "--skill-id",
                "s",
                "--stage",
                "live",
            ];
            argv.extend(extra);
            match <crate::cli::Cli as clap::Parser>::parse_from(argv).command {
                crate::cli::Command::Import(a) => *a,
                _ => unreachable!(),
            }
        };
        let only_token = |k: &str| (k == "ASK_REFRESH_TOKEN").then(|| "Atzr|x".to_owned());
        let err = credentials(&args(&[]), None, &only_token)
            .await
            .unwrap_err();
        assert!(err.is_usage());
        let text = err.to_string();
        assert!(
            text.contains("ASK_LWA_CLIENT_ID, ASK_LWA_CLIENT_CONFIRMATION")
                && !text.contains("ASK_REFRESH_TOKEN,")
                && !text.contains("Atzr"),
            "{text}"
        );
        let all = |k: &str| Some(format!("{k}-value"));
        let creds = credentials(&args(&[]), None, &all).await.unwrap();
        let want = LwaCredentials::new(
            "ASK_LWA_CLIENT_ID-value",
            "ASK_LWA_CLIENT_CONFIRMATION-value".to_owned(),
            "ASK_REFRESH_TOKEN-value".to_owned(),
        );
        assert_eq!(creds.fingerprint(), want.fingerprint());
    }
}
