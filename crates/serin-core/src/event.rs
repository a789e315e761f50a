//! Events: the append-only record of every change and every action.
//!
//! One table of events serves three readers: a deployment's history
//! (`GET …/deployments/{id}/events`), the audit log
//! (`GET /api/v1/audit-logs`: who, what, on which resource, the
//! changes), and the live stream (WebSocket, its own stream event types, derived
//! from the stored event by [`Event::stream`]). Storing one thing and deriving the
//! views keeps them from disagreeing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What happened. The first six are the canary deployment event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// A canary deployment started.
    DeploymentCreated,
    /// The traffic split changed.
    PercentageUpdated,
    /// The canary was promoted to 100%.
    DeploymentPromoted,
    /// The canary was rolled back to 0%.
    DeploymentRolledBack,
    /// A health check found a problem.
    HealthCheckFailed,
    /// Automatic promotion rules fired.
    AutoPromotionTriggered,
    /// A deployment's upstreams, route or traffic rules changed.
    RoutingUpdated,
    /// A deployment's automation was paused.
    DeploymentPaused,
    /// A paused deployment was resumed.
    DeploymentResumed,
    /// A finished deployment was deleted.
    DeploymentDeleted,
    /// A product was created.
    ProductCreated,
    /// A release was created.
    ReleaseCreated,
    /// A release changed status or notes.
    ReleaseUpdated,
    /// A worker registered.
    WorkerRegistered,
    /// A worker's status changed.
    WorkerStatusChanged,
    /// An API key was created.
    ApiKeyCreated,
    /// An API key was revoked.
    ApiKeyRevoked,
    /// An admin stored or replaced a secret (its name only).
    SecretSet,
    /// An admin deleted a secret.
    SecretDeleted,
    /// An outside script reported a step (`POST /admin/canary/webhook/{event}`).
    ExternalReport,
    /// A rollout moved to its next step.
    RolloutStepStarted,
    /// An analysis step's judges passed.
    AnalysisCompleted,
    /// A webhook gate said not yet.
    GateWaiting,
    /// A multi-target rollout started.
    RolloutGroupCreated,
    /// A hook ran (its outcome and output are in the data).
    HookCompleted,
    /// A user account was made.
    UserCreated,
    /// A user's name, role, password or access changed.
    UserUpdated,
    /// A user logged in (a session began).
    UserLoggedIn,
    /// A user logged out (a session ended).
    UserLoggedOut,
    /// A product's environments changed.
    EnvironmentChanged,
    /// Someone approved a release for an environment.
    ReleaseApproved,
    /// Someone rejected a release for an environment.
    ReleaseRejected,
    /// A draft release was deleted.
    ReleaseDeleted,
    /// Someone asked to deploy a release to an environment.
    ReleaseDeployRequested,
    /// Release notes were published.
    ReleaseNotesPublished,
    /// A finished deployment was undone by a one-click rollback.
    DeploymentReverted,
    /// A replica took the leader lease of the cluster (PostgreSQL only).
    LeaderElected,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::DeploymentCreated => "deployment_created",
            EventType::PercentageUpdated => "percentage_updated",
            EventType::DeploymentPromoted => "deployment_promoted",
            EventType::DeploymentRolledBack => "deployment_rolled_back",
            EventType::HealthCheckFailed => "health_check_failed",
            EventType::AutoPromotionTriggered => "auto_promotion_triggered",
            EventType::RoutingUpdated => "routing_updated",
            EventType::DeploymentPaused => "deployment_paused",
            EventType::DeploymentResumed => "deployment_resumed",
            EventType::DeploymentDeleted => "deployment_deleted",
            EventType::ProductCreated => "product_created",
            EventType::ReleaseCreated => "release_created",
            EventType::ReleaseUpdated => "release_updated",
            EventType::WorkerRegistered => "worker_registered",
            EventType::WorkerStatusChanged => "worker_status_changed",
            EventType::ApiKeyCreated => "api_key_created",
            EventType::ApiKeyRevoked => "api_key_revoked",
            EventType::SecretSet => "secret_set",
            EventType::SecretDeleted => "secret_deleted",
            EventType::ExternalReport => "external_report",
            EventType::RolloutStepStarted => "rollout_step_started",
            EventType::AnalysisCompleted => "analysis_completed",
            EventType::GateWaiting => "gate_waiting",
            EventType::RolloutGroupCreated => "rollout_group_created",
            EventType::HookCompleted => "hook_completed",
            EventType::UserCreated => "user_created",
            EventType::UserUpdated => "user_updated",
            EventType::UserLoggedIn => "user_logged_in",
            EventType::UserLoggedOut => "user_logged_out",
            EventType::EnvironmentChanged => "environment_changed",
            EventType::ReleaseApproved => "release_approved",
            EventType::ReleaseRejected => "release_rejected",
            EventType::ReleaseDeleted => "release_deleted",
            EventType::ReleaseDeployRequested => "release_deploy_requested",
            EventType::ReleaseNotesPublished => "release_notes_published",
            EventType::DeploymentReverted => "deployment_reverted",
            EventType::LeaderElected => "leader_elected",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<EventType> {
        serde_json::from_value(Value::String(s.to_string())).ok()
    }
}

