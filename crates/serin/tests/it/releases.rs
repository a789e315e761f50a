//! The release manager end to end (seed 003): real users logging in, a release
//! going development → staging → production through the real controller and
//! proxy with production's approval policy, a failed staging deployment
//! blocking production, a pre-deploy hook's output kept, one-click rollback
//! restoring the previous release and the proxy's route, and the audit log
//! holding every step with its actor. Also sessions (login, logout, expiry,
//! disabling, the throttle) and the role matrix over HTTP, and the CLI.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{ADMIN, BIN, Server, send, send_as};
use crate::rollout::{receiver, up_with, upstream};

/// Logs in; returns the session token.
async fn login(api: &str, email: &str, password: &str) -> String {
    let (s, body) = send_as(
        "",
        Method::POST,
        &format!("{api}/api/v1/auth/login"),
        Some(json!({"email": email, "password": password})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    body["token"].as_str().unwrap().to_string()
}

async fn add_user(api: &str, email: &str, role: &str) {
    let (s, body) = send(
        Method::POST,
        &format!("{api}/api/v1/users"),
        Some(json!({"email": email, "name": email.split('@').next().unwrap(), "role": role, "password": "correct horse"})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
}

/// Waits until seed 003's view of a deployment has one of `statuses`.
async fn settles(api: &str, id: &str, statuses: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, d) = send(Method::GET, &format!("{api}/api/v1/deployments/{id}"), None).await;
        if statuses.contains(&d["status"].as_str().unwrap_or("")) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never became {statuses:?}: {d}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until a deployment sends `percent`% to its canary.
async fn at_percent(api: &str, id: &str, percent: u8) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, d) = send(Method::GET, &format!("{api}/api/v1/deployments/{id}"), None).await;
        if d["current_percent"] == percent {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never reached {percent}%: {d}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the proxy answers for `host`.
async fn served(proxy: &str, host: &str) -> String {
    let r = reqwest::Client::new()
        .get(format!("{proxy}/"))
        .header("host", host)
        .send()
        .await
        .unwrap();
    r.text().await.unwrap().trim().to_string()
}

async fn release_status(api: &str, id: i64) -> String {
    let (_, r) = send(Method::GET, &format!("{api}/api/v1/releases/{id}"), None).await;
    r["status"].as_str().unwrap().to_string()
}

async fn until_release(api: &str, id: i64, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while release_status(api, id).await != status {
        assert!(
            Instant::now() < deadline,
            "release {id} never became {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_goes_through_every_environment_with_approvals_and_rolls_back_in_one_click() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/serin.db", dir.path().display());
    let stack = up_with(&db, &[("SERIN_ALLOW_HOOK_COMMANDS", "true")]);
    let (api, proxy) = (stack.api.as_str(), stack.proxy.as_str());
    let (_one, one) = upstream("one", 0.0, 1);
    let (_two, two) = upstream("two", 0.0, 1);
    for (email, role) in [
        ("ada@example.com", "engineer"),
        ("bob@example.com", "engineer"),
        ("cy@example.com", "admin"),
        ("vic@example.com", "viewer"),
    ] {
        add_user(api, email, role).await;
    }
    let ada = login(api, "ada@example.com", "correct horse").await;
    let bob = login(api, "bob@example.com", "correct horse").await;
    let cy = login(api, "cy@example.com", "correct horse").await;
    let vic = login(api, "vic@example.com", "correct horse").await;
    let as_ = |who: &str, m: Method, path: &str, body: Option<Value>| {
        let (who, url) = (who.to_string(), format!("{api}{path}"));
        async move { send_as(&who, m, &url, body).await }
    };

    // Ada makes the product and two releases: she is their author.
    let (s, _) = as_(
        &ada,
        Method::POST,
        "/api/v1/products",
        Some(json!({"name": "shop"})),
    )
    .await;
    assert_eq!(s, 201);
    let mut ids = Vec::new();
    for v in ["1.0.0", "2.0.0"] {
        let (s, r) = as_(
            &ada,
            Method::POST,
            "/api/v1/releases",
            Some(json!({"product_name": "shop", "version": v})),
        )
        .await;
        assert_eq!(s, 201, "{r}");
        assert_eq!(r["created_by"], "ada@example.com");
        ids.push(r["id"].as_i64().unwrap());
    }
    let (v1, v2) = (ids[0], ids[1]);

    // The defaults, with a route per environment and a migration before production.
    let (s, envs) = as_(
        &vic,
        Method::GET,
        "/api/v1/products/shop/environments",
        None,
    )
    .await;
    assert_eq!(s, 200);
    let names: Vec<&str> = envs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["development", "staging", "production"]);
    assert_eq!(envs["items"][2]["approvals"]["required"], 2);
    for (env, host) in [
        ("development", "dev.shop.test"),
        ("staging", "staging.shop.test"),
        ("production", "shop.test"),
    ] {
        let mut spec = json!({"route": {"host": host}});
        if env == "production" {
            spec["pre_deploy_hook"] =
                json!({"command": ["sh", "-c", "echo migrated to $SERIN_CANARY_VERSION"]});
        }
        let (s, e) = as_(
            &cy,
            Method::PATCH,
            &format!("/api/v1/products/shop/environments/{env}"),
            Some(spec),
        )
        .await;
        assert_eq!(s, 200, "{e}");
    }
    let (s, e) = as_(
        &ada,
        Method::PATCH,
        "/api/v1/products/shop/environments/production",
        Some(json!({"approvals": {"required": 0}})),
    )
    .await;
    assert_eq!(
        s, 403,
        "only admins change the policies that hold engineers back: {e}"
    );
    let (s, e) = as_(
        &vic,
        Method::PATCH,
        "/api/v1/products/shop/environments/staging",
        Some(json!({"require_previous": false})),
    )
    .await;
    assert_eq!(s, 403, "a viewer changes nothing: {e}");

    let deploy = |who: &str, release: i64, env: &str, endpoint: &str| {
        let body = json!({"environment": env, "strategy": "direct", "endpoints": [endpoint]});
        as_(
            who,
            Method::POST,
            &format!("/api/v1/releases/{release}/deploy"),
            Some(body),
        )
    };

    // 1.0.0: development, then staging; production waits for two approvals.
    let (s, d) = deploy(&ada, v1, "production", &one).await;
    assert_eq!(s, 409, "{d}");
    assert_eq!(d["code"], "PREVIOUS_ENVIRONMENT_NOT_PASSED");
    for env in ["development", "staging"] {
        let (s, d) = deploy(&ada, v1, env, &one).await;
        assert_eq!(s, 202, "{d}");
        settles(api, d["id"].as_str().unwrap(), &["succeeded"]).await;
    }
    assert_eq!(served(proxy, "staging.shop.test").await, "one");
    assert_eq!(
        release_status(api, v1).await,
        "draft",
        "only production makes a release stable"
    );
    let (s, d) = deploy(&ada, v1, "production", &one).await;
    assert_eq!(s, 202, "{d}");
    let prod1 = d["id"].as_str().unwrap().to_string();
    assert_eq!(d["status"], "pending");
    let decide = |who: &str, release: i64, decision: &str| {
        let body =
            json!({"environment": "production", "decision": decision, "comment": "looks fine"});
        as_(
            who,
            Method::POST,
            &format!("/api/v1/releases/{release}/approvals"),
            Some(body),
        )
    };
    let (s, e) = decide(&ada, v1, "approved").await;
    assert_eq!((s, e["code"].as_str()), (403, Some("SELF_APPROVAL")), "{e}");
    let (s, e) = decide(&vic, v1, "approved").await;
    assert_eq!(s, 403, "a viewer can't approve: {e}");
    let (s, e) = send(
        Method::POST,
        &format!("{api}/api/v1/releases/{v1}/approvals"),
        Some(json!({"environment": "production", "decision": "approved"})),
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (403, Some("APPROVAL_NEEDS_A_USER")),
        "{e}"
    );
    let (s, t) = decide(&bob, v1, "approved").await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["tally"]["met"], false);
    // Nobody steps around the gate: no promotion, no traffic, no look-alike deployment.
    let (s, e) = as_(
        &bob,
        Method::POST,
        &format!("/api/v1/canary/deployments/{prod1}/promote"),
        None,
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (409, Some("DEPLOYMENT_HELD")),
        "{e}"
    );
    let (s, e) = as_(
        &bob,
        Method::PUT,
        &format!("/api/v1/canary/deployments/{prod1}/percentage"),
        Some(json!({"percentage": 50})),
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (409, Some("DEPLOYMENT_HELD")),
        "{e}"
    );
    let (s, e) = as_(
        &bob,
        Method::POST,
        "/api/v1/canary/deployments",
        Some(json!({"queue_name": "shop-prod", "stable_version": "0", "canary_version": "1.0.0", "product": "shop", "environment": "production"})),
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (409, Some("USE_RELEASE_DEPLOY")),
        "{e}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let d = settles(api, &prod1, &["pending"]).await;
    assert!(
        d["waiting_for"]
            .as_str()
            .unwrap()
            .contains("1 more approval"),
        "{d}"
    );
    assert!(
        !served(proxy, "shop.test").await.contains("one"),
        "nothing reaches production before its approvals"
    );
    let (s, t) = decide(&cy, v1, "approved").await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["tally"]["met"], true);
    let d = settles(api, &prod1, &["succeeded"]).await;
    let hook = &d["hooks"][0];
    assert_eq!(hook["ok"], true, "{d}");
    assert!(
        hook["output"]
            .as_str()
            .unwrap()
            .contains("migrated to 1.0.0"),
        "{d}"
    );
    assert_eq!(served(proxy, "shop.test").await, "one");
    until_release(api, v1, "released").await;

    // 2.0.0: staging fails (its pre-deploy hook fails), which blocks production.
    let (s, _) = deploy(&ada, v2, "development", &two).await;
    assert_eq!(s, 202);
    let (s, _) = as_(
        &cy,
        Method::PATCH,
        "/api/v1/products/shop/environments/staging",
        Some(json!({"pre_deploy_hook": {"command": ["false"]}})),
    )
    .await;
    assert_eq!(s, 200);
    let dev = latest(api, "development").await;
    settles(api, &dev, &["succeeded"]).await;
    let (s, e) = as_(
        &ada,
        Method::DELETE,
        &format!("/api/v1/releases/{v2}"),
        None,
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (409, Some("RELEASE_DEPLOYED")),
        "a deployed draft keeps its history: {e}"
    );
    let (s, d) = deploy(&ada, v2, "staging", &two).await;
    assert_eq!(s, 202, "{d}");
    let failed = settles(api, d["id"].as_str().unwrap(), &["failed", "succeeded"]).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error_message"]
            .as_str()
            .unwrap()
            .contains("pre-rollout hook pre-deploy failed"),
        "{failed}"
    );
    assert_eq!(served(proxy, "staging.shop.test").await, "one");
    // Approvals may come before the deployment; the failure still blocks it.
    decide(&bob, v2, "approved").await;
    decide(&cy, v2, "approved").await;
    let (s, e) = deploy(&ada, v2, "production", &two).await;
    assert_eq!(s, 409, "{e}");
    assert_eq!(e["code"], "PREVIOUS_ENVIRONMENT_NOT_PASSED");
    assert!(e["error"].as_str().unwrap().contains("failed"), "{e}");
    let (s, _) = as_(
        &cy,
        Method::PATCH,
        "/api/v1/products/shop/environments/staging",
        Some(json!({"pre_deploy_hook": null})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, d) = deploy(&ada, v2, "staging", &two).await;
    assert_eq!(s, 202, "{d}");
    settles(api, d["id"].as_str().unwrap(), &["succeeded"]).await;
    // The author can't step around production's approvals by a status change
    // (issue 16's attack: PATCH `approved`, then `released`).
    for status in ["approved", "released"] {
        let (s, e) = as_(
            &ada,
            Method::PATCH,
            &format!("/api/v1/releases/{v2}"),
            Some(json!({"status": status})),
        )
        .await;
        if status == "released" {
            assert_eq!(
                (s, e["code"].as_str()),
                (409, Some("RELEASE_SHIPS_THROUGH_ENVIRONMENTS")),
                "{e}"
            );
        } else {
            assert_eq!(s, 200, "{e}");
        }
    }
    let (_, latest_stable) = as_(
        &vic,
        Method::GET,
        "/api/v1/products/shop/releases/latest",
        None,
    )
    .await;
    assert_eq!(latest_stable["version"], "1.0.0", "{latest_stable}");
    let (s, d) = deploy(&ada, v2, "production", &two).await;
    assert_eq!(s, 202, "{d}");
    let prod2 = d["id"].as_str().unwrap().to_string();
    assert_eq!(d["previous_version"], "1.0.0");
    settles(api, &prod2, &["succeeded"]).await;
    assert_eq!(served(proxy, "shop.test").await, "two");
    until_release(api, v2, "released").await;

    // One click: production is back on 1.0.0, through a verified deployment.
    let (s, e) = as_(
        &vic,
        Method::POST,
        &format!("/api/v1/deployments/{prod2}/rollback"),
        None,
    )
    .await;
    assert_eq!(s, 403, "{e}");
    let (s, r) = as_(
        &bob,
        Method::POST,
        &format!("/api/v1/deployments/{prod2}/rollback"),
        Some(json!({"reason": "checkout errors"})),
    )
    .await;
    assert_eq!(s, 202, "{r}");
    assert_eq!(r["version"], "1.0.0");
    assert_eq!(r["release_id"], v1);
    settles(api, r["id"].as_str().unwrap(), &["succeeded"]).await;
    assert_eq!(served(proxy, "shop.test").await, "one");
    let undone = settles(api, &prod2, &["rolled_back"]).await;
    assert_eq!(undone["rolled_back_by"], r["id"]);
    until_release(api, v2, "rolled_back").await;
    let (s, e) = as_(
        &bob,
        Method::POST,
        &format!("/api/v1/deployments/{prod2}/rollback"),
        None,
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (409, Some("ALREADY_ROLLED_BACK")),
        "{e}"
    );
    // Undoing the undo would bring the rolled-back release back without
    // approvals: refused, and production still serves (and `latest` names) 1.0.0.
    let (s, e) = as_(
        &bob,
        Method::POST,
        &format!("/api/v1/deployments/{}/rollback", r["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (409, Some("RELEASE_NOT_DEPLOYABLE")),
        "{e}"
    );
    assert_eq!(served(proxy, "shop.test").await, "one");
    let (_, latest_stable) = as_(
        &vic,
        Method::GET,
        "/api/v1/products/shop/releases/latest",
        None,
    )
    .await;
    assert_eq!(latest_stable["version"], "1.0.0", "{latest_stable}");

    // Seed 003's list, and the audit log with every step's actor.
    let (_, list) = as_(
        &vic,
        Method::GET,
        "/api/v1/deployments?product=shop&environment=production",
        None,
    )
    .await;
    let statuses: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["succeeded", "rolled_back", "succeeded"]);
    let (_, audit) = as_(
        &vic,
        Method::GET,
        "/api/v1/audit-logs?page_size=100&resource_type=release",
        None,
    )
    .await;
    let entries: Vec<(String, String)> = audit["audit_logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["actor"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        ("release_created", "ada@example.com"),
        ("release_approved", "bob@example.com"),
        ("release_approved", "cy@example.com"),
        ("release_updated", "system"),
    ] {
        assert!(
            entries
                .iter()
                .any(|(a, w)| (a.as_str(), w.as_str()) == want),
            "{want:?} missing from {entries:?}"
        );
    }
    let (_, audit) = as_(
        &vic,
        Method::GET,
        "/api/v1/audit-logs?page_size=100&resource_type=deployment&actor=bob@example.com",
        None,
    )
    .await;
    let actions: Vec<&str> = audit["audit_logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"deployment_created"), "{actions:?}");
    assert!(actions.contains(&"deployment_reverted"), "{actions:?}");
    let (_, audit) = as_(
        &vic,
        Method::GET,
        "/api/v1/audit-logs?page_size=100&action=deployment_created&actor=ada@example.com",
        None,
    )
    .await;
    assert!(
        audit["pagination"]["total_items"].as_u64().unwrap() >= 6,
        "{audit}"
    );
}

/// The newest deployment of `shop` in `env`.
async fn latest(api: &str, env: &str) -> String {
    let (_, list) = send(
        Method::GET,
        &format!("{api}/api/v1/deployments?product=shop&environment={env}"),
        None,
    )
    .await;
    list["items"][0]["id"].as_str().unwrap().to_string()
}

/// What, how, where, with what, and the status for a viewer, an engineer, an admin.
type Case = (&'static str, Method, &'static str, Option<Value>, [u16; 3]);

#[tokio::test]
async fn sessions_expire_end_and_follow_the_role_matrix() {
    let server = Server::sqlite_with(&[
        ("SERIN_RATE_LIMIT", "0"),
        ("SERIN_AUTH_FAILURE_LIMIT", "0"),
        ("SERIN_SESSION_TTL", "3s"),
    ]);
    let api = server.url.as_str();
    for (email, role) in [
        ("viv@example.com", "viewer"),
        ("eng@example.com", "engineer"),
        ("adm@example.com", "admin"),
    ] {
        add_user(api, email, role).await;
    }
    let url = |p: &str| format!("{api}{p}");
    let (s, e) = send_as(
        "",
        Method::POST,
        &url("/api/v1/auth/login"),
        Some(json!({"email": "eng@example.com", "password": "wrong horse"})),
    )
    .await;
    assert_eq!((s, e["code"].as_str()), (401, Some("INVALID_CREDENTIALS")));
    let (s, e) = send_as(
        "",
        Method::POST,
        &url("/api/v1/auth/login"),
        Some(json!({"email": "nobody@example.com", "password": "correct horse"})),
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (401, Some("INVALID_CREDENTIALS")),
        "unknown users look the same"
    );
    let (s, e) = send(Method::POST, &url("/api/v1/users"), Some(json!({"email": "not-an-email", "name": "x", "role": "viewer", "password": "correct horse"}))).await;
    assert_eq!(
        (s, e["details"]["field"].as_str()),
        (400, Some("email")),
        "{e}"
    );
    let (s, _) = send(Method::POST, &url("/api/v1/users"), Some(json!({"email": "ENG@example.com", "name": "x", "role": "viewer", "password": "correct horse"}))).await;
    assert_eq!(s, 409, "emails are unique whatever their case");

    // The role matrix, with sessions.
    let viv = login(api, "viv@example.com", "correct horse").await;
    let eng = login(api, "eng@example.com", "correct horse").await;
    let adm = login(api, "adm@example.com", "correct horse").await;
    assert!(viv.starts_with("srs_"));
    let matrix: [Case; 5] = [
        (
            "read",
            Method::GET,
            "/api/v1/products",
            None,
            [200, 200, 200],
        ),
        ("me", Method::GET, "/api/v1/users/me", None, [200, 200, 200]),
        (
            "change",
            Method::POST,
            "/api/v1/products",
            Some(json!({"name": "p"})),
            [403, 201, 409],
        ),
        ("users", Method::GET, "/api/v1/users", None, [403, 403, 200]),
        (
            "keys",
            Method::GET,
            "/api/v1/api-keys",
            None,
            [403, 403, 200],
        ),
    ];
    for (what, m, path, body, want) in matrix {
        for (token, expect) in [&viv, &eng, &adm].into_iter().zip(want) {
            let (s, b) = send_as(token, m.clone(), &url(path), body.clone()).await;
            assert_eq!(s, expect, "{what} with {token}: {b}");
        }
    }
    let (_, me) = send_as(&eng, Method::GET, &url("/api/v1/users/me"), None).await;
    assert_eq!(
        (me["kind"].as_str(), me["role"].as_str()),
        (Some("user"), Some("engineer"))
    );
    assert!(me["user"]["last_login"].is_string(), "{me}");
    let (_, me) = send(Method::GET, &url("/api/v1/users/me"), None).await;
    assert_eq!(
        me["kind"], "api_key",
        "API keys keep working beside sessions"
    );

    // Logout ends the session at once; an API key can't log out.
    let (s, _) = send_as(&eng, Method::POST, &url("/api/v1/auth/logout"), None).await;
    assert_eq!(s, 204);
    let (s, _) = send_as(&eng, Method::GET, &url("/api/v1/users/me"), None).await;
    assert_eq!(s, 401);
    let (s, e) = send(Method::POST, &url("/api/v1/auth/logout"), None).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("NOT_A_SESSION")));

    // Disabling ends sessions and refuses logins; a role change ends sessions.
    let (_, users) = send(Method::GET, &url("/api/v1/users"), None).await;
    let id_of = |email: &str| {
        users["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == email)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (s, _) = send_as(
        &adm,
        Method::PATCH,
        &url(&format!("/api/v1/users/{}", id_of("viv@example.com"))),
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = send_as(&viv, Method::GET, &url("/api/v1/products"), None).await;
    assert_eq!(s, 401);
    let (s, e) = send_as(
        "",
        Method::POST,
        &url("/api/v1/auth/login"),
        Some(json!({"email": "viv@example.com", "password": "correct horse"})),
    )
    .await;
    assert_eq!((s, e["code"].as_str()), (403, Some("USER_DISABLED")));

    // Sessions expire (3 s here).
    let fresh = login(api, "eng@example.com", "correct horse").await;
    let (s, _) = send_as(&fresh, Method::GET, &url("/api/v1/products"), None).await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let (s, e) = send_as(&fresh, Method::GET, &url("/api/v1/products"), None).await;
    assert_eq!(s, 401, "{e}");

    // Guessing is slowed after five wrong passwords, and counted.
    for _ in 0..5 {
        let (s, _) = send_as(
            "",
            Method::POST,
            &url("/api/v1/auth/login"),
            Some(json!({"email": "adm@example.com", "password": "guess guess"})),
        )
        .await;
        assert_eq!(s, 401);
    }
    let resp = reqwest::Client::new()
        .post(url("/api/v1/auth/login"))
        .json(&json!({"email": "adm@example.com", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429, "even the right password waits");
    assert!(resp.headers().get("retry-after").is_some());
    // The count is written after each answer (a known email must not answer
    // slower than an unknown one), so the last may land a moment later.
    let mut adm_user = Value::Null;
    for _ in 0..40 {
        let (_, users) = send(Method::GET, &url("/api/v1/users"), None).await;
        adm_user = users["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == "adm@example.com")
            .unwrap()
            .clone();
        if adm_user["failed_logins"] == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(adm_user["failed_logins"], 5, "{adm_user}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    login(api, "adm@example.com", "correct horse").await;
    let metrics = reqwest::get(url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("serin_logins_total{outcome=\"throttled\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("serin_logins_total{outcome=\"bad_password\"} 6"),
        "{metrics}"
    );

    // The audit log has the logins and the account changes.
    let (_, audit) = send(
        Method::GET,
        &url("/api/v1/audit-logs?resource_type=user&page_size=100"),
        None,
    )
    .await;
    let actions: Vec<&str> = audit["audit_logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "user_created",
        "user_logged_in",
        "user_logged_out",
        "user_updated",
    ] {
        assert!(actions.contains(&a), "{a} missing: {actions:?}");
    }
}

#[tokio::test]
async fn the_cli_logs_in_manages_users_and_environments_and_deploys() {
    let server = Server::sqlite();
    let config = tempfile::tempdir().unwrap();
    let run = |args: &[&str], key: Option<&str>, stdin: Option<&str>| {
        use std::io::Write;
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(args)
            .env("SERIN_URL", &server.url)
            .env("SERIN_CONFIG_DIR", config.path())
            .env_remove("SERIN_API_KEY")
            .env_remove("SERIN_PASSWORD")
            .env_remove("SERIN_OUTPUT")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(k) = key {
            cmd.env("SERIN_API_KEY", k);
        }
        let mut child = cmd.spawn().unwrap();
        if let Some(s) = stdin {
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    };
    let ok = |o: &std::process::Output| {
        assert!(
            o.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    ok(&run(
        &[
            "user",
            "add",
            "--email",
            "Eve@Example.com",
            "--name",
            "Eve",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        Some(ADMIN),
        Some("correct horse\n"),
    ));
    let list = ok(&run(&["user", "list"], Some(ADMIN), None));
    assert!(
        list.contains("eve@example.com") && list.contains("viewer"),
        "{list}"
    );
    ok(&run(
        &["user", "set-role", "eve@example.com", "engineer"],
        Some(ADMIN),
        None,
    ));

    // Login stores the session with mode 0600; commands use it.
    let out = ok(&run(
        &["login", "--email", "eve@example.com", "--password-stdin"],
        None,
        Some("correct horse\n"),
    ));
    assert!(out.contains("as eve@example.com (engineer)"), "{out}");
    let file = config.path().join("credentials.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(ok(&run(&["whoami"], None, None)).contains("eve@example.com (engineer, user)"));
    // A key given beside a stored session is used, and the CLI says so.
    let o = run(&["whoami"], Some(ADMIN), None);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not the session of eve@example.com"),
        "{o:?}"
    );
    ok(&run(&["product", "add", "web"], None, None));
    ok(&run(&["release", "add", "web", "1.0.0"], None, None));
    let o = run(&["env", "add", "web", "qa", "--approvals", "0"], None, None);
    assert!(!o.status.success(), "environments are an admin's to change");
    ok(&run(
        &[
            "env",
            "add",
            "web",
            "qa",
            "--position",
            "1",
            "--require-previous",
            "--approvals",
            "1",
            "--author-may-approve",
        ],
        Some(ADMIN),
        None,
    ));
    let envs = ok(&run(&["env", "list", "web"], None, None));
    let order: Vec<&str> = envs
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(
        order,
        ["development", "qa", "staging", "production"],
        "{envs}"
    );

    // Deploy, approve (the author may, in qa), and follow it to the end.
    let out = run(
        &["deploy", "web", "1.0.0", "--to", "development", "--wait"],
        None,
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ok(&run(&["deploy", "web", "1.0.0", "--to", "qa"], None, None));
    assert!(out.contains("pending"), "{out}");
    let out = ok(&run(
        &["approve", "web", "1.0.0", "--env", "qa", "-m", "ok"],
        None,
        None,
    ));
    assert!(out.contains("policy met"), "{out}");
    let deployments = ok(&run(
        &["deployment", "list", "--product", "web", "--env", "qa"],
        None,
        None,
    ));
    let id = deployments
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = ok(&run(&["-o", "json", "deployment", "show", &id], None, None));
        let d: Value = serde_json::from_str(&d).unwrap();
        if d["status"] == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "{d}");
        std::thread::sleep(Duration::from_millis(300));
    }

    // Logout forgets the session; a disabled user can't log back in.
    ok(&run(&["logout"], None, None));
    let o = run(&["whoami"], None, None);
    assert!(!o.status.success());
    ok(&run(
        &["user", "disable", "eve@example.com"],
        Some(ADMIN),
        None,
    ));
    let o = run(
        &["login", "--email", "eve@example.com", "--password-stdin"],
        None,
        Some("correct horse\n"),
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("disabled"));
}

/// Runs git in `dir`, as a test author.
fn git(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "tag.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_notes_come_from_releases_and_a_real_git_repository_and_are_published() {
    // A repository with tagged releases: 1.0.0, v1.1.0 and v2.0.0.
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    for (subject, tag) in [
        ("Initial shop", Some("1.0.0")),
        ("Search by category", None),
        ("Faster search", Some("v1.1.0")),
        ("New checkout page", None),
        ("Pay with vouchers", Some("v2.0.0")),
        ("Unreleased work", None),
    ] {
        git(
            repo.path(),
            &["commit", "-q", "--allow-empty", "-m", subject],
        );
        if let Some(t) = tag {
            git(repo.path(), &["tag", t]);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/serin.db", dir.path().display());
    let repos = format!("shop={}", repo.path().display());
    let stack = up_with(&db, &[("SERIN_GIT_REPOSITORIES", repos.as_str())]);
    let api = stack.api.as_str();
    let (hook_url, seen) = receiver(0).await;
    send(
        Method::POST,
        &format!("{api}/api/v1/products"),
        Some(json!({"name": "shop"})),
    )
    .await;
    let mut ids = Vec::new();
    for (v, notes) in [
        ("1.0.0", "First version."),
        ("1.1.0", "Search is faster."),
        ("2.0.0", "Vouchers at checkout."),
    ] {
        let (_, r) = send(
            Method::POST,
            &format!("{api}/api/v1/releases"),
            Some(json!({"product_name": "shop", "version": v, "description": notes})),
        )
        .await;
        ids.push(r["id"].as_i64().unwrap());
    }
    let (s, e) = send(
        Method::PATCH,
        &format!("{api}/api/v1/products/shop/environments/development"),
        Some(json!({"notifications": [{"url": format!("{hook_url}/notes")}]})),
    )
    .await;
    assert_eq!(s, 200, "{e}");
    let (s, d) = send(
        Method::POST,
        &format!("{api}/api/v1/releases/{}/deploy", ids[0]),
        Some(json!({"environment": "development"})),
    )
    .await;
    assert_eq!(s, 202, "{d}");
    settles(api, d["id"].as_str().unwrap(), &["succeeded"]).await;

    // 2.0.0's notes for development: since 1.0.0, so 1.1.0's too, and the commits.
    let (s, n) = send(
        Method::GET,
        &format!(
            "{api}/api/v1/releases/{}/notes?environment=development",
            ids[2]
        ),
        None,
    )
    .await;
    assert_eq!(s, 200, "{n}");
    assert_eq!(n["since_version"], "1.0.0");
    assert_eq!(n["releases"], json!(["2.0.0", "1.1.0"]));
    assert_eq!(n["commits"]["range"], "1.0.0..v2.0.0");
    let subjects: Vec<&str> = n["commits"]["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        [
            "Pay with vouchers",
            "New checkout page",
            "Faster search",
            "Search by category"
        ]
    );
    let md = n["markdown"].as_str().unwrap();
    for line in [
        "# shop 2.0.0",
        "Replaces 1.0.0 in development · 2 releases · 4 commits",
        "## 2.0.0\n\nVouchers at checkout.",
        "## 1.1.0\n\nSearch is faster.",
        "## Commits (1.0.0..v2.0.0)",
        "- Pay with vouchers (",
    ] {
        assert!(md.contains(line), "{line:?} missing from\n{md}");
    }
    assert!(
        !md.contains("Unreleased work") && !md.contains("First version."),
        "{md}"
    );
    let raw = reqwest::Client::new()
        .get(format!(
            "{api}/api/v1/releases/{}/notes?environment=development&format=markdown",
            ids[2]
        ))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert!(
        raw.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/markdown")
    );
    assert_eq!(raw.text().await.unwrap(), md);
    let (s, e) = send(
        Method::GET,
        &format!("{api}/api/v1/releases/{}/notes?environment=moon", ids[2]),
        None,
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (404, Some("ENVIRONMENT_NOT_FOUND"))
    );

    // The CLI prints the same Markdown.
    let out = crate::harness::cli_at(
        api,
        &["release", "notes", "shop", "2.0.0", "--env", "development"],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), md);

    // Deployed there, then published: the environment's target hears of it.
    let (s, d) = send(
        Method::POST,
        &format!("{api}/api/v1/releases/{}/deploy", ids[2]),
        Some(json!({"environment": "development"})),
    )
    .await;
    assert_eq!(s, 202, "{d}");
    settles(api, d["id"].as_str().unwrap(), &["succeeded"]).await;
    let (s, n) = send(
        Method::POST,
        &format!("{api}/api/v1/releases/{}/notes/publish", ids[2]),
        Some(json!({"environment": "development"})),
    )
    .await;
    assert_eq!(s, 201, "{n}");
    assert_eq!(
        n["since_version"], "1.0.0",
        "what it replaced when it arrived"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = seen.lock().unwrap().clone();
        if let Some((_, body)) = got
            .iter()
            .find(|(_, b)| b["type"] == "release_notes_published")
        {
            assert!(
                body["data"]["markdown"]
                    .as_str()
                    .unwrap()
                    .contains("Vouchers at checkout."),
                "{body}"
            );
            assert_eq!(body["actor"], "admin (SERIN_ADMIN_TOKEN)", "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "no notes delivered: {got:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The three strategies through the real proxy, a person's rollback of a
/// deployment in progress, and one-click rollback of a release that a failed
/// attempt left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_and_blue_green_move_the_proxy_and_rollback_survives_a_failed_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/serin.db", dir.path().display());
    let stack = up_with(&db, &[]);
    let (api, proxy) = (stack.api.as_str(), stack.proxy.as_str());
    let (_u1, one) = upstream("one", 0.0, 1);
    let (_u2, two) = upstream("two", 0.0, 1);
    let (_u3, three) = upstream("three", 0.0, 1);
    let url = |p: &str| format!("{api}{p}");
    send(
        Method::POST,
        &url("/api/v1/products"),
        Some(json!({"name": "web"})),
    )
    .await;
    let (s, e) = send(
        Method::PATCH,
        &url("/api/v1/products/web/environments/development"),
        Some(json!({"route": {"host": "web.test"}})),
    )
    .await;
    assert_eq!(s, 200, "{e}");
    let mut ids = Vec::new();
    for v in ["1.0.0", "2.0.0", "3.0.0", "4.0.0"] {
        let (_, r) = send(
            Method::POST,
            &url("/api/v1/releases"),
            Some(json!({"product_name": "web", "version": v})),
        )
        .await;
        ids.push(r["id"].as_i64().unwrap());
    }
    let deploy = |i: usize, body: Value| {
        let u = url(&format!("/api/v1/releases/{}/deploy", ids[i]));
        async move {
            let (s, d) = send(Method::POST, &u, Some(body)).await;
            assert_eq!(s, 202, "{d}");
            d["id"].as_str().unwrap().to_string()
        }
    };
    let (s, e) = send(
        Method::POST,
        &url(&format!("/api/v1/releases/{}/deploy", ids[0])),
        Some(json!({"environment": "development", "strategy": "canary", "endpoints": [one]})),
    )
    .await;
    assert_eq!(
        (s, e["details"]["field"].as_str()),
        (400, Some("strategy")),
        "the first is direct: {e}"
    );
    let first = deploy(0, json!({"environment": "development", "endpoints": [one]})).await;
    settles(api, &first, &["succeeded"]).await;
    assert_eq!(served(proxy, "web.test").await, "one");

    // Canary: half the traffic for a while, then all.
    let plan =
        json!({"steps": [{"set_weight": 50}, {"pause": {"duration": "3s"}}, {"set_weight": 100}]});
    let canary = deploy(
        1,
        json!({"environment": "development", "strategy": "canary", "endpoints": [two], "rollout": plan}),
    )
    .await;
    let d = at_percent(api, &canary, 50).await;
    assert_eq!(d["status"], "in_progress");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        seen.insert(served(proxy, "web.test").await);
    }
    assert_eq!(
        seen,
        ["one".to_string(), "two".to_string()].into(),
        "a split"
    );
    settles(api, &canary, &["succeeded"]).await;
    assert_eq!(served(proxy, "web.test").await, "two");

    // Blue/green: everything at once, then a bake, then promoted.
    let blue_green = deploy(
        2,
        json!({"environment": "development", "strategy": "blue_green", "endpoints": [three], "bake_time": "2s"}),
    )
    .await;
    let d = settles(api, &blue_green, &["succeeded", "failed"]).await;
    assert_eq!(
        (d["status"].as_str(), d["strategy"].as_str()),
        (Some("succeeded"), Some("blue_green"))
    );
    assert_eq!(served(proxy, "web.test").await, "three");

    // 4.0.0 is stopped by a person while in progress: 3.0.0 keeps running.
    let plan = json!({"steps": [{"set_weight": 10}, {"pause": {}}, {"set_weight": 100}]});
    let stopped = deploy(
        3,
        json!({"environment": "development", "strategy": "canary", "endpoints": [one], "rollout": plan}),
    )
    .await;
    at_percent(api, &stopped, 10).await;
    let (s, d) = send(
        Method::POST,
        &url(&format!("/api/v1/deployments/{stopped}/rollback")),
        Some(json!({"reason": "wrong build"})),
    )
    .await;
    assert_eq!(s, 202, "{d}");
    let d = settles(api, &stopped, &["rolled_back"]).await;
    assert_eq!(d["error_message"], "wrong build");
    assert_eq!(served(proxy, "web.test").await, "three");

    // One click undoes 3.0.0 although a later (failed) attempt came after it.
    let (s, e) = send(
        Method::POST,
        &url(&format!("/api/v1/deployments/{canary}/rollback")),
        None,
    )
    .await;
    assert_eq!((s, e["code"].as_str()), (409, Some("NOT_CURRENT")), "{e}");
    let (s, r) = send(
        Method::POST,
        &url(&format!("/api/v1/deployments/{blue_green}/rollback")),
        None,
    )
    .await;
    assert_eq!(s, 202, "{r}");
    assert_eq!(
        (r["version"].as_str(), r["previous_version"].as_str()),
        (Some("2.0.0"), Some("3.0.0"))
    );
    settles(api, r["id"].as_str().unwrap(), &["succeeded"]).await;
    assert_eq!(served(proxy, "web.test").await, "two");
}
