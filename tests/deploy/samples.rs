//! The samples under deploy/samples against the CRD schemas and the operator's types.

use std::collections::{BTreeMap, BTreeSet};

use alexa_skill_operator::controller::secrets::{
    CLIENT_ID_KEY, CLIENT_SECRET_KEY, REFRESH_TOKEN_KEY,
};
use alexa_skill_operator::crd::{SkillAccountLinking, SkillEnablement};
use serde_json::{Value, json};

use crate::{object_key, parse_yaml_stream, render_all, repo, samples};

/// The openAPIV3Schema of the CRD for `kind`, from crds/.
fn crd_schema(kind: &str) -> Value {
    for entry in std::fs::read_dir(repo().join("crds")).expect("crds/") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read CRD");
        for crd in parse_yaml_stream(&text, "CRD") {
            if crd["spec"]["names"]["kind"] == kind {
                let versions = crd["spec"]["versions"].as_array().expect("versions");
                let served = versions
                    .iter()
                    .find(|v| v["storage"] == true)
                    .unwrap_or(&versions[0]);
                return served["schema"]["openAPIV3Schema"].clone();
            }
        }
    }
    panic!("no CRD for kind {kind} in crds/");
}

/// CEL rules the CRDs carry, evaluated by hand for objects being created. A rule not listed
/// here makes validation fail, so a new rule in the CRDs cannot go unchecked.
fn eval_cel(rule: &str, this: &Value) -> Result<bool, String> {
    let has = |field: &str| this.get(field).is_some_and(|v| !v.is_null());
    let normalized = rule.split_whitespace().collect::<Vec<_>>().join(" ");
    match normalized.as_str() {
        // Transition rules apply to updates only.
        "self == oldSelf" => Ok(true),
        "self.type != 'AUTH_CODE' || (has(self.accessTokenUrl) && has(self.accessTokenScheme) && has(self.clientSecretRef))" => {
            Ok(this["type"] != "AUTH_CODE"
                || (has("accessTokenUrl") && has("accessTokenScheme") && has("clientSecretRef")))
        }
        "self.type == 'AUTH_CODE' || !has(self.defaultTokenExpirationInSeconds)" => {
            Ok(this["type"] == "AUTH_CODE" || !has("defaultTokenExpirationInSeconds"))
        }
        "has(self.credentialsSecretRef) != has(self.credentialsRef)" => {
            Ok(has("credentialsSecretRef") != has("credentialsRef"))
        }
        "(has(self.credentialsSecretRef) ? 1 : 0) + (has(self.credentialsRef) ? 1 : 0) + (has(self.customer) ? 1 : 0) == 1" => {
            Ok(["credentialsSecretRef", "credentialsRef", "customer"]
                .iter()
                .filter(|f| has(f))
                .count()
                == 1)
        }
        other => Err(format!(
            "CEL rule `{other}` is not known to tests/deploy/samples.rs: add it to eval_cel"
        )),
    }
}

/// Whether `n` is above the bound `schema[key]` (bounds may be written as `15` or `15.0`).
fn exceeds(n: usize, schema: &Value, key: &str) -> bool {
    schema[key].as_f64().is_some_and(|m| n as f64 > m)
}

/// Whether `n` is below the bound `schema[key]`.
fn falls_short(n: usize, schema: &Value, key: &str) -> bool {
    schema[key].as_f64().is_some_and(|m| (n as f64) < m)
}

