//! Traffic engines: the traffic layers a team already runs, driven by the
//! controller for the deployments that name one (`serin_core::traffic::engine`).
//!
//! Each kind of engine is one module behind [`TrafficEngine`]: put a canary
//! share in effect, and read back the share that *is* in effect. The
//! controller reads back every tick, applies when the two differ, and the
//! rollout's weight step is reached only once the read-back says so — a
//! weight Serin only believes it set never counts.
//!
//! The operator names the engines when starting the server
//! (`--traffic-engine NAME=KIND:ADDRESS`): a request can only choose among
//! them, never say where to connect.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use serin_core::canary::Deployment;
use serin_core::traffic::engine::{EngineRule, EngineTarget, RouteState};

use crate::App;

pub mod accesslog;
pub mod gateway;
pub mod haproxy;
pub mod nginx;
pub mod settle;
pub mod telemetry;

/// What went wrong talking to an engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// It could not be reached, or it hung up.
    #[error("cannot reach {engine}: {why}")]
    Unreachable {
        /// The engine's name.
        engine: String,
        /// Why.
        why: String,
    },
    /// It answered with an error.
    #[error("{engine} refused: {said}")]
    Refused {
        /// The engine's name.
        engine: String,
        /// What it said.
        said: String,
    },
    /// The deployment names an engine this server doesn't have.
    #[error("no traffic engine named {0} on this server")]
    Unknown(String),
}

/// One kind of external engine.
pub trait TrafficEngine: Send + Sync + std::fmt::Debug {
    /// Puts `state` (the canary's share and the match rules) in effect for `target`.
    fn apply<'a>(
        &'a self,
        target: &'a EngineTarget,
        state: &'a RouteState,
    ) -> BoxFuture<'a, Result<(), EngineError>>;

    /// What is in effect for `target`: the canary's share, and whether the
    /// rules in effect are `want`'s.
    fn read_back<'a>(
        &'a self,
        target: &'a EngineTarget,
        want: &'a RouteState,
    ) -> BoxFuture<'a, Result<InEffect, EngineError>>;

    /// Why this engine can't put `rules` in effect, if it can't (checked when
    /// a deployment starts and when its routing changes). By default an
    /// engine takes no rules.
    fn check_rules(&self, rules: &[EngineRule]) -> Result<(), String> {
        if rules.is_empty() {
            Ok(())
        } else {
            Err("this engine can't put match rules in effect".into())
        }
    }

    /// Why this engine can't do what `target` asks beyond weights and rules
    /// (mirroring, session persistence), if it can't. By default an engine
    /// does neither.
    fn check_target(&self, target: &EngineTarget) -> Result<(), (&'static str, String)> {
        no_extras(target)
    }

    /// Whether deployments may name `backend` on this engine (the operator's
    /// `backends=` list; every backend when the operator gave none).
    fn allows(&self, backend: &str) -> bool;

    /// Whether the lanes' servers are addresses the engine will connect to
    /// (nginx: `host:port`) rather than names the engine already knows
    /// (HAProxy): addresses are judged by the outbound policy.
    fn servers_are_addresses(&self) -> bool {
        false
    }

    /// The lane seconds the engine recorded request by request (a tailed
    /// access log) for the seconds before `before`, handed over once; `None`
    /// where it keeps only counters.
    fn lane_seconds<'a>(
        &'a self,
        target: &'a EngineTarget,
        before: i64,
    ) -> BoxFuture<'a, Result<Option<Vec<LaneSecond>>, EngineError>> {
        let _ = (target, before);
        Box::pin(async { Ok(None) })
    }

    /// Each lane's counters since the engine started (stable, canary), where
    /// the engine keeps them; `None` where it doesn't.
    fn counters<'a>(
        &'a self,
        target: &'a EngineTarget,
    ) -> BoxFuture<'a, Result<Option<[Counters; 2]>, EngineError>> {
        let _ = target;
        Box::pin(async { Ok(None) })
    }
}

/// Refuses what only some engines do: mirroring and session persistence.
pub fn no_extras(target: &EngineTarget) -> Result<(), (&'static str, String)> {
    if target.mirror_percent.is_some() {
        return Err((
            "engine.mirror_percent",
            "this engine doesn't mirror requests (the gateway-api engine does)".into(),
        ));
    }
    if target.session_persistence.is_some() {
        return Err((
            "engine.session_persistence",
            "this engine doesn't keep sessions itself (the gateway-api engine does; with HAProxy or nginx, set it in their configuration)".into(),
        ));
    }
    Ok(())
}

/// What an engine reports in effect for a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InEffect {
    /// The canary's share (`None`: every server's weight is 0).
    pub share: Option<u8>,
    /// How the rules in effect differ from the ones wanted (`None`: they
    /// are the same).
    pub rules_differ: Option<String>,
}

