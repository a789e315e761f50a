//! The login throttle's counts on SQLite: one writer decides every attempt.

use rusqlite::{OptionalExtension, params};
use serin_core::Timestamp;

use super::{SqliteStore, instant_of, micros, sql_err};
use crate::Result;
use crate::throttle::{forget_before, wait_left};

impl SqliteStore {
    pub(crate) async fn login_attempt(
        &self,
        key: &str,
        now: Timestamp,
    ) -> Result<Option<std::time::Duration>> {
        let key = key.to_string();
        self.writer
            .write(move |c| {
                c.execute(
                    "DELETE FROM login_failures WHERE key IN
                       (SELECT key FROM login_failures WHERE last_at < ?1 LIMIT 100)",
                    [micros(forget_before(now))],
                )
                .map_err(sql_err)?;
                let seen = c
                    .query_row(
                        "SELECT failures, last_at FROM login_failures WHERE key = ?1",
                        [&key],
                        |r| Ok((r.get::<_, i64>(0)?.max(0) as u32, instant_of(r.get(1)?))),
                    )
                    .optional()
                    .map_err(sql_err)?;
                if let Some(wait) = wait_left(seen, now) {
                    return Ok(Some(wait));
                }
                c.execute(
                    "INSERT INTO login_failures (key, failures, last_at) VALUES (?1, 1, ?2)
                     ON CONFLICT (key) DO UPDATE SET failures = failures + 1, last_at = excluded.last_at",
                    params![key, micros(now)],
                )
                .map_err(sql_err)?;
                Ok(None)
            })
            .await
    }

    pub(crate) async fn login_succeeded(&self, key: &str) -> Result<()> {
        let key = key.to_string();
        self.writer
            .write(move |c| {
                c.execute("DELETE FROM login_failures WHERE key = ?1", [&key])
                    .map_err(sql_err)?;
                Ok(())
            })
            .await
    }
}
