//! The notifier's cursor over the event log, and deliveries.

use serin_core::Timestamp;
use serin_core::event::Event;
use serin_core::notify::{Delivery, DeliveryStatus, Format};

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

impl Store {
    /// Where the notifier has read the event log up to (0 at first).
    pub async fn notifier_cursor(&self) -> Result<i64> {
        dispatch!(self, b => b.notifier_cursor())
    }

    /// Events after `seq`, oldest first, with their sequence numbers.
    pub async fn events_after(&self, seq: i64, limit: u64) -> Result<Vec<(i64, Event)>> {
        dispatch!(self, b => b.events_after(seq, limit))
    }

    /// Records deliveries and moves the cursor to `seq`, in one transaction
    /// (a delivery already recorded for the same event and URL is kept as it is).
    pub async fn enqueue_deliveries(&self, seq: i64, deliveries: Vec<Delivery>) -> Result<()> {
        dispatch!(self, b => b.enqueue_deliveries(seq, deliveries))
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
