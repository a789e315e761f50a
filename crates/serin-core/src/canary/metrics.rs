//! Lane metrics over a window, and the health verdict.
//!
//! A [`MetricsSnapshot`] summarises one lane over the deployment's
//! `metrics_window`: job counts and rates from outcome observations, latency
//! percentiles from latency observations (nearest-rank on the exact values, no
//! pre-averaged series), resource use from the lane's workers. Where a lane has no
//! data for a figure the figure is `null`, never a made-up zero.
//!
//! [`evaluate`] runs the five health checks against the deployment's thresholds.
//! The verdict is `unknown` when the canary hasn't reached `required_sample_size`
//! or stable has no requests or jobs to compare with — not enough data is never reported as
//! healthy or failing. Otherwise a failed error-rate check (including the minimum
//! success rate) is `failing` (rollback recommended), a failed latency or
//! throughput check is `warning`, and all-clear is `healthy`. The duration check
//! gates promotion, not health: before `min_canary_duration` it doesn't pass, but
//! the verdict can still be `healthy`.
//!
//! These are fixed-threshold checks, as documented; the sequential
//! statistical judge that stays valid under repeated looks is a separate module.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::canary::Deployment;
use crate::duration::GoDuration;
use crate::stats::histogram::Histogram;
use crate::traffic::proxy::LaneBucket;

/// What one lane did in the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LaneWindow {
    /// Successful jobs or requests.
    pub success: u64,
    /// Failed ones.
    pub errors: u64,
    /// Latencies, ms (from signals and job results, exact).
    pub latencies_ms: Vec<f64>,
    /// Latencies counted by the proxy, in buckets.
    pub latency: Histogram,
    /// Latest `queue_depth` gauge.
    pub queue_depth: Option<f64>,
    /// Latest `dead_letters` gauge.
    pub dead_letters: Option<f64>,
    /// Latest value of every gauge, by name (safety checks and policies read these).
    pub gauges: std::collections::BTreeMap<String, f64>,
}

impl LaneWindow {
    /// Adds a later part of the same lane's window (gauges: the later value wins).
    pub fn merge(&mut self, later: LaneWindow) {
        self.success += later.success;
        self.errors += later.errors;
        self.latencies_ms.extend(later.latencies_ms);
        self.latency.merge(&later.latency);
        if later.queue_depth.is_some() {
            self.queue_depth = later.queue_depth;
        }
        if later.dead_letters.is_some() {
            self.dead_letters = later.dead_letters;
        }
        self.gauges.extend(later.gauges);
    }

    /// Adds one second of proxy counts.
    pub fn add_bucket(&mut self, b: &LaneBucket) {
        let errors = b.errors().min(b.requests);
        self.success += b.requests - errors;
        self.errors += errors;
        self.latency.merge(&b.latency);
    }
}

/// The lane's live workers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LaneWorkers {
    /// Workers not unreachable.
    pub count: u64,
    /// Their memory use, MB.
    pub memory_mb: Vec<f64>,
    /// Their CPU use, percent.
    pub cpu_percent: Vec<f64>,
}

