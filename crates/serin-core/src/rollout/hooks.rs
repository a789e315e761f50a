//! Hooks: what a rollout asks of the outside world at its turning points, the
//! kinds Flagger users know.
//!
//! - `pre_rollout` runs before the first step (a database migration, a smoke
//!   test). Failing after its retries rolls the deployment back: nothing has
//!   moved yet, and the new version can't run without it.
//! - `confirm_step` is asked before every weight change; `confirm_promotion`
//!   before the promotion. A "no" holds the rollout (it is asked again) — a
//!   confirmation is a question, not a verdict.
//! - `on_rollback` runs once after a rollback; `post_rollout` once after the
//!   deployment ends either way. Their outcome is recorded; it changes nothing.
//!
//! Each hook is a webhook (a POST of the deployment's position; 2xx is yes) or,
//! where the server allows it, a command (exit 0 is yes) with a timeout and
//! retries. Outputs are kept in the events. Hooks run at least once: a crash
//! between running one and recording its result runs it again, so they should
//! be idempotent — as migrations and confirmations usually are.

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HookKind {
    /// Before the first step; failure rolls back.
    PreRollout,
    /// Before each weight change; "no" holds.
    ConfirmStep,
    /// Before promotion; "no" holds.
    ConfirmPromotion,
    /// After the deployment ends, either way.
    PostRollout,
    /// After a rollback.
    OnRollback,
}

impl HookKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::PreRollout => "pre_rollout",
            HookKind::ConfirmStep => "confirm_step",
            HookKind::ConfirmPromotion => "confirm_promotion",
            HookKind::PostRollout => "post_rollout",
            HookKind::OnRollback => "on_rollback",
        }
    }
}

/// One hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Hook {
    /// Unique within the rollout.
    pub name: String,
    /// When it runs.
    pub kind: HookKind,
    /// A webhook URL (give this or `command`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// A command and its arguments (no shell), e.g. `["sqlx", "migrate", "run"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Seconds one attempt may take (default 30).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
    /// Further attempts after a failure (default 2).
    #[serde(default = "default_retries")]
    pub retry_count: u32,
}

fn default_timeout() -> u32 {
    30
}
fn default_retries() -> u32 {
    2
}

impl Hook {
    /// Checks the hook; errors name the field.
    pub fn validate(&self) -> Result<(), DomainError> {
        crate::rollout::check_item_name(&self.name)?;
        match (&self.webhook, &self.command) {
            (Some(url), None) => {
                crate::rollout::check_http_url("webhook", url)?;
            }
            (None, Some(argv)) => {
                if argv.is_empty() || argv[0].trim().is_empty() || argv.len() > 100 {
                    return Err(DomainError::invalid(
                        "command",
                        "give the program and its arguments, e.g. [\"sqlx\", \"migrate\", \"run\"]",
                    ));
                }
                if argv.iter().any(|a| a.len() > 4096 || a.contains('\0')) {
                    return Err(DomainError::invalid(
                        "command",
                        "arguments are at most 4096 characters, without NUL",
                    ));
                }
            }
            _ => {
                return Err(DomainError::invalid(
                    "webhook",
                    "give exactly one of `webhook` and `command`",
                ));
            }
        }
        if !(1..=3600).contains(&self.timeout_seconds) {
            return Err(DomainError::invalid("timeout_seconds", "is 1–3600"));
        }
        if self.retry_count > 10 {
            return Err(DomainError::invalid("retry_count", "is at most 10"));
        }
        Ok(())
    }
}

/// What running the hooks of one kind gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HookRun {
    /// The hook.
    pub name: String,
    /// When it ran.
    pub kind: HookKind,
    /// Whether it said yes (2xx, exit 0).
    pub ok: bool,
    /// Attempts made.
    pub attempts: u32,
    /// What it said: the HTTP status and the start of the body, or the exit
    /// status and the end of the output.
    pub output: String,
}
