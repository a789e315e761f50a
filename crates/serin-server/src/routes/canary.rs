//! The canary deployments API under `/api/v1/canary`.
//!
//! Every change goes through [`change`]: the store applies a `serin-core`
//! transition inside one transaction (optimistic revision check included) and
//! returns the events it committed, which are then published to live
//! subscribers. Metrics and health are computed on request from the lanes'
//! observations over the deployment's `metrics_window`.

use serin_app::App;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use serin_core::canary::metrics::{self, HealthReport, MetricsSnapshot};
use serin_core::canary::{
    Deployment, DeploymentStatus, NewDeployment, PROFILES, Profiles, parse_percentage,
};
use serin_core::event::{Event, EventType, StreamEvent};
use serin_core::page::{PageParams, Pagination};
use serin_core::release::signal::LaneSignal;
use serin_core::traffic::routing::{RouteDecision, route_job};
use serin_store::canary::{DeploymentFilter, EventFilter, Observation};

use super::{ActionAnswer, ReasonBody};
use crate::auth::Authenticator;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, OptionalJson};
use crate::state::{AppState, Streams};
use serin_app::deployments::{change, lane_metrics, start};

/// The canary routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/canary/deployments", get(list).post(create))
        .route("/api/v1/canary/deployments/{id}", get(show).delete(delete))
        .route(
            "/api/v1/canary/deployments/{id}/percentage",
            put(set_percentage),
        )
        .route("/api/v1/canary/deployments/{id}/promote", post(promote))
        .route("/api/v1/canary/deployments/{id}/rollback", post(rollback))
        .route("/api/v1/canary/deployments/{id}/pause", post(pause))
        .route("/api/v1/canary/deployments/{id}/resume", post(resume))
        .route("/api/v1/canary/deployments/{id}/health", get(health))
        .route("/api/v1/canary/deployments/{id}/metrics", get(metrics_of))
        .route("/api/v1/canary/deployments/{id}/seconds", get(seconds))
        .route("/api/v1/canary/deployments/{id}/events", get(events))
        .route(
            "/api/v1/canary/deployments/{id}/signals",
            post(record_signals),
        )
        .route("/api/v1/canary/config/profiles", get(profiles))
        .route("/api/v1/canary/route", get(route))
}

/// Which deployments to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeploymentParams {
    /// Only this status.
    pub status: Option<DeploymentStatus>,
    /// Only this target.
    pub queue_name: Option<String>,
    /// Only this tenant.
    pub tenant_id: Option<String>,
    /// Page number, from 1.
    pub page: Option<u32>,
    /// Items per page, 1–100 (default 10).
    pub page_size: Option<u32>,
}

/// A page of deployments.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeploymentList {
    /// Newest first.
    pub deployments: Vec<Deployment>,
    /// How many on this page.
    pub count: usize,
    /// Where this page is.
    pub pagination: Pagination,
}

/// List deployments, newest first.
#[utoipa::path(get, path = "/api/v1/canary/deployments", tag = "canary", params(DeploymentParams),
    responses((status = 200, body = DeploymentList), (status = 400, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<App>,
    ApiQuery(p): ApiQuery<DeploymentParams>,
) -> ApiResult<Json<DeploymentList>> {
    let page = PageParams {
        page: p.page,
        page_size: p.page_size,
    }
    .check()?;
    let filter = DeploymentFilter {
        status: p.status,
        queue_name: p.queue_name,
        tenant_id: p.tenant_id,
        ..DeploymentFilter::default()
    };
    let found = state
        .store
        .list_deployments(&filter, page.offset(), page.limit())
        .await?;
    Ok(Json(DeploymentList {
        count: found.items.len(),
        pagination: page.of(found.total),
        deployments: found.items,
    }))
}

/// Create a deployment (201). A profile supplies defaults; explicit fields override it.
#[utoipa::path(post, path = "/api/v1/canary/deployments", tag = "canary", request_body = NewDeployment,
    responses(
        (status = 201, body = Deployment),
        (status = 400, description = "`VALIDATION_FAILED`, `INVALID_PERCENTAGE`", body = ErrorBody),
        (status = 409, description = "`DEPLOYMENT_EXISTS`, `ENGINE_BACKEND_IN_USE`", body = ErrorBody),
        (status = 429, description = "`CONCURRENCY_LIMIT`", body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(queue = %new.queue_name))]
pub async fn create(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiJson(new): ApiJson<NewDeployment>,
) -> ApiResult<(StatusCode, Json<Deployment>)> {
    crate::releaser::check_unmanaged(&state, &who.actor(), &new, "").await?;
    let d = start(&state, &who.name, new).await?;
    Ok((StatusCode::CREATED, Json(d)))
}

/// One deployment.
#[utoipa::path(get, path = "/api/v1/canary/deployments/{id}", tag = "canary",
    params(("id" = String, Path, description = "the deployment's id")),
    responses((status = 200, body = Deployment), (status = 404, description = "`DEPLOYMENT_NOT_FOUND`", body = ErrorBody)))]