/// A metrics snapshot of one lane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricsSnapshot {
    /// When it was computed.
    pub timestamp: DateTime<Utc>,
    /// Start of the window.
    pub window_start: DateTime<Utc>,
    /// End of the window.
    pub window_end: DateTime<Utc>,
    /// Jobs (or requests) finished.
    pub job_count: u64,
    /// Of which succeeded.
    pub success_count: u64,
    /// Of which failed.
    pub error_count: u64,
    /// Failed share, percent (null without jobs).
    pub error_rate: Option<f64>,
    /// Succeeded share, percent (null without jobs).
    pub success_rate: Option<f64>,
    /// Mean latency, ms.
    pub avg_latency: Option<f64>,
    /// Median latency, ms.
    pub p50_latency: Option<f64>,
    /// 95th percentile latency, ms.
    pub p95_latency: Option<f64>,
    /// 99th percentile latency, ms.
    pub p99_latency: Option<f64>,
    /// Largest latency, ms.
    pub max_latency: Option<f64>,
    /// Jobs per second over the window.
    pub jobs_per_second: f64,
    /// Mean worker memory, MB.
    pub avg_memory_mb: Option<f64>,
    /// Largest worker memory, MB.
    pub peak_memory_mb: Option<f64>,
    /// Mean worker CPU, percent.
    pub avg_cpu_percent: Option<f64>,
    /// Latest queue depth reported.
    pub queue_depth: Option<u64>,
    /// Latest dead-letter count reported.
    pub dead_letters: Option<u64>,
    /// Workers serving the lane.
    pub worker_count: u64,
    /// The lane's version.
    pub version: String,
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The window a deployment's metrics cover at `now`: the last `metrics_window`,
/// but never before the current traffic split took effect (figures never mix
/// two shares), and for an ended deployment, the window up to its end (the one
/// that decided), not a later one of stable alone.
pub fn window(d: &Deployment, now: Timestamp) -> (Timestamp, Timestamp) {
    let end = d.completed_at.unwrap_or(now).min(now);
    let start = (end - d.config.metrics_window.to_chrono())
        .max(d.split_since.unwrap_or(d.start_time))
        .max(d.start_time)
        .min(end);
    (start, end)
}

/// Summarises one lane.
pub fn snapshot(
    lane: &LaneWindow,
    workers: &LaneWorkers,
    version: &str,
    window: (Timestamp, Timestamp),
    now: Timestamp,
) -> MetricsSnapshot {
    let jobs = lane.success + lane.errors;
    let pct = |n: u64| (jobs > 0).then(|| round(n as f64 / jobs as f64 * 100.0, 2));
    let mut lat = lane.latencies_ms.clone();
    lat.sort_by(f64::total_cmp);
    // With proxy histograms, exact values join the buckets and every figure comes
    // from the merged histogram; without, the exact values are used as they are.
    let hist = (!lane.latency.is_empty()).then(|| {
        let mut h = lane.latency.clone();
        for v in &lat {
            h.record_ms(*v);
        }
        h
    });
    let q = |p: f64| match &hist {
        Some(h) => h.quantile_ms(p),
        None => percentile(&lat, p),
    };
    let secs = (window.1 - window.0).num_milliseconds() as f64 / 1000.0;
    let r1 = |o: Option<f64>| o.map(|v| round(v, 1));
    MetricsSnapshot {
        timestamp: now,
        window_start: window.0,
        window_end: window.1,
        job_count: jobs,
        success_count: lane.success,
        error_count: lane.errors,
        error_rate: pct(lane.errors),
        success_rate: pct(lane.success),
        avg_latency: r1(hist.as_ref().map_or_else(|| mean(&lat), Histogram::mean_ms)),
        p50_latency: r1(q(0.50)),
        p95_latency: r1(q(0.95)),
        p99_latency: r1(q(0.99)),
        max_latency: r1(hist
            .as_ref()
            .map_or_else(|| lat.last().copied(), Histogram::max_ms)),
        jobs_per_second: if secs > 0.0 {
            round(jobs as f64 / secs, 2)
        } else {
            0.0
        },
        avg_memory_mb: r1(mean(&workers.memory_mb)),
        peak_memory_mb: r1(workers.memory_mb.iter().copied().reduce(f64::max)),
        avg_cpu_percent: r1(mean(&workers.cpu_percent)),
        queue_depth: lane.queue_depth.map(|v| v.max(0.0) as u64),
        dead_letters: lane.dead_letters.map(|v| v.max(0.0) as u64),
        worker_count: workers.count,
        version: version.to_string(),
    }
}

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Within the threshold.
    Pass,
    /// Beyond it.
    Fail,
    /// Not enough data to say.
    Unknown,
}

