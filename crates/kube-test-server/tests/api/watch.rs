//! Watches: events, selectors, replay, bookmarks, timeouts, compaction.

use std::time::Duration;

use kube_test_server::TestServer;
use serde_json::json;

use crate::{CRDS, LONG, MERGE, SAL, SHORT, Watch, delete, get, patch, post, rv, sal, server};

#[tokio::test]
async fn watch_events_are_ndjson_with_each_writes_resource_version() {
    let s = server();
    let start = s.resource_version();
    let (c, mut w) = Watch::open(&s, &format!("{SAL}?watch=true&resourceVersion={start}")).await;
    assert_eq!(c, 200);
    let (_, a) = post(&s, SAL, sal("x")).await;
    let (_, b) = patch(
        &s,
        &format!("{SAL}/x"),
        MERGE,
        json!({"spec": {"managementPolicy": "Observe"}}),
    )
    .await;
    let (_, d) = delete(&s, &format!("{SAL}/x"), None).await;
    for (want_type, want) in [("ADDED", &a), ("MODIFIED", &b), ("DELETED", &d)] {
        let e = w.next_non_bookmark(LONG).await.unwrap();
        assert_eq!(e["type"], want_type);
        assert_eq!(rv(&e["object"]), rv(want));
        assert_eq!(e["object"]["kind"], "SkillAccountLinking");
    }
    assert!(rv(&d) > rv(&b) && rv(&b) > rv(&a));
}

#[tokio::test]
async fn watch_namespaced_and_cluster_wide() {
    let s = server();
    let start = s.resource_version();
    let (_, mut ns_w) = Watch::open(
        &s,
        &format!("/api/v1/namespaces/b/configmaps?watch=1&resourceVersion={start}"),
    )
    .await;
    let (_, mut all_w) = Watch::open(
        &s,
        &format!("/api/v1/configmaps?watch=1&resourceVersion={start}"),
    )
    .await;
    post(
        &s,
        "/api/v1/namespaces/a/configmaps",
        json!({"metadata": {"name": "x"}}),
    )
    .await;
    post(
        &s,
        "/api/v1/namespaces/b/configmaps",
        json!({"metadata": {"name": "y"}}),
    )
    .await;
    assert_eq!(
        ns_w.next_non_bookmark(LONG).await.unwrap()["object"]["metadata"]["name"],
        "y"
    );
    assert_eq!(
        all_w.next_non_bookmark(LONG).await.unwrap()["object"]["metadata"]["name"],
        "x"
    );
    assert_eq!(
        all_w.next_non_bookmark(LONG).await.unwrap()["object"]["metadata"]["name"],
        "y"
    );
}

#[tokio::test]
async fn watch_with_selectors_sends_added_and_deleted_on_transitions() {
    let s = server();
    let cm = "/api/v1/namespaces/default/configmaps";
    let (_, mut w) = Watch::open(
        &s,
        &format!(
            "{cm}?watch=true&labelSelector=app%3Dx&resourceVersion={}",
            s.resource_version()
        ),
    )
    .await;
    post(
        &s,
        cm,
        json!({"metadata": {"name": "a", "labels": {"app": "y"}}}),
    )
    .await;
    let (_, m) = patch(
        &s,
        &format!("{cm}/a"),
        MERGE,
        json!({"metadata": {"labels": {"app": "x"}}}),
    )
    .await;
    let e = w.next_non_bookmark(LONG).await.unwrap();
    assert_eq!(
        (e["type"].as_str(), rv(&e["object"])),
        (Some("ADDED"), rv(&m))
    );
    patch(&s, &format!("{cm}/a"), MERGE, json!({"data": {"k": "v"}})).await;
    assert_eq!(w.next_non_bookmark(LONG).await.unwrap()["type"], "MODIFIED");
    let (_, gone) = patch(
        &s,
        &format!("{cm}/a"),
        MERGE,
        json!({"metadata": {"labels": {"app": "z"}}}),
    )
    .await;
    let e = w.next_non_bookmark(LONG).await.unwrap();
    assert_eq!(e["type"], "DELETED");
    assert_eq!(
        e["object"]["metadata"]["labels"]["app"], "x",
        "previous state"
    );
    assert_eq!(
        rv(&e["object"]),
        rv(&gone),
        "with the write's resourceVersion"
    );
    patch(&s, &format!("{cm}/a"), MERGE, json!({"data": {"k": "w"}})).await;
    assert!(w.next_non_bookmark(SHORT).await.is_none());
}

#[tokio::test]
async fn watch_replays_from_a_resource_version() {
    let s = server();
    let (_, a) = post(&s, SAL, sal("a")).await;
    post(&s, SAL, sal("b")).await;
    post(
        &s,
        "/api/v1/namespaces/default/configmaps",
        json!({"metadata": {"name": "other"}}),
    )
    .await;
    post(&s, SAL, sal("c")).await;
    let (_, mut w) = Watch::open(&s, &format!("{SAL}?watch=true&resourceVersion={}", rv(&a))).await;
    let names: Vec<String> = vec![
        w.next_non_bookmark(LONG).await.unwrap()["object"]["metadata"]["name"]
            .as_str()
            .unwrap()
            .into(),
        w.next_non_bookmark(LONG).await.unwrap()["object"]["metadata"]["name"]
            .as_str()
            .unwrap()
            .into(),
    ];
    assert_eq!(names, ["b", "c"]);
    assert!(w.next_non_bookmark(SHORT).await.is_none());
    // Without a resourceVersion: synthetic ADDED for the current state.
    let (_, mut w) = Watch::open(&s, &format!("{SAL}?watch=true")).await;
    for _ in 0..3 {
        assert_eq!(w.next_non_bookmark(LONG).await.unwrap()["type"], "ADDED");
    }
}