#[tracing::instrument(skip(state))]
pub async fn show(
    State(state): State<App>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Deployment>> {
    Ok(Json(state.store.get_deployment(&id).await?))
}

/// `{"percentage": 0..100}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PercentageBody {
    /// The canary's new share, a whole number from 0 to 100.
    #[schema(value_type = u8)]
    pub percentage: Value,
}

/// The answer to a percentage change.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PercentageAnswer {
    /// Always true (failures are errors).
    pub success: bool,
    /// The new share.
    pub percentage: u8,
    /// When it changed.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Set the traffic split.
#[utoipa::path(put, path = "/api/v1/canary/deployments/{id}/percentage", tag = "canary", request_body = PercentageBody,
    params(("id" = String, Path, description = "the deployment's id")),
    responses(
        (status = 200, body = PercentageAnswer),
        (status = 400, description = "`INVALID_PERCENTAGE`, `DEPLOYMENT_NOT_ACTIVE`", body = ErrorBody),
        (status = 404, description = "`DEPLOYMENT_NOT_FOUND`", body = ErrorBody)))]
#[tracing::instrument(skip(state, who, body))]
pub async fn set_percentage(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<PercentageBody>,
) -> ApiResult<Json<PercentageAnswer>> {
    let p = parse_percentage(&body.percentage)?;
    let now = state.now();
    let d = change(&state, &who.name, &id, move |d| d.set_percentage(p, now)).await?;
    Ok(Json(PercentageAnswer {
        success: true,
        percentage: d.current_percent,
        updated_at: d.last_update,
    }))
}

/// Promote: canary to 100%, `completed`. When the deployment names a product, the
/// canary's release of it becomes `released` (the new stable one).
#[utoipa::path(post, path = "/api/v1/canary/deployments/{id}/promote", tag = "canary",
    params(("id" = String, Path, description = "the deployment's id")),
    responses(
        (status = 200, body = ActionAnswer),
        (status = 400, description = "`DEPLOYMENT_NOT_ACTIVE`", body = ErrorBody),
        (status = 404, description = "`DEPLOYMENT_NOT_FOUND`", body = ErrorBody)))]
#[tracing::instrument(skip(state, who))]
pub async fn promote(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ActionAnswer>> {
    let now = state.now();
    let d = change(&state, &who.name, &id, move |d| d.promote(now)).await?;
    Ok(Json(ActionAnswer {
        success: true,
        message: "Deployment promoted to 100%".into(),
        reason: None,
        timestamp: d.last_update,
    }))
}

/// Roll back: canary to 0%, `failed`, with the reason (body optional).
#[utoipa::path(post, path = "/api/v1/canary/deployments/{id}/rollback", tag = "canary", request_body(content = ReasonBody, description = "optional"),
    params(("id" = String, Path, description = "the deployment's id")),
    responses(
        (status = 200, body = ActionAnswer),
        (status = 400, description = "`DEPLOYMENT_NOT_ACTIVE`", body = ErrorBody),
        (status = 404, description = "`DEPLOYMENT_NOT_FOUND`", body = ErrorBody)))]
#[tracing::instrument(skip(state, who, body))]
pub async fn rollback(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<ReasonBody>,
) -> ApiResult<Json<ActionAnswer>> {
    let reason = body
        .unwrap_or_default()
        .reason
        .unwrap_or_else(|| format!("manual rollback by {}", who.name));
    let (r, now) = (reason.clone(), state.now());
    let d = change(&state, &who.name, &id, move |d| d.rollback(&r, now)).await?;
    Ok(Json(ActionAnswer {
        success: true,
        message: format!("Deployment rolled back: {reason}"),
        reason: Some(reason),
        timestamp: d.last_update,
    }))
}

/// Pause automation (manual changes stay allowed).
#[utoipa::path(post, path = "/api/v1/canary/deployments/{id}/pause", tag = "canary", request_body(content = ReasonBody, description = "optional"),
    params(("id" = String, Path, description = "the deployment's id")),
    responses((status = 200, body = ActionAnswer), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state, who, body))]
