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
use serin_core::deployment::{Deployment, NewDeployment, Profiles};
use serin_core::event::Event;
use serin_core::metrics::{HealthReport, MetricsSnapshot};
use serin_core::routing::RouteDecision;
use serin_core::worker::{Heartbeat, NewWorker, Worker, WorkerStatus};
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

/// A handle to one Serin server. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    api_key: Option<String>,
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
        })
    }

    /// Sends `Authorization: Bearer KEY` with every request.
    #[must_use]
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, &url);
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let transport = |e: reqwest::Error| ClientError::Transport {
            url: url.clone(),
            reason: describe(&e),
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(transport)?;
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

/// Both lanes' metrics.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct LaneMetrics {
    /// The stable lane.
    pub stable: MetricsSnapshot,
    /// The canary lane.
    pub canary: MetricsSnapshot,
}

impl Client {
    fn dep(id: &str) -> String {
        format!("/api/v1/canary/deployments/{}", seg(id))
    }

    /// Starts a canary deployment.
    pub async fn create_deployment(&self, new: &NewDeployment) -> Result<Deployment, ClientError> {
        self.call(Method::POST, "/api/v1/canary/deployments", Some(new))
            .await
    }

    /// Every deployment, newest first.
    pub async fn list_deployments(&self) -> Result<Vec<Deployment>, ClientError> {
        self.all_pages("/api/v1/canary/deployments", "deployments")
            .await
    }

    /// One deployment.
    pub async fn get_deployment(&self, id: &str) -> Result<Deployment, ClientError> {
        self.call::<(), _>(Method::GET, &Self::dep(id), None).await
    }

    /// Sets the traffic split; answers seed 004's `{success, percentage, updated_at}`.
    pub async fn set_percentage(&self, id: &str, percentage: u8) -> Result<Value, ClientError> {
        self.call(
            Method::PUT,
            &format!("{}/percentage", Self::dep(id)),
            Some(&json!({"percentage": percentage})),
        )
        .await
    }

    /// Promotes to 100%.
    pub async fn promote(&self, id: &str) -> Result<Value, ClientError> {
        self.call::<(), _>(Method::POST, &format!("{}/promote", Self::dep(id)), None)
            .await
    }

    /// Rolls back to 0% with a reason.
    pub async fn rollback(&self, id: &str, reason: &str) -> Result<Value, ClientError> {
        self.call(
            Method::POST,
            &format!("{}/rollback", Self::dep(id)),
            Some(&json!({"reason": reason})),
        )
        .await
    }

    /// Pauses a deployment's automation (manual changes stay allowed).
    pub async fn pause(&self, id: &str, reason: Option<&str>) -> Result<Value, ClientError> {
        self.call(
            Method::POST,
            &format!("{}/pause", Self::dep(id)),
            Some(&json!({"reason": reason})),
        )
        .await
    }

    /// Resumes a paused deployment.
    pub async fn resume(&self, id: &str) -> Result<Value, ClientError> {
        self.call::<(), _>(Method::POST, &format!("{}/resume", Self::dep(id)), None)
            .await
    }

    /// A deployment's rollout: steps, position, what it waits for, latest judgement.
    pub async fn rollout(&self, id: &str) -> Result<Value, ClientError> {
        self.call::<(), _>(Method::GET, &format!("{}/rollout", Self::dep(id)), None)
            .await
    }

    /// Continues past a pause that waits for a person, or approves an approval gate.
    pub async fn continue_rollout(&self, id: &str) -> Result<Value, ClientError> {
        self.call::<(), _>(Method::POST, &format!("{}/continue", Self::dep(id)), None)
            .await
    }

    /// Aborts a rollout: all traffic to stable now.
    pub async fn abort(&self, id: &str, reason: Option<&str>) -> Result<Value, ClientError> {
        self.call(
            Method::POST,
            &format!("{}/abort", Self::dep(id)),
            Some(&json!({"reason": reason})),
        )
        .await
    }

