//! Roles (seed 003): what a caller may do.
//!
//! Three roles in a strict order: a `viewer` reads; an `engineer` also changes
//! deployments, releases, products, signals and workers; an `admin` also manages
//! API keys and users. A route names the least role it needs.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// A caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// Changes deployments, releases, products, signals and workers.
    Engineer,
    /// Also manages API keys and users.
    Admin,
}

impl Role {
    /// Whether this role includes `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Engineer => "engineer",
            Role::Admin => "admin",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Result<Role, DomainError> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "engineer" => Ok(Role::Engineer),
            "admin" => Ok(Role::Admin),
            _ => Err(DomainError::invalid(
                "role",
                format!("`{s}` is not a role; use admin, engineer or viewer"),
            )),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order() {
        assert!(Role::Admin.allows(Role::Engineer));
        assert!(Role::Engineer.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Engineer));
        assert!(!Role::Engineer.allows(Role::Admin));
        assert_eq!(Role::parse("engineer"), Ok(Role::Engineer));
        assert!(Role::parse("root").is_err());
    }
}
