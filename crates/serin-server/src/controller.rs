//! The rollout controller: drives every live deployment that has a plan.
//!
//! Level-triggered, like a Kubernetes controller. Every tick (one second by
//! default, and at once when a deployment event is published) it reads the live
//! deployments from the store and, for each with a rollout, asks
//! `serin_core::controller::need` what the current step wants to know, finds it
//! out (the judges over a window of lane metrics, or a webhook gate's answer),
//! and applies `serin_core::controller::advance` through the store: one
//! transaction with its events, guarded by the revision the tick read. A person
//! acting in between wins; the controller looks again next tick. The proxy's
//! weights follow from the stored percentage (the route watch rebuilds on the
//! committed events), so there is no separate effect to repeat or lose.
//!
//! The controller keeps nothing that matters in memory: after a crash it resumes
//! each deployment from its recorded step. What it does keep — the latest
//! judgement of each deployment and when a gate was last asked — is for display
//! and pacing only.
//!
//! Several replicas may run controllers against one database: every write is
//! revision-guarded, so two controllers can't both move a step (one of them
//! gets a stale-revision error and drops its change). A webhook gate may then be
//! asked twice; gates are questions, so that is harmless.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use serin_core::controller::{self, Need, Observed, Sibling};
use serin_core::deployment::{Deployment, DeploymentStatus};
use serin_core::hooks::{HookKind, HookRun};
use serin_core::judge::{self, Inputs, Judgement};
use serin_core::metrics::{self, LaneWorkers};
use serin_core::worker::WorkerStatus;
use serin_core::{Lane, Timestamp};
use serin_store::StoreError;
use tokio::sync::broadcast::error::RecvError;

use crate::state::AppState;

/// How often a webhook gate is asked while it says no.
const GATE_EVERY: Duration = Duration::from_secs(5);
/// How long a gate may take to answer.
const GATE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the controller last saw of a deployment (shown by the rollout status route).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Seen {
    /// The latest judgement (analysis steps), with every verdict's evidence.
    pub judgement: Option<Judgement>,
    /// When the controller last looked.
    pub at: chrono::DateTime<chrono::Utc>,
}

/// A gate's latest answer: when, yes or no, and what it said.
type GateAnswer = (Instant, bool, String);
/// A confirmation's latest answer: when, yes or no, and the runs.
type HookAnswer = (Instant, bool, Vec<HookRun>);

/// The controller's memory: display and pacing only (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct ControllerMemory {
    seen: Arc<Mutex<HashMap<String, Seen>>>,
    gates: Arc<Mutex<HashMap<String, GateAnswer>>>,
    hooks: Arc<Mutex<HashMap<String, HookAnswer>>>,
}

impl ControllerMemory {
    /// What the controller last saw of a deployment.
    pub fn seen(&self, id: &str) -> Option<Seen> {
        self.seen.lock().expect("seen lock").get(id).cloned()
    }

    fn remember(&self, id: &str, seen: Seen) {
        self.seen
            .lock()
            .expect("seen lock")
            .insert(id.to_string(), seen);
    }

    fn forget_except(&self, live: &[Deployment]) {
        let keep: std::collections::HashSet<&str> = live.iter().map(|d| d.id.as_str()).collect();
        self.seen
            .lock()
            .expect("seen lock")
            .retain(|k, _| keep.contains(k.as_str()));
        self.gates
            .lock()
            .expect("gates lock")
            .retain(|k, _| keep.contains(k.as_str()));
        self.hooks
            .lock()
            .expect("hooks lock")
            .retain(|k, _| k.split_once(':').is_some_and(|(id, _)| keep.contains(id)));
    }
}

