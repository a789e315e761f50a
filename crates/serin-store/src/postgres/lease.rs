//! The lease row and the replicas' beats on PostgreSQL (see `crate::lease`).

use std::time::Duration;

use serin_core::Timestamp;
use tokio_postgres::Row;

use super::{PgStore, pg_err};
use crate::lease::{LeaseInfo, ReplicaInfo};
use crate::{Result, StoreError};

/// The one lease's name.
const LEASE: &str = "control";

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl PgStore {
    pub(crate) async fn acquire_lease(&self, holder: &str, term: Duration) -> Result<Option<i64>> {
        let mut client = self.lease_client().await?;
        // Most asks find a live holder: a plain read, no lock, so a follower
        // never stands in the holder's way.
        let lapsed: Option<bool> = client
            .query_opt(
                "SELECT expires_at <= now() FROM leader_lease WHERE name = $1",
                &[&LEASE],
            )
            .await
            .map_err(pg_err)?
            .map(|r| r.get(0));
        if lapsed == Some(false) {
            return Ok(None);
        }
        let tx = client.transaction().await.map_err(pg_err)?;
        // The old holder's fenced writes in flight hold a key-share lock on
        // the row: wait for them a little, never for long, and never keep
        // the row locked if this process stalls.
        tx.batch_execute(
            "SET LOCAL lock_timeout = '1s'; SET LOCAL idle_in_transaction_session_timeout = '2s'",
        )
        .await
        .map_err(pg_err)?;
        let granted = async {
            let row = tx
                .query_opt(
                    "SELECT expires_at <= now() FROM leader_lease WHERE name = $1 FOR UPDATE",
                    &[&LEASE],
                )
                .await?;
            let epoch: Option<i64> = match row.map(|r| r.get::<_, bool>(0)) {
                Some(false) => None,
                Some(true) => Some(
                    tx.query_one(
                        "UPDATE leader_lease SET holder = $2, epoch = epoch + 1, acquired_at = now(),
                             renewed_at = now(), expires_at = now() + $3 * interval '1 millisecond'
                         WHERE name = $1 RETURNING epoch",
                        &[&LEASE, &holder, &millis(term)],
                    )
                    .await?
                    .get(0),
                ),
                None => tx
                    .query_opt(
                        "INSERT INTO leader_lease (name, holder, epoch, acquired_at, renewed_at, expires_at)
                         VALUES ($1, $2, 1, now(), now(), now() + $3 * interval '1 millisecond')
                         ON CONFLICT (name) DO NOTHING RETURNING epoch",
                        &[&LEASE, &holder, &millis(term)],
                    )
                    .await?
                    .map(|r| r.get(0)),
            };
            Ok::<_, tokio_postgres::Error>(epoch)
        }
        .await;
        match granted {
            Ok(epoch) => {
                tx.commit().await.map_err(pg_err)?;
                Ok(epoch)
            }
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
                Ok(None)
            }
            Err(e) => Err(pg_err(e)),
        }
    }

    pub(crate) async fn renew_lease(
        &self,
        holder: &str,
        epoch: i64,
        term: Duration,
    ) -> Result<bool> {
        // A no-key update: it never waits for the fenced writes' key-share locks.
        let client = self.lease_client().await?;
        let n = client
            .execute(
                "UPDATE leader_lease SET renewed_at = now(), expires_at = now() + $4 * interval '1 millisecond'
                 WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > now()",
                &[&LEASE, &holder, &epoch, &millis(term)],
            )
            .await
            .map_err(pg_err)?;
        Ok(n == 1)
    }

    pub(crate) async fn release_lease(&self, holder: &str, epoch: i64) -> Result<()> {
        let client = self.lease_client().await?;
        client
            .execute(
                "UPDATE leader_lease SET expires_at = now() WHERE name = $1 AND holder = $2 AND epoch = $3",
                &[&LEASE, &holder, &epoch],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    pub(crate) async fn database_time(&self) -> Result<Timestamp> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT clock_timestamp()", &[])
            .await
            .map_err(pg_err)?;
        Ok(row.get(0))
    }

    pub(crate) async fn lease(&self) -> Result<Option<LeaseInfo>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT holder, epoch, acquired_at, renewed_at, expires_at, now() FROM leader_lease WHERE name = $1",
                &[&LEASE],
            )
            .await
            .map_err(pg_err)?;
        Ok(row.map(|r| LeaseInfo {
            holder: r.get(0),
            epoch: r.get(1),
            acquired_at: r.get(2),
            renewed_at: r.get(3),
            expires_at: r.get(4),
            now: r.get(5),
        }))
    }

    pub(crate) async fn beat_replica(&self, r: &ReplicaInfo) -> Result<()> {
        let client = self.lease_client().await?;
        client
            .execute(
                "INSERT INTO replicas (id, name, version, started_at, seen_at) VALUES ($1, $2, $3, $4, now())
                 ON CONFLICT (id) DO UPDATE SET seen_at = now()",
                &[&r.id, &r.name, &r.version, &r.started_at],
            )
            .await
            .map_err(pg_err)?;
        // Replicas silent for a day are forgotten.
        client
            .execute(
                "DELETE FROM replicas WHERE seen_at < now() - interval '1 day'",
                &[],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    pub(crate) async fn replicas(&self, within: Duration) -> Result<Vec<ReplicaInfo>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, name, version, started_at, seen_at FROM replicas
                 WHERE seen_at >= now() - $1 * interval '1 millisecond' ORDER BY started_at DESC, id",
                &[&millis(within)],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows.iter().map(replica_row).collect())
    }

    /// The same pool, its writes fenced by `epoch`.
    pub(crate) fn fenced(&self, epoch: i64) -> PgStore {
        PgStore {
            fence: Some(epoch),
            ..self.clone()
        }
    }

    /// Begins a write transaction. On a fenced store, it first takes a
    /// key-share lock on the lease row and checks that the fence's epoch
    /// still holds it. A new holder takes the row `FOR UPDATE` before it
    /// raises the epoch, so it waits for these transactions to end, and a
    /// transaction that starts later waits for the grant and then finds the
    /// new epoch. Renewals are no-key updates and never wait for them. A
    /// fenced transaction left idle (its process paused) is ended by the
    /// server after two seconds, and one that can't get the lock within two
    /// seconds gives up (`Unavailable`, retried by the next tick).
    pub(crate) async fn begin<'a>(
        &self,
        client: &'a mut deadpool_postgres::Client,
    ) -> Result<deadpool_postgres::Transaction<'a>> {
        let tx = client.transaction().await.map_err(pg_err)?;
        if let Some(epoch) = self.fence {
            tx.batch_execute(
                "SET LOCAL idle_in_transaction_session_timeout = '2s'; SET LOCAL lock_timeout = '2s'",
            )
            .await
            .map_err(pg_err)?;
            let held = tx
                .query_opt(
                    "SELECT 1 FROM leader_lease WHERE name = $1 AND epoch = $2 FOR KEY SHARE",
                    &[&LEASE, &epoch],
                )
                .await
                .map_err(|e| {
                    if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
                        StoreError::Unavailable(format!("the lease row is locked: {e}"))
                    } else {
                        pg_err(e)
                    }
                })?;
            // Later statements of this transaction wait for row locks as usual.
            tx.batch_execute("SET LOCAL lock_timeout = 0")
                .await
                .map_err(pg_err)?;
            if held.is_none() {
                return Err(StoreError::Fenced { epoch });
            }
        }
        Ok(tx)
    }
}

fn replica_row(r: &Row) -> ReplicaInfo {
    ReplicaInfo {
        id: r.get(0),
        name: r.get(1),
        version: r.get(2),
        started_at: r.get(3),
        seen_at: r.get(4),
    }
}
