//! Notifications: alert callbacks as outbound webhooks.
//!
//! A rollout names where to send which events: a generic JSON webhook (signed
//! with HMAC-SHA256 when the server has a secret) or a Slack-compatible incoming
//! webhook (`{"text": …}`). Every event of the deployment whose type is chosen
//! becomes one *delivery*, recorded in the database in the same transaction that
//! moves the notifier's cursor past the event, so none is skipped across a crash.
//! Deliveries are retried with exponential backoff (1 s, 2 s, 4 s … at most
//! 5 min) up to [`MAX_ATTEMPTS`] times, and each attempt's outcome is kept. A
//! crash between a POST and its record sends it again, so receivers should
//! de-duplicate on the delivery `id` (also in the `X-Serin-Delivery` header).
//!
//! The JSON payload is an alert: `severity` (`info`, `warning`,
//! `critical`) and `message`, plus the event, the deployment and the data.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::DomainError;
use crate::canary::Deployment;
use crate::event::{Event, EventType};

/// Attempts before a delivery is given up as failed.
pub const MAX_ATTEMPTS: u32 = 8;

/// The payload's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Serin's JSON alert, signed.
    #[default]
    Json,
    /// A Slack incoming-webhook message.
    Slack,
}

/// Where a rollout's events go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Notification {
    /// The webhook URL.
    pub url: String,
    /// `json` (default) or `slack`.
    #[serde(default)]
    pub format: Format,
    /// The event types sent (default: [`DEFAULT_EVENTS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventType>,
    /// The secret (by name) this target verifies `X-Serin-Signature` with;
    /// without one, the server's `--webhook-secret` signs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

/// What is sent when a notification names no events: the moments people act on.
pub const DEFAULT_EVENTS: [EventType; 7] = [
    EventType::DeploymentCreated,
    EventType::ReleaseNotesPublished,
    EventType::DeploymentPromoted,
    EventType::DeploymentRolledBack,
    EventType::DeploymentPaused,
    EventType::GateWaiting,
    EventType::HealthCheckFailed,
];

impl Notification {
    /// Checks the URL.
    pub fn validate(&self) -> Result<(), DomainError> {
        crate::rollout::check_http_url("url", &self.url)?;
        if let Some(name) = &self.signing_secret {
            crate::secret::validate_name("signing_secret", name)?;
        }
        Ok(())
    }

    /// The secrets this target names (its URL's and its signing secret).
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        crate::secret::reference(&self.url)
            .into_iter()
            .chain(self.signing_secret.as_deref())
    }

    /// Whether this event type is sent.
    pub fn wants(&self, kind: EventType) -> bool {
        if self.events.is_empty() {
            DEFAULT_EVENTS.contains(&kind)
        } else {
            self.events.contains(&kind)
        }
    }
}

/// How urgent an event is: a rollback is critical; a hold waiting for someone, a warning.
pub fn severity(kind: EventType) -> &'static str {
    match kind {
        EventType::DeploymentRolledBack | EventType::HealthCheckFailed => "critical",
        EventType::DeploymentPaused | EventType::GateWaiting => "warning",
        _ => "info",
    }
}

/// An event's severity: its own `data.severity` when it carries one (a failed
/// health check is critical on the canary, a warning on stable), else its kind's.
pub fn event_severity(event: &Event) -> &'static str {
    match event.data.get("severity").and_then(Value::as_str) {
        Some("critical") => "critical",
        Some("warning") => "warning",
        Some("info") => "info",
        _ => severity(event.kind),
    }
}

/// The body sent for `event` of `d` to a target of `format`; `id` is the delivery's.
pub fn payload(format: Format, id: &str, event: &Event, d: &Deployment) -> Value {
    let severity = event_severity(event);
    match format {
        Format::Json => json!({
            "id": id,
            "severity": severity,
            "message": event.message,
            "type": event.kind,
            "timestamp": event.timestamp,
            "actor": event.actor,
            "deployment": {
                "id": d.id, "queue_name": d.queue_name, "tenant_id": d.tenant_id,
                "stable_version": d.stable_version, "canary_version": d.canary_version,
                "status": d.status, "current_percent": d.current_percent,
                "product": d.product, "environment": d.environment,
            },
            // The plan itself stays out: its targets' URLs are not every target's business.
            "data": without_plan(&event.data),
        }),
        Format::Slack => {
            let mark = match severity {
                "critical" => ":red_circle:",
                "warning" => ":large_yellow_circle:",
                _ => ":large_green_circle:",
            };
            json!({
                "text": format!(
                    "{mark} *{}* {} → {} ({}%): {}",
                    d.queue_name, d.stable_version, d.canary_version, d.current_percent, event.message
                ),
            })
        }
    }
}

fn without_plan(data: &Value) -> Value {
    let mut data = data.clone();
    if let Some(o) = data.as_object_mut() {
        o.remove("rollout");
    }
    data
}

/// Seconds to wait after the `attempts`-th failed attempt.
pub fn backoff_secs(attempts: u32) -> u64 {
    (1u64 << attempts.saturating_sub(1).min(16)).min(300)
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not yet delivered; retried at `next_attempt_at`.
    Pending,
    /// The target answered 2xx.
    Delivered,
    /// Given up after [`MAX_ATTEMPTS`].
    Failed,
}

/// One event sent to one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    /// `delivery_<uuid>`.
    pub id: String,
    /// The event sent.
    pub event_id: String,
    /// Its deployment.
    pub deployment_id: String,
    /// The target.
    pub url: String,
    /// The payload's shape.
    pub format: Format,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// The last failure, in words.
    pub last_error: Option<String>,
    /// When it is (re)tried.
    pub next_attempt_at: chrono::DateTime<chrono::Utc>,
    /// When it was delivered.
    pub delivered_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The body sent.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_backoff_and_severity() {
        let n = Notification {
            url: "https://hooks.example/x".into(),
            format: Format::Slack,
            events: vec![],
            signing_secret: None,
        };
        n.validate().unwrap();
        assert!(n.wants(EventType::DeploymentRolledBack) && !n.wants(EventType::PercentageUpdated));
        let only = Notification {
            events: vec![EventType::PercentageUpdated],
            ..n.clone()
        };
        assert!(
            only.wants(EventType::PercentageUpdated)
                && !only.wants(EventType::DeploymentRolledBack)
        );
        assert!(
            Notification {
                url: "ftp://x".into(),
                ..n
            }
            .validate()
            .is_err()
        );
        let waits: Vec<u64> = (1..=10).map(backoff_secs).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        assert_eq!(severity(EventType::DeploymentRolledBack), "critical");
        assert_eq!(severity(EventType::GateWaiting), "warning");
        assert_eq!(severity(EventType::DeploymentPromoted), "info");
    }
}
