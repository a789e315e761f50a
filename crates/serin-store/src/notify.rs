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

impl Store {
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
