use deadpool_postgres::GenericClient;
use serin_core::Timestamp;
use serin_core::event::EventType;
use serin_core::secret::SecretInfo;
use tokio_postgres::Row;

use super::canary::insert_event;
use super::{PgStore, pg_err};
use crate::secrets::event;
use crate::{Entity, Result, StoreError};

fn info(r: &Row) -> SecretInfo {
    SecretInfo {
        name: r.get(0),
        created_at: r.get(1),
        updated_at: r.get(2),
        updated_by: r.get(3),
    }
}

impl PgStore {
    pub(crate) async fn put_secret(
        &self,
        name: &str,
        sealed: Vec<u8>,
        actor: &str,
        now: Timestamp,
    ) -> Result<SecretInfo> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let row = tx
            .query_one(
                "INSERT INTO secrets (name, sealed, created_at, updated_at, updated_by) VALUES ($1, $2, $3, $3, $4)
                 ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at, updated_by = excluded.updated_by
                 RETURNING name, created_at, updated_at, updated_by",
                &[&name, &sealed, &now, &actor],
            )
            .await
            .map_err(pg_err)?;
        insert_event(&tx, &event(EventType::SecretSet, name, actor, now)).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(info(&row))
    }

    pub(crate) async fn list_secrets(&self) -> Result<Vec<SecretInfo>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT name, created_at, updated_at, updated_by FROM secrets ORDER BY name",
                &[],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows.iter().map(info).collect())
    }

    pub(crate) async fn sealed_secret(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT sealed FROM secrets WHERE name = $1", &[&name])
            .await
            .map_err(pg_err)?;
        Ok(row.map(|r| r.get(0)))
    }

    pub(crate) async fn delete_secret(
        &self,
        name: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let n = tx
            .execute("DELETE FROM secrets WHERE name = $1", &[&name])
            .await
            .map_err(pg_err)?;
        if n == 0 {
            return Err(StoreError::NotFound {
                entity: Entity::Secret,
                key: name.to_string(),
                field: None,
            });
        }
        insert_event(&tx, &event(EventType::SecretDeleted, name, actor, now)).await?;
        tx.commit().await.map_err(pg_err)
    }
}
