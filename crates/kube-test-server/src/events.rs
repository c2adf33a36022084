//! Core `v1` Events and `events.k8s.io/v1` Events are two views of one stored object, as in a
//! cluster: both resources share one storage key, each object is stored in the form of the API
//! that last wrote it, and reads through the other API convert it.
//!
//! The conversion is the apiserver's (`regarding`↔`involvedObject`, `note`↔`message`,
//! `reportingController`↔`reportingComponent`, `deprecatedSource`↔`source`,
//! `deprecatedCount`↔`count`, `deprecated{First,Last}Timestamp`↔`{first,last}Timestamp`; `type`,
//! `reason`, `action`, `eventTime`, `series`, `related`, `reportingInstance` as they are) plus
//! what the apiserver leaves empty but older kubectl versions print: on the core view of an
//! event written through `events.k8s.io`, `count` comes from `series.count` (1 without a series),
//! `firstTimestamp` from `eventTime`, `lastTimestamp` from `series.lastObservedTime` (else
//! `eventTime`) and `source.component` from `reportingController`; on the `events.k8s.io` view
//! of a core event, `eventTime` comes from `firstTimestamp` and `reportingController` from
//! `source.component`.

use std::borrow::Cow;

use serde_json::{Map, Value, json};

use crate::resources::ResourceType;

/// apiVersion of core Events.
const CORE: &str = "v1";
/// apiVersion of `events.k8s.io` Events.
const EVENTS: &str = "events.k8s.io/v1";

/// Core field name ↔ `events.k8s.io` field name (all other fields are shared).
const RENAMES: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

/// Whether `rt` is one of the two Event resources.
pub(crate) fn is_event(rt: &ResourceType) -> bool {
    !rt.custom && rt.kind == "Event" && (rt.group.is_empty() || rt.group == "events.k8s.io")
}

/// The stored object as the API of `rt` shows it (converted when it was last written through
/// the other Event API; borrowed otherwise, including for every other resource).
pub(crate) fn view<'a>(rt: &ResourceType, obj: &'a Value) -> Cow<'a, Value> {
    if !is_event(rt) {
        return Cow::Borrowed(obj);
    }
    let want = if rt.group.is_empty() { CORE } else { EVENTS };
    match (
        obj.get("apiVersion").and_then(Value::as_str),
        obj.as_object(),
    ) {
        (Some(CORE), Some(m)) if want == EVENTS => Cow::Owned(Value::Object(to_events(m))),
        (Some(EVENTS), Some(m)) if want == CORE => Cow::Owned(Value::Object(to_core(m))),
        _ => Cow::Borrowed(obj),
    }
}

/// The core form of an Event in either form (what the apiserver's Event printer reads).
pub(crate) fn core_form(obj: &Value) -> Cow<'_, Value> {
    match (
        obj.get("apiVersion").and_then(Value::as_str),
        obj.as_object(),
    ) {
        (Some(EVENTS), Some(m)) => Cow::Owned(Value::Object(to_core(m))),
        _ => Cow::Borrowed(obj),
    }
}

fn blank(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        Some(Value::Object(m)) => m.is_empty(),
        _ => false,
    }
}

fn str_of<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// `2025-01-02T03:04:05.123456Z` → `2025-01-02T03:04:05Z` (MicroTime → Time).
fn to_seconds(t: &str) -> Option<String> {
    chrono::DateTime::parse_from_rfc3339(t).ok().map(|d| {
        d.with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    })
}

/// `2025-01-02T03:04:05Z` → `2025-01-02T03:04:05.000000Z` (Time → MicroTime).
fn to_micros(t: &str) -> Option<String> {
    chrono::DateTime::parse_from_rfc3339(t).ok().map(|d| {
        d.with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    })
}

fn rename(m: &Map<String, Value>, to_events: bool) -> Map<String, Value> {
    m.iter()
        .map(|(k, v)| {
            let k = RENAMES
                .iter()
                .find(|(core, ev)| if to_events { core == k } else { ev == k })
                .map_or(k.as_str(), |(core, ev)| if to_events { ev } else { core });
            (k.to_string(), v.clone())
        })
        .collect()
}

