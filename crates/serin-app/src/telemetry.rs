//! Serin's own counters: API requests by route template, method and status;
//! login attempts by outcome; and how long the controller's ticks take, as a
//! histogram. `serin-server` counts requests into them and renders them in
//! Prometheus text on `/metrics`. They live in memory and start at zero with
//! the process, which is what Prometheus's `rate()` expects.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the tick histogram's buckets, seconds.
const TICK_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Answered requests by (route template, method, status).
type RequestCounts = BTreeMap<(String, String, u16), u64>;

/// Request counters and the tick histogram.
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    requests: Arc<Mutex<RequestCounts>>,
    ticks: Arc<Mutex<Ticks>>,
    logins: Arc<Mutex<BTreeMap<&'static str, u64>>>,
}

#[derive(Debug, Default)]
struct Ticks {
    buckets: [u64; TICK_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Telemetry {
    /// Counts one answered request.
    pub fn count(&self, route: &str, method: &str, status: u16) {
        *self
            .requests
            .lock()
            .expect("requests lock")
            .entry((route.to_string(), method.to_string(), status))
            .or_default() += 1;
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
        let secs = took.as_secs_f64();
        let mut t = self.ticks.lock().expect("ticks lock");
        for (b, le) in t.buckets.iter_mut().zip(TICK_BUCKETS) {
            if secs <= le {
                *b += 1;
            }
        }
        t.count += 1;
        t.sum += secs;
    }

    /// The request counters and the tick histogram, for the exposition.
    pub fn expose(&self, e: &mut serin_metrics::Exposition) {
        let help = "API requests answered, by route template, method and status";
        e.declare_counter("serin_http_requests", help);
        for ((route, method, status), n) in self.requests.lock().expect("requests lock").iter() {
            let status = status.to_string();
            e.counter(
                "serin_http_requests",
                help,
                &[
                    ("route", route.as_str()),
                    ("method", method.as_str()),
                    ("status", status.as_str()),
                ],
                *n,
            );
        }
        let help = "Login attempts by outcome";
        e.declare_counter("serin_logins", help);
        for (outcome, n) in self.logins.lock().expect("logins lock").iter() {
            e.counter("serin_logins", help, &[("outcome", outcome)], *n);
        }
        let t = self.ticks.lock().expect("ticks lock");
        let cumulative: Vec<(f64, u64)> = TICK_BUCKETS.iter().copied().zip(t.buckets).collect();
        e.histogram(
            "serin_controller_tick_seconds",
            "How long the rollout controller's ticks took",
            &[],
            &cumulative,
            t.sum,
            t.count,
        );
    }
}
