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

/// Each documented alias is really routed (not a 404 for an unknown route, not a
/// 405), and the document describes it.
#[tokio::test]
async fn every_seed_alias_is_routed_and_documented() {
    use tower::ServiceExt;
    let doc: serde_json::Value =
        serde_json::from_str(&serin_server::openapi::document_json()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
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
