//! The SQLite backend: an embedded file, one writer thread, a few readers.
//!
//! The file runs in WAL mode so readers never block the writer or each other.
//! Writes go through [`writer::Writer`] (group commit, `synchronous=FULL`); reads
//! take one of `max_connections` read-only connections on a blocking thread. The
//! blocking mutex around a reader is only ever held inside `spawn_blocking`, never
//! across an `.await`.

mod calls;
mod canary;
mod manager;
mod notify;
mod page;
mod proxy;
mod release_effect;
mod secrets;
mod throttle;
mod writer;

use crate::canary::Window;
use page::paged;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use serin_core::release::signal::ReleaseRef;
use serin_core::{
    Lane, NewProduct, NewRelease, NewSignal, Product, Release, ReleasePatch, ReleaseStatus, Signal,
    SignalKind, Timestamp,
};

use crate::canary::{Paged, product_created, release_created, release_updated, stamp};
use crate::migrate::{self, MigrationReport};
use crate::{Entity, Result, SignalQuery, StoreError, StoreOptions};
use writer::Writer;

/// An open SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: Writer,
    readers: Arc<Readers>,
    /// The one process's lease and beat (see `crate::lease`).
    leader: Arc<Mutex<Leader>>,
}

/// What a single-process database knows of leadership: it leads from its
/// first question on.
#[derive(Debug, Default)]
struct Leader {
    lease: Option<crate::lease::LeaseInfo>,
    me: Option<crate::lease::ReplicaInfo>,
}

impl SqliteStore {
    pub(crate) fn pool(&self) -> crate::PoolStatus {
        let n = self.readers.conns.len();
        // A reader another caller holds can't be taken now.
        let in_use = self
            .readers
            .conns
            .iter()
            .filter(|c| c.try_lock().is_err())
            .count();
        crate::PoolStatus {
            max: n,
            open: n,
            in_use,
            waiting: 0,
        }
    }
}

#[derive(Debug)]
struct Readers {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

pub(crate) fn sql_err(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

pub(crate) fn instant_of(v: i64) -> Timestamp {
    chrono::DateTime::from_timestamp_micros(v).unwrap_or_default()
}

pub(crate) fn micros(t: Timestamp) -> i64 {
    t.timestamp_micros()
}

fn conversion_err(col: usize, msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, msg.into())
}

fn instant(row: &Row<'_>, col: usize) -> rusqlite::Result<Timestamp> {
    let v: i64 = row.get(col)?;
    chrono::DateTime::from_timestamp_micros(v)
        .ok_or_else(|| conversion_err(col, format!("instant {v} out of range")))
}

fn open_conn(path: &Path, read_only: bool) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(|e| {
        StoreError::Unavailable(format!("cannot open SQLite file {}: {e}", path.display()))
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sql_err)?;
    conn.set_prepared_statement_cache_capacity(64);
    let pragmas = if read_only {
        // A reader's page cache is kept small (512 KiB, not SQLite's 2 MB):
        // there are several readers and the kernel caches the file for all.
        "PRAGMA foreign_keys = ON; PRAGMA query_only = ON; PRAGMA cache_size = -512;"
    } else {
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
    };
    conn.execute_batch(pragmas).map_err(sql_err)?;
    Ok(conn)
}

impl SqliteStore {
    /// The lease's epoch: 1, granted on the first call.
    pub(crate) fn lease_epoch(&self) -> i64 {
        let mut l = self.leader.lock().expect("leader lock");
        let now = chrono::Utc::now();
        let holder =
            l.me.as_ref()
                .map_or_else(|| "this process".to_string(), |r| r.id.clone());
        l.lease.get_or_insert(crate::lease::LeaseInfo {
            holder,
            epoch: 1,
            acquired_at: now,
            renewed_at: now,
            expires_at: now,
            now,
        });
        1
    }

    pub(crate) fn lease(&self) -> Option<crate::lease::LeaseInfo> {
        let l = self.leader.lock().expect("leader lock");
        let now = chrono::Utc::now();
        // Held for as long as the process runs: its term is always ahead.
        l.lease.clone().map(|mut x| {
            (x.renewed_at, x.expires_at, x.now) = (now, now + chrono::Duration::seconds(3), now);
            x
        })
    }

    pub(crate) fn beat(&self, r: &crate::lease::ReplicaInfo) {
        let mut l = self.leader.lock().expect("leader lock");
        let mut me = r.clone();
        me.seen_at = chrono::Utc::now();
        l.me = Some(me);
    }

