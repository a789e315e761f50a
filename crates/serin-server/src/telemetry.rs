//! Serin's own metrics, in Prometheus text on `/metrics` and `/api/v1/metrics`.
//!
//! Three families beside the embedded proxy's lane counters: HTTP requests the
//! API answered, by route template (`/api/v1/canary/deployments/{id}`, never the
//! concrete path, so the series stay few), method and status; deployments by
//! status (read from the store at each scrape, so every replica reports the
//! same); and how long the controller's ticks take, as a histogram. Counters
//! live in memory: they start at zero with the process, which is what
//! Prometheus's `rate()` expects.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serin_core::canary::DeploymentStatus;

pub use serin_app::telemetry::Telemetry;

use crate::state::AppState;

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

/// Deployments by status, for the exposition (a status the store can't
/// count now is left out, never reported as zero).
pub async fn deployments(state: &serin_app::App, e: &mut serin_metrics::Exposition) {
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
            Ok(page) => e.gauge(
                "serin_deployments",
                "Canary deployments by status",
                &[("status", status.as_str())],
                page.total as f64,
            ),
            Err(err) => {
                tracing::warn!(error = %err, "deployments could not be counted for /metrics")
            }
        }
    }
}

/// This replica's leadership, for the exposition: whether it leads, the
/// epoch it leads at, the age of its lease's last renewal, and how many times
/// it gained or lost the lease.
pub fn leadership(state: &serin_app::App, e: &mut serin_metrics::Exposition) {
    let l = &state.leadership;
    let epoch = l.epoch();
    e.gauge(
        "serin_leader",
        "1 while this replica holds the leader lease and acts",
        &[],
        f64::from(u8::from(epoch.is_some())),
    );
    if let Some(epoch) = epoch {
        e.gauge(
            "serin_leader_epoch",
            "The lease epoch this replica leads at",
            &[],
            epoch as f64,
        );
    }
    if let Some(age) = l.lease_age() {
        e.gauge(
            "serin_lease_age_seconds",
            "Time since this leader last renewed its lease",
            &[],
            age.as_secs_f64(),
        );
    }
    e.counter(
        "serin_leadership_changes",
        "Times this replica gained or lost the leader lease",
        &[],
        l.changes(),
    );
}
