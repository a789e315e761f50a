//! Per-deployment, per-lane counting of every request.
//!
//! Two views of the same counts, kept side by side under one short lock per lane:
//!
//! - **Seconds** for the judges: the current second's requests, errors by class
//!   and a log-linear latency histogram; when the clock passes into the next
//!   second the finished one is queued as a [`LaneBucket`] for whoever drains it
//!   (the embedded control plane writes them to the store; a remote proxy sends
//!   them home). A lane that sees no traffic produces no buckets.
//! - **Totals since start** for Prometheus: requests by status code, errors by
//!   class, and a cumulative histogram with fixed `le` bounds.
//!
//! The clock is an argument (`now_sec`), never read here, so tests decide which
//! second a request falls in. A lane's stats outlive route changes: the registry
//! hands the same [`LaneStats`] to every route table that names the deployment.
//! A lane that no table and no request holds any more (its deployment left the
//! route set) is forgotten once its seconds have been drained, so a proxy's
//! memory and `/metrics` follow the routes it serves, not every deployment it
//! ever served.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serin_core::stats::histogram::Histogram;
use serin_core::traffic::proxy::{BucketLane, LaneBucket};

/// Upper bounds of the Prometheus latency histogram, in microseconds (compared
/// as integers, so a bound is exact).
pub const LE_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// Most finished seconds a lane keeps undrained; older ones are dropped and counted.
const MAX_FINISHED: usize = 3600;

/// How a request ended, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered with this status.
    Status(u16),
    /// Connection refused, reset, or no endpoint: the proxy answered this status.
    ConnectError(u16),
    /// The upstream didn't answer in time: the proxy answered this status.
    Timeout(u16),
}

impl Outcome {
    fn code(self) -> u16 {
        match self {
            Outcome::Status(c) | Outcome::ConnectError(c) | Outcome::Timeout(c) => c,
        }
    }
}

#[derive(Debug, Default)]
struct Totals {
    by_code: BTreeMap<u16, u64>,
    errors_5xx: u64,
    errors_connect: u64,
    errors_timeout: u64,
    le: [u64; LE_US.len()],
    count: u64,
    sum_us: u64,
}

#[derive(Debug, Default)]
struct Inner {
    current: Option<LaneBucket>,
    /// The last second handed over as finished: never reopened, so a request
    /// whose clock reading lost the race to the lock counts in a later second
    /// instead of making a second bucket of a second already sent.
    last_closed: i64,
    finished: VecDeque<LaneBucket>,
    dropped: u64,
    totals: Totals,
}

/// One lane of one deployment.
#[derive(Debug)]
pub struct LaneStats {
    deployment_id: Arc<str>,
    lane: BucketLane,
    /// Copies not sent because too many were in flight (the mirror lane only).
    dropped_copies: std::sync::atomic::AtomicU64,
    /// Copies in flight now (the mirror lane only).
    copies: Arc<std::sync::atomic::AtomicUsize>,
    keep_seconds: bool,
    inner: Mutex<Inner>,
    /// The deployment's name and target, for the exposition's labels.
    labels: Mutex<(Arc<str>, Arc<str>)>,
    /// Unused since when (no route holds the lane), and whether a scrape has
    /// shown it since: an ended deployment's series are shown once more, then
    /// forgotten (or after [`UNSHOWN_FOR`] when nobody scrapes).
    unused: Mutex<Option<(std::time::Instant, bool)>>,
}

