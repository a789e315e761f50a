//! Serin's data plane: an HTTP reverse proxy that serves the routes of every
//! deployment, sends each request to the stable or the canary lane, and counts it.
//!
//! This code touches every production request, so it is shaped to never be the
//! reason one fails and never to hide why one did:
//!
//! - **No buffering.** Request and response bodies stream through in both
//!   directions with hyper's back-pressure; a slow client holds only its own
//!   connection. WebSocket (and any HTTP/1.1) upgrades become a byte tunnel.
//! - **No retries.** A canary's refused connection or timeout is answered as 502
//!   or 504 and counted against the canary; retrying on stable would make a bad
//!   canary look healthy. Every such mapping lives in [`failure`].
//! - **Routes swap atomically.** The table is immutable and replaced whole; a
//!   request keeps the table it started with, so in-flight requests finish on the
//!   routes they began on.
//! - **Counting is cheap and exact.** One short lock per request on its lane's
//!   counters; see [`stats`].
//!
//! Layout:
//! - [`table`]: route sets compiled for the hot path; host/prefix matching; pools.
//! - [`stats`]: per-lane, per-second buckets and Prometheus totals.
//! - [`failure`]: failures → 404/502/503/504 and how each is counted.
//! - [`access`]: the optional JSON-lines access log, written off the hot path.
//! - [`mirror`]: copies of stable's requests sent to the canary, answers dropped.
//! - [`tls`]: TLS on the listener (SNI, reload on change) and to `https://` upstreams.
//! - this module: [`Proxy`] (the shared state), [`Proxy::handle`] (one request),
//!   [`run`] (serve a listener until shutdown).
#![forbid(unsafe_code)]

pub mod access;
mod backlog;
pub mod failure;
pub mod mirror;
pub mod stats;
pub mod table;
pub mod tls;

pub use backlog::Backlog;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serin_core::traffic::proxy::RouteSet;
use serin_core::traffic::{RequestView, UpstreamProtocol};
use tokio::net::TcpListener;

use crate::failure::ProxyError;
use crate::stats::{Outcome, Registry};
use crate::table::{CompiledRoute, Table};

/// The body of every response the proxy gives: the upstream's, streamed, or its own.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// Settings of a proxy.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Keep per-second buckets for someone to [`Registry::drain`] (off: only the
    /// Prometheus totals are kept).
    pub keep_seconds: bool,
    /// Longest a TCP connect to an upstream may take.
    pub connect_timeout: Duration,
    /// How long an idle upstream connection stays pooled.
    pub pool_idle_timeout: Duration,
    /// Most idle pooled connections per upstream.
    pub pool_max_idle_per_host: usize,
    /// Where each request is logged, if anywhere.
    pub access_log: Option<access::AccessLog>,
    /// How to talk to `https://` upstreams (default: the Mozilla roots, no
    /// client certificate).
    pub upstream_tls: Option<Arc<rustls::ClientConfig>>,
    /// Most copies of requests one route may have in flight to its canary
    /// at once (see [`mirror`]).
    pub mirror_in_flight: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            keep_seconds: true,
            connect_timeout: Duration::from_secs(5),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 512,
            access_log: None,
            upstream_tls: None,
            mirror_in_flight: mirror::IN_FLIGHT,
        }
    }
}

/// The TLS configuration for `https://` upstreams: the configured one, else
/// the Mozilla roots and no client certificate.
fn upstream_tls(config: &ProxyConfig) -> Arc<rustls::ClientConfig> {
    config.upstream_tls.clone().unwrap_or_else(|| {
        tls::UpstreamTls::default()
            .client_config()
            .expect("the Mozilla roots make a client configuration")
    })
}

/// The upstream clients for one body type: cleartext HTTP/1.1, h2c, and
/// `https://` (HTTP/1.1 over TLS), each with its own pool.
#[derive(Debug)]
struct Clients<B> {
    http1: Client<HttpConnector, B>,
    h2c: Client<HttpConnector, B>,
    https: Client<hyper_rustls::HttpsConnector<HttpConnector>, B>,
}

