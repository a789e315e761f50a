//! The one place where failures become HTTP responses.
//!
//! Every error from every route has the same body:
//! `{"error": "<message for a person>", "code": "<MACHINE_CODE>", "details": {...}}`.
//! Each layer has its own error enum (`DomainError` in core, `StoreError` in the
//! store, extractor rejections here); they are converted into [`ApiError`] once,
//! below. An `ApiError` carries a message for the client and, separately, a detail
//! for the log: internal text (SQL errors, paths, panics) is logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use serin_core::DomainError;
use serin_core::auth::Role;
use serin_store::{Entity, StoreError};

/// The error body of every route.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in words a person can act on.
    pub error: String,
    /// A stable machine-readable code, e.g. `PRODUCT_NOT_FOUND`.
    pub code: String,
    /// Structured facts about the error; `field` names the offending input.
    #[schema(value_type = Object)]
    pub details: Value,
}

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Value,
    /// Logged, never sent.
    log: Option<String>,
}

impl ApiError {
    /// An error with a status, code and client message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: json!({}),
            log: None,
        }
    }

    /// Adds structured details.
    #[must_use]
    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// Adds a detail for the log only.
    #[must_use]
    pub fn log(mut self, detail: impl Into<String>) -> Self {
        self.log = Some(detail.into());
        self
    }

    /// The machine code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// A field-level validation failure (400 `VALIDATION_FAILED`).
    pub fn invalid(field: &str, reason: &str) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
            format!("{field}: {reason}"),
        )
        .details(json!({"field": field, "reason": reason}))
    }

    /// The same error as `VALIDATION_FAILED` (400) when it is one of the
    /// 422 request-shape errors; other errors unchanged.
    #[must_use]
    pub fn as_validation_failed(self) -> Self {
        if self.status != StatusCode::UNPROCESSABLE_ENTITY {
            return self;
        }
        let mut details = self.details;
        if let Some(d) = details.as_object_mut() {
            d.insert("problem".into(), json!(self.code));
        }
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "VALIDATION_FAILED",
            message: self.message,
            details,
            log: self.log,
        }
    }

    /// 401: no valid credentials.
    pub fn unauthorized(message: &str) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }

    /// 403: the caller's role is too weak.
    pub fn forbidden(have: Role, need: Role) -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            format!("this needs the {need} role; your key has {have}"),
        )
        .details(json!({"role": have, "required_role": need}))
    }

    /// 500 with a generic message; `detail` goes to the log.
    pub fn internal(detail: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "the server failed to handle this request; it has been logged",
        )
        .log(detail)
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let message = e.to_string();
        match e {
            DomainError::Invalid { field, reason } => ApiError::invalid(&field, &reason),
            DomainError::IllegalTransition { from, to, allowed } => {
                ApiError::new(StatusCode::CONFLICT, "INVALID_STATUS_TRANSITION", message)
                    .details(json!({"field": "status", "from": from, "to": to, "allowed": allowed}))
            }
            DomainError::InvalidPercentage { value } => {
                ApiError::new(StatusCode::BAD_REQUEST, "INVALID_PERCENTAGE", message)
                    .details(json!({"field": "percentage", "value": value}))
            }
            DomainError::NotActive { id, status, .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "DEPLOYMENT_NOT_ACTIVE", message)
                    .details(json!({"deployment_id": id, "status": status}))
            }
            DomainError::Refused { code, kind, .. } => {
                ApiError::new(status_of(kind), code, message)
            }
            DomainError::StillActive { id, status } => {
                ApiError::new(StatusCode::BAD_REQUEST, "DEPLOYMENT_ACTIVE", message)
                    .details(json!({"deployment_id": id, "status": status}))
            }
        }
    }
}

