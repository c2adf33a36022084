//! CRD enforcement: pruning, defaults, schema validation and CEL rules.

use kube_test_server::TestServer;
use serde_json::{Value, json};

use crate::{APPLY, MERGE, SAL, SEN, patch, post, sal, server};

#[tokio::test]
async fn crd_prunes_unknown_fields() {
    let s = server();
    let mut o = sal("x");
    o["spec"]["unknown"] = json!(1);
    o["spec"]["accountLinking"]["bogus"] = json!("x");
    o["extra"] = json!(true);
    let (c, o) = post(&s, SAL, o).await;
    assert_eq!(c, 201);
    assert!(o["spec"].get("unknown").is_none());
    assert!(o["spec"]["accountLinking"].get("bogus").is_none());
    assert!(o.get("extra").is_none());
}

#[tokio::test]
async fn crd_applies_defaults() {
    let s = server();
    let (_, o) = post(&s, SAL, sal("x")).await;
    assert_eq!(o["spec"]["deletionPolicy"], "Delete");
    assert_eq!(o["spec"]["managementPolicy"], "Manage");
}

#[tokio::test]
async fn crd_schema_validation_is_422_with_causes() {
    let s = server();
    let mut o = sal("x");
    o["spec"]["stage"] = json!("prod");
    o["spec"]["skillId"] = json!("");
    o["spec"]["accountLinking"]["scopes"] = json!(vec!["a"; 16]);
    o["spec"]["accountLinking"]["clientId"] = json!(5);
    o["spec"]["credentialsSecretRef"] = json!({});
    let (c, st) = post(&s, SAL, o).await;
    assert_eq!(
        (c, st["reason"].as_str(), st["code"].as_u64()),
        (422, Some("Invalid"), Some(422))
    );
    let msg = st["message"].as_str().unwrap();
    assert!(
        msg.starts_with("SkillAccountLinking.alexa.operator.dev \"x\" is invalid: ["),
        "{msg}"
    );
    let causes: Vec<(String, String)> = st["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["field"].as_str().unwrap().to_string(),
                c["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        ("spec.stage", "FieldValueNotSupported"),
        ("spec.skillId", "FieldValueInvalid"),
        ("spec.accountLinking.scopes", "FieldValueTooMany"),
        ("spec.accountLinking.clientId", "FieldValueTypeInvalid"),
        ("spec.credentialsSecretRef.name", "FieldValueRequired"),
    ] {
        assert!(
            causes.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} not in {causes:?}"
        );
    }
    assert!(
        msg.contains(
            "spec.stage: Unsupported value: \"prod\": supported values: \"development\", \"live\""
        ),
        "{msg}"
    );
    assert!(
        msg.contains("spec.credentialsSecretRef.name: Required value"),
        "{msg}"
    );
    // Missing required spec entirely.
    let (c, st) = post(&s, SAL, json!({"metadata": {"name": "y"}})).await;
    assert_eq!(c, 422);
    assert_eq!(
        st["message"],
        "SkillAccountLinking.alexa.operator.dev \"y\" is invalid: spec: Required value"
    );
    // Nullable fields accept null.
    let mut n = sal("z");
    n["spec"]["accountLinking"]["skipOnEnablement"] = Value::Null;
    assert_eq!(post(&s, SAL, n).await.0, 201);
    // maxLength and minimum.
    let mut m = sal("w");
    m["spec"]["skillId"] = json!("a".repeat(256));
    m["spec"]["accountLinking"]["defaultTokenExpirationInSeconds"] = json!(0);
    let (_, st) = post(&s, SAL, m).await;
    let msg = st["message"].as_str().unwrap();
    assert!(
        msg.contains("spec.skillId: Too long: may not be more than 255 bytes"),
        "{msg}"
    );
    assert!(msg.contains("spec.accountLinking.defaultTokenExpirationInSeconds: Invalid value: 0: spec.accountLinking.defaultTokenExpirationInSeconds in body should be greater than or equal to 1"), "{msg}");
}