impl<B> Clients<B>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn new(config: &ProxyConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.connect_timeout));
        let builder = |h2: bool| {
            let mut b = Client::builder(TokioExecutor::new());
            // The timer reaps idle connections past their timeout even when
            // nothing checks one out (each thread has pools of its own).
            b.http1_writev(false)
                .pool_timer(hyper_util::rt::TokioTimer::new())
                .pool_idle_timeout(config.pool_idle_timeout)
                .pool_max_idle_per_host(config.pool_max_idle_per_host)
                .http2_only(h2);
            b
        };
        let tls = upstream_tls(config);
        let mut tls_connector = connector.clone();
        tls_connector.enforce_http(false);
        Clients {
            http1: builder(false).build(connector.clone()),
            h2c: builder(true).build(connector),
            https: builder(false).build(
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config((*tls).clone())
                    .https_only()
                    .enable_http1()
                    .wrap_connector(tls_connector),
            ),
        }
    }

    /// Sends `req` over TLS, h2c or HTTP/1.1.
    fn request(
        &self,
        (tls, h2c): (bool, bool),
        req: Request<B>,
    ) -> hyper_util::client::legacy::ResponseFuture {
        if tls {
            self.https.request(req)
        } else if h2c {
            self.h2c.request(req)
        } else {
            self.http1.request(req)
        }
    }
}

#[derive(Debug)]
struct Inner {
    table: RwLock<Arc<Table>>,
    registry: Registry,
    /// The upstream clients of each thread that forwards requests: a
    /// thread's requests check connections out of its own pool (no lock
    /// another thread takes), and each connection's task runs on the thread
    /// that opened it.
    upstreams: thread_local::ThreadLocal<Clients<Incoming>>,
    config: ProxyConfig,
    mirrors: mirror::Mirrors,
    access_log: Option<access::AccessLog>,
}

/// A proxy: its route table, its counters and its upstream connection pools.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

/// Headers that describe one connection, not the message: never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// A request's headers as the lane choice reads them. With the route's parsed
/// names ([`table::ParsedNames`]) a lookup by one of the chooser's own names skips
/// parsing the name again: the common case on the hot path.
#[derive(Debug)]
pub struct HeaderView<'a> {
    headers: &'a HeaderMap,
    names: Option<&'a table::ParsedNames>,
}

impl<'a> HeaderView<'a> {
    /// A view that parses names on each lookup.
    pub fn new(headers: &'a HeaderMap) -> Self {
        HeaderView {
            headers,
            names: None,
        }
    }

    /// A view that uses names parsed once for a chooser.
    pub fn with_names(headers: &'a HeaderMap, names: &'a table::ParsedNames) -> Self {
        HeaderView {
            headers,
            names: Some(names),
        }
    }
}

impl RequestView for HeaderView<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        let v = match self.names.and_then(|n| n.get(name)) {
            Some(parsed) => self.headers.get(parsed),
            None => self.headers.get(name),
        };
        v.and_then(|v| v.to_str().ok())
    }
    fn cookie_headers(&self) -> impl Iterator<Item = &str> {
        self.headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
    }
}

