//! Whole-system benchmarks of the `serin` binary. Each prints its figures and,
//! where a peer exists, measures the peer in the same run and prints the ratio.
//!
//! - `ingest BIN`: signals through `POST /api/v1/signals/batch` into SQLite, against
//!   a raw rusqlite loop inserting the same rows into the same schema with the same
//!   pragmas (WAL, `synchronous=FULL`), one transaction per batch.
//! - `startup BIN`: time from exec to the first answered `/api/v1/health`, and the
//!   resident memory of the idle server.
//! - `fanout BIN`: 100 WebSocket subscribers of one deployment; the time from a
//!   percentage update being sent to each subscriber receiving it.
//! - `logins BIN`: `GET /api/v1/releases` latency from a few steady readers,
//!   first alone, then with 20 logins a second (Argon2id at its production
//!   parameters) started on a fixed schedule whatever the answers, in the same run.
//! - `slowloris BIN`: 5,000 connections that never finish their headers while a
//!   prober checks `/api/v1/health` on fresh connections: its latencies before
//!   and during, and when the crowd is closed; nginx the same way (`slowloris.rs`).
//! - `history BIN`: a percentage change's way to the embedded proxy, the
//!   control plane's memory and the proxy's `/metrics`, with no history and
//!   then with 10,000 finished deployments (`history.rs`).
//! - `promotions BIN`: `kill -9` the moment a promotion is seen, then ask
//!   for the product's latest stable release, 100 times (`promotions.rs`).
//! - `verdicts --bin BIN …`: canary verdicts live, many deployments at once on one
//!   `serin up` with real upstream processes: the share of false rollbacks of
//!   canaries no worse than stable, and the time to roll back worse ones
//!   (`verdicts.rs`; `scripts/bench-verdicts` runs it). Its helpers, started by
//!   it: `upstream …` (a stand-in service, `upstream.rs`) and `burn --duty D`
//!   (a noisy neighbour, `burn.rs`).
//!
//! The load generator runs on the same 2-core machine as the server, so it takes
//! CPU from it; the figures are a floor, not a ceiling.
#![forbid(unsafe_code)]

