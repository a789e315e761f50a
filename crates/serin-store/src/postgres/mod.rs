//! The PostgreSQL backend: a pool of connections and cached prepared statements.
//!
//! Every write is one transaction. Status transitions lock the release row
//! (`SELECT … FOR UPDATE`) so that the check in `serin-core` and the write see the
//! same state even with several control-plane replicas. Signal batches go in as one
//! `INSERT … SELECT FROM unnest(…)` per batch: one round trip, whatever the size.
//! Migrations hold an advisory lock so that replicas starting together apply each
//! version once.

use crate::canary::Window;
use page::paged;
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use deadpool_postgres::GenericClient;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serin_core::release::signal::ReleaseRef;
use serin_core::{
    Lane, NewProduct, NewRelease, NewSignal, Product, Release, ReleasePatch, ReleaseStatus, Signal,
    SignalKind, Timestamp,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};

mod calls;
mod canary;
mod lease;
mod manager;
mod notify;
mod page;
mod proxy;
mod release_effect;
mod secrets;
mod throttle;

use crate::canary::{Paged, product_created, release_created, release_updated, stamp};
use crate::migrate::{self, MigrationReport};
use crate::sqlite::{schema_is, signal_field};
use crate::{Entity, Result, SignalQuery, StoreError, StoreOptions};

/// A PostgreSQL connection pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// Where the pool connects, for connections of their own (`listen`).
    config: std::sync::Arc<tokio_postgres::Config>,
    /// Two connections of its own for the lease and the beats, so a busy
    /// pool never delays a renewal.
    lease_pool: Pool,
    /// The lease epoch every write must still hold (see `crate::lease`).
    fence: Option<i64>,
    /// The live deployments last read, by id, each with the revision its body
    /// was stored at (see `live_set`).
    live: std::sync::Arc<std::sync::Mutex<HashMap<String, serin_core::canary::Deployment>>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("status", &self.pool.status())
            .finish()
    }
}

/// A JSON column read straight into its type: the column's bytes are parsed
/// once, with no `serde_json::Value` in between (a controller tick reads a
/// thousand deployment bodies, and the tree in between was half the cost).
pub(crate) fn json_col<T: serde::de::DeserializeOwned>(r: &Row, i: usize) -> Result<T> {
    r.try_get::<_, tokio_postgres::types::Json<T>>(i)
        .map(|j| j.0)
        .map_err(|e| StoreError::Backend(format!("stored JSON is unreadable: {e}")))
}

