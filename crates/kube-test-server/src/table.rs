//! Server-side printing: `meta.k8s.io/v1` (or `v1beta1`) `Table` answers for clients whose
//! `Accept` header asks for `application/json;as=Table;v=v1;g=meta.k8s.io` (kubectl get).
//!
//! Custom resources get NAME plus the CRD version's `additionalPrinterColumns` (AGE when it has
//! none), their JSONPaths evaluated like the apiextensions apiserver does (the first match; a
//! `string` column prints it as text, `date` as an age such as `5m`, `integer`/`number`/`boolean`
//! as JSON values, no match as `null`). Built-in kinds get the apiserver's columns (NAME, AGE,
//! Secret TYPE/DATA, Event LAST SEEN/TYPE/REASON/OBJECT/MESSAGE, ...). As in the apiserver every
//! cell is sent (`-o wide` columns have `priority` 1) and each row carries the object as
//! `PartialObjectMetadata` unless `includeObject=Object` or `None` is given.

use http::HeaderMap;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::events;
use crate::jsonpath::JsonPath;
use crate::metadata::MetadataOptions;
use crate::ops::Params;
use crate::resources::ResourceType;

/// What each row's `object` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Include {
    None,
    Metadata,
    Object,
}

/// A negotiated Table answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TableOptions {
    /// `v1` or `v1beta1` (of `meta.k8s.io`).
    pub version: &'static str,
    pub include: Include,
}

impl TableOptions {
    pub(crate) fn content_type(&self) -> String {
        format!("application/json;as=Table;v={};g=meta.k8s.io", self.version)
    }
}

/// What a read's answer is converted to, as negotiated from `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Convert {
    /// `as=Table` (kubectl get).
    Table(TableOptions),
    /// `as=PartialObjectMetadata` or `as=PartialObjectMetadataList` (metadata-only clients).
    Metadata(MetadataOptions),
}

/// Whether the request asks for a conversion: the first media range of `Accept` that this server
/// can answer decides (`as=Table`, `as=PartialObjectMetadata` or `as=PartialObjectMetadataList`
/// of meta.k8s.io v1/v1beta1 → that conversion; plain JSON or `*/*` → the object itself;
/// anything else is skipped). Without such a range nothing changes. As in the apiserver, the
/// metadata kinds are negotiated on every endpoint and a list/object mismatch is refused later
/// (406, see [`MetadataOptions::check`]).
pub(crate) fn negotiate(headers: &HeaderMap, params: &Params) -> Result<Option<Convert>, ApiError> {
    let mut chosen: Option<(&'static str, &'static str)> = None;
    'ranges: for accept in headers.get_all(http::header::ACCEPT) {
        let Ok(accept) = accept.to_str() else {
            continue;
        };
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            if !matches!(media.as_str(), "application/json" | "application/*" | "*/*") {
                continue;
            }
            let (mut as_, mut g, mut v) = (None, None, None);
            for p in parts {
                if let Some((k, val)) = p.split_once('=') {
                    let val = val.trim().trim_matches('"').to_string();
                    match k.trim() {
                        "as" => as_ = Some(val),
                        "g" => g = Some(val),
                        "v" => v = Some(val),
                        _ => {}
                    }
                }
            }
            let kind = match as_.as_deref() {
                None => break 'ranges,
                Some("Table") => "Table",
                Some("PartialObjectMetadata") => "PartialObjectMetadata",
                Some("PartialObjectMetadataList") => "PartialObjectMetadataList",
                Some(_) => continue,
            };
            if g.as_deref() != Some("meta.k8s.io") {
                continue;
            }
            match v.as_deref() {
                Some("v1") => {
                    chosen = Some((kind, "v1"));
                    break 'ranges;
                }
                Some("v1beta1") => {
                    chosen = Some((kind, "v1beta1"));
                    break 'ranges;
                }
                _ => {}
            }
        }
    }
    let Some((kind, version)) = chosen else {
        return Ok(None);
    };
    if kind != "Table" {
        return Ok(Some(Convert::Metadata(MetadataOptions {
            version,
            list: kind == "PartialObjectMetadataList",
        })));
    }
    let include = match params.get("includeObject") {
        None | Some("Metadata") => Include::Metadata,
        Some("Object") => Include::Object,
        Some("None") => Include::None,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Unable to convert to Table as requested: includeObject: Unsupported value: {other:?}: supported values: \"Metadata\", \"None\", \"Object\""
            )));
        }
    };
    Ok(Some(Convert::Table(TableOptions { version, include })))
}

