//! Health-check probes against the real services of this machine: PostgreSQL,
//! Redis and NATS (local), an HTTP server and a TCP port bound here, and a real
//! Prometheus started by the test (Debian's `prometheus`, scraping itself). Each
//! kind is probed once where it should pass and once where it should fail. A
//! service that isn't running is skipped with a message — except with `CI=true`,
//! where it fails.

use std::time::{Duration, Instant};

use chrono::Utc;
use serin_core::Lane;
use serin_core::judge::health::{CheckResult, CheckType, HealthCheckSpec};
use serin_server::outbound::{Outbound, Policy};
use serin_server::probe::check;

fn spec(check_type: CheckType, endpoint: &str) -> HealthCheckSpec {
    HealthCheckSpec {
        name: format!("{check_type:?}"),
        description: None,
        check_type,
        lane: Lane::Canary,
        endpoint: endpoint.into(),
        expected_status_codes: vec![],
        query: None,
        condition: None,
        interval_seconds: 10,
        timeout_seconds: 3,
        retry_count: 0,
    }
}

async fn probe(s: &HealthCheckSpec) -> CheckResult {
    s.validate().unwrap();
    let url = std::env::var("SERIN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let targets = std::collections::BTreeMap::from([
        ("test".to_string(), url),
        (
            "closed".to_string(),
            format!("postgres://postgres@127.0.0.1:{}/test", closed_port()),
        ),
        (
            "redis-wrong".to_string(),
            "redis://:wrong@127.0.0.1:6379".to_string(),
        ),
    ]);
    check(&loopback_allowed(), &targets, s, Utc::now()).await
}

/// These probes reach services on loopback, which the outbound policy denies
/// unless an admin allows it: this is that admin's setting.
fn loopback_allowed() -> Outbound {
    Outbound::new(Policy::new(
        vec!["127.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()],
        vec![],
    ))
}

/// Whether `addr` accepts connections; outside CI a missing service is a skip.
async fn service(name: &str, addr: &str) -> bool {
    match tokio::net::TcpStream::connect(addr).await {
        Ok(_) => true,
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{name} at {addr} is required in CI: {e}"
            );
            eprintln!("SKIPPED: {name} at {addr} unreachable: {e}");
            false
        }
    }
}

/// A loopback port nobody listens on, below the ephemeral range (32768+), so
/// no other test's `bind(0)` can be handed it after it is released.
fn closed_port() -> u16 {
    let base = 20_000 + (std::process::id() % 10_000) as u16;
    (0..2_000)
        .map(|i| base + i)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below the ephemeral range")
}

#[tokio::test]
async fn http_and_tcp() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/ok", axum::routing::get(|| async { "ok" }))
        .route(
            "/down",
            axum::routing::get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down") }),
        );
    tokio::spawn(async move { axum::serve(l, app).await });
    let r = probe(&spec(CheckType::Http, &format!("http://{addr}/ok"))).await;
    assert!(r.ok, "{r:?}");
    let mut down = spec(CheckType::Http, &format!("http://{addr}/down"));
    down.retry_count = 2;
    let r = probe(&down).await;
    assert!(
        !r.ok && r.attempts == 3 && r.message.contains("503"),
        "{r:?}"
    );
    down.expected_status_codes = vec![200, 503];
    assert!(probe(&down).await.ok);
    assert!(probe(&spec(CheckType::Tcp, &addr.to_string())).await.ok);
    let r = probe(&spec(
        CheckType::Tcp,
        &format!("127.0.0.1:{}", closed_port()),
    ))
    .await;
    assert!(!r.ok && r.message.contains("connect failed"), "{r:?}");
}

