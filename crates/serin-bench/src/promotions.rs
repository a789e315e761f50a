//! `promotions BIN [--runs N]`: `kill -9` right after a promotion commits.
//!
//! Each run starts `serin up` on a fresh SQLite file, makes a product and a
//! draft release, and starts a short rollout of that release (two steps and a
//! 300 ms pause, promoted automatically by the controller). It polls the
//! deployment every 2 ms and sends SIGKILL the moment it reads `completed`,
//! then starts `serin up` again on the same file and asks for the product's
//! latest stable release. The promotion and the release's move are one
//! transaction, so the answer must be the promoted version every time; the
//! count of runs where it was is printed with its Clopper-Pearson bound.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use crate::KEY;

struct Up {
    child: Child,
    api: String,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(bin: &str, db: &Path) -> anyhow::Result<Up> {
    let url = format!("sqlite://{}", db.display());
    let (child, mut addrs) = crate::launch(bin, &url, &[], "error", &["serin: listening on "])?;
    Ok(Up {
        child,
        api: addrs.remove(0),
    })
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut req = http.request(method, url).bearer_auth(KEY);
    if let Some(b) = body {
        req = req.json(&b);
    }
    Ok(req.send().await?.error_for_status()?.json().await?)
}

/// One run: true when the promoted release was the latest stable after the kill.
async fn run(bin: &str, http: &reqwest::Client, n: usize) -> anyhow::Result<(bool, Duration)> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("serin.db");
    let version = format!("1.{n}.0");
    let up = start(bin, &db)?;
    let post = |path: &str, body: Value| {
        call(
            http,
            reqwest::Method::POST,
            format!("{}{path}", up.api),
            Some(body),
        )
    };
    post("/api/v1/products", json!({"name": "shop"})).await?;
    post(
        "/api/v1/releases",
        json!({"product_name": "shop", "version": version}),
    )
    .await?;
    let d = post(
        "/api/v1/canary/deployments",
        json!({"queue_name": "orders", "stable_version": "0.9.0", "canary_version": version,
               "product": "shop", "min_duration": "0s", "auto_promotion": true,
               "rollout": {"steps": [{"set_weight": 50}, {"pause": {"duration": "300ms"}}, {"set_weight": 100}]}}),
    )
    .await?;
    let id = d["id"].as_str().context("id")?.to_string();
    let t0 = Instant::now();
    let seen_after = loop {
        let d = call(
            http,
            reqwest::Method::GET,
            format!("{}/api/v1/canary/deployments/{id}", up.api),
            None,
        )
        .await?;
        if d["status"] == "completed" {
            break t0.elapsed();
        }
        anyhow::ensure!(d["status"] != "failed", "the rollout failed: {d}");
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(30),
            "the rollout never completed"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    drop(up); // SIGKILL and reap.
    let up = start(bin, &db)?;
    let latest = http
        .get(format!("{}/api/v1/products/shop/releases/latest", up.api))
        .bearer_auth(KEY)
        .send()
        .await?;
    let ok = latest.status().is_success()
        && latest.json::<Value>().await?["version"] == version.as_str();
    Ok((ok, seen_after))
}

pub async fn main(bin: &str, runs: usize) -> anyhow::Result<()> {
    println!(
        "promotions: kill -9 the moment a promotion is seen, {runs} runs; {}, load {}",
        crate::machine::uptime(),
        crate::machine::load1()
    );
    let http = reqwest::Client::new();
    let mut good = 0;
    for n in 0..runs {
        let (ok, _) = run(bin, &http, n).await?;
        good += usize::from(ok);
        if (n + 1) % 10 == 0 {
            println!(
                "  {} runs: {good} with the release as the latest stable",
                n + 1
            );
        }
    }
    let bad = runs - good;
    println!(
        "  the promoted release was the latest stable after the kill in {good} of {runs} runs; failure rate {:.1}% (95% upper bound {:.1}%)   (goal: {runs} of {runs})",
        100.0 * bad as f64 / runs as f64,
        100.0 * crate::stats::clopper_pearson_upper(bad as u64, runs as u64, 0.05)
    );
    Ok(())
}
