//! `mirror BIN [--rate N] [--seconds N] [--rounds N]`: what mirroring costs the
//! clients of stable.
//!
//! Two nginx upstreams (stable and canary, one worker each) and `serin proxy`
//! serving three routes from a routes file: `/plain/` (no mirroring),
//! `/mirror/` (every request copied to the live canary) and `/dead/` (every
//! request copied to a canary nobody listens on). nginx and the proxy share
//! one CPU, the load the other (`taskset`), as in the shared proxy harness.
//!
//! The load is open-loop at `--rate` requests a second over keep-alive
//! connections (run the bench itself on CPU 0: `taskset -c 0 serin-bench
//! mirror …`): each request's latency counts from when it was *due*, so a
//! stall shows in full (no coordinated omission). The three routes take turns,
//! `--rounds` times, `--seconds` each. Printed per route: requests, client
//! errors (transport, non-2xx, a body that isn't stable's), p50/p99/p99.9;
//! then the p99 mirroring adds (goal ≤ 10%), the errors with a dead canary
//! (goal 0), and from the proxy's `/metrics` the copies counted in the mirror
//! lane and the copies dropped; and the proxy's peak RSS.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        // SIGTERM, so nginx's master takes its worker with it.
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn pinned(cpu: Option<&str>, program: &str) -> Command {
    match cpu {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", c, program]);
            cmd
        }
        None => Command::new(program),
    }
}

