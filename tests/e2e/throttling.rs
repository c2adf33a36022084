//! One tenant throttled by Amazon does not stall the others: a reconcile never sleeps in its
//! worker behind a long Retry-After (issue 15 item 1).

use std::time::Duration;

use alexa_simulator::{Operation, sandbox};
use alexa_skill_operator::crd::SkillAccountLinking;
use serde_json::json;

use crate::support::{Harness, auth_code_linking, is_ready, reason, sal};

/// `--concurrency 1`: Amazon answers the owner's credentials 429 with `Retry-After: 300` for
/// five minutes. Of two objects with those credentials, one gets the 429 and the other is
/// held without sending; both read `Throttled` at once, and an object of other credentials
/// becomes Ready on the same single worker (it would wait 300 s if a throttled reconcile slept
/// in the worker). Nothing goes out with the throttled credentials inside the Retry-After.
#[tokio::test]
async fn a_throttled_tenant_does_not_hold_the_only_worker() {
    let h = Harness::with_owner(&["--concurrency", "1"], Some("s")).await;
    h.secret(
        "lwa-other",
        &[
            ("client-id", sandbox::CLIENT_ID_2),
            ("client-secret", sandbox::CLIENT_SECRET_2),
            ("refresh-token", sandbox::REFRESH_TOKEN_2),
        ],
    )
    .await;
    let five_minutes = Duration::from_secs(300);
    h.sim
        .faults()
        .throttle_client(sandbox::CLIENT_ID, five_minutes, five_minutes);
    for name in ["noisy-1", "noisy-2"] {
        h.apply::<SkillAccountLinking>(sal(name, auth_code_linking()))
            .await
            .unwrap();
    }
    for name in ["noisy-1", "noisy-2"] {
        h.wait_for::<SkillAccountLinking, _>(name, "Throttled", |o| reason(o) == "Throttled")
            .await;
    }
    let mut quiet = sal("quiet", auth_code_linking());
    quiet["spec"]["skillId"] = json!(sandbox::OTHER_VENDOR_SKILL_ID);
    quiet["spec"]["credentialsSecretRef"]["name"] = json!("lwa-other");
    h.apply::<SkillAccountLinking>(quiet).await.unwrap();
    h.wait_for::<SkillAccountLinking, _>("quiet", "Ready", is_ready)
        .await;
    let noisy: Vec<_> = h
        .sim
        .requests()
        .into_iter()
        .filter(|r| {
            r.client.as_deref() == Some(sandbox::CLIENT_ID) && r.operation != Operation::Token
        })
        .collect();
    assert_eq!(
        noisy.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![429],
        "one request answered 429, then nothing inside its Retry-After: {noisy:?}"
    );
    h.shutdown().await;
}
