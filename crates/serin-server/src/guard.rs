//! The middleware in front of every matched route: authenticate, authorize by the
//! role policy, take a rate-limit token, then stamp the rate-limit headers on the
//! answer. The principal is handed to handlers as a request extension.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::{authorize, presented_key, required_role};
use crate::error::ApiError;
use crate::rate::Verdict;
use crate::state::AppState;

/// See the module docs.
pub async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(needed) = required_role(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let principal = match state
        .auth
        .authenticate(&state.store, presented_key(req.headers()))
        .await
    {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = authorize(&principal, needed) {
        return e.into_response();
    }
    let now = state.now().timestamp_micros() as f64 / 1e6;
    let verdict = state.rate.check(&principal.key_id, now);
    if let Some(v) = verdict.filter(|v| !v.allowed) {
        let mut resp = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            format!(
                "rate limit exceeded: {} requests per minute per API key; retry in {}s",
                v.limit, v.retry_after
            ),
        )
        .details(json!({"limit": v.limit, "retry_after_seconds": v.retry_after}))
        .into_response();
        stamp(&mut resp, v);
        if let Ok(h) = HeaderValue::from_str(&v.retry_after.to_string()) {
            resp.headers_mut().insert("retry-after", h);
        }
        return resp;
    }
    req.extensions_mut().insert(principal);
    let mut resp = next.run(req).await;
    if let Some(v) = verdict {
        stamp(&mut resp, v);
    }
    resp
}

fn stamp(resp: &mut Response, v: Verdict) {
    let h = resp.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", v.limit as u64),
        ("x-ratelimit-remaining", u64::from(v.remaining)),
        ("x-ratelimit-reset", v.reset),
    ] {
        if let Ok(val) = HeaderValue::from_str(&value.to_string()) {
            h.insert(name, val);
        }
    }
}
