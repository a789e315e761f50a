//! `serin up` and `serin migrate`.

use std::io::{IsTerminal, Write};

use anyhow::Context;
use serin_core::auth::Role;
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

/// Binds the listeners, opens and migrates the database, announces the address on
/// stdout (`serin: listening on http://ADDR`, the one line scripts wait for), then
/// serves until SIGINT or SIGTERM.
pub async fn up(settings: Settings) -> anyhow::Result<()> {
    init_logs(&settings);
    // Connections are file descriptors: use what the system allows this process.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(open_files = n, "file-descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the file-descriptor limit"),
    }
    // The ports first: a busy one fails before the database is touched.
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let proxy_listener = match settings.proxy_listen {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .with_context(|| format!("cannot listen on {a} for the proxy"))?,
        ),
        None => None,
    };
    let _only_replica = match serin_store::sqlite_file(&settings.database_url) {
        Some(file) => Some(lock_sqlite(&file)?),
        None => None,
    };
    let store = open(&settings.database_url, settings.max_connections).await?;
    let report = store
        .migrate()
        .await
        .context("cannot migrate the database")?;
    if !report.applied.is_empty() {
        tracing::info!(applied = ?report.applied, "applied migrations");
    }
    let addr = listener.local_addr()?;
    tracing::info!(%addr, database = %redact_url(&settings.database_url), version = env!("CARGO_PKG_VERSION"), "serin is up");
    // The server never calls itself on a plan's behalf.
    let mut config = settings.server.clone();
    let mut own = vec![addr];
    if let Some(l) = &proxy_listener {
        own.push(l.local_addr()?);
    }
    config.outbound = config.outbound.with_own_listeners(own);
    let mut state = AppState::new(store, config);
    if proxy_listener.is_some() {
        state = state.with_proxy(serin_proxy::Proxy::new(&serin_proxy::ProxyConfig::default()));
    }
    if let Some(key) = bootstrap_admin(&state).await? {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "serin: first start: admin API key (shown once, keep it): {key}"
        )?;
        out.flush()?;
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "serin: listening on http://{addr}")?;
        out.flush()?;
    }
    let proxy_addr = proxy_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let runtime = serin_server::runtime::Runtime::start(&state, proxy_listener).await;
    if let Some(paddr) = proxy_addr {
        let mut out = std::io::stdout().lock();
        writeln!(out, "serin: proxy listening on http://{paddr}")?;
        out.flush()?;
    }
    let app = serin_server::app(state);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(serin_server::run_with(
        listener,
        app,
        settings.limits,
        async {
            let _ = stopped.await;
        },
    ));
    tokio::select! {
        ended = &mut server => {
            runtime.shutdown(SHUTDOWN_GRACE).await;
            ended??;
            return Ok(());
        }
        () = shutdown_signal() => {}
    }
    // The API stops taking connections and finishes its requests while the
    // runtime stops its loops and the embedded proxy drains and stores its
    // last lane seconds.
    let _ = stop.send(());
    let (served, ()) = tokio::join!(
        tokio::time::timeout(SHUTDOWN_GRACE, server),
        runtime.shutdown(SHUTDOWN_GRACE)
    );
    match served {
        Ok(ended) => ended??,
        Err(_) => tracing::warn!(
            grace_secs = SHUTDOWN_GRACE.as_secs(),
            "requests still in flight after the grace period; exiting anyway"
        ),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Makes sure an admin can get in. With `SERIN_ADMIN_TOKEN`, that value becomes a
/// valid admin key (bearer token or `X-API-Key`); otherwise, on the very first start
/// (no key at all), a key is generated and returned to be printed once. With
/// `SERIN_PROXY_TOKEN`, that value becomes a key of the proxy role, for the
/// remote proxies a deployment tool starts beside the control plane.
async fn bootstrap_admin(state: &AppState) -> anyhow::Result<Option<String>> {
    let admin = first_admin(state).await?;
    // After the admin: a proxy key alone must not count as "an admin can get in".
    if let Ok(token) = std::env::var("SERIN_PROXY_TOKEN") {
        bootstrap_token(state, "SERIN_PROXY_TOKEN", &token, Role::Proxy, "proxy").await?;
    }
    Ok(admin)
}

/// `SERIN_ADMIN_TOKEN` as an admin key; else, when there is no key at all,
/// a new admin key, returned to be printed once.
async fn first_admin(state: &AppState) -> anyhow::Result<Option<String>> {
    let store = &state.store;
    if let Ok(token) = std::env::var("SERIN_ADMIN_TOKEN") {
        bootstrap_token(state, "SERIN_ADMIN_TOKEN", &token, Role::Admin, "admin").await?;
        return Ok(None);
    }
    if store.count_api_keys().await? > 0 {
        return Ok(None);
    }
    let (_, key) = serin_server::routes::api_keys::make_key(
        state,
        "admin (first start)",
        Role::Admin,
        "system",
        None,
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot create the first admin key: {e:?}"))?;
    tracing::warn!("created the first admin API key; it is printed once on stdout");
    Ok(Some(key))
}

/// Makes `token` (from the variable `var`) a valid key of `role`, named
/// `LABEL (VAR)`, unless it already is one.
async fn bootstrap_token(
    state: &AppState,
    var: &str,
    token: &str,
    role: Role,
    label: &str,
) -> anyhow::Result<()> {
    let store = &state.store;
    anyhow::ensure!(
        token.len() >= 16 && !token.contains(char::is_whitespace),
        "{var} must be at least 16 characters without spaces"
    );
    let hash = serin_server::auth::hash_key(token);
    match store.api_key_by_hash(&hash).await? {
        Some(k) if k.revoked_at.is_some() => {
            anyhow::bail!("{var} names a revoked key; choose another")
        }
        Some(k) if k.role != role => {
            anyhow::bail!("{var} names a key of the {} role", k.role.as_str())
        }
        Some(_) => Ok(()),
        None => {
            // Key names are unique for good: a rotated token gets a name
            // of its own.
            let make = |name: String| async move {
                serin_server::routes::api_keys::make_key(
                    state,
                    &name,
                    role,
                    "system",
                    Some(token.to_string()),
                )
                .await
            };
            let made = match make(format!("{label} ({var})")).await {
                Ok(k) => Ok(k),
                Err(_) => make(format!("{label} ({var} {})", &hash[..8])).await,
            };
            if let Err(e) = made {
                // Replicas starting together on an empty database race to
                // store the same token: the one that lost finds it.
                match store.api_key_by_hash(&hash).await? {
                    Some(k) if k.revoked_at.is_none() && k.role == role => {}
                    _ => anyhow::bail!("cannot store {var}: {e:?}"),
                }
            }
            Ok(())
        }
    }
}

/// How long requests in flight may take to finish after SIGINT/SIGTERM.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Makes this process the only `serin up` on a SQLite file: an exclusive lock
/// on `FILE.lock` (holding this process's id), released when the process
/// ends, however it ends. SQLite runs one replica; several share PostgreSQL.
fn lock_sqlite(file: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    // One lock per file however it is named (relative, through a symlink).
    let dir = match file.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.canonicalize().with_context(|| {
            format!(
                "the directory {} for the SQLite file does not exist",
                d.display()
            )
        })?,
        None => std::env::current_dir()?,
    };
    let name = file.file_name().context("the SQLite path names no file")?;
    let real = std::fs::canonicalize(dir.join(name)).unwrap_or_else(|_| dir.join(name));
    let mut lock_name = real.as_os_str().to_owned();
    lock_name.push(".lock");
    let path = std::path::PathBuf::from(lock_name);
    let mut lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = lock.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() {
                String::new()
            } else {
                format!(" (pid {holder})")
            };
            anyhow::bail!(
                "{} is in use by another `serin up`{who}: SQLite runs one replica; to run several, give them one PostgreSQL database",
                file.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    lock.set_len(0)?;
    lock.rewind()?;
    write!(lock, "{}", std::process::id())?;
    lock.flush()?;
    Ok(lock)
}

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

pub(crate) async fn shutdown_signal() {
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
