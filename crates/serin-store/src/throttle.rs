//! The login throttle's counts: wrong passwords per key (the server hashes
//! the caller and the email into it), in the database so that every replica
//! sees the same count and a restart doesn't reset it.
//!
//! An attempt is refused while the wait that `serin_core::user::login_delay`
//! gives for the failures so far hasn't passed since the last one; otherwise
//! it is counted at once, before the password is checked (a burst of
//! parallel guesses is serialized on the key's row, so none slips past the
//! check), and a success forgets the key. Counts untouched for a day are
//! dropped as attempts come in.

use std::time::Duration;

use serin_core::Timestamp;

use crate::{Result, Store};

/// The decision for an attempt, given the key's failures so far and the
/// last one's time: the wait left, or `None` to go ahead (and count it).
pub(crate) fn wait_left(row: Option<(u32, Timestamp)>, now: Timestamp) -> Option<Duration> {
    let (failures, last) = row?;
    let delay = chrono::Duration::from_std(serin_core::user::login_delay(failures)).ok()?;
    let left = (last + delay - now).to_std().ok()?;
    (!left.is_zero()).then_some(left)
}

/// Counts untouched for a day are forgotten: far longer than the longest
/// wait, so a guesser can't wait out the count itself and start again with
/// five free guesses.
pub(crate) fn forget_before(now: Timestamp) -> Timestamp {
    now - chrono::Duration::hours(24)
}

impl Store {
    /// Starts a login attempt for `key`: `Some(wait)` refuses it; `None`
    /// counts it as a failure until [`Store::login_succeeded`].
    pub async fn login_attempt(&self, key: &str, now: Timestamp) -> Result<Option<Duration>> {
        dispatch!(self, b => b.login_attempt(key, now))
    }

    /// Forgets `key`'s failures after a success.
    pub async fn login_succeeded(&self, key: &str) -> Result<()> {
        dispatch!(self, b => b.login_succeeded(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn waits_grow_after_five_failures() {
        let t = |s: i64| chrono::Utc.timestamp_opt(1_757_851_200 + s, 0).unwrap();
        assert_eq!(wait_left(None, t(0)), None);
        assert_eq!(wait_left(Some((4, t(0))), t(0)), None);
        assert_eq!(
            wait_left(Some((5, t(0))), t(0)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            wait_left(Some((7, t(0))), t(1)),
            Some(Duration::from_secs(3))
        );
        assert_eq!(wait_left(Some((7, t(0))), t(4)), None);
    }
}
