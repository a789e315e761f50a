//! The README's quickstart over HTTP, on SQLite and PostgreSQL; restarts; shutdown.

use serde_json::json;

use crate::harness::{Server, get, patch, post, postgres_schema};

/// Create, approve, release, ask for the latest stable, send signals.
async fn quickstart(base: &str) {
    let (s, p) = post(
        &format!("{base}/product"),
        json!({"name": "web", "description": "storefront"}),
    )
    .await;
    assert_eq!(s, 201, "{p}");
    assert_eq!(p["name"], "web");
    let (s, r1) = post(
        &format!("{base}/release"),
        json!({"product_name": "web", "version": "1.9.0"}),
    )
    .await;
    assert_eq!((s, r1["status"].as_str()), (201, Some("draft")), "{r1}");
    let (s, r2) = post(
        &format!("{base}/api/v1/products/web/releases"),
        json!({"version": "1.10.0", "description": "notes"}),
    )
    .await;
    assert_eq!(s, 201, "{r2}");
    for id in [&r1["id"], &r2["id"]] {
        for status in ["approved", "released"] {
            let (s, body) = patch(
                &format!("{base}/api/v1/releases/{id}"),
                json!({"status": status}),
            )
            .await;
            assert_eq!((s, body["status"].as_str()), (200, Some(status)), "{body}");
        }
    }
    let (s, latest) = get(&format!("{base}/release/web/latest")).await;
    assert_eq!(
        (s, latest["version"].as_str()),
        (200, Some("1.10.0")),
        "semver, not release order: {latest}"
    );
    let (_, same) = get(&format!("{base}/api/v1/products/web/releases/latest")).await;
    assert_eq!(same, latest);
    let (s, sig) = post(
        &format!("{base}/signal"),
        json!({"product_name": "web", "version": "1.10.0", "lane": "canary", "name": "http.request", "kind": "outcome", "value": 1, "tags": {"region": "eu"}}),
    )
    .await;
    assert_eq!(
        (s, sig["lane"].as_str(), sig["release_id"].clone()),
        (201, Some("canary"), r2["id"].clone()),
        "{sig}"
    );
    let batch: Vec<_> = (0..300)
        .map(|i| json!({"release_id": r2["id"], "lane": if i % 3 == 0 { "canary" } else { "stable" }, "name": "latency", "kind": "latency", "value": i}))
        .collect();
    let (s, acc) = post(
        &format!("{base}/api/v1/signals/batch"),
        json!({"signals": batch}),
    )
    .await;
    assert_eq!((s, acc["accepted"].as_u64()), (201, Some(300)), "{acc}");
    let (s, list) = get(&format!(
        "{base}/api/v1/releases/{}/signals?lane=canary&page_size=100",
        r2["id"]
    ))
    .await;
    assert_eq!(s, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 100);
    assert_eq!(list["pagination"]["total_items"], 101);
    assert_eq!(list["pagination"]["has_next"], true);
    let (s, got) = get(&format!(
        "{base}/api/v1/releases/{}/signals?page_size=1",
        r2["id"]
    ))
    .await;
    assert_eq!(s, 200);
    assert_eq!(got["items"].as_array().unwrap().len(), 1);
    // Rolling back the stable release hands "stable" to the next one.
    let (s, _) = patch(
        &format!("{base}/api/v1/releases/{}", r2["id"]),
        json!({"status": "rolled_back"}),
    )
    .await;
    assert_eq!(s, 200);
    let (_, latest) = get(&format!("{base}/release/web/latest")).await;
    assert_eq!(latest["version"], "1.9.0");
    let (s, ready) = get(&format!("{base}/api/v1/ready")).await;
    assert_eq!(s, 200, "{ready}");
}

#[tokio::test]
async fn quickstart_on_sqlite() {
    let server = Server::sqlite();
    quickstart(&server.url).await;
}

#[tokio::test]
async fn quickstart_on_postgres() {
    let Some(url) = postgres_schema("quickstart").await else {
        return;
    };
    let server = Server::start(&url, tempfile::tempdir().unwrap());
    quickstart(&server.url).await;
    let (_, ready) = get(&format!("{}/api/v1/ready", server.url)).await;
    assert_eq!(ready["database"], "postgres");
}

