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
use serin_core::deployment::PROFILES;
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
/// three 60 s analyses, or seed 002's 180 s cap) and then the neighbour
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

/// A plan, as sent to `POST /api/v1/canary/deployments`.
#[derive(Debug, Clone)]
struct PlanSpec {
    rollout: Value,
    auto_promotion: bool,
    max_duration: Option<GoDuration>,
    /// How long a run lasts when nothing ends it early.
    length: Duration,
    /// A run still live this long after it started is ended and counted as
    /// "still running" (not rolled back).
    cap: Duration,
    about: String,
}

/// What `serin rollout start` and `serin apply` do when no `--max-duration` is
/// given: a plan whose timed steps outlast the default profile's
/// `max_canary_duration` gets a maximum of its length plus one hour.
fn fitted_max_duration(spec: &RolloutSpec) -> Option<GoDuration> {
    let p = &PROFILES.default;
    let window = p.metrics_window.unwrap_or(GoDuration::from_mins(5));
    let timed = spec.timed_length(window);
    (timed > p.max_canary_duration).then(|| {
        GoDuration::from_nanos(
            timed
                .as_nanos()
                .saturating_add(GoDuration::from_hours(1).as_nanos()),
        )
    })
}

/// `serin rollout start --steps 10,25,50,100 --wait W` with auto-promotion on.
fn default_plan(window: GoDuration) -> anyhow::Result<PlanSpec> {
    let spec = RolloutSpec::from_traffic_steps(&[10, 25, 50, 100], window);
    let timed = spec.timed_length(GoDuration::from_mins(5)).to_std();
    Ok(PlanSpec {
        rollout: serde_json::to_value(&spec)?,
        auto_promotion: true,
        max_duration: fitted_max_duration(&spec),
        length: timed,
        // The plan's own length plus a minute for the controller's ticks.
        cap: timed + Duration::from_secs(60),
        about: format!("steps 10,25,50,100, analysis {window} each, default judges"),
    })
}

/// Seed 002's file through the same code as `serin apply -f` (YAML read into
/// JSON's data model, then `CanaryConfigSection::spec`).
fn canary_config_plan(cap: Duration) -> anyhow::Result<PlanSpec> {
    let value: Value = serde_yaml::from_str(serin_core::rollout::SEED_002_EXAMPLE)?;
    let file: CanaryConfigFile = serde_json::from_value(value)?;
    let spec = file
        .canary
        .spec()
        .map_err(|e| anyhow::anyhow!("seed 002's file: {e}"))?;
    let auto = file
        .canary
        .auto_progression
        .as_ref()
        .is_some_and(|a| a.enabled);
    Ok(PlanSpec {
        rollout: serde_json::to_value(&spec)?,
        auto_promotion: auto,
        max_duration: fitted_max_duration(&spec),
        length: cap,
        cap,
        about: format!(
            "seed 002's canary-config.yaml (steps 5,25,50,100, 24h waits, thresholds and safety checks), capped at {}s",
            cap.as_secs()
        ),
    })
}

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

/// A running `serin up`.
#[derive(Debug)]
struct Serin {
    child: Child,
    api: String,
    proxy: String,
    dir: tempfile::TempDir,
}

async fn start_serin(bin: &Path) -> anyhow::Result<Serin> {
    let dir = tempfile::tempdir()?;
    let db = format!("sqlite://{}/serin.db", dir.path().display());
    let log = std::fs::File::create(dir.path().join("serin.log"))?;
    let mut child = Command::new(bin)
        .args(["up", "--listen", "127.0.0.1:0", "--database-url", &db])
        .args(["--proxy-listen", "127.0.0.1:0"])
        .env("SERIN_ADMIN_TOKEN", KEY)
        .env("SERIN_RATE_LIMIT", "0")
        .env("SERIN_LOG", "warn")
        .env("SERIN_MAX_ACTIVE_DEPLOYMENTS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    // `serin up` prints `serin: listening on http://ADDR` and, with a proxy,
    // `serin: proxy listening on http://ADDR` once both are bound.
    let (mut api, mut proxy) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while api.is_none() || proxy.is_none() {
        let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
            .await
            .context("serin up didn't announce its addresses within 60 s")??;
        let Some(line) = line else {
            let log = std::fs::read_to_string(dir.path().join("serin.log")).unwrap_or_default();
            bail!("serin up exited before announcing its addresses:\n{log}");
        };
        if let Some(u) = line.strip_prefix("serin: listening on ") {
            api = Some(u.trim().to_string());
        } else if let Some(u) = line.strip_prefix("serin: proxy listening on ") {
            proxy = Some(u.trim().to_string());
        }
    }
    // Keep reading its standard output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Serin {
        child,
        api: api.unwrap_or_default(),
        proxy: proxy.unwrap_or_default(),
        dir,
    })
}

