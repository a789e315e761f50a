//! Products: the deployable things (a service, a worker, a pipeline) that have releases.
//!
//! A product is addressed by its name in URLs (`/release/{product_name}/latest`), so
//! names are restricted to characters that need no escaping in a path segment.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;

pub use crate::validate::{
    MAX_DESCRIPTION_LEN, MAX_NAME_LEN, validate_description, validate_name, validate_text,
};

/// A deployable thing that has releases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Product {
    /// Stable numeric identifier.
    pub id: i64,
    /// Unique name, used in URLs.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// When the product was created.
    pub created_at: DateTime<Utc>,
    /// When the product last changed.
    pub updated_at: DateTime<Utc>,
}

/// What a client sends to create a product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    /// Unique name: 1–100 characters of `A-Z a-z 0-9 . _ -`, starting with a letter or digit.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

impl NewProduct {
    /// Checks the fields; the store relies on this having been called.
    pub fn validate(&self) -> Result<(), DomainError> {
        validate_name("name", &self.name)?;
        validate_description("description", self.description.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["web", "Web-1", "a", "svc_2.api", "0day"] {
            assert!(validate_name("name", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-web",
            ".x",
            "has space",
            "slash/x",
            "é",
            &"a".repeat(101),
        ] {
            assert!(validate_name("name", bad).is_err(), "{bad}");
        }
    }
}
