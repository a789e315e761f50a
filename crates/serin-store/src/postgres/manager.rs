//! The release manager's storage on PostgreSQL (see `crate::manager`).

use super::page::paged;
use crate::canary::Window;
use deadpool_postgres::GenericClient;
use serin_core::auth::Role;
use serin_core::event::Event;
use serin_core::release::environment::{
    Approval, Decision, Environment, EnvironmentSpec, default_environments, upsert,
};
use serin_core::user::User;
use serin_core::{Release, ReleaseStatus, Timestamp};
use tokio_postgres::Row;

use super::canary::insert_event;
use super::{
    PgStore, RELEASE_SELECT, is_unique_violation, json_col, pg_err, product_id, release_by_id,
    release_row,
};
use crate::canary::{Paged, json_err, not_found, stamp};
use crate::manager::{
    Credentials, LiveSession, NewSession, ReleaseFilter, UserChange, decision_name,
    environment_changed, not_a_draft, release_deleted, user_updated, was_deployed,
};
use crate::{Entity, Result, StoreError};

const USER_SELECT: &str = "SELECT id, email, name, role, created_at, last_login, disabled_at, failed_logins, password_hash FROM users";

fn user_row(r: &Row) -> User {
    let role: &str = r.get(3);
    User {
        id: r.get(0),
        email: r.get(1),
        name: r.get(2),
        role: Role::parse(role).unwrap_or(Role::Viewer),
        created_at: r.get(4),
        last_login: r.get(5),
        disabled_at: r.get(6),
        failed_logins: r.get::<_, i32>(7) as u32,
    }
}

async fn load_user(c: &impl GenericClient, id: &str, lock: bool) -> Result<User> {
    let sql = if lock {
        format!("{USER_SELECT} WHERE id = $1 FOR UPDATE")
    } else {
        format!("{USER_SELECT} WHERE id = $1")
    };
    c.query_opt(&sql, &[&id])
        .await
        .map_err(pg_err)?
        .map(|r| user_row(&r))
        .ok_or_else(|| not_found(Entity::User, id))
}

pub(crate) async fn load_environments(
    c: &impl GenericClient,
    product: &str,
) -> Result<Vec<Environment>> {
    let rows = c
        .query(
            "SELECT body FROM environments WHERE product = $1 ORDER BY position",
            &[&product],
        )
        .await
        .map_err(pg_err)?;
    if rows.is_empty() {
        return Ok(default_environments(product));
    }
    rows.into_iter().map(|r| json_col(&r, 0)).collect()
}

fn approval_row(r: &Row) -> Approval {
    let (role, decision): (&str, &str) = (r.get(4), r.get(5));
    Approval {
        id: r.get(0),
        release_id: r.get(1),
        environment: r.get(2),
        actor: r.get(3),
        role: Role::parse(role).unwrap_or(Role::Viewer),
        decision: if decision == "rejected" {
            Decision::Rejected
        } else {
            Decision::Approved
        },
        comment: r.get(6),
        created_at: r.get(7),
    }
}

