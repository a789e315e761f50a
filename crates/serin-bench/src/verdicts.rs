//! `serin-bench verdicts`: a live benchmark of canary verdicts.
//!
//! With real upstream processes behind Serin's embedded proxy, how often is a
//! canary that is *not* worse than stable rolled back (a false rollback), and
//! how fast is a worse canary rolled back?
//!
//! One `serin up` (SQLite in a temporary directory, the embedded proxy on) runs
//! many deployments at once. Each has its own target (`queue_name`) and route
//! (`<scenario>-<run>.bench`), a rollout plan, and its own open-loop stream of
//! requests through the proxy with that `Host`. Nothing here judges anything:
//! the proxy counts each lane, Serin's controller runs its judges and moves
//! the deployment, and a run only records how the deployment ended — promoted,
//! rolled back (with the reason and the time from the first weight change to
//! the rollback, both from Serin's own event timestamps), paused by an
//! inconclusive analysis, or still running at its cap — and is then aborted if
//! still live.
//!
//! Upstreams are separate processes (this binary re-executed as `serin-bench
//! upstream`). A scenario's concurrent runs share its upstream processes —
//! one for "same process" scenarios, where stable and canary are literally the
//! same server, and one each for stable and canary in "separate" ones — which
//! changes nothing about the comparison: every run sees the same two processes
//! its lanes would see alone, plus the load of its siblings.
//!
//! Runs of all scenarios are interleaved (round-robin) rather than run
//! scenario by scenario, and starts are spaced a little apart: a scenario's runs
//! are then spread over the whole benchmark, so a hiccup of the machine at one
//! moment hits a few runs of many scenarios rather than all runs of one — the
//! runs of a scenario stay close to independent, which the binomial bounds
//! assume. The exception is the noisy-neighbour scenario, which runs alone at
//! the end (its CPU burner would otherwise disturb everything else).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use serin_core::canary::PROFILES;
use serin_core::duration::GoDuration;
use serin_core::rollout::{CanaryConfigFile, RolloutSpec};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::loadgen::{self, Tally};
use crate::machine::{self, MachineCpu};
use crate::scenarios::{self, Kind, Knobs, Plan, Scenario};
use crate::stats::{clopper_pearson_upper, quantile, reasons};
use crate::upstream::{Rng, flag, num};

/// The benchmarked server's admin key (32 characters).
const KEY: &str = "srn_verdicts_bench_key_012345678";

/// Regression lines report the share rolled back within this long.
const WITHIN: f64 = 60.0;

/// Deployments running at once unless `--parallel` says otherwise.
///
/// The default run is 560 runs of at most about 3 minutes (the default plan's
/// three 60 s analyses, or the canary-config plan's 180 s cap) and then the neighbour
/// scenario's 40 runs alone. At 120 at once that is at most about 18 minutes
/// (`--list` plays the schedule out), and about 15 in practice, since the
/// regressions and the falsely rolled back A/A runs end early. Measured with
/// 120 deployments live (about 4,000 requests a second through the proxy):
/// Serin used about 45% of one core, the load generator 15%, the upstreams 10%,
/// and the controller's ticks took 16 ms on average — most of the 2 cores stay
/// free, so the benchmark's own load adds little noise to the latencies judged.
const DEFAULT_PARALLEL: usize = 120;

const USAGE: &str =
    "usage: serin-bench verdicts --bin PATH_TO_SERIN [--runs N] [--regression-runs N]
    [--window DURATION] [--canary-config-cap DURATION] [--parallel N] [--only NAME,NAME…] [--list]
    [--json FILE] [--rps N] [--median-ms M] [--seed N] [--progress SECONDS] [--stagger SECONDS]";

/// The settings of one benchmark.
#[derive(Debug, Clone)]
struct Opts {
    bin: PathBuf,
    runs: usize,
    regression_runs: usize,
    window: GoDuration,
    canary_config_cap: Duration,
    parallel: usize,
    only: Option<Vec<String>>,
    list: bool,
    json: Option<PathBuf>,
    knobs: Knobs,
    seed: u64,
    progress: Duration,
    stagger: Duration,
}

