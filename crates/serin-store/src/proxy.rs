//! What proxies need from the store: each target's routed deployment (to build
//! route sets, without reading history), a generation number that moves in the
//! same transaction as every change to them, the lane buckets proxies report,
//! and the list of proxies.

use serin_core::Timestamp;
use serin_core::canary::Deployment;
use serin_core::canary::metrics::LaneWindow;
use serin_core::traffic::proxy::{LaneBucket, ProxyInfo};

use crate::{Result, Store};

/// Unix seconds of an instant.
pub(crate) fn second_of(t: Timestamp) -> i64 {
    t.timestamp()
}

/// Which deployments to read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeploymentSet {
    Routed,
    Live,
    Group(String),
    HooksPending,
}

impl Store {
    /// Each target's newest deployment with upstreams, live or ended: what
    /// proxies serve (the route set is built from them). Read from the `routes`
    /// table the writes keep, so its cost follows the number of targets, not
    /// the number of deployments ever made.
    pub async fn routed_deployments(&self) -> Result<Vec<Deployment>> {
        dispatch!(self, b => b.deployment_set(&DeploymentSet::Routed))
    }

    /// The live deployments, oldest first (the controller's work list).
    pub async fn live_deployments(&self) -> Result<Vec<Deployment>> {
        dispatch!(self, b => b.deployment_set(&DeploymentSet::Live))
    }

    /// Several deployments' lanes, each over its own `[from, to]` (as
    /// [`Store::lane_windows`]), read together: on SQLite in one hand-off to a
    /// reading thread, on PostgreSQL in four queries; what a controller tick
    /// over many deployments needs.
    pub async fn lane_windows_many(
        &self,
        ranges: Vec<(String, Timestamp, Timestamp)>,
    ) -> Result<Vec<[LaneWindow; 2]>> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        dispatch!(self, b => b.lane_windows_many(ranges))
    }

    /// Ended deployments whose post-rollout or on-rollback hooks haven't run yet.
    pub async fn deployments_with_pending_hooks(&self) -> Result<Vec<Deployment>> {
        dispatch!(self, b => b.deployment_set(&DeploymentSet::HooksPending))
    }

    /// Every deployment of a rollout group, live or final.
    pub async fn group_deployments(&self, group: &str) -> Result<Vec<Deployment>> {
        dispatch!(self, b => b.deployment_set(&DeploymentSet::Group(group.to_string())))
    }

    /// A number that grows in the same transaction as every write that can
    /// change [`Store::routed_deployments`] (creating, changing or deleting a
    /// deployment with upstreams): watchers reload when it moves. Read it
    /// *before* the deployments, so a change committed in between is seen
    /// at the next look.
    pub async fn route_generation(&self) -> Result<i64> {
        dispatch!(self, b => b.route_generation())
    }

    /// Records a proxy's finished seconds; a bucket already recorded under the
    /// same source is ignored. Returns how many were new.
    pub async fn record_lane_buckets(&self, source: &str, buckets: Vec<LaneBucket>) -> Result<u64> {
        if buckets.is_empty() {
            return Ok(0);
        }
        dispatch!(self, b => b.record_lane_buckets(source, buckets))
    }

    /// A deployment's buckets with `from ≤ second ≤ to`, merged across proxies
    /// (one per lane and second), by second.
    pub async fn lane_buckets(
        &self,
        deployment_id: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<LaneBucket>> {
        let rows =
            dispatch!(self, b => b.lane_buckets(deployment_id, second_of(from), second_of(to)))?;
        Ok(merge_sources(rows))
    }

    /// Records that a proxy was in touch. An empty `name` or `route_version`
    /// keeps the one stored (a metrics report knows neither); a new entry
    /// without a name is named by its id.
    pub async fn touch_proxy(&self, info: ProxyInfo) -> Result<()> {
        dispatch!(self, b => b.touch_proxy(info))
    }

    /// Proxies heard from since `since`, most recent contact first.
    pub async fn list_proxies(&self, since: Timestamp) -> Result<Vec<ProxyInfo>> {
        dispatch!(self, b => b.list_proxies(since))
    }
}

/// Merges rows of the same second and lane from different proxies (rows come
/// ordered by second and lane).
fn merge_sources(rows: Vec<LaneBucket>) -> Vec<LaneBucket> {
    let mut out: Vec<LaneBucket> = Vec::with_capacity(rows.len());
    for r in rows {
        match out.last_mut() {
            Some(last) if last.second == r.second && last.lane == r.lane => {
                last.requests += r.requests;
                last.errors_5xx += r.errors_5xx;
                last.errors_connect += r.errors_connect;
                last.errors_timeout += r.errors_timeout;
                last.latency.merge(&r.latency);
            }
            _ => out.push(r),
        }
    }
    out
}
