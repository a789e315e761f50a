//! The notifier's cursor over the event log, and deliveries.

use serin_core::Timestamp;
use serin_core::event::Event;
use serin_core::rollout::notify::{Delivery, DeliveryStatus, Format};

use crate::{Result, Store, StoreError};

pub(crate) fn format_of(s: &str) -> Format {
    if s == "slack" {
        Format::Slack
    } else {
        Format::Json
    }
}

pub(crate) fn format_name(f: Format) -> &'static str {
    match f {
        Format::Json => "json",
        Format::Slack => "slack",
    }
}

pub(crate) fn status_of(s: &str) -> DeliveryStatus {
    match s {
        "delivered" => DeliveryStatus::Delivered,
        "failed" => DeliveryStatus::Failed,
        _ => DeliveryStatus::Pending,
    }
}

pub(crate) fn status_name(s: DeliveryStatus) -> &'static str {
    match s {
        DeliveryStatus::Pending => "pending",
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Failed => "failed",
    }
}

pub(crate) fn bad_json(e: serde_json::Error) -> StoreError {
    StoreError::Backend(format!("a delivery's payload is not JSON: {e}"))
}

/// A place in the commit-ordered feed of events.
///
/// On SQLite one writer commits in `seq` order, so `seq` alone is the place.
/// On PostgreSQL `seq` is taken before a transaction commits, so a later
/// number can become visible first: the feed there is ordered by the writing
/// transaction's id, then `seq`, and offers only events of transactions older
/// than every one still running. A reader that moved past a place never sees
/// an event appear behind it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FeedCursor {
    /// The writing transaction's id (PostgreSQL; 0 on SQLite and for events
    /// stored before the feed existed).
    pub xid: i64,
    /// The event's sequence number.
    pub seq: i64,
}

/// Wake-ups when events commit on any replica (PostgreSQL's `LISTEN` on a
/// connection of its own). Each `changed()` resolves after at least one commit
/// of events since the last; several commits may wake it once. The
/// connection is closed when this is dropped.
pub struct FeedListener {
    wakes: tokio::sync::mpsc::Receiver<()>,
    /// Drives the listening connection.
    task: tokio::task::JoinHandle<()>,
    /// The connection's client, kept so that the connection stays open.
    _client: Box<dyn std::any::Any + Send + Sync>,
}

impl std::fmt::Debug for FeedListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedListener").finish_non_exhaustive()
    }
}

impl FeedListener {
    pub(crate) fn new(
        wakes: tokio::sync::mpsc::Receiver<()>,
        task: tokio::task::JoinHandle<()>,
        client: Box<dyn std::any::Any + Send + Sync>,
    ) -> Self {
        FeedListener {
            wakes,
            task,
            _client: client,
        }
    }

    /// Resolves when events were committed since the last call; `false` when
    /// the listening connection is gone (listen again).
    pub async fn changed(&mut self) -> bool {
        self.wakes.recv().await.is_some()
    }
}

impl Drop for FeedListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Store {
    /// A listener for commits of events, where the backend has one
    /// (PostgreSQL); `None` on SQLite, whose one process publishes what it
    /// commits itself.
    pub async fn feed_listener(&self) -> Result<Option<FeedListener>> {
        match self {
            Store::Sqlite(_) => Ok(None),
            Store::Postgres(b) => b.feed_listener().await.map(Some),
        }
    }

    /// Where the notifier has read the feed up to (the start at first).
    pub async fn notifier_cursor(&self) -> Result<FeedCursor> {
        dispatch!(self, b => b.notifier_cursor())
    }

    /// The place of the newest event the feed offers now: following from
    /// here yields only events committed later.
    pub async fn feed_head(&self) -> Result<FeedCursor> {
        dispatch!(self, b => b.feed_head())
    }

    /// Committed events after `cursor` in feed order, each with its place.
    pub async fn events_after(
        &self,
        cursor: FeedCursor,
        limit: u64,
    ) -> Result<Vec<(FeedCursor, Event)>> {
        dispatch!(self, b => b.events_after(cursor, limit))
    }

    /// Records deliveries and moves the cursor to `cursor`, in one transaction
    /// (a delivery already recorded for the same event and URL is kept as it
    /// is; the cursor never moves back).
    pub async fn enqueue_deliveries(
        &self,
        cursor: FeedCursor,
        deliveries: Vec<Delivery>,
    ) -> Result<()> {
        dispatch!(self, b => b.enqueue_deliveries(cursor, deliveries))
    }

    /// Pending deliveries due at `now`, oldest first.
    pub async fn due_deliveries(&self, now: Timestamp, limit: u64) -> Result<Vec<Delivery>> {
        dispatch!(self, b => b.due_deliveries(now, limit))
    }

    /// Records an attempt's outcome.
    pub async fn update_delivery(&self, d: &Delivery) -> Result<()> {
        dispatch!(self, b => b.update_delivery(d))
    }

    /// A deployment's deliveries, oldest first.
    pub async fn deliveries_for(&self, deployment_id: &str) -> Result<Vec<Delivery>> {
        dispatch!(self, b => b.deliveries_for(deployment_id))
    }
}