/// Validates `value` against a structural schema the way the API server does on create, and
/// stricter: unknown fields are errors (the API server would silently prune them).
fn validate_schema(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    if value.is_null() {
        if schema["nullable"] != true {
            errors.push(format!("{path}: null is not allowed"));
        }
        return;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            errors.push(format!("{path}: {value} is not one of {allowed:?}"));
        }
    }
    match schema["type"].as_str() {
        Some("object") => {
            let Some(map) = value.as_object() else {
                errors.push(format!("{path}: want an object, got {value}"));
                return;
            };
            let properties = schema["properties"].as_object();
            for (key, child) in map {
                let child_path = format!("{path}.{key}");
                if let Some(sub) = properties.and_then(|p| p.get(key)) {
                    validate_schema(sub, child, &child_path, errors);
                } else if schema["additionalProperties"].is_object() {
                    validate_schema(&schema["additionalProperties"], child, &child_path, errors);
                } else if schema["x-kubernetes-preserve-unknown-fields"] != true {
                    errors.push(format!("{child_path}: unknown field"));
                }
            }
            for required in schema["required"].as_array().into_iter().flatten() {
                let key = required.as_str().expect("required name");
                if !map.contains_key(key) {
                    errors.push(format!("{path}.{key}: required"));
                }
            }
            let count = map.len();
            if exceeds(count, schema, "maxProperties") {
                errors.push(format!("{path}: too many properties"));
            }
        }
        Some("array") => {
            let Some(items) = value.as_array() else {
                errors.push(format!("{path}: want an array, got {value}"));
                return;
            };
            let n = items.len();
            if exceeds(n, schema, "maxItems") {
                errors.push(format!(
                    "{path}: {n} items, at most {} allowed",
                    schema["maxItems"]
                ));
            }
            if falls_short(n, schema, "minItems") {
                errors.push(format!(
                    "{path}: {n} items, at least {} needed",
                    schema["minItems"]
                ));
            }
            for (i, item) in items.iter().enumerate() {
                validate_schema(&schema["items"], item, &format!("{path}[{i}]"), errors);
            }
        }
        Some("string") => {
            let Some(s) = value.as_str() else {
                errors.push(format!("{path}: want a string, got {value}"));
                return;
            };
            let n = s.chars().count();
            if exceeds(n, schema, "maxLength") {
                errors.push(format!("{path}: longer than {}", schema["maxLength"]));
            }
            if falls_short(n, schema, "minLength") {
                errors.push(format!("{path}: shorter than {}", schema["minLength"]));
            }
            if schema["pattern"].is_string() {
                errors.push(format!(
                    "{path}: schema pattern not supported by this validator"
                ));
            }
        }
        Some("integer") => match value.as_i64() {
            Some(n) => {
                // Bounds may be written as floats (`minimum: 1.0`); integers in a CR stay far
                // below 2^53, so comparing as f64 is exact.
                let n_float = n as f64;
                if schema["minimum"].as_f64().is_some_and(|m| n_float < m) {
                    errors.push(format!("{path}: below minimum {}", schema["minimum"]));
                }
                if schema["maximum"].as_f64().is_some_and(|m| n_float > m) {
                    errors.push(format!("{path}: above maximum {}", schema["maximum"]));
                }
                if schema["format"] == "int32" && i32::try_from(n).is_err() {
                    errors.push(format!("{path}: out of int32 range"));
                }
            }
            None => errors.push(format!("{path}: want an integer, got {value}")),
        },
        Some("number") if !value.is_number() => {
            errors.push(format!("{path}: want a number, got {value}"))
        }
        Some("boolean") if !value.is_boolean() => {
            errors.push(format!("{path}: want a boolean, got {value}"))
        }
        Some("number" | "boolean") => {}
        None if schema["x-kubernetes-int-or-string"] == true => {}
        other => errors.push(format!("{path}: schema type {other:?} not supported")),
    }
    for rule in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let text = rule["rule"].as_str().expect("rule text");
        match eval_cel(text, value) {
            Ok(true) => {}
            Ok(false) => errors.push(format!("{path}: {}", rule["message"])),
            Err(e) => errors.push(format!("{path}: {e}")),
        }
    }
}

/// Errors of one custom resource against its CRD (apiVersion, kind and metadata are checked
/// by the API server itself and skipped here).
fn validate_custom_resource(object: &Value) -> Vec<String> {
    let kind = object["kind"].as_str().expect("kind");
    let schema = crd_schema(kind);
    let mut body = object.clone();
    let map = body.as_object_mut().expect("object");
    let mut errors = Vec::new();
    if map.remove("apiVersion") != Some(json!("alexa.operator.dev/v1alpha1")) {
        errors.push("apiVersion must be alexa.operator.dev/v1alpha1".to_string());
    }
    map.remove("kind");
    map.remove("metadata");
    validate_schema(&schema, &body, kind, &mut errors);
    errors
}

#[test]
fn samples_match_the_crd_schemas_and_the_operator_types() {
    let samples = samples();
    let secrets: BTreeMap<String, BTreeSet<String>> = samples
        .iter()
        .filter(|o| o["kind"] == "Secret")
        .map(|s| {
            assert!(
                s["data"].is_null(),
                "sample Secrets use readable stringData"
            );
            let keys = s["stringData"]
                .as_object()
                .expect("stringData")
                .keys()
                .cloned()
                .collect();
            (
                s["metadata"]["name"].as_str().expect("name").to_string(),
                keys,
            )
        })
        .collect();
    let credential_keys: BTreeSet<String> = [CLIENT_ID_KEY, CLIENT_SECRET_KEY, REFRESH_TOKEN_KEY]
        .iter()
        .map(|k| k.to_string())
        .collect();
    let has_credentials = |name: &str| {
        assert!(
            secrets
                .get(name)
                .is_some_and(|k| credential_keys.is_subset(k)),
            "sample Secret {name} with keys {credential_keys:?} is missing"
        );
    };
    let has_key = |name: &str, key: &str| {
        assert!(
            secrets.get(name).is_some_and(|k| k.contains(key)),
            "sample Secret {name} with key {key} is missing"
        );
    };
    let (mut linkings, mut owner_mode, mut customer_mode) = (0, 0, 0);
    for object in &samples {
        let kind = object["kind"].as_str().expect("kind");
        if kind == "Secret" {
            continue;
        }
        let errors = validate_custom_resource(object);
        assert!(errors.is_empty(), "{:?}: {errors:#?}", object_key(object));
        match kind {
            "SkillAccountLinking" => {
                let sal: SkillAccountLinking =
                    serde_json::from_value(object.clone()).expect("sample deserializes");
                if let Some(r) = &sal.spec.credentials_secret_ref {
                    has_credentials(&r.name);
                }
                let r = sal
                    .spec
                    .account_linking
                    .client_secret_ref
                    .expect("AUTH_CODE sample");
                has_key(&r.name, &r.key);
                linkings += 1;
            }
            "SkillEnablement" => {
                let sen: SkillEnablement =
                    serde_json::from_value(object.clone()).expect("sample deserializes");
                if let Some(r) = &sen.spec.credentials_secret_ref {
                    has_credentials(&r.name);
                    owner_mode += 1;
                }
                if let Some(c) = &sen.spec.customer {
                    has_credentials(&c.token_secret_ref.name);
                    let code = &c.account_link_request.auth_code_secret_ref;
                    has_key(&code.name, &code.key);
                    customer_mode += 1;
                }
            }
            other => panic!("unexpected kind {other} in deploy/samples"),
        }
        let skill = object["spec"]["skillId"].as_str().expect("skillId");
        assert!(
            skill.starts_with("amzn1.ask.skill.00000000-0000-0000-0000-"),
            "samples use the simulator's placeholder skill IDs, not {skill}"
        );
    }
    assert_eq!(
        (linkings, owner_mode, customer_mode),
        (1, 1, 1),
        "one sample per kind and mode"
    );
}

