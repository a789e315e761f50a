//! What a tick reads: each deployment's lane windows in parts (backfill, sealed
//! seconds, the unsealed tail), planned so that one batched read serves every
//! live rollout.

#[allow(unused_imports)]
use super::*;

/// What one range read this tick is for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    /// The step's lanes from its start to what was sealed before it began.
    Backfill,
    /// Sealed seconds of the previous step: tests only.
    SealBefore,
    /// Sealed seconds of this step: tests and the step's lanes.
    Seal,
    /// The unsealed tail, for this tick's judgement only.
    Tail,
    /// The whole window, read again at its end.
    Whole,
}

/// What one deployment needs read this tick.
struct Plan {
    id: String,
    acc: Accumulated,
    parts: Vec<Part>,
    /// Sealed up to here once the reads are in.
    seal_to: Timestamp,
}

/// Whether the controller follows a deployment's lanes: an analysis step
/// judges them, or the sequential tests run all through an active rollout.
fn follows(d: &Deployment, now: Timestamp) -> Option<Option<Timestamp>> {
    let judging = match rollout::need(d, now) {
        Need::Judgement { since } => Some(since),
        _ => None,
    };
    let sequential = d.status == DeploymentStatus::Active
        && d.rollout.as_ref().is_some_and(|r| r.spec.judges.sequential);
    (judging.is_some() || sequential).then_some(judging)
}

/// The lanes every followed deployment needs this tick, read in one batch (on
/// SQLite, one hand-off to a reading thread) and folded into the accumulators.
/// A deployment missing from the answer (the batch failed) is read on its own
/// by its reconcile.
pub(super) async fn prefetch(
    state: &App,
    work: &[Deployment],
    now: Timestamp,
) -> HashMap<String, Read> {
    let lag = chrono::Duration::from_std(SEAL_LAG).unwrap_or_default();
    let seal_at = chrono::DateTime::from_timestamp((now - lag).timestamp(), 0).unwrap_or(now);
    let before = |t: Timestamp| t - chrono::Duration::microseconds(1);
    let mut plans = Vec::new();
    let mut ranges = Vec::new();
    for d in work {
        let (Some(judging), Some(r)) = (follows(d, now), &d.rollout) else {
            continue;
        };
        let step = r.step_started_at;
        let mut parts = Vec::new();
        let mut acc = match state.controller.take_lanes(&d.id, d.start_time) {
            Some(acc) => acc,
            None => {
                let sealed_to = seal_at.max(d.start_time);
                let evidence = match rebuilt_evidence(state, d, &r.spec, sealed_to).await {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!(deployment = %d.id, error = %e, "cannot rebuild the sequential tests");
                        continue;
                    }
                };
                Accumulated {
                    started: d.start_time,
                    step,
                    sealed_to,
                    lanes: Default::default(),
                    backfill: (sealed_to > step).then_some(sealed_to),
                    evidence: Arc::new(evidence),
                }
            }
        };
        if acc.step != step {
            // A new step: its lanes start afresh (with what was sealed since it
            // began), the promotion tests too; the rollback tests go on.
            Arc::make_mut(&mut acc.evidence).new_step();
            acc.step = step;
            acc.lanes = Default::default();
            acc.backfill = (acc.sealed_to > step).then_some(acc.sealed_to);
        }
        if let (Some(end), Some(_)) = (acc.backfill, judging) {
            ranges.push((d.id.clone(), step, before(end)));
            parts.push(Part::Backfill);
        }
        // Seconds are sealed whole; the second a step began in counts as the step's.
        let step_second = chrono::DateTime::from_timestamp(step.timestamp(), 0).unwrap_or(step);
        let seal_to = seal_at.max(acc.sealed_to);
        if seal_to > acc.sealed_to {
            if step_second > acc.sealed_to && step_second < seal_to {
                ranges.push((d.id.clone(), acc.sealed_to, before(step_second)));
                parts.push(Part::SealBefore);
                ranges.push((d.id.clone(), step_second, before(seal_to)));
                parts.push(Part::Seal);
            } else {
                let part = if step_second >= seal_to {
                    Part::SealBefore
                } else {
                    Part::Seal
                };
                ranges.push((d.id.clone(), acc.sealed_to, before(seal_to)));
                parts.push(part);
            }
        }
        if let Some(since) = judging {
            if now >= window_end(d, now) {
                // The deciding judgement reads the whole window again.
                ranges.push((d.id.clone(), since, now));
                parts.push(Part::Whole);
            } else {
                ranges.push((d.id.clone(), seal_to.max(step), now));
                parts.push(Part::Tail);
            }
        }
        plans.push(Plan {
            id: d.id.clone(),
            acc,
            parts,
            seal_to,
        });
    }
    if ranges.is_empty() {
        restore(state, plans);
        return HashMap::new();
    }
    let read = match state.store.lane_windows_many(ranges).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "controller could not read the lanes in one batch");
            restore(state, plans);
            return HashMap::new();
        }
    };
    let mut read = read.into_iter();
    let mut out = HashMap::with_capacity(plans.len());
    let mut plans = plans.into_iter();
    while let Some(plan) = plans.next() {
        let got: Vec<[LaneWindow; 2]> = read.by_ref().take(plan.parts.len()).collect();
        if got.len() < plan.parts.len() {
            // A short answer: keep what was accumulated; the reconciles read alone.
            restore(state, std::iter::once(plan).chain(plans));
            break;
        }
        let Plan {
            id,
            mut acc,
            parts,
            seal_to,
        } = plan;
        let (mut tail, mut whole) = (None, None);
        for (part, lanes) in parts.into_iter().zip(got) {
            match part {
                Part::Backfill => {
                    merge(&mut acc.lanes, lanes);
                    acc.backfill = None;
                }
                Part::SealBefore => Arc::make_mut(&mut acc.evidence).observe(&lanes[0], &lanes[1]),
                Part::Seal => {
                    Arc::make_mut(&mut acc.evidence).observe(&lanes[0], &lanes[1]);
                    merge(&mut acc.lanes, lanes);
                }
                Part::Tail => tail = Some(lanes),
                Part::Whole => whole = Some(lanes),
            }
        }
        acc.sealed_to = seal_to;
        let evidence = acc.evidence.clone();
        let lanes = match (whole, tail) {
            (Some(w), _) => w,
            (None, Some(t)) => {
                let mut l = acc.lanes.clone();
                merge(&mut l, t);
                l
            }
            (None, None) => Default::default(),
        };
        state.controller.keep_lanes(&id, acc);
        out.insert(id, Read { lanes, evidence });
    }
    out
}

fn merge(into: &mut [LaneWindow; 2], part: [LaneWindow; 2]) {
    for (a, p) in into.iter_mut().zip(part) {
        a.merge(p);
    }
}

/// Puts back the accumulators of plans whose reads failed.
fn restore(state: &App, plans: impl IntoIterator<Item = Plan>) {
    let mut lanes = state.controller.lanes.lock().expect("lanes lock");
    for plan in plans {
        lanes.insert(plan.id, plan.acc);
    }
}
