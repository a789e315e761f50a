//! Extractors that reject bad input with the API's error body.
//!
//! axum's own `Json`, `Path` and `Query` answer bad input with plain text. These
//! wrappers answer with [`ApiError`] and name the field, using
//! `serde_path_to_error` for the path into nested JSON (`signals[3].lane`):
//!
//! | input problem | status | code |
//! | --- | --- | --- |
//! | not `application/json` | 415 | `UNSUPPORTED_MEDIA_TYPE` |
//! | not JSON at all, truncated | 400 | `MALFORMED_JSON` |
//! | body over the size limit | 413 | `PAYLOAD_TOO_LARGE` |
//! | a required field missing | 422 | `MISSING_FIELD` |
//! | a field of the wrong JSON type | 422 | `INVALID_FIELD_TYPE` |
//! | a field the endpoint doesn't know | 422 | `UNKNOWN_FIELD` |
//! | a value outside what the field allows | 400 | `VALIDATION_FAILED` |
//! | a bad path or query parameter | 400 | `INVALID_PARAMETER` |
//!
//! Under `/api/v1/canary` and `/admin/canary` (the canary API's contract) the three 422
//! cases answer 400 `VALIDATION_FAILED` instead, naming the field and the problem.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::ApiError;

/// A JSON body, rejected with the API's error body.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let one_code = uses_one_validation_code(req.uri().path());
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        parse(&bytes).map(ApiJson).map_err(|e| {
            if one_code {
                e.as_validation_failed()
            } else {
                e
            }
        })
    }
}

/// The canary API's error table has one code for a request that fails validation —
/// `VALIDATION_FAILED`, 400 — so the canary routes answer a missing field, a wrong
/// type or an unknown field with it (the finer problem goes in `details.problem`).
fn uses_one_validation_code(path: &str) -> bool {
    path.starts_with("/api/v1/canary") || path.starts_with("/admin/canary")
}

fn body_error(e: BytesRejection) -> ApiError {
    body_unreadable(e.status() == StatusCode::PAYLOAD_TOO_LARGE, e.body_text())
}

/// A body that could not be read: too large (413), or broken off (400, the
/// cause to the log).
pub(crate) fn body_unreadable(too_large: bool, cause: String) -> ApiError {
    if too_large {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            "the request body is too large",
        )
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "MALFORMED_BODY",
            "the request body could not be read",
        )
        .log(cause)
    }
}

/// A JSON body that may be absent (empty or `null`), read like [`ApiJson`]
/// when present; for operations whose body is optional (a reason, a payload).
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let one_code = uses_one_validation_code(req.uri().path());
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        let text = bytes.trim_ascii();
        if text.is_empty() || text == b"null" {
            return Ok(OptionalJson(None));
        }
        parse(&bytes).map(|v| OptionalJson(Some(v))).map_err(|e| {
            if one_code {
                e.as_validation_failed()
            } else {
                e
            }
        })
    }
}

/// Deserializes `bytes` as `T`, classifying failures as the module docs list.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value: T = match serde_path_to_error::deserialize(&mut *de) {
        Ok(v) => v,
        Err(err) => {
            // A body that isn't JSON at all is reported as such, even when a field
            // error came first (`{} x`). Only failed requests pay for this check.
            if let Err(syntax) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                return Err(malformed(&syntax));
            }
            return Err(classify(err));
        }
    };
    // Trailing garbage after the value is a syntax error too.
    de.end().map_err(|e| malformed(&e))?;
    Ok(value)
}

fn malformed(e: &serde_json::Error) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "MALFORMED_JSON",
        format!("the body is not valid JSON: {e}"),
    )
    .details(json!({"line": e.line(), "column": e.column()}))
}

fn classify(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = err.path().to_string();
    let inner = err.inner();
    use serde_json::error::Category;
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => malformed(inner),
        Category::Data => {
            let text = strip_position(&inner.to_string());
            if let Some(name) = text
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next())
            {
                let field = if path == "." {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                };
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "MISSING_FIELD",
                    format!("{field}: is required"),
                )
                .details(json!({"field": field}))
            } else if text.starts_with("unknown field `") {
                let name = text
                    .trim_start_matches("unknown field `")
                    .split('`')
                    .next()
                    .unwrap_or("");
                let field = if path == "." {
                    name.to_string()
                } else {
                    path.clone()
                };
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "UNKNOWN_FIELD",
                    format!("{field}: {text}"),
                )
                .details(json!({"field": field}))
            } else if text.starts_with("invalid type") {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "INVALID_FIELD_TYPE",
                    format!("{path}: {text}"),
                )
                .details(json!({"field": path, "reason": text}))
            } else {
                ApiError::invalid(&path, &text)
            }
        }
    }
}

/// serde_json appends " at line L column C"; the field path says more.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Path parameters, rejected with the API's error body.
#[derive(Debug, Clone, Copy)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_PARAMETER",
                format!("bad path parameter: {}", e.body_text()),
            )),
            Err(e) => Err(ApiError::internal(e.body_text())),
        }
    }
}

/// Query parameters, rejected with the API's error body.
#[derive(Debug, Clone, Copy)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e: QueryRejection| {
                ApiError::new(StatusCode::BAD_REQUEST, "INVALID_PARAMETER", e.body_text())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serin_core::{NewProduct, SignalBatch};

    fn code_of<T: DeserializeOwned + std::fmt::Debug>(body: &str) -> (&'static str, String) {
        let e = parse::<T>(body.as_bytes()).unwrap_err();
        (e.code(), format!("{e:?}"))
    }

    #[test]
    fn classification() {
        assert_eq!(code_of::<NewProduct>("{").0, "MALFORMED_JSON");
        assert_eq!(code_of::<NewProduct>("{} x").0, "MALFORMED_JSON");
        assert_eq!(code_of::<NewProduct>("").0, "MALFORMED_JSON");
        assert_eq!(code_of::<NewProduct>("{}").0, "MISSING_FIELD");
        assert_eq!(
            code_of::<NewProduct>(r#"{"name": 3}"#).0,
            "INVALID_FIELD_TYPE"
        );
        assert_eq!(
            code_of::<NewProduct>(r#"{"name": "a", "x": 1}"#).0,
            "UNKNOWN_FIELD"
        );
        let (code, debug) = code_of::<SignalBatch>(
            r#"{"signals":[{"product_name":"a","version":"1","lane":"blue","name":"x","value":1}]}"#,
        );
        assert_eq!(code, "VALIDATION_FAILED");
        assert!(debug.contains("signals[0].lane"), "{debug}");
    }
}
