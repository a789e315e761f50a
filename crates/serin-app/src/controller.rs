//! The rollout controller: drives every live deployment that has a plan.
//!
//! Level-triggered, like a Kubernetes controller. Every tick (one second by
//! default, and at once when a deployment event is published) it reads the live
//! deployments from the store and, for each with a rollout, asks
//! `serin_core::rollout::need` what the current step wants to know, finds it
//! out, and applies `serin_core::rollout::advance` through the store: one
//! transaction with its events, guarded by the revision the tick read. A person
//! acting in between wins; the controller looks again next tick. The proxy's
//! weights follow from the stored percentage (the route watch rebuilds on the
//! committed events), so there is no separate effect to repeat or lose.
//!
//! Deployments are reconciled concurrently (a few at a time), each in its own
//! task, so one slow database read can't hold the others and a panic in one is
//! logged and contained. Slow outside calls — webhook gates and hooks, which may
//! take minutes — never run inside a reconcile: the first tick that needs one
//! starts it in the background, and a later tick takes its answer when it is
//! there. A "no" is kept for five seconds before it is asked again; a "yes" is
//! used once, by the step it was asked for.
//!
//! Analysis windows only grow while an analysis runs (they start when the step
//! started), so each deployment's lanes are accumulated in memory: the seconds
//! older than [`SEAL_LAG`] are read once and kept; each tick reads only the
//! recent tail, all deployments' reads together in one batch before the
//! reconciles start. Lane seconds a proxy reports later than that are missed by the
//! running judgement; the judgement at the end of the window (which decides a
//! pass) reads the whole window again, so it misses nothing.
//!
//! The sequential judge's rollback tests run on one path for the whole rollout
//! (see `serin_core::stats::sequential`): every tick, the newly sealed second(s) of
//! every active rollout — at any step, not only during analyses — are fed to its
//! tests, split where a step began so that each interval has one weight. A
//! rollout whose tests prove a regression is rolled back at whatever step it
//! is. The tests see sealed seconds only, so every value the judge acts on lies
//! on one supermartingale path (the price: a few seconds of lag). After a
//! restart the tests are rebuilt from the per-second history of the proxies'
//! lane buckets since the deployment started, one interval per second: the
//! same path, up to seconds reported late (observations reported by workers
//! before the restart are not replayed). A failed batch read puts the
//! accumulators back.
//!
//! The controller keeps nothing that matters in memory: after a crash it resumes
//! each deployment from its recorded step. What it keeps — accumulators, the
//! latest judgement of each deployment, outside answers — is rebuilt by asking
//! again. Only the leader of a cluster runs a controller, and every write is
//! revision-guarded and fenced by its epoch, so no step moves twice; gates and
//! hooks are claimed in the store before they are called (`crate::hooks`), so a
//! new leader reuses their recorded answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engines::InEffect;
use futures::StreamExt;
use serde::Serialize;
use serde_json::json;
use serin_core::canary::metrics::{self, LaneWindow, LaneWorkers};
use serin_core::canary::worker::{Worker, WorkerStatus};
use serin_core::canary::{Deployment, DeploymentStatus};
use serin_core::judge::{self, Inputs, Judgement};
use serin_core::rollout::hooks::HookRun;
use serin_core::rollout::{self, Need, Observed, Sibling};
use serin_core::rollout::{RolloutSpec, Step};
use serin_core::stats::sequential::Evidence;
use serin_core::{Lane, Timestamp};
use serin_store::StoreError;
use tokio::sync::broadcast::error::RecvError;

use crate::App;

/// How long a "no" from a gate or a confirmation is kept before asking again.
const ASK_EVERY: Duration = crate::hooks::ASK_AGAIN;
/// How long a gate may take to answer.
const GATE_TIMEOUT: Duration = Duration::from_secs(10);
/// Deployments reconciled at once.
const PARALLEL: usize = 8;
/// Lane seconds older than this are sealed into a deployment's accumulator:
/// a second is sealed once `now − SEAL_LAG` has passed its end, at least a
/// second after proxies (which report every second) have sent it.
pub const SEAL_LAG: Duration = Duration::from_secs(2);

/// What the controller last saw of a deployment (shown by the rollout status route).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Seen {
    /// The latest judgement (analysis steps), with every verdict's evidence.
    pub judgement: Option<Judgement>,
    /// When the controller last looked.
    pub at: chrono::DateTime<chrono::Utc>,
}

