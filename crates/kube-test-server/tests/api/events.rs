//! Events: one object, seen through both the core/v1 and the events.k8s.io API.

use kube_test_server::TestServer;
use serde_json::json;

use crate::{
    LONG, MERGE, SHORT, TABLE_ACCEPT, Watch, cells, column_names, delete, get, get_accept,
    is_fresh_age, patch, post, rv, server,
};

const CORE_EVENTS: &str = "/api/v1/namespaces/default/events";
const NEW_EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

/// Publishes the same `Linked` event `times` times through kube-runtime's Recorder.
pub(crate) async fn publish_linked(s: &TestServer, times: usize) {
    use k8s_openapi::api::core::v1::ObjectReference;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let recorder = Recorder::new(
        s.client(),
        Reporter {
            controller: "test-ctl".into(),
            instance: None,
        },
    );
    let reference = ObjectReference {
        api_version: Some("alexa.operator.dev/v1alpha1".into()),
        kind: Some("SkillAccountLinking".into()),
        name: Some("x".into()),
        namespace: Some("default".into()),
        uid: Some("u1".into()),
        ..Default::default()
    };
    let ev = Event {
        type_: EventType::Normal,
        reason: "Linked".into(),
        note: Some("done".into()),
        action: "Link".into(),
        secondary: None,
    };
    for _ in 0..times {
        recorder.publish(&ev, &reference).await.unwrap();
    }
}

#[tokio::test]
async fn events_k8s_io_events_are_listed_by_core_v1_with_the_describe_field_selector() {
    let s = server();
    publish_linked(&s, 2).await;
    // kubectl describe: involvedObject.{kind,name,namespace,uid}, chunked.
    let describe = format!(
        "{CORE_EVENTS}?fieldSelector=involvedObject.kind%3DSkillAccountLinking%2CinvolvedObject.name%3Dx%2CinvolvedObject.namespace%3Ddefault%2CinvolvedObject.uid%3Du1&limit=500"
    );
    let (c, l) = get(&s, &describe).await;
    assert_eq!(c, 200);
    assert_eq!(l["kind"], "EventList");
    let items = l["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{l}");
    let e = &items[0];
    assert_eq!(
        (&e["apiVersion"], &e["kind"]),
        (&json!("v1"), &json!("Event"))
    );
    assert_eq!(e["involvedObject"]["name"], "x");
    assert_eq!(e["involvedObject"]["uid"], "u1");
    assert_eq!(e["message"], "done");
    assert_eq!(e["reason"], "Linked");
    assert_eq!(e["action"], "Link");
    assert_eq!(e["type"], "Normal");
    assert_eq!(e["count"], 2);
    assert_eq!(e["series"]["count"], 2);
    assert_eq!(e["source"]["component"], "test-ctl");
    assert_eq!(e["reportingComponent"], "test-ctl");
    for k in ["firstTimestamp", "lastTimestamp"] {
        let t = e[k].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(t).is_ok() && t.ends_with('Z') && !t.contains('.'),
            "{k}: {t}"
        );
    }
    assert!(e.get("regarding").is_none() && e.get("note").is_none());
    // Other objects' events do not match.
    for other in [
        "involvedObject.uid%3Du2",
        "involvedObject.kind%3DSecret",
        "involvedObject.name%3Dy",
        "source%3Dsomeone-else",
    ] {
        let (_, l) = get(&s, &format!("{CORE_EVENTS}?fieldSelector={other}")).await;
        assert_eq!(l["items"], json!([]), "{other}");
    }
    let (_, l) = get(
        &s,
        &format!("{CORE_EVENTS}?fieldSelector=source%3Dtest-ctl,reason%3DLinked,type%3DNormal"),
    )
    .await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    // Get by name through core v1, and cluster-wide.
    let name = e["metadata"]["name"].as_str().unwrap();
    let (c, one) = get(&s, &format!("{CORE_EVENTS}/{name}")).await;
    assert_eq!((c, &one["message"]), (200, &json!("done")));
    let (_, all) = get(&s, "/api/v1/events").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
    // Still one object, stored as written, and get_object shows either view.
    assert_eq!(s.dump().len(), 1);
    assert_eq!(s.dump()[0]["apiVersion"], "events.k8s.io/v1");
    let core = s.get_object("v1", "events", Some("default"), name).unwrap();
    assert_eq!(core["message"], "done");
    let new = s
        .get_object("events.k8s.io/v1", "events", Some("default"), name)
        .unwrap();
    assert_eq!(new["note"], "done");
    let (_, l) = get(&s, NEW_EVENTS).await;
    assert_eq!(l["items"][0]["note"], "done");
    assert!(l["items"][0].get("message").is_none());
}

