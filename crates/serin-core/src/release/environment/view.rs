//! The release manager's reading of a deployment: its status as one of the
//! documented release-deployment statuses.

#[allow(unused_imports)]
use super::*;

/// The statuses of a release's deployment to an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReleaseDeploymentStatus {
    /// Waiting for approvals or for its pre-deploy hook; no traffic has moved.
    Pending,
    /// Moving traffic.
    InProgress,
    /// Promoted: the release runs there.
    Succeeded,
    /// Rolled back by the judges, a failed hook or a rejection.
    Failed,
    /// Undone by a person.
    RolledBack,
}

impl ReleaseDeploymentStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InProgress => "in_progress",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_string())).ok()
    }

    /// Reads a canary deployment.
    pub fn of(d: &Deployment) -> Self {
        if d.metadata.contains_key("rolled_back_by") {
            return Self::RolledBack;
        }
        match d.status {
            DeploymentStatus::Completed => Self::Succeeded,
            DeploymentStatus::Failed if d.metadata.contains_key("manual_rollback") => {
                Self::RolledBack
            }
            DeploymentStatus::Failed => Self::Failed,
            _ if d.current_percent == 0 && before_traffic(d) => Self::Pending,
            _ => Self::InProgress,
        }
    }
}

/// Whether the deployment is still at its opening gates or pre-deploy hook.
fn before_traffic(d: &Deployment) -> bool {
    let Some(r) = &d.rollout else { return false };
    let gate = matches!(r.current(), Some(Step::Gate(_)));
    let hook = !r.pre_rollout_done && r.spec.has_hooks(HookKind::PreRollout);
    r.spec.steps[..r.step.min(r.spec.steps.len())]
        .iter()
        .all(|s| matches!(s, Step::Gate(_)))
        && (gate || hook)
}

/// A release's deployment: one release entering one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseDeployment {
    /// The canary deployment's id (the same record under `/api/v1/canary/deployments`).
    pub id: String,
    /// The release deployed, when the deployment came from the release manager
    /// or names a product's known version.
    pub release_id: Option<i64>,
    /// The product.
    pub product: Option<String>,
    /// The version deployed.
    pub version: String,
    /// What ran before.
    pub previous_version: String,
    /// The environment.
    pub environment: Option<String>,
    /// `direct`, `canary` or `blue_green` (`canary` for deployments made with the canary API).
    pub strategy: String,
    /// Its status.
    pub status: ReleaseDeploymentStatus,
    /// The canary share now.
    pub current_percent: u8,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub completed_at: Option<DateTime<Utc>>,
    /// Who deployed it.
    pub deployed_by: String,
    /// Why it failed or was rolled back.
    pub error_message: Option<String>,
    /// The deployment that undid this one, if any.
    pub rolled_back_by: Option<String>,
}

impl ReleaseDeployment {
    /// The release manager's reading of a canary deployment.
    pub fn of(d: &Deployment) -> ReleaseDeployment {
        let status = ReleaseDeploymentStatus::of(d);
        ReleaseDeployment {
            id: d.id.clone(),
            release_id: d.metadata.get("release_id").and_then(Value::as_i64),
            product: d.product.clone(),
            version: d.canary_version.clone(),
            previous_version: d.stable_version.clone(),
            environment: d.environment.clone(),
            strategy: d
                .metadata
                .get("strategy")
                .and_then(Value::as_str)
                .unwrap_or("canary")
                .to_string(),
            status,
            current_percent: d.current_percent,
            started_at: d.start_time,
            completed_at: d.completed_at,
            deployed_by: d.created_by.clone(),
            error_message: match status {
                ReleaseDeploymentStatus::Failed | ReleaseDeploymentStatus::RolledBack => {
                    d.status_reason.clone()
                }
                _ => None,
            },
            rolled_back_by: d
                .metadata
                .get("rolled_back_by")
                .and_then(Value::as_str)
                .map(str::to_string),
        }
    }
}
