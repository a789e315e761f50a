//! Operator endpoints under `/admin/canary`, on the same deployments as
//! `/api/v1/canary`. They act on one configured target (`--default-queue`), which
//! is what a single-service admin panel needs: start, scale, stop, status, metrics,
//! and webhooks through which outside scripts report their steps.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use serin_app::App;
use serin_core::canary::metrics::{self, HealthReport, MetricsSnapshot};
use serin_core::canary::{Deployment, DeploymentStatus, NewDeployment};
use serin_core::event::{EventType, NewEvent};
use serin_store::StoreError;
use serin_store::canary::DeploymentFilter;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::OptionalJson;
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;
use serin_app::deployments::{change, lane_metrics, start as start_deployment};

/// The operator routes under `/admin/canary`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/canary/start", post(start))
        .route("/admin/canary/scale/{percent}", post(scale))
        .route("/admin/canary/stop", post(stop))
        .route("/admin/canary/status", get(status))
        .route("/admin/canary/metrics", get(metrics_of))
        .route("/admin/canary/webhook/{event}", post(webhook))
}

/// A number written as text (from a path or query string) as a JSON number;
/// anything else unchanged, for `parse_percentage` to judge.
fn numeric(v: Value) -> Value {
    match v.as_str().map(str::trim).map(str::parse::<f64>) {
        Some(Ok(f)) => json!(f),
        _ => v,
    }
}

async fn live(state: &App) -> ApiResult<Deployment> {
    let c = &state.config;
    state
        .store
        .live_deployment(&c.default_queue, c.default_tenant.as_deref())
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "DEPLOYMENT_NOT_FOUND",
                format!("no active canary on `{}`; start one first", c.default_queue),
            )
            .details(json!({"queue_name": c.default_queue}))
        })
}

/// Start parameters (query string or JSON body).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StartParams {
    /// The canary's version (image tag).
    pub image_tag: Option<String>,
    /// Initial canary share (default 5).
    #[schema(value_type = Option<u8>)]
    #[param(value_type = Option<u8>)]
    pub traffic_percent: Option<Value>,
    /// The version now stable (default: the last promoted canary, else `stable`).
    pub stable_version: Option<String>,
    /// `default`, `conservative` or `aggressive`.
    pub profile: Option<String>,
}

/// Start a canary on the default target (`image_tag`, `traffic_percent` default 5),
/// as query parameters or a JSON body.
#[utoipa::path(post, path = "/admin/canary/start", tag = "admin", params(StartParams), request_body(content = StartParams, description = "optional; query parameters work too"),
    responses((status = 201, body = Deployment), (status = 400, body = ErrorBody), (status = 409, description = "`DEPLOYMENT_EXISTS`", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn start(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiQuery(q): ApiQuery<StartParams>,
    OptionalJson(body): OptionalJson<StartParams>,
) -> ApiResult<(StatusCode, Json<Deployment>)> {
    let b = body.unwrap_or_default();
    let image_tag = b
        .image_tag
        .or(q.image_tag)
        .ok_or_else(|| ApiError::invalid("image_tag", "is required"))?;
    // A query string carries text ("10"); a JSON body carries a number.
    let percent = b
        .traffic_percent
        .or(q.traffic_percent.map(numeric))
        .unwrap_or(json!(5));
    let stable = match b.stable_version.or(q.stable_version) {
        Some(v) => v,
        None => last_promoted(&state)
            .await?
            .unwrap_or_else(|| "stable".into()),
    };
    let c = &state.config;
    let new = NewDeployment {
        queue_name: c.default_queue.clone(),
        tenant_id: c.default_tenant.clone(),
        stable_version: stable,
        canary_version: image_tag,
        percentage: Some(percent),
        profile: b.profile.or(q.profile),
        ..Default::default()
    };
    Ok((
        StatusCode::CREATED,
        Json(start_deployment(&state, &who.name, new).await?),
    ))
}

async fn last_promoted(state: &App) -> Result<Option<String>, StoreError> {
    let f = DeploymentFilter {
        status: Some(DeploymentStatus::Completed),
        queue_name: Some(state.config.default_queue.clone()),
        tenant_id: state.config.default_tenant.clone(),
        ..DeploymentFilter::default()
    };
    Ok(state
        .store
        .list_deployments(&f, 0, 1)
        .await?
        .items
        .into_iter()
        .next()
        .map(|d| d.canary_version))
}

/// Set the default target's canary share.
#[utoipa::path(post, path = "/admin/canary/scale/{percent}", tag = "admin",
    params(("percent" = u8, Path, description = "0 to 100")),
    responses((status = 200, body = Deployment), (status = 400, description = "`INVALID_PERCENTAGE`", body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state, who))]
pub async fn scale(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiPath(percent): ApiPath<String>,
) -> ApiResult<Json<Deployment>> {
    let value = numeric(json!(percent));
    let p = serin_core::canary::parse_percentage(&value)?;
    let d = live(&state).await?;
    let now = state.now();
    Ok(Json(
        change(&state, &who.name, &d.id, move |d| d.set_percentage(p, now)).await?,
    ))
}

/// Emergency stop: roll the default target's canary back to 0% at once.
#[utoipa::path(post, path = "/admin/canary/stop", tag = "admin",
    responses((status = 200, body = Deployment), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state, who))]