fn to_core(m: &Map<String, Value>) -> Map<String, Value> {
    let mut out = rename(m, false);
    out.insert("apiVersion".into(), json!(CORE));
    let controller = str_of(&out, "reportingComponent").map(str::to_string);
    if let Some(c) = controller {
        let source = out.entry("source").or_insert_with(|| json!({}));
        if !source.is_object() {
            *source = json!({});
        }
        if blank(source.get("component"))
            && let Some(s) = source.as_object_mut()
        {
            s.insert("component".into(), json!(c));
        }
    }
    let series = out.get("series").filter(|s| s.is_object()).cloned();
    if let Some(n) = series.as_ref().and_then(|s| s.get("count")).cloned() {
        out.insert("count".into(), n);
    } else if blank(out.get("count")) {
        out.insert("count".into(), json!(1));
    }
    let event_time = str_of(&out, "eventTime").and_then(to_seconds);
    if blank(out.get("firstTimestamp"))
        && let Some(t) = &event_time
    {
        out.insert("firstTimestamp".into(), json!(t));
    }
    let observed = series
        .as_ref()
        .and_then(|s| s.get("lastObservedTime"))
        .and_then(Value::as_str)
        .and_then(to_seconds);
    if let Some(t) = observed {
        out.insert("lastTimestamp".into(), json!(t));
    } else if blank(out.get("lastTimestamp"))
        && let Some(t) = out
            .get("firstTimestamp")
            .filter(|t| !blank(Some(t)))
            .cloned()
    {
        out.insert("lastTimestamp".into(), t);
    }
    out
}

fn to_events(m: &Map<String, Value>) -> Map<String, Value> {
    let mut out = rename(m, true);
    out.insert("apiVersion".into(), json!(EVENTS));
    if blank(out.get("reportingController"))
        && let Some(c) = out
            .get("deprecatedSource")
            .and_then(Value::as_object)
            .and_then(|s| str_of(s, "component"))
            .map(str::to_string)
    {
        out.insert("reportingController".into(), json!(c));
    }
    if blank(out.get("eventTime"))
        && let Some(t) = str_of(&out, "deprecatedFirstTimestamp")
            .or_else(|| str_of(&out, "deprecatedLastTimestamp"))
            .and_then(to_micros)
    {
        out.insert("eventTime".into(), json!(t));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(group: &str) -> ResourceType {
        ResourceType::builtin(group, "v1", "Event", "events", true, &[])
    }

    #[test]
    fn events_k8s_io_to_core_fills_what_old_kubectl_prints() {
        let ev = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "default"},
            "eventTime": "2025-01-02T03:04:05.123456Z",
            "series": {"count": 3, "lastObservedTime": "2025-01-02T03:09:00.000001Z"},
            "regarding": {"kind": "SkillAccountLinking", "name": "x", "uid": "u"},
            "note": "hello", "reason": "Linked", "action": "Link", "type": "Normal",
            "reportingController": "ctl", "reportingInstance": "ctl-1"
        });
        let core = view(&rt(""), &ev).into_owned();
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "x");
        assert_eq!(core["message"], "hello");
        assert_eq!(core["reportingComponent"], "ctl");
        assert_eq!(core["reportingInstance"], "ctl-1");
        assert_eq!(core["source"], json!({"component": "ctl"}));
        assert_eq!(core["count"], 3);
        assert_eq!(core["firstTimestamp"], "2025-01-02T03:04:05Z");
        assert_eq!(core["lastTimestamp"], "2025-01-02T03:09:00Z");
        assert_eq!(core["eventTime"], ev["eventTime"]);
        assert!(core.get("regarding").is_none() && core.get("note").is_none());
        // Unchanged through its own API and for other kinds.
        assert!(matches!(view(&rt("events.k8s.io"), &ev), Cow::Borrowed(_)));
        // A singleton: count 1, lastTimestamp = firstTimestamp.
        let mut single = ev.clone();
        single.as_object_mut().unwrap().remove("series");
        let core = view(&rt(""), &single).into_owned();
        assert_eq!(core["count"], 1);
        assert_eq!(core["lastTimestamp"], "2025-01-02T03:04:05Z");
    }

    #[test]
    fn core_to_events_k8s_io_and_back() {
        let core = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "default"},
            "involvedObject": {"kind": "Secret", "name": "s"},
            "message": "m", "reason": "R", "type": "Warning",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": "2025-01-02T03:04:05Z", "lastTimestamp": "2025-01-02T03:05:05Z",
            "count": 4
        });
        let ev = view(&rt("events.k8s.io"), &core).into_owned();
        assert_eq!(ev["apiVersion"], "events.k8s.io/v1");
        assert_eq!(ev["regarding"]["name"], "s");
        assert_eq!(ev["note"], "m");
        assert_eq!(ev["deprecatedSource"]["host"], "node-1");
        assert_eq!(ev["deprecatedCount"], 4);
        assert_eq!(ev["deprecatedFirstTimestamp"], "2025-01-02T03:04:05Z");
        assert_eq!(ev["reportingController"], "kubelet");
        assert_eq!(ev["eventTime"], "2025-01-02T03:04:05.000000Z");
        let back = view(&rt(""), &ev).into_owned();
        for k in [
            "involvedObject",
            "message",
            "source",
            "firstTimestamp",
            "lastTimestamp",
            "count",
        ] {
            assert_eq!(back[k], core[k], "{k}");
        }
    }
}
