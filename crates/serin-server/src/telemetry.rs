//! Serin's own metrics, in Prometheus text on `/metrics` and `/api/v1/metrics`.
//!
//! Beside the embedded proxy's lane counters: HTTP requests the API answered,
//! by route template (`/api/v1/canary/deployments/{id}`, never the concrete
//! path, so the series stay few), method and status code, and their times;
//! deployments by status and each live rollout's phase, canary weight and
//! step (read from the store at each scrape, so every replica reports the
//! same) and its verdict as the verdict endpoint calls it; and how long the controller's ticks take, as a histogram. Counters
//! live in memory: they start at zero with the process, which is what
//! Prometheus's `rate()` expects.
//!
//! **Ended deployments add no series.** A rollout's series carry its name,
//! target and id; once it ends they are shown once more, with the phase it
//! ended in (`completed` or `failed`), to the next scrape, and then never
//! again, so a thousand finished deployments leave the exposition as it was.

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
    let began = std::time::Instant::now();
    let res = next.run(req).await;
    state
        .telemetry
        .count(&route, &method, res.status().as_u16(), began.elapsed());
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

/// Each live deployment's phase (its status), canary weight (0–1) and
/// rollout step, labelled by name, target and id; a deployment that ended
/// since the last scrape once more, with the phase it ended in.
pub async fn rollouts(state: &serin_app::App, e: &mut serin_metrics::Exposition) {
    let live = match state.store.live_deployments().await {
        Ok(live) => live,
        Err(err) => {
            tracing::warn!(error = %err, "live deployments could not be read for /metrics");
            return;
        }
    };
    let ids = live.iter().map(|d| d.id.clone()).collect();
    let mut shown = live;
    for id in state.telemetry.live_now(ids) {
        match state.store.get_deployment(&id).await {
            Ok(d) => shown.push(d),
            // Deleted meanwhile: nothing to show.
            Err(err) => tracing::debug!(error = %err, id, "an ended deployment could not be read"),
        }
    }
    for name in [
        "serin_rollout_phase",
        "serin_rollout_canary_weight",
        "serin_rollout_step",
        "serin_rollout_verdict",
    ] {
        e.declare_gauge(name, rollout_help(name));
    }
    for d in &shown {
        let target = d.target_label();
        let at = [
            ("name", d.queue_name.as_str()),
            ("target", target.as_str()),
            ("deployment_id", d.id.as_str()),
        ];
        e.gauge(
            "serin_rollout_phase",
            rollout_help("serin_rollout_phase"),
            &[at[0], at[1], at[2], ("phase", d.status.as_str())],
            1.0,
        );
        e.gauge(
            "serin_rollout_canary_weight",
            rollout_help("serin_rollout_canary_weight"),
            &at,
            f64::from(d.current_percent) / 100.0,
        );
        e.gauge(
            "serin_rollout_verdict",
            rollout_help("serin_rollout_verdict"),
            &[
                at[0],
                at[1],
                at[2],
                ("verdict", serin_app::verdict::current(state, d).as_str()),
            ],
            1.0,
        );
        if let Some(r) = &d.rollout {
            e.gauge(
                "serin_rollout_step",
                rollout_help("serin_rollout_step"),
                &at,
                r.step as f64,
            );
        }
    }
}

fn rollout_help(name: &str) -> &'static str {
    match name {
        "serin_rollout_phase" => {
            "1 for each live deployment's phase (its status); once more after it ends, with completed or failed"
        }
        "serin_rollout_canary_weight" => "The canary's share of each live deployment, 0 to 1",
        "serin_rollout_verdict" => {
            "1 for each live deployment's verdict now (pass, inconclusive, fail), as the verdict endpoint calls it"
        }
        _ => "The rollout step each live deployment is at (from 0)",
    }
}

/// The database connections of this replica, by backend.
pub fn database(state: &serin_app::App, e: &mut serin_metrics::Exposition) {
    let p = state.store.pool();
    let backend = [("backend", state.store.backend())];
    e.gauge(
        "serin_db_pool_max_connections",
        "The most database connections this replica may open (SQLite: its readers)",
        &backend,
        p.max as f64,
    );
    for (st, n) in [
        ("in_use", p.in_use),
        ("idle", p.open.saturating_sub(p.in_use)),
    ] {
        e.gauge(
            "serin_db_pool_connections",
            "Open database connections of this replica, in use or idle",
            &[backend[0], ("state", st)],
            n as f64,
        );
    }
    e.gauge(
        "serin_db_pool_waiting",
        "Callers waiting for a database connection",
        &backend,
        p.waiting as f64,
    );
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
    if state.store.backend() == "postgres" {
        e.gauge(
            "serin_clock_offset_seconds",
            "How far the database's clock is ahead of this host's (Serin keeps the database's time)",
            &[],
            state.clock_offset().as_seconds_f64(),
        );
    }
    e.counter(
        "serin_leadership_changes",
        "Times this replica gained or lost the leader lease",
        &[],
        l.changes(),
    );
}