mod burn;
mod failover;
mod history;
mod loadgen;
mod machine;
mod mirror;
mod promotions;
mod scenarios;
mod slowloris;
mod stats;
mod upstream;
mod verdicts;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    // The verdicts benchmark and its helper processes parse their own flags.
    match args.get(1).map(String::as_str) {
        Some("verdicts") => return verdicts::main(&args[2..]),
        Some("upstream") => return upstream::main(&args[2..]),
        Some("burn") => return burn::main(&args[2..]),
        _ => {}
    }
    let usage = "usage: serin-bench verdicts --bin PATH_TO_SERIN [--help] | ingest|startup|fanout|logins|slowloris|history|promotions|failover|mirror PATH_TO_SERIN [--batches N] [--batch-size N] [--concurrency N] [--runs N] [--subscribers N] [--updates N] [--seconds N] [--logins-per-second N] [--readers N] [--deployments N] [--changes N] [--kills N] [--stops N] [--check] [--rate N] [--rounds N]";
    let (Some(cmd), Some(bin)) = (args.get(1), args.get(2)) else {
        bail!(usage)
    };
    let opt = |name: &str, default: usize| -> anyhow::Result<usize> {
        match args.iter().position(|a| a == name) {
            Some(i) => args.get(i + 1).context(usage)?.parse().context(usage),
            None => Ok(default),
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cmd.as_str() {
        "ingest" => rt.block_on(ingest(
            bin,
            opt("--batches", 200)?,
            opt("--batch-size", 5000)?,
            opt("--concurrency", 2)?,
        )),
        "startup" => rt.block_on(startup(bin, opt("--runs", 20)?)),
        "fanout" => rt.block_on(fanout(
            bin,
            opt("--subscribers", 100)?,
            opt("--updates", 20)?,
        )),
        "logins" => rt.block_on(logins(
            bin,
            opt("--seconds", 20)?,
            opt("--logins-per-second", 20)?,
            opt("--readers", 4)?,
        )),
        "promotions" => rt.block_on(promotions::main(bin, opt("--runs", 100)?)),
        "failover" => rt.block_on(failover::main(
            bin,
            opt("--kills", 100)?,
            opt("--stops", 3)?,
            args.iter().any(|a| a == "--check"),
        )),
        "history" => rt.block_on(history::main(
            bin,
            opt("--deployments", 10_000)?,
            opt("--changes", 20)?,
        )),
        "mirror" => rt.block_on(mirror::main(
            bin,
            opt("--rate", 2000)?,
            opt("--seconds", 10)?,
            opt("--rounds", 3)?,
        )),
        "slowloris" => rt.block_on(slowloris::main(
            bin,
            opt("--connections", 5000)?,
            opt("--probes", 500)?,
        )),
        _ => bail!(usage),
    }
}

/// The admin key of the benchmarked server.
const KEY: &str = "srn_bench_admin_key_0123456789abcdef";

struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serin up` on `database_url` with `extra` arguments (the admin key
/// [`KEY`], rate limits off) and waits for each line that starts with one of
/// `announced` (`serin: listening on `…); returns the child and the rest of
/// each such line, in order. The child's remaining output is read and dropped.
fn launch(
    bin: &str,
    database_url: &str,
    extra: &[&str],
    log: &str,
    announced: &[&str],
) -> anyhow::Result<(Child, Vec<String>)> {
    let mut child = Command::new(bin)
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            database_url,
        ])
        .args(extra)
        .env("SERIN_LOG", log)
        .env("SERIN_ADMIN_TOKEN", KEY)
        .env("SERIN_RATE_LIMIT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {bin}"))?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let mut found: Vec<Option<String>> = vec![None; announced.len()];
    while found.iter().any(Option::is_none) {
        match lines.next() {
            Some(Ok(line)) => {
                for (i, prefix) in announced.iter().enumerate() {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        found[i] = Some(rest.to_string());
                    }
                }
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("serin exited before announcing {announced:?}")
            }
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Ok((child, found.into_iter().flatten().collect()))
}

fn start(bin: &str) -> anyhow::Result<(Server, Instant)> {
    let dir = tempfile::tempdir()?;
    let db = format!("sqlite://{}/serin.db", dir.path().display());
    let t0 = Instant::now();
    let (child, mut urls) = launch(bin, &db, &[], "warn", &["serin: listening on "])?;
    Ok((
        Server {
            child,
            url: urls.remove(0),
            _dir: dir,
        },
        t0,
    ))
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()?)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn startup(bin: &str, runs: usize) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let mut times = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..runs {
        let (server, t0) = start(bin)?;
        let health = format!("{}/api/v1/health", server.url);
        loop {
            if http
                .get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
        // Idle: a few requests, then a pause, then read resident memory.
        for _ in 0..10 {
            http.get(&health).send().await?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss.push(rss_kib(server.child.id())? as f64 / 1024.0);
    }
    println!("startup: exec -> /api/v1/health answered, {runs} runs");
    println!(
        "  median {:.1} ms, min {:.1} ms, max {:.1} ms   (goal <= 200 ms)",
        median(times.clone()),
        times.iter().cloned().fold(f64::MAX, f64::min),
        times.iter().cloned().fold(0.0, f64::max)
    );
    println!(
        "idle resident memory: median {:.1} MiB, max {:.1} MiB   (goal <= 25 MB)",
        median(rss.clone()),
        rss.iter().cloned().fold(0.0, f64::max)
    );
    Ok(())
}

fn batch_body(release_id: i64, batch: usize, size: usize) -> Vec<u8> {
    let signals: Vec<_> = (0..size)
        .map(|i| {
            let n = batch * size + i;
            serde_json::json!({
                "release_id": release_id,
                "lane": if n.is_multiple_of(10) { "canary" } else { "stable" },
                "name": "http.request.duration",
                "kind": "latency",
                "value": (n % 977) as f64 * 0.25,
                "tags": {"route": "/checkout"},
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "signals": signals })).unwrap_or_default()
}

async fn ingest(bin: &str, batches: usize, size: usize, concurrency: usize) -> anyhow::Result<()> {
    let (server, _) = start(bin)?;
    let http = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        http.post(format!("{}{path}", server.url))
            .bearer_auth(KEY)
            .json(&body)
            .send()
    };
    post("/product", serde_json::json!({"name": "bench"}))
        .await?
        .error_for_status()?;
    let release: serde_json::Value = post(
        "/release",
        serde_json::json!({"product_name": "bench", "version": "1.0.0"}),
    )
    .await?
    .error_for_status()?
    .json()
    .await?;
    let release_id = release["id"].as_i64().context("release id")?;
    let bodies: Vec<Vec<u8>> = (0..batches)
        .map(|b| batch_body(release_id, b, size))
        .collect();
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    let total = batches * size;

    // Serin over HTTP.
    let url = format!("{}/api/v1/signals/batch", server.url);
    let queue = std::sync::Arc::new(tokio::sync::Mutex::new(bodies.clone()));
    let t0 = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, url, queue) = (http.clone(), url.clone(), queue.clone());
            tokio::spawn(async move {
                loop {
                    let Some(body) = queue.lock().await.pop() else {
                        return Ok::<_, anyhow::Error>(());
                    };
                    let resp = http
                        .post(&url)
                        .bearer_auth(KEY)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await?;
                    if !resp.status().is_success() {
                        bail!("batch refused: {}", resp.text().await?);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    let serin_secs = t0.elapsed().as_secs_f64();
    let serin_rate = total as f64 / serin_secs;

    // The peer: the same rows, the same schema and pragmas, straight into SQLite.
    let dir = tempfile::tempdir()?;
    let raw_secs = tokio::task::spawn_blocking(move || {
        raw_sqlite(&dir.path().join("raw.db"), release_id, batches, size)
    })
    .await??;
    let raw_rate = total as f64 / raw_secs;

    println!(
        "signal ingestion into SQLite: {total} signals in {batches} batches of {size}, {concurrency} concurrent clients, {:.1} MB of JSON",
        bytes as f64 / 1e6
    );
    println!(
        "  serin HTTP batch endpoint: {serin_rate:>10.0} signals/s ({serin_secs:.2} s)   (goal >= 100000)"
    );
    println!("  raw SQLite insert loop:    {raw_rate:>10.0} rows/s    ({raw_secs:.2} s)");
    println!(
        "  ratio serin/raw: {:.2}   (goal >= 0.5)",
        serin_rate / raw_rate
    );
    Ok(())
}

fn raw_sqlite(
    path: &std::path::Path,
    release_id: i64,
    batches: usize,
    size: usize,
) -> anyhow::Result<f64> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
    )?;
    for m in serin_store::migrate::SQLITE {
        conn.execute_batch(m.sql)?;
    }
    let now = 1_700_000_000_000_000_i64;
    conn.execute(
        "INSERT INTO products (id, name, created_at, updated_at) VALUES (1, 'bench', ?1, ?1)",
        [now],
    )?;
    conn.execute(
        "INSERT INTO releases (id, product_id, version, status, created_at, updated_at) VALUES (?1, 1, '1.0.0', 'draft', ?2, ?2)",
        rusqlite::params![release_id, now],
    )?;
    let t0 = Instant::now();
    for b in 0..batches {
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO signals (release_id, lane, name, kind, value, tags, ts, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for i in 0..size {
                let n = b * size + i;
                let lane = if n.is_multiple_of(10) {
                    "canary"
                } else {
                    "stable"
                };
                stmt.execute(rusqlite::params![
                    release_id,
                    lane,
                    "http.request.duration",
                    "latency",
                    (n % 977) as f64 * 0.25,
                    r#"{"route":"/checkout"}"#,
                    now + n as i64,
                    now
                ])?;
            }
        }
        tx.commit()?;
    }
    Ok(t0.elapsed().as_secs_f64())
}

async fn fanout(bin: &str, subscribers: usize, updates: usize) -> anyhow::Result<()> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let (server, _) = start(bin)?;
    let http = reqwest::Client::new();
    let d: serde_json::Value = http
        .post(format!("{}/api/v1/canary/deployments", server.url))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"queue_name": "fanout", "stable_version": "a", "canary_version": "b"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = d["id"].as_str().context("id")?.to_string();
    let ws_url = format!(
        "{}/api/v1/canary/deployments/{id}/events",
        server.url.replacen("http", "ws", 1)
    );
    // Each subscriber reports (update number, instant received) for every percentage_updated.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    let mut tasks = Vec::new();
    for _ in 0..subscribers {
        let mut req = ws_url.as_str().into_client_request()?;
        req.headers_mut()
            .insert("authorization", format!("Bearer {KEY}").parse()?);
        let (mut socket, _) = tokio_tungstenite::connect_async(req).await?;
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(msg)) = socket.next().await {
                let Ok(text) = msg.to_text() else { continue };
                let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
                if v["type"] == "percentage_updated"
                    && let Some(n) = v["data"]["new_percentage"].as_u64()
                {
                    let _ = tx.send((n, Instant::now()));
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // let every subscription settle
    let mut lat_ms = Vec::new();
    for u in 1..=updates as u64 {
        let sent = Instant::now();
        http.put(format!(
            "{}/api/v1/canary/deployments/{id}/percentage",
            server.url
        ))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"percentage": u}))
        .send()
        .await?
        .error_for_status()?;
        let mut got = 0;
        while got < subscribers {
            let (n, at) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await?
                .context("stream ended")?;
            if n == u {
                lat_ms.push((at - sent).as_secs_f64() * 1000.0);
                got += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for t in tasks {
        t.abort();
    }
    lat_ms.sort_by(f64::total_cmp);
    let q = |p: f64| lat_ms[((p * lat_ms.len() as f64).ceil() as usize).clamp(1, lat_ms.len()) - 1];
    println!(
        "websocket fan-out: {subscribers} subscribers x {updates} percentage updates = {} deliveries",
        lat_ms.len()
    );
    println!(
        "  update sent -> received: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms   (goal p99 <= 50 ms)",
        q(0.5),
        q(0.99),
        q(1.0)
    );
    Ok(())
}

/// Percentile of sorted milliseconds.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// `readers` clients reading `GET /api/v1/releases` back to back for `secs`;
/// returns the sorted latencies in ms.
async fn read_for(http: &reqwest::Client, url: &str, readers: usize, secs: u64) -> Vec<f64> {
    let until = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..readers {
        let (http, url) = (http.clone(), format!("{url}/api/v1/releases?page_size=20"));
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            while Instant::now() < until {
                let t = Instant::now();
                let ok = http
                    .get(&url)
                    .bearer_auth(KEY)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    out.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                // A steady reader, not a flood: one request every 10 ms at most.
                tokio::time::sleep(Duration::from_millis(10).saturating_sub(t.elapsed())).await;
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    all.sort_by(f64::total_cmp);
    all
}

async fn logins(bin: &str, secs: usize, per_second: usize, readers: usize) -> anyhow::Result<()> {
    let (server, _) = start(bin)?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let url = server.url.clone();
    let post = |path: &str, body: serde_json::Value| {
        http.post(format!("{url}{path}"))
            .bearer_auth(KEY)
            .json(&body)
            .send()
    };
    post("/api/v1/products", serde_json::json!({"name": "bench"})).await?;
    for i in 0..50 {
        post(
            "/api/v1/releases",
            serde_json::json!({"product_name": "bench", "version": format!("1.{i}.0"), "description": "notes"}),
        )
        .await?;
    }
    let r = post(
        "/api/v1/users",
        serde_json::json!({"email": "bench@example.com", "name": "Bench", "role": "viewer", "password": "correct horse battery"}),
    )
    .await?;
    if !r.status().is_success() {
        bail!("cannot create the user: {}", r.text().await?);
    }
    let secs = secs as u64;
    read_for(&http, &url, readers, 2).await; // warm-up
    let alone = read_for(&http, &url, readers, secs).await;

    // Logins on a fixed schedule: each starts on time whether or not the last answered.
    let stop = Instant::now() + Duration::from_secs(secs);
    let login_url = format!("{url}/api/v1/auth/login");
    let (h2, started) = (http.clone(), Instant::now());
    let generator = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second as u32);
        let mut calls = Vec::new();
        while Instant::now() < stop {
            tick.tick().await;
            let (h, u) = (h2.clone(), login_url.clone());
            calls.push(tokio::spawn(async move {
                let t = Instant::now();
                let r = h
                    .post(u)
                    .json(&serde_json::json!({"email": "bench@example.com", "password": "correct horse battery"}))
                    .send()
                    .await;
                let ok = r.is_ok_and(|r| r.status().is_success());
                (ok, t.elapsed().as_secs_f64() * 1000.0)
            }));
        }
        let mut out = Vec::new();
        for c in calls {
            out.push(c.await.unwrap_or((false, f64::NAN)));
        }
        out
    });
    let loaded = read_for(&http, &url, readers, secs).await;
    let done = generator.await?;
    let took = started.elapsed().as_secs_f64();
    let ok = done.iter().filter(|(ok, _)| *ok).count();
    let mut login_ms: Vec<f64> = done
        .iter()
        .filter(|(ok, _)| *ok)
        .map(|(_, ms)| *ms)
        .collect();
    login_ms.sort_by(f64::total_cmp);
    println!(
        "GET /api/v1/releases, {readers} readers, alone:          {} requests, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        alone.len(),
        pct(&alone, 0.5),
        pct(&alone, 0.99),
        alone.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "GET /api/v1/releases, {readers} readers, with logins:    {} requests, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        loaded.len(),
        pct(&loaded, 0.5),
        pct(&loaded, 0.99),
        loaded.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "logins: {} started at {per_second}/s, {ok} succeeded ({:.1}/s), latency p50 {:.1} ms, p99 {:.1} ms",
        done.len(),
        ok as f64 / took,
        pct(&login_ms, 0.5),
        pct(&login_ms, 0.99)
    );
    let p99 = pct(&loaded, 0.99);
    println!(
        "summary: releases p99 with {per_second} logins/s in flight {p99:.2} ms (goal <= 20 ms: {}); p99 ratio loaded/alone {:.2}",
        if p99 <= 20.0 { "met" } else { "NOT met" },
        p99 / pct(&alone, 0.99)
    );
    Ok(())
}