#[tokio::test]
async fn core_v1_events_are_seen_through_events_k8s_io() {
    let s = server();
    let (c, _) = post(
        &s,
        CORE_EVENTS,
        json!({"metadata": {"name": "e1"}, "involvedObject": {"kind": "Secret", "name": "s", "namespace": "default"},
            "reason": "Failed", "message": "boom", "type": "Warning", "count": 3,
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": "2025-01-02T03:04:05Z", "lastTimestamp": "2025-01-02T03:05:05Z"}),
    )
    .await;
    assert_eq!(c, 201);
    let (c, e) = get(&s, &format!("{NEW_EVENTS}/e1")).await;
    assert_eq!(c, 200);
    assert_eq!(e["apiVersion"], "events.k8s.io/v1");
    assert_eq!(e["regarding"]["name"], "s");
    assert_eq!(e["note"], "boom");
    assert_eq!(e["deprecatedCount"], 3);
    assert_eq!(e["deprecatedSource"]["host"], "node-1");
    assert_eq!(e["deprecatedFirstTimestamp"], "2025-01-02T03:04:05Z");
    assert_eq!(e["deprecatedLastTimestamp"], "2025-01-02T03:05:05Z");
    assert_eq!(e["reportingController"], "kubelet");
    assert_eq!(e["eventTime"], "2025-01-02T03:04:05.000000Z");
    let (_, l) = get(
        &s,
        &format!("{NEW_EVENTS}?fieldSelector=regarding.name%3Ds,reportingController%3Dkubelet"),
    )
    .await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    // One name, one object: the other API cannot create it again.
    let (c, st) = post(
        &s,
        NEW_EVENTS,
        json!({"metadata": {"name": "e1"}, "eventTime": "2025-01-02T03:04:05.000000Z", "reason": "R",
            "reportingController": "c", "reportingInstance": "i", "action": "A", "type": "Normal"}),
    )
    .await;
    assert_eq!((c, &st["reason"]), (409, &json!("AlreadyExists")));
    // A write through events.k8s.io keeps the core fields; deleting through either API removes it.
    let (c, p) = patch(&s, &format!("{NEW_EVENTS}/e1"), MERGE, json!({"note": "boom!", "series": {"count": 4, "lastObservedTime": "2025-01-02T03:06:05.000000Z"}})).await;
    assert_eq!((c, &p["note"]), (200, &json!("boom!")));
    let (_, core) = get(&s, &format!("{CORE_EVENTS}/e1")).await;
    assert_eq!(core["message"], "boom!");
    assert_eq!(core["involvedObject"]["name"], "s");
    assert_eq!(core["count"], 4);
    assert_eq!(core["lastTimestamp"], "2025-01-02T03:06:05Z");
    assert_eq!(core["firstTimestamp"], "2025-01-02T03:04:05Z");
    assert_eq!(core["source"]["host"], "node-1");
    // A no-op write through the other API is still a no-op.
    let before = rv(&core);
    let (_, same) = patch(
        &s,
        &format!("{CORE_EVENTS}/e1"),
        MERGE,
        json!({"message": "boom!"}),
    )
    .await;
    assert_eq!(rv(&same), before);
    let (c, _) = delete(&s, &format!("{NEW_EVENTS}/e1"), None).await;
    assert_eq!(c, 200);
    let (c, _) = get(&s, &format!("{CORE_EVENTS}/e1")).await;
    assert_eq!(c, 404);
}

#[tokio::test]
async fn watches_of_either_event_api_see_writes_through_the_other() {
    let s = server();
    let (_, mut core) = Watch::open(
        &s,
        &format!("{CORE_EVENTS}?watch=true&fieldSelector=involvedObject.name%3Dx"),
    )
    .await;
    let (_, mut new) = Watch::open(&s, &format!("{NEW_EVENTS}?watch=true")).await;
    publish_linked(&s, 2).await;
    let e = core.next_non_bookmark(LONG).await.unwrap();
    assert_eq!(e["type"], "ADDED");
    assert_eq!(e["object"]["apiVersion"], "v1");
    assert_eq!(e["object"]["message"], "done");
    assert_eq!(e["object"]["count"], 1);
    let e = core.next_non_bookmark(LONG).await.unwrap();
    assert_eq!(e["type"], "MODIFIED");
    assert_eq!(e["object"]["count"], 2);
    let e = new.next_non_bookmark(LONG).await.unwrap();
    assert_eq!(e["object"]["apiVersion"], "events.k8s.io/v1");
    assert_eq!(e["object"]["note"], "done");
    new.next_non_bookmark(LONG).await.unwrap();
    post(
        &s,
        CORE_EVENTS,
        json!({"metadata": {"name": "legacy"}, "involvedObject": {"name": "y"}, "reason": "R", "message": "old style"}),
    )
    .await;
    let e = new.next_non_bookmark(LONG).await.unwrap();
    assert_eq!(e["object"]["apiVersion"], "events.k8s.io/v1");
    assert_eq!(e["object"]["note"], "old style");
    assert_eq!(e["object"]["regarding"]["name"], "y");
    assert!(
        core.next_non_bookmark(SHORT).await.is_none(),
        "selector filters the core view"
    );
    // kubectl get events -w: a one-row Table per event, in core columns.
    let (_, mut t) = Watch::open_accept(
        &s,
        &format!("{NEW_EVENTS}?watch=true&fieldSelector=regarding.name%3Dx"),
        TABLE_ACCEPT,
    )
    .await;
    let e = t.next(LONG).await.unwrap();
    assert_eq!(e["object"]["kind"], "Table");
    assert_eq!(e["object"]["rows"][0]["cells"][3], "skillaccountlinking/x");
}

#[tokio::test]
async fn table_for_events_has_the_event_columns() {
    let s = server();
    publish_linked(&s, 3).await;
    for path in [CORE_EVENTS, NEW_EVENTS] {
        let (_, _, t) = get_accept(&s, path, TABLE_ACCEPT).await;
        assert_eq!(
            column_names(&t),
            [
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject",
                "Source",
                "Message",
                "First Seen",
                "Count",
                "Name"
            ],
            "{path}"
        );
        let wide: Vec<i64> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["priority"].as_i64().unwrap())
            .collect();
        assert_eq!(wide, [0, 0, 0, 0, 1, 1, 0, 1, 1, 1]);
        let c = cells(&t["rows"][0]);
        assert!(is_fresh_age(&c[0]), "{c:?}");
        assert_eq!(
            c[1..7],
            [
                json!("Normal"),
                json!("Linked"),
                json!("skillaccountlinking/x"),
                json!(""),
                json!("test-ctl, test-ctl"),
                json!("done")
            ]
        );
        assert!(is_fresh_age(&c[7]));
        assert_eq!(c[8], 3);
    }
}