/// One copy of a request in flight to a canary (see [`LaneStats::copy_slot`]).
#[derive(Debug)]
pub struct CopySlot(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for CopySlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How long an unused lane waits for a scrape to show its last totals.
const UNSHOWN_FOR: std::time::Duration = std::time::Duration::from_secs(600);

impl LaneStats {
    /// Counts a copy of a request that was not sent: too many copies were
    /// in flight (the canary is slow). Only the mirror lane has them.
    pub fn drop_copy(&self) {
        self.dropped_copies
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// A slot for one more copy in flight, if fewer than `limit` are; the
    /// slot is given back when dropped.
    pub fn copy_slot(&self, limit: usize) -> Option<CopySlot> {
        use std::sync::atomic::Ordering::Relaxed;
        self.copies
            .fetch_update(Relaxed, Relaxed, |n| (n < limit).then_some(n + 1))
            .ok()?;
        Some(CopySlot(self.copies.clone()))
    }

    /// Copies not sent so far.
    pub fn dropped_copies(&self) -> u64 {
        self.dropped_copies
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts one request that took `latency_us` to its response headers.
    pub fn record(&self, now_sec: i64, outcome: Outcome, latency_us: u64) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *g;
        let t = &mut inner.totals;
        *t.by_code.entry(outcome.code()).or_default() += 1;
        t.count += 1;
        t.sum_us = t.sum_us.saturating_add(latency_us);
        for (i, le) in LE_US.iter().enumerate() {
            if latency_us <= *le {
                t.le[i] += 1;
            }
        }
        let (e5, ec, et) = match outcome {
            Outcome::Status(c) => (u64::from(c >= 500), 0, 0),
            Outcome::ConnectError(_) => (0, 1, 0),
            Outcome::Timeout(_) => (0, 0, 1),
        };
        t.errors_5xx += e5;
        t.errors_connect += ec;
        t.errors_timeout += et;
        if !self.keep_seconds {
            return;
        }
        let mut now_sec = now_sec.max(inner.last_closed.saturating_add(1));
        if let Some(c) = &inner.current {
            // A late reading joins the open second; only a later one closes it.
            now_sec = now_sec.max(c.second);
            if c.second < now_sec {
                let done = inner.current.take();
                push_finished(inner, done);
            }
        }
        let cur = inner.current.get_or_insert_with(|| LaneBucket {
            deployment_id: self.deployment_id.to_string(),
            lane: self.lane,
            second: now_sec,
            requests: 0,
            errors_5xx: 0,
            errors_connect: 0,
            errors_timeout: 0,
            latency: Histogram::default(),
        });
        cur.requests += 1;
        cur.errors_5xx += e5;
        cur.errors_connect += ec;
        cur.errors_timeout += et;
        cur.latency.record(latency_us);
    }

    /// Takes the seconds finished before `now_sec`.
    fn drain(&self, now_sec: i64, out: &mut Vec<LaneBucket>) -> u64 {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.current.as_ref().is_some_and(|c| c.second < now_sec) {
            let done = g.current.take();
            push_finished(&mut g, done);
        }
        out.extend(g.finished.drain(..));
        std::mem::take(&mut g.dropped)
    }

    /// Whether seconds are waiting to be drained.
    fn pending(&self) -> bool {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.current.is_some() || !g.finished.is_empty()
    }
}

fn push_finished(inner: &mut Inner, b: Option<LaneBucket>) {
    if let Some(b) = b {
        inner.last_closed = inner.last_closed.max(b.second);
        if inner.finished.len() >= MAX_FINISHED {
            inner.finished.pop_front();
            inner.dropped += 1;
        }
        inner.finished.push_back(b);
    }
}

/// A lane of a deployment.
type LaneKey = (Arc<str>, BucketLane);

/// Every lane's stats, by deployment.
#[derive(Debug, Default)]
pub struct Registry {
    lanes: Mutex<HashMap<LaneKey, Arc<LaneStats>>>,
    keep_seconds: bool,
}

impl Registry {
    /// A registry; `keep_seconds` false keeps only the Prometheus totals (nobody
    /// drains the seconds).
    pub fn new(keep_seconds: bool) -> Self {
        Registry {
            lanes: Mutex::default(),
            keep_seconds,
        }
    }

    /// The stats of a lane, created on first use.
    pub fn lane(&self, deployment_id: &str, lane: impl Into<BucketLane>) -> Arc<LaneStats> {
        self.lane_of(deployment_id, lane.into(), "", "")
    }

    /// The stats of a lane of deployment `name` on `target` (the labels of
    /// its series), created on first use.
    pub fn lane_of(
        &self,
        deployment_id: &str,
        lane: BucketLane,
        name: &str,
        target: &str,
    ) -> Arc<LaneStats> {
        let labels = (Arc::from(name), Arc::from(target));
        let mut m = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = m.get(&(Arc::from(deployment_id), lane)) {
            *s.labels.lock().unwrap_or_else(|e| e.into_inner()) = labels;
            *s.unused.lock().unwrap_or_else(|e| e.into_inner()) = None;
            return s.clone();
        }
        let id: Arc<str> = Arc::from(deployment_id);
        let s = Arc::new(LaneStats {
            deployment_id: id.clone(),
            lane,
            dropped_copies: std::sync::atomic::AtomicU64::new(0),
            copies: Arc::default(),
            keep_seconds: self.keep_seconds,
            inner: Mutex::default(),
            labels: Mutex::new(labels),
            unused: Mutex::new(None),
        });
        m.insert((id, lane), s.clone());
        s
    }

    fn all(&self) -> Vec<Arc<LaneStats>> {
        let m = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = m.values().cloned().collect();
        v.sort_by(|a, b| (&a.deployment_id, a.lane).cmp(&(&b.deployment_id, b.lane)));
        v
    }

    /// Takes every second finished before `now_sec`, and how many were dropped
    /// because nobody drained them in time; then forgets the lanes nothing
    /// uses any more.
    pub fn drain(&self, now_sec: i64) -> (Vec<LaneBucket>, u64) {
        let mut out = Vec::new();
        let mut dropped = 0;
        for s in self.all() {
            dropped += s.drain(now_sec, &mut out);
        }
        self.forget_unused();
        (out, dropped)
    }

    /// Drops the lanes that only the registry holds (no route table names
    /// their deployment and no request is counting in them), that have no
    /// seconds left to drain, and whose last totals a scrape has shown (or
    /// that waited [`UNSHOWN_FOR`] for one). Holding the map's lock, nobody
    /// can take a new handle to a lane between the check and its removal.
    pub fn forget_unused(&self) {
        let keep_seconds = self.keep_seconds;
        let now = std::time::Instant::now();
        let mut m = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, s| {
            if Arc::strong_count(s) > 1 || (keep_seconds && s.pending()) {
                return true;
            }
            let mut unused = s.unused.lock().unwrap_or_else(|e| e.into_inner());
            match *unused {
                None => {
                    *unused = Some((now, false));
                    true
                }
                Some((since, shown)) => !shown && now.duration_since(since) < UNSHOWN_FOR,
            }
        });
    }

    /// Whether finished seconds are kept for draining.
    pub fn keeps_seconds(&self) -> bool {
        self.keep_seconds
    }

    /// How many lanes are counted now.
    pub fn len(&self) -> usize {
        self.lanes.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no lane is counted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The totals for the Prometheus exposition: requests by status code,
    /// errors by class, and the latency histogram, per deployment and lane.
    pub fn expose(&self, e: &mut serin_metrics::Exposition) {
        // The lanes no route holds are shown now for the last time.
        // Marked and taken under the one lock: a hand-over can't forget a
        // lane between its marking and its showing.
        let lanes: Vec<Arc<LaneStats>> = {
            let m = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
            let now = std::time::Instant::now();
            for s in m.values() {
                if Arc::strong_count(s) == 1 {
                    let mut unused = s.unused.lock().unwrap_or_else(|e| e.into_inner());
                    *unused = Some((unused.map_or(now, |(since, _)| since), true));
                }
            }
            let mut v: Vec<_> = m.values().cloned().collect();
            v.sort_by(|a, b| (&a.deployment_id, a.lane).cmp(&(&b.deployment_id, b.lane)));
            v
        };
        e.declare_counter(
            "serin_proxy_requests",
            "Requests answered by the proxy, by deployment, lane and status code",
        );
        for s in &lanes {
            let t = {
                let g = s.inner.lock().unwrap_or_else(|e| e.into_inner());
                let t = &g.totals;
                Totals {
                    by_code: t.by_code.clone(),
                    le: t.le,
                    ..*t
                }
            };
            let lane = s.lane.to_string();
            let (name, target) = s.labels.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let at = [
                ("name", &*name),
                ("target", &*target),
                ("deployment_id", &*s.deployment_id),
                ("lane", lane.as_str()),
            ];
            for (code, n) in &t.by_code {
                let code = code.to_string();
                e.counter(
                    "serin_proxy_requests",
                    "Requests answered by the proxy, by deployment, lane and status code",
                    &[at[0], at[1], at[2], at[3], ("code", code.as_str())],
                    *n,
                );
            }
            for (class, n) in [
                ("5xx", t.errors_5xx),
                ("connect", t.errors_connect),
                ("timeout", t.errors_timeout),
            ] {
                e.counter(
                    "serin_proxy_errors",
                    "Failed requests by class: 5xx from the upstream, connect (refused, reset, no endpoint), timeout",
                    &[at[0], at[1], at[2], at[3], ("class", class)],
                    n,
                );
            }
            let cumulative: Vec<(f64, u64)> = LE_US
                .iter()
                .zip(t.le)
                .map(|(le, n)| (*le as f64 / 1e6, n))
                .collect();
            e.histogram(
                "serin_proxy_request_duration_seconds",
                "Time from the request to the upstream's response headers",
                &at,
                &cumulative,
                t.sum_us as f64 / 1e6,
                t.count,
            );
            if s.lane == BucketLane::Mirror {
                e.counter(
                    "serin_proxy_mirror_dropped",
                    "Copies of stable's requests not sent to the canary because too many were in flight",
                    &[at[0], at[1], at[2]],
                    s.dropped_copies(),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serin_core::Lane;

    fn text_of(r: &Registry) -> String {
        let mut e = serin_metrics::Exposition::new();
        r.expose(&mut e);
        e.render()
    }

    #[test]
    fn seconds_roll_over_and_drain() {
        let r = Registry::new(true);
        let s = r.lane("d1", Lane::Canary);
        s.record(100, Outcome::Status(200), 1500);
        s.record(100, Outcome::Status(503), 2500);
        s.record(101, Outcome::ConnectError(502), 10);
        s.record(101, Outcome::Timeout(504), 30_000_000);
        let (b, dropped) = r.drain(101);
        assert_eq!(dropped, 0);
        assert_eq!(b.len(), 1, "second 101 is still running");
        assert_eq!((b[0].second, b[0].requests, b[0].errors_5xx), (100, 2, 1));
        let (b, _) = r.drain(102);
        assert_eq!(
            (b[0].requests, b[0].errors_connect, b[0].errors_timeout),
            (2, 1, 1)
        );
        assert!(r.drain(200).0.is_empty());
        assert!(Arc::ptr_eq(&s, &r.lane("d1", Lane::Canary)));
        let text = text_of(&r);
        assert!(text.contains(
            "serin_proxy_requests_total{name=\"\",target=\"\",deployment_id=\"d1\",lane=\"canary\",code=\"503\"} 1"
        ));
        assert!(text.contains(
            "serin_proxy_errors_total{name=\"\",target=\"\",deployment_id=\"d1\",lane=\"canary\",class=\"timeout\"} 1"
        ));
        assert!(text.contains(
            "serin_proxy_request_duration_seconds_bucket{name=\"\",target=\"\",deployment_id=\"d1\",lane=\"canary\",le=\"0.0025\"} 3"
        ));
        assert!(text.contains(
            "serin_proxy_request_duration_seconds_bucket{name=\"\",target=\"\",deployment_id=\"d1\",lane=\"canary\",le=\"+Inf\"} 4"
        ));
    }

    #[test]
    fn a_second_handed_over_is_never_reopened() {
        let r = Registry::new(true);
        let s = r.lane("d1", Lane::Canary);
        assert!(r.drain(140).0.is_empty());
        // A late clock reading never reopens a second already handed over.
        s.record(150, Outcome::Status(200), 1);
        s.record(149, Outcome::Status(200), 1);
        let (b, _) = r.drain(151);
        assert_eq!((b.len(), b[0].second, b[0].requests), (1, 150, 2));
        s.record(150, Outcome::Status(200), 1);
        let (b, _) = r.drain(152);
        assert_eq!(
            (b.len(), b[0].second),
            (1, 151),
            "counted in the next open second"
        );
    }

    #[test]
    fn a_lane_nothing_holds_is_forgotten_after_its_seconds_are_drained() {
        let r = Registry::new(true);
        let kept = r.lane("d1", Lane::Canary);
        let gone = r.lane("d2", Lane::Canary);
        kept.record(10, Outcome::Status(200), 1);
        gone.record(10, Outcome::Status(200), 1);
        drop(gone);
        // d2's open second still has to be sent: it stays until drained.
        let (b, _) = r.drain(10);
        assert!(b.is_empty());
        assert_eq!(r.len(), 2);
        let (b, _) = r.drain(11);
        assert_eq!(b.len(), 2, "both lanes' second 10 is handed over");
        assert_eq!(r.len(), 2, "d2 waits for a scrape to show its last totals");
        assert!(text_of(&r).contains("d2"), "shown once more");
        r.forget_unused();
        assert_eq!(r.len(), 1, "then d2 is forgotten");
        assert!(!text_of(&r).contains("d2"));
        assert!(text_of(&r).contains("d1"));
        // Without seconds to keep, only the holders and one last scrape count.
        let totals = Registry::new(false);
        totals
            .lane("d3", Lane::Stable)
            .record(1, Outcome::Status(200), 1);
        totals.forget_unused();
        assert!(text_of(&totals).contains("d3"));
        totals.forget_unused();
        assert!(totals.is_empty());
    }

    #[test]
    fn a_full_backlog_drops_the_oldest_second() {
        let r = Registry::new(true);
        let s = r.lane("d", Lane::Stable);
        for sec in 1..=(MAX_FINISHED as i64 + 6) {
            s.record(sec, Outcome::Status(200), 1);
        }
        let (b, dropped) = r.drain(MAX_FINISHED as i64 + 10);
        // The open second joins the backlog when drained: six went over.
        assert_eq!((b.len(), dropped), (MAX_FINISHED, 6));
        assert_eq!(b[0].second, 7, "the oldest seconds went first");
    }

    #[test]
    fn totals_only_without_draining() {
        let r = Registry::new(false);
        let lane = r.lane("d", Lane::Stable);
        lane.record(1, Outcome::Status(200), 1);
        assert!(r.drain(10).0.is_empty());
        assert!(text_of(&r).contains("code=\"200\"} 1"));
    }
}
