//! The release manager's storage on SQLite (see `crate::manager`).

use super::page::paged;
use crate::canary::Window;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serin_core::auth::Role;
use serin_core::event::Event;
use serin_core::release::environment::{
    Approval, Decision, Environment, EnvironmentSpec, default_environments, upsert,
};
use serin_core::user::User;
use serin_core::{Release, ReleaseStatus, Timestamp};

use super::canary::insert_event;
use super::{
    RELEASE_SELECT, SqliteStore, instant_of, is_unique_violation, micros, product_id,
    release_by_id, release_row, sql_err,
};
use crate::canary::{Paged, json_err, not_found, stamp};
use crate::manager::{
    Credentials, LiveSession, NewSession, ReleaseFilter, UserChange, decision_name,
    environment_changed, not_a_draft, release_deleted, user_updated, was_deployed,
};
use crate::{Entity, Result, StoreError};

const USER_SELECT: &str = "SELECT id, email, name, role, created_at, last_login, disabled_at, failed_logins, password_hash FROM users";

fn user_row(r: &Row<'_>) -> rusqlite::Result<User> {
    let role: String = r.get(3)?;
    Ok(User {
        id: r.get(0)?,
        email: r.get(1)?,
        name: r.get(2)?,
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        created_at: instant_of(r.get(4)?),
        last_login: r.get::<_, Option<i64>>(5)?.map(instant_of),
        disabled_at: r.get::<_, Option<i64>>(6)?.map(instant_of),
        failed_logins: r.get::<_, i64>(7)? as u32,
    })
}

fn load_user(c: &Connection, id: &str) -> Result<User> {
    c.prepare_cached(&format!("{USER_SELECT} WHERE id = ?1"))
        .and_then(|mut s| s.query_row([id], user_row).optional())
        .map_err(sql_err)?
        .ok_or_else(|| not_found(Entity::User, id))
}

pub(crate) fn load_environments(c: &Connection, product: &str) -> Result<Vec<Environment>> {
    product_id(c, product, "product")?;
    let bodies: Vec<String> = c
        .prepare_cached("SELECT body FROM environments WHERE product = ?1 ORDER BY position")
        .and_then(|mut s| s.query_map([product], |r| r.get(0))?.collect())
        .map_err(sql_err)?;
    if bodies.is_empty() {
        return Ok(default_environments(product));
    }
    bodies
        .iter()
        .map(|b| serde_json::from_str(b).map_err(json_err))
        .collect()
}

fn approval_row(r: &Row<'_>) -> rusqlite::Result<Approval> {
    let (role, decision): (String, String) = (r.get(4)?, r.get(5)?);
    Ok(Approval {
        id: r.get(0)?,
        release_id: r.get(1)?,
        environment: r.get(2)?,
        actor: r.get(3)?,
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        decision: if decision == "rejected" {
            Decision::Rejected
        } else {
            Decision::Approved
        },
        comment: r.get(6)?,
        created_at: instant_of(r.get(7)?),
    })
}

