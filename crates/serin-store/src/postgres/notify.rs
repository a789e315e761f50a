//! The notifier's cursor and deliveries on PostgreSQL.

use serin_core::Timestamp;
use serin_core::event::{Event, EventType};
use serin_core::rollout::notify::Delivery;
use tokio_postgres::Row;

use super::{PgStore, pg_err};
use crate::Result;
use crate::notify::{FeedCursor, format_name, format_of, status_name, status_of};

const DELIVERY_COLUMNS: &str = "id, event_id, deployment_id, url, format, status, attempts, last_error, next_attempt_at, delivered_at, payload";

fn delivery_row(r: &Row) -> Delivery {
    let format: &str = r.get(4);
    let status: &str = r.get(5);
    Delivery {
        id: r.get(0),
        event_id: r.get(1),
        deployment_id: r.get(2),
        url: r.get(3),
        format: format_of(format),
        status: status_of(status),
        attempts: r.get::<_, i32>(6) as u32,
        last_error: r.get(7),
        next_attempt_at: r.get(8),
        delivered_at: r.get(9),
        payload: r.get(10),
    }
}

impl PgStore {
    pub(crate) async fn notifier_cursor(&self) -> Result<FeedCursor> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT xid, seq FROM notifier_cursor WHERE name = 'notifier'",
                &[],
            )
            .await
            .map_err(pg_err)?;
        Ok(row.map_or(FeedCursor::default(), |r| FeedCursor {
            xid: r.get(0),
            seq: r.get(1),
        }))
    }

    /// Events of transactions older than every one still running, after
    /// `cursor` in (xid, seq) order: a transaction that hasn't committed yet
    /// has an id at or above the horizon, so nothing can appear behind a
    /// place once the feed has offered it.
    pub(crate) async fn feed_head(&self) -> Result<FeedCursor> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT xid, seq FROM events
                 WHERE xid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
                 ORDER BY xid DESC, seq DESC LIMIT 1",
                &[],
            )
            .await
            .map_err(pg_err)?;
        Ok(row.map_or(FeedCursor { xid: 0, seq: 0 }, |r| FeedCursor {
            xid: r.get(0),
            seq: r.get(1),
        }))
    }

    pub(crate) async fn events_after(
        &self,
        cursor: FeedCursor,
        limit: u64,
    ) -> Result<Vec<(FeedCursor, Event)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT seq, id, deployment_id, kind, resource_type, resource_id, actor, message, data, ts, xid
                 FROM events
                 WHERE (xid, seq) > ($1, $2)
                   AND xid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
                 ORDER BY xid, seq LIMIT $3",
                &[&cursor.xid, &cursor.seq, &(limit as i64)],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows
            .iter()
            .map(|r| {
                let kind: &str = r.get(3);
                (
                    FeedCursor {
                        xid: r.get(10),
                        seq: r.get(0),
                    },
                    Event {
                        id: r.get(1),
                        deployment_id: r.get(2),
                        kind: EventType::parse(kind).unwrap_or(EventType::ExternalReport),
                        resource_type: r.get(4),
                        resource_id: r.get(5),
                        actor: r.get(6),
                        message: r.get(7),
                        data: r.get(8),
                        timestamp: r.get(9),
                    },
                )
            })
            .collect())
    }

    pub(crate) async fn enqueue_deliveries(
        &self,
        cursor: FeedCursor,
        deliveries: Vec<Delivery>,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let insert = format!(
            "INSERT INTO deliveries ({DELIVERY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (event_id, url) DO NOTHING"
        );
        for d in &deliveries {
            tx.execute(
                &insert,
                &[
                    &d.id,
                    &d.event_id,
                    &d.deployment_id,
                    &d.url,
                    &format_name(d.format),
                    &status_name(d.status),
                    &(d.attempts as i32),
                    &d.last_error,
                    &d.next_attempt_at,
                    &d.delivered_at,
                    &d.payload,
                ],
            )
            .await
            .map_err(pg_err)?;
        }
        tx.execute(
            "INSERT INTO notifier_cursor (name, xid, seq) VALUES ('notifier', $1, $2)
             ON CONFLICT (name) DO UPDATE SET xid = excluded.xid, seq = excluded.seq
             WHERE (notifier_cursor.xid, notifier_cursor.seq) < (excluded.xid, excluded.seq)",
            &[&cursor.xid, &cursor.seq],
        )
        .await
        .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)
    }

    pub(crate) async fn due_deliveries(&self, now: Timestamp, limit: u64) -> Result<Vec<Delivery>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $1
                     ORDER BY next_attempt_at, id LIMIT $2"
                ),
                &[&now, &(limit as i64)],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows.iter().map(delivery_row).collect())
    }

    pub(crate) async fn update_delivery(&self, d: &Delivery) -> Result<()> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        tx.execute(
                "UPDATE deliveries SET status = $2, attempts = $3, last_error = $4, next_attempt_at = $5, delivered_at = $6
                 WHERE id = $1",
                &[
                    &d.id,
                    &status_name(d.status),
                    &(d.attempts as i32),
                    &d.last_error,
                    &d.next_attempt_at,
                    &d.delivered_at,
                ],
            )
            .await
            .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)
    }

    pub(crate) async fn deliveries_for(&self, deployment_id: &str) -> Result<Vec<Delivery>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE deployment_id = $1 ORDER BY next_attempt_at, id"),
                &[&deployment_id],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows.iter().map(delivery_row).collect())
    }

    /// `LISTEN serin_events` on a connection of its own, driven by a task the
    /// listener owns; wakes only for notifications from this store's schema.
    pub(crate) async fn feed_listener(&self) -> Result<crate::notify::FeedListener> {
        let (client, mut connection) = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            self.config.connect(tokio_postgres::NoTls),
        )
        .await
        .map_err(|_| crate::StoreError::Unavailable("the listening connection timed out".into()))?
        .map_err(pg_err)?;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let schema = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
        let ours = schema.clone();
        let task = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                        // Until the schema is known, every notification wakes.
                        if ours.get().is_none_or(|s| s == n.payload()) {
                            // Full means a wake-up is already waiting.
                            let _ = tx.try_send(());
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "the feed's listening connection failed");
                        return;
                    }
                    None => return,
                }
            }
        });
        // The task drives the connection from here on (and ends with it: a
        // failure below drops the client, which closes the connection).
        let row = client
            .query_one("SELECT current_schema()", &[])
            .await
            .map_err(pg_err)?;
        let _ = schema.set(row.get(0));
        client
            .batch_execute("LISTEN serin_events")
            .await
            .map_err(pg_err)?;
        // Dropping the client would close the connection: the listener keeps it.
        Ok(crate::notify::FeedListener::new(rx, task, Box::new(client)))
    }
}
