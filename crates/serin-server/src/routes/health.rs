//! Liveness and readiness.
//!
//! `/api/v1/health` says the process answers; `/api/v1/ready` also asks the
//! database (a query, and a schema-version check), so a load balancer stops
//! sending traffic to a replica whose database is gone.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serin_app::App;

use crate::error::ApiResult;
use crate::state::AppState;

/// The process is alive.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
    /// Serin's version.
    pub version: &'static str,
}

/// The process can serve requests.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Ready {
    /// Always `ready` (otherwise the answer is a 503 error).
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
}

/// The health routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/ready", get(ready))
}

/// Liveness: answers while the process runs.
#[utoipa::path(get, path = "/api/v1/health", tag = "health", security(()),
    responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Readiness: answers 200 only when the database answers and its schema is current.
#[utoipa::path(get, path = "/api/v1/ready", tag = "health", security(()),
    responses((status = 200, body = Ready), (status = 503, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn ready(State(state): State<App>) -> ApiResult<Json<Ready>> {
    state.store.ping().await?;
    Ok(Json(Ready {
        status: "ready",
        database: state.store.backend(),
    }))
}
