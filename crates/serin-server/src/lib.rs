//! Serin's control plane: the HTTP API over the store.
//!
//! [`app`] builds the whole router from one `router()` per feature; [`run`] serves
//! it on a listener until a shutdown future resolves, so tests bind port 0 and stop
//! the server cleanly.
//!
//! Layout:
//! - [`error`]: [`error::ApiError`], the single mapping from failures (the
//!   store's, core's and the application's [`serin_app::AppError`]) to responses.
//! - [`extract`]: JSON, path and query extractors that reject with that body.
//! - [`routes`]: one module and one `router()` per feature; handlers speak HTTP
//!   and call the services of `serin-app`.
//! - [`auth`], [`guard`], [`rate`], [`peer`], [`accounts`]: API keys and
//!   sessions, the role policy, rate limits, client addresses, passwords.
//! - [`openapi`]: the generated OpenAPI document and the documented aliases.
//! - [`state`]: [`AppState`], the application ([`serin_app::App`]) and the
//!   HTTP cross-cutting parts, shared by every handler.
//!
//! The services and background loops live in `serin-app`; their modules are
//! re-exported here under their old paths for the binary and the tests.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod auth;
pub mod error;
pub mod extract;
pub mod guard;
pub mod openapi;
pub mod peer;
pub mod rate;
pub mod routes;
pub mod state;
pub mod telemetry;

pub use serin_app::{
    admission, config, controller, engines, hooks, hub, lanefeed, latest, leadership, notes,
    notifier, outbound, probe, releaser, routewatch, runtime, secrets,
};

use std::future::Future;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

pub use error::{ApiError, ErrorBody};
pub use state::{AppState, ServerConfig};

/// Largest request body accepted (a batch of 50,000 signals fits).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(routes::health::router())
        .merge(routes::cluster::router())
        .merge(routes::integrations::router())
        .merge(routes::products::router())
        .merge(routes::releases::router())
        .merge(routes::signals::router())
        .merge(routes::canary::router())
        .merge(routes::workers::router())
        .merge(routes::admin_canary::router())
        .merge(routes::audit::router())
        .merge(routes::api_keys::router())
        .merge(routes::proxies::router())
        .merge(routes::rollouts::router())
        .merge(routes::secrets::router())
        .merge(routes::users::router())
        .merge(routes::environments::router())
        .merge(routes::deployments::router())
        .merge(routes::docs::router())
        .merge(routes::dashboard::router())
        .route("/openapi.json", axum::routing::get(openapi_json))
        // Innermost: only a caller the guard let through gets its body read.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            read_body_in_time,
        ))
        // Only matched routes are guarded: an unknown path is a 404, not a 401.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        // Outside the guard, so that refused requests are counted too.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            telemetry::count,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(|_panic| {
            ApiError::internal("a handler panicked").into_response()
        }))
        .layer(TraceLayer::new_for_http())
}

/// Reads a request's whole body before the handler runs, within the body
/// timeout (`--body-timeout`, from the end of the headers) and the size limit:
/// a client that sends its body slowly, a byte now and then, is answered 408
/// and the connection is freed, where a per-read timeout would let it hold
/// the connection for as long as it keeps dripping.
/// Reads a request's whole body, at most `limit` bytes within `within`:
/// 413 past the limit, 408 (closing the connection) past the time.
pub(crate) async fn buffered(
    req: axum::extract::Request,
    limit: usize,
    within: std::time::Duration,
) -> Result<(axum::http::request::Parts, axum::body::Bytes), axum::response::Response> {
    let (parts, body) = req.into_parts();
    let read = axum::body::to_bytes(body, limit);
    match tokio::time::timeout(within, read).await {
        Ok(Ok(b)) => Ok((parts, b)),
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            Err(extract::body_unreadable(too_large, e.to_string()).into_response())
        }
        Err(_) => {
            let mut resp = ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "BODY_TIMEOUT",
                format!(
                    "the request body did not arrive within {}s",
                    within.as_secs()
                ),
            )
            .into_response();
            resp.headers_mut().insert(
                header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            Err(resp)
        }
    }
}

async fn read_body_in_time(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    // Reads carry no body Serin looks at: nothing is buffered for them.
    if matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    ) {
        return next.run(req).await;
    }
    let (parts, bytes) = match buffered(req, MAX_BODY_BYTES, state.config.body_timeout).await {
        Ok(read) => read,
        Err(refusal) => return refusal,
    };
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

async fn openapi_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi::document_json(),
    )
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "ROUTE_NOT_FOUND",
        format!("no route for {}", uri.path()),
    )
    .details(serde_json::json!({"path": uri.path()}))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("{method} is not allowed on {}", uri.path()),
    )
    .details(serde_json::json!({"method": method.as_str(), "path": uri.path()}))
}

/// How the API treats its clients' connections. A client that opens many
/// connections, or sends its headers a byte at a time, must not take the
/// server from everyone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time a client has to send a request's headers — the first request's and
    /// each next one's on a kept-alive connection, so an idle connection is
    /// closed after it too.
    pub header_timeout: std::time::Duration,
    /// Connections open at once; beyond, new ones wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: std::time::Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes the
/// requests in flight (for at most 30 s), with the default [`Limits`].
pub async fn run(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run_with(listener, app, Limits::default(), shutdown).await
}

/// [`run`] with the given [`Limits`].
pub async fn run_with(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::ServiceExt;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        // A free slot first: at the cap, connections wait in the backlog.
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s.expect("never closed"),
            () = &mut shutdown => break,
        };
        let (stream, addr) = tokio::select! {
            c = serin_proxy::accept(&listener) => c,
            () = &mut shutdown => break,
        };
        let app = app.clone();
        // The client's address reaches handlers (failed authentications are
        // counted per address).
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(addr));
                app.clone().oneshot(req)
            });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let wait = limits.header_timeout;
        tokio::spawn(async move {
            // A connection that sends nothing at all is closed (and its slot freed).
            if !serin_proxy::speaks_within(&stream, wait).await {
                return drop(slot);
            }
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            let _ = watcher.watch(conn).await;
            drop(slot);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), graceful.shutdown()).await;
    Ok(())
}
