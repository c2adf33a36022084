//! Server-side apply: creation, managed fields, conflicts, removal of fields a manager stopped
//! applying.

use kube_test_server::TestServer;
use serde_json::{Value, json};

use crate::{APPLY, MERGE, SAL, patch, sal, server};

#[tokio::test]
async fn server_side_apply_creates_on_missing_and_records_managed_fields() {
    let s = server();
    let (c, o) = patch(&s, &format!("{SAL}/x?fieldManager=alice"), APPLY, sal("x")).await;
    assert_eq!(c, 201, "{o}");
    let mf = o["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0]["manager"], "alice");
    assert_eq!(mf[0]["operation"], "Apply");
    assert!(mf[0]["fieldsV1"]["f:spec"]["f:skillId"].is_object());
    // Status apply by another manager: separate entry with subresource "status".
    let st = json!({"apiVersion": "alexa.operator.dev/v1alpha1", "kind": "SkillAccountLinking", "status": {"observedGeneration": 1, "drift": []}});
    let (c, o) = patch(&s, &format!("{SAL}/x/status?fieldManager=ctl"), APPLY, st).await;
    assert_eq!(c, 200);
    assert_eq!(o["status"]["observedGeneration"], 1);
    let e = o["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "ctl")
        .unwrap()
        .clone();
    assert_eq!(e["subresource"], "status");
    // Missing fieldManager is a 400.
    assert_eq!(patch(&s, &format!("{SAL}/x"), APPLY, sal("x")).await.0, 400);
    // Status apply cannot create.
    assert_eq!(
        patch(
            &s,
            &format!("{SAL}/nope/status?fieldManager=ctl"),
            APPLY,
            json!({"status": {}})
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn server_side_apply_conflicts_unless_forced() {
    let s = server();
    patch(&s, &format!("{SAL}/x?fieldManager=alice"), APPLY, sal("x")).await;
    let mut bob = sal("x");
    bob["spec"]["accountLinking"]["clientId"] = json!("bob-id");
    let (c, st) = patch(&s, &format!("{SAL}/x?fieldManager=bob"), APPLY, bob.clone()).await;
    assert_eq!((c, st["reason"].as_str()), (409, Some("Conflict")));
    assert_eq!(
        st["message"],
        "Apply failed with 1 conflict: conflict with \"alice\" using alexa.operator.dev/v1alpha1: .spec.accountLinking.clientId"
    );
    assert_eq!(st["details"]["causes"][0]["reason"], "FieldManagerConflict");
    assert_eq!(
        st["details"]["causes"][0]["field"],
        ".spec.accountLinking.clientId"
    );
    // Same values: shared ownership, no conflict.
    assert_eq!(
        patch(&s, &format!("{SAL}/x?fieldManager=carol"), APPLY, sal("x"))
            .await
            .0,
        200
    );
    // Merge patches (Update) take fields over without conflicts.
    let (c, o) = patch(
        &s,
        &format!("{SAL}/x?force=true&fieldManager=bob"),
        APPLY,
        bob,
    )
    .await;
    assert_eq!(c, 200);
    assert_eq!(o["spec"]["accountLinking"]["clientId"], "bob-id");
    let alice = o["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "alice")
        .unwrap()
        .clone();
    assert!(
        alice["fieldsV1"]["f:spec"]["f:accountLinking"]
            .get("f:clientId")
            .is_none(),
        "forced field moved to bob"
    );
    // An Update by a third manager then conflicts with bob's apply.
    patch(
        &s,
        &format!("{SAL}/x?fieldManager=dave"),
        MERGE,
        json!({"spec": {"accountLinking": {"clientId": "dave-id"}}}),
    )
    .await;
    let mut bob2 = sal("x");
    bob2["spec"]["accountLinking"]["clientId"] = json!("bob-id");
    let (c, st) = patch(&s, &format!("{SAL}/x?fieldManager=bob"), APPLY, bob2).await;
    assert_eq!(c, 409, "{st}");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("conflict with \"dave\"")
    );
}

#[tokio::test]
async fn server_side_apply_removes_fields_the_manager_stopped_applying() {
    let s = server();
    let mut cfg = sal("x");
    cfg["metadata"]["labels"] = json!({"team": "a", "tier": "web"});
    cfg["spec"]["accountLinking"]["scopes"] = json!(["profile"]);
    patch(
        &s,
        &format!("{SAL}/x?fieldManager=alice"),
        APPLY,
        cfg.clone(),
    )
    .await;
    patch(
        &s,
        &format!("{SAL}/x?fieldManager=other"),
        MERGE,
        json!({"metadata": {"labels": {"keep": "me"}}}),
    )
    .await;
    cfg["metadata"]["labels"] = json!({"team": "a"});
    cfg["spec"]["accountLinking"]
        .as_object_mut()
        .unwrap()
        .remove("scopes");
    let (c, o) = patch(&s, &format!("{SAL}/x?fieldManager=alice"), APPLY, cfg).await;
    assert_eq!(c, 200);
    assert_eq!(o["metadata"]["labels"], json!({"team": "a", "keep": "me"}));
    assert!(o["spec"]["accountLinking"].get("scopes").is_none());
}

#[tokio::test]
async fn server_side_apply_nulls_an_object_it_empties_and_removes_an_atomic_one() {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.test.dev"},
        "spec": {"group": "test.dev", "scope": "Namespaced",
            "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "keep": {"type": "string"},
                        "granular": {"type": "object", "properties": {"a": {"type": "string"}}},
                        "nullableRef": {"type": "object", "nullable": true, "properties": {"name": {"type": "string"}}},
                        "atomicRef": {"type": "object", "nullable": true, "x-kubernetes-map-type": "atomic",
                            "required": ["name"], "properties": {"name": {"type": "string"}}}
                    }}
                }}}}]}
    });
    let s = TestServer::new().with_crd(crd).unwrap();
    let path = "/apis/test.dev/v1/namespaces/default/gadgets/g?fieldManager=gitops";
    let gadget = |spec: Value| json!({"apiVersion": "test.dev/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": spec});
    let full = json!({"keep": "k", "granular": {"a": "1"}, "nullableRef": {"name": "n"}, "atomicRef": {"name": "s"}});
    let (c, _) = patch(&s, path, APPLY, gadget(full)).await;
    assert_eq!(c, 201);
    let entries = s
        .get_object("test.dev/v1", "gadgets", Some("default"), "g")
        .unwrap();
    let owned = entries["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"].clone();
    assert_eq!(
        owned["f:atomicRef"],
        json!({}),
        "an atomic object is one leaf: {owned}"
    );
    assert_eq!(owned["f:granular"], json!({"f:a": {}}), "{owned}");

    // Dropping an atomic object removes it whole.
    let (c, o) = patch(
        &s,
        path,
        APPLY,
        gadget(json!({"keep": "k", "granular": {"a": "1"}, "nullableRef": {"name": "n"}})),
    )
    .await;
    assert_eq!(c, 200, "{o}");
    assert!(o["spec"].get("atomicRef").is_none(), "{o}");
    // Dropping a granular one leaves null: kept when the schema allows it...
    let (c, o) = patch(
        &s,
        path,
        APPLY,
        gadget(json!({"keep": "k", "granular": {"a": "1"}})),
    )
    .await;
    assert_eq!(c, 200, "{o}");
    assert_eq!(o["spec"]["nullableRef"], Value::Null, "{o}");
    // ...refused when it does not (kubernetes#117447).
    let (c, st) = patch(&s, path, APPLY, gadget(json!({"keep": "k"}))).await;
    assert_eq!(c, 422);
    let msg = st["message"].as_str().unwrap();
    assert!(
        msg.contains("spec.granular in body must be of type object: \"null\""),
        "{msg}"
    );
}
