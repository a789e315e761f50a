//! The attacks of the security review, kept as regression tests: each case is
//! what a caller tried, and what must happen instead.

use serde_json::{Value, json};

use crate::harness::{Server, get, post, send};

/// A plan can't aim the server at loopback, link-local, metadata or the
/// server itself: the plan is refused with the field at fault and nothing is
/// created. This server runs the default policy (its allow list names only a
/// documentation range).
#[tokio::test]
async fn plans_cannot_aim_the_server_inside() {
    let s = Server::sqlite_with(&[
        ("SERIN_RATE_LIMIT", "0"),
        ("SERIN_OUTBOUND_ALLOW", "192.0.2.0/24"),
    ]);
    let own = s.url.trim_start_matches("http://").to_string();
    let inside = [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/".to_string(),
        "http://[fd00:ec2::254]/latest/meta-data/".into(),
        "http://metadata.google.internal/computeMetadata/v1/".into(),
        "http://127.0.0.1:5432/".into(),
        "http://localhost:6379/".into(),
        "http://[::1]/".into(),
        "http://2130706433/".into(),
        "http://[::ffff:7f00:1]/".into(),
        format!("http://{own}/api/v1/api-keys"),
    ];
    let plan = |url: &str, place: &str| -> Value {
        match place {
            "gate" => json!({"steps": [{"set_weight": 5}, {"gate": {"webhook": {"url": url}}}]}),
            "hook" => {
                json!({"steps": [{"set_weight": 5}], "hooks": [{"name": "h", "kind": "pre_rollout", "webhook": url}]})
            }
            "notification" => {
                json!({"steps": [{"set_weight": 5}], "notifications": [{"url": url}]})
            }
            _ => {
                json!({"steps": [{"set_weight": 5}], "health_checks": [{"name": "c", "check_type": "http", "endpoint": url}]})
            }
        }
    };
    for url in &inside {
        for place in ["gate", "hook", "notification", "health_check"] {
            let (code, body) = post(
                &format!("{}/api/v1/canary/deployments", s.url),
                json!({"queue_name": "q", "stable_version": "a", "canary_version": "b", "rollout": plan(url, place)}),
            )
            .await;
            assert_eq!(code, 400, "{place} {url}: {body}");
            assert_eq!(body["code"], "VALIDATION_FAILED", "{body}");
            let text = body.to_string();
            assert!(text.contains("outbound policy"), "{place} {url}: {text}");
        }
    }
    // A TCP check is not a port scanner of this machine.
    let (code, body) = post(
        &format!("{}/api/v1/canary/deployments", s.url),
        json!({"queue_name": "q", "stable_version": "a", "canary_version": "b", "rollout":
            {"steps": [{"set_weight": 5}], "health_checks": [{"name": "c", "check_type": "tcp", "endpoint": "127.0.0.1:22"}]}}),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    // A group rollout and an environment's pre-deploy hook go through the same policy.
    let (code, body) = post(
        &format!("{}/api/v1/rollouts", s.url),
        json!({"targets": [{"queue_name": "a", "stable_version": "1", "canary_version": "2"}, {"queue_name": "b", "stable_version": "1", "canary_version": "2"}],
               "rollout": plan("http://169.254.169.254/", "gate")}),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    let (code, _) = post(
        &format!("{}/api/v1/products", s.url),
        json!({"name": "shop"}),
    )
    .await;
    assert_eq!(code, 201);
    let (code, body) = send(
        reqwest::Method::PATCH,
        &format!("{}/api/v1/products/shop/environments/production", s.url),
        Some(json!({"pre_deploy_hook": {"webhook": "http://169.254.169.254/latest/user-data"}})),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        body["details"]["field"], "pre_deploy_hook.webhook",
        "{body}"
    );
    let (_, list) = get(&format!("{}/api/v1/canary/deployments", s.url)).await;
    assert_eq!(list["count"], 0, "{list}");
    // An ordinary outside target is accepted.
    let (code, body) = post(
        &format!("{}/api/v1/canary/deployments", s.url),
        json!({"queue_name": "q", "stable_version": "a", "canary_version": "b", "rollout": plan("https://ci.example.com/gate", "gate")}),
    )
    .await;
    assert_eq!(code, 201, "{body}");
}

/// Loopback allowed (as every other test server has it) still doesn't make
/// the server's own API or proxy callable.
#[tokio::test]
async fn the_servers_own_listener_is_never_a_target() {
    let s = Server::sqlite();
    let (code, body) = post(
        &format!("{}/api/v1/canary/deployments", s.url),
        json!({"queue_name": "q", "stable_version": "a", "canary_version": "b", "rollout":
            {"steps": [{"set_weight": 5}, {"gate": {"webhook": {"url": format!("{}/api/v1/health", s.url)}}}]}}),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(body.to_string().contains("own listeners"), "{body}");
}

/// A key's name is its actor in the audit log: it can't pass for a person, for
/// Serin itself or for another key (issue 16: a second key named like the
/// admin's made the log ambiguous). People can't hold the proxy role.
#[tokio::test]
async fn key_names_name_one_actor_and_proxy_is_a_role_for_keys() {
    let s = Server::sqlite();
    let keys = format!("{}/api/v1/api-keys", s.url);
    for name in [
        "ada@example.com",
        "system",
        "Controller",
        "admin (SERIN_ADMIN_TOKEN)",
        "ADMIN (serin_admin_token)",
    ] {
        let (code, e) = post(&keys, json!({"name": name, "role": "engineer"})).await;
        assert!(matches!(code, 400 | 409), "{name}: {code} {e}");
    }
    let (code, _) = post(&keys, json!({"name": "ci", "role": "engineer"})).await;
    assert_eq!(code, 201);
    let (code, e) = post(&keys, json!({"name": "CI", "role": "admin"})).await;
    assert_eq!(
        (code, e["code"].as_str()),
        (409, Some("API_KEY_EXISTS")),
        "{e}"
    );
    // Revoked, the name still means that key.
    let (_, list) = get(&keys).await;
    let id = list["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "ci")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _) = send(reqwest::Method::DELETE, &format!("{keys}/{id}"), None).await;
    assert_eq!(code, 200);
    let (code, _) = post(&keys, json!({"name": "ci", "role": "admin"})).await;
    assert_eq!(code, 409);
    let (code, e) = post(
        &format!("{}/api/v1/users", s.url),
        json!({"email": "p@example.com", "name": "P", "role": "proxy", "password": "long enough pw"}),
    )
    .await;
    assert_eq!(
        (code, e["details"]["field"].as_str()),
        (400, Some("role")),
        "{e}"
    );
}

async fn login_from(s: &Server, client: &str, email: &str, password: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", s.url))
        .header("x-forwarded-for", client)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn key_from(s: &Server, client: &str, key: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{}/api/v1/products", s.url))
        .header("x-forwarded-for", client)
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Behind a trusted load balancer, a guesser locks out only themselves: bad
/// tokens and wrong passwords from one client never refuse a right password or
/// a valid key from another, and a named account can't be locked by anyone
/// else (issue 16: 2 bad tokens a second refused 10 of 12 valid logins).
#[tokio::test]
async fn a_guesser_behind_the_balancer_locks_out_only_themselves() {
    let s = Server::sqlite_with(&[
        ("SERIN_RATE_LIMIT", "0"),
        ("SERIN_AUTH_FAILURE_LIMIT", "6"),
        ("SERIN_TRUSTED_PROXIES", "127.0.0.0/8"),
    ]);
    let (code, _) = post(
        &format!("{}/api/v1/users", s.url),
        json!({"email": "ada@example.com", "name": "Ada", "role": "engineer", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(code, 201);
    let (attacker, ada) = ("198.51.100.66", "203.0.113.7");
    let mut refused = 0;
    for i in 0..12 {
        // The guesser: two bad tokens and a wrong password for Ada each round.
        key_from(&s, attacker, &format!("srn_guess_{i}_a")).await;
        key_from(&s, attacker, &format!("srn_guess_{i}_b")).await;
        login_from(&s, attacker, "ada@example.com", "wrong").await;
        if login_from(&s, ada, "ada@example.com", "correct horse battery").await != 200 {
            refused += 1;
        }
        if key_from(&s, ada, crate::harness::ADMIN).await != 200 {
            refused += 1;
        }
    }
    assert_eq!(refused, 0, "valid logins or keys refused");
    // The guesser is throttled, on both doors.
    assert_eq!(key_from(&s, attacker, "srn_guess_again").await, 429);
    assert_eq!(
        login_from(&s, attacker, "ada@example.com", "correct horse battery").await,
        429
    );
    // A client-written header to the left of the balancer's hop changes nothing.
    assert_eq!(
        key_from(&s, &format!("203.0.113.99, {attacker}"), "srn_guess_more").await,
        429
    );
}

/// Without trusted proxies the header is the caller's own words and is
/// ignored: nobody picks the address they are counted under.
#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let s = Server::sqlite_with(&[("SERIN_RATE_LIMIT", "0"), ("SERIN_AUTH_FAILURE_LIMIT", "6")]);
    let mut codes = Vec::new();
    for i in 0..4 {
        codes.push(key_from(&s, &format!("198.51.100.{i}"), &format!("srn_guess_{i}")).await);
    }
    assert_eq!(codes, [401, 401, 429, 429]);
}

/// Polls `url` with `key` on another replica until it is refused; the time it took.
async fn until_refused(url: &str, key: &str) -> std::time::Duration {
    let start = std::time::Instant::now();
    let c = reqwest::Client::new();
    loop {
        let code = c
            .get(url)
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if code == 401 {
            return start.elapsed();
        }
        assert_eq!(code, 200);
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "never refused on the other replica"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Two replicas on one PostgreSQL: a key revoked, a session logged out and a
/// user disabled on one stop working on the other (issue 16: ~5 s; the cache
/// now forgets after half a second). Prints the time each took; the figures
/// are in docs/benchmarks.md.
#[tokio::test]
async fn revocation_reaches_the_other_replica() {
    let Some(db) = crate::harness::postgres_schema("revoke").await else {
        return;
    };
    let a = Server::start(&db, tempfile::tempdir().unwrap());
    let b = Server::start(&db, tempfile::tempdir().unwrap());
    let on_b = format!("{}/api/v1/products", b.url);
    let mut took = Vec::new();
    for i in 0..3 {
        let (code, k) = post(
            &format!("{}/api/v1/api-keys", a.url),
            json!({"name": format!("ci-{i}"), "role": "viewer"}),
        )
        .await;
        assert_eq!(code, 201);
        let key = k["key"].as_str().unwrap();
        assert_eq!(
            crate::harness::send_as(key, reqwest::Method::GET, &on_b, None)
                .await
                .0,
            200
        );
        let (code, _) = send(
            reqwest::Method::DELETE,
            &format!("{}/api/v1/api-keys/{}", a.url, k["id"].as_str().unwrap()),
            None,
        )
        .await;
        assert_eq!(code, 200);
        took.push(("key revoked", until_refused(&on_b, key).await));
    }
    let (code, _) = post(
        &format!("{}/api/v1/users", a.url),
        json!({"email": "ada@example.com", "name": "Ada", "role": "engineer", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(code, 201);
    let login = || async {
        let (code, s) = post(
            &format!("{}/api/v1/auth/login", a.url),
            json!({"email": "ada@example.com", "password": "correct horse battery"}),
        )
        .await;
        assert_eq!(code, 200, "{s}");
        s["token"].as_str().unwrap().to_string()
    };
    let token = login().await;
    assert_eq!(
        crate::harness::send_as(&token, reqwest::Method::GET, &on_b, None)
            .await
            .0,
        200
    );
    let (code, _) = crate::harness::send_as(
        &token,
        reqwest::Method::POST,
        &format!("{}/api/v1/auth/logout", a.url),
        None,
    )
    .await;
    assert!(code < 300);
    took.push(("logged out", until_refused(&on_b, &token).await));
    let token = login().await;
    assert_eq!(
        crate::harness::send_as(&token, reqwest::Method::GET, &on_b, None)
            .await
            .0,
        200
    );
    let (_, users) = get(&format!("{}/api/v1/users", a.url)).await;
    let id = users["users"]
        .as_array()
        .or(users["items"].as_array())
        .unwrap()
        .iter()
        .find(|u| u["email"] == "ada@example.com")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _) = send(
        reqwest::Method::PATCH,
        &format!("{}/api/v1/users/{id}", a.url),
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(code, 200);
    took.push(("user disabled", until_refused(&on_b, &token).await));
    for (what, t) in &took {
        println!(
            "revocation on the other replica: {what}: {} ms",
            t.as_millis()
        );
    }
}

/// Secrets: an admin stores a value no API returns, a plan names it, the
/// notifier sends to the URL it holds and signs with the target's own key
/// (issue 16: one global secret signed every target, and plan URLs with
/// credentials were readable by viewers). At rest the value is sealed: the
/// database file doesn't hold it.
#[tokio::test]
async fn secrets_are_named_in_plans_used_in_calls_and_never_shown() {
    use hmac::{Hmac, Mac};
    type Got = std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, Vec<u8>)>>>;
    let got: Got = Default::default();
    let log = got.clone();
    let app = axum::Router::new().fallback(
        move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push((headers, body.to_vec()));
                axum::http::StatusCode::OK
            }
        },
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = format!("http://{}/hook/T0K3N", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    let key = "ab".repeat(32);
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/serin.db", dir.path().display());
    let s = Server::start_with(
        &db,
        tempfile::tempdir().unwrap(),
        &[("SERIN_RATE_LIMIT", "0"), ("SERIN_SECRET_KEY", &key)],
    );
    let secrets = format!("{}/api/v1/secrets", s.url);
    let signing = "per-target-signing-key-77";
    for (name, value) in [("ops-hook", receiver.as_str()), ("ops-signing", signing)] {
        let (code, info) = send(
            reqwest::Method::PUT,
            &format!("{secrets}/{name}"),
            Some(json!({"value": value})),
        )
        .await;
        assert_eq!(code, 200, "{info}");
        assert!(!info.to_string().contains(value), "{info}");
    }
    let (code, e) = send(
        reqwest::Method::PUT,
        &format!("{secrets}/Bad Name"),
        Some(json!({"value": "x"})),
    )
    .await;
    assert_eq!(code, 400, "{e}");
    let (_, list) = get(&secrets).await;
    assert_eq!(list["secrets"].as_array().map(Vec::len), Some(2), "{list}");
    assert!(!list.to_string().contains("T0K3N") && !list.to_string().contains(signing));
    // An engineer can't read or write them.
    let (_, k) = post(
        &format!("{}/api/v1/api-keys", s.url),
        json!({"name": "eng", "role": "engineer"}),
    )
    .await;
    let eng = k["key"].as_str().unwrap();
    assert_eq!(
        crate::harness::send_as(eng, reqwest::Method::GET, &secrets, None)
            .await
            .0,
        403
    );
    assert_eq!(
        crate::harness::send_as(
            eng,
            reqwest::Method::PUT,
            &format!("{secrets}/mine"),
            Some(json!({"value": "x"}))
        )
        .await
        .0,
        403
    );
    // A plan naming a secret that doesn't exist, or carrying a token, is refused.
    let deployments = format!("{}/api/v1/canary/deployments", s.url);
    let create = |rollout: Value| {
        post(
            &deployments,
            json!({"queue_name": "q", "stable_version": "a", "canary_version": "b", "rollout": rollout}),
        )
    };
    let (code, e) =
        create(json!({"steps": [{"set_weight": 5}], "notifications": [{"url": "secret:nope"}]}))
            .await;
    assert_eq!(
        (code, e["details"]["field"].as_str()),
        (400, Some("rollout.notifications[0].url")),
        "{e}"
    );
    let (code, e) = create(json!({"steps": [{"set_weight": 5}], "notifications": [{"url": "https://hooks.slack.com/services/T0/B0/SECRETPATH"}]})).await;
    assert_eq!(code, 400, "{e}");
    assert!(
        !e.to_string().contains("SECRETPATH") && e.to_string().contains("secret:NAME"),
        "{e}"
    );
    // The plan that names them.
    let (code, d) = create(json!({"steps": [{"set_weight": 5}],
        "notifications": [{"url": "secret:ops-hook", "signing_secret": "ops-signing", "events": ["deployment_created"]}]}))
    .await;
    assert_eq!(code, 201, "{d}");
    assert!(!d.to_string().contains("T0K3N"), "{d}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while got.lock().unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the notification never came"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (h, raw) = got.lock().unwrap()[0].clone();
    let ts = h["x-serin-timestamp"].to_str().unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(signing.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&raw);
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        h["x-serin-signature"].to_str().unwrap(),
        want,
        "signed with the target's own key"
    );
    // What viewers read names the secret, never its value.
    let id = d["id"].as_str().unwrap();
    for path in [
        format!("/api/v1/canary/deployments/{id}"),
        format!("/api/v1/canary/deployments/{id}/deliveries"),
        "/api/v1/audit-logs?page_size=100".into(),
    ] {
        let (_, body) = get(&format!("{}{path}", s.url)).await;
        let text = body.to_string();
        assert!(
            !text.contains("T0K3N") && !text.contains(signing),
            "{path}: {text}"
        );
    }
    // At rest, sealed.
    for f in ["serin.db", "serin.db-wal"] {
        let bytes = std::fs::read(dir.path().join(f)).unwrap_or_default();
        for v in [signing.as_bytes(), b"T0K3N".as_slice()] {
            assert!(
                !bytes.windows(v.len()).any(|w| w == v),
                "{f} holds a secret in the clear"
            );
        }
    }
    // Without a key, nothing is stored.
    let plain = Server::sqlite();
    let (code, e) = send(
        reqwest::Method::PUT,
        &format!("{}/api/v1/secrets/x", plain.url),
        Some(json!({"value": "v"})),
    )
    .await;
    assert_eq!(
        (code, e["code"].as_str()),
        (409, Some("SECRETS_DISABLED")),
        "{e}"
    );
}

/// A canary outside a product's environments, promoted by hand, doesn't make
/// its version the product's release (a review found this way around
/// production's approvals, beside PATCH).
#[tokio::test]
async fn promoting_a_canary_outside_the_environments_releases_nothing() {
    let s = Server::sqlite();
    let (code, _) = post(
        &format!("{}/api/v1/products", s.url),
        json!({"name": "shop"}),
    )
    .await;
    assert_eq!(code, 201);
    // Configuring an environment makes the product ship through them.
    let (code, e) = send(
        reqwest::Method::PATCH,
        &format!("{}/api/v1/products/shop/environments/production", s.url),
        Some(json!({"approvals": {"required": 2}})),
    )
    .await;
    assert_eq!(code, 200, "{e}");
    let (code, r) = post(
        &format!("{}/api/v1/releases", s.url),
        json!({"product_name": "shop", "version": "9.9.9"}),
    )
    .await;
    assert_eq!(code, 201, "{r}");
    let id = r["id"].as_i64().unwrap();
    let (_, k) = post(
        &format!("{}/api/v1/api-keys", s.url),
        json!({"name": "eng", "role": "engineer"}),
    )
    .await;
    let eng = k["key"].as_str().unwrap().to_string();
    for environment in [None, Some("not-an-environment")] {
        let mut body = json!({"queue_name": format!("q-{environment:?}").replace(['(', ')', '"'], ""), "product": "shop", "stable_version": "1.0.0", "canary_version": "9.9.9"});
        if let Some(e) = environment {
            body["environment"] = json!(e);
        }
        let (code, d) = crate::harness::send_as(
            &eng,
            reqwest::Method::POST,
            &format!("{}/api/v1/canary/deployments", s.url),
            Some(body),
        )
        .await;
        assert_eq!(code, 201, "{d}");
        let dep = d["id"].as_str().unwrap();
        let (code, p) = crate::harness::send_as(
            &eng,
            reqwest::Method::POST,
            &format!("{}/api/v1/canary/deployments/{dep}/promote", s.url),
            None,
        )
        .await;
        assert!(code < 300, "{p}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (_, r) = get(&format!("{}/api/v1/releases/{id}", s.url)).await;
    assert_ne!(r["status"], "released", "{r}");
    let (code, _) = get(&format!("{}/api/v1/products/shop/releases/latest", s.url)).await;
    assert_eq!(code, 404, "no release is the latest stable");
}
