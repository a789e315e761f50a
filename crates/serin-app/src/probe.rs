//! Health-check probes: the IO behind `serin_core::judge::health`.
//!
//! A supervisor looks at the live deployments every second and starts each
//! check of each rollout when its interval is due (never two of the same check at
//! once). A probe makes up to `1 + retry_count` attempts, each bounded by
//! `timeout_seconds`, half a second apart, and records the last outcome. The
//! protocols are spoken directly where they are small — Redis `PING` in RESP,
//! NATS `CONNECT` + `PING`/`PONG` (what a client's flush does) — and through the
//! real client for PostgreSQL (`tokio-postgres`) and HTTP.
//!
//! Results live in memory: they are fresh observations, not state. After a
//! restart every check is simply probed again, and until its first result the
//! judge calls it inconclusive rather than healthy.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serin_core::judge::health::{CheckResult, CheckType, Condition, HealthCheckSpec};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::App;
use crate::outbound::Outbound;

/// Latest results per deployment, and which probes are due or running.
#[derive(Debug, Clone, Default)]
pub struct Probes {
    results: Arc<Mutex<HashMap<String, Vec<CheckResult>>>>,
    due: Arc<Mutex<HashMap<(String, String), Instant>>>,
    running: Arc<Mutex<HashSet<(String, String)>>>,
}

impl Probes {
    /// The latest result of each check of a deployment.
    pub fn results(&self, deployment: &str) -> Vec<CheckResult> {
        self.results
            .lock()
            .expect("results lock")
            .get(deployment)
            .cloned()
            .unwrap_or_default()
    }

    /// Keeps a check's latest result; true when it has just started failing
    /// (its previous result passed, or there was none).
    fn record(&self, deployment: &str, r: CheckResult) -> bool {
        let mut all = self.results.lock().expect("results lock");
        let list = all.entry(deployment.to_string()).or_default();
        let was_ok = list.iter().find(|x| x.name == r.name).is_none_or(|x| x.ok);
        let started_failing = was_ok && !r.ok;
        list.retain(|x| x.name != r.name);
        list.push(r);
        started_failing
    }
}

/// Runs the supervisor until `shutdown` resolves.
pub async fn run(state: App, shutdown: impl Future<Output = ()>) {
    crate::every_second(shutdown, || supervise(&state)).await;
}

/// Starts the probes that are due.
async fn supervise(state: &App) {
    let live = match state.store.live_deployments().await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "probes cannot read the live deployments");
            return;
        }
    };
    let probes = &state.probes;
    let keep: HashSet<&str> = live.iter().map(|d| d.id.as_str()).collect();
    probes
        .results
        .lock()
        .expect("results lock")
        .retain(|k, _| keep.contains(k.as_str()));
    probes
        .due
        .lock()
        .expect("due lock")
        .retain(|k, _| keep.contains(k.0.as_str()));
    for d in &live {
        let Some(r) = &d.rollout else { continue };
        for spec in &r.spec.health_checks {
            let key = (d.id.clone(), spec.name.clone());
            let now = Instant::now();
            {
                let mut due = probes.due.lock().expect("due lock");
                if due.get(&key).is_some_and(|t| *t > now) {
                    continue;
                }
                if !probes
                    .running
                    .lock()
                    .expect("running lock")
                    .insert(key.clone())
                {
                    continue;
                }
                due.insert(
                    key.clone(),
                    now + Duration::from_secs(u64::from(spec.interval_seconds)),
                );
            }
            let (state, spec) = (state.clone(), spec.clone());
            state.term.clone().spawn(async move {
                let result = check(
                    &state.outbound,
                    &state.config.check_targets,
                    &spec,
                    state.now(),
                )
                .await;
                let at = state.now();
                let result = CheckResult { at, ..result };
                if state.probes.record(&key.0, result.clone()) {
                    failed(&state, &key.0, &spec, &result).await;
                }
                state
                    .probes
                    .running
                    .lock()
                    .expect("running lock")
                    .remove(&key);
            });
        }
    }
}

