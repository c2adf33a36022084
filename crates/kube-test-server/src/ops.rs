//! The verbs: get, list, create, update, patch (merge/JSON/apply), delete, deletecollection,
//! with the apiserver's metadata rules (uid, creationTimestamp, generation, resourceVersion
//! preconditions, finalizers and graceful deletion, status subresource split, no-op writes).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use parking_lot::MutexGuard;
use serde_json::{Map, Value, json};

use crate::Inner;
use crate::apply::{ApplyRequest, apply};
use crate::error::{ApiError, Cause};
use crate::events;
use crate::fields::{Entry, Scope, read_entries, record_update, write_entries};
use crate::namespaces;
use crate::patch::{PatchKind, json_patch, merge_patch};
use crate::resources::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{EventType, State};

/// Query parameters of a request.
#[derive(Debug, Default, Clone)]
pub(crate) struct Params(pub HashMap<String, String>);

impl Params {
    pub(crate) fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
        Ok(Params(pairs.into_iter().collect()))
    }
    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }
    pub(crate) fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }
}

/// One request against a resource.
pub(crate) struct Req<'a> {
    pub inner: &'a Inner,
    pub rt: Arc<ResourceType>,
    /// Namespace from the path; empty for cluster-scoped resources.
    pub ns: String,
    pub params: &'a Params,
    pub manager: String,
    pub dry_run: bool,
}

/// How ownership is recorded for a write.
enum FieldsMode {
    Update,
    Apply(Vec<Entry>),
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn lock(inner: &Inner) -> MutexGuard<'_, State> {
    inner.state.lock()
}

fn meta_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let m = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the request body must be a JSON object"))?;
    let meta = m.entry("metadata").or_insert_with(|| json!({}));
    if meta.is_null() {
        *meta = json!({});
    }
    meta.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

fn meta_str<'a>(obj: &'a Value, k: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get(k))
        .and_then(Value::as_str)
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn scope_for(rt: &ResourceType, status_sub: bool) -> Scope {
    match (rt.status_subresource, status_sub) {
        (true, true) => Scope::Status,
        (true, false) => Scope::Main,
        (false, _) => Scope::All,
    }
}

/// Check apiVersion/kind in a body against the addressed resource.
fn check_type_meta(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str)
        && av != rt.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            rt.api_version()
        )));
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && k != rt.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            rt.kind
        )));
    }
    Ok(())
}

/// RFC 1123 subdomain check for `metadata.name`.
fn validate_name(rt: &ResourceType, name: &str) -> Result<(), ApiError> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(ApiError::invalid(
            rt,
            name,
            &[Cause::new(
                "FieldValueInvalid",
                "metadata.name",
                format!(
                    "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                ),
            )],
        ));
    }
    Ok(())
}

static LABEL_NAME: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
    regex::Regex::new("^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$").ok()
});

fn label_name_ok(s: &str) -> bool {
    s.len() <= 63 && LABEL_NAME.as_ref().is_none_or(|r| r.is_match(s))
}

fn dns_subdomain_ok(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// ObjectMeta shape (400, as a decode error) and label syntax (422), as the apiserver checks.
fn validate_metadata(rt: &ResourceType, name: &str, obj: &Value) -> Result<(), ApiError> {
    let meta = obj.get("metadata");
    let decode_err = |field: &str, want: &str| {
        ApiError::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: json: cannot unmarshal into Go struct field ObjectMeta.metadata.{field} of type {want}",
            kind = rt.kind,
            v = rt.version
        ))
    };
    for k in ["labels", "annotations"] {
        match meta.and_then(|m| m.get(k)) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) if m.values().all(Value::is_string) => {}
            Some(_) => return Err(decode_err(k, "map[string]string")),
        }
    }
    match meta.and_then(|m| m.get("finalizers")) {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {}
        Some(_) => return Err(decode_err("finalizers", "[]string")),
    }
    let mut causes = Vec::new();
    if let Some(labels) = meta
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
    {
        for (k, v) in labels {
            let (prefix, key_name) = match k.split_once('/') {
                Some((p, n)) => (Some(p), n),
                None => (None, k.as_str()),
            };
            if prefix.is_some_and(|p| !dns_subdomain_ok(p)) || !label_name_ok(key_name) {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    "metadata.labels",
                    format!("Invalid value: {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"),
                ));
            }
            let val = v.as_str().unwrap_or_default();
            if !val.is_empty() && !label_name_ok(val) {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    "metadata.labels",
                    format!("Invalid value: {val:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"),
                ));
            }
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(rt, name, &causes))
    }
}

