//! The controller, the release effects and the route watch, in process
//! (`TestApp`): no binary, no proxy, the same code `serin up` runs.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::app::TestApp;

/// A rollout the controller carries to its end makes its version the
/// product's release in the promotion's own commit: the release's events come
/// with the deployment's, and `latest` answers it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_promotes_and_the_release_moves_in_the_same_commit() {
    let app = TestApp::start().await;
    assert_eq!(
        app.post("/api/v1/products", json!({"name": "shop"}))
            .await
            .0,
        201
    );
    let (st, r) = app
        .post(
            "/api/v1/releases",
            json!({"product_name": "shop", "version": "2.0.0"}),
        )
        .await;
    assert_eq!(st, 201, "{r}");
    let (st, d) = app
        .post(
            "/api/v1/canary/deployments",
            json!({"queue_name": "orders", "stable_version": "1.0.0", "canary_version": "2.0.0",
                   "product": "shop", "min_duration": "0s", "auto_promotion": true,
                   "rollout": {"steps": [{"set_weight": 20}, {"pause": {"duration": "200ms"}}, {"set_weight": 100}]}}),
        )
        .await;
    assert_eq!(st, 201, "{d}");
    let id = d["id"].as_str().unwrap();
    let done = app
        .until(
            &format!("/api/v1/canary/deployments/{id}"),
            Duration::from_secs(20),
            |d| d["status"] == "completed" || d["status"] == "failed",
        )
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    let (st, latest) = app.get("/api/v1/products/shop/releases/latest").await;
    assert_eq!(
        (st, latest["version"].as_str()),
        (200, Some("2.0.0")),
        "{latest}"
    );
    let stored = app.state.store.latest_stable("shop").await.unwrap();
    assert_eq!(stored.version, "2.0.0");
    // The audit log has the release's moves by the controller, in order.
    let (_, audit) = app.get("/api/v1/audit-logs?resource_type=release").await;
    let moves: Vec<String> = audit["audit_logs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["actor"] == "controller")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        moves.len(),
        2,
        "draft → approved → released by the controller: {audit}"
    );
    app.stop().await;
}

