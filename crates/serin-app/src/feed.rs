//! Other replicas' events, on this replica's hub.
//!
//! On PostgreSQL several replicas share one database, and each publishes to
//! its own hub only what it commits. This task follows the database's
//! commit-ordered feed of events (`serin_store::FeedCursor`: nothing it has
//! passed can still appear) from where it stood when the process started, and
//! publishes every event it has not published itself. So a dashboard's live
//! stream on replica B shows a rollout the leader on replica A moves, the
//! route watch on B reloads at once when A changes a route, and B's cache of
//! latest stable releases forgets a release A changed.
//!
//! It reads when PostgreSQL says events were committed (`LISTEN
//! serin_events`, notified by a trigger at commit), and every second besides:
//! the feed offers an event only once every older transaction has ended, and
//! that end may come with no notification. Without a listening connection
//! (it failed; another is tried every few seconds) it reads every 100 ms. A
//! batch that fills up is followed at once.
//!
//! SQLite is one process: everything it commits is published when it commits,
//! and this task is not started.

use std::time::Duration;

use serin_store::{FeedCursor, FeedListener};

use crate::App;

/// How often the feed is read while a listener wakes it on commits.
const LISTENING: Duration = Duration::from_secs(1);
/// How often the feed is read without one.
const POLLING: Duration = Duration::from_millis(100);
/// How often a lost listener is replaced.
const RELISTEN: Duration = Duration::from_secs(5);
/// Most events read at once.
const BATCH: u64 = 1000;

/// Follows the feed until `shutdown` resolves.
pub async fn follow(app: App, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut cursor: Option<FeedCursor> = None;
    let mut listener: Option<FeedListener> = None;
    let mut listen_at = tokio::time::Instant::now();
    loop {
        if listener.is_none() && tokio::time::Instant::now() >= listen_at {
            listen_at = tokio::time::Instant::now() + RELISTEN;
            listener = match app.store.feed_listener().await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for commits; reading the feed every 100 ms");
                    None
                }
            };
        }
        let full = match cursor {
            None => match app.store.feed_head().await {
                Ok(head) => {
                    cursor = Some(head);
                    false
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot find the end of the event feed yet");
                    false
                }
            },
            Some(at) => match app.store.events_after(at, BATCH).await {
                Ok(batch) => {
                    let full = batch.len() as u64 == BATCH;
                    if let Some((last, _)) = batch.last() {
                        cursor = Some(*last);
                    }
                    let events: Vec<_> = batch.into_iter().map(|(_, e)| e).collect();
                    if app.hub.publish_from_feed(&events) > 0
                        && events.iter().any(|e| e.resource_type == "release")
                    {
                        app.latest.clear();
                    }
                    full
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the event feed");
                    false
                }
            },
        };
        if full {
            continue;
        }
        let every = if listener.is_some() {
            LISTENING
        } else {
            POLLING
        };
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            woke = async {
                match listener.as_mut() {
                    Some(l) => l.changed().await,
                    None => std::future::pending().await,
                }
            } => {
                if !woke {
                    listener = None;
                }
            }
            () = &mut shutdown => return,
        }
    }
}
