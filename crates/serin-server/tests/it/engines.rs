//! Traffic engines against the real thing: Debian's `haproxy`, started by the
//! test with an admin socket, in front of two tiny upstreams that answer with
//! their lane's name. The controller drives the weights through the runtime
//! API and counts a step only once it reads the weight back.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::app::TestApp;

/// An HTTP/1.1 upstream that answers every request with `body`.
async fn upstream(body: &'static str) -> u16 {
    upstream_with(200, body).await
}

/// An HTTP/1.1 upstream that answers every request with `status` and `body`.
async fn upstream_with(status: u16, body: &'static str) -> u16 {
    flaky_upstream(if status == 200 { 0 } else { 1 }, status, body).await
}

/// An HTTP/1.1 upstream that answers every `every`-th request (0: none) with
/// `status`, the others with 200, always with `body`.
async fn flaky_upstream(every: u64, status: u16, body: &'static str) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    let i = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    let status = if every > 0 && i.is_multiple_of(every) {
                        status
                    } else {
                        200
                    };
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// HAProxy in the foreground, killed when dropped.
struct Haproxy {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    /// Where its Prometheus exporter answers (`/metrics`).
    metrics_port: u16,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Haproxy {
    fn socket(&self) -> std::path::PathBuf {
        self.dir.path().join("admin.sock")
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `haproxy` with backend `app`: server `s1` (stable) at full weight,
/// `c1` (canary) at 0. `None` outside CI when there is no haproxy.
async fn haproxy(stable: u16, canary: u16) -> Option<Haproxy> {
    if Command::new("haproxy").arg("-v").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "haproxy (Debian package haproxy) is required in CI"
        );
        eprintln!("SKIPPED: no haproxy binary");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let (port, metrics_port) = (free_port(), free_port());
    let cfg = format!(
        "global\n  stats socket {}/admin.sock mode 600 level admin\n\
         defaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n\
         frontend fe\n  bind 127.0.0.1:{port}\n  default_backend app\n\
         frontend exporter\n  bind 127.0.0.1:{metrics_port}\n\
           http-request use-service prometheus-exporter if {{ path /metrics }}\n\
         backend app\n  balance roundrobin\n\
           http-request set-var(txn.serin_lane) req.hdr(X-Beta),map_str({d}/app.header.x-beta.map)\n\
           http-request set-var(txn.serin_lane) req.cook(tier),map_str({d}/app.cookie.tier.map) if !{{ var(txn.serin_lane) -m found }}\n\
           use-server c1 if {{ var(txn.serin_lane) -m str canary }}\n\
           use-server s1 if {{ var(txn.serin_lane) -m str stable }}\n\
           server s1 127.0.0.1:{stable} weight 100\n  server c1 127.0.0.1:{canary} weight 0\n",
        dir.path().display(),
        d = dir.path().display()
    );
    // The rule maps start empty; Serin fills them through the runtime API.
    std::fs::write(dir.path().join("app.header.x-beta.map"), "").unwrap();
    std::fs::write(dir.path().join("app.cookie.tier.map"), "").unwrap();
    std::fs::write(dir.path().join("haproxy.cfg"), cfg).unwrap();
    let child = Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(dir.path().join("haproxy.cfg"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let h = Haproxy {
        child,
        dir,
        port,
        metrics_port,
    };
    for _ in 0..100 {
        if h.socket().exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(h);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("haproxy did not start");
}

/// Sends `n` requests through HAProxy; how many the canary answered.
async fn canary_answers(port: u16, n: usize) -> usize {
    canary_answers_with(port, n, None).await
}

/// Sends `n` requests with a header (`name`, `value`); how many the canary answered.
async fn canary_answers_with(port: u16, n: usize, header: Option<(&str, &str)>) -> usize {
    let client = reqwest::Client::new();
    let mut canary = 0;
    for _ in 0..n {
        let mut req = client.get(format!("http://127.0.0.1:{port}/"));
        if let Some((k, v)) = header {
            req = req.header(k, v);
        }
        let body = req.send().await.unwrap().text().await.unwrap();
        canary += usize::from(body == "canary");
    }
    canary
}

/// The runtime API's own account of a server's weight.
async fn weight(h: &Haproxy, server: &str) -> String {
    let mut s = tokio::net::UnixStream::connect(h.socket()).await.unwrap();
    s.write_all(format!("get weight app/{server}\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.trim().to_string()
}

fn engine_body(queue: &str, engine: &str) -> serde_json::Value {
    json!({"queue_name": queue, "stable_version": "1", "canary_version": "2",
           "engine": {"engine": engine, "backend": "app", "stable": ["s1"], "canary": ["c1"],
                      "confirm_within": "3s"},
           "rollout": {"steps": [{"set_weight": 20}, {"pause": {}}]}})
}

/// A rollout whose traffic HAProxy splits: the step's weight is set through
/// the runtime API and read back, real requests follow it, and a rollback
/// puts the canary's weight back to 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_follows_a_rollout_through_its_runtime_api() {
    let (stable, canary) = (upstream("stable").await, upstream("canary").await);
    let Some(h) = haproxy(stable, canary).await else {
        return;
    };
    let spec = format!("edge=haproxy:unix:{}", h.socket().display());
    let app = TestApp::start_with(move |c| c.engines.add_spec(&spec).unwrap()).await;
    assert_eq!(canary_answers(h.port, 20).await, 0);

    let (st, d) = app
        .post("/api/v1/canary/deployments", engine_body("web", "edge"))
        .await;
    assert_eq!(st, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/canary/deployments/{id}");
    let at_pause = app
        .until(&path, Duration::from_secs(20), |d| {
            d["rollout"]["step"] == 1
        })
        .await;
    assert_eq!(at_pause["current_percent"], 20, "{at_pause}");
    // 20%: stable 4, canary 1 (80:20 reduced).
    assert!(
        weight(&h, "s1").await.starts_with("4 "),
        "{}",
        weight(&h, "s1").await
    );
    assert!(
        weight(&h, "c1").await.starts_with("1 "),
        "{}",
        weight(&h, "c1").await
    );
    // Round robin over 4:1 sends exactly one request in five to the canary.
    assert_eq!(canary_answers(h.port, 100).await, 20);

    let (st, r) = app
        .post(&format!("{path}/rollback"), json!({"reason": "test"}))
        .await;
    assert!(st == 200 || st == 202, "{st} {r}");
    let t0 = std::time::Instant::now();
    while !weight(&h, "c1").await.starts_with("0 ") {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{}",
            weight(&h, "c1").await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // It holds: no tick that read the rollout before it ended puts 20% back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(weight(&h, "c1").await.starts_with("0 "));
    assert_eq!(canary_answers(h.port, 20).await, 0);
    app.stop().await;
}

/// The runtime API's account of a map's entries.
async fn map_entries(h: &Haproxy, map: &str) -> String {
    let mut s = tokio::net::UnixStream::connect(h.socket()).await.unwrap();
    let file = h.dir.path().join(map);
    s.write_all(format!("show map {}\n", file.display()).as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    // "0x55d… 1 canary": the key and the value.
    out.lines()
        .filter_map(|l| l.split_once(' ').map(|(_, kv)| kv.to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A deployment's match rules go into the HAProxy maps the configuration
/// loads, in one step each, and real requests follow them at any weight;
/// rules HAProxy's maps can't hold are refused, a routing change replaces
/// the entries, and the end of the deployment empties them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_puts_match_rules_in_its_maps() {
    let (stable, canary) = (upstream("stable").await, upstream("canary").await);
    let Some(h) = haproxy(stable, canary).await else {
        return;
    };
    let spec = format!("edge=haproxy:unix:{}", h.socket().display());
    let app = TestApp::start_with(move |c| c.engines.add_spec(&spec).unwrap()).await;
    let mut body = engine_body("web", "edge");
    body["engine"]["mirror_percent"] = json!(5);
    let (st, e) = app.post("/api/v1/canary/deployments", body.clone()).await;
    assert_eq!(
        (st, e["details"]["field"].as_str()),
        (400, Some("engine.mirror_percent")),
        "{e}"
    );
    body["engine"]
        .as_object_mut()
        .unwrap()
        .remove("mirror_percent");
    // A plan's mirror step asks the same of the engine.
    let mut mirrored = body.clone();
    mirrored["rollout"] =
        json!({"steps": [{"set_weight": 10}, {"mirror": {"percent": 20}}, {"set_weight": 100}]});
    let (st, e) = app.post("/api/v1/canary/deployments", mirrored).await;
    assert_eq!(
        (st, e["details"]["field"].as_str()),
        (400, Some("rollout.steps[1]")),
        "{e}"
    );
    assert!(
        e["error"].as_str().unwrap().contains("doesn't mirror"),
        "{e}"
    );
    body["traffic"] = json!({"rules": [
        {"match": {"header": {"name": "X-Beta", "regex": "^1$"}}}]});
    let (st, e) = app.post("/api/v1/canary/deployments", body.clone()).await;
    assert_eq!(
        (st, e["details"]["field"].as_str()),
        (400, Some("traffic.rules")),
        "{e}"
    );
    assert!(e["error"].as_str().unwrap().contains("exact values"), "{e}");
    body["traffic"] = json!({"rules": [
        {"match": {"header": {"name": "X-Beta", "equals": "1"}}},
        {"match": {"cookie": {"name": "tier", "equals": "gold"}}, "lane": "stable"}]});
    let (st, d) = app.post("/api/v1/canary/deployments", body).await;
    assert_eq!(st, 201, "{d}");
    let path = format!("/api/v1/canary/deployments/{}", d["id"].as_str().unwrap());
    app.until(&path, Duration::from_secs(20), |d| {
        d["rollout"]["step"] == 1
    })
    .await;
    assert_eq!(map_entries(&h, "app.header.x-beta.map").await, "1 canary");
    assert_eq!(map_entries(&h, "app.cookie.tier.map").await, "gold stable");
    assert_eq!(
        canary_answers_with(h.port, 20, Some(("X-Beta", "1"))).await,
        20
    );
    // The others by weight (round robin 4:1, its turn moved by the requests
    // the rules sent).
    let by_weight = canary_answers_with(h.port, 20, Some(("X-Beta", "2"))).await;
    assert!((3..=5).contains(&by_weight), "{by_weight}");
    assert_eq!(
        canary_answers_with(h.port, 20, Some(("Cookie", "tier=gold"))).await,
        0
    );

    // A routing change replaces the entries (read back before it counts).
    let (st, d) = app
        .put(
            &format!("{path}/routing"),
            json!({"traffic": {"rules": [{"match": {"user_id": ["u1", "u2"]}}],
                               "user_header": "X-Beta"}}),
        )
        .await;
    assert_eq!(st, 200, "{d}");
    let t0 = std::time::Instant::now();
    while map_entries(&h, "app.header.x-beta.map").await != "u1 canary, u2 canary" {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{}",
            map_entries(&h, "app.header.x-beta.map").await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(map_entries(&h, "app.cookie.tier.map").await, "");
    assert_eq!(
        canary_answers_with(h.port, 10, Some(("X-Beta", "u2"))).await,
        10
    );

    // Promoted: every request to the canary by weight, the rules gone.
    let (st, r) = app.post(&format!("{path}/promote"), json!({})).await;
    assert!(st == 200 || st == 202, "{st} {r}");
    let t0 = std::time::Instant::now();
    while !map_entries(&h, "app.header.x-beta.map").await.is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{}",
            app.get(&path).await.1
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}

/// An engine that can't be reached never lets a step count: the rollout
/// pauses with the reason once the step's allowance runs out. A deployment
/// naming an engine the server doesn't have is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_does_not_answer_pauses_the_rollout() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("edge=haproxy:unix:{}/nobody.sock", dir.path().display());
    let app = TestApp::start_with(move |c| c.engines.add_spec(&spec).unwrap()).await;
    let (st, e) = app
        .post(
            "/api/v1/canary/deployments",
            engine_body("other", "elsewhere"),
        )
        .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (400, Some("VALIDATION_FAILED")),
        "{e}"
    );
    assert!(
        e["error"].as_str().unwrap_or_default().contains("edge"),
        "{e}"
    );

    let (st, d) = app
        .post("/api/v1/canary/deployments", engine_body("web", "edge"))
        .await;
    assert_eq!(st, 201, "{d}");
    let path = format!("/api/v1/canary/deployments/{}", d["id"].as_str().unwrap());
    let paused = app
        .until(&path, Duration::from_secs(20), |d| d["status"] == "paused")
        .await;
    let reason = paused["status_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("engine edge did not put 20% in effect within 3s: it could not be read"),
        "{paused}"
    );
    assert_eq!(paused["rollout"]["step"], 0, "{paused}");
    app.stop().await;
}

/// nginx in the foreground with its own configuration in `dir`, killed when dropped.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    probe: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        stop_nginx(&mut self.child);
    }
}

/// Stops an nginx master with SIGTERM, so that it takes its workers with it
/// (SIGKILL would leave them running, listening); SIGKILL after 5 s.
fn stop_nginx(master: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &master.id().to_string()])
        .status();
    for _ in 0..100 {
        if matches!(master.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = master.kill();
    let _ = master.wait();
}

/// Starts `nginx` (one worker) proxying to upstream `app`, whose first file
/// (all stable) the test writes as an operator would; Serin rewrites it.
async fn nginx(stable: u16) -> Option<Nginx> {
    if Command::new("nginx").arg("-v").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "nginx (Debian package nginx) is required in CI"
        );
        eprintln!("SKIPPED: no nginx binary");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    std::fs::create_dir(dir.path().join("serin")).unwrap();
    std::fs::write(
        dir.path().join("serin/app.conf"),
        format!(
            "upstream app {{\n    server 127.0.0.1:{stable};\n}}\nmap $host $serin_app {{\n    default app;\n}}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("serin/app.probe"),
        "location = /serin/app {\n    return 200 \"1 0\\n\";\n}\n",
    )
    .unwrap();
    let (port, probe) = (free_port(), free_port());
    let conf = format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n\
           log_format serin escape=json '{{\"msec\":$msec,\"upstream_addr\":\"$upstream_addr\",'\n\
             '\"upstream_status\":\"$upstream_status\",\"request_time\":$request_time}}';\n\
           access_log {d}/access.json serin;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           include {d}/serin/*.conf;\n\
           server {{ listen 127.0.0.1:{probe}; include {d}/serin/*.probe; }}\n\
           server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://$serin_app; }} }}\n}}\n"
    );
    Some(start_nginx(dir, &conf, port, probe).await)
}

/// Writes `conf` as `dir/nginx.conf`, starts nginx on it and waits until
/// `port` accepts connections.
async fn start_nginx(dir: tempfile::TempDir, conf: &str, port: u16, probe: u16) -> Nginx {
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let child = Command::new("nginx")
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let n = Nginx {
        child,
        dir,
        port,
        probe,
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(n.dir.path().join("error.log")).unwrap_or_default();
    panic!("nginx did not start: {log}");
}

/// A control plane driving `n` as engine `web` (backend `app`), with `extra`
/// options; the upstreams are on this machine, so loopback is allowed, as an
/// operator would.
async fn nginx_app(n: &Nginx, extra: &str) -> TestApp {
    let d = n.dir.path().display().to_string();
    let spec = format!(
        "web=nginx:{d}/serin?probe=127.0.0.1:{}&backends=app&conf={d}/nginx.conf{extra}",
        n.probe
    );
    TestApp::start_with(move |c| {
        c.engines.add_spec(&spec).unwrap();
        c.outbound = serin_server::outbound::policy::Policy::new(
            vec!["127.0.0.0/8".parse().unwrap()],
            vec![],
        );
    })
    .await
}

/// A rollout whose traffic nginx splits: Serin renders the upstream, nginx
/// checks and reloads it, the probe location reads the weights back from the
/// running workers, real requests follow, and a rollback takes the canary out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_follows_a_rollout_through_rendered_files() {
    let (stable, canary) = (upstream("stable").await, upstream("canary").await);
    let Some(n) = nginx(stable).await else {
        return;
    };
    let app = nginx_app(&n, "").await;
    // Servers are judged by the outbound policy, backends by the operator's list.
    for (engine, field) in [
        (
            json!({"engine": "web", "backend": "app", "stable": ["169.254.169.254:80"], "canary": ["127.0.0.1:1"]}),
            "engine.stable",
        ),
        (
            json!({"engine": "web", "backend": "default", "stable": ["127.0.0.1:1"], "canary": ["127.0.0.1:2"]}),
            "engine.backend",
        ),
    ] {
        let (st, e) = app
            .post(
                "/api/v1/canary/deployments",
                json!({"queue_name": "refused", "stable_version": "1", "canary_version": "2", "engine": engine}),
            )
            .await;
        assert_eq!(
            (st, e["details"]["field"].as_str()),
            (400, Some(field)),
            "{e}"
        );
    }
    assert_eq!(canary_answers(n.port, 10).await, 0);
    let body = json!({"queue_name": "web", "stable_version": "1", "canary_version": "2",
        "engine": {"engine": "web", "backend": "app",
                   "stable": [format!("127.0.0.1:{stable}")], "canary": [format!("127.0.0.1:{canary}")]},
        "traffic": {"rules": [
            {"match": {"header": {"name": "X-Beta", "regex": "^(?:1|yes)$"}}},
            {"match": {"cookie": {"name": "tier", "equals": "gold\"}"}}, "lane": "stable"}]},
        "rollout": {"steps": [{"set_weight": 20}, {"pause": {}}]}});
    let (st, dep) = app.post("/api/v1/canary/deployments", body).await;
    assert_eq!(st, 201, "{dep}");
    let path = format!("/api/v1/canary/deployments/{}", dep["id"].as_str().unwrap());
    let at_pause = app
        .until(&path, Duration::from_secs(20), |d| {
            d["rollout"]["step"] == 1
        })
        .await;
    assert_eq!(at_pause["current_percent"], 20, "{at_pause}");
    // The weights the running workers were rendered with (then the rules' digest).
    let probe = |n: &Nginx| {
        let url = format!("http://127.0.0.1:{}/serin/app", n.probe);
        async move {
            let text = reqwest::get(url).await.unwrap().text().await.unwrap();
            text.split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    // A worker of the configuration before may still take a connection for
    // a moment after the new one answered the controller's probe.
    let t0 = std::time::Instant::now();
    while probe(&n).await != "4 1" {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{}",
            probe(&n).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // nginx's smooth weighted round robin over 4:1, one worker: one in five.
    assert_eq!(canary_answers(n.port, 100).await, 20);
    // The rules, through the maps Serin rendered: a regex on a header, an
    // exact cookie value with a quote and a brace in it.
    assert_eq!(
        canary_answers_with(n.port, 10, Some(("X-Beta", "yes"))).await,
        10
    );
    assert_eq!(
        canary_answers_with(n.port, 10, Some(("Cookie", "tier=gold\"}"))).await,
        0
    );
    assert_eq!(
        canary_answers_with(n.port, 10, Some(("X-Beta", "yess"))).await,
        2
    );

    let (st, r) = app
        .post(&format!("{path}/rollback"), json!({"reason": "test"}))
        .await;
    assert!(st == 200 || st == 202, "{st} {r}");
    let t0 = std::time::Instant::now();
    while probe(&n).await != "1 0" {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{}",
            probe(&n).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // It holds: no tick that read the rollout before it ended puts 20% back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(probe(&n).await, "1 0");
    assert_eq!(canary_answers(n.port, 20).await, 0);
    let conf = std::fs::read_to_string(n.dir.path().join("serin/app.conf")).unwrap();
    assert!(
        conf.contains(&format!("server 127.0.0.1:{canary} down;")),
        "{conf}"
    );
    app.stop().await;
}

/// The njs module Debian's `libnginx-mod-http-js` installs.
const NJS_MODULE: &str = "/usr/lib/nginx/modules/ngx_http_js_module.so";

/// A control plane driving engine `web` with `split=njs` (which writes the
/// module into the directory, as `serin up` does when it starts), then
/// `nginx` (one worker) loading it, proxying through `$serin_route` with the
/// operator's own `upstream app` (all stable) for when Serin has written no
/// state. `None` outside CI without nginx or its njs module.
async fn nginx_njs(stable: u16) -> Option<(Nginx, TestApp)> {
    if Command::new("nginx").arg("-v").output().is_err()
        || !std::path::Path::new(NJS_MODULE).exists()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "nginx and its njs module (Debian packages nginx, libnginx-mod-http-js) are required in CI"
        );
        eprintln!("SKIPPED: no nginx or no njs module");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let (port, probe) = (free_port(), free_port());
    let spec = format!("web=nginx:{d}/serin?probe=127.0.0.1:{probe}&backends=app&split=njs");
    let app = TestApp::start_with(move |c| {
        c.engines.add_spec(&spec).unwrap();
        c.outbound = serin_server::outbound::policy::Policy::new(
            vec!["127.0.0.0/8".parse().unwrap()],
            vec![],
        );
    })
    .await;
    assert!(dir.path().join("serin/serin.js").exists());
    let conf = format!(
        "load_module {NJS_MODULE};\ndaemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           js_import serin from {d}/serin/serin.js;\n  js_set $serin_route serin.route;\n  js_var $serin_dir {d}/serin;\n\
           upstream app {{ server 127.0.0.1:{stable}; }}\n\
           server {{ listen 127.0.0.1:{probe}; location /serin/ {{ js_content serin.probe; }} }}\n\
           server {{ listen 127.0.0.1:{port}; location / {{ set $serin_backend app; proxy_pass http://$serin_route; }} }}\n}}\n"
    );
    Some((start_nginx(dir, &conf, port, probe).await, app))
}

/// nginx's worker processes (its master's children).
fn nginx_workers(n: &Nginx) -> String {
    let pid = n.child.id();
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default()
}

/// A rollout through nginx with `split=njs`: weights and rules change through
/// the state file the module reads per request, never through a reload (the
/// same worker answers throughout, and one kept-alive client connection
/// carries requests across every change without an error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_njs_changes_weights_and_rules_without_a_reload() {
    let (stable, canary) = (upstream("stable").await, upstream("canary").await);
    let Some((n, app)) = nginx_njs(stable).await else {
        return;
    };
    let workers = nginx_workers(&n);
    assert!(!workers.trim().is_empty(), "no nginx worker");
    let probe_url = format!("http://127.0.0.1:{}/serin/app", n.probe);
    // Before Serin wrote any state: the operator's own upstream, no answer to the probe.
    assert_eq!(canary_answers(n.port, 10).await, 0);
    assert_eq!(reqwest::get(&probe_url).await.unwrap().status(), 404);
    // A name in a server would need a resolver: refused.
    let (st, e) = app
        .post(
            "/api/v1/canary/deployments",
            json!({"queue_name": "refused", "stable_version": "1", "canary_version": "2",
                   "engine": {"engine": "web", "backend": "app", "stable": [format!("127.0.0.1:{stable}")], "canary": ["localhost:1"]}}),
        )
        .await;
    assert_eq!(
        (st, e["details"]["field"].as_str()),
        (400, Some("engine.canary")),
        "{e}"
    );

    // One kept-alive connection sends a request every few ms through it all.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let kept = {
        let (stop, failed, sent, port) = (stop.clone(), failed.clone(), sent.clone(), n.port);
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let ok = match client.get(format!("http://127.0.0.1:{port}/")).send().await {
                    Ok(r) => r.status().is_success() && r.text().await.is_ok(),
                    Err(_) => false,
                };
                sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if !ok {
                    failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };

    let body = json!({"queue_name": "web", "stable_version": "1", "canary_version": "2",
        "engine": {"engine": "web", "backend": "app",
                   "stable": [format!("127.0.0.1:{stable}")], "canary": [format!("127.0.0.1:{canary}")]},
        "traffic": {"rules": [
            {"match": {"header": {"name": "X-Beta", "regex": "^(?:1|yes)$"}}},
            {"match": {"cookie": {"name": "tier", "equals": "gold\"}"}}, "lane": "stable"}]},
        "rollout": {"steps": [{"set_weight": 10}, {"set_weight": 20}, {"pause": {}}]}});
    let (st, dep) = app.post("/api/v1/canary/deployments", body).await;
    assert_eq!(st, 201, "{dep}");
    let path = format!("/api/v1/canary/deployments/{}", dep["id"].as_str().unwrap());
    let at_pause = app
        .until(&path, Duration::from_secs(20), |d| {
            d["rollout"]["step"] == 2
        })
        .await;
    assert_eq!(at_pause["current_percent"], 20, "{at_pause}");
    let probe = reqwest::get(&probe_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        probe.starts_with("4 1 ") && probe.trim_end().ends_with(" njs1"),
        "{probe}"
    );
    // A weighted random choice: 20% of 400 is 80; ±40 is beyond 7 standard deviations.
    let c = canary_answers(n.port, 400).await;
    assert!((40..=120).contains(&c), "{c} of 400 to the canary at 20%");
    assert_eq!(
        canary_answers_with(n.port, 10, Some(("X-Beta", "yes"))).await,
        10
    );
    assert_eq!(
        canary_answers_with(n.port, 10, Some(("Cookie", "tier=gold\"}"))).await,
        0
    );

    let (st, r) = app
        .post(&format!("{path}/rollback"), json!({"reason": "test"}))
        .await;
    assert!(st == 200 || st == 202, "{st} {r}");
    let t0 = std::time::Instant::now();
    loop {
        let p = reqwest::get(&probe_url)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if p.starts_with("1 0 ") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{p}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(canary_answers(n.port, 20).await, 0);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    kept.await.unwrap();
    let (sent, failed) = (
        sent.load(std::sync::atomic::Ordering::Relaxed),
        failed.load(std::sync::atomic::Ordering::Relaxed),
    );
    assert!(sent > 50, "{sent}");
    assert_eq!(
        failed, 0,
        "{failed} of {sent} requests on the kept-alive connection failed"
    );
    // The same worker throughout: nginx was never reloaded.
    assert_eq!(nginx_workers(&n), workers);
    app.stop().await;
}

/// Requests through `port` every few milliseconds until the flag is set.
fn load(
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = client.get(format!("http://127.0.0.1:{port}/")).send().await;
            tokio::time::sleep(Duration::from_millis(4)).await;
        }
    })
}

/// A rollout split by HAProxy, judged from HAProxy's own counters (`show
/// stat`, turned into lane seconds): a canary answering 5xx is rolled back
/// within a minute, and an identical one goes through its analysis to 100%.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_counters_feed_the_judges() {
    for (canary_status, want) in [(500u16, "rolled back"), (200, "promoted")] {
        let stable = upstream("stable").await;
        let canary = upstream_with(canary_status, "canary").await;
        let Some(h) = haproxy(stable, canary).await else {
            return;
        };
        let spec = format!("edge=haproxy:unix:{}", h.socket().display());
        let app = TestApp::start_with(move |c| c.engines.add_spec(&spec).unwrap()).await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let loader = load(h.port, stop.clone());
        let body = json!({"queue_name": "web", "stable_version": "1", "canary_version": "2",
            "min_duration": "0s", "auto_promotion": true,
            "engine": {"engine": "edge", "backend": "app", "stable": ["s1"], "canary": ["c1"]},
            "rollout": {"steps": [{"set_weight": 50}, {"analysis": {"window": "15s"}}, {"set_weight": 100}]}});
        let (st, d) = app.post("/api/v1/canary/deployments", body).await;
        assert_eq!(st, 201, "{d}");
        let path = format!("/api/v1/canary/deployments/{}", d["id"].as_str().unwrap());
        let t0 = std::time::Instant::now();
        let ended = app
            .until(&path, Duration::from_secs(60), |d| d["status"] != "active")
            .await;
        eprintln!(
            "canary answering {canary_status}: {} after {:?}: {}",
            ended["status"],
            t0.elapsed(),
            ended["status_reason"]
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = loader.await;
        match want {
            "rolled back" => {
                assert_eq!(ended["current_percent"], 0, "{ended}");
                assert!(
                    ended["status"] == "failed" || ended["status"] == "rolling_back",
                    "{ended}"
                );
            }
            _ => assert_eq!(ended["status"], "completed", "{ended}"),
        }
        if want == "rolled back" {
            // The lane seconds the judges saw came from HAProxy's counters.
            let (_, m) = app.get(&format!("{path}/metrics")).await;
            assert!(m["canary"]["error_count"].as_u64() > Some(0), "{m}");
            assert!(m["stable"]["success_count"].as_u64() > Some(0), "{m}");
        }
        app.stop().await;
    }
}

/// Runs a 50% rollout with a 20 s analysis through `engine` while a load
/// goes through `port`; asserts a canary failing 1 in 10 (`want` "rolled
/// back") is rolled back within a minute and an identical one is promoted;
/// the lane metrics the judges read, as the deployment's metrics route shows
/// them at the end.
async fn judged_through(
    app: &TestApp,
    port: u16,
    engine: serde_json::Value,
    want: &str,
    what: &str,
) -> serde_json::Value {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loader = load(port, stop.clone());
    let body = json!({"queue_name": "web", "stable_version": "1", "canary_version": "2",
        "min_duration": "0s", "auto_promotion": true, "engine": engine,
        "rollout": {"steps": [{"set_weight": 50}, {"analysis": {"window": "20s"}}, {"set_weight": 100}]}});
    let (st, d) = app.post("/api/v1/canary/deployments", body).await;
    assert_eq!(st, 201, "{d}");
    let path = format!("/api/v1/canary/deployments/{}", d["id"].as_str().unwrap());
    let t0 = std::time::Instant::now();
    let ended = app
        .until(&path, Duration::from_secs(90), |d| d["status"] != "active")
        .await;
    let took = t0.elapsed();
    eprintln!(
        "{what}: {} after {took:?}: {}",
        ended["status"], ended["status_reason"]
    );
    let (_, m) = app.get(&format!("{path}/metrics")).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = loader.await;
    if want == "rolled back" {
        assert!(
            ended["status"] == "failed" || ended["status"] == "rolling_back",
            "{ended}"
        );
        assert!(took < Duration::from_secs(60), "rolled back after {took:?}");
        assert!(m["canary"]["error_count"].as_u64() > Some(0), "{m}");
        // The judges read stable's errors from the same source.
        assert!(m["stable"]["error_count"].as_u64() > Some(0), "{m}");
    } else {
        assert_eq!(ended["status"], "completed", "{ended}");
    }
    m
}

/// A rollout split by HAProxy, judged from HAProxy's Prometheus exporter as a
/// real Prometheus scraped it every second: a canary failing 5× as often as
/// stable (10% against 2%) is rolled back within a minute, and an identical
/// one (2% each) goes through its analysis to 100%.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_exporter_through_prometheus_feeds_the_judges() {
    for (canary_every, want) in [(10u64, "rolled back"), (50, "promoted")] {
        let stable = flaky_upstream(50, 500, "stable").await;
        let canary = flaky_upstream(canary_every, 500, "canary").await;
        let Some(h) = haproxy(stable, canary).await else {
            return;
        };
        let exporter = format!("127.0.0.1:{}", h.metrics_port);
        let Some(prom) = crate::app::PrometheusServer::start(free_port(), &[exporter]) else {
            return;
        };
        let spec = format!(
            "edge=haproxy:unix:{}?prometheus={}",
            h.socket().display(),
            prom.url()
        );
        let app = TestApp::start_with(move |c| c.engines.add_spec(&spec).unwrap()).await;
        // Prometheus has scraped HAProxy once its servers have series.
        let query = format!("{}/api/v1/query?query=haproxy_server_weight", prom.url());
        let t0 = std::time::Instant::now();
        loop {
            let seen = match reqwest::get(&query).await {
                Ok(r) => r.text().await.unwrap_or_default().contains("\"c1\""),
                Err(_) => false,
            };
            if seen {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "Prometheus never scraped HAProxy"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let engine =
            json!({"engine": "edge", "backend": "app", "stable": ["s1"], "canary": ["c1"]});
        let what =
            format!("canary failing 1 in {canary_every} through HAProxy's exporter and Prometheus");
        judged_through(&app, h.port, engine, want, &what).await;
        app.stop().await;
    }
}

/// A rollout split by nginx, judged from nginx's JSON access log, tailed: a
/// canary failing 5× as often as stable (10% against 2%) is rolled back within
/// a minute, and an identical one (2% each) goes through its analysis to 100%
/// — with latency, which the log carries request by request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_access_log_feeds_the_judges() {
    for (canary_every, want) in [(10u64, "rolled back"), (50, "promoted")] {
        let stable = flaky_upstream(50, 500, "stable").await;
        let canary = flaky_upstream(canary_every, 500, "canary").await;
        let Some(n) = nginx(stable).await else {
            return;
        };
        let d = n.dir.path().display().to_string();
        let app = nginx_app(&n, &format!("&access_log={d}/access.json")).await;
        let engine = json!({"engine": "web", "backend": "app",
            "stable": [format!("127.0.0.1:{stable}")], "canary": [format!("127.0.0.1:{canary}")]});
        let what = format!("canary failing 1 in {canary_every} through nginx's access log");
        let m = judged_through(&app, n.port, engine, want, &what).await;
        if want == "rolled back" {
            // The log carries every request's time.
            assert!(m["stable"]["avg_latency"].as_f64().is_some(), "{m}");
        }
        app.stop().await;
    }
}