/// One tick's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Live deployments with a plan.
    pub rollouts: usize,
    /// Of which changed.
    pub changed: usize,
    /// Of which failed to reconcile (logged).
    pub errors: usize,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(state: AppState, every: Duration, shutdown: impl Future<Output = ()>) {
    let mut events = state.hub.subscribe();
    tokio::pin!(shutdown);
    loop {
        let report = tick(&state).await;
        if report.errors > 0 {
            tracing::warn!(?report, "controller tick had errors");
        }
        let sleep = tokio::time::sleep(every);
        tokio::pin!(sleep);
        // Wake at the next tick, or at once when a deployment changes.
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                () = &mut sleep => break,
                e = events.recv() => match e {
                    Ok(e) if e.deployment_id.is_some() => break,
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }
}

/// Reconciles every live deployment that has a plan, once.
pub async fn tick(state: &AppState) -> TickReport {
    let live = match state.store.live_deployments().await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "controller cannot read the live deployments");
            return TickReport {
                errors: 1,
                ..Default::default()
            };
        }
    };
    state.controller.forget_except(&live);
    let mut report = TickReport::default();
    let by_group = groups(&live);
    let ended = match state.store.deployments_with_pending_hooks().await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "controller cannot read the ended deployments");
            Vec::new()
        }
    };
    for d in live.iter().chain(&ended).filter(|d| d.rollout.is_some()) {
        report.rollouts += 1;
        match reconcile(state, d, &by_group).await {
            Ok(true) => report.changed += 1,
            Ok(false) => {}
            Err(e) => {
                report.errors += 1;
                tracing::warn!(deployment = %d.id, error = %e, "controller could not reconcile");
            }
        }
    }
    report
}

/// Live members of each group, by group id.
fn groups(live: &[Deployment]) -> HashMap<&str, Vec<&Deployment>> {
    let mut m: HashMap<&str, Vec<&Deployment>> = HashMap::new();
    for d in live {
        if let Some(g) = d.rollout.as_ref().and_then(|r| r.group.as_deref()) {
            m.entry(g).or_default().push(d);
        }
    }
    m
}

fn sibling(d: &Deployment) -> Sibling {
    let r = d.rollout.as_ref();
    Sibling {
        id: d.id.clone(),
        status: d.status,
        step: r.map_or(0, |r| r.step),
        ready: r.is_some_and(|r| r.ready),
    }
}

/// The other members of `d`'s group. A member missing from the live set has
/// finished; it is read from the store so that its status (a rollback) counts.
async fn siblings_of(
    state: &AppState,
    d: &Deployment,
    by_group: &HashMap<&str, Vec<&Deployment>>,
) -> Result<Vec<Sibling>, StoreError> {
    let Some(g) = d.rollout.as_ref().and_then(|r| r.group.as_deref()) else {
        return Ok(Vec::new());
    };
    let live = by_group.get(g).map_or(&[][..], Vec::as_slice);
    let size = d.rollout.as_ref().map_or(0, |r| r.group_size);
    if live.len() >= size {
        return Ok(live
            .iter()
            .filter(|s| s.id != d.id)
            .map(|s| sibling(s))
            .collect());
    }
    Ok(state
        .store
        .group_deployments(g)
        .await?
        .iter()
        .filter(|s| s.id != d.id)
        .map(sibling)
        .collect())
}

