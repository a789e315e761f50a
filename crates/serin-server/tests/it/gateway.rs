//! The Gateway API engine against a stand-in Kubernetes API server. No API
//! server or gateway controller runs on this machine, so this is a mock,
//! named as such: it serves one namespace's `HTTPRoute`s at the API server's
//! paths, with its semantics for what the engine relies on — `resourceVersion`
//! checked on replace (409 on a stale one), `metadata.generation` moved by a
//! spec change only, the status kept across a replace — and plays the gateway
//! controller by setting each parent's conditions to the new generation a
//! moment later (or never, or refusing). Every object the engine writes is
//! kept in `target/k8s-objects/` for `tests/k8s-models/validate.mjs`, which
//! checks it against the Gateway API's published schema.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::app::TestApp;

/// How the stand-in's gateway controller behaves.
#[derive(Clone, Copy, PartialEq)]
enum Controller {
    /// Accepts each new generation 100 ms after it is written.
    Accepts,
    /// Never updates the status.
    Silent,
    /// Accepts, on an API server whose HTTPRoute schema predates rule names.
    OldSchema,
}

/// One Service's requests, 5xx answers, and the time each took (ms).
type Served = (u64, u64, f64);

#[derive(Clone)]
struct Mock {
    route: Arc<Mutex<Value>>,
    controller: Controller,
    /// Replaces to refuse with 409 before accepting one (someone else's edit).
    conflicts: Arc<Mutex<u32>>,
    puts: Arc<Mutex<Vec<Value>>>,
    /// The stand-in data plane's counters per Service: (requests, 5xx,
    /// request time in ms of each).
    served: Arc<Mutex<std::collections::BTreeMap<String, Served>>>,
}

/// The stand-in data plane's counters in Prometheus' text format.
async fn metrics(State(m): State<Mock>) -> String {
    let mut out = String::from("# TYPE gateway_upstream_requests_total counter\n");
    for (service, (n, _, _)) in m.served.lock().unwrap().iter() {
        out += &format!("gateway_upstream_requests_total{{service=\"{service}\"}} {n}\n");
    }
    out += "# TYPE gateway_upstream_errors_total counter\n";
    for (service, (_, e, _)) in m.served.lock().unwrap().iter() {
        out += &format!("gateway_upstream_errors_total{{service=\"{service}\"}} {e}\n");
    }
    // Request times as Envoy keeps them: a histogram in milliseconds.
    out += "# TYPE gateway_upstream_rq_time histogram\n";
    for (service, (n, _, ms)) in m.served.lock().unwrap().iter() {
        for le in [5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0] {
            let within = if *ms <= le { *n } else { 0 };
            out += &format!(
                "gateway_upstream_rq_time_bucket{{service=\"{service}\",le=\"{le}\"}} {within}\n"
            );
        }
        out +=
            &format!("gateway_upstream_rq_time_bucket{{service=\"{service}\",le=\"+Inf\"}} {n}\n");
        out += &format!("gateway_upstream_rq_time_count{{service=\"{service}\"}} {n}\n");
        out += &format!(
            "gateway_upstream_rq_time_sum{{service=\"{service}\"}} {}\n",
            *n as f64 * ms
        );
    }
    out
}

/// Plays the data plane: 200 requests a second split by the route's weights
/// as they stand, stable failing 1 in 50 and taking 20 ms, canary failing 1
/// in `canary_every` and taking `canary_ms`.
fn serve(m: &Mock, canary_every: u64, canary_ms: f64) {
    let m = m.clone();
    tokio::spawn(async move {
        let mut i = 0u64;
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            i += 1;
            let (ws, wc) = weights(&m);
            if ws + wc == 0 {
                continue;
            }
            let canary = i % (ws + wc) >= ws;
            let (service, every, ms) = if canary {
                ("web-canary", canary_every, canary_ms)
            } else {
                ("web-stable", 50, 20.0)
            };
            let mut served = m.served.lock().unwrap();
            let c = served.entry(service.to_string()).or_default();
            c.0 += 1;
            c.2 = ms;
            if c.0.is_multiple_of(every) {
                c.1 += 1;
            }
        }
    });
}

fn status(code: u16, reason: &str, message: &str) -> (StatusCode, Json<Value>) {
    (
        StatusCode::from_u16(code).unwrap(),
        Json(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": message, "reason": reason, "code": code}),
        ),
    )
}

