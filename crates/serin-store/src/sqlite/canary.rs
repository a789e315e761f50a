//! The canary side on SQLite. Writes run on the writer thread (so each
//! read-check-write is one transaction); reads on a reader connection.

use super::page::paged;
use crate::canary::Window;
use rusqlite::{Connection, OptionalExtension, params};
use serin_core::canary::Deployment;
use serin_core::canary::metrics::LaneWindow;
use serin_core::canary::worker::{Heartbeat, Worker, WorkerStatus};
use serin_core::event::{Event, EventType, NewEvent};
use serin_core::{Lane, Timestamp};

use super::{SqliteStore, instant_of, micros, sql_err};
use crate::canary::{
    ApiKeyRecord, DeploymentChange, DeploymentFilter, EventFilter, Observation, Paged,
    apply_change, attribute, beat, check_job_queues, is_routed, job_observations, json_err,
    not_found, revoked_event, stamp, status_change, tenant_key, windows_from,
};
use crate::{Entity, Result, StoreError};

/// Stamps new events with the actor and time and records them.
fn record(c: &Connection, new: Vec<NewEvent>, actor: &str, now: Timestamp) -> Result<Vec<Event>> {
    let events: Vec<Event> = new.into_iter().map(|e| stamp(e, actor, now)).collect();
    for e in &events {
        insert_event(c, e)?;
    }
    Ok(events)
}

pub(crate) fn insert_event(c: &Connection, e: &Event) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO events (id, deployment_id, kind, resource_type, resource_id, actor, message, data, ts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .and_then(|mut s| {
        s.execute(params![
            e.id,
            e.deployment_id,
            e.kind.as_str(),
            e.resource_type,
            e.resource_id,
            e.actor,
            e.message,
            e.data.to_string(),
            micros(e.timestamp)
        ])
    })
    .map_err(sql_err)?;
    Ok(())
}

