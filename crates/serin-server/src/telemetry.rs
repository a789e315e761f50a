//! Serin's own metrics, in Prometheus text on `/metrics` and `/api/v1/metrics`.
//!
//! Three families beside the embedded proxy's lane counters: HTTP requests the
//! API answered, by route template (`/api/v1/canary/deployments/{id}`, never the
//! concrete path, so the series stay few), method and status; deployments by
//! status (read from the store at each scrape, so every replica reports the
//! same); and how long the controller's ticks take, as a histogram. Counters
//! live in memory: they start at zero with the process, which is what
//! Prometheus's `rate()` expects.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serin_core::deployment::DeploymentStatus;

use crate::state::AppState;

/// Upper bounds of the tick histogram's buckets, seconds.
const TICK_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Answered requests by (route template, method, status).
type RequestCounts = BTreeMap<(String, String, u16), u64>;

/// Request counters and the tick histogram.
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    requests: Arc<Mutex<RequestCounts>>,
    ticks: Arc<Mutex<Ticks>>,
    logins: Arc<Mutex<BTreeMap<&'static str, u64>>>,
}

#[derive(Debug, Default)]
struct Ticks {
    buckets: [u64; TICK_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Telemetry {
    /// Counts one answered request.
    pub fn count(&self, route: &str, method: &str, status: u16) {
        *self
            .requests
            .lock()
            .expect("requests lock")
            .entry((route.to_string(), method.to_string(), status))
            .or_default() += 1;
    }

    /// Counts one login attempt by outcome (`success`, `bad_password`,
    /// `unknown_user`, `throttled`, `disabled`).
    pub fn login(&self, outcome: &'static str) {
        *self
            .logins
            .lock()
            .expect("logins lock")
            .entry(outcome)
            .or_default() += 1;
    }

    /// Records one controller tick.
    pub fn tick(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let mut t = self.ticks.lock().expect("ticks lock");
        for (b, le) in t.buckets.iter_mut().zip(TICK_BUCKETS) {
            if secs <= le {
                *b += 1;
            }
        }
        t.count += 1;
        t.sum += secs;
    }

    /// The request counters and the tick histogram, in Prometheus text.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP serin_http_requests_total API requests answered, by route template, method and status.\n# TYPE serin_http_requests_total counter\n");
        for ((route, method, status), n) in self.requests.lock().expect("requests lock").iter() {
            let _ = writeln!(
                out,
                "serin_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                escape(route),
                escape(method)
            );
        }
        out.push_str("# HELP serin_logins_total Login attempts by outcome.\n# TYPE serin_logins_total counter\n");
        for (outcome, n) in self.logins.lock().expect("logins lock").iter() {
            let _ = writeln!(out, "serin_logins_total{{outcome=\"{outcome}\"}} {n}");
        }
        let t = self.ticks.lock().expect("ticks lock");
        out.push_str("# HELP serin_controller_tick_seconds How long the rollout controller's ticks took.\n# TYPE serin_controller_tick_seconds histogram\n");
        for (b, le) in t.buckets.iter().zip(TICK_BUCKETS) {
            let _ = writeln!(
                out,
                "serin_controller_tick_seconds_bucket{{le=\"{le}\"}} {b}"
            );
        }
        let _ = writeln!(
            out,
            "serin_controller_tick_seconds_bucket{{le=\"+Inf\"}} {}\nserin_controller_tick_seconds_sum {}\nserin_controller_tick_seconds_count {}",
            t.count, t.sum, t.count
        );
    }
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Middleware: counts every answered request under its route template.
pub async fn count(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().to_string();
    let res = next.run(req).await;
    state
        .telemetry
        .count(&route, &method, res.status().as_u16());
    res
}

/// Deployments by status, in Prometheus text (a status the store can't count
/// now is left out, never reported as zero).
pub async fn deployments(state: &AppState, out: &mut String) {
    out.push_str(
        "# HELP serin_deployments Canary deployments by status.\n# TYPE serin_deployments gauge\n",
    );
    for status in [
        DeploymentStatus::Active,
        DeploymentStatus::Promoting,
        DeploymentStatus::RollingBack,
        DeploymentStatus::Paused,
        DeploymentStatus::Completed,
        DeploymentStatus::Failed,
    ] {
        let filter = serin_store::canary::DeploymentFilter {
            status: Some(status),
            ..Default::default()
        };
        match state.store.list_deployments(&filter, 0, 1).await {
            Ok(page) => {
                let _ = writeln!(
                    out,
                    "serin_deployments{{status=\"{}\"}} {}",
                    status.as_str(),
                    page.total
                );
            }
            Err(e) => tracing::warn!(error = %e, "deployments could not be counted for /metrics"),
        }
    }
}
