//! Workers, metrics and health from real observations, job routing, seed 002's
//! operator endpoints, the live WebSocket stream, and races over HTTP.

use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::harness::{ADMIN, Server, get, post, send};

fn url(s: &Server, path: &str) -> String {
    format!("{}{path}", s.url)
}

async fn deployment(s: &Server, body: Value) -> String {
    let (code, d) = post(&url(s, "/api/v1/canary/deployments"), body).await;
    assert_eq!(code, 201, "{d}");
    d["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn workers_register_beat_and_go_unreachable() {
    let s = Server::sqlite_with(&[("SERIN_RATE_LIMIT", "0"), ("SERIN_WORKER_TIMEOUT", "1s")]);
    let id = deployment(&s, json!({"queue_name": "payment-processing", "stable_version": "v1.2.0", "canary_version": "v1.3.0", "percentage": 20})).await;
    let reg = json!({"id": "worker-003-canary", "version": "v1.3.0", "lane": "canary", "queues": ["payment-processing"],
                     "metadata": {"hostname": "worker-host-03", "region": "us-west-2", "instance_type": "m5.large"}});
    let (code, w) = post(&url(&s, "/api/v1/canary/workers"), reg.clone()).await;
    assert_eq!(code, 201, "{w}");
    for f in [
        "id",
        "version",
        "lane",
        "queues",
        "last_seen",
        "status",
        "metrics",
        "metadata",
    ] {
        assert!(w.get(f).is_some(), "worker has `{f}`");
    }
    for f in [
        "jobs_processed",
        "jobs_succeeded",
        "jobs_failed",
        "avg_processing_time",
        "memory_usage_mb",
        "cpu_usage_percent",
        "last_job_at",
    ] {
        assert!(w["metrics"].get(f).is_some(), "metrics has `{f}`");
    }
    assert_eq!(
        post(&url(&s, "/api/v1/canary/workers"), reg).await.0,
        201,
        "re-registration"
    );
    let (code, _) = post(
        &url(&s, "/api/v1/canary/workers"),
        json!({"id": "worker-001-stable", "version": "v1.2.0", "queues": ["payment-processing"]}),
    )
    .await;
    assert_eq!(code, 201);
    let (_, canary) = get(&url(&s, "/api/v1/canary/workers?lane=canary")).await;
    assert_eq!(
        (
            canary["count"].as_u64(),
            canary["workers"][0]["id"].as_str()
        ),
        (Some(1), Some("worker-003-canary"))
    );
    let (_, stable) = get(&url(&s, "/api/v1/canary/workers?lane=stable")).await;
    assert_eq!(
        stable["workers"][0]["lane"], "stable",
        "lane defaults to stable"
    );
    let (code, st) = send(
        Method::PUT,
        &url(&s, "/api/v1/canary/workers/worker-003-canary/status"),
        Some(json!({"status": "degraded"})),
    )
    .await;
    assert_eq!(
        (code, st["success"].as_bool(), st["status"].as_str()),
        (200, Some(true), Some("degraded"))
    );
    assert!(st["updated_at"].is_string());
    let (code, e) = send(
        Method::PUT,
        &url(&s, "/api/v1/canary/workers/worker-003-canary/status"),
        Some(json!({"status": "sleepy"})),
    )
    .await;
    assert_eq!((code, e["code"].as_str()), (400, Some("VALIDATION_FAILED")));

    // Heartbeats carry metrics and job results; results become lane observations.
    let jobs =
        |ok: usize, bad: usize, ms: f64| -> Value {
            let mut v: Vec<Value> = (0..ok)
                .map(|_| json!({"queue": "payment-processing", "success": true, "duration_ms": ms}))
                .collect();
            v.extend((0..bad).map(
                |_| json!({"queue": "payment-processing", "success": false, "duration_ms": ms}),
            ));
            Value::Array(v)
        };
    let (code, w) = post(&url(&s, "/api/v1/canary/workers/worker-003-canary/heartbeat"),
        json!({"metrics": {"jobs_processed": 30, "jobs_succeeded": 27, "jobs_failed": 3, "memory_usage_mb": 142.1, "cpu_usage_percent": 40.0}, "status": "healthy", "job_results": jobs(27, 3, 220.0)})).await;
    assert_eq!(
        (
            code,
            w["metrics"]["jobs_processed"].as_u64(),
            w["status"].as_str()
        ),
        (200, Some(30), Some("healthy"))
    );
    post(
        &url(&s, "/api/v1/canary/workers/worker-001-stable/heartbeat"),
        json!({"metrics": {"memory_usage_mb": 128.4}, "job_results": jobs(119, 1, 200.0)}),
    )
    .await;
    let (_, m) = get(&url(
        &s,
        &format!("/api/v1/canary/deployments/{id}/metrics"),
    ))
    .await;
    assert_eq!(
        (
            m["canary"]["job_count"].as_u64(),
            m["canary"]["error_count"].as_u64(),
            m["canary"]["error_rate"].as_f64()
        ),
        (Some(30), Some(3), Some(10.0))
    );
    assert_eq!(
        (
            m["stable"]["job_count"].as_u64(),
            m["stable"]["p95_latency"].as_f64()
        ),
        (Some(120), Some(200.0))
    );
    assert_eq!(
        (
            m["canary"]["worker_count"].as_u64(),
            m["canary"]["avg_memory_mb"].as_f64(),
            m["canary"]["version"].as_str()
        ),
        (Some(1), Some(142.1), Some("v1.3.0"))
    );
    for f in [
        "timestamp",
        "window_start",
        "window_end",
        "job_count",
        "success_count",
        "error_count",
        "error_rate",
        "success_rate",
        "avg_latency",
        "p50_latency",
        "p95_latency",
        "p99_latency",
        "max_latency",
        "jobs_per_second",
        "avg_memory_mb",
        "peak_memory_mb",
        "avg_cpu_percent",
        "queue_depth",
        "dead_letters",
        "worker_count",
        "version",
    ] {
        assert!(m["stable"].get(f).is_some(), "snapshot has `{f}`");
    }
    let (_, h) = get(&url(&s, &format!("/api/v1/canary/deployments/{id}/health"))).await;
    assert_eq!(h["overall_status"], "failing", "10% vs 0.8% errors: {h}");
    assert_eq!(h["error_rate_check"]["passing"], false);

    // Silence: after the 1s timeout the sweeper marks both unreachable.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, all) = get(&url(&s, "/api/v1/canary/workers")).await;
    let statuses: Vec<_> = all["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(statuses, ["unreachable", "unreachable"], "{all}");
    let (_, back) = post(
        &url(&s, "/api/v1/canary/workers/worker-001-stable/heartbeat"),
        json!({}),
    )
    .await;
    assert_eq!(back["status"], "healthy");
}

#[tokio::test]
async fn health_turns_healthy_with_good_data_and_signals_feed_it() {
    let s = Server::sqlite();
    let id = deployment(&s, json!({"queue_name": "api", "stable_version": "a", "canary_version": "b", "percentage": 20, "min_duration": "0s"})).await;
    let mut sig: Vec<Value> = Vec::new();
    for i in 0..400 {
        let lane = if i % 5 == 0 { "canary" } else { "stable" };
        sig.push(json!({"lane": lane, "name": "http.request", "kind": "outcome", "value": if i % 100 == 7 { 0 } else { 1 }}));
        sig.push(json!({"lane": lane, "name": "http.request.duration", "kind": "latency", "value": 100 + (i % 10)}));
    }
    sig.push(json!({"lane": "stable", "name": "queue_depth", "kind": "gauge", "value": 45}));
    let (code, acc) = post(
        &url(&s, &format!("/api/v1/canary/deployments/{id}/signals")),
        json!({"signals": sig}),
    )
    .await;
    assert_eq!((code, acc["accepted"].as_u64()), (201, Some(801)));
    let (_, h) = get(&url(&s, &format!("/api/v1/canary/deployments/{id}/health"))).await;
    assert_eq!(h["overall_status"], "healthy", "{h}");
    assert!(
        h["sample_size_check"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Sample size: 80 (required: 20)")
    );
    let (_, m) = get(&url(
        &s,
        &format!("/api/v1/canary/deployments/{id}/metrics"),
    ))
    .await;
    assert_eq!(m["stable"]["queue_depth"], 45);
    let (code, e) = post(
        &url(&s, &format!("/api/v1/canary/deployments/{id}/signals")),
        json!({"signals": [{"lane": "canary", "name": "x", "kind": "outcome", "value": 3}]}),
    )
    .await;
    assert_eq!(
        (code, e["details"]["field"].as_str()),
        (400, Some("signals[0].value"))
    );
}

#[tokio::test]
async fn job_routing_is_sticky_and_follows_the_strategy() {
    let s = Server::sqlite();
    let route = |q: &str| url(&s, &format!("/api/v1/canary/route?{q}"));
    let (_, none) = get(&route("queue=orders&key=u1")).await;
    assert_eq!(
        (
            none["lane"].as_str(),
            none["queue"].as_str(),
            none["deployment_id"].clone()
        ),
        (Some("stable"), Some("orders"), Value::Null)
    );
    let id = deployment(&s, json!({"queue_name": "orders", "stable_version": "a", "canary_version": "b", "percentage": 30})).await;
    let mut lanes = std::collections::HashMap::new();
    let mut canary = 0;
    for i in 0..200 {
        let (_, r) = get(&route(&format!("queue=orders&key=user-{i}"))).await;
        let (_, again) = get(&route(&format!("queue=orders&key=user-{i}"))).await;
        assert_eq!(r["lane"], again["lane"], "sticky");
        assert_eq!(r["deployment_id"], json!(id));
        if r["lane"] == "canary" {
            canary += 1;
            assert_eq!(
                r["queue"], "orders:canary",
                "split_queue names a separate canary queue"
            );
        } else {
            assert_eq!(r["queue"], "orders");
        }
        lanes.insert(i, r["lane"].as_str().unwrap().to_string());
    }
    assert!((40..=80).contains(&canary), "about 30% of 200: {canary}");
    // Raising the percentage only moves keys stable → canary.
    send(
        Method::PUT,
        &url(&s, &format!("/api/v1/canary/deployments/{id}/percentage")),
        Some(json!({"percentage": 60})),
    )
    .await;
    for i in 0..200 {
        let (_, r) = get(&route(&format!("queue=orders&key=user-{i}"))).await;
        if lanes[&i] == "canary" {
            assert_eq!(r["lane"], "canary", "user-{i} stayed canary");
        }
    }
    deployment(&s, json!({"queue_name": "events", "stable_version": "a", "canary_version": "b", "percentage": 100, "routing_strategy": "stream_group"})).await;
    let (_, r) = get(&route("queue=events")).await;
    assert_eq!(
        (
            r["lane"].as_str(),
            r["queue"].as_str(),
            r["consumer_group"].as_str()
        ),
        (Some("canary"), Some("events"), Some("events:canary"))
    );
    let (code, e) = get(&route("key=x")).await;
    assert_eq!((code, e["code"].as_str()), (400, Some("INVALID_PARAMETER")));
}

#[tokio::test]
async fn operator_endpoints_act_on_the_same_deployments() {
    let s = Server::sqlite_with(&[("SERIN_RATE_LIMIT", "0"), ("SERIN_DEFAULT_QUEUE", "web")]);
    let (code, e) = get(&url(&s, "/admin/canary/metrics")).await;
    assert_eq!(
        (code, e["code"].as_str()),
        (404, Some("DEPLOYMENT_NOT_FOUND"))
    );
    let (code, d) = post(
        &url(&s, "/admin/canary/start?image_tag=v2.0.0"),
        Value::Null,
    )
    .await;
    assert_eq!(
        (
            code,
            d["current_percent"].as_u64(),
            d["canary_version"].as_str(),
            d["queue_name"].as_str()
        ),
        (201, Some(5), Some("v2.0.0"), Some("web")),
        "{d}"
    );
    let (_, listed) = get(&url(&s, "/api/v1/canary/deployments?queue_name=web")).await;
    assert_eq!(
        listed["deployments"][0]["id"], d["id"],
        "the same deployment under /api/v1/canary"
    );
    let (code, scaled) = post(&url(&s, "/admin/canary/scale/25"), Value::Null).await;
    assert_eq!((code, scaled["current_percent"].as_u64()), (200, Some(25)));
    let (code, e) = post(&url(&s, "/admin/canary/scale/250"), Value::Null).await;
    assert_eq!(
        (code, e["code"].as_str()),
        (400, Some("INVALID_PERCENTAGE"))
    );
    let (_, status) = get(&url(&s, "/admin/canary/status")).await;
    assert_eq!(
        (
            status["active"].as_bool(),
            status["health"]["overall_status"].as_str()
        ),
        (Some(true), Some("unknown"))
    );
    let (_, m) = get(&url(&s, "/admin/canary/metrics")).await;
    assert!(m["stable"].is_object() && m["canary"].is_object());
    let (code, w) = post(
        &url(&s, "/admin/canary/webhook/traffic-updated"),
        json!({"by": "canary-deploy.sh"}),
    )
    .await;
    assert_eq!((code, w["success"].as_bool()), (202, Some(true)));
    let (code, _) = post(&url(&s, "/admin/canary/webhook/exploded"), Value::Null).await;
    assert_eq!(code, 400);
    let (code, stopped) = post(&url(&s, "/admin/canary/stop"), Value::Null).await;
    assert_eq!(
        (
            code,
            stopped["status"].as_str(),
            stopped["current_percent"].as_u64()
        ),
        (200, Some("failed"), Some(0))
    );
    assert!(
        stopped["status_reason"]
            .as_str()
            .unwrap()
            .starts_with("emergency stop")
    );
    let (_, status) = get(&url(&s, "/admin/canary/status")).await;
    assert_eq!(status["active"], false);
    // A JSON body works as well as the query string.
    let (code, d2) = post(
        &url(&s, "/admin/canary/start"),
        json!({"image_tag": "v2.0.1", "traffic_percent": 10, "stable_version": "v1.9.0"}),
    )
    .await;
    assert_eq!(
        (
            code,
            d2["current_percent"].as_u64(),
            d2["stable_version"].as_str()
        ),
        (201, Some(10), Some("v1.9.0"))
    );
    let (_, ev) = get(&url(
        &s,
        &format!(
            "/api/v1/canary/deployments/{}/events",
            d["id"].as_str().unwrap()
        ),
    ))
    .await;
    let types: Vec<_> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "deployment_rolled_back",
            "external_report",
            "percentage_updated",
            "deployment_created"
        ]
    );
}

#[tokio::test]
async fn the_websocket_stream_carries_changes_live() {
    let s = Server::sqlite();
    let id = deployment(
        &s,
        json!({"queue_name": "ws", "stable_version": "a", "canary_version": "b", "percentage": 10}),
    )
    .await;
    let ws_url = format!(
        "{}/api/v1/canary/deployments/{id}/events",
        s.url.replacen("http", "ws", 1)
    );
    let mut anonymous = ws_url.as_str().into_client_request().unwrap();
    anonymous.headers_mut().remove("authorization");
    match tokio_tungstenite::connect_async(anonymous).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 401, "the stream needs a key too")
        }
        other => panic!(
            "expected a 401 refusal, got {:?}",
            other.map(|(_, r)| r.status())
        ),
    }
    let mut req = ws_url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {ADMIN}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    // First the lanes' recent seconds (none yet: no proxy traffic), then the
    // first tick brings the metrics and the initial health verdict; the lanes'
    // seconds come every second.
    let first: Value =
        serde_json::from_str(next_message(&mut socket).await.to_text().unwrap()).unwrap();
    assert_eq!(first["type"], "lanes_history", "{first}");
    assert_eq!(first["data"]["points"], json!([]));
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let m: Value =
            serde_json::from_str(next_message(&mut socket).await.to_text().unwrap()).unwrap();
        let kind = m["type"].as_str().unwrap().to_string();
        if kind != "lanes_updated" {
            kinds.push(kind);
        }
    }
    assert_eq!(kinds, ["metrics_updated", "health_status_changed"]);
    // A browser, which can't set headers on a WebSocket, sends the token as
    // the subprotocol pair `serin, <token>`; the server picks `serin`.
    let mut browser = ws_url.as_str().into_client_request().unwrap();
    browser.headers_mut().insert(
        "sec-websocket-protocol",
        format!("serin, {ADMIN}").parse().unwrap(),
    );
    let (mut from_browser, resp) = tokio_tungstenite::connect_async(browser).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "serin");
    let m: Value =
        serde_json::from_str(next_message(&mut from_browser).await.to_text().unwrap()).unwrap();
    assert_eq!(m["type"], "lanes_history");
    drop(from_browser);
    send(
        Method::PUT,
        &url(&s, &format!("/api/v1/canary/deployments/{id}/percentage")),
        Some(json!({"percentage": 25})),
    )
    .await;
    let m = next_of(&mut socket, "percentage_updated").await;
    assert_eq!(m["deployment_id"], json!(id));
    assert_eq!(
        m["data"],
        json!({"old_percentage": 10, "new_percentage": 25, "revision": 2})
    );
    assert!(m["timestamp"].is_string());
    post(
        &url(&s, &format!("/api/v1/canary/deployments/{id}/rollback")),
        json!({"reason": "bad"}),
    )
    .await;
    let a = next_of(&mut socket, "rollback_triggered").await;
    let b = next_of(&mut socket, "deployment_status_changed").await;
    assert_eq!(
        (a["data"]["reason"].as_str(), b["data"]["revision"].as_u64()),
        (Some("bad"), Some(3))
    );
    assert_eq!(
        (
            b["data"]["old_status"].as_str(),
            b["data"]["new_status"].as_str()
        ),
        (Some("active"), Some("failed"))
    );
    socket.close(None).await.ok();
}