/// Records that a check has started failing: a `health_check_failed` event
/// (critical on the canary's lane, a warning on stable's), which the stream
/// shows and the notifier sends. Once per failure, not once per probe: the
/// next event comes after the check has passed again.
async fn failed(state: &App, deployment: &str, spec: &HealthCheckSpec, r: &CheckResult) {
    let severity = match r.lane {
        serin_core::Lane::Canary => "critical",
        serin_core::Lane::Stable => "warning",
    };
    let event = serin_core::event::NewEvent {
        kind: serin_core::event::EventType::HealthCheckFailed,
        resource_type: "deployment",
        resource_id: deployment.to_string(),
        deployment_id: Some(deployment.to_string()),
        message: format!(
            "Health check {} on the {} lane failed after {} attempt(s): {}",
            spec.name,
            r.lane.as_str(),
            r.attempts,
            r.message
        ),
        data: serde_json::json!({
            "check": spec.name, "check_type": spec.check_type, "lane": r.lane,
            "severity": severity, "attempts": r.attempts, "message": r.message,
        }),
    };
    match state
        .store
        .append_events(vec![event], "health-monitor", state.now())
        .await
    {
        Ok(events) => state.hub.publish(&events),
        Err(e) => tracing::warn!(deployment, error = %e, "cannot record a failed health check"),
    }
}

/// Probes one check with its retries. A target the outbound policy refuses
/// is not probed: the result says so and counts as neither pass nor failure.
pub async fn check(
    outbound: &Outbound,
    targets: &std::collections::BTreeMap<String, String>,
    spec: &HealthCheckSpec,
    now: serin_core::Timestamp,
) -> CheckResult {
    if spec.target().is_none()
        && let Err(why) = outbound.admit(&spec.endpoint).await
    {
        tracing::warn!(check = %spec.name, %why, "health check not probed");
        return CheckResult {
            name: spec.name.clone(),
            lane: spec.lane,
            ok: false,
            message: why,
            attempts: 0,
            at: now,
            refused: true,
        };
    }
    let timeout = Duration::from_secs(u64::from(spec.timeout_seconds));
    let mut attempts = 0;
    let mut message = String::new();
    for attempt in 0..=spec.retry_count {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        attempts += 1;
        let outcome =
            match tokio::time::timeout(timeout, attempt_once(outbound, targets, spec)).await {
                Ok(r) => r,
                Err(_) => Err(format!("timed out after {}s", spec.timeout_seconds)),
            };
        match outcome {
            Ok(m) => {
                return CheckResult {
                    name: spec.name.clone(),
                    lane: spec.lane,
                    ok: true,
                    message: m,
                    attempts,
                    at: now,
                    refused: false,
                };
            }
            Err(m) => message = m,
        }
    }
    CheckResult {
        name: spec.name.clone(),
        lane: spec.lane,
        ok: false,
        message,
        attempts,
        at: now,
        refused: false,
    }
}

async fn attempt_once(
    outbound: &Outbound,
    targets: &std::collections::BTreeMap<String, String>,
    spec: &HealthCheckSpec,
) -> Result<String, String> {
    match spec.check_type {
        CheckType::Http => {
            let resp = outbound
                .request(reqwest::Method::GET, &spec.endpoint)
                .await?
                .send()
                .await
                .map_err(|e| crate::outbound::describe(&e))?;
            let status = resp.status().as_u16();
            if spec.status_ok(status) {
                Ok(format!("HTTP {status}"))
            } else {
                Err(format!("HTTP {status} is not an expected status"))
            }
        }
        CheckType::Tcp => {
            outbound.connect(&spec.endpoint).await?;
            Ok("connected".into())
        }
        CheckType::Postgres => postgres(targets, spec).await,
        CheckType::Redis => redis(outbound, spec, &resolve(targets, spec, "redis://")?).await,
        CheckType::Nats => nats(outbound, spec, &resolve(targets, spec, "nats://")?).await,
        CheckType::Prometheus => prometheus(outbound, spec).await,
    }
}

/// A check's endpoint: its own URL, or the registered target it names (which
/// must speak `scheme`).
fn resolve(
    targets: &std::collections::BTreeMap<String, String>,
    spec: &HealthCheckSpec,
    scheme: &str,
) -> Result<String, String> {
    let Some(name) = spec.endpoint.strip_prefix("target:") else {
        return Ok(spec.endpoint.clone());
    };
    match targets.get(name) {
        Some(url) if url.starts_with(scheme) => Ok(url.clone()),
        Some(_) => Err(format!("target `{name}` is not a {scheme} target")),
        None => Err(format!("no target `{name}` is registered on this server")),
    }
}

/// Most rows a database check reads before it stops counting.
const MAX_ROWS: usize = 10_000;

