//! The verdict on a canary, for rollout tools that keep their own traffic
//! control and ask Serin to judge: Argo Rollouts' `web` metric provider and
//! Flagger's webhooks.
//!
//! Such a tool moves the traffic itself; Serin holds a deployment for the same
//! target whose lanes are fed by whatever reports them (signals, a proxy, an
//! engine's telemetry) and whose plan has analysis steps. Serin's controller
//! judges it as any other — sequential tests that stay valid however often
//! they are read — and *decides*: it rolls the deployment back on harm, and
//! moves past each analysis step once the evidence says the canary is no worse.
//! The tool then reads that decision:
//!
//! - `fail`: the deployment was rolled back (or is being), with the reason;
//! - `pass`: every analysis step of its plan is behind it (or it was promoted);
//! - `inconclusive`: it is still being judged, or paused; ask again.
//!
//! **The verdict is read from the stored deployment, never from one replica's
//! memory**, so every replica behind a load balancer gives the same answer.
//! `decided` marks the final ones (promoted, rolled back); a `pass` before
//! promotion can still turn into a `fail`.
//!
//! A target's verdict is its live deployment's; once none is live, the
//! latest one's only when the caller names its canary version (or it ended
//! in the last 15 minutes), so a new canary is never judged by an older
//! release's outcome. The leader's running judgement (every
//! judge's sentence and figures) is attached as evidence when the replica that
//! answers is the one judging; a follower says so instead.

use serde::Serialize;
use serin_core::Timestamp;
use serin_core::canary::{Deployment, DeploymentStatus};
use serin_core::judge::{Judgement, Outcome};
use serin_core::rollout::Step;
use serin_store::canary::{DeploymentFilter, EventFilter};

use crate::{App, AppError, AppResult, Kind};

/// What a tool should do with the canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = VerdictCall))]
#[serde(rename_all = "snake_case")]
pub enum Call {
    /// Every analysis step passed, or the canary was promoted: go on.
    Pass,
    /// Still being judged, or paused: ask again later.
    Inconclusive,
    /// Rolled back: harm was seen.
    Fail,
}

/// The verdict on one deployment, with what it rests on.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CanaryVerdict {
    /// `pass`, `inconclusive` or `fail`.
    pub verdict: Call,
    /// Whether the verdict is final: the deployment was promoted or rolled
    /// back. A `pass` before that (every analysis step passed, the canary not
    /// yet promoted) can still turn into a `fail` (a health check, the
    /// longest duration, a person).
    pub decided: bool,
    /// One sentence: why.
    pub reason: String,
    /// The deployment judged.
    pub deployment_id: String,
    /// Its target.
    pub queue_name: String,
    /// Its status.
    pub status: DeploymentStatus,
    /// The canary version.
    pub canary_version: String,
    /// The step of its plan it is at (0-based; the number of steps once past
    /// the last).
    pub step: Option<usize>,
    /// The steps in its plan.
    pub steps: Option<usize>,
    /// The judgement behind the verdict, with every judge's evidence: the
    /// running one when this replica is the one judging (the leader), the one
    /// that decided once the rollout has ended; null otherwise.
    pub judgement: Option<Judgement>,
    /// Whether `judgement` is the running one of this replica.
    pub judged_here: bool,
}

/// Which deployment to judge.
#[derive(Debug, Clone, Copy)]
pub enum Which<'a> {
    /// By id.
    Id(&'a str),
    /// A target's live deployment, else its latest (see the module docs).
    Target {
        /// The target (`queue_name`).
        queue: &'a str,
        /// The tenant, where deployments have one.
        tenant: Option<&'a str>,
        /// The canary version it must be judging.
        version: Option<&'a str>,
    },
}

/// How long after it ended a target's deployment still answers for the
/// target when the caller doesn't name a version.
const RECENT: chrono::Duration = chrono::Duration::minutes(15);