/// A percentage change reaches the route set proxies poll, and a change of a
/// deployment without upstreams doesn't move it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_changes_reach_the_route_set_and_nothing_else_does() {
    let app = TestApp::start().await;
    let (st, d) = app
        .post(
            "/api/v1/canary/deployments",
            json!({"queue_name": "web", "stable_version": "1", "canary_version": "2", "percentage": 0,
                   "upstreams": {"stable": ["http://127.0.0.1:9"], "canary": ["http://127.0.0.1:10"]}}),
        )
        .await;
    assert_eq!(st, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    let (_, set) = app.get("/api/v1/proxy/routes").await;
    assert_eq!(set["routes"].as_array().unwrap().len(), 1, "{set}");
    let version = set["version"].as_str().unwrap().to_string();

    // A job deployment elsewhere: the route set stays as it is.
    let (st, _) = app
        .post(
            "/api/v1/canary/deployments",
            json!({"queue_name": "jobs", "stable_version": "1", "canary_version": "2"}),
        )
        .await;
    assert_eq!(st, 201);
    let (_, same) = app
        .get(&format!(
            "/api/v1/proxy/routes?version={version}&wait=300ms"
        ))
        .await;
    assert_eq!(same["version"], version.as_str(), "no route changed");

    // A percentage change answers a waiting poll with the new set.
    let poll = {
        let (url, version) = (
            format!("{}/api/v1/proxy/routes?version={version}&wait=10s", app.url),
            version.clone(),
        );
        tokio::spawn(async move {
            let t0 = Instant::now();
            let set: serde_json::Value = reqwest::Client::new()
                .get(url)
                .bearer_auth(crate::app::ADMIN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_ne!(set["version"], version.as_str());
            (set, t0.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (st, _) = app
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/canary/deployments/{id}/percentage"),
            Some(json!({"percentage": 40})),
        )
        .await;
    assert_eq!(st, 200);
    let (set, took) = poll.await.unwrap();
    assert_eq!(set["routes"][0]["percent"], 40, "{set}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    app.stop().await;
}

/// The release manager in process: a release climbs development and staging
/// without becoming the product's release, production's policy (changed by
/// an admin to need no approvals) lets it in, and its deployment there makes
/// it the latest stable in the same commit. Refusals carry their kind: an
/// environment that doesn't exist is 404, a skipped one 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_climbs_the_environments_and_production_releases_it() {
    let app = TestApp::start().await;
    assert_eq!(
        app.post("/api/v1/products", json!({"name": "shop"}))
            .await
            .0,
        201
    );
    let (_, r) = app
        .post(
            "/api/v1/releases",
            json!({"product_name": "shop", "version": "1.0.0"}),
        )
        .await;
    let id = r["id"].as_i64().unwrap();
    let path = format!("/api/v1/releases/{id}/deploy");
    let deploy = |env: &str| {
        app.post(
            &path,
            json!({"environment": env, "strategy": "direct", "endpoints": ["http://10.0.0.1:80"]}),
        )
    };
    let (st, e) = deploy("production").await;
    assert_eq!(
        (st, e["code"].as_str()),
        (409, Some("PREVIOUS_ENVIRONMENT_NOT_PASSED")),
        "{e}"
    );
    let (st, e) = app
        .call(
            reqwest::Method::PATCH,
            "/api/v1/products/shop/environments/nowhere",
            Some(json!({"require_previous": false})),
        )
        .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (404, Some("ENVIRONMENT_NOT_FOUND")),
        "{e}"
    );
    for env in ["development", "staging"] {
        let (st, d) = deploy(env).await;
        assert_eq!(st, 202, "{d}");
        let did = d["id"].as_str().unwrap().to_string();
        app.until(
            &format!("/api/v1/deployments/{did}"),
            Duration::from_secs(20),
            |d| d["status"] == "succeeded",
        )
        .await;
    }
    let (st, _) = app.get("/api/v1/products/shop/releases/latest").await;
    assert_eq!(st, 404, "only production makes a release stable");
    let (st, e) = app
        .call(
            reqwest::Method::PATCH,
            "/api/v1/products/shop/environments/production",
            Some(json!({"approvals": {"required": 0}})),
        )
        .await;
    assert_eq!(st, 200, "{e}");
    let (st, d) = deploy("production").await;
    assert_eq!(st, 202, "{d}");
    let did = d["id"].as_str().unwrap().to_string();
    app.until(
        &format!("/api/v1/deployments/{did}"),
        Duration::from_secs(20),
        |d| d["status"] == "succeeded",
    )
    .await;
    let (st, latest) = app.get("/api/v1/products/shop/releases/latest").await;
    assert_eq!(
        (st, latest["version"].as_str()),
        (200, Some("1.0.0")),
        "{latest}"
    );
    let (_, r) = app.get(&format!("/api/v1/releases/{id}")).await;
    assert_eq!(r["status"], "released", "{r}");
    app.stop().await;
}

/// A proxy key on its own feed (routes, lane seconds) is not rate limited;
/// the same requests with a person's key are, and so is a proxy key
/// anywhere else (where it is refused anyway).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxys_feed_is_not_rate_limited() {
    let app = TestApp::start_with(|c| {
        c.rate_limit = serin_server::rate::RateLimit {
            per_minute: 6,
            burst: 3,
        };
    })
    .await;
    let (st, made) = app
        .post(
            "/api/v1/api-keys",
            serde_json::json!({"name": "edge", "role": "proxy"}),
        )
        .await;
    assert_eq!(st, 201, "{made}");
    let key = made["key"].as_str().unwrap().to_string();
    let http = reqwest::Client::new();
    let routes = format!("{}/api/v1/proxy/routes?proxy_id=p1&name=edge", app.url);
    for i in 0..20 {
        let r = http.get(&routes).bearer_auth(&key).send().await.unwrap();
        assert_eq!(r.status(), 200, "request {i}");
        assert!(r.headers().get("x-ratelimit-limit").is_none());
    }
    // The admin's key, on the same route: limited after its burst.
    let mut limited = 0;
    for _ in 0..6 {
        let (st, _) = app.get("/api/v1/proxy/routes?proxy_id=p2&name=admin").await;
        limited += usize::from(st == 429);
    }
    assert!(limited >= 2, "{limited} of 6 limited");
    app.stop().await;
}