/// Kind-specific normalization (Secret `stringData`, Namespace phase).
fn normalize_kind(rt: &ResourceType, name: &str, obj: &mut Value) -> Result<(), ApiError> {
    if !rt.group.is_empty() || rt.custom {
        return Ok(());
    }
    let Some(m) = obj.as_object_mut() else {
        return Ok(());
    };
    match rt.kind.as_str() {
        "Secret" => {
            if let Some(sd) = m.remove("stringData")
                && let Some(sd) = sd.as_object()
            {
                let data = m.entry("data").or_insert_with(|| json!({}));
                if data.is_null() {
                    *data = json!({});
                }
                if let Some(d) = data.as_object_mut() {
                    for (k, v) in sd {
                        let s = v.as_str().unwrap_or_default();
                        d.insert(
                            k.clone(),
                            Value::String(base64::engine::general_purpose::STANDARD.encode(s)),
                        );
                    }
                }
            }
            if let Some(d) = m.get("data").and_then(Value::as_object) {
                for (k, v) in d {
                    let ok = v.as_str().is_some_and(|s| {
                        base64::engine::general_purpose::STANDARD.decode(s).is_ok()
                    });
                    if !ok {
                        return Err(ApiError::bad_request(format!(
                            "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data in data[{k:?}] of secret {name:?}"
                        )));
                    }
                }
            }
            m.entry("type").or_insert_with(|| json!("Opaque"));
        }
        "Namespace" => {
            let st = m.entry("status").or_insert_with(|| json!({}));
            if let Some(s) = st.as_object_mut() {
                s.entry("phase").or_insert_with(|| json!("Active"));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Prune, default and validate a custom resource against its schema (422 on failure).
fn enforce_schema(
    rt: &ResourceType,
    name: &str,
    obj: &mut Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let Some(schema) = &rt.schema else {
        return Ok(());
    };
    schema.prune(obj);
    schema.apply_defaults(obj);
    let causes = schema.validate(obj, old);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(rt, name, &causes))
    }
}

/// Set `apiVersion`/`kind` to the addressed version (objects are shared across versions).
/// Events written through the other Event API are converted first (see `events.rs`).
fn with_version(rt: &ResourceType, obj: Value) -> Value {
    let converted = match events::view(rt, &obj) {
        Cow::Owned(o) => Some(o),
        Cow::Borrowed(_) => None,
    };
    let mut obj = converted.unwrap_or(obj);
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), json!(rt.api_version()));
        m.insert("kind".into(), json!(rt.kind));
    }
    obj
}

/// Compare ignoring managedFields timestamps (a no-op write must not bump resourceVersion).
fn same_ignoring_times(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(list) = v
            .pointer_mut("/metadata/managedFields")
            .and_then(Value::as_array_mut)
        {
            for e in list {
                if let Some(m) = e.as_object_mut() {
                    m.remove("time");
                }
            }
        }
        v
    };
    strip(a) == strip(b)
}

/// Whether anything but metadata (and status, with a status subresource) changed.
fn spec_changed(rt: &ResourceType, old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            if rt.status_subresource {
                m.remove("status");
            }
        }
        v
    };
    strip(old) != strip(new)
}

/// The stored object as the API of `rt` shows it, for writes to start from (Events written
/// through the other Event API converted; everything else exactly as stored).
fn stored(st: &State, rt: &ResourceType, ns: &str, name: &str) -> Option<Value> {
    st.get(&rt.key, ns, name)
        .map(|o| events::view(rt, o).into_owned())
}

pub(crate) fn get(req: &Req<'_>, name: &str) -> Result<Value, ApiError> {
    let st = lock(req.inner);
    st.get(&req.rt.key, &req.ns, name)
        .cloned()
        .map(|o| with_version(&req.rt, o))
        .ok_or_else(|| ApiError::not_found(&req.rt, name))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    ns: String,
    name: String,
}