/// An outside answer a step waits for.
#[derive(Debug, Clone)]
enum Answer {
    /// Being asked in the background, by the leader's term with this id.
    Asking(u64),
    /// A webhook gate's yes or no, and when.
    Gate(bool, String, Instant),
    /// Hook runs, and when.
    Hooks(Vec<HookRun>, Instant),
}

/// A deployment's sealed lanes: the rollout's tests, fed with every sealed
/// second since it started, and the current step's lanes before `sealed_to`.
#[derive(Debug, Clone)]
struct Accumulated {
    /// When the deployment started (the key: another deployment starts afresh).
    started: Timestamp,
    /// When the step whose lanes these are started.
    step: Timestamp,
    sealed_to: Timestamp,
    lanes: [LaneWindow; 2],
    /// The step's lanes still lack `[step, this)`, sealed before the step's
    /// lanes were started (a new step, or a cold start): read once, when a
    /// judgement first needs them.
    backfill: Option<Timestamp>,
    evidence: Arc<Evidence>,
}

/// What a judgement reads: the window of both lanes and the rollout's running tests.
#[derive(Debug, Clone)]
pub(crate) struct Read {
    lanes: [LaneWindow; 2],
    evidence: Arc<Evidence>,
}

/// Fresh sequential tests with the plan's tolerances, margins and α share.
fn fresh_evidence(d: &Deployment, spec: &RolloutSpec) -> Evidence {
    let j = &spec.judges;
    Evidence::new(
        j.error_tolerance,
        j.latency_tolerance,
        j.margins_or(d.config.margins),
        judge::Budget::of(spec).sequential_metric,
    )
}

/// The tests rebuilt from the deployment's per-second lane buckets over
/// `[start, to)`, one interval per second (a cold start: a restart, or a
/// deployment's first tick). Observations reported apart from proxies (job
/// results, signals) before a restart are not replayed.
async fn rebuilt_evidence(
    state: &App,
    d: &Deployment,
    spec: &RolloutSpec,
    to: Timestamp,
) -> Result<Evidence, StoreError> {
    let mut e = fresh_evidence(d, spec);
    let to = to - chrono::Duration::microseconds(1);
    if to > d.start_time {
        let buckets = state.store.lane_buckets(&d.id, d.start_time, to).await?;
        for [s, c] in serin_core::simulate::seconds_from_buckets(&buckets) {
            e.observe(&s, &c);
        }
    }
    Ok(e)
}

/// The controller's memory: display, pacing and caches only (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct ControllerMemory {
    seen: Arc<Mutex<HashMap<String, Seen>>>,
    answers: Arc<Mutex<HashMap<(String, String), Answer>>>,
    lanes: Arc<Mutex<HashMap<String, Accumulated>>>,
    /// Engine deployments' counters (`crate::engines::telemetry`).
    tallies: Arc<crate::engines::telemetry::Tallies>,
    /// Ended engine deployments being settled (`crate::engines::settle`).
    settling: Arc<crate::engines::settle::Settling>,
}

impl ControllerMemory {
    /// What the controller last saw of a deployment.
    pub fn seen(&self, id: &str) -> Option<Seen> {
        self.seen.lock().expect("seen lock").get(id).cloned()
    }

    fn remember(&self, id: &str, seen: Seen) {
        let old = self
            .seen
            .lock()
            .expect("seen lock")
            .insert(id.to_string(), seen);
        // The old judgement (a tree of evidence) is freed outside the lock.
        drop(old);
    }

    /// Takes a deployment's accumulator out, if it belongs to the deployment
    /// that started at `started`.
    fn take_lanes(&self, id: &str, started: Timestamp) -> Option<Accumulated> {
        self.lanes
            .lock()
            .expect("lanes lock")
            .remove(id)
            .filter(|a| a.started == started)
    }

    /// Keeps a deployment's accumulator for the next tick.
    fn keep_lanes(&self, id: &str, acc: Accumulated) {
        self.lanes
            .lock()
            .expect("lanes lock")
            .insert(id.to_string(), acc);
    }

    /// Forgets the answers of gates and hooks still being asked and the
    /// lane accumulators: what a term that ended leaves behind (its tasks
    /// were aborted, so an answer "being asked" would never come).
    pub fn forget_term(&self) {
        self.answers.lock().expect("answers lock").clear();
        self.lanes.lock().expect("lanes lock").clear();
        self.tallies.clear();
        self.settling.clear();
    }