pub async fn pause(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<ReasonBody>,
) -> ApiResult<Json<ActionAnswer>> {
    let reason = body.unwrap_or_default().reason;
    let (r, now) = (reason.clone(), state.now());
    let d = change(&state, &who.name, &id, move |d| d.pause(r.as_deref(), now)).await?;
    Ok(Json(ActionAnswer {
        success: true,
        message: "Deployment paused".into(),
        reason,
        timestamp: d.last_update,
    }))
}

/// Resume a paused deployment.
#[utoipa::path(post, path = "/api/v1/canary/deployments/{id}/resume", tag = "canary",
    params(("id" = String, Path, description = "the deployment's id")),
    responses((status = 200, body = ActionAnswer), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state, who))]
pub async fn resume(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ActionAnswer>> {
    let now = state.now();
    let d = change(&state, &who.name, &id, move |d| d.resume(now)).await?;
    Ok(Json(ActionAnswer {
        success: true,
        message: "Deployment resumed".into(),
        reason: None,
        timestamp: d.last_update,
    }))
}

/// Delete a completed or failed deployment (204). Its events stay in the audit log.
#[utoipa::path(delete, path = "/api/v1/canary/deployments/{id}", tag = "canary",
    params(("id" = String, Path, description = "the deployment's id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 404, description = "`DEPLOYMENT_NOT_FOUND`", body = ErrorBody),
        (status = 400, description = "`DEPLOYMENT_ACTIVE`: promote or roll back first", body = ErrorBody)))]
#[tracing::instrument(skip(state, who))]
pub async fn delete(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let event = state
        .store
        .delete_deployment(&id, &who.name, state.now())
        .await?;
    state.hub.publish(&[event]);
    Ok(StatusCode::NO_CONTENT)
}

/// Both lanes' metrics.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LaneMetrics {
    /// The stable lane.
    pub stable: MetricsSnapshot,
    /// The canary lane.
    pub canary: MetricsSnapshot,
}

/// Metrics of both lanes over the deployment's `metrics_window`.
#[utoipa::path(get, path = "/api/v1/canary/deployments/{id}/metrics", tag = "canary",
    params(("id" = String, Path, description = "the deployment's id")),
    responses((status = 200, body = LaneMetrics), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state))]
pub async fn metrics_of(
    State(state): State<App>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<LaneMetrics>> {
    let d = state.store.get_deployment(&id).await?;
    let (stable, canary) = lane_metrics(&state, &d).await?;
    Ok(Json(LaneMetrics { stable, canary }))
}

/// Which seconds of a deployment's lanes to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SecondsParams {
    /// From (RFC 3339; default: the deployment's start).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// To (RFC 3339; default: now, or when the deployment ended).
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

/// The longest range of seconds one request may list.
const MAX_SECONDS_RANGE: chrono::TimeDelta = chrono::TimeDelta::hours(6);

/// The proxy's per-second counts of both lanes (requests, errors by class,
/// latency histogram), every proxy's merged: what the judges read, and what
/// `serin simulate --replay` replays. At most six hours per request.
#[utoipa::path(get, path = "/api/v1/canary/deployments/{id}/seconds", tag = "canary",
    params(("id" = String, Path, description = "the deployment's id"), SecondsParams),
    responses((status = 200, body = Vec<serin_core::traffic::proxy::LaneBucket>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state))]
pub async fn seconds(
    State(state): State<App>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<SecondsParams>,
) -> ApiResult<Json<Vec<serin_core::traffic::proxy::LaneBucket>>> {
    let d = state.store.get_deployment(&id).await?;
    let since = p.since.unwrap_or(d.start_time);
    let until = p.until.or(d.completed_at).unwrap_or_else(|| state.now());
    if until < since {
        return Err(ApiError::invalid("until", "must not be before since"));
    }
    if until - since > MAX_SECONDS_RANGE {
        return Err(ApiError::invalid(
            "since",
            "list at most 6 hours of seconds per request",
        ));
    }
    Ok(Json(state.store.lane_buckets(&id, since, until).await?))
}

/// Health against the deployment's thresholds (five checks).
#[utoipa::path(get, path = "/api/v1/canary/deployments/{id}/health", tag = "canary",
    params(("id" = String, Path, description = "the deployment's id")),
    responses((status = 200, body = HealthReport), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state))]
pub async fn health(
    State(state): State<App>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<HealthReport>> {
    let d = state.store.get_deployment(&id).await?;
    let (stable, canary) = lane_metrics(&state, &d).await?;
    Ok(Json(metrics::evaluate(&d, &stable, &canary, state.now())))
}

/// A page of a deployment's events.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventList {
    /// Newest first.
    pub events: Vec<Event>,
    /// How many on this page.
    pub count: usize,
    /// Where this page is.
    pub pagination: Pagination,
}