/// Unix seconds now.
pub(crate) fn now_sec() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Proxy {
    /// A proxy with no routes yet (every request is a 404 until [`Proxy::set_routes`]).
    pub fn new(config: &ProxyConfig) -> Proxy {
        // Resolved once: each thread's clients share it (and its session cache).
        let config = &ProxyConfig {
            upstream_tls: Some(upstream_tls(config)),
            ..config.clone()
        };
        Proxy {
            inner: Arc::new(Inner {
                table: RwLock::new(Arc::new(Table::default())),
                registry: Registry::new(config.keep_seconds),
                access_log: config.access_log.clone(),
                upstreams: thread_local::ThreadLocal::new(),
                config: config.clone(),
                mirrors: mirror::Mirrors::new(config),
            }),
        }
    }

    /// Replaces the route table. Returns the routes that could not be compiled
    /// (they are left out; the others serve).
    pub fn set_routes(&self, set: &RouteSet) -> Vec<String> {
        let (table, problems) = Table::compile(set, &self.inner.registry);
        let old = std::mem::replace(
            &mut *self.inner.table.write().unwrap_or_else(|e| e.into_inner()),
            Arc::new(table),
        );
        drop(old);
        self.inner.registry.forget_unused();
        problems
    }

    /// Replaces the route table and logs the outcome: each route left out as a
    /// warning, the version now in use (and where it came from) as info.
    pub fn apply_routes(&self, set: &RouteSet, source: &str) {
        for p in self.set_routes(set) {
            tracing::warn!(problem = %p, "route left out");
        }
        tracing::info!(version = %set.version, routes = set.routes.len(), source, "route version in use");
    }

    /// The route table in use.
    pub fn table(&self) -> Arc<Table> {
        self.inner
            .table
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The version of the routes in use (empty before the first set).
    pub fn version(&self) -> String {
        self.table().version.clone()
    }

    /// The counters.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The Prometheus exposition: request totals, errors, latency histograms, and
    /// each route's canary percentage.
    pub fn expose(&self, e: &mut serin_metrics::Exposition) {
        let table = self.table();
        self.inner.registry.expose(e);
        if !self.inner.registry.keeps_seconds() {
            self.inner.registry.forget_unused();
        }
        let help = "The canary's share of each route now, 0 to 1";
        e.declare_gauge("serin_proxy_canary_weight", help);
        for r in table.routes() {
            e.gauge(
                "serin_proxy_canary_weight",
                help,
                &[
                    ("name", &r.name),
                    ("target", &r.target),
                    ("deployment_id", &r.deployment_id),
                ],
                f64::from(r.percent) / 100.0,
            );
        }
        if let Some(log) = &self.inner.access_log {
            e.counter(
                "serin_proxy_access_log_dropped",
                "Access log lines dropped because the writer could not keep up",
                &[],
                log.dropped(),
            );
        }
        e.gauge(
            "serin_proxy_routes",
            "Routes in the table now",
            &[],
            table.len() as f64,
        );
    }

    /// [`Proxy::expose`] as the Prometheus text format.
    pub fn prometheus(&self) -> String {
        let mut e = serin_metrics::Exposition::new();
        self.expose(&mut e);
        e.render()
    }

    /// Proxies one request from `client` that came in cleartext.
    pub async fn handle(&self, req: Request<Incoming>, client: SocketAddr) -> Response<ProxyBody> {
        self.handle_from(req, client, false).await
    }

    /// Proxies one request from `client`; `secure` when it came over TLS.
    pub async fn handle_from(
        &self,
        mut req: Request<Incoming>,
        client: SocketAddr,
        secure: bool,
    ) -> Response<ProxyBody> {
        let table = self.table();
        let upgrade = is_upgrade(req.headers()).then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| parts.uri.host());
        let Some(route) = table.find(host, parts.uri.path()) else {
            return ProxyError::NoRoute.response().map(Either::Right);
        };
        let choice = if route.live {
            route.chooser.choose(
                &HeaderView::with_names(&parts.headers, &route.names),
                route.percent,
                fastrand::u32(..10_000),
            )
        } else {
            serin_core::traffic::Choice {
                lane: if route.percent >= 100 {
                    serin_core::Lane::Canary
                } else {
                    serin_core::Lane::Stable
                },
                reason: serin_core::traffic::Reason::Whole,
                set_cookie: false,
            }
        };
        let i = CompiledRoute::idx(choice.lane);
        if choice.lane == serin_core::Lane::Stable
            && let Some(m) = &route.mirror
            && upgrade.is_none()
            && hyper::body::Body::is_end_stream(&body)
            && fastrand::u32(..10_000) < m.share
        {
            self.inner.mirrors.copy(route, m, &parts, (client, secure));
        }
        let started = Instant::now();
        let endpoint = route.pools[i].pick();
        let result = match &endpoint {
            Some(endpoint) => {
                self.forward(
                    route,
                    i,
                    endpoint,
                    (&mut parts, body, upgrade),
                    (client, secure),
                )
                .await
            }
            None => Err(ProxyError::NoEndpoint(choice.lane)),
        };
        let latency = started.elapsed().as_micros() as u64;
        if let Some(log) = &self.inner.access_log {
            let status = match &result {
                Ok(r) => r.status().as_u16(),
                Err(e) => e.status().as_u16(),
            };
            log.record(&access::Entry {
                time: access::now(),
                route: &route.target,
                deployment: &route.name,
                deployment_id: &route.deployment_id,
                lane: choice.lane.as_str(),
                upstream: endpoint.as_ref().map_or("", |e| e.authority.as_str()),
                status,
                duration_ms: latency as f64 / 1000.0,
            });
        }
        match result {
            Ok(mut resp) => {
                route.stats[i].record(now_sec(), Outcome::Status(resp.status().as_u16()), latency);
                if choice.set_cookie
                    && let Some(c) = route.affinity_max_age.and_then(|age| {
                        let path = route.path_prefix.as_deref().unwrap_or("/");
                        route.chooser.affinity_cookie(choice.lane, path, age)
                    })
                    && let Ok(v) = HeaderValue::from_str(&c)
                {
                    resp.headers_mut().append(header::SET_COOKIE, v);
                }
                resp.map(Either::Left)
            }
            Err(e) => {
                if let Some(o) = e.outcome() {
                    route.stats[i].record(now_sec(), o, latency);
                }
                tracing::debug!(deployment = %route.deployment_id, lane = %choice.lane, error = ?e, "proxying failed");
                e.response().map(Either::Right)
            }
        }
    }

    async fn forward(
        &self,
        route: &CompiledRoute,
        i: usize,
        endpoint: &table::Endpoint,
        (req, body, client_upgrade): (
            &mut http::request::Parts,
            Incoming,
            Option<hyper::upgrade::OnUpgrade>,
        ),
        (client, secure): (SocketAddr, bool),
    ) -> Result<Response<Incoming>, ProxyError> {
        let lane = if i == 1 {
            serin_core::Lane::Canary
        } else {
            serin_core::Lane::Stable
        };
        let upgrade = client_upgrade.is_some();
        let tls = endpoint.scheme == http::uri::Scheme::HTTPS;
        let h2c = route.protocol == UpstreamProtocol::H2c && !upgrade && !tls;

        let uri = upstream_uri(endpoint, &req.uri).map_err(|e| ProxyError::Connect(lane, e))?;
        let mut up = Request::builder()
            .method(req.method.clone())
            .uri(uri)
            .version(if h2c {
                Version::HTTP_2
            } else {
                Version::HTTP_11
            })
            .body(body)
            .map_err(|e| ProxyError::Connect(lane, e.to_string()))?;
        let headers = up.headers_mut();
        *headers = std::mem::take(&mut req.headers);
        upstream_headers(
            headers,
            endpoint,
            (h2c, upgrade),
            &req.uri,
            (client, secure),
        );

        let sent = {
            // Released however this ends, also when the client goes away mid-wait.
            let _in_flight = InFlight::new(&endpoint.in_flight);
            let response = self
                .inner
                .upstreams
                .get_or(|| Clients::new(&self.inner.config))
                .request((tls, h2c), up);
            tokio::time::timeout(route.timeout, response).await
        };
        let mut resp = match sent {
            Err(_) => return Err(ProxyError::Timeout(lane, route.timeout)),
            Ok(Err(e)) if caused_by_client(&e) => {
                return Err(ProxyError::ClientAborted(error_chain(&e)));
            }
            Ok(Err(e)) => return Err(ProxyError::Connect(lane, error_chain(&e))),
            Ok(Ok(r)) => r,
        };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(client_upgrade) = client_upgrade {
                let upstream_upgrade = hyper::upgrade::on(&mut resp);
                tokio::spawn(async move {
                    let (Ok(a), Ok(b)) = (client_upgrade.await, upstream_upgrade.await) else {
                        return;
                    };
                    let _ =
                        tokio::io::copy_bidirectional(&mut TokioIo::new(a), &mut TokioIo::new(b))
                            .await;
                });
            }
        } else {
            strip_hop_by_hop(resp.headers_mut(), false);
        }
        Ok(resp)
    }
}

