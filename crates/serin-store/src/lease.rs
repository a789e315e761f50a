//! Leadership: one replica among those on a database acts, the others serve.
//!
//! The lease is a row (`leader_lease`): its holder, an epoch that grows by one
//! at every change of holder, and an expiry, all on the database's clock so
//! the replicas' clocks never have to agree. A follower takes the lease only
//! once it has expired; the holder renews it well inside its term. A write
//! made by the acting loops goes through a store [`fenced`](Store::fenced)
//! with the epoch it was granted: its transaction first takes a key-share
//! lock on the lease row and checks the epoch, so a holder that was paused
//! past its term (and replaced) finds a newer epoch and writes nothing. A new
//! holder locks the row `FOR UPDATE` before it raises the epoch, so it is
//! granted the lease only after every write of the old one has committed or
//! rolled back, and their writes never interleave. Renewals are no-key
//! updates on their own two connections: neither the fenced writes nor a
//! busy pool can hold one back.
//!
//! SQLite is one process (`serin up` locks the file): its lease is granted at
//! once and never lost, and fencing has nothing to guard.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serin_core::Timestamp;

use crate::{Result, Store};

/// The lease as the database has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseInfo {
    /// The replica that holds it.
    pub holder: String,
    /// Grows by one at every change of holder.
    pub epoch: i64,
    /// When this holder took it.
    pub acquired_at: Timestamp,
    /// Its last renewal.
    pub renewed_at: Timestamp,
    /// When it lapses unless renewed.
    pub expires_at: Timestamp,
    /// The database's clock when this was read.
    pub now: Timestamp,
}

/// A replica that said it is alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaInfo {
    /// A new id at every start.
    pub id: String,
    /// The name it was given (`--name`), or its host name.
    pub name: String,
    /// Its build.
    pub version: String,
    /// When it started.
    pub started_at: Timestamp,
    /// Its last beat, on the database's clock.
    pub seen_at: Timestamp,
}

impl Store {
    /// Takes the lease for `holder` when nobody holds it or it has lapsed;
    /// the new epoch, or `None` while another replica holds it.
    pub async fn acquire_lease(&self, holder: &str, term: Duration) -> Result<Option<i64>> {
        match self {
            Store::Sqlite(s) => Ok(Some(s.lease_epoch())),
            Store::Postgres(p) => p.acquire_lease(holder, term).await,
        }
    }

    /// Extends `holder`'s lease at `epoch` by `term` from now; `false` when it
    /// has lapsed or another replica took it.
    pub async fn renew_lease(&self, holder: &str, epoch: i64, term: Duration) -> Result<bool> {
        match self {
            Store::Sqlite(_) => Ok(true),
            Store::Postgres(p) => p.renew_lease(holder, epoch, term).await,
        }
    }

    /// Ends `holder`'s lease at `epoch` now, so a follower takes over at once.
    pub async fn release_lease(&self, holder: &str, epoch: i64) -> Result<()> {
        match self {
            Store::Sqlite(_) => Ok(()),
            Store::Postgres(p) => p.release_lease(holder, epoch).await,
        }
    }

    /// The database's clock now (`clock_timestamp()`, not the transaction's
    /// start); on SQLite, this process's clock, which is the database's.
    pub async fn database_time(&self) -> Result<Timestamp> {
        match self {
            Store::Sqlite(_) => Ok(serin_core::to_micros(chrono::Utc::now())),
            Store::Postgres(p) => p.database_time().await,
        }
    }

    /// The lease, if anybody ever held it.
    pub async fn lease(&self) -> Result<Option<LeaseInfo>> {
        match self {
            Store::Sqlite(s) => Ok(s.lease()),
            Store::Postgres(p) => p.lease().await,
        }
    }

    /// Records that a replica is alive (its `seen_at` becomes the database's now).
    pub async fn beat_replica(&self, r: &ReplicaInfo) -> Result<()> {
        match self {
            Store::Sqlite(s) => {
                s.beat(r);
                Ok(())
            }
            Store::Postgres(p) => p.beat_replica(r).await,
        }
    }

    /// Replicas seen within `within`, the most recently started first; the
    /// database's clock.
    pub async fn replicas(&self, within: Duration) -> Result<Vec<ReplicaInfo>> {
        match self {
            Store::Sqlite(s) => Ok(s.replicas()),
            Store::Postgres(p) => p.replicas(within).await,
        }
    }

    /// The same store, whose every write first checks that `epoch` still
    /// holds the lease and fails with [`StoreError::Fenced`](crate::StoreError::Fenced)
    /// otherwise. The acting loops write only through one.
    #[must_use]
    pub fn fenced(&self, epoch: i64) -> Store {
        match self {
            Store::Sqlite(s) => Store::Sqlite(s.clone()),
            Store::Postgres(p) => Store::Postgres(p.fenced(epoch)),
        }
    }
}
