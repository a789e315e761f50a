//! Secrets (admins only): store a value under a name, list the names, delete
//! one. A value is never returned; see `crate::secrets` for how it is kept.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Extension, Json, Router};
use serde::Serialize;
use serin_app::App;
use serin_core::secret::{SecretInfo, SecretValue, validate_name};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/secrets", get(list))
        .route("/api/v1/secrets/{name}", put(set).delete(remove))
}

/// Every secret's name, newest change last; never a value.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SecretList {
    /// By name.
    pub secrets: Vec<SecretInfo>,
}

/// The secrets' names and when they changed (admin).
#[utoipa::path(get, path = "/api/v1/secrets", tag = "secrets",
    responses((status = 200, body = SecretList)))]
pub async fn list(State(state): State<App>) -> ApiResult<Json<SecretList>> {
    Ok(Json(SecretList {
        secrets: state.store.list_secrets().await?,
    }))
}

/// Store or replace a secret (admin). Plans name it as `secret:NAME` (a URL)
/// or `signing_secret: NAME` (a notification); its value is never shown again.
#[utoipa::path(put, path = "/api/v1/secrets/{name}", tag = "secrets", request_body = SecretValue,
    params(("name" = String, Path, description = "1–64 of a-z, 0-9, _ and -")),
    responses(
        (status = 200, body = SecretInfo),
        (status = 409, description = "`SECRETS_DISABLED`: the server has no secret key", body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(name = %name))]
pub async fn set(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<SecretValue>,
) -> ApiResult<Json<SecretInfo>> {
    validate_name("name", &name)?;
    body.validate()?;
    let sealer = state.config.sealer.as_ref().ok_or_else(disabled)?;
    let sealed = sealer
        .seal(&name, body.value.as_bytes())
        .map_err(ApiError::internal)?;
    let info = state
        .store
        .put_secret(&name, sealed, &who.name, state.now())
        .await?;
    Ok(Json(info))
}

/// Delete a secret (admin). Plans that name it fail their calls from then on.
#[utoipa::path(delete, path = "/api/v1/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "the secret's name")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "`SECRET_NOT_FOUND`", body = ErrorBody)))]
pub async fn remove(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state
        .store
        .delete_secret(&name, &who.name, state.now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn disabled() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "SECRETS_DISABLED",
        "this server keeps no secrets: start it with SERIN_SECRET_KEY (64 hex digits, e.g. `openssl rand -hex 32`) or --secret-key-file",
    )
}
