//! What proxies talk to: their routes (long-polled, versioned), their lane
//! metrics coming home, the list of proxies, a deployment's routing changes, and
//! the Prometheus page.
//!
//! A remote `serin proxy` asks `GET /api/v1/proxy/routes?version=V&wait=30s`:
//! the answer comes at once when the current version differs from `V`, otherwise
//! when it changes or after `wait` (then with the same version, which the proxy
//! takes as "nothing new"). Each poll and each metrics report records the proxy's
//! last contact, which `GET /api/v1/proxies` lists.

use serin_app::App;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serin_core::canary::{Deployment, RoutingChange};
use serin_core::duration::GoDuration;
use serin_core::traffic::proxy::{MetricsReport, ProxyInfo, RouteSet};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use serin_app::deployments::change;

/// Longest a route poll may wait.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// A proxy heard from within this is `connected`.
const CONNECTED_WITHIN: Duration = Duration::from_secs(90);

/// The proxy routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/proxy/routes", get(routes))
        .route("/api/v1/proxy/metrics", post(report))
        .route("/api/v1/proxies", get(list))
        .route("/api/v1/canary/deployments/{id}/routing", put(set_routing))
        .route("/metrics", get(prometheus))
        .route("/api/v1/metrics", get(prometheus))
}

/// A route poll.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RoutesQuery {
    /// The version the caller has; the answer waits while it is current.
    pub version: Option<String>,
    /// How long to wait for a change (Go duration, at most 60s; default 0s).
    #[param(value_type = Option<String>)]
    pub wait: Option<GoDuration>,
    /// The polling proxy's instance id (recorded as its last contact).
    pub proxy_id: Option<String>,
    /// The polling proxy's name.
    pub name: Option<String>,
}

fn check_proxy_field(field: &str, v: &str) -> ApiResult<()> {
    if v.is_empty() || v.len() > 200 || v.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            "must be 1 to 200 characters without control characters",
        ));
    }
    Ok(())
}

/// The route set for proxies, long-polled.
#[utoipa::path(get, path = "/api/v1/proxy/routes", tag = "proxy", params(RoutesQuery),
    responses((status = 200, body = RouteSet), (status = 400, body = ErrorBody)))]
#[tracing::instrument(skip(state))]
pub async fn routes(
    State(state): State<App>,
    ApiQuery(q): ApiQuery<RoutesQuery>,
) -> ApiResult<Json<RouteSet>> {
    let wait = q.wait.map(GoDuration::to_std).unwrap_or_default();
    if wait > MAX_WAIT {
        return Err(ApiError::invalid("wait", "must be at most 60s"));
    }
    for (field, v) in [("proxy_id", &q.proxy_id), ("name", &q.name)] {
        if let Some(v) = v {
            check_proxy_field(field, v)?;
        }
    }
    let mut rx = state.routes.subscribe(&state.store, &state.hub).await?;
    // In touch at once, with the version it has, not only once the wait ends.
    if let Some(id) = &q.proxy_id {
        let name = q.name.clone().unwrap_or_default();
        touch(
            &state,
            id.clone(),
            name,
            q.version.clone().unwrap_or_default(),
            None,
        )
        .await;
    }
    if let Some(have) = &q.version {
        let _ = tokio::time::timeout(wait, rx.wait_for(|set| &set.version != have)).await;
    }
    let set = rx.borrow().clone();
    if let Some(id) = q.proxy_id {
        touch(
            &state,
            id,
            q.name.unwrap_or_default(),
            set.version.clone(),
            None,
        )
        .await;
    }
    Ok(Json((*set).clone()))
}

async fn touch(state: &App, id: String, name: String, version: String, dropped: Option<u64>) {
    let info = ProxyInfo {
        id,
        name,
        route_version: version,
        last_contact: state.now(),
        dropped_buckets: dropped.unwrap_or(0),
        kind: "remote".into(),
    };
    if let Err(e) = state.store.touch_proxy(info).await {
        tracing::warn!(error = %e, "cannot record a proxy's contact");
    }
}

/// What a metrics report did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportAccepted {
    /// Buckets stored now.
    pub accepted: u64,
    /// Buckets already stored by an earlier try of the same report.
    pub duplicates: u64,
}

/// A proxy's finished seconds (idempotent per proxy, second, lane and deployment).
#[utoipa::path(post, path = "/api/v1/proxy/metrics", tag = "proxy", request_body = MetricsReport,
    responses((status = 202, body = ReportAccepted), (status = 400, body = ErrorBody)))]