#[test]
fn rendered_samples_equal_the_sample_files() {
    let Some(all) = render_all() else { return };
    let key = |o: &&Value| object_key(o);
    let files = samples();
    let mut want: Vec<&Value> = files.iter().collect();
    want.sort_by_key(key);
    let mut have: Vec<&Value> = all["deploy/samples"].objects.iter().collect();
    have.sort_by_key(key);
    assert_eq!(
        have, want,
        "kustomize changed the samples (e.g. a value's YAML type)"
    );
}

#[test]
fn the_schema_validator_rejects_what_the_api_server_rejects() {
    let samples = samples();
    let sal = samples
        .iter()
        .find(|o| o["kind"] == "SkillAccountLinking")
        .expect("SAL sample");
    let owner = samples
        .iter()
        .find(|o| o["kind"] == "SkillEnablement" && o["spec"]["customer"].is_null())
        .expect("owner sample");
    let customer = samples
        .iter()
        .find(|o| o["kind"] == "SkillEnablement" && o["spec"]["customer"].is_object())
        .expect("customer sample");
    let broken = |base: &Value, edit: &dyn Fn(&mut Value)| {
        let mut o = base.clone();
        edit(&mut o);
        validate_custom_resource(&o)
    };
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "bad enum",
            broken(sal, &|o| o["spec"]["stage"] = json!("beta")),
        ),
        (
            "missing required",
            broken(sal, &|o| {
                o["spec"]
                    .as_object_mut()
                    .unwrap()
                    .remove("credentialsSecretRef");
            }),
        ),
        (
            "unknown field",
            broken(sal, &|o| o["spec"]["colour"] = json!("blue")),
        ),
        (
            "wrong type",
            broken(sal, &|o| {
                o["spec"]["accountLinking"]["defaultTokenExpirationInSeconds"] = json!("3600");
            }),
        ),
        (
            "too many items",
            broken(sal, &|o| {
                o["spec"]["accountLinking"]["scopes"] = json!(vec!["s"; 16]);
            }),
        ),
        (
            "too long",
            broken(sal, &|o| o["spec"]["skillId"] = json!("x".repeat(256))),
        ),
        (
            "empty string",
            broken(sal, &|o| {
                o["spec"]["accountLinking"]["clientId"] = json!("")
            }),
        ),
        (
            "below minimum",
            broken(sal, &|o| {
                o["spec"]["accountLinking"]["defaultTokenExpirationInSeconds"] = json!(0);
            }),
        ),
        (
            "AUTH_CODE without token URL",
            broken(sal, &|o| {
                o["spec"]["accountLinking"]
                    .as_object_mut()
                    .unwrap()
                    .remove("accessTokenUrl");
            }),
        ),
        (
            "both modes",
            broken(owner, &|o| {
                o["spec"]["customer"] = customer["spec"]["customer"].clone()
            }),
        ),
        (
            "neither mode",
            broken(owner, &|o| {
                o["spec"]
                    .as_object_mut()
                    .unwrap()
                    .remove("credentialsSecretRef");
            }),
        ),
        (
            "bad deletionPolicy",
            broken(customer, &|o| o["spec"]["deletionPolicy"] = json!("Keep")),
        ),
    ];
    for (name, errors) in cases {
        assert!(
            !errors.is_empty(),
            "validator accepted a sample with {name}"
        );
    }
    assert!(
        eval_cel("self.size() > 0", &json!({})).is_err(),
        "unknown rules must fail"
    );
}
