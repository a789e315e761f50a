//! The login throttle's counts on PostgreSQL: the key's row is made to exist,
//! then locked, so parallel attempts on one key are decided one at a time.

use serin_core::Timestamp;

use super::{PgStore, pg_err};
use crate::Result;
use crate::throttle::{forget_before, wait_left};

impl PgStore {
    pub(crate) async fn login_attempt(
        &self,
        key: &str,
        now: Timestamp,
    ) -> Result<Option<std::time::Duration>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        tx.execute(
            "DELETE FROM login_failures WHERE key IN
               (SELECT key FROM login_failures WHERE last_at < $1 LIMIT 100 FOR UPDATE SKIP LOCKED)",
            &[&forget_before(now)],
        )
        .await
        .map_err(pg_err)?;
        // Made to exist and locked in one statement (a concurrent cleanup
        // can't delete it in between): parallel attempts queue on the row.
        let row = tx
            .query_one(
                "INSERT INTO login_failures (key, failures, last_at) VALUES ($1, 0, $2)
                 ON CONFLICT (key) DO UPDATE SET key = excluded.key
                 RETURNING failures, last_at",
                &[&key, &now],
            )
            .await
            .map_err(pg_err)?;
        let seen = (row.get::<_, i32>(0).max(0) as u32, row.get(1));
        if let Some(wait) = wait_left(Some(seen), now) {
            return Ok(Some(wait));
        }
        tx.execute(
            "UPDATE login_failures SET failures = failures + 1, last_at = $2 WHERE key = $1",
            &[&key, &now],
        )
        .await
        .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok(None)
    }

    pub(crate) async fn login_succeeded(&self, key: &str) -> Result<()> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM login_failures WHERE key = $1", &[&key])
            .await
            .map_err(pg_err)?;
        Ok(())
    }
}