/// The URI a request goes upstream with: the endpoint's scheme and
/// authority, the client's path and query as they came (shared, not copied).
pub(crate) fn upstream_uri(endpoint: &table::Endpoint, original: &Uri) -> Result<Uri, String> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(endpoint.scheme.clone());
    parts.authority = Some(endpoint.authority.clone());
    parts.path_and_query = Some(
        original
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
    );
    Uri::from_parts(parts).map_err(|e| e.to_string())
}

/// Turns a client's request headers into the upstream's: hop-by-hop headers
/// out (but an upgrade's), `X-Forwarded-For/-Proto/-Host` in, and `Host` the
/// endpoint's (none over h2c, where the URI's authority says it).
pub(crate) fn upstream_headers(
    headers: &mut HeaderMap,
    endpoint: &table::Endpoint,
    (h2c, upgrade): (bool, bool),
    original: &Uri,
    (client, secure): (SocketAddr, bool),
) {
    strip_hop_by_hop(headers, upgrade);
    // Only the proxy marks a copy as one (see `mirror`).
    headers.remove(mirror::X_SERIN_MIRROR);
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) => HeaderValue::from_str(&format!("{prev}, {}", client.ip())).ok(),
        None => Some(ip_header(client.ip())),
    };
    if let Some(v) = xff {
        headers.insert(X_FORWARDED_FOR, v);
    }
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if secure { "https" } else { "http" }),
    );
    // The client's Host (or, over HTTP/2, the URI's authority) as it came.
    let original_host = match headers.get(header::HOST) {
        Some(h) => Some(h.clone()),
        // Host and port only: an authority's user information stays out.
        None => original.authority().and_then(|a| match a.port_u16() {
            Some(p) => HeaderValue::from_str(&format!("{}:{p}", a.host())).ok(),
            None => HeaderValue::from_str(a.host()).ok(),
        }),
    };
    if let Some(h) = original_host {
        headers.insert(X_FORWARDED_HOST, h);
    }
    if h2c {
        headers.remove(header::HOST);
    } else {
        headers.insert(header::HOST, endpoint.host_header.clone());
    }
}

