//! Seed 004's canary API over HTTP against the real binary: the usage examples as
//! written, every error code, profiles, durations, pagination, deletion, events.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Server, get, post, send};

fn url(s: &Server, path: &str) -> String {
    format!("{}/api/v1/canary{path}", s.url)
}

async fn create(s: &Server, body: Value) -> Value {
    let (code, d) = post(&url(s, "/deployments"), body).await;
    assert_eq!(code, 201, "{d}");
    d
}

fn assert_code(got: (u16, Value), status: u16, code: &str) -> Value {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["code"], code, "{}", got.1);
    assert!(
        got.1["error"].is_string() && got.1["details"].is_object(),
        "{}",
        got.1
    );
    got.1
}

const DEPLOYMENT_FIELDS: &[&str] = &[
    "id",
    "queue_name",
    "tenant_id",
    "stable_version",
    "canary_version",
    "current_percent",
    "target_percent",
    "status",
    "start_time",
    "last_update",
    "completed_at",
    "config",
    "created_by",
    "metadata",
];

#[tokio::test]
async fn the_documented_usage_examples_run_as_written() {
    let s = Server::sqlite();
    // 1. Create (seed example body, with a real token).
    let d = create(&s, json!({"queue_name": "payment-processing", "stable_version": "v1.2.0", "canary_version": "v1.3.0", "profile": "default"})).await;
    for f in DEPLOYMENT_FIELDS {
        assert!(d.get(*f).is_some(), "deployment has `{f}`: {d}");
    }
    for f in [
        "routing_strategy",
        "sticky_routing",
        "auto_promotion",
        "max_canary_duration",
        "min_canary_duration",
        "drain_timeout",
        "metrics_window",
        "rollback_thresholds",
    ] {
        assert!(d["config"].get(f).is_some(), "config has `{f}`");
    }
    assert_eq!(
        (
            d["status"].as_str(),
            d["config"]["max_canary_duration"].as_str()
        ),
        (Some("active"), Some("2h0m0s"))
    );
    assert!(d["id"].as_str().unwrap().starts_with("canary_"));
    let id = d["id"].as_str().unwrap().to_string();
    // 2. Gradually increase traffic.
    let (code, p) = send(
        Method::PUT,
        &url(&s, &format!("/deployments/{id}/percentage")),
        Some(json!({"percentage": 10})),
    )
    .await;
    assert_eq!(
        (code, &p["success"], &p["percentage"]),
        (200, &json!(true), &json!(10)),
        "{p}"
    );
    assert!(p["updated_at"].is_string());
    // 3. Monitor health: no data yet is `unknown`, never a guess.
    let (code, h) = get(&url(&s, &format!("/deployments/{id}/health"))).await;
    assert_eq!(code, 200);
    assert_eq!(h["overall_status"], "unknown");
    for c in [
        "error_rate_check",
        "latency_check",
        "throughput_check",
        "sample_size_check",
        "duration_check",
    ] {
        for f in ["name", "passing", "message", "timestamp"] {
            assert!(h[c].get(f).is_some(), "{c}.{f}: {h}");
        }
    }
    assert!(h["last_evaluation"].is_string());
    // 4. Promote...
    let (code, pr) = post(&url(&s, &format!("/deployments/{id}/promote")), Value::Null).await;
    assert_eq!(
        (code, pr["message"].as_str()),
        (200, Some("Deployment promoted to 100%")),
        "{pr}"
    );
    let (_, done) = get(&url(&s, &format!("/deployments/{id}"))).await;
    assert_eq!(
        (done["status"].as_str(), done["current_percent"].as_u64()),
        (Some("completed"), Some(100))
    );
    assert!(done["completed_at"].is_string());
    // ...or roll back (on a second deployment).
    let d2 = create(&s, json!({"queue_name": "critical-payments", "stable_version": "v2.1.0", "canary_version": "v2.1.1", "profile": "conservative", "max_duration": "4h", "min_duration": "15m"})).await;
    assert_eq!(
        (
            d2["config"]["max_canary_duration"].as_str(),
            d2["config"]["min_canary_duration"].as_str()
        ),
        (Some("4h0m0s"), Some("15m0s"))
    );
    assert_eq!(
        d2["config"]["rollback_thresholds"]["max_error_rate_increase"],
        2.0
    );
    let (code, rb) = post(
        &url(
            &s,
            &format!("/deployments/{}/rollback", d2["id"].as_str().unwrap()),
        ),
        json!({"reason": "High error rate detected"}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        rb["message"],
        "Deployment rolled back: High error rate detected"
    );
    assert_eq!(rb["reason"], "High error rate detected");
    // Automated (aggressive) example.
    let d3 = create(&s, json!({"queue_name": "analytics-processing", "stable_version": "v1.5.0", "canary_version": "v1.6.0", "profile": "aggressive", "auto_promotion": true})).await;
    assert_eq!(
        (
            d3["config"]["auto_promotion"].as_bool(),
            d3["config"]["sticky_routing"].as_bool()
        ),
        (Some(true), Some(false))
    );
    // The history, newest first, in seed 004's event shape.
    let (_, ev) = get(&url(&s, &format!("/deployments/{id}/events"))).await;
    let types: Vec<_> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "deployment_promoted",
            "percentage_updated",
            "deployment_created"
        ]
    );
    assert_eq!(ev["count"], 3);
    for f in ["id", "deployment_id", "type", "message", "timestamp"] {
        assert!(ev["events"][0].get(f).is_some(), "event has `{f}`");
    }
}

