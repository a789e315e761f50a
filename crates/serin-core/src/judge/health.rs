//! Health checks: probes of each lane's dependencies
//! and endpoints, run by the server on an interval, judged here.
//!
//! The probe kinds are HTTP (the status must be one of `expected_status_codes`),
//! TCP connect, PostgreSQL (a query that must succeed), Redis (`PING`), NATS
//! (connect, then a `PING` answered by `PONG`, which is what a client's flush
//! waits for) and a Prometheus instant query whose value must meet a condition.
//! Running them is IO and lives in the server; this module holds their
//! description, its validation, and the verdict over the latest results.
//!
//! A failing canary check fails the rollout (health-based rollback). A failing
//! stable check makes the verdict inconclusive: when the baseline itself is sick
//! nothing can be said about the canary, and rolling back would not help. A check
//! with no result yet, or whose latest result is older than three intervals plus
//! its timeout (the prober is stuck or gone), is inconclusive too.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Outcome, Verdict};
use crate::traffic::Lane;
use crate::{DomainError, Timestamp};

/// What a health check probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CheckType {
    /// GET `endpoint`; the status must be expected.
    Http,
    /// Connect to `endpoint` (`host:port`).
    Tcp,
    /// Run `query` (default `SELECT 1`; one statement, in a read-only
    /// transaction with a 5 s statement timeout) on a database target an admin
    /// registered (`endpoint: target:NAME`, from `serin up --check-target`).
    Postgres,
    /// `PING` `endpoint` (`redis://host:port`, or `target:NAME` for a registered
    /// target, which may hold a password).
    Redis,
    /// Connect to `endpoint` (`nats://host:port`, or `target:NAME`) and flush.
    Nats,
    /// Instant `query` on `endpoint` (Prometheus base URL); its value must meet `condition`.
    Prometheus,
}

/// One health check: a probe of a lane's dependency or endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HealthCheckSpec {
    /// Unique within the rollout.
    pub name: String,
    /// What it checks, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The probe.
    pub check_type: CheckType,
    /// Which lane it speaks for (default canary).
    #[serde(default = "canary_lane")]
    pub lane: Lane,
    /// URL or `host:port`, by probe.
    pub endpoint: String,
    /// HTTP: the statuses that pass (default 200–299).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_status_codes: Vec<u16>,
    /// PostgreSQL: the SQL; Prometheus: the PromQL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Prometheus: `<op> <number>` with op one of `<`, `<=`, `>`, `>=`, `==`, `!=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Seconds between probes (default 10).
    #[serde(default = "default_interval")]
    pub interval_seconds: u32,
    /// Seconds one attempt may take (default 5).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
    /// Further attempts before a probe counts as failed (default 0).
    #[serde(default)]
    pub retry_count: u32,
}

fn canary_lane() -> Lane {
    Lane::Canary
}
fn default_interval() -> u32 {
    10
}
fn default_timeout() -> u32 {
    5
}

/// A Prometheus success condition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition {
    /// The comparison.
    pub op: &'static str,
    /// The right-hand side.
    pub value: f64,
}

impl Condition {
    /// Parses `<op> <number>`.
    pub fn parse(s: &str) -> Option<Condition> {
        let s = s.trim();
        let op = ["<=", ">=", "==", "!=", "<", ">"]
            .into_iter()
            .find(|op| s.starts_with(op))?;
        let value: f64 = s[op.len()..].trim().parse().ok()?;
        value.is_finite().then_some(Condition { op, value })
    }

    /// Whether `v` meets it.
    pub fn holds(&self, v: f64) -> bool {
        match self.op {
            "<" => v < self.value,
            "<=" => v <= self.value,
            ">" => v > self.value,
            ">=" => v >= self.value,
            "==" => v == self.value,
            _ => v != self.value,
        }
    }
}

