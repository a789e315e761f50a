//! `/metrics` as operators scrape it: a rollout's series while it is live,
//! shown once more when it ends, and then gone; finished deployments add no
//! series.

use std::time::Duration;

use serde_json::json;

use crate::app::TestApp;

/// The series of an exposition (its non-comment lines), by name and labels.
fn series(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(s, _)| s.to_string()))
        .collect()
}

/// Starts and rolls back `n` deployments named `{prefix}{i}`.
async fn start_and_end(app: &TestApp, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let (st, d) = app
            .post(
                "/api/v1/canary/deployments",
                json!({"queue_name": format!("{prefix}{i}"), "stable_version": "1", "canary_version": "2", "percentage": 10}),
            )
            .await;
        assert_eq!(st, 201, "{d}");
        let id = d["id"].as_str().unwrap().to_string();
        let (st, r) = app
            .post(
                &format!("/api/v1/canary/deployments/{id}/rollback"),
                json!({"reason": "cardinality test"}),
            )
            .await;
        assert!(st == 200 || st == 202, "{st} {r}");
        ids.push(id);
    }
    ids
}

/// Waits until every deployment in `ids` has ended.
async fn until_ended(app: &TestApp, ids: &[String]) {
    for id in ids {
        app.until(
            &format!("/api/v1/canary/deployments/{id}"),
            Duration::from_secs(30),
            |d| d["status"] == "failed" || d["status"] == "completed",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_finished_deployments_add_no_series() {
    let app = TestApp::start().await;
    // A live rollout's series, labelled by name and target, the id as an extra.
    let (st, d) = app
        .post(
            "/api/v1/canary/deployments",
            json!({"queue_name": "checkout", "stable_version": "1", "canary_version": "2", "percentage": 25}),
        )
        .await;
    assert_eq!(st, 201, "{d}");
    let live = d["id"].as_str().unwrap().to_string();
    let (_, text) = app.get_text("/metrics").await;
    let at = format!("name=\"checkout\",target=\"queue\",deployment_id=\"{live}\"");
    for want in [
        format!("serin_rollout_phase{{{at},phase=\"active\"}} 1"),
        format!("serin_rollout_canary_weight{{{at}}} 0.25"),
        // No rollout plan: nothing judges it.
        format!("serin_rollout_verdict{{{at},verdict=\"inconclusive\"}} 1"),
    ] {
        assert!(text.contains(&want), "{want} missing from:\n{text}");
    }
    // Ended: shown once more with how it ended, then gone.
    app.post(
        &format!("/api/v1/canary/deployments/{live}/rollback"),
        json!({"reason": "test"}),
    )
    .await;
    until_ended(&app, std::slice::from_ref(&live)).await;
    let (_, text) = app.get_text("/metrics").await;
    assert!(
        text.contains(&format!("serin_rollout_phase{{{at},phase=\"failed\"}} 1"))
            && text.contains(&format!("serin_rollout_verdict{{{at},verdict=\"fail\"}} 1")),
        "{text}"
    );
    let (_, text) = app.get_text("/metrics").await;
    assert!(!text.contains(&live), "{text}");

    // Every route template and status the next thousand use, once.
    let warm = start_and_end(&app, "warm-", 5).await;
    until_ended(&app, &warm).await;
    app.get_text("/metrics").await;
    let (_, before) = app.get_text("/metrics").await;
    let ids = start_and_end(&app, "job-", 1000).await;
    until_ended(&app, &ids).await;
    // The scrape after they ended shows them once; the next has none.
    app.get_text("/metrics").await;
    let (_, after) = app.get_text("/metrics").await;
    let (b, a) = (series(&before), series(&after));
    let added: Vec<_> = a.difference(&b).collect();
    let gone: Vec<_> = b.difference(&a).collect();
    assert!(
        added.is_empty() && gone.is_empty(),
        "{} series before, {} after; added {added:?}, gone {gone:?}",
        b.len(),
        a.len()
    );
    app.stop().await;
}
