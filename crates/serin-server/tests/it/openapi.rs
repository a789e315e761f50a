//! The OpenAPI document is a golden file: `docs/openapi.json` must equal what the
//! code generates. After an intended API change, regenerate it with
//! `UPDATE_GOLDEN=1 cargo test -p serin-server` and review the diff.

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");

#[test]
fn openapi_matches_golden_file() {
    let generated = serin_server::openapi::document_json();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(GOLDEN, &generated).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(GOLDEN).unwrap_or_default();
    assert!(
        golden == generated,
        "docs/openapi.json differs from the generated document; if the change is intended, run `UPDATE_GOLDEN=1 cargo test -p serin-server` and commit the file"
    );
}

/// The whole application over a fresh SQLite file (kept while the dir lives).
async fn app() -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let store = serin_store::Store::connect(&url, &Default::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let app = serin_server::app(serin_server::AppState::new(
        store,
        serin_server::ServerConfig::default(),
    ));
    (app, dir)
}

/// Each documented alias is really routed (not a 404 for an unknown route, not a
/// 405), and the document describes it.
#[tokio::test]
async fn every_alias_is_routed_and_documented() {
    use tower::ServiceExt;
    let doc: serde_json::Value =
        serde_json::from_str(&serin_server::openapi::document_json()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let (app, _dir) = app().await;
    for (alias, canonical, method) in serin_server::openapi::ALIASES {
        assert!(
            doc["paths"][alias].is_object() && doc["paths"][canonical].is_object(),
            "{alias}"
        );
        let method = method.to_uppercase();
        let path = alias.replace("{product_name}", "nope");
        let req = axum::http::Request::builder()
            .method(method.as_str())
            .uri(&path)
            .header("content-type", "application/json")
            .body(axum::body::Body::from("{}"))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(
            status != 405 && body["code"] != "ROUTE_NOT_FOUND",
            "{method} {alias} is routed: got {status} {body}"
        );
    }
}

/// Operation ids are unique, and query parameters are declared as query parameters.
#[test]
fn operations_are_well_formed() {
    let doc: serde_json::Value =
        serde_json::from_str(&serin_server::openapi::document_json()).unwrap();
    let mut ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap_or_default().to_string();
            assert!(
                ids.insert(id.clone()),
                "operationId `{id}` repeats ({method} {path})"
            );
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                let in_path = path.contains(&format!("{{{name}}}"));
                assert_eq!(
                    p["in"],
                    if in_path { "path" } else { "query" },
                    "{method} {path} parameter {name}"
                );
                if !in_path {
                    let required = path == "/api/v1/canary/route" && name == "queue";
                    assert_eq!(
                        p["required"].as_bool().unwrap_or(false),
                        required,
                        "{method} {path}: query parameter {name}"
                    );
                }
            }
        }
    }
}

/// `/docs` and `/redoc` are served without credentials, from the binary, and
/// load nothing from elsewhere; the explorer's script parses (checked by Node,
/// which CI has; skipped with a message elsewhere when it is missing).
#[tokio::test]
async fn the_reference_and_the_explorer_are_served_from_the_binary() {
    use tower::ServiceExt;
    let (app, dir) = app().await;
    let mut pages = Vec::new();
    for (path, kind) in [
        ("/docs", "text/html"),
        ("/redoc", "text/html"),
        ("/docs/assets/explorer.js", "text/javascript"),
        ("/docs/assets/docs.css", "text/css"),
    ] {
        let req = axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with(kind), "{path}: {ct}");
        let body = axum::body::to_bytes(resp.into_body(), 8 << 20)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        for outside in [
            "src=\"http",
            "href=\"http",
            "src=\"//",
            "href=\"//",
            "@import",
        ] {
            assert!(!text.contains(outside), "{path} loads {outside}…");
        }
        pages.push(text);
    }
    assert!(pages[1].contains("POST</span> <code>/api/v1/releases/{id}/deploy</code>"));
    let req = axum::http::Request::get("/docs/assets/nope.js")
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(app.clone().oneshot(req).await.unwrap().status(), 404);
    let script = dir.path().join("explorer.js");
    std::fs::write(&script, &pages[2]).unwrap();
    match std::process::Command::new("node")
        .arg("--check")
        .arg(&script)
        .output()
    {
        Ok(o) => assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr)),
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping the explorer's syntax check: node: {e}")
        }
        Err(e) => panic!("CI needs node to check the explorer: {e}"),
    }
}