#[tokio::test]
async fn profiles_have_the_documented_values() {
    let s = Server::sqlite();
    let (code, p) = get(&url(&s, "/config/profiles")).await;
    assert_eq!(code, 200);
    let documented = json!({
      "default": {"routing_strategy": "split_queue", "sticky_routing": true, "auto_promotion": false,
        "max_canary_duration": "2h0m0s", "min_canary_duration": "5m0s", "drain_timeout": "5m0s", "metrics_window": "5m0s",
        "rollback_thresholds": {"max_error_rate_increase": 5.0, "max_latency_increase": 50.0, "max_throughput_decrease": 20.0, "min_success_rate": 95.0, "required_sample_size": 20}},
      "conservative": {"routing_strategy": "split_queue", "sticky_routing": true, "auto_promotion": false,
        "max_canary_duration": "4h0m0s", "min_canary_duration": "15m0s",
        "rollback_thresholds": {"max_error_rate_increase": 2.0, "max_latency_increase": 20.0, "max_throughput_decrease": 10.0, "min_success_rate": 95.0, "required_sample_size": 20}},
      "aggressive": {"routing_strategy": "split_queue", "sticky_routing": false, "auto_promotion": true,
        "max_canary_duration": "30m0s", "min_canary_duration": "2m0s",
        "rollback_thresholds": {"max_error_rate_increase": 20.0, "max_latency_increase": 200.0, "max_throughput_decrease": 75.0, "min_success_rate": 70.0, "required_sample_size": 5}}
    });
    // Seed 004's fields, value for value, plus Serin's regression margins.
    let mut without = p.clone();
    let margins: Vec<Value> = ["default", "conservative", "aggressive"]
        .iter()
        .map(|k| {
            without[*k]
                .as_object_mut()
                .unwrap()
                .remove("margins")
                .unwrap()
        })
        .collect();
    assert_eq!(without, documented);
    assert_eq!(
        margins[0],
        json!({"latency_percent": 10.0, "latency_ms": 1.0, "error_ratio": 1.25, "error_points": 0.1})
    );
    assert!(margins[1]["error_ratio"].as_f64() < margins[2]["error_ratio"].as_f64());
}