impl HealthCheckSpec {
    /// Checks the description; errors name the field.
    pub fn validate(&self) -> Result<(), DomainError> {
        crate::rollout::check_item_name(&self.name)?;
        if !(1..=3600).contains(&self.interval_seconds) {
            return Err(DomainError::invalid("interval_seconds", "is 1–3600"));
        }
        if !(1..=300).contains(&self.timeout_seconds) {
            return Err(DomainError::invalid("timeout_seconds", "is 1–300"));
        }
        if self.retry_count > 10 {
            return Err(DomainError::invalid("retry_count", "is at most 10"));
        }
        let e = &self.endpoint;
        if crate::rollout::has_credentials(e) {
            return Err(DomainError::invalid(
                "endpoint",
                "an endpoint in a plan can't carry credentials (`user:pass@`): every viewer reads plans; register it with `serin up --check-target NAME=URL` and give `target:NAME`",
            ));
        }
        let named = e.strip_prefix("target:").is_some_and(is_target_name);
        let scheme_ok = match self.check_type {
            CheckType::Http | CheckType::Prometheus => {
                e.starts_with("http://") || e.starts_with("https://")
            }
            CheckType::Tcp => e
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()),
            CheckType::Postgres => {
                if e.starts_with("postgres://") || e.starts_with("postgresql://") {
                    return Err(DomainError::invalid(
                        "endpoint",
                        "a database check names a target an admin registered (`target:NAME`, from `serin up --check-target NAME=postgres://…`); a plan can't carry a database URL or its credentials",
                    ));
                }
                e.strip_prefix("target:").is_some_and(is_target_name)
            }
            CheckType::Redis => named || e.starts_with("redis://"),
            CheckType::Nats => named || e.starts_with("nats://"),
        };
        if !scheme_ok || e.len() > 2048 || e.contains(char::is_whitespace) {
            let want = match self.check_type {
                CheckType::Http | CheckType::Prometheus => "an http:// or https:// URL",
                CheckType::Tcp => "host:port",
                CheckType::Postgres => "`target:NAME`, a registered database target",
                CheckType::Redis => "a redis:// URL or `target:NAME`",
                CheckType::Nats => "a nats:// URL or `target:NAME`",
            };
            return Err(DomainError::invalid(
                "endpoint",
                format!("`{e}` is not {want}"),
            ));
        }
        if self
            .expected_status_codes
            .iter()
            .any(|c| !(100..=599).contains(c))
        {
            return Err(DomainError::invalid(
                "expected_status_codes",
                "are HTTP statuses, 100–599",
            ));
        }
        if self.check_type == CheckType::Prometheus {
            if self.query.as_deref().is_none_or(|q| q.trim().is_empty()) {
                return Err(DomainError::invalid(
                    "query",
                    "a Prometheus check needs a PromQL query",
                ));
            }
            if self
                .condition
                .as_deref()
                .and_then(Condition::parse)
                .is_none()
            {
                return Err(DomainError::invalid(
                    "condition",
                    "a Prometheus check needs a condition such as `< 0.05`",
                ));
            }
        }
        Ok(())
    }

    /// The registered database target a `postgres` check names (`target:NAME`).
    pub fn target(&self) -> Option<&str> {
        self.endpoint
            .strip_prefix("target:")
            .filter(|n| is_target_name(n))
    }

    /// Whether an HTTP status passes.
    pub fn status_ok(&self, status: u16) -> bool {
        if self.expected_status_codes.is_empty() {
            (200..300).contains(&status)
        } else {
            self.expected_status_codes.contains(&status)
        }
    }
}

/// The latest outcome of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// The lane it speaks for.
    pub lane: Lane,
    /// Whether it passed (after its retries).
    pub ok: bool,
    /// What happened.
    pub message: String,
    /// Attempts made.
    pub attempts: u32,
    /// When the probe finished.
    pub at: chrono::DateTime<chrono::Utc>,
    /// The target was not probed: the server's outbound policy refuses it
    /// (`message` says why). Neither a pass nor a failure.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refused: bool,
}

/// A registered target's name: 1–64 of `a-z 0-9 _ -`.
pub fn is_target_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// One verdict per configured check, from the latest results.
pub fn judge(specs: &[HealthCheckSpec], results: &[CheckResult], now: Timestamp) -> Vec<Verdict> {
    specs
        .iter()
        .map(|spec| {
            let name = format!("health:{}", spec.name);
            let latest = results
                .iter()
                .filter(|r| r.name == spec.name)
                .max_by_key(|r| r.at);
            let stale_after = chrono::Duration::seconds(
                i64::from(spec.interval_seconds) * 3 + i64::from(spec.timeout_seconds),
            );
            let Some(r) = latest else {
                return Verdict::new(name, Outcome::Inconclusive, "no result yet", json!({"lane": spec.lane}));
            };
            let evidence = json!({"lane": r.lane, "ok": r.ok, "message": r.message, "attempts": r.attempts, "at": r.at});
            if now - r.at > stale_after {
                return Verdict::new(
                    name,
                    Outcome::Inconclusive,
                    format!("latest result is {}s old", (now - r.at).num_seconds()),
                    evidence,
                );
            }
            if r.refused {
                return Verdict::new(name, Outcome::Inconclusive, format!("not probed: {}", r.message), evidence);
            }
            let (outcome, summary) = match (r.ok, spec.lane) {
                (true, _) => (Outcome::Pass, format!("{} check passes", spec.lane.as_str())),
                (false, Lane::Canary) => (
                    Outcome::Fail,
                    format!("canary check fails after {} attempt(s): {}", r.attempts, r.message),
                ),
                (false, Lane::Stable) => (
                    Outcome::Inconclusive,
                    format!("stable check fails, so the canary can't be judged: {}", r.message),
                ),
            };
            Verdict::new(name, outcome, summary, evidence)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_check_names_a_registered_target_never_a_url() {
        let mut s = HealthCheckSpec {
            name: "db".into(),
            description: None,
            check_type: CheckType::Postgres,
            lane: Lane::Canary,
            endpoint: "postgres://postgres@127.0.0.1:5432/test".into(),
            expected_status_codes: vec![],
            query: Some("UPDATE api_keys SET role = 'admin'".into()),
            condition: None,
            interval_seconds: 10,
            timeout_seconds: 5,
            retry_count: 0,
        };
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("target:NAME"), "{e}");
        s.endpoint = "postgres://monitor:pw@db/app".into();
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("credentials") && !e.contains("pw@"), "{e}");
        s.check_type = CheckType::Redis;
        s.endpoint = "redis://:hunter2@cache:6379".into();
        let e = s.validate().unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
        s.endpoint = "target:cache".into();
        s.validate().unwrap();
        s.check_type = CheckType::Http;
        s.endpoint = "https://ops:secret@status.example/health".into();
        assert!(s.validate().is_err());
        s.check_type = CheckType::Postgres;
        s.endpoint = "target:Main DB".into();
        assert!(s.validate().is_err());
        s.endpoint = "target:main-db".into();
        s.validate().unwrap();
        assert_eq!(s.target(), Some("main-db"));
    }
}
