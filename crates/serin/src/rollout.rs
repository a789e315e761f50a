//! `serin rollout …` and `serin apply -f`: start a plan, watch it, steer it.
//!
//! `watch` polls the rollout once a second and redraws the steps in place on a
//! terminal (one line per change elsewhere, so CI logs stay readable). It exits
//! 0 when the deployment is promoted, 1 when it is rolled back, and 3 when
//! `--timeout` passes first — a CI job can gate on it.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use futures::StreamExt;
use serde_json::Value;
use serin_core::duration::GoDuration;
use serin_core::rollout::RolloutSpec;

use crate::canary::{duration, new_deployment};
use crate::cli::{ClientArgs, Output, RolloutCmd, RolloutStart};
use crate::commands::client;
use crate::output::print_value;

/// Runs a `serin rollout` command.
pub async fn rollout(args: &ClientArgs, cmd: RolloutCmd) -> anyhow::Result<ExitCode> {
    let c = client(args)?;
    let shown = match cmd {
        RolloutCmd::Start(s) => return start(args, *s).await,
        RolloutCmd::Status(d) => {
            let v = c.rollout(&d.id).await?;
            render(args.output, &v);
            return Ok(ExitCode::SUCCESS);
        }
        RolloutCmd::Watch { id, timeout } => {
            let timeout = duration("timeout", timeout)?.map(|d| d.to_std());
            return watch(args, &id, timeout).await;
        }
        RolloutCmd::Pause { id, reason } => c.pause(&id, reason.as_deref()).await?,
        RolloutCmd::Resume(d) => c.resume(&d.id).await?,
        RolloutCmd::Continue(d) => {
            let v = c.continue_rollout(&d.id).await?;
            render(args.output, &v);
            return Ok(ExitCode::SUCCESS);
        }
        RolloutCmd::Promote(d) => c.promote(&d.id).await?,
        RolloutCmd::Rollback { id, reason } => c.rollback(&id, &reason).await?,
        RolloutCmd::Abort { id, reason } => c.abort(&id, reason.as_deref()).await?,
    };
    print_value(args.output, &shown)?;
    Ok(ExitCode::SUCCESS)
}

