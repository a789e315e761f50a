//! The rollout state machine: where a deployment is in its plan, and what the
//! controller may do next.
//!
//! The controller in `serin-server` is level-triggered. On each tick it reads a
//! deployment, asks [`need`] what outside information the current step wants
//! (a judgement over a window of metrics, or a gate's answer), gathers it, and
//! hands it to [`advance`], which changes the deployment and returns the events
//! of the change. The store writes both in one transaction guarded by the
//! deployment's revision, so a manual action that lands in between wins and the
//! controller simply looks again on its next tick. Nothing here remembers
//! anything between calls: everything the machine knows is in [`Rollout`], which
//! is stored inside the deployment. After a crash the next tick carries on from
//! the recorded step; a step's events are written with the step change itself,
//! so none is lost or written twice.
//!
//! Steps:
//! - `set_weight N` takes effect at once and the next step starts;
//! - `pause` ends when its duration has passed since it started, or when a
//!   person continues;
//! - `analysis` judges the canary over its window (data since the step started,
//!   at most `window` back) on every tick. A failure rolls back at once — a bad
//!   canary doesn't wait for the window to end. A pass or a warning at the end of
//!   the window moves on. If the judges are still inconclusive at the end (no
//!   traffic, no data), the deployment is paused with the reason: it neither
//!   promotes nor rolls back by itself;
//! - `gate` waits until its webhook answers 2xx, or until a person continues
//!   (an approval).
//!
//! After the last step the deployment is promoted when `auto_promotion` is on
//! and `min_canary_duration` has passed; otherwise it waits for a person.
//! `max_canary_duration` ends a rollout that is still running by the spec's
//! `on_max_duration` (rollback or pause).
//!
//! Deployments started together as one group advance in lock-step: a target
//! that has finished a step marks itself `ready` and only moves on once every
//! other target is ready at that step or past it. When any target of a group has
//! been rolled back, every other target rolls back too.

use serde_json::{Value, json};

use crate::canary::{Deployment, DeploymentStatus};
use crate::duration::GoDuration;
use crate::event::{EventType, NewEvent};
use crate::judge::{Judgement, Outcome};
use crate::rollout::hooks::{HookKind, HookRun};
use crate::rollout::{Gate, MaxDurationAction, Rollout, Step};
use crate::{DomainError, Timestamp};

/// What the controller must find out before it can advance a deployment.
#[derive(Debug, Clone, PartialEq)]
pub enum Need {
    /// Nothing: [`advance`] can run on the clock alone (or nothing is to be done).
    Clock,
    /// A judgement of the window starting here (an analysis step).
    Judgement {
        /// Start of the window; it ends now.
        since: Timestamp,
    },
    /// A webhook gate's answer.
    Gate {
        /// Where to ask.
        url: String,
    },
    /// The outcome of running the hooks of this kind (for an ended deployment,
    /// `OnRollback` means: on-rollback hooks, then post-rollout ones).
    Hooks(HookKind),
}

/// What the controller found out for [`advance`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// The judges' judgement for the current analysis step.
    pub judgement: Option<Judgement>,
    /// A webhook gate's answer: yes or no, and what it said.
    pub gate: Option<(bool, String)>,
    /// Health checks that run all along (not only at analysis steps).
    pub health: Option<Judgement>,
    /// The sequential judge between analysis steps: its rollback tests run
    /// all through the rollout, and a proven regression rolls back at any step.
    pub sequential: Option<Judgement>,
    /// The hooks run for a [`Need::Hooks`].
    pub hooks: Option<(HookKind, Vec<HookRun>)>,
    /// The canary share an external engine reports in effect (read back this
    /// tick), for a deployment it splits.
    pub engine_share: Option<u8>,
    /// What the engine said when it couldn't be driven or read this tick.
    pub engine_said: Option<String>,
}

/// One target of a group, as its siblings see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sibling {
    /// Its deployment id.
    pub id: String,
    /// Its status.
    pub status: DeploymentStatus,
    /// Its current step.
    pub step: usize,
    /// Whether it has finished that step.
    pub ready: bool,
}

/// The window an analysis step judges: since the step started, at most `window` back.
pub fn analysis_since(
    d: &Deployment,
    r: &Rollout,
    window: Option<GoDuration>,
    now: Timestamp,
) -> Timestamp {
    let window = window.unwrap_or(d.config.metrics_window).to_chrono();
    r.step_started_at.max(now - window)
}

