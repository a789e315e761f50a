//! A product's environments: list, add, change.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Serialize;
use serin_app::App;
use serin_core::release::environment::{Environment, EnvironmentSpec};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

/// The environment routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/products/{name}/environments",
            get(list).post(create),
        )
        .route(
            "/api/v1/products/{name}/environments/{env}",
            get(show).patch(update),
        )
}

/// A product's environments, in order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EnvironmentList {
    /// First to last.
    pub items: Vec<Environment>,
    /// How many.
    pub count: usize,
}

/// A product's environments, in promotion order (`development`, `staging`,
/// `production` until configured).
#[utoipa::path(get, path = "/api/v1/products/{name}/environments", tag = "environments",
    params(("name" = String, Path, description = "the product's name")),
    responses((status = 200, body = EnvironmentList), (status = 404, description = "`PRODUCT_NOT_FOUND`", body = ErrorBody)))]
#[tracing::instrument(skip(state))]
pub async fn list(
    State(state): State<App>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<EnvironmentList>> {
    let name = super::product_in_path(name)?;
    let items = state.store.environments(&name).await?;
    Ok(Json(EnvironmentList {
        count: items.len(),
        items,
    }))
}

/// One environment.
#[utoipa::path(get, path = "/api/v1/products/{name}/environments/{env}", tag = "environments",
    params(("name" = String, Path, description = "the product's name"), ("env" = String, Path, description = "the environment")),
    responses((status = 200, body = Environment), (status = 404, description = "`PRODUCT_NOT_FOUND` or `ENVIRONMENT_NOT_FOUND`", body = ErrorBody)))]
#[tracing::instrument(skip(state))]
pub async fn show(
    State(state): State<App>,
    ApiPath((name, env)): ApiPath<(String, String)>,
) -> ApiResult<Json<Environment>> {
    let name = super::product_in_path(name)?;
    let (e, _, _) = crate::releaser::environment(&state, &name, &env).await?;
    Ok(Json(e))
}

/// Add an environment (at `position`, default last). The product's defaults
/// are kept beside it.
#[utoipa::path(post, path = "/api/v1/products/{name}/environments", tag = "environments",
    request_body = EnvironmentSpec,
    params(("name" = String, Path, description = "the product's name")),
    responses(
        (status = 201, body = Environment),
        (status = 400, body = ErrorBody),
        (status = 404, description = "`PRODUCT_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`ENVIRONMENT_EXISTS`", body = ErrorBody)))]
#[tracing::instrument(skip(state, who, spec))]
pub async fn create(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
    ApiJson(spec): ApiJson<EnvironmentSpec>,
) -> ApiResult<(StatusCode, Json<Environment>)> {
    let name = super::product_in_path(name)?;
    let Some(env) = spec.name.clone() else {
        return Err(ApiError::invalid("name", "give the environment's name"));
    };
    crate::admission::environment(&state.config, &spec)?;
    let e = state
        .store
        .change_environment(&name, &env, &spec, true, &who.name, state.now())
        .await?;
    Ok((StatusCode::CREATED, Json(e)))
}

/// Change an environment's order, promotion rule, approval policy, pre-deploy
/// hook or route. Fields left out stay as they are.
#[utoipa::path(patch, path = "/api/v1/products/{name}/environments/{env}", tag = "environments",
    request_body = EnvironmentSpec,
    params(("name" = String, Path, description = "the product's name"), ("env" = String, Path, description = "the environment")),
    responses(
        (status = 200, body = Environment),
        (status = 400, body = ErrorBody),
        (status = 404, description = "`PRODUCT_NOT_FOUND` or `ENVIRONMENT_NOT_FOUND`", body = ErrorBody)))]
#[tracing::instrument(skip(state, who, spec))]
pub async fn update(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiPath((name, env)): ApiPath<(String, String)>,
    ApiJson(spec): ApiJson<EnvironmentSpec>,
) -> ApiResult<Json<Environment>> {
    let name = super::product_in_path(name)?;
    if spec.name.as_ref().is_some_and(|n| *n != env) {
        return Err(ApiError::invalid(
            "name",
            "environments can't be renamed; add a new one",
        ));
    }
    crate::admission::environment(&state.config, &spec)?;
    crate::releaser::environment(&state, &name, &env).await?;
    let e = state
        .store
        .change_environment(&name, &env, &spec, false, &who.name, state.now())
        .await?;
    // A policy that was lowered may already be met for a waiting deployment.
    crate::releaser::recheck(&state, &e).await?;
    Ok(Json(e))
}
