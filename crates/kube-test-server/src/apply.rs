//! Server-side apply (`application/apply-patch+yaml`): merge the applied configuration into
//! the live object, detect conflicts with other managers' fields (409 with
//! `FieldManagerConflict` causes unless `force=true`), remove fields this manager applied
//! before but no longer applies (when no one else owns them), and record ownership.

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::fields::{
    Entry, FieldSet, ListType, Scope, display_path, field_set, item_key, items_schema, list_type,
    read_entries, remove_emptying, root_child_schema, value_at,
};
use crate::resources::ResourceType;

/// Inputs of one apply.
pub(crate) struct ApplyRequest<'a> {
    pub rt: &'a ResourceType,
    pub name: &'a str,
    pub applied: &'a Value,
    pub manager: &'a str,
    pub force: bool,
    pub scope: Scope,
    pub subresource: Option<&'a str>,
    pub now: &'a str,
}

/// Result of merging: the new object (managedFields not yet written) and ownership entries.
pub(crate) struct ApplyResult {
    pub object: Value,
    pub entries: Vec<Entry>,
}

/// Merge `applied` into `live` (schema-aware for list types).
fn merge(live: &mut Value, applied: &Value, schema: Option<&Value>, root: bool) {
    match (live, applied) {
        (l @ Value::Object(_), a @ Value::Object(_))
            if !root && crate::fields::is_atomic_map(schema) =>
        {
            *l = a.clone();
        }
        (Value::Object(l), Value::Object(a)) => {
            for (k, av) in a {
                let cs = if root {
                    root_child_schema(schema, k)
                } else {
                    crate::fields::child_schema(schema, k)
                };
                match l.get_mut(k) {
                    Some(lv) if !lv.is_null() => merge(lv, av, cs, false),
                    _ => {
                        l.insert(k.clone(), av.clone());
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(a)) => match list_type(schema) {
            ListType::Atomic => *l = a.clone(),
            ListType::Set => {
                for it in a {
                    if !l.contains(it) {
                        l.push(it.clone());
                    }
                }
            }
            ListType::Map(keys) => {
                for it in a {
                    let k = item_key(it, &keys);
                    match l.iter_mut().find(|x| item_key(x, &keys) == k) {
                        Some(x) => merge(x, it, items_schema(schema), false),
                        None => l.push(it.clone()),
                    }
                }
            }
        },
        (l, a) => *l = a.clone(),
    }
}

/// Strip what an apply does not own: identity metadata and, per scope, spec or status.
fn scoped_config(applied: &Value, scope: Scope) -> Value {
    let mut v = applied.clone();
    if let Some(m) = v.as_object_mut() {
        match scope {
            Scope::Main => {
                m.remove("status");
            }
            Scope::Status => {
                m.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"))
            }
            Scope::All => {}
        }
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.retain(|k, _| {
                matches!(
                    k.as_str(),
                    "name"
                        | "namespace"
                        | "labels"
                        | "annotations"
                        | "finalizers"
                        | "ownerReferences"
                )
            });
            if scope == Scope::Status {
                meta.retain(|k, _| matches!(k.as_str(), "name" | "namespace"));
            }
        }
    }
    v
}

/// Apply `req.applied` onto `live` (None: create-on-missing).
pub(crate) fn apply(live: Option<&Value>, req: &ApplyRequest<'_>) -> Result<ApplyResult, ApiError> {
    let schema = req.rt.schema.as_ref().map(|s| &s.schema);
    let config = scoped_config(req.applied, req.scope);
    let applied_set = field_set(&config, schema, req.scope);
    let base = match live {
        Some(l) => l.clone(),
        None => json!({"apiVersion": req.rt.api_version(), "kind": req.rt.kind, "metadata": {}}),
    };
    let mut entries = live.map(read_entries).unwrap_or_default();
    let me = |e: &Entry| e.same_owner(req.manager, "Apply", req.subresource);

    // Conflicts: fields another manager owns whose live value differs from the applied one.
    let mut conflicts: Vec<(String, String, String)> = Vec::new();
    for e in entries.iter().filter(|e| !me(e)) {
        for p in e.fields.intersection(&applied_set) {
            if p.last().is_some_and(|l| l == ".") {
                continue;
            }
            if value_at(&base, p) != value_at(&config, p) {
                conflicts.push((e.manager.clone(), e.api_version.clone(), display_path(p)));
            }
        }
    }
    if !conflicts.is_empty() && !req.force {
        return Err(conflict_error(req, &conflicts));
    }

    let mut object = base;
    merge(&mut object, &config, schema, true);

    // Ownership: forced or changed fields leave the other managers.
    let previous: FieldSet = entries
        .iter()
        .find(|e| me(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let conflicting: FieldSet = entries
        .iter()
        .filter(|e| !me(e))
        .flat_map(|e| {
            e.fields
                .intersection(&applied_set)
                .cloned()
                .collect::<Vec<_>>()
        })
        .filter(|p| {
            live.is_some_and(|l| value_at(l, p) != value_at(&config, p))
                && p.last().is_none_or(|l| l != ".")
        })
        .collect();
    for e in entries.iter_mut().filter(|e| !me(e)) {
        e.fields.retain(|p| !conflicting.contains(p));
    }

    // Fields this manager applied before and no longer applies, owned by nobody else: remove.
    for p in previous.difference(&applied_set) {
        let owned_elsewhere = entries.iter().filter(|e| !me(e)).any(|e| {
            e.fields
                .iter()
                .any(|q| q.starts_with(p) || p.starts_with(q))
        });
        if !owned_elsewhere {
            remove_emptying(&mut object, p, req.rt.schema.is_some());
        }
    }

    match entries.iter_mut().find(|e| me(e)) {
        Some(e) => {
            if e.fields != applied_set {
                e.time = req.now.to_string();
            }
            e.fields = applied_set;
            e.api_version = req.rt.api_version();
        }
        None => entries.push(Entry {
            manager: req.manager.to_string(),
            operation: "Apply".into(),
            subresource: req.subresource.map(str::to_string),
            api_version: req.rt.api_version(),
            time: req.now.to_string(),
            fields: applied_set,
        }),
    }
    entries.retain(|e| !e.fields.is_empty());
    Ok(ApplyResult { object, entries })
}

fn conflict_error(req: &ApplyRequest<'_>, conflicts: &[(String, String, String)]) -> ApiError {
    let n = conflicts.len();
    let message = if n == 1 {
        let (m, v, p) = &conflicts[0];
        format!("Apply failed with 1 conflict: conflict with \"{m}\" using {v}: {p}")
    } else {
        let mut s = format!("Apply failed with {n} conflicts: ");
        let mut by_mgr: Vec<(&str, &str, Vec<&str>)> = Vec::new();
        for (m, v, p) in conflicts {
            match by_mgr.iter_mut().find(|(bm, _, _)| *bm == m) {
                Some(x) => x.2.push(p),
                None => by_mgr.push((m, v, vec![p])),
            }
        }
        let parts: Vec<String> = by_mgr
            .iter()
            .map(|(m, v, ps)| {
                let lines: Vec<String> = ps.iter().map(|p| format!("- {p}")).collect();
                format!("conflicts with \"{m}\" using {v}:\n{}", lines.join("\n"))
            })
            .collect();
        s.push_str(&parts.join("\n"));
        s
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, v, p)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\" using {v}"), "field": p}))
        .collect();
    let mut details = json!({"name": req.name, "kind": req.rt.plural, "causes": causes});
    if !req.rt.group.is_empty() {
        details["group"] = json!(req.rt.group);
    }
    ApiError {
        code: 409,
        reason: "Conflict",
        message,
        details: Some(details),
    }
}
