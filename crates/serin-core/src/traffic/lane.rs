//! The two sides of every deployment.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One side of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    /// The version currently trusted.
    Stable,
    /// The version being tried.
    Canary,
}

impl Lane {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Stable => "stable",
            Lane::Canary => "canary",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Lane> {
        match s {
            "stable" => Some(Lane::Stable),
            "canary" => Some(Lane::Canary),
            _ => None,
        }
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
