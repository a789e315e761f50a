//! Mirroring: a copy of some of the requests stable answers goes to the
//! canary too, and the canary's answer is counted and dropped.
//!
//! A rollout's `mirror` step lets a canary meet real requests before it
//! answers anybody: its answers to the copies are counted in the route's
//! `mirror` lane, which the judges take as the canary's evidence. The one
//! promise to the client is that mirroring never touches its request:
//!
//! - **The client never waits for a copy.** The copy is sent from a task of
//!   its own, started beside the real request; the client's answer is
//!   stable's, whenever the canary answers, or if it never does.
//! - **Copies are bounded, per route.** A route has at most [`IN_FLIGHT`]
//!   copies (the proxy's `mirror_in_flight`) in flight at once. When its
//!   canary is slow or dead the slots fill, and further copies are not sent:
//!   they are counted as dropped (`serin_proxy_mirror_dropped_total`), so a
//!   slow canary costs the proxy a bounded amount of memory, takes no slot of
//!   another deployment's, and the judges see that it was slow from the copies
//!   that did finish.
//! - **Only requests without a body are copied.** The body of a request
//!   streams to stable as it arrives, and keeping a copy would mean holding
//!   it in memory; a request whose body hasn't ended with its headers (any
//!   `Content-Length` above 0, a chunked body, an HTTP/2 or gRPC stream still
//!   open) and an upgrade (WebSocket) are never copied.
//! - **Only Serin marks copies.** An `X-Serin-Mirror` header a client sends
//!   is removed from every request, so a real request can't pass for a copy.
//! - **Copies use connections of their own**, so a canary that holds its
//!   connections never takes a slot in the pools the real requests use.
//!
//! A copy carries the request's method, path and headers as the real request
//! goes upstream (`X-Forwarded-*` included) and `X-Serin-Mirror: 1`, so the
//! canary can tell a copy from a request somebody waits for (and skip side
//! effects it shouldn't repeat). Its latency is measured to the response
//! headers like any request's; its body is read and thrown away so the
//! connection can serve the next copy.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Request, Version};
use http_body_util::{BodyExt, Empty};
use serin_core::traffic::UpstreamProtocol;

use crate::stats::Outcome;
use crate::table::{CompiledRoute, Mirror};
use crate::{Clients, ProxyConfig, now_sec, upstream_headers, upstream_uri};

/// Copies one route may have in flight at once, by default.
pub const IN_FLIGHT: usize = 128;

pub(crate) const X_SERIN_MIRROR: HeaderName = HeaderName::from_static("x-serin-mirror");

/// The copies' clients and the slots that bound them.
#[derive(Debug)]
pub(crate) struct Mirrors {
    clients: Clients<Empty<Bytes>>,
    /// Copies each route may have in flight.
    per_route: usize,
}

impl Mirrors {
    pub(crate) fn new(config: &ProxyConfig) -> Self {
        Mirrors {
            clients: Clients::new(config),
            per_route: config.mirror_in_flight.max(1),
        }
    }

    /// Sends a copy of the request in `parts` (whose body has ended: none
    /// was sent, which the caller checked) to `route`'s canary, in a task of
    /// its own, when the route has a slot free; counts it as dropped
    /// otherwise. Returns at once.
    pub(crate) fn copy(
        &self,
        route: &CompiledRoute,
        mirror: &Mirror,
        parts: &http::request::Parts,
        client: (SocketAddr, bool),
    ) {
        let Some(slot) = mirror.stats.copy_slot(self.per_route) else {
            mirror.stats.drop_copy();
            return;
        };
        let stats = mirror.stats.clone();
        let Some(endpoint) = route.pools[1].pick() else {
            stats.record(now_sec(), Outcome::ConnectError(503), 0);
            return;
        };
        let tls = endpoint.scheme == http::uri::Scheme::HTTPS;
        let h2c = route.protocol == UpstreamProtocol::H2c && !tls;
        let Ok(uri) = upstream_uri(endpoint, &parts.uri) else {
            return;
        };
        let Ok(mut req) = Request::builder()
            .method(parts.method.clone())
            .uri(uri)
            .version(if h2c {
                Version::HTTP_2
            } else {
                Version::HTTP_11
            })
            .body(Empty::new())
        else {
            return;
        };
        let headers = req.headers_mut();
        headers.clone_from(&parts.headers);
        upstream_headers(headers, endpoint, (h2c, false), &parts.uri, client);
        headers.insert(X_SERIN_MIRROR, HeaderValue::from_static("1"));
        let sent = self.clients.request((tls, h2c), req);
        let timeout = route.timeout;
        tokio::spawn(async move {
            let _slot = slot;
            let started = Instant::now();
            let outcome = match tokio::time::timeout(timeout, sent).await {
                Err(_) => (Outcome::Timeout(504), started.elapsed()),
                Ok(Err(_)) => (Outcome::ConnectError(502), started.elapsed()),
                Ok(Ok(resp)) => {
                    let took = started.elapsed();
                    let status = resp.status().as_u16();
                    // Read to the end (so the connection can be used again),
                    // within what is left of the timeout.
                    let mut body = resp.into_body();
                    let left = timeout.saturating_sub(took);
                    let _ = tokio::time::timeout(left, async {
                        while let Some(Ok(_)) = body.frame().await {}
                    })
                    .await;
                    (Outcome::Status(status), took)
                }
            };
            stats.record(now_sec(), outcome.0, outcome.1.as_micros() as u64);
        });
    }
}
