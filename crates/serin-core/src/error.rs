//! The domain's one error type.
//!
//! Each variant says what rule was broken and names the field, so the API layer can
//! turn it into a precise client error without re-parsing text.

use crate::release::ReleaseStatus;

/// A rule of the domain was broken by the caller's input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DomainError {
    /// A field's value is not acceptable.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field's path as the client wrote it, e.g. `signals[3].lane`.
        field: String,
        /// Why it is not acceptable, in words a person can act on.
        reason: String,
    },
    /// A traffic percentage outside 0–100 or not a whole number.
    #[error("percentage must be a whole number from 0 to 100, not {value}")]
    InvalidPercentage {
        /// The value given, as JSON.
        value: String,
    },
    /// The deployment is final (or draining) and can't take this action.
    #[error("deployment {id} is {status}; cannot {action}")]
    NotActive {
        /// The deployment.
        id: String,
        /// Its status.
        status: &'static str,
        /// What was asked.
        action: String,
    },
    /// The deployment is live and can't be deleted.
    #[error("deployment {id} is {status}; promote or roll it back before deleting it")]
    StillActive {
        /// The deployment.
        id: String,
        /// Its status.
        status: &'static str,
    },
    /// A release may not move from one status to another.
    #[error("a release in status `{from}` cannot become `{to}`; allowed next: {allowed}")]
    IllegalTransition {
        /// The release's current status.
        from: ReleaseStatus,
        /// The status that was asked for.
        to: ReleaseStatus,
        /// The statuses reachable from `from`, comma-separated (or "none").
        allowed: String,
    },
    /// A rule of the release manager refused the action (an approval policy,
    /// the promotion order between environments).
    #[error("{message}")]
    Refused {
        /// The error code clients match on, e.g. `SELF_APPROVAL`.
        code: &'static str,
        /// What was refused and why, for people.
        message: String,
        /// Which kind of refusal (the server maps it to a status).
        kind: Kind,
    },
}

/// What kind of refusal an error is, whatever protocol tells the caller:
/// `serin-server` maps each to one HTTP status, in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The thing named doesn't exist.
    NotFound,
    /// It exists, but its state doesn't allow the request now.
    Conflict,
    /// The caller may not do this at all.
    Forbidden,
    /// The request itself is wrong.
    Invalid,
}

impl DomainError {
    /// A field is invalid, for the given reason.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        DomainError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error with its field path put under `prefix` (e.g. `signals[3]`).
    #[must_use]
    pub fn under(self, prefix: &str) -> Self {
        match self {
            DomainError::Invalid { field, reason } => DomainError::Invalid {
                field: format!("{prefix}.{field}"),
                reason,
            },
            other => other,
        }
    }
}
