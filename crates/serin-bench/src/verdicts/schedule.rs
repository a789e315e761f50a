//! When runs start: phases, round-robin order, the parallel limit and the
//! stagger, and the estimate of how long it all takes.

#[allow(unused_imports)]
use super::*;

/// The order runs are started in, phase by phase: first every scenario without
/// a neighbour, round-robin (run 0 of each, then run 1 of each, …), then the
/// neighbour scenarios, alone. Each item is `(scenario, run)`.
pub(super) fn phases(scenarios: &[Scenario], runs: &[usize]) -> Vec<(bool, Vec<(usize, usize)>)> {
    let mut out = Vec::new();
    for alone in [false, true] {
        let members: Vec<usize> = (0..runs.len())
            .filter(|&s| scenarios[s].neighbour == alone)
            .collect();
        let most = members.iter().map(|&s| runs[s]).max().unwrap_or(0);
        let order: Vec<(usize, usize)> = (0..most)
            .flat_map(|i| {
                members
                    .iter()
                    .filter(move |&&s| i < runs[s])
                    .map(move |&s| (s, i))
            })
            .collect();
        if !order.is_empty() {
            out.push((alone, order));
        }
    }
    out
}

/// How long `phases` take if every run lasts its full `length`: the schedule
/// of [`schedule`] played out (a free slot, and a start at least `stagger`
/// after the previous one; a phase starts when the one before has ended).
pub(super) fn estimate(
    phases: &[(bool, Vec<(usize, usize)>)],
    length: impl Fn(usize) -> Duration,
    parallel: usize,
    stagger: Duration,
) -> Duration {
    let mut now = Duration::ZERO;
    for (_, order) in phases {
        // Each slot's time of becoming free.
        let mut slots = vec![now; parallel.max(1)];
        let mut next_start = now;
        for &(s, _) in order {
            let (i, free) = slots
                .iter()
                .copied()
                .enumerate()
                .min_by_key(|&(_, t)| t)
                .unwrap_or((0, now));
            let start = free.max(next_start);
            next_start = start + stagger;
            slots[i] = start + length(s);
        }
        now = slots.into_iter().max().unwrap_or(now);
    }
    now
}

/// Starts every run in the order of [`phases`], at most `parallel` at once and
/// at least `stagger` apart; the neighbour phase runs with the burner on.
pub(super) async fn schedule(
    ctx: Arc<Ctx>,
    runs: Vec<usize>,
    parallel: usize,
    stagger: Duration,
) -> anyhow::Result<()> {
    let sem = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut next_start = Instant::now();
    for (alone, order) in phases(&ctx.scenarios, &runs) {
        let burner = if alone {
            println!(
                "[{}] starting the noisy neighbour (70% of one core); its scenario runs alone",
                clock(ctx.t0.elapsed()),
            );
            Some(spawn_helper(&[
                "burn".into(),
                "--duty".into(),
                "0.7".into(),
            ])?)
        } else {
            None
        };
        let mut tasks = tokio::task::JoinSet::new();
        for (s, i) in order {
            let permit = sem.clone().acquire_owned().await?;
            tokio::time::sleep_until(next_start.into()).await;
            next_start = Instant::now() + stagger;
            let ctx = ctx.clone();
            ctx.running.fetch_add(1, Ordering::Relaxed);
            tasks.spawn(async move {
                let rec = match ctx.upstreams(s).await {
                    Ok(ups) => run_one(&ctx, s, i, &ups).await,
                    Err(e) => RunRecord {
                        scenario: s,
                        run: i,
                        deployment: None,
                        outcome: Outcome::Error,
                        reason: Some(format!("upstreams: {e:#}")),
                        rollback_step: None,
                        rollback_weight: None,
                        time_to_rollback_s: None,
                        run_seconds: 0.0,
                        started_at_s: ctx.t0.elapsed().as_secs_f64(),
                    },
                };
                ctx.running.fetch_sub(1, Ordering::Relaxed);
                ctx.finish(rec).await;
                drop(permit);
            });
        }
        // A phase ends when all its runs have (the neighbour must run alone).
        while let Some(r) = tasks.join_next().await {
            r?;
        }
        if let Some(b) = &burner {
            add_cpu(&ctx.helper_cpu, std::slice::from_ref(b));
        }
    }
    Ok(())
}