    pub(crate) fn replicas(&self) -> Vec<crate::lease::ReplicaInfo> {
        let l = self.leader.lock().expect("leader lock");
        l.me.iter().cloned().collect()
    }
}

impl SqliteStore {
    pub(crate) async fn open(path: &Path, options: &StoreOptions) -> Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            return Err(StoreError::Unavailable(format!(
                "the directory {} for the SQLite file does not exist",
                dir.display()
            )));
        }
        let path = path.to_path_buf();
        let n = options.max_connections.max(1);
        tokio::task::spawn_blocking(move || {
            let writer = Writer::start(open_conn(&path, false)?).map_err(|e| {
                StoreError::Unavailable(format!("cannot start the writer thread: {e}"))
            })?;
            let conns = (0..n)
                .map(|_| open_conn(&path, true).map(Mutex::new))
                .collect::<Result<_>>()?;
            Ok(SqliteStore {
                writer,
                readers: Arc::new(Readers {
                    conns,
                    next: AtomicUsize::new(0),
                }),
                leader: Arc::default(),
            })
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let n = readers.conns.len();
            let start = readers.next.fetch_add(1, Ordering::Relaxed) % n;
            for i in 0..n {
                if let Ok(conn) = readers.conns[(start + i) % n].try_lock() {
                    return f(&conn);
                }
            }
            let conn = readers.conns[start]
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("reader task failed: {e}")))?
    }

    pub(crate) async fn migrate(&self) -> Result<MigrationReport> {
        self.writer
            .write(|conn| {
                conn.execute_batch(
                    "CREATE TABLE IF NOT EXISTS serin_schema_migrations (
                        version INTEGER PRIMARY KEY, name TEXT NOT NULL,
                        checksum TEXT NOT NULL, applied_at INTEGER NOT NULL)",
                )
                .map_err(sql_err)?;
                let recorded: Vec<(i64, String)> = conn
                    .prepare("SELECT version, checksum FROM serin_schema_migrations ORDER BY version")
                    .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
                    .map_err(sql_err)?;
                let todo = migrate::plan(migrate::SQLITE, &recorded).map_err(StoreError::Migration)?;
                let mut applied = Vec::new();
                for m in todo {
                    conn.execute_batch(m.sql)
                        .map_err(|e| StoreError::Migration(format!("version {} ({}): {e}", m.version, m.name)))?;
                    conn.execute(
                        "INSERT INTO serin_schema_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
                        params![m.version, m.name, m.checksum(), micros(chrono::Utc::now())],
                    )
                    .map_err(sql_err)?;
                    applied.push(m.version);
                }
                Ok(MigrationReport {
                    already_applied: recorded.into_iter().map(|(v, _)| v).collect(),
                    applied,
                    latest: migrate::SQLITE.last().map_or(0, |m| m.version),
                })
            })
            .await
    }

    /// Checks both paths a request may take: a reader sees the current schema, and
    /// the writer thread answers (an empty write transaction: it takes the write
    /// lock, changes nothing, and costs no fsync).
    pub(crate) async fn ping(&self) -> Result<()> {
        let latest = migrate::SQLITE.last().map_or(0, |m| m.version);
        let have: Option<i64> = self
            .read(|c| {
                c.query_row(
                    "SELECT MAX(version) FROM serin_schema_migrations",
                    [],
                    |r| r.get(0),
                )
                .map_err(sql_err)
            })
            .await?;
        schema_is(have.unwrap_or(0), latest)?;
        self.writer.write(|_| Ok(())).await
    }

    pub(crate) async fn create_product(
        &self,
        new: &NewProduct,
        actor: &str,
        now: Timestamp,
    ) -> Result<Product> {
        let (new, actor) = (new.clone(), actor.to_string());
        self.writer
            .write(move |c| {
                let id = c
                    .prepare_cached(
                        "INSERT INTO products (name, description, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
                    )
                    .and_then(|mut s| s.insert(params![new.name, new.description, micros(now)]))
                    .map_err(|e| {
                        if is_unique_violation(&e) {
                            StoreError::Conflict { entity: Entity::Product, key: new.name.clone() }
                        } else {
                            sql_err(e)
                        }
                    })?;
                let p = Product { id, name: new.name, description: new.description, created_at: now, updated_at: now };
                canary::insert_event(c, &stamp(product_created(&p), &actor, now))?;
                Ok(p)
            })
            .await
    }

    pub(crate) async fn list_products(&self, offset: u64, limit: u64) -> Result<Paged<Product>> {
        self.read(move |c| {
            paged(
                c,
                PRODUCT_SELECT,
                "",
                "name",
                &[],
                Window { offset, limit },
                product_row,
            )
        })
        .await
    }

    pub(crate) async fn get_product(&self, name: &str) -> Result<Product> {
        let name = name.to_string();
        self.read(move |c| {
            c.prepare_cached(&format!("{PRODUCT_SELECT} WHERE name = ?1"))
                .and_then(|mut s| s.query_row([&name], product_row).optional())
                .map_err(sql_err)?
                .ok_or(StoreError::NotFound {
                    entity: Entity::Product,
                    key: name,
                    field: None,
                })
        })
        .await
    }

    pub(crate) async fn create_release(
        &self,
        new: &NewRelease,
        actor: &str,
        now: Timestamp,
    ) -> Result<Release> {
        let (new, actor) = (new.clone(), actor.to_string());
        self.writer
            .write(move |c| {
                let product_id = product_id(c, &new.product_name, "product_name")?;
                let id = c
                    .prepare_cached(
                        "INSERT INTO releases (product_id, version, status, description, created_at, updated_at, created_by)
                         VALUES (?1, ?2, 'draft', ?3, ?4, ?4, ?5)",
                    )
                    .and_then(|mut s| s.insert(params![product_id, new.version, new.description, micros(now), actor]))
                    .map_err(|e| {
                        if is_unique_violation(&e) {
                            StoreError::Conflict {
                                entity: Entity::Release,
                                key: format!("{}@{}", new.product_name, new.version),
                            }
                        } else {
                            sql_err(e)
                        }
                    })?;
                let r = Release {
                    id,
                    product_id,
                    product_name: new.product_name,
                    version: new.version,
                    status: ReleaseStatus::Draft,
                    description: new.description,
                    created_at: now,
                    updated_at: now,
                    released_at: None,
                    created_by: Some(actor.clone()),
                };
                canary::insert_event(c, &stamp(release_created(&r), &actor, now))?;
                Ok(r)
            })
            .await
    }

    pub(crate) async fn list_releases(
        &self,
        product: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Paged<Release>> {
        let product = product.to_string();
        self.read(move |c| {
            let pid = product_id(c, &product, "product_name")?;
            let order = "r.created_at DESC, r.id DESC";
            paged(
                c,
                RELEASE_SELECT,
                "WHERE r.product_id = ?1",
                order,
                &[&pid],
                Window { offset, limit },
                release_row,
            )
        })
        .await
    }

    pub(crate) async fn release_by_version(
        &self,
        product: &str,
        version: &str,
    ) -> Result<Option<Release>> {
        let (product, version) = (product.to_string(), version.to_string());
        self.read(move |c| release_by_version_on(c, &product, &version))
            .await
    }

    pub(crate) async fn get_release(&self, id: i64) -> Result<Release> {
        self.read(move |c| release_by_id(c, id)).await
    }

    pub(crate) async fn update_release(
        &self,
        id: i64,
        patch: &ReleasePatch,
        actor: &str,
        now: Timestamp,
    ) -> Result<Release> {
        let (patch, actor) = (patch.clone(), actor.to_string());
        self.writer
            .write(move |c| Ok(update_release_on(c, id, &patch, &actor, now)?.0))
            .await
    }

    pub(crate) async fn latest_stable(&self, product: &str) -> Result<Release> {
        let product = product.to_string();
        self.read(move |c| {
            let pid = product_id(c, &product, "product_name")?;
            let released: Vec<Release> = c
                .prepare_cached(&format!(
                    "{RELEASE_SELECT} WHERE r.product_id = ?1 AND r.status = 'released'"
                ))
                .and_then(|mut s| s.query_map([pid], release_row)?.collect())
                .map_err(sql_err)?;
            serin_core::latest_stable(&released)
                .cloned()
                .ok_or(StoreError::NoStableRelease { product })
        })
        .await
    }

    pub(crate) async fn record_signals(
        &self,
        signals: Vec<NewSignal>,
        now: Timestamp,
        want_rows: bool,
    ) -> Result<Vec<Signal>> {
        self.writer
            .write(move |c| {
                let mut cache: HashMap<ReleaseKey, (i64, String, String)> = HashMap::new();
                let mut insert = c
                    .prepare_cached(
                        "INSERT INTO signals (release_id, lane, name, kind, value, tags, ts, received_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )
                    .map_err(sql_err)?;
                let mut out = Vec::with_capacity(if want_rows { signals.len() } else { 0 });
                let received = micros(now);
                for (i, s) in signals.into_iter().enumerate() {
                    let key = ReleaseKey::of(&s, i)?;
                    let (release_id, product_name, version) = match cache.get(&key) {
                        Some(hit) => hit.clone(),
                        None => {
                            let found = resolve_release(c, &key, want_rows, i)?;
                            cache.insert(key, found.clone());
                            found
                        }
                    };
                    let tags = if s.tags.is_empty() { None } else { serde_json::to_string(&s.tags).ok() };
                    let ts = s.timestamp.map_or(now, serin_core::to_micros);
                    insert
                        .execute(params![release_id, s.lane.as_str(), s.name, s.kind.as_str(), s.value, tags, micros(ts), received])
                        .map_err(sql_err)?;
                    if want_rows {
                        out.push(Signal {
                            id: c.last_insert_rowid(),
                            release_id,
                            product_name,
                            version,
                            lane: s.lane,
                            name: s.name,
                            kind: s.kind,
                            value: s.value,
                            tags: s.tags,
                            timestamp: ts,
                        });
                    }
                }
                Ok(out)
            })
            .await
    }

    pub(crate) async fn list_signals(
        &self,
        release_id: i64,
        q: &SignalQuery,
    ) -> Result<Paged<Signal>> {
        let q = q.clone();
        self.read(move |c| {
            release_by_id(c, release_id)?;
            let select = "SELECT s.id, s.release_id, p.name, r.version, s.lane, s.name, s.kind, s.value, s.tags, s.ts
                 FROM signals s JOIN releases r ON r.id = s.release_id JOIN products p ON p.id = r.product_id";
            let filter = "WHERE s.release_id = ?1 AND (?2 IS NULL OR s.lane = ?2) AND (?3 IS NULL OR s.name = ?3)
                   AND (?4 IS NULL OR s.ts >= ?4)";
            let (lane, since) = (q.lane.map(Lane::as_str), q.since.map(micros));
            let w = Window { offset: q.offset, limit: q.limit as u64 };
            paged(c, select, filter, "s.ts DESC, s.id DESC", &[&release_id as &dyn rusqlite::ToSql, &lane, &q.name, &since], w, signal_row)
        })
        .await
    }
}

pub(crate) fn schema_is(have: i64, latest: i64) -> Result<()> {
    if have == latest {
        Ok(())
    } else {
        Err(StoreError::Migration(format!(
            "schema version {have}, this binary needs {latest}: run `serin migrate`"
        )))
    }
}

/// How a signal in a batch names its release, owned so it can key a cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ReleaseKey {
    Id(i64),
    Named(String, String),
}

