//! `TestApp`: the whole control plane in this test's process — a fresh SQLite
//! store, the router on a port of its own, and the runtime's background tasks
//! (controller, probes, notifier, sweeper) — without spawning the binary.
//! Tests drive it over HTTP like any client and can read its state directly.

use std::time::Duration;

use serde_json::Value;
use serin_core::auth::Role;
use serin_server::AppState;
use serin_server::runtime::Runtime;
use serin_server::state::ServerConfig;
use serin_store::{Store, StoreOptions};

/// The admin key of every `TestApp`.
pub const ADMIN: &str = "srn_test_admin_key_0123456789abcdef";

pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    pub state: AppState,
    http: reqwest::Client,
    runtime: Option<Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    /// A control plane on a new SQLite file, its controller ticking every
    /// 100 ms.
    pub async fn start() -> TestApp {
        TestApp::start_with(|_| {}).await
    }

    /// The same, with the configuration changed by `tune` first.
    pub async fn start_with(tune: impl FnOnce(&mut ServerConfig)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/serin.db", dir.path().display());
        TestApp::start_on(&url, dir, tune).await
    }

    /// A control plane on the database at `url` (another replica when one
    /// already runs there).
    pub async fn start_on(
        url: &str,
        dir: tempfile::TempDir,
        tune: impl FnOnce(&mut ServerConfig),
    ) -> TestApp {
        let store = Store::connect(url, &StoreOptions::default()).await.unwrap();
        store.migrate().await.unwrap();
        let mut config = ServerConfig {
            controller_interval: Duration::from_millis(100),
            rate_limit: serin_server::rate::RateLimit {
                per_minute: 0,
                burst: 0,
            },
            ..ServerConfig::default()
        };
        tune(&mut config);
        let state = AppState::new(store, config);
        if state.store.count_api_keys().await.unwrap() == 0 {
            serin_server::routes::api_keys::make_key(
                &state,
                "admin",
                Role::Admin,
                "test",
                Some(ADMIN.into()),
            )
            .await
            .unwrap();
        }
        let runtime = Runtime::start(&state, None).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serin_server::run(
            listener,
            serin_server::app(state.clone()),
            async {
                let _ = stopped.await;
            },
        ));
        TestApp {
            url,
            state,
            http: reqwest::Client::new(),
            runtime: Some(runtime),
            stop: Some(stop),
            server: Some(server),
            _dir: dir,
        }
    }

    /// Sends a request as the admin; the status and the JSON answer (null when
    /// there is none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(ADMIN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A GET as the admin; the status and the body as text.
    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }

    /// Polls `path` until `done` holds, or panics after `within`.
    pub async fn until(
        &self,
        path: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let t0 = std::time::Instant::now();
        loop {
            let (_, v) = self.get(path).await;
            if done(&v) {
                return v;
            }
            assert!(t0.elapsed() < within, "{path} never got there: {v}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Ends the runtime as a crash would (no drain, the lease not handed
    /// over) and stops the API.
    pub async fn crash(mut self) {
        if let Some(r) = self.runtime.take() {
            r.abort();
        }
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }

    /// Stops the API and the runtime as `serin up` does on SIGTERM.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(r) = self.runtime.take() {
            r.shutdown(Duration::from_secs(10)).await;
        }
        assert!(
            self.state.routes.stop().is_none(),
            "the runtime joined the route watch's refresher"
        );
        if let Some(s) = self.server.take() {
            s.await.unwrap().unwrap();
        }
    }
}

/// A PostgreSQL URL scoped to a new, empty schema; `None` (outside CI) when
/// the server is unreachable.
pub async fn postgres_schema() -> Option<String> {
    let url = std::env::var("SERIN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let (client, conn) = match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PostgreSQL at {url} is required in CI: {e}"
            );
            eprintln!("SKIPPED: PostgreSQL at {url} unreachable: {e}");
            return None;
        }
    };
    tokio::spawn(conn);
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let schema = format!(
        "serin_app_{}_{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{sep}options=-csearch_path%3D{schema}"))
}

/// Debian's `prometheus`, started by a test and killed when dropped.
pub struct PrometheusServer {
    child: std::process::Child,
    /// Where its API answers.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PrometheusServer {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts one on `port`, scraping every second itself and `targets`
    /// (`host:port`, path `/metrics`). `None` outside CI when there is no
    /// `prometheus`.
    pub fn start(port: u16, targets: &[String]) -> Option<PrometheusServer> {
        let bin = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|d| d.join("prometheus"))
            .find(|p| p.is_file());
        let Some(bin) = bin else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "prometheus (Debian package prometheus) is required in CI"
            );
            eprintln!("SKIPPED: no prometheus binary");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let mut scraped = vec![format!("'127.0.0.1:{port}'")];
        scraped.extend(targets.iter().map(|t| format!("'{t}'")));
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: [{}]\n",
                scraped.join(", ")
            ),
        )
        .unwrap();
        let child = std::process::Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Some(PrometheusServer {
            child,
            port,
            _dir: dir,
        })
    }
}
