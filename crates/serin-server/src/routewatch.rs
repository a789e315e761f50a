//! The current route set, kept fresh for proxies.
//!
//! One background task per process holds the route set in a `watch` channel. It
//! rebuilds the set when this process commits a deployment event (at once: the
//! hub tells it) and when the event log's generation moves (checked every
//! 250 ms, which catches changes made through another replica). Only a set whose
//! version differs is published, so watchers wake only for real changes. The
//! embedded proxy and the long-poll route endpoint both read this channel.

use std::sync::Arc;
use std::time::Duration;

use serin_core::proxy::RouteSet;
use serin_store::{Store, StoreError};
use tokio::sync::{OnceCell, watch};

use crate::hub::Hub;

/// The route set channel, started on first use.
#[derive(Debug, Clone)]
pub struct RouteWatch {
    tx: Arc<watch::Sender<Arc<RouteSet>>>,
    started: Arc<OnceCell<()>>,
}

impl Default for RouteWatch {
    fn default() -> Self {
        RouteWatch {
            tx: Arc::new(watch::channel(Arc::new(RouteSet::new(Vec::new()))).0),
            started: Arc::new(OnceCell::new()),
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
                let set = load(store).await?;
                publish(&self.tx, set);
                tokio::spawn(keep_fresh(store.clone(), self.tx.clone(), events));
                Ok::<(), StoreError>(())
            })
            .await?;
        Ok(self.tx.subscribe())
    }

    /// The current set, when one has been loaded.
    pub fn current(&self) -> Option<Arc<RouteSet>> {
        self.started.initialized().then(|| self.tx.borrow().clone())
    }
}

async fn load(store: &Store) -> Result<RouteSet, StoreError> {
    Ok(RouteSet::from_deployments(&store.all_deployments().await?))
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

async fn refresh(store: &Store, tx: &watch::Sender<Arc<RouteSet>>) {
    match load(store).await {
        Ok(set) => publish(tx, set),
        Err(e) => {
            tracing::warn!(error = %e, "cannot load deployments for the route set; keeping the last one")
        }
    }
}

async fn keep_fresh(
    store: Store,
    tx: Arc<watch::Sender<Arc<RouteSet>>>,
    mut events: tokio::sync::broadcast::Receiver<Arc<serin_core::event::Event>>,
) {
    let mut generation = store.event_generation().await.unwrap_or(-1);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            e = events.recv() => match e {
                Ok(e) if e.deployment_id.is_none() => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                _ => {}
            },
            _ = tick.tick() => {
                match store.event_generation().await {
                    Ok(g) if g != generation => generation = g,
                    _ => continue,
                }
            }
        }
        refresh(&store, &tx).await;
    }
}