/// A list answer: the stored objects themselves (shared, not copied) and the ListMeta. Turned
/// into JSON in one pass ([`Listed::body`]): cloning every object into one big `Value` first
/// was most of what a list of 100,000 objects cost the test server (profiled: allocation,
/// clone and drop of the copies).
pub(crate) struct Listed {
    pub rt: Arc<ResourceType>,
    pub meta: Value,
    pub items: Vec<Arc<Value>>,
}

/// One stored object as the list's API version shows it, serialised without a copy when it
/// is stored in that version already (everything but Events written through the other API).
struct Versioned<'a> {
    rt: &'a ResourceType,
    api_version: &'a str,
    obj: &'a Value,
}

impl serde::Serialize for Versioned<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let same = self.obj.get("apiVersion").and_then(Value::as_str) == Some(self.api_version)
            && self.obj.get("kind").and_then(Value::as_str) == Some(self.rt.kind.as_str())
            && matches!(events::view(self.rt, self.obj), Cow::Borrowed(_));
        if same {
            self.obj.serialize(s)
        } else {
            with_version(self.rt, self.obj.clone()).serialize(s)
        }
    }
}

impl Listed {
    /// The `{Kind}List` as a value (Table conversion, delete-collection).
    pub(crate) fn into_value(self) -> Value {
        let items: Vec<Value> = self
            .items
            .iter()
            .map(|o| with_version(&self.rt, Value::clone(o)))
            .collect();
        json!({
            "apiVersion": self.rt.api_version(),
            "kind": self.rt.list_kind(),
            "metadata": self.meta,
            "items": items,
        })
    }

    /// The `{Kind}List` as JSON text.
    pub(crate) fn body(&self) -> String {
        #[derive(serde::Serialize)]
        struct List<'a> {
            #[serde(rename = "apiVersion")]
            api_version: &'a str,
            kind: String,
            metadata: &'a Value,
            items: Vec<Versioned<'a>>,
        }
        let api_version = self.rt.api_version();
        let list = List {
            api_version: &api_version,
            kind: self.rt.list_kind(),
            metadata: &self.meta,
            items: self
                .items
                .iter()
                .map(|obj| Versioned {
                    rt: &self.rt,
                    api_version: &api_version,
                    obj,
                })
                .collect(),
        };
        serde_json::to_string(&list).unwrap_or_else(|_| "{}".into())
    }
}

/// List, `ns` None = all namespaces (or a cluster-scoped resource).
pub(crate) fn list(req: &Req<'_>, ns: Option<&str>) -> Result<Listed, ApiError> {
    let labels = LabelSelector::parse(req.params.get("labelSelector").unwrap_or(""))?;
    let fields =
        FieldSelector::parse(req.params.get("fieldSelector").unwrap_or(""))?.for_resource(&req.rt);
    let limit = match req.params.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        None => 0,
    };
    let token = match req.params.get("continue") {
        Some(c) => {
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .map_err(|_| ApiError::bad_request("continue key is not valid: illegal base64"))?;
            let t: ContinueToken = serde_json::from_slice(&raw)
                .map_err(|_| ApiError::bad_request("continue key is not valid"))?;
            Some(t)
        }
        None => None,
    };
    let st = lock(req.inner);
    if let Some(t) = &token
        && t.rv < st.min_valid_rv
    {
        return Err(ApiError::expired(
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
        ));
    }
    let list_rv = token.as_ref().map_or(st.rv, |t| t.rv);
    let after = token.map(|t| (t.ns, t.name));
    let selecting =
        req.params.get("labelSelector").is_some() || req.params.get("fieldSelector").is_some();
    let mut items = Vec::new();
    let mut next: Option<(String, String)> = None;
    let matched = |obj: &Value| {
        let obj = events::view(&req.rt, obj);
        labels.matches(&obj) && fields.matches(&obj)
    };
    if let (Some(name), Some(n)) = (fields.pinned_name(), ns) {
        if let Some(o) = st.get_arc(&req.rt.key, n, name)
            && matched(o)
        {
            items.push(Arc::clone(o));
        }
    } else {
        for (k, o) in st.range(&req.rt.key, ns, after) {
            if !matched(o) {
                continue;
            }
            if limit > 0 && items.len() == limit {
                next = Some(k.clone());
                break;
            }
            items.push(Arc::clone(o));
        }
    }
    let mut meta = json!({ "resourceVersion": list_rv.to_string() });
    if let Some(last) = items.last()
        && next.is_some()
    {
        let t = ContinueToken {
            rv: list_rv,
            ns: meta_str(last, "namespace").unwrap_or("").to_string(),
            name: meta_str(last, "name").unwrap_or("").to_string(),
        };
        let raw = serde_json::to_vec(&t).map_err(|e| ApiError::internal(e.to_string()))?;
        meta["continue"] = json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw));
        if !selecting {
            let remaining = st.range(&req.rt.key, ns, Some((t.ns, t.name))).count();
            meta["remainingItemCount"] = json!(remaining);
        }
    }
    Ok(Listed {
        rt: req.rt.clone(),
        meta,
        items,
    })
}