impl Opts {
    fn parse(args: &[String]) -> anyhow::Result<Opts> {
        let known = [
            "--bin",
            "--runs",
            "--regression-runs",
            "--window",
            "--canary-config-cap",
            "--parallel",
            "--only",
            "--json",
            "--rps",
            "--median-ms",
            "--seed",
            "--progress",
            "--stagger",
        ];
        let mut i = 0;
        while i < args.len() {
            match args[i].as_str() {
                "--list" => i += 1,
                "-h" | "--help" => bail!("{USAGE}"),
                a if known.contains(&a) => i += 2,
                a => bail!("unknown argument `{a}`\n{USAGE}"),
            }
        }
        let dur = |name: &str, default: &str| -> anyhow::Result<GoDuration> {
            let v = flag(args, name)?.unwrap_or(default);
            v.parse::<GoDuration>()
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))
        };
        let secs = |name: &str, default: f64| -> anyhow::Result<Duration> {
            let v: f64 = num(args, name, default)?;
            Duration::try_from_secs_f64(v).map_err(|e| anyhow::anyhow!("{name}: {e}"))
        };
        let list = args.iter().any(|a| a == "--list");
        let o = Opts {
            bin: PathBuf::from(flag(args, "--bin")?.unwrap_or("target/release/serin")),
            runs: num(args, "--runs", 40)?,
            regression_runs: num(args, "--regression-runs", 20)?,
            window: dur("--window", "60s")?,
            canary_config_cap: dur("--canary-config-cap", "180s")?.to_std(),
            parallel: num(args, "--parallel", DEFAULT_PARALLEL)?,
            only: flag(args, "--only")?.map(|s| {
                s.split(',')
                    .map(|n| n.trim().to_string())
                    .filter(|n| !n.is_empty())
                    .collect()
            }),
            list,
            json: flag(args, "--json")?.map(PathBuf::from),
            knobs: Knobs {
                median_ms: num(args, "--median-ms", 20.0)?,
                aa_rps: num(args, "--rps", 30.0)?,
            },
            seed: num(args, "--seed", 1)?,
            progress: secs("--progress", 15.0)?,
            stagger: secs("--stagger", 0.25)?,
        };
        if o.parallel == 0 || o.knobs.aa_rps <= 0.0 || o.window == GoDuration::ZERO {
            bail!("--parallel, --rps and --window must be above 0");
        }
        Ok(o)
    }

    fn runs_of(&self, s: &Scenario) -> usize {
        match s.kind {
            Kind::AA => self.runs,
            Kind::Regression => self.regression_runs,
        }
    }
}

mod plans;
use plans::*;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Completed: the canary was promoted.
    Promoted,
    /// Failed: the controller rolled it back.
    RolledBack,
    /// An analysis ended inconclusive and the controller paused it.
    Paused,
    /// Still active at the cap.
    Capped,
    /// The benchmark couldn't run it (deployment refused, upstream missing…).
    Error,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Promoted => "promoted",
            Outcome::RolledBack => "rolled_back",
            Outcome::Paused => "paused",
            Outcome::Capped => "still_running_at_cap",
            Outcome::Error => "error",
        }
    }
}

/// One run's result.
#[derive(Debug, Clone)]
struct RunRecord {
    scenario: usize,
    run: usize,
    deployment: Option<String>,
    outcome: Outcome,
    /// The rollback's (or pause's, or error's) reason.
    reason: Option<String>,
    /// The plan's step index at the rollback (`1` is the first analysis).
    rollback_step: Option<u64>,
    /// The canary's weight when it was rolled back.
    rollback_weight: Option<u64>,
    /// From the first `percentage_updated` to `deployment_rolled_back`, by Serin's clock.
    time_to_rollback_s: Option<f64>,
    /// How long the run took on this machine's clock.
    run_seconds: f64,
    /// Seconds since the benchmark started when the run started.
    started_at_s: f64,
}

impl RunRecord {
    fn to_json(&self, scenarios: &[Scenario]) -> Value {
        json!({
            "scenario": scenarios[self.scenario].name,
            "run": self.run,
            "deployment": self.deployment,
            "outcome": self.outcome.as_str(),
            "reason": self.reason,
            "rollback_step": self.rollback_step,
            "rollback_weight": self.rollback_weight,
            "time_to_rollback_s": self.time_to_rollback_s,
            "run_seconds": self.run_seconds,
            "started_at_s": self.started_at_s,
        })
    }
}

