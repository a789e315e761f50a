//! Releases: create, list, show, change status, and the latest stable one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serin_core::page::{PageParams, Pagination};
use serin_core::{NewRelease, Release, ReleasePatch};

use crate::auth::Principal;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// The release routes, including seed 000's `POST /release` and
/// `GET /release/{product_name}/latest`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/products/{name}/releases",
            get(list).post(create_for_product),
        )
        .route("/api/v1/products/{name}/releases/latest", get(latest))
        .route("/api/v1/releases", post(create))
        .route("/api/v1/releases/{id}", get(show).patch(update))
        .route("/release", post(create))
        .route("/release/{product_name}/latest", get(latest))
}

/// A release to create under a product named in the path.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductRelease {
    /// The version; unique within the product.
    pub version: String,
    /// Release notes.
    #[serde(default)]
    pub description: Option<String>,
}

/// A page of releases.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReleaseList {
    /// The releases on this page, newest first.
    pub items: Vec<Release>,
    /// How many on this page.
    pub count: usize,
    /// Where this page is.
    pub pagination: Pagination,
}

/// Create a `draft` release. Also served as `POST /release` (seed 000).
#[utoipa::path(post, path = "/api/v1/releases", tag = "releases", request_body = NewRelease,
    responses(
        (status = 201, body = Release),
        (status = 400, body = ErrorBody),
        (status = 404, description = "`PRODUCT_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`RELEASE_EXISTS`", body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(product = %new.product_name, version = %new.version))]
pub async fn create(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiJson(new): ApiJson<NewRelease>,
) -> ApiResult<(StatusCode, Json<Release>)> {
    new.validate()?;
    let release = state
        .store
        .create_release(&new, &who.name, state.now())
        .await?;
    state.latest.clear();
    Ok((StatusCode::CREATED, Json(release)))
}

/// Create a `draft` release of the product in the path.
#[utoipa::path(post, path = "/api/v1/products/{name}/releases", tag = "releases", request_body = ProductRelease,
    params(("name" = String, Path, description = "the product's name")),
    responses(
        (status = 201, body = Release),
        (status = 404, description = "`PRODUCT_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`RELEASE_EXISTS`", body = ErrorBody)))]
pub async fn create_for_product(
    state: State<AppState>,
    who: Extension<Principal>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<ProductRelease>,
) -> ApiResult<(StatusCode, Json<Release>)> {
    let new = NewRelease {
        product_name: name,
        version: body.version,
        description: body.description,
    };
    create(state, who, ApiJson(new)).await
}

/// A product's releases, newest first.
#[utoipa::path(get, path = "/api/v1/products/{name}/releases", tag = "releases",
    params(("name" = String, Path, description = "the product's name"), PageParams),
    responses((status = 200, body = ReleaseList), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state))]
pub async fn list(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> ApiResult<Json<ReleaseList>> {
    let name = super::product_in_path(name)?;
    let page = p.check()?;
    let found = state
        .store
        .list_releases(&name, page.offset(), page.limit())
        .await?;
    Ok(Json(ReleaseList {
        count: found.items.len(),
        pagination: page.of(found.total),
        items: found.items,
    }))
}

/// The latest stable release: the highest semver among `released` releases (or the
/// most recently released when versions aren't all semver). Also served as
/// `GET /release/{product_name}/latest` (seed 000).
#[utoipa::path(get, path = "/api/v1/products/{name}/releases/latest", tag = "releases",
    params(("name" = String, Path, description = "the product's name")),
    responses(
        (status = 200, body = Release),
        (status = 404, description = "`PRODUCT_NOT_FOUND` or `NO_STABLE_RELEASE`", body = ErrorBody)))]
#[tracing::instrument(skip(state))]
pub async fn latest(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Release>> {
    let name = super::product_in_path(name)?;
    if let Some(hit) = state.latest.get(&name) {
        return Ok(Json(hit));
    }
    let release = state.store.latest_stable(&name).await?;
    state.latest.put(&name, &release);
    Ok(Json(release))
}

/// One release.
#[utoipa::path(get, path = "/api/v1/releases/{id}", tag = "releases",
    params(("id" = i64, Path, description = "the release's id")),
    responses((status = 200, body = Release), (status = 404, description = "`RELEASE_NOT_FOUND`", body = ErrorBody)))]
#[tracing::instrument(skip(state))]
pub async fn show(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Release>> {
    Ok(Json(state.store.get_release(id).await?))
}

/// Change a release's status (`draft → approved → released → rolled_back`, or
/// `cancelled` before release) or its notes. Asking for the current status changes nothing.
#[utoipa::path(patch, path = "/api/v1/releases/{id}", tag = "releases", request_body = ReleasePatch,
    params(("id" = i64, Path, description = "the release's id")),
    responses(
        (status = 200, body = Release),
        (status = 404, description = "`RELEASE_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`INVALID_STATUS_TRANSITION`", body = ErrorBody)))]
#[tracing::instrument(skip(state, who, patch), fields(status = ?patch.status))]
pub async fn update(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(patch): ApiJson<ReleasePatch>,
) -> ApiResult<Json<Release>> {
    patch.validate()?;
    let release = state
        .store
        .update_release(id, &patch, &who.name, state.now())
        .await?;
    state.latest.clear();
    Ok(Json(release))
}
