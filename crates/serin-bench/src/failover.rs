//! `failover BIN [--kills N] [--stops N] [--check]`: several replicas on one
//! PostgreSQL, the leader killed again and again under load.
//!
//! Three `serin up` replicas share a fresh schema. A steady stream of
//! rollouts (10% → 1 s → 50% → 1 s → 100%, a `pre_rollout` and a
//! `post_rollout` webhook hook, notifications of the default events) runs
//! through them, and a remote `serin proxy` attached to the first replica
//! carries a steady load to an upstream. The leader (read from
//! `GET /api/v1/cluster`) is sent `SIGKILL` `--kills` times at random moments
//! and `SIGSTOP` `--stops` times for longer than its lease (then `SIGCONT`);
//! each killed replica is started again on its port. Printed:
//!
//! - takeover: from the signal to a new leader holding a live lease, as the
//!   other replicas report it (p50, p99, max);
//! - steps executed twice: a rollout event (`percentage_updated`,
//!   `rollout_step_started`) whose message a deployment has twice;
//! - hooks and notifications received twice, split by whether the first
//!   copy came while a leader was dying or stalled (a crash between the send
//!   and its record is the one documented way to get one twice; the second
//!   copy then comes once the send's claim lapses) or not;
//! - events lost: every event of an acknowledged (201) rollout that its
//!   notification wants must reach the receiver, through every kill;
//! - the proxy's requests and failures.
//!
//! With `--check` the process exits non-zero when a goal is missed: takeover
//! p99 above 5 s, a step executed twice, a duplicate outside the windows, a
//! failed proxy request. `scripts/test` runs a short version.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::KEY;

const REPLICAS: usize = 3;

/// What the receiver saw: hooks by (deployment, hook name) and notifications by
/// delivery id, with when each copy arrived.
#[derive(Default)]
struct Received {
    hooks: HashMap<(String, String), Vec<Instant>>,
    notes: HashMap<String, Vec<Instant>>,
    /// The events notifications told of: (deployment, type, timestamp).
    told: std::collections::HashSet<(String, String, String)>,
}

type Shared = Arc<Mutex<Received>>;

async fn hook(State(r): State<Shared>, Json(body): Json<Value>) -> &'static str {
    let key = (
        body["deployment_id"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        body["name"].as_str().unwrap_or_default().to_string(),
    );
    r.lock()
        .expect("receiver")
        .hooks
        .entry(key)
        .or_default()
        .push(Instant::now());
    "ok"
}

async fn note(
    State(r): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> &'static str {
    let id = headers
        .get("x-serin-delivery")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut r = r.lock().expect("receiver");
    r.notes.entry(id).or_default().push(Instant::now());
    r.told.insert(told(
        &body["deployment"]["id"],
        &body["type"],
        &body["timestamp"],
    ));
    "ok"
}

/// An event as a notification and the event log both name it.
fn told(deployment: &Value, kind: &Value, at: &Value) -> (String, String, String) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (s(deployment), s(kind), s(at))
}

/// The event types a notification with no `events` list is sent for
/// (`serin_core::rollout::notify::DEFAULT_EVENTS`).
fn notified(kind: &str) -> bool {
    serin_core::rollout::notify::DEFAULT_EVENTS.iter().any(|k| {
        serde_json::to_value(k)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .as_deref()
            == Some(kind)
    })
}

struct Replica {
    name: String,
    port: u16,
    child: Option<Child>,
}

impl Replica {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts `r` on its port and name; returns once it listens.
fn start_replica(bin: &str, db: &str, r: &mut Replica) -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(bin)
        .args(["up", "--listen", &format!("127.0.0.1:{}", r.port)])
        .args(["--database-url", db, "--name", &r.name])
        .env("SERIN_LOG", "error")
        .env("SERIN_ADMIN_TOKEN", KEY)
        .env("SERIN_RATE_LIMIT", "0")
        .env("SERIN_OUTBOUND_ALLOW", "127.0.0.0/8")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {bin}"))?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.starts_with("serin: listening on ") => break,
            Some(Ok(_)) => {}
            _ => {
                let _ = child.kill();
                bail!("replica {} exited before listening", r.name)
            }
        }
    }
    std::thread::spawn(move || for _ in lines {});
    r.child = Some(child);
    Ok(())
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

