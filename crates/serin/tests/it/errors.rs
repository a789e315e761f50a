//! Every kind of bad input gets its own code in seed 004's error body, and changes nothing.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Server, get, patch, post, send};

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["code"], want_code, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert!(body["details"].is_object(), "{body}");
    let text = body.to_string().to_lowercase();
    for leak in [
        "sqlite",
        "sql ",
        "constraint",
        "panicked",
        "rusqlite",
        "postgres",
    ] {
        assert!(!text.contains(leak), "internal text leaked: {body}");
    }
}

async fn raw(url: &str, content_type: Option<&str>, body: &'static str) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(url)
        .bearer_auth(crate::harness::ADMIN)
        .body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn each_failure_has_its_code() {
    let server = Server::sqlite();
    let u = |p: &str| format!("{}{p}", server.url);
    let json_ct = Some("application/json");

    let (s, b) = raw(&u("/product"), json_ct, "{\"name\": ").await;
    assert_error(s, &b, 400, "MALFORMED_JSON");
    let (s, b) = raw(&u("/product"), None, "{\"name\": \"x\"}").await;
    assert_error(s, &b, 415, "UNSUPPORTED_MEDIA_TYPE");
    let (s, b) = post(&u("/product"), json!({"name": 7})).await;
    assert_error(s, &b, 422, "INVALID_FIELD_TYPE");
    assert_eq!(b["details"]["field"], "name");
    let (s, b) = post(&u("/product"), json!({"description": "no name"})).await;
    assert_error(s, &b, 422, "MISSING_FIELD");
    assert_eq!(b["details"]["field"], "name");
    let (s, b) = post(&u("/product"), json!({"name": "x", "colour": "red"})).await;
    assert_error(s, &b, 422, "UNKNOWN_FIELD");
    let (s, b) = post(&u("/product"), json!({"name": "has space"})).await;
    assert_error(s, &b, 400, "VALIDATION_FAILED");
    assert_eq!(b["details"]["field"], "name");

    assert_eq!(post(&u("/product"), json!({"name": "web"})).await.0, 201);
    let (s, b) = post(&u("/product"), json!({"name": "web"})).await;
    assert_error(s, &b, 409, "PRODUCT_EXISTS");
    let (s, b) = post(
        &u("/release"),
        json!({"product_name": "ghost", "version": "1.0.0"}),
    )
    .await;
    assert_error(s, &b, 404, "PRODUCT_NOT_FOUND");
    assert_eq!(b["details"]["field"], "product_name");
    let (s, r) = post(
        &u("/release"),
        json!({"product_name": "web", "version": "1.0.0"}),
    )
    .await;
    assert_eq!(s, 201);
    let (s, b) = post(
        &u("/release"),
        json!({"product_name": "web", "version": "1.0.0"}),
    )
    .await;
    assert_error(s, &b, 409, "RELEASE_EXISTS");
    let (s, b) = post(
        &u("/release"),
        json!({"product_name": "web", "version": "1 0"}),
    )
    .await;
    assert_error(s, &b, 400, "VALIDATION_FAILED");

    let (s, b) = get(&u("/release/ghost/latest")).await;
    assert_error(s, &b, 404, "PRODUCT_NOT_FOUND");
    let (s, b) = get(&u("/release/web/latest")).await;
    assert_error(s, &b, 404, "NO_STABLE_RELEASE");

    let id = r["id"].as_i64().unwrap();
    let (s, b) = patch(
        &u(&format!("/api/v1/releases/{id}")),
        json!({"status": "released"}),
    )
    .await;
    assert_error(s, &b, 409, "INVALID_STATUS_TRANSITION");
    assert_eq!(b["details"]["from"], "draft");
    let (_, still) = get(&u(&format!("/api/v1/releases/{id}"))).await;
    assert_eq!(still["status"], "draft", "a refused change changes nothing");
    let (s, b) = patch(
        &u(&format!("/api/v1/releases/{id}")),
        json!({"status": "shipped"}),
    )
    .await;
    assert_error(s, &b, 400, "VALIDATION_FAILED");
    let (s, b) = patch(&u(&format!("/api/v1/releases/{id}")), json!({})).await;
    assert_error(s, &b, 400, "VALIDATION_FAILED");
    let (s, b) = get(&u("/api/v1/releases/999999")).await;
    assert_error(s, &b, 404, "RELEASE_NOT_FOUND");
    let (s, b) = get(&u("/api/v1/releases/not-a-number")).await;
    assert_error(s, &b, 400, "INVALID_PARAMETER");
    let (s, b) = get(&u(&format!("/api/v1/releases/{id}/signals?page_size=0"))).await;
    assert_error(s, &b, 400, "VALIDATION_FAILED");
    let (s, b) = get(&u(&format!("/api/v1/releases/{id}/signals?lane=blue"))).await;
    assert_error(s, &b, 400, "INVALID_PARAMETER");

    let (s, b) = get(&u("/nowhere")).await;
    assert_error(s, &b, 404, "ROUTE_NOT_FOUND");
    let (s, b) = send(Method::DELETE, &u("/api/v1/products"), None).await;
    assert_error(s, &b, 405, "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn signals_are_checked_and_batches_are_all_or_nothing() {
    let server = Server::sqlite();
    let u = |p: &str| format!("{}{p}", server.url);
    post(&u("/product"), json!({"name": "web"})).await;
    let (_, r) = post(
        &u("/release"),
        json!({"product_name": "web", "version": "2.0.0"}),
    )
    .await;
    let good = json!({"product_name": "web", "version": "2.0.0", "lane": "stable", "name": "x", "value": 1});

    let (s, b) = post(&u("/signal"), json!({"product_name": "web", "version": "9.9.9", "lane": "stable", "name": "x", "value": 1})).await;
    assert_error(s, &b, 404, "RELEASE_NOT_FOUND");
    let (s, b) = post(
        &u("/signal"),
        json!({"product_name": "web", "version": "2.0.0", "lane": "blue", "name": "x", "value": 1}),
    )
    .await;
    assert_error(s, &b, 400, "VALIDATION_FAILED");
    assert_eq!(b["details"]["field"], "lane");
    let (s, b) = post(&u("/signal"), json!({"product_name": "web", "version": "2.0.0", "lane": "canary", "name": "x", "kind": "outcome", "value": 0.5})).await;
    assert_error(s, &b, 400, "VALIDATION_FAILED");
    assert_eq!(b["details"]["field"], "value");
    let (s, b) = post(&u("/signal"), json!({"product_name": "web", "version": "2.0.0", "lane": "canary", "name": "x", "value": "high"})).await;
    assert_error(s, &b, 422, "INVALID_FIELD_TYPE");

    let mut batch = vec![good.clone(); 20];
    batch.push(json!({"product_name": "web", "version": "2.0.0", "lane": "purple", "name": "x", "value": 1}));
    let (s, b) = post(&u("/api/v1/signals/batch"), json!({"signals": batch})).await;
    assert_error(s, &b, 400, "VALIDATION_FAILED");
    assert_eq!(b["details"]["field"], "signals[20].lane");
    let mut batch = vec![good.clone(); 20];
    batch.push(json!({"product_name": "web", "version": "0.0.1", "lane": "stable", "name": "x", "value": 1}));
    let (s, b) = post(&u("/api/v1/signals/batch"), json!({"signals": batch})).await;
    assert_error(s, &b, 404, "RELEASE_NOT_FOUND");
    assert_eq!(b["details"]["field"], "signals[20].version");
    let (s, b) = post(&u("/api/v1/signals/batch"), json!({"signals": []})).await;
    assert_error(s, &b, 400, "VALIDATION_FAILED");
    let (_, list) = get(&u(&format!("/api/v1/releases/{}/signals", r["id"]))).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "nothing from a refused batch was stored"
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let server = Server::sqlite();
    let big = "x".repeat(serin_server_limit() + 1);
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/signals/batch", server.url))
        .bearer_auth(crate::harness::ADMIN)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let b: Value = resp.json().await.unwrap();
    assert_error(413, &b, 413, "PAYLOAD_TOO_LARGE");
}

fn serin_server_limit() -> usize {
    32 * 1024 * 1024
}

/// Input that one database would store and the other refuse (NUL, instants out of
/// range) is refused up front with the same 4xx on both.
async fn hostile_values(base: &str) {
    let u = |p: &str| format!("{base}{p}");
    let (s, b) = post(
        &u("/product"),
        json!({"name": "p", "description": "nul\u{0}byte"}),
    )
    .await;
    assert_error(s, &b, 400, "VALIDATION_FAILED");
    assert_eq!(post(&u("/product"), json!({"name": "p"})).await.0, 201);
    let (s, b) = get(&u("/release/a%00b/latest")).await;
    assert_error(s, &b, 404, "PRODUCT_NOT_FOUND");
    let (_, r) = post(
        &u("/release"),
        json!({"product_name": "p", "version": "1.0.0"}),
    )
    .await;
    let sig = |extra: Value| {
        let mut v = json!({"product_name": "p", "version": "1.0.0", "lane": "stable", "name": "x", "value": 1});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    let (s, b) = post(
        &u("/signal"),
        sig(json!({"timestamp": "-5000-01-01T00:00:00Z"})),
    )
    .await;
    assert_error(s, &b, 400, "VALIDATION_FAILED");
    assert_eq!(b["details"]["field"], "timestamp");
    let (s, b) = post(&u("/signal"), sig(json!({"tags": {"k": "v\u{0}"}}))).await;
    assert_error(s, &b, 400, "VALIDATION_FAILED");
    let (s, b) = get(&u(&format!(
        "/api/v1/releases/{}/signals?since=-5000-01-01T00:00:00Z",
        r["id"]
    )))
    .await;
    assert_error(s, &b, 400, "VALIDATION_FAILED");
    let (s, b) = get(&u(&format!(
        "/api/v1/releases/{}/signals?name=%00",
        r["id"]
    )))
    .await;
    assert_error(s, &b, 400, "VALIDATION_FAILED");
}

#[tokio::test]
async fn hostile_values_on_sqlite() {
    let server = Server::sqlite();
    hostile_values(&server.url).await;
}

#[tokio::test]
async fn hostile_values_on_postgres() {
    let Some(url) = crate::harness::postgres_schema("hostile").await else {
        return;
    };
    let server = Server::start(&url, tempfile::tempdir().unwrap());
    hostile_values(&server.url).await;
}