/// A scenario's shared state while it runs.
mod procs;
use procs::*;
#[derive(Debug)]
struct ScenarioState {
    /// Its upstream processes (started with its first run, stopped after its
    /// last) and how many of its runs are still to finish.
    procs: tokio::sync::Mutex<(Option<Arc<Upstreams>>, usize)>,
    tally: Arc<Tally>,
}

/// Everything the runs share.
#[derive(Debug)]
struct Ctx {
    api: String,
    proxy: Arc<str>,
    /// For the API: deployments, their status and events.
    http: reqwest::Client,
    /// For the load: a keep-alive pool to the proxy, shared by every deployment.
    load: reqwest::Client,
    scenarios: Vec<Scenario>,
    states: Vec<ScenarioState>,
    default_plan: PlanSpec,
    canary_config_plan: PlanSpec,
    seed: u64,
    t0: Instant,
    records: Mutex<Vec<RunRecord>>,
    running: AtomicUsize,
    total: usize,
    /// CPU seconds used by helper processes (upstreams, burner) that have ended.
    helper_cpu: Arc<Mutex<f64>>,
}

impl Ctx {
    fn plan(&self, s: &Scenario) -> &PlanSpec {
        match s.plan {
            Plan::Default => &self.default_plan,
            Plan::CanaryConfig => &self.canary_config_plan,
        }
    }

    /// The scenario's upstreams, started by its first run.
    async fn upstreams(&self, s: usize) -> anyhow::Result<Arc<Upstreams>> {
        let mut p = self.states[s].procs.lock().await;
        if let Some(u) = &p.0 {
            return Ok(u.clone());
        }
        let seed = self.seed.wrapping_mul(1000).wrapping_add(s as u64);
        let u = Arc::new(start_upstreams(&self.scenarios[s], seed).await?);
        p.0 = Some(u.clone());
        Ok(u)
    }

    /// Records a finished run; the scenario's last run stops its upstreams and
    /// prints a line.
    async fn finish(&self, rec: RunRecord) {
        let s = rec.scenario;
        let left = {
            let mut p = self.states[s].procs.lock().await;
            p.1 = p.1.saturating_sub(1);
            if p.1 == 0
                && let Some(ups) = p.0.take()
            {
                // Requests sent just before the last run stopped its load are
                // still in flight: let them finish before the upstreams go, or
                // they'd show as 502s (harmless, the deployment has ended, but
                // confusing in the load tally).
                let cpu = self.helper_cpu.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    add_cpu(&cpu, &ups.children);
                    drop(ups);
                });
            }
            p.1
        };
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records.push(rec);
        if left == 0 {
            let mine: Vec<&RunRecord> = records.iter().filter(|r| r.scenario == s).collect();
            let back = mine
                .iter()
                .filter(|r| r.outcome == Outcome::RolledBack)
                .count();
            println!(
                "[{}] finished {}: rolled back {back}/{}",
                clock(self.t0.elapsed()),
                self.scenarios[s].name,
                mine.len()
            );
        }
    }

    async fn api_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(KEY);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("{status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// Adds the CPU time of helper processes about to be stopped.
fn add_cpu(total: &Mutex<f64>, children: &[Child]) {
    let used: f64 = children
        .iter()
        .filter_map(|c| c.id().and_then(machine::process_cpu))
        .sum();
    *total.lock().unwrap_or_else(|e| e.into_inner()) += used;
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}", s / 60, s % 60)
}

fn ts(v: &Value) -> Option<serin_core::Timestamp> {
    v.as_str()?.parse().ok()
}

/// A deployment's events (newest first, as the API pages them).
async fn events(ctx: &Ctx, path: &str) -> anyhow::Result<Vec<Value>> {
    let mut events = Vec::new();
    for page in 1..=20 {
        let v = ctx
            .api_call(
                reqwest::Method::GET,
                &format!("{path}/events?page_size=100&page={page}"),
                None,
            )
            .await?;
        let batch = v["events"].as_array().cloned().unwrap_or_default();
        let n = batch.len();
        events.extend(batch);
        if n < 100 {
            break;
        }
    }
    Ok(events)
}

