//! `serin simulate`: many rollouts in virtual time, one JSON report.
//!
//! The runs are split over threads by index, and each run's generator is
//! seeded from (`--seed`, its index), so the report doesn't depend on the
//! number of threads. Progress goes to standard error when it is a terminal.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use serin_core::simulate::{self, JudgeKind, Rng, RunResult, Scenario};
use serin_core::traffic::proxy::LaneBucket;

use crate::cli::{SimJudge, SimulateArgs};

/// Runs the simulation the flags describe and prints its report.
pub fn simulate(a: SimulateArgs) -> anyhow::Result<ExitCode> {
    let share = (a.canary_share * 100.0).round();
    let steps = match &a.steps {
        Some(s) => s.clone(),
        None if (0.0..=100.0).contains(&share) => vec![share as u8],
        None => vec![0],
    };
    let scenario = Scenario {
        rps: a.rps,
        steps,
        stable_error_rate: a.stable_error_rate,
        canary_error_rate: a.canary_error_rate.unwrap_or(a.stable_error_rate),
        latency_scale: a.latency_scale,
        latency_plus_ms: a.latency_plus_ms,
        tail_fraction: a.tail_fraction,
        tail_factor: a.tail_factor,
        horizon_s: a.horizon,
        alpha: a.alpha,
        judge: match a.judge {
            SimJudge::Sequential => JudgeKind::Sequential,
            SimJudge::Flagger => JudgeKind::Flagger,
        },
        promote_early: !a.no_early_promotion,
        flagger_min_success_rate: a.flagger_min_success_rate,
        lag_s: a.lag,
    };
    if let Err(e) = scenario.validate() {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(2));
    }
    if a.runs == 0 || a.runs > 1_000_000 {
        eprintln!("error: runs: give 1 to 1000000 rollouts");
        return Ok(ExitCode::from(2));
    }
    let results = match &a.replay {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let buckets: Vec<LaneBucket> = serde_json::from_str(&text).with_context(|| {
                format!("{} is not a JSON array of lane buckets", path.display())
            })?;
            let seconds = simulate::seconds_from_buckets(&buckets);
            vec![simulate::replay(&scenario, &seconds)?]
        }
        None => run_all(&scenario, a.runs, a.seed, a.threads)?,
    };
    let report = simulate::report(&scenario, &results);
    let mut out = serde_json::to_value(&report)?;
    if let Some(path) = &a.replay {
        out["replayed"] = serde_json::json!(path.display().to_string());
        out["result"] = serde_json::to_value(results[0])?;
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

fn run_all(
    s: &Scenario,
    runs: u64,
    seed: u64,
    threads: Option<usize>,
) -> anyhow::Result<Vec<RunResult>> {
    let threads = threads
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
        .clamp(1, 64) as u64;
    let done = AtomicU64::new(0);
    let show = std::io::stderr().is_terminal();
    let mut results = vec![RunResult::Inconclusive; runs as usize];
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let done = &done;
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    for i in (t..runs).step_by(threads as usize) {
                        let r = simulate::run_one(s, &mut Rng::for_run(seed, i))?;
                        mine.push((i, r));
                        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                        if show && (n.is_multiple_of(20) || n == runs) {
                            eprint!("\r  simulated {n}/{runs} rollouts");
                            let _ = std::io::stderr().flush();
                        }
                    }
                    Ok::<_, serin_core::DomainError>(mine)
                })
            })
            .collect();
        for h in handles {
            let mine = h
                .join()
                .map_err(|_| anyhow::anyhow!("a simulation thread panicked"))??;
            for (i, r) in mine {
                results[i as usize] = r;
            }
        }
        Ok(())
    })?;
    if show {
        eprintln!();
    }
    Ok(results)
}
