//! Who may do what: every mutating route walked as anonymous, viewer, engineer
//! and admin; and the per-key rate limits with their headers.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{ADMIN, Server, post, send_as};

async fn key(s: &Server, name: &str, role: &str) -> String {
    let (code, k) = post(
        &format!("{}/api/v1/api-keys", s.url),
        json!({"name": name, "role": role}),
    )
    .await;
    assert_eq!(code, 201, "{k}");
    assert!(k["key"].as_str().unwrap().starts_with("srn_"));
    k["key"].as_str().unwrap().to_string()
}

/// (method, path, body, least role).
fn mutating_routes(dep: &str, worker: &str) -> Vec<(Method, String, Value, &'static str)> {
    let d = |p: &str| format!("/api/v1/canary/deployments/{dep}{p}");
    vec![
        (
            Method::POST,
            "/product".into(),
            json!({"name": "p-ROLE"}),
            "engineer",
        ),
        (
            Method::POST,
            "/api/v1/products".into(),
            json!({"name": "q-ROLE"}),
            "engineer",
        ),
        (
            Method::POST,
            "/release".into(),
            json!({"product_name": "base", "version": "ROLE"}),
            "engineer",
        ),
        (
            Method::POST,
            "/api/v1/products/base/releases".into(),
            json!({"version": "x-ROLE"}),
            "engineer",
        ),
        (
            Method::PATCH,
            "/api/v1/releases/1".into(),
            json!({"description": "by ROLE"}),
            "engineer",
        ),
        (
            Method::POST,
            "/signal".into(),
            json!({"release_id": 1, "lane": "stable", "name": "x", "value": 1}),
            "engineer",
        ),
        (
            Method::POST,
            "/api/v1/signals/batch".into(),
            json!({"signals": [{"release_id": 1, "lane": "stable", "name": "x", "value": 1}]}),
            "engineer",
        ),
        (
            Method::POST,
            "/api/v1/canary/deployments".into(),
            json!({"queue_name": "q-ROLE", "stable_version": "a", "canary_version": "b"}),
            "engineer",
        ),
        (
            Method::PUT,
            d("/percentage"),
            json!({"percentage": 7}),
            "engineer",
        ),
        (Method::POST, d("/pause"), Value::Null, "engineer"),
        (Method::POST, d("/resume"), Value::Null, "engineer"),
        (Method::POST, d("/continue"), Value::Null, "engineer"),
        (
            Method::POST,
            "/api/v1/rollouts".into(),
            json!({"targets": [], "rollout": {"steps": [{"set_weight": 5}]}}),
            "engineer",
        ),
        (
            Method::POST,
            d("/signals"),
            json!({"signals": [{"lane": "canary", "name": "job", "kind": "outcome", "value": 1}]}),
            "engineer",
        ),
        (
            Method::POST,
            "/api/v1/canary/workers".into(),
            json!({"id": "w-ROLE", "version": "a", "queues": ["q"]}),
            "engineer",
        ),
        (
            Method::PUT,
            format!("/api/v1/canary/workers/{worker}/status"),
            json!({"status": "degraded"}),
            "engineer",
        ),
        (
            Method::POST,
            format!("/api/v1/canary/workers/{worker}/heartbeat"),
            json!({}),
            "engineer",
        ),
        (
            Method::POST,
            "/admin/canary/webhook/health-check".into(),
            json!({"ok": true}),
            "engineer",
        ),
        (
            Method::POST,
            "/api/v1/releases".into(),
            json!({"product_name": "base", "version": "r-ROLE"}),
            "engineer",
        ),
        (
            Method::POST,
            "/api/v1/signals".into(),
            json!({"release_id": 1, "lane": "canary", "name": "x", "value": 1}),
            "engineer",
        ),
        (
            Method::POST,
            "/admin/canary/start?image_tag=v-ROLE".into(),
            Value::Null,
            "engineer",
        ),
        (
            Method::POST,
            "/admin/canary/scale/15".into(),
            Value::Null,
            "engineer",
        ),
        (
            Method::POST,
            "/admin/canary/stop".into(),
            Value::Null,
            "engineer",
        ),
        (Method::POST, d("/promote"), Value::Null, "engineer"),
        (
            Method::POST,
            d("/rollback"),
            json!({"reason": "by ROLE"}),
            "engineer",
        ),
        (Method::DELETE, d(""), Value::Null, "engineer"),
        (
            Method::POST,
            "/api/v1/api-keys".into(),
            json!({"name": "k-ROLE", "role": "viewer"}),
            "admin",
        ),
        (
            Method::DELETE,
            "/api/v1/api-keys/key_missing".into(),
            Value::Null,
            "admin",
        ),
        // Last: it ends the fixture deployment.
        (
            Method::POST,
            d("/abort"),
            json!({"reason": "by ROLE"}),
            "engineer",
        ),
    ]
}

