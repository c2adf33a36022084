//! CEL `x-kubernetes-validations`, evaluated with `kube-cel` (the engine behind kube's `cel`
//! feature), including transition rules (`oldSelf`) on updates. Failures become 422 causes
//! worded like the apiserver's: `spec.skillId: Invalid value: "string": <message>`.

use serde_json::Value;

use crate::error::Cause;
use crate::schema::json_type;

/// Compiled rules of one schema (compiled once per CRD version, not per request).
pub(crate) struct CelRules {
    compiled: Option<kube_cel::CompiledSchema>,
    /// The top-level fields whose subtrees hold every rule (`spec`, …), or `None` when the root
    /// itself has rules. An update that leaves all of them unchanged is not evaluated: the
    /// apiserver ratchets rules on unchanged values (CRD validation ratcheting, KEP 4008, on by
    /// default since 1.30), and the transition rules our CRDs use (`self == oldSelf`) hold on an
    /// unchanged value. Without this, every status or finalizer patch re-evaluated the spec's
    /// rules: a fifth of the benchmark process's CPU, under the store's lock.
    rule_roots: Option<Vec<String>>,
}

/// See [`CelRules::rule_roots`].
fn rule_roots(schema: &Value) -> Option<Vec<String>> {
    if schema.get("x-kubernetes-validations").is_some() {
        return None;
    }
    let props = schema.get("properties").and_then(Value::as_object);
    Some(
        props
            .into_iter()
            .flatten()
            .filter(|(_, s)| has_rules(s))
            .map(|(k, _)| k.clone())
            .collect(),
    )
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
        CelRules {
            compiled,
            rule_roots: rule_roots(schema),
        }
    }

    /// Whether an update from `old` to `obj` leaves every subtree holding rules unchanged.
    fn unchanged(&self, obj: &Value, old: Option<&Value>) -> bool {
        match (&self.rule_roots, old) {
            (Some(roots), Some(old)) => roots.iter().all(|k| obj.get(k) == old.get(k)),
            _ => false,
        }
    }

    /// Evaluate all rules; `old` is the stored object on updates (enables `oldSelf`).
    pub(crate) fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let Some(compiled) = &self.compiled else {
            return Vec::new();
        };
        if self.unchanged(obj, old) {
            return Vec::new();
        }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema(root_rule: bool) -> Value {
        let mut s = json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {"a": {"type": "string"}},
                    "x-kubernetes-validations": [{"rule": "self.a != 'bad'", "message": "a is bad"}]
                },
                "status": {"type": "object", "properties": {"n": {"type": "integer"}}}
            }
        });
        if root_rule {
            s["x-kubernetes-validations"] = json!([{"rule": "!has(self.status) || self.status.n < 10", "message": "n too big"}]);
        }
        s
    }

    fn obj(a: &str, n: i64) -> Value {
        json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "o"}, "spec": {"a": a}, "status": {"n": n}})
    }

    #[test]
    fn rules_on_unchanged_subtrees_are_ratcheted_and_changed_ones_evaluated() {
        // (root rule?, new object, old object, errors expected)
        let cases = [
            (false, obj("bad", 1), None, 1),                  // create: evaluated
            (false, obj("bad", 2), Some(obj("bad", 1)), 0),   // status-only change: ratcheted
            (false, obj("bad", 1), Some(obj("good", 1)), 1),  // spec changed to bad
            (false, obj("good", 1), Some(obj("bad", 1)), 0),  // spec fixed
            (true, obj("good", 11), Some(obj("good", 1)), 1), // root rule: always evaluated
            (true, obj("bad", 11), Some(obj("bad", 1)), 2),   // … and then every rule is
        ];
        for (i, (root, new, old, want)) in cases.into_iter().enumerate() {
            let rules = CelRules::compile(&schema(root));
            let got = rules.validate(&new, old.as_ref());
            assert_eq!(got.len(), want, "case {i}: {got:?}");
        }
    }
}