/// What the current step needs to know.
pub fn need(d: &Deployment, now: Timestamp) -> Need {
    let Some(r) = &d.rollout else {
        return Need::Clock;
    };
    if !d.status.is_live() && r.hooks_pending {
        return Need::Hooks(if d.status == DeploymentStatus::Failed {
            HookKind::OnRollback
        } else {
            HookKind::PostRollout
        });
    }
    if d.status != DeploymentStatus::Active || r.ready {
        return Need::Clock;
    }
    if pre_rollout_due(r) {
        return Need::Hooks(HookKind::PreRollout);
    }
    match r.current() {
        Some(Step::SetWeight(_))
            if r.spec.has_hooks(HookKind::ConfirmStep) && r.confirmed_step != Some(r.step) =>
        {
            Need::Hooks(HookKind::ConfirmStep)
        }
        None if r.spec.has_hooks(HookKind::ConfirmPromotion)
            && d.config.auto_promotion
            && now - d.start_time >= d.config.min_canary_duration.to_chrono() =>
        {
            Need::Hooks(HookKind::ConfirmPromotion)
        }
        Some(Step::Analysis { window }) => Need::Judgement {
            since: analysis_since(d, r, *window, now),
        },
        Some(Step::Gate(Gate::Webhook { url })) => Need::Gate { url: url.clone() },
        _ => Need::Clock,
    }
}

fn step_kind(s: &Step) -> &'static str {
    match s {
        Step::SetWeight(_) => "set_weight",
        Step::Pause { .. } => "pause",
        Step::Analysis { .. } => "analysis",
        Step::Gate(_) => "gate",
        Step::Mirror { .. } => "mirror",
    }
}

/// Most steps taken in one call (weights and passed gates chain within a tick).
const MAX_STEPS_PER_TICK: usize = 64;

