//! API keys on PostgreSQL: stored as hashes, listed, revoked.

use super::*;
use crate::canary::Window;
#[allow(unused_imports)]
use crate::postgres::page::paged;

fn key_row(r: &Row) -> ApiKeyRecord {
    let role: &str = r.get(2);
    ApiKeyRecord {
        id: r.get(0),
        name: r.get(1),
        role: serin_core::auth::Role::parse(role).unwrap_or(serin_core::auth::Role::Viewer),
        key_hash: r.get(3),
        prefix: r.get(4),
        created_at: r.get(5),
        created_by: r.get(6),
        revoked_at: r.get(7),
    }
}

const KEY_SELECT: &str =
    "SELECT id, name, role, key_hash, prefix, created_at, created_by, revoked_at FROM api_keys";

impl PgStore {
    pub(crate) async fn create_api_key(
        &self,
        key: ApiKeyRecord,
        event: Event,
    ) -> Result<ApiKeyRecord> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        tx.execute(
            "INSERT INTO api_keys (id, name, role, key_hash, prefix, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&key.id, &key.name, &key.role.as_str(), &key.key_hash, &key.prefix, &key.created_at, &key.created_by],
        )
        .await
        .map_err(|e| {
            if crate::postgres::is_unique_violation(&e) {
                StoreError::Conflict { entity: Entity::ApiKey, key: key.name.clone() }
            } else {
                pg_err(e)
            }
        })?;
        insert_event(&tx, &event).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(key)
    }

    pub(crate) async fn list_api_keys(
        &self,
        offset: u64,
        limit: u64,
    ) -> Result<Paged<ApiKeyRecord>> {
        let client = self.client().await?;
        let order = "created_at DESC, id";
        paged(
            &client,
            KEY_SELECT,
            "",
            order,
            &[],
            Window { offset, limit },
            |r| Ok(key_row(r)),
        )
        .await
    }

    pub(crate) async fn revoke_api_key(
        &self,
        id: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<ApiKeyRecord> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let mut key = tx
            .query_opt(&format!("{KEY_SELECT} WHERE id = $1 FOR UPDATE"), &[&id])
            .await
            .map_err(pg_err)?
            .map(|r| key_row(&r))
            .ok_or_else(|| not_found(Entity::ApiKey, id))?;
        if key.revoked_at.is_none() {
            tx.execute(
                "UPDATE api_keys SET revoked_at = $2 WHERE id = $1",
                &[&id, &now],
            )
            .await
            .map_err(pg_err)?;
            key.revoked_at = Some(now);
            insert_event(&tx, &stamp(revoked_event(&key), actor, now)).await?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(key)
    }

    pub(crate) async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!("{KEY_SELECT} WHERE key_hash = $1"))
            .await
            .map_err(pg_err)?;
        Ok(client
            .query_opt(&stmt, &[&hash])
            .await
            .map_err(pg_err)?
            .map(|r| key_row(&r)))
    }

    pub(crate) async fn count_api_keys(&self) -> Result<u64> {
        let client = self.client().await?;
        let n: i64 = client
            .query_one("SELECT COUNT(*) FROM api_keys", &[])
            .await
            .map_err(pg_err)?
            .get(0);
        Ok(n as u64)
    }
}