fn entity_words(entity: Entity) -> (&'static str, &'static str, &'static str, &'static str) {
    // (not-found code, exists code, noun, the field that names it)
    match entity {
        Entity::Product => ("PRODUCT_NOT_FOUND", "PRODUCT_EXISTS", "product", "name"),
        Entity::Release => ("RELEASE_NOT_FOUND", "RELEASE_EXISTS", "release", "version"),
        Entity::Deployment => (
            "DEPLOYMENT_NOT_FOUND",
            "DEPLOYMENT_EXISTS",
            "deployment",
            "queue_name",
        ),
        Entity::Worker => ("WORKER_NOT_FOUND", "WORKER_EXISTS", "worker", "id"),
        Entity::ApiKey => ("API_KEY_NOT_FOUND", "API_KEY_EXISTS", "api_key", "name"),
        Entity::User => ("USER_NOT_FOUND", "USER_EXISTS", "user", "email"),
        Entity::Secret => ("SECRET_NOT_FOUND", "SECRET_EXISTS", "secret", "name"),
    }
}

/// The one status of each kind of refusal.
fn status_of(kind: serin_core::error::Kind) -> StatusCode {
    use serin_core::error::Kind;
    match kind {
        Kind::NotFound => StatusCode::NOT_FOUND,
        Kind::Conflict => StatusCode::CONFLICT,
        Kind::Forbidden => StatusCode::FORBIDDEN,
        Kind::Invalid => StatusCode::BAD_REQUEST,
    }
}

impl From<serin_app::AppError> for ApiError {
    fn from(e: serin_app::AppError) -> Self {
        use serin_app::AppError;
        match e {
            AppError::Store(e) => e.into(),
            AppError::Domain(e) => e.into(),
            AppError::Invalid { field, reason } => ApiError::invalid(&field, &reason),
            AppError::Refused {
                kind,
                code,
                message,
                details,
            } => {
                let e = ApiError::new(status_of(kind), code, message);
                match details {
                    Some(d) => e.details(d),
                    None => e,
                }
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { entity, key, field } => {
                let (code, _, what, _) = entity_words(entity);
                let mut details = json!({ what: key });
                if let Some(f) = field {
                    details["field"] = json!(f);
                }
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    code,
                    format!("{what} `{key}` does not exist"),
                )
                .details(details)
            }
            StoreError::NoStableRelease { product } => ApiError::new(
                StatusCode::NOT_FOUND,
                "NO_STABLE_RELEASE",
                format!("product `{product}` has no released release yet"),
            )
            .details(json!({"product": product})),
            StoreError::Conflict {
                entity: Entity::Deployment,
                key,
            } => ApiError::new(
                StatusCode::CONFLICT,
                "DEPLOYMENT_EXISTS",
                format!("an active deployment already exists for this queue and tenant: {key}"),
            )
            .details(json!({"field": "queue_name", "existing_deployment_id": key})),
            StoreError::Conflict { entity, key } => {
                let (_, code, what, field) = entity_words(entity);
                ApiError::new(
                    StatusCode::CONFLICT,
                    code,
                    format!("{what} `{key}` already exists"),
                )
                .details(json!({"field": field, what: key}))
            }
            StoreError::ConcurrencyLimit { tenant, limit } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "CONCURRENCY_LIMIT",
                format!("too many active deployments: the limit is {limit} per tenant"),
            )
            .details(json!({"tenant_id": tenant, "limit": limit})),
            StoreError::RevisionMismatch { expected, actual } => ApiError::new(
                StatusCode::CONFLICT,
                "REVISION_CONFLICT",
                "the deployment changed since you read it; read it again and retry",
            )
            .details(json!({"expected_revision": expected, "current_revision": actual})),
            StoreError::Domain(d) => d.into(),
            StoreError::Unavailable(detail) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "DATABASE_UNAVAILABLE",
                "the database is unavailable; retry shortly",
            )
            .log(detail),
            StoreError::Migration(detail) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "NOT_READY",
                "the database schema is not current; run `serin migrate`",
            )
            .log(detail),
            StoreError::Fenced { epoch } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "NOT_LEADER",
                "this replica no longer leads the cluster; retry shortly",
            )
            .log(format!("fenced write at epoch {epoch}")),
            StoreError::Backend(detail) => ApiError::internal(detail),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(
                code = self.code,
                detail = self.log.as_deref().unwrap_or(""),
                "{}",
                self.message
            );
        } else if let Some(log) = &self.log {
            tracing::debug!(code = self.code, detail = %log, "{}", self.message);
        }
        let body = ErrorBody {
            error: self.message,
            code: self.code.to_string(),
            details: self.details,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// The handler's result type.
pub type ApiResult<T> = Result<T, ApiError>;