/// Reconciles one deployment; true when it changed.
async fn reconcile(
    state: &AppState,
    d: &Deployment,
    by_group: &HashMap<&str, Vec<&Deployment>>,
) -> Result<bool, StoreError> {
    let now = state.now();
    let spec = &d.rollout.as_ref().expect("filtered on rollout").spec;
    let mut observed = Observed::default();
    if d.status == DeploymentStatus::Active && !spec.health_checks.is_empty() {
        let results = state.probes.results(&d.id);
        let verdicts = judge::health::judge(&spec.health_checks, &results, now);
        observed.health = Some(judge::combine(verdicts, now));
    }
    match controller::need(d, now) {
        Need::Clock => {}
        Need::Judgement { since } => {
            let j = judgement(state, d, since, now).await?;
            state.controller.remember(
                &d.id,
                Seen {
                    judgement: Some(j.clone()),
                    at: now,
                },
            );
            observed.judgement = Some(j);
        }
        Need::Gate { url } => observed.gate = ask_gate(state, d, &url).await,
        Need::Hooks(kind) => match paced(state, d, kind) {
            Some(runs) => observed.hooks = Some((kind, runs)),
            None => {
                let runs = crate::hooks::run(state, d, kind).await;
                if matches!(kind, HookKind::ConfirmStep | HookKind::ConfirmPromotion) {
                    let ok = runs.iter().all(|r| r.ok);
                    let key = format!("{}:{}", d.id, kind.as_str());
                    state
                        .controller
                        .hooks
                        .lock()
                        .expect("hooks lock")
                        .insert(key, (Instant::now(), ok, runs.clone()));
                }
                observed.hooks = Some((kind, runs));
            }
        },
    }
    let siblings = siblings_of(state, d, by_group).await?;
    // Dry run on a copy: most ticks change nothing and then nothing is written.
    let mut copy = d.clone();
    let events = controller::advance(&mut copy, &observed, &siblings, now)?;
    if copy.revision == d.revision && events.is_empty() {
        return Ok(false);
    }
    let change: serin_store::canary::DeploymentChange =
        Box::new(move |d| controller::advance(d, &observed, &siblings, now));
    match state
        .store
        .update_deployment(&d.id, Some(d.revision), change, "controller", now)
        .await
    {
        Ok((after, events)) => {
            state.hub.publish(&events);
            if after.status == DeploymentStatus::Completed {
                crate::routes::canary::mark_release_stable(state, "controller", &after).await;
            }
            Ok(true)
        }
        // Someone else changed it since this tick read it: look again next tick.
        Err(StoreError::RevisionMismatch { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Runs the judges over `[since, now]`.
async fn judgement(
    state: &AppState,
    d: &Deployment,
    since: Timestamp,
    now: Timestamp,
) -> Result<Judgement, StoreError> {
    let spec = &d.rollout.as_ref().expect("rollout").spec;
    let window = (since.min(now), now);
    let [stable, canary] = match state.store.lane_windows(&d.id, window.0, window.1).await {
        Ok(w) => w,
        // A metrics source that errors is inconclusive, never a failure.
        Err(e) => {
            tracing::warn!(deployment = %d.id, error = %e, "lane metrics unavailable");
            let v = judge::Verdict {
                judge: "metrics".into(),
                outcome: judge::Outcome::Inconclusive,
                summary: "lane metrics could not be read".into(),
                evidence: json!({}),
            };
            return Ok(judge::combine(vec![v], now));
        }
    };
    let mut workers = [LaneWorkers::default(), LaneWorkers::default()];
    for w in state
        .store
        .workers_on_queue(&d.queue_name)
        .await?
        .iter()
        .filter(|w| w.status != WorkerStatus::Unreachable)
    {
        let lw = &mut workers[usize::from(w.lane == Lane::Canary)];
        lw.count += 1;
        lw.memory_mb.push(w.metrics.memory_usage_mb);
        lw.cpu_percent.push(w.metrics.cpu_usage_percent);
    }
    let s = metrics::snapshot(&stable, &workers[0], &d.stable_version, window, now);
    let c = metrics::snapshot(&canary, &workers[1], &d.canary_version, window, now);
    let results = state.probes.results(&d.id);
    let r = d.rollout.as_ref().expect("rollout");
    let inputs = Inputs {
        deployment: d,
        stable: &s,
        canary: &c,
        canary_gauges: &canary.gauges,
        health: &results,
        step_index: r.step,
        step_started_at: r.step_started_at,
        now,
    };
    Ok(judge::judge_all(&inputs, spec))
}

/// A confirmation that said no less than [`GATE_EVERY`] ago is not asked again yet.
fn paced(state: &AppState, d: &Deployment, kind: HookKind) -> Option<Vec<HookRun>> {
    let key = format!("{}:{}", d.id, kind.as_str());
    let memory = state.controller.hooks.lock().expect("hooks lock");
    match memory.get(&key) {
        Some((at, false, runs)) if at.elapsed() < GATE_EVERY => Some(runs.clone()),
        _ => None,
    }
}

/// Asks a webhook gate (at most every [`GATE_EVERY`] while it says no): a POST of
/// the deployment's position; a 2xx answer is yes.
async fn ask_gate(state: &AppState, d: &Deployment, url: &str) -> Option<(bool, String)> {
    let key = d.id.clone();
    if let Some((at, ok, said)) = state.controller.gates.lock().expect("gates lock").get(&key)
        && at.elapsed() < GATE_EVERY
    {
        return Some((*ok, said.clone()));
    }
    let r = d.rollout.as_ref().expect("rollout");
    let body = json!({
        "type": "gate",
        "deployment_id": d.id,
        "queue_name": d.queue_name,
        "stable_version": d.stable_version,
        "canary_version": d.canary_version,
        "current_percent": d.current_percent,
        "step": r.step,
    });
    let answer = match state
        .http
        .post(url)
        .timeout(GATE_TIMEOUT)
        .json(&body)
        .send()
        .await
    {
        Ok(resp) => {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            let text: String = text.chars().take(200).collect();
            (
                status.is_success(),
                format!("HTTP {}: {}", status.as_u16(), text.trim()),
            )
        }
        Err(e) => (
            false,
            format!("no answer: {}", crate::outbound::describe(&e)),
        ),
    };
    state
        .controller
        .gates
        .lock()
        .expect("gates lock")
        .insert(key, (Instant::now(), answer.0, answer.1.clone()));
    Some(answer)
}
