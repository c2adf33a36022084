//! Scale: many custom objects with watch fan-out.

use serde_json::json;

use crate::{LONG, MERGE, SAL, SHORT, Watch, get, patch, post, sal, server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_10k_custom_objects_with_watch_fanout() {
    let s = server();
    let start_rv = s.resource_version();
    let (_, mut w1) =
        Watch::open(&s, &format!("{SAL}?watch=true&resourceVersion={start_rv}")).await;
    let (_, mut w2) = Watch::open(&s, &format!("/apis/alexa.operator.dev/v1alpha1/skillaccountlinkings?watch=true&resourceVersion={start_rv}")).await;
    let n = 10_000;
    let reader = |mut w: Watch| {
        tokio::spawn(async move {
            let mut count = 0;
            while count < n + 1000 {
                match w.next(LONG).await {
                    Some(e) if e["type"] != "BOOKMARK" => count += 1,
                    Some(_) => {}
                    None => break,
                }
            }
            count
        })
    };
    let (r1, r2) = (reader(w1), reader(w2));
    let t = std::time::Instant::now();
    for i in 0..n {
        let (c, _) = post(&s, SAL, sal(&format!("o{i}"))).await;
        assert_eq!(c, 201);
    }
    let created = t.elapsed();
    let t = std::time::Instant::now();
    for i in 0..1000 {
        let (c, _) = patch(
            &s,
            &format!("{SAL}/o{i}/status"),
            MERGE,
            json!({"status": {"observedGeneration": 1}}),
        )
        .await;
        assert_eq!(c, 200);
    }
    let patched = t.elapsed();
    let t = std::time::Instant::now();
    let (_, l) = get(&s, SAL).await;
    assert_eq!(l["items"].as_array().unwrap().len(), n);
    let (_, one) = get(&s, &format!("{SAL}?fieldSelector=metadata.name%3Do5000")).await;
    assert_eq!(one["items"].as_array().unwrap().len(), 1);
    let listed = t.elapsed();
    assert_eq!(r1.await.unwrap(), n + 1000);
    assert_eq!(r2.await.unwrap(), n + 1000);
    eprintln!("10k creates: {created:?}, 1k status patches: {patched:?}, list+get: {listed:?}");
    w1 = Watch::open(
        &s,
        &format!("{SAL}?watch=true&resourceVersion={}", start_rv),
    )
    .await
    .1;
    let first = w1.next(LONG).await.unwrap();
    assert_eq!(first["type"], "ADDED", "replay of 11k events from history");
    w2 = Watch::open(
        &s,
        &format!("{SAL}?watch=true&resourceVersion={}", s.resource_version()),
    )
    .await
    .1;
    assert!(w2.next(SHORT).await.is_none());
}
