//! What a plan may ask of this server, judged when the plan arrives: command
//! hooks only where the server allows them, and connections only where the
//! outbound policy allows them (as written; the policy judges again on every
//! connection, after resolution). Both route handlers that take a plan and the
//! environment handler that takes a pre-deploy hook come through here, so a
//! refused plan changes nothing.

use serin_core::error::DomainError;
use serin_core::release::environment::EnvironmentSpec;
use serin_core::rollout::RolloutSpec;

use crate::Config;

/// Refuses a rollout plan that asks for what this server doesn't allow. Fields
/// are named under `rollout.`.
pub fn plan(config: &Config, spec: &RolloutSpec) -> Result<(), DomainError> {
    if !config.allow_hook_commands
        && let Some(i) = spec.hooks.iter().position(|h| h.command.is_some())
    {
        return Err(DomainError::invalid(
            format!("rollout.hooks[{i}].command"),
            "command hooks are disabled on this server (start it with --allow-hook-commands); use a webhook",
        ));
    }
    for (field, target) in spec.outbound_targets() {
        if serin_core::secret::reference(target).is_some() {
            continue; // judged when it is resolved, at the call
        }
        config
            .outbound
            .check_target(target)
            .map_err(|d| DomainError::invalid(format!("rollout.{field}"), d.to_string()))?;
    }
    Ok(())
}

/// Refuses a plan that names a secret this server doesn't have (or a server
/// without secrets): the plan would fail its calls later, silently.
pub async fn secrets(
    store: &serin_store::Store,
    config: &Config,
    spec: &RolloutSpec,
) -> Result<(), DomainError> {
    let mut named: Vec<(String, &str)> = Vec::new();
    for (field, target) in spec.outbound_targets() {
        if let Some(name) = serin_core::secret::reference(target) {
            named.push((format!("rollout.{field}"), name));
        }
    }
    for (i, n) in spec.notifications.iter().enumerate() {
        if let Some(name) = &n.signing_secret {
            named.push((format!("rollout.notifications[{i}].signing_secret"), name));
        }
    }
    if named.is_empty() {
        return Ok(());
    }
    let have: std::collections::BTreeSet<String> = match config.sealer {
        Some(_) => store
            .list_secrets()
            .await
            .map_err(|e| DomainError::invalid("rollout", format!("cannot read the secrets: {e}")))?
            .into_iter()
            .map(|s| s.name)
            .collect(),
        None => Default::default(),
    };
    for (field, name) in named {
        if !have.contains(name) {
            return Err(DomainError::invalid(
                field,
                format!(
                    "no secret named `{name}` on this server (an admin stores it with PUT /api/v1/secrets/{name})"
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses an environment whose pre-deploy hook asks for what this server
/// doesn't allow.
pub fn environment(config: &Config, spec: &EnvironmentSpec) -> Result<(), DomainError> {
    let Some(Some(h)) = &spec.pre_deploy_hook else {
        return Ok(());
    };
    if h.command.is_some() && !config.allow_hook_commands {
        return Err(DomainError::invalid(
            "pre_deploy_hook.command",
            "this server doesn't run commands (start it with --allow-hook-commands), or use a webhook",
        ));
    }
    if let Some(url) = &h.webhook {
        config
            .outbound
            .check_target(url)
            .map_err(|d| DomainError::invalid("pre_deploy_hook.webhook", d.to_string()))?;
    }
    Ok(())
}
