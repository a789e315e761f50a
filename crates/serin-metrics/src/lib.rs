//! Serin's `/metrics`, in the Prometheus text format (0.0.4).
//!
//! Most of what Serin exposes is a figure read when Prometheus asks: the
//! proxy's per-lane counters, the deployments by status from the store, the
//! leader's lease. So rather than keeping a registry of live metric objects,
//! each scrape gathers its figures into an [`Exposition`] — counters, gauges
//! and histograms by name, with their labels — and `prometheus-client`
//! writes it: names, `HELP` and `TYPE` lines, label escaping, `le` bounds and
//! the `+Inf` bucket are the library's, not string formatting spread over
//! the code base.
//!
//! Counter names are given without `_total`; the encoder adds it.
#![forbid(unsafe_code)]

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The `Content-Type` of what [`Exposition::render`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Labels of one series, `(name, value)`.
pub type Labels = Vec<(String, String)>;

#[derive(Debug, Clone)]
enum Value {
    Counter(u64),
    CounterF64(f64),
    Gauge(f64),
    /// Per-bucket counts (not cumulative) by upper bound, the sum, the count.
    Histogram {
        buckets: Vec<(f64, u64)>,
        sum: f64,
        count: u64,
    },
}

#[derive(Debug, Clone)]
struct Family {
    name: String,
    help: String,
    kind: MetricType,
    series: Vec<(Labels, Value)>,
}

/// The figures of one scrape, by metric.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    families: Vec<Family>,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// The family `name`, created with `help` and `kind` the first time.
    fn family(&mut self, name: &str, help: &str, kind: MetricType) -> &mut Family {
        let i = match self.families.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                self.families.push(Family {
                    name: name.to_string(),
                    // The encoder writes it as given; one sentence, no final period
                    // doubled by callers.
                    help: help.trim_end_matches('.').to_string() + ".",
                    kind,
                    series: Vec::new(),
                });
                self.families.len() - 1
            }
        };
        &mut self.families[i]
    }

    /// Declares a metric with no series yet (its `HELP` and `TYPE` still show).
    pub fn declare_counter(&mut self, name: &str, help: &str) {
        self.family(name, help, MetricType::Counter);
    }

    /// Declares a gauge with no series yet.
    pub fn declare_gauge(&mut self, name: &str, help: &str) {
        self.family(name, help, MetricType::Gauge);
    }

    /// A counter's value (`name` without `_total`).
    pub fn counter(&mut self, name: &str, help: &str, labels_: &[(&str, &str)], value: u64) {
        self.family(name, help, MetricType::Counter)
            .series
            .push((labels(labels_), Value::Counter(value)));
    }

    /// A gauge's value.
    pub fn gauge(&mut self, name: &str, help: &str, labels_: &[(&str, &str)], value: f64) {
        self.family(name, help, MetricType::Gauge)
            .series
            .push((labels(labels_), Value::Gauge(value)));
    }

    /// A histogram from cumulative counts by upper bound (`le`, ascending;
    /// the `+Inf` bucket is `count`), with the sum of the observations.
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        labels_: &[(&str, &str)],
        cumulative: &[(f64, u64)],
        sum: f64,
        count: u64,
    ) {
        let mut below = 0;
        let buckets = cumulative
            .iter()
            .map(|&(le, n)| {
                let own = n.saturating_sub(below);
                below = below.max(n);
                (le, own)
            })
            .collect();
        self.family(name, help, MetricType::Histogram).series.push((
            labels(labels_),
            Value::Histogram {
                buckets,
                sum,
                count,
            },
        ));
    }

    /// Appends `other`'s metrics (a family of the same name gains its series).
    pub fn extend(&mut self, other: Exposition) {
        for f in other.families {
            let (name, help, kind) = (f.name.clone(), f.help.clone(), f.kind);
            self.family(&name, &help, kind).series.extend(f.series);
        }
    }

    /// The text Prometheus reads.
    pub fn render(&self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self.clone()));
        let mut out = String::new();
        // Writing into a String can't fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }
}

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for f in &self.families {
            let mut metric = encoder.encode_descriptor(&f.name, &f.help, None, f.kind)?;
            for (labels, value) in &f.series {
                let mut series = metric.encode_family(labels)?;
                match value {
                    Value::Counter(n) => series
                        .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(
                            n, None,
                        )?,
                    Value::CounterF64(v) => series
                        .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(
                            v, None,
                        )?,
                    Value::Gauge(v) => series.encode_gauge(v)?,
                    Value::Histogram {
                        buckets,
                        sum,
                        count,
                    } => series.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                        *sum, *count, buckets, None,
                    )?,
                }
            }
        }
        Ok(())
    }
}

