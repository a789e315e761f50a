//! Weight changes through the real traffic engines: Debian's `haproxy`
//! (runtime API), `nginx` (rendered files, `nginx -t`, reload) and `nginx`
//! with `split=njs` (Serin's njs module reading a state file, no reload),
//! each in front of two local upstreams, with a steady load through the
//! engine.
//!
//! For each engine: 100 weight changes (0 → 10 → 20 … → 100 → 90 … and so
//! on), each timed from the moment Serin's engine module is asked to apply it
//! (what the controller does in the tick that decides it) until the engine's
//! read-back reports the new share; and the client requests that failed
//! during all of it. Prints p50, p99 and max, and the failures.
//!
//! `cargo bench -p serin-server --bench engines [-- --changes N]`

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serin_core::traffic::engine::EngineTarget;
use serin_server::engines::Engines;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn opt(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn upstream(body: &'static str) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
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

/// A process stopped with SIGTERM when dropped (an nginx master then takes
/// its workers with it; SIGKILL would leave them running), SIGKILL after 5 s.
struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        for _ in 0..100 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_port(port: u16) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nothing listens on {port}");
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Runs the changes through `engines`' engine `name` while a load runs
/// through `port`; prints the figures.
async fn measure(label: &str, engines: &Engines, target: &EngineTarget, port: u16, changes: usize) {
    let engine = engines.get(&target.engine).unwrap().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut loaders = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        loaders.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                match client.get(format!("http://127.0.0.1:{port}/")).send().await {
                    Ok(r) if r.status().is_success() => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!(
                                "failed: {:?}",
                                other.map(|r| r.status()).map_err(|e| format!("{e:?}")
                                    .chars()
                                    .take(300)
                                    .collect::<String>())
                            );
                        }
                        0
                    }
                };
            }
        }));
    }
    let began = Instant::now();
    let mut took = Vec::with_capacity(changes);
    let mut percent: i32 = 0;
    let mut step = 10;
    for _ in 0..changes {
        if !(0..=100).contains(&(percent + step)) {
            step = -step;
        }
        percent += step;
        let p = percent as u8;
        let t = Instant::now();
        let state = serin_core::traffic::engine::RouteState::share_only(p);
        engine.apply(target, &state).await.unwrap();
        loop {
            if engine
                .read_back(target, &state)
                .await
                .is_ok_and(|seen| seen.holds(target, &state))
            {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{label}: {p}% never read back"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        took.push(t.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for l in loaders {
        let _ = l.await;
    }
    let secs = began.elapsed().as_secs_f64();
    took.sort_by(f64::total_cmp);
    println!(
        "{label:<9} {changes} weight changes, apply → read back: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; client requests during them ({:.1} s, {:.0} req/s): {} answered, {} failed",
        pct(&took, 0.5),
        pct(&took, 0.99),
        took.last().copied().unwrap_or(0.0),
        secs,
        ok.load(Ordering::Relaxed) as f64 / secs,
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
}

fn main() {
    let changes = opt("--changes", 100);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (stable, canary) = (upstream("stable").await, upstream("canary").await);
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();

        // HAProxy.
        let hport = free_port();
        std::fs::write(
            dir.path().join("haproxy.cfg"),
            format!(
                "global\n  stats socket {d}/admin.sock mode 600 level admin\n\
                 defaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n\
                 frontend fe\n  bind 127.0.0.1:{hport}\n  default_backend app\n\
                 backend app\n  balance roundrobin\n\
                   server s1 127.0.0.1:{stable} weight 1\n  server c1 127.0.0.1:{canary} weight 0\n"
            ),
        )
        .unwrap();
        let _haproxy = Killed(
            Command::new("haproxy")
                .args(["-db", "-f"])
                .arg(dir.path().join("haproxy.cfg"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("haproxy (Debian package haproxy)"),
        );
        wait_port(hport).await;

        // nginx.
        std::fs::create_dir(dir.path().join("serin")).unwrap();
        std::fs::write(
            dir.path().join("serin/app.conf"),
            format!("upstream app {{\n    server 127.0.0.1:{stable};\n    keepalive 16;\n}}\n"),
        )
        .unwrap();
        std::fs::write(dir.path().join("serin/app.probe"), "").unwrap();
        let (nport, probe) = (free_port(), free_port());
        std::fs::write(
            dir.path().join("nginx.conf"),
            format!(
                "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
                   fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
                   include {d}/serin/*.conf;\n\
                   server {{ listen 127.0.0.1:{probe}; include {d}/serin/*.probe; }}\n\
                   server {{ listen 127.0.0.1:{nport}; location / {{ proxy_pass http://app; }} }}\n}}\n"
            ),
        )
        .unwrap();
        let _nginx = Killed(
            Command::new("nginx")
                .arg("-c")
                .arg(dir.path().join("nginx.conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nginx (Debian package nginx)"),
        );
        wait_port(nport).await;

        // nginx with split=njs: the engine writes its module first, as `serin up` does.
        let (jport, jprobe) = (free_port(), free_port());
        let mut engines = Engines::default();
        engines
            .add_spec(&format!("njs=nginx:{d}/njs?probe=127.0.0.1:{jprobe}&backends=app&split=njs"))
            .unwrap();
        std::fs::write(
            dir.path().join("njs.conf"),
            format!(
                "load_module /usr/lib/nginx/modules/ngx_http_js_module.so;
                 daemon off;
worker_processes 1;
pid {d}/njs.pid;
error_log {d}/njs-error.log;
                 events {{ worker_connections 256; }}
                 http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
                   fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
                   js_import serin from {d}/njs/serin.js;
  js_set $serin_route serin.route;
  js_var $serin_dir {d}/njs;
                   upstream app {{ server 127.0.0.1:{stable}; }}
                   server {{ listen 127.0.0.1:{jprobe}; location /serin/ {{ js_content serin.probe; }} }}
                   server {{ listen 127.0.0.1:{jport}; location / {{ set $serin_backend app; proxy_pass http://$serin_route; }} }}
}}
"
            ),
        )
        .unwrap();
        let _njs = Killed(
            Command::new("nginx")
                .arg("-c")
                .arg(dir.path().join("njs.conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nginx with its njs module (Debian packages nginx, libnginx-mod-http-js)"),
        );
        wait_port(jport).await;

        engines.add_spec(&format!("edge=haproxy:unix:{d}/admin.sock")).unwrap();
        engines
            .add_spec(&format!("web=nginx:{d}/serin?probe=127.0.0.1:{probe}&backends=app&conf={d}/nginx.conf"))
            .unwrap();
        let target = |engine: &str, stable: String, canary: String| EngineTarget {
            engine: engine.into(),
            backend: "app".into(),
            stable: vec![stable],
            canary: vec![canary],
            confirm_within: None,
            mirror_percent: None,
            session_persistence: None,
        };
        println!("load {:.2}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().next().and_then(|l| l.parse::<f64>().ok()).unwrap_or(0.0));
        measure("haproxy", &engines, &target("edge", "s1".into(), "c1".into()), hport, changes).await;
        measure(
            "nginx",
            &engines,
            &target("web", format!("127.0.0.1:{stable}"), format!("127.0.0.1:{canary}")),
            nport,
            changes,
        )
        .await;
        measure(
            "nginx-njs",
            &engines,
            &target("njs", format!("127.0.0.1:{stable}"), format!("127.0.0.1:{canary}")),
            jport,
            changes,
        )
        .await;
    });
}