/// One `additionalPrinterColumns` entry of a CRD version.
#[derive(Debug, Clone)]
pub(crate) struct PrinterColumn {
    name: String,
    type_: String,
    format: String,
    description: String,
    priority: i64,
    /// None when the JSONPath is outside the supported subset (cells are then `null`).
    path: Option<JsonPath>,
}

impl PrinterColumn {
    /// The columns of one CRD version (`spec.versions[i]`), AGE when it declares none.
    pub(crate) fn for_version(version: &Value) -> Vec<PrinterColumn> {
        let cols: Vec<PrinterColumn> = version
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(PrinterColumn::from_crd).collect())
            .unwrap_or_default();
        if cols.is_empty() {
            vec![PrinterColumn {
                name: "Age".into(),
                type_: "date".into(),
                format: String::new(),
                description: CREATED.into(),
                priority: 0,
                path: JsonPath::parse(".metadata.creationTimestamp").ok(),
            }]
        } else {
            cols
        }
    }

    fn from_crd(c: &Value) -> Option<PrinterColumn> {
        let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let json_path = s("jsonPath");
        let name = s("name");
        if name.is_empty() || json_path.is_empty() {
            return None;
        }
        let description = match s("description") {
            d if d.is_empty() => {
                format!("Custom resource definition column (in JSONPath format): {json_path}")
            }
            d => d,
        };
        Some(PrinterColumn {
            name,
            type_: s("type"),
            format: s("format"),
            description,
            priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
            path: JsonPath::parse(&json_path).ok(),
        })
    }

    fn cell(&self, obj: &Value, now: chrono::DateTime<chrono::Utc>) -> Value {
        let Some(first) = self
            .path
            .as_ref()
            .and_then(|p| p.find(obj).first().copied())
        else {
            return Value::Null;
        };
        match self.type_.as_str() {
            "string" => json!(text(first)),
            "integer" => first
                .as_i64()
                .or_else(|| first.as_f64().map(|f| f as i64))
                .map_or(Value::Null, |i| json!(i)),
            "number" => first.as_f64().map_or(Value::Null, |f| json!(f)),
            "boolean" => first.as_bool().map_or(Value::Null, |b| json!(b)),
            "date" => match first {
                Value::String(s) if s.is_empty() => json!("<unknown>"),
                Value::String(s) => json!(
                    chrono::DateTime::parse_from_rfc3339(s)
                        .map(|t| human_duration(now, t.with_timezone(&chrono::Utc)))
                        .unwrap_or_else(|_| "<invalid>".into())
                ),
                _ => Value::Null,
            },
            _ => Value::Null,
        }
    }
}

/// How kube's jsonpath prints one value: strings raw, numbers and booleans as text, objects
/// and arrays as JSON, null as `<no value>`.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<no value>".into(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

const NAME: &str = "Name of the object, unique within its namespace.";
const CREATED: &str = "Time since the server created the object (metadata.creationTimestamp).";

fn col(name: &str, format: &str, priority: i64, description: &str) -> Value {
    json!({"name": name, "type": "string", "format": format, "description": description, "priority": priority})
}

/// Column definitions for `rt`.
fn columns(rt: &ResourceType) -> Vec<Value> {
    if rt.custom {
        let mut out = vec![col("Name", "name", 0, NAME)];
        out.extend(rt.printer_columns.iter().map(|c| {
            json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority})
        }));
        return out;
    }
    let name = col("Name", "name", 0, NAME);
    let age = col("Age", "", 0, CREATED);
    match rt.kind.as_str() {
        "Event" => vec![
            col(
                "Last Seen",
                "",
                0,
                "When the event was last observed (lastTimestamp, series.lastObservedTime).",
            ),
            col("Type", "", 0, "Normal or Warning."),
            col(
                "Reason",
                "",
                0,
                "Short machine-readable reason of the event.",
            ),
            col(
                "Object",
                "",
                0,
                "The object the event is about (kind/name).",
            ),
            col(
                "Subobject",
                "",
                1,
                "The part of the object the event is about (involvedObject.fieldPath).",
            ),
            col("Source", "", 1, "The component that reported the event."),
            col("Message", "", 0, "Human-readable description of the event."),
            col(
                "First Seen",
                "",
                1,
                "When the event was first observed (firstTimestamp, eventTime).",
            ),
            col("Count", "", 1, "How often the event occurred."),
            col("Name", "name", 1, NAME),
        ],
        "Namespace" => vec![
            name,
            col("Status", "", 0, "The phase of the namespace."),
            age,
        ],
        "Secret" => vec![
            name,
            col("Type", "", 0, "The type of the secret."),
            col("Data", "", 0, "Number of keys in data."),
            age,
        ],
        "ConfigMap" => vec![
            name,
            col("Data", "", 0, "Number of keys in data and binaryData."),
            age,
        ],
        "ServiceAccount" => vec![
            name,
            col("Secrets", "", 0, "Number of secrets listed."),
            age,
        ],
        "Lease" => vec![
            name,
            col("Holder", "", 0, "The current holder of the lease."),
            age,
        ],
        _ => vec![name, age],
    }
}

