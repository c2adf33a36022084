//! Field ownership (`metadata.managedFields`, `FieldsV1`), an approximation of
//! structured-merge-diff good enough for server-side apply conflicts:
//! - a field set is a set of leaf paths such as `["f:spec", "f:replicas"]`; lists are atomic
//!   unless the schema says `x-kubernetes-list-type: map` (items `k:{...}`) or `set` (`v:...`),
//!   and `metadata.finalizers` is a set;
//! - `Update` operations (PUT, merge/JSON patch) take ownership of the fields they change and
//!   drop removed fields from every manager;
//! - `Apply` operations own exactly the fields in the applied configuration (see `apply.rs`).

use std::collections::BTreeSet;
use std::sync::LazyLock;

use serde_json::{Map, Value, json};

/// A leaf path (`f:name`, `k:{json}`, `v:json`, `.` elements).
pub(crate) type FieldPath = Vec<String>;
/// A set of owned leaf paths.
pub(crate) type FieldSet = BTreeSet<FieldPath>;

/// Which part of the object a write may touch (status subresource split).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Everything except `status` (main resource of a kind with a status subresource).
    Main,
    /// Only `status`.
    Status,
    /// Whole object (kinds without a status subresource).
    All,
}

static META_SCHEMA: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "type": "object",
        "properties": {
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            "finalizers": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
            "ownerReferences": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["uid"]}
        }
    })
});

/// How a list merges.
pub(crate) enum ListType<'a> {
    Atomic,
    Set,
    Map(Vec<&'a str>),
}

pub(crate) fn list_type(schema: Option<&Value>) -> ListType<'_> {
    match schema
        .and_then(|s| s.get("x-kubernetes-list-type"))
        .and_then(Value::as_str)
    {
        Some("set") => ListType::Set,
        Some("map") => ListType::Map(
            schema
                .and_then(|s| s.get("x-kubernetes-list-map-keys"))
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default(),
        ),
        _ => ListType::Atomic,
    }
}

/// Schema of a child property (or additionalProperties).
pub(crate) fn child_schema<'a>(schema: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    let s = schema?;
    s.get("properties")
        .and_then(|p| p.get(key))
        .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))
}

pub(crate) fn items_schema(schema: Option<&Value>) -> Option<&Value> {
    schema?.get("items")
}

/// `k:{"type":"Ready"}` for a list-map item.
pub(crate) fn item_key(item: &Value, keys: &[&str]) -> String {
    let mut m = Map::new();
    for k in keys {
        m.insert(
            (*k).to_string(),
            item.get(*k).cloned().unwrap_or(Value::Null),
        );
    }
    format!("k:{}", Value::Object(m))
}

/// Whether an object is owned and replaced as a whole (`x-kubernetes-map-type: atomic`, what
/// `+structType=atomic` and `+mapType=atomic` generate).
pub(crate) fn is_atomic_map(schema: Option<&Value>) -> bool {
    schema
        .and_then(|s| s.get("x-kubernetes-map-type"))
        .and_then(Value::as_str)
        == Some("atomic")
}

