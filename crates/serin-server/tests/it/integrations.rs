//! Serin as the judge of Argo Rollouts and Flagger, called as they call it:
//! Argo's `web` provider sends a GET with the template's headers (and Go's
//! user agent); Flagger POSTs its payload and can't send headers, so its key
//! rides in `metadata.api_key`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::app::{ADMIN, TestApp};

/// As Argo's `web` provider asks: GET, the template's `Authorization` header.
async fn argo(app: &TestApp, query: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/integrations/verdict?{query}", app.url))
        .header("user-agent", "Go-http-client/1.1")
        .header("authorization", format!("Bearer {ADMIN}"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// As Flagger posts a webhook: JSON, no headers of the operator's.
async fn flagger(app: &TestApp, hook: &str, metadata: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/integrations/flagger/{hook}", app.url))
        .header("content-type", "application/json")
        .body(
            json!({"name": "podinfo", "namespace": "test", "phase": "Progressing",
                   "checksum": "85d557f47b", "metadata": metadata})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn with_key(mut m: Value) -> Value {
    m["api_key"] = json!(ADMIN);
    m
}

/// Signals for one second of both lanes: `n` requests each, `bad` of the
/// canary's failing.
fn second(n: usize, bad: usize) -> Value {
    let mut s = Vec::new();
    for i in 0..n {
        s.push(json!({"lane": "stable", "name": "request", "kind": "outcome", "value": 1}));
        let ok = if i < bad { 0 } else { 1 };
        s.push(json!({"lane": "canary", "name": "request", "kind": "outcome", "value": ok}));
    }
    json!({ "signals": s })
}

#[tokio::test]
async fn a_failing_canary_fails_for_argo_and_halts_flagger() {
    let app = TestApp::start().await;
    let plan = json!({"steps": [{"analysis": {"window": "5m"}}]});
    let (s, d) = app
        .post(
            "/api/v1/canary/deployments",
            json!({"queue_name": "podinfo.test", "stable_version": "v1",
                   "canary_version": "v2", "rollout": plan}),
        )
        .await;
    assert_eq!(s, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_string();

    // Nothing judged yet: Argo reads inconclusive; Flagger may start and go
    // on, but not promote.
    let (s, v) = argo(&app, "queue=podinfo.test").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["verdict"], "inconclusive", "{v}");
    assert_eq!(v["decided"], false);
    assert_eq!(v["deployment_id"], id.as_str());
    let key = with_key(json!({}));
    assert_eq!(flagger(&app, "pre-rollout", key.clone()).await.0, 200);
    assert_eq!(flagger(&app, "rollout", key.clone()).await.0, 200);
    let (s, e) = flagger(&app, "confirm-promotion", key.clone()).await;
    assert_eq!(s, 409, "{e}");
    assert_eq!(e["code"], "CANARY_HALTED", "{e}");
    assert_eq!(e["details"]["verdict"]["verdict"], "inconclusive");

    // Flagger without a key is refused like any caller; a viewer's key in
    // the payload is enough (the hooks only read); other hooks are not served.
    assert_eq!(flagger(&app, "rollout", json!({})).await.0, 401);
    let (s, k) = app
        .post(
            "/api/v1/api-keys",
            json!({"name": "flagger", "role": "viewer"}),
        )
        .await;
    assert_eq!(s, 201, "{k}");
    let viewer = json!({"api_key": k["key"]});
    assert_eq!(flagger(&app, "rollout", viewer.clone()).await.0, 200);
    // The payload's key counts on Flagger's routes alone: anywhere else a
    // body carries no credentials.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/canary/deployments", app.url))
        .json(
            &json!({"queue_name": "x", "stable_version": "1", "canary_version": "2",
                      "metadata": {"api_key": ADMIN}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // A body past 64 KiB is refused before anything reads it as a key.
    let big =
        json!({"name": "podinfo", "namespace": "test", "metadata": {"pad": "x".repeat(70_000)}});
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/integrations/flagger/rollout", app.url))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    assert_eq!(flagger(&app, "event", key.clone()).await.0, 404);
    // Argo asking about a target Serin doesn't know: an error it counts.
    assert_eq!(argo(&app, "queue=nobody").await.0, 404);
    assert_eq!(argo(&app, "").await.0, 400);
    // Naming the canary version: another version's deployment doesn't answer.
    assert_eq!(argo(&app, "queue=podinfo.test&version=v2").await.0, 200);
    assert_eq!(argo(&app, "queue=podinfo.test&version=v9").await.0, 404);

    // The canary fails half its requests: the controller rolls it back.
    let t0 = std::time::Instant::now();
    loop {
        let (s, b) = app
            .post(
                &format!("/api/v1/canary/deployments/{id}/signals"),
                second(50, 25),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let (_, v) = argo(&app, &format!("deployment={id}")).await;
        if v["verdict"] == "fail" {
            assert_eq!(v["decided"], true, "{v}");
            assert_eq!(v["status"], "failed", "{v}");
            assert!(
                v["judgement"]["outcome"] == "fail",
                "the deciding judgement: {v}"
            );
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "never rolled back: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every hook now halts, with the reason.
    for hook in ["pre-rollout", "rollout", "confirm-promotion"] {
        let (s, e) = flagger(&app, hook, key.clone()).await;
        assert_eq!(s, 409, "{hook}: {e}");
        assert!(e["error"].as_str().unwrap().contains("rolled back"), "{e}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_promoted_canary_passes_and_flagger_may_promote() {
    let app = TestApp::start().await;
    let (s, d) = app
        .post(
            "/api/v1/canary/deployments",
            json!({"queue_name": "web.prod", "stable_version": "v1",
                   "canary_version": "v2",
                   "rollout": {"steps": [{"set_weight": 10}, {"analysis": {"window": "1h"}}]}}),
        )
        .await;
    assert_eq!(s, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    let meta = with_key(json!({"queue": "web.prod"}));
    assert_eq!(
        flagger(&app, "confirm-promotion", meta.clone()).await.0,
        409
    );
    // Argo's single measurement waits for the decision: a person promotes
    // it a second later (as a passing analysis would), and the held answer
    // comes back at once, final.
    let promote = {
        let url = format!("{}/api/v1/canary/deployments/{id}/promote", app.url);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            reqwest::Client::new()
                .post(url)
                .bearer_auth(ADMIN)
                .json(&json!({}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    let t0 = std::time::Instant::now();
    let (s, v) = argo(&app, "queue=web.prod&wait=30").await;
    assert_eq!(promote.await.unwrap(), 200);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["verdict"], "pass", "{v}");
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "held {:?}",
        t0.elapsed()
    );
    assert_eq!(argo(&app, "queue=web.prod&wait=121").await.0, 400);
    let v = app
        .until(
            "/api/v1/integrations/verdict?queue=web.prod",
            Duration::from_secs(10),
            |v| v["status"] == "completed",
        )
        .await;
    assert_eq!(v["decided"], true, "{v}");
    let (s, v) = flagger(&app, "confirm-promotion", meta).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["verdict"], "pass");
    app.stop().await;
}
