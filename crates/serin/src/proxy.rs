//! `serin proxy`: a remote data plane that fails static, and the embedded proxy of
//! `serin up --proxy-listen`.
//!
//! A remote proxy long-polls its routes from the control plane (versions; a
//! change arrives within the poll's round trip), keeps the last set on disk
//! (`<state-dir>/routes.json`, written atomically) and serves it whenever the
//! control plane is unreachable — also after its own restart. Lane metrics are
//! drained every second into a bounded buffer and sent home; while the control
//! plane is away they wait, the oldest are dropped when the buffer is full, and the
//! count of dropped seconds travels with the next report. Failed polls back off
//! exponentially (100 ms to 5 s, with jitter).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serin_core::traffic::proxy::{MetricsReport, RouteSet};
use serin_proxy::{Backlog, Proxy, ProxyConfig};
use tokio::net::TcpListener;

use crate::cli::{ClientArgs, ProxyArgs};

/// Most buckets sent in one report.
const REPORT_CHUNK: usize = 5_000;

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Reads a route file: a route set (`{"version", "routes"}`) or `{"routes": [...]}`;
/// the version is recomputed from the routes either way.
fn read_routes(path: &Path) -> anyhow::Result<RouteSet> {
    #[derive(serde::Deserialize)]
    struct File {
        routes: Vec<serin_core::traffic::proxy::ProxyRoute>,
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let f: File = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a route set", path.display()))?;
    for r in &f.routes {
        r.traffic
            .validate()
            .map_err(|e| anyhow::anyhow!("{}: route {}: {e}", path.display(), r.deployment_id))?;
    }
    Ok(RouteSet::new(f.routes))
}

/// Writes the route cache atomically (a reader never sees half a file).
fn write_cache(path: &Path, set: &RouteSet) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(set).map_err(std::io::Error::other)?,
    )?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Runs `serin proxy` until SIGINT or SIGTERM.
pub async fn proxy(client: &ClientArgs, args: ProxyArgs) -> anyhow::Result<()> {
    let level = args.log_level.as_deref().unwrap_or("info");
    // rustls warns of every client that sends an IP address as SNI (wrk,
    // curl by IP): noise per handshake, not the proxy's to fix.
    let filter = if level.contains("rustls") {
        tracing_subscriber::EnvFilter::new(level)
    } else {
        tracing_subscriber::EnvFilter::new(format!("{level},rustls=error"))
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match args.log_format {
        crate::cli::ProxyLogFormat::Text => logs.init(),
        crate::cli::ProxyLogFormat::Json => logs.json().init(),
    }
    let access_log = match &args.access_log {
        Some(path) => Some(
            serin_proxy::access::AccessLog::open(path)
                .with_context(|| format!("cannot open the access log {}", path.display()))?,
        ),
        None => None,
    };
    let control_plane = args.control_plane.clone();
    if control_plane.is_none() && args.routes_file.is_none() {
        anyhow::bail!("give --control-plane URL (SERIN_CONTROL_PLANE) or --routes-file FILE");
    }
    if args.tls_cert.len() != args.tls_key.len() {
        anyhow::bail!(
            "give one --tls-key for each --tls-cert ({} certificates, {} keys)",
            args.tls_cert.len(),
            args.tls_key.len()
        );
    }
    let listener_tls = if args.tls_cert.is_empty() {
        None
    } else {
        let files = args
            .tls_cert
            .iter()
            .zip(&args.tls_key)
            .map(|(cert, key)| serin_proxy::tls::CertFiles {
                cert: cert.clone(),
                key: key.clone(),
            })
            .collect();
        let certs = serin_proxy::tls::Certificates::load(files).map_err(|e| anyhow::anyhow!(e))?;
        certs.watch();
        Some(certs.server_config())
    };
    let upstream_tls = serin_proxy::tls::UpstreamTls {
        ca: args.upstream_ca.clone(),
        client: args
            .upstream_client_cert
            .clone()
            .zip(args.upstream_client_key.clone())
            .map(|(cert, key)| serin_proxy::tls::CertFiles { cert, key }),
    }
    .client_config()
    .map_err(|e| anyhow::anyhow!("upstream TLS: {e}"))?;
    let proxy = Proxy::new(&ProxyConfig {
        keep_seconds: control_plane.is_some(),
        access_log,
        upstream_tls: Some(upstream_tls),
        ..ProxyConfig::default()
    });
    let state_dir = args.state_dir.clone();
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("cannot create the state directory {}", state_dir.display()))?;
    let cache = state_dir.join("routes.json");
    if let Some(f) = &args.routes_file {
        proxy.apply_routes(&read_routes(f)?, "file");
    } else if cache.exists() {
        match read_routes(&cache) {
            Ok(set) => proxy.apply_routes(&set, "cache"),
            Err(e) => tracing::warn!(error = %e, "ignoring an unreadable route cache"),
        }
    }
    let listeners =
        bind_per_core(args.listen).with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listeners[0].local_addr()?;
    let contact = Contact::default();
    if let Some(m) = args.metrics_listen {
        serve_metrics(
            m,
            proxy.clone(),
            control_plane.is_some().then(|| contact.clone()),
        )
        .await?;
    }
    let scheme = if listener_tls.is_some() {
        "https"
    } else {
        "http"
    };
    println!("serin proxy: listening on {scheme}://{addr}");
    let id = format!("proxy-{}", uuid_v4());
    let name = args.name.clone().unwrap_or_else(host_name);
    if let Some(url) = control_plane {
        let mut c = serin_client::Client::new(&url)?;
        if let Some(k) = &client.api_key {
            c = c.with_api_key(k.clone());
        }
        let c = Arc::new(c);
        tokio::spawn(watch_routes(
            c.clone(),
            proxy.clone(),
            cache,
            id.clone(),
            name.clone(),
            contact,
        ));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let metrics = tokio::spawn(send_metrics(c, proxy.clone(), id, args.buffer, stopped));
        let served = serve_on_own_runtimes(listeners, proxy, listener_tls).await;
        // Requests are finished: send every second counted, the open one too.
        let _ = stop.send(true);
        if tokio::time::timeout(FINAL_REPORT_WITHIN, metrics)
            .await
            .is_err()
        {
            tracing::warn!("the last lane seconds could not be sent in time");
        }
        return served;
    }
    serve_on_own_runtimes(listeners, proxy, listener_tls).await
}