    /// Starts a multi-target rollout: `{"targets": [...], "rollout": {...}}`.
    pub async fn create_rollout_group(&self, body: &Value) -> Result<Value, ClientError> {
        self.call(Method::POST, "/api/v1/rollouts", Some(body))
            .await
    }

    /// A rollout group with its targets and events.
    pub async fn rollout_group(&self, id: &str) -> Result<Value, ClientError> {
        self.call::<(), _>(Method::GET, &format!("/api/v1/rollouts/{}", seg(id)), None)
            .await
    }

    /// Deletes a finished deployment.
    pub async fn delete_deployment(&self, id: &str) -> Result<(), ClientError> {
        self.call_empty(Method::DELETE, &Self::dep(id)).await
    }

    /// A call whose success has no body (204).
    async fn call_empty(&self, method: Method, path: &str) -> Result<(), ClientError> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, &url);
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key);
        }
        let resp = req.send().await.map_err(|e| ClientError::Transport {
            url: url.clone(),
            reason: describe(&e),
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let bytes = resp.bytes().await.map_err(|e| ClientError::Transport {
            url,
            reason: describe(&e),
        })?;
        Err(api_error(status, &bytes))
    }

    /// A deployment's health against its thresholds.
    pub async fn deployment_health(&self, id: &str) -> Result<HealthReport, ClientError> {
        self.call::<(), _>(Method::GET, &format!("{}/health", Self::dep(id)), None)
            .await
    }

    /// Both lanes' metrics.
    pub async fn metrics(&self, id: &str) -> Result<LaneMetrics, ClientError> {
        self.call::<(), _>(Method::GET, &format!("{}/metrics", Self::dep(id)), None)
            .await
    }

    /// A deployment's events, newest first (one page).
    pub async fn events(
        &self,
        id: &str,
        page: u32,
        page_size: u32,
    ) -> Result<Vec<Event>, ClientError> {
        let v: Value = self
            .call::<(), _>(
                Method::GET,
                &format!("{}/events?page={page}&page_size={page_size}", Self::dep(id)),
                None,
            )
            .await?;
        serde_json::from_value(v["events"].clone()).map_err(|e| ClientError::Transport {
            url: Self::dep(id),
            reason: format!("unexpected events: {e}"),
        })
    }

    /// A page of the audit log, newest first: the server's answer as it is
    /// (`audit_logs`, `count`, `pagination`).
    pub async fn audit_logs(&self, q: &AuditQuery) -> Result<Value, ClientError> {
        let mut url =
            reqwest::Url::parse("http://audit.invalid/api/v1/audit-logs").expect("a valid URL");
        {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in [
                ("resource_type", q.resource_type.clone()),
                ("resource_id", q.resource_id.clone()),
                ("actor", q.actor.clone()),
                ("action", q.action.clone()),
                ("since", q.since.map(|t| t.to_rfc3339())),
                ("until", q.until.map(|t| t.to_rfc3339())),
                ("page", q.page.map(|n| n.to_string())),
                ("page_size", q.page_size.map(|n| n.to_string())),
            ] {
                if let Some(v) = v {
                    pairs.append_pair(k, &v);
                }
            }
        }
        let path = match url.query() {
            Some(qs) => format!("{}?{qs}", url.path()),
            None => url.path().to_string(),
        };
        self.call::<(), _>(Method::GET, &path, None).await
    }

    /// The configuration profiles.
    pub async fn profiles(&self) -> Result<Profiles, ClientError> {
        self.call::<(), _>(Method::GET, "/api/v1/canary/config/profiles", None)
            .await
    }

    /// Where a job on `queue` with `key` goes, decided by the server.
    pub async fn route(
        &self,
        queue: &str,
        key: Option<&str>,
    ) -> Result<RouteDecision, ClientError> {
        let mut path = format!("/api/v1/canary/route?queue={}", seg(queue));
        if let Some(k) = key {
            path.push_str(&format!("&key={}", seg(k)));
        }
        self.call::<(), _>(Method::GET, &path, None).await
    }

    /// The route set for proxies; with `have`, waits up to `wait_secs` for a
    /// version other than it.
    pub async fn proxy_routes(
        &self,
        have: Option<&str>,
        wait_secs: u64,
        proxy_id: &str,
        name: &str,
    ) -> Result<serin_core::proxy::RouteSet, ClientError> {
        let mut path = format!(
            "/api/v1/proxy/routes?proxy_id={}&name={}",
            seg(proxy_id),
            seg(name)
        );
        if let Some(v) = have {
            path.push_str(&format!("&version={}&wait={wait_secs}s", seg(v)));
        }
        self.call::<(), _>(Method::GET, &path, None).await
    }

    /// Sends a proxy's finished seconds.
    pub async fn report_lane_metrics(
        &self,
        report: &serin_core::proxy::MetricsReport,
    ) -> Result<Value, ClientError> {
        self.call(Method::POST, "/api/v1/proxy/metrics", Some(report))
            .await
    }

    /// Proxies the control plane has heard from.
    pub async fn proxies(&self) -> Result<Value, ClientError> {
        self.call::<(), _>(Method::GET, "/api/v1/proxies", None)
            .await
    }

    /// Changes a deployment's upstreams, request match or traffic rules.
    pub async fn set_routing(
        &self,
        id: &str,
        change: &serin_core::deployment::RoutingChange,
    ) -> Result<Deployment, ClientError> {
        self.call(
            Method::PUT,
            &format!("/api/v1/canary/deployments/{}/routing", seg(id)),
            Some(change),
        )
        .await
    }

    /// Registers (or re-registers) a worker.
    pub async fn register_worker(&self, w: &NewWorker) -> Result<Worker, ClientError> {
        self.call(Method::POST, "/api/v1/canary/workers", Some(w))
            .await
    }

    /// Every worker, optionally of one lane.
    pub async fn list_workers(&self, lane: Option<Lane>) -> Result<Vec<Worker>, ClientError> {
        let path = match lane {
            Some(l) => format!("/api/v1/canary/workers?lane={l}"),
            None => "/api/v1/canary/workers".to_string(),
        };
        self.all_pages(&path, "workers").await
    }

    /// Sets a worker's status.
    pub async fn set_worker_status(
        &self,
        id: &str,
        status: WorkerStatus,
    ) -> Result<Value, ClientError> {
        self.call(
            Method::PUT,
            &format!("/api/v1/canary/workers/{}/status", seg(id)),
            Some(&json!({"status": status})),
        )
        .await
    }

    /// Sends a heartbeat (metrics and finished jobs).
    pub async fn heartbeat(&self, id: &str, hb: &Heartbeat) -> Result<Worker, ClientError> {
        self.call(
            Method::POST,
            &format!("/api/v1/canary/workers/{}/heartbeat", seg(id)),
            Some(hb),
        )
        .await
    }

    /// Creates an API key (admin); the answer holds the key, shown once.
    pub async fn create_api_key(
        &self,
        name: &str,
        role: serin_core::auth::Role,
    ) -> Result<Value, ClientError> {
        self.call(
            Method::POST,
            "/api/v1/api-keys",
            Some(&json!({"name": name, "role": role})),
        )
        .await
    }

    /// Every API key (admin), without the keys themselves.
    pub async fn list_api_keys(&self) -> Result<Vec<Value>, ClientError> {
        self.all_pages("/api/v1/api-keys", "api_keys").await
    }

    /// Revokes an API key (admin).
    pub async fn revoke_api_key(&self, id: &str) -> Result<Value, ClientError> {
        self.call::<(), _>(
            Method::DELETE,
            &format!("/api/v1/api-keys/{}", seg(id)),
            None,
        )
        .await
    }
}