/// Advances the deployment as far as the clock and `observed` allow, returning
/// the events of every change (empty when nothing changed).
pub fn advance(
    d: &mut Deployment,
    observed: &Observed,
    siblings: &[Sibling],
    now: Timestamp,
) -> Result<Vec<NewEvent>, DomainError> {
    let Some(r) = d.rollout.clone() else {
        return Ok(Vec::new());
    };
    if !d.status.is_live() && r.hooks_pending {
        return Ok(match &observed.hooks {
            Some((HookKind::OnRollback | HookKind::PostRollout, runs)) => {
                d.rollout.as_mut().expect("rollout").hooks_pending = false;
                d.touch(now);
                hook_events(d, runs)
            }
            _ => Vec::new(),
        });
    }
    if !d.status.is_live() {
        return Ok(Vec::new());
    }
    // A group falls together (a paused target too).
    if let Some(fallen) = siblings
        .iter()
        .find(|s| s.status == DeploymentStatus::Failed)
    {
        let group = r.group.as_deref().unwrap_or("group");
        return rollback(
            d,
            format!("target {} of {group} was rolled back", fallen.id),
            None,
            now,
        );
    }
    if d.status != DeploymentStatus::Active {
        return Ok(Vec::new());
    }
    if let Some(h) = &observed.health
        && h.outcome == Outcome::Fail
    {
        return rollback(d, h.summary.clone(), Some(h), now);
    }
    if let Some(j) = &observed.sequential
        && j.outcome == Outcome::Fail
    {
        return rollback(d, j.summary.clone(), Some(j), now);
    }
    if now - d.start_time >= d.config.max_canary_duration.to_chrono() {
        let why = format!(
            "max_canary_duration {} reached before the rollout ended",
            d.config.max_canary_duration
        );
        return match r.spec.on_max_duration {
            MaxDurationAction::Rollback => rollback(d, why, None, now),
            MaxDurationAction::Pause => d.pause(Some(&why), now),
        };
    }
    let mut events = Vec::new();
    // Answers (hooks, gates) were gathered for the step current when `need` was
    // asked; a step reached later in this call waits for its own.
    let asked_at = r.step;
    if pre_rollout_due(&r) {
        let Some((HookKind::PreRollout, runs)) = &observed.hooks else {
            return Ok(events);
        };
        events.extend(hook_events(d, runs));
        if let Some(bad) = runs.iter().find(|h| !h.ok) {
            let why = format!("pre-rollout hook {} failed: {}", bad.name, bad.output);
            events.extend(rollback(d, why, None, now)?);
            return Ok(events);
        }
        d.rollout.as_mut().expect("rollout").pre_rollout_done = true;
        d.touch(now);
    }
    for _ in 0..MAX_STEPS_PER_TICK {
        let r = d.rollout.as_ref().expect("rollout checked above");
        let i = r.step;
        let elapsed = now - r.step_started_at;
        let Some(step) = r.current().cloned() else {
            let fresh = if i == asked_at {
                observed
            } else {
                &Observed::default()
            };
            events.extend(finish(d, fresh, siblings, now)?);
            return Ok(events);
        };
        if r.ready {
            // Finished this step; waiting for the rest of the group.
            if !group_may_pass(siblings, i) {
                return Ok(events);
            }
            events.extend(next_step(d, siblings, now, json!({}))?);
            continue;
        }
        match step {
            Step::SetWeight(w) => {
                if r.spec.has_hooks(HookKind::ConfirmStep) && r.confirmed_step != Some(i) {
                    match &observed.hooks {
                        _ if i != asked_at => return Ok(events),
                        Some((HookKind::ConfirmStep, runs)) if runs.iter().all(|h| h.ok) => {
                            events.extend(hook_events(d, runs));
                            d.rollout.as_mut().expect("rollout").confirmed_step = Some(i);
                        }
                        Some((HookKind::ConfirmStep, runs)) => {
                            events.extend(refused(d, i, runs, now));
                            return Ok(events);
                        }
                        _ => return Ok(events),
                    }
                }
                let mut ev = d.set_percentage(w, now)?;
                for e in &mut ev {
                    put(&mut e.data, "step", json!(i));
                }
                events.extend(ev);
                // An external engine: the step is reached when the engine
                // reports the weight in effect, or the rollout pauses.
                if let Some(engine) = d.engine.clone() {
                    let want = engine.share(w);
                    let seen = observed.engine_share.filter(|_| i == asked_at);
                    if seen != Some(want) {
                        let within = engine.confirm_within();
                        if elapsed >= chrono::Duration::from_std(within).unwrap_or_default() {
                            let said = match seen {
                                Some(s) => format!("it reports {s}%"),
                                None => match &observed.engine_said {
                                    Some(said) => format!("it could not be read ({said})"),
                                    None => "it could not be read".into(),
                                },
                            };
                            let reason = format!(
                                "engine {} did not put {want}% in effect within {}s: {said}",
                                engine.engine,
                                within.as_secs()
                            );
                            events.extend(d.pause(Some(&reason), now)?);
                        }
                        return Ok(events);
                    }
                }
                events.extend(next_step(d, siblings, now, json!({"weight": w}))?);
            }
            Step::Pause { duration } => match duration {
                Some(p) if elapsed >= p.to_chrono() => {
                    events.extend(next_step(d, siblings, now, json!({"paused_for": p}))?);
                }
                _ => return Ok(events),
            },
            Step::Analysis { window } => {
                let Some(j) = observed.judgement.as_ref().filter(|_| i == asked_at) else {
                    return Ok(events);
                };
                let window = window.unwrap_or(d.config.metrics_window);
                match j.outcome {
                    Outcome::Fail => {
                        events.extend(rollback(d, j.summary.clone(), Some(j), now)?);
                        return Ok(events);
                    }
                    _ if elapsed < window.to_chrono() && !j.settled => return Ok(events),
                    Outcome::Pass | Outcome::Warn => {
                        let data = json!({"judgement": j, "window": window});
                        events.push(event(
                            d,
                            EventType::AnalysisCompleted,
                            format!("Analysis at step {i} passed: {}", j.summary),
                            data,
                        ));
                        events.extend(next_step(d, siblings, now, json!({"outcome": j.outcome}))?);
                    }
                    Outcome::Inconclusive => {
                        let why = format!(
                            "analysis at step {i} inconclusive after {window}: {}",
                            j.summary
                        );
                        let mut ev = d.pause(Some(&why), now)?;
                        for e in &mut ev {
                            put(&mut e.data, "judgement", json!(j));
                            put(&mut e.data, "step", json!(i));
                        }
                        events.extend(ev);
                        return Ok(events);
                    }
                }
            }
            Step::Mirror { percent } => {
                let r = d.rollout.as_mut().expect("rollout");
                if r.mirror_percent != percent {
                    r.mirror_percent = percent;
                    d.touch(now);
                }
                events.extend(next_step(d, siblings, now, json!({"mirror": percent}))?);
            }
            Step::Gate(Gate::Approval | Gate::ReleaseApproval { .. }) => return Ok(events),
            Step::Gate(Gate::Webhook { url }) => match &observed.gate {
                _ if i != asked_at => return Ok(events),
                Some((true, said)) => {
                    events.extend(next_step(
                        d,
                        siblings,
                        now,
                        json!({"gate": url, "answer": said}),
                    )?);
                }
                Some((false, said)) => {
                    let key = refusal_key(said);
                    let r = d.rollout.as_mut().expect("rollout");
                    if r.gate_refusal.as_deref() != Some(key.as_str()) {
                        r.gate_refusal = Some(key);
                        d.touch(now);
                        events.push(event(
                            d,
                            EventType::GateWaiting,
                            format!("Gate at step {i} says not yet: {said}"),
                            json!({"step": i, "url": url, "answer": said}),
                        ));
                    }
                    return Ok(events);
                }
                None => return Ok(events),
            },
        }
    }
    Ok(events)
}