/// How long a stopping proxy tries to send its last lane seconds.
const FINAL_REPORT_WITHIN: Duration = Duration::from_secs(10);

/// The proxy's listening sockets: on Linux, one per CPU this process may
/// use, all on `addr` with `SO_REUSEPORT` (the kernel spreads new connections
/// over them); elsewhere, or on one CPU, a single one. The address is first
/// bound without `SO_REUSEPORT`, so a port another process holds is refused
/// as it always was, never silently shared.
fn bind_per_core(addr: SocketAddr) -> std::io::Result<Vec<std::net::TcpListener>> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let probe = std::net::TcpListener::bind(addr)?;
    if cores <= 1 || !cfg!(target_os = "linux") {
        return Ok(vec![probe]);
    }
    let at = probe.local_addr()?;
    drop(probe);
    (0..cores).map(|_| bind_shared(at)).collect()
}

/// A listener on `at` that others of this process share (`SO_REUSEPORT`).
#[cfg(target_os = "linux")]
fn bind_shared(at: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = if at.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(at)?;
    socket.listen(1024)?.into_std()
}

#[cfg(not(target_os = "linux"))]
fn bind_shared(at: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(at)
}

/// Serves the proxy on runtimes of its own, each on its own thread: one
/// single-threaded runtime per listener when there is a listener per CPU (no
/// work-stealing and no cross-thread wake-ups on the request path; each
/// thread forwards through its own upstream connections, see `serin_proxy`),
/// or one runtime with a worker per CPU for a single listener. The
/// control-plane traffic stays on the main runtime. A shutdown signal, or any
/// proxy thread that fails, stops every listener; each lets its connections
/// in flight finish.
async fn serve_on_own_runtimes(
    listeners: Vec<std::net::TcpListener>,
    proxy: Proxy,
    tls: Option<Arc<serin_proxy::tls::ServerConfig>>,
) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let workers = if listeners.len() == 1 { cores } else { 1 };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stop = Arc::new(stop);
    let signal = {
        let stop = stop.clone();
        tokio::spawn(async move {
            crate::up::shutdown_signal().await;
            let _ = stop.send(true);
        })
    };
    let mut running = futures::stream::FuturesUnordered::new();
    let mut result = Ok(());
    for (i, listener) in listeners.into_iter().enumerate() {
        let (proxy, tls, mut stopped) = (proxy.clone(), tls.clone(), stopped.clone());
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("serin-proxy-{i}"))
            .spawn(move || {
                let rt = if workers <= 1 {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                } else {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(workers)
                        .enable_all()
                        .build()
                };
                let result = rt.map_err(anyhow::Error::from).and_then(|rt| {
                    rt.block_on(async move {
                        listener.set_nonblocking(true)?;
                        let listener = TcpListener::from_std(listener)?;
                        let shutdown = async move {
                            let _ = stopped.wait_for(|s| *s).await;
                        };
                        serin_proxy::run_with(listener, proxy, tls, shutdown).await?;
                        Ok(())
                    })
                });
                let _ = done_tx.send(result);
            });
        match spawned {
            Ok(_) => running.push(async move {
                done_rx
                    .await
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a proxy thread died")))
            }),
            Err(e) => {
                result = Err(anyhow::Error::from(e).context("cannot start a proxy thread"));
                let _ = stop.send(true);
                break;
            }
        }
    }
    use futures::StreamExt;
    while let Some(r) = running.next().await {
        if let Err(e) = r {
            tracing::error!(error = %e, "a proxy listener stopped; stopping the others");
            let _ = stop.send(true);
            if result.is_ok() {
                result = Err(e);
            }
        }
    }
    signal.abort();
    result
}

