//! The current route set, kept fresh for proxies.
//!
//! One background task per process holds the route set in a `watch` channel. It
//! rebuilds the set when this process commits a deployment event (at once: the
//! hub tells it) and when the event log's generation moves (checked every
//! 250 ms, which catches changes made through another replica). Only a set whose
//! version differs is published, so watchers wake only for real changes. The
//! embedded proxy and the long-poll route endpoint both read this channel.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serin_core::proxy::RouteSet;
use serin_store::Store;
use tokio::sync::watch;

use crate::hub::Hub;

/// The route set channel, started on first use.
#[derive(Debug, Clone)]
pub struct RouteWatch {
    tx: Arc<watch::Sender<Arc<RouteSet>>>,
    started: Arc<OnceLock<()>>,
}

impl Default for RouteWatch {
    fn default() -> Self {
        RouteWatch {
            tx: Arc::new(watch::channel(Arc::new(RouteSet::new(Vec::new()))).0),
            started: Arc::new(OnceLock::new()),
        }
    }
}

impl RouteWatch {
    /// A receiver of the route set; starts the refresher on first call. The
    /// first set is loaded before this returns.
    pub async fn subscribe(&self, store: &Store, hub: &Hub) -> watch::Receiver<Arc<RouteSet>> {
        let mut first = false;
        self.started.get_or_init(|| first = true);
        if first {
            // Load once before anyone reads, then keep it fresh.
            let events = hub.subscribe();
            refresh(store, &self.tx).await;
            tokio::spawn(keep_fresh(store.clone(), self.tx.clone(), events));
        }
        self.tx.subscribe()
    }

    /// The current set (possibly stale if the refresher isn't started).
    pub fn current(&self) -> Arc<RouteSet> {
        self.tx.borrow().clone()
    }
}

async fn refresh(store: &Store, tx: &watch::Sender<Arc<RouteSet>>) {
    match store.all_deployments().await {
        Ok(ds) => {
            let set = RouteSet::from_deployments(&ds);
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
