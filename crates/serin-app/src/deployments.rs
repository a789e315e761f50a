//! Deployments: start one, apply a transition to one, read its lanes.
//!
//! Every change of a deployment goes through [`change`]: the store applies
//! core's transition inside its transaction (with the release effects it
//! decides, `serin_core::release::effect`), and only what committed is
//! published.

use serin_core::canary::metrics::{self, LaneWorkers, MetricsSnapshot};
use serin_core::canary::worker::WorkerStatus;
use serin_core::canary::{Deployment, NewDeployment};
use serin_core::event::NewEvent;
use serin_core::{DomainError, Lane};
use serin_store::canary::DeploymentChange;

use crate::{App, AppResult};

/// Applies a transition and publishes its events (with the release effects it
/// carried, such as a promoted release becoming `released`, committed with it).
pub async fn change(
    app: &App,
    who: &str,
    id: &str,
    f: impl FnOnce(&mut Deployment) -> Result<Vec<NewEvent>, DomainError> + Send + 'static,
) -> AppResult<Deployment> {
    let f: DeploymentChange = Box::new(f);
    let (d, events) = app
        .store
        .update_deployment(id, None, f, who, app.now())
        .await?;
    app.committed(&events);
    crate::engines::follow(app, &d);
    Ok(d)
}

/// Admits a new deployment (its plan and the secrets it names), stores it
/// with its creation event and publishes that.
pub async fn start(app: &App, who: &str, new: NewDeployment) -> AppResult<Deployment> {
    crate::engines::admit(
        app,
        new.engine.as_ref(),
        new.traffic.as_ref().unwrap_or(&Default::default()),
        new.rollout.as_ref(),
    )
    .await?;
    crate::engines::not_in_use(app, new.engine.as_ref()).await?;
    if let Some(spec) = &new.rollout {
        crate::admission::plan(&app.config, spec)?;
        crate::admission::secrets(&app.store, &app.config, spec).await?;
    }
    let id = format!("canary_{}", uuid::Uuid::new_v4());
    let (d, event) = new.resolve(id, who, app.now())?;
    let (d, events) = app
        .store
        .create_deployment(d, event, who, app.config.max_live_deployments)
        .await?;
    app.committed(&events);
    crate::engines::follow(app, &d);
    Ok(d)
}

/// Both lanes' snapshots over the deployment's window.
pub async fn lane_metrics(
    app: &App,
    d: &Deployment,
) -> AppResult<(MetricsSnapshot, MetricsSnapshot)> {
    let now = app.now();
    let window = metrics::window(d, now);
    let [stable, canary] = app.store.lane_windows(&d.id, window.0, window.1).await?;
    let mut workers = [LaneWorkers::default(), LaneWorkers::default()];
    let serving = app.store.workers_on_queue(&d.queue_name).await?;
    for w in serving
        .iter()
        .filter(|w| w.status != WorkerStatus::Unreachable)
    {
        let lw = &mut workers[usize::from(w.lane == Lane::Canary)];
        lw.count += 1;
        lw.memory_mb.push(w.metrics.memory_usage_mb);
        lw.cpu_percent.push(w.metrics.cpu_usage_percent);
    }
    Ok((
        metrics::snapshot(&stable, &workers[0], &d.stable_version, window, now),
        metrics::snapshot(&canary, &workers[1], &d.canary_version, window, now),
    ))
}