    fn forget_except(&self, keep: &std::collections::HashSet<&str>) {
        self.seen
            .lock()
            .expect("seen lock")
            .retain(|k, _| keep.contains(k.as_str()));
        self.answers
            .lock()
            .expect("answers lock")
            .retain(|k, _| keep.contains(k.0.as_str()));
        self.lanes
            .lock()
            .expect("lanes lock")
            .retain(|k, _| keep.contains(k.as_str()));
        self.tallies.retain(keep);
    }
}

/// How one reconcile ended: changed or not, an error, or a panic.
type Outcome = Result<Result<bool, StoreError>, tokio::task::JoinError>;

/// One tick's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Deployments with a plan looked at (live, or ended with hooks to run).
    pub rollouts: usize,
    /// Of which changed.
    pub changed: usize,
    /// Of which failed to reconcile (logged).
    pub errors: usize,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(state: App, every: Duration, shutdown: impl Future<Output = ()>) {
    let mut events = state.hub.subscribe();
    tokio::pin!(shutdown);
    loop {
        let started = Instant::now();
        let report = tokio::select! {
            () = &mut shutdown => return,
            r = tick(&state) => r,
        };
        state.telemetry.tick(started.elapsed());
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

/// Reconciles every deployment that has a plan — live, or ended with hooks still
/// to run — once.
pub async fn tick(state: &App) -> TickReport {
    let (live, ended) = match tokio::join!(
        state.store.live_deployments(),
        state.store.deployments_with_pending_hooks(),
    ) {
        (Ok(l), Ok(e)) => (l, e),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "controller cannot read the deployments");
            return TickReport {
                errors: 1,
                ..Default::default()
            };
        }
    };
    let keep = live.iter().chain(&ended).map(|d| d.id.as_str()).collect();
    state.controller.forget_except(&keep);
    // Engine deployments that ended since the last tick: their final share.
    let settling = state.controller.settling.clone();
    settling.track(&live);
    settling.settle(state, &live).await;
    let mut groups: HashMap<String, Vec<Sibling>> = HashMap::new();
    for d in &live {
        if let Some(g) = d.rollout.as_ref().and_then(|r| r.group.clone()) {
            groups.entry(g).or_default().push(sibling(d));
        }
    }
    let groups = Arc::new(groups);
    let workers = Arc::new(OnceWorkers::default());
    let work: Vec<Deployment> = live
        .into_iter()
        .chain(ended)
        .filter(|d| d.rollout.is_some())
        .collect();
    // Lane seconds from the engines' own counters, stored before the lanes
    // are read.
    let tallies = state.controller.tallies.clone();
    futures::stream::iter(
        work.iter()
            .filter(|d| d.engine.is_some() && d.status.is_live()),
    )
    .for_each_concurrent(PARALLEL, |d| {
        crate::engines::telemetry::sample(state, &tallies, d)
    })
    .await;
    let now = state.now();
    let lanes = Arc::new(Mutex::new(prefetch(state, &work, now).await));
    let mut report = TickReport {
        rollouts: work.len(),
        ..Default::default()
    };
    let outcomes: Vec<(String, Outcome)> = futures::stream::iter(work)
        .map(|d| {
            let (state, groups, workers) = (state.clone(), groups.clone(), workers.clone());
            let id = d.id.clone();
            let read = lanes.lock().expect("prefetch lock").remove(&id);
            async move {
                let task = state.term.clone().spawn(async move {
                    reconcile(&state, &d, &groups, &workers, read, now).await
                });
                (id, task.await)
            }
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    for (id, outcome) in outcomes {
        match outcome {
            Ok(Ok(true)) => report.changed += 1,
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                report.errors += 1;
                tracing::warn!(deployment = %id, error = %e, "controller could not reconcile");
            }
            Err(e) => {
                report.errors += 1;
                tracing::error!(deployment = %id, error = %e, "reconcile panicked");
            }
        }
    }
    report
}

/// The workers, read at most once per tick (only when a judgement needs them).
#[derive(Debug, Default)]
struct OnceWorkers(tokio::sync::OnceCell<HashMap<String, LaneWorkersPair>>);

type LaneWorkersPair = [LaneWorkers; 2];

impl OnceWorkers {
    async fn of(&self, state: &App, queue: &str) -> Result<LaneWorkersPair, StoreError> {
        let all = self
            .0
            .get_or_try_init(|| async {
                let list: Vec<Worker> = state.store.list_workers(None, 0, 100_000).await?.items;
                let mut by_queue: HashMap<String, LaneWorkersPair> = HashMap::new();
                for w in list
                    .iter()
                    .filter(|w| w.status != WorkerStatus::Unreachable)
                {
                    for q in &w.queues {
                        let lw = &mut by_queue.entry(q.clone()).or_default()
                            [usize::from(w.lane == Lane::Canary)];
                        lw.count += 1;
                        lw.memory_mb.push(w.metrics.memory_usage_mb);
                        lw.cpu_percent.push(w.metrics.cpu_usage_percent);
                    }
                }
                Ok::<_, StoreError>(by_queue)
            })
            .await?;
        Ok(all.get(queue).cloned().unwrap_or_default())
    }
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
/// finished (it is read from the store so that its status counts) or is still
/// being created: it then stands in as a member at step 0 that isn't ready, so
/// nobody moves on without it.
async fn siblings_of(
    state: &App,
    d: &Deployment,
    groups: &HashMap<String, Vec<Sibling>>,
) -> Result<Vec<Sibling>, StoreError> {
    let Some(r) = &d.rollout else {
        return Ok(Vec::new());
    };
    let Some(g) = r.group.as_deref() else {
        return Ok(Vec::new());
    };
    let mut all = groups.get(g).cloned().unwrap_or_default();
    if all.len() < r.group_size {
        all = state
            .store
            .group_deployments(g)
            .await?
            .iter()
            .map(sibling)
            .collect();
    }
    let missing = r.group_size.saturating_sub(all.len());
    all.retain(|s| s.id != d.id);
    all.extend((0..missing).map(|i| Sibling {
        id: format!("{g}/not-yet-created-{i}"),
        status: DeploymentStatus::Active,
        step: 0,
        ready: false,
    }));
    Ok(all)
}

/// Takes an outside answer for `key`, or starts asking in the background.
fn answer(
    state: &App,
    d: &Deployment,
    key: String,
    ask: impl FnOnce() -> tokio::task::JoinHandle<Answer>,
) -> Option<Answer> {
    let slot = (d.id.clone(), key);
    let mut answers = state.controller.answers.lock().expect("answers lock");
    let held = match answers.get(&slot).cloned() {
        Some(Answer::Asking(term)) if term == state.term.id() => return None,
        // Asked by a term that ended (its task was aborted): ask again.
        Some(Answer::Asking(_)) => None,
        other => other,
    };
    let (said_no, at) = match &held {
        Some(Answer::Gate(ok, _, at)) => (!ok, *at),
        Some(Answer::Hooks(runs, at)) => (runs.iter().any(|r| !r.ok), *at),
        Some(Answer::Asking(_)) | None => (false, Instant::now()),
    };
    let not_yet = said_no && !is_outcome(&slot.1);
    match held {
        // A "not yet" is kept for a while before asking again.
        Some(a) if not_yet && at.elapsed() < ASK_EVERY => Some(a),
        // A "yes", or a "no" that is an outcome, is used once.
        Some(a) if !not_yet => {
            answers.remove(&slot);
            Some(a)
        }
        _ => {
            answers.insert(slot.clone(), Answer::Asking(state.term.id()));
            drop(answers);
            let memory = state.controller.answers.clone();
            let handle = ask();
            state.term.spawn(async move {
                let a = handle.await.unwrap_or_else(|_| {
                    Answer::Gate(false, "the call failed".into(), Instant::now())
                });
                memory.lock().expect("answers lock").insert(slot, a);
            });
            None
        }
    }
}

/// Hooks whose "no" is an outcome (a failed pre-rollout hook rolls back; ending
/// hooks are only recorded), not a "not yet" to ask again.
fn is_outcome(key: &str) -> bool {
    key.starts_with("hooks:") && !key.starts_with("hooks:confirm_")
}

/// Reconciles one deployment; true when it changed.
async fn reconcile(
    state: &App,
    d: &Deployment,
    groups: &HashMap<String, Vec<Sibling>>,
    workers: &OnceWorkers,
    read: Option<Read>,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let r = d.rollout.as_ref().expect("filtered on rollout");
    let mut observed = Observed::default();
    if d.status == DeploymentStatus::Active && !r.spec.health_checks.is_empty() {
        let results = state.probes.results(&d.id);
        let verdicts = judge::health::judge(&r.spec.health_checks, &results, now);
        observed.health = Some(judge::combine(verdicts, now));
    }
    if let Some(target) = &d.engine
        && d.status.is_live()
    {
        (observed.engine_share, observed.engine_said) = engine_in_effect(state, d, target).await;
    }
    let need = rollout::need(d, now);
    if d.status == DeploymentStatus::Active
        && r.spec.judges.sequential
        && !matches!(need, Need::Judgement { .. })
        && let Some(read) = &read
    {
        // Between analyses the rollout's tests still watch: a proven
        // regression rolls back at any step.
        let v = judge::sequential::judge(
            Some(&read.evidence),
            &r.spec.judges,
            judge::Budget::of(&r.spec).sequential_metric,
            r.spec.analysis_steps(),
            d.config.rollback_thresholds.required_sample_size,
        );
        observed.sequential = Some(judge::combine(vec![v], now));
    }
    match need {
        Need::Clock => {}
        Need::Judgement { since } => {
            observed.judgement = Some(judgement(state, d, since, read, workers, now).await?);
        }
        Need::Gate { url } => {
            let key = format!("gate:{}:{url}", r.step);
            let (state2, d2) = (state.clone(), d.clone());
            if let Some(Answer::Gate(ok, said, _)) = answer(state, d, key, move || {
                state2.term.clone().spawn(async move {
                    let (ok, said) = ask_gate(&state2, &d2, &url).await;
                    Answer::Gate(ok, said, Instant::now())
                })
            }) {
                observed.gate = Some((ok, said));
            }
        }
        Need::Hooks(kind) => {
            let key = format!("hooks:{}:{}", kind.as_str(), r.step);
            let (state2, d2) = (state.clone(), d.clone());
            if let Some(Answer::Hooks(runs, _)) = answer(state, d, key, move || {
                state2.term.clone().spawn(async move {
                    Answer::Hooks(crate::hooks::run(&state2, &d2, kind).await, Instant::now())
                })
            }) {
                observed.hooks = Some((kind, runs));
            }
        }
    }
    let siblings = siblings_of(state, d, groups).await?;
    // Dry run on a copy: most ticks change nothing and then nothing is written.
    let mut copy = d.clone();
    let events = rollout::advance(&mut copy, &observed, &siblings, now)?;
    let unchanged = copy.revision == d.revision && events.is_empty();
    // The judgement is shown by the rollout status route: moved there, not
    // copied, when it changes nothing (most ticks).
    let shown = if unchanged {
        observed.judgement.take()
    } else {
        observed.judgement.clone()
    };
    if shown.is_some() {
        let seen = Seen {
            judgement: shown,
            at: now,
        };
        state.controller.remember(&d.id, seen);
    }
    if unchanged {
        return Ok(false);
    }
    let change: serin_store::canary::DeploymentChange =
        Box::new(move |d| rollout::advance(d, &observed, &siblings, now));
    match state
        .store
        .update_deployment(&d.id, Some(d.revision), change, "controller", now)
        .await
    {
        // The release effects (a promoted release `released`, a release whose
        // canary a verdict rolled back `rolled_back`) committed with it.
        Ok((changed, events)) => {
            state.committed(&events);
            if !changed.status.is_live() {
                // Its final share (promoted or rolled back) on its engine.
                crate::engines::follow(state, &changed);
            }
            Ok(true)
        }
        // Someone else changed it since this tick read it: look again next tick.
        Err(StoreError::RevisionMismatch { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads back the canary share an external engine has in effect for a
/// deployment and, when it differs from the deployment's, puts the
/// deployment's in effect and reads again. The share read (`None` when the
/// engine can't be read: the step then waits, and pauses when its allowance
/// runs out).
async fn engine_in_effect(
    state: &App,
    d: &Deployment,
    target: &serin_core::traffic::engine::EngineTarget,
) -> (Option<u8>, Option<String>) {
    let engine = match state.config.engines.get(&target.engine) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "a deployment names a traffic engine this server lacks");
            return (None, Some(e.to_string()));
        }
    };
    let want = serin_core::traffic::engine::RouteState::of(d);
    // A read that fails (an engine not set up for this backend yet, say: no
    // probe file) still leads to an apply.
    let seen = engine.read_back(target, &want).await;
    if let Ok(seen) = &seen
        && seen.holds(target, &want)
    {
        return (seen.share, None);
    }
    // Changed since this tick read it (a person ended or moved it)? Then
    // the next tick, or the follow-up of its end, puts what it holds now in
    // effect: this tick must not put the older state back.
    let applied = match state.store.get_deployment(&d.id).await {
        Ok(now) if now.revision == d.revision => engine.apply(target, &want).await,
        _ => return (seen.ok().and_then(|s| s.share), None),
    };
    match applied {
        Ok(()) => match engine.read_back(target, &want).await {
            // The share is reached only with the rules in effect too.
            Ok(InEffect {
                rules_differ: Some(why),
                ..
            }) => (None, Some(format!("{}: {why}", target.engine))),
            Ok(seen) => (seen.share, None),
            Err(e) => {
                tracing::warn!(engine = %target.engine, error = %e, "cannot read a traffic engine back");
                (None, Some(e.to_string()))
            }
        },
        Err(e) => {
            tracing::warn!(engine = %target.engine, error = %e, "cannot drive a traffic engine");
            (None, Some(e.to_string()))
        }
    }
}

/// When the current analysis step's window ends.
fn window_end(d: &Deployment, now: Timestamp) -> Timestamp {
    match d.rollout.as_ref().and_then(|r| r.current().map(|s| (r, s))) {
        Some((r, Step::Analysis { window })) => {
            r.step_started_at + window.unwrap_or(d.config.metrics_window).to_chrono()
        }
        _ => now,
    }
}

mod reads;

#[cfg(test)]
mod tests;
use reads::prefetch;

/// Runs the judges over `[since, now]`.
async fn judgement(
    state: &App,
    d: &Deployment,
    since: Timestamp,
    read: Option<Read>,
    workers: &OnceWorkers,
    now: Timestamp,
) -> Result<Judgement, StoreError> {
    let r = d.rollout.as_ref().expect("rollout");
    let window = (since.min(now), now);
    let read = match read {
        Some(Read { lanes, evidence }) => Ok((lanes, Some(evidence))),
        // Not in this tick's batch (it failed): the whole window, on its own,
        // with the rollout's tests if the controller holds them.
        None => {
            let held = state
                .controller
                .lanes
                .lock()
                .expect("lanes lock")
                .get(&d.id)
                .filter(|a| a.started == d.start_time)
                .map(|a| a.evidence.clone());
            state
                .store
                .lane_windows(&d.id, window.0, now)
                .await
                .map(|lanes| (lanes, held))
        }
    };
    let ([stable, canary], evidence) = match read {
        Ok(w) => w,
        // A metrics source that errors is inconclusive, never a failure.
        Err(e) => {
            tracing::warn!(deployment = %d.id, error = %e, "lane metrics unavailable");
            let v = judge::Verdict {
                judge: "metrics".into(),
                outcome: judge::Outcome::Inconclusive,
                summary: "lane metrics could not be read".into(),
                evidence: json!({}),
                settled: false,
            };
            return Ok(judge::combine(vec![v], now));
        }
    };
    let [ws, wc] = workers.of(state, &d.queue_name).await?;
    let s = metrics::snapshot(&stable, &ws, &d.stable_version, window, now);
    let c = metrics::snapshot(&canary, &wc, &d.canary_version, window, now);
    let results = state.probes.results(&d.id);
    let inputs = Inputs {
        deployment: d,
        stable: &s,
        canary: &c,
        lanes: [&stable, &canary],
        window_over: now >= window_end(d, now),
        canary_gauges: &canary.gauges,
        health: &results,
        step_index: r.step,
        step_started_at: r.step_started_at,
        sequential: evidence.as_deref(),
        now,
    };
    Ok(judge::judge_all(&inputs, &r.spec))
}

/// Asks a webhook gate: a POST of the deployment's position; a 2xx answer is yes.
/// Claimed like a hook (see `crate::hooks::claimed`): a leader that takes over
/// reuses a recorded answer while it stands.
async fn ask_gate(state: &App, d: &Deployment, url: &str) -> (bool, String) {
    let key = format!(
        "gate:{}:{}:{url}",
        d.id,
        d.rollout.as_ref().map_or(0, |r| r.step)
    );
    let mut body = crate::hooks::position("gate", d);
    body["delivery_id"] = json!(key);
    let call = crate::hooks::Call {
        key: &key,
        deployment_id: &d.id,
        reuse: serin_store::calls::Reuse::NoFor(ASK_EVERY),
        attempts: 1,
        timeout: GATE_TIMEOUT,
    };
    let (ok, said, _) = crate::hooks::claimed(state, call, |_| {
        crate::hooks::post(state, url, &body, GATE_TIMEOUT)
    })
    .await;
    (ok, said)
}