#[tokio::test]
async fn every_documented_error_code_over_http() {
    let s = Server::sqlite_with(&[
        ("SERIN_RATE_LIMIT", "0"),
        ("SERIN_MAX_ACTIVE_DEPLOYMENTS", "2"),
    ]);
    let base = json!({"queue_name": "q1", "stable_version": "v1", "canary_version": "v2"});
    assert_code(
        get(&url(&s, "/deployments/canary_nope")).await,
        404,
        "DEPLOYMENT_NOT_FOUND",
    );
    let d = create(&s, base.clone()).await;
    let id = d["id"].as_str().unwrap();
    let exists = assert_code(
        post(&url(&s, "/deployments"), base.clone()).await,
        409,
        "DEPLOYMENT_EXISTS",
    );
    assert_eq!(exists["details"]["existing_deployment_id"], id);
    for bad in [json!(101), json!(-5), json!(12.5), json!("fifty")] {
        assert_code(
            send(
                Method::PUT,
                &url(&s, &format!("/deployments/{id}/percentage")),
                Some(json!({"percentage": bad})),
            )
            .await,
            400,
            "INVALID_PERCENTAGE",
        );
    }
    let v = assert_code(post(&url(&s, "/deployments"), json!({"queue_name": "q2", "stable_version": "v1", "canary_version": "v2", "max_duration": "2 hours"})).await, 400, "VALIDATION_FAILED");
    assert_eq!(v["details"]["field"], "max_duration");
    let v = assert_code(post(&url(&s, "/deployments"), json!({"queue_name": "q2", "stable_version": "v1", "canary_version": "v2", "profile": "reckless"})).await, 400, "VALIDATION_FAILED");
    assert_eq!(v["details"]["field"], "profile");
    assert_code(post(&url(&s, "/deployments"), json!({"queue_name": "q2", "stable_version": "v1", "canary_version": "v2", "routing_strategy": "teleport"})).await, 400, "VALIDATION_FAILED");
    create(
        &s,
        json!({"queue_name": "q2", "stable_version": "v1", "canary_version": "v2"}),
    )
    .await;
    assert_code(
        post(
            &url(&s, "/deployments"),
            json!({"queue_name": "q3", "stable_version": "v1", "canary_version": "v2"}),
        )
        .await,
        429,
        "CONCURRENCY_LIMIT",
    );
    create(&s, json!({"queue_name": "q3", "tenant_id": "other", "stable_version": "v1", "canary_version": "v2"})).await;
    post(&url(&s, &format!("/deployments/{id}/promote")), Value::Null).await;
    assert_code(
        post(&url(&s, &format!("/deployments/{id}/promote")), Value::Null).await,
        400,
        "DEPLOYMENT_NOT_ACTIVE",
    );
    assert_code(
        post(
            &url(&s, &format!("/deployments/{id}/rollback")),
            json!({"reason": "x"}),
        )
        .await,
        400,
        "DEPLOYMENT_NOT_ACTIVE",
    );
    assert_code(
        send(
            Method::PUT,
            &url(&s, &format!("/deployments/{id}/percentage")),
            Some(json!({"percentage": 5})),
        )
        .await,
        400,
        "DEPLOYMENT_NOT_ACTIVE",
    );
    // Delete: 204 once final, then 404; a live one is refused.
    let (_, live) = get(&url(&s, "/deployments?queue_name=q2")).await;
    let live_id = live["deployments"][0]["id"].as_str().unwrap().to_string();
    assert_code(
        send(
            Method::DELETE,
            &url(&s, &format!("/deployments/{live_id}")),
            None,
        )
        .await,
        400,
        "DEPLOYMENT_ACTIVE",
    );
    let resp = reqwest::Client::new()
        .delete(url(&s, &format!("/deployments/{id}")))
        .bearer_auth(crate::harness::ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert_code(
        send(
            Method::DELETE,
            &url(&s, &format!("/deployments/{id}")),
            None,
        )
        .await,
        404,
        "DEPLOYMENT_NOT_FOUND",
    );
    // The deleted deployment's history is still in the audit log.
    let (_, audit) = get(&format!(
        "{}/api/v1/audit-logs?resource_id={id}&page_size=100",
        s.url
    ))
    .await;
    let actions: Vec<_> = audit["audit_logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        actions,
        [
            "deployment_deleted",
            "deployment_promoted",
            "deployment_created"
        ]
    );
    assert_eq!(audit["audit_logs"][0]["actor"], "admin (SERIN_ADMIN_TOKEN)");
}

#[tokio::test]
async fn durations_and_pagination() {
    let s = Server::sqlite();
    let d = create(&s, json!({"queue_name": "dur", "stable_version": "a", "canary_version": "b", "max_duration": "1h30m", "min_duration": "90s", "metrics_window": "30s"})).await;
    assert_eq!(d["config"]["max_canary_duration"], "1h30m0s");
    assert_eq!(d["config"]["min_canary_duration"], "1m30s");
    assert_eq!(d["config"]["metrics_window"], "30s");
    for i in 0..24 {
        create(
            &s,
            json!({"queue_name": format!("page{i}"), "stable_version": "a", "canary_version": "b"}),
        )
        .await;
    }
    let (_, p1) = get(&url(&s, "/deployments")).await;
    assert_eq!(
        (p1["count"].as_u64(), p1["pagination"].clone()),
        (
            Some(10),
            json!({"page": 1, "page_size": 10, "total_pages": 3, "total_items": 25, "has_next": true, "has_prev": false})
        )
    );
    let (_, p3) = get(&url(&s, "/deployments?page=3")).await;
    assert_eq!(
        (
            p3["count"].as_u64(),
            p3["pagination"]["has_next"].as_bool(),
            p3["pagination"]["has_prev"].as_bool()
        ),
        (Some(5), Some(false), Some(true))
    );
    let (_, p4) = get(&url(&s, "/deployments?page=4")).await;
    assert_eq!(p4["count"], 0);
    let (_, big) = get(&url(&s, "/deployments?page_size=100")).await;
    assert_eq!(big["count"], 25);
    let v = assert_code(
        get(&url(&s, "/deployments?page_size=101")).await,
        400,
        "VALIDATION_FAILED",
    );
    assert_eq!(v["details"]["field"], "page_size");
    assert_code(
        get(&url(&s, "/deployments?page=0")).await,
        400,
        "VALIDATION_FAILED",
    );
    assert_code(
        get(&url(&s, "/deployments?status=exploded")).await,
        400,
        "INVALID_PARAMETER",
    );
    let (_, active) = get(&url(&s, "/deployments?status=active&page_size=100")).await;
    assert_eq!(active["pagination"]["total_items"], 25);
    let (_, products) = get(&format!("{}/api/v1/products?page_size=100", s.url)).await;
    assert!(products["pagination"].is_object() && products["items"].is_array());
}

#[tokio::test]
async fn promoting_a_product_canary_makes_its_release_stable() {
    let s = Server::sqlite();
    let api = |p: &str| format!("{}{p}", s.url);
    post(&api("/product"), json!({"name": "shop"})).await;
    for v in ["1.0.0", "1.1.0"] {
        let (_, r) = post(
            &api("/release"),
            json!({"product_name": "shop", "version": v}),
        )
        .await;
        if v == "1.0.0" {
            for st in ["approved", "released"] {
                send(
                    Method::PATCH,
                    &api(&format!("/api/v1/releases/{}", r["id"])),
                    Some(json!({"status": st})),
                )
                .await;
            }
        }
    }
    let (_, before) = get(&api("/release/shop/latest")).await;
    assert_eq!(before["version"], "1.0.0");
    let d = create(&s, json!({"queue_name": "shop-web", "stable_version": "1.0.0", "canary_version": "1.1.0", "product": "shop", "environment": "production", "percentage": 10})).await;
    assert_eq!(
        (d["product"].as_str(), d["environment"].as_str()),
        (Some("shop"), Some("production"))
    );
    let (code, _) = post(
        &url(
            &s,
            &format!("/deployments/{}/promote", d["id"].as_str().unwrap()),
        ),
        Value::Null,
    )
    .await;
    assert_eq!(code, 200);
    let (_, after) = get(&api("/release/shop/latest")).await;
    assert_eq!(
        (after["version"].as_str(), after["status"].as_str()),
        (Some("1.1.0"), Some("released")),
        "the draft went through approved to released"
    );
    let (_, audit) = get(&api(
        "/api/v1/audit-logs?resource_type=release&action=release_updated&page_size=100",
    ))
    .await;
    assert_eq!(
        audit["pagination"]["total_items"], 4,
        "two steps for 1.0.0 by hand, two for 1.1.0 by the promotion"
    );
}
