//! Products: create, list, show.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Serialize;
use serin_app::App;
use serin_core::page::{PageParams, Pagination};
use serin_core::{NewProduct, Product};

use crate::auth::Principal;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// The product routes, including the original CanaryPy route `POST /product`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/products", get(list).post(create))
        .route("/api/v1/products/{name}", get(show))
        .route("/product", axum::routing::post(create))
}

/// A page of products.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProductList {
    /// The products on this page, by name.
    pub items: Vec<Product>,
    /// How many on this page.
    pub count: usize,
    /// Where this page is.
    pub pagination: Pagination,
}

/// Create a product. Also served as `POST /product` (the original CanaryPy route).
#[utoipa::path(post, path = "/api/v1/products", tag = "products", request_body = NewProduct,
    responses(
        (status = 201, body = Product),
        (status = 400, description = "invalid name or description", body = ErrorBody),
        (status = 409, description = "`PRODUCT_EXISTS`", body = ErrorBody),
        (status = 422, description = "missing field or wrong type", body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(name = %new.name))]
pub async fn create(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiJson(new): ApiJson<NewProduct>,
) -> ApiResult<(StatusCode, Json<Product>)> {
    new.validate()?;
    let product = state
        .store
        .create_product(&new, &who.name, state.now())
        .await?;
    Ok((StatusCode::CREATED, Json(product)))
}

/// List products by name.
#[utoipa::path(get, path = "/api/v1/products", tag = "products", params(PageParams),
    responses((status = 200, body = ProductList)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<App>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> ApiResult<Json<ProductList>> {
    let page = p.check()?;
    let found = state
        .store
        .list_products(page.offset(), page.limit())
        .await?;
    Ok(Json(ProductList {
        count: found.items.len(),
        pagination: page.of(found.total),
        items: found.items,
    }))
}

/// Show one product.
#[utoipa::path(get, path = "/api/v1/products/{name}", tag = "products",
    params(("name" = String, Path, description = "the product's name")),
    responses((status = 200, body = Product), (status = 404, description = "`PRODUCT_NOT_FOUND`", body = ErrorBody)))]
#[tracing::instrument(skip(state))]
pub async fn show(
    State(state): State<App>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Product>> {
    let name = super::product_in_path(name)?;
    Ok(Json(state.store.get_product(&name).await?))
}