#[tokio::test]
async fn crd_schema_pattern_min_items_maximum_nullable_from_inline_crd() {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.test.dev"},
        "spec": {"group": "test.dev", "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "code": {"type": "string", "pattern": "^[a-z]+$"},
                        "tags": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                        "size": {"type": "integer", "maximum": 10},
                        "note": {"type": "string"},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                            "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}}
                    }}
                }}}}]}
    });
    let s = TestServer::new().with_crd(crd).unwrap();
    let path = "/apis/test.dev/v1/namespaces/default/widgets";
    let (c, st) = post(&s, path, json!({"metadata": {"name": "w"}, "spec": {"code": "ABC", "tags": [], "size": 11, "note": null}})).await;
    assert_eq!(c, 422);
    let msg = st["message"].as_str().unwrap();
    assert!(
        msg.contains(
            "spec.code: Invalid value: \"ABC\": spec.code in body should match '^[a-z]+$'"
        ),
        "{msg}"
    );
    assert!(
        msg.contains("spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items"),
        "{msg}"
    );
    assert!(
        msg.contains(
            "spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10"
        ),
        "{msg}"
    );
    assert!(
        msg.contains(
            "spec.note: Invalid value: \"null\": spec.note in body must be of type string: \"null\""
        ),
        "{msg}"
    );
    let (c, o) = post(
        &s,
        path,
        json!({"metadata": {"name": "w"}, "spec": {"code": "abc", "free": {"any": {"thing": 1}}}}),
    )
    .await;
    assert_eq!(c, 201);
    assert_eq!(
        o["spec"]["free"]["any"]["thing"], 1,
        "preserve-unknown-fields keeps data"
    );
    // list-type map: apply merges by key and detects duplicates.
    let (c, _) = patch(&s, &format!("{path}/w?fieldManager=a"), APPLY, json!({"apiVersion": "test.dev/v1", "kind": "Widget", "spec": {"ports": [{"name": "http", "port": 80}]}})).await;
    assert_eq!(c, 200);
    let (c, o) = patch(&s, &format!("{path}/w?fieldManager=b"), APPLY, json!({"apiVersion": "test.dev/v1", "kind": "Widget", "spec": {"ports": [{"name": "grpc", "port": 90}]}})).await;
    assert_eq!(c, 200);
    assert_eq!(o["spec"]["ports"].as_array().unwrap().len(), 2, "{o}");
    let (c, _) = patch(
        &s,
        &format!("{path}/w"),
        MERGE,
        json!({"spec": {"ports": [{"name": "a"}, {"name": "a"}]}}),
    )
    .await;
    assert_eq!(c, 422);
}

#[tokio::test]
async fn crd_cel_rules_and_transition_rules() {
    let s = server();
    // Plain rule: AUTH_CODE requires more fields.
    let mut o = sal("x");
    o["spec"]["accountLinking"]["type"] = json!("AUTH_CODE");
    let (c, st) = post(&s, SAL, o).await;
    assert_eq!(c, 422);
    assert_eq!(st["details"]["causes"][0]["field"], "spec.accountLinking");
    assert!(st["message"].as_str().unwrap().contains("spec.accountLinking: Invalid value: \"object\": type AUTH_CODE requires accessTokenUrl, accessTokenScheme and clientSecretRef"), "{st}");
    // Transition rule: skillId is immutable.
    post(&s, SAL, sal("x")).await;
    let (c, st) = patch(
        &s,
        &format!("{SAL}/x"),
        MERGE,
        json!({"spec": {"skillId": "amzn1.ask.skill.2"}}),
    )
    .await;
    assert_eq!(c, 422);
    assert_eq!(
        st["message"],
        "SkillAccountLinking.alexa.operator.dev \"x\" is invalid: spec.skillId: Invalid value: \"string\": skillId is immutable; create a new object instead"
    );
    assert_eq!(st["details"]["causes"][0]["field"], "spec.skillId");
    assert_eq!(st["details"]["causes"][0]["reason"], "FieldValueInvalid");
    // SkillEnablement: exactly one mode.
    let en = json!({"metadata": {"name": "e"}, "spec": {"skillId": "s", "stage": "live"}});
    let (c, st) = post(&s, SEN, en).await;
    assert_eq!(c, 422);
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("set exactly one of credentialsSecretRef"),
        "{st}"
    );
}