/// Starts a deployment with a plan (also `serin apply -f`).
pub async fn start(args: &ClientArgs, s: RolloutStart) -> anyhow::Result<ExitCode> {
    if s.target.percent.is_some() {
        return Err(anyhow!(
            "--percent: a rollout's steps set the weights; leave it out"
        ));
    }
    let (spec, auto) = match (&s.file, s.steps.is_empty()) {
        (Some(path), _) => {
            let f = crate::lint::load(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
            (f.spec, f.auto_promotion)
        }
        (None, false) => {
            let wait = duration("wait", s.wait.clone())?.unwrap_or_default();
            (RolloutSpec::from_traffic_steps(&s.steps, wait), None)
        }
        (None, true) => {
            return Err(anyhow!(
                "give the plan: --steps 5,25,50,100 [--wait 1m], or -f FILE"
            ));
        }
    };
    let mut new = new_deployment(s.target)?;
    if new.auto_promotion.is_none() {
        new.auto_promotion = auto;
    }
    // A plan longer than the profile's max_canary_duration (the canary-config example
    // waits 24 h per step) gets a max that fits it, unless one was given.
    if new.max_duration.is_none() {
        let profiles = &serin_core::canary::PROFILES;
        if let Some(p) = profiles.get(new.profile.as_deref().unwrap_or("default")) {
            let window = new
                .metrics_window
                .or(p.metrics_window)
                .or(profiles.default.metrics_window)
                .unwrap_or(GoDuration::from_mins(5));
            let timed = spec.timed_length(window);
            if timed > p.max_canary_duration {
                let max = GoDuration::from_nanos(
                    timed
                        .as_nanos()
                        .saturating_add(GoDuration::from_hours(1).as_nanos()),
                );
                eprintln!(
                    "note: the plan's timed steps last {timed}; max_duration set to {max} (give --max-duration to choose)"
                );
                new.max_duration = Some(max);
            }
        }
    }
    new.rollout = Some(spec);
    // Read before anything is created: a typo must not leave a deployment.
    let timeout = duration("timeout", s.timeout.clone())?.map(|d| d.to_std());
    let c = client(args)?;
    // Applying what already runs is a no-op, as `kubectl apply` is.
    let (d, verb) = match c.create_deployment(&new).await {
        Ok(d) => (d, "started"),
        Err(serin_client::ClientError::Api { code, details, .. })
            if code == "DEPLOYMENT_EXISTS"
                && details["existing_deployment_id"].as_str().is_some() =>
        {
            let id = details["existing_deployment_id"]
                .as_str()
                .unwrap_or_default();
            let running = c.get_deployment(id).await?;
            let same = running.stable_version == new.stable_version
                && running.canary_version == new.canary_version
                && running.rollout.as_ref().map(|r| &r.spec) == new.rollout.as_ref();
            if !same {
                let refused = serin_client::ClientError::Api {
                    status: 409,
                    code,
                    message: "another deployment runs on this target".into(),
                    details,
                };
                return Err(anyhow::Error::new(refused).context(format!(
                    "deployment {} already runs {} → {} on {} with another plan: end it \
                     (`serin rollout promote|abort {}`) before applying a different one",
                    running.id,
                    running.stable_version,
                    running.canary_version,
                    running.queue_name,
                    running.id
                )));
            }
            (running, "unchanged")
        }
        Err(e) => return Err(e.into()),
    };
    match args.output {
        o @ (Output::Json | Output::Yaml) if !s.watch => crate::output::emit(o, &d)?,
        _ => println!(
            "{verb} {} ({} → {})",
            d.id, d.stable_version, d.canary_version
        ),
    }
    // The profile's minimum duration holds the promotion even after the last
    // step: say so when it is longer than the plan's own timed steps.
    let planned = d.rollout.as_ref().map_or(GoDuration::from_nanos(0), |r| {
        r.spec.timed_length(d.config.metrics_window)
    });
    if d.config.min_canary_duration.as_nanos() > planned.as_nanos() {
        eprintln!(
            "note: promotion waits at least {} from the start (the deployment's minimum duration; the plan's timed steps take {planned}); --min-duration changes it",
            d.config.min_canary_duration
        );
    }
    if s.watch {
        return watch(args, &d.id, timeout).await;
    }
    Ok(ExitCode::SUCCESS)
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// The rollout as lines of text.
fn lines(v: &Value) -> Vec<String> {
    let mut out = vec![format!(
        "{}  {}  canary {}%{}",
        str_of(v, "deployment_id"),
        str_of(v, "status"),
        v["current_percent"],
        match v.get("status_reason").and_then(Value::as_str) {
            Some(r) => format!("  ({r})"),
            None => String::new(),
        }
    )];
    for s in v["steps"].as_array().into_iter().flatten() {
        let mark = match str_of(s, "state") {
            "done" => "[x]",
            "running" => "[>]",
            _ => "[ ]",
        };
        let left = s["seconds_left"]
            .as_i64()
            .map(|n| format!("  {n}s left"))
            .unwrap_or_default();
        out.push(format!("  {mark} {}{left}", str_of(s, "description")));
    }
    if let Some(w) = v.get("waiting_for").and_then(Value::as_str) {
        out.push(format!("  waiting for {w}"));
    }
    if let Some(j) = v.get("judgement").filter(|j| j.is_object()) {
        out.push(format!(
            "  judges: {} — {}",
            str_of(j, "outcome"),
            str_of(j, "summary")
        ));
        // Every judge's own sentence: the sequential judge's evidence shows even
        // while all pass.
        for verdict in j["verdicts"].as_array().into_iter().flatten() {
            out.push(format!(
                "    {}: {} — {}",
                str_of(verdict, "judge"),
                str_of(verdict, "outcome"),
                str_of(verdict, "summary")
            ));
        }
    }
    out
}

fn render(output: Output, v: &Value) {
    match output {
        o @ (Output::Json | Output::Yaml) => crate::output::emit(o, v).unwrap_or_default(),
        Output::Table => {
            for l in lines(v) {
                println!("{l}");
            }
        }
    }
}

/// How often a watch asks for the rollout when no event came (countdowns,
/// judgements between events).
const QUIET_REFRESH: Duration = Duration::from_secs(10);

/// Follows a rollout until it ends (see the module docs for the exit codes).
/// It listens to the deployment's event stream and asks for the rollout when
/// an event arrives (and every 10 s otherwise), so a watch costs a handful of
/// calls a minute, not one a second: several watches on one key stay far
/// below its rate limit.
pub async fn watch(
    args: &ClientArgs,
    id: &str,
    timeout: Option<Duration>,
) -> anyhow::Result<ExitCode> {
    let c = client(args)?;
    let tty = std::io::stdout().is_terminal() && args.output == Output::Table;
    let started = Instant::now();
    let mut drawn = 0usize;
    let mut last: Vec<String> = Vec::new();
    // The event stream when it opens within 5 s (a server behind TLS, or a
    // proxy that refuses WebSockets, doesn't give one): else every 2 s.
    let mut socket = tokio::time::timeout(
        Duration::from_secs(5),
        crate::canary::events_socket(args, &c, id),
    )
    .await
    .ok()
    .and_then(Result::ok);
    loop {
        let v = c.rollout(id).await?;
        let now = lines(&v);
        let mut out = std::io::stdout().lock();
        if tty {
            if drawn > 0 {
                write!(out, "\x1b[{drawn}A\x1b[J")?;
            }
            for l in &now {
                writeln!(out, "{l}")?;
            }
            drawn = now.len();
        } else if args.output.is_data() {
            if now != last {
                match args.output {
                    Output::Yaml => write!(out, "---\n{}", serde_norway::to_string(&v)?)?,
                    _ => writeln!(out, "{}", serde_json::to_string(&v)?)?,
                }
            }
        } else {
            // Without a terminal: the lines that changed, without the countdowns.
            let strip = |l: &String| l.split("  ").take(2).collect::<Vec<_>>().join("  ");
            for l in &now {
                if !last.iter().any(|o| strip(o) == strip(l)) {
                    writeln!(out, "{l}")?;
                }
            }
        }
        out.flush()?;
        last = now;
        match str_of(&v, "status") {
            "completed" => {
                eprintln!("rollout promoted");
                return Ok(ExitCode::SUCCESS);
            }
            "failed" => {
                eprintln!(
                    "rollout rolled back: {}",
                    v.get("status_reason")
                        .and_then(Value::as_str)
                        .unwrap_or("no reason given")
                );
                return Ok(ExitCode::from(1));
            }
            _ => {}
        }
        if timeout.is_some_and(|t| started.elapsed() >= t) {
            eprintln!("still running after the timeout");
            return Ok(ExitCode::from(3));
        }
        // Until the next event, the quiet refresh, or the timeout.
        let wait = timeout.map_or(QUIET_REFRESH, |t| {
            QUIET_REFRESH.min(t.saturating_sub(started.elapsed()))
        });
        let until = tokio::time::Instant::now() + wait;
        match socket.as_mut() {
            // The lane figures' updates (every second or few) change nothing a
            // watch shows that the quiet refresh doesn't: only other events
            // (a step, a judgement, a status) bring the next call forward.
            Some(s) => loop {
                tokio::select! {
                    msg = s.next() => match msg {
                        Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))
                            if t.contains("\"metrics_updated\"")
                                || t.contains("\"lanes_updated\"") => continue,
                        Some(Ok(_)) => break,
                        // The stream ended (a restart, the server going
                        // away): the next call says which; then every 2 s.
                        Some(Err(_)) | None => {
                            socket = None;
                            break;
                        }
                    },
                    _ = tokio::time::sleep_until(until) => break,
                }
            },
            None => tokio::time::sleep(wait.min(Duration::from_secs(2))).await,
        }
    }
}
