//! Rollouts end to end: the real binary with its embedded proxy, real upstream
//! processes (`tests/upstream.py`), real traffic through the proxy, and the
//! controller driving the plan. A good canary is promoted through every step; a
//! bad one (5xx on 10%, or 3× latency) is rolled back at its first analysis with
//! the evidence in the events; no traffic pauses as inconclusive; a group falls
//! together when one target is bad; and `kill -9` at any moment loses no step.
//! The sequential judge alone rolls back a canary with 5× stable's error rate
//! at 10% of ~100 req/s with its evidence in the events (and `serin simulate
//! --replay` reaches the same verdict from the recorded seconds), and promotes
//! an identical canary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Proc, free_port, get, post, send, spawn_with};

/// A real upstream process: `name`, failing `error_rate` of requests, after `delay_ms`.
pub(crate) fn upstream(name: &str, error_rate: f64, delay_ms: u32) -> (Proc, String) {
    upstream_spread(name, error_rate, delay_ms, 0.0)
}

/// An upstream whose delays are lognormal around `delay_ms` with log-spread `sigma`.
fn upstream_spread(
    name: &str,
    error_rate: f64,
    delay_ms: impl ToString,
    sigma: f64,
) -> (Proc, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/upstream.py");
    let mut child = Command::new("python3")
        .args([
            script,
            name,
            &error_rate.to_string(),
            &delay_ms.to_string(),
            &sigma.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs the test upstream");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("listening on ")
        .expect("port line")
        .to_string();
    (Proc(child), format!("http://127.0.0.1:{port}"))
}

/// `serin up` with its proxy, on a fresh SQLite file (or the given one).
pub(crate) struct Stack {
    _up: Proc,
    pub(crate) api: String,
    pub(crate) proxy: String,
}

fn up_at(db: &str) -> Stack {
    up_with(db, &[])
}

pub(crate) fn up_with(db: &str, env: &[(&str, &str)]) -> Stack {
    let (api_port, proxy_port) = (free_port(), free_port());
    let up = spawn_with(
        &[
            "up",
            "--listen",
            &format!("127.0.0.1:{api_port}"),
            "--database-url",
            db,
            "--proxy-listen",
            &format!("127.0.0.1:{proxy_port}"),
        ],
        "serin: proxy listening on",
        env,
    );
    Stack {
        _up: up,
        api: format!("http://127.0.0.1:{api_port}"),
        proxy: format!("http://127.0.0.1:{proxy_port}"),
    }
}

/// Sends `rps` requests a second through the proxy (to `paths` in turn) until dropped.
struct Load(Arc<AtomicBool>);

impl Drop for Load {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn load(proxy: &str, paths: &[&str], rps: u32) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let urls: Vec<String> = paths.iter().map(|p| format!("{proxy}{p}")).collect();
    let halt = stop.clone();
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let mut tick = tokio::time::interval(Duration::from_secs(1) / rps);
        let mut i = 0usize;
        while !halt.load(Ordering::Relaxed) {
            tick.tick().await;
            let (c, u) = (client.clone(), urls[i % urls.len()].clone());
            i += 1;
            tokio::spawn(async move {
                let _ = c.get(u).send().await;
            });
        }
    });
    Load(stop)
}

fn thresholds(samples: u64) -> Value {
    json!({"max_error_rate_increase": 5.0, "max_latency_increase": 50.0,
           "max_throughput_decrease": 20.0, "min_success_rate": 95.0,
           "required_sample_size": samples})
}

fn target(queue: &str, prefix: &str, stable: &str, canary: &str) -> Value {
    json!({"queue_name": queue, "stable_version": "v1", "canary_version": "v2",
           "auto_promotion": true, "min_duration": "0s",
           "rollback_thresholds": thresholds(50),
           "upstreams": {"stable": [stable], "canary": [canary]},
           "route": {"path_prefix": prefix},
           "traffic": {"affinity": null}})
}