/// POST: create.
pub(crate) fn create(req: &Req<'_>, body: Value) -> Result<(u16, Value), ApiError> {
    check_type_meta(&req.rt, &body)?;
    let mut st = lock(req.inner);
    create_locked(req, &mut st, body, FieldsMode::Update)
}

fn create_locked(
    req: &Req<'_>,
    st: &mut State,
    mut obj: Value,
    mode: FieldsMode,
) -> Result<(u16, Value), ApiError> {
    let rt = req.rt.clone();
    let now = now();
    namespaces::on_create(st, &rt, &req.ns, &mut obj)?;
    let meta = meta_mut(&mut obj)?;
    let name = match meta
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        Some(n) => n.to_string(),
        None => match meta.get("generateName").and_then(Value::as_str) {
            Some(g) => {
                let suffix: String = uuid::Uuid::new_v4()
                    .simple()
                    .to_string()
                    .chars()
                    .take(5)
                    .collect();
                format!("{g}{suffix}")
            }
            None => {
                return Err(ApiError::invalid(
                    &rt,
                    "",
                    &[Cause::new(
                        "FieldValueRequired",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    )],
                ));
            }
        },
    };
    meta.insert("name".into(), json!(name));
    if rt.namespaced {
        if let Some(bns) = meta.get("namespace").and_then(Value::as_str)
            && !bns.is_empty()
            && bns != req.ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta.insert("namespace".into(), json!(req.ns));
    } else {
        meta.remove("namespace");
    }
    for k in [
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "resourceVersion",
        "selfLink",
        "managedFields",
    ] {
        meta.remove(k);
    }
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now));
    if rt.has_generation() {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    validate_name(&rt, &name)?;
    if st.get(&rt.key, &req.ns, &name).is_some() {
        return Err(ApiError::already_exists(&rt, &name));
    }
    obj = with_version(&rt, obj);
    if rt.status_subresource
        && rt.custom
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    validate_metadata(&rt, &name, &obj)?;
    normalize_kind(&rt, &name, &mut obj)?;
    enforce_schema(&rt, &name, &mut obj, None)?;
    let entries = match mode {
        FieldsMode::Apply(e) => e,
        FieldsMode::Update => {
            let mut e = Vec::new();
            let schema = rt.schema.as_ref().map(|s| &s.schema);
            record_update(
                &mut e,
                None,
                &obj,
                schema,
                scope_for(&rt, false),
                &req.manager,
                None,
                &rt.api_version(),
                &now,
            );
            e
        }
    };
    write_entries(&mut obj, &entries);
    if req.dry_run {
        return Ok((201, obj));
    }
    let stored = st.commit(&rt.key, &req.ns, &name, EventType::Added, obj);
    Ok((201, stored))
}

fn check_rv_precondition(
    rt: &ResourceType,
    name: &str,
    old: &Value,
    new: &Value,
) -> Result<(), ApiError> {
    if let Some(rv) = meta_str(new, "resourceVersion").filter(|r| !r.is_empty())
        && Some(rv) != meta_str(old, "resourceVersion")
    {
        return Err(ApiError::stale(rt, name));
    }
    Ok(())
}