pub(crate) fn pg_err(e: tokio_postgres::Error) -> StoreError {
    // Class 22 ("data exception": a value out of range, a byte PostgreSQL can't
    // store) means the input was bad. serin-core's validation should have caught
    // it; this keeps it a client error if something slips through.
    if e.code().is_some_and(|c| c.code().starts_with("22")) {
        return StoreError::Domain(serin_core::DomainError::invalid(
            "body",
            "a value is out of range or holds a character the database can't store",
        ));
    }
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed() || io {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Backend(e.to_string())
    }
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

pub(crate) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// Advisory lock key for migrations ("SERIN" in ASCII).
const MIGRATION_LOCK: i64 = 0x0053_4552_494e;

impl PgStore {
    pub(crate) fn connect(url: &str, options: &StoreOptions) -> Result<PgStore> {
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("bad PostgreSQL URL: {e}")))?;
        let build = |size: usize| {
            let manager = Manager::from_config(
                config.clone(),
                NoTls,
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            Pool::builder(manager)
                .max_size(size)
                .wait_timeout(Some(std::time::Duration::from_secs(10)))
                .create_timeout(Some(std::time::Duration::from_secs(5)))
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .build()
                .map_err(|e| StoreError::Unavailable(e.to_string()))
        };
        let pool = build(options.max_connections.max(1))?;
        let lease_pool = build(2)?;
        Ok(PgStore {
            pool,
            config: std::sync::Arc::new(config),
            lease_pool,
            fence: None,
            live: Default::default(),
        })
    }

    pub(crate) fn pool(&self) -> crate::PoolStatus {
        let s = self.pool.status();
        crate::PoolStatus {
            max: s.max_size,
            open: s.size,
            in_use: s.size.saturating_sub(s.available),
            waiting: s.waiting,
        }
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Client> {
        self.pool.get().await.map_err(pool_err)
    }

    /// A connection of the lease's own pool.
    pub(crate) async fn lease_client(&self) -> Result<deadpool_postgres::Client> {
        self.lease_pool.get().await.map_err(pool_err)
    }

    pub(crate) async fn migrate(&self) -> Result<MigrationReport> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg_err)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS serin_schema_migrations (
                version BIGINT PRIMARY KEY, name TEXT NOT NULL,
                checksum TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)",
        )
        .await
        .map_err(pg_err)?;
        let recorded: Vec<(i64, String)> = tx
            .query(
                "SELECT version, checksum FROM serin_schema_migrations ORDER BY version",
                &[],
            )
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let todo = migrate::plan(migrate::POSTGRES, &recorded).map_err(StoreError::Migration)?;
        let mut applied = Vec::new();
        for m in todo {
            tx.batch_execute(m.sql).await.map_err(|e| {
                StoreError::Migration(format!("version {} ({}): {e}", m.version, m.name))
            })?;
            tx.execute(
                "INSERT INTO serin_schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, now())",
                &[&m.version, &m.name, &m.checksum()],
            )
            .await
            .map_err(pg_err)?;
            applied.push(m.version);
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(MigrationReport {
            already_applied: recorded.into_iter().map(|(v, _)| v).collect(),
            applied,
            latest: migrate::POSTGRES.last().map_or(0, |m| m.version),
        })
    }

    pub(crate) async fn ping(&self) -> Result<()> {
        let client = self.client().await?;
        let have: Option<i64> = client
            .query_one("SELECT MAX(version) FROM serin_schema_migrations", &[])
            .await
            .map_err(pg_err)?
            .get(0);
        schema_is(
            have.unwrap_or(0),
            migrate::POSTGRES.last().map_or(0, |m| m.version),
        )
    }

    pub(crate) async fn create_product(
        &self,
        new: &NewProduct,
        actor: &str,
        now: Timestamp,
    ) -> Result<Product> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let stmt = tx
            .prepare_cached("INSERT INTO products (name, description, created_at, updated_at) VALUES ($1, $2, $3, $3) RETURNING id")
            .await
            .map_err(pg_err)?;
        let row = tx
            .query_one(&stmt, &[&new.name, &new.description, &now])
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict {
                        entity: Entity::Product,
                        key: new.name.clone(),
                    }
                } else {
                    pg_err(e)
                }
            })?;
        let p = Product {
            id: row.get(0),
            name: new.name.clone(),
            description: new.description.clone(),
            created_at: now,
            updated_at: now,
        };
        canary::insert_event(&tx, &stamp(product_created(&p), actor, now)).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(p)
    }

    pub(crate) async fn list_products(&self, offset: u64, limit: u64) -> Result<Paged<Product>> {
        let client = self.client().await?;
        let w = Window { offset, limit };
        paged(
            &client,
            PRODUCT_SELECT,
            "",
            "name COLLATE \"C\"",
            &[],
            w,
            |r| Ok(product_row(r)),
        )
        .await
    }

    pub(crate) async fn get_product(&self, name: &str) -> Result<Product> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!("{PRODUCT_SELECT} WHERE name = $1"))
            .await
            .map_err(pg_err)?;
        client
            .query_opt(&stmt, &[&name])
            .await
            .map_err(pg_err)?
            .map(|r| product_row(&r))
            .ok_or_else(|| StoreError::NotFound {
                entity: Entity::Product,
                key: name.into(),
                field: None,
            })
    }

    pub(crate) async fn create_release(
        &self,
        new: &NewRelease,
        actor: &str,
        now: Timestamp,
    ) -> Result<Release> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let product_id = product_id(&tx, &new.product_name).await?;
        let stmt = tx
            .prepare_cached(
                "INSERT INTO releases (product_id, version, status, description, created_at, updated_at, created_by)
                 VALUES ($1, $2, 'draft', $3, $4, $4, $5) RETURNING id",
            )
            .await
            .map_err(pg_err)?;
        let row = tx
            .query_one(
                &stmt,
                &[&product_id, &new.version, &new.description, &now, &actor],
            )
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict {
                        entity: Entity::Release,
                        key: format!("{}@{}", new.product_name, new.version),
                    }
                } else if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
                    StoreError::NotFound {
                        entity: Entity::Product,
                        key: new.product_name.clone(),
                        field: Some("product_name".into()),
                    }
                } else {
                    pg_err(e)
                }
            })?;
        let r = Release {
            id: row.get(0),
            product_id,
            product_name: new.product_name.clone(),
            version: new.version.clone(),
            status: ReleaseStatus::Draft,
            description: new.description.clone(),
            created_at: now,
            updated_at: now,
            released_at: None,
            created_by: Some(actor.to_string()),
        };
        canary::insert_event(&tx, &stamp(release_created(&r), actor, now)).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(r)
    }

    pub(crate) async fn list_releases(
        &self,
        product: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Paged<Release>> {
        let client = self.client().await?;
        let pid = product_id(&client, product).await?;
        let order = "r.created_at DESC, r.id DESC";
        paged(
            &client,
            RELEASE_SELECT,
            "WHERE r.product_id = $1",
            order,
            &[&pid],
            Window { offset, limit },
            release_row,
        )
        .await
    }

    pub(crate) async fn release_by_version(
        &self,
        product: &str,
        version: &str,
    ) -> Result<Option<Release>> {
        let client = self.client().await?;
        release_by_version_on(&client, product, version).await
    }

    pub(crate) async fn get_release(&self, id: i64) -> Result<Release> {
        let client = self.client().await?;
        release_by_id(&client, id, false).await
    }

    pub(crate) async fn update_release(
        &self,
        id: i64,
        patch: &ReleasePatch,
        actor: &str,
        now: Timestamp,
    ) -> Result<Release> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let (r, _) = update_release_on(&tx, id, patch, actor, now).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(r)
    }

    pub(crate) async fn latest_stable(&self, product: &str) -> Result<Release> {
        let client = self.client().await?;
        let pid = product_id(&client, product).await?;
        let stmt = client
            .prepare_cached(&format!(
                "{RELEASE_SELECT} WHERE r.product_id = $1 AND r.status = 'released'"
            ))
            .await
            .map_err(pg_err)?;
        let released: Vec<Release> = client
            .query(&stmt, &[&pid])
            .await
            .map_err(pg_err)?
            .iter()
            .map(release_row)
            .collect::<Result<_>>()?;
        serin_core::latest_stable(&released)
            .cloned()
            .ok_or_else(|| StoreError::NoStableRelease {
                product: product.to_string(),
            })
    }

    pub(crate) async fn record_signals(
        &self,
        signals: Vec<NewSignal>,
        now: Timestamp,
        want_rows: bool,
    ) -> Result<Vec<Signal>> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let single = want_rows;
        // Resolve every distinct release named in the batch once.
        let mut cache: HashMap<ReleaseRef<'_>, (i64, String, String)> = HashMap::new();
        let n = signals.len();
        let (mut rid, mut lane, mut name, mut kind, mut value, mut tags, mut ts) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for (i, s) in signals.iter().enumerate() {
            let key = s.release_ref().map_err(|e| {
                if single {
                    e
                } else {
                    e.under(&format!("signals[{i}]"))
                }
            })?;
            let found = match cache.get(&key) {
                Some(hit) => hit.clone(),
                None => {
                    let found = resolve_release(&tx, key, single, i).await?;
                    cache.insert(key, found.clone());
                    found
                }
            };
            rid.push(found.0);
            lane.push(s.lane.as_str());
            name.push(s.name.as_str());
            kind.push(s.kind.as_str());
            value.push(s.value);
            tags.push(if s.tags.is_empty() {
                None
            } else {
                serde_json::to_value(&s.tags).ok()
            });
            ts.push(s.timestamp.map_or(now, serin_core::to_micros));
        }
        let stmt = tx
            .prepare_cached(
                "INSERT INTO signals (release_id, lane, name, kind, value, tags, ts, received_at)
                 SELECT u.rid, u.lane, u.name, u.kind, u.value, u.tags, u.ts, $8
                 FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::jsonb[], $7::timestamptz[])
                      WITH ORDINALITY AS u(rid, lane, name, kind, value, tags, ts, ord)
                 ORDER BY u.ord
                 RETURNING id",
            )
            .await
            .map_err(pg_err)?;
        let ids = tx
            .query(
                &stmt,
                &[&rid, &lane, &name, &kind, &value, &tags, &ts, &now],
            )
            .await
            .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        if !want_rows {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(n);
        for ((s, row), when) in signals.iter().zip(ids.iter()).zip(ts) {
            let key = s.release_ref()?;
            let (release_id, product_name, version) = cache[&key].clone();
            out.push(Signal {
                id: row.get(0),
                release_id,
                product_name,
                version,
                lane: s.lane,
                name: s.name.clone(),
                kind: s.kind,
                value: s.value,
                tags: s.tags.clone(),
                timestamp: when,
            });
        }
        Ok(out)
    }

    pub(crate) async fn list_signals(
        &self,
        release_id: i64,
        q: &SignalQuery,
    ) -> Result<Paged<Signal>> {
        let client = self.client().await?;
        release_by_id(&client, release_id, false).await?;
        let select = "SELECT s.id, s.release_id, p.name, r.version, s.lane, s.name, s.kind, s.value, s.tags, s.ts
                 FROM signals s JOIN releases r ON r.id = s.release_id JOIN products p ON p.id = r.product_id";
        let filter = "WHERE s.release_id = $1 AND ($2::text IS NULL OR s.lane = $2) AND ($3::text IS NULL OR s.name = $3)
                      AND ($4::timestamptz IS NULL OR s.ts >= $4)";
        let lane = q.lane.map(Lane::as_str);
        let w = Window {
            offset: q.offset,
            limit: u64::from(q.limit),
        };
        paged(
            &client,
            select,
            filter,
            "s.ts DESC, s.id DESC",
            &[&release_id, &lane, &q.name, &q.since],
            w,
            signal_row,
        )
        .await
    }
}