/// The leader as replica `url` reports it: (name, epoch), when its lease is live.
async fn leader(http: &reqwest::Client, url: &str) -> Option<(String, i64)> {
    let c: Value = http
        .get(format!("{url}/api/v1/cluster"))
        .bearer_auth(KEY)
        .timeout(Duration::from_millis(500))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let l = &c["leader"];
    if l["expired"] == true {
        return None;
    }
    Some((l["name"].as_str()?.to_string(), l["epoch"].as_i64()?))
}

/// A tiny deterministic generator for the moments of the kills.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub async fn main(bin: &str, kills: usize, stops: usize, check: bool) -> anyhow::Result<()> {
    let base = std::env::var("SERIN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("serin_failover_{}", std::process::id());
    let (pg, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("PostgreSQL at {base}"))?;
    tokio::spawn(conn);
    pg.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ))
    .await?;
    let sep = if base.contains('?') { '&' } else { '?' };
    let db = format!("{base}{sep}options=-csearch_path%3D{schema}");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "failover: {REPLICAS} replicas on one PostgreSQL, {kills} kills and {stops} stops of the leader; load {}",
        load.split_whitespace().next().unwrap_or("?")
    );
    let result = run(bin, &db, kills, stops, check).await;
    let _ = pg
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await;
    result
}

