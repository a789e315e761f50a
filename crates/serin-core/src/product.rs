//! Products: the deployable things (a service, a worker, a pipeline) that have releases.
//!
//! A product is addressed by its name in URLs (`/release/{product_name}/latest`), so
//! names are restricted to characters that need no escaping in a path segment.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;

/// Longest product name accepted.
pub const MAX_NAME_LEN: usize = 100;
/// Longest description accepted, for products and releases.
pub const MAX_DESCRIPTION_LEN: usize = 10_000;

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

/// Checks a product name (also used for names given in paths and signals).
pub fn validate_name(field: &str, name: &str) -> Result<(), DomainError> {
    if name.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {MAX_NAME_LEN} characters"),
        ));
    }
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let all_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !first_ok || !all_ok {
        return Err(DomainError::invalid(
            field,
            "must start with a letter or digit and contain only letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(())
}

/// Checks an optional description: its length, and no control characters but
/// tab and line breaks.
pub fn validate_description(field: &str, text: Option<&str>) -> Result<(), DomainError> {
    let Some(t) = text else { return Ok(()) };
    if t.len() > MAX_DESCRIPTION_LEN {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {MAX_DESCRIPTION_LEN} bytes"),
        ));
    }
    validate_text(field, t)
}

/// Refuses control characters (NUL among them) other than tab, CR and LF: they
/// break terminals and logs, and PostgreSQL can't store NUL at all.
pub fn validate_text(field: &str, text: &str) -> Result<(), DomainError> {
    match text
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        Some(c) => Err(DomainError::invalid(
            field,
            format!(
                "must not contain control characters (found U+{:04X})",
                u32::from(c)
            ),
        )),
        None => Ok(()),
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
