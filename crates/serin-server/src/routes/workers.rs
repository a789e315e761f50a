//! Workers: register, list by lane, update status, heartbeat.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serin_app::App;
use serin_core::Lane;
use serin_core::canary::worker::{Heartbeat, NewWorker, Worker, WorkerStatus};
use serin_core::page::{PageParams, Pagination};

use crate::auth::Principal;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// The worker routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/canary/workers", get(list).post(register))
        .route("/api/v1/canary/workers/{id}", get(show))
        .route("/api/v1/canary/workers/{id}/status", put(set_status))
        .route("/api/v1/canary/workers/{id}/heartbeat", post(heartbeat))
}

/// Which workers to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WorkerParams {
    /// Only this lane.
    pub lane: Option<Lane>,
    /// Page number, from 1.
    pub page: Option<u32>,
    /// Items per page, 1–100 (default 10).
    pub page_size: Option<u32>,
}

/// A page of workers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkerList {
    /// By id.
    pub workers: Vec<Worker>,
    /// How many on this page.
    pub count: usize,
    /// Where this page is.
    pub pagination: Pagination,
}

/// Workers, optionally of one lane.
#[utoipa::path(get, path = "/api/v1/canary/workers", tag = "workers", params(WorkerParams),
    responses((status = 200, body = WorkerList), (status = 400, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<App>,
    ApiQuery(p): ApiQuery<WorkerParams>,
) -> ApiResult<Json<WorkerList>> {
    let page = PageParams {
        page: p.page,
        page_size: p.page_size,
    }
    .check()?;
    let found = state
        .store
        .list_workers(p.lane, page.offset(), page.limit())
        .await?;
    Ok(Json(WorkerList {
        count: found.items.len(),
        pagination: page.of(found.total),
        workers: found.items,
    }))
}

/// Register a worker (201). Registering again (after a restart) replaces its
/// version, lane and queues and keeps its metrics; it answers 201 too, the one
/// status documented for registration.
#[utoipa::path(post, path = "/api/v1/canary/workers", tag = "workers", request_body = NewWorker,
    responses((status = 201, body = Worker),  (status = 400, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(id = %new.id))]
pub async fn register(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiJson(new): ApiJson<NewWorker>,
) -> ApiResult<(StatusCode, Json<Worker>)> {
    let now = state.now();
    let w = new.into_worker(now)?;
    let (w, created, events) = state.store.upsert_worker(w, &who.name, now).await?;
    state.hub.publish(&events);
    tracing::debug!(created, "worker registered");
    Ok((StatusCode::CREATED, Json(w)))
}

/// One worker.
#[utoipa::path(get, path = "/api/v1/canary/workers/{id}", tag = "workers",
    params(("id" = String, Path, description = "the worker's id")),
    responses((status = 200, body = Worker), (status = 404, description = "`WORKER_NOT_FOUND`", body = ErrorBody)))]
pub async fn show(
    State(state): State<App>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Worker>> {
    Ok(Json(state.store.get_worker(&id).await?))
}

/// `{"status": "degraded"}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    /// `healthy`, `degraded`, `unhealthy` or `unreachable`.
    pub status: WorkerStatus,
}

/// The answer to a status change.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusAnswer {
    /// Always true (failures are errors).
    pub success: bool,
    /// The new status.
    pub status: WorkerStatus,
    /// When.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Set a worker's health status.
#[utoipa::path(put, path = "/api/v1/canary/workers/{id}/status", tag = "workers", request_body = StatusBody,
    params(("id" = String, Path, description = "the worker's id")),
    responses((status = 200, body = StatusAnswer), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state, who, body))]
pub async fn set_status(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<StatusBody>,
) -> ApiResult<Json<StatusAnswer>> {
    let now = state.now();
    let (w, events) = state
        .store
        .set_worker_status(&id, body.status, &who.name, now)
        .await?;
    state.hub.publish(&events);
    Ok(Json(StatusAnswer {
        success: true,
        status: w.status,
        updated_at: now,
    }))
}

/// A heartbeat with the worker's metrics and the jobs it finished; job results
/// become observations of the worker's lane on the live deployment of each queue.
#[utoipa::path(post, path = "/api/v1/canary/workers/{id}/heartbeat", tag = "workers", request_body = Heartbeat,
    params(("id" = String, Path, description = "the worker's id")),
    responses((status = 200, body = Worker), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state, hb), fields(jobs = hb.job_results.len()))]
pub async fn heartbeat(
    State(state): State<App>,
    ApiPath(id): ApiPath<String>,
    ApiJson(hb): ApiJson<Heartbeat>,
) -> ApiResult<Json<Worker>> {
    let now = state.now();
    hb.validate(now)?;
    let (w, events) = state.store.heartbeat(&id, hb, now).await?;
    state.hub.publish(&events);
    Ok(Json(w))
}