#[tokio::test]
async fn races_over_http_end_in_one_consistent_outcome() {
    races(&Server::sqlite()).await;
}

/// Promote, rollback and a percentage change fired together, then a double delete.
async fn races(s: &Server) {
    for round in 0..5 {
        let id = deployment(s, json!({"queue_name": format!("race{round}"), "stable_version": "a", "canary_version": "b"})).await;
        let (pu, ru, cu) = (
            url(s, &format!("/api/v1/canary/deployments/{id}/promote")),
            url(s, &format!("/api/v1/canary/deployments/{id}/rollback")),
            url(s, &format!("/api/v1/canary/deployments/{id}/percentage")),
        );
        let promote = post(&pu, Value::Null);
        let rollback = post(&ru, json!({"reason": "race"}));
        let percent = send(Method::PUT, &cu, Some(json!({"percentage": 50})));
        let ((p, _), (r, _), (pc, pcb)) = tokio::join!(promote, rollback, percent);
        assert!(
            (p == 200) != (r == 200),
            "exactly one of promote/rollback wins: {p} {r}"
        );
        assert!(
            pc == 200 || pcb["code"] == "DEPLOYMENT_NOT_ACTIVE",
            "{pc} {pcb}"
        );
        let (_, d) = get(&url(s, &format!("/api/v1/canary/deployments/{id}"))).await;
        let expect = if p == 200 {
            ("completed", 100)
        } else {
            ("failed", 0)
        };
        assert_eq!(
            (
                d["status"].as_str().unwrap(),
                d["current_percent"].as_u64().unwrap()
            ),
            expect
        );
        // Double delete: one 204, one 404.
        let del = || {
            reqwest::Client::new()
                .delete(url(s, &format!("/api/v1/canary/deployments/{id}")))
                .bearer_auth(ADMIN)
                .send()
        };
        let (a, b) = tokio::join!(del(), del());
        let mut codes = [a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
        codes.sort_unstable();
        assert_eq!(codes, [204, 404]);
    }
}

/// The next stream message of type `kind`, skipping the periodic metrics,
/// health and lane messages (which may arrive at any moment), waiting at most 10 s.
async fn next_of<S>(socket: &mut S, kind: &str) -> Value
where
    S: futures::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    loop {
        let m: Value = serde_json::from_str(next_message(socket).await.to_text().unwrap()).unwrap();
        match m["type"].as_str() {
            Some(k) if k == kind => return m,
            Some(
                "metrics_updated" | "health_status_changed" | "lanes_history" | "lanes_updated",
            ) => {
                continue;
            }
            other => panic!("expected {kind}, got {other:?}: {m}"),
        }
    }
}