async fn get_route(
    State(m): State<Mock>,
    Path((ns, name)): Path<(String, String)>,
) -> (StatusCode, Json<Value>) {
    let r = m.route.lock().unwrap().clone();
    if ns != "prod" || name != r["metadata"]["name"] {
        return status(
            404,
            "NotFound",
            &format!("httproutes.gateway.networking.k8s.io \"{name}\" not found"),
        );
    }
    (StatusCode::OK, Json(r))
}

async fn put_route(
    State(m): State<Mock>,
    Path((_ns, name)): Path<(String, String)>,
    Json(mut new): Json<Value>,
) -> (StatusCode, Json<Value>) {
    m.puts.lock().unwrap().push(new.clone());
    {
        let mut c = m.conflicts.lock().unwrap();
        if *c > 0 {
            *c -= 1;
            // Someone else's edit landed first: a hostname added, the
            // version and the generation move on.
            let mut r = m.route.lock().unwrap();
            let rv: u64 = r["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            r["metadata"]["resourceVersion"] = json!((rv + 1).to_string());
            r["spec"]["hostnames"]
                .as_array_mut()
                .unwrap()
                .push(json!("www.example.com"));
            let g = r["metadata"]["generation"].as_i64().unwrap();
            r["metadata"]["generation"] = json!(g + 1);
        }
    }
    let mut r = m.route.lock().unwrap();
    if new["metadata"]["resourceVersion"] != r["metadata"]["resourceVersion"] {
        return status(
            409,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on httproutes.gateway.networking.k8s.io \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
        );
    }
    if m.controller == Controller::OldSchema {
        // An API server with Gateway API CRDs older than v1.4's standard
        // channel prunes the fields it doesn't know: rule names.
        for rule in new["spec"]["rules"].as_array_mut().unwrap() {
            rule.as_object_mut().unwrap().remove("name");
        }
    }
    let rv: u64 = r["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut generation = r["metadata"]["generation"].as_i64().unwrap();
    if new["spec"] != r["spec"] {
        generation += 1;
    }
    new["metadata"]["resourceVersion"] = json!((rv + 1).to_string());
    new["metadata"]["generation"] = json!(generation);
    // The status is a subresource: a replace of the object keeps it.
    new["status"] = r["status"].clone();
    *r = new.clone();
    drop(r);
    if matches!(m.controller, Controller::Accepts | Controller::OldSchema) {
        let route = m.route.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut r = route.lock().unwrap();
            for c in r["status"]["parents"][0]["conditions"]
                .as_array_mut()
                .unwrap()
            {
                c["observedGeneration"] = json!(generation);
            }
        });
    }
    (StatusCode::OK, Json(new))
}

/// An HTTPRoute of the shape the API server returns, its two backends at
/// 100/0, accepted by gateway `edge` at generation 1.
fn route() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": "prod", "uid": "9b0e4f2c-1d7a-4c55-9f1e-2a6b8c0d3e41",
                     "resourceVersion": "1041", "generation": 1,
                     "creationTimestamp": "2026-12-07T10:00:00Z"},
        "spec": {
            "parentRefs": [{"name": "edge"}],
            "hostnames": ["web.example.com"],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [
                    {"group": "", "kind": "Service", "name": "web-stable", "port": 8080, "weight": 100},
                    {"group": "", "kind": "Service", "name": "web-canary", "port": 8080, "weight": 0}
                ]
            }]
        },
        "status": {"parents": [{
            "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge"},
            "controllerName": "example.net/gateway-controller",
            "conditions": [
                {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                 "observedGeneration": 1, "lastTransitionTime": "2026-12-07T10:00:01Z"},
                {"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs", "message": "",
                 "observedGeneration": 1, "lastTransitionTime": "2026-12-07T10:00:01Z"}
            ]
        }]}
    })
}

async fn mock(controller: Controller, conflicts: u32) -> (Mock, String) {
    let m = Mock {
        route: Arc::new(Mutex::new(route())),
        controller,
        conflicts: Arc::new(Mutex::new(conflicts)),
        puts: Arc::default(),
        served: Arc::default(),
    };
    let app = Router::new()
        .route(
            "/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes/{name}",
            get(get_route).put(put_route),
        )
        .route("/metrics", get(metrics))
        .with_state(m.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (m, url)
}

/// Keeps what the engine wrote for the schema check of the test command.
fn keep(puts: &[Value], name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/k8s-objects");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, p) in puts.iter().enumerate() {
        std::fs::write(
            dir.join(format!("{name}-{i}.json")),
            serde_json::to_string_pretty(p).unwrap(),
        )
        .unwrap();
    }
}