#[tokio::test]
async fn sigterm_finishes_the_request_in_flight_and_data_survives_a_restart() {
    use std::io::{Read, Write};
    let mut first = Server::sqlite();
    let (s, _) = post(&format!("{}/product", first.url), json!({"name": "keep"})).await;
    assert_eq!(s, 201);
    let (_, r) = post(
        &format!("{}/release", first.url),
        json!({"product_name": "keep", "version": "1.0.0"}),
    )
    .await;
    let signals: Vec<_> = (0..2000)
        .map(|i| json!({"release_id": r["id"], "lane": "canary", "name": "x", "value": i}))
        .collect();
    let body = serde_json::to_vec(&json!({ "signals": signals })).unwrap();
    // Send the headers and half the body, then SIGTERM, then the rest: the request
    // is provably in flight when the signal arrives.
    let addr = first.url.trim_start_matches("http://").to_string();
    let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
    let head = format!(
        "POST /api/v1/signals/batch HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        crate::harness::ADMIN,
        body.len()
    );
    tcp.write_all(head.as_bytes()).unwrap();
    tcp.write_all(&body[..body.len() / 2]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &first.child.id().to_string()])
        .status();
    std::thread::sleep(std::time::Duration::from_millis(200));
    tcp.write_all(&body[body.len() / 2..]).unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 201"),
        "the in-flight batch completes: {answer}"
    );
    assert!(answer.contains("\"accepted\":2000"), "{answer}");
    assert!(first.terminate(), "serin exits 0 after draining");

    let db = format!("sqlite://{}/serin.db", first.dir.path().display());
    let dir = std::mem::replace(&mut first.dir, tempfile::tempdir().unwrap());
    let second = Server::start(&db, dir);
    let (s, p) = get(&format!("{}/api/v1/products/keep", second.url)).await;
    assert_eq!((s, p["name"].as_str()), (200, Some("keep")));
    let (_, list) = get(&format!(
        "{}/api/v1/releases/{}/signals?page_size=100&page=20",
        second.url, r["id"]
    ))
    .await;
    assert_eq!(
        list["pagination"]["total_items"], 2000,
        "everything acknowledged is still there"
    );
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        100,
        "the 20th page of 100 is full"
    );
}

#[tokio::test]
async fn openapi_is_served_and_matches_the_golden_file() {
    let server = Server::sqlite();
    let body = reqwest::get(format!("{}/openapi.json", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let golden = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/openapi.json"
    ))
    .unwrap();
    assert!(
        body == golden,
        "docs/openapi.json is stale: run UPDATE_GOLDEN=1 cargo test -p serin-server"
    );
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/product",
        "/release",
        "/release/{product_name}/latest",
        "/signal",
        "/api/v1/signals/batch",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
}

/// SQLite runs one replica: a second `serin up` on the same file refuses to
/// start and says why, and a busy port fails before the database is touched.
#[test]
fn a_second_serin_up_on_one_sqlite_file_refuses_to_start() {
    let mut first = Server::sqlite();
    let url = format!("sqlite://{}/serin.db", first.dir.path().display());
    let second = std::process::Command::new(crate::harness::BIN)
        .args(["up", "--listen", "127.0.0.1:0", "--database-url", &url])
        .env("SERIN_LOG", "warn")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{err}");
    assert!(
        err.contains("in use by another `serin up`")
            && err.contains(&format!("pid {}", first.child.id())),
        "{err}"
    );
    // The first is untouched.
    let (st, _) = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(get(&format!("{}/api/v1/ready", first.url)));
    assert_eq!(st, 200);
    // A busy port, the API's or the proxy's: no database file appears.
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("never.db");
    let db = format!("sqlite://{}", fresh.display());
    let busy = first.url.trim_start_matches("http://").to_string();
    for (ports, says) in [
        (
            ["--listen", busy.as_str(), "--proxy-listen", "127.0.0.1:0"],
            "cannot listen on",
        ),
        (
            ["--listen", "127.0.0.1:0", "--proxy-listen", busy.as_str()],
            "for the proxy",
        ),
    ] {
        let out = std::process::Command::new(crate::harness::BIN)
            .arg("up")
            .args(ports)
            .args(["--database-url", &db])
            .env("SERIN_LOG", "warn")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{err}");
        assert!(
            !fresh.exists(),
            "the database was created before the port failed ({says})"
        );
    }
    assert!(first.terminate());
}