/// A deployment's history, newest first; with `Upgrade: websocket`, the live stream
/// of stream events instead (plus `metrics_updated` every few seconds,
/// `health_status_changed` when the verdict changes, and the proxy's per-second
/// lane figures: `lanes_history` (the last 5 minutes) on connecting, then
/// `lanes_updated` (the last 10 seconds) every second). A browser sends its
/// token as the subprotocol pair `serin, <token>`.
#[utoipa::path(get, path = "/api/v1/canary/deployments/{id}/events", tag = "canary",
    params(("id" = String, Path, description = "the deployment's id"), PageParams),
    responses((status = 200, body = EventList), (status = 101, description = "WebSocket stream of StreamEvent"), (status = 404, body = ErrorBody)))]
pub async fn events(
    State(state): State<App>,
    State(streams): State<Streams>,
    State(auth): State<Authenticator>,
    req: Request,
) -> Response {
    match events_inner(state, streams, auth, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn events_inner(
    state: App,
    streams: Streams,
    auth: Authenticator,
    req: Request,
) -> ApiResult<Response> {
    let (mut parts, _) = req.into_parts();
    let ApiPath(id) = ApiPath::<String>::from_request_parts(&mut parts, &state).await?;
    let d = state.store.get_deployment(&id).await?;
    if is_websocket(&parts.headers) {
        let slot = streams.0.try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "TOO_MANY_STREAMS",
                "too many live event streams are open; retry later",
            )
        })?;
        // The guard checked the key at upgrade; the stream re-checks it on every
        // tick, so a revoked key stops streaming within one tick.
        let key = crate::auth::presented_key(&parts.headers)
            .unwrap_or_default()
            .to_string();
        let ws = WebSocketUpgrade::from_request_parts(&mut parts, &state)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "BAD_WEBSOCKET", e.to_string()))?
            .protocols([crate::auth::WS_PROTOCOL]);
        return Ok(ws.on_upgrade(move |socket| async move {
            stream(state, auth, d, key, socket).await;
            drop(slot);
        }));
    }
    let ApiQuery(p) = ApiQuery::<PageParams>::from_request_parts(&mut parts, &state).await?;
    let page = p.check()?;
    let filter = EventFilter {
        deployment_id: Some(id),
        ..Default::default()
    };
    let found = state
        .store
        .list_events(&filter, page.offset(), page.limit())
        .await?;
    Ok(Json(EventList {
        count: found.items.len(),
        pagination: page.of(found.total),
        events: found.items,
    })
    .into_response())
}

fn is_websocket(h: &HeaderMap) -> bool {
    h.get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// How often a live stream gets `metrics_updated`.
const METRICS_EVERY: Duration = Duration::from_secs(5);

/// How much lane history a new stream gets.
const LANES_HISTORY: chrono::Duration = chrono::Duration::minutes(5);

async fn stream(
    state: App,
    auth: Authenticator,
    d: Deployment,
    key: String,
    mut socket: WebSocket,
) {
    let mut events = state.hub.subscribe();
    let mut tick = tokio::time::interval(METRICS_EVERY);
    let mut live = d.status.is_live();
    let mut lanes = state.lane_feeds.subscribe(&state, &d.id);
    let mut last_health = None;
    let now = state.now();
    if let Some(history) =
        crate::lanefeed::points(&state, &d.id, "lanes_history", now - LANES_HISTORY, now).await
        && let Ok(text) = serde_json::to_string(&history)
        && socket.send(Message::Text(text.into())).await.is_err()
    {
        return;
    }
    loop {
        let out: Vec<StreamEvent> = tokio::select! {
            changed = lanes.changed(), if live => match changed {
                Ok(()) => lanes.borrow_and_update().as_deref().cloned().into_iter().collect(),
                // The reader ended (its deployment did).
                Err(_) => {
                    live = false;
                    Vec::new()
                }
            },
            got = events.recv() => match got {
                Ok(e) if e.deployment_id.as_deref() == Some(d.id.as_str()) => {
                    // An ended deployment has no lanes to compare any more.
                    if matches!(e.kind, EventType::DeploymentPromoted | EventType::DeploymentRolledBack) {
                        live = false;
                    }
                    e.stream()
                }
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => vec![StreamEvent {
                    kind: "stream_lagged".into(),
                    deployment_id: d.id.clone(),
                    timestamp: state.now(),
                    data: json!({"missed_events": n}),
                }],
                Err(_) => break,
            },
                        _ = tick.tick() => {
                if auth.authenticate(&state.store, Some(&key)).await.is_err() {
                    let _ = socket.send(Message::Close(None)).await;
                    break;
                }
                match snapshot_messages(&state, &d.id, &mut last_health).await {
                    Some(m) => m,
                    None => break,
                }
            }
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            },
        };
        for m in out {
            let Ok(text) = serde_json::to_string(&m) else {
                continue;
            };
            if socket.send(Message::Text(text.into())).await.is_err() {
                return;
            }
        }
    }
}