#[tokio::test]
async fn postgres_query() {
    if !service("PostgreSQL", "127.0.0.1:5432").await {
        return;
    }
    let mut s = spec(CheckType::Postgres, "target:test");
    let r = probe(&s).await;
    assert!(r.ok && r.message == "query returned 1 row(s)", "{r:?}");
    // The database's own text may quote data: only its SQLSTATE is kept.
    s.query = Some("SELECT * FROM no_such_table_for_serin".into());
    let r = probe(&s).await;
    assert!(
        !r.ok && r.message == "query failed (SQLSTATE 42P01)",
        "{r:?}"
    );
    s.query = Some("SELECT CAST((SELECT 'secret-value') AS int)".into());
    let r = probe(&s).await;
    assert!(!r.ok && !r.message.contains("secret-value"), "{r:?}");
    let r = probe(&spec(CheckType::Postgres, "target:closed")).await;
    assert!(!r.ok && r.message.starts_with("connect failed"), "{r:?}");
    let r = probe(&spec(CheckType::Postgres, "target:nobody-registered")).await;
    assert!(!r.ok && r.message.contains("no database target"), "{r:?}");
}

/// What an engineer tried through a database check: writes, DDL, a second
/// statement after a harmless one, a transaction of its own. None gets through.
#[tokio::test]
async fn a_database_check_cannot_write() {
    if !service("PostgreSQL", "127.0.0.1:5432").await {
        return;
    }
    let url = std::env::var("SERIN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let (db, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    db.batch_execute(
        "DROP TABLE IF EXISTS serin_probe_victim; CREATE TABLE serin_probe_victim (role text); INSERT INTO serin_probe_victim VALUES ('engineer')",
    )
    .await
    .unwrap();
    for (query, why) in [
        ("UPDATE serin_probe_victim SET role = 'admin'", "25006"),
        ("CREATE TABLE serin_probe_made (x int)", "25006"),
        (
            "SELECT 1; UPDATE serin_probe_victim SET role = 'admin'",
            "42601",
        ),
        (
            "COMMIT; UPDATE serin_probe_victim SET role = 'admin'",
            "42601",
        ),
        ("SELECT pg_sleep(30)", "57014"),
    ] {
        let mut s = spec(CheckType::Postgres, "target:test");
        s.timeout_seconds = 20;
        s.query = Some(query.into());
        let r = probe(&s).await;
        assert!(!r.ok, "{query}: {r:?}");
        assert!(r.message.contains(why), "{query}: {r:?}");
    }
    let role: String = db
        .query_one("SELECT role FROM serin_probe_victim", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(role, "engineer");
    let made = db
        .query_opt(
            "SELECT 1 FROM pg_tables WHERE tablename = 'serin_probe_made'",
            &[],
        )
        .await
        .unwrap();
    assert!(made.is_none());
    db.batch_execute("DROP TABLE serin_probe_victim")
        .await
        .unwrap();
}

#[tokio::test]
async fn redis_ping() {
    if !service("Redis", "127.0.0.1:6379").await {
        return;
    }
    let r = probe(&spec(CheckType::Redis, "redis://127.0.0.1:6379/0")).await;
    assert!(r.ok && r.message == "PONG", "{r:?}");
    // A password the server doesn't expect is refused, and says so.
    let r = probe(&spec(CheckType::Redis, "target:redis-wrong")).await;
    assert!(!r.ok && r.message.starts_with("AUTH refused"), "{r:?}");
    // Something that is not Redis (a NATS server greets first, then answers -ERR or closes).
    let r = probe(&spec(
        CheckType::Redis,
        &format!("redis://127.0.0.1:{}", closed_port()),
    ))
    .await;
    assert!(!r.ok, "{r:?}");
}

#[tokio::test]
async fn nats_connect_and_flush() {
    if !service("NATS", "127.0.0.1:4222").await {
        return;
    }
    let r = probe(&spec(CheckType::Nats, "nats://127.0.0.1:4222")).await;
    assert!(r.ok && r.message == "connected and flushed", "{r:?}");
    // Redis is not a NATS server.
    if service("Redis", "127.0.0.1:6379").await {
        let r = probe(&spec(CheckType::Nats, "nats://127.0.0.1:6379")).await;
        assert!(!r.ok, "{r:?}");
    }
}

/// A Prometheus server scraping itself every second.
#[tokio::test]
async fn prometheus_instant_query_with_condition() {
    let port = closed_port();
    let Some(_prom) = crate::app::PrometheusServer::start(port, &[]) else {
        return;
    };
    let base = format!("http://127.0.0.1:{port}");
    let mut up = spec(CheckType::Prometheus, &base);
    up.query = Some("up{job=\"self\"}".into());
    up.condition = Some("== 1".into());
    // Wait for the first scrape (a few seconds after start).
    let deadline = Instant::now() + Duration::from_secs(60);
    let r = loop {
        let r = probe(&up).await;
        if r.ok || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(r.ok && r.message == "value 1 == 1", "{r:?}");
    let mut high = up.clone();
    high.condition = Some("> 1".into());
    let r = probe(&high).await;
    assert!(!r.ok && r.message.contains("does not hold"), "{r:?}");
    let mut empty = up.clone();
    empty.query = Some("up{job=\"nobody\"}".into());
    let r = probe(&empty).await;
    assert!(!r.ok && r.message.contains("no sample"), "{r:?}");
    let mut bad = up.clone();
    bad.query = Some("up{".into());
    let r = probe(&bad).await;
    assert!(!r.ok && r.message.starts_with("query failed"), "{r:?}");
}

/// The default policy doesn't probe loopback, link-local or metadata targets,
/// written as addresses or as names resolving there; such a check is neither
/// a pass nor a failure (`refused`), and the server's own listener is refused
/// even where loopback is allowed.
#[tokio::test]
async fn the_outbound_policy_refuses_inside_targets_without_probing_them() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { "secret" }
        }),
    );
    tokio::spawn(async move { axum::serve(l, app).await });
    let targets = std::collections::BTreeMap::new();
    let default = Outbound::new(Policy::default());
    // A name an admin allowed that resolves into a denied range is judged
    // after resolution.
    let by_name = Outbound::new(Policy::new(
        vec!["localhost".parse().unwrap()],
        vec!["127.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()],
    ));
    let own =
        Outbound::new(
            Policy::new(vec!["127.0.0.0/8".parse().unwrap()], vec![])
                .with_own_listeners([format!("127.0.0.1:{port}").parse().unwrap()]),
        );
    let cases = [
        (
            &default,
            CheckType::Http,
            format!("http://127.0.0.1:{port}/"),
        ),
        (
            &default,
            CheckType::Http,
            format!("http://localhost:{port}/"),
        ),
        (
            &default,
            CheckType::Http,
            format!("http://[::ffff:127.0.0.1]:{port}/"),
        ),
        (&default, CheckType::Tcp, format!("127.0.0.1:{port}")),
        (
            &default,
            CheckType::Http,
            "http://169.254.169.254/latest/meta-data/".into(),
        ),
        (
            &default,
            CheckType::Prometheus,
            format!("http://127.0.0.1:{port}"),
        ),
        (&default, CheckType::Redis, "redis://127.0.0.1:6379".into()),
        (
            &by_name,
            CheckType::Http,
            format!("http://localhost:{port}/"),
        ),
        (&by_name, CheckType::Tcp, format!("localhost:{port}")),
        (&own, CheckType::Http, format!("http://127.0.0.1:{port}/")),
    ];
    for (outbound, kind, endpoint) in cases {
        let mut s = spec(kind, &endpoint);
        if kind == CheckType::Prometheus {
            s.query = Some("up".into());
            s.condition = Some("> 0".into());
        }
        let r = check(outbound, &targets, &s, Utc::now()).await;
        assert!(r.refused && !r.ok, "{endpoint}: {r:?}");
        assert!(
            r.message.contains("outbound policy"),
            "{endpoint}: {}",
            r.message
        );
    }
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    let r = check(
        &loopback_allowed(),
        &targets,
        &spec(CheckType::Http, &format!("http://127.0.0.1:{port}/")),
        Utc::now(),
    )
    .await;
    assert!(r.ok && !r.refused, "{r:?}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}