/// Runs one deployment from creation to its end.
async fn run_one(ctx: &Ctx, s: usize, run: usize, ups: &Upstreams) -> RunRecord {
    let started = Instant::now();
    let mut rec = RunRecord {
        scenario: s,
        run,
        deployment: None,
        outcome: Outcome::Error,
        reason: None,
        rollback_step: None,
        rollback_weight: None,
        time_to_rollback_s: None,
        run_seconds: 0.0,
        started_at_s: ctx.t0.elapsed().as_secs_f64(),
    };
    if let Err(e) = drive(ctx, s, run, ups, started, &mut rec).await {
        rec.outcome = Outcome::Error;
        rec.reason = Some(format!("{e:#}"));
    }
    rec.run_seconds = started.elapsed().as_secs_f64();
    rec
}

async fn drive(
    ctx: &Ctx,
    s: usize,
    run: usize,
    ups: &Upstreams,
    started: Instant,
    rec: &mut RunRecord,
) -> anyhow::Result<()> {
    let sc = &ctx.scenarios[s];
    let plan = ctx.plan(sc);
    let slug = format!("{}-{run}", sc.slug());
    let host: Arc<str> = Arc::from(format!("{slug}.bench"));
    let mut body = json!({
        "queue_name": format!("verdicts-{slug}"),
        "stable_version": "stable",
        "canary_version": "canary",
        "route": {"host": &*host, "path_prefix": "/"},
        "upstreams": {"stable": [ups.stable], "canary": [ups.canary]},
        // No affinity cookie: every request's lane is a fresh draw at the weight.
        "traffic": {"affinity": null},
        "rollout": plan.rollout,
        "auto_promotion": plan.auto_promotion,
        // The default profile's 5 minutes only delay the promotion after the last
        // step, where no judge runs any more; 0s ends the run there.
        "min_duration": "0s",
    });
    if let Some(max) = plan.max_duration {
        body["max_duration"] = json!(max.to_string());
    }
    let d = ctx
        .api_call(
            reqwest::Method::POST,
            "/api/v1/canary/deployments",
            Some(&body),
        )
        .await
        .context("creating the deployment")?;
    let id = d["id"].as_str().context("no deployment id")?.to_string();
    rec.deployment = Some(id.clone());

    // Spread the first request of each run over one interval of its rate.
    let mut rng = Rng::new(ctx.seed ^ ((s as u64) << 32) ^ run as u64);
    let phase = Duration::from_secs_f64(rng.uniform() / sc.rps);
    let load = loadgen::start(
        ctx.load.clone(),
        ctx.proxy.clone(),
        host,
        sc.rps,
        phase,
        ctx.states[s].tally.clone(),
    );
    let path = format!("/api/v1/canary/deployments/{id}");
    let (outcome, last) = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let v = match ctx.api_call(reqwest::Method::GET, &path, None).await {
            Ok(v) => v,
            // A slow answer under load is retried on the next second.
            Err(_) if started.elapsed() < plan.cap => continue,
            Err(e) => return Err(e.context("reading the deployment")),
        };
        match v["status"].as_str() {
            Some("completed") => break (Outcome::Promoted, v),
            Some("failed") => break (Outcome::RolledBack, v),
            Some("paused") => break (Outcome::Paused, v),
            _ if started.elapsed() >= plan.cap => break (Outcome::Capped, v),
            _ => {}
        }
    };
    drop(load);
    rec.outcome = outcome;
    if matches!(outcome, Outcome::Paused | Outcome::Capped) {
        rec.reason = last["status_reason"].as_str().map(str::to_string);
        // Free the target: traffic back to stable, the deployment ends (this
        // benchmark's own abort is not counted as a rollback).
        let why = json!({"reason": format!("serin-bench: run ended ({})", outcome.as_str())});
        let _ = ctx
            .api_call(reqwest::Method::POST, &format!("{path}/abort"), Some(&why))
            .await;
    }
    if outcome != Outcome::RolledBack {
        return Ok(());
    }
    rec.reason = last["status_reason"].as_str().map(str::to_string);
    // The rollback is recorded already; without its events (an API error) only
    // the time to it is missing.
    let Ok(events) = events(ctx, &path).await else {
        return Ok(());
    };
    let first_weight = events
        .iter()
        .filter(|e| e["type"] == "percentage_updated")
        .filter_map(|e| ts(&e["timestamp"]))
        .min();
    if let Some(back) = events
        .iter()
        .find(|e| e["type"] == "deployment_rolled_back")
    {
        let data = &back["data"];
        rec.reason = data["reason"]
            .as_str()
            .or(back["message"].as_str())
            .map(str::to_string)
            .or(rec.reason.take());
        rec.rollback_step = data["step"].as_u64();
        rec.rollback_weight = data["old_percentage"].as_u64();
        if let (Some(a), Some(b)) = (first_weight, ts(&back["timestamp"])) {
            rec.time_to_rollback_s = Some((b - a).num_microseconds().unwrap_or(0) as f64 / 1e6);
        }
    }
    Ok(())
}