/// The release manager (seed 003): sessions, users, environments, deploying
/// releases, approvals and seed 003's deployments.
impl Client {
    /// `POST /api/v1/auth/login`: a session (its `token` is a bearer credential).
    pub async fn login(&self, email: &str, password: &str) -> Result<Value, ClientError> {
        self.call(
            Method::POST,
            "/api/v1/auth/login",
            Some(&json!({"email": email, "password": password})),
        )
        .await
    }

    /// `POST /api/v1/auth/logout`: ends the session this client sends.
    pub async fn logout(&self) -> Result<(), ClientError> {
        self.call_empty(Method::POST, "/api/v1/auth/logout").await
    }

    /// `GET /api/v1/users/me`.
    pub async fn me(&self) -> Result<Value, ClientError> {
        self.call::<(), _>(Method::GET, "/api/v1/users/me", None)
            .await
    }

    /// Creates a user (admin).
    pub async fn create_user(&self, body: &Value) -> Result<Value, ClientError> {
        self.call(Method::POST, "/api/v1/users", Some(body)).await
    }

    /// Every user (admin).
    pub async fn list_users(&self) -> Result<Vec<Value>, ClientError> {
        self.all_pages("/api/v1/users", "items").await
    }

    /// Changes a user (admin).
    pub async fn update_user(&self, id: &str, patch: &Value) -> Result<Value, ClientError> {
        self.call(
            Method::PATCH,
            &format!("/api/v1/users/{}", seg(id)),
            Some(patch),
        )
        .await
    }

