//! A typed async client for Serin's HTTP API.
//!
//! Requests and responses use `serin-core`'s types, so a change of the wire format
//! is a compile error here rather than a surprise at run time. A failed call is a
//! [`ClientError::Api`] carrying the server's error code and message, or a
//! transport error when no answer came.
//!
//! ```no_run
//! # async fn demo() -> Result<(), serin_client::ClientError> {
//! let client = serin_client::Client::new("http://127.0.0.1:8080")?;
//! let stable = client.latest_stable("web").await?;
//! println!("{} is stable", stable.version);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use serin_core::canary::metrics::{HealthReport, MetricsSnapshot};
use serin_core::canary::worker::{Heartbeat, NewWorker, Worker, WorkerStatus};
use serin_core::canary::{Deployment, NewDeployment, Profiles};
use serin_core::event::Event;
use serin_core::traffic::routing::RouteDecision;
use serin_core::{
    BatchAccepted, Lane, NewProduct, NewRelease, NewSignal, Product, Release, ReleasePatch,
    ReleaseStatus, Signal, SignalBatch,
};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error body.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The server's machine code, e.g. `PRODUCT_NOT_FOUND`.
        code: String,
        /// The server's message.
        message: String,
        /// The server's details object.
        details: Value,
    },
    /// No usable answer: connection refused, timeout, or a body that isn't JSON.
    #[error("cannot reach Serin at {url}: {reason}")]
    Transport {
        /// The URL called.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The base URL can't be used.
    #[error("invalid Serin URL `{0}`: use http://HOST:PORT")]
    InvalidUrl(String),
}

impl ClientError {
    /// The server's error code, if the server answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// The audit log's filters; every field is optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    /// Only this kind of resource (`deployment`, `release`, …).
    pub resource_type: Option<String>,
    /// Only this resource.
    pub resource_id: Option<String>,
    /// Only this actor's changes.
    pub actor: Option<String>,
    /// Only this action (event type).
    pub action: Option<String>,
    /// At or after this instant.
    pub since: Option<serin_core::Timestamp>,
    /// Before this instant.
    pub until: Option<serin_core::Timestamp>,
    /// Page number, from 1.
    pub page: Option<u32>,
    /// Entries per page (1–100).
    pub page_size: Option<u32>,
}

/// Called before the client waits out a 429: how long it will wait.
pub type OnRateLimited = std::sync::Arc<dyn Fn(std::time::Duration) + Send + Sync>;

/// A handle to one Serin server. Cheap to clone.
///
/// A request the server refuses with 429 and a `Retry-After` (the per-key
/// rate limit, which refuses before doing anything, so this is safe for every
/// method) is sent again after that wait, as long as the waits of one call add up to
/// at most [`Client::with_rate_limit_wait`] (30 s by default); past that the
/// 429 is the call's error.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    api_key: Option<String>,
    most_wait: std::time::Duration,
    on_rate_limited: Option<OnRateLimited>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("api_key", &self.api_key.as_ref().map(|_| "…"))
            .field("most_wait", &self.most_wait)
            .finish_non_exhaustive()
    }
}

/// The longest a call waits out 429s, by default.
const MOST_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The wait a 429 asks for: its `Retry-After` in seconds (1 to 60). `None`
/// for a 429 without one: only the per-key rate limit sends it, and only it
/// refuses before doing anything (a concurrency limit may come after work).
fn retry_after(resp: &reqwest::Response) -> Option<std::time::Duration> {
    let secs = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(std::time::Duration::from_secs(secs.clamp(1, 60)))
}

