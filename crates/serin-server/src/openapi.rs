//! The OpenAPI 3.1 document, generated from the handlers' annotations.
//!
//! The original CanaryPy routes are served by the same handlers as their canonical
//! `/api/v1` forms; [`ALIASES`] lists them, and the document describes each alias
//! with a copy of its canonical operation. A golden copy lives in
//! `docs/openapi.json`; a test fails when the two differ.

use utoipa::OpenApi;
use utoipa::openapi::PathItem;
use utoipa::openapi::path::Operation;

use crate::error::ErrorBody;
use crate::routes::{
    admin_canary, api_keys, audit, canary, cluster, deployments, environments, health,
    integrations, products, proxies, releases, rollouts, secrets, signals, users, workers,
};

/// The original CanaryPy routes: (alias path, canonical path, lower-case method).
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
        health::health, health::ready, cluster::show,
        integrations::show, integrations::flagger,
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
        secrets::list, secrets::set, secrets::remove,
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
        (name = "canary", description = "Canary deployments"),
        (name = "rollouts", description = "Rollout plans driven by the controller, and multi-target groups"),
        (name = "workers", description = "Job workers and their lanes"),
        (name = "admin", description = "Operator endpoints on the default target"),
        (name = "audit", description = "The audit log"),
        (name = "environments", description = "Where a product's releases run, in promotion order, with approval policies"),
        (name = "deployments", description = "Releases entering environments, and their statuses"),
        (name = "auth", description = "API keys, users and sessions"),
        (name = "secrets", description = "Values plans name (`secret:NAME`) and nobody reads back; admins only"),
        (name = "proxy", description = "Route sets and lane metrics for `serin proxy` instances"),
        (name = "integrations", description = "Serin as the judge of Argo Rollouts (`web` metric provider) and Flagger (webhooks)"),
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
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in [
            (axum::http::Method::GET, &mut item.get),
            (axum::http::Method::POST, &mut item.post),
            (axum::http::Method::PUT, &mut item.put),
            (axum::http::Method::PATCH, &mut item.patch),
            (axum::http::Method::DELETE, &mut item.delete),
        ] {
            if let Some(op) = op {
                add_common_responses(path, &method, op);
                bound_paging(op);
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
        op.operation_id = op.operation_id.map(|id| format!("{id}_canarypy"));
        op.summary = Some(format!(
            "Alias of `{canonical}` (the original CanaryPy route)"
        ));
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

/// The answers every operation of a kind can give, whatever its handler:
/// the guard's (401, 403, 429) on every operation that needs a credential,
/// and the extractors' on every operation that takes a body or parameters
/// (see `crate::extract`). A handler's own description of a status wins.
fn add_common_responses(path: &str, method: &axum::http::Method, op: &mut Operation) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let mut add = |status: &str, description: &str| {
        if op.responses.responses.contains_key(status) {
            return;
        }
        let response = ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        op.responses
            .responses
            .insert(status.to_string(), response.into());
    };
    if crate::auth::required_role(method, path).is_some() {
        add(
            "401",
            "`UNAUTHORIZED`: no credential, or one that is unknown, revoked or expired",
        );
        add(
            "403",
            "`FORBIDDEN`: the credential's role is below what this operation needs",
        );
        add(
            "429",
            "`RATE_LIMITED`: the key's or user's rate limit, or too many failed authentications from this address; see `Retry-After`",
        );
    }
    let has_parameters = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let has_body = op.request_body.is_some();
    if has_body {
        add(
            "400",
            "`MALFORMED_JSON` or `VALIDATION_FAILED`: the body is not JSON, or a value is outside what its field allows",
        );
        add(
            "413",
            "`PAYLOAD_TOO_LARGE`: the body is over the size limit",
        );
        add(
            "415",
            "`UNSUPPORTED_MEDIA_TYPE`: the body is not `application/json`",
        );
        if !(path.starts_with("/api/v1/canary") || path.starts_with("/admin/canary")) {
            add(
                "422",
                "`MISSING_FIELD`, `INVALID_FIELD_TYPE` or `UNKNOWN_FIELD`: the body doesn't have the operation's shape",
            );
        }
    }
    if has_parameters {
        add(
            "400",
            "`INVALID_PARAMETER`: a path or query parameter can't be read",
        );
    }
}

/// Every list pages the same way (`serin_core::page`): `page` from 1,
/// `page_size` from 1 to 100; the document says so on every operation that
/// takes them, whichever struct declares them.
fn bound_paging(op: &mut Operation) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::Schema;
    for p in op.parameters.iter_mut().flatten() {
        let bounds = match p.name.as_str() {
            "page" => (1, None),
            "page_size" => (1, Some(100)),
            _ => continue,
        };
        if let Some(RefOr::T(Schema::Object(o))) = &mut p.schema {
            o.minimum = Some(utoipa::Number::UInt(bounds.0));
            o.maximum = bounds.1.map(utoipa::Number::UInt);
        }
    }
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