async fn resolve_release(
    c: &impl GenericClient,
    key: ReleaseRef<'_>,
    single: bool,
    index: usize,
) -> Result<(i64, String, String)> {
    let (row, missing, field) = match key {
        ReleaseRef::Id(id) => {
            let stmt = c
                .prepare_cached("SELECT r.id, p.name, r.version FROM releases r JOIN products p ON p.id = r.product_id WHERE r.id = $1")
                .await
                .map_err(pg_err)?;
            (
                c.query_opt(&stmt, &[&id]).await.map_err(pg_err)?,
                id.to_string(),
                "release_id",
            )
        }
        ReleaseRef::Named {
            product_name,
            version,
        } => {
            let stmt = c
                .prepare_cached("SELECT r.id, p.name, r.version FROM releases r JOIN products p ON p.id = r.product_id WHERE p.name = $1 AND r.version = $2")
                .await
                .map_err(pg_err)?;
            (
                c.query_opt(&stmt, &[&product_name, &version])
                    .await
                    .map_err(pg_err)?,
                format!("{product_name}@{version}"),
                "version",
            )
        }
    };
    row.map(|r| (r.get(0), r.get(1), r.get(2)))
        .ok_or_else(|| StoreError::NotFound {
            entity: Entity::Release,
            key: missing,
            field: Some(signal_field(single, index, field)),
        })
}

