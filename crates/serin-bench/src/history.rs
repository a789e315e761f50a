//! `history BIN [--deployments N] [--changes N]`: what a long history costs.
//!
//! One `serin up` with its embedded proxy in front of two in-process upstreams
//! (answering `stable` and `canary`). A live deployment `web` is moved between
//! 0% and 100% `--changes` times; each change is timed from the `PUT` being
//! sent to the proxy answering from the new lane (polled every 0.2 ms), with
//! one finished deployment of another target beside it. Then the rest of
//! `--deployments` deployments of that target are made and promoted one after
//! the other (each becomes that target's route in turn, as a release train
//! would), and the same changes are timed again: both sides serve the same two
//! routes, so their proxy `/metrics` should match. Printed for both: the
//! median and p90 of the change times, the control plane's resident memory,
//! and the size of the proxy's part of `/metrics`; and their ratios.

use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use crate::{KEY, median, rss_kib};

struct Up {
    child: Child,
    api: String,
    proxy: String,
    _dir: tempfile::TempDir,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(bin: &str) -> anyhow::Result<Up> {
    let dir = tempfile::tempdir()?;
    let db = format!("sqlite://{}/serin.db", dir.path().display());
    let (child, mut addrs) = crate::launch(
        bin,
        &db,
        &["--proxy-listen", "127.0.0.1:0"],
        "warn",
        &["serin: listening on ", "serin: proxy listening on "],
    )?;
    let proxy = addrs.pop().unwrap_or_default();
    let api = addrs.pop().unwrap_or_default();
    Ok(Up {
        child,
        api,
        proxy,
        _dir: dir,
    })
}

async fn upstream(name: &'static str) -> anyhow::Result<String> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let app = axum::Router::new().fallback(move || async move { name });
    tokio::spawn(async move { axum::serve(l, app).await });
    Ok(format!("http://{addr}"))
}

struct Figures {
    change_ms: Vec<f64>,
    rss_mib: f64,
    proxy_metrics_bytes: usize,
    proxy_metrics_lines: usize,
}

async fn measure(
    http: &reqwest::Client,
    up: &Up,
    id: &str,
    changes: usize,
) -> anyhow::Result<Figures> {
    let mut change_ms = Vec::with_capacity(changes);
    for k in 0..changes {
        let (percent, want) = if k % 2 == 0 {
            (100, "canary")
        } else {
            (0, "stable")
        };
        let t0 = Instant::now();
        http.put(format!(
            "{}/api/v1/canary/deployments/{id}/percentage",
            up.api
        ))
        .bearer_auth(KEY)
        .json(&json!({ "percentage": percent }))
        .send()
        .await?
        .error_for_status()?;
        loop {
            let body = http
                .get(format!("{}/", up.proxy))
                .send()
                .await?
                .text()
                .await?;
            if body == want {
                break;
            }
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(10),
                "the proxy never answered {want}"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        change_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    // Idle 15 s (the allocator returns freed pages after 10 s), then read
    // memory and the proxy's metrics.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let text = http
        .get(format!("{}/metrics", up.api))
        .bearer_auth(KEY)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let proxy: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("serin_proxy_"))
        .collect();
    Ok(Figures {
        change_ms,
        rss_mib: rss_kib(up.child.id())? as f64 / 1024.0,
        proxy_metrics_bytes: proxy.iter().map(|l| l.len() + 1).sum(),
        proxy_metrics_lines: proxy.len(),
    })
}

/// Makes and promotes deployments `range` of the `train` target, one after
/// the other, printing progress (with the control plane's memory) every 1,000.
async fn train(
    http: &reqwest::Client,
    up: &Up,
    stable: &str,
    canary: &str,
    range: std::ops::Range<usize>,
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    for i in range {
        let h: serde_json::Value = http
            .post(format!("{}/api/v1/canary/deployments", up.api))
            .bearer_auth(KEY)
            .json(&json!({"queue_name": "train", "stable_version": format!("v{i}"),
                          "canary_version": format!("v{}", i + 1), "percentage": 10, "route": {"path_prefix": "/train"},
                          "upstreams": {"stable": [stable], "canary": [canary]}}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let hid = h["id"].as_str().context("id")?;
        http.post(format!(
            "{}/api/v1/canary/deployments/{hid}/promote",
            up.api
        ))
        .bearer_auth(KEY)
        .send()
        .await?
        .error_for_status()?;
        if (i + 1) % 1000 == 0 {
            println!(
                "  {} deployments made and promoted ({:.0} s, RSS {:.1} MiB)",
                i + 1,
                t0.elapsed().as_secs_f64(),
                rss_kib(up.child.id())? as f64 / 1024.0
            );
        }
    }
    Ok(())
}

fn p90(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    crate::pct(&v, 0.9)
}

pub async fn main(bin: &str, history: usize, changes: usize) -> anyhow::Result<()> {
    println!(
        "history: {history} finished deployments, {changes} percentage changes each side; {}, load {}",
        crate::machine::uptime(),
        crate::machine::load1()
    );
    let (stable, canary) = (upstream("stable").await?, upstream("canary").await?);
    let up = start(bin)?;
    let http = reqwest::Client::new();
    let d: serde_json::Value = http
        .post(format!("{}/api/v1/canary/deployments", up.api))
        .bearer_auth(KEY)
        .json(&json!({"queue_name": "web", "stable_version": "v1", "canary_version": "v2", "percentage": 0,
                      "upstreams": {"stable": [stable], "canary": [canary]}}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = d["id"].as_str().context("id")?.to_string();
    train(&http, &up, &stable, &canary, 0..1).await?;
    let before = measure(&http, &up, &id, changes).await?;
    train(&http, &up, &stable, &canary, 1..history.max(1)).await?;
    let after = measure(&http, &up, &id, changes).await?;

    let row = |name: &str, f: &Figures| {
        println!(
            "  {name:<28} change -> proxy median {:>6.2} ms  p90 {:>6.2} ms   RSS {:>6.1} MiB   proxy /metrics {:>7} B ({} lines)",
            median(f.change_ms.clone()),
            p90(&f.change_ms),
            f.rss_mib,
            f.proxy_metrics_bytes,
            f.proxy_metrics_lines
        )
    };
    row("1 finished deployment", &before);
    row(&format!("{history} finished deployments"), &after);
    println!(
        "  ratio (history / one): change median {:.2}x (goal <= 2x and <= 20 ms), RSS {:.2}x (goal <= 60 MB), proxy /metrics {:.2}x (goal 1 +- 0.1)",
        median(after.change_ms.clone()) / median(before.change_ms.clone()),
        after.rss_mib / before.rss_mib,
        after.proxy_metrics_bytes as f64 / before.proxy_metrics_bytes.max(1) as f64
    );
    Ok(())
}