impl InEffect {
    /// Only a share, for an engine whose rules are as wanted.
    pub fn share(share: Option<u8>) -> InEffect {
        InEffect {
            share,
            rules_differ: None,
        }
    }

    /// Whether this is `want` on `target`.
    pub fn holds(&self, target: &EngineTarget, want: &RouteState) -> bool {
        self.share == Some(target.share(want.percent)) && self.rules_differ.is_none()
    }
}

/// One lane's second as an engine recorded it: the lane, the Unix second,
/// the figures.
pub type LaneSecond = (serin_core::Lane, i64, accesslog::Second);

/// A lane's counters as an engine keeps them: totals that only grow (until
/// the engine restarts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests answered or failed.
    pub requests: u64,
    /// Answers with a 5xx status.
    pub errors_5xx: u64,
    /// Connections to the server that failed.
    pub errors_connect: u64,
    /// Answers that broke off or timed out.
    pub errors_response: u64,
    /// The requests' times as a histogram's cumulative buckets, where the
    /// engine keeps one (empty where it doesn't).
    pub latency: Buckets,
}

/// A latency histogram as Prometheus keeps one: per upper bound (`le`, in
/// microseconds; `u64::MAX` for `+Inf`), how many requests took at most
/// that long.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Buckets(pub BTreeMap<u64, u64>);

impl Buckets {
    fn add(&mut self, o: &Buckets) {
        for (le, n) in &o.0 {
            *self.0.entry(*le).or_default() += n;
        }
    }

    /// What grew since `before`; `None` when a bucket went down.
    fn since(&self, before: &Buckets) -> Option<Buckets> {
        let mut out = BTreeMap::new();
        for (le, n) in &self.0 {
            out.insert(*le, n.checked_sub(before.0.get(le).copied().unwrap_or(0))?);
        }
        Some(Buckets(out))
    }

    /// The requests as Serin's histogram: each bucket's requests at the
    /// middle of its bounds (Prometheus' `histogram_quantile` interpolates
    /// within a bucket the same way), those above the largest finite bound
    /// at that bound. Empty when there are no buckets.
    pub fn histogram(&self) -> serin_core::stats::histogram::Histogram {
        let mut h = serin_core::stats::histogram::Histogram::default();
        let (mut lower, mut below) = (0u64, 0u64);
        for (&le, &cumulative) in &self.0 {
            let n = cumulative.saturating_sub(below);
            if n > 0 {
                let at = if le == u64::MAX {
                    lower
                } else {
                    lower + (le - lower) / 2
                };
                h.record_n(at, n);
            }
            below = below.max(cumulative);
            if le != u64::MAX {
                lower = le;
            }
        }
        h
    }
}

impl Counters {
    pub(crate) fn add(&mut self, o: &Counters) {
        self.requests += o.requests;
        self.errors_5xx += o.errors_5xx;
        self.errors_connect += o.errors_connect;
        self.errors_response += o.errors_response;
        self.latency.add(&o.latency);
    }

    /// What grew since `before`; `None` when a counter went down (the engine
    /// restarted: its totals began again).
    fn since(&self, before: &Counters) -> Option<Counters> {
        Some(Counters {
            requests: self.requests.checked_sub(before.requests)?,
            errors_5xx: self.errors_5xx.checked_sub(before.errors_5xx)?,
            errors_connect: self.errors_connect.checked_sub(before.errors_connect)?,
            errors_response: self.errors_response.checked_sub(before.errors_response)?,
            latency: self.latency.since(&before.latency)?,
        })
    }
}

/// Where an engine listens: `unix:/path` or `tcp:host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A Unix socket.
    Unix(std::path::PathBuf),
    /// A TCP address.
    Tcp(String),
}

impl std::str::FromStr for Address {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err("unix: needs a socket path".into());
            }
            Ok(Address::Unix(p.into()))
        } else if let Some(a) = s.strip_prefix("tcp:") {
            if !a.contains(':') {
                return Err("tcp: needs host:port".into());
            }
            Ok(Address::Tcp(a.into()))
        } else {
            Err(format!("{s}: an address is unix:/path or tcp:host:port"))
        }
    }
}

/// The engines this server drives, by name.
#[derive(Debug, Clone, Default)]
pub struct Engines(BTreeMap<String, Arc<dyn TrafficEngine>>);

