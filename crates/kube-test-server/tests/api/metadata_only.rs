//! Metadata-only answers (PartialObjectMetadata), as kube's metadata watcher asks for them.

use serde_json::{Value, json};

use crate::{LONG, SAL, Watch, delete, get_accept, post, put, rv, sal, server};

/// What kube's `Api<PartialObjectMeta<K>>` sends for a list (client-go adds protobuf first and
/// plain JSON last).
const META_LIST_ACCEPT: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
/// ... and for a get or a watch.
const META_ACCEPT: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
const SECRETS: &str = "/api/v1/namespaces/default/secrets";

fn secret(name: &str, value: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "labels": {"app": "skill"}},
        "type": "Opaque",
        "data": {"clientSecret": value}
    })
}

/// Only `metadata` (the apiserver's PartialObjectMetadata has nothing else).
fn assert_metadata_only(o: &Value, name: &str) {
    assert_eq!(o["kind"], "PartialObjectMetadata", "{o}");
    assert_eq!(o["apiVersion"], "meta.k8s.io/v1", "{o}");
    assert_eq!(o["metadata"]["name"], name, "{o}");
    let keys: Vec<&String> = o.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 3, "only kind, apiVersion, metadata: {o}");
    assert!(o.get("data").is_none() && o.get("type").is_none(), "{o}");
}

