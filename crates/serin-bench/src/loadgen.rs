//! Open-loop load through Serin's proxy: one steady stream of GETs per
//! deployment, sent on schedule whether or not earlier ones have answered (a
//! slow lane doesn't slow the arrivals, as with real users).
//!
//! It judges nothing — the proxy counts every request per lane and the judges
//! read those counts. It only tallies what never reached a lane (transport
//! errors, `404 NO_ROUTE`, the proxy's own `502`/`504`), so an overloaded
//! machine shows in the report instead of passing silently.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

/// Requests that went wrong before or around the upstream, per scenario.
#[derive(Debug, Default)]
pub struct Tally {
    /// Requests sent.
    pub sent: AtomicU64,
    /// No answer: connection failed or the client's timeout passed.
    pub transport: AtomicU64,
    /// 404: the proxy had no route (yet) for the deployment's host.
    pub no_route: AtomicU64,
    /// 502/504 from the proxy: the upstream refused, broke off or was too slow.
    pub proxy_failed: AtomicU64,
    /// The first few of those failures, as the client saw them.
    pub examples: Mutex<Vec<String>>,
}

impl Tally {
    /// `(sent, transport, no_route, proxy_failed)` now.
    pub fn read(&self) -> (u64, u64, u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.transport.load(Ordering::Relaxed),
            self.no_route.load(Ordering::Relaxed),
            self.proxy_failed.load(Ordering::Relaxed),
        )
    }

    fn example(&self, what: String) {
        let mut e = self.examples.lock().unwrap_or_else(|e| e.into_inner());
        if e.len() < 3 {
            e.push(what.chars().take(200).collect());
        }
    }
}

/// A running stream of requests; stops when dropped.
#[derive(Debug)]
pub struct Load(JoinHandle<()>);

impl Drop for Load {
    fn drop(&mut self) {
        // Stops the schedule; requests already sent finish on their own.
        self.0.abort();
    }
}

/// Starts `rps` requests a second to `url` with `Host: host`, the first after
/// `phase` (so that deployments started together don't send in lock-step).
pub fn start(
    client: reqwest::Client,
    url: Arc<str>,
    host: Arc<str>,
    rps: f64,
    phase: Duration,
    tally: Arc<Tally>,
) -> Load {
    Load(tokio::spawn(async move {
        tokio::time::sleep(phase).await;
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rps));
        // Burst (the default): a tick missed while this process was starved of
        // CPU is sent late rather than dropped, keeping the offered rate.
        loop {
            tick.tick().await;
            let (client, url, host, tally) =
                (client.clone(), url.clone(), host.clone(), tally.clone());
            tokio::spawn(async move {
                tally.sent.fetch_add(1, Ordering::Relaxed);
                let r = client
                    .get(&*url)
                    .header(reqwest::header::HOST, &*host)
                    .send()
                    .await;
                match r {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        // Read the body so the connection goes back to the pool.
                        let body = resp.bytes().await;
                        match (status, &body) {
                            (_, Err(e)) => {
                                tally.transport.fetch_add(1, Ordering::Relaxed);
                                tally.example(format!("body: {e}"));
                            }
                            (404, _) => {
                                tally.no_route.fetch_add(1, Ordering::Relaxed);
                            }
                            (502 | 504, Ok(b)) => {
                                tally.proxy_failed.fetch_add(1, Ordering::Relaxed);
                                tally.example(format!("{status}: {}", String::from_utf8_lossy(b)));
                            }
                            _ => {}
                        }
                    }
                    Err(e) => {
                        tally.transport.fetch_add(1, Ordering::Relaxed);
                        tally.example(format!("{e:?}"));
                    }
                }
            });
        }
    }))
}
