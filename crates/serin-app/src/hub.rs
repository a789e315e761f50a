//! The live event hub: every committed event is published here, and WebSocket
//! subscribers receive the stream messages of the deployment they watch.
//!
//! A broadcast channel with a bounded buffer: a subscriber that falls too far
//! behind is told it lagged (and how much) rather than slowing everyone down.
//! Events are published only after their transaction committed, so a subscriber
//! never sees something the database doesn't have.

use std::sync::Arc;

use serin_core::event::Event;
use tokio::sync::broadcast;

/// Buffered events per subscriber.
const CAPACITY: usize = 1024;

/// Publishes committed events to live subscribers.
#[derive(Debug, Clone)]
pub struct Hub {
    tx: broadcast::Sender<Arc<Event>>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

impl Hub {
    /// Publishes committed events.
    pub fn publish(&self, events: &[Event]) {
        for e in events {
            // No subscribers is fine.
            let _ = self.tx.send(Arc::new(e.clone()));
        }
    }

    /// A new subscription.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }
}
