//! The notifier's cursor and deliveries on SQLite.

use rusqlite::{Row, params};
use serin_core::Timestamp;
use serin_core::event::{Event, EventType};
use serin_core::rollout::notify::Delivery;

use super::{SqliteStore, instant_of, micros, sql_err};
use crate::Result;
use crate::notify::{FeedCursor, bad_json, format_name, format_of, status_name, status_of};

const DELIVERY_COLUMNS: &str = "id, event_id, deployment_id, url, format, status, attempts, last_error, next_attempt_at, delivered_at, payload";

fn delivery_row(r: &Row<'_>) -> rusqlite::Result<(Delivery, String)> {
    let format: String = r.get(4)?;
    let status: String = r.get(5)?;
    let payload: String = r.get(10)?;
    Ok((
        Delivery {
            id: r.get(0)?,
            event_id: r.get(1)?,
            deployment_id: r.get(2)?,
            url: r.get(3)?,
            format: format_of(&format),
            status: status_of(&status),
            attempts: r.get::<_, i64>(6)? as u32,
            last_error: r.get(7)?,
            next_attempt_at: instant_of(r.get(8)?),
            delivered_at: r.get::<_, Option<i64>>(9)?.map(instant_of),
            payload: serde_json::Value::Null,
        },
        payload,
    ))
}

fn with_payload(rows: Vec<(Delivery, String)>) -> Result<Vec<Delivery>> {
    rows.into_iter()
        .map(|(mut d, p)| {
            d.payload = serde_json::from_str(&p).map_err(bad_json)?;
            Ok(d)
        })
        .collect()
}

impl SqliteStore {
    pub(crate) async fn notifier_cursor(&self) -> Result<FeedCursor> {
        let seq = self
            .read(|c| {
                c.prepare_cached(
                    "SELECT COALESCE(MAX(seq), 0) FROM notifier_cursor WHERE name = 'notifier'",
                )
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .map_err(sql_err)
            })
            .await?;
        Ok(FeedCursor { xid: 0, seq })
    }

    /// One writer commits in `seq` order here: `seq` is the feed's order.
    pub(crate) async fn feed_head(&self) -> Result<FeedCursor> {
        self.read(|c| {
            c.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))
                .map(|seq| FeedCursor { xid: 0, seq })
                .map_err(sql_err)
        })
        .await
    }

    pub(crate) async fn events_after(
        &self,
        cursor: FeedCursor,
        limit: u64,
    ) -> Result<Vec<(FeedCursor, Event)>> {
        let seq = cursor.seq;
        self.read(move |c| {
            c.prepare_cached(
                "SELECT seq, id, deployment_id, kind, resource_type, resource_id, actor, message, data, ts
                 FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .and_then(|mut s| {
                s.query_map(params![seq, limit as i64], |r| {
                    let kind: String = r.get(3)?;
                    let data: String = r.get(8)?;
                    Ok((
                        FeedCursor {
                            xid: 0,
                            seq: r.get(0)?,
                        },
                        Event {
                            id: r.get(1)?,
                            deployment_id: r.get(2)?,
                            kind: EventType::parse(&kind).unwrap_or(EventType::ExternalReport),
                            resource_type: r.get(4)?,
                            resource_id: r.get(5)?,
                            actor: r.get(6)?,
                            message: r.get(7)?,
                            data: serde_json::from_str(&data).unwrap_or_default(),
                            timestamp: instant_of(r.get(9)?),
                        },
                    ))
                })?
                .collect()
            })
            .map_err(sql_err)
        })
        .await
    }

    pub(crate) async fn enqueue_deliveries(
        &self,
        cursor: FeedCursor,
        deliveries: Vec<Delivery>,
    ) -> Result<()> {
        let seq = cursor.seq;
        let rows = deliveries
            .into_iter()
            .map(|d| Ok((serde_json::to_string(&d.payload).map_err(bad_json)?, d)))
            .collect::<Result<Vec<_>>>()?;
        self.writer
            .write(move |c| {
                let mut s = c
                    .prepare_cached(&format!(
                        "INSERT OR IGNORE INTO deliveries ({DELIVERY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                    ))
                    .map_err(sql_err)?;
                for (payload, d) in &rows {
                    s.execute(params![
                        d.id,
                        d.event_id,
                        d.deployment_id,
                        d.url,
                        format_name(d.format),
                        status_name(d.status),
                        i64::from(d.attempts),
                        d.last_error,
                        micros(d.next_attempt_at),
                        d.delivered_at.map(micros),
                        payload
                    ])
                    .map_err(sql_err)?;
                }
                c.execute(
                    "INSERT INTO notifier_cursor (name, seq) VALUES ('notifier', ?1)
                     ON CONFLICT (name) DO UPDATE SET seq = MAX(seq, excluded.seq)",
                    [seq],
                )
                .map_err(sql_err)?;
                Ok(())
            })
            .await
    }

    pub(crate) async fn due_deliveries(&self, now: Timestamp, limit: u64) -> Result<Vec<Delivery>> {
        let rows = self
            .read(move |c| {
                c.prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ?1
                     ORDER BY next_attempt_at, id LIMIT ?2"
                ))
                .and_then(|mut s| s.query_map(params![micros(now), limit as i64], delivery_row)?.collect())
                .map_err(sql_err)
            })
            .await?;
        with_payload(rows)
    }

    pub(crate) async fn update_delivery(&self, d: &Delivery) -> Result<()> {
        let d = d.clone();
        self.writer
            .write(move |c| {
                c.execute(
                    "UPDATE deliveries SET status = ?2, attempts = ?3, last_error = ?4, next_attempt_at = ?5, delivered_at = ?6
                     WHERE id = ?1",
                    params![
                        d.id,
                        status_name(d.status),
                        i64::from(d.attempts),
                        d.last_error,
                        micros(d.next_attempt_at),
                        d.delivered_at.map(micros)
                    ],
                )
                .map_err(sql_err)?;
                Ok(())
            })
            .await
    }

    pub(crate) async fn deliveries_for(&self, deployment_id: &str) -> Result<Vec<Delivery>> {
        let id = deployment_id.to_string();
        let rows = self
            .read(move |c| {
                c.prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE deployment_id = ?1 ORDER BY rowid"
                ))
                .and_then(|mut s| s.query_map([&id], delivery_row)?.collect())
                .map_err(sql_err)
            })
            .await?;
        with_payload(rows)
    }
}
