//! Structural-schema lint for CRD YAML: the rules a real apiserver enforces when a CRD is
//! created, checked offline so a generated CRD that a cluster would reject fails a test here,
//! naming the offending path.
//!
//! Rules: every schema node has a `type` unless `x-kubernetes-int-or-string` or
//! `x-kubernetes-preserve-unknown-fields` (nodes under `allOf`/`anyOf`/`oneOf`/`not` are exempt);
//! no `$ref`, `definitions`, `uniqueItems: true`, `patternProperties`; `additionalProperties`
//! not together with `properties`; `x-kubernetes-list-type: map` has map keys that are
//! properties of the items and required or defaulted; every CEL rule compiles and uses only
//! `self`/`oldSelf`; `metadata.name` is `<plural>.<group>`.

use std::path::Path;

use serde_json::Value;

use crate::error::Error;

/// One lint failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintIssue {
    /// File the CRD came from (empty when linting a value).
    pub file: String,
    /// Path inside the CRD, e.g. `spec.versions[0].schema.openAPIV3Schema.properties.spec`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for LintIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.file.is_empty() {
            write!(f, "{}: {}", self.path, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.path, self.message)
        }
    }
}

/// Lint every CRD document in the YAML/JSON files of `dir`.
pub fn lint_crd_dir(dir: impl AsRef<Path>) -> Result<Vec<LintIssue>, Error> {
    let mut out = Vec::new();
    for (file, doc) in crate::resources::load_dir(dir.as_ref())? {
        for mut issue in lint_crd(&doc) {
            issue.file = file.clone();
            out.push(issue);
        }
    }
    Ok(out)
}

/// Lint one CRD (JSON form).
pub fn lint_crd(crd: &Value) -> Vec<LintIssue> {
    let mut out = Vec::new();
    let mut push = |path: String, message: String| {
        out.push(LintIssue {
            file: String::new(),
            path,
            message,
        })
    };
    let s = |p: &str| crd.pointer(p).and_then(Value::as_str);
    match (
        s("/metadata/name"),
        s("/spec/names/plural"),
        s("/spec/group"),
    ) {
        (Some(n), Some(p), Some(g)) if n == format!("{p}.{g}") => {}
        (n, p, g) => push(
            "metadata.name".into(),
            format!(
                "must be spec.names.plural+\".\"+spec.group ({:?}.{:?}), got {:?}",
                p.unwrap_or(""),
                g.unwrap_or(""),
                n.unwrap_or("")
            ),
        ),
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        push(
            "spec.versions".into(),
            "must have at least one version".into(),
        );
    }
    for (i, v) in versions.iter().enumerate() {
        let base = format!("spec.versions[{i}].schema.openAPIV3Schema");
        match v.pointer("/schema/openAPIV3Schema") {
            None => push(base, "missing schema".into()),
            Some(schema) => {
                if schema.get("type").and_then(Value::as_str) != Some("object") {
                    push(base.clone(), "root type must be object".into());
                }
                lint_node(schema, &base, false, &mut push);
            }
        }
    }
    out
}

fn lint_node(node: &Value, path: &str, in_junctor: bool, push: &mut impl FnMut(String, String)) {
    let Some(m) = node.as_object() else {
        push(path.to_string(), "schema node must be an object".into());
        return;
    };
    let flag = |k: &str| m.get(k).and_then(Value::as_bool) == Some(true);
    if !in_junctor
        && !m.contains_key("type")
        && !flag("x-kubernetes-int-or-string")
        && !flag("x-kubernetes-preserve-unknown-fields")
    {
        push(
            path.to_string(),
            "type: Required value: must not be empty for specified object fields".into(),
        );
    }
    for forbidden in [
        "$ref",
        "definitions",
        "patternProperties",
        "dependencies",
        "additionalItems",
    ] {
        if m.contains_key(forbidden) {
            push(
                format!("{path}.{forbidden}"),
                format!("Forbidden: {forbidden} is not allowed in a structural schema"),
            );
        }
    }
    if flag("uniqueItems") {
        push(format!("{path}.uniqueItems"), "Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic".into());
    }
    if m.contains_key("properties")
        && m.get("additionalProperties")
            .is_some_and(|a| a != &Value::Bool(false))
    {
        push(
            format!("{path}.additionalProperties"),
            "Forbidden: additionalProperties and properties are mutual exclusive".into(),
        );
    }
    if m.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map") {
        let keys: Vec<&str> = m
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if keys.is_empty() {
            push(
                format!("{path}.x-kubernetes-list-map-keys"),
                "Required value: must not be empty if x-kubernetes-list-type is map".into(),
            );
        }
        let items = m.get("items");
        let required: Vec<&str> = items
            .and_then(|i| i.get("required"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for k in keys {
            let prop = items
                .and_then(|i| i.get("properties"))
                .and_then(|p| p.get(k));
            match prop {
                None => push(
                    format!("{path}.items.properties.{k}"),
                    format!("Required value: map key {k:?} must be a property of the items"),
                ),
                Some(p) => {
                    if !required.contains(&k) && p.get("default").is_none() {
                        push(
                            format!("{path}.items.properties.{k}"),
                            format!(
                                "Invalid value: map key {k:?} must be required or have a default"
                            ),
                        );
                    }
                }
            }
        }
    }
    if let Some(rules) = m.get("x-kubernetes-validations").and_then(Value::as_array) {
        for (i, r) in rules.iter().enumerate() {
            let rp = format!("{path}.x-kubernetes-validations[{i}].rule");
            match r.get("rule").and_then(Value::as_str) {
                None => push(rp, "Required value: rule is required".into()),
                Some(rule) => match crate::cel::rule_variables(rule) {
                    Err(e) => push(
                        rp,
                        format!("Invalid value: {rule:?}: compilation failed: {e}"),
                    ),
                    Ok(vars) => {
                        for v in vars.iter().filter(|v| *v != "self" && *v != "oldSelf") {
                            push(
                                rp.clone(),
                                format!(
                                    "Invalid value: {rule:?}: undeclared reference to '{v}' (only self and oldSelf may be used)"
                                ),
                            );
                        }
                    }
                },
            }
        }
    }
    if let Some(props) = m.get("properties").and_then(Value::as_object) {
        for (k, p) in props {
            lint_node(p, &format!("{path}.properties.{k}"), in_junctor, push);
        }
    }
    if let Some(items) = m.get("items") {
        if items.is_array() {
            push(
                format!("{path}.items"),
                "Forbidden: items must be a schema object, not an array".into(),
            );
        } else {
            lint_node(items, &format!("{path}.items"), in_junctor, push);
        }
    }
    if let Some(a) = m.get("additionalProperties").filter(|a| a.is_object()) {
        lint_node(a, &format!("{path}.additionalProperties"), in_junctor, push);
    }
    for j in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = m.get(j).and_then(Value::as_array) {
            for (i, n) in list.iter().enumerate() {
                lint_node(n, &format!("{path}.{j}[{i}]"), true, push);
            }
        }
    }
    if let Some(n) = m.get("not") {
        lint_node(n, &format!("{path}.not"), true, push);
    }
}
