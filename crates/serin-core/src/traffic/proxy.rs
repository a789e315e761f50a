//! What the control plane and the proxies exchange: route sets going out, lane
//! metrics coming back.
//!
//! A [`RouteSet`] is every HTTP route a proxy serves, with a `version` that is a
//! fingerprint of its content (FNV-1a 64 of the canonical JSON of the routes). Two
//! replicas of the control plane that read the same database hand out the same
//! version, so a proxy can switch between them and a long-poll "wake me when the
//! version is no longer X" needs no shared counter.
//!
//! Each target (queue or service name, per tenant) is routed by its most recent
//! deployment that has upstreams, whatever its status: a live one splits by its
//! percentage, a promoted one sends everything to the canary's upstreams (its
//! percentage is 100) and a rolled-back one everything to stable (0). So the route
//! doesn't vanish when a deployment ends — the traffic keeps flowing to the
//! version that won.
//!
//! [`LaneBucket`]s are one second of one lane of one deployment as one proxy saw
//! it: requests, errors by class and a latency [`Histogram`]. A proxy reports each
//! finished second once, under its instance id, so a retried report is idempotent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Lane;
use crate::Timestamp;
use crate::canary::{Deployment, DeploymentStatus, Route, Upstreams};
use crate::stats::histogram::Histogram;
use crate::traffic::TrafficRules;

/// One deployment's HTTP route, as a proxy needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProxyRoute {
    /// The deployment (also the affinity cookie's and the hash's salt).
    pub deployment_id: String,
    /// The service name (the deployment's `queue_name`).
    pub name: String,
    /// Its tenant.
    pub tenant_id: Option<String>,
    /// The deployment's status.
    pub status: DeploymentStatus,
    /// The canary's share now.
    pub percent: u8,
    /// Stable version (for the `X-Serin-Version` response header).
    pub stable_version: String,
    /// Canary version.
    pub canary_version: String,
    /// Which requests it serves.
    pub route: Route,
    /// Endpoints per lane.
    pub upstreams: Upstreams,
    /// Lane choice and upstream settings.
    pub traffic: TrafficRules,
    /// The deployment's revision.
    pub revision: u64,
    /// The share of the requests stable answers that are copied to the
    /// canary, their answers counted in the `mirror` lane and dropped (0:
    /// none; always 0 once the deployment has ended).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mirror_percent: u8,
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

impl ProxyRoute {
    /// The route of a deployment, when it has upstreams.
    pub fn of(d: &Deployment) -> Option<ProxyRoute> {
        if d.upstreams.stable.is_empty() && d.upstreams.canary.is_empty() {
            return None;
        }
        Some(ProxyRoute {
            deployment_id: d.id.clone(),
            name: d.queue_name.clone(),
            tenant_id: d.tenant_id.clone(),
            status: d.status,
            percent: d.current_percent,
            stable_version: d.stable_version.clone(),
            canary_version: d.canary_version.clone(),
            route: d.route.clone(),
            upstreams: d.upstreams.clone(),
            traffic: d.traffic.clone(),
            revision: d.revision,
            mirror_percent: d.mirror_percent(),
        })
    }
}

/// Every route a proxy serves, with its version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RouteSet {
    /// Fingerprint of `routes` (16 hex digits).
    pub version: String,
    /// The routes, by deployment id.
    pub routes: Vec<ProxyRoute>,
}

impl RouteSet {
    /// The route set of these deployments: per target, the newest one with
    /// upstreams (see the module docs). `deployments` may come in any order.
    pub fn from_deployments<'a>(deployments: impl IntoIterator<Item = &'a Deployment>) -> Self {
        let mut newest: BTreeMap<(&str, Option<&str>), &Deployment> = BTreeMap::new();
        for d in deployments {
            if ProxyRoute::of(d).is_none() {
                continue;
            }
            let key = (d.queue_name.as_str(), d.tenant_id.as_deref());
            match newest.get(&key) {
                Some(cur) if (cur.start_time, &cur.id) >= (d.start_time, &d.id) => {}
                _ => {
                    newest.insert(key, d);
                }
            }
        }
        let mut routes: Vec<ProxyRoute> =
            newest.values().filter_map(|d| ProxyRoute::of(d)).collect();
        routes.sort_by(|a, b| a.deployment_id.cmp(&b.deployment_id));
        RouteSet::new(routes)
    }

    /// A set with its fingerprint.
    pub fn new(routes: Vec<ProxyRoute>) -> Self {
        let json = serde_json::to_vec(&routes).unwrap_or_default();
        let h = crate::traffic::routing::fnv(0xcbf2_9ce4_8422_2325, &json);
        RouteSet {
            version: format!("{h:016x}"),
            routes,
        }
    }
}