    /// A product's environments, in order.
    pub async fn environments(&self, product: &str) -> Result<Value, ClientError> {
        self.call::<(), _>(
            Method::GET,
            &format!("/api/v1/products/{}/environments", seg(product)),
            None,
        )
        .await
    }

    /// Adds an environment to a product.
    pub async fn add_environment(&self, product: &str, spec: &Value) -> Result<Value, ClientError> {
        self.call(
            Method::POST,
            &format!("/api/v1/products/{}/environments", seg(product)),
            Some(spec),
        )
        .await
    }

    /// Changes an environment.
    pub async fn update_environment(
        &self,
        product: &str,
        env: &str,
        spec: &Value,
    ) -> Result<Value, ClientError> {
        self.call(
            Method::PATCH,
            &format!(
                "/api/v1/products/{}/environments/{}",
                seg(product),
                seg(env)
            ),
            Some(spec),
        )
        .await
    }

    /// A product's release by version (`RELEASE_NOT_FOUND` when it has none).
    pub async fn find_release(&self, product: &str, version: &str) -> Result<Release, ClientError> {
        let all: Vec<Release> = self
            .all_pages(
                &format!("/api/v1/products/{}/releases", seg(product)),
                "items",
            )
            .await?;
        all.into_iter()
            .find(|r| r.version == version)
            .ok_or_else(|| ClientError::Api {
                status: 404,
                code: "RELEASE_NOT_FOUND".into(),
                message: format!("{product} has no release {version}"),
                details: json!({"product": product, "version": version}),
            })
    }

    /// `POST /api/v1/releases/{id}/deploy`: seed 003's deployment it started.
    pub async fn deploy(&self, release_id: i64, req: &Value) -> Result<Value, ClientError> {
        self.call(
            Method::POST,
            &format!("/api/v1/releases/{release_id}/deploy"),
            Some(req),
        )
        .await
    }

    /// Approves (`approved`) or rejects (`rejected`) a release for an environment.
    pub async fn decide(
        &self,
        release_id: i64,
        environment: &str,
        decision: &str,
        comment: Option<&str>,
    ) -> Result<Value, ClientError> {
        self.call(
            Method::POST,
            &format!("/api/v1/releases/{release_id}/approvals"),
            Some(&json!({"environment": environment, "decision": decision, "comment": comment})),
        )
        .await
    }

