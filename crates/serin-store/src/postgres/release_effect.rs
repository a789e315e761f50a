//! A deployment change's release effect on PostgreSQL, inside the change's
//! transaction (see `serin_core::release::effect`).

use deadpool_postgres::GenericClient;
use serin_core::Timestamp;
use serin_core::canary::Deployment;
use serin_core::event::Event;
use serin_core::release::effect::{self, EffectKind, Placement, ReleaseEffect};

use super::manager::load_environments;
use super::{pg_err, product_id, release_by_version_on, update_release_on};
use crate::{Result, StoreError};

/// Carries `effect` out in a savepoint of the deployment's transaction: the
/// release moves with the deployment, or, when the release side fails (an
/// unreadable environment, say), the deployment's change still commits and
/// the failure is logged. A rollback must never be held up by its release.
pub(crate) async fn apply_or_log(
    tx: &mut deadpool_postgres::Transaction<'_>,
    effect: &ReleaseEffect,
    d: &Deployment,
    actor: &str,
    now: Timestamp,
) -> Result<Vec<Event>> {
    let sp = tx.savepoint("release_effect").await.map_err(pg_err)?;
    match apply(&sp, effect, d, actor, now).await {
        Ok(events) => {
            sp.commit().await.map_err(pg_err)?;
            Ok(events)
        }
        Err(e) => {
            sp.rollback().await.map_err(pg_err)?;
            tracing::warn!(error = %e, deployment = %d.id, product = %effect.product, version = %effect.version, "the release could not follow its deployment; the deployment's change stands");
            Ok(Vec::new())
        }
    }
}

/// Carries `effect` out on its release; returns the events it recorded. An
/// unknown product or version asks nothing.
async fn apply(
    c: &impl GenericClient,
    effect: &ReleaseEffect,
    d: &Deployment,
    actor: &str,
    now: Timestamp,
) -> Result<Vec<Event>> {
    match product_id(c, &effect.product).await {
        Ok(_) => {}
        Err(StoreError::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    }
    let envs = load_environments(c, &effect.product).await?;
    let placement = effect::placement(d, &envs);
    let ships = placement == Placement::Outside
        && effect.kind == EffectKind::Promoted
        && (envs.iter().any(|e| e.configured)
            || deployed_to_any(
                c,
                &effect.product,
                &envs.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
            )
            .await?);
    if !effect::decide(effect, placement, ships) {
        return Ok(Vec::new());
    }
    let Some(release) = release_by_version_on(c, &effect.product, &effect.version).await? else {
        return Ok(Vec::new());
    };
    let mut events = Vec::new();
    for patch in effect::patches(effect, &release) {
        events.extend(
            update_release_on(c, release.id, &patch, actor, now)
                .await?
                .1,
        );
    }
    Ok(events)
}

/// Whether any deployment of `product` went to one of `envs`.
async fn deployed_to_any(c: &impl GenericClient, product: &str, envs: &[&str]) -> Result<bool> {
    let row = c
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM deployments WHERE body->>'product' = $1
              AND body->>'environment' = ANY($2))",
            &[&product, &envs],
        )
        .await
        .map_err(pg_err)?;
    Ok(row.get(0))
}
