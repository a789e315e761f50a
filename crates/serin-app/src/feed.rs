//! Other replicas' events, on this replica's hub.
//!
//! On PostgreSQL several replicas share one database, and each publishes to
//! its own hub only what it commits. This task follows the database's
//! commit-ordered feed of events (`serin_store::FeedCursor`: nothing it has
//! passed can still appear) from where it stood when the process started, and
//! publishes every event it has not published itself. So a dashboard's live
//! stream on replica B shows a rollout the leader on replica A moves, the
//! route watch on B reloads at once when A changes a route, and B's cache of
//! latest stable releases forgets a release A changed. It reads every 100 ms;
//! a batch that fills up is followed at once.
//!
//! SQLite is one process: everything it commits is published when it commits,
//! and this task is not started.

use std::time::Duration;

use serin_store::FeedCursor;

use crate::App;

/// How often the feed is read.
const EVERY: Duration = Duration::from_millis(100);
/// Most events read at once.
const BATCH: u64 = 1000;

/// Follows the feed until `shutdown` resolves.
pub async fn follow(app: App, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut cursor: Option<FeedCursor> = None;
    loop {
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
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            () = &mut shutdown => return,
        }
    }
}
