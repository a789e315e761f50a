//! The controller, the releaser and the routes' error mapping, in process
//! (`TestApp`).

use std::time::Duration;

use serde_json::json;

use crate::app::TestApp;

/// An analysis that sees no traffic at all ends its window inconclusive: the
/// controller pauses the rollout with the reason and neither promotes nor
/// rolls back by itself; a person's resume carries it on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_pauses_an_inconclusive_analysis_with_its_reason() {
    let app = TestApp::start().await;
    let (st, d) = app
        .post(
            "/api/v1/canary/deployments",
            json!({"queue_name": "orders", "stable_version": "1", "canary_version": "2",
                   "min_duration": "0s", "auto_promotion": true,
                   "rollout": {"steps": [{"set_weight": 10}, {"analysis": {"window": "1s"}}, {"set_weight": 100}]}}),
        )
        .await;
    assert_eq!(st, 201, "{d}");
    let id = d["id"].as_str().unwrap();
    let path = format!("/api/v1/canary/deployments/{id}");
    let paused = app
        .until(&path, Duration::from_secs(20), |d| d["status"] != "active")
        .await;
    assert_eq!(paused["status"], "paused", "{paused}");
    assert_eq!(paused["current_percent"], 10, "{paused}");
    let reason = paused["status_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("inconclusive"), "{paused}");
    // Still paused a while later: the controller doesn't decide alone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, still) = app.get(&path).await;
    assert_eq!(still["status"], "paused", "{still}");
    app.stop().await;
}

/// A release's deployment whose environment has a pre-deploy hook takes no
/// traffic by hand until the hook has run (the typed hold the release plan
/// sets), then goes on by itself; the same request on an ordinary canary
/// deployment is not held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_deploy_hook_holds_manual_traffic_until_it_has_run() {
    let app = TestApp::start_with(|c| c.allow_hook_commands = true).await;
    assert_eq!(
        app.post("/api/v1/products", json!({"name": "shop"}))
            .await
            .0,
        201
    );
    let (st, e) = app
        .patch(
            "/api/v1/products/shop/environments/development",
            json!({"pre_deploy_hook": {"command": ["sleep", "3"], "timeout_seconds": 30}}),
        )
        .await;
    assert_eq!(st, 200, "{e}");
    let (_, r) = app
        .post(
            "/api/v1/releases",
            json!({"product_name": "shop", "version": "1.0.0"}),
        )
        .await;
    let rid = r["id"].as_i64().unwrap();
    let (st, d) = app
        .post(
            &format!("/api/v1/releases/{rid}/deploy"),
            json!({"environment": "development", "strategy": "direct", "endpoints": ["http://10.0.0.1:80"]}),
        )
        .await;
    assert_eq!(st, 202, "{d}");
    let did = d["id"].as_str().unwrap().to_string();
    let (st, e) = app
        .put(
            &format!("/api/v1/canary/deployments/{did}/percentage"),
            json!({"percentage": 50}),
        )
        .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (409, Some("DEPLOYMENT_HELD")),
        "{e}"
    );
    let message = e["error"].as_str().unwrap_or_default();
    assert!(message.contains("pre-deploy hook"), "{e}");
    app.until(
        &format!("/api/v1/deployments/{did}"),
        Duration::from_secs(30),
        |d| d["status"] == "succeeded",
    )
    .await;
    // The same hook on a plan made through the canary API holds nothing.
    let (st, d) = app
        .post(
            "/api/v1/canary/deployments",
            json!({"queue_name": "plain", "stable_version": "1", "canary_version": "2",
                   "rollout": {"steps": [{"set_weight": 10}, {"pause": {}}],
                               "hooks": [{"name": "warm", "kind": "pre_rollout", "command": ["sleep", "3"]}]}}),
        )
        .await;
    assert_eq!(st, 201, "{d}");
    let (st, e) = app
        .put(
            &format!(
                "/api/v1/canary/deployments/{}/percentage",
                d["id"].as_str().unwrap()
            ),
            json!({"percentage": 50}),
        )
        .await;
    assert_eq!(st, 200, "{e}");
    app.stop().await;
}

/// A hook's answer is recorded with its call: asked again for the same step
/// (as a new leader would after the old one died between the answer and the
/// step's commit, or a restarted server), the recorded answer comes back and
/// the hook is not run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_hook_answer_is_reused_not_run_again() {
    let app = TestApp::start_with(|c| c.allow_hook_commands = true).await;
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    let script = format!("echo $SERIN_HOOK_KIND >> {}", ran.display());
    let (st, d) = app
        .post(
            "/api/v1/canary/deployments",
            json!({"queue_name": "hooked", "stable_version": "1", "canary_version": "2",
                   "rollout": {"steps": [{"set_weight": 10}, {"pause": {}}],
                               "hooks": [{"name": "count", "kind": "pre_rollout", "command": ["sh", "-c", script]}]}}),
        )
        .await;
    assert_eq!(st, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    app.until(
        &format!("/api/v1/canary/deployments/{id}"),
        Duration::from_secs(20),
        |d| d["current_percent"] == 10,
    )
    .await;
    let lines = || {
        std::fs::read_to_string(&ran)
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert_eq!(lines(), 1);
    // Asked again at the step the hook ran for.
    let mut d = app.state.app.store.get_deployment(&id).await.unwrap();
    d.rollout.as_mut().unwrap().step = 0;
    let runs = serin_app::hooks::run(
        &app.state.app,
        &d,
        serin_core::rollout::hooks::HookKind::PreRollout,
    )
    .await;
    assert_eq!(runs.len(), 1);
    assert!(runs[0].ok, "{runs:?}");
    assert_eq!(runs[0].attempts, 1, "{runs:?}");
    assert_eq!(lines(), 1, "the hook ran again");
    app.stop().await;
}

/// Each failure kind has one status wherever it is raised: a missing thing is
/// 404, a conflict 409, bad input 400 with the field, all in the error body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_map_to_one_status_per_kind_with_the_error_body() {
    let app = TestApp::start().await;
    let (st, e) = app.get("/api/v1/canary/deployments/canary_nope").await;
    assert_eq!(
        (st, e["code"].as_str()),
        (404, Some("DEPLOYMENT_NOT_FOUND")),
        "{e}"
    );
    let (st, e) = app
        .post(
            "/api/v1/releases/999/deploy",
            json!({"environment": "development", "strategy": "direct"}),
        )
        .await;
    assert_eq!(st, 404, "{e}");
    assert_eq!(
        app.post("/api/v1/products", json!({"name": "shop"}))
            .await
            .0,
        201
    );
    let (st, e) = app.post("/api/v1/products", json!({"name": "shop"})).await;
    assert_eq!(st, 409, "{e}");
    let (st, e) = app
        .post("/api/v1/products", json!({"name": "bad name"}))
        .await;
    assert_eq!(st, 400, "{e}");
    assert_eq!(
        (e["code"].as_str(), e["details"]["field"].as_str()),
        (Some("VALIDATION_FAILED"), Some("name")),
        "{e}"
    );
    let (_, r) = app
        .post(
            "/api/v1/releases",
            json!({"product_name": "shop", "version": "1.0.0"}),
        )
        .await;
    let (st, e) = app
        .post(
            &format!("/api/v1/releases/{}/deploy", r["id"]),
            json!({"environment": "nowhere", "strategy": "direct"}),
        )
        .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (404, Some("ENVIRONMENT_NOT_FOUND")),
        "{e}"
    );
    app.stop().await;
}