/// What [`Exposition::build_info`] reports: set once by the binary at start
/// (the commit is the binary's, known when it was built).
static BUILD: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();

/// Records this binary's version and git commit for `serin_build_info`.
pub fn set_build(version: &str, commit: &str) {
    let _ = BUILD.set((version.to_string(), commit.to_string()));
}

impl Exposition {
    /// `serin_build_info{version,commit} 1`, as set by [`set_build`]
    /// (`unknown` before).
    pub fn build_info(&mut self) {
        let (version, commit) = BUILD
            .get()
            .map_or(("unknown", "unknown"), |(v, c)| (v.as_str(), c.as_str()));
        self.gauge(
            "serin_build_info",
            "Always 1: the version and git commit this binary was built from",
            &[("version", version), ("commit", commit)],
            1.0,
        );
    }

    /// The process metrics every Prometheus client library exports
    /// (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
    /// `process_virtual_memory_bytes`, `process_open_fds`,
    /// `process_max_fds`, `process_start_time_seconds`), read from `/proc`;
    /// none where there is no `/proc`.
    pub fn process(&mut self) {
        #[cfg(target_os = "linux")]
        {
            use procfs::WithCurrentSystemInfo;
            let Ok(me) = procfs::process::Process::myself() else {
                return;
            };
            if let Ok(stat) = me.stat() {
                let ticks = procfs::ticks_per_second().max(1) as f64;
                self.counter_f64(
                    "process_cpu_seconds",
                    "Total user and system CPU time spent in seconds",
                    (stat.utime + stat.stime) as f64 / ticks,
                );
                self.gauge(
                    "process_resident_memory_bytes",
                    "Resident memory size in bytes",
                    &[],
                    stat.rss_bytes().get() as f64,
                );
                self.gauge(
                    "process_virtual_memory_bytes",
                    "Virtual memory size in bytes",
                    &[],
                    stat.vsize as f64,
                );
                if let Ok(boot) = procfs::boot_time_secs() {
                    self.gauge(
                        "process_start_time_seconds",
                        "Start time of the process since unix epoch in seconds",
                        &[],
                        boot as f64 + stat.starttime as f64 / ticks,
                    );
                }
            }
            if let Ok(n) = me.fd_count() {
                self.gauge(
                    "process_open_fds",
                    "Number of open file descriptors",
                    &[],
                    n as f64,
                );
            }
            if let Ok(limits) = me.limits()
                && let procfs::process::LimitValue::Value(max) = limits.max_open_files.soft_limit
            {
                self.gauge(
                    "process_max_fds",
                    "Maximum number of open file descriptors",
                    &[],
                    max as f64,
                );
            }
        }
    }

    /// A counter whose value isn't a whole number (CPU seconds).
    fn counter_f64(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, help, MetricType::Counter)
            .series
            .push((Labels::new(), Value::CounterF64(value)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_text_format() {
        let mut e = Exposition::new();
        e.counter(
            "serin_http_requests",
            "API requests answered.",
            &[("route", "/a\"b"), ("code", "200")],
            3,
        );
        e.gauge("serin_leader", "1 while leading", &[], 1.0);
        e.histogram(
            "serin_tick_seconds",
            "Tick time",
            &[],
            &[(0.01, 2), (0.1, 5)],
            0.25,
            6,
        );
        e.declare_counter("serin_logins", "Login attempts");
        let text = e.render();
        assert!(
            text.contains("# HELP serin_http_requests_total API requests answered.\n# TYPE serin_http_requests_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("serin_http_requests_total{route=\"/a\\\"b\",code=\"200\"} 3\n"),
            "label values escaped: {text}"
        );
        assert!(text.contains("serin_leader 1"), "{text}");
        assert!(
            text.contains("serin_tick_seconds_bucket{le=\"0.01\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("serin_tick_seconds_bucket{le=\"0.1\"} 5\n"),
            "cumulative: {text}"
        );
        assert!(
            text.contains("serin_tick_seconds_bucket{le=\"+Inf\"} 6\n"),
            "{text}"
        );
        assert!(text.contains("serin_tick_seconds_count 6"), "{text}");
        assert!(text.contains("# TYPE serin_logins_total counter"), "{text}");
        let mut p = Exposition::new();
        set_build("1.2.3", "abc123");
        p.build_info();
        p.process();
        let text = p.render();
        assert!(
            text.contains("serin_build_info{version=\"1.2.3\",commit=\"abc123\"} 1"),
            "{text}"
        );
        #[cfg(target_os = "linux")]
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(text.contains(name), "{name}: {text}");
        }
        assert!(
            !text.contains("# EOF"),
            "the Prometheus format, not OpenMetrics"
        );
    }
}