    /// Seed 003's view of one deployment.
    pub async fn release_deployment(&self, id: &str) -> Result<Value, ClientError> {
        self.call::<(), _>(
            Method::GET,
            &format!("/api/v1/deployments/{}", seg(id)),
            None,
        )
        .await
    }

    /// Seed 003's deployments, newest first (one page of up to 100).
    pub async fn release_deployments(
        &self,
        product: Option<&str>,
        environment: Option<&str>,
    ) -> Result<Value, ClientError> {
        let mut q = vec!["page_size=100".to_string()];
        if let Some(p) = product {
            q.push(format!("product={}", seg(p)));
        }
        if let Some(e) = environment {
            q.push(format!("environment={}", seg(e)));
        }
        self.call::<(), _>(
            Method::GET,
            &format!("/api/v1/deployments?{}", q.join("&")),
            None,
        )
        .await
    }

    /// A release's notes (for an environment), published when `publish`.
    pub async fn release_notes(
        &self,
        release_id: i64,
        environment: Option<&str>,
        publish: bool,
    ) -> Result<Value, ClientError> {
        if publish {
            return self
                .call(
                    Method::POST,
                    &format!("/api/v1/releases/{release_id}/notes/publish"),
                    Some(&json!({"environment": environment})),
                )
                .await;
        }
        let q = environment
            .map(|e| format!("?environment={}", seg(e)))
            .unwrap_or_default();
        self.call::<(), _>(
            Method::GET,
            &format!("/api/v1/releases/{release_id}/notes{q}"),
            None,
        )
        .await
    }

    /// One-click rollback of a deployment.
    pub async fn rollback_deployment(
        &self,
        id: &str,
        reason: Option<&str>,
    ) -> Result<Value, ClientError> {
        self.call(
            Method::POST,
            &format!("/api/v1/deployments/{}/rollback", seg(id)),
            Some(&json!({"reason": reason})),
        )
        .await
    }
}

/// A producer's local router for one deployment: the lane decision without a
/// request and without allocating, with the salt's hash state computed once.
/// Refresh it (build a new one) when the deployment's percentage changes.
#[derive(Debug, Clone)]
pub struct LocalRouter {
    deployment: Deployment,
    salt: u64,
    keyed: bool,
}

impl LocalRouter {
    /// A router over a deployment fetched from the server.
    pub fn new(deployment: Deployment) -> Self {
        let salt = serin_core::routing::salt_state(&deployment.id);
        let keyed = deployment.config.sticky_routing
            || deployment.config.routing_strategy
                == serin_core::deployment::RoutingStrategy::HashRing;
        LocalRouter {
            deployment,
            salt,
            keyed,
        }
    }

    /// The lane for a job; `random_bucket` (0..10000) is used when the decision
    /// isn't keyed. Agrees with the server's decision for the same deployment.
    pub fn lane(&self, key: Option<&str>, random_bucket: u32) -> Lane {
        if !self.deployment.status.is_live() {
            return Lane::Stable;
        }
        let b = match key {
            Some(k) if self.keyed => serin_core::routing::bucket_after(self.salt, k),
            _ => random_bucket,
        };
        if serin_core::routing::in_canary(b, self.deployment.current_percent) {
            Lane::Canary
        } else {
            Lane::Stable
        }
    }

    /// The whole decision, physical queue included (allocates the names).
    pub fn route(&self, queue: &str, key: Option<&str>, random_bucket: u32) -> RouteDecision {
        route_locally(queue, Some(&self.deployment), key, random_bucket)
    }
}

/// Decides a job's lane locally, without a request: the same function the server
/// uses, over a deployment the caller fetched (and refreshes now and then).
/// `random_bucket` (0..10000) is used only when the decision isn't keyed.
pub fn route_locally(
    queue: &str,
    deployment: Option<&Deployment>,
    key: Option<&str>,
    random_bucket: u32,
) -> RouteDecision {
    serin_core::routing::route_job(queue, deployment, key, random_bucket)
}

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