fn weights(m: &Mock) -> (u64, u64) {
    let r = m.route.lock().unwrap();
    let refs = &r["spec"]["rules"][0]["backendRefs"];
    (
        refs[0]["weight"].as_u64().unwrap(),
        refs[1]["weight"].as_u64().unwrap(),
    )
}

fn body(confirm_within: &str) -> Value {
    json!({"queue_name": "web", "stable_version": "1", "canary_version": "2",
           "engine": {"engine": "gw", "backend": "web", "stable": ["web-stable"],
                      "canary": ["web-canary"], "confirm_within": confirm_within},
           "rollout": {"steps": [{"set_weight": 20}, {"pause": {}}]}})
}

/// A rollout whose traffic an HTTPRoute splits: the step's weights are
/// written (after a 409 from someone else's edit, read again and written),
/// the step is reached only once the gateway accepted the new generation,
/// and a rollback puts the canary's weight to 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_follows_a_rollout_through_an_httproute() {
    let (m, url) = mock(Controller::Accepts, 1).await;
    let spec = format!("gw=gateway-api:{url}?namespace=prod&routes=web");
    let app = TestApp::start_with(move |c| c.engines.add_spec(&spec).unwrap()).await;
    // A route outside `routes=` is refused.
    let mut other = body("10s");
    other["engine"]["backend"] = json!("admin");
    let (s, e) = app.post("/api/v1/canary/deployments", other).await;
    assert_eq!(
        (s, e["details"]["field"].as_str()),
        (400, Some("engine.backend")),
        "{e}"
    );

    // The Gateway API has no cookie match: a cookie rule takes exact values.
    let mut with_rules = body("10s");
    with_rules["traffic"] = json!({"rules": [
        {"match": {"cookie": {"name": "tier", "regex": "gold|silver"}}}]});
    let (s, e) = app
        .post("/api/v1/canary/deployments", with_rules.clone())
        .await;
    assert_eq!(
        (s, e["details"]["field"].as_str()),
        (400, Some("traffic.rules")),
        "{e}"
    );
    with_rules["traffic"] = json!({"rules": [
        {"match": {"header": {"name": "X-Beta", "equals": "1"}}},
        {"match": {"cookie": {"name": "tier", "equals": "gold"}}, "lane": "stable"},
        {"match": {"header": {"name": "X-Region", "regex": "^eu-"}}}]});
    with_rules["engine"]["mirror_percent"] = json!(10);
    with_rules["engine"]["session_persistence"] =
        json!({"cookie": "serin-session", "absolute_timeout": "90m"});
    let (s, d) = app.post("/api/v1/canary/deployments", with_rules).await;
    assert_eq!(s, 201, "{d}");
    // One live deployment per route: a second would undo the first's weights.
    let mut second = body("10s");
    second["queue_name"] = json!("web-too");
    let (s, e) = app.post("/api/v1/canary/deployments", second).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (409, Some("ENGINE_BACKEND_IN_USE")),
        "{e}"
    );
    let path = format!("/api/v1/canary/deployments/{}", d["id"].as_str().unwrap());
    let at_pause = app
        .until(&path, Duration::from_secs(20), |d| {
            d["rollout"]["step"] == 1
        })
        .await;
    assert_eq!(at_pause["current_percent"], 20, "{at_pause}");
    assert_eq!(weights(&m), (4, 1), "20% as weights");
    {
        // Each match rule is a copy of the split rule, one header more, to
        // its lane alone; the route's own rule stays first.
        let r = m.route.lock().unwrap();
        let rules = r["spec"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 4, "{r}");
        assert_eq!(rules[1]["name"], "serin-0-0");
        assert_eq!(
            rules[1]["matches"][0]["headers"],
            json!([{"type": "Exact", "name": "x-beta", "value": "1"}])
        );
        assert_eq!(rules[1]["matches"][0]["path"]["value"], "/");
        assert_eq!(
            rules[1]["backendRefs"],
            json!([{"group": "", "kind": "Service", "name": "web-canary", "port": 8080, "weight": 1}])
        );
        assert_eq!(
            rules[2]["matches"][0]["headers"][0],
            json!({"type": "RegularExpression", "name": "Cookie", "value": "^(?:.*;\\s*)?tier=gold(?:;.*)?$"})
        );
        assert_eq!(rules[2]["backendRefs"][0]["name"], "web-stable");
        assert_eq!(
            rules[3]["matches"][0]["headers"][0]["type"],
            "RegularExpression"
        );
        // The split rule mirrors a tenth to the canary and keeps sessions;
        // a request a match rule sends to one lane isn't mirrored.
        assert_eq!(
            rules[0]["filters"],
            json!([{"type": "RequestMirror", "requestMirror": {
                "backendRef": {"name": "web-canary", "group": "", "kind": "Service", "port": 8080},
                "percent": 10}}])
        );
        assert_eq!(
            rules[0]["sessionPersistence"],
            json!({"sessionName": "serin-session", "type": "Cookie", "absoluteTimeout": "1h30m"})
        );
        assert!(rules[1].get("filters").is_none(), "{}", rules[1]);
    }
    {
        let r = m.route.lock().unwrap();
        assert_eq!(
            r["metadata"]["generation"], 3,
            "the other edit's change, then Serin's"
        );
        assert_eq!(
            r["spec"]["hostnames"],
            json!(["web.example.com", "www.example.com"]),
            "the edit made meanwhile was kept, not overwritten"
        );
    }
    let puts = m.puts.lock().unwrap().len();
    assert!(
        puts >= 2,
        "the 409 was followed by a fresh read and a write: {puts} replaces"
    );
    let (s, b) = app
        .post(&format!("{path}/rollback"), json!({"reason": "test"}))
        .await;
    assert_eq!(s, 200, "{b}");
    let t0 = std::time::Instant::now();
    while weights(&m) != (1, 0)
        || m.route.lock().unwrap()["spec"]["rules"]
            .as_array()
            .unwrap()
            .len()
            != 1
    {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "weights {:?}",
            weights(&m)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    {
        let r = m.route.lock().unwrap();
        let rule = &r["spec"]["rules"][0];
        assert!(
            rule.get("filters").is_none() && rule.get("sessionPersistence").is_none(),
            "mirror and session persistence end with the deployment: {rule}"
        );
    }
    keep(&m.puts.lock().unwrap(), "httproute-rollout");
    app.stop().await;
}