impl Call {
    /// `pass`, `inconclusive` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Call::Pass => "pass",
            Call::Inconclusive => "inconclusive",
            Call::Fail => "fail",
        }
    }
}

/// The call on `d` now, as the verdict endpoint makes it: from its status
/// and where its plan is (the controller's latest judgement only adds to the
/// reason), so every replica gives the same. Without reading lane data:
/// cheap enough for every scrape.
pub fn current(app: &App, d: &Deployment) -> Call {
    call(d, None, app.now()).0
}

/// The deployment `which` names.
pub async fn find(app: &App, which: Which<'_>) -> AppResult<Deployment> {
    let (queue, tenant, version) = match which {
        Which::Id(id) => return Ok(app.store.get_deployment(id).await?),
        Which::Target {
            queue,
            tenant,
            version,
        } => (queue, tenant, version),
    };
    let fits = |d: &Deployment| {
        d.tenant_id.as_deref() == tenant && version.is_none_or(|v| d.canary_version == v)
    };
    if let Some(d) = app.store.live_deployment(queue, tenant).await?
        && fits(&d)
    {
        return Ok(d);
    }
    let filter = DeploymentFilter {
        queue_name: Some(queue.to_string()),
        tenant_id: tenant.map(str::to_string),
        ..Default::default()
    };
    let now = app.now();
    let latest = app.store.list_deployments(&filter, 0, 50).await?;
    latest
        .items
        .into_iter()
        .filter(fits)
        .find(|d| version.is_some() || d.completed_at.is_some_and(|at| now - at <= RECENT))
        .ok_or_else(|| {
            let which = version.map_or_else(String::new, |v| format!(" with canary version {v}"));
            AppError::new(
                Kind::NotFound,
                "DEPLOYMENT_NOT_FOUND",
                format!("no live or recent deployment of the target {queue}{which}"),
            )
        })
}

/// The verdict on `d` (see the module docs).
pub async fn of(app: &App, d: &Deployment) -> AppResult<CanaryVerdict> {
    let running = app
        .controller
        .seen(&d.id)
        .and_then(|s| s.judgement)
        .filter(|_| d.status.is_live());
    let judged_here = running.is_some();
    let ended = if d.status.is_live() {
        None
    } else {
        deciding_judgement(app, d).await?
    };
    let (verdict, decided, reason) = call(d, running.as_ref(), app.now());
    Ok(CanaryVerdict {
        verdict,
        decided,
        reason,
        deployment_id: d.id.clone(),
        queue_name: d.queue_name.clone(),
        status: d.status,
        canary_version: d.canary_version.clone(),
        step: d.rollout.as_ref().map(|r| r.step),
        steps: d.rollout.as_ref().map(|r| r.spec.steps.len()),
        judgement: running.or(ended),
        judged_here,
    })
}

/// The call on `d`'s stored state; `running` (this replica's judgement, when
/// it is the one judging) only words the reason.
fn call(d: &Deployment, running: Option<&Judgement>, now: Timestamp) -> (Call, bool, String) {
    let said = d
        .status_reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    match d.status {
        DeploymentStatus::Completed => (Call::Pass, true, "promoted".into()),
        DeploymentStatus::Promoting => (Call::Pass, false, "being promoted".into()),
        DeploymentStatus::Failed => (Call::Fail, true, format!("rolled back{said}")),
        DeploymentStatus::RollingBack => (Call::Fail, true, format!("rolling back{said}")),
        DeploymentStatus::Paused => (Call::Inconclusive, false, format!("paused{said}")),
        DeploymentStatus::Active => {
            let Some(r) = &d.rollout else {
                return (
                    Call::Inconclusive,
                    false,
                    "it has no rollout plan, so nothing judges it: give it one with an analysis step"
                        .into(),
                );
            };
            let analyses = r
                .spec
                .steps
                .iter()
                .filter(|s| matches!(s, Step::Analysis { .. }))
                .count();
            match r.current() {
                None if analyses == 0 => (
                    Call::Inconclusive,
                    false,
                    "its plan has no analysis step: nothing judged it".into(),
                ),
                None => (
                    Call::Pass,
                    false,
                    format!("all {analyses} analysis step(s) passed; not yet promoted"),
                ),
                Some(step) => {
                    let at = format!(
                        "at step {} of {} ({})",
                        r.step + 1,
                        r.spec.steps.len(),
                        serin_core::rollout::describe(step)
                    );
                    let judged = match running {
                        Some(j) if j.outcome == Outcome::Fail => {
                            format!("; harm seen, the rollback is being decided: {}", j.summary)
                        }
                        Some(j) => format!(
                            "; {} ({}s ago)",
                            j.summary,
                            (now - j.at).num_seconds().max(0)
                        ),
                        None => String::new(),
                    };
                    (Call::Inconclusive, false, format!("{at}{judged}"))
                }
            }
        }
    }
}

