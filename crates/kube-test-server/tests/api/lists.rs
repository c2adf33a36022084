//! Lists: kind, resourceVersion, label and field selectors, pagination.

use serde_json::{Value, json};

use crate::{SAL, get, post, sal, server};

#[tokio::test]
async fn list_has_kind_list_and_resource_version() {
    let s = server();
    post(&s, SAL, sal("x")).await;
    let (c, l) = get(&s, SAL).await;
    assert_eq!(c, 200);
    assert_eq!(l["kind"], "SkillAccountLinkingList");
    assert_eq!(l["apiVersion"], "alexa.operator.dev/v1alpha1");
    assert_eq!(
        l["metadata"]["resourceVersion"],
        s.resource_version().to_string()
    );
    assert_eq!(l["items"][0]["kind"], "SkillAccountLinking");
    let (_, l) = get(&s, "/api/v1/namespaces/default/secrets").await;
    assert_eq!(l["kind"], "SecretList");
}

#[tokio::test]
async fn list_label_selectors() {
    let s = server();
    for (n, labels) in [
        ("a", json!({"app": "x", "tier": "web"})),
        ("b", json!({"app": "y"})),
        ("c", json!({})),
    ] {
        post(
            &s,
            "/api/v1/namespaces/default/configmaps",
            json!({"metadata": {"name": n, "labels": labels}}),
        )
        .await;
    }
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    for (sel, want) in [
        ("app%3Dx", vec!["a"]),
        ("app!%3Dx", vec!["b", "c"]),
        ("app%20in%20(x,y)", vec!["a", "b"]),
        ("app%20notin%20(x)", vec!["b", "c"]),
        ("tier", vec!["a"]),
        ("!app", vec!["c"]),
    ] {
        let (_, l) = get(
            &s,
            &format!("/api/v1/namespaces/default/configmaps?labelSelector={sel}"),
        )
        .await;
        assert_eq!(names(&l), want, "{sel}");
    }
}

#[tokio::test]
async fn list_field_selectors() {
    let s = server();
    for ns in ["a", "b"] {
        for n in ["x", "y"] {
            post(
                &s,
                &format!("/api/v1/namespaces/{ns}/secrets"),
                json!({"metadata": {"name": n}}),
            )
            .await;
        }
    }
    // (list path with its field selector, names and namespaces listed)
    let rows = [
        (
            "/api/v1/secrets?fieldSelector=metadata.name%3Dx",
            vec![("a", "x"), ("b", "x")],
        ),
        (
            "/api/v1/secrets?fieldSelector=metadata.namespace%3Db,metadata.name!%3Dx",
            vec![("b", "y")],
        ),
        (
            "/api/v1/namespaces/a/secrets?fieldSelector=metadata.name%3Dy",
            vec![("a", "y")],
        ),
    ];
    for (uri, want) in rows {
        let (_, l) = get(&s, uri).await;
        let mut listed: Vec<(String, String)> = l["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["metadata"]["namespace"].as_str().unwrap().to_string(),
                    i["metadata"]["name"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        listed.sort();
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(ns, n)| (ns.to_string(), n.to_string()))
            .collect();
        assert_eq!(listed, want, "{uri}");
    }
}

#[tokio::test]
async fn list_limit_and_continue() {
    let s = server();
    for i in 0..5 {
        post(
            &s,
            "/api/v1/namespaces/default/configmaps",
            json!({"metadata": {"name": format!("c{i}")}}),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut first_rv = None;
    loop {
        let uri = match &token {
            Some(t) => format!("/api/v1/namespaces/default/configmaps?limit=2&continue={t}"),
            None => "/api/v1/namespaces/default/configmaps?limit=2".into(),
        };
        let (_, l) = get(&s, &uri).await;
        first_rv.get_or_insert(l["metadata"]["resourceVersion"].clone());
        assert_eq!(
            l["metadata"]["resourceVersion"],
            *first_rv.as_ref().unwrap()
        );
        for i in l["items"].as_array().unwrap() {
            seen.push(i["metadata"]["name"].as_str().unwrap().to_string());
        }
        match l["metadata"]["continue"].as_str() {
            Some(t) => {
                assert!(l["metadata"]["remainingItemCount"].as_u64().unwrap() > 0);
                token = Some(t.to_string());
            }
            None => break,
        }
    }
    assert_eq!(seen, ["c0", "c1", "c2", "c3", "c4"]);
}
