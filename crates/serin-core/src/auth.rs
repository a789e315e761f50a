//! Roles: what a caller may do.
//!
//! Three roles for people and their tools, in a strict order: a `viewer` reads;
//! an `engineer` also changes deployments, releases, products, signals and
//! workers; an `admin` also manages API keys and users. A route names the least
//! role it needs.
//!
//! Beside them, outside the order, the `proxy` role of a remote `serin proxy`:
//! it reads the route set and reports lane metrics, and nothing else — not
//! even what a viewer reads. A stolen proxy credential can't change a
//! deployment. The routes a proxy uses name [`Role::Proxy`], which engineers
//! and admins also pass (an engineer may run a proxy by hand).

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
    /// A remote proxy: reads routes, reports lane metrics; outside the order.
    Proxy,
}

impl Role {
    /// Whether this role includes `needed`.
    pub fn allows(self, needed: Role) -> bool {
        match (self, needed) {
            (Role::Proxy, needed) => needed == Role::Proxy,
            (person, Role::Proxy) => person >= Role::Engineer,
            (person, needed) => person >= needed,
        }
    }

    /// Whether people (users, not keys) may hold this role.
    pub fn is_for_people(self) -> bool {
        self != Role::Proxy
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Engineer => "engineer",
            Role::Admin => "admin",
            Role::Proxy => "proxy",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Result<Role, DomainError> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "engineer" => Ok(Role::Engineer),
            "admin" => Ok(Role::Admin),
            "proxy" => Ok(Role::Proxy),
            _ => Err(DomainError::invalid(
                "role",
                format!("`{s}` is not a role; use admin, engineer, viewer or proxy"),
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
        assert!(Role::Proxy.allows(Role::Proxy));
        for r in [Role::Viewer, Role::Engineer, Role::Admin] {
            assert!(!Role::Proxy.allows(r), "a proxy key passes as {r}");
            assert_eq!(r.allows(Role::Proxy), r >= Role::Engineer);
        }
    }
}
