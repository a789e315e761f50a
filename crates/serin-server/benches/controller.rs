//! Controller overhead: 1,000 live deployments with rollout plans on SQLite, one
//! controller tick a second, as `serin up` runs it.
//!
//! Two mixes: every deployment at an analysis step (each tick judges every one
//! over its lane buckets: the heaviest case), and a mix of a quarter pausing, half
//! analysing and a quarter waiting for a person to promote. Each deployment has
//! 60 seconds of proxy lane buckets per lane. Prints the tick duration
//! (median, p99, max) and the CPU the process used per second of wall time
//! (user + system from /proc/self/stat, in clock ticks of 1/100 s).
//!
//! With `--postgres`, the store is a fresh schema of `SERIN_TEST_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`) and the tick runs as
//! the leader's does: over a store fenced by the lease's epoch. `--followers N`
//! (with `--postgres`) also starts N real `serin up` replicas on the same schema
//! before the timed ticks: they find the lease held and serve as followers
//! (heartbeats, election attempts, the change feed on `LISTEN/NOTIFY`), so the
//! tick is timed beside them as in a three-replica cluster. The binary is
//! `SERIN_BIN`, else `target/release/serin` (build it first).
//!
//! `cargo bench -p serin-server --bench controller [-- --deployments N --seconds S --postgres [--followers N]]`

use std::time::{Duration, Instant};

use chrono::Utc;
use serin_core::Lane;
use serin_core::canary::NewDeployment;
use serin_core::duration::GoDuration;
use serin_core::rollout::{RolloutSpec, Step};
use serin_core::stats::histogram::Histogram;
use serin_core::traffic::proxy::LaneBucket;
use serin_server::{AppState, ServerConfig};
use serin_store::{Store, StoreOptions};

fn opt(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time of this process so far, in seconds (Linux `/proc/self/stat`: utime
/// and stime, fields 14 and 15, in clock ticks of 1/100 s).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the command name, field 3 (state) is index 0, so 14 and 15 are 11 and 12.
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// A fresh PostgreSQL schema's URL.
async fn postgres_schema() -> String {
    let base = std::env::var("SERIN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL for --postgres");
    tokio::spawn(conn);
    let schema = format!("serin_bench_controller_{}", std::process::id());
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-csearch_path%3D{schema}")
}

/// Real `serin up` processes on the database `url`, killed when dropped.
struct Followers(Vec<std::process::Child>);

impl Drop for Followers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `n` replicas of `serin up` on `url`; returns once each listens.
fn start_followers(n: usize, url: &str) -> Followers {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let bin = std::env::var("SERIN_BIN").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release/serin").into()
    });
    let mut followers = Followers(Vec::new());
    for i in 0..n {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let mut child = Command::new(&bin)
            .args(["up", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--database-url", url, "--name", &format!("follower-{i}")])
            .env("SERIN_LOG", "error")
            .env("SERIN_ADMIN_TOKEN", "bench-follower-admin-token-0123456789")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} (build it with `cargo build --release -p serin`): {e}")
            });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        followers.0.push(child);
        loop {
            match lines.next() {
                Some(Ok(l)) if l.starts_with("serin: listening on ") => break,
                Some(Ok(_)) => {}
                _ => panic!("follower {i} exited before listening"),
            }
        }
        std::thread::spawn(move || for _ in lines {});
    }
    followers
}