/// A gateway that never takes the new generation: the step isn't reached and
/// the rollout pauses with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_no_gateway_accepts_pauses_the_rollout() {
    let (m, url) = mock(Controller::Silent, 0).await;
    let spec = format!("gw=gateway-api:{url}?namespace=prod");
    let app = TestApp::start_with(move |c| c.engines.add_spec(&spec).unwrap()).await;
    let (s, d) = app.post("/api/v1/canary/deployments", body("2s")).await;
    assert_eq!(s, 201, "{d}");
    let path = format!("/api/v1/canary/deployments/{}", d["id"].as_str().unwrap());
    let paused = app
        .until(&path, Duration::from_secs(20), |d| d["status"] == "paused")
        .await;
    let why = paused["status_reason"].as_str().unwrap_or_default();
    assert!(why.contains("has seen generation 1 of 2"), "{paused}");
    assert_eq!(paused["rollout"]["step"], 0, "the step was not reached");
    keep(&m.puts.lock().unwrap(), "httproute-silent");
    app.stop().await;
}

/// On a cluster whose HTTPRoute schema drops rule names, match rules can't
/// be kept apart from the operator's: Serin puts the route back as it was
/// and the rollout pauses with the reason, rather than leave rules it can't
/// find again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_gateway_schema_is_refused_and_the_route_put_back() {
    let (m, url) = mock(Controller::OldSchema, 0).await;
    let spec = format!("gw=gateway-api:{url}?namespace=prod");
    let app = TestApp::start_with(move |c| c.engines.add_spec(&spec).unwrap()).await;
    let mut b = body("3s");
    b["traffic"] = json!({"rules": [{"match": {"header": {"name": "X-Beta", "equals": "1"}}}]});
    let (s, d) = app.post("/api/v1/canary/deployments", b).await;
    assert_eq!(s, 201, "{d}");
    let path = format!("/api/v1/canary/deployments/{}", d["id"].as_str().unwrap());
    let paused = app
        .until(&path, Duration::from_secs(20), |d| d["status"] == "paused")
        .await;
    let why = paused["status_reason"].as_str().unwrap_or_default();
    assert!(why.contains("older than v1.4"), "{why}");
    let r = m.route.lock().unwrap().clone();
    assert_eq!(
        r["spec"]["rules"].as_array().unwrap().len(),
        1,
        "the route's own rule alone: {r}"
    );
    app.stop().await;
}

