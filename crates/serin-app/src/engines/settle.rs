//! The leader's follow-up of deployments that ended on an engine: their
//! final share (100% after a promotion, 0% after a rollback) read back and
//! put in effect again until the engine reports it.
//!
//! The replica that ends a deployment sends its final share at once
//! (`super::follow`); this is the guarantee behind it. Every tick the leader
//! notes which live deployments name an engine; one that stops being live is
//! settled from then on, each tick, until the read-back agrees or two minutes
//! have passed (then a warning says so). So an end made on a replica that
//! stopped before its follow-up finished, or on another machine than nginx,
//! still reaches the engine. A new leader starts with an empty memory: what
//! ended while no leader was acting is not settled by it. Nor is a backend
//! that a live deployment has taken over since: it is that one's now.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serin_core::canary::Deployment;

use crate::App;

/// How long a deployment is settled before the leader gives up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);
/// The longest settling holds a tick.
const SETTLE_FOR: Duration = Duration::from_secs(2);

/// The leader's memory of engine deployments.
#[derive(Debug, Default)]
pub struct Settling {
    /// Live engine deployments at the last tick.
    live: Mutex<HashSet<String>>,
    /// Ended ones not yet confirmed, since when.
    ended: Mutex<HashMap<String, Instant>>,
}

impl Settling {
    /// Notes this tick's live deployments; those with an engine that were
    /// live last tick and aren't now are settled from now on.
    pub fn track(&self, live: &[Deployment]) {
        let now: HashSet<String> = live
            .iter()
            .filter(|d| d.engine.is_some())
            .map(|d| d.id.clone())
            .collect();
        let before = std::mem::replace(&mut *self.live.lock().expect("settling lock"), now.clone());
        let mut ended = self.ended.lock().expect("settling lock");
        for id in before.difference(&now) {
            ended.entry(id.clone()).or_insert_with(Instant::now);
        }
    }

    /// Forgets everything (a term ended).
    pub fn clear(&self) {
        self.live.lock().expect("settling lock").clear();
        self.ended.lock().expect("settling lock").clear();
    }

    /// Reads back each ended deployment's engine and puts its final share in
    /// effect where it isn't: several at once, and for at most `SETTLE_FOR`
    /// a tick (what isn't done is done next tick), so the tick isn't held.
    pub async fn settle(&self, app: &App, live: &[Deployment]) {
        use futures::StreamExt;
        let ids: Vec<(String, Instant)> = self
            .ended
            .lock()
            .expect("settling lock")
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let work = futures::stream::iter(ids).for_each_concurrent(8, |(id, since)| async move {
            if self.settled(app, &id, live).await {
                self.ended.lock().expect("settling lock").remove(&id);
            } else if since.elapsed() > GIVE_UP_AFTER {
                tracing::warn!(deployment = %id, "gave up putting an ended deployment's final share in effect on its engine");
                self.ended.lock().expect("settling lock").remove(&id);
            }
        });
        let _ = tokio::time::timeout(SETTLE_FOR, work).await;
    }

    /// Whether `id`'s final share is in effect (after sending it if not).
    /// A backend that a live deployment splits now is that one's: settled.
    async fn settled(&self, app: &App, id: &str, live: &[Deployment]) -> bool {
        let d = match app.store.get_deployment(id).await {
            Ok(d) => d,
            Err(serin_store::StoreError::NotFound { .. }) => return true,
            Err(_) => return false,
        };
        // Live again can't happen; deleted or engine-less: nothing to do.
        let Some(target) = d.engine.as_ref().filter(|_| !d.status.is_live()) else {
            return true;
        };
        if super::taken(live, target) {
            return true;
        }
        let Ok(engine) = app.config.engines.get(&target.engine) else {
            return true;
        };
        let want = serin_core::traffic::engine::RouteState::of(&d);
        if let Ok(seen) = engine.read_back(target, &want).await
            && seen.holds(target, &want)
        {
            return true;
        }
        if let Err(e) = engine.apply(target, &want).await {
            tracing::warn!(deployment = %id, error = %e, "cannot put an ended deployment's final share in effect");
        }
        false
    }
}