/// Leaf paths of `value` under `prefix`.
fn collect(value: &Value, schema: Option<&Value>, prefix: &mut FieldPath, out: &mut FieldSet) {
    match value {
        Value::Object(_) if is_atomic_map(schema) && !prefix.is_empty() => {
            out.insert(prefix.clone());
        }
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                prefix.push(format!("f:{k}"));
                collect(v, child_schema(schema, k), prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => match list_type(schema) {
            ListType::Atomic => {
                out.insert(prefix.clone());
            }
            ListType::Set => {
                for it in items {
                    let mut p = prefix.clone();
                    p.push(format!("v:{it}"));
                    out.insert(p);
                }
                if items.is_empty() {
                    out.insert(prefix.clone());
                }
            }
            ListType::Map(keys) => {
                for it in items {
                    prefix.push(item_key(it, &keys));
                    prefix.push(".".into());
                    out.insert(prefix.clone());
                    prefix.pop();
                    collect(it, items_schema(schema), prefix, out);
                    prefix.pop();
                }
                if items.is_empty() {
                    out.insert(prefix.clone());
                }
            }
        },
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// The field set of an object within `scope` (metadata: labels, annotations, finalizers,
/// ownerReferences only; never apiVersion/kind/name).
pub(crate) fn field_set(obj: &Value, schema: Option<&Value>, scope: Scope) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(m) = obj.as_object() else { return out };
    for (k, v) in m {
        let in_scope = match (k.as_str(), scope) {
            ("apiVersion" | "kind", _) => false,
            ("status", Scope::Main) => false,
            ("status", _) => true,
            (_, Scope::Status) => false,
            _ => true,
        };
        if !in_scope {
            continue;
        }
        if k == "metadata" {
            if let Some(meta) = v.as_object() {
                for mk in ["labels", "annotations", "finalizers", "ownerReferences"] {
                    if let Some(mv) = meta.get(mk) {
                        let mut prefix = vec!["f:metadata".to_string(), format!("f:{mk}")];
                        collect(
                            mv,
                            child_schema(Some(&META_SCHEMA), mk),
                            &mut prefix,
                            &mut out,
                        );
                    }
                }
            }
            continue;
        }
        let mut prefix = vec![format!("f:{k}")];
        collect(v, child_schema(schema, k), &mut prefix, &mut out);
    }
    out
}

/// Schema used for a top-level key (metadata gets the built-in one).
pub(crate) fn root_child_schema<'a>(schema: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    if key == "metadata" {
        Some(&META_SCHEMA)
    } else {
        child_schema(schema, key)
    }
}

/// Resolve a field path in an object.
pub(crate) fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for el in path {
        if let Some(f) = el.strip_prefix("f:") {
            cur = cur.get(f)?;
        } else if let Some(k) = el.strip_prefix("k:") {
            let want: Map<String, Value> = serde_json::from_str(k).ok()?;
            cur = cur.as_array()?.iter().find(|it| {
                want.iter()
                    .all(|(wk, wv)| it.get(wk).unwrap_or(&Value::Null) == wv)
            })?;
        } else if let Some(v) = el.strip_prefix("v:") {
            let want: Value = serde_json::from_str(v).ok()?;
            cur = cur.as_array()?.iter().find(|it| **it == want)?;
        } else if el != "." {
            return None;
        }
    }
    Some(cur)
}

/// Remove the field a path names (no-op if absent). An object the removal empties becomes null
/// in a custom resource's own fields, as the apiserver's structured-merge-diff leaves it
/// (kubernetes#103011, #117447; a non-nullable schema then refuses it; v1.36.0 briefly stored
/// `{}`, reverted in structured-merge-diff#331); in typed objects and metadata it disappears.
pub(crate) fn remove_emptying(obj: &mut Value, path: &[String], null_emptied: bool) {
    remove_at(obj, path);
    let Some((_, parent_path)) = path.split_last() else {
        return;
    };
    if parent_path.is_empty() || path.last().is_some_and(|l| l == ".") {
        return;
    }
    let emptied =
        value_at(obj, parent_path).is_some_and(|p| p.as_object().is_some_and(Map::is_empty));
    if !emptied {
        return;
    }
    if null_emptied && parent_path[0] != "f:metadata" {
        if let Some(p) = value_at_mut(obj, parent_path) {
            *p = Value::Null;
        }
    } else {
        remove_emptying(obj, parent_path, null_emptied);
    }
}

/// Remove the field a path names (no-op if absent).
pub(crate) fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    if last == "." {
        // Remove the list item named by the element before ".".
        remove_at(obj, parent_path);
        return;
    }
    let Some(parent) = value_at_mut(obj, parent_path) else {
        return;
    };
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = parent.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(k) = last.strip_prefix("k:") {
        let Ok(want) = serde_json::from_str::<Map<String, Value>>(k) else {
            return;
        };
        if let Some(a) = parent.as_array_mut() {
            a.retain(|it| {
                !want
                    .iter()
                    .all(|(wk, wv)| it.get(wk).unwrap_or(&Value::Null) == wv)
            });
        }
    } else if let Some(v) = last.strip_prefix("v:") {
        let Ok(want) = serde_json::from_str::<Value>(v) else {
            return;
        };
        if let Some(a) = parent.as_array_mut() {
            a.retain(|it| *it != want);
        }
    }
}