/// A database check: one statement (the extended protocol refuses more), in a
/// read-only transaction with a statement and a lock timeout, on a target an
/// admin registered; it reports a row count or a SQLSTATE, never the
/// database's own text (that may quote data: it goes to the log).
async fn postgres(
    targets: &std::collections::BTreeMap<String, String>,
    spec: &HealthCheckSpec,
) -> Result<String, String> {
    let name = spec
        .target()
        .ok_or("not a registered target (`target:NAME`)")?;
    let url = targets
        .get(name)
        .filter(|u| u.starts_with("postgres"))
        .ok_or_else(|| format!("no database target `{name}` is registered on this server"))?;
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| {
            tracing::warn!(target = name, error = %e, "database check cannot connect");
            format!("connect failed{}", pg_code(&e))
        })?;
    let conn = tokio::spawn(connection);
    let query = spec.query.as_deref().unwrap_or("SELECT 1");
    let run = async {
        let tx = client.transaction().await?;
        tx.batch_execute(
            "SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = '5s'; SET LOCAL lock_timeout = '1s'",
        )
        .await?;
        let rows = tx
            .query_raw(
                query,
                std::iter::empty::<&(dyn tokio_postgres::types::ToSql + Sync)>(),
            )
            .await?;
        futures::pin_mut!(rows);
        let mut n = 0usize;
        while n < MAX_ROWS {
            use futures::StreamExt;
            match rows.next().await {
                Some(row) => {
                    row?;
                    n += 1;
                }
                None => break,
            }
        }
        tx.rollback().await?;
        Ok::<usize, tokio_postgres::Error>(n)
    };
    let r = run.await;
    drop(client);
    conn.abort();
    let n = r.map_err(|e| {
        tracing::warn!(target = name, check = %spec.name, error = %e, "database check query failed");
        format!("query failed{}", pg_code(&e))
    })?;
    Ok(format!(
        "query returned {n}{} row(s)",
        if n == MAX_ROWS { "+" } else { "" }
    ))
}

/// ` (SQLSTATE xxxxx)` for an error the database answered, else nothing.
fn pg_code(e: &tokio_postgres::Error) -> String {
    e.code()
        .map(|c| format!(" (SQLSTATE {})", c.code()))
        .unwrap_or_default()
}

/// `scheme://[user[:password]@]host[:port][/…]` → (user, password,
/// host:port), read by the `url` crate: IPv6 hosts in brackets, credentials
/// percent-decoded (a password with `@` or `:` in it is written `%40`,
/// `%3A`), the scheme's TLS form (`rediss://`) refused with the reason.
fn authority(
    url: &str,
    scheme: &str,
    default_port: u16,
) -> Result<(Option<String>, Option<String>, String), String> {
    let u = url::Url::parse(url).map_err(|e| format!("not a {scheme}:// URL: {e}"))?;
    if u.scheme() == format!("{scheme}s") {
        return Err(format!(
            "{scheme}s:// (TLS) is not supported by the {scheme} check; give a {scheme}:// URL"
        ));
    }
    if u.scheme() != scheme {
        return Err(format!("not a {scheme}:// URL"));
    }
    let host = u
        .host()
        .ok_or_else(|| format!("a {scheme}:// URL needs a host"))?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| "credentials that are not UTF-8".to_string())
    };
    let user = match u.username() {
        "" => None,
        name => Some(decode(name)?),
    };
    let password = u.password().map(decode).transpose()?;
    Ok((
        user,
        password,
        format!("{host}:{}", u.port().unwrap_or(default_port)),
    ))
}

/// A connection for a Redis or NATS check: a target an admin registered is
/// trusted as registered (the admin also sets the policy); a URL written in
/// the plan goes through the outbound policy.
async fn connect(
    outbound: &Outbound,
    spec: &HealthCheckSpec,
    host: &str,
) -> Result<TcpStream, String> {
    if spec.target().is_some() {
        TcpStream::connect(host)
            .await
            .map_err(|e| format!("connect failed: {}", e.kind()))
    } else {
        outbound.connect(host).await
    }
}

async fn read_line(r: &mut BufReader<TcpStream>) -> Result<String, String> {
    let mut line = String::new();
    let n = r
        .read_line(&mut line)
        .await
        .map_err(|e| format!("read failed: {}", e.kind()))?;
    if n == 0 {
        return Err("the server closed the connection".into());
    }
    Ok(line.trim_end().to_string())
}

fn bulk(parts: &[&str]) -> String {
    let mut s = format!("*{}\r\n", parts.len());
    for p in parts {
        s.push_str(&format!("${}\r\n{p}\r\n", p.len()));
    }
    s
}