impl PgStore {
    pub(crate) async fn create_user(&self, c: Credentials, event: Event) -> Result<User> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let u = &c.user;
        tx.execute(
            "INSERT INTO users (id, email, name, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&u.id, &u.email, &u.name, &u.role.as_str(), &c.password_hash, &u.created_at],
        )
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict {
                    entity: Entity::User,
                    key: u.email.clone(),
                }
            } else {
                pg_err(e)
            }
        })?;
        insert_event(&tx, &event).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(c.user)
    }

    pub(crate) async fn list_users(&self, offset: u64, limit: u64) -> Result<Paged<User>> {
        let client = self.client().await?;
        paged(
            &client,
            USER_SELECT,
            "",
            "email",
            &[],
            Window { offset, limit },
            |r| Ok(user_row(r)),
        )
        .await
    }

    pub(crate) async fn get_user(&self, id: &str) -> Result<User> {
        let client = self.client().await?;
        load_user(&client, id, false).await
    }

    pub(crate) async fn credentials(&self, email: &str) -> Result<Option<Credentials>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!("{USER_SELECT} WHERE email = $1"))
            .await
            .map_err(pg_err)?;
        Ok(client
            .query_opt(&stmt, &[&email])
            .await
            .map_err(pg_err)?
            .map(|r| Credentials {
                user: user_row(&r),
                password_hash: r.get(8),
            }))
    }

    pub(crate) async fn update_user(
        &self,
        id: &str,
        change: UserChange,
        actor: &str,
        now: Timestamp,
    ) -> Result<User> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let old = load_user(&tx, id, true).await?;
        let disabled_at = match change.disabled {
            Some(true) => old.disabled_at.or(Some(now)),
            Some(false) => None,
            None => old.disabled_at,
        };
        tx.execute(
            "UPDATE users SET name = COALESCE($2, name), role = COALESCE($3, role), disabled_at = $4,
                 password_hash = COALESCE($5, password_hash),
                 failed_logins = CASE WHEN $5::text IS NULL THEN failed_logins ELSE 0 END
             WHERE id = $1",
            &[
                &id,
                &change.name,
                &change.role.map(Role::as_str),
                &disabled_at,
                &change.password_hash,
            ],
        )
        .await
        .map_err(pg_err)?;
        if change.ends_sessions() {
            tx.execute(
                "UPDATE sessions SET ended_at = $2 WHERE user_id = $1 AND ended_at IS NULL",
                &[&id, &now],
            )
            .await
            .map_err(pg_err)?;
        }
        let new = load_user(&tx, id, false).await?;
        insert_event(&tx, &stamp(user_updated(&old, &new, &change), actor, now)).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(new)
    }

    pub(crate) async fn record_login(
        &self,
        user_id: &str,
        ok: bool,
        now: Timestamp,
    ) -> Result<u32> {
        let client = self.client().await?;
        let row = if ok {
            client
                .query_opt(
                    "UPDATE users SET failed_logins = 0, last_login = $2 WHERE id = $1 RETURNING failed_logins",
                    &[&user_id, &now],
                )
                .await
        } else {
            client
                .query_opt(
                    "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = $1 RETURNING failed_logins",
                    &[&user_id],
                )
                .await
        }
        .map_err(pg_err)?;
        Ok(row.map_or(0, |r| r.get::<_, i32>(0) as u32))
    }

    pub(crate) async fn create_session(&self, s: NewSession, event: Event) -> Result<()> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        tx.execute(
            "INSERT INTO sessions (id, token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            &[&s.id, &s.token_hash, &s.user_id, &s.created_at, &s.expires_at],
        )
        .await
        .map_err(pg_err)?;
        insert_event(&tx, &event).await?;
        tx.commit().await.map_err(pg_err)
    }

    pub(crate) async fn live_session(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<LiveSession>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT s.id, s.expires_at, u.id, u.email, u.name, u.role, u.created_at, u.last_login, u.disabled_at, u.failed_logins
                 FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = $1 AND s.ended_at IS NULL AND s.expires_at > $2 AND u.disabled_at IS NULL",
            )
            .await
            .map_err(pg_err)?;
        Ok(client
            .query_opt(&stmt, &[&hash, &now])
            .await
            .map_err(pg_err)?
            .map(|r| {
                let role: &str = r.get(5);
                LiveSession {
                    id: r.get(0),
                    expires_at: r.get(1),
                    user: User {
                        id: r.get(2),
                        email: r.get(3),
                        name: r.get(4),
                        role: Role::parse(role).unwrap_or(Role::Viewer),
                        created_at: r.get(6),
                        last_login: r.get(7),
                        disabled_at: r.get(8),
                        failed_logins: r.get::<_, i32>(9) as u32,
                    },
                }
            }))
    }

    pub(crate) async fn end_session(&self, id: &str, event: Event, now: Timestamp) -> Result<()> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let n = tx
            .execute(
                "UPDATE sessions SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL",
                &[&id, &now],
            )
            .await
            .map_err(pg_err)?;
        if n > 0 {
            insert_event(&tx, &event).await?;
        }
        tx.commit().await.map_err(pg_err)
    }

    pub(crate) async fn environments(&self, product: &str) -> Result<Vec<Environment>> {
        let client = self.client().await?;
        product_id(&client, product).await?;
        load_environments(&client, product).await
    }

    pub(crate) async fn change_environment(
        &self,
        product: &str,
        name: &str,
        spec: &EnvironmentSpec,
        create: bool,
        actor: &str,
        now: Timestamp,
    ) -> Result<Environment> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        // The product's row serialises changes of its environments.
        let locked = tx
            .query_opt(
                "SELECT id FROM products WHERE name = $1 FOR UPDATE",
                &[&product],
            )
            .await
            .map_err(pg_err)?;
        if locked.is_none() {
            return Err(not_found(Entity::Product, product));
        }
        let list = load_environments(&tx, product).await?;
        let (list, changed) = upsert(list, product, name, spec, create)?;
        tx.execute("DELETE FROM environments WHERE product = $1", &[&product])
            .await
            .map_err(pg_err)?;
        for e in &list {
            let body = serde_json::to_value(e).map_err(json_err)?;
            tx.execute(
                "INSERT INTO environments (product, name, position, body) VALUES ($1, $2, $3, $4)",
                &[&product, &e.name, &(e.position as i32), &body],
            )
            .await
            .map_err(pg_err)?;
        }
        insert_event(
            &tx,
            &stamp(environment_changed(&changed, create), actor, now),
        )
        .await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(changed)
    }

    pub(crate) async fn record_approval(&self, a: Approval, event: Event) -> Result<Approval> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        tx.execute(
            "INSERT INTO approvals (id, release_id, environment, actor, role, decision, comment, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &a.id,
                &a.release_id,
                &a.environment,
                &a.actor,
                &a.role.as_str(),
                &decision_name(a.decision),
                &a.comment,
                &a.created_at,
            ],
        )
        .await
        .map_err(pg_err)?;
        insert_event(&tx, &event).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(a)
    }

    pub(crate) async fn approvals(
        &self,
        release_id: i64,
        environment: Option<&str>,
    ) -> Result<Vec<Approval>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, release_id, environment, actor, role, decision, comment, created_at FROM approvals
                 WHERE release_id = $1 AND ($2::text IS NULL OR environment = $2) ORDER BY created_at, id",
                &[&release_id, &environment],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows.iter().map(approval_row).collect())
    }

    pub(crate) async fn list_all_releases(
        &self,
        f: &ReleaseFilter,
        offset: u64,
        limit: u64,
    ) -> Result<Paged<Release>> {
        let client = self.client().await?;
        let status = f.status.map(ReleaseStatus::as_str);
        let where_ =
            "WHERE ($1::text IS NULL OR p.name = $1) AND ($2::text IS NULL OR r.status = $2)";
        let order = "r.created_at DESC, r.id DESC";
        paged(
            &client,
            RELEASE_SELECT,
            where_,
            order,
            &[&f.product, &status],
            Window { offset, limit },
            release_row,
        )
        .await
    }

    pub(crate) async fn delete_release(
        &self,
        id: i64,
        actor: &str,
        now: Timestamp,
    ) -> Result<Release> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let r = release_by_id(&tx, id, true).await?;
        if r.status != ReleaseStatus::Draft {
            return Err(not_a_draft(&r));
        }
        let deployed: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM deployments WHERE body->'metadata'->>'release_id' = $1",
                &[&id.to_string()],
            )
            .await
            .map_err(pg_err)?
            .get(0);
        if deployed > 0 {
            return Err(was_deployed(&r));
        }
        tx.execute("DELETE FROM signals WHERE release_id = $1", &[&id])
            .await
            .map_err(pg_err)?;
        tx.execute("DELETE FROM approvals WHERE release_id = $1", &[&id])
            .await
            .map_err(pg_err)?;
        tx.execute("DELETE FROM releases WHERE id = $1", &[&id])
            .await
            .map_err(pg_err)?;
        insert_event(&tx, &stamp(release_deleted(&r), actor, now)).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(r)
    }
}