/// How the proxy's calls to the control plane go, for `/metrics`: whether
/// the last one succeeded, and when one last did.
#[derive(Debug, Clone, Default)]
struct Contact(Arc<std::sync::Mutex<(bool, Option<std::time::Instant>)>>);

impl Contact {
    fn record(&self, ok: bool) {
        let mut c = self.0.lock().unwrap_or_else(|e| e.into_inner());
        c.0 = ok;
        if ok {
            c.1 = Some(std::time::Instant::now());
        }
    }

    fn expose(&self, e: &mut serin_metrics::Exposition) {
        let (up, last) = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        e.gauge(
            "serin_proxy_control_plane_up",
            "1 when the proxy's last call to the control plane succeeded",
            &[],
            f64::from(u8::from(up)),
        );
        if let Some(at) = last {
            e.gauge(
                "serin_proxy_control_plane_last_contact_seconds",
                "Seconds since a call to the control plane last succeeded (a proxy long-polls: at least every 20 s)",
                &[],
                at.elapsed().as_secs_f64(),
            );
        }
    }
}

async fn watch_routes(
    c: Arc<serin_client::Client>,
    proxy: Proxy,
    cache: PathBuf,
    id: String,
    name: String,
    contact: Contact,
) {
    let mut backoff = Duration::from_millis(100);
    let mut failures = 0u32;
    loop {
        let have = proxy.version();
        let have = (!have.is_empty()).then_some(have);
        match c.proxy_routes(have.as_deref(), 20, &id, &name).await {
            Ok(set) => {
                contact.record(true);
                if failures > 0 {
                    tracing::info!(after = failures, "control plane reachable again");
                }
                failures = 0;
                backoff = Duration::from_millis(100);
                if have.as_deref() != Some(set.version.as_str()) {
                    proxy.apply_routes(&set, "control plane");
                    if let Err(e) = write_cache(&cache, &set) {
                        tracing::warn!(error = %e, path = %cache.display(), "cannot write the route cache");
                    }
                }
            }
            Err(e) => {
                contact.record(false);
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(error = %e, failures, version = %proxy.version(), "control plane unreachable; serving the last routes");
                }
                let jitter =
                    Duration::from_millis(fastrand::u64(..=backoff.as_millis() as u64 / 4));
                tokio::time::sleep(backoff + jitter).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Sends the proxy's finished seconds home every second; when `stopped` turns
/// true, sends everything it has (trying until its caller's deadline) and
/// returns.
async fn send_metrics(
    c: Arc<serin_client::Client>,
    proxy: Proxy,
    id: String,
    capacity: usize,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let mut pending = Backlog::new(capacity);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = false;
    loop {
        if last {
            if pending.buckets.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        } else {
            last = tokio::select! {
                _ = tick.tick() => false,
                _ = stopped.wait_for(|s| *s) => true,
            };
        }
        if last {
            pending.take_all(&proxy);
        } else {
            pending.take_finished(&proxy, unix_now());
        }
        let Backlog {
            buckets: buf,
            dropped: dropped_total,
            ..
        } = &mut pending;
        while !buf.is_empty() {
            let n = buf.len().min(REPORT_CHUNK);
            let report = MetricsReport {
                proxy_id: id.clone(),
                buckets: buf.iter().take(n).cloned().collect(),
                dropped: *dropped_total,
            };
            match c.report_lane_metrics(&report).await {
                Ok(_) => {
                    buf.drain(..n);
                }
                Err(serin_client::ClientError::Api {
                    status, message, ..
                }) if (400..500).contains(&status)
                    && status != 401
                    && status != 403
                    && status != 429 =>
                {
                    // The control plane refuses these buckets (say, a clock far off):
                    // retrying can't help and would block everything behind them.
                    tracing::warn!(status, %message, buckets = n, "lane metrics refused; dropping them");
                    buf.drain(..n);
                    *dropped_total += n as u64;
                }
                Err(e) => {
                    tracing::debug!(error = %e, buffered = buf.len(), dropped = dropped_total, "cannot send lane metrics; keeping them");
                    break;
                }
            }
        }
    }
}

/// The proxy's admin listener: `/metrics` (its lanes, its contact with the
/// control plane, build and process), `/healthz` (the process answers) and
/// `/readyz` (200 once it has routes, from the control plane, the cache or
/// a file; 503 before).
async fn serve_metrics(
    addr: SocketAddr,
    proxy: Proxy,
    contact: Option<Contact>,
) -> anyhow::Result<()> {
    use axum::http::StatusCode;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for metrics"))?;
    let ready = proxy.clone();
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let (p, contact) = (proxy.clone(), contact.clone());
                async move {
                    let mut e = serin_metrics::Exposition::new();
                    p.expose(&mut e);
                    if let Some(c) = &contact {
                        c.expose(&mut e);
                    }
                    e.build_info();
                    e.process();
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            serin_metrics::CONTENT_TYPE,
                        )],
                        e.render(),
                    )
                }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .route(
            "/readyz",
            axum::routing::get(move || {
                let version = ready.version();
                async move {
                    if version.is_empty() {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "no routes yet\n".to_string(),
                        )
                    } else {
                        (StatusCode::OK, format!("ready: routes {version}\n"))
                    }
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(())
}

/// One row of `serin proxies`.
#[derive(serde::Serialize)]
struct ProxyRow(serde_json::Value);

impl crate::output::Tabular for ProxyRow {
    const HEADERS: &'static [&'static str] = &[
        "NAME",
        "KIND",
        "ROUTE VERSION",
        "CURRENT",
        "CONNECTED",
        "LAST CONTACT",
        "DROPPED",
        "ID",
    ];
    fn row(&self) -> Vec<String> {
        let v = &self.0;
        let s = |k: &str| match &v[k] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let yes = |k: &str| if v[k] == true { "yes" } else { "no" }.to_string();
        vec![
            s("name"),
            s("kind"),
            s("route_version"),
            yes("up_to_date"),
            yes("connected"),
            s("last_contact"),
            s("dropped_buckets"),
            s("id"),
        ]
    }
}

/// `serin proxies`: the control plane's list of proxies.
pub async fn list(args: &ClientArgs) -> anyhow::Result<()> {
    let v = crate::commands::client(args)?.proxies().await?;
    match args.output {
        o @ (crate::cli::Output::Json | crate::cli::Output::Yaml) => crate::output::emit(o, &v)?,
        crate::cli::Output::Table => {
            println!(
                "route version now: {}",
                v["route_version"].as_str().unwrap_or("?")
            );
            let rows: Vec<ProxyRow> = v["proxies"]
                .as_array()
                .into_iter()
                .flatten()
                .cloned()
                .map(ProxyRow)
                .collect();
            println!("{}", crate::output::table(&rows));
        }
    }
    Ok(())
}

fn uuid_v4() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "proxy".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One listener per CPU, all on the one port the first was given, each
    /// accepting: the kernel hands every one of them connections.
    #[tokio::test]
    async fn a_listener_per_core_on_one_port() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let all = bind_per_core("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_eq!(all.len(), cores);
        let port = all[0].local_addr().unwrap().port();
        assert!(all.iter().all(|l| l.local_addr().unwrap().port() == port));
        for l in &all {
            l.set_nonblocking(true).unwrap();
        }
        // Connections spread over the listeners (SO_REUSEPORT hashes by the
        // client's address); every one is accepted by one of them.
        let clients: Vec<_> = (0..64)
            .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let per: Vec<usize> = all
            .iter()
            .map(|l| std::iter::from_fn(|| l.accept().ok()).count())
            .collect();
        assert_eq!(per.iter().sum::<usize>(), clients.len(), "{per:?}");
        if cores > 1 {
            assert!(per.iter().filter(|n| **n > 0).count() > 1, "{per:?}");
        }
    }
}