async fn redis(outbound: &Outbound, spec: &HealthCheckSpec, url: &str) -> Result<String, String> {
    let (user, password, host) = authority(url, "redis", 6379)?;
    let stream = connect(outbound, spec, &host).await?;
    let mut r = BufReader::new(stream);
    let mut out = String::new();
    if let Some(p) = &password {
        out.push_str(&match &user {
            Some(u) => bulk(&["AUTH", u, p]),
            None => bulk(&["AUTH", p]),
        });
    }
    out.push_str(&bulk(&["PING"]));
    r.get_mut()
        .write_all(out.as_bytes())
        .await
        .map_err(|e| format!("write failed: {}", e.kind()))?;
    if password.is_some() {
        let auth = read_line(&mut r).await?;
        if !auth.starts_with("+OK") {
            return Err(format!("AUTH refused: {auth}"));
        }
    }
    match read_line(&mut r).await? {
        l if l == "+PONG" => Ok("PONG".into()),
        l => Err(format!("unexpected answer to PING: {l}")),
    }
}

async fn nats(outbound: &Outbound, spec: &HealthCheckSpec, url: &str) -> Result<String, String> {
    let (user, password, host) = authority(url, "nats", 4222)?;
    let stream = connect(outbound, spec, &host).await?;
    let mut r = BufReader::new(stream);
    let info = read_line(&mut r).await?;
    if !info.starts_with("INFO ") {
        return Err(format!(
            "not a NATS server (greeting `{}`)",
            info.chars().take(40).collect::<String>()
        ));
    }
    let mut connect = serde_json::json!({"verbose": false, "pedantic": false, "name": "serin-health", "lang": "rust", "version": env!("CARGO_PKG_VERSION"), "protocol": 1});
    if let Some(u) = user {
        connect["user"] = u.into();
    }
    if let Some(p) = password {
        connect["pass"] = p.into();
    }
    let out = format!("CONNECT {connect}\r\nPING\r\n");
    r.get_mut()
        .write_all(out.as_bytes())
        .await
        .map_err(|e| format!("write failed: {}", e.kind()))?;
    loop {
        match read_line(&mut r).await?.as_str() {
            "PONG" => return Ok("connected and flushed".into()),
            "+OK" | "PING" => {}
            l if l.starts_with("-ERR") => return Err(format!("server refused: {l}")),
            l if l.starts_with("INFO ") => {}
            l => {
                return Err(format!(
                    "unexpected answer: {}",
                    l.chars().take(60).collect::<String>()
                ));
            }
        }
    }
}

async fn prometheus(outbound: &Outbound, spec: &HealthCheckSpec) -> Result<String, String> {
    let query = spec.query.as_deref().unwrap_or_default();
    let condition = spec
        .condition
        .as_deref()
        .and_then(Condition::parse)
        .ok_or("no valid condition")?;
    let url = format!("{}/api/v1/query", spec.endpoint.trim_end_matches('/'));
    let resp = outbound
        .request(reqwest::Method::GET, &url)
        .await?
        .query(&[("query", query)])
        .send()
        .await
        .map_err(|e| crate::outbound::describe(&e))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| crate::outbound::describe(&e))?;
    let samples =
        crate::prometheus::parse(&body).map_err(|e| match e.strip_prefix("Prometheus: ") {
            Some(said) => format!("query failed: {said}"),
            None => format!("HTTP {}: {e}", status.as_u16()),
        })?;
    let value = samples
        .first()
        .map(|s| s.value)
        .ok_or("the query returned no sample")?;
    let text = format!("value {value} {} {}", condition.op, condition.value);
    if condition.holds(value) {
        Ok(text)
    } else {
        Err(format!("{text} does not hold"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        assert_eq!(
            authority("redis://:pw@127.0.0.1:6380/0", "redis", 6379).unwrap(),
            (None, Some("pw".into()), "127.0.0.1:6380".into())
        );
        assert_eq!(
            authority("nats://a:b@host", "nats", 4222).unwrap(),
            (Some("a".into()), Some("b".into()), "host:4222".into())
        );
        assert!(authority("http://x", "redis", 1).is_err());
        assert_eq!(
            authority("redis://[::1]", "redis", 6379).unwrap().2,
            "[::1]:6379"
        );
        assert_eq!(
            authority("redis://[::1]:7000", "redis", 6379).unwrap().2,
            "[::1]:7000"
        );
        assert_eq!(
            authority("redis://u%40x:p%3Aw%40@h:1", "redis", 6379).unwrap(),
            (Some("u@x".into()), Some("p:w@".into()), "h:1".into()),
            "credentials percent-decoded"
        );
        assert!(
            authority("rediss://h", "redis", 6379)
                .unwrap_err()
                .contains("TLS")
        );
        assert!(authority("redis://", "redis", 6379).is_err());
        assert_eq!(bulk(&["PING"]), "*1\r\n$4\r\nPING\r\n");
    }
}
