//! A deployment change's release effect on SQLite, inside the change's
//! transaction (see `serin_core::release::effect`).

use rusqlite::{Connection, OptionalExtension, params};
use serin_core::Timestamp;
use serin_core::canary::Deployment;
use serin_core::event::Event;
use serin_core::release::effect::{self, EffectKind, Placement, ReleaseEffect};

use super::manager::load_environments;
use super::{release_by_version_on, sql_err, update_release_on};
use crate::{Result, StoreError};

/// Carries `effect` out in a savepoint of the deployment's transaction: the
/// release moves with the deployment, or, when the release side fails (an
/// unreadable environment, say), the deployment's change still commits and
/// the failure is logged. A rollback must never be held up by its release.
pub(crate) fn apply_or_log(
    c: &Connection,
    effect: &ReleaseEffect,
    d: &Deployment,
    actor: &str,
    now: Timestamp,
) -> Result<Vec<Event>> {
    c.execute_batch("SAVEPOINT release_effect")
        .map_err(sql_err)?;
    match apply(c, effect, d, actor, now) {
        Ok(events) => {
            c.execute_batch("RELEASE release_effect").map_err(sql_err)?;
            Ok(events)
        }
        Err(e) => {
            c.execute_batch("ROLLBACK TO release_effect; RELEASE release_effect")
                .map_err(sql_err)?;
            tracing::warn!(error = %e, deployment = %d.id, product = %effect.product, version = %effect.version, "the release could not follow its deployment; the deployment's change stands");
            Ok(Vec::new())
        }
    }
}

/// Carries `effect` out on its release; returns the events it recorded. An
/// unknown product or version asks nothing.
fn apply(
    c: &Connection,
    effect: &ReleaseEffect,
    d: &Deployment,
    actor: &str,
    now: Timestamp,
) -> Result<Vec<Event>> {
    let envs = match load_environments(c, &effect.product) {
        Ok(envs) => envs,
        Err(StoreError::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let placement = effect::placement(d, &envs);
    let ships = placement == Placement::Outside
        && effect.kind == EffectKind::Promoted
        && (envs.iter().any(|e| e.configured)
            || deployed_to_any(c, &effect.product, envs.iter().map(|e| e.name.as_str()))?);
    if !effect::decide(effect, placement, ships) {
        return Ok(Vec::new());
    }
    let Some(release) = release_by_version_on(c, &effect.product, &effect.version)? else {
        return Ok(Vec::new());
    };
    let mut events = Vec::new();
    for patch in effect::patches(effect, &release) {
        events.extend(update_release_on(c, release.id, &patch, actor, now)?.1);
    }
    Ok(events)
}

/// Whether any deployment of `product` went to one of `envs`.
fn deployed_to_any<'a>(
    c: &Connection,
    product: &str,
    envs: impl Iterator<Item = &'a str>,
) -> Result<bool> {
    for env in envs {
        let found: Option<i64> = c
            .prepare_cached(
                "SELECT 1 FROM deployments WHERE json_extract(body, '$.product') = ?1
                 AND json_extract(body, '$.environment') = ?2 LIMIT 1",
            )
            .and_then(|mut s| s.query_row(params![product, env], |r| r.get(0)).optional())
            .map_err(sql_err)?;
        if found.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}