impl Client {
    /// A client for the server at `base_url` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base_url: &str) -> Result<Client, ClientError> {
        let base = base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) || base.len() < 8 {
            return Err(ClientError::InvalidUrl(base_url.to_string()));
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| ClientError::InvalidUrl(format!("{base_url}: {e}")))?;
        Ok(Client {
            base,
            http,
            api_key: None,
            most_wait: MOST_WAIT,
            on_rate_limited: None,
        })
    }

    /// How long one call may wait out 429s in all (`ZERO`: never wait).
    #[must_use]
    pub fn with_rate_limit_wait(mut self, most: std::time::Duration) -> Self {
        self.most_wait = most;
        self
    }

    /// Calls `f` with the wait before each 429 is waited out (a CLI says so).
    #[must_use]
    pub fn on_rate_limited(mut self, f: OnRateLimited) -> Self {
        self.on_rate_limited = Some(f);
        self
    }

    /// Sends `Authorization: Bearer KEY` with every request.
    #[must_use]
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The key or session token sent with every request, if any.
    pub fn api_key(&self) -> Option<&str> {
        self.api_key.as_deref()
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sends a request, waiting out 429s (see [`Client`]); the answer.
    pub(crate) async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        url: &str,
        body: Option<&B>,
    ) -> Result<reqwest::Response, ClientError> {
        let mut waited = std::time::Duration::ZERO;
        loop {
            let mut req = self.http.request(method.clone(), url);
            if let Some(key) = &self.api_key {
                req = req.bearer_auth(key);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req.send().await.map_err(|e| ClientError::Transport {
                url: url.to_string(),
                reason: describe(&e),
            })?;
            if resp.status() != StatusCode::TOO_MANY_REQUESTS {
                return Ok(resp);
            }
            let Some(wait) = retry_after(&resp).filter(|w| waited + *w <= self.most_wait) else {
                return Ok(resp);
            };
            if let Some(f) = &self.on_rate_limited {
                f(wait);
            }
            tokio::time::sleep(wait).await;
            waited += wait;
        }
    }

    async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let url = format!("{}{}", self.base, path);
        let resp = self.send(method, &url, body).await?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| ClientError::Transport {
            url: url.clone(),
            reason: describe(&e),
        })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| ClientError::Transport {
                url: url.clone(),
                reason: format!("unexpected answer (HTTP {status}): {e}"),
            });
        }
        Err(api_error(status, &bytes))
    }

    /// `GET /api/v1/health`.
    pub async fn health(&self) -> Result<Value, ClientError> {
        self.call::<(), _>(Method::GET, "/api/v1/health", None)
            .await
    }

    /// Creates a product.
    pub async fn create_product(&self, new: &NewProduct) -> Result<Product, ClientError> {
        self.call(Method::POST, "/api/v1/products", Some(new)).await
    }

    /// Every item of a paginated list, page by page (100 at a time).
    async fn all_pages<T: DeserializeOwned>(
        &self,
        path: &str,
        field: &str,
    ) -> Result<Vec<T>, ClientError> {
        let mut out = Vec::new();
        let sep = if path.contains('?') { '&' } else { '?' };
        for page in 1.. {
            let v: Value = self
                .call::<(), _>(
                    Method::GET,
                    &format!("{path}{sep}page={page}&page_size=100"),
                    None,
                )
                .await?;
            let items: Vec<T> =
                serde_json::from_value(v[field].clone()).map_err(|e| ClientError::Transport {
                    url: format!("{}{path}", self.base),
                    reason: format!("unexpected list: {e}"),
                })?;
            out.extend(items);
            if v["pagination"]["has_next"] != json!(true) {
                break;
            }
        }
        Ok(out)
    }

    /// All products.
    pub async fn list_products(&self) -> Result<Vec<Product>, ClientError> {
        self.all_pages("/api/v1/products", "items").await
    }

    /// One product.
    pub async fn get_product(&self, name: &str) -> Result<Product, ClientError> {
        self.call::<(), _>(
            Method::GET,
            &format!("/api/v1/products/{}", seg(name)),
            None,
        )
        .await
    }

    /// Creates a `draft` release.
    pub async fn create_release(&self, new: &NewRelease) -> Result<Release, ClientError> {
        self.call(Method::POST, "/api/v1/releases", Some(new)).await
    }

    /// A product's releases, newest first.
    pub async fn list_releases(&self, product: &str) -> Result<Vec<Release>, ClientError> {
        self.all_pages(
            &format!("/api/v1/products/{}/releases", seg(product)),
            "items",
        )
        .await
    }

    /// One release.
    pub async fn get_release(&self, id: i64) -> Result<Release, ClientError> {
        self.call::<(), _>(Method::GET, &format!("/api/v1/releases/{id}"), None)
            .await
    }

    /// Changes a release's status.
    pub async fn set_release_status(
        &self,
        id: i64,
        status: ReleaseStatus,
    ) -> Result<Release, ClientError> {
        let patch = ReleasePatch {
            status: Some(status),
            description: None,
            override_reason: None,
        };
        self.call(
            Method::PATCH,
            &format!("/api/v1/releases/{id}"),
            Some(&patch),
        )
        .await
    }

    /// The product's latest stable release.
    pub async fn latest_stable(&self, product: &str) -> Result<Release, ClientError> {
        self.call::<(), _>(
            Method::GET,
            &format!("/release/{}/latest", seg(product)),
            None,
        )
        .await
    }

    /// Records one signal.
    pub async fn send_signal(&self, signal: &NewSignal) -> Result<Signal, ClientError> {
        self.call(Method::POST, "/api/v1/signals", Some(signal))
            .await
    }

    /// Records many signals, all or none.
    pub async fn send_signals(&self, signals: Vec<NewSignal>) -> Result<usize, ClientError> {
        let batch = SignalBatch { signals };
        Ok(self
            .call::<_, BatchAccepted>(Method::POST, "/api/v1/signals/batch", Some(&batch))
            .await?
            .accepted)
    }
}