/// PUT (main resource or `/status`).
pub(crate) fn update(
    req: &Req<'_>,
    name: &str,
    body: Value,
    status_sub: bool,
) -> Result<(u16, Value), ApiError> {
    check_type_meta(&req.rt, &body)?;
    if let Some(n) = meta_str(&body, "name")
        && n != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    let mut st = lock(req.inner);
    let old =
        stored(&st, &req.rt, &req.ns, name).ok_or_else(|| ApiError::not_found(&req.rt, name))?;
    match meta_str(&body, "resourceVersion").filter(|r| !r.is_empty()) {
        Some(_) => check_rv_precondition(&req.rt, name, &old, &body)?,
        None if req.rt.custom => {
            return Err(ApiError::invalid(
                &req.rt,
                name,
                &[Cause::new(
                    "FieldValueInvalid",
                    "metadata.resourceVersion",
                    "Invalid value: 0x0: must be specified for an update",
                )],
            ));
        }
        None => {}
    }
    finish_update(
        req,
        &mut st,
        name,
        &old,
        body,
        status_sub,
        FieldsMode::Update,
    )
}

/// PATCH (merge, strategic-as-merge, JSON patch, server-side apply).
pub(crate) fn patch(
    req: &Req<'_>,
    name: &str,
    kind: PatchKind,
    body: Value,
    status_sub: bool,
) -> Result<(u16, Value), ApiError> {
    let rt = req.rt.clone();
    if kind == PatchKind::Strategic && rt.custom {
        return Err(ApiError::unsupported_media(
            "application/strategic-merge-patch+json (not supported for custom resources)",
        ));
    }
    let mut st = lock(req.inner);
    let old = stored(&st, &rt, &req.ns, name);
    if kind == PatchKind::Apply {
        check_type_meta(&rt, &body)?;
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the apply configuration must be an object",
            ));
        }
        if let Some(n) = meta_str(&body, "name")
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        if req.params.get("fieldManager").is_none() {
            return Err(ApiError::bad_request(
                "PATCH requests with apply content type require a fieldManager",
            ));
        }
        let now = now();
        let areq = ApplyRequest {
            rt: &rt,
            name,
            applied: &body,
            manager: &req.manager,
            force: req.params.flag("force"),
            scope: scope_for(&rt, status_sub),
            subresource: status_sub.then_some("status"),
            now: &now,
        };
        return match old {
            None if status_sub => Err(ApiError::not_found(&rt, name)),
            None => {
                let res = apply(None, &areq)?;
                let mut obj = res.object;
                if let Ok(m) = meta_mut(&mut obj) {
                    m.insert("name".into(), json!(name));
                }
                create_locked(req, &mut st, obj, FieldsMode::Apply(res.entries))
            }
            Some(old) => {
                check_rv_precondition(&rt, name, &old, &body)?;
                let res = apply(Some(&old), &areq)?;
                finish_update(
                    req,
                    &mut st,
                    name,
                    &old,
                    res.object,
                    status_sub,
                    FieldsMode::Apply(res.entries),
                )
            }
        };
    }
    let old = old.ok_or_else(|| ApiError::not_found(&rt, name))?;
    let candidate = match kind {
        PatchKind::Json => json_patch(&old, &body)?,
        _ => {
            if !body.is_object() {
                return Err(ApiError::bad_request(
                    "the merge patch must be a JSON object",
                ));
            }
            merge_patch(&old, &body)
        }
    };
    check_rv_precondition(&rt, name, &old, &candidate)?;
    finish_update(
        req,
        &mut st,
        name,
        &old,
        candidate,
        status_sub,
        FieldsMode::Update,
    )
}

