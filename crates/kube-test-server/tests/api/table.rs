//! Table output, as `kubectl get` asks for it.

use kube_test_server::TestServer;
use serde_json::{Value, json};

use crate::{
    JSON, LONG, MERGE, SAL, TABLE_ACCEPT, Watch, cells, column_names, delete, get, get_accept,
    is_fresh_age, patch, post, rv, sal, server,
};

async fn ready_false(s: &TestServer, name: &str, reason: &str) {
    let (c, o) = patch(
        s,
        &format!("{SAL}/{name}/status"),
        MERGE,
        json!({"status": {"conditions": [
            {"type": "Synced", "status": "True", "reason": "Other", "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z"},
            {"type": "Ready", "status": "False", "reason": reason, "message": "m", "lastTransitionTime": "2025-01-01T00:00:00Z"}
        ]}}),
    )
    .await;
    assert_eq!(c, 200, "{o}");
}

#[tokio::test]
async fn table_for_custom_resource_list_has_printer_columns() {
    let s = server();
    post(&s, SAL, sal("a")).await;
    post(&s, SAL, sal("b")).await;
    ready_false(&s, "a", "SecretNotFound").await;
    let (c, ct, t) = get_accept(&s, SAL, TABLE_ACCEPT).await;
    assert_eq!(c, 200, "{t}");
    assert_eq!(ct, "application/json;as=Table;v=v1;g=meta.k8s.io");
    assert_eq!(
        (&t["kind"], &t["apiVersion"]),
        (&json!("Table"), &json!("meta.k8s.io/v1"))
    );
    assert_eq!(
        t["metadata"]["resourceVersion"],
        s.resource_version().to_string()
    );
    assert_eq!(
        column_names(&t),
        ["Name", "Skill", "Stage", "Ready", "Reason", "Age"]
    );
    let defs = t["columnDefinitions"].as_array().unwrap();
    assert_eq!(defs[0]["format"], "name");
    assert_eq!(defs[5]["type"], "date");
    assert!(
        defs.iter()
            .all(|d| d["priority"] == 0 && d["description"].is_string())
    );
    let rows = t["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let a = cells(&rows[0]);
    assert_eq!(
        a[..5],
        [
            json!("a"),
            json!("amzn1.ask.skill.1"),
            json!("development"),
            json!("False"),
            json!("SecretNotFound")
        ]
    );
    assert!(is_fresh_age(&a[5]), "{a:?}");
    // No status yet: the filter columns select nothing (kubectl prints them empty).
    let b = cells(&rows[1]);
    assert_eq!(
        b[..5],
        [
            json!("b"),
            json!("amzn1.ask.skill.1"),
            json!("development"),
            Value::Null,
            Value::Null
        ]
    );
    // Rows carry PartialObjectMetadata by default (kubectl reads namespace and labels from it).
    let obj = &rows[0]["object"];
    assert_eq!(obj["kind"], "PartialObjectMetadata");
    assert_eq!(obj["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(obj["metadata"]["name"], "a");
    assert_eq!(obj["metadata"]["namespace"], "default");
    assert!(obj.get("spec").is_none());

    // includeObject=Object / None.
    let (_, _, t) = get_accept(&s, &format!("{SAL}?includeObject=Object"), TABLE_ACCEPT).await;
    assert_eq!(t["rows"][0]["object"]["kind"], "SkillAccountLinking");
    assert_eq!(t["rows"][0]["object"]["spec"]["stage"], "development");
    let (_, _, t) = get_accept(&s, &format!("{SAL}?includeObject=None"), TABLE_ACCEPT).await;
    assert_eq!(t["rows"][0]["object"], Value::Null);
    let (c, _, st) = get_accept(&s, &format!("{SAL}?includeObject=All"), TABLE_ACCEPT).await;
    assert_eq!((c, &st["reason"]), (400, &json!("BadRequest")));
    // v1beta1 when that is what the client asks for first.
    let (_, ct, t) = get_accept(
        &s,
        SAL,
        "application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json",
    )
    .await;
    assert_eq!(ct, "application/json;as=Table;v=v1beta1;g=meta.k8s.io");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1beta1");
    assert_eq!(t["rows"][0]["object"]["apiVersion"], "meta.k8s.io/v1beta1");
    // Selectors, limit and continue work as for lists; the ListMeta is kept.
    let (_, _, t) = get_accept(&s, &format!("{SAL}?limit=1"), TABLE_ACCEPT).await;
    assert_eq!(t["rows"].as_array().unwrap().len(), 1);
    let cont = t["metadata"]["continue"].as_str().unwrap().to_string();
    let (_, _, t) = get_accept(&s, &format!("{SAL}?limit=1&continue={cont}"), TABLE_ACCEPT).await;
    assert_eq!(t["rows"][0]["cells"][0], "b");
    let (_, _, t) = get_accept(
        &s,
        &format!("{SAL}?fieldSelector=metadata.name%3Db"),
        TABLE_ACCEPT,
    )
    .await;
    assert_eq!(t["rows"].as_array().unwrap().len(), 1);
    // Cluster-wide lists too.
    let (_, _, t) = get_accept(
        &s,
        "/apis/alexa.operator.dev/v1alpha1/skillaccountlinkings",
        TABLE_ACCEPT,
    )
    .await;
    assert_eq!(t["rows"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn without_a_table_accept_header_nothing_changes() {
    let s = server();
    post(&s, SAL, sal("a")).await;
    for accept in [
        JSON,
        "*/*",
        "application/json;as=PartialObjectMetadataList;v=v2;g=meta.k8s.io,application/json",
    ] {
        let (c, ct, l) = get_accept(&s, SAL, accept).await;
        assert_eq!((c, ct.as_str()), (200, JSON), "{accept}");
        assert_eq!(l["kind"], "SkillAccountLinkingList", "{accept}");
        assert_eq!(l, get(&s, SAL).await.1);
        let (_, _, o) = get_accept(&s, &format!("{SAL}/a"), accept).await;
        assert_eq!(o["kind"], "SkillAccountLinking");
    }
    // Errors stay Status bodies.
    let (c, _, st) = get_accept(&s, &format!("{SAL}/nope"), TABLE_ACCEPT).await;
    assert_eq!((c, &st["kind"]), (404, &json!("Status")));
}

#[tokio::test]
async fn table_for_one_custom_resource() {
    let s = server();
    let (_, o) = post(&s, SAL, sal("a")).await;
    ready_false(&s, "a", "Stalled").await;
    let (c, ct, t) = get_accept(&s, &format!("{SAL}/a"), TABLE_ACCEPT).await;
    assert_eq!(c, 200);
    assert_eq!(ct, "application/json;as=Table;v=v1;g=meta.k8s.io");
    assert_eq!(t["kind"], "Table");
    assert_eq!(column_names(&t).len(), 6);
    let rows = t["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["cells"][3], "False");
    assert_eq!(rows[0]["cells"][4], "Stalled");
    assert_eq!(rows[0]["object"]["metadata"]["uid"], o["metadata"]["uid"]);
    assert_eq!(
        t["metadata"]["resourceVersion"],
        rows[0]["object"]["metadata"]["resourceVersion"]
    );
}

#[tokio::test]
async fn table_cells_follow_the_printer_column_types() {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.t.dev"},
        "spec": {"group": "t.dev", "scope": "Namespaced", "names": {"kind": "Widget", "plural": "widgets"},
            "versions": [
                {"name": "v1", "served": true, "storage": true,
                 "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                 "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio"},
                    {"name": "On", "type": "boolean", "jsonPath": ".spec.on"},
                    {"name": "When", "type": "date", "jsonPath": ".spec.when", "description": "d"},
                    {"name": "Bad", "type": "date", "jsonPath": ".spec.bad"},
                    {"name": "Tags", "type": "string", "jsonPath": ".spec.tags", "priority": 1},
                    {"name": "Count", "type": "string", "jsonPath": ".spec.size"},
                    {"name": "Second", "type": "string", "jsonPath": ".spec.tags[1]"},
                    {"name": "Wrong", "type": "integer", "jsonPath": ".spec.on"}
                 ]},
                {"name": "v2", "served": true, "storage": false,
                 "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}
            ]}
    });
    let s = TestServer::new().with_crd(crd).unwrap();
    let when = (chrono::Utc::now() - chrono::Duration::hours(50))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (c, o) = post(
        &s,
        "/apis/t.dev/v1/namespaces/default/widgets",
        json!({"apiVersion": "t.dev/v1", "kind": "Widget", "metadata": {"name": "w"},
            "spec": {"size": 3, "ratio": 1.5, "on": true, "when": when, "bad": "yesterday", "tags": ["x", "y"]}}),
    )
    .await;
    assert_eq!(c, 201, "{o}");
    let (_, _, t) = get_accept(
        &s,
        "/apis/t.dev/v1/namespaces/default/widgets",
        TABLE_ACCEPT,
    )
    .await;
    let defs = t["columnDefinitions"].as_array().unwrap();
    assert_eq!(defs[4]["description"], "d");
    assert_eq!(
        defs[1]["description"],
        "Custom resource definition column (in JSONPath format): .spec.size"
    );
    assert_eq!(defs[6]["priority"], 1);
    assert_eq!(
        cells(&t["rows"][0]),
        [
            json!("w"),
            json!(3),
            json!(1.5),
            json!(true),
            json!("2d2h"),
            json!("<invalid>"),
            json!(r#"["x","y"]"#),
            json!("3"),
            json!("y"),
            Value::Null
        ]
    );
    // A version without printer columns gets NAME and AGE.
    let (_, _, t) = get_accept(
        &s,
        "/apis/t.dev/v2/namespaces/default/widgets",
        TABLE_ACCEPT,
    )
    .await;
    assert_eq!(column_names(&t), ["Name", "Age"]);
    assert_eq!(t["columnDefinitions"][1]["type"], "date");
    assert!(is_fresh_age(&t["rows"][0]["cells"][1]), "{t}");
}

#[tokio::test]
async fn table_watch_sends_one_row_tables_with_column_definitions_first() {
    let s = server();
    post(&s, SAL, sal("a")).await;
    let (c, mut w) = Watch::open_accept(&s, &format!("{SAL}?watch=true"), TABLE_ACCEPT).await;
    assert_eq!(c, 200);
    let e = w.next(LONG).await.unwrap();
    assert_eq!(e["type"], "ADDED");
    assert_eq!(e["object"]["kind"], "Table");
    assert_eq!(column_names(&e["object"]).len(), 6);
    assert_eq!(e["object"]["rows"].as_array().unwrap().len(), 1);
    assert_eq!(e["object"]["rows"][0]["cells"][0], "a");
    assert_eq!(e["object"]["rows"][0]["cells"][3], Value::Null);
    ready_false(&s, "a", "SecretNotFound").await;
    let e = w.next(LONG).await.unwrap();
    assert_eq!(e["type"], "MODIFIED");
    assert_eq!(e["object"]["kind"], "Table");
    assert_eq!(
        e["object"]["columnDefinitions"],
        Value::Null,
        "headers only once"
    );
    let row = &e["object"]["rows"][0];
    assert_eq!(row["cells"][3], "False");
    assert_eq!(row["cells"][4], "SecretNotFound");
    assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(
        e["object"]["metadata"]["resourceVersion"],
        row["object"]["metadata"]["resourceVersion"]
    );
    delete(&s, &format!("{SAL}/a"), None).await;
    let e = w.next(LONG).await.unwrap();
    assert_eq!(e["type"], "DELETED");
    assert_eq!(e["object"]["rows"][0]["cells"][0], "a");

    // From a resourceVersion, with a selector and includeObject=Object (kubectl get X NAME -w).
    let (_, b) = post(&s, SAL, sal("b")).await;
    let (_, mut w) = Watch::open_accept(
        &s,
        &format!(
            "{SAL}?watch=true&resourceVersion={}&fieldSelector=metadata.name%3Db&includeObject=Object",
            rv(&b)
        ),
        TABLE_ACCEPT,
    )
    .await;
    post(&s, SAL, sal("c")).await;
    ready_false(&s, "b", "Oops").await;
    let e = w.next(LONG).await.unwrap();
    assert_eq!(e["type"], "MODIFIED");
    assert_eq!(column_names(&e["object"]).len(), 6);
    assert_eq!(e["object"]["rows"][0]["cells"][4], "Oops");
    assert_eq!(
        e["object"]["rows"][0]["object"]["kind"],
        "SkillAccountLinking"
    );
    // Bookmarks are Tables too (the apiserver transforms every event but errors).
    let (_, mut w) = Watch::open_accept(
        &s,
        &format!("{SAL}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"),
        TABLE_ACCEPT,
    )
    .await;
    let mut types = Vec::new();
    loop {
        let e = w.next(LONG).await.unwrap();
        assert_eq!(e["object"]["kind"], "Table", "{e}");
        types.push(e["type"].as_str().unwrap().to_string());
        if e["type"] == "BOOKMARK" {
            let meta = &e["object"]["rows"][0]["object"]["metadata"];
            assert_eq!(meta["annotations"]["k8s.io/initial-events-end"], "true");
            break;
        }
    }
    assert_eq!(types, ["ADDED", "ADDED", "BOOKMARK"]);
    // Without the Accept header the same watch streams objects as before.
    let (_, mut w) = Watch::open(
        &s,
        &format!("{SAL}?watch=true&fieldSelector=metadata.name%3Db"),
    )
    .await;
    let e = w.next(LONG).await.unwrap();
    assert_eq!(e["object"]["kind"], "SkillAccountLinking");
}

#[tokio::test]
async fn table_for_builtin_kinds() {
    let s = server().with_namespaces(&["default"]);
    post(
        &s,
        "/api/v1/namespaces/default/secrets",
        json!({"metadata": {"name": "creds"}, "stringData": {"a": "1", "b": "2"}}),
    )
    .await;
    post(
        &s,
        "/api/v1/namespaces/default/configmaps",
        json!({"metadata": {"name": "cm"}, "data": {"a": "1"}, "binaryData": {"b": "AA=="}}),
    )
    .await;
    let (_, _, t) = get_accept(&s, "/api/v1/namespaces/default/secrets", TABLE_ACCEPT).await;
    assert_eq!(column_names(&t), ["Name", "Type", "Data", "Age"]);
    let c = cells(&t["rows"][0]);
    assert_eq!(c[..3], [json!("creds"), json!("Opaque"), json!(2)]);
    assert!(is_fresh_age(&c[3]), "{c:?}");
    let (_, _, t) = get_accept(&s, "/api/v1/namespaces/default/configmaps/cm", TABLE_ACCEPT).await;
    assert_eq!(column_names(&t), ["Name", "Data", "Age"]);
    assert_eq!(t["rows"][0]["cells"][1], 2);
    let (_, _, t) = get_accept(&s, "/api/v1/namespaces", TABLE_ACCEPT).await;
    assert_eq!(column_names(&t), ["Name", "Status", "Age"]);
    assert_eq!(
        cells(&t["rows"][0])[..2],
        [json!("default"), json!("Active")]
    );
    let (_, _, t) = get_accept(
        &s,
        "/apis/coordination.k8s.io/v1/namespaces/default/leases",
        TABLE_ACCEPT,
    )
    .await;
    assert_eq!(column_names(&t), ["Name", "Holder", "Age"]);
    assert_eq!(t["rows"], json!([]));
}