async fn run(bin: &str, db: &str, kills: usize, stops: usize, check: bool) -> anyhow::Result<()> {
    // The receiver of hooks and notifications, and the upstream.
    let received: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .route("/notify", axum::routing::post(note))
        .fallback(|| async { "ok" })
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let outside = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let canary_app = axum::Router::new().fallback(|| async { "canary" });
    let canary_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let canary_upstream = format!("http://{}", canary_listener.local_addr()?);
    tokio::spawn(async move { axum::serve(canary_listener, canary_app).await });

    let mut replicas = Vec::new();
    for i in 0..REPLICAS {
        let mut r = Replica {
            name: format!("r{}", i + 1),
            port: free_port()?,
            child: None,
        };
        start_replica(bin, db, &mut r)?;
        replicas.push(r);
    }
    let http = reqwest::Client::new();
    let first = replicas[0].url();
    let t0 = Instant::now();
    while leader(&http, &first).await.is_none() {
        if t0.elapsed() > Duration::from_secs(20) {
            bail!("no replica leads");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The proxy: one routed deployment, a remote proxy on the first replica.
    let key: Value = http
        .post(format!("{first}/api/v1/api-keys"))
        .bearer_auth(KEY)
        .json(&json!({"name": "edge", "role": "proxy"}))
        .send()
        .await?
        .json()
        .await?;
    let proxy_key = key["key"].as_str().context("proxy key")?.to_string();
    let web: Value = http
        .post(format!("{first}/api/v1/canary/deployments"))
        .bearer_auth(KEY)
        .json(&json!({"queue_name": "web", "stable_version": "1", "canary_version": "2", "percentage": 10,
                      "upstreams": {"stable": [outside], "canary": [outside]}, "traffic": {"affinity": null}}))
        .send()
        .await?
        .json()
        .await?;
    web["id"].as_str().context("routed deployment")?;
    let proxy_port = free_port()?;
    let state = tempfile::tempdir()?;
    let mut proxy = Command::new(bin)
        .args(["proxy", "--control-plane", &first, "--api-key", &proxy_key])
        .args([
            "--listen",
            &format!("127.0.0.1:{proxy_port}"),
            "--name",
            "edge",
        ])
        .arg("--state-dir")
        .arg(state.path())
        .env("SERIN_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let through = format!("http://127.0.0.1:{proxy_port}/");
    let t0 = Instant::now();
    loop {
        if let Ok(r) = http.get(&through).send().await
            && r.status() == 200
        {
            break;
        }
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = proxy.kill();
            bail!("the proxy never routed");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let propagation = propagation(
        &http,
        &replicas[1].url(),
        &through,
        &outside,
        &canary_upstream,
    )
    .await?;
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let stop_load = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut loaders = Vec::new();
    for _ in 0..4 {
        let (http, url, ok, failed, stop) = (
            http.clone(),
            through.clone(),
            ok.clone(),
            failed.clone(),
            stop_load.clone(),
        );
        loaders.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match http.get(&url).timeout(Duration::from_secs(5)).send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }

    // Rollouts, started through whichever replica answers.
    let urls: Vec<String> = replicas.iter().map(Replica::url).collect();
    let created: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop_rollouts = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let starter = {
        let (http, urls, created, stop, outside) = (
            http.clone(),
            urls.clone(),
            created.clone(),
            stop_rollouts.clone(),
            outside.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let url = &urls[n % urls.len()];
                let body = json!({"queue_name": format!("job-{n}"), "stable_version": "1", "canary_version": "2",
                    "min_duration": "0s", "auto_promotion": true,
                    "rollout": {"steps": [{"set_weight": 10}, {"pause": {"duration": "1s"}}, {"set_weight": 50},
                                          {"pause": {"duration": "1s"}}, {"set_weight": 100}],
                                "hooks": [{"name": "pre", "kind": "pre_rollout", "webhook": format!("{outside}/hook"), "retry_count": 0},
                                          {"name": "post", "kind": "post_rollout", "webhook": format!("{outside}/hook"), "retry_count": 0}],
                                "notifications": [{"url": format!("{outside}/notify")}]}});
                let made = http
                    .post(format!("{url}/api/v1/canary/deployments"))
                    .bearer_auth(KEY)
                    .json(&body)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await;
                if let Ok(r) = made
                    && r.status() == 201
                    && let Ok(d) = r.json::<Value>().await
                    && let Some(id) = d["id"].as_str()
                {
                    created.lock().expect("created").push(id.to_string());
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
        })
    };

    // The kills.
    let mut rng = Rng(0x5e71_u64);
    let mut takeovers: Vec<(bool, f64)> = Vec::new();
    let mut down: Vec<(Instant, Instant)> = Vec::new();
    for k in 0..kills + stops {
        let stall = k >= kills;
        tokio::time::sleep(Duration::from_secs_f64(1.0 + 3.0 * rng.next())).await;
        let mut current = None;
        for u in &urls {
            if let Some(l) = leader(&http, u).await {
                current = Some(l);
                break;
            }
        }
        let Some((name, epoch)) = current else {
            continue;
        };
        let Some(i) = replicas.iter().position(|r| r.name == name) else {
            continue;
        };
        let pid = replicas[i].child.as_ref().map_or(0, Child::id);
        let hit = Instant::now();
        if stall {
            signal(pid, "-STOP");
        } else if let Some(mut c) = replicas[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let others: Vec<String> = (0..REPLICAS)
            .filter(|&j| j != i)
            .map(|j| urls[j].clone())
            .collect();
        let took = loop {
            let mut new = false;
            for u in &others {
                if let Some((n, e)) = leader(&http, u).await
                    && n != name
                    && e > epoch
                {
                    new = true;
                }
            }
            if new {
                break hit.elapsed();
            }
            if hit.elapsed() > Duration::from_secs(30) {
                break hit.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        takeovers.push((stall, took.as_secs_f64()));
        if stall {
            // Stalled past its lease, then woken: it must find itself fenced.
            tokio::time::sleep(Duration::from_secs(2)).await;
            signal(pid, "-CONT");
        } else {
            start_replica(bin, db, &mut replicas[i])?;
        }
        down.push((
            hit - Duration::from_millis(500),
            Instant::now() + Duration::from_secs(1),
        ));
        println!(
            "  {} {} of {} (epoch {epoch}): new leader after {:.2} s",
            if stall { "stop" } else { "kill" },
            k + 1,
            kills + stops,
            took.as_secs_f64()
        );
    }

    // Let the rollouts in flight end, then count.
    stop_rollouts.store(true, Ordering::Relaxed);
    let _ = starter.await;
    let ids = created.lock().expect("created").clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut steps_twice = 0usize;
    let mut unfinished = 0usize;
    // Every event of an acknowledged rollout that its notification wants.
    let mut expected: Vec<(String, String, String)> = Vec::new();
    for id in &ids {
        let d = loop {
            let d: Value = http
                .get(format!("{first}/api/v1/canary/deployments/{id}"))
                .bearer_auth(KEY)
                .send()
                .await?
                .json()
                .await?;
            let ended = matches!(d["status"].as_str(), Some("completed" | "failed"));
            if ended || Instant::now() > deadline {
                break d;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        if !matches!(d["status"].as_str(), Some("completed" | "failed")) {
            unfinished += 1;
        }
        let events: Value = http
            .get(format!(
                "{first}/api/v1/canary/deployments/{id}/events?page_size=100"
            ))
            .bearer_auth(KEY)
            .send()
            .await?
            .json()
            .await?;
        let mut seen: HashMap<String, usize> = HashMap::new();
        for e in events["events"].as_array().into_iter().flatten() {
            if notified(e["type"].as_str().unwrap_or_default()) {
                expected.push(told(&json!(id), &e["type"], &e["timestamp"]));
            }
            if matches!(
                e["type"].as_str(),
                Some("percentage_updated" | "rollout_step_started")
            ) {
                *seen
                    .entry(e["message"].as_str().unwrap_or_default().to_string())
                    .or_default() += 1;
            }
        }
        steps_twice += seen
            .values()
            .filter(|n| **n > 1)
            .map(|n| n - 1)
            .sum::<usize>();
    }
    // Each of those events is told, at the latest once the claims of sends
    // that died with their leader have lapsed and their retries come due.
    let deadline = Instant::now() + Duration::from_secs(60);
    let untold = loop {
        let untold = {
            let r = received.lock().expect("receiver");
            expected.iter().filter(|e| !r.told.contains(*e)).count()
        };
        if untold == 0 || Instant::now() > deadline {
            break untold;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_load.store(true, Ordering::Relaxed);
    for l in loaders {
        let _ = l.await;
    }
    let _ = proxy.kill();
    let _ = proxy.wait();
    for r in &mut replicas {
        if let Some(mut c) = r.child.take() {
            signal(c.id(), "-CONT");
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    // A copy is explained by a crash when the *first* one was received while
    // a leader was dying: it sent, and died (or stalled) before recording the
    // send. The second copy comes after the claim lapsed (15 s for a
    // notification, a hook's timeout and a margin for a hook), long after.
    let in_window = |t: &Instant| down.iter().any(|(a, b)| t >= a && t <= b);
    let (mut hooks_twice, mut hooks_window, mut notes_twice, mut notes_window) = (0, 0, 0, 0);
    {
        let r = received.lock().expect("receiver");
        for copies in r.hooks.values().filter(|v| v.len() > 1) {
            for _ in &copies[1..] {
                if in_window(&copies[0]) {
                    hooks_window += 1
                } else {
                    hooks_twice += 1
                }
            }
        }
        for copies in r.notes.values().filter(|v| v.len() > 1) {
            for _ in &copies[1..] {
                if in_window(&copies[0]) {
                    notes_window += 1
                } else {
                    notes_twice += 1
                }
            }
        }
        println!(
            "  received: {} hook calls for {} hooks, {} notifications for {} deliveries",
            r.hooks.values().map(Vec::len).sum::<usize>(),
            r.hooks.len(),
            r.notes.values().map(Vec::len).sum::<usize>(),
            r.notes.len()
        );
    }
    let summary = |stall: bool| {
        let mut v: Vec<f64> = takeovers
            .iter()
            .filter(|t| t.0 == stall)
            .map(|t| t.1)
            .collect();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return (0.0, 0.0, 0.0, 0);
        }
        (
            crate::stats::quantile(&v, 0.5),
            crate::stats::quantile(&v, 0.99),
            v[v.len() - 1],
            v.len(),
        )
    };
    let (p50, p99, max, n) = summary(false);
    println!(
        "  takeover after kill -9: n {n}, p50 {p50:.2} s, p99 {p99:.2} s, max {max:.2} s (goal p99 <= 5 s)"
    );
    let (s50, s99, smax, sn) = summary(true);
    println!("  takeover after SIGSTOP: n {sn}, p50 {s50:.2} s, p99 {s99:.2} s, max {smax:.2} s");
    println!(
        "  rollouts: {} started, {unfinished} unfinished after 60 s; steps executed twice: {steps_twice} (goal 0)",
        ids.len()
    );
    println!(
        "  hooks received twice: {hooks_twice} outside a leader's crash or stall (goal 0), {hooks_window} within one"
    );
    println!(
        "  notifications received twice: {notes_twice} outside a leader's crash or stall (goal 0), {notes_window} within one"
    );
    println!(
        "  events of acknowledged rollouts a notification wants: {}, never told: {untold} (goal 0)",
        expected.len()
    );
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("  proxy: {ok} requests answered, {failed} failed (goal 0)");
    let (c50, c99, cmax) = propagation;
    println!(
        "  a change made on r2 reaching the proxy attached to r1: p50 {c50:.1} ms, p99 {c99:.1} ms, max {cmax:.1} ms (goal p99 <= 200 ms)"
    );
    if check {
        let mut missed = Vec::new();
        if n > 0 && p99 > 5.0 {
            missed.push(format!("takeover p99 {p99:.2} s > 5 s"));
        }
        if steps_twice > 0 {
            missed.push(format!("{steps_twice} steps executed twice"));
        }
        if hooks_twice + notes_twice > 0 {
            missed.push(format!(
                "{} duplicates outside a crash",
                hooks_twice + notes_twice
            ));
        }
        if failed > 0 {
            missed.push(format!("{failed} failed proxy requests"));
        }
        if c99 > 200.0 {
            missed.push(format!("change propagation p99 {c99:.1} ms > 200 ms"));
        }
        if unfinished > 0 {
            missed.push(format!("{unfinished} rollouts never finished"));
        }
        if untold > 0 || expected.is_empty() {
            missed.push(format!(
                "{untold} of {} acknowledged events never told",
                expected.len()
            ));
        }
        if !missed.is_empty() {
            bail!("failover goals missed: {}", missed.join("; "));
        }
    }
    Ok(())
}

/// A percentage flipped 20 times through `other` (not the replica the proxy
/// follows), each timed until the proxy answers from the new lane: the
/// median, p99 and max in milliseconds.
async fn propagation(
    http: &reqwest::Client,
    other: &str,
    through: &str,
    stable: &str,
    canary: &str,
) -> anyhow::Result<(f64, f64, f64)> {
    let d: Value = http
        .post(format!("{other}/api/v1/canary/deployments"))
        .bearer_auth(KEY)
        .json(&json!({"queue_name": "flip", "stable_version": "1", "canary_version": "2", "percentage": 0,
                      "route": {"path_prefix": "/flip"},
                      "upstreams": {"stable": [stable], "canary": [canary]}, "traffic": {"affinity": null}}))
        .send()
        .await?
        .json()
        .await?;
    let id = d["id"].as_str().context("flip deployment")?.to_string();
    let url = format!("{through}flip");
    let answers = |want: &'static str| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let t0 = Instant::now();
            loop {
                if let Ok(r) = http.get(&url).send().await
                    && let Ok(body) = r.text().await
                    && body == want
                {
                    return Ok::<_, anyhow::Error>(t0.elapsed());
                }
                if t0.elapsed() > Duration::from_secs(10) {
                    bail!("the proxy never answered {want}");
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    };
    answers("ok").await?;
    let mut took = Vec::new();
    for i in 0..20 {
        let (percent, want) = if i % 2 == 0 {
            (100, "canary")
        } else {
            (0, "ok")
        };
        let sent = Instant::now();
        http.put(format!("{other}/api/v1/canary/deployments/{id}/percentage"))
            .bearer_auth(KEY)
            .json(&json!({"percentage": percent}))
            .send()
            .await?
            .error_for_status()?;
        answers(want).await?;
        took.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    took.sort_by(f64::total_cmp);
    Ok((
        crate::stats::quantile(&took, 0.5),
        crate::stats::quantile(&took, 0.99),
        took[took.len() - 1],
    ))
}
