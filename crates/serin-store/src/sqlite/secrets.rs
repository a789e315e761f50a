use rusqlite::{OptionalExtension, params};
use serin_core::Timestamp;
use serin_core::event::EventType;
use serin_core::secret::SecretInfo;

use super::canary::insert_event;
use super::{SqliteStore, instant_of, micros, sql_err};
use crate::secrets::event;
use crate::{Entity, Result, StoreError};

fn info(r: &rusqlite::Row<'_>) -> rusqlite::Result<SecretInfo> {
    Ok(SecretInfo {
        name: r.get(0)?,
        created_at: instant_of(r.get(1)?),
        updated_at: instant_of(r.get(2)?),
        updated_by: r.get(3)?,
    })
}

impl SqliteStore {
    pub(crate) async fn put_secret(
        &self,
        name: &str,
        sealed: Vec<u8>,
        actor: &str,
        now: Timestamp,
    ) -> Result<SecretInfo> {
        let (name, actor) = (name.to_string(), actor.to_string());
        self.writer
            .write(move |c| {
                c.execute(
                    "INSERT INTO secrets (name, sealed, created_at, updated_at, updated_by) VALUES (?1, ?2, ?3, ?3, ?4)
                     ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                    params![name, sealed, micros(now), actor],
                )
                .map_err(sql_err)?;
                insert_event(c, &event(EventType::SecretSet, &name, &actor, now))?;
                c.query_row(
                    "SELECT name, created_at, updated_at, updated_by FROM secrets WHERE name = ?1",
                    [&name],
                    info,
                )
                .map_err(sql_err)
            })
            .await
    }

    pub(crate) async fn list_secrets(&self) -> Result<Vec<SecretInfo>> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT name, created_at, updated_at, updated_by FROM secrets ORDER BY name",
            )
            .and_then(|mut s| s.query_map([], info)?.collect())
            .map_err(sql_err)
        })
        .await
    }

    pub(crate) async fn sealed_secret(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let name = name.to_string();
        self.read(move |c| {
            c.query_row("SELECT sealed FROM secrets WHERE name = ?1", [&name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql_err)
        })
        .await
    }

    pub(crate) async fn delete_secret(
        &self,
        name: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<()> {
        let (name, actor) = (name.to_string(), actor.to_string());
        self.writer
            .write(move |c| {
                let n = c
                    .execute("DELETE FROM secrets WHERE name = ?1", [&name])
                    .map_err(sql_err)?;
                if n == 0 {
                    return Err(StoreError::NotFound {
                        entity: Entity::Secret,
                        key: name,
                        field: None,
                    });
                }
                insert_event(c, &event(EventType::SecretDeleted, &name, &actor, now))
            })
            .await
    }
}