#[tokio::test]
async fn metadata_list_and_get_of_secrets_carry_no_data() {
    let s = server();
    for n in ["a", "b"] {
        let (c, o) = post(&s, SECRETS, secret(n, "czNjcjN0")).await;
        assert_eq!(c, 201, "{o}");
    }
    for accept in [
        META_LIST_ACCEPT,
        "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
    ] {
        let (c, ct, l) = get_accept(&s, SECRETS, accept).await;
        assert_eq!(c, 200, "{l}");
        assert!(
            ct.starts_with("application/json;as=PartialObjectMetadataList"),
            "{ct}"
        );
        assert_eq!(l["kind"], "PartialObjectMetadataList");
        assert_eq!(l["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(
            l["metadata"]["resourceVersion"],
            s.resource_version().to_string()
        );
        let items = l["items"].as_array().unwrap();
        assert_eq!(items.len(), 2);
        assert_metadata_only(&items[0], "a");
        assert_metadata_only(&items[1], "b");
        assert_eq!(items[0]["metadata"]["labels"]["app"], "skill");
        assert!(items[0]["metadata"]["uid"].is_string());
        assert!(!l.to_string().contains("czNjcjN0"), "no secret data: {l}");
    }
    // Paging keeps the ListMeta; cluster-wide lists too; v1beta1 when asked for.
    let (_, _, l) = get_accept(&s, &format!("{SECRETS}?limit=1"), META_LIST_ACCEPT).await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    let cont = l["metadata"]["continue"].as_str().unwrap().to_string();
    let (_, _, l) = get_accept(
        &s,
        &format!("{SECRETS}?limit=1&continue={cont}"),
        META_LIST_ACCEPT,
    )
    .await;
    assert_metadata_only(&l["items"][0], "b");
    let (_, _, l) = get_accept(&s, "/api/v1/secrets", META_LIST_ACCEPT).await;
    assert_eq!(l["kind"], "PartialObjectMetadataList");
    assert_eq!(l["items"].as_array().unwrap().len(), 2);
    let (_, _, l) = get_accept(
        &s,
        SECRETS,
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1beta1",
    )
    .await;
    assert_eq!(l["apiVersion"], "meta.k8s.io/v1beta1");
    assert_eq!(l["items"][0]["apiVersion"], "meta.k8s.io/v1beta1");

    // One object.
    let (c, ct, o) = get_accept(&s, &format!("{SECRETS}/a"), META_ACCEPT).await;
    assert_eq!(c, 200, "{o}");
    assert!(
        ct.starts_with("application/json;as=PartialObjectMetadata;"),
        "{ct}"
    );
    assert_metadata_only(&o, "a");
    // Custom resources lose spec and status the same way.
    post(&s, SAL, sal("x")).await;
    let (_, _, l) = get_accept(&s, SAL, META_LIST_ACCEPT).await;
    assert_eq!(l["items"][0]["kind"], "PartialObjectMetadata");
    assert!(l["items"][0].get("spec").is_none());

    // The list kind for one object, or the object kind for a list: 406 as from the apiserver.
    let (c, _, st) = get_accept(&s, &format!("{SECRETS}/a"), META_LIST_ACCEPT).await;
    assert_eq!((c, &st["reason"]), (406, &json!("NotAcceptable")), "{st}");
    assert_eq!(
        st["message"],
        "you requested PartialObjectMetadataList, but the requested object is not a list (*v1.Secret)"
    );
    let (c, _, st) = get_accept(&s, SECRETS, META_ACCEPT).await;
    assert_eq!((c, &st["kind"]), (406, &json!("Status")), "{st}");
    // Missing objects stay 404.
    let (c, _, _) = get_accept(&s, &format!("{SECRETS}/nope"), META_ACCEPT).await;
    assert_eq!(c, 404);
}

#[tokio::test]
async fn metadata_watch_of_secrets_sends_partial_object_metadata_events() {
    let s = server();
    post(&s, SECRETS, secret("a", "b2xk")).await;
    let (c, mut w) = Watch::open_accept(
        &s,
        &format!(
            "{SECRETS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
        ),
        META_ACCEPT,
    )
    .await;
    assert_eq!(c, 200);
    let e = w.next(LONG).await.unwrap();
    assert_eq!(e["type"], "ADDED");
    assert_metadata_only(&e["object"], "a");
    let e = w.next(LONG).await.unwrap();
    assert_eq!(e["type"], "BOOKMARK");
    assert_eq!(e["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(
        e["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    // A rotation (what the operator's Secret watch is for), then a delete.
    let (c, rotated) = put(&s, &format!("{SECRETS}/a"), secret("a", "bmV3")).await;
    assert_eq!(c, 200, "{rotated}");
    let e = w.next_non_bookmark(LONG).await.unwrap();
    assert_eq!(e["type"], "MODIFIED");
    assert_metadata_only(&e["object"], "a");
    assert_eq!(rv(&e["object"]), rv(&rotated));
    let (c, _) = delete(&s, &format!("{SECRETS}/a"), None).await;
    assert_eq!(c, 200);
    let e = w.next_non_bookmark(LONG).await.unwrap();
    assert_eq!(e["type"], "DELETED");
    assert_metadata_only(&e["object"], "a");
    assert_eq!(rv(&e["object"]), s.resource_version());

    // From a resourceVersion (the replayed history is converted too).
    let start = s.resource_version();
    post(&s, SECRETS, secret("b", "b2xk")).await;
    let (_, mut w) = Watch::open_accept(
        &s,
        &format!("{SECRETS}?watch=true&resourceVersion={start}"),
        META_ACCEPT,
    )
    .await;
    let e = w.next_non_bookmark(LONG).await.unwrap();
    assert_eq!(e["type"], "ADDED");
    assert_metadata_only(&e["object"], "b");
    // Events are single objects: the list kind is refused.
    let (c, _) = Watch::open_accept(&s, &format!("{SECRETS}?watch=true"), META_LIST_ACCEPT).await;
    assert_eq!(c, 406);
}

#[tokio::test]
async fn kube_partial_object_meta_watcher_gets_metadata_only_secrets() {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, ListParams};
    use kube::core::PartialObjectMeta;
    use kube::runtime::watcher::{self, Event};

    let s = server();
    post(&s, SECRETS, secret("a", "b2xk")).await;
    let api: Api<PartialObjectMeta<Secret>> = Api::default_namespaced(s.client());
    // The kind tells which answer came back: a full Secret would say "Secret".
    let list = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.types.kind, "PartialObjectMetadataList");
    assert_eq!(list.items.len(), 1);
    assert_eq!(
        list.items[0].types.as_ref().unwrap().kind,
        "PartialObjectMetadata"
    );
    assert_eq!(
        api.get("a").await.unwrap().types.unwrap().kind,
        "PartialObjectMetadata"
    );

    // The operator's Secret watch: list, then watch, both metadata-only.
    let mut events = watcher::watcher(api, watcher::Config::default().any_semantic()).boxed();
    let mut listed = Vec::new();
    loop {
        match tokio::time::timeout(LONG, events.next()).await.unwrap() {
            Some(Ok(Event::InitApply(o))) => listed.push(o),
            Some(Ok(Event::InitDone)) => break,
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].types.as_ref().unwrap().kind,
        "PartialObjectMetadata"
    );
    let (_, rotated) = put(&s, &format!("{SECRETS}/a"), secret("a", "bmV3")).await;
    let applied = loop {
        match tokio::time::timeout(LONG, events.next()).await.unwrap() {
            Some(Ok(Event::Apply(o))) => break o,
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(applied.types.unwrap().kind, "PartialObjectMetadata");
    assert_eq!(
        applied.metadata.resource_version,
        rotated["metadata"]["resourceVersion"]
            .as_str()
            .map(String::from)
    );
}
