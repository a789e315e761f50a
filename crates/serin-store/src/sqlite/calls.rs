//! Outside calls on SQLite: one writer, so each step is one write job.

use rusqlite::{OptionalExtension, params};
use serin_core::Timestamp;

use super::{SqliteStore, instant_of, micros, sql_err};
use crate::Result;
use crate::calls::{CallRow, Claim, ClaimWrite, Reuse, decide, unclaimed};

impl SqliteStore {
    pub(crate) async fn claim_call(
        &self,
        key: &str,
        deployment_id: &str,
        until: Timestamp,
        now: Timestamp,
        reuse: Reuse,
    ) -> Result<Claim> {
        let (key, deployment_id) = (key.to_string(), deployment_id.to_string());
        self.writer
            .write(move |c| {
                let row = c
                    .query_row(
                        "SELECT attempts, claimed_until, finished_at, ok, output FROM outside_calls WHERE key = ?1",
                        [&key],
                        |r| {
                            Ok(CallRow {
                                attempts: r.get::<_, i64>(0)?.max(0) as u32,
                                claimed_until: instant_of(r.get(1)?),
                                finished_at: r.get::<_, Option<i64>>(2)?.map(instant_of),
                                ok: r.get(3)?,
                                output: r.get(4)?,
                            })
                        },
                    )
                    .optional()
                    .map_err(sql_err)?;
                let (claim, write) = decide(row.as_ref(), now, reuse);
                let attempts = match &claim {
                    Claim::Mine { attempts } => i64::from(*attempts),
                    _ => 0,
                };
                match write {
                    ClaimWrite::Nothing => {}
                    ClaimWrite::Insert => {
                        c.execute(
                            "INSERT INTO outside_calls (key, deployment_id, attempts, claimed_until) VALUES (?1, ?2, 0, ?3)",
                            params![key, deployment_id, micros(until)],
                        )
                        .map_err(sql_err)?;
                    }
                    ClaimWrite::TakeOver => {
                        c.execute(
                            "UPDATE outside_calls SET attempts = ?2, claimed_until = ?3, finished_at = NULL, ok = NULL, output = NULL
                             WHERE key = ?1",
                            params![key, attempts, micros(until)],
                        )
                        .map_err(sql_err)?;
                    }
                }
                Ok(claim)
            })
            .await
    }

    pub(crate) async fn count_call_attempt(&self, key: &str, until: Timestamp) -> Result<u32> {
        let key = key.to_string();
        self.writer
            .write(move |c| {
                c.query_row(
                    "UPDATE outside_calls SET attempts = attempts + 1, claimed_until = ?2
                     WHERE key = ?1 AND finished_at IS NULL RETURNING attempts",
                    params![key, micros(until)],
                    |r| r.get::<_, i64>(0),
                )
                .optional()
                .map_err(sql_err)?
                .map(|n| n.max(0) as u32)
                .ok_or_else(|| unclaimed(&key))
            })
            .await
    }

    pub(crate) async fn finish_call(
        &self,
        key: &str,
        ok: bool,
        output: &str,
        now: Timestamp,
    ) -> Result<()> {
        let (key, output) = (key.to_string(), output.to_string());
        self.writer
            .write(move |c| {
                let n = c
                    .execute(
                        "UPDATE outside_calls SET finished_at = ?2, ok = ?3, output = ?4 WHERE key = ?1 AND finished_at IS NULL",
                        params![key, micros(now), ok, output],
                    )
                    .map_err(sql_err)?;
                if n == 0 {
                    return Err(unclaimed(&key));
                }
                Ok(())
            })
            .await
    }
}