/// Whether a group member may leave step `i`: every sibling is ready at it or past it.
fn group_may_pass(siblings: &[Sibling], i: usize) -> bool {
    siblings
        .iter()
        .all(|s| s.status == DeploymentStatus::Completed || s.step > i || (s.step == i && s.ready))
}

/// Ends the current step. In a group, only when the others are ready too;
/// otherwise marks this target ready.
fn next_step(
    d: &mut Deployment,
    siblings: &[Sibling],
    now: Timestamp,
    detail: Value,
) -> Result<Vec<NewEvent>, DomainError> {
    let r = d.rollout.as_mut().expect("rollout");
    let i = r.step;
    if r.group.is_some() && !r.ready && !group_may_pass(siblings, i) {
        r.ready = true;
        d.touch(now);
        return Ok(Vec::new());
    }
    r.step += 1;
    r.ready = false;
    r.gate_refusal = None;
    r.step_started_at = now;
    let next = r.current().cloned();
    let total = r.spec.steps.len();
    d.touch(now);
    let message = match &next {
        Some(s) => format!("Step {} of {total} started: {}", i + 2, describe(s)),
        None => format!("All {total} steps done"),
    };
    Ok(vec![event(
        d,
        EventType::RolloutStepStarted,
        message,
        json!({"step": i + 1, "finished_step": i, "kind": next.as_ref().map(step_kind), "detail": detail}),
    )])
}

/// After the last step: promote when allowed, otherwise wait.
fn finish(
    d: &mut Deployment,
    observed: &Observed,
    siblings: &[Sibling],
    now: Timestamp,
) -> Result<Vec<NewEvent>, DomainError> {
    if !d.config.auto_promotion {
        return Ok(Vec::new());
    }
    if now - d.start_time < d.config.min_canary_duration.to_chrono() {
        return Ok(Vec::new());
    }
    let steps = d.rollout.as_ref().map_or(0, |r| r.spec.steps.len());
    if siblings
        .iter()
        .any(|s| s.status.is_live() && s.step < steps)
    {
        return Ok(Vec::new());
    }
    let mut events = Vec::new();
    if d.rollout
        .as_ref()
        .is_some_and(|r| r.spec.has_hooks(HookKind::ConfirmPromotion))
    {
        match &observed.hooks {
            Some((HookKind::ConfirmPromotion, runs)) if runs.iter().all(|h| h.ok) => {
                events.extend(hook_events(d, runs));
            }
            Some((HookKind::ConfirmPromotion, runs)) => {
                return Ok(refused(d, steps, runs, now));
            }
            _ => return Ok(events),
        }
    }
    events.push(event(
        d,
        EventType::AutoPromotionTriggered,
        "Every step passed: promoting".into(),
        json!({}),
    ));
    events.extend(d.promote(now)?);
    Ok(events)
}