#[tokio::test]
async fn the_role_matrix() {
    let s = Server::sqlite();
    let viewer = key(&s, "viewer-1", "viewer").await;
    let engineer = key(&s, "engineer-1", "engineer").await;
    // Fixtures the routes act on.
    post(&format!("{}/product", s.url), json!({"name": "base"})).await;
    post(
        &format!("{}/release", s.url),
        json!({"product_name": "base", "version": "1"}),
    )
    .await;
    let (_, d) = post(
        &format!("{}/api/v1/canary/deployments", s.url),
        json!({"queue_name": "fixture", "stable_version": "a", "canary_version": "b"}),
    )
    .await;

    post(
        &format!("{}/api/v1/canary/workers", s.url),
        json!({"id": "w-fixture", "version": "a", "queues": ["q"]}),
    )
    .await;
    let dep = d["id"].as_str().unwrap();
    for (method, path, body, least) in mutating_routes(dep, "w-fixture") {
        for (who, key) in [
            ("anonymous", ""),
            ("viewer", viewer.as_str()),
            ("engineer", engineer.as_str()),
            ("admin", ADMIN),
        ] {
            let b = serde_json::from_str::<Value>(&body.to_string().replace("ROLE", who)).unwrap();
            let body = if b.is_null() { None } else { Some(b) };
            let (code, answer) =
                send_as(key, method.clone(), &format!("{}{path}", s.url), body).await;
            let expected = match (who, least) {
                ("anonymous", _) => Some((401, "UNAUTHORIZED")),
                ("viewer", _) | ("engineer", "admin") => Some((403, "FORBIDDEN")),
                _ => None,
            };
            match expected {
                Some((status, code_name)) => {
                    assert_eq!(
                        (code, answer["code"].as_str()),
                        (status, Some(code_name)),
                        "{who} {method} {path}: {answer}"
                    );
                }
                None => assert!(
                    code != 401 && code != 403 && code < 500,
                    "{who} {method} {path} is allowed: {code} {answer}"
                ),
            }
        }
    }
    // Viewers read everything.
    for path in [
        "/api/v1/products",
        "/api/v1/canary/deployments",
        "/api/v1/canary/workers",
        "/api/v1/audit-logs",
        "/admin/canary/status",
    ] {
        let (code, body) = send_as(&viewer, Method::GET, &format!("{}{path}", s.url), None).await;
        assert_eq!(code, 200, "viewer GET {path}: {body}");
    }
    let (code, _) = send_as(
        &viewer,
        Method::GET,
        &format!("{}/api/v1/api-keys", s.url),
        None,
    )
    .await;
    assert_eq!(code, 403, "listing keys is for admins");
    // The X-API-Key header works too; a revoked key stops at once.
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1/products", s.url))
        .header("X-API-Key", &engineer)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (_, keys) = send_as(
        ADMIN,
        Method::GET,
        &format!("{}/api/v1/api-keys", s.url),
        None,
    )
    .await;
    assert_eq!(
        keys["pagination"]["total_items"], 4,
        "the admin's and three made here"
    );
    let eng_id = keys["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "engineer-1")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        keys.to_string().contains("srn_") && !keys.to_string().contains(&engineer),
        "lists show prefixes, never keys"
    );
    let (code, _) = send_as(
        ADMIN,
        Method::DELETE,
        &format!("{}/api/v1/api-keys/{eng_id}", s.url),
        None,
    )
    .await;
    assert_eq!(code, 200);
    let (code, body) = send_as(
        &engineer,
        Method::GET,
        &format!("{}/api/v1/products", s.url),
        None,
    )
    .await;
    assert_eq!((code, body["code"].as_str()), (401, Some("UNAUTHORIZED")));
    // Public routes stay public.
    let (code, _) = send_as("", Method::GET, &format!("{}/api/v1/health", s.url), None).await;
    assert_eq!(code, 200);
    // The actor of each change is the key's name.
    let (_, audit) = send_as(
        ADMIN,
        Method::GET,
        &format!("{}/api/v1/audit-logs?actor=engineer-1&page_size=100", s.url),
        None,
    )
    .await;
    assert!(
        audit["pagination"]["total_items"].as_u64().unwrap() >= 5,
        "{audit}"
    );
}