/// The next stream message, waiting at most 10 s.
async fn next_message<S>(socket: &mut S) -> tokio_tungstenite::tungstenite::Message
where
    S: futures::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("a message within 10s")
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_revoked_key_stops_streaming_and_streams_are_checked() {
    let s = Server::sqlite();
    let id = deployment(
        &s,
        json!({"queue_name": "revoke", "stable_version": "a", "canary_version": "b"}),
    )
    .await;
    let (_, k) = post(
        &url(&s, "/api/v1/api-keys"),
        json!({"name": "watcher", "role": "viewer"}),
    )
    .await;
    let key = k["key"].as_str().unwrap();
    let ws_url = format!(
        "{}/api/v1/canary/deployments/{id}/events",
        s.url.replacen("http", "ws", 1)
    );
    let mut req = ws_url.as_str().into_client_request().unwrap();
    req.headers_mut().insert("x-api-key", key.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    next_of(&mut socket, "metrics_updated").await;
    send(
        Method::DELETE,
        &url(
            &s,
            &format!("/api/v1/api-keys/{}", k["id"].as_str().unwrap()),
        ),
        None,
    )
    .await;
    // Within one tick (5 s) the server closes the stream.
    let closed = tokio::time::timeout(Duration::from_secs(12), async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) => return true,
                Some(Ok(m)) if m.is_close() => return true,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert_eq!(closed, Ok(true), "the stream of a revoked key is closed");
}

#[tokio::test]
async fn canary_validation_codes_and_checked_inputs() {
    let s = Server::sqlite();
    // A missing field or a wrong type on the canary API is seed 004's VALIDATION_FAILED (400).
    let (code, e) = post(
        &url(&s, "/api/v1/canary/deployments"),
        json!({"queue_name": "q", "stable_version": "v1"}),
    )
    .await;
    assert_eq!(
        (
            code,
            e["code"].as_str(),
            e["details"]["field"].as_str(),
            e["details"]["problem"].as_str()
        ),
        (
            400,
            Some("VALIDATION_FAILED"),
            Some("canary_version"),
            Some("MISSING_FIELD")
        ),
        "{e}"
    );
    let (code, e) = send(
        Method::PUT,
        &url(&s, "/api/v1/canary/deployments/x/percentage"),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (code, e["code"].as_str()),
        (400, Some("VALIDATION_FAILED")),
        "{e}"
    );
    let (code, e) = post(&url(&s, "/api/v1/canary/deployments"), json!({"queue_name": "q", "stable_version": "v1", "canary_version": "v2", "metrics_window": "48h"})).await;
    assert_eq!(
        (code, e["details"]["field"].as_str()),
        (400, Some("metrics_window")),
        "{e}"
    );
    // Seed 002's start with the percentage in the query string, as its signature implies.
    let (code, d) = post(
        &url(&s, "/admin/canary/start?image_tag=v9&traffic_percent=10"),
        Value::Null,
    )
    .await;
    assert_eq!(
        (code, d["current_percent"].as_u64()),
        (201, Some(10)),
        "{d}"
    );
    // A job result must name a queue the worker serves.
    post(
        &url(&s, "/api/v1/canary/workers"),
        json!({"id": "w", "version": "v9", "lane": "canary", "queues": ["default"]}),
    )
    .await;
    let (code, e) = post(
        &url(&s, "/api/v1/canary/workers/w/heartbeat"),
        json!({"job_results": [{"queue": "elsewhere", "success": true}]}),
    )
    .await;
    assert_eq!(
        (code, e["details"]["field"].as_str()),
        (400, Some("job_results[0].queue")),
        "{e}"
    );
    let (code, _) = post(
        &url(&s, "/api/v1/canary/workers/w/heartbeat"),
        json!({"job_results": [{"queue": "default", "success": true}]}),
    )
    .await;
    assert_eq!(code, 200);
    let (_, m) = get(&url(
        &s,
        &format!(
            "/api/v1/canary/deployments/{}/metrics",
            d["id"].as_str().unwrap()
        ),
    ))
    .await;
    assert_eq!(
        m["canary"]["job_count"], 1,
        "the result counted toward the only live deployment on the queue"
    );
}

#[tokio::test]
async fn races_over_http_on_postgres() {
    let Some(db) = crate::harness::postgres_schema("races").await else {
        return;
    };
    let s = Server::start(&db, tempfile::tempdir().unwrap());
    races(&s).await;
}
