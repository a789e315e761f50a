//! `serin up` and `serin migrate`.

use std::io::{IsTerminal, Write};

use anyhow::Context;
use serin_server::AppState;
use serin_store::{Store, StoreOptions, redact_url};
use tokio::net::TcpListener;

use crate::config::{LogFormat, Settings};

fn init_logs(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::new(&settings.log_level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match settings.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Opens and migrates the database, binds the listener, announces the address on
/// stdout (`serin: listening on http://ADDR`, the one line scripts wait for), then
/// serves until SIGINT or SIGTERM.
pub async fn up(settings: Settings) -> anyhow::Result<()> {
    init_logs(&settings);
    let store = open(&settings.database_url, settings.max_connections).await?;
    let report = store
        .migrate()
        .await
        .context("cannot migrate the database")?;
    if !report.applied.is_empty() {
        tracing::info!(applied = ?report.applied, "applied migrations");
    }
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, database = %redact_url(&settings.database_url), version = env!("CARGO_PKG_VERSION"), "serin is up");
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "serin: listening on http://{addr}")?;
        out.flush()?;
    }
    let app = serin_server::app(AppState::new(store));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(serin_server::run(listener, app, async {
        let _ = stopped.await;
    }));
    tokio::select! {
        ended = &mut server => {
            ended??;
            return Ok(());
        }
        () = shutdown_signal() => {}
    }
    let _ = stop.send(());
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(ended) => ended??,
        Err(_) => tracing::warn!(
            grace_secs = SHUTDOWN_GRACE.as_secs(),
            "requests still in flight after the grace period; exiting anyway"
        ),
    }
    tracing::info!("stopped");
    Ok(())
}

/// How long requests in flight may take to finish after SIGINT/SIGTERM.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// `serin migrate`.
pub async fn migrate(url: &str, max_connections: usize, json: bool) -> anyhow::Result<()> {
    let store = open(url, max_connections).await?;
    let report = store
        .migrate()
        .await
        .context("cannot migrate the database")?;
    if json {
        println!("{}", report.to_json());
    } else if report.applied.is_empty() {
        println!(
            "{} is up to date (schema version {})",
            redact_url(url),
            report.latest
        );
    } else {
        println!(
            "{}: applied {:?}; now at schema version {}",
            redact_url(url),
            report.applied,
            report.latest
        );
    }
    Ok(())
}

async fn open(url: &str, max_connections: usize) -> anyhow::Result<Store> {
    Store::connect(url, &StoreOptions { max_connections })
        .await
        .with_context(|| format!("cannot open the database {}", redact_url(url)))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