impl ReleaseKey {
    fn of(s: &NewSignal, index: usize) -> Result<ReleaseKey> {
        match s
            .release_ref()
            .map_err(|e| e.under(&format!("signals[{index}]")))?
        {
            ReleaseRef::Id(id) => Ok(ReleaseKey::Id(id)),
            ReleaseRef::Named {
                product_name,
                version,
            } => Ok(ReleaseKey::Named(
                product_name.to_string(),
                version.to_string(),
            )),
        }
    }
}

/// The input field that pointed at a missing release, as a client would write it.
pub(crate) fn signal_field(single: bool, index: usize, field: &str) -> String {
    if single {
        field.to_string()
    } else {
        format!("signals[{index}].{field}")
    }
}

fn resolve_release(
    c: &Connection,
    key: &ReleaseKey,
    single: bool,
    index: usize,
) -> Result<(i64, String, String)> {
    let row = |r: &Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?));
    let (found, missing_key, field) = match key {
        ReleaseKey::Id(id) => (
            c.prepare_cached("SELECT r.id, p.name, r.version FROM releases r JOIN products p ON p.id = r.product_id WHERE r.id = ?1")
                .and_then(|mut s| s.query_row([id], row).optional()),
            id.to_string(),
            "release_id",
        ),
        ReleaseKey::Named(p, v) => (
            c.prepare_cached("SELECT r.id, p.name, r.version FROM releases r JOIN products p ON p.id = r.product_id WHERE p.name = ?1 AND r.version = ?2")
                .and_then(|mut s| s.query_row([p, v], row).optional()),
            format!("{p}@{v}"),
            "version",
        ),
    };
    found.map_err(sql_err)?.ok_or_else(|| StoreError::NotFound {
        entity: Entity::Release,
        key: missing_key,
        field: Some(signal_field(single, index, field)),
    })
}

