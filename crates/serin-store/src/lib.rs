//! Serin's storage: one interface over SQLite and PostgreSQL.
//!
//! [`Store`] is an enum over the two backends rather than a trait object: the set
//! of backends is closed, the methods are async, and an enum keeps every call
//! statically dispatched. Both backends run the same integration suite.
//!
//! The store trusts that inputs were validated by `serin-core` (names, versions,
//! signal values); it enforces what only the database can — uniqueness, existence,
//! and status transitions checked inside the same transaction that writes them, so
//! two concurrent changes can't both pass the check.
//!
//! Layout:
//! - [`migrate`]: embedded, versioned migrations.
//! - `sqlite`: one writer thread with group commit, a few reader connections.
//! - `postgres`: a connection pool, prepared statements.
#![forbid(unsafe_code)]

/// Runs `$call` on whichever backend `$self` is, binding it to `$b`: the one
/// place the `Store` facade meets its two backends.
macro_rules! dispatch {
    ($self:ident, $b:ident => $call:expr) => {
        match $self {
            Store::Sqlite($b) => $call.await,
            Store::Postgres($b) => $call.await,
        }
    };
}

pub mod calls;
pub mod canary;
pub mod lease;
pub mod manager;
pub mod migrate;
mod notify;
mod postgres;
mod proxy;
mod secrets;
mod sqlite;
mod throttle;

use serin_core::{
    DomainError, Lane, NewProduct, NewRelease, NewSignal, Product, Release, ReleasePatch, Signal,
    Timestamp,
};

pub use migrate::MigrationReport;
pub use notify::{FeedCursor, FeedListener};

/// What kind of record an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    /// A product.
    Product,
    /// A release.
    Release,
    /// A canary deployment.
    Deployment,
    /// A worker.
    Worker,
    /// An API key.
    ApiKey,
    /// A user.
    User,
    /// A secret.
    Secret,
}

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// The record doesn't exist. `field` names the input that pointed at it, if any.
    #[error("{entity:?} `{key}` not found")]
    NotFound {
        /// What kind of record.
        entity: Entity,
        /// How it was asked for (name, id, or `product@version`).
        key: String,
        /// The input field that named it, e.g. `signals[3].version`.
        field: Option<String>,
    },
    /// The product exists but has no `released` release.
    #[error("product `{product}` has no released release")]
    NoStableRelease {
        /// The product's name.
        product: String,
    },
    /// A record with the same unique key exists.
    #[error("{entity:?} `{key}` already exists")]
    Conflict {
        /// What kind of record.
        entity: Entity,
        /// The duplicated key.
        key: String,
    },
    /// The tenant already has as many live deployments as allowed.
    #[error("tenant {tenant:?} already has {limit} live deployments")]
    ConcurrencyLimit {
        /// The tenant.
        tenant: Option<String>,
        /// The limit.
        limit: u32,
    },
    /// The record changed since the caller read it.
    #[error("revision {expected} is stale (now {actual:?})")]
    RevisionMismatch {
        /// The revision the caller expected.
        expected: u64,
        /// The revision found, when known.
        actual: Option<u64>,
    },
    /// A domain rule, checked inside the transaction, refused the change.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The database can't be reached or is out of connections.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The schema can't be brought up to date.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A fenced write (see [`Store::fenced`]) whose epoch no longer holds the
    /// leader lease: another replica leads now, and nothing was written.
    #[error("lease epoch {epoch} no longer leads; nothing was written")]
    Fenced {
        /// The epoch the write carried.
        epoch: i64,
    },
    /// Any other database failure. The text is for logs, not clients.
    #[error("database error: {0}")]
    Backend(String),
}

/// Result of a store call.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which signals to read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SignalQuery {
    /// Only this lane.
    pub lane: Option<Lane>,
    /// Only signals with this name.
    pub name: Option<String>,
    /// Only signals observed at or after this instant.
    pub since: Option<Timestamp>,
    /// At most this many, newest first.
    pub limit: u32,
    /// Skip this many first.
    pub offset: u64,
}

