//! The OpenAPI 3.1 document, generated from the handlers' annotations.
//!
//! Seed 000's routes are served by the same handlers as their canonical
//! `/api/v1` forms; [`ALIASES`] lists them, and the document describes each alias
//! with a copy of its canonical operation. A golden copy lives in
//! `docs/openapi.json`; a test fails when the two differ.

use utoipa::OpenApi;
use utoipa::openapi::PathItem;
use utoipa::openapi::path::Operation;

use crate::error::ErrorBody;
use crate::routes::{
    admin_canary, api_keys, audit, canary, deployments, environments, health, products, proxies,
    releases, rollouts, signals, users, workers,
};

/// Seed-compatible routes: (alias path, canonical path, lower-case method).
pub const ALIASES: &[(&str, &str, &str)] = &[
    ("/product", "/api/v1/products", "post"),
    ("/release", "/api/v1/releases", "post"),
    (
        "/release/{product_name}/latest",
        "/api/v1/products/{name}/releases/latest",
        "get",
    ),
    ("/signal", "/api/v1/signals", "post"),
];

#[derive(OpenApi)]
#[openapi(
    info(title = "Serin", description = "Canary releases: products, releases, signals, canary deployments, workers. Every route but health, readiness and this document needs an API key (`Authorization: Bearer <key>` or `X-API-Key: <key>`)."),
    paths(
        health::health, health::ready,
        products::create, products::list, products::show,
        releases::create, releases::create_for_product, releases::list, releases::latest,
        releases::show, releases::update, releases::list_all, releases::delete_release,
        releases::deploy, releases::decide, releases::approvals, releases::notes, releases::publish_notes,
        environments::list, environments::show, environments::create, environments::update,
        deployments::list, deployments::show, deployments::rollback,
        signals::record, signals::record_batch, signals::list,
        canary::list, canary::create, canary::show, canary::set_percentage, canary::promote,
        canary::rollback, canary::pause, canary::resume, canary::delete, canary::health,
        canary::metrics_of, canary::seconds, canary::events, canary::record_signals, canary::profiles, canary::route,
        workers::list, workers::register, workers::show, workers::set_status, workers::heartbeat,
        admin_canary::start, admin_canary::scale, admin_canary::stop, admin_canary::status,
        admin_canary::metrics_of, admin_canary::webhook,
        audit::list,
        api_keys::create, api_keys::list, api_keys::revoke,
        proxies::routes, proxies::report, proxies::list, proxies::set_routing,
        rollouts::show, rollouts::continue_, rollouts::abort, rollouts::deliveries, rollouts::create_group, rollouts::show_group,
        users::login, users::logout, users::me, users::create_user, users::list_users, users::show_user, users::update_user,
    ),
    components(schemas(ErrorBody, serin_core::event::StreamEvent)),
    modifiers(&Security),
    security(("bearer" = []), ("api_key" = [])),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "products", description = "Deployable things"),
        (name = "releases", description = "Versions of products and their life cycle"),
        (name = "signals", description = "Observations about the lanes of a release"),
        (name = "canary", description = "Canary deployments (seed 004)"),
        (name = "rollouts", description = "Rollout plans driven by the controller, and multi-target groups"),
        (name = "workers", description = "Job workers and their lanes (seed 004)"),
        (name = "admin", description = "Operator endpoints on the default target (seed 002)"),
        (name = "audit", description = "The audit log (seed 003)"),
        (name = "environments", description = "Where a product's releases run, in promotion order, with approval policies (seed 003)"),
        (name = "deployments", description = "Releases entering environments, with seed 003's statuses"),
        (name = "auth", description = "API keys, users and sessions"),
        (name = "proxy", description = "Route sets and lane metrics for `serin proxy` instances"),
    )
)]
struct ApiDoc;

/// Declares the two ways to present a key.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The whole document, aliases included.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    // Handlers in different modules share names (`list`, `create`); an operation id
    // must be unique in the document, so each is prefixed with its tag.
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            if let (Some(tag), Some(id)) = (
                op.tags.as_ref().and_then(|t| t.first()),
                op.operation_id.as_ref(),
            ) {
                op.operation_id = Some(format!("{tag}_{id}"));
            }
        }
    }
    for (alias, canonical, method) in ALIASES {
        let Some(item) = doc.paths.paths.get(*canonical) else {
            continue;
        };
        let Some(op) = operation(item, method) else {
            continue;
        };
        let mut op = op.clone();
        op.operation_id = op.operation_id.map(|id| format!("{id}_seed"));
        op.summary = Some(format!("Seed 000 form of `{canonical}`"));
        if let Some(params) = &mut op.parameters {
            for p in params.iter_mut() {
                if p.name == "name" && alias.contains("{product_name}") {
                    p.name = "product_name".into();
                }
            }
        }
        let entry = doc.paths.paths.entry(alias.to_string()).or_default();
        set_operation(entry, method, op);
    }
    doc
}

fn operation<'a>(item: &'a PathItem, method: &str) -> Option<&'a Operation> {
    match method {
        "get" => item.get.as_ref(),
        "post" => item.post.as_ref(),
        "patch" => item.patch.as_ref(),
        _ => None,
    }
}

fn set_operation(item: &mut PathItem, method: &str, op: Operation) {
    match method {
        "get" => item.get = Some(op),
        "post" => item.post = Some(op),
        "patch" => item.patch = Some(op),
        _ => {}
    }
}

/// The document as pretty JSON with a trailing newline, as the golden file holds it.
pub fn document_json() -> String {
    let mut s = document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}
