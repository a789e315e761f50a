//! The proxy end to end: `serin up --proxy-listen` and a remote `serin proxy`
//! against real upstream servers; route changes, lane metrics into the
//! deployment's metrics, Prometheus checked by promtool, and fail static.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{free_port, get, kill, post, send, spawn};

async fn upstream(name: &'static str) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let app = axum::Router::new().fallback(move || async move { format!("{name}\n") });
    tokio::spawn(async move { axum::serve(l, app).await });
    format!("http://{addr}")
}

async fn body(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let r = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("HTTP {}", r.status()));
    }
    r.text().await.map_err(|e| e.to_string())
}

/// Waits until `url` answers `want`; returns how long it took.
async fn until_body(client: &reqwest::Client, url: &str, want: &str) -> Duration {
    let t0 = Instant::now();
    loop {
        if body(client, url).await.as_deref() == Ok(want) {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{url} never answered {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_and_remote_proxies_follow_routes_count_lanes_and_fail_static() {
    let (stable, canary) = (upstream("stable").await, upstream("canary").await);
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/serin.db", dir.path().display());
    let (api_port, proxy_port, remote_port) = (free_port(), free_port(), free_port());
    let admin_port = free_port();
    let api = format!("http://127.0.0.1:{api_port}");
    let up_args = [
        "up",
        "--listen",
        &format!("127.0.0.1:{api_port}"),
        "--database-url",
        &db,
        "--proxy-listen",
        &format!("127.0.0.1:{proxy_port}"),
    ];
    let mut up = spawn(&up_args, "serin: listening on");
    let embedded = format!("http://127.0.0.1:{proxy_port}/");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    let (st, d) = post(
        &format!("{api}/api/v1/canary/deployments"),
        json!({"queue_name": "web", "stable_version": "v1", "canary_version": "v2", "percentage": 0,
               "upstreams": {"stable": [stable], "canary": [canary]},
               "traffic": {"affinity": null}}),
    )
    .await;
    assert_eq!(st, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    until_body(&client, &embedded, "stable\n").await;

    // A percentage change reaches the embedded proxy at once.
    let (st, _) = send(
        reqwest::Method::PUT,
        &format!("{api}/api/v1/canary/deployments/{id}/percentage"),
        Some(json!({"percentage": 100})),
    )
    .await;
    assert_eq!(st, 200);
    let took = until_body(&client, &embedded, "canary\n").await;
    assert!(
        took < Duration::from_secs(1),
        "embedded proxy took {took:?}"
    );

    // Rules through the routing endpoint; bad rules are refused and change nothing.
    let routing = format!("{api}/api/v1/canary/deployments/{id}/routing");
    let (st, e) = send(
        reqwest::Method::PUT,
        &routing,
        Some(json!({"traffic": {"rules": [{"match": {"header": {"name": "X-Beta", "regex": "("}}}]}})),
    )
    .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (400, Some("VALIDATION_FAILED")),
        "{e}"
    );
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("traffic.rules[0].match.header.regex"),
        "{e}"
    );
    send(
        reqwest::Method::PUT,
        &format!("{api}/api/v1/canary/deployments/{id}/percentage"),
        Some(json!({"percentage": 0})),
    )
    .await;
    let (st, d) = send(
        reqwest::Method::PUT,
        &routing,
        Some(json!({"traffic": {"affinity": null, "rules": [{"match": {"header": {"name": "X-Beta", "equals": "1"}}}]}})),
    )
    .await;
    assert_eq!(st, 200, "{d}");
    // The 0% and the rule reach the proxy as two route changes, and at 100%
    // an X-Beta request went to the canary already: wait until a plain
    // request goes to stable (the 0% arrived) while X-Beta still goes to the
    // canary (so the rule arrived too).
    let t0 = Instant::now();
    loop {
        let plain = body(&client, &embedded).await;
        let beta = client.get(&embedded).header("X-Beta", "1").send().await;
        let beta = match beta {
            Ok(r) => r.text().await.ok(),
            Err(_) => None,
        };
        if plain.as_deref() == Ok("stable\n") && beta.as_deref() == Some("canary\n") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the 0% and the X-Beta rule never both reached the proxy: {plain:?} {beta:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A change of one key merges: the balance changes, the rule and the
    // affinity turned off stay.
    let (st, d) = send(
        reqwest::Method::PUT,
        &routing,
        Some(json!({"traffic": {"balance": "least_requests"}})),
    )
    .await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["traffic"]["balance"], "least_requests", "{d}");
    assert_eq!(
        d["traffic"]["rules"][0]["match"]["header"]["name"], "X-Beta",
        "{d}"
    );
    assert_eq!(d["traffic"]["affinity"], serde_json::Value::Null, "{d}");
    let (st, e) = send(
        reqwest::Method::PUT,
        &routing,
        Some(json!({"traffic": {"balance": "fastest"}, "weights": 1})),
    )
    .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (400, Some("VALIDATION_FAILED")),
        "{e}"
    );

    // Proxy counts reach the deployment's metrics.
    for _ in 0..20 {
        body(&client, &embedded).await.unwrap();
    }
    let t0 = Instant::now();
    loop {
        let (_, m) = get(&format!("{api}/api/v1/canary/deployments/{id}/metrics")).await;
        if m["stable"]["job_count"].as_u64().unwrap_or(0) >= 20
            && m["canary"]["job_count"].as_u64().unwrap_or(0) >= 1
        {
            assert!(m["stable"]["p95_latency"].as_f64().is_some(), "{m}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "metrics never showed the proxy's requests: {m}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Prometheus text, checked by promtool.
    let text = client
        .get(format!("{api}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(&format!(
            "deployment_id=\"{id}\",lane=\"stable\",code=\"200\"}}"
        )) && text.contains("serin_proxy_requests_total{name=\"web\",target=\"*/\","),
        "{text}"
    );
    // Serin's own: API requests by route template and their times,
    // deployments by status, each live rollout, controller ticks, the build
    // and the process; the same on /api/v1/metrics, without a key.
    for want in [
        "serin_http_requests_total{route=\"/api/v1/canary/deployments\",method=\"POST\",code=\"201\"} 1",
        "serin_http_request_duration_seconds_bucket{route=\"/api/v1/canary/deployments\",method=\"POST\",le=\"+Inf\"} 1",
        "serin_deployments{status=\"active\"} 1",
        &format!(
            "serin_rollout_phase{{name=\"web\",target=\"*/\",deployment_id=\"{id}\",phase=\"active\"}} 1"
        ),
        &format!(
            "serin_proxy_canary_weight{{name=\"web\",target=\"*/\",deployment_id=\"{id}\"}} 0"
        ),
        "serin_controller_tick_seconds_bucket{le=\"+Inf\"}",
        "# TYPE serin_controller_tick_seconds histogram",
        "serin_build_info{version=\"",
        "process_resident_memory_bytes ",
        "serin_db_pool_connections{backend=\"sqlite\",state=\"in_use\"}",
        "serin_db_pool_max_connections{backend=\"sqlite\"}",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
    assert!(!text.contains("_percent"), "ratios are 0–1: {text}");
    // Kept for the test command's check that alerts and dashboards name
    // only metrics Serin exports.
    let dump = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("metrics");
    std::fs::create_dir_all(&dump).unwrap();
    std::fs::write(dump.join("control-plane.prom"), &text).unwrap();
    let again = reqwest::get(format!("{api}/api/v1/metrics")).await.unwrap();
    assert_eq!(again.status(), 200);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("serin_deployments{status=\"active\"} 1")
    );
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is installed");
    {
        use std::io::Write;
        promtool
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A remote proxy follows within a second, on a key of the proxy role,
    // which can do nothing else.
    let (code, made) = post(
        &format!("{api}/api/v1/api-keys"),
        json!({"name": "edge-1", "role": "proxy"}),
    )
    .await;
    assert_eq!(code, 201, "{made}");
    let proxy_key = made["key"].as_str().unwrap().to_string();
    for (method, path, body) in [
        (
            reqwest::Method::GET,
            format!("/api/v1/canary/deployments/{id}"),
            None,
        ),
        (
            reqwest::Method::PUT,
            format!("/api/v1/canary/deployments/{id}/percentage"),
            Some(json!({"percentage": 100})),
        ),
        (
            reqwest::Method::PUT,
            format!("/api/v1/canary/deployments/{id}/routing"),
            Some(json!({"balance": "random"})),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/canary/deployments/{id}/rollback"),
            None,
        ),
        (
            reqwest::Method::POST,
            "/api/v1/api-keys".to_string(),
            Some(json!({"name": "x", "role": "admin"})),
        ),
    ] {
        let (code, e) =
            crate::harness::send_as(&proxy_key, method.clone(), &format!("{api}{path}"), body)
                .await;
        assert_eq!(
            (code, e["code"].as_str()),
            (403, Some("FORBIDDEN")),
            "{method} {path}: {e}"
        );
    }
    let (code, e) = post(
        &format!("{api}/api/v1/api-keys"),
        json!({"name": "EDGE-1", "role": "viewer"}),
    )
    .await;
    assert_eq!(
        (code, e["code"].as_str()),
        (409, Some("API_KEY_EXISTS")),
        "key names are unique: {e}"
    );
    let state = tempfile::tempdir().unwrap();
    let remote_args = [
        "proxy",
        "--control-plane",
        &api,
        "--api-key",
        &proxy_key,
        "--listen",
        &format!("127.0.0.1:{remote_port}"),
        "--state-dir",
        state.path().to_str().unwrap(),
        "--name",
        "edge-1",
        "--metrics-listen",
        &format!("127.0.0.1:{admin_port}"),
    ];
    let mut remote = spawn(&remote_args, "serin proxy: listening on");
    let remote_url = format!("http://127.0.0.1:{remote_port}/");
    until_body(&client, &remote_url, "stable\n").await;
    // Its admin listener: alive, ready (it has routes), and its metrics.
    let admin = format!("http://127.0.0.1:{admin_port}");
    for path in ["/healthz", "/readyz"] {
        let r = client.get(format!("{admin}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let ptext = client
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for want in [
        "serin_proxy_control_plane_up 1",
        "serin_proxy_control_plane_last_contact_seconds ",
        "serin_proxy_routes 1",
        "serin_build_info{",
        "process_cpu_seconds_total ",
    ] {
        assert!(ptext.contains(want), "{want} missing from:\n{ptext}");
    }
    std::fs::write(dump.join("proxy.prom"), &ptext).unwrap();
    send(
        reqwest::Method::PUT,
        &format!("{api}/api/v1/canary/deployments/{id}/percentage"),
        Some(json!({"percentage": 100})),
    )
    .await;
    let took = until_body(&client, &remote_url, "canary\n").await;
    assert!(took < Duration::from_secs(1), "remote proxy took {took:?}");
    let (_, list) = get(&format!("{api}/api/v1/proxies")).await;
    let edge = list["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "edge-1")
        .expect("edge-1 listed");
    assert_eq!(edge["connected"], true);
    assert!(
        list["proxies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["kind"] == "embedded"),
        "{list}"
    );
    let out = crate::harness::cli_at(&api, &["proxies"], None);
    let text = crate::harness::stdout(&out);
    assert!(
        text.contains("edge-1") && text.contains("remote") && text.contains("embedded"),
        "{text}"
    );
    let (_, m) = get(&format!("{api}/api/v1/canary/deployments/{id}/metrics")).await;
    let canary_before = m["canary"]["job_count"].as_u64().unwrap();

    // Fail static: the control plane dies mid-load; the remote proxy keeps serving.
    let load = {
        let (client, url) = (client.clone(), remote_url.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, 0u64);
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(3) {
                match body(&client, &url).await {
                    Ok(b) if b == "canary\n" => ok += 1,
                    _ => failed += 1,
                }
            }
            (ok, failed)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    kill(&mut up);
    let (ok, failed) = load.await.unwrap();
    assert_eq!(
        failed, 0,
        "requests failed while the control plane was down ({ok} ok)"
    );
    assert!(ok > 100);

    // The control plane comes back: buffered lane seconds arrive.
    let mut up = spawn(&up_args, "serin: listening on");
    let t0 = Instant::now();
    loop {
        let (_, m) = get(&format!("{api}/api/v1/canary/deployments/{id}/metrics")).await;
        let n = m["canary"]["job_count"].as_u64().unwrap_or(0);
        if n >= canary_before + ok {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "buffered metrics never arrived: {n} < {}",
            canary_before + ok
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Its metrics reports kept its name; restarted, it is still one proxy.
    let edges = |list: &serde_json::Value| {
        list["proxies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["kind"] == "remote")
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_string(),
                    p["connected"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    let (_, list) = get(&format!("{api}/api/v1/proxies")).await;
    assert_eq!(
        edges(&list),
        [("edge-1".to_string(), json!(true))],
        "{list}"
    );
    kill(&mut remote);
    remote = spawn(&remote_args, "serin proxy: listening on");
    until_body(&client, &remote_url, "canary\n").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, list) = get(&format!("{api}/api/v1/proxies")).await;
    let after = edges(&list);
    assert!(
        after.iter().all(|(name, _)| name == "edge-1") && after[0].1 == json!(true),
        "the restarted proxy is listed by its name, first: {list}"
    );

    // Restart the remote proxy with the control plane down: it serves its last routes.
    kill(&mut up);
    kill(&mut remote);
    let mut remote = spawn(&remote_args, "serin proxy: listening on");
    for _ in 0..50 {
        assert_eq!(body(&client, &remote_url).await.as_deref(), Ok("canary\n"));
    }
    kill(&mut remote);
}

/// SIGTERM while the embedded proxy is under load: every request a client got
/// an answer to is in the stored lane seconds (the proxy finishes its requests,
/// then stores every second it counted, the open one too, before exiting).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_stores_every_answered_request() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let (stable, canary) = (upstream("stable").await, upstream("canary").await);
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/serin.db", dir.path().display());
    let (api_port, proxy_port) = (free_port(), free_port());
    let api = format!("http://127.0.0.1:{api_port}");
    let mut up = spawn(
        &[
            "up",
            "--listen",
            &format!("127.0.0.1:{api_port}"),
            "--database-url",
            &db,
            "--proxy-listen",
            &format!("127.0.0.1:{proxy_port}"),
        ],
        "serin: listening on",
    );
    let (st, d) = post(
        &format!("{api}/api/v1/canary/deployments"),
        json!({"queue_name": "web", "stable_version": "v1", "canary_version": "v2", "percentage": 30,
               "upstreams": {"stable": [stable], "canary": [canary]}}),
    )
    .await;
    assert_eq!(st, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    let embedded = format!("http://127.0.0.1:{proxy_port}/");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let t0 = Instant::now();
    while body(&client, &embedded).await.is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the route never arrived"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let answered = Arc::new(AtomicU64::new(1));
    let load: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, answered) = (client.clone(), embedded.clone(), answered.clone());
            tokio::spawn(async move {
                while let Ok(r) = client.get(&url).send().await {
                    answered.fetch_add(1, Ordering::Relaxed);
                    let _ = r.bytes().await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = up.0.id().to_string();
    let term = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(term.success());
    let exited = tokio::task::spawn_blocking(move || {
        let status = up.0.wait();
        (up, status)
    });
    let (_up, status) = tokio::time::timeout(Duration::from_secs(90), exited)
        .await
        .expect("serin up exits after SIGTERM")
        .unwrap();
    assert!(status.unwrap().success());
    for l in load {
        let _ = tokio::time::timeout(Duration::from_secs(10), l).await;
    }
    let answered = answered.load(Ordering::Relaxed);
    let store = serin_store::Store::connect(&db, &serin_store::StoreOptions::default())
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let stored: u64 = store
        .lane_buckets(
            &id,
            now - chrono::Duration::minutes(5),
            now + chrono::Duration::minutes(1),
        )
        .await
        .unwrap()
        .iter()
        .map(|b| b.requests)
        .sum();
    assert!(answered > 100, "the load ran ({answered} answers)");
    assert!(
        stored >= answered,
        "{answered} requests were answered, {stored} are in the lane metrics"
    );
}

/// `serin proxy` writing to files, as under systemd or a container runtime:
/// JSON logs without colour codes, one access-log line per request (lane,
/// upstream, status), and its admin listener's health and readiness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_logs_json_without_colour_and_writes_an_access_log() {
    use serin_core::canary::{DeploymentStatus, Route, Upstreams};
    use serin_core::traffic::proxy::{ProxyRoute, RouteSet};
    let stable = upstream("stable").await;
    let dir = tempfile::tempdir().unwrap();
    let set = RouteSet::new(vec![ProxyRoute {
        deployment_id: "canary_1".into(),
        name: "web".into(),
        tenant_id: None,
        status: DeploymentStatus::Active,
        percent: 0,
        stable_version: "v1".into(),
        canary_version: "v2".into(),
        route: Route {
            host: None,
            path_prefix: Some("/api".into()),
        },
        upstreams: Upstreams {
            stable: vec![stable.clone()],
            canary: vec![],
        },
        traffic: Default::default(),
        revision: 1,
        mirror_percent: 0,
    }]);
    let routes = dir.path().join("routes.json");
    std::fs::write(&routes, serde_json::to_string(&set).unwrap()).unwrap();
    let (port, admin) = (free_port(), free_port());
    let (access, stderr) = (
        dir.path().join("access.jsonl"),
        dir.path().join("stderr.log"),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_serin"))
        .args(["proxy", "--routes-file"])
        .arg(&routes)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{admin}")])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .args([
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "--access-log",
        ])
        .arg(&access)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/x");
    until_body(&client, &url, "stable\n").await;
    // No route here: 404, logged by the proxy but not a deployment's request.
    let r = client
        .get(format!("http://127.0.0.1:{port}/other"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    for path in ["/healthz", "/readyz"] {
        let r = client
            .get(format!("http://127.0.0.1:{admin}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let t0 = Instant::now();
    let line = loop {
        let text = std::fs::read_to_string(&access).unwrap_or_default();
        if let Some(l) = text.lines().next() {
            break l.to_string();
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "no access log line");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let upstream_addr = stable.trim_start_matches("http://");
    assert_eq!(
        (
            v["route"].as_str(),
            v["deployment"].as_str(),
            v["lane"].as_str(),
            v["upstream"].as_str(),
            v["status"].as_u64()
        ),
        (
            Some("*/api"),
            Some("web"),
            Some("stable"),
            Some(upstream_addr),
            Some(200)
        ),
        "{line}"
    );
    assert!(
        v["duration_ms"].as_f64().is_some() && v["time"].is_string(),
        "{line}"
    );
    let _ = child.kill();
    let _ = child.wait();
    let logs = std::fs::read_to_string(&stderr).unwrap();
    assert!(!logs.trim().is_empty(), "no logs at debug level");
    assert!(!logs.contains('\u{1b}'), "colour codes in a file: {logs}");
    for l in logs.lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(l).is_ok(),
            "not JSON: {l}"
        );
    }
}

/// `serin proxy --tls-cert --tls-key`: the listener speaks TLS with the
/// files given, and takes a renewed certificate from disk without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_terminates_tls_and_takes_a_renewed_certificate() {
    use serin_core::canary::{DeploymentStatus, Route, Upstreams};
    use serin_core::traffic::proxy::{ProxyRoute, RouteSet};
    let ca = |dir: &std::path::Path, stem: &str| {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = params.self_signed(&key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["edge.test".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &key)
            .unwrap();
        // Written beside, then renamed: the proxy never reads half a file.
        for (name, text) in [("crt", leaf.pem()), ("key", leaf_key.serialize_pem())] {
            let tmp = dir.join(format!("{stem}.{name}.tmp"));
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, dir.join(format!("edge.{name}"))).unwrap();
        }
        reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap()
    };
    let stable = upstream("stable").await;
    let dir = tempfile::tempdir().unwrap();
    let first = ca(dir.path(), "first");
    let set = RouteSet::new(vec![ProxyRoute {
        deployment_id: "canary_1".into(),
        name: "web".into(),
        tenant_id: None,
        status: DeploymentStatus::Active,
        percent: 0,
        stable_version: "v1".into(),
        canary_version: "v2".into(),
        route: Route::default(),
        upstreams: Upstreams {
            stable: vec![stable],
            canary: vec![],
        },
        traffic: Default::default(),
        revision: 1,
        mirror_percent: 0,
    }]);
    let routes = dir.path().join("routes.json");
    std::fs::write(&routes, serde_json::to_string(&set).unwrap()).unwrap();
    let port = free_port();
    let (crt, key) = (dir.path().join("edge.crt"), dir.path().join("edge.key"));
    let state = dir.path().join("state");
    let _proxy = spawn(
        &[
            "proxy",
            "--routes-file",
            routes.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--state-dir",
            state.to_str().unwrap(),
            "--tls-cert",
            crt.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        "serin proxy: listening on https://",
    );
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let trusting = |ca: &reqwest::Certificate| {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca.clone())
            .resolve("edge.test", addr)
            .no_proxy()
            .build()
            .unwrap()
    };
    let url = format!("https://edge.test:{port}/");
    assert_eq!(
        body(&trusting(&first), &url).await.as_deref(),
        Ok("stable\n")
    );
    // Renewed by another CA: within a few seconds, new connections get it.
    let second = ca(dir.path(), "second");
    let t0 = Instant::now();
    while body(&trusting(&second), &url).await.as_deref() != Ok("stable\n") {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the renewed certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(body(&trusting(&first), &url).await.is_err());
}