fn str_at<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn len_at(obj: &Value, ptr: &str) -> usize {
    obj.pointer(ptr).map_or(0, |v| match v {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    })
}

/// `translateTimestampSince`: `<unknown>` for a missing time.
fn since(now: chrono::DateTime<chrono::Utc>, t: &str) -> String {
    if t.is_empty() {
        return "<unknown>".into();
    }
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|t| human_duration(now, t.with_timezone(&chrono::Utc)))
        .unwrap_or_else(|_| "<unknown>".into())
}

/// Cells of one object (in the form the API of `rt` serves).
fn cells(rt: &ResourceType, obj: &Value, now: chrono::DateTime<chrono::Utc>) -> Vec<Value> {
    let name = json!(str_at(obj, "/metadata/name"));
    if rt.custom {
        let mut out = vec![name];
        out.extend(rt.printer_columns.iter().map(|c| c.cell(obj, now)));
        return out;
    }
    let age = json!(since(now, str_at(obj, "/metadata/creationTimestamp")));
    match rt.kind.as_str() {
        "Event" => event_cells(&events::core_form(obj), now),
        "Namespace" => vec![name, json!(str_at(obj, "/status/phase")), age],
        "Secret" => vec![
            name,
            json!(str_at(obj, "/type")),
            json!(len_at(obj, "/data")),
            age,
        ],
        "ConfigMap" => vec![
            name,
            json!(len_at(obj, "/data") + len_at(obj, "/binaryData")),
            age,
        ],
        "ServiceAccount" => vec![name, json!(len_at(obj, "/secrets")), age],
        "Lease" => vec![name, json!(str_at(obj, "/spec/holderIdentity")), age],
        _ => vec![name, age],
    }
}

/// The apiserver's Event printer (on the core form).
fn event_cells(e: &Value, now: chrono::DateTime<chrono::Utc>) -> Vec<Value> {
    let first_ts = str_at(e, "/firstTimestamp");
    let first = if first_ts.is_empty() {
        since(now, str_at(e, "/eventTime"))
    } else {
        since(now, first_ts)
    };
    let last_ts = str_at(e, "/lastTimestamp");
    let mut last = if last_ts.is_empty() {
        first.clone()
    } else {
        since(now, last_ts)
    };
    let mut count = e.get("count").and_then(Value::as_i64).unwrap_or(0);
    if let Some(series) = e.get("series").filter(|s| s.is_object()) {
        last = since(
            now,
            series
                .get("lastObservedTime")
                .and_then(Value::as_str)
                .unwrap_or(""),
        );
        count = series.get("count").and_then(Value::as_i64).unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let kind = str_at(e, "/involvedObject/kind").to_lowercase();
    let target = match str_at(e, "/involvedObject/name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let non_empty = |a: &'static str, b: &'static str| {
        Some(str_at(e, a))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| str_at(e, b))
    };
    let component = non_empty("/source/component", "/reportingComponent");
    let instance = non_empty("/source/host", "/reportingInstance");
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    vec![
        json!(last),
        json!(str_at(e, "/type")),
        json!(str_at(e, "/reason")),
        json!(target),
        json!(str_at(e, "/involvedObject/fieldPath")),
        json!(source),
        json!(str_at(e, "/message").trim()),
        json!(first),
        json!(count),
        json!(str_at(e, "/metadata/name")),
    ]
}

/// A Table of `objs` (already in the requested version's form) with `meta` as its ListMeta;
/// `headers: false` leaves out the column definitions (watch events after the first).
pub(crate) fn table(
    rt: &ResourceType,
    objs: &[Value],
    meta: Value,
    opts: TableOptions,
    headers: bool,
) -> Value {
    let now = chrono::Utc::now();
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            let object = match opts.include {
                Include::None => Value::Null,
                Include::Object => o.clone(),
                Include::Metadata => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": format!("meta.k8s.io/{}", opts.version),
                    "metadata": o.get("metadata").cloned().unwrap_or_else(|| json!({})),
                }),
            };
            json!({ "cells": cells(rt, o, now), "object": object })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{}", opts.version),
        "metadata": meta,
        "columnDefinitions": if headers { Value::Array(columns(rt)) } else { Value::Null },
        "rows": rows,
    })
}

