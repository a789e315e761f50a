//! The live event hub: every committed event is published here, and WebSocket
//! subscribers receive the stream messages of the deployment they watch.
//!
//! A broadcast channel with a bounded buffer: a subscriber that falls too far
//! behind is told it lagged (and how much) rather than slowing everyone down.
//! Events are published only after their transaction committed, so a subscriber
//! never sees something the database doesn't have.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use serin_core::event::Event;
use tokio::sync::broadcast;

/// Buffered events per subscriber.
const CAPACITY: usize = 1024;
/// Ids of events this process published itself, remembered so the feed of
/// other replicas' events doesn't publish them twice.
const REMEMBERED: usize = 16_384;

/// Publishes committed events to live subscribers.
#[derive(Debug, Clone)]
pub struct Hub {
    tx: broadcast::Sender<Arc<Event>>,
    mine: Arc<Mutex<Remembered>>,
}

#[derive(Debug, Default)]
struct Remembered {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            tx: broadcast::channel(CAPACITY).0,
            mine: Arc::default(),
        }
    }
}

impl Hub {
    /// Publishes events this process committed.
    pub fn publish(&self, events: &[Event]) {
        {
            let mut m = self.mine.lock().expect("hub lock");
            for e in events {
                if m.ids.insert(e.id.clone()) {
                    m.order.push_back(e.id.clone());
                }
            }
            while m.order.len() > REMEMBERED {
                if let Some(old) = m.order.pop_front() {
                    m.ids.remove(&old);
                }
            }
        }
        self.send(events.iter());
    }

    /// Publishes events read from the database's feed (committed by any
    /// replica), except those this process published itself; returns how
    /// many were new here.
    pub fn publish_from_feed(&self, events: &[Event]) -> usize {
        let fresh: Vec<&Event> = {
            let m = self.mine.lock().expect("hub lock");
            events.iter().filter(|e| !m.ids.contains(&e.id)).collect()
        };
        let n = fresh.len();
        self.send(fresh.into_iter());
        n
    }

    fn send<'a>(&self, events: impl Iterator<Item = &'a Event>) {
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