#[tokio::test]
async fn rate_limits_per_key_with_headers() {
    let s = Server::sqlite_with(&[("SERIN_RATE_LIMIT", "60"), ("SERIN_RATE_BURST", "4")]);
    // One of the admin's four tokens goes on making a second key.
    let (code, other) = post(
        &format!("{}/api/v1/api-keys", s.url),
        json!({"name": "other", "role": "viewer"}),
    )
    .await;
    assert_eq!(code, 201, "{other}");
    let other_key: &'static str =
        Box::leak(other["key"].as_str().unwrap().to_string().into_boxed_str());
    let client = reqwest::Client::new();
    let get = |key: &'static str| {
        client
            .get(format!("{}/api/v1/products", s.url))
            .bearer_auth(key)
            .send()
    };
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(get(ADMIN).await.unwrap());
    }
    let codes: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(codes, [200, 200, 200, 429]);
    let h = answers[0].headers();
    assert_eq!(h["x-ratelimit-limit"], "60");
    assert_eq!(
        h["x-ratelimit-remaining"], "2",
        "4 tokens, one spent on the key, one on this request"
    );
    let reset: u64 = h["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        reset >= now && reset <= now + 5,
        "reset {reset} is a Unix time soon after {now}"
    );
    let limited = answers.pop().unwrap();
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(limited.headers()["x-ratelimit-remaining"], "0");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["code"], "RATE_LIMITED");
    // The public health route has no bucket.
    let (code, again) = post(
        &format!("{}/api/v1/api-keys", s.url),
        json!({"name": "x", "role": "viewer"}),
    )
    .await;
    assert_eq!(code, 429, "the admin key is still limited: {again}");
    let theirs = get(other_key).await.unwrap();
    assert_eq!(
        theirs.status().as_u16(),
        200,
        "another key has its own bucket"
    );
    assert_eq!(theirs.headers()["x-ratelimit-remaining"], "3");
    let health = client
        .get(format!("{}/api/v1/health", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    assert!(!health.headers().contains_key("x-ratelimit-limit"));
}

#[tokio::test]
async fn failed_authentications_are_throttled_per_address() {
    // 6 a minute: a burst of 2, then one every 10 s.
    let s = Server::sqlite_with(&[("SERIN_RATE_LIMIT", "0"), ("SERIN_AUTH_FAILURE_LIMIT", "6")]);
    let products = format!("{}/api/v1/products", s.url);
    // Verify the real key once, so that it is in the cache.
    assert_eq!(send_as(ADMIN, Method::GET, &products, None).await.0, 200);
    let mut codes = Vec::new();
    for i in 0..4 {
        let (code, body) = send_as(&format!("srn_guess_{i}"), Method::GET, &products, None).await;
        codes.push((code, body["code"].as_str().unwrap_or_default().to_string()));
    }
    let got: Vec<(u16, &str)> = codes.iter().map(|(c, s)| (*c, s.as_str())).collect();
    assert_eq!(
        got,
        [
            (401, "UNAUTHORIZED"),
            (401, "UNAUTHORIZED"),
            (429, "RATE_LIMITED"),
            (429, "RATE_LIMITED")
        ]
    );
    // The address is throttled, but a key verified moments ago still works.
    assert_eq!(send_as(ADMIN, Method::GET, &products, None).await.0, 200);
    // Public routes are untouched.
    assert_eq!(
        send_as("", Method::GET, &format!("{}/api/v1/health", s.url), None)
            .await
            .0,
        200
    );
}

/// `SERIN_PROXY_TOKEN` alone on a first start: the proxy key is made, and an
/// admin key is still made and printed once (a proxy key is no way in for
/// an admin); the proxy key reads routes and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_token_on_first_start_still_gets_an_admin_key_printed() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let port = crate::harness::free_port();
    let proxy_token = "srn_test_proxy_token_0123456789abcdef";
    let mut child = std::process::Command::new(crate::harness::BIN)
        .args(["up", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--database-url")
        .arg(format!("sqlite://{}/serin.db", dir.path().display()))
        .env_remove("SERIN_ADMIN_TOKEN")
        .env("SERIN_PROXY_TOKEN", proxy_token)
        .env("SERIN_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut admin = None;
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(30) {
        match rx.recv_timeout(std::time::Duration::from_secs(1)) {
            Ok(line) => {
                if let Some(k) =
                    line.strip_prefix("serin: first start: admin API key (shown once, keep it): ")
                {
                    admin = Some(k.to_string());
                }
                if line.starts_with("serin: listening on") {
                    break;
                }
            }
            Err(_) => continue,
        }
    }
    let admin = admin.expect("an admin key printed on first start");
    let api = format!("http://127.0.0.1:{port}");
    let (code, keys) = send_as(&admin, Method::GET, &format!("{api}/api/v1/api-keys"), None).await;
    assert_eq!(code, 200, "{keys}");
    assert!(
        keys.to_string().contains("\"proxy\""),
        "the proxy key exists: {keys}"
    );
    let (code, _) = send_as(
        proxy_token,
        Method::GET,
        &format!("{api}/api/v1/proxy/routes?proxy_id=p&name=edge"),
        None,
    )
    .await;
    assert_eq!(code, 200);
    let (code, _) = send_as(
        proxy_token,
        Method::GET,
        &format!("{api}/api/v1/canary/deployments"),
        None,
    )
    .await;
    assert_eq!(code, 403);
    let _ = child.kill();
    let _ = child.wait();
}