/// Polls the deployment until `done` holds (or panics after `within`).
async fn until(api: &str, id: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (_, d) = get(&format!("{api}/api/v1/canary/deployments/{id}")).await;
        if done(&d) {
            return d;
        }
        assert!(Instant::now() < deadline, "not reached in {within:?}: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn events(api: &str, id: &str) -> Vec<Value> {
    let (_, e) = get(&format!(
        "{api}/api/v1/canary/deployments/{id}/events?page_size=100"
    ))
    .await;
    let mut list = e["events"].as_array().cloned().unwrap_or_default();
    list.reverse();
    list
}

fn status(d: &Value) -> &str {
    d["status"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_canary_is_promoted_through_every_step_and_becomes_stable() {
    let (_s, stable) = upstream("stable", 0.0, 20);
    let (_c, canary) = upstream("canary", 0.0, 20);
    let dir = tempfile::tempdir().unwrap();
    let s = up_at(&format!("sqlite://{}/serin.db", dir.path().display()));
    let (st, _) = post(
        &format!("{}/api/v1/products", s.api),
        json!({"name": "shop"}),
    )
    .await;
    assert_eq!(st, 201);
    for v in ["v1", "v2"] {
        let (st, r) = post(
            &format!("{}/api/v1/releases", s.api),
            json!({"product_name": "shop", "version": v}),
        )
        .await;
        assert_eq!(st, 201, "{r}");
        if v == "v1" {
            for status in ["approved", "released"] {
                let (st, _) = send(
                    reqwest::Method::PATCH,
                    &format!("{}/api/v1/releases/{}", s.api, r["id"]),
                    Some(json!({"status": status})),
                )
                .await;
                assert_eq!(st, 200);
            }
        }
    }
    let _traffic = load(&s.proxy, &["/"], 100);
    let mut body = target("shop", "/", &stable, &canary);
    // The profile's sample size (20) and 6 s windows: at 100 req/s even a machine
    // busy with other tests gets the canary enough requests in each window.
    body["rollback_thresholds"] = thresholds(20);
    // Identical upstreams with a fixed 20 ms delay: a p95 a few ms apart is
    // scheduling noise on a busy 2-core machine (a CI run once saw +54% in a 6 s
    // window and rolled back), so this test allows 150% — it is about moving
    // through the steps; the 3x-latency test keeps the 50% limit.
    body["rollback_thresholds"]["max_latency_increase"] = json!(150.0);
    body["product"] = json!("shop");
    body["rollout"] = json!({"steps": [
        {"set_weight": 20}, {"analysis": {"window": "6s"}},
        {"set_weight": 50}, {"analysis": {"window": "6s"}},
        {"set_weight": 100}]});
    let (st, d) = post(&format!("{}/api/v1/canary/deployments", s.api), body).await;
    assert_eq!(st, 201, "{d}");
    let id = d["id"].as_str().unwrap();
    let d = until(&s.api, id, Duration::from_secs(60), |d| {
        status(d) != "active"
    })
    .await;
    assert_eq!(status(&d), "completed", "{d}");
    let ev = events(&s.api, id).await;
    let kinds: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
    let weights: Vec<u64> = ev
        .iter()
        .filter(|e| e["type"] == "percentage_updated")
        .map(|e| e["data"]["new_percentage"].as_u64().unwrap())
        .collect();
    assert_eq!(weights, [20, 50, 100], "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| **k == "analysis_completed").count(),
        2,
        "{kinds:?}"
    );
    assert!(
        kinds.ends_with(&["auto_promotion_triggered", "deployment_promoted"]),
        "{kinds:?}"
    );
    let (_, latest) = get(&format!("{}/release/shop/latest", s.api)).await;
    assert_eq!(latest["version"], "v2", "{latest}");
}

/// A bad canary is rolled back at its first analysis; returns the seconds from
/// the canary's first traffic to its weight at 0%.
async fn bad_canary_rolls_back(error_rate: f64, delay_ms: u32, why: &str) -> f64 {
    let (_s, stable) = upstream("stable", 0.0, 20);
    let (_c, canary) = upstream("canary", error_rate, delay_ms);
    let dir = tempfile::tempdir().unwrap();
    let s = up_at(&format!("sqlite://{}/serin.db", dir.path().display()));
    let _traffic = load(&s.proxy, &["/"], 150);
    let mut body = target("shop", "/", &stable, &canary);
    // The threshold judge alone: the sequential judge has its own tests below.
    // It decides at the window's end on what the window proves (10% errors
    // against none prove "more than 5 points" after about 2,000 requests).
    body["rollout"] = json!({"steps": [
        {"set_weight": 50}, {"analysis": {"window": "25s"}}, {"set_weight": 100}],
        "judges": {"sequential": false}});
    let (st, d) = post(&format!("{}/api/v1/canary/deployments", s.api), body).await;
    assert_eq!(st, 201, "{d}");
    let id = d["id"].as_str().unwrap();
    let d = until(&s.api, id, Duration::from_secs(60), |d| {
        status(d) != "active"
    })
    .await;
    assert_eq!(
        (status(&d), d["current_percent"].as_u64()),
        ("failed", Some(0)),
        "{d}"
    );
    let ev = events(&s.api, id).await;
    let weighted = ev
        .iter()
        .find(|e| e["type"] == "percentage_updated")
        .unwrap();
    let back = ev
        .iter()
        .find(|e| e["type"] == "deployment_rolled_back")
        .unwrap();
    assert_eq!(
        back["data"]["step"], 1,
        "rolled back at the first analysis: {back}"
    );
    assert_eq!(back["data"]["judgement"]["outcome"], "fail", "{back}");
    let reason = d["status_reason"].as_str().unwrap();
    assert!(reason.contains(why), "{reason}");
    let t =
        |e: &Value| chrono::DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap()).unwrap();
    (t(back) - t(weighted)).num_milliseconds() as f64 / 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_failing_10_percent_is_rolled_back_at_its_first_analysis() {
    let secs = bad_canary_rolls_back(0.10, 20, "points above stable's (threshold: 5.0)").await;
    println!("time to rollback (10% errors, 50% weight, 150 req/s): {secs:.1}s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_3x_slower_is_rolled_back_at_its_first_analysis() {
    let secs = bad_canary_rolls_back(0.0, 60, "canary P95 at least").await;
    println!("time to rollback (3x latency, 50% weight, 150 req/s): {secs:.1}s");
}

/// A mirror step: the canary answers copies of stable's requests and takes
/// none of its own. Failing half of them, it is rolled back at its first
/// analysis, judged on the copies, without having served one client; the
/// clients got stable's answers all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_failing_mirrored_requests_is_rolled_back_before_it_serves_anyone() {
    let (_s, stable) = upstream("stable", 0.0, 20);
    let (_c, canary) = upstream("canary", 0.5, 20);
    let dir = tempfile::tempdir().unwrap();
    let s = up_at(&format!("sqlite://{}/serin.db", dir.path().display()));
    let mut body = target("shop", "/", &stable, &canary);
    body["rollout"] = json!({"steps": [
        {"mirror": {"percent": 100}}, {"analysis": {"window": "20s"}}, {"set_weight": 100}],
        "judges": {"sequential": false}});
    let (st, d) = post(&format!("{}/api/v1/canary/deployments", s.api), body).await;
    assert_eq!(st, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    // The route is the deployment's: counted clients start once it serves.
    let first = Instant::now();
    while reqwest::get(format!("{}/", s.proxy))
        .await
        .ok()
        .filter(|r| r.status() == 200)
        .is_none()
    {
        assert!(
            first.elapsed() < Duration::from_secs(10),
            "the route never served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Clients that count what they get (and keep the first failure).
    let said: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let (answered, failed) = (
        Arc::new(std::sync::atomic::AtomicU64::new(0)),
        Arc::new(std::sync::atomic::AtomicU64::new(0)),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (url, answered, failed, stop, said) = (
            format!("{}/", s.proxy),
            answered.clone(),
            failed.clone(),
            stop.clone(),
            said.clone(),
        );
        clients.push(tokio::spawn(async move {
            let c = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let got = match c.get(&url).timeout(Duration::from_secs(5)).send().await {
                    Ok(r) => {
                        let status = r.status();
                        match r.text().await {
                            Ok(t) if status == 200 && t == "stable\n" => None,
                            Ok(t) => Some(format!("{status}: {t}")),
                            Err(e) => Some(format!("{status}: {e}")),
                        }
                    }
                    Err(e) => Some(format!("{e:?}")),
                };
                match got {
                    None => answered.fetch_add(1, Ordering::Relaxed),
                    Some(why) => {
                        said.lock().unwrap().get_or_insert(why);
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    let d = until(&s.api, &id, Duration::from_secs(60), |d| {
        status(d) != "active"
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert_eq!(
        (status(&d), d["current_percent"].as_u64()),
        ("failed", Some(0)),
        "{d}"
    );
    let ev = events(&s.api, &id).await;
    assert!(
        !ev.iter().any(|e| e["type"] == "percentage_updated"),
        "the canary never took a share: {ev:?}"
    );
    let back = ev
        .iter()
        .find(|e| e["type"] == "deployment_rolled_back")
        .unwrap();
    assert_eq!(back["data"]["step"], 1, "{back}");
    assert_eq!(back["data"]["judgement"]["outcome"], "fail", "{back}");
    let (answered, failed) = (
        answered.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    assert!(answered > 100, "{answered}");
    assert_eq!(
        failed,
        0,
        "every client got stable's answer; the first failure: {:?}",
        said.lock().unwrap()
    );
    // The proxy counted the copies in their own lane, and no real request
    // of the canary's.
    let text = reqwest::get(format!("{}/metrics", s.api))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |lane: &str| -> f64 {
        text.lines()
            .filter(|l| {
                l.starts_with("serin_proxy_requests_total{")
                    && l.contains(&format!("deployment_id=\"{id}\",lane=\"{lane}\""))
            })
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(count("canary"), 0.0, "{text}");
    assert!(count("mirror") > 100.0, "{text}");
    println!(
        "mirrored: {} copies judged, {answered} client requests answered by stable, 0 failed",
        count("mirror")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_traffic_the_rollout_pauses_as_inconclusive() {
    let (_s, stable) = upstream("stable", 0.0, 1);
    let (_c, canary) = upstream("canary", 0.0, 1);
    let dir = tempfile::tempdir().unwrap();
    let s = up_at(&format!("sqlite://{}/serin.db", dir.path().display()));
    let mut body = target("shop", "/", &stable, &canary);
    body["rollout"] = json!({"steps": [
        {"set_weight": 20}, {"analysis": {"window": "3s"}}, {"set_weight": 100}]});
    let (_, d) = post(&format!("{}/api/v1/canary/deployments", s.api), body).await;
    let id = d["id"].as_str().unwrap();
    let d = until(&s.api, id, Duration::from_secs(30), |d| {
        status(d) != "active"
    })
    .await;
    assert_eq!(
        (status(&d), d["current_percent"].as_u64()),
        ("paused", Some(20)),
        "{d}"
    );
    let reason = d["status_reason"].as_str().unwrap();
    assert!(
        reason.contains("inconclusive") && reason.contains("not enough data"),
        "{reason}"
    );
    // It stays so: neither promoted nor rolled back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, d) = get(&format!("{}/api/v1/canary/deployments/{id}", s.api)).await;
    assert_eq!(status(&d), "paused");
    let (_, r) = get(&format!("{}/api/v1/canary/deployments/{id}/rollout", s.api)).await;
    assert!(r["waiting_for"].as_str().unwrap().contains("resume"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_with_one_bad_target_rolls_back_every_target() {
    let (_s1, stable_a) = upstream("stable-a", 0.0, 20);
    let (_c1, canary_a) = upstream("canary-a", 0.0, 20);
    let (_s2, stable_b) = upstream("stable-b", 0.0, 20);
    let (_c2, canary_b) = upstream("canary-b", 0.25, 20);
    let dir = tempfile::tempdir().unwrap();
    let s = up_at(&format!("sqlite://{}/serin.db", dir.path().display()));
    let _traffic = load(&s.proxy, &["/a", "/b"], 200);
    let mut a = target("caiso", "/a", &stable_a, &canary_a);
    let mut b = target("miso", "/b", &stable_b, &canary_b);
    for t in [&mut a, &mut b] {
        t.as_object_mut().unwrap().remove("auto_promotion");
    }
    let (st, g) = post(
        &format!("{}/api/v1/rollouts", s.api),
        json!({"targets": [a, b], "rollout": {"steps": [
            {"set_weight": 20}, {"analysis": {"window": "20s"}}, {"set_weight": 100}]}}),
    )
    .await;
    assert_eq!(st, 201, "{g}");
    let gid = g["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let g = loop {
        let (_, g) = get(&format!("{}/api/v1/rollouts/{gid}", s.api)).await;
        let all_failed = g["deployments"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| status(d) == "failed");
        if all_failed {
            break g;
        }
        assert!(Instant::now() < deadline, "{g}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(g["status"], "rolled_back");
    let reasons: Vec<&str> = g["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status_reason"].as_str().unwrap())
        .collect();
    // The threshold judge ("Error rate …") or, often sooner, the sequential
    // judge ("canary error rate … Bayes factor …") names the errors.
    assert!(
        reasons
            .iter()
            .any(|r| r.to_lowercase().contains("error rate")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("of group_")),
        "{reasons:?}"
    );
    let kinds: Vec<&str> = g["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"rollout_group_created"), "{kinds:?}");
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "deployment_rolled_back")
            .count(),
        2,
        "{kinds:?}"
    );
}

/// `kill -9` at random moments of a rollout: after each restart it continues from
/// its recorded step; in the end every weight was set once, in order, and every
/// step started once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_any_moment_loses_and_repeats_nothing() {
    let (_s, stable) = upstream("stable", 0.0, 1);
    let (_c, canary) = upstream("canary", 0.0, 1);
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/serin.db", dir.path().display());
    let mut steps = Vec::new();
    for w in [5, 10, 20, 30, 40, 50, 60, 70, 80, 90] {
        steps.push(json!({"set_weight": w}));
        steps.push(json!({"pause": {"duration": "700ms"}}));
    }
    steps.push(json!({"set_weight": 100}));
    let mut s = up_at(&db);
    // The canary is a release Serin knows: its promotion, whenever the kills
    // fall, must leave that release the product's latest stable.
    let (st, p) = post(
        &format!("{}/api/v1/products", s.api),
        json!({"name": "shop"}),
    )
    .await;
    assert_eq!(st, 201, "{p}");
    let (st, r) = post(
        &format!("{}/api/v1/releases", s.api),
        json!({"product_name": "shop", "version": "v2"}),
    )
    .await;
    assert_eq!(st, 201, "{r}");
    let mut body = target("shop", "/", &stable, &canary);
    body["rollout"] = json!({"steps": steps});
    body["product"] = json!("shop");
    let (st, d) = post(&format!("{}/api/v1/canary/deployments", s.api), body).await;
    assert_eq!(st, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    let mut kills = 0;
    let mut rng = 0x2545_f491_u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        tokio::time::sleep(Duration::from_millis(150 + rng % 900)).await;
        let (_, d) = get(&format!("{}/api/v1/canary/deployments/{id}", s.api)).await;
        if status(&d) == "completed" {
            break;
        }
        assert!(Instant::now() < deadline, "{d}");
        drop(s); // SIGKILL: Proc's drop kills with SIGKILL and reaps.
        kills += 1;
        s = up_at(&db);
    }
    assert!(kills >= 3, "only {kills} kills");
    let ev = events(&s.api, &id).await;
    let weights: Vec<u64> = ev
        .iter()
        .filter(|e| e["type"] == "percentage_updated")
        .map(|e| e["data"]["new_percentage"].as_u64().unwrap())
        .collect();
    assert_eq!(
        weights,
        [5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100],
        "after {kills} kills"
    );
    let started: Vec<u64> = ev
        .iter()
        .filter(|e| e["type"] == "rollout_step_started")
        .map(|e| e["data"]["step"].as_u64().unwrap())
        .collect();
    assert_eq!(
        started,
        (1..=21).collect::<Vec<u64>>(),
        "after {kills} kills"
    );
    assert_eq!(
        ev.iter()
            .filter(|e| e["type"] == "deployment_promoted")
            .count(),
        1
    );
    // The release moved in the promotion's own transaction: a kill right
    // after it can't leave the product's latest stable behind.
    drop(s);
    let s = up_at(&db);
    let (st, latest) = get(&format!("{}/api/v1/products/shop/releases/latest", s.api)).await;
    assert_eq!(
        (st, latest["version"].as_str()),
        (200, Some("v2")),
        "{latest}"
    );
    println!("rollout completed across {kills} kill -9 restarts");
}

/// A canary whose health check fails is rolled back during a pause, without any
/// traffic: health feeds the judges all through the rollout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_health_check_rolls_back() {
    let (_s, stable) = upstream("stable", 0.0, 1);
    let (_c, canary) = upstream("canary", 1.0, 1);
    let dir = tempfile::tempdir().unwrap();
    let s = up_at(&format!("sqlite://{}/serin.db", dir.path().display()));
    let mut body = target("shop", "/", &stable, &canary);
    body["rollout"] = json!({
        "steps": [{"set_weight": 10}, {"pause": {"duration": "1m"}}, {"set_weight": 100}],
        "health_checks": [
            {"name": "canary-api", "check_type": "http", "endpoint": format!("{canary}/health"),
             "interval_seconds": 1, "timeout_seconds": 2, "retry_count": 1},
            {"name": "stable-api", "check_type": "http", "lane": "stable", "endpoint": format!("{stable}/health"),
             "interval_seconds": 1, "timeout_seconds": 2}]});
    let (st, d) = post(&format!("{}/api/v1/canary/deployments", s.api), body).await;
    assert_eq!(st, 201, "{d}");
    let id = d["id"].as_str().unwrap();
    let d = until(&s.api, id, Duration::from_secs(30), |d| {
        status(d) != "active"
    })
    .await;
    assert_eq!(status(&d), "failed", "{d}");
    let reason = d["status_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("health:canary-api: canary check fails after 2 attempt(s): HTTP 503"),
        "{reason}"
    );
    // The failure is an event of its own, critical on the canary's lane (and
    // the notifier's to send), once per failure, not once per probe.
    let ev = events(&s.api, id).await;
    let failed: Vec<&Value> = ev
        .iter()
        .filter(|e| e["type"] == "health_check_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{ev:?}");
    assert_eq!(
        (
            failed[0]["data"]["check"].as_str(),
            failed[0]["data"]["lane"].as_str(),
            failed[0]["data"]["severity"].as_str()
        ),
        (Some("canary-api"), Some("canary"), Some("critical")),
        "{}",
        failed[0]
    );
}

/// A webhook receiver: `/confirm` says 503 to its first `refusals` calls, then
/// 200; every call's body is kept.
pub(crate) async fn receiver(
    refusals: usize,
) -> (String, Arc<std::sync::Mutex<Vec<(String, Value)>>>) {
    let seen: Arc<std::sync::Mutex<Vec<(String, Value)>>> = Arc::default();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: axum::Json<Value>| {
        let (log, calls) = (log.clone(), calls.clone());
        async move {
            log.lock().unwrap().push((uri.path().to_string(), body.0));
            if uri.path() == "/confirm" && calls.fetch_add(1, Ordering::SeqCst) < refusals {
                (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "tests still running",
                )
            } else {
                (axum::http::StatusCode::OK, "go")
            }
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    (format!("http://{addr}"), seen)
}

/// Flagger's hook kinds: a pre-rollout command (a migration), confirmations that
/// hold a step until they say yes, and the post-rollout and on-rollback hooks,
/// with their outputs in the events. Commands are refused unless the server allows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_at_their_turning_points_with_outputs_in_the_events() {
    let (_s, stable) = upstream("stable", 0.0, 1);
    let (_c, canary) = upstream("canary", 0.0, 1);
    let (hook_url, seen) = receiver(1).await;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("migrated");
    let db = format!("sqlite://{}/serin.db", dir.path().display());
    {
        let plain = up_at(&format!("sqlite://{}/plain.db", dir.path().display()));
        let mut body = target("shop", "/", &stable, &canary);
        body["rollout"] = json!({"steps": [{"set_weight": 10}],
            "hooks": [{"name": "migrate", "kind": "pre_rollout", "command": ["true"]}]});
        let (st, e) = post(&format!("{}/api/v1/canary/deployments", plain.api), body).await;
        assert_eq!(
            (st, e["details"]["field"].as_str()),
            (400, Some("rollout.hooks[0].command")),
            "{e}"
        );
    }
    let s = up_with(&db, &[("SERIN_ALLOW_HOOK_COMMANDS", "true")]);
    let mut body = target("shop", "/", &stable, &canary);
    body["rollout"] = json!({
        "steps": [{"set_weight": 10}, {"set_weight": 50}],
        "hooks": [
            {"name": "migrate", "kind": "pre_rollout",
             "command": ["sh", "-c", format!("echo migrated to $SERIN_CANARY_VERSION | tee {}", marker.display())]},
            {"name": "ci", "kind": "confirm_step", "webhook": format!("{hook_url}/confirm"), "retry_count": 0},
            {"name": "ship", "kind": "confirm_promotion", "webhook": format!("{hook_url}/ship")},
            {"name": "report", "kind": "post_rollout", "webhook": format!("{hook_url}/report")}]});
    let (st, d) = post(&format!("{}/api/v1/canary/deployments", s.api), body).await;
    assert_eq!(st, 201, "{d}");
    let id = d["id"].as_str().unwrap();
    until(&s.api, id, Duration::from_secs(60), |d| {
        status(d) == "completed"
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "migrated to v2\n"
    );
    // The post-rollout hook runs after the end; wait for its event.
    let deadline = Instant::now() + Duration::from_secs(20);
    let ev = loop {
        let ev = events(&s.api, id).await;
        if ev
            .iter()
            .any(|e| e["data"]["hook"]["kind"] == "post_rollout")
            || Instant::now() > deadline
        {
            break ev;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let hooks: Vec<(String, bool)> = ev
        .iter()
        .filter(|e| e["type"] == "hook_completed")
        .map(|e| {
            (
                e["data"]["hook"]["name"].as_str().unwrap().to_string(),
                e["data"]["hook"]["ok"] == true,
            )
        })
        .collect();
    let names: Vec<&str> = hooks.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["migrate", "ci", "ci", "ship", "report"], "{ev:#?}");
    let migrate = ev
        .iter()
        .find(|e| e["data"]["hook"]["name"] == "migrate")
        .unwrap();
    assert_eq!(migrate["data"]["hook"]["output"], "exit 0: migrated to v2");
    // The first confirmation said no (503) and held the step, recorded once as waiting;
    // asked again five seconds later, it said yes.
    let waiting: Vec<&Value> = ev.iter().filter(|e| e["type"] == "gate_waiting").collect();
    assert_eq!(waiting.len(), 1, "{waiting:#?}");
    assert!(
        waiting[0]["message"]
            .as_str()
            .unwrap()
            .contains("HTTP 503: tests still running")
    );
    let calls = seen.lock().unwrap().clone();
    let report = calls.iter().find(|(p, _)| p == "/report").unwrap();
    assert_eq!(
        (report.1["kind"].as_str(), report.1["status"].as_str()),
        (Some("post_rollout"), Some("completed"))
    );

    // A failing migration rolls back before any traffic moves, then on-rollback runs.
    let mut body = target("shop", "/", &stable, &canary);
    body["rollout"] = json!({
        "steps": [{"set_weight": 10}],
        "hooks": [
            {"name": "migrate", "kind": "pre_rollout", "command": ["sh", "-c", "echo relation exists >&2; exit 3"], "retry_count": 0},
            {"name": "page", "kind": "on_rollback", "webhook": format!("{hook_url}/page")}]});
    let (st, d) = post(&format!("{}/api/v1/canary/deployments", s.api), body).await;
    assert_eq!(st, 201, "{d}");
    let id = d["id"].as_str().unwrap();
    let d = until(&s.api, id, Duration::from_secs(30), |d| {
        status(d) == "failed"
    })
    .await;
    assert_eq!(
        d["status_reason"],
        "pre-rollout hook migrate failed: exit 3: relation exists"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.lock().unwrap().iter().any(|(p, _)| p == "/page") {
        assert!(Instant::now() < deadline, "on-rollback hook not called");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ev = events(&s.api, id).await;
    assert!(
        !ev.iter().any(|e| e["type"] == "percentage_updated"),
        "no traffic moved"
    );
}

/// What a notification receiver got: path, headers, raw body.
type Received = Arc<std::sync::Mutex<Vec<(String, axum::http::HeaderMap, Vec<u8>)>>>;

/// Notifications: a signed JSON webhook (its first call answered 500, so it is
/// retried) and a Slack-compatible one, each delivery recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_are_signed_retried_and_recorded() {
    use hmac::{Hmac, Mac};
    let got: Received = Arc::default();
    let failed_once = Arc::new(AtomicBool::new(false));
    let (log, once) = (got.clone(), failed_once.clone());
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let (log, once) = (log.clone(), once.clone());
            async move {
                if uri.path() == "/json" && !once.swap(true, Ordering::SeqCst) {
                    return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                }
                log.lock()
                    .unwrap()
                    .push((uri.path().to_string(), headers, body.to_vec()));
                axum::http::StatusCode::OK
            }
        },
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hooks = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    let (_s, stable) = upstream("stable", 0.0, 1);
    let (_c, canary) = upstream("canary", 0.0, 1);
    let dir = tempfile::tempdir().unwrap();
    let secret = "whsec_test_0123456789";
    let s = up_with(
        &format!("sqlite://{}/serin.db", dir.path().display()),
        &[("SERIN_WEBHOOK_SECRET", secret)],
    );
    let mut body = target("shop", "/", &stable, &canary);
    body["rollout"] = json!({
        "steps": [{"set_weight": 10}],
        "notifications": [
            {"url": format!("{hooks}/json"), "events": ["deployment_created", "percentage_updated", "deployment_promoted"]},
            {"url": format!("{hooks}/slack"), "format": "slack"}]});
    let (st, d) = post(&format!("{}/api/v1/canary/deployments", s.api), body).await;
    assert_eq!(st, 201, "{d}");
    let id = d["id"].as_str().unwrap();
    until(&s.api, id, Duration::from_secs(30), |d| {
        status(d) == "completed"
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, l) = get(&format!(
            "{}/api/v1/canary/deployments/{id}/deliveries",
            s.api
        ))
        .await;
        let all = l["deliveries"].as_array().unwrap();
        if all.len() == 5 && all.iter().all(|d| d["status"] == "delivered") {
            // The JSON target's first delivery failed once and went through on a retry.
            let retried: Vec<&Value> = all.iter().filter(|d| d["attempts"] == 2).collect();
            assert_eq!(retried.len(), 1, "{l}");
            assert_eq!(retried[0]["url"], format!("{hooks}/json"));
            break;
        }
        assert!(Instant::now() < deadline, "{l}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = got.lock().unwrap().clone();
    let json_calls: Vec<&(String, axum::http::HeaderMap, Vec<u8>)> =
        got.iter().filter(|(p, _, _)| p == "/json").collect();
    assert_eq!(json_calls.len(), 3);
    for (_, h, raw) in &json_calls {
        let ts = h["x-serin-timestamp"].to_str().unwrap();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{ts}.").as_bytes());
        mac.update(raw);
        let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(h["x-serin-signature"].to_str().unwrap(), want);
        let v: Value = serde_json::from_slice(raw).unwrap();
        assert_eq!(
            h["x-serin-delivery"].to_str().unwrap(),
            v["id"].as_str().unwrap()
        );
        assert_eq!(v["deployment"]["id"], id);
    }
    let kinds: Vec<String> = json_calls
        .iter()
        .map(|(_, _, raw)| {
            serde_json::from_slice::<Value>(raw).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        kinds.contains(&"deployment_promoted".to_string()),
        "{kinds:?}"
    );
    let slack: Vec<Value> = got
        .iter()
        .filter(|(p, _, _)| p == "/slack")
        .map(|(_, h, raw)| {
            assert!(h.get("x-serin-signature").is_none());
            serde_json::from_slice(raw).unwrap()
        })
        .collect();
    assert_eq!(slack.len(), 2, "created and promoted: {slack:?}");
    assert!(
        slack[1]["text"]
            .as_str()
            .unwrap()
            .contains("*shop* v1 → v2"),
        "{slack:?}"
    );
}

/// Runs `serin simulate` with `args`; returns its JSON report.
fn simulate(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_serin"))
        .arg("simulate")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A deployment at 10% of ~100 req/s judged by the sequential judge alone, over
/// an analysis `window`.
async fn sequential_rollout(
    canary_error_rate: f64,
    window: &str,
) -> (Stack, String, (Proc, Proc, tempfile::TempDir), Load) {
    let (s1, stable) = upstream_spread("stable", 0.01, 10, 0.5);
    let (c1, canary) = upstream_spread("canary", canary_error_rate, 10, 0.5);
    let dir = tempfile::tempdir().unwrap();
    let s = up_at(&format!("sqlite://{}/serin.db", dir.path().display()));
    let traffic = load(&s.proxy, &["/"], 100);
    let mut body = target("shop", "/", &stable, &canary);
    body["rollout"] = json!({"steps": [
        {"set_weight": 10}, {"analysis": {"window": window}}, {"set_weight": 100}],
        "judges": {"threshold": false}});
    let (st, d) = post(&format!("{}/api/v1/canary/deployments", s.api), body).await;
    assert_eq!(st, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    (s, id, (s1, c1, dir), traffic)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sequential_judge_rolls_back_5x_errors_with_its_evidence_and_a_replay_agrees() {
    // A long window, so that only the judge ends the step (in the simulator the
    // slowest of 2,000 such canaries took 95 s; the median 19 s).
    let (s, id, _upstreams, traffic) = sequential_rollout(0.05, "150s").await;
    let d = until(&s.api, &id, Duration::from_secs(170), |d| {
        status(d) != "active"
    })
    .await;
    drop(traffic);
    assert_eq!(status(&d), "failed", "{d}");
    let ev = events(&s.api, &id).await;
    let t =
        |e: &Value| chrono::DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap()).unwrap();
    let weighted = ev
        .iter()
        .find(|e| e["type"] == "percentage_updated")
        .unwrap();
    let back = ev
        .iter()
        .find(|e| e["type"] == "deployment_rolled_back")
        .unwrap();
    let secs = (t(back) - t(weighted)).num_milliseconds() as f64 / 1000.0;
    println!("time to rollback (5x errors, 10% of 100 req/s, sequential judge): {secs:.1}s");
    let verdict = back["data"]["judgement"]["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["judge"] == "sequential")
        .cloned()
        .unwrap();
    assert_eq!(verdict["outcome"], "fail", "{verdict}");
    let summary = verdict["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("canary error rate ") && summary.contains("Bayes factor"),
        "{summary}"
    );
    let errors = &verdict["evidence"]["errors"];
    assert!(
        errors["bayes_factor"].as_f64().unwrap()
            >= verdict["evidence"]["threshold"].as_f64().unwrap()
    );
    assert!(errors["errors"][1].as_u64().unwrap() > 0, "{verdict}");
    assert!(
        d["status_reason"]
            .as_str()
            .unwrap()
            .contains("Bayes factor"),
        "{d}"
    );

    // Replay the recorded seconds: the simulator's judge and controller reach
    // the same verdict from the same traffic. The recording ends where the live
    // judge crossed its bar (after that the canary has no traffic), and the live
    // judge read the seconds in a few larger parts than the replay's one-second
    // steps, so its statistic differs a little at the crossing: the replay runs at
    // α 0.05 (a bar of 40 where the live one was 200) to land inside the recording.
    let (st, seconds) = get(&format!("{}/api/v1/canary/deployments/{id}/seconds", s.api)).await;
    assert_eq!(st, 200, "{seconds}");
    assert!(seconds.as_array().unwrap().len() >= 10, "{seconds}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("seconds.json");
    std::fs::write(&file, seconds.to_string()).unwrap();
    let r = simulate(&[
        "--replay",
        file.to_str().unwrap(),
        "--steps",
        "10,100",
        "--horizon",
        "600",
        "--alpha",
        "0.05",
    ]);
    assert_eq!(r["result"]["outcome"], "rolled_back", "{r}");
    assert_eq!(r["rollbacks"], 1, "{r}");
    // A bad range is refused in the error body and changes nothing.
    let (st, e) = get(&format!(
        "{}/api/v1/canary/deployments/{id}/seconds?since=2030-01-01T00:00:00Z&until=2029-01-01T00:00:00Z",
        s.api
    ))
    .await;
    assert_eq!(
        (st, e["details"]["field"].as_str()),
        (400, Some("until")),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sequential_judge_promotes_an_identical_canary() {
    let (s, id, _upstreams, traffic) = sequential_rollout(0.01, "45s").await;
    let d = until(&s.api, &id, Duration::from_secs(120), |d| {
        status(d) != "active"
    })
    .await;
    drop(traffic);
    assert_eq!(status(&d), "completed", "{d}");
    let ev = events(&s.api, &id).await;
    assert!(
        !ev.iter().any(|e| e["type"] == "deployment_rolled_back"),
        "{ev:?}"
    );
    let done = ev
        .iter()
        .find(|e| e["type"] == "analysis_completed")
        .unwrap();
    let verdict = done["data"]["judgement"]["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["judge"] == "sequential")
        .cloned()
        .unwrap();
    assert_eq!(verdict["outcome"], "pass", "{verdict}");
    assert!(
        verdict["evidence"]["errors"]["requests"][1]
            .as_u64()
            .unwrap()
            >= 200,
        "{verdict}"
    );
}

/// Identical canaries (separate processes, lognormal latency, 1% errors), one
/// 3% slower, and one failing 10% of its requests, side by side on one server
/// with the default judges and margins: the equal and the slightly slower ones
/// are promoted, the failing one is rolled back with its margin named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_canaries_are_promoted_and_a_failing_one_is_rolled_back_by_the_default_judges() {
    let dir = tempfile::tempdir().unwrap();
    let s = up_at(&format!("sqlite://{}/serin.db", dir.path().display()));
    let lanes = [
        ("/equal-a", 0.01, "8"),
        ("/equal-b", 0.01, "8"),
        ("/equal-c", 0.01, "8"),
        ("/slower", 0.01, "8.24"),
        ("/failing", 0.10, "8"),
    ];
    // The failing canary is a release Serin knows: after its automatic rollback
    // it can't be released by hand without an admin's override.
    let (st, _) = post(
        &format!("{}/api/v1/products", s.api),
        json!({"name": "payments"}),
    )
    .await;
    assert_eq!(st, 201);
    let (st, release) = post(
        &format!("{}/api/v1/releases", s.api),
        json!({"product_name": "payments", "version": "v2"}),
    )
    .await;
    assert_eq!(st, 201, "{release}");
    let mut procs = Vec::new();
    let mut ids = Vec::new();
    for (prefix, canary_errors, canary_ms) in lanes {
        let (ps, stable) = upstream_spread("stable", 0.01, "8", 0.5);
        let (pc, canary) = upstream_spread("canary", canary_errors, canary_ms, 0.5);
        procs.push((ps, pc));
        let mut body = target(prefix.trim_start_matches('/'), prefix, &stable, &canary);
        body.as_object_mut().unwrap().remove("rollback_thresholds");
        if prefix == "/failing" {
            body["product"] = json!("payments");
        }
        body["rollout"] = json!({"steps": [
            {"set_weight": 10}, {"analysis": {"window": "20s"}},
            {"set_weight": 50}, {"analysis": {"window": "20s"}},
            {"set_weight": 100}]});
        let (st, d) = post(&format!("{}/api/v1/canary/deployments", s.api), body).await;
        assert_eq!(st, 201, "{d}");
        ids.push(d["id"].as_str().unwrap().to_string());
    }
    let paths: Vec<&str> = lanes.iter().map(|l| l.0).collect();
    let traffic = load(&s.proxy, &paths, 300);
    let mut ended = Vec::new();
    for id in &ids {
        ended.push(
            until(&s.api, id, Duration::from_secs(150), |d| {
                status(d) != "active"
            })
            .await,
        );
    }
    drop(traffic);
    for (d, (prefix, ..)) in ended.iter().zip(lanes) {
        let want = if prefix == "/failing" {
            "failed"
        } else {
            "completed"
        };
        assert_eq!(status(d), want, "{prefix}: {}", d["status_reason"]);
    }
    let reason = ended[4]["status_reason"].as_str().unwrap();
    assert!(
        reason.contains("margin ×1.25 and a 0.1% floor"),
        "the failing canary's verdict names its margin: {reason}"
    );
    // The end is the end: no step runs, the step it ended at is `stopped`, and
    // the figures are those of the judgement that decided it.
    let (st, r) = get(&format!(
        "{}/api/v1/canary/deployments/{}/rollout",
        s.api, ids[4]
    ))
    .await;
    assert_eq!(st, 200, "{r}");
    let states: Vec<&str> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert!(!states.contains(&"running"), "{states:?}");
    assert_eq!(
        states.iter().filter(|s| **s == "stopped").count(),
        1,
        "{states:?}"
    );
    assert_eq!(r["health_status"], "critical", "{r}");
    assert_eq!(r["judgement"]["outcome"], "fail", "{r}");
    assert!(r["confidence_score"].as_f64().unwrap() > 0.99, "{r}");
    assert_eq!(r["window_end"], ended[4]["completed_at"], "{r}");
    assert!(r["error_rate_percent"].as_f64().is_some(), "{r}");
    let (st, r) = get(&format!(
        "{}/api/v1/canary/deployments/{}/rollout",
        s.api, ids[0]
    ))
    .await;
    assert_eq!(
        (st, r["health_status"].as_str()),
        (200, Some("healthy")),
        "{r}"
    );
    assert_eq!(r["current_traffic_percent"], 100.0, "{r}");

    let rel = format!("{}/api/v1/releases/{}", s.api, release["id"]);
    let (_, now) = get(&rel).await;
    assert_eq!(now["status"], "rolled_back", "{now}");
    let (st, e) = send(
        reqwest::Method::PATCH,
        &rel,
        Some(json!({"status": "released"})),
    )
    .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (409, Some("INVALID_STATUS_TRANSITION")),
        "{e}"
    );
    let (_, k) = post(
        &format!("{}/api/v1/api-keys", s.api),
        json!({"name": "eng", "role": "engineer"}),
    )
    .await;
    let forced = json!({"status": "released", "override_reason": "the errors came from a broken load balancer"});
    let (st, e) = crate::harness::send_as(
        k["key"].as_str().unwrap(),
        reqwest::Method::PATCH,
        &rel,
        Some(forced.clone()),
    )
    .await;
    assert_eq!(st, 403, "an engineer can't override: {e}");
    let (st, r) = send(reqwest::Method::PATCH, &rel, Some(forced)).await;
    assert_eq!((st, r["status"].as_str()), (200, Some("released")), "{r}");
    let (_, log) = get(&format!(
        "{}/api/v1/audit-logs?resource_type=release&resource_id={}",
        s.api, release["id"]
    ))
    .await;
    let reasons: Vec<&str> = log["audit_logs"]
        .as_array()
        .expect("audit entries")
        .iter()
        .filter_map(|e| e["changes"]["override_reason"].as_str())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("broken load balancer"))
            && reasons
                .iter()
                .any(|r| r.contains("rolled back automatically")),
        "{log}"
    );
}