const PRODUCT_SELECT: &str = "SELECT id, name, description, created_at, updated_at FROM products";
pub(crate) const RELEASE_SELECT: &str = "SELECT r.id, r.product_id, p.name, r.version, r.status, r.description, r.created_at, r.updated_at, r.released_at, r.created_by
     FROM releases r JOIN products p ON p.id = r.product_id";

pub(crate) fn product_id(c: &Connection, name: &str, field: &str) -> Result<i64> {
    c.prepare_cached("SELECT id FROM products WHERE name = ?1")
        .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
        .map_err(sql_err)?
        .ok_or_else(|| StoreError::NotFound {
            entity: Entity::Product,
            key: name.to_string(),
            field: Some(field.into()),
        })
}

/// Applies `patch` to release `id` inside the caller's transaction; returns
/// the release and the event recorded, if it changed.
pub(crate) fn update_release_on(
    c: &Connection,
    id: i64,
    patch: &ReleasePatch,
    actor: &str,
    now: Timestamp,
) -> Result<(Release, Option<serin_core::event::Event>)> {
    let mut r = release_by_id(c, id)?;
    let before = r.clone();
    if !r.apply(patch, now)? {
        return Ok((r, None));
    }
    c.prepare_cached(
        "UPDATE releases SET status = ?2, description = ?3, updated_at = ?4, released_at = ?5 WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![id, r.status.as_str(), r.description, micros(now), r.released_at.map(micros)])
    })
    .map_err(sql_err)?;
    let event = stamp(
        release_updated(&before, &r, patch.override_reason.as_deref()),
        actor,
        now,
    );
    canary::insert_event(c, &event)?;
    Ok((r, Some(event)))
}

