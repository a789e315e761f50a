//! Canary deployments, rollouts, workers, proxies and API keys.

#[allow(unused_imports)]
use super::*;

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

    /// Sets the traffic split; answers `{success, percentage, updated_at}`.
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
    pub(crate) async fn call_empty(&self, method: Method, path: &str) -> Result<(), ClientError> {
        let url = format!("{}{}", self.base, path);
        let resp = self.send::<()>(method, &url, None).await?;
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
    ) -> Result<serin_core::traffic::proxy::RouteSet, ClientError> {
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
        report: &serin_core::traffic::proxy::MetricsReport,
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
        change: &serin_core::canary::RoutingChange,
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