const PRODUCT_SELECT: &str = "SELECT id, name, description, created_at, updated_at FROM products";
pub(crate) const RELEASE_SELECT: &str = "SELECT r.id, r.product_id, p.name, r.version, r.status, r.description, r.created_at, r.updated_at, r.released_at, r.created_by
     FROM releases r JOIN products p ON p.id = r.product_id";

pub(crate) async fn product_id(c: &impl GenericClient, name: &str) -> Result<i64> {
    let stmt = c
        .prepare_cached("SELECT id FROM products WHERE name = $1")
        .await
        .map_err(pg_err)?;
    c.query_opt(&stmt, &[&name])
        .await
        .map_err(pg_err)?
        .map(|r| r.get(0))
        .ok_or_else(|| StoreError::NotFound {
            entity: Entity::Product,
            key: name.into(),
            field: Some("product_name".into()),
        })
}

/// Applies `patch` to release `id` inside the caller's transaction (the row
/// locked); returns the release and the event recorded, if it changed.
pub(crate) async fn update_release_on(
    c: &impl GenericClient,
    id: i64,
    patch: &ReleasePatch,
    actor: &str,
    now: Timestamp,
) -> Result<(Release, Option<serin_core::event::Event>)> {
    let mut r = release_by_id(c, id, true).await?;
    let before = r.clone();
    if !r.apply(patch, now)? {
        return Ok((r, None));
    }
    let stmt = c
        .prepare_cached(
            "UPDATE releases SET status = $2, description = $3, updated_at = $4, released_at = $5 WHERE id = $1",
        )
        .await
        .map_err(pg_err)?;
    c.execute(
        &stmt,
        &[
            &id,
            &r.status.as_str(),
            &r.description,
            &now,
            &r.released_at,
        ],
    )
    .await
    .map_err(pg_err)?;
    let event = stamp(
        release_updated(&before, &r, patch.override_reason.as_deref()),
        actor,
        now,
    );
    canary::insert_event(c, &event).await?;
    Ok((r, Some(event)))
}