/// A rollout at 50% on the stand-in, judged from the lane queries through a
/// real Prometheus scraping it; the ended deployment, and how long it took.
/// `None` outside CI when there is no Prometheus.
async fn judged_from_prometheus(
    canary_every: u64,
    canary_ms: f64,
    queries: Value,
) -> Option<(Value, Duration)> {
    let (m, url) = mock(Controller::Accepts, 0).await;
    let scraped = url.trim_start_matches("http://").to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let prom = crate::app::PrometheusServer::start(port, &[scraped])?;
    serve(&m, canary_every, canary_ms);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("queries.json");
    std::fs::write(&file, queries.to_string()).unwrap();
    let spec = format!(
        "gw=gateway-api:{url}?namespace=prod&prometheus={}&queries={}",
        prom.url(),
        file.display()
    );
    let app = TestApp::start_with(move |c| c.engines.add_spec(&spec).unwrap()).await;
    let mut b = body("10s");
    b["rollout"] = json!({"steps": [{"set_weight": 50}, {"analysis": {"window": "5m"}}]});
    let (s, d) = app.post("/api/v1/canary/deployments", b).await;
    assert_eq!(s, 201, "{d}");
    let path = format!("/api/v1/canary/deployments/{}", d["id"].as_str().unwrap());
    let t0 = std::time::Instant::now();
    let ended = app
        .until(&path, Duration::from_secs(90), |d| d["status"] != "active")
        .await;
    app.stop().await;
    Some((ended, t0.elapsed()))
}

/// The operator's per-lane queries (each scraped instance's counters by
/// Service; `$SERVERS` is the lane's Services) through a real Prometheus: a
/// canary failing 1 in 10 against stable's 1 in 50 is rolled back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_lanes_from_prometheus_queries() {
    let queries = json!({
        "requests": "sum by (instance) (gateway_upstream_requests_total{service=~\"$SERVERS\"})",
        "errors": "sum by (instance) (gateway_upstream_errors_total{service=~\"$SERVERS\"})"
    });
    let Some((ended, took)) = judged_from_prometheus(10, 20.0, queries).await else {
        return;
    };
    eprintln!(
        "canary failing 1 in 10 judged from Prometheus queries: {} after {took:?}: {}",
        ended["status"], ended["status_reason"]
    );
    assert_eq!(ended["status"], "failed", "{ended}");
    assert!(took < Duration::from_secs(60));
    let why = ended["status_reason"].as_str().unwrap_or_default();
    assert!(why.contains("error rate"), "{why}");
}

/// Latency from the gateway's own histogram: a canary that answers in
/// ~200 ms where stable takes ~20 ms, with no more errors, is rolled back on
/// its latency, read from the buckets through a real Prometheus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_latency_from_histogram_buckets() {
    let queries = json!({
        "requests": "sum by (instance) (gateway_upstream_requests_total{service=~\"$SERVERS\"})",
        "errors": "sum by (instance) (gateway_upstream_errors_total{service=~\"$SERVERS\"})",
        "latency": "sum by (instance, le) (gateway_upstream_rq_time_bucket{service=~\"$SERVERS\"})",
        "latency_unit": "ms"
    });
    let Some((ended, took)) = judged_from_prometheus(50, 200.0, queries).await else {
        return;
    };
    eprintln!(
        "canary 10x slower judged from histogram buckets: {} after {took:?}: {}",
        ended["status"], ended["status_reason"]
    );
    assert_eq!(ended["status"], "failed", "{ended}");
    let why = ended["status_reason"].as_str().unwrap_or_default();
    assert!(why.contains("canary slower"), "{why}");
    assert!(took < Duration::from_secs(60));
}

/// A deployment ended where no follow-up ran (as on a replica that stopped
/// right after committing the rollback): the leader notices it left the live
/// set and puts its final share in effect on the route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_settles_a_deployment_ended_elsewhere() {
    let (m, url) = mock(Controller::Accepts, 0).await;
    let spec = format!("gw=gateway-api:{url}?namespace=prod");
    let app = TestApp::start_with(move |c| c.engines.add_spec(&spec).unwrap()).await;
    let (s, d) = app.post("/api/v1/canary/deployments", body("10s")).await;
    assert_eq!(s, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/canary/deployments/{id}");
    app.until(&path, Duration::from_secs(20), |d| {
        d["rollout"]["step"] == 1
    })
    .await;
    assert_eq!(weights(&m), (4, 1));
    // Rolled back in the store alone: no replica follows it up.
    app.state
        .store
        .update_deployment(
            &id,
            None,
            Box::new(|d: &mut serin_core::canary::Deployment| {
                d.rollback("ended on a replica that then stopped", chrono::Utc::now())
            }),
            "test",
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let t0 = std::time::Instant::now();
    while weights(&m) != (1, 0)
        || m.route.lock().unwrap()["spec"]["rules"]
            .as_array()
            .unwrap()
            .len()
            != 1
    {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the route still says {:?}",
            weights(&m)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}