/// Runs `serin-bench verdicts …`.
pub fn main(args: &[String]) -> anyhow::Result<()> {
    let o = Opts::parse(args)?;
    let all = scenarios::all(o.knobs);
    let chosen: Vec<Scenario> = match &o.only {
        None => all.clone(),
        Some(names) => {
            for n in names {
                if !all.iter().any(|s| &s.name == n) {
                    bail!("--only: no scenario `{n}` (see --list)");
                }
            }
            all.iter()
                .filter(|s| names.contains(&s.name))
                .cloned()
                .collect()
        }
    };
    let plans = Plans {
        default: default_plan(o.window)?,
        canary_config: canary_config_plan(o.canary_config_cap)?,
    };
    if o.list {
        for s in &chosen {
            let plan = match s.plan {
                Plan::Default => "default plan",
                Plan::CanaryConfig => "canary-config.yaml plan",
            };
            println!(
                "{:<36} {:>2} runs  {plan}, {} req/s{}  {}",
                s.name,
                o.runs_of(s),
                s.rps,
                if s.neighbour { ", alone" } else { "" },
                s.about
            );
        }
        let runs: Vec<usize> = chosen.iter().map(|s| o.runs_of(s)).collect();
        println!(
            "{} runs; with --parallel {} at most about {:.0} min (if no run ended early)",
            runs.iter().sum::<usize>(),
            o.parallel,
            plans.estimate(&chosen, &runs, &o).as_secs_f64() / 60.0
        );
        return Ok(());
    }
    if chosen.is_empty() {
        bail!("no scenario chosen");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(bench(o, chosen, plans))
}

/// The two plans of this benchmark.
#[derive(Debug, Clone)]
struct Plans {
    default: PlanSpec,
    canary_config: PlanSpec,
}

impl Plans {
    /// How long the runs take at most (see [`estimate`]).
    fn estimate(&self, scenarios: &[Scenario], runs: &[usize], o: &Opts) -> Duration {
        estimate(
            &phases(scenarios, runs),
            |s| match scenarios[s].plan {
                Plan::Default => self.default.length,
                Plan::CanaryConfig => self.canary_config.length,
            },
            o.parallel,
            o.stagger,
        )
    }
}

async fn bench(o: Opts, scenarios: Vec<Scenario>, plans: Plans) -> anyhow::Result<()> {
    println!("machine: {} cores; {}", machine::cores(), machine::uptime());
    let serin = start_serin(&o.bin).await?;
    println!(
        "serin: API {}, proxy {}, data in {}",
        serin.api,
        serin.proxy,
        serin.dir.path().display()
    );
    let runs: Vec<usize> = scenarios.iter().map(|s| o.runs_of(s)).collect();
    let total: usize = runs.iter().sum();
    let est = plans.estimate(&scenarios, &runs, &o);
    println!(
        "plans: default = {}; canary-config = {}",
        plans.default.about, plans.canary_config.about
    );
    println!(
        "{} scenarios, {total} runs, up to {} at once; at most about {:.0} min (if no run ended early)",
        scenarios.len(),
        o.parallel,
        est.as_secs_f64() / 60.0
    );

    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()?;
    let load = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(4096)
        .build()?;
    let ctx = Arc::new(Ctx {
        api: serin.api.clone(),
        proxy: Arc::from(format!("{}/", serin.proxy)),
        http,
        load,
        states: runs
            .iter()
            .map(|&r| ScenarioState {
                procs: tokio::sync::Mutex::new((None, r)),
                tally: Arc::default(),
            })
            .collect(),
        scenarios,
        default_plan: plans.default,
        canary_config_plan: plans.canary_config,
        seed: o.seed,
        t0: Instant::now(),
        records: Mutex::default(),
        running: AtomicUsize::new(0),
        total,
        helper_cpu: Arc::default(),
    });

    let progress = {
        let ctx = ctx.clone();
        let every = o.progress;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let (done, back) = {
                    let r = ctx.records.lock().unwrap_or_else(|e| e.into_inner());
                    let back = r
                        .iter()
                        .filter(|r| r.outcome == Outcome::RolledBack)
                        .count();
                    (r.len(), back)
                };
                println!(
                    "[{}] runs done {done}/{}, running {}, rolled back so far {back}, load {}",
                    clock(ctx.t0.elapsed()),
                    ctx.total,
                    ctx.running.load(Ordering::Relaxed),
                    machine::load1()
                );
            }
        })
    };

    let cpu0 = (
        MachineCpu::now(),
        serin.child.id().and_then(machine::process_cpu),
        machine::process_cpu(std::process::id()),
    );
    let work = schedule(ctx.clone(), runs, o.parallel, o.stagger);
    let interrupted = tokio::select! {
        r = work => { r?; false }
        _ = tokio::signal::ctrl_c() => true,
    };
    progress.abort();
    if interrupted {
        println!("interrupted: reporting the runs finished so far");
    }
    let wall = ctx.t0.elapsed();
    println!("done in {}; {}", clock(wall), machine::uptime());
    // Who used the CPU: a saturated machine delays both lanes' requests in
    // bursts, which is part of what the A/A figures measure.
    if let (Some(m0), Some(m1)) = (cpu0.0, MachineCpu::now()) {
        let share = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.0}%", (b - a) / wall.as_secs_f64() * 100.0),
            _ => "?".into(),
        };
        tokio::time::sleep(Duration::from_secs(4)).await; // the last upstreams' accounting
        let helpers = *ctx.helper_cpu.lock().unwrap_or_else(|e| e.into_inner());
        println!(
            "cpu: machine busy {:.0}% of {} cores; of one core: serin {}, load generator {}, upstreams and burner {:.0}%",
            m1.busy_since(m0) * 100.0,
            machine::cores(),
            share(cpu0.1, serin.child.id().and_then(machine::process_cpu)),
            share(cpu0.2, machine::process_cpu(std::process::id())),
            helpers / wall.as_secs_f64() * 100.0
        );
    }
    controller_ticks(&ctx).await;
    let log = std::fs::read_to_string(serin.dir.path().join("serin.log")).unwrap_or_default();
    let warnings: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    if !warnings.is_empty() {
        println!(
            "serin logged {} lines at warn or above; the first:",
            warnings.len()
        );
        for l in warnings.iter().take(5) {
            println!("  {}", l.chars().take(300).collect::<String>());
        }
    }
    let records = ctx
        .records
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    println!();
    report(&ctx.scenarios, &ctx.states, &records);
    if let Some(path) = &o.json {
        let v = json!({
            "settings": {
                "window": o.window.to_string(),
                "canary_config_cap_s": o.canary_config_cap.as_secs_f64(),
                "parallel": o.parallel,
                "median_ms": o.knobs.median_ms,
                "aa_rps": o.knobs.aa_rps,
                "seed": o.seed,
                "default_plan": ctx.default_plan.rollout,
                "canary_config_plan": ctx.canary_config_plan.rollout,
            },
            "scenarios": ctx.scenarios.iter().zip(&ctx.states).map(|(s, st)| {
                let (sent, transport, no_route, proxy_failed) = st.tally.read();
                json!({
                    "name": s.name, "about": s.about,
                    "kind": if s.kind == Kind::AA { "aa" } else { "regression" },
                    "plan": if s.plan == Plan::Default { "default" } else { "canary-config" },
                    "rps": s.rps, "same_process": s.same_process, "neighbour": s.neighbour,
                    "stable": s.stable.to_args(), "canary": s.canary.to_args(),
                    "requests": {"sent": sent, "transport_errors": transport, "no_route": no_route, "proxy_502_504": proxy_failed},
                })
            }).collect::<Vec<_>>(),
            "runs": records.iter().map(|r| r.to_json(&ctx.scenarios)).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&v)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("raw results: {}", path.display());
    }
    Ok(())
}

mod schedule;
use schedule::*;

impl Ctx {
    async fn api_call_text(&self, path: &str) -> anyhow::Result<String> {
        Ok(self
            .http
            .get(format!("{}{path}", self.api))
            .bearer_auth(KEY)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?)
    }
}

mod report;
use report::*;
#[cfg(test)]
mod tests;