/// Starts this binary as a helper (`upstream …` or `burn …`). Its standard input
/// is a pipe held by the returned `Child`: the helper exits when it closes, so
/// it can't outlive the benchmark even if the benchmark is killed outright.
fn spawn_helper(args: &[String]) -> anyhow::Result<Child> {
    let exe = std::env::current_exe()?;
    Command::new(exe)
        .args(args)
        .arg("--exit-on-eof")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start a helper process")
}

/// Starts `serin-bench upstream …` and returns it with its base URL.
async fn start_upstream(args: Vec<String>) -> anyhow::Result<(Child, String)> {
    let mut all = vec!["upstream".to_string()];
    all.extend(args);
    let mut child = spawn_helper(&all)?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .context("the upstream didn't start within 10 s")??
        .context("the upstream exited at start")?;
    let port = line
        .strip_prefix("listening on ")
        .with_context(|| format!("unexpected first line from the upstream: {line}"))?
        .trim();
    Ok((child, format!("http://127.0.0.1:{port}")))
}

/// The upstream processes of one scenario.
#[derive(Debug)]
struct Upstreams {
    stable: String,
    canary: String,
    children: Vec<Child>,
}

async fn start_upstreams(s: &Scenario, seed: u64) -> anyhow::Result<Upstreams> {
    let with_seed = |b: crate::upstream::Behaviour, seed: u64| {
        let mut a = b.to_args();
        a.extend(["--seed".to_string(), seed.to_string()]);
        a
    };
    let (stable_child, stable) = start_upstream(with_seed(s.stable, seed)).await?;
    if s.same_process {
        return Ok(Upstreams {
            canary: stable.clone(),
            stable,
            children: vec![stable_child],
        });
    }
    let (canary_child, canary) = start_upstream(with_seed(s.canary, seed ^ 0x5eed)).await?;
    Ok(Upstreams {
        stable,
        canary,
        children: vec![stable_child, canary_child],
    })
}

/// A scenario's shared state while it runs.
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