/// Common tail of every update: server-owned metadata, status split, schema, finalizer rules,
/// generation, field ownership, no-op detection, commit (or delete when the last finalizer of
/// a terminating object goes).
fn finish_update(
    req: &Req<'_>,
    st: &mut State,
    name: &str,
    old: &Value,
    candidate: Value,
    status_sub: bool,
    mode: FieldsMode,
) -> Result<(u16, Value), ApiError> {
    let rt = req.rt.clone();
    let now = now();
    if !candidate.is_object() {
        return Err(ApiError::bad_request("the object must be a JSON object"));
    }
    let mut new = if rt.status_subresource && status_sub {
        let mut n = old.clone();
        if let Some(m) = n.as_object_mut() {
            match candidate.get("status") {
                Some(s) => m.insert("status".into(), s.clone()),
                None => m.remove("status"),
            };
        }
        n
    } else {
        let mut n = candidate;
        if rt.status_subresource
            && let Some(m) = n.as_object_mut()
        {
            match old.get("status") {
                Some(s) => m.insert("status".into(), s.clone()),
                None => m.remove("status"),
            };
        }
        n
    };
    {
        let old_meta = old
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let meta = meta_mut(&mut new)?;
        for k in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
            "managedFields",
            "selfLink",
        ] {
            match old_meta.get(k) {
                Some(v) => meta.insert(k.to_string(), v.clone()),
                None => meta.remove(k),
            };
        }
    }
    new = with_version(&rt, new);
    validate_metadata(&rt, name, &new)?;
    normalize_kind(&rt, name, &mut new)?;
    enforce_schema(&rt, name, &mut new, Some(old))?;
    let terminating = old.pointer("/metadata/deletionTimestamp").is_some();
    let new_fins = finalizers(&new);
    if terminating {
        let old_fins = finalizers(old);
        let added: Vec<&String> = new_fins.iter().filter(|f| !old_fins.contains(f)).collect();
        if !added.is_empty() {
            let list = added
                .iter()
                .map(|f| format!("{f:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ApiError::invalid(
                &rt,
                name,
                &[Cause::new(
                    "FieldValueForbidden",
                    "metadata.finalizers",
                    format!(
                        "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{list}}}"
                    ),
                )],
            ));
        }
    }
    if rt.has_generation() && spec_changed(&rt, old, &new) {
        let g = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        meta_mut(&mut new)?.insert("generation".into(), json!(g));
    }
    let entries = match mode {
        FieldsMode::Apply(e) => e,
        FieldsMode::Update => {
            let mut e = read_entries(old);
            let schema = rt.schema.as_ref().map(|s| &s.schema);
            let sub = (rt.status_subresource && status_sub).then_some("status");
            record_update(
                &mut e,
                Some(old),
                &new,
                schema,
                scope_for(&rt, status_sub),
                &req.manager,
                sub,
                &rt.api_version(),
                &now,
            );
            e
        }
    };
    write_entries(&mut new, &entries);
    if same_ignoring_times(&new, old) {
        return Ok((200, old.clone()));
    }
    if req.dry_run {
        return Ok((200, new));
    }
    let event = if terminating && new_fins.is_empty() {
        EventType::Deleted
    } else {
        EventType::Modified
    };
    let stored = st.commit(&rt.key, &req.ns, name, event, new);
    if event == EventType::Deleted {
        namespaces::reap(st, &req.ns);
    }
    Ok((200, stored))
}

