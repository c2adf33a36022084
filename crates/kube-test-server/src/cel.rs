//! CEL `x-kubernetes-validations`, evaluated with `kube-cel` (the engine behind kube's `cel`
//! feature), including transition rules (`oldSelf`) on updates. Failures become 422 causes
//! worded like the apiserver's: `spec.skillId: Invalid value: "string": <message>`.

use serde_json::Value;

use crate::error::Cause;
use crate::schema::json_type;

/// Compiled rules of one schema (compiled once per CRD version, not per request).
pub(crate) struct CelRules {
    compiled: Option<kube_cel::CompiledSchema>,
}

fn has_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(m) => m.contains_key("x-kubernetes-validations") || m.values().any(has_rules),
        Value::Array(a) => a.iter().any(has_rules),
        _ => false,
    }
}

impl CelRules {
    pub(crate) fn compile(schema: &Value) -> Self {
        let compiled = has_rules(schema).then(|| kube_cel::compile_schema(schema));
        CelRules { compiled }
    }

    /// Evaluate all rules; `old` is the stored object on updates (enables `oldSelf`).
    pub(crate) fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let Some(compiled) = &self.compiled else {
            return Vec::new();
        };
        match kube_cel::validate_compiled(compiled, obj, old) {
            Ok(()) => Vec::new(),
            Err(errs) => errs
                .into_vec()
                .into_iter()
                .map(|e| {
                    let field = e.field_path.trim_start_matches('.').to_string();
                    let ty = lookup(obj, &field).map(json_type).unwrap_or("object");
                    let reason = match e.reason.as_deref() {
                        Some("FieldValueRequired") => "FieldValueRequired",
                        Some("FieldValueForbidden") => "FieldValueForbidden",
                        Some("FieldValueDuplicate") => "FieldValueDuplicate",
                        _ => "FieldValueInvalid",
                    };
                    let msg = match reason {
                        "FieldValueRequired" => format!("Required value: {}", e.message),
                        "FieldValueForbidden" => format!("Forbidden: {}", e.message),
                        _ => format!("Invalid value: \"{ty}\": {}", e.message),
                    };
                    Cause::new(reason, field, msg)
                })
                .collect(),
        }
    }
}

/// Resolve `spec.a[0].b` in an object (for the type shown in the message).
fn lookup<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (name, idx) = match part.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        if !name.is_empty() {
            cur = cur.get(name)?;
        }
        if let Some(i) = idx {
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

/// Variables referenced by a rule, or the compile error (used by the CRD lint).
pub fn rule_variables(rule: &str) -> Result<Vec<String>, String> {
    let program = kube_cel::cel::Program::compile(rule).map_err(|e| e.to_string())?;
    let mut vars: Vec<String> = program
        .references()
        .variables()
        .into_iter()
        .map(str::to_string)
        .collect();
    vars.sort();
    vars.dedup();
    Ok(vars)
}