#[tracing::instrument(skip(state, who, report), fields(buckets = report.buckets.len()))]
pub async fn report(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiJson(report): ApiJson<MetricsReport>,
) -> ApiResult<impl IntoResponse> {
    check_proxy_field("proxy_id", &report.proxy_id)?;
    if report.buckets.len() > 100_000 {
        return Err(ApiError::invalid(
            "buckets",
            "at most 100000 buckets per report",
        ));
    }
    let now = state.now();
    for (i, b) in report.buckets.iter().enumerate() {
        b.check(now)
            .map_err(|e| ApiError::invalid(&format!("buckets[{i}]"), &e))?;
    }
    let n = report.buckets.len() as u64;
    let accepted = state
        .store
        .record_lane_buckets(&report.proxy_id, report.buckets)
        .await?;
    let version = state
        .routes
        .current()
        .map(|s| s.version.clone())
        .unwrap_or_default();
    let _ = (who, version);
    // A report says the proxy is alive; its name and route version are
    // what its route polls said (empty here: the store keeps them).
    touch(
        &state,
        report.proxy_id,
        String::new(),
        String::new(),
        Some(report.dropped),
    )
    .await;
    Ok((
        StatusCode::ACCEPTED,
        Json(ReportAccepted {
            accepted,
            duplicates: n - accepted,
        }),
    ))
}

/// A proxy as listed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProxyEntry {
    /// What it reported.
    #[serde(flatten)]
    pub info: ProxyInfo,
    /// Heard from in the last 90 s.
    pub connected: bool,
    /// Its routes are the current ones.
    pub up_to_date: bool,
}

/// The proxy list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProxyList {
    /// The current route version.
    pub route_version: String,
    /// Proxies heard from in the last 24 hours, most recent first; a remote
    /// proxy restarted under the same name is listed once, as its latest
    /// start, unless the earlier one is still connected.
    pub proxies: Vec<ProxyEntry>,
}

/// Proxies with their route version and last contact.
#[utoipa::path(get, path = "/api/v1/proxies", tag = "proxy",
    responses((status = 200, body = ProxyList)))]
#[tracing::instrument(skip(state))]
pub async fn list(State(state): State<App>) -> ApiResult<Json<ProxyList>> {
    let current = state
        .routes
        .subscribe(&state.store, &state.hub)
        .await?
        .borrow()
        .version
        .clone();
    let now = state.now();
    let since = now - chrono::Duration::hours(24);
    // A remote proxy restarted under the same name is one proxy: an earlier
    // incarnation (an older id, later in the list) that is no longer
    // connected is left out. Connected ones all show, whatever their names
    // (several pods may share one), and embedded proxies are each a replica's.
    let mut names = std::collections::HashSet::new();
    let proxies = state
        .store
        .list_proxies(since)
        .await?
        .into_iter()
        .map(|info| ProxyEntry {
            connected: (now - info.last_contact).to_std().unwrap_or_default() <= CONNECTED_WITHIN,
            up_to_date: info.route_version == current,
            info,
        })
        .filter(|p| {
            let first = names.insert(p.info.name.clone());
            p.info.kind != "remote" || p.connected || first
        })
        .collect();
    Ok(Json(ProxyList {
        route_version: current,
        proxies,
    }))
}

/// Changes a deployment's upstreams, request match or traffic rules, each
/// merged key by key onto the current one (keys not given keep their value);
/// proxies pick the change up at once (embedded) or within a second (remote).
#[utoipa::path(put, path = "/api/v1/canary/deployments/{id}/routing", tag = "canary",
    params(("id" = String, Path, description = "the deployment's id")),
    request_body = RoutingChange,
    responses((status = 200, body = Deployment), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state, who, body))]
pub async fn set_routing(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> ApiResult<Json<Deployment>> {
    let now = state.now();
    let engines = state.config.engines.clone();
    let d = change(&state, &who.name, &id, move |d| {
        let change = RoutingChange::merged_onto(d, &body)?;
        let events = d.set_routing(change, now)?;
        // Rules an external engine can't put in effect are refused, not
        // left for the controller to fail on.
        if let Some(target) = &d.engine
            && let Ok(engine) = engines.get(&target.engine)
            && let Err(why) =
                engine.check_rules(&serin_core::traffic::engine::engine_rules(&d.traffic))
        {
            return Err(serin_core::DomainError::invalid(
                "traffic.rules",
                format!("engine {}: {why}", target.engine),
            ));
        }
        Ok(events)
    })
    .await?;
    Ok(Json(d))
}

/// Prometheus text: the embedded proxy's counters (when it runs), the route
/// set's size, and Serin's own (`crate::telemetry`): API requests, deployments
/// by status, controller ticks.
pub async fn prometheus(State(state): State<App>) -> impl IntoResponse {
    let mut e = serin_metrics::Exposition::new();
    if let Some(p) = &state.proxy {
        p.expose(&mut e);
    }
    let routes = state.routes.current().map_or(0, |s| s.routes.len());
    e.gauge(
        "serin_route_set_routes",
        "Routes in the control plane's route set",
        &[],
        routes as f64,
    );
    state.telemetry.expose(&mut e);
    crate::telemetry::deployments(&state, &mut e).await;
    crate::telemetry::rollouts(&state, &mut e).await;
    crate::telemetry::leadership(&state, &mut e);
    crate::telemetry::database(&state, &mut e);
    e.build_info();
    e.process();
    (
        [(header::CONTENT_TYPE, serin_metrics::CONTENT_TYPE)],
        e.render(),
    )
}
