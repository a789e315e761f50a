//! Printing answers: aligned tables for people, JSON for scripts.

use serde::Serialize;
use serin_core::canary::Deployment;
use serin_core::canary::metrics::{HealthCheck, MetricsSnapshot};
use serin_core::canary::worker::Worker;
use serin_core::event::Event;
use serin_core::{Product, Release, Signal};

use crate::cli::Output;

/// Something that prints as table rows.
pub trait Tabular {
    /// The column titles.
    const HEADERS: &'static [&'static str];
    /// One row's cells.
    fn row(&self) -> Vec<String>;
}

fn when(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// An RFC 3339 time from the server in the one format tables use (UTC,
/// `2026-12-07 14:10:00`); anything else as it came.
pub fn when_str(t: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|t| when(&t.with_timezone(&chrono::Utc)))
        .unwrap_or_else(|_| t.to_string())
}

impl Tabular for Product {
    const HEADERS: &'static [&'static str] = &["NAME", "DESCRIPTION", "CREATED"];
    fn row(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.description.clone().unwrap_or_default(),
            when(&self.created_at),
        ]
    }
}

impl Tabular for Release {
    const HEADERS: &'static [&'static str] = &[
        "ID",
        "PRODUCT",
        "VERSION",
        "STATUS",
        "RELEASED",
        "DESCRIPTION",
    ];
    fn row(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.product_name.clone(),
            self.version.clone(),
            self.status.to_string(),
            self.released_at
                .as_ref()
                .map(when)
                .unwrap_or_else(|| "-".into()),
            self.description.clone().unwrap_or_default(),
        ]
    }
}

impl Tabular for Signal {
    const HEADERS: &'static [&'static str] =
        &["ID", "RELEASE", "LANE", "NAME", "KIND", "VALUE", "TIME"];
    fn row(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            format!("{}@{}", self.product_name, self.version),
            self.lane.to_string(),
            self.name.clone(),
            self.kind.as_str().to_string(),
            self.value.to_string(),
            when(&self.timestamp),
        ]
    }
}

impl Tabular for Deployment {
    const HEADERS: &'static [&'static str] = &[
        "ID", "QUEUE", "TENANT", "STABLE", "CANARY", "PERCENT", "STATUS", "STARTED",
    ];
    fn row(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.queue_name.clone(),
            self.tenant_id.clone().unwrap_or_else(|| "-".into()),
            self.stable_version.clone(),
            self.canary_version.clone(),
            format!("{}%", self.current_percent),
            self.status.as_str().to_string(),
            when(&self.start_time),
        ]
    }
}

impl Tabular for Event {
    const HEADERS: &'static [&'static str] = &["TIME", "TYPE", "ACTOR", "MESSAGE"];
    fn row(&self) -> Vec<String> {
        vec![
            when(&self.timestamp),
            self.kind.as_str().to_string(),
            self.actor.clone(),
            self.message.clone(),
        ]
    }
}

impl Tabular for Worker {
    const HEADERS: &'static [&'static str] =
        &["ID", "VERSION", "LANE", "QUEUES", "STATUS", "LAST SEEN"];
    fn row(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.version.clone(),
            self.lane.to_string(),
            self.queues.join(","),
            self.status.as_str().to_string(),
            when(&self.last_seen),
        ]
    }
}

impl Tabular for HealthCheck {
    const HEADERS: &'static [&'static str] = &["CHECK", "STATUS", "MESSAGE"];
    fn row(&self) -> Vec<String> {
        let status = serde_json::to_value(self.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_uppercase))
            .unwrap_or_default();
        vec![self.name.clone(), status, self.message.clone()]
    }
}

impl Tabular for (&str, MetricsSnapshot) {
    const HEADERS: &'static [&'static str] = &[
        "LANE", "VERSION", "JOBS", "ERRORS", "ERROR %", "P50 MS", "P95 MS", "P99 MS", "JOBS/S",
        "WORKERS",
    ];
    fn row(&self) -> Vec<String> {
        let (lane, m) = self;
        let f = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
        vec![
            lane.to_string(),
            m.version.clone(),
            m.job_count.to_string(),
            m.error_count.to_string(),
            f(m.error_rate),
            f(m.p50_latency),
            f(m.p95_latency),
            f(m.p99_latency),
            m.jobs_per_second.to_string(),
            m.worker_count.to_string(),
        ]
    }
}

/// Prints `v` as data: pretty JSON, or YAML (table output prints JSON: callers
/// print a table themselves first).
pub fn emit<T: Serialize + ?Sized>(output: Output, v: &T) -> anyhow::Result<()> {
    match output {
        Output::Yaml => print!("{}", serde_norway::to_string(v)?),
        Output::Json | Output::Table => println!("{}", serde_json::to_string_pretty(v)?),
    }
    Ok(())
}

/// Prints one item of a stream (`--follow`): a JSON line, or a YAML document.
pub fn emit_line<T: Serialize + ?Sized>(output: Output, v: &T) -> anyhow::Result<()> {
    match output {
        Output::Yaml => print!("---\n{}", serde_norway::to_string(v)?),
        Output::Json | Output::Table => println!("{}", serde_json::to_string(v)?),
    }
    Ok(())
}

/// Prints a JSON answer: pretty JSON or YAML, or `key: value` lines for people.
pub fn print_value(output: Output, v: &serde_json::Value) -> anyhow::Result<()> {
    if output.is_data() {
        return emit(output, v);
    }
    match (output, v) {
        (Output::Table, serde_json::Value::Object(map)) => {
            for (k, val) in map {
                match val {
                    serde_json::Value::String(s) => println!("{k}: {s}"),
                    other => println!("{k}: {other}"),
                }
            }
        }
        _ => println!("{}", serde_json::to_string_pretty(v)?),
    }
    Ok(())
}

/// Formats rows as aligned columns (no trailing spaces).
pub fn table<T: Tabular>(items: &[T]) -> String {
    let rows: Vec<Vec<String>> = items.iter().map(Tabular::row).collect();
    let mut widths: Vec<usize> = T::HEADERS.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = vec![line(T::HEADERS.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}

/// Prints one item or a list in the chosen format.
pub fn print<T: Tabular + Serialize>(
    output: Output,
    items: &[T],
    single: bool,
) -> anyhow::Result<()> {
    match output {
        Output::Json | Output::Yaml if single && items.len() == 1 => emit(output, &items[0])?,
        Output::Json | Output::Yaml => emit(output, &serde_json::json!({"items": items}))?,
        Output::Table => println!("{}", table(items)),
    }
    Ok(())
}