/// A lane a proxy counts: the two a request is sent to, and `mirror` — the
/// canary's answers to copies of requests stable answered, which nobody
/// receives. The judges take the mirror's answers as the canary's: before a
/// canary serves anyone, they are all it has to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BucketLane {
    /// Requests sent to stable.
    Stable,
    /// Requests sent to the canary.
    Canary,
    /// Copies of stable's requests sent to the canary too.
    Mirror,
}

impl BucketLane {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            BucketLane::Stable => "stable",
            BucketLane::Canary => "canary",
            BucketLane::Mirror => "mirror",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<BucketLane> {
        match s {
            "stable" => Some(BucketLane::Stable),
            "canary" => Some(BucketLane::Canary),
            "mirror" => Some(BucketLane::Mirror),
            _ => None,
        }
    }

    /// The version that answered: the canary's for the mirror.
    pub fn answered_by(self) -> Lane {
        match self {
            BucketLane::Stable => Lane::Stable,
            BucketLane::Canary | BucketLane::Mirror => Lane::Canary,
        }
    }
}

impl From<Lane> for BucketLane {
    fn from(l: Lane) -> Self {
        match l {
            Lane::Stable => BucketLane::Stable,
            Lane::Canary => BucketLane::Canary,
        }
    }
}

impl std::fmt::Display for BucketLane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One second of one lane, as one proxy saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LaneBucket {
    /// The deployment.
    pub deployment_id: String,
    /// The lane.
    pub lane: BucketLane,
    /// The second, as Unix seconds.
    pub second: i64,
    /// Requests answered (including failures).
    pub requests: u64,
    /// Upstream answers with a 5xx status.
    pub errors_5xx: u64,
    /// Connections refused or reset before an answer.
    pub errors_connect: u64,
    /// No answer within the timeout.
    pub errors_timeout: u64,
    /// Time to response headers.
    pub latency: Histogram,
}

impl LaneBucket {
    /// All errors.
    pub fn errors(&self) -> u64 {
        self.errors_5xx
            .saturating_add(self.errors_connect)
            .saturating_add(self.errors_timeout)
    }

    /// Checks a bucket received from outside.
    pub fn check(&self, now: Timestamp) -> Result<(), String> {
        // One proxy can't answer more than this in one second of one lane; the
        // bound also keeps every sum below overflow.
        const MAX_PER_SECOND: u64 = 1 << 32;
        if self.requests > MAX_PER_SECOND {
            return Err(format!("more than {MAX_PER_SECOND} requests in one second"));
        }
        if self.deployment_id.is_empty() || self.deployment_id.len() > 200 {
            return Err("deployment_id must be 1 to 200 characters".into());
        }
        if self.errors() > self.requests {
            return Err("errors exceed requests".into());
        }
        if self.latency.count > self.requests {
            return Err("more latencies than requests".into());
        }
        self.latency.check()?;
        let now = now.timestamp();
        if self.second < now - 7 * 86_400 || self.second > now + 300 {
            return Err(format!(
                "second {} is not within the last week",
                self.second
            ));
        }
        Ok(())
    }
}

/// A proxy's report of finished seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MetricsReport {
    /// The reporting proxy's instance id (new at each start).
    pub proxy_id: String,
    /// Finished seconds.
    pub buckets: Vec<LaneBucket>,
    /// Buckets this proxy dropped since it started (its buffer was full while the
    /// control plane was unreachable).
    #[serde(default)]
    pub dropped: u64,
}

/// A proxy the control plane has heard from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProxyInfo {
    /// Instance id (new at each start).
    pub id: String,
    /// The name it gave (`--name`, default its host name).
    pub name: String,
    /// The route version it last fetched.
    pub route_version: String,
    /// When it last polled or reported.
    pub last_contact: chrono::DateTime<chrono::Utc>,
    /// Buckets it says it dropped.
    pub dropped_buckets: u64,
    /// `embedded` (inside `serin up`) or `remote`.
    pub kind: String,
}

/// One second of one lane in a few numbers, for charts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LanePoint {
    /// Unix seconds.
    pub second: i64,
    /// `stable`, `canary` or `mirror` (the canary's answers to copies of
    /// stable's requests).
    pub lane: BucketLane,
    /// Requests answered.
    pub requests: u64,
    /// Of which failed (5xx, connect, timeout).
    pub errors: u64,
    /// Median time to response headers, ms (none without requests).
    pub p50_ms: Option<f64>,
    /// 95th percentile, ms.
    pub p95_ms: Option<f64>,
}

impl LanePoint {
    /// The point of a (merged) bucket.
    pub fn of(b: &LaneBucket) -> LanePoint {
        LanePoint {
            second: b.second,
            lane: b.lane,
            requests: b.requests,
            errors: b.errors(),
            p50_ms: b.latency.quantile_ms(0.5),
            p95_ms: b.latency.quantile_ms(0.95),
        }
    }
}