/// Tuning for a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Most connections in the PostgreSQL pool; reader connections for SQLite.
    pub max_connections: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { max_connections: 8 }
    }
}

/// The database connections of a [`Store`] now (see [`Store::pool`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// The most it may open.
    pub max: usize,
    /// Open now.
    pub open: usize,
    /// Open and in use.
    pub in_use: usize,
    /// Callers waiting for one.
    pub waiting: usize,
}

/// The database behind Serin.
#[derive(Debug, Clone)]
pub enum Store {
    /// An embedded SQLite file.
    Sqlite(sqlite::SqliteStore),
    /// A PostgreSQL server.
    Postgres(postgres::PgStore),
}

impl Store {
    /// Opens the database named by `url`, without migrating it.
    ///
    /// `postgres://…` or `postgresql://…` selects PostgreSQL; `sqlite://PATH`,
    /// `sqlite:PATH` or a bare file path selects SQLite (the file is created if missing).
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Store> {
        match parse_url(url).map_err(StoreError::Unavailable)? {
            DatabaseUrl::Postgres(u) => {
                Ok(Store::Postgres(postgres::PgStore::connect(&u, options)?))
            }
            DatabaseUrl::Sqlite(path) => Ok(Store::Sqlite(
                sqlite::SqliteStore::open(&path, options).await?,
            )),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// The database connections now: how many this process may open, has
    /// open, and is using, and how many callers wait for one. On SQLite the
    /// reader connections (the one writer thread is not counted; nobody waits
    /// for a reader: a busy one is shared).
    pub fn pool(&self) -> PoolStatus {
        match self {
            Store::Sqlite(s) => s.pool(),
            Store::Postgres(p) => p.pool(),
        }
    }

    /// Applies the migrations this database is missing.
    pub async fn migrate(&self) -> Result<MigrationReport> {
        dispatch!(self, b => b.migrate())
    }

    /// Checks that the database answers and its schema is current.
    pub async fn ping(&self) -> Result<()> {
        dispatch!(self, b => b.ping())
    }

    /// Creates a product. `Conflict` if the name is taken.
    pub async fn create_product(
        &self,
        new: &NewProduct,
        actor: &str,
        now: Timestamp,
    ) -> Result<Product> {
        dispatch!(self, b => b.create_product(new, actor, serin_core::to_micros(now)))
    }

    /// All products, by name.
    pub async fn list_products(&self, offset: u64, limit: u64) -> Result<canary::Paged<Product>> {
        dispatch!(self, b => b.list_products(offset, limit))
    }

    /// One product by name.
    pub async fn get_product(&self, name: &str) -> Result<Product> {
        dispatch!(self, b => b.get_product(name))
    }

    /// Creates a `draft` release. `NotFound` for an unknown product, `Conflict` for a
    /// version the product already has.
    pub async fn create_release(
        &self,
        new: &NewRelease,
        actor: &str,
        now: Timestamp,
    ) -> Result<Release> {
        dispatch!(self, b => b.create_release(new, actor, serin_core::to_micros(now)))
    }

    /// A product's releases, newest first.
    pub async fn list_releases(
        &self,
        product: &str,
        offset: u64,
        limit: u64,
    ) -> Result<canary::Paged<Release>> {
        dispatch!(self, b => b.list_releases(product, offset, limit))
    }

    /// A product's release with this version, if there is one.
    pub async fn release_by_version(
        &self,
        product: &str,
        version: &str,
    ) -> Result<Option<Release>> {
        dispatch!(self, b => b.release_by_version(product, version))
    }

    /// One release by id.
    pub async fn get_release(&self, id: i64) -> Result<Release> {
        dispatch!(self, b => b.get_release(id))
    }

    /// Changes a release; a status change is checked by `serin-core` inside the transaction.
    pub async fn update_release(
        &self,
        id: i64,
        patch: &ReleasePatch,
        actor: &str,
        now: Timestamp,
    ) -> Result<Release> {
        dispatch!(self, b => b.update_release(id, patch, actor, serin_core::to_micros(now)))
    }

    /// The product's latest stable release (see `serin_core::latest_stable`).
    pub async fn latest_stable(&self, product: &str) -> Result<Release> {
        dispatch!(self, b => b.latest_stable(product))
    }

    /// Stores one signal.
    pub async fn record_signal(&self, signal: NewSignal, now: Timestamp) -> Result<Signal> {
        let mut stored =
            dispatch!(self, b => b.record_signals(vec![signal], serin_core::to_micros(now), true))?;
        stored
            .pop()
            .ok_or_else(|| StoreError::Backend("insert returned no row".into()))
    }

    /// Stores many signals in one transaction: all of them or none. Returns how many.
    pub async fn record_signals(&self, signals: Vec<NewSignal>, now: Timestamp) -> Result<usize> {
        let n = signals.len();
        dispatch!(self, b => b.record_signals(signals, serin_core::to_micros(now), false))?;
        Ok(n)
    }

    /// A release's signals, newest first.
    pub async fn list_signals(
        &self,
        release_id: i64,
        query: &SignalQuery,
    ) -> Result<canary::Paged<Signal>> {
        dispatch!(self, b => b.list_signals(release_id, query))
    }
}

#[derive(Debug)]
enum DatabaseUrl {
    Postgres(String),
    Sqlite(std::path::PathBuf),
}

fn parse_url(url: &str) -> std::result::Result<DatabaseUrl, String> {
    let url = url.trim();
    if url.is_empty() {
        return Err("the database URL is empty".into());
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(DatabaseUrl::Postgres(url.to_string()));
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() {
        return Err(format!("`{url}` names no SQLite file"));
    }
    if let Some((scheme, _)) = url.split_once("://")
        && scheme != "sqlite"
    {
        return Err(format!(
            "unsupported database URL scheme `{scheme}://`; use sqlite://PATH or postgres://…"
        ));
    }
    Ok(DatabaseUrl::Sqlite(path.into()))
}

/// The file a SQLite URL names; `None` for PostgreSQL or a bad URL.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    match parse_url(url).ok()? {
        DatabaseUrl::Sqlite(p) => Some(p),
        DatabaseUrl::Postgres(_) => None,
    }
}

/// Checks a database URL without connecting: the scheme, and for PostgreSQL the
/// whole connection string.
pub fn check_url(url: &str) -> std::result::Result<(), String> {
    match parse_url(url)? {
        DatabaseUrl::Postgres(u) => <tokio_postgres::Config as std::str::FromStr>::from_str(&u)
            .map(|_| ())
            .map_err(|e| format!("not a valid PostgreSQL URL: {e}")),
        DatabaseUrl::Sqlite(_) => Ok(()),
    }
}

/// Describes a database URL for logs without its password (in the user part or as
/// a `password=` query parameter).
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(s), Some(at)) if at > s => match base[s + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &base[..s + 3], &base[at..]),
            None => base.to_string(),
        },
        _ => base.to_string(),
    };
    if let Some(q) = query {
        let params: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(matches!(
            parse_url("postgres://u@h/db"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        match parse_url("sqlite://data/serin.db").unwrap() {
            DatabaseUrl::Sqlite(p) => assert_eq!(p, std::path::Path::new("data/serin.db")),
            DatabaseUrl::Postgres(_) => panic!(),
        }
        match parse_url("sqlite:///tmp/x.db").unwrap() {
            DatabaseUrl::Sqlite(p) => assert_eq!(p, std::path::Path::new("/tmp/x.db")),
            DatabaseUrl::Postgres(_) => panic!(),
        }
        assert!(matches!(parse_url("serin.db"), Ok(DatabaseUrl::Sqlite(_))));
        assert!(parse_url("mysql://x").unwrap_err().contains("mysql://"));
        assert!(parse_url("  ").is_err());
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=secret&sslmode=disable"),
            "postgres://h/db?user=u&password=***&sslmode=disable"
        );
        assert!(check_url("postgres://u@h:notaport/db").is_err());
        assert!(check_url("postgres://u@h:5432/db").is_ok());
    }
}
