//! Starting and stopping the real binary.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_serin");

/// The admin key every test server accepts (`SERIN_ADMIN_TOKEN`).
pub const ADMIN: &str = "srn_test_admin_token_0123456789abcdef";

/// A running `serin up`.
pub struct Server {
    pub url: String,
    pub child: Child,
    pub dir: tempfile::TempDir,
}

impl Server {
    /// Starts on a fresh SQLite file in a new temp dir.
    pub fn sqlite() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/serin.db", dir.path().display());
        Server::start(&url, dir)
    }

    /// Starts on a fresh SQLite file with extra environment variables.
    pub fn sqlite_with(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/serin.db", dir.path().display());
        Server::start_with(&url, dir, env)
    }

    /// Starts on `database_url`, keeping `dir` alive.
    pub fn start(database_url: &str, dir: tempfile::TempDir) -> Server {
        Server::start_with(
            database_url,
            dir,
            &[("SERIN_RATE_LIMIT", "0"), ("SERIN_AUTH_FAILURE_LIMIT", "0")],
        )
    }

    /// Starts with extra environment variables.
    pub fn start_with(database_url: &str, dir: tempfile::TempDir, env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(BIN)
            .args([
                "up",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                database_url,
            ])
            .env("SERIN_LOG", "warn")
            .env("SERIN_ADMIN_TOKEN", ADMIN)
            .env("SERIN_OUTBOUND_ALLOW", LOOPBACK)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start serin");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("serin: listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("serin announced its address");
        Server { url, child, dir }
    }

    /// Runs the CLI against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli_at(&self.url, args, None)
    }

    /// Runs the CLI with `stdin` as standard input.
    pub fn cli_stdin(&self, args: &[&str], stdin: &str) -> Output {
        cli_at(&self.url, args, Some(stdin))
    }

    /// Sends SIGTERM and waits; returns whether it exited cleanly within 10 s.
    pub fn terminate(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn cli_at(url: &str, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .env("SERIN_URL", url)
        .env("SERIN_API_KEY", ADMIN)
        .env_remove("SERIN_OUTPUT")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(&stdout(o)).unwrap()
}

/// A PostgreSQL URL scoped to a fresh schema, or None outside CI when unreachable.
pub async fn postgres_schema(name: &str) -> Option<String> {
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
    let schema = format!("serin_e2e_{name}_{}", std::process::id());
    // Schemas left by earlier runs of this test (the server holds connections to
    // the current one until the test ends, so each run clears its predecessors).
    let stale = client
        .query(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1 AND nspname <> $2",
            &[&format!("serin_e2e_{name}_%"), &schema],
        )
        .await
        .unwrap();
    for row in stale {
        let old: String = row.get(0);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {old} CASCADE"))
            .await;
    }
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{sep}options=-csearch_path%3D{schema}"))
}

/// HTTP helpers returning (status, JSON body).
pub async fn send(
    method: reqwest::Method,
    url: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    send_as(ADMIN, method, url, body).await
}

/// Like [`send`], with another key ("" sends none).
pub async fn send_as(
    key: &str,
    method: reqwest::Method,
    url: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let c = reqwest::Client::new();
    let mut req = c.request(method, url);
    if !key.is_empty() {
        req = req.bearer_auth(key);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        },
    )
}

pub async fn post(url: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    send(reqwest::Method::POST, url, Some(body)).await
}

pub async fn get(url: &str) -> (u16, serde_json::Value) {
    send(reqwest::Method::GET, url, None).await
}

pub async fn patch(url: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    send(reqwest::Method::PATCH, url, Some(body)).await
}

/// The outbound policy's allowance every test server starts with: the gates,
/// hooks, notification receivers and health endpoints the tests run listen on
/// loopback, which the policy denies by default. A test of the default passes
/// its own `SERIN_OUTBOUND_ALLOW`.
pub const LOOPBACK: &str = "127.0.0.0/8,::1";

/// A port for a child process to listen on. It comes from below the
/// kernel's ephemeral range (32768–60999 by default), so that the outgoing
/// connections other tests open meanwhile can't take it between this check
/// and the child's bind (a CI run lost a test to exactly that), and a
/// process-wide counter keeps two tests from being handed the same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = std::process::id().wrapping_mul(7919);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 12_000 + (base.wrapping_add(n) % 20_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A child process killed when dropped (also when a test panics).
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `serin` and waits for the stdout line starting with `ready`.
pub fn spawn(args: &[&str], ready: &str) -> Proc {
    spawn_with(args, ready, &[])
}

/// Like [`spawn`], with extra environment variables.
pub fn spawn_with(args: &[&str], ready: &str, env: &[(&str, &str)]) -> Proc {
    let mut child = Command::new(BIN)
        .args(args)
        .env("SERIN_LOG", "warn")
        .env("SERIN_ADMIN_TOKEN", ADMIN)
        .env("SERIN_RATE_LIMIT", "0")
        .env("SERIN_AUTH_FAILURE_LIMIT", "0")
        .env("SERIN_OUTBOUND_ALLOW", LOOPBACK)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let ready = ready.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.starts_with(&ready) {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("ready line");
    Proc(child)
}

pub fn kill(p: &mut Proc) {
    let _ = p.0.kill();
    let _ = p.0.wait();
}