/// The order runs are started in, phase by phase: first every scenario without
/// a neighbour, round-robin (run 0 of each, then run 1 of each, …), then the
/// neighbour scenarios, alone. Each item is `(scenario, run)`.
fn phases(scenarios: &[Scenario], runs: &[usize]) -> Vec<(bool, Vec<(usize, usize)>)> {
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
fn estimate(
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
async fn schedule(
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

/// Serin's own figure of how its controller kept up: tick durations.
async fn controller_ticks(ctx: &Ctx) {
    let Ok(text) = ctx.api_call_text("/metrics").await else {
        return;
    };
    let mut buckets = BTreeMap::new();
    let (mut sum, mut count) = (0.0, 0.0);
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("serin_controller_tick_seconds_bucket{le=\"") {
            if let Some((le, n)) = rest.split_once("\"} ") {
                buckets.insert(le.to_string(), n.trim().parse::<f64>().unwrap_or(0.0));
            }
        } else if let Some(v) = l.strip_prefix("serin_controller_tick_seconds_sum ") {
            sum = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = l.strip_prefix("serin_controller_tick_seconds_count ") {
            count = v.trim().parse().unwrap_or(0.0);
        }
    }
    if count > 0.0 {
        let over = |le: &str| buckets.get(le).map_or(f64::NAN, |b| count - b);
        println!(
            "serin controller: {count} ticks, mean {:.1} ms, over 0.5 s: {}, over 1 s: {}",
            sum / count * 1000.0,
            over("0.5"),
            over("1")
        );
    }
}

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

fn pct(k: usize, n: usize) -> f64 {
    if n == 0 {
        f64::NAN
    } else {
        100.0 * k as f64 / n as f64
    }
}

/// What didn't end by promotion or rollback, and errors: "; promoted 38, paused 1".
fn other_outcomes(mine: &[&RunRecord]) -> String {
    let mut parts = Vec::new();
    for (o, label) in [
        (Outcome::Promoted, "promoted"),
        (Outcome::Paused, "paused (inconclusive)"),
        (Outcome::Capped, "still running at the cap"),
        (Outcome::Error, "errors (not counted)"),
    ] {
        let n = mine.iter().filter(|r| r.outcome == o).count();
        if n > 0 {
            parts.push(format!("{label} {n}"));
        }
    }
    parts.join(", ")
}

fn print_reasons(mine: &[&RunRecord], outcome: Outcome) {
    for (reason, n) in reasons(
        mine.iter()
            .filter(|r| r.outcome == outcome)
            .map(|r| r.reason.as_deref().unwrap_or("(no reason given)")),
    ) {
        println!("      {n:>3}x {reason}");
    }
}

fn aa_line(label: &str, mine: &[&RunRecord]) {
    let counted: Vec<&RunRecord> = mine
        .iter()
        .copied()
        .filter(|r| r.outcome != Outcome::Error)
        .collect();
    let n = counted.len();
    let k = counted
        .iter()
        .filter(|r| r.outcome == Outcome::RolledBack)
        .count();
    let upper = clopper_pearson_upper(k as u64, n as u64, 0.05);
    println!(
        "A/A {label}: false rollbacks {k}/{n} = {:.1}% (95% Clopper-Pearson upper bound {:.1}%){}",
        pct(k, n),
        upper * 100.0,
        match other_outcomes(mine) {
            o if o.is_empty() => String::new(),
            o => format!("; {o}"),
        }
    );
}

fn report(scenarios: &[Scenario], states: &[ScenarioState], records: &[RunRecord]) {
    let of = |s: usize| -> Vec<&RunRecord> {
        let mut v: Vec<&RunRecord> = records.iter().filter(|r| r.scenario == s).collect();
        v.sort_by_key(|r| r.run);
        v
    };
    let mut pooled: Vec<&RunRecord> = Vec::new();
    let mut aa_count = 0;
    for (i, s) in scenarios.iter().enumerate() {
        let mine = of(i);
        if mine.is_empty() {
            continue;
        }
        match s.kind {
            Kind::AA => {
                aa_line(&s.name, &mine);
                print_reasons(&mine, Outcome::RolledBack);
                print_reasons(&mine, Outcome::Error);
                pooled.extend(&mine);
                aa_count += 1;
            }
            Kind::Regression => {
                let counted = mine.iter().filter(|r| r.outcome != Outcome::Error).count();
                let mut times: Vec<f64> = mine
                    .iter()
                    .filter(|r| r.outcome == Outcome::RolledBack)
                    .filter_map(|r| r.time_to_rollback_s)
                    .collect();
                times.sort_by(f64::total_cmp);
                let back = mine
                    .iter()
                    .filter(|r| r.outcome == Outcome::RolledBack)
                    .count();
                let within = times.iter().filter(|&&t| t <= WITHIN).count();
                let others = other_outcomes(&mine);
                println!(
                    "regression {}: time to rollback median {:.1} s, p90 {:.1} s, max {:.1} s; rolled back {back}/{counted}, within {WITHIN:.0} s {within}/{counted}{}",
                    s.name,
                    quantile(&times, 0.5),
                    quantile(&times, 0.9),
                    times.last().copied().unwrap_or(f64::NAN),
                    if others.is_empty() {
                        String::new()
                    } else {
                        format!("; {others}")
                    }
                );
                print_reasons(&mine, Outcome::RolledBack);
                print_reasons(&mine, Outcome::Error);
            }
        }
        let (sent, transport, no_route, proxy_failed) = states[i].tally.read();
        if transport + no_route + proxy_failed > 0 {
            println!(
                "      load: {sent} requests sent; {transport} without an answer, {no_route} before the route existed (404), {proxy_failed} proxy 502/504"
            );
            for e in states[i]
                .tally
                .examples
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
            {
                println!("        e.g. {e}");
            }
        }
    }
    if aa_count > 1 {
        aa_line(&format!("pooled over {aa_count} A/A scenarios"), &pooled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plans_are_what_the_cli_makes() {
        let d = default_plan(GoDuration::from_secs(60)).unwrap();
        let steps = d.rollout["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 7);
        assert_eq!(steps[0], json!({"set_weight": 10}));
        assert_eq!(steps[1]["analysis"]["window"], "1m0s");
        assert_eq!(d.max_duration, None, "3 minutes fit the default 2 h");
        let s = canary_config_plan(Duration::from_secs(180)).unwrap();
        assert_eq!(s.rollout["steps"][0], json!({"set_weight": 5}));
        assert_eq!(s.rollout["safety_checks"].as_array().unwrap().len(), 5);
        assert!(s.auto_promotion);
        // Three 24 h analyses: 72 h, plus the hour `serin apply` adds.
        assert_eq!(s.max_duration, Some(GoDuration::from_hours(73)));
    }

    #[test]
    fn options_parse() {
        let args: Vec<String> = ["--bin", "x", "--only", "a,b", "--window", "20s", "--list"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let o = Opts::parse(&args).unwrap();
        assert_eq!(o.only, Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(o.window, GoDuration::from_secs(20));
        assert!(o.list);
        assert!(Opts::parse(&["--nope".to_string()]).is_err());
    }
}