/// A Table of one object (get, watch events); its metadata carries the object's
/// resourceVersion.
pub(crate) fn table_of_one(
    rt: &ResourceType,
    obj: &Value,
    opts: TableOptions,
    headers: bool,
) -> Value {
    let mut meta = json!({});
    if let Some(rv) = obj.pointer("/metadata/resourceVersion") {
        meta["resourceVersion"] = rv.clone();
    }
    table(rt, std::slice::from_ref(obj), meta, opts, headers)
}

/// A Table of a `{Kind}List` (its ListMeta kept).
pub(crate) fn table_of_list(rt: &ResourceType, list: &Value, opts: TableOptions) -> Value {
    let items = list
        .get("items")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let meta = list.get("metadata").cloned().unwrap_or_else(|| json!({}));
    table(rt, items, meta, opts, true)
}

/// apimachinery's `duration.HumanDuration` of `now - t` (`5s`, `3m20s`, `2d4h`, `3y`, ...).
pub(crate) fn human_duration(
    now: chrono::DateTime<chrono::Utc>,
    t: chrono::DateTime<chrono::Utc>,
) -> String {
    let d = now - t;
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d.num_minutes();
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d.num_hours();
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_apimachinery() {
        let now = chrono::Utc::now();
        let ago = |s: i64| human_duration(now, now - chrono::Duration::seconds(s));
        for (secs, want) in [
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (200, "3m20s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (47 * 3600, "47h"),
            (2 * 86400, "2d"),
            (2 * 86400 + 4 * 3600, "2d4h"),
            (30 * 86400, "30d"),
            (800 * 86400, "2y70d"),
            (3000 * 86400, "8y"),
        ] {
            assert_eq!(ago(secs), want, "{secs}s");
        }
        assert_eq!(
            human_duration(now, now + chrono::Duration::seconds(5)),
            "<invalid>"
        );
    }

    #[test]
    fn accept_negotiation() {
        let h = |a: &str| {
            let mut m = HeaderMap::new();
            m.insert(http::header::ACCEPT, a.parse().unwrap());
            m
        };
        let p = Params::default();
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        let table = |a: &str, p: &Params| match negotiate(&h(a), p).unwrap() {
            Some(Convert::Table(t)) => t,
            other => panic!("{a}: {other:?}"),
        };
        assert_eq!(
            table(kubectl, &p),
            TableOptions {
                version: "v1",
                include: Include::Metadata
            }
        );
        let beta = "application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json";
        assert_eq!(table(beta, &p).version, "v1beta1");
        for plain in [
            "application/json",
            "*/*",
            "application/json, application/json;as=Table;v=v1;g=meta.k8s.io",
            "application/json;as=Table;v=v2;g=meta.k8s.io",
            "application/json;as=PartialObjectMetadataList;v=v2;g=meta.k8s.io",
            "application/json;as=PartialObjectMetadata;v=v1;g=example.com",
            "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io",
            "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
        ] {
            assert_eq!(negotiate(&h(plain), &p).unwrap(), None, "{plain}");
        }
        assert_eq!(negotiate(&HeaderMap::new(), &p).unwrap(), None);
        // What kube's `Api<PartialObjectMeta<K>>` and client-go's metadata client send.
        for (accept, version, list) in [
            (
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
                "v1",
                true,
            ),
            (
                "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
                "v1",
                true,
            ),
            (
                "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1",
                "v1beta1",
                false,
            ),
        ] {
            assert_eq!(
                negotiate(&h(accept), &p).unwrap(),
                Some(Convert::Metadata(MetadataOptions { version, list })),
                "{accept}"
            );
        }
        // includeObject only matters to Tables.
        let bad = Params::parse(Some("includeObject=All")).unwrap();
        assert!(
            negotiate(
                &h("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"),
                &bad
            )
            .is_ok()
        );
        let p = Params::parse(Some("includeObject=Object")).unwrap();
        assert_eq!(table(kubectl, &p).include, Include::Object);
        let p = Params::parse(Some("includeObject=All")).unwrap();
        assert!(negotiate(&h(kubectl), &p).is_err());
    }

    #[test]
    fn cells_render_like_kube_jsonpath() {
        assert_eq!(text(&json!("a")), "a");
        assert_eq!(text(&json!(3)), "3");
        assert_eq!(text(&json!(2.0)), "2");
        assert_eq!(text(&json!(1.5)), "1.5");
        assert_eq!(text(&json!(true)), "true");
        assert_eq!(text(&json!(null)), "<no value>");
        assert_eq!(text(&json!({"b": 1, "a": [1]})), r#"{"a":[1],"b":1}"#);
    }
}
