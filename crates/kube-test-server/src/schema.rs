//! Structural-schema enforcement for custom resources, in the apiserver's order: prune unknown
//! fields, apply defaults, validate the OpenAPI v3 schema, then the CEL rules (see `cel.rs`).
//! Messages and `details.causes` reasons follow the apiserver's wording so tests can match them.

use std::collections::HashMap;

use parking_lot::Mutex;
use serde_json::{Map, Value};

use crate::error::Cause;

/// Top-level fields the schema never prunes, defaults or validates (handled as ObjectMeta).
const ROOT_SKIP: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// One version's `openAPIV3Schema`, with its CEL rules compiled once.
pub(crate) struct CrdSchema {
    pub schema: Value,
    pub cel: crate::cel::CelRules,
    regexes: Mutex<HashMap<String, Option<regex::Regex>>>,
}

impl std::fmt::Debug for CrdSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrdSchema").finish_non_exhaustive()
    }
}

impl CrdSchema {
    pub(crate) fn new(schema: Value) -> Self {
        let cel = crate::cel::CelRules::compile(&schema);
        CrdSchema {
            schema,
            cel,
            regexes: Mutex::new(HashMap::new()),
        }
    }

    /// Drop fields the schema does not declare (unless `x-kubernetes-preserve-unknown-fields`).
    pub(crate) fn prune(&self, obj: &mut Value) {
        let Some(map) = obj.as_object_mut() else {
            return;
        };
        let props = self.schema.get("properties").and_then(Value::as_object);
        let preserve = preserve_unknown(&self.schema);
        map.retain(|k, _| {
            ROOT_SKIP.contains(&k.as_str()) || preserve || props.is_some_and(|p| p.contains_key(k))
        });
        for (k, v) in map.iter_mut() {
            if ROOT_SKIP.contains(&k.as_str()) {
                continue;
            }
            if let Some(s) = props.and_then(|p| p.get(k)) {
                prune(s, v);
            }
        }
    }

    /// Fill in `default`s of missing (or null, non-nullable) fields.
    pub(crate) fn apply_defaults(&self, obj: &mut Value) {
        let Some(map) = obj.as_object_mut() else {
            return;
        };
        if let Some(props) = self.schema.get("properties").and_then(Value::as_object) {
            for (k, s) in props {
                if ROOT_SKIP.contains(&k.as_str()) {
                    continue;
                }
                default_field(map, k, s);
                if let Some(v) = map.get_mut(k) {
                    apply_defaults(s, v);
                }
            }
        }
    }