async fn until_up(url: &str) -> anyhow::Result<()> {
    let t0 = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(url).await
            && r.status().is_success()
        {
            return Ok(());
        }
        if t0.elapsed() > Duration::from_secs(15) {
            bail!("{url} never answered");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One route's figures over all its rounds.
#[derive(Default)]
struct Figures {
    latencies_us: Vec<u64>,
    errors: u64,
}

pub async fn main(bin: &str, rate: usize, seconds: usize, rounds: usize) -> anyhow::Result<()> {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .context("nginx is not installed (apt-get install nginx)")?;
    // The machine's CPUs, not this process's (it may run pinned to CPU 0).
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let two_cpus = online.trim() != "0" && !online.trim().is_empty();
    let server_cpu = two_cpus.then_some("1");
    let dir = tempfile::tempdir()?;
    let (stable, canary, proxy_port, admin_port) =
        (free_port()?, free_port()?, free_port()?, free_port()?);
    let dead = free_port()?;
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off; worker_processes 1; pid {pid}; error_log stderr error;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000; keepalive_timeout 120s;
  server {{ listen 127.0.0.1:{stable}; location / {{ return 200 \"stable\\n\"; }} }}
  server {{ listen 127.0.0.1:{canary}; location / {{ return 200 \"canary\\n\"; }} }}
}}",
            pid = dir.path().join("nginx.pid").display()
        ),
    )?;
    let _nginx = Kill(
        pinned(server_cpu, nginx)
            .args(["-p"])
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("nginx")?,
    );
    let route = |id: &str, prefix: &str, canary: u16, mirror: u8| {
        serde_json::json!({
            "deployment_id": id, "name": id, "tenant_id": null, "status": "active",
            "percent": 0, "stable_version": "v1", "canary_version": "v2",
            "route": {"path_prefix": prefix},
            "upstreams": {"stable": [format!("http://127.0.0.1:{stable}")],
                          "canary": [format!("http://127.0.0.1:{canary}")]},
            "traffic": {"affinity": null}, "revision": 1, "mirror_percent": mirror
        })
    };
    let routes = dir.path().join("routes.json");
    std::fs::write(
        &routes,
        serde_json::to_vec(&serde_json::json!({"routes": [
            route("plain", "/plain/", canary, 0),
            route("mirror", "/mirror/", canary, 100),
            route("dead", "/dead/", dead, 100),
        ]}))?,
    )?;
    let proxy = Kill(
        pinned(server_cpu, bin)
            .args(["proxy", "--listen", &format!("127.0.0.1:{proxy_port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{admin_port}")])
            .arg("--routes-file")
            .arg(&routes)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(["--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("serin proxy")?,
    );
    let base = format!("http://127.0.0.1:{proxy_port}");
    for p in ["/plain/", "/mirror/", "/dead/"] {
        until_up(&format!("{base}{p}")).await?;
    }
    println!(
        "mirror: nginx upstreams and serin proxy on {}, open-loop load at {rate} req/s, {rounds} rounds of {seconds} s per route",
        if two_cpus {
            "CPU 1 (load on CPU 0)"
        } else {
            "the one CPU"
        }
    );
    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build_http();
    let names = ["plain", "mirror", "dead"];
    let mut figures: Vec<Figures> = names.iter().map(|_| Figures::default()).collect();
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (peak, pid) = (peak.clone(), proxy.0.id());
        tokio::spawn(async move {
            loop {
                if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    && let Some(kb) = s
                        .lines()
                        .find(|l| l.starts_with("VmRSS:"))
                        .and_then(|l| l.split_whitespace().nth(1))
                        .and_then(|v| v.parse::<u64>().ok())
                {
                    peak.fetch_max(kb, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    // Warm-up: connections opened (the copies' too), nothing counted.
    for name in names {
        load(&client, &format!("{base}/{name}/"), rate, 2).await;
    }
    for r in 0..rounds {
        for k in 0..names.len() {
            let i = (k + r) % names.len();
            let (lat, errors) =
                load(&client, &format!("{base}/{}/", names[i]), rate, seconds).await;
            let mut sorted = lat.clone();
            sorted.sort_unstable();
            println!(
                "  round {} {:>6}: {:>7} requests, {errors} errors, p50 {:.3} ms, p99 {:.3} ms",
                r + 1,
                names[i],
                lat.len(),
                quantile(&sorted, 0.5) as f64 / 1000.0,
                quantile(&sorted, 0.99) as f64 / 1000.0,
            );
            figures[i].latencies_us.extend(lat);
            figures[i].errors += errors;
        }
    }
    sampler.abort();
    println!(
        "\n  {:<7} {:>9} {:>7} {:>9} {:>9} {:>10}",
        "route", "requests", "errors", "p50 ms", "p99 ms", "p99.9 ms"
    );
    let mut p99 = Vec::new();
    for (name, f) in names.iter().zip(&mut figures) {
        f.latencies_us.sort_unstable();
        let q = |p: f64| quantile(&f.latencies_us, p) as f64 / 1000.0;
        p99.push(q(0.99));
        println!(
            "  {name:<7} {:>9} {:>7} {:>9.3} {:>9.3} {:>10.3}",
            f.latencies_us.len(),
            f.errors,
            q(0.5),
            q(0.99),
            q(0.999)
        );
    }
    let text = reqwest::get(format!("http://127.0.0.1:{admin_port}/metrics"))
        .await?
        .text()
        .await?;
    let sum = |filter: &dyn Fn(&str) -> bool| -> f64 {
        text.lines()
            .filter(|l| filter(l))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    };
    let copies = |id: &str| {
        sum(&|l: &str| {
            l.starts_with("serin_proxy_requests_total{")
                && l.contains(&format!("deployment_id=\"{id}\",lane=\"mirror\""))
        })
    };
    let dropped = |id: &str| {
        sum(&|l: &str| {
            l.starts_with("serin_proxy_mirror_dropped_total{")
                && l.contains(&format!("deployment_id=\"{id}\""))
        })
    };
    let added = 100.0 * (p99[1] / p99[0] - 1.0);
    println!(
        "\n  mirroring 100% adds {added:+.1}% to the clients' p99 ({:.3} → {:.3} ms; goal ≤ +10%)",
        p99[0], p99[1]
    );
    println!(
        "  live canary: {} copies answered in the mirror lane, {} dropped (warm-up included)",
        copies("mirror"),
        dropped("mirror")
    );
    println!(
        "  dead canary: {} client errors (goal 0); {} copies refused in the mirror lane, {} dropped (warm-up included); p99 {:+.1}% against no mirroring",
        figures[2].errors,
        copies("dead"),
        dropped("dead"),
        100.0 * (p99[2] / p99[0] - 1.0)
    );
    println!(
        "  serin proxy peak RSS: {:.1} MiB",
        peak.load(Ordering::Relaxed) as f64 / 1024.0
    );
    drop(proxy);
    Ok(())
}

fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Sends GETs to `url` at `rate` a second for `seconds`, each due on its own
/// schedule; returns each latency (µs, from when it was due) and the errors.
async fn load(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<bytes::Bytes>>,
    url: &str,
    rate: usize,
    seconds: usize,
) -> (Vec<u64>, u64) {
    let uri: http::Uri = url.parse().expect("a URL");
    let total = rate * seconds;
    let every = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now();
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(total);
    for n in 0..total {
        let due = start + every * n as u32;
        tokio::time::sleep_until(due).await;
        let (client, uri, errors) = (client.clone(), uri.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let req = http::Request::get(uri)
                .body(Empty::new())
                .expect("a request");
            let ok = match tokio::time::timeout(Duration::from_secs(5), client.request(req)).await {
                Ok(Ok(r)) if r.status() == 200 => r
                    .into_body()
                    .collect()
                    .await
                    .is_ok_and(|b| b.to_bytes().as_ref() == b"stable\n"),
                _ => false,
            };
            if !ok {
                errors.fetch_add(1, Ordering::Relaxed);
            }
            due.elapsed().as_micros() as u64
        }));
    }
    let mut lat = Vec::with_capacity(total);
    for t in tasks {
        if let Ok(l) = t.await {
            lat.push(l);
        }
    }
    (lat, errors.load(Ordering::Relaxed))
}
