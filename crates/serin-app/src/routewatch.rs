//! The current route set, kept fresh for proxies.
//!
//! One background task per process holds the route set in a `watch` channel.
//! The store keeps a route generation that moves in the same transaction as
//! every change that can alter the route set, on any replica. The task reads
//! the generation, then the routed deployments (each target's newest, never
//! the whole history), and reloads only when the generation has moved: it
//! looks at once when this process commits a deployment event (the hub tells
//! it, and on PostgreSQL the event feed tells it of other replicas' commits
//! within 100 ms) and every 100 ms otherwise.
//! Reading the generation *before* the set means a change committed between
//! the two reads is seen at the next look, never lost. Only a set whose
//! version differs is published, so watchers wake only for real changes. The
//! embedded proxy and the long-poll route endpoint both read this channel.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serin_core::traffic::proxy::RouteSet;
use serin_store::{Store, StoreError};
use tokio::sync::{OnceCell, watch};
use tokio::task::JoinHandle;

use crate::hub::Hub;

/// The route set channel, started on first use.
#[derive(Debug, Clone)]
pub struct RouteWatch {
    tx: Arc<watch::Sender<Arc<RouteSet>>>,
    started: Arc<OnceCell<()>>,
    /// Tells the refresher to end.
    halt: Arc<watch::Sender<bool>>,
    /// The refresher, once started; the runtime joins it on shutdown.
    refresher: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Default for RouteWatch {
    fn default() -> Self {
        RouteWatch {
            tx: Arc::new(watch::channel(Arc::new(RouteSet::new(Vec::new()))).0),
            started: Arc::new(OnceCell::new()),
            halt: Arc::new(watch::channel(false).0),
            refresher: Arc::default(),
        }
    }
}

impl RouteWatch {
    /// A receiver of the route set. The first call loads the set from the store
    /// and starts the refresher; until a load has succeeded this fails, so nobody
    /// is ever handed the empty placeholder (a proxy would take it for "no
    /// routes" and forget its own). A cancelled or failed first load is retried
    /// by the next caller.
    pub async fn subscribe(
        &self,
        store: &Store,
        hub: &Hub,
    ) -> Result<watch::Receiver<Arc<RouteSet>>, StoreError> {
        self.started
            .get_or_try_init(|| async {
                let events = hub.subscribe();
                let generation = store.route_generation().await?;
                let set = load(store).await?;
                publish(&self.tx, set);
                let task = tokio::spawn(keep_fresh(
                    store.clone(),
                    self.tx.clone(),
                    events,
                    generation,
                    self.halt.subscribe(),
                ));
                *self.refresher.lock().expect("refresher lock") = Some(task);
                Ok::<(), StoreError>(())
            })
            .await?;
        Ok(self.tx.subscribe())
    }

    /// Stops the refresher (the runtime does, on shutdown): the task, if it
    /// was started, to join. Subscribers keep the last set published.
    pub fn stop(&self) -> Option<JoinHandle<()>> {
        self.halt.send_replace(true);
        self.refresher.lock().expect("refresher lock").take()
    }

    /// The current set, when one has been loaded.
    pub fn current(&self) -> Option<Arc<RouteSet>> {
        self.started.initialized().then(|| self.tx.borrow().clone())
    }
}

async fn load(store: &Store) -> Result<RouteSet, StoreError> {
    Ok(RouteSet::from_deployments(
        &store.routed_deployments().await?,
    ))
}

fn publish(tx: &watch::Sender<Arc<RouteSet>>, set: RouteSet) {
    tx.send_if_modified(|cur| {
        if cur.version == set.version {
            false
        } else {
            tracing::info!(version = %set.version, routes = set.routes.len(), "route set changed");
            *cur = Arc::new(set);
            true
        }
    });
}

/// Reloads when the generation moved since `seen`; returns the generation the
/// published set is known to include.
async fn refresh(store: &Store, tx: &watch::Sender<Arc<RouteSet>>, seen: i64) -> i64 {
    let generation = match store.route_generation().await {
        Ok(g) if g == seen => return seen,
        Ok(g) => g,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the route generation; keeping the last route set");
            return seen;
        }
    };
    match load(store).await {
        Ok(set) => {
            publish(tx, set);
            generation
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot load deployments for the route set; keeping the last one");
            seen
        }
    }
}

async fn keep_fresh(
    store: Store,
    tx: Arc<watch::Sender<Arc<RouteSet>>>,
    mut events: tokio::sync::broadcast::Receiver<Arc<serin_core::event::Event>>,
    mut generation: i64,
    mut halt: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            e = events.recv() => match e {
                Ok(e) if e.deployment_id.is_none() => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                _ => {}
            },
            _ = tick.tick() => {}
            _ = halt.wait_for(|stop| *stop) => return,
        }
        generation = refresh(&store, &tx, generation).await;
    }
}