/// The release of `product` with `version`, inside the caller's transaction.
pub(crate) fn release_by_version_on(
    c: &Connection,
    product: &str,
    version: &str,
) -> Result<Option<Release>> {
    c.prepare_cached(&format!(
        "{RELEASE_SELECT} WHERE p.name = ?1 AND r.version = ?2"
    ))
    .and_then(|mut s| {
        s.query_row(params![product, version], release_row)
            .optional()
    })
    .map_err(sql_err)
}

pub(crate) fn release_by_id(c: &Connection, id: i64) -> Result<Release> {
    c.prepare_cached(&format!("{RELEASE_SELECT} WHERE r.id = ?1"))
        .and_then(|mut s| s.query_row([id], release_row).optional())
        .map_err(sql_err)?
        .ok_or(StoreError::NotFound {
            entity: Entity::Release,
            key: id.to_string(),
            field: None,
        })
}

fn product_row(r: &Row<'_>) -> rusqlite::Result<Product> {
    Ok(Product {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        created_at: instant(r, 3)?,
        updated_at: instant(r, 4)?,
    })
}

pub(crate) fn release_row(r: &Row<'_>) -> rusqlite::Result<Release> {
    let status: String = r.get(4)?;
    let released_at = match r.get::<_, Option<i64>>(8)? {
        Some(_) => Some(instant(r, 8)?),
        None => None,
    };
    Ok(Release {
        id: r.get(0)?,
        product_id: r.get(1)?,
        product_name: r.get(2)?,
        version: r.get(3)?,
        status: status
            .parse()
            .map_err(|e: serin_core::DomainError| conversion_err(4, e.to_string()))?,
        description: r.get(5)?,
        created_at: instant(r, 6)?,
        updated_at: instant(r, 7)?,
        released_at,
        created_by: r.get(9)?,
    })
}

fn signal_row(r: &Row<'_>) -> rusqlite::Result<Signal> {
    let lane: String = r.get(4)?;
    let kind: String = r.get(6)?;
    let tags: Option<String> = r.get(8)?;
    let tags: BTreeMap<String, String> = match tags {
        Some(t) => serde_json::from_str(&t).map_err(|e| conversion_err(8, e.to_string()))?,
        None => BTreeMap::new(),
    };
    Ok(Signal {
        id: r.get(0)?,
        release_id: r.get(1)?,
        product_name: r.get(2)?,
        version: r.get(3)?,
        lane: Lane::parse(&lane).ok_or_else(|| conversion_err(4, format!("lane `{lane}`")))?,
        name: r.get(5)?,
        kind: SignalKind::parse(&kind)
            .ok_or_else(|| conversion_err(6, format!("kind `{kind}`")))?,
        value: r.get(7)?,
        tags,
        timestamp: instant(r, 9)?,
    })
}