/// Counts a request in flight to an endpoint for as long as it lives.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> InFlight<'a> {
    fn new(n: &'a std::sync::atomic::AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        InFlight(n)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether a failed exchange failed because of the client's side (its request
/// body broke off): not the upstream's fault, so not counted against its lane.
fn caused_by_client(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<hyper::Error>()
            && (h.is_user() || h.is_body_write_aborted())
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The client's address as a header value (no allocation for the usual loopback).
fn ip_header(ip: std::net::IpAddr) -> HeaderValue {
    if ip == std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST) {
        return HeaderValue::from_static("127.0.0.1");
    }
    HeaderValue::from_str(&ip.to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

fn is_upgrade(h: &HeaderMap) -> bool {
    h.contains_key(header::UPGRADE)
        && h.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

fn strip_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the few names a message has, instead of a hashed lookup
    // per hop-by-hop name: most messages carry none, or only `Connection`.
    let present = h
        .keys()
        .any(|k| k == header::UPGRADE || HOP_BY_HOP.iter().any(|n| n == k));
    if !present && !keep_upgrade {
        return;
    }
    if h.contains_key(header::CONNECTION) {
        strip_named(h, keep_upgrade);
    }
    // `TE: trailers` is the one TE value that may be forwarded (gRPC over h2c needs it).
    let te_trailers = h
        .get(header::TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    for n in &HOP_BY_HOP {
        if !(keep_upgrade && n == header::CONNECTION) {
            h.remove(n);
        }
    }
    if te_trailers {
        h.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if keep_upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        h.remove(header::UPGRADE);
    }
}

/// Removes the headers that `Connection` names.
fn strip_named(h: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !(keep_upgrade && n == header::UPGRADE))
        .collect();
    for n in named {
        h.remove(n);
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Time a client has to send a request's headers (and its first byte).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts the next connection (with `TCP_NODELAY`). A failed accept — out of
/// file descriptors and the like — waits 50 ms and tries again: a server
/// neither spins nor dies on it.
pub async fn accept(listener: &TcpListener) -> (tokio::net::TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                return (stream, addr);
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Whether a new connection sends its first byte within `wait`. Telling
/// HTTP/1 from HTTP/2 waits for the first bytes before any header timer runs,
/// so a server closes a connection that sends nothing at all when this is false.
pub async fn speaks_within(stream: &tokio::net::TcpStream, wait: Duration) -> bool {
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout(wait, stream.peek(&mut first)).await,
        Ok(Ok(n)) if n > 0
    )
}

/// Runs a connection's `served` future, but drops it (closing the
/// connection) when no request has begun within [`HEADER_TIMEOUT`]: telling
/// HTTP/1 from HTTP/2 has no timer of its own, so a TLS client that sends
/// nothing after its handshake, or an HTTP/2 preface that stalls, would
/// otherwise hold its socket for good.
async fn unless_silent<F: Future>(served: F, began: &std::sync::atomic::AtomicBool) {
    tokio::pin!(served);
    tokio::select! {
        _ = &mut served => {}
        () = async {
            tokio::time::sleep(HEADER_TIMEOUT).await;
            if began.load(Ordering::Relaxed) {
                std::future::pending::<()>().await;
            }
        } => {}
    }
}

/// Serves `proxy` on `listener` (HTTP/1.1 and h2c, with upgrades) until
/// `shutdown` resolves, then lets the connections in flight finish (at most 30 s).
pub async fn run(
    listener: TcpListener,
    proxy: Proxy,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run_with(listener, proxy, None, shutdown).await
}

/// [`run`], terminating TLS with `tls` when given (HTTP/2 or HTTP/1.1 by
/// ALPN); a handshake must finish within the header timeout.
pub async fn run_with(
    listener: TcpListener,
    proxy: Proxy,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // Small answers are copied into one buffer and written with one call; a client
    // gets 30 s to send a request's headers (a slow-headers attack holds nothing longer).
    builder
        .http1()
        .writev(false)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            c = accept(&listener) => c,
            () = &mut shutdown => break,
        };
        let p = proxy.clone();
        let secure = acceptor.is_some();
        let began = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let begun = began.clone();
        let service = hyper::service::service_fn(move |req| {
            let p = p.clone();
            begun.store(true, Ordering::Relaxed);
            async move { Ok::<_, Infallible>(p.handle_from(req, addr, secure).await) }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            if !speaks_within(&stream, HEADER_TIMEOUT).await {
                return;
            }
            match acceptor {
                None => {
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    unless_silent(watcher.watch(conn), &began).await;
                }
                Some(acceptor) => {
                    let stream =
                        match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(client = %addr, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        };
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    unless_silent(watcher.watch(conn), &began).await;
                }
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(30), graceful.shutdown()).await;
    Ok(())
}
