//! Serin's own metrics, in Prometheus text on `/metrics` and `/api/v1/metrics`.
//!
//! Three families beside the embedded proxy's lane counters: HTTP requests the
//! API answered, by route template (`/api/v1/canary/deployments/{id}`, never the
//! concrete path, so the series stay few), method and status; deployments by
//! status (read from the store at each scrape, so every replica reports the
//! same); and how long the controller's ticks take, as a histogram. Counters
//! live in memory: they start at zero with the process, which is what
//! Prometheus's `rate()` expects.

use std::fmt::Write as _;

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

/// Deployments by status, in Prometheus text (a status the store can't count
/// now is left out, never reported as zero).
pub async fn deployments(state: &serin_app::App, out: &mut String) {
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

/// This replica's leadership, in Prometheus text: whether it leads, the
/// epoch it leads at, the age of its lease's last renewal, and how many times
/// it gained or lost the lease.
pub fn leadership(state: &serin_app::App, out: &mut String) {
    let l = &state.leadership;
    let epoch = l.epoch();
    let _ = writeln!(
        out,
        "# HELP serin_leader 1 while this replica holds the leader lease and acts.\n# TYPE serin_leader gauge\nserin_leader {}",
        u8::from(epoch.is_some())
    );
    if let Some(e) = epoch {
        let _ = writeln!(
            out,
            "# HELP serin_leader_epoch The lease epoch this replica leads at.\n# TYPE serin_leader_epoch gauge\nserin_leader_epoch {e}"
        );
    }
    if let Some(age) = l.lease_age() {
        let _ = writeln!(
            out,
            "# HELP serin_lease_age_seconds Time since this leader last renewed its lease.\n# TYPE serin_lease_age_seconds gauge\nserin_lease_age_seconds {:.3}",
            age.as_secs_f64()
        );
    }
    let _ = writeln!(
        out,
        "# HELP serin_leadership_changes_total Times this replica gained or lost the leader lease.\n# TYPE serin_leadership_changes_total counter\nserin_leadership_changes_total {}",
        l.changes()
    );
}
