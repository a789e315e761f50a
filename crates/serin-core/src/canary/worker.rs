//! Workers: job-processing processes that register in a lane, list the
//! queues they serve, and heartbeat with their metrics. A worker whose heartbeats
//! stop is marked `unreachable` after a timeout ([`Worker::is_overdue`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::traffic::Lane;
use crate::validate::validate_text;
use crate::{DomainError, Timestamp};

/// A worker's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WorkerStatus {
    /// Operating normally.
    Healthy,
    /// Some issues, still functional.
    Degraded,
    /// Significant problems.
    Unhealthy,
    /// Not responding (heartbeats stopped).
    Unreachable,
}

impl WorkerStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerStatus::Healthy => "healthy",
            WorkerStatus::Degraded => "degraded",
            WorkerStatus::Unhealthy => "unhealthy",
            WorkerStatus::Unreachable => "unreachable",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<WorkerStatus> {
        serde_json::from_value(Value::String(s.to_string())).ok()
    }
}

/// What a worker reports about itself (its `metrics` block).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkerMetrics {
    /// Jobs processed since start.
    #[serde(default)]
    pub jobs_processed: u64,
    /// Jobs that succeeded.
    #[serde(default)]
    pub jobs_succeeded: u64,
    /// Jobs that failed.
    #[serde(default)]
    pub jobs_failed: u64,
    /// Mean processing time, ms.
    #[serde(default)]
    pub avg_processing_time: f64,
    /// Resident memory, MB.
    #[serde(default)]
    pub memory_usage_mb: f64,
    /// CPU use, percent.
    #[serde(default)]
    pub cpu_usage_percent: f64,
    /// When the last job finished.
    #[serde(default)]
    pub last_job_at: Option<DateTime<Utc>>,
}

/// A registered worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Worker {
    /// Unique id, chosen by the worker.
    pub id: String,
    /// The version it runs.
    pub version: String,
    /// Its lane.
    pub lane: Lane,
    /// The queues it consumes.
    pub queues: Vec<String>,
    /// Its last heartbeat (or registration).
    pub last_seen: DateTime<Utc>,
    /// Its health.
    pub status: WorkerStatus,
    /// What it last reported.
    pub metrics: WorkerMetrics,
    /// Free-form labels (hostname, region…).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: BTreeMap<String, Value>,
}

/// A worker registering (the body of `POST /api/v1/canary/workers`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewWorker {
    /// Unique id.
    pub id: String,
    /// The version it runs.
    pub version: String,
    /// Its lane (default `stable`).
    #[serde(default)]
    pub lane: Option<Lane>,
    /// The queues it consumes (at least one).
    pub queues: Vec<String>,
    /// Free-form labels.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: BTreeMap<String, Value>,
}

fn token(field: &str, v: &str, max: usize) -> Result<(), DomainError> {
    if v.is_empty() || v.len() > max {
        return Err(DomainError::invalid(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    if v.contains(char::is_whitespace) {
        return Err(DomainError::invalid(field, "must not contain spaces"));
    }
    validate_text(field, v)
}

impl NewWorker {
    /// Checks the request and builds the worker, healthy and seen now.
    pub fn into_worker(self, now: Timestamp) -> Result<Worker, DomainError> {
        token("id", &self.id, 200)?;
        token("version", &self.version, 100)?;
        if self.queues.is_empty() || self.queues.len() > 100 {
            return Err(DomainError::invalid("queues", "list 1 to 100 queues"));
        }
        for (i, q) in self.queues.iter().enumerate() {
            token(&format!("queues[{i}]"), q, 200)?;
        }
        Ok(Worker {
            id: self.id,
            version: self.version,
            lane: self.lane.unwrap_or(Lane::Stable),
            queues: self.queues,
            last_seen: now,
            status: WorkerStatus::Healthy,
            metrics: WorkerMetrics::default(),
            metadata: self.metadata,
        })
    }
}

/// One finished job, reported with a heartbeat. It becomes a signal of the
/// worker's lane on the live deployment of its queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JobResult {
    /// The queue the job came from.
    pub queue: String,
    /// Whether it succeeded.
    pub success: bool,
    /// How long it took, ms.
    #[serde(default)]
    pub duration_ms: Option<f64>,
    /// When it finished (now when absent).
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
}

/// A heartbeat: the worker is alive; here are its metrics and finished jobs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The worker's metrics now.
    #[serde(default)]
    pub metrics: Option<WorkerMetrics>,
    /// A new status (an `unreachable` worker that beats becomes `healthy`).
    #[serde(default)]
    pub status: Option<WorkerStatus>,
    /// Jobs finished since the last heartbeat (at most 10,000).
    #[serde(default)]
    pub job_results: Vec<JobResult>,
}

impl Heartbeat {
    /// Checks the report.
    pub fn validate(&self, now: Timestamp) -> Result<(), DomainError> {
        if self.job_results.len() > 10_000 {
            return Err(DomainError::invalid(
                "job_results",
                "at most 10000 per heartbeat",
            ));
        }
        for (i, j) in self.job_results.iter().enumerate() {
            token(&format!("job_results[{i}].queue"), &j.queue, 200)?;
            if let Some(ms) = j.duration_ms
                && !(ms.is_finite() && ms >= 0.0)
            {
                return Err(DomainError::invalid(
                    format!("job_results[{i}].duration_ms"),
                    "must be a non-negative number",
                ));
            }
            if let Some(ts) = j.timestamp {
                crate::validate::validate_instant(&format!("job_results[{i}].timestamp"), ts)?;
                if (ts - now).num_seconds() > crate::validate::MAX_CLOCK_SKEW_SECS {
                    return Err(DomainError::invalid(
                        format!("job_results[{i}].timestamp"),
                        "is in the future",
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Worker {
    /// Whether the last heartbeat is older than `timeout` at `now`.
    pub fn is_overdue(&self, now: Timestamp, timeout: chrono::Duration) -> bool {
        self.status != WorkerStatus::Unreachable && now - self.last_seen > timeout
    }
}