pub async fn stop(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Json<Deployment>> {
    let d = live(&state).await?;
    let (reason, now) = (format!("emergency stop by {}", who.name), state.now());
    Ok(Json(
        change(&state, &who.name, &d.id, move |d| d.rollback(&reason, now)).await?,
    ))
}

/// The default target's canary status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CanaryStatus {
    /// Whether a canary is live.
    pub active: bool,
    /// The live deployment, or the last one.
    pub deployment: Option<Deployment>,
    /// Its health, when live.
    pub health: Option<HealthReport>,
}

/// The default target's canary: live or last deployment and its health.
#[utoipa::path(get, path = "/admin/canary/status", tag = "admin", responses((status = 200, body = CanaryStatus)))]
pub async fn status(State(state): State<App>) -> ApiResult<Json<CanaryStatus>> {
    let c = &state.config;
    if let Some(d) = state
        .store
        .live_deployment(&c.default_queue, c.default_tenant.as_deref())
        .await?
    {
        let (s, k) = lane_metrics(&state, &d).await?;
        let health = metrics::evaluate(&d, &s, &k, state.now());
        return Ok(Json(CanaryStatus {
            active: true,
            deployment: Some(d),
            health: Some(health),
        }));
    }
    let f = DeploymentFilter {
        queue_name: Some(c.default_queue.clone()),
        tenant_id: c.default_tenant.clone(),
        ..Default::default()
    };
    let last = state
        .store
        .list_deployments(&f, 0, 1)
        .await?
        .items
        .into_iter()
        .next();
    Ok(Json(CanaryStatus {
        active: false,
        deployment: last,
        health: None,
    }))
}

/// Production (stable) against canary.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Comparison {
    /// The deployment compared.
    pub deployment_id: String,
    /// The stable lane.
    pub stable: MetricsSnapshot,
    /// The canary lane.
    pub canary: MetricsSnapshot,
    /// Canary minus stable error rate, percentage points.
    pub error_rate_delta: Option<f64>,
    /// Canary P95 over stable P95, percent change.
    pub p95_latency_change_percent: Option<f64>,
}

/// Live comparison of the default target's lanes.
#[utoipa::path(get, path = "/admin/canary/metrics", tag = "admin", responses((status = 200, body = Comparison), (status = 404, body = ErrorBody)))]
pub async fn metrics_of(State(state): State<App>) -> ApiResult<Json<Comparison>> {
    let d = live(&state).await?;
    let (stable, canary) = lane_metrics(&state, &d).await?;
    let error_rate_delta = stable
        .error_rate
        .zip(canary.error_rate)
        .map(|(s, c)| ((c - s) * 100.0).round() / 100.0);
    let p95 = stable
        .p95_latency
        .zip(canary.p95_latency)
        .filter(|(s, _)| *s > 0.0)
        .map(|(s, c)| ((c - s) / s * 1000.0).round() / 10.0);
    Ok(Json(Comparison {
        deployment_id: d.id,
        stable,
        canary,
        error_rate_delta,
        p95_latency_change_percent: p95,
    }))
}

/// Webhooks: an outside script reports `started`, `health-check` or
/// `traffic-updated` (any JSON body is kept); the report is an event of the
/// default target's live deployment.
#[utoipa::path(post, path = "/admin/canary/webhook/{event}", tag = "admin",
    params(("event" = String, Path, description = "`started`, `health-check` or `traffic-updated`")),
    responses((status = 202, description = "recorded"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state, who, payload))]
pub async fn webhook(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiPath(event): ApiPath<String>,
    OptionalJson(payload): OptionalJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if !matches!(
        event.as_str(),
        "started" | "health-check" | "traffic-updated"
    ) {
        return Err(ApiError::invalid(
            "event",
            "use started, health-check or traffic-updated",
        ));
    }
    let payload = payload.unwrap_or(Value::Null);
    let d = live(&state).await?;
    let e = NewEvent {
        kind: EventType::ExternalReport,
        resource_type: "deployment",
        resource_id: d.id.clone(),
        deployment_id: Some(d.id.clone()),
        message: format!("External script reported `{event}`"),
        data: json!({"event": event, "payload": payload}),
    };
    let events = state
        .store
        .append_events(vec![e], &who.name, state.now())
        .await?;
    state.hub.publish(&events);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"success": true, "deployment_id": d.id, "event": event, "id": events[0].id})),
    ))
}