async fn setup(n: usize, mixed: bool, postgres: bool) -> (AppState, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = if postgres {
        postgres_schema().await
    } else {
        format!("sqlite://{}/serin.db", dir.path().display())
    };
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let started = Utc::now() - chrono::Duration::seconds(60);
    let hour = Some(GoDuration::from_hours(1));
    let mut buckets = Vec::new();
    for i in 0..n {
        let steps = match (mixed, i % 4) {
            (true, 0) => vec![Step::SetWeight(10), Step::Pause { duration: hour }],
            (true, 3) => vec![Step::SetWeight(10)],
            _ => vec![Step::SetWeight(10), Step::Analysis { window: hour }],
        };
        let new = NewDeployment {
            queue_name: format!("svc-{i}"),
            stable_version: "v1".into(),
            canary_version: "v2".into(),
            max_duration: Some(GoDuration::from_hours(24)),
            rollout: Some(RolloutSpec::of_steps(steps)),
            ..Default::default()
        };
        let id = format!("canary_{i:04}");
        let (mut d, ev) = new.resolve(id.clone(), "bench", started).unwrap();
        // Already past its first step (10%), as in a running rollout.
        d.current_percent = 10;
        d.target_percent = 10;
        if let Some(r) = &mut d.rollout {
            r.step = 1;
        }
        store.create_deployment(d, ev, "bench", None).await.unwrap();
        for s in 0..60 {
            for (lane, requests) in [(Lane::Stable, 90), (Lane::Canary, 10)] {
                let mut latency = Histogram::default();
                for k in 0..requests {
                    latency.record(20_000 + k * 100);
                }
                buckets.push(LaneBucket {
                    deployment_id: id.clone(),
                    lane: lane.into(),
                    second: started.timestamp() + s,
                    requests,
                    errors_5xx: 0,
                    errors_connect: 0,
                    errors_timeout: 0,
                    latency,
                });
            }
        }
        if buckets.len() >= 20_000 {
            store
                .record_lane_buckets("bench", std::mem::take(&mut buckets))
                .await
                .unwrap();
        }
    }
    store.record_lane_buckets("bench", buckets).await.unwrap();
    let config = ServerConfig {
        max_live_deployments: None,
        ..Default::default()
    };
    (AppState::new(store, config), dir, url)
}

async fn run(n: usize, seconds: usize, mixed: bool, postgres: bool, followers: usize) {
    let (state, _dir, url) = setup(n, mixed, postgres).await;
    // The leader's tick: its writes fenced by the lease's epoch.
    let epoch = state
        .store
        .acquire_lease("bench", Duration::from_secs(3600))
        .await
        .unwrap()
        .expect("the lease of a fresh database");
    let state = AppState {
        app: state.app.fenced(epoch),
        ..state
    };
    // Followers start after the lease is taken, so none of them leads.
    let _followers = start_followers(followers, &url);
    // One tick to warm caches, not counted.
    serin_server::controller::tick(&state).await;
    let mut durations = Vec::with_capacity(seconds);
    let (cpu0, wall0) = (cpu_secs(), Instant::now());
    let mut every = tokio::time::interval(Duration::from_secs(1));
    for _ in 0..seconds {
        every.tick().await;
        let t = Instant::now();
        let report = serin_server::controller::tick(&state).await;
        durations.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!((report.rollouts, report.errors), (n, 0), "{report:?}");
    }
    let (cpu, wall) = (cpu_secs() - cpu0, wall0.elapsed().as_secs_f64());
    let t = Instant::now();
    for _ in 0..10 {
        state.store.live_deployments().await.unwrap();
    }
    let read_live = t.elapsed().as_secs_f64() * 100.0;
    durations.sort_by(f64::total_cmp);
    let beside = if followers > 0 {
        format!(" (+{followers} follower replicas)")
    } else {
        String::new()
    };
    println!(
        "{}{beside} {:<36} {n} deployments, {seconds} ticks: tick median {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; CPU {:.1}% of one core; reading the live set alone {:.1} ms",
        state.store.backend(),
        if mixed {
            "mixed (1/4 pause, 1/2 analysis, 1/4 end):"
        } else {
            "all at an analysis step:"
        },
        pct(&durations, 0.5),
        pct(&durations, 0.9),
        pct(&durations, 0.99),
        durations.last().copied().unwrap_or(0.0),
        cpu / wall * 100.0,
        read_live
    );
}

fn main() {
    let n = opt("--deployments", 1000);
    let seconds = opt("--seconds", 30);
    let postgres = std::env::args().any(|a| a == "--postgres");
    let followers = opt("--followers", 0);
    assert!(
        followers == 0 || postgres,
        "--followers needs --postgres: SQLite runs one replica"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        run(n, seconds, false, postgres, followers).await;
        run(n, seconds, true, postgres, followers).await;
    });
}