    /// Validate the OpenAPI schema and CEL rules; `old` enables transition rules.
    pub(crate) fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut causes = Vec::new();
        let mut stripped = Map::new();
        if let Some(map) = obj.as_object() {
            for (k, v) in map {
                if !ROOT_SKIP.contains(&k.as_str()) {
                    stripped.insert(k.clone(), v.clone());
                }
            }
        }
        let root = Value::Object(stripped);
        self.validate_node(&self.schema, &root, "", &mut causes);
        causes.extend(self.cel.validate(obj, old));
        causes
    }

    fn regex_matches(&self, pattern: &str, s: &str) -> bool {
        let mut cache = self.regexes.lock();
        let re = cache
            .entry(pattern.to_string())
            .or_insert_with(|| regex::Regex::new(pattern).ok());
        re.as_ref().is_none_or(|r| r.is_match(s))
    }

    fn validate_node(&self, schema: &Value, value: &Value, path: &str, causes: &mut Vec<Cause>) {
        let ty = schema.get("type").and_then(Value::as_str);
        if value.is_null() {
            if schema.get("nullable").and_then(Value::as_bool) == Some(true) || ty.is_none() {
                return;
            }
            if let Some(t) = ty {
                causes.push(type_error(path, t, value));
            }
            return;
        }
        let int_or_string = schema
            .get("x-kubernetes-int-or-string")
            .and_then(Value::as_bool)
            == Some(true);
        if int_or_string {
            if !(value.is_string() || value.is_i64() || value.is_u64()) {
                causes.push(type_error(path, "string", value));
                return;
            }
        } else if let Some(t) = ty
            && !type_matches(t, value)
        {
            causes.push(type_error(path, t, value));
            return;
        }
        if let Some(en) = schema.get("enum").and_then(Value::as_array)
            && !en.contains(value)
        {
            let supported = en
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            causes.push(Cause::new(
                "FieldValueNotSupported",
                path,
                format!("Unsupported value: {value}: supported values: {supported}"),
            ));
        }
        match value {
            Value::String(s) => {
                let len = s.chars().count() as u64;
                if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                    && len > max
                {
                    causes.push(Cause::new(
                        "FieldValueTooLong",
                        path,
                        format!("Too long: may not be more than {max} bytes"),
                    ));
                }
                if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                    && len < min
                {
                    causes.push(Cause::new(
                        "FieldValueInvalid",
                        path,
                        format!("Invalid value: {value}: {path} in body should be at least {min} chars long"),
                    ));
                }
                if let Some(p) = schema.get("pattern").and_then(Value::as_str)
                    && !self.regex_matches(p, s)
                {
                    causes.push(Cause::new(
                        "FieldValueInvalid",
                        path,
                        format!("Invalid value: {value}: {path} in body should match '{p}'"),
                    ));
                }
            }
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or(0.0);
                if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
                    let excl =
                        schema.get("exclusiveMinimum").and_then(Value::as_bool) == Some(true);
                    if x < min || (excl && x <= min) {
                        let rel = if excl {
                            "greater than"
                        } else {
                            "greater than or equal to"
                        };
                        causes.push(Cause::new(
                            "FieldValueInvalid",
                            path,
                            format!(
                                "Invalid value: {value}: {path} in body should be {rel} {}",
                                fmt_num(min)
                            ),
                        ));
                    }
                }
                if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
                    let excl =
                        schema.get("exclusiveMaximum").and_then(Value::as_bool) == Some(true);
                    if x > max || (excl && x >= max) {
                        let rel = if excl {
                            "less than"
                        } else {
                            "less than or equal to"
                        };
                        causes.push(Cause::new(
                            "FieldValueInvalid",
                            path,
                            format!(
                                "Invalid value: {value}: {path} in body should be {rel} {}",
                                fmt_num(max)
                            ),
                        ));
                    }
                }
            }
            Value::Array(items) => {
                let n = items.len() as u64;
                if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                    && n > max
                {
                    causes.push(Cause::new(
                        "FieldValueTooMany",
                        path,
                        format!("Too many: {n}: must have at most {max} items"),
                    ));
                }
                if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                    && n < min
                {
                    causes.push(Cause::new(
                        "FieldValueInvalid",
                        path,
                        format!(
                            "Invalid value: {n}: {path} in body should have at least {min} items"
                        ),
                    ));
                }
                self.check_list_uniqueness(schema, items, path, causes);
                if let Some(is) = schema.get("items") {
                    for (i, it) in items.iter().enumerate() {
                        self.validate_node(is, it, &format!("{path}[{i}]"), causes);
                    }
                }
            }
            Value::Object(map) => {
                if let Some(req) = schema.get("required").and_then(Value::as_array) {
                    for r in req.iter().filter_map(Value::as_str) {
                        if !map.contains_key(r) {
                            causes.push(Cause::new(
                                "FieldValueRequired",
                                join(path, r),
                                "Required value",
                            ));
                        }
                    }
                }
                let props = schema.get("properties").and_then(Value::as_object);
                let addl = schema.get("additionalProperties").filter(|a| a.is_object());
                for (k, v) in map {
                    if let Some(s) = props.and_then(|p| p.get(k)) {
                        self.validate_node(s, v, &join(path, k), causes);
                    } else if let Some(s) = addl {
                        self.validate_node(s, v, &format!("{path}[{k}]"), causes);
                    }
                }
            }
            Value::Bool(_) | Value::Null => {}
        }
    }

    fn check_list_uniqueness(
        &self,
        schema: &Value,
        items: &[Value],
        path: &str,
        causes: &mut Vec<Cause>,
    ) {
        match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => {
                for (i, it) in items.iter().enumerate() {
                    if items[..i].contains(it) {
                        causes.push(Cause::new(
                            "FieldValueDuplicate",
                            format!("{path}[{i}]"),
                            format!("Duplicate value: {it}"),
                        ));
                    }
                }
            }
            Some("map") => {
                let keys: Vec<&str> = schema
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let key_of = |v: &Value| {
                    keys.iter()
                        .map(|k| v.get(*k).cloned().unwrap_or(Value::Null))
                        .collect::<Vec<_>>()
                };
                for (i, it) in items.iter().enumerate() {
                    let k = key_of(it);
                    if items[..i].iter().any(|o| key_of(o) == k) {
                        let shown: Map<String, Value> = keys
                            .iter()
                            .zip(k.iter())
                            .map(|(a, b)| (a.to_string(), b.clone()))
                            .collect();
                        causes.push(Cause::new(
                            "FieldValueDuplicate",
                            format!("{path}[{i}]"),
                            format!("Duplicate value: {}", Value::Object(shown)),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// JSON type name as the apiserver prints it in `Invalid value: "string"`.
pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        _ => true,
    }
}

fn type_error(path: &str, t: &str, v: &Value) -> Cause {
    let got = json_type(v);
    Cause::new(
        "FieldValueTypeInvalid",
        path,
        format!("Invalid value: \"{got}\": {path} in body must be of type {t}: \"{got}\""),
    )
}

fn preserve_unknown(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

fn prune(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            let preserve = preserve_unknown(schema);
            let embedded = schema
                .get("x-kubernetes-embedded-resource")
                .and_then(Value::as_bool)
                == Some(true);
            let props = schema.get("properties").and_then(Value::as_object);
            let addl = schema.get("additionalProperties");
            let addl_schema = addl.filter(|a| a.is_object());
            let addl_any = addl.and_then(Value::as_bool) == Some(true);
            map.retain(|k, _| {
                preserve
                    || addl_schema.is_some()
                    || addl_any
                    || props.is_some_and(|p| p.contains_key(k))
                    || (embedded && ROOT_SKIP.contains(&k.as_str()))
            });
            for (k, v) in map.iter_mut() {
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    prune(s, v);
                } else if let Some(s) = addl_schema {
                    prune(s, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for it in items {
                    prune(s, it);
                }
            }
        }
        _ => {}
    }
}

fn default_field(map: &mut Map<String, Value>, k: &str, s: &Value) {
    let Some(d) = s.get("default") else { return };
    let nullable = s.get("nullable").and_then(Value::as_bool) == Some(true);
    match map.get(k) {
        None => {
            map.insert(k.to_string(), d.clone());
        }
        Some(Value::Null) if !nullable => {
            map.insert(k.to_string(), d.clone());
        }
        _ => {}
    }
}

fn apply_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, s) in props {
                    default_field(map, k, s);
                    if let Some(v) = map.get_mut(k) {
                        apply_defaults(s, v);
                    }
                }
            } else if let Some(s) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for v in map.values_mut() {
                    apply_defaults(s, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for it in items {
                    apply_defaults(s, it);
                }
            }
        }
        _ => {}
    }
}
