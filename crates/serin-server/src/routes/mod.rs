//! One module, one `router()`, per feature.

pub mod admin_canary;
pub mod api_keys;
pub mod audit;
pub mod canary;
pub mod cluster;
pub mod dashboard;
pub mod deployments;
pub mod docs;
pub mod environments;
pub mod health;
pub mod integrations;
pub mod products;
pub mod proxies;
pub mod releases;
pub mod rollouts;
pub mod secrets;
pub mod signals;
pub mod users;
pub mod workers;

use serde::{Deserialize, Serialize};
use serin_store::{Entity, StoreError};

use crate::error::ApiError;

/// A product name taken from a URL path. A name that could never have been
/// created (bad characters, NUL, too long) names no product: 404, like any other
/// unknown name, without asking the database.
pub(crate) fn product_in_path(name: String) -> Result<String, ApiError> {
    match serin_core::release::product::validate_name("name", &name) {
        Ok(()) => Ok(name),
        Err(_) => Err(StoreError::NotFound {
            entity: Entity::Product,
            key: name,
            field: None,
        }
        .into()),
    }
}

/// The answer to promote, rollback, pause and resume.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActionAnswer {
    /// Always true (failures are errors).
    pub success: bool,
    /// What happened.
    pub message: String,
    /// The reason given, for rollbacks and pauses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When.
    pub timestamp: chrono::DateTime<chrono::Utc>,
}

/// `{"reason": "..."}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
}