/// The judgement that decided an ended rollout: its rollback's, or its last
/// analysis's (from that event).
pub async fn deciding_judgement(app: &App, d: &Deployment) -> AppResult<Option<Judgement>> {
    let action = match d.status {
        DeploymentStatus::Failed => "deployment_rolled_back",
        DeploymentStatus::Completed => "analysis_completed",
        _ => return Ok(None),
    };
    let filter = EventFilter {
        deployment_id: Some(d.id.clone()),
        action: Some(action.into()),
        ..Default::default()
    };
    let events = app.store.list_events(&filter, 0, 1).await?;
    Ok(events
        .items
        .first()
        .and_then(|e| e.data.get("judgement"))
        .and_then(|j| serde_json::from_value(j.clone()).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serin_core::canary::NewDeployment;
    use serin_core::duration::GoDuration;
    use serin_core::rollout::RolloutSpec;

    fn deployment(steps: Vec<Step>) -> Deployment {
        let new = NewDeployment {
            queue_name: "svc".into(),
            stable_version: "v1".into(),
            canary_version: "v2".into(),
            rollout: Some(RolloutSpec::of_steps(steps)),
            ..Default::default()
        };
        new.resolve("canary_1".into(), "t", chrono::Utc::now())
            .unwrap()
            .0
    }

    #[test]
    fn decisions_come_from_the_stored_state() {
        let now = chrono::Utc::now();
        let plan = vec![
            Step::SetWeight(10),
            Step::Analysis {
                window: Some(GoDuration::from_secs(60)),
            },
        ];
        let mut d = deployment(plan.clone());
        // At a step: still being judged, whatever this replica's memory says.
        let passing = Judgement {
            outcome: Outcome::Pass,
            summary: "all judges pass".into(),
            verdicts: vec![],
            at: now,
            settled: true,
        };
        let (c, decided, _) = call(&d, Some(&passing), now);
        assert_eq!((c, decided), (Call::Inconclusive, false));
        // Past the last analysis step: pass, final.
        d.rollout.as_mut().unwrap().step = 2;
        assert_eq!(call(&d, None, now).0, Call::Pass);
        d.status = DeploymentStatus::Completed;
        assert_eq!(call(&d, None, now), (Call::Pass, true, "promoted".into()));
        d.status = DeploymentStatus::Failed;
        d.status_reason = Some("sequential: canary error rate 5%".into());
        let (c, decided, why) = call(&d, None, now);
        assert_eq!((c, decided), (Call::Fail, true));
        assert!(why.contains("canary error rate"), "{why}");
        d.status = DeploymentStatus::Paused;
        assert_eq!(call(&d, None, now).0, Call::Inconclusive);
        // A plan without an analysis never passes.
        let mut d = deployment(vec![Step::SetWeight(50)]);
        d.rollout.as_mut().unwrap().step = 1;
        assert_eq!(call(&d, None, now).0, Call::Inconclusive);
    }
}
