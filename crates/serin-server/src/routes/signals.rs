//! Signals: record one, record a batch, read a release's signals back.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::Serialize;
use serin_app::App;
use serin_core::page::{PageParams, Pagination};
use serin_core::{BatchAccepted, Lane, NewSignal, Signal, SignalBatch};
use serin_store::SignalQuery;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// A page of signals.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignalList {
    /// The signals on this page, newest first.
    pub items: Vec<Signal>,
    /// How many on this page.
    pub count: usize,
    /// Where this page is.
    pub pagination: Pagination,
}

/// The signal routes, including the original CanaryPy route `POST /signal`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/signals", post(record))
        .route("/api/v1/signals/batch", post(record_batch))
        .route("/api/v1/releases/{id}/signals", get(list))
        .route("/signal", post(record))
}

/// Record one signal. Also served as `POST /signal` (the original CanaryPy route).
#[utoipa::path(post, path = "/api/v1/signals", tag = "signals", request_body = NewSignal,
    responses(
        (status = 201, body = Signal),
        (status = 400, description = "`VALIDATION_FAILED`", body = ErrorBody),
        (status = 404, description = "`RELEASE_NOT_FOUND`", body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(name = %new.name, lane = %new.lane))]
pub async fn record(
    State(state): State<App>,
    ApiJson(new): ApiJson<NewSignal>,
) -> ApiResult<(StatusCode, Json<Signal>)> {
    let now = state.now();
    new.validate(now)?;
    Ok((
        StatusCode::CREATED,
        Json(state.store.record_signal(new, now).await?),
    ))
}

/// Record many signals in one transaction: all are stored, or none (the error names
/// the first bad one as `signals[i].field`).
#[utoipa::path(post, path = "/api/v1/signals/batch", tag = "signals", request_body = SignalBatch,
    responses(
        (status = 201, body = BatchAccepted),
        (status = 400, description = "`VALIDATION_FAILED`", body = ErrorBody),
        (status = 404, description = "`RELEASE_NOT_FOUND`", body = ErrorBody),
        (status = 413, description = "`PAYLOAD_TOO_LARGE`", body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(count = batch.signals.len()))]
pub async fn record_batch(
    State(state): State<App>,
    ApiJson(batch): ApiJson<SignalBatch>,
) -> ApiResult<(StatusCode, Json<BatchAccepted>)> {
    let now = state.now();
    batch.validate(now)?;
    let accepted = state.store.record_signals(batch.signals, now).await?;
    Ok((StatusCode::CREATED, Json(BatchAccepted { accepted })))
}

/// Which of a release's signals to read.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SignalParams {
    /// Only this lane.
    pub lane: Option<Lane>,
    /// Only signals with this name.
    pub name: Option<String>,
    /// Only signals observed at or after this RFC 3339 instant.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Page number, from 1.
    pub page: Option<u32>,
    /// Items per page, 1–100 (default 10).
    pub page_size: Option<u32>,
}

/// A release's signals, newest first.
#[utoipa::path(get, path = "/api/v1/releases/{id}/signals", tag = "signals",
    params(("id" = i64, Path, description = "the release's id"), SignalParams),
    responses((status = 200, body = SignalList), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state))]
pub async fn list(
    State(state): State<App>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(p): ApiQuery<SignalParams>,
) -> ApiResult<Json<SignalList>> {
    let page = PageParams {
        page: p.page,
        page_size: p.page_size,
    }
    .check()?;
    if let Some(name) = &p.name {
        serin_core::release::signal::validate_signal_name("name", name)?;
    }
    if let Some(since) = p.since {
        serin_core::release::signal::validate_instant("since", since)?;
    }
    let q = SignalQuery {
        lane: p.lane,
        name: p.name,
        since: p.since,
        limit: page.size,
        offset: page.offset(),
    };
    let found = state.store.list_signals(id, &q).await?;
    Ok(Json(SignalList {
        count: found.items.len(),
        pagination: page.of(found.total),
        items: found.items,
    }))
}