impl Engines {
    /// Parses `NAME=KIND:ADDRESS`: `haproxy:unix:/path` or
    /// `haproxy:tcp:host:port` (the runtime API; `?backends=a+b` limits the
    /// backends deployments may name), `nginx:DIR?probe=HOST:PORT&backends=a+b[&split=reload|njs][&conf=PATH]`
    /// (see [`nginx`]), `gateway-api:in-cluster|kubeconfig[:PATH]|URL?namespace=NS[&routes=a+b][&prometheus=URL&queries=FILE]`
    /// (see [`gateway`]).
    pub fn add_spec(&mut self, spec: &str) -> Result<(), String> {
        let (name, rest) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec}: a traffic engine is NAME=KIND:ADDRESS"))?;
        serin_core::validate::validate_name("traffic engine", name).map_err(|e| e.to_string())?;
        let (kind, address) = rest
            .split_once(':')
            .ok_or_else(|| format!("{spec}: a traffic engine is NAME=KIND:ADDRESS"))?;
        let engine: Arc<dyn TrafficEngine> = match kind {
            "haproxy" => Arc::new(haproxy::Haproxy::parse(name, address)?),
            "nginx" => Arc::new(nginx::Nginx::parse(name, address)?),
            "gateway-api" => Arc::new(gateway::GatewayApi::parse(name, address)?),
            other => {
                return Err(format!(
                    "{other}: the traffic engines are: haproxy, nginx, gateway-api"
                ));
            }
        };
        if self.0.insert(name.to_string(), engine).is_some() {
            return Err(format!("traffic engine {name} is named twice"));
        }
        Ok(())
    }

    /// The engine a deployment names.
    pub fn get(&self, name: &str) -> Result<&Arc<dyn TrafficEngine>, EngineError> {
        self.0
            .get(name)
            .ok_or_else(|| EngineError::Unknown(name.to_string()))
    }

    /// Names of the engines, for messages.
    pub fn names(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Refuses a deployment whose engine this server doesn't drive, whose
/// backend the operator didn't list for it, whose match rules the engine
/// can't put in effect, or whose servers (where they are addresses) the
/// outbound policy denies.
pub async fn admit(
    app: &App,
    target: Option<&EngineTarget>,
    traffic: &serin_core::traffic::TrafficRules,
    plan: Option<&serin_core::rollout::RolloutSpec>,
) -> Result<(), serin_core::DomainError> {
    let Some(target) = target else {
        return Ok(());
    };
    let invalid = serin_core::DomainError::invalid;
    let engine = app.config.engines.get(&target.engine).map_err(|_| {
        let known = app.config.engines.names().join(", ");
        invalid(
            "engine.engine",
            format!(
                "no traffic engine {} on this server (it has: {})",
                target.engine,
                if known.is_empty() { "none" } else { &known }
            ),
        )
    })?;
    if !engine.allows(&target.backend) {
        return Err(invalid(
            "engine.backend",
            format!(
                "engine {} doesn't drive backend {} (the operator's list)",
                target.engine, target.backend
            ),
        ));
    }
    if let Err((field, why)) = engine.check_target(target) {
        return Err(invalid(field, format!("engine {}: {why}", target.engine)));
    }
    // A plan's mirror steps ask the engine what `mirror_percent` asks.
    let mirrors = plan.into_iter().flat_map(|p| p.steps.iter().enumerate());
    for (i, step) in mirrors {
        if let serin_core::rollout::Step::Mirror { percent } = step
            && *percent > 0
        {
            let asked = EngineTarget {
                mirror_percent: Some(*percent),
                ..target.clone()
            };
            if let Err((_, why)) = engine.check_target(&asked) {
                return Err(serin_core::DomainError::invalid(
                    format!("rollout.steps[{i}]"),
                    format!("engine {}: {why}", target.engine),
                ));
            }
        }
    }
    if let Err(why) = engine.check_rules(&serin_core::traffic::engine::engine_rules(traffic)) {
        return Err(invalid(
            "traffic.rules",
            format!("engine {}: {why}", target.engine),
        ));
    }
    if engine.servers_are_addresses() {
        for (field, servers) in [
            ("engine.stable", &target.stable),
            ("engine.canary", &target.canary),
        ] {
            for s in servers {
                app.outbound
                    .admit(s)
                    .await
                    .map_err(|why| invalid(field, format!("{s}: {why}")))?;
            }
        }
    }
    Ok(())
}

/// Whether a deployment in `live` splits `target`'s backend on its engine.
pub(crate) fn taken(live: &[Deployment], target: &EngineTarget) -> bool {
    live.iter().any(|d| {
        d.status.is_live()
            && d.engine
                .as_ref()
                .is_some_and(|e| e.engine == target.engine && e.backend == target.backend)
    })
}

/// Refuses a second live deployment on one engine backend (409
/// `ENGINE_BACKEND_IN_USE`): two would undo each other's weights. Read from
/// the live set before the deployment is stored, so two creations at the
/// same instant on two replicas could both pass; the controller then drives
/// both and the operator sees two deployments on one backend.
pub async fn not_in_use(app: &App, target: Option<&EngineTarget>) -> crate::AppResult<()> {
    let Some(target) = target else {
        return Ok(());
    };
    let live = app.store.live_deployments().await?;
    if let Some(d) = live.iter().find(|d| {
        d.engine
            .as_ref()
            .is_some_and(|e| e.engine == target.engine && e.backend == target.backend)
    }) {
        return Err(crate::AppError::new(
            crate::Kind::Conflict,
            "ENGINE_BACKEND_IN_USE",
            format!(
                "deployment {} already splits backend {} on engine {}: end it first",
                d.id, target.backend, target.engine
            ),
        )
        .details(serde_json::json!({"deployment_id": d.id, "field": "engine.backend"})));
    }
    Ok(())
}

/// The `backends=a+b` list of an engine's spec (none: every backend). `+`
/// separates, since `,` separates engines in `SERIN_TRAFFIC_ENGINES`.
pub(crate) fn backends_of(list: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = list.split('+').map(str::to_string).collect();
    for n in &names {
        serin_core::validate::validate_name("backends", n).map_err(|e| e.to_string())?;
    }
    Ok(names)
}

/// How many times [`follow`] puts a share in effect before it gives up.
const FOLLOW_TRIES: u32 = 20;

/// Puts a deployment's canary share in effect on its engine, in the
/// background: after it ends (promoted: 100%, rolled back: 0%), and, for a
/// deployment without a rollout plan, after it starts and after a change by
/// hand (a live rollout's engine is read back and put right by the leader's
/// controller every tick). Each try reads the deployment again
/// (so the newest share wins over an older follow or a tick still applying
/// what it read before the change), applies its share, waits, and reads the
/// engine back; it stops once the engine reports that share, or after 20
/// tries (logged). A live rollout is also read back and put right every tick
/// by the leader's controller.
pub fn follow(app: &App, d: &Deployment) {
    // A live rollout's engine is the controller's alone: a follow racing its
    // tick could put an older share back after the tick's newer one.
    if d.engine.is_none() || (d.status.is_live() && d.rollout.is_some()) {
        return;
    }
    let (app, id) = (app.clone(), d.id.clone());
    tokio::spawn(async move {
        for _ in 0..FOLLOW_TRIES {
            let d = match app.store.get_deployment(&id).await {
                Ok(d) => d,
                // Deleted: nothing left to follow.
                Err(serin_store::StoreError::NotFound { .. }) => return,
                Err(e) => {
                    tracing::warn!(deployment = %id, error = %e, "cannot read a deployment to follow on its engine");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            let Some(target) = d.engine.clone() else {
                return;
            };
            // An ended deployment's backend taken over by a live one is that
            // one's now.
            if !d.status.is_live()
                && let Ok(live) = app.store.live_deployments().await
                && taken(&live, &target)
            {
                return;
            }
            let engine = match app.config.engines.get(&target.engine) {
                Ok(e) => e.clone(),
                Err(e) => {
                    tracing::warn!(deployment = %id, error = %e, "cannot follow a deployment on its engine");
                    return;
                }
            };
            let state = RouteState::of(&d);
            if let Err(e) = engine.apply(&target, &state).await {
                tracing::warn!(deployment = %id, error = %e, "cannot put a deployment's share in effect");
            }
            // Long enough for a controller tick that read the deployment
            // before this change to have applied what it read.
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            if let Ok(seen) = engine.read_back(&target, &state).await
                && seen.holds(&target, &state)
                && app
                    .store
                    .get_deployment(&id)
                    .await
                    .is_ok_and(|now| RouteState::of(&now) == state)
            {
                return;
            }
        }
        tracing::warn!(deployment = %id, "gave up putting a deployment's share in effect on its engine");
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_become_a_histogram_and_grow() {
        // 10 requests ≤ 10 ms, 30 in (10, 25] ms, 2 above 1 s.
        let b = |pairs: &[(u64, u64)]| Buckets(pairs.iter().copied().collect());
        let now = b(&[(10_000, 10), (25_000, 40), (1_000_000, 40), (u64::MAX, 42)]);
        let h = now.histogram();
        assert_eq!(h.count, 42);
        let p50 = h.quantile_ms(0.5).unwrap();
        assert!(
            (16.0..19.0).contains(&p50),
            "the middle of (10, 25] ms: {p50}"
        );
        assert!(h.max_ms().unwrap() >= 990.0, "above the last bound, at it");
        let before = b(&[(10_000, 4), (25_000, 10), (1_000_000, 10), (u64::MAX, 10)]);
        let grew = now.since(&before).unwrap();
        assert_eq!(
            grew,
            b(&[(10_000, 6), (25_000, 30), (1_000_000, 30), (u64::MAX, 32)])
        );
        assert!(before.since(&now).is_none(), "a bucket that went down");
        assert!(Buckets::default().histogram().is_empty());
    }
}