/// DeleteOptions from the body and query.
fn preconditions(body: &Value) -> (Option<String>, Option<String>) {
    let p = body.get("preconditions");
    let s = |k: &str| {
        p.and_then(|p| p.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    (s("uid"), s("resourceVersion"))
}

/// DELETE one object: graceful (deletionTimestamp) while finalizers remain, else removal.
pub(crate) fn delete(req: &Req<'_>, name: &str, body: &Value) -> Result<(u16, Value), ApiError> {
    let rt = req.rt.clone();
    let mut st = lock(req.inner);
    let old = stored(&st, &rt, &req.ns, name).ok_or_else(|| ApiError::not_found(&rt, name))?;
    let (uid, rv) = preconditions(body);
    if let Some(u) = uid
        && Some(u.as_str()) != meta_str(&old, "uid")
    {
        let have = meta_str(&old, "uid").unwrap_or("");
        return Err(ApiError::conflict(
            &rt,
            name,
            &format!("Precondition failed: UID in precondition: {u}, UID in object meta: {have}"),
        ));
    }
    if let Some(r) = rv
        && Some(r.as_str()) != meta_str(&old, "resourceVersion")
    {
        let have = meta_str(&old, "resourceVersion").unwrap_or("");
        return Err(ApiError::conflict(
            &rt,
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {r}, ResourceVersion in object meta: {have}"
            ),
        ));
    }
    delete_locked(req, &mut st, name, old)
}

pub(crate) fn delete_locked(
    req: &Req<'_>,
    st: &mut State,
    name: &str,
    old: Value,
) -> Result<(u16, Value), ApiError> {
    let rt = req.rt.clone();
    if namespaces::is_namespace(&rt) {
        return namespaces::delete(req, st, name, old);
    }
    if !finalizers(&old).is_empty() {
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok((202, with_version(&rt, old)));
        }
        let mut new = old.clone();
        let meta = meta_mut(&mut new)?;
        meta.insert("deletionTimestamp".into(), json!(now()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        if rt.has_generation() {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            meta.insert("generation".into(), json!(g));
        }
        if req.dry_run {
            return Ok((202, new));
        }
        let stored = st.commit(&rt.key, &req.ns, name, EventType::Modified, new);
        return Ok((202, stored));
    }
    if req.dry_run {
        return Ok((200, old));
    }
    let stored = st.commit(&rt.key, &req.ns, name, EventType::Deleted, old);
    namespaces::reap(st, &req.ns);
    if rt.custom {
        // Custom resources answer with the deleted object (ReturnDeletedObject).
        return Ok((200, with_version(&rt, stored)));
    }
    // Built-in kinds answer with a Success Status (kube: `Either::Right`).
    let mut details = json!({ "name": name, "kind": rt.plural });
    if let Some(uid) = meta_str(&stored, "uid") {
        details["uid"] = json!(uid);
    }
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    Ok((
        200,
        json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details }),
    ))
}

/// DELETE on a collection: delete every object the selectors match.
pub(crate) fn delete_collection(req: &Req<'_>, ns: Option<&str>) -> Result<Value, ApiError> {
    let listed = list(req, ns)?.into_value();
    let mut st = lock(req.inner);
    let mut items = Vec::new();
    for it in listed
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let name = meta_str(&it, "name").unwrap_or("").to_string();
        let item_ns = meta_str(&it, "namespace").unwrap_or("").to_string();
        let Some(old) = stored(&st, &req.rt, &item_ns, &name) else {
            continue;
        };
        let sub = Req {
            inner: req.inner,
            rt: req.rt.clone(),
            ns: item_ns,
            params: req.params,
            manager: req.manager.clone(),
            dry_run: req.dry_run,
        };
        let (_, v) = delete_locked(&sub, &mut st, &name, old.clone())?;
        items.push(if v.get("kind").and_then(Value::as_str) == Some("Status") {
            with_version(&req.rt, old)
        } else {
            v
        });
    }
    Ok(json!({
        "apiVersion": req.rt.api_version(),
        "kind": req.rt.list_kind(),
        "metadata": { "resourceVersion": st.rv.to_string() },
        "items": items,
    }))
}

#[cfg(test)]
mod list_tests {
    use super::*;

    #[test]
    fn a_list_written_from_the_store_equals_the_list_as_a_value() {
        let rt = Arc::new(ResourceType::builtin(
            "",
            "v1",
            "Secret",
            "secrets",
            true,
            &[],
        ));
        let same = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a", "namespace": "n"}, "data": {"k": "dg=="}});
        // Stored under another version: written through `with_version`, not as stored.
        let other = json!({"apiVersion": "v0", "kind": "Secret", "metadata": {"name": "b", "namespace": "n"}});
        let listed = Listed {
            rt,
            meta: json!({"resourceVersion": "9", "continue": "c", "remainingItemCount": 3}),
            items: vec![Arc::new(same), Arc::new(other)],
        };
        let body: Value = serde_json::from_str(&listed.body()).unwrap();
        assert_eq!(body["items"][1]["apiVersion"], "v1");
        assert_eq!(body["kind"], "SecretList");
        assert_eq!(body, listed.into_value());
    }
}
