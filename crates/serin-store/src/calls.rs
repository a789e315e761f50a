//! Outside calls — hooks and webhook gates — claimed before they are made.
//!
//! The leader makes these calls for a rollout step, and a leader can die in
//! the middle of one. Each call has a key (the `delivery_id` its receiver
//! sees, the same on every attempt and every leader) and a row:
//!
//! 1. **Claim** before calling: the row is created, or taken over once the
//!    claim of a leader that died has lapsed. A claim that hasn't lapsed is
//!    waited out; an answer already recorded is used instead of calling again.
//! 2. **Count** every attempt before it is sent, extending the claim.
//! 3. **Record** the answer after.
//!
//! So a receiver sees a call twice only when a leader died between sending an
//! attempt and recording its answer (the new leader then sends that attempt
//! again, with the same key). Every write goes through the fenced store, so a
//! replaced leader can't claim, count or record.

use std::time::Duration;

use serin_core::Timestamp;

use crate::{Result, Store};

/// A call's row, as both backends read it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CallRow {
    pub attempts: u32,
    pub claimed_until: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub ok: Option<bool>,
    pub output: Option<String>,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Claimed: make the call. `attempts` were already sent (by a leader that died).
    Mine {
        /// Attempts on record before this claim.
        attempts: u32,
    },
    /// A claim that hasn't lapsed holds it (a leader that may still be calling):
    /// claim again after `until`.
    Held {
        /// When that claim lapses.
        until: Timestamp,
    },
    /// Answered already: use this, don't call again.
    Answered {
        /// Yes or no.
        ok: bool,
        /// What the call said.
        output: String,
        /// Attempts it took.
        attempts: u32,
        /// When it was answered.
        at: Timestamp,
    },
}

/// How long a recorded answer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// For good (a hook run once per step).
    Always,
    /// A yes for good; a no only this long, then the call is made again (a
    /// gate or a confirmation, asked until it says yes).
    NoFor(Duration),
}

/// What a claim writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClaimWrite {
    /// Nothing (held, or answered).
    Nothing,
    /// A new row.
    Insert,
    /// The row becomes this claim's: unfinished, claimed until the new time.
    TakeOver,
}

/// The claim a row allows at `now`, and what it writes. Shared by both backends.
pub(crate) fn decide(row: Option<&CallRow>, now: Timestamp, reuse: Reuse) -> (Claim, ClaimWrite) {
    let Some(row) = row else {
        return (Claim::Mine { attempts: 0 }, ClaimWrite::Insert);
    };
    let mine = (
        Claim::Mine {
            attempts: row.attempts,
        },
        ClaimWrite::TakeOver,
    );
    match (row.finished_at, row.ok) {
        (Some(at), Some(ok)) => {
            let stands = match reuse {
                Reuse::Always => true,
                Reuse::NoFor(d) => {
                    ok || now < at + chrono::Duration::from_std(d).unwrap_or_default()
                }
            };
            if stands {
                let answered = Claim::Answered {
                    ok,
                    output: row.output.clone().unwrap_or_default(),
                    attempts: row.attempts,
                    at,
                };
                (answered, ClaimWrite::Nothing)
            } else {
                // Asked again: a new round of attempts.
                (Claim::Mine { attempts: 0 }, ClaimWrite::TakeOver)
            }
        }
        _ if row.claimed_until > now => (
            Claim::Held {
                until: row.claimed_until,
            },
            ClaimWrite::Nothing,
        ),
        _ => mine,
    }
}

/// A count or an answer for a call that isn't claimed (or already answered).
pub(crate) fn unclaimed(key: &str) -> crate::StoreError {
    crate::StoreError::Backend(format!("the outside call {key} is not claimed"))
}

impl Store {
    /// Claims the call `key` for `deployment_id` until `until` (see the module docs).
    pub async fn claim_call(
        &self,
        key: &str,
        deployment_id: &str,
        until: Timestamp,
        now: Timestamp,
        reuse: Reuse,
    ) -> Result<Claim> {
        dispatch!(self, b => b.claim_call(key, deployment_id, until, now, reuse))
    }

    /// Counts an attempt of a claimed call before it is sent and extends the
    /// claim to `until`; returns the attempts on record, this one included.
    pub async fn count_call_attempt(&self, key: &str, until: Timestamp) -> Result<u32> {
        dispatch!(self, b => b.count_call_attempt(key, until))
    }

    /// Records a claimed call's answer.
    pub async fn finish_call(
        &self,
        key: &str,
        ok: bool,
        output: &str,
        now: Timestamp,
    ) -> Result<()> {
        dispatch!(self, b => b.finish_call(key, ok, output, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> Timestamp {
        chrono::Utc.timestamp_opt(1_757_851_200 + s, 0).unwrap()
    }

    fn row(claimed_until: i64, finished: Option<(i64, bool)>) -> CallRow {
        CallRow {
            attempts: 2,
            claimed_until: t(claimed_until),
            finished_at: finished.map(|f| t(f.0)),
            ok: finished.map(|f| f.1),
            output: finished.map(|_| "said".into()),
        }
    }

    #[test]
    fn claims_follow_the_row() {
        let no = Reuse::NoFor(Duration::from_secs(5));
        assert_eq!(decide(None, t(0), Reuse::Always).1, ClaimWrite::Insert);
        // A live claim is waited out; a lapsed one is taken over with its count.
        assert_eq!(
            decide(Some(&row(10, None)), t(5), Reuse::Always),
            (Claim::Held { until: t(10) }, ClaimWrite::Nothing)
        );
        assert_eq!(
            decide(Some(&row(10, None)), t(10), Reuse::Always),
            (Claim::Mine { attempts: 2 }, ClaimWrite::TakeOver)
        );
        // A hook's answer stands for good, a yes always, a gate's no for a while.
        let answered = |ok| Claim::Answered {
            ok,
            output: "said".into(),
            attempts: 2,
            at: t(3),
        };
        assert_eq!(
            decide(Some(&row(10, Some((3, false)))), t(99), Reuse::Always).0,
            answered(false)
        );
        assert_eq!(
            decide(Some(&row(10, Some((3, true)))), t(99), no).0,
            answered(true)
        );
        assert_eq!(
            decide(Some(&row(10, Some((3, false)))), t(7), no).0,
            answered(false)
        );
        assert_eq!(
            decide(Some(&row(10, Some((3, false)))), t(8), no),
            (Claim::Mine { attempts: 0 }, ClaimWrite::TakeOver)
        );
    }
}