/// One of the five health checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthCheck {
    /// The check's name.
    pub name: String,
    /// Whether it passes (false when failing or unknown).
    pub passing: bool,
    /// Pass, fail, or unknown.
    pub status: CheckStatus,
    /// What was measured against what.
    pub message: String,
    /// When it was evaluated.
    pub timestamp: DateTime<Utc>,
}

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// All checks passing.
    Healthy,
    /// Some degradation.
    Warning,
    /// Critical: rollback recommended.
    Failing,
    /// Not enough data.
    Unknown,
}

/// The health answer: the verdict and its five checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthReport {
    /// The verdict.
    pub overall_status: HealthStatus,
    /// Error-rate increase and minimum success rate.
    pub error_rate_check: HealthCheck,
    /// P95 latency increase.
    pub latency_check: HealthCheck,
    /// Throughput decrease (per share of traffic).
    pub throughput_check: HealthCheck,
    /// Canary sample size.
    pub sample_size_check: HealthCheck,
    /// Time since start against the minimum duration.
    pub duration_check: HealthCheck,
    /// When it was evaluated.
    pub last_evaluation: DateTime<Utc>,
}

/// Runs the five checks (see the module docs for how they combine).
pub fn evaluate(
    d: &Deployment,
    stable: &MetricsSnapshot,
    canary: &MetricsSnapshot,
    now: Timestamp,
) -> HealthReport {
    let t = &d.config.rollback_thresholds;
    let check = |name: &str, status: CheckStatus, message: String| HealthCheck {
        name: name.to_string(),
        passing: status == CheckStatus::Pass,
        status,
        message,
        timestamp: now,
    };
    let enough = canary.job_count >= t.required_sample_size.max(1) && stable.job_count > 0;
    let sample = check(
        "Sample Size",
        if enough {
            CheckStatus::Pass
        } else {
            CheckStatus::Unknown
        },
        format!(
            "Sample size: {} (required: {}){}",
            canary.job_count,
            t.required_sample_size,
            if stable.job_count == 0 {
                "; stable has no requests or jobs to compare with yet"
            } else {
                ""
            }
        ),
    );
    let error = match (
        enough,
        stable.error_rate,
        canary.error_rate,
        canary.success_rate,
    ) {
        (true, Some(s), Some(c), Some(ok)) => {
            let inc = round(c - s, 2);
            let fail = inc > t.max_error_rate_increase || ok < t.min_success_rate;
            check(
                "Error Rate",
                if fail {
                    CheckStatus::Fail
                } else {
                    CheckStatus::Pass
                },
                format!(
                    "Error rate increase: {inc:.1}% (threshold: {:.1}%); canary success rate {ok:.2}% (minimum: {:.1}%)",
                    t.max_error_rate_increase, t.min_success_rate
                ),
            )
        }
        _ => check(
            "Error Rate",
            CheckStatus::Unknown,
            "Error rate: not enough data".into(),
        ),
    };
    let latency = match (enough, stable.p95_latency, canary.p95_latency) {
        (true, Some(s), Some(c)) if s > 0.0 => {
            let inc = round((c - s) / s * 100.0, 1);
            check(
                "P95 Latency",
                if inc > t.max_latency_increase {
                    CheckStatus::Fail
                } else {
                    CheckStatus::Pass
                },
                format!(
                    "P95 latency increase: {inc:.1}% (threshold: {:.1}%)",
                    t.max_latency_increase
                ),
            )
        }
        _ => check(
            "P95 Latency",
            CheckStatus::Unknown,
            "P95 latency: not enough data".into(),
        ),
    };
    let share = f64::from(d.current_percent) / 100.0;
    let throughput = if enough && share > 0.0 && share < 1.0 && stable.jobs_per_second > 0.0 {
        let per_share_canary = canary.jobs_per_second / share;
        let per_share_stable = stable.jobs_per_second / (1.0 - share);
        let dec = round((1.0 - per_share_canary / per_share_stable) * 100.0, 1);
        check(
            "Throughput",
            if dec > t.max_throughput_decrease {
                CheckStatus::Fail
            } else {
                CheckStatus::Pass
            },
            format!(
                "Throughput decrease: {dec:.1}% (threshold: {:.1}%)",
                t.max_throughput_decrease
            ),
        )
    } else {
        check(
            "Throughput",
            CheckStatus::Unknown,
            format!(
                "Throughput: not comparable at {}% canary traffic or without data",
                d.current_percent
            ),
        )
    };
    let elapsed = (now - d.start_time).to_std().unwrap_or_default();
    let elapsed = GoDuration::from_secs(elapsed.as_secs());
    let duration = check(
        "Duration",
        if elapsed >= d.config.min_canary_duration {
            CheckStatus::Pass
        } else {
            CheckStatus::Fail
        },
        format!(
            "Duration: {elapsed} (minimum: {})",
            d.config.min_canary_duration
        ),
    );
    let overall = if !enough || error.status == CheckStatus::Unknown {
        HealthStatus::Unknown
    } else if error.status == CheckStatus::Fail {
        HealthStatus::Failing
    } else if latency.status == CheckStatus::Fail || throughput.status == CheckStatus::Fail {
        HealthStatus::Warning
    } else {
        HealthStatus::Healthy
    };
    HealthReport {
        overall_status: overall,
        error_rate_check: error,
        latency_check: latency,
        throughput_check: throughput,
        sample_size_check: sample,
        duration_check: duration,
        last_evaluation: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::NewDeployment;
    use chrono::{Duration, TimeZone};

    fn t0() -> Timestamp {
        Utc.timestamp_opt(1_757_851_200, 0).unwrap()
    }

    fn dep(percent: u8) -> Deployment {
        NewDeployment {
            queue_name: "q".into(),
            stable_version: "v1".into(),
            canary_version: "v2".into(),
            percentage: Some(serde_json::json!(percent)),
            ..Default::default()
        }
        .resolve("canary_t".into(), "ops", t0())
        .unwrap()
        .0
    }

    fn lane(success: u64, errors: u64, lat: &[f64]) -> LaneWindow {
        LaneWindow {
            success,
            errors,
            latencies_ms: lat.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn proxy_buckets_merge_with_exact_values() {
        let mut w = lane(1, 0, &[100.0]);
        let mut latency = Histogram::default();
        for ms in 1..=99 {
            latency.record_ms(f64::from(ms));
        }
        w.add_bucket(&LaneBucket {
            deployment_id: "d".into(),
            lane: crate::traffic::proxy::BucketLane::Canary,
            second: 0,
            requests: 101,
            errors_5xx: 1,
            errors_connect: 1,
            errors_timeout: 0,
            latency,
        });
        assert_eq!((w.success, w.errors), (100, 2));
        let s = snapshot(
            &w,
            &LaneWorkers::default(),
            "v2",
            (t0(), t0() + Duration::seconds(10)),
            t0(),
        );
        assert_eq!(s.job_count, 102);
        assert_eq!(s.max_latency, Some(100.0));
        let p50 = s.p50_latency.unwrap();
        assert!((p50 - 50.0).abs() <= 0.5, "{p50}");
        assert!((s.avg_latency.unwrap() - 50.5).abs() < 0.1);
    }

    fn snaps(
        d: &Deployment,
        s: &LaneWindow,
        c: &LaneWindow,
        now: Timestamp,
    ) -> (MetricsSnapshot, MetricsSnapshot) {
        let w = window(d, now);
        let none = LaneWorkers::default();
        (
            snapshot(s, &none, "v1", w, now),
            snapshot(c, &none, "v2", w, now),
        )
    }

    #[test]
    fn snapshot_figures() {
        let d = dep(20);
        let now = t0() + Duration::minutes(10);
        let lat: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = snapshot(
            &lane(1238, 12, &lat),
            &LaneWorkers {
                count: 2,
                memory_mb: vec![100.0, 200.0],
                cpu_percent: vec![40.0],
            },
            "v1",
            window(&d, now),
            now,
        );
        assert_eq!(
            (s.job_count, s.error_rate, s.success_rate),
            (1250, Some(0.96), Some(99.04))
        );
        assert_eq!(
            (s.p50_latency, s.p95_latency, s.p99_latency, s.max_latency),
            (Some(50.0), Some(95.0), Some(99.0), Some(100.0))
        );
        assert_eq!(s.window_start, now - Duration::minutes(5));
        assert_eq!(s.jobs_per_second, 4.17);
        assert_eq!(
            (s.avg_memory_mb, s.peak_memory_mb, s.worker_count),
            (Some(150.0), Some(200.0), 2)
        );
        let empty = snapshot(
            &LaneWindow::default(),
            &LaneWorkers::default(),
            "v2",
            window(&d, now),
            now,
        );
        assert_eq!(
            (empty.error_rate, empty.p95_latency),
            (None, None),
            "no data is null, not zero"
        );
    }

    #[test]
    fn unknown_without_enough_data() {
        let d = dep(20);
        let now = t0() + Duration::minutes(10);
        let (s, c) = snaps(&d, &lane(1000, 0, &[10.0]), &lane(5, 0, &[10.0]), now);
        let r = evaluate(&d, &s, &c, now);
        assert_eq!(r.overall_status, HealthStatus::Unknown);
        assert!(!r.sample_size_check.passing);
    }

    #[test]
    fn verdicts() {
        let d = dep(20);
        let now = t0() + Duration::minutes(10);
        let fast: Vec<f64> = vec![100.0; 100];
        let slow: Vec<f64> = vec![200.0; 100];
        // healthy: same error rate, same latency, throughput in proportion (80:20)
        let (s, c) = snaps(&d, &lane(792, 8, &fast), &lane(198, 2, &fast), now);
        assert_eq!(
            evaluate(&d, &s, &c, now).overall_status,
            HealthStatus::Healthy
        );
        // failing: canary error rate 10% vs 1%
        let (s, c) = snaps(&d, &lane(792, 8, &fast), &lane(180, 20, &fast), now);
        let r = evaluate(&d, &s, &c, now);
        assert_eq!(r.overall_status, HealthStatus::Failing);
        assert!(
            r.error_rate_check
                .message
                .contains("Error rate increase: 9.0%"),
            "{}",
            r.error_rate_check.message
        );
        // warning: latency doubled
        let (s, c) = snaps(&d, &lane(792, 8, &fast), &lane(198, 2, &slow), now);
        let r = evaluate(&d, &s, &c, now);
        assert_eq!(r.overall_status, HealthStatus::Warning);
        assert_eq!(
            r.latency_check.message,
            "P95 latency increase: 100.0% (threshold: 50.0%)"
        );
        // warning: canary handles half its share
        let (s, c) = snaps(&d, &lane(792, 8, &fast), &lane(99, 1, &fast), now);
        assert_eq!(
            evaluate(&d, &s, &c, now).throughput_check.status,
            CheckStatus::Fail
        );
    }

    #[test]
    fn duration_gates_but_does_not_fail_health() {
        let d = dep(20);
        let now = t0() + Duration::minutes(2);
        let fast = vec![100.0; 10];
        let (s, c) = snaps(&d, &lane(792, 8, &fast), &lane(198, 2, &fast), now);
        let r = evaluate(&d, &s, &c, now);
        assert!(!r.duration_check.passing);
        assert_eq!(r.duration_check.message, "Duration: 2m0s (minimum: 5m0s)");
        assert_eq!(r.overall_status, HealthStatus::Healthy);
    }
}