/// The release of `product` with `version`.
pub(crate) async fn release_by_version_on(
    c: &impl GenericClient,
    product: &str,
    version: &str,
) -> Result<Option<Release>> {
    let stmt = c
        .prepare_cached(&format!(
            "{RELEASE_SELECT} WHERE p.name = $1 AND r.version = $2"
        ))
        .await
        .map_err(pg_err)?;
    c.query_opt(&stmt, &[&product, &version])
        .await
        .map_err(pg_err)?
        .map(|r| release_row(&r))
        .transpose()
}

pub(crate) async fn release_by_id(
    c: &impl GenericClient,
    id: i64,
    for_update: bool,
) -> Result<Release> {
    let sql = if for_update {
        format!("{RELEASE_SELECT} WHERE r.id = $1 FOR UPDATE OF r")
    } else {
        format!("{RELEASE_SELECT} WHERE r.id = $1")
    };
    let stmt = c.prepare_cached(&sql).await.map_err(pg_err)?;
    match c.query_opt(&stmt, &[&id]).await.map_err(pg_err)? {
        Some(r) => release_row(&r),
        None => Err(StoreError::NotFound {
            entity: Entity::Release,
            key: id.to_string(),
            field: None,
        }),
    }
}

fn product_row(r: &Row) -> Product {
    Product {
        id: r.get(0),
        name: r.get(1),
        description: r.get(2),
        created_at: r.get(3),
        updated_at: r.get(4),
    }
}

pub(crate) fn release_row(r: &Row) -> Result<Release> {
    let status: &str = r.get(4);
    Ok(Release {
        id: r.get(0),
        product_id: r.get(1),
        product_name: r.get(2),
        version: r.get(3),
        status: status
            .parse()
            .map_err(|e: serin_core::DomainError| StoreError::Backend(e.to_string()))?,
        description: r.get(5),
        created_at: r.get(6),
        updated_at: r.get(7),
        released_at: r.get(8),
        created_by: r.get(9),
    })
}

fn signal_row(r: &Row) -> Result<Signal> {
    let lane: &str = r.get(4);
    let kind: &str = r.get(6);
    let tags: Option<serde_json::Value> = r.get(8);
    let tags: BTreeMap<String, String> = match tags {
        Some(t) => serde_json::from_value(t).map_err(|e| StoreError::Backend(e.to_string()))?,
        None => BTreeMap::new(),
    };
    Ok(Signal {
        id: r.get(0),
        release_id: r.get(1),
        product_name: r.get(2),
        version: r.get(3),
        lane: Lane::parse(lane).ok_or_else(|| StoreError::Backend(format!("lane `{lane}`")))?,
        name: r.get(5),
        kind: SignalKind::parse(kind)
            .ok_or_else(|| StoreError::Backend(format!("kind `{kind}`")))?,
        value: r.get(7),
        tags,
        timestamp: r.get(9),
    })
}
