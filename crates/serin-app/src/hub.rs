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
/// Ids of events sent on this hub, remembered so that an event this process
/// committed and the feed also offers is sent once.
const REMEMBERED: usize = 16_384;

/// Publishes committed events to live subscribers.
#[derive(Debug, Clone)]
pub struct Hub {
    tx: broadcast::Sender<Arc<Event>>,
    mine: Arc<Mutex<Remembered>>,
}

/// The ids of events already sent on this hub (by either path), as 64-bit
/// hashes: 16,384 of them take a few hundred KiB.
#[derive(Debug, Default)]
struct Remembered {
    ids: HashSet<u64>,
    order: VecDeque<u64>,
}

impl Remembered {
    /// Remembers `id`; `false` when it was already sent.
    fn first(&mut self, id: &str) -> bool {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let h =
            BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(id);
        if !self.ids.insert(h) {
            return false;
        }
        self.order.push_back(h);
        while self.order.len() > REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        true
    }
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
    /// Publishes events this process committed (each once: the feed may
    /// have offered one already).
    pub fn publish(&self, events: &[Event]) {
        self.publish_new(events);
    }

    /// Publishes events read from the database's feed (committed by any
    /// replica), except those already sent here; returns how many were new.
    pub fn publish_from_feed(&self, events: &[Event]) -> usize {
        self.publish_new(events)
    }

    fn publish_new(&self, events: &[Event]) -> usize {
        let fresh: Vec<&Event> = {
            let mut m = self.mine.lock().expect("hub lock");
            events.iter().filter(|e| m.first(&e.id)).collect()
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
