//! Outside calls on PostgreSQL: each step in a fenced transaction, the row
//! locked while the claim is decided.

use serin_core::Timestamp;

use super::{PgStore, pg_err};
use crate::Result;
use crate::calls::{CallRow, Claim, ClaimWrite, Reuse, decide, unclaimed};

impl PgStore {
    pub(crate) async fn claim_call(
        &self,
        key: &str,
        deployment_id: &str,
        until: Timestamp,
        now: Timestamp,
        reuse: Reuse,
    ) -> Result<Claim> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let row = tx
            .query_opt(
                "SELECT attempts, claimed_until, finished_at, ok, output FROM outside_calls WHERE key = $1 FOR UPDATE",
                &[&key],
            )
            .await
            .map_err(pg_err)?
            .map(|r| CallRow {
                attempts: r.get::<_, i32>(0).max(0) as u32,
                claimed_until: r.get(1),
                finished_at: r.get(2),
                ok: r.get(3),
                output: r.get(4),
            });
        let (claim, write) = decide(row.as_ref(), now, reuse);
        let attempts = match &claim {
            Claim::Mine { attempts } => *attempts as i32,
            _ => 0,
        };
        match write {
            ClaimWrite::Nothing => return Ok(claim),
            ClaimWrite::Insert => {
                let n = tx
                    .execute(
                        "INSERT INTO outside_calls (key, deployment_id, attempts, claimed_until)
                         VALUES ($1, $2, 0, $3) ON CONFLICT (key) DO NOTHING",
                        &[&key, &deployment_id, &until],
                    )
                    .await
                    .map_err(pg_err)?;
                if n == 0 {
                    // Claimed by another in between: look again shortly
                    // (and then see that claim's own deadline).
                    return Ok(Claim::Held {
                        until: now + chrono::Duration::seconds(1),
                    });
                }
            }
            ClaimWrite::TakeOver => {
                tx.execute(
                    "UPDATE outside_calls SET attempts = $2, claimed_until = $3, finished_at = NULL, ok = NULL, output = NULL
                     WHERE key = $1",
                    &[&key, &attempts, &until],
                )
                .await
                .map_err(pg_err)?;
            }
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(claim)
    }

    pub(crate) async fn count_call_attempt(&self, key: &str, until: Timestamp) -> Result<u32> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let row = tx
            .query_opt(
                "UPDATE outside_calls SET attempts = attempts + 1, claimed_until = $2
                 WHERE key = $1 AND finished_at IS NULL RETURNING attempts",
                &[&key, &until],
            )
            .await
            .map_err(pg_err)?
            .ok_or_else(|| unclaimed(key))?;
        tx.commit().await.map_err(pg_err)?;
        Ok(row.get::<_, i32>(0).max(0) as u32)
    }

    pub(crate) async fn finish_call(
        &self,
        key: &str,
        ok: bool,
        output: &str,
        now: Timestamp,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let n = tx
            .execute(
                "UPDATE outside_calls SET finished_at = $2, ok = $3, output = $4 WHERE key = $1 AND finished_at IS NULL",
                &[&key, &now, &ok, &output],
            )
            .await
            .map_err(pg_err)?;
        if n == 0 {
            return Err(unclaimed(key));
        }
        tx.commit().await.map_err(pg_err)
    }
}
