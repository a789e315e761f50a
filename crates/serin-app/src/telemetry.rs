//! Serin's own counters: API requests by route template, method and status
//! code, and their times as a histogram by route template and method; login
//! attempts by outcome; delivery attempts (notifications, hooks) by outcome;
//! and how long the controller's ticks take, as a histogram. `serin-server` counts requests into them and renders them in
//! Prometheus text on `/metrics`. They live in memory and start at zero with
//! the process, which is what Prometheus's `rate()` expects.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the tick histogram's buckets, seconds.
const TICK_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Upper bounds of the API latency histogram's buckets, seconds.
const REQUEST_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Answered requests by (route template, method, status).
type RequestCounts = BTreeMap<(String, String, u16), u64>;

/// Request times by (route template, method).
type RequestTimes = BTreeMap<(String, String), Histogram<{ REQUEST_BUCKETS.len() }>>;

/// Counts per bucket (cumulative by construction: an observation counts in
/// every bucket whose bound it is under), the count and the sum.
#[derive(Debug, Clone, Copy)]
struct Histogram<const N: usize> {
    buckets: [u64; N],
    count: u64,
    sum: f64,
}

impl<const N: usize> Default for Histogram<N> {
    fn default() -> Self {
        Histogram {
            buckets: [0; N],
            count: 0,
            sum: 0.0,
        }
    }
}

impl<const N: usize> Histogram<N> {
    fn record(&mut self, bounds: &[f64; N], secs: f64) {
        for (b, le) in self.buckets.iter_mut().zip(bounds) {
            if secs <= *le {
                *b += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }

    fn cumulative(&self, bounds: &[f64; N]) -> Vec<(f64, u64)> {
        bounds.iter().copied().zip(self.buckets).collect()
    }
}

/// Request counters and the tick histogram.
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    requests: Arc<Mutex<RequestCounts>>,
    times: Arc<Mutex<RequestTimes>>,
    ticks: Arc<Mutex<Histogram<{ TICK_BUCKETS.len() }>>>,
    logins: Arc<Mutex<BTreeMap<&'static str, u64>>>,
    deliveries: Arc<Mutex<BTreeMap<(&'static str, &'static str), u64>>>,
    /// The deployments the last scrape showed live, so that one that ended
    /// since is shown once more, with how it ended, and then no more.
    live_at_last_scrape: Arc<Mutex<std::collections::BTreeSet<String>>>,
}

impl Telemetry {
    /// Counts one answered request and its time.
    pub fn count(&self, route: &str, method: &str, status: u16, took: Duration) {
        *self
            .requests
            .lock()
            .expect("requests lock")
            .entry((route.to_string(), method.to_string(), status))
            .or_default() += 1;
        self.times
            .lock()
            .expect("times lock")
            .entry((route.to_string(), method.to_string()))
            .or_default()
            .record(&REQUEST_BUCKETS, took.as_secs_f64());
    }

    /// Counts one delivery attempt: `kind` `notification` or `hook`,
    /// `outcome` `delivered` or `failed`.
    pub fn delivery(&self, kind: &'static str, outcome: &'static str) {
        *self
            .deliveries
            .lock()
            .expect("deliveries lock")
            .entry((kind, outcome))
            .or_default() += 1;
    }

    /// Replaces the deployments live at this scrape; returns the ones live
    /// at the last scrape that no longer are.
    pub fn live_now(&self, live: std::collections::BTreeSet<String>) -> Vec<String> {
        let mut last = self.live_at_last_scrape.lock().expect("live lock");
        let ended = last.difference(&live).cloned().collect();
        *last = live;
        ended
    }

    /// Counts one login attempt by outcome (`success`, `bad_password`,
    /// `unknown_user`, `throttled`, `disabled`).
    pub fn login(&self, outcome: &'static str) {
        *self
            .logins
            .lock()
            .expect("logins lock")
            .entry(outcome)
            .or_default() += 1;
    }

    /// Records one controller tick.
    pub fn tick(&self, took: Duration) {
        self.ticks
            .lock()
            .expect("ticks lock")
            .record(&TICK_BUCKETS, took.as_secs_f64());
    }

    /// The request counters and the tick histogram, for the exposition.
    pub fn expose(&self, e: &mut serin_metrics::Exposition) {
        let help = "API requests answered, by route template, method and status code";
        e.declare_counter("serin_http_requests", help);
        for ((route, method, status), n) in self.requests.lock().expect("requests lock").iter() {
            let code = status.to_string();
            e.counter(
                "serin_http_requests",
                help,
                &[
                    ("route", route.as_str()),
                    ("method", method.as_str()),
                    ("code", code.as_str()),
                ],
                *n,
            );
        }
        for ((route, method), h) in self.times.lock().expect("times lock").iter() {
            e.histogram(
                "serin_http_request_duration_seconds",
                "Time to answer an API request, by route template and method",
                &[("route", route.as_str()), ("method", method.as_str())],
                &h.cumulative(&REQUEST_BUCKETS),
                h.sum,
                h.count,
            );
        }
        let help = "Delivery attempts (kind notification or hook) by outcome (delivered, failed)";
        e.declare_counter("serin_delivery_attempts", help);
        for ((kind, outcome), n) in self.deliveries.lock().expect("deliveries lock").iter() {
            e.counter(
                "serin_delivery_attempts",
                help,
                &[("kind", kind), ("outcome", outcome)],
                *n,
            );
        }
        let help = "Login attempts by outcome";
        e.declare_counter("serin_logins", help);
        for (outcome, n) in self.logins.lock().expect("logins lock").iter() {
            e.counter("serin_logins", help, &[("outcome", outcome)], *n);
        }
        let t = *self.ticks.lock().expect("ticks lock");
        e.histogram(
            "serin_controller_tick_seconds",
            "How long the rollout controller's ticks took",
            &[],
            &t.cumulative(&TICK_BUCKETS),
            t.sum,
            t.count,
        );
    }
}