mod canary;
pub use canary::*;

mod manager;

mod router;
pub use router::*;

fn api_error(status: StatusCode, bytes: &[u8]) -> ClientError {
    #[derive(serde::Deserialize)]
    struct Body {
        error: String,
        code: String,
        #[serde(default)]
        details: Value,
    }
    match serde_json::from_slice::<Body>(bytes) {
        Ok(b) => ClientError::Api {
            status: status.as_u16(),
            code: b.code,
            message: b.error,
            details: b.details,
        },
        Err(_) => ClientError::Api {
            status: status.as_u16(),
            code: "UNKNOWN_ERROR".into(),
            message: String::from_utf8_lossy(bytes).chars().take(200).collect(),
            details: Value::Null,
        },
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "connection refused or host unreachable".into()
    } else if e.is_timeout() {
        "timed out".into()
    } else {
        e.to_string()
    }
}

/// Product names are restricted to URL-safe characters by the server; anything else
/// is percent-encoded so that a bad name reaches the server and gets its error.
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_router_agrees_with_the_server_function() {
        let new: NewDeployment = serde_json::from_value(json!({
            "queue_name": "q", "stable_version": "a", "canary_version": "b", "percentage": 37
        }))
        .unwrap();
        let d = new
            .resolve("canary_x".into(), "t", chrono::Utc::now())
            .unwrap()
            .0;
        let r = LocalRouter::new(d.clone());
        for i in 0..2000 {
            let key = format!("user-{i}");
            assert_eq!(
                r.lane(Some(&key), 0),
                route_locally("q", Some(&d), Some(&key), 0).lane
            );
        }
    }

    #[test]
    fn urls_and_errors() {
        assert!(Client::new("localhost:8080").is_err());
        assert_eq!(Client::new("http://h:1/").unwrap().base_url(), "http://h:1");
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
        let e = api_error(
            StatusCode::NOT_FOUND,
            br#"{"error":"nope","code":"PRODUCT_NOT_FOUND","details":{}}"#,
        );
        assert_eq!(e.code(), Some("PRODUCT_NOT_FOUND"));
        let e = api_error(StatusCode::BAD_GATEWAY, b"<html>");
        assert_eq!(e.code(), Some("UNKNOWN_ERROR"));
    }
}
