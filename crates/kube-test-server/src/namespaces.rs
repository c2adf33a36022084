//! Namespace lifecycle as the apiserver and kube-controller-manager's namespace controller
//! make it: a new Namespace is `Active` with the `kubernetes` spec finalizer; DELETE marks it
//! `Terminating` (deletionTimestamp, `status.phase`) and deletes every namespaced object in it
//! (objects with finalizers get a deletionTimestamp and stay until their finalizers are
//! removed); while it is terminating, creating anything in it is refused with 403 Forbidden
//! (the NamespaceLifecycle admission plugin's answer); it goes away once it is empty.
//!
//! The namespace controller works asynchronously in a real cluster; here its work is done
//! within the request that makes it necessary (the DELETE of the Namespace, the removal of the
//! last object in it), so tests see the end state as soon as watches deliver it.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::ops::{self, Req};
use crate::resources::{ResourceType, TypeKey};
use crate::store::{EventType, State};

/// Storage key of Namespaces (`group/plural`, core group empty).
fn namespace_key() -> TypeKey {
    Arc::from("/namespaces")
}

/// Whether `rt` is the Namespace resource.
pub(crate) fn is_namespace(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.plural == "namespaces"
}

/// What the apiserver does on a create in namespace `ns` (empty for cluster-scoped kinds):
/// refuse it while `ns` is terminating ([`admit_create`]); give a new Namespace its defaults.
pub(crate) fn on_create(
    st: &State,
    rt: &ResourceType,
    ns: &str,
    obj: &mut Value,
) -> Result<(), ApiError> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    admit_create(st, rt, ns, name)?;
    if is_namespace(rt) {
        defaults(obj);
    }
    Ok(())
}

/// What a fresh Namespace gets from the apiserver: `spec.finalizers: [kubernetes]` and
/// `status.phase: Active`.
fn defaults(obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let spec = map.entry("spec").or_insert_with(|| json!({}));
    if let Some(spec) = spec.as_object_mut() {
        spec.entry("finalizers")
            .or_insert_with(|| json!(["kubernetes"]));
    }
    map.insert("status".into(), json!({"phase": "Active"}));
}

fn terminating(st: &State, ns: &str) -> Option<Value> {
    let obj = st.get(&namespace_key(), "", ns)?;
    let deleting = obj.pointer("/metadata/deletionTimestamp").is_some()
        || obj.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating");
    deleting.then(|| obj.clone())
}

/// The NamespaceLifecycle admission check of a create in namespace `ns` (`name` as sent; empty
/// with generateName): 403 Forbidden while the namespace is terminating.
fn admit_create(st: &State, rt: &ResourceType, ns: &str, name: &str) -> Result<(), ApiError> {
    if !rt.namespaced || terminating(st, ns).is_none() {
        return Ok(());
    }
    let mut details = json!({
        "name": name,
        "kind": rt.plural,
        "causes": [{
            "reason": "NamespaceTerminating",
            "message": format!("namespace {ns} is being terminated"),
            "field": "metadata.namespace",
        }],
    });
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    let mut err = ApiError::new(
        403,
        "Forbidden",
        format!(
            "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            rt.qualified_plural()
        ),
    );
    err.details = Some(details);
    Err(err)
}

/// DELETE of Namespace `name` (stored as `old`): marks it Terminating, deletes its contents
/// and, if nothing with a finalizer is left, removes it. Answers 200 with the terminating
/// Namespace, as the apiserver does.
pub(crate) fn delete(
    req: &Req<'_>,
    st: &mut State,
    name: &str,
    old: Value,
) -> Result<(u16, Value), ApiError> {
    if old.pointer("/metadata/deletionTimestamp").is_some() {
        return Ok((200, old));
    }
    let mut marked = old;
    if let Some(meta) = marked.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("deletionTimestamp".into(), json!(ops::now()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
    }
    if let Some(map) = marked.as_object_mut() {
        let status = map.entry("status").or_insert_with(|| json!({}));
        status["phase"] = json!("Terminating");
    }
    if req.dry_run {
        return Ok((200, marked));
    }
    let stored = st.commit(&req.rt.key, "", name, EventType::Modified, marked);
    delete_contents(req, st, name)?;
    reap(st, name);
    Ok((200, stored))
}

/// Deletes every namespaced object in `ns`, as the namespace controller does.
fn delete_contents(req: &Req<'_>, st: &mut State, ns: &str) -> Result<(), ApiError> {
    let types: Vec<Arc<ResourceType>> = {
        let registry = req.inner.registry.read();
        let mut seen = std::collections::HashSet::new();
        registry
            .ordered
            .iter()
            .filter(|rt| rt.namespaced && seen.insert(rt.key.clone()))
            .cloned()
            .collect()
    };
    for rt in types {
        let names: Vec<String> = st
            .range(&rt.key, Some(ns), None)
            .map(|((_, name), _)| name.clone())
            .collect();
        let sub = Req {
            inner: req.inner,
            rt: rt.clone(),
            ns: ns.to_string(),
            params: req.params,
            manager: req.manager.clone(),
            dry_run: false,
        };
        for name in names {
            if let Some(old) = st.get(&rt.key, ns, &name).cloned() {
                ops::delete_locked(&sub, st, &name, old)?;
            }
        }
    }
    Ok(())
}

/// Removes namespace `ns` if it is terminating and holds no object any more (called after
/// every removal of a namespaced object).
pub(crate) fn reap(st: &mut State, ns: &str) {
    let Some(namespace) = terminating(st, ns) else {
        return;
    };
    if st.holds_objects_in(ns) {
        return;
    }
    st.commit(&namespace_key(), "", ns, EventType::Deleted, namespace);
}