fn value_at_mut<'a>(obj: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut cur = obj;
    for el in path {
        if let Some(f) = el.strip_prefix("f:") {
            cur = cur.get_mut(f)?;
        } else if let Some(k) = el.strip_prefix("k:") {
            let want: Map<String, Value> = serde_json::from_str(k).ok()?;
            cur = cur.as_array_mut()?.iter_mut().find(|it| {
                want.iter()
                    .all(|(wk, wv)| it.get(wk).unwrap_or(&Value::Null) == wv)
            })?;
        } else if el != "." {
            return None;
        }
    }
    Some(cur)
}

/// `.spec.replicas`, `.status.conditions[type="Ready"]` (conflict messages).
pub(crate) fn display_path(path: &[String]) -> String {
    let mut s = String::new();
    for el in path {
        if let Some(f) = el.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = el.strip_prefix("k:") {
            let m: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = m.iter().map(|(a, b)| format!("{a}={b}")).collect();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = el.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        }
    }
    s
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub manager: String,
    pub operation: String,
    pub subresource: Option<String>,
    pub api_version: String,
    pub time: String,
    pub fields: FieldSet,
}

impl Entry {
    pub(crate) fn same_owner(
        &self,
        manager: &str,
        operation: &str,
        subresource: Option<&str>,
    ) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }
}

fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for el in path {
            let next = cur
                .entry(el.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            match next {
                Value::Object(m) => cur = m,
                _ => break,
            }
        }
    }
    Value::Object(root)
}

fn from_fields_v1(v: &Value, prefix: &mut FieldPath, out: &mut FieldSet) {
    let Some(m) = v.as_object() else { return };
    if m.is_empty() && !prefix.is_empty() {
        out.insert(prefix.clone());
        return;
    }
    for (k, child) in m {
        prefix.push(k.clone());
        from_fields_v1(child, prefix, out);
        prefix.pop();
    }
}

/// Parse `metadata.managedFields`.
pub(crate) fn read_entries(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let mut fields = FieldSet::new();
            if let Some(f) = e.get("fieldsV1") {
                from_fields_v1(f, &mut Vec::new(), &mut fields);
            }
            Entry {
                manager: s("manager"),
                operation: s("operation"),
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                api_version: s("apiVersion"),
                time: s("time"),
                fields,
            }
        })
        .collect()
}

/// Write `metadata.managedFields` (dropping entries that own nothing).
pub(crate) fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if let Some(s) = &e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Record an `Update` operation by `manager`: it takes ownership of the fields it changed;
/// removed fields leave every manager's set.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record_update(
    entries: &mut Vec<Entry>,
    old: Option<&Value>,
    new: &Value,
    schema: Option<&Value>,
    scope: Scope,
    manager: &str,
    subresource: Option<&str>,
    api_version: &str,
    now: &str,
) {
    let new_set = field_set(new, schema, scope);
    let old_set = old.map(|o| field_set(o, schema, scope)).unwrap_or_default();
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| match old {
            None => true,
            Some(o) => {
                if p.last().is_some_and(|l| l == ".") {
                    value_at(o, p).is_none()
                } else {
                    value_at(o, p) != value_at(new, p)
                }
            }
        })
        .cloned()
        .collect();
    let removed: FieldSet = old_set.difference(&new_set).cloned().collect();
    if changed.is_empty() && removed.is_empty() {
        return;
    }
    for e in entries.iter_mut() {
        e.fields
            .retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    if changed.is_empty() {
        entries.retain(|e| !e.fields.is_empty());
        return;
    }
    match entries
        .iter_mut()
        .find(|e| e.same_owner(manager, "Update", subresource))
    {
        Some(e) => {
            e.fields.extend(changed);
            e.time = now.to_string();
            e.api_version = api_version.to_string();
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: "Update".into(),
            subresource: subresource.map(str::to_string),
            api_version: api_version.to_string(),
            time: now.to_string(),
            fields: changed,
        }),
    }
    entries.retain(|e| !e.fields.is_empty());
}
