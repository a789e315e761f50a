//! The application's errors: what went wrong, and of which kind, never how a
//! protocol says it. `serin-server` maps a [`Kind`] to an HTTP status in one
//! place (`error.rs`); a CLI or a test reads the kind and the code.

use serde_json::Value;
use serin_core::DomainError;
use serin_store::StoreError;

pub use serin_core::error::Kind;

/// A failure of an application service.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// From the store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// From a domain rule.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// A refusal of the service's own.
    #[error("{message}")]
    Refused {
        /// Which kind.
        kind: Kind,
        /// The stable code (`DEPLOYMENT_EXISTS`…).
        code: &'static str,
        /// One sentence for people.
        message: String,
        /// Fields for programs.
        details: Option<Value>,
    },
    /// A field of the request is wrong.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field's path.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A service's result.
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// A refusal with its kind, code and message.
    pub fn new(kind: Kind, code: &'static str, message: impl Into<String>) -> Self {
        AppError::Refused {
            kind,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// A wrong field.
    pub fn invalid(field: &str, reason: &str) -> Self {
        AppError::Invalid {
            field: field.to_string(),
            reason: reason.to_string(),
        }
    }

    /// The same refusal with details for programs.
    #[must_use]
    pub fn details(mut self, v: Value) -> Self {
        if let AppError::Refused { details, .. } = &mut self {
            *details = Some(v);
        }
        self
    }
}