fn rollback(
    d: &mut Deployment,
    reason: String,
    judgement: Option<&Judgement>,
    now: Timestamp,
) -> Result<Vec<NewEvent>, DomainError> {
    // Outputs and probe messages come from outside: no control characters in a reason.
    let mut reason: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if reason.len() > 1900 {
        let mut cut = 1900;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    let step = d.rollout.as_ref().map(|r| r.step);
    let mut ev = d.rollback(&reason, now)?;
    for e in &mut ev {
        put(&mut e.data, "automatic", json!(true));
        put(&mut e.data, "step", json!(step));
        if let Some(j) = judgement {
            put(&mut e.data, "judgement", json!(j));
        }
    }
    Ok(ev)
}

/// What makes a "no" new: its kind (`HTTP 503`, `no answer`, `exit 1`), not its
/// text, which may carry request ids or clocks.
fn refusal_key(said: &str) -> String {
    said.split(';')
        .map(|part| {
            let part = part.trim();
            // "<hook>: HTTP 503: body" or "HTTP 503: body".
            let mut bits = part.splitn(3, ": ");
            let (a, b) = (bits.next().unwrap_or(""), bits.next().unwrap_or(""));
            if a.starts_with("HTTP ") || a.starts_with("exit ") || a.starts_with("no answer") {
                a.to_string()
            } else {
                format!("{a}: {}", b.split(": ").next().unwrap_or(""))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// One `hook_completed` event per hook run.
fn hook_events(d: &Deployment, runs: &[HookRun]) -> Vec<NewEvent> {
    runs.iter()
        .map(|h| {
            event(
                d,
                EventType::HookCompleted,
                format!(
                    "{} hook {} {}",
                    h.kind.as_str(),
                    h.name,
                    if h.ok { "succeeded" } else { "failed" }
                ),
                json!({"hook": h}),
            )
        })
        .collect()
}

/// A confirmation said no: recorded once per new answer (like a gate's), then held.
fn refused(d: &mut Deployment, step: usize, runs: &[HookRun], now: Timestamp) -> Vec<NewEvent> {
    let said: Vec<String> = runs
        .iter()
        .filter(|h| !h.ok)
        .map(|h| format!("{}: {}", h.name, h.output))
        .collect();
    let said = said.join("; ");
    let key = refusal_key(&said);
    let r = d.rollout.as_mut().expect("rollout");
    if r.gate_refusal.as_deref() == Some(key.as_str()) {
        return Vec::new();
    }
    r.gate_refusal = Some(key);
    d.touch(now);
    vec![event(
        d,
        EventType::GateWaiting,
        format!("Confirmation before step {} says not yet: {said}", step + 1),
        json!({"step": step, "hooks": runs}),
    )]
}

/// Marks an ended deployment's post-rollout (and on-rollback) hooks as due.
pub fn mark_ended(d: &mut Deployment) {
    let failed = d.status == DeploymentStatus::Failed;
    if let Some(r) = &mut d.rollout {
        r.hooks_pending = r.spec.has_hooks(HookKind::PostRollout)
            || (failed && r.spec.has_hooks(HookKind::OnRollback));
    }
}

/// The hooks an ended deployment runs, in order: on-rollback ones first after a rollback.
pub fn ending_hooks(d: &Deployment) -> Vec<crate::rollout::hooks::Hook> {
    let Some(r) = &d.rollout else {
        return Vec::new();
    };
    let mut hooks = Vec::new();
    if d.status == DeploymentStatus::Failed {
        hooks.extend(r.spec.hooks_of(HookKind::OnRollback).cloned());
    }
    hooks.extend(r.spec.hooks_of(HookKind::PostRollout).cloned());
    hooks
}

/// A step in words.
pub fn describe(s: &Step) -> String {
    match s {
        Step::SetWeight(w) => format!("set weight {w}%"),
        Step::Pause { duration: Some(d) } => format!("pause {d}"),
        Step::Pause { duration: None } => "pause until continued".into(),
        Step::Analysis { window: Some(w) } => format!("analysis over {w}"),
        Step::Analysis { window: None } => "analysis over the metrics window".into(),
        Step::Gate(Gate::Webhook { url }) => format!("gate: webhook {url}"),
        Step::Gate(Gate::Approval) => "gate: approval".into(),
        Step::Gate(Gate::ReleaseApproval {
            environment,
            required,
            ..
        }) => format!("gate: {required} approval(s) for {environment}"),
        Step::Mirror { percent: 0 } => "stop mirroring".into(),
        Step::Mirror { percent } => format!("mirror {percent}% of stable's requests to the canary"),
    }
}

fn put(data: &mut Value, key: &str, v: Value) {
    if let Some(o) = data.as_object_mut() {
        o.insert(key.into(), v);
    }
}

fn event(d: &Deployment, kind: EventType, message: String, data: Value) -> NewEvent {
    d.event(kind, message, data)
}

/// Whether the pre-rollout hooks are due: not yet run, and the rollout is past
/// its opening gates (so an unapproved release never migrates a database).
fn pre_rollout_due(r: &Rollout) -> bool {
    !r.pre_rollout_done
        && r.spec.has_hooks(HookKind::PreRollout)
        && !matches!(r.current(), Some(Step::Gate(_)))
}

/// Passes a release-approval gate once its policy is met (the server counts the
/// approvals). Returns no events when the deployment isn't waiting at one.
pub fn pass_release_approval(
    d: &mut Deployment,
    approvers: &[String],
    now: Timestamp,
) -> Vec<NewEvent> {
    if d.approval_gate().is_none() {
        return Vec::new();
    }
    let r = d.rollout.as_mut().expect("checked above");
    let i = r.step;
    r.step += 1;
    r.ready = false;
    r.step_started_at = now;
    let next = r.current().cloned();
    d.touch(now);
    vec![event(
        d,
        EventType::RolloutStepStarted,
        format!(
            "Step {} (approval) passed: approved by {}",
            i + 1,
            approvers.join(", ")
        ),
        json!({"step": i + 1, "finished_step": i, "kind": next.as_ref().map(step_kind), "detail": {"approved_by": approvers}}),
    )]
}

/// A person's "continue": ends a pause or an approval gate (or an analysis or a
/// webhook gate, skipping it). Returns the events; an error when no step is left.
pub fn continue_step(
    d: &mut Deployment,
    actor: &str,
    now: Timestamp,
) -> Result<Vec<NewEvent>, DomainError> {
    let not = |action: &str| DomainError::NotActive {
        id: d.id.clone(),
        status: d.status.as_str(),
        action: action.into(),
    };
    if d.status != DeploymentStatus::Active {
        return Err(not("continue it (resume it first, or it is finished)"));
    }
    let Some(r) = &d.rollout else {
        return Err(not("continue it: it has no rollout plan"));
    };
    let Some(step) = r.current().cloned() else {
        return Err(not("continue it: every step is done; promote it instead"));
    };
    if r.ready {
        return Err(not(
            "continue it: it has finished this step and waits for the rest of its group",
        ));
    }
    if let Step::Gate(Gate::ReleaseApproval {
        release_id,
        environment,
        required,
    }) = &step
    {
        return Err(DomainError::Refused {
            code: "APPROVAL_REQUIRED",
            message: format!(
                "deployment {} waits for {required} approval(s) of release {release_id} for {environment}; approve the release (POST /api/v1/releases/{release_id}/approvals) instead of continuing",
                d.id
            ),
            kind: crate::error::Kind::Conflict,
        });
    }
    let i = r.step;
    if let Step::SetWeight(w) = step {
        // A weight change held by its confirmation: the person confirms it; the
        // weight itself is applied by the controller, never skipped.
        if r.confirmed_step == Some(i) || !r.spec.has_hooks(HookKind::ConfirmStep) {
            return Err(not(
                "continue it: its weight change is not waiting for anyone",
            ));
        }
        let r = d.rollout.as_mut().expect("rollout");
        r.confirmed_step = Some(i);
        r.gate_refusal = None;
        d.touch(now);
        return Ok(vec![event(
            d,
            EventType::RolloutStepStarted,
            format!(
                "Weight change to {w}% at step {} confirmed by {actor}",
                i + 1
            ),
            json!({"step": i, "confirmed": true, "detail": {"confirmed": actor}}),
        )]);
    }
    let r = d.rollout.as_mut().expect("rollout");
    r.step += 1;
    r.ready = false;
    r.gate_refusal = None;
    r.step_started_at = now;
    let next = r.current().cloned();
    d.touch(now);
    let kind = if matches!(step, Step::Gate(Gate::Approval)) {
        "approved"
    } else {
        "continued"
    };
    Ok(vec![event(
        d,
        EventType::RolloutStepStarted,
        format!("Step {} ({}) {kind} by {actor}", i + 1, describe(&step)),
        json!({"step": i + 1, "finished_step": i, "kind": next.as_ref().map(step_kind), "detail": {kind: actor}}),
    )])
}

/// Restarts the current step's clock (on resume: an analysis judges afresh).
pub fn restart_step(d: &mut Deployment, now: Timestamp) {
    if let Some(r) = &mut d.rollout {
        r.step_started_at = now;
        r.ready = false;
    }
}

#[cfg(test)]
mod tests;
