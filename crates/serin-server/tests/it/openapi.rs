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

#[test]
fn every_seed_alias_is_documented_like_its_canonical_route() {
    let doc: serde_json::Value =
        serde_json::from_str(&serin_server::openapi::document_json()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for (alias, canonical, _) in serin_server::openapi::ALIASES {
        let a = &doc["paths"][alias];
        let c = &doc["paths"][canonical];
        assert!(
            a.is_object() && c.is_object(),
            "{alias} and {canonical} both documented"
        );
        let method = a.as_object().unwrap().keys().next().unwrap().clone();
        assert_eq!(
            a[&method]["responses"], c[&method]["responses"],
            "{alias} answers like {canonical}"
        );
    }
}