async fn snapshot_messages(
    state: &App,
    id: &str,
    last: &mut Option<metrics::HealthStatus>,
) -> Option<Vec<StreamEvent>> {
    let d = state.store.get_deployment(id).await.ok()?;
    let (stable, canary) = lane_metrics(state, &d).await.ok()?;
    let now = state.now();
    let report = metrics::evaluate(&d, &stable, &canary, now);
    let msg = |kind: &str, data: Value| StreamEvent {
        kind: kind.into(),
        deployment_id: d.id.clone(),
        timestamp: now,
        data,
    };
    let mut out = vec![msg(
        "metrics_updated",
        json!({"stable": stable, "canary": canary}),
    )];
    if *last != Some(report.overall_status) {
        out.push(msg(
            "health_status_changed",
            json!({"old_status": last, "new_status": report.overall_status, "health": report}),
        ));
        *last = Some(report.overall_status);
    }
    Some(out)
}

/// Observations of a deployment's lanes, many at once.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LaneSignals {
    /// 1 to 50,000 observations.
    pub signals: Vec<LaneSignal>,
}

/// Record observations of a deployment's lanes (outcomes, latencies, gauges); they
/// feed its metrics and health. All are stored, or none.
#[utoipa::path(post, path = "/api/v1/canary/deployments/{id}/signals", tag = "canary", request_body = LaneSignals,
    params(("id" = String, Path, description = "the deployment's id")),
    responses((status = 201, body = serin_core::BatchAccepted), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state, body), fields(count = body.signals.len()))]
pub async fn record_signals(
    State(state): State<App>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<LaneSignals>,
) -> ApiResult<(StatusCode, Json<serin_core::BatchAccepted>)> {
    let now = state.now();
    if body.signals.is_empty() || body.signals.len() > serin_core::release::signal::MAX_BATCH {
        return Err(ApiError::invalid("signals", "send 1 to 50000 signals"));
    }
    for (i, s) in body.signals.iter().enumerate() {
        s.validate(now)
            .map_err(|e| e.under(&format!("signals[{i}]")))?;
    }
    let obs = body
        .signals
        .into_iter()
        .map(|s| Observation {
            lane: s.lane,
            name: s.name,
            kind: s.kind,
            value: s.value,
            ts: s.timestamp.map_or(now, serin_core::to_micros),
        })
        .collect();
    let accepted = state.store.record_observations(&id, obs).await?;
    Ok((
        StatusCode::CREATED,
        Json(serin_core::BatchAccepted { accepted }),
    ))
}

/// The three configuration profiles and their values.
#[utoipa::path(get, path = "/api/v1/canary/config/profiles", tag = "canary", responses((status = 200, body = Profiles)))]
pub async fn profiles() -> Json<&'static Profiles> {
    Json(&PROFILES)
}

/// Which job to route.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RouteParams {
    /// The logical queue the producer publishes to.
    pub queue: String,
    /// A job key (user id, order id…): with sticky routing, the same key always gets
    /// the same lane while the percentage doesn't drop.
    pub key: Option<String>,
    /// The tenant.
    pub tenant_id: Option<String>,
}

/// Where a job goes: lane and physical queue (or consumer group), honouring the live
/// deployment's percentage, routing strategy and sticky routing.
#[utoipa::path(get, path = "/api/v1/canary/route", tag = "canary", params(RouteParams),
    responses((status = 200, body = RouteDecision), (status = 400, body = ErrorBody)))]
pub async fn route(
    State(state): State<App>,
    ApiQuery(p): ApiQuery<RouteParams>,
) -> ApiResult<Json<RouteDecision>> {
    if p.queue.is_empty() || p.queue.len() > 200 {
        return Err(ApiError::invalid("queue", "must be 1 to 200 characters"));
    }
    let live = state
        .store
        .live_deployment(&p.queue, p.tenant_id.as_deref())
        .await?;
    let random = getrandom::u32().map_err(|e| ApiError::internal(format!("no randomness: {e}")))?
        % serin_core::traffic::routing::BUCKETS;
    Ok(Json(route_job(
        &p.queue,
        live.as_ref(),
        p.key.as_deref(),
        random,
    )))
}