#[tokio::test]
async fn watch_bookmarks_when_allowed() {
    let s = server().with_bookmark_interval(Duration::from_millis(50));
    post(&s, SAL, sal("a")).await;
    let now = s.resource_version();
    let (_, mut w) = Watch::open(
        &s,
        &format!("{SAL}?watch=true&allowWatchBookmarks=true&resourceVersion={now}"),
    )
    .await;
    let e = w.next(LONG).await.unwrap();
    assert_eq!(e["type"], "BOOKMARK");
    assert_eq!(e["object"]["kind"], "SkillAccountLinking");
    assert_eq!(rv(&e["object"]), now);
    let (_, mut nb) = Watch::open(&s, &format!("{SAL}?watch=true&resourceVersion={now}")).await;
    assert!(
        nb.next(Duration::from_millis(200)).await.is_none(),
        "no bookmarks unless asked"
    );
}

#[tokio::test]
async fn watch_send_initial_events_ends_with_annotated_bookmark() {
    let s = server();
    post(&s, SAL, sal("a")).await;
    post(&s, SAL, sal("b")).await;
    let now = s.resource_version();
    let (c, mut w) = Watch::open(&s, &format!("{SAL}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&resourceVersion=")).await;
    assert_eq!(c, 200);
    assert_eq!(w.next(LONG).await.unwrap()["type"], "ADDED");
    assert_eq!(w.next(LONG).await.unwrap()["type"], "ADDED");
    let b = w.next(LONG).await.unwrap();
    assert_eq!(b["type"], "BOOKMARK");
    assert_eq!(
        b["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(rv(&b["object"]), now);
    post(&s, SAL, sal("c")).await;
    assert_eq!(
        w.next_non_bookmark(LONG).await.unwrap()["object"]["metadata"]["name"],
        "c"
    );
    // Without resourceVersionMatch=NotOlderThan it is refused.
    let (c, _) = Watch::open(
        &s,
        &format!("{SAL}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true"),
    )
    .await;
    assert_eq!(c, 422);
}

#[tokio::test]
async fn watch_timeout_seconds_ends_the_stream() {
    let s = server();
    let (_, mut w) = Watch::open(
        &s,
        &format!(
            "{SAL}?watch=true&timeoutSeconds=1&resourceVersion={}",
            s.resource_version()
        ),
    )
    .await;
    let t = std::time::Instant::now();
    assert!(w.next(Duration::from_secs(20)).await.is_none());
    let el = t.elapsed();
    assert!(
        el >= Duration::from_millis(900) && el < Duration::from_secs(15),
        "{el:?}"
    );
}

#[tokio::test]
async fn watch_from_compacted_resource_version_is_in_stream_410() {
    let s = server();
    let (_, a) = post(&s, SAL, sal("a")).await;
    post(&s, SAL, sal("b")).await;
    s.compact_history();
    let (c, mut w) = Watch::open(&s, &format!("{SAL}?watch=true&resourceVersion={}", rv(&a))).await;
    assert_eq!(c, 200, "HTTP 200, error in-stream");
    let e = w.next(LONG).await.unwrap();
    assert_eq!(e["type"], "ERROR");
    assert_eq!(e["object"]["kind"], "Status");
    assert_eq!(e["object"]["code"], 410);
    assert_eq!(e["object"]["reason"], "Expired");
    assert!(w.next(SHORT).await.is_none());
    // A fresh list after compaction returns a resourceVersion that can be watched (no relist loop).
    let (_, l) = get(&s, SAL).await;
    let list_rv = l["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, mut w) = Watch::open(&s, &format!("{SAL}?watch=true&resourceVersion={list_rv}")).await;
    assert!(
        w.next(SHORT).await.is_none(),
        "no 410 for the post-compaction list resourceVersion"
    );
    post(&s, SAL, sal("after")).await;
    assert_eq!(w.next(LONG).await.unwrap()["type"], "ADDED");
    // History bounded by count too.
    let s = TestServer::with_history_limit(2)
        .with_crds_from_dir(CRDS)
        .unwrap();
    let (_, first) = post(&s, SAL, sal("a")).await;
    for n in ["b", "c", "d"] {
        post(&s, SAL, sal(n)).await;
    }
    let (_, mut w) = Watch::open(
        &s,
        &format!("{SAL}?watch=true&resourceVersion={}", rv(&first)),
    )
    .await;
    assert_eq!(w.next(LONG).await.unwrap()["object"]["code"], 410);
}

#[tokio::test]
async fn close_watches_ends_every_stream() {
    let s = server();
    let (_, mut w1) = Watch::open(
        &s,
        &format!("{SAL}?watch=true&resourceVersion={}", s.resource_version()),
    )
    .await;
    let (_, mut w2) = Watch::open(
        &s,
        &format!(
            "/api/v1/secrets?watch=true&resourceVersion={}",
            s.resource_version()
        ),
    )
    .await;
    s.close_watches();
    assert!(w1.next(LONG).await.is_none());
    assert!(w2.next(LONG).await.is_none());
}