/// An event to record: what a change produces, before the store stamps it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// What happened.
    pub kind: EventType,
    /// The kind of resource: `deployment`, `product`, `release`, `worker`, `api_key`.
    pub resource_type: &'static str,
    /// The resource's id.
    pub resource_id: String,
    /// The deployment it belongs to, if any.
    pub deployment_id: Option<String>,
    /// One sentence for people.
    pub message: String,
    /// What changed, as JSON (old and new values).
    pub data: Value,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// `event_<uuid>`.
    pub id: String,
    /// The deployment it belongs to, if any.
    pub deployment_id: Option<String>,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// One sentence for people.
    pub message: String,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// Who did it: an API key's name, a user, or `system`.
    pub actor: String,
    /// The kind of resource changed.
    pub resource_type: String,
    /// The resource's id.
    pub resource_id: String,
    /// What changed.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: Value,
}

/// A message on the live stream (the WebSocket event format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamEvent {
    /// `deployment_status_changed`, `percentage_updated`, `health_status_changed`,
    /// `metrics_updated`, `promotion_triggered` or `rollback_triggered`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The deployment.
    pub deployment_id: String,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// The change.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: Value,
}

impl Event {
    /// The stream messages this event means for live subscribers.
    pub fn stream(&self) -> Vec<StreamEvent> {
        let Some(id) = &self.deployment_id else {
            return Vec::new();
        };
        let revision = self.data.get("revision").cloned();
        let msg = |kind: &str, mut data: Value| {
            if let (Some(d), Some(r)) = (data.as_object_mut(), &revision) {
                d.insert("revision".into(), r.clone());
            }
            StreamEvent {
                kind: kind.to_string(),
                deployment_id: id.clone(),
                timestamp: self.timestamp,
                data,
            }
        };
        let status_change = || {
            msg(
                "deployment_status_changed",
                json!({"old_status": self.data["old_status"], "new_status": self.data["new_status"], "reason": self.data.get("reason")}),
            )
        };
        match self.kind {
            EventType::DeploymentCreated => vec![msg(
                "deployment_status_changed",
                json!({"old_status": null, "new_status": self.data["new_status"]}),
            )],
            EventType::PercentageUpdated => vec![msg(
                "percentage_updated",
                json!({"old_percentage": self.data["old_percentage"], "new_percentage": self.data["new_percentage"]}),
            )],
            EventType::DeploymentPromoted => vec![
                msg("promotion_triggered", self.data.clone()),
                status_change(),
            ],
            EventType::DeploymentRolledBack => vec![
                msg("rollback_triggered", self.data.clone()),
                status_change(),
            ],
            EventType::DeploymentPaused | EventType::DeploymentResumed => vec![status_change()],
            EventType::HealthCheckFailed => vec![msg("health_status_changed", self.data.clone())],
            _ => Vec::new(),
        }
    }
}
