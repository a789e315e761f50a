//! Secrets: values a plan may use but nobody may read back — a Slack webhook
//! URL (its path is the credential), a gate's tokenised URL, the key a
//! notification target verifies signatures with.
//!
//! An admin stores a secret under a name (`PUT /api/v1/secrets/{name}`); the
//! server keeps it encrypted at rest and never returns it. A plan names it:
//! `secret:NAME` in place of a URL, or `signing_secret: NAME` on a
//! notification. Plans, events and the audit log then show only the name, so
//! every viewer may read them.

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// The prefix of a reference in a URL field: `secret:NAME`.
pub const PREFIX: &str = "secret:";

/// Longest value stored.
pub const MAX_VALUE_BYTES: usize = 8192;

/// A secret's name: 1–64 of `a-z 0-9 _ -`.
pub fn is_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Checks a name given by a client.
pub fn validate_name(field: &str, name: &str) -> Result<(), DomainError> {
    if is_name(name) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            "a secret's name is 1–64 of a-z, 0-9, _ and -",
        ))
    }
}

/// The secret a URL field names (`secret:NAME`), if it names one.
pub fn reference(value: &str) -> Option<&str> {
    value.strip_prefix(PREFIX)
}

/// A secret as lists show it: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SecretInfo {
    /// Its name.
    pub name: String,
    /// When it was first stored.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When its value last changed.
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// Who last set it.
    pub updated_by: String,
}

/// A value to store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SecretValue {
    /// The value: 1–8,192 bytes. Never shown again.
    pub value: String,
}

impl SecretValue {
    /// Checks the value's size.
    pub fn validate(&self) -> Result<(), DomainError> {
        if self.value.is_empty() || self.value.len() > MAX_VALUE_BYTES {
            return Err(DomainError::invalid(
                "value",
                "a secret's value is 1–8,192 bytes",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_references() {
        assert!(is_name("slack-ops_1"));
        for bad in ["", "Slack", "a b", "a/b", &"x".repeat(65)] {
            assert!(!is_name(bad), "{bad:?}");
        }
        assert_eq!(reference("secret:slack"), Some("slack"));
        assert_eq!(reference("https://x"), None);
        assert!(
            SecretValue {
                value: String::new()
            }
            .validate()
            .is_err()
        );
        assert!(
            SecretValue {
                value: "x".repeat(8193)
            }
            .validate()
            .is_err()
        );
    }
}
