//! The live streams' per-second lane figures, read once per deployment.
//!
//! Every open stream of a deployment wants the same thing each second: its
//! lanes' last few seconds from the store. Reading that per stream costs one
//! store read per viewer per second, so a deployment on a wall screen and a
//! dozen laptops would cost a dozen reads for one answer. Instead the first
//! stream of a deployment starts one reader task that publishes each second's
//! figures on a `watch` channel; later streams subscribe to it. The task ends
//! when its last subscriber has gone (or its deployment has ended), and the
//! next stream starts a new one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use serin_core::event::StreamEvent;
use serin_core::traffic::proxy::LanePoint;
use tokio::sync::watch;

use crate::App;

/// Seconds re-sent each time (a proxy's late report fills them in).
const RECENT: chrono::Duration = chrono::Duration::seconds(10);
/// How often the reader looks whether its deployment has ended.
const STATUS_EVERY: u32 = 10;

/// One `lanes_updated` message, shared by every subscriber.
pub type Feed = watch::Receiver<Option<Arc<StreamEvent>>>;

/// The reader tasks, by deployment.
#[derive(Debug, Clone, Default)]
pub struct LaneFeeds {
    feeds: Arc<Mutex<HashMap<String, Feed>>>,
}

impl LaneFeeds {
    /// A subscription to the deployment's per-second figures, starting its
    /// reader when there is none.
    pub fn subscribe(&self, state: &App, id: &str) -> Feed {
        let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        // A feed whose reader has ended reports an error on `has_changed`.
        if let Some(rx) = feeds.get(id).filter(|rx| rx.has_changed().is_ok()) {
            return rx.clone();
        }
        let (tx, rx) = watch::channel(None);
        feeds.insert(id.to_string(), rx.clone());
        tokio::spawn(read(state.clone(), id.to_string(), tx, self.clone()));
        rx
    }

    fn forget(&self, id: &str, tx: &watch::Sender<Option<Arc<StreamEvent>>>) {
        let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        if feeds
            .get(id)
            .is_some_and(|rx| rx.same_channel(&tx.subscribe()))
        {
            feeds.remove(id);
        }
    }
}

/// The lanes' per-second points over `[from, to]` as one stream message.
pub async fn points(
    state: &App,
    id: &str,
    kind: &str,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Option<StreamEvent> {
    let buckets = state.store.lane_buckets(id, from, to).await.ok()?;
    let points: Vec<LanePoint> = buckets.iter().map(LanePoint::of).collect();
    Some(StreamEvent {
        kind: kind.into(),
        deployment_id: id.to_string(),
        timestamp: to,
        data: json!({"points": points}),
    })
}

async fn read(
    state: App,
    id: String,
    tx: watch::Sender<Option<Arc<StreamEvent>>>,
    feeds: LaneFeeds,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // A slow store gets fewer reads, not a burst of catch-up ones.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut n = 0u32;
    loop {
        tick.tick().await;
        // The map keeps one receiver: alone with it, nobody is watching.
        if tx.receiver_count() <= 1 {
            break;
        }
        n = n.wrapping_add(1);
        if n.is_multiple_of(STATUS_EVERY)
            && state
                .store
                .get_deployment(&id)
                .await
                .is_ok_and(|d| !d.status.is_live())
        {
            break;
        }
        let now = state.now();
        if let Some(m) = points(&state, &id, "lanes_updated", now - RECENT, now)
            .await
            .filter(|m| m.data["points"].as_array().is_some_and(|p| !p.is_empty()))
        {
            tx.send_replace(Some(Arc::new(m)));
        }
    }
    feeds.forget(&id, &tx);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn streams_of_one_deployment_share_one_reader_that_ends_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let store = serin_store::Store::connect(&url, &Default::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let state = App::new(store, crate::Config::default());
        let feeds = LaneFeeds::default();
        let a = feeds.subscribe(&state, "canary_x");
        let b = feeds.subscribe(&state, "canary_x");
        let other = feeds.subscribe(&state, "canary_y");
        assert!(a.same_channel(&b), "one reader per deployment");
        assert!(!a.same_channel(&other));
        drop((a, b));
        tokio::time::sleep(Duration::from_secs(3)).await;
        let left: Vec<String> = feeds.feeds.lock().unwrap().keys().cloned().collect();
        assert_eq!(left, ["canary_y"], "the reader ended with its last stream");
        let again = feeds.subscribe(&state, "canary_x");
        assert!(again.has_changed().is_ok(), "a new reader for a new stream");
    }
}
