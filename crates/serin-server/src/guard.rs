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
use crate::routes::integrations::FLAGGER_PREFIX;
use crate::state::AppState;

/// See the module docs.
pub async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(needed) = required_role(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let now = state.now().timestamp_micros() as f64 / 1e6;
    // Failed authentications are counted per client address; an address that used
    // up its allowance is refused before any key lookup reaches the database.
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let client = crate::peer::client_address(peer, req.headers(), &state.config.trusted_proxies);
    let mut key = presented_key(req.headers()).map(str::to_string);
    if key.is_none() && req.uri().path().starts_with(FLAGGER_PREFIX) {
        // Reading a body costs more than reading a header: a throttled
        // address doesn't get that far.
        if state.auth_failures.exhausted(&client, now) {
            return too_many_failures();
        }
        match key_in_flagger_payload(req, state.config.body_timeout).await {
            Ok((again, found)) => {
                req = again;
                key = found;
            }
            Err(refusal) => return refusal,
        }
    }
    let key = key.as_deref();
    let cached = state.auth.cached(key);
    // A recently verified key passes even from a throttled address (so a flood from
    // a shared address doesn't lock its real users out); anything that would need a
    // database lookup is refused there.
    if cached.is_none() && state.auth_failures.exhausted(&client, now) {
        return too_many_failures();
    }
    let found = match cached {
        Some(p) => Ok(p),
        None => state.auth.authenticate(&state.store, key).await,
    };
    let principal = match found {
        Ok(p) => p,
        Err(e) => {
            if state
                .auth_failures
                .check(&client, now)
                .is_some_and(|v| !v.allowed)
            {
                return too_many_failures();
            }
            return e.into_response();
        }
    };
    if let Err(e) = authorize(&principal, needed) {
        return e.into_response();
    }
    let limiter = if principal.session.is_some() {
        &state.session_rate
    } else {
        &state.rate
    };
    // A proxy key on its own feed (the route long-poll, the lane seconds
    // every second) isn't limited: slowing it would only make the proxy late
    // with routes and the judges late with figures, and the key can do
    // nothing else.
    let feed =
        principal.role == serin_core::auth::Role::Proxy && needed == serin_core::auth::Role::Proxy;
    let verdict = if feed {
        None
    } else {
        limiter.check(&principal.key_id, now)
    };
    if let Some(v) = verdict.filter(|v| !v.allowed) {
        let mut resp = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            format!(
                "rate limit exceeded: {} requests per minute for this key or user; retry in {}s",
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

/// Flagger's webhooks can't carry headers, so their key may come in the
/// payload's `metadata.api_key`. Reads the body as every body is read (at
/// most 64 KiB here, within the body timeout) and puts it back.
async fn key_in_flagger_payload(
    req: Request,
    within: std::time::Duration,
) -> Result<(Request, Option<String>), Response> {
    let (parts, bytes) = crate::buffered(req, 64 * 1024, within).await?;
    let key = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.pointer("/metadata/api_key")?.as_str().map(str::to_string));
    Ok((
        Request::from_parts(parts, axum::body::Body::from(bytes)),
        key,
    ))
}

fn too_many_failures() -> Response {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMITED",
        "too many failed authentications from this address; wait a minute and use a valid API key",
    )
    .into_response()
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