fn load_deployment(c: &Connection, id: &str) -> Result<Deployment> {
    let body: Option<String> = c
        .prepare_cached("SELECT body FROM deployments WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
        .map_err(sql_err)?;
    serde_json::from_str(&body.ok_or_else(|| not_found(Entity::Deployment, id))?).map_err(json_err)
}

/// Makes `routes` hold the target's newest routed deployment and moves the
/// route generation, inside the caller's transaction.
fn reroute(c: &Connection, queue: &str, tenant: &str) -> Result<()> {
    c.prepare_cached("DELETE FROM routes WHERE queue_name = ?1 AND tenant_key = ?2")
        .and_then(|mut s| s.execute(params![queue, tenant]))
        .map_err(sql_err)?;
    c.prepare_cached(
        "INSERT INTO routes (queue_name, tenant_key, deployment_id)
         SELECT queue_name, tenant_key, id FROM deployments
          WHERE routed = 1 AND queue_name = ?1 AND tenant_key = ?2
          ORDER BY start_time DESC, id DESC LIMIT 1",
    )
    .and_then(|mut s| s.execute(params![queue, tenant]))
    .map_err(sql_err)?;
    c.prepare_cached("UPDATE route_generation SET n = n + 1 WHERE id = 1")
        .and_then(|mut s| s.execute([]))
        .map_err(sql_err)?;
    Ok(())
}

fn save_deployment(
    c: &Connection,
    d: &Deployment,
    old_revision: u64,
    was_routed: bool,
) -> Result<()> {
    let body = serde_json::to_string(d).map_err(json_err)?;
    let routed = is_routed(d);
    let n = c
        .prepare_cached("UPDATE deployments SET status = ?2, live = ?3, revision = ?4, body = ?5, routed = ?7 WHERE id = ?1 AND revision = ?6")
        .and_then(|mut s| {
            s.execute(params![d.id, d.status.as_str(), d.status.is_live(), d.revision, body, old_revision, routed])
        })
        .map_err(sql_err)?;
    if n == 1 && (routed || was_routed) {
        reroute(c, &d.queue_name, &tenant_key(d.tenant_id.as_deref()))?;
    }
    if n == 1 {
        Ok(())
    } else {
        Err(StoreError::RevisionMismatch {
            expected: old_revision,
            actual: None,
        })
    }
}

fn load_worker(c: &Connection, id: &str) -> Result<Option<Worker>> {
    let body: Option<String> = c
        .prepare_cached("SELECT body FROM workers WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
        .map_err(sql_err)?;
    body.map(|b| serde_json::from_str(&b).map_err(json_err))
        .transpose()
}

fn save_worker(c: &Connection, w: &Worker) -> Result<()> {
    let body = serde_json::to_string(w).map_err(json_err)?;
    c.prepare_cached(
        "INSERT INTO workers (id, lane, status, last_seen, body) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET lane = ?2, status = ?3, last_seen = ?4, body = ?5",
    )
    .and_then(|mut s| {
        s.execute(params![
            w.id,
            w.lane.as_str(),
            w.status.as_str(),
            micros(w.last_seen),
            body
        ])
    })
    .map_err(sql_err)?;
    Ok(())
}

fn insert_observations(c: &Connection, deployment_id: &str, obs: &[Observation]) -> Result<()> {
    let mut s = c
        .prepare_cached("INSERT INTO observations (deployment_id, lane, name, kind, value, ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        .map_err(sql_err)?;
    for o in obs {
        s.execute(params![
            deployment_id,
            o.lane.as_str(),
            o.name,
            o.kind.as_str(),
            o.value,
            micros(o.ts)
        ])
        .map_err(sql_err)?;
    }
    Ok(())
}

fn key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    let role: String = r.get(2)?;
    let revoked: Option<i64> = r.get(7)?;
    Ok(ApiKeyRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        role: serin_core::auth::Role::parse(&role).unwrap_or(serin_core::auth::Role::Viewer),
        key_hash: r.get(3)?,
        prefix: r.get(4)?,
        created_at: instant_of(r.get(5)?),
        created_by: r.get(6)?,
        revoked_at: revoked.map(instant_of),
    })
}

const KEY_SELECT: &str =
    "SELECT id, name, role, key_hash, prefix, created_at, created_by, revoked_at FROM api_keys";

impl SqliteStore {
    pub(crate) async fn create_deployment(
        &self,
        d: Deployment,
        event: Event,
        max_live: Option<u32>,
    ) -> Result<(Deployment, Vec<Event>)> {
        self.writer
            .write(move |c| {
                let tenant = tenant_key(d.tenant_id.as_deref());
                let existing: Option<String> = c
                    .prepare_cached("SELECT id FROM deployments WHERE queue_name = ?1 AND tenant_key = ?2 AND live = 1")
                    .and_then(|mut s| s.query_row(params![d.queue_name, tenant], |r| r.get(0)).optional())
                    .map_err(sql_err)?;
                if let Some(id) = existing {
                    return Err(StoreError::Conflict { entity: Entity::Deployment, key: id });
                }
                if let Some(limit) = max_live {
                    let live: i64 = c
                        .prepare_cached("SELECT COUNT(*) FROM deployments WHERE tenant_key = ?1 AND live = 1")
                        .and_then(|mut s| s.query_row([&tenant], |r| r.get(0)))
                        .map_err(sql_err)?;
                    if live >= i64::from(limit) {
                        return Err(StoreError::ConcurrencyLimit { tenant: d.tenant_id.clone(), limit });
                    }
                }
                let body = serde_json::to_string(&d).map_err(json_err)?;
                c.prepare_cached(
                    "INSERT INTO deployments (id, queue_name, tenant_key, status, live, revision, start_time, body, routed)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .and_then(|mut s| {
                    s.execute(params![d.id, d.queue_name, tenant, d.status.as_str(), d.status.is_live(), d.revision, micros(d.start_time), body, is_routed(&d)])
                })
                .map_err(sql_err)?;
                if is_routed(&d) {
                    reroute(c, &d.queue_name, &tenant)?;
                }
                insert_event(c, &event)?;
                Ok((d, vec![event]))
            })
            .await
    }

    pub(crate) async fn get_deployment(&self, id: &str) -> Result<Deployment> {
        let id = id.to_string();
        self.read(move |c| load_deployment(c, &id)).await
    }

    pub(crate) async fn list_deployments(
        &self,
        f: &DeploymentFilter,
        offset: u64,
        limit: u64,
    ) -> Result<Paged<Deployment>> {
        let f = f.clone();
        self.read(move |c| {
            let status = f.status.map(|s| s.as_str());
            let tenant = f.tenant_id.as_deref().map(|t| tenant_key(Some(t)));
            let where_ = "WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR queue_name = ?2) AND (?3 IS NULL OR tenant_key = ?3)
                AND (?4 IS NULL OR json_extract(body, '$.product') = ?4) AND (?5 IS NULL OR json_extract(body, '$.environment') = ?5)";
            let order = "start_time DESC, id DESC";
            let args: [&dyn rusqlite::ToSql; 5] = [&status, &f.queue_name, &tenant, &f.product, &f.environment];
            paged(c, "SELECT body FROM deployments", where_, order, &args, Window { offset, limit }, |r| r.get::<_, String>(0))?
                .try_map(|b| serde_json::from_str(&b).map_err(json_err))
        })
        .await
    }

    pub(crate) async fn live_deployment(
        &self,
        queue: &str,
        tenant: Option<&str>,
    ) -> Result<Option<Deployment>> {
        let (queue, tenant) = (queue.to_string(), tenant_key(tenant));
        self.read(move |c| {
            let body: Option<String> = c
                .prepare_cached("SELECT body FROM deployments WHERE queue_name = ?1 AND tenant_key = ?2 AND live = 1")
                .and_then(|mut s| s.query_row(params![queue, tenant], |r| r.get(0)).optional())
                .map_err(sql_err)?;
            body.map(|b| serde_json::from_str(&b).map_err(json_err)).transpose()
        })
        .await
    }

    pub(crate) async fn update_deployment(
        &self,
        id: &str,
        expected: Option<u64>,
        change: DeploymentChange,
        actor: &str,
        now: Timestamp,
    ) -> Result<(Deployment, Vec<Event>)> {
        let (id, actor) = (id.to_string(), actor.to_string());
        self.writer
            .write(move |c| {
                let mut d = load_deployment(c, &id)?;
                let (was_routed, was) = (is_routed(&d), d.status);
                let Some((old, new_events)) = apply_change(&mut d, expected, change)? else {
                    return Ok((d, Vec::new()));
                };
                save_deployment(c, &d, old, was_routed)?;
                let effect = serin_core::release::effect::candidate(was, &d, &new_events);
                let mut events = record(c, new_events, &actor, now)?;
                if let Some(effect) = effect {
                    events.extend(super::release_effect::apply_or_log(
                        c, &effect, &d, &actor, now,
                    )?);
                }
                Ok((d, events))
            })
            .await
    }

    pub(crate) async fn delete_deployment(
        &self,
        id: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<Event> {
        let (id, actor) = (id.to_string(), actor.to_string());
        self.writer
            .write(move |c| {
                let d = load_deployment(c, &id)?;
                let event = stamp(d.deletion()?, &actor, now);
                c.execute("DELETE FROM deployments WHERE id = ?1", [&id])
                    .map_err(sql_err)?;
                if is_routed(&d) {
                    reroute(c, &d.queue_name, &tenant_key(d.tenant_id.as_deref()))?;
                }
                c.execute("DELETE FROM observations WHERE deployment_id = ?1", [&id])
                    .map_err(sql_err)?;
                c.execute("DELETE FROM outside_calls WHERE deployment_id = ?1", [&id])
                    .map_err(sql_err)?;
                insert_event(c, &event)?;
                Ok(event)
            })
            .await
    }

    pub(crate) async fn append_events(&self, events: Vec<Event>) -> Result<Vec<Event>> {
        self.writer
            .write(move |c| {
                for e in &events {
                    insert_event(c, e)?;
                }
                Ok(events)
            })
            .await
    }

    pub(crate) async fn list_events(
        &self,
        f: &EventFilter,
        offset: u64,
        limit: u64,
    ) -> Result<Paged<Event>> {
        let f = f.clone();
        self.read(move |c| {
            let where_ = "WHERE (?1 IS NULL OR deployment_id = ?1) AND (?2 IS NULL OR resource_type = ?2)
                AND (?3 IS NULL OR resource_id = ?3) AND (?4 IS NULL OR actor = ?4) AND (?5 IS NULL OR kind = ?5)
                AND (?6 IS NULL OR ts >= ?6) AND (?7 IS NULL OR ts < ?7)";
            let (since, until) = (f.since.map(micros), f.until.map(micros));
            let args: [&dyn rusqlite::ToSql; 7] =
                [&f.deployment_id, &f.resource_type, &f.resource_id, &f.actor, &f.action, &since, &until];
            let select = "SELECT id, deployment_id, kind, resource_type, resource_id, actor, message, data, ts FROM events";
            paged(c, select, where_, "seq DESC", &args, Window { offset, limit }, |r| {
                let kind: String = r.get(2)?;
                let data: String = r.get(7)?;
                Ok(Event {
                    id: r.get(0)?,
                    deployment_id: r.get(1)?,
                    kind: EventType::parse(&kind).unwrap_or(EventType::DeploymentCreated),
                    resource_type: r.get(3)?,
                    resource_id: r.get(4)?,
                    actor: r.get(5)?,
                    message: r.get(6)?,
                    data: serde_json::from_str(&data).unwrap_or_default(),
                    timestamp: instant_of(r.get(8)?),
                })
            })
        })
        .await
    }

    pub(crate) async fn upsert_worker(
        &self,
        w: Worker,
        actor: &str,
        now: Timestamp,
    ) -> Result<(Worker, bool, Vec<Event>)> {
        let actor = actor.to_string();
        self.writer
            .write(move |c| {
                let old = load_worker(c, &w.id)?;
                let created = old.is_none();
                let mut w = w;
                if let Some(old) = old {
                    w.metrics = old.metrics;
                }
                w.last_seen = now;
                save_worker(c, &w)?;
                let e = stamp(
                    NewEvent {
                        kind: EventType::WorkerRegistered,
                        resource_type: "worker",
                        resource_id: w.id.clone(),
                        deployment_id: None,
                        message: format!("Worker {} registered in the {} lane (version {})", w.id, w.lane, w.version),
                        data: serde_json::json!({"lane": w.lane, "version": w.version, "queues": w.queues, "re_registered": !created}),
                    },
                    &actor,
                    now,
                );
                insert_event(c, &e)?;
                Ok((w, created, vec![e]))
            })
            .await
    }

    pub(crate) async fn get_worker(&self, id: &str) -> Result<Worker> {
        let id = id.to_string();
        self.read(move |c| load_worker(c, &id)?.ok_or_else(|| not_found(Entity::Worker, &id)))
            .await
    }

    pub(crate) async fn list_workers(
        &self,
        lane: Option<Lane>,
        offset: u64,
        limit: u64,
    ) -> Result<Paged<Worker>> {
        self.read(move |c| {
            let lane = lane.map(Lane::as_str);
            let w = Window { offset, limit };
            paged(
                c,
                "SELECT body FROM workers",
                "WHERE (?1 IS NULL OR lane = ?1)",
                "id",
                &[&lane],
                w,
                |r| r.get::<_, String>(0),
            )?
            .try_map(|b| serde_json::from_str(&b).map_err(json_err))
        })
        .await
    }

    pub(crate) async fn set_worker_status(
        &self,
        id: &str,
        status: WorkerStatus,
        actor: &str,
        now: Timestamp,
    ) -> Result<(Worker, Vec<Event>)> {
        let (id, actor) = (id.to_string(), actor.to_string());
        self.writer
            .write(move |c| {
                let mut w = load_worker(c, &id)?.ok_or_else(|| not_found(Entity::Worker, &id))?;
                let changes = status_change(&mut w, status);
                save_worker(c, &w)?;
                let events = record(c, changes, &actor, now)?;
                Ok((w, events))
            })
            .await
    }

    pub(crate) async fn heartbeat(
        &self,
        id: &str,
        hb: Heartbeat,
        now: Timestamp,
    ) -> Result<(Worker, Vec<Event>)> {
        let id = id.to_string();
        self.writer
            .write(move |c| {
                let mut w = load_worker(c, &id)?.ok_or_else(|| not_found(Entity::Worker, &id))?;
                check_job_queues(&w, &hb)?;
                                let changes = beat(&mut w, &hb, now);
                save_worker(c, &w)?;
                let events = record(c, changes, &w.id, now)?;
                let mut queues: Vec<&str> = hb.job_results.iter().map(|j| j.queue.as_str()).collect();
                queues.sort_unstable();
                queues.dedup();
                for q in queues {
                    let live: Vec<(String, String)> = c
                        .prepare_cached("SELECT id, tenant_key FROM deployments WHERE queue_name = ?1 AND live = 1")
                        .and_then(|mut s| s.query_map([q], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
                        .map_err(sql_err)?;
                    let Some(dep) = attribute(&w, &live) else { continue };
                    let obs: Vec<Observation> =
                        hb.job_results.iter().filter(|j| j.queue == q).flat_map(|j| job_observations(&w, j, now)).collect();
                    insert_observations(c, &dep, &obs)?;
                }
                Ok((w, events))
            })
            .await
    }

    pub(crate) async fn mark_unreachable(
        &self,
        now: Timestamp,
        timeout: chrono::Duration,
    ) -> Result<Vec<Event>> {
        self.writer
            .write(move |c| {
                let cutoff = micros(now - timeout);
                let bodies: Vec<String> = c
                    .prepare_cached(
                        "SELECT body FROM workers WHERE status <> 'unreachable' AND last_seen < ?1",
                    )
                    .and_then(|mut s| s.query_map([cutoff], |r| r.get(0))?.collect())
                    .map_err(sql_err)?;
                let mut events = Vec::new();
                for b in bodies {
                    let mut w: Worker = serde_json::from_str(&b).map_err(json_err)?;
                    for e in status_change(&mut w, WorkerStatus::Unreachable) {
                        let e = stamp(e, "system", now);
                        insert_event(c, &e)?;
                        events.push(e);
                    }
                    save_worker(c, &w)?;
                }
                Ok(events)
            })
            .await
    }

    pub(crate) async fn record_observations(
        &self,
        deployment_id: &str,
        obs: Vec<Observation>,
    ) -> Result<()> {
        let id = deployment_id.to_string();
        self.writer
            .write(move |c| {
                load_deployment(c, &id)?;
                insert_observations(c, &id, &obs)
            })
            .await
    }

    pub(crate) async fn observation_windows(
        &self,
        deployment_id: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<[LaneWindow; 2]> {
        let id = deployment_id.to_string();
        self.read(move |c| observation_windows_on(c, &id, from, to))
            .await
    }

    pub(crate) async fn workers_on_queue(&self, queue: &str) -> Result<Vec<Worker>> {
        let queue = queue.to_string();
        self.read(move |c| {
            let bodies: Vec<String> = c
                .prepare_cached(
                    "SELECT body FROM workers WHERE EXISTS (SELECT 1 FROM json_each(workers.body, '$.queues') WHERE value = ?1) ORDER BY id",
                )
                .and_then(|mut s| s.query_map([&queue], |r| r.get(0))?.collect())
                .map_err(sql_err)?;
            bodies.iter().map(|b| serde_json::from_str(b).map_err(json_err)).collect()
        })
        .await
    }

    pub(crate) async fn create_api_key(
        &self,
        key: ApiKeyRecord,
        event: Event,
    ) -> Result<ApiKeyRecord> {
        self.writer
            .write(move |c| {
                c.prepare_cached(
                    "INSERT INTO api_keys (id, name, role, key_hash, prefix, created_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .and_then(|mut s| {
                    s.execute(params![key.id, key.name, key.role.as_str(), key.key_hash, key.prefix, micros(key.created_at), key.created_by])
                })
                .map_err(|e| {
                    if super::is_unique_violation(&e) {
                        StoreError::Conflict { entity: Entity::ApiKey, key: key.name.clone() }
                    } else {
                        sql_err(e)
                    }
                })?;
                insert_event(c, &event)?;
                Ok(key)
            })
            .await
    }

    pub(crate) async fn list_api_keys(
        &self,
        offset: u64,
        limit: u64,
    ) -> Result<Paged<ApiKeyRecord>> {
        self.read(move |c| {
            paged(
                c,
                KEY_SELECT,
                "",
                "created_at DESC, id",
                &[],
                Window { offset, limit },
                key_row,
            )
        })
        .await
    }

    pub(crate) async fn revoke_api_key(
        &self,
        id: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<ApiKeyRecord> {
        let (id, actor) = (id.to_string(), actor.to_string());
        self.writer
            .write(move |c| {
                let mut key = c
                    .prepare_cached(&format!("{KEY_SELECT} WHERE id = ?1"))
                    .and_then(|mut s| s.query_row([&id], key_row).optional())
                    .map_err(sql_err)?
                    .ok_or_else(|| not_found(Entity::ApiKey, &id))?;
                if key.revoked_at.is_none() {
                    c.execute(
                        "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1",
                        params![id, micros(now)],
                    )
                    .map_err(sql_err)?;
                    key.revoked_at = Some(now);
                    insert_event(c, &stamp(revoked_event(&key), &actor, now))?;
                }
                Ok(key)
            })
            .await
    }

    pub(crate) async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>> {
        let hash = hash.to_string();
        self.read(move |c| {
            c.prepare_cached(&format!("{KEY_SELECT} WHERE key_hash = ?1"))
                .and_then(|mut s| s.query_row([&hash], key_row).optional())
                .map_err(sql_err)
        })
        .await
    }

    pub(crate) async fn count_api_keys(&self) -> Result<u64> {
        self.read(|c| {
            c.query_row("SELECT COUNT(*) FROM api_keys", [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(sql_err)
        })
        .await
    }
}

/// A deployment's observations over `[from, to]`, on one connection.
pub(crate) fn observation_windows_on(
    c: &Connection,
    id: &str,
    from: Timestamp,
    to: Timestamp,
) -> Result<[LaneWindow; 2]> {
    let args = params![id, micros(from), micros(to)];
    let window = "deployment_id = ?1 AND ts >= ?2 AND ts <= ?3";
    let lane = |s: String| Lane::parse(&s);
    let outcomes: Vec<(String, i64, i64)> = c
        .prepare_cached(&format!(
            "SELECT lane, SUM(value >= 1), SUM(value < 1) FROM observations WHERE {window} AND kind = 'outcome' GROUP BY lane"
        ))
        .and_then(|mut s| s.query_map(args, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect())
        .map_err(sql_err)?;
    let latencies: Vec<(String, f64)> = c
        .prepare_cached(&format!(
            "SELECT lane, value FROM observations WHERE {window} AND kind = 'latency'"
        ))
        .and_then(|mut s| s.query_map(args, |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .map_err(sql_err)?;
    let gauges: Vec<(String, String, f64)> = c
        .prepare_cached(&format!(
            "SELECT lane, name, value FROM observations WHERE {window} AND kind = 'gauge' ORDER BY ts, id"
        ))
        .and_then(|mut s| s.query_map(args, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect())
        .map_err(sql_err)?;
    Ok(windows_from(
        outcomes
            .into_iter()
            .filter_map(|(l, ok, bad)| Some((lane(l)?, ok as u64, bad as u64))),
        latencies
            .into_iter()
            .filter_map(|(l, v)| Some((lane(l)?, v))),
        gauges
            .into_iter()
            .filter_map(|(l, n, v)| Some((lane(l)?, n, v))),
    ))
}