impl SqliteStore {
    pub(crate) async fn create_user(&self, c: Credentials, event: Event) -> Result<User> {
        self.writer
            .write(move |conn| {
                let u = &c.user;
                conn.prepare_cached(
                    "INSERT INTO users (id, email, name, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .and_then(|mut s| {
                    s.execute(params![u.id, u.email, u.name, u.role.as_str(), c.password_hash, micros(u.created_at)])
                })
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        StoreError::Conflict { entity: Entity::User, key: u.email.clone() }
                    } else {
                        sql_err(e)
                    }
                })?;
                insert_event(conn, &event)?;
                Ok(c.user)
            })
            .await
    }

    pub(crate) async fn list_users(&self, offset: u64, limit: u64) -> Result<Paged<User>> {
        self.read(move |c| {
            paged(
                c,
                USER_SELECT,
                "",
                "email",
                &[],
                Window { offset, limit },
                user_row,
            )
        })
        .await
    }

    pub(crate) async fn get_user(&self, id: &str) -> Result<User> {
        let id = id.to_string();
        self.read(move |c| load_user(c, &id)).await
    }

    pub(crate) async fn credentials(&self, email: &str) -> Result<Option<Credentials>> {
        let email = email.to_string();
        self.read(move |c| {
            c.prepare_cached(&format!("{USER_SELECT} WHERE email = ?1"))
                .and_then(|mut s| {
                    s.query_row([&email], |r| {
                        Ok(Credentials {
                            user: user_row(r)?,
                            password_hash: r.get(8)?,
                        })
                    })
                    .optional()
                })
                .map_err(sql_err)
        })
        .await
    }

    pub(crate) async fn update_user(
        &self,
        id: &str,
        change: UserChange,
        actor: &str,
        now: Timestamp,
    ) -> Result<User> {
        let (id, actor) = (id.to_string(), actor.to_string());
        self.writer
            .write(move |c| {
                let old = load_user(c, &id)?;
                let disabled_at = match change.disabled {
                    Some(true) => old.disabled_at.or(Some(now)),
                    Some(false) => None,
                    None => old.disabled_at,
                };
                c.execute(
                    "UPDATE users SET name = COALESCE(?2, name), role = COALESCE(?3, role), disabled_at = ?4,
                         password_hash = COALESCE(?5, password_hash),
                         failed_logins = CASE WHEN ?5 IS NULL THEN failed_logins ELSE 0 END
                     WHERE id = ?1",
                    params![id, change.name, change.role.map(Role::as_str), disabled_at.map(micros), change.password_hash],
                )
                .map_err(sql_err)?;
                if change.ends_sessions() {
                    c.execute(
                        "UPDATE sessions SET ended_at = ?2 WHERE user_id = ?1 AND ended_at IS NULL",
                        params![id, micros(now)],
                    )
                    .map_err(sql_err)?;
                }
                let new = load_user(c, &id)?;
                insert_event(c, &stamp(user_updated(&old, &new, &change), &actor, now))?;
                Ok(new)
            })
            .await
    }

    pub(crate) async fn record_login(
        &self,
        user_id: &str,
        ok: bool,
        now: Timestamp,
    ) -> Result<u32> {
        let id = user_id.to_string();
        self.writer
            .write(move |c| {
                // A success stamps the time; a failure only counts.
                let n: Option<i64> = if ok {
                    c.prepare_cached(
                        "UPDATE users SET failed_logins = 0, last_login = ?2 WHERE id = ?1 RETURNING failed_logins",
                    )
                    .and_then(|mut s| s.query_row(params![id, micros(now)], |r| r.get(0)).optional())
                } else {
                    c.prepare_cached(
                        "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = ?1 RETURNING failed_logins",
                    )
                    .and_then(|mut s| s.query_row([&id], |r| r.get(0)).optional())
                }
                .map_err(sql_err)?;
                Ok(n.unwrap_or(0) as u32)
            })
            .await
    }

    pub(crate) async fn create_session(&self, s: NewSession, event: Event) -> Result<()> {
        self.writer
            .write(move |c| {
                c.prepare_cached(
                    "INSERT INTO sessions (id, token_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .and_then(|mut st| {
                    st.execute(params![s.id, s.token_hash, s.user_id, micros(s.created_at), micros(s.expires_at)])
                })
                .map_err(sql_err)?;
                insert_event(c, &event)
            })
            .await
    }

    pub(crate) async fn live_session(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<LiveSession>> {
        let hash = hash.to_string();
        self.read(move |c| {
            let found: Option<(String, i64, String)> = c
                .prepare_cached(
                    "SELECT id, expires_at, user_id FROM sessions WHERE token_hash = ?1 AND ended_at IS NULL AND expires_at > ?2",
                )
                .and_then(|mut s| {
                    s.query_row(params![hash, micros(now)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .optional()
                })
                .map_err(sql_err)?;
            let Some((id, expires, user_id)) = found else {
                return Ok(None);
            };
            let user = load_user(c, &user_id)?;
            Ok(user.disabled_at.is_none().then(|| LiveSession {
                id,
                expires_at: instant_of(expires),
                user,
            }))
        })
        .await
    }

    pub(crate) async fn end_session(&self, id: &str, event: Event, now: Timestamp) -> Result<()> {
        let id = id.to_string();
        self.writer
            .write(move |c| {
                let n = c
                    .execute(
                        "UPDATE sessions SET ended_at = ?2 WHERE id = ?1 AND ended_at IS NULL",
                        params![id, micros(now)],
                    )
                    .map_err(sql_err)?;
                if n > 0 {
                    insert_event(c, &event)?;
                }
                Ok(())
            })
            .await
    }

    pub(crate) async fn environments(&self, product: &str) -> Result<Vec<Environment>> {
        let product = product.to_string();
        self.read(move |c| load_environments(c, &product)).await
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
        let (product, name, spec, actor) = (
            product.to_string(),
            name.to_string(),
            spec.clone(),
            actor.to_string(),
        );
        self.writer
            .write(move |c| {
                let list = load_environments(c, &product)?;
                let (list, changed) = upsert(list, &product, &name, &spec, create)?;
                c.execute("DELETE FROM environments WHERE product = ?1", [&product])
                    .map_err(sql_err)?;
                for e in &list {
                    let body = serde_json::to_string(e).map_err(json_err)?;
                    c.prepare_cached(
                        "INSERT INTO environments (product, name, position, body) VALUES (?1, ?2, ?3, ?4)",
                    )
                    .and_then(|mut s| s.execute(params![product, e.name, e.position, body]))
                    .map_err(sql_err)?;
                }
                insert_event(c, &stamp(environment_changed(&changed, create), &actor, now))?;
                Ok(changed)
            })
            .await
    }

    pub(crate) async fn record_approval(&self, a: Approval, event: Event) -> Result<Approval> {
        self.writer
            .write(move |c| {
                c.prepare_cached(
                    "INSERT INTO approvals (id, release_id, environment, actor, role, decision, comment, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .and_then(|mut s| {
                    s.execute(params![a.id, a.release_id, a.environment, a.actor, a.role.as_str(), decision_name(a.decision), a.comment, micros(a.created_at)])
                })
                .map_err(sql_err)?;
                insert_event(c, &event)?;
                Ok(a)
            })
            .await
    }

    pub(crate) async fn approvals(
        &self,
        release_id: i64,
        environment: Option<&str>,
    ) -> Result<Vec<Approval>> {
        let env = environment.map(str::to_string);
        self.read(move |c| {
            c.prepare_cached(
                "SELECT id, release_id, environment, actor, role, decision, comment, created_at FROM approvals
                 WHERE release_id = ?1 AND (?2 IS NULL OR environment = ?2) ORDER BY created_at, id",
            )
            .and_then(|mut s| s.query_map(params![release_id, env], approval_row)?.collect())
            .map_err(sql_err)
        })
        .await
    }

    pub(crate) async fn list_all_releases(
        &self,
        f: &ReleaseFilter,
        offset: u64,
        limit: u64,
    ) -> Result<Paged<Release>> {
        let (product, status) = (f.product.clone(), f.status.map(ReleaseStatus::as_str));
        self.read(move |c| {
            let where_ = "WHERE (?1 IS NULL OR p.name = ?1) AND (?2 IS NULL OR r.status = ?2)";
            let order = "r.created_at DESC, r.id DESC";
            paged(
                c,
                RELEASE_SELECT,
                where_,
                order,
                &[&product, &status],
                Window { offset, limit },
                release_row,
            )
        })
        .await
    }

    pub(crate) async fn delete_release(
        &self,
        id: i64,
        actor: &str,
        now: Timestamp,
    ) -> Result<Release> {
        let actor = actor.to_string();
        self.writer
            .write(move |c| {
                let r = release_by_id(c, id)?;
                if r.status != ReleaseStatus::Draft {
                    return Err(not_a_draft(&r));
                }
                let deployed: i64 = c
                    .query_row(
                        "SELECT COUNT(*) FROM deployments WHERE json_extract(body, '$.metadata.release_id') = ?1",
                        [id],
                        |row| row.get(0),
                    )
                    .map_err(sql_err)?;
                if deployed > 0 {
                    return Err(was_deployed(&r));
                }
                c.execute("DELETE FROM signals WHERE release_id = ?1", [id])
                    .map_err(sql_err)?;
                c.execute("DELETE FROM approvals WHERE release_id = ?1", [id])
                    .map_err(sql_err)?;
                c.execute("DELETE FROM releases WHERE id = ?1", [id])
                    .map_err(sql_err)?;
                insert_event(c, &stamp(release_deleted(&r), &actor, now))?;
                Ok(r)
            })
            .await
    }
}
