//! The canary side on PostgreSQL. Each change is one transaction; a deployment's
//! row is locked (`FOR UPDATE`) while core decides, and written back guarded by the
//! revision it had.

use super::page::paged;
use crate::canary::Window;
use deadpool_postgres::GenericClient;
use serin_core::canary::Deployment;
use serin_core::canary::metrics::LaneWindow;
use serin_core::canary::worker::{Heartbeat, Worker, WorkerStatus};
use serin_core::event::{Event, EventType, NewEvent};
use serin_core::{Lane, Timestamp};
use tokio_postgres::Row;

use super::{PgStore, json_col, pg_err};
use crate::canary::{
    ApiKeyRecord, DeploymentChange, DeploymentFilter, EventFilter, Observation, Paged,
    apply_change, attribute, beat, check_job_queues, is_routed, job_observations, json_err,
    not_found, revoked_event, stamp, status_change, tenant_key, windows_from,
};
use crate::{Entity, Result, StoreError};

fn to_json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(json_err)
}

/// Stamps new events with the actor and time and records them.
async fn record(
    c: &impl GenericClient,
    new: Vec<NewEvent>,
    actor: &str,
    now: Timestamp,
) -> Result<Vec<Event>> {
    let events: Vec<Event> = new.into_iter().map(|e| stamp(e, actor, now)).collect();
    for e in &events {
        insert_event(c, e).await?;
    }
    Ok(events)
}

pub(crate) async fn insert_event(c: &impl GenericClient, e: &Event) -> Result<()> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO events (id, deployment_id, kind, resource_type, resource_id, actor, message, data, ts)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .await
        .map_err(pg_err)?;
    c.execute(
        &stmt,
        &[
            &e.id,
            &e.deployment_id,
            &e.kind.as_str(),
            &e.resource_type,
            &e.resource_id,
            &e.actor,
            &e.message,
            &e.data,
            &e.timestamp,
        ],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

/// Makes `routes` hold the target's newest routed deployment and moves the
/// route generation, inside the caller's transaction. The generation's row is
/// locked first and stays locked until commit, so two writers of the same
/// target can't interleave their delete and insert (the second would insert a
/// duplicate), and route changes commit in generation order.
async fn reroute(c: &impl GenericClient, queue: &str, tenant: &str) -> Result<()> {
    c.execute("UPDATE route_generation SET n = n + 1 WHERE id = 1", &[])
        .await
        .map_err(pg_err)?;
    c.execute(
        "DELETE FROM routes WHERE queue_name = $1 AND tenant_key = $2",
        &[&queue, &tenant],
    )
    .await
    .map_err(pg_err)?;
    let stmt = c
        .prepare_cached(
            "INSERT INTO routes (queue_name, tenant_key, deployment_id)
             SELECT queue_name, tenant_key, id FROM deployments
              WHERE routed AND queue_name = $1 AND tenant_key = $2
              ORDER BY start_time DESC, id DESC LIMIT 1",
        )
        .await
        .map_err(pg_err)?;
    c.execute(&stmt, &[&queue, &tenant]).await.map_err(pg_err)?;
    Ok(())
}

async fn load_deployment(c: &impl GenericClient, id: &str, lock: bool) -> Result<Deployment> {
    let sql = if lock {
        "SELECT body FROM deployments WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT body FROM deployments WHERE id = $1"
    };
    let stmt = c.prepare_cached(sql).await.map_err(pg_err)?;
    let row = c
        .query_opt(&stmt, &[&id])
        .await
        .map_err(pg_err)?
        .ok_or_else(|| not_found(Entity::Deployment, id))?;
    json_col(&row, 0)
}

async fn load_worker(c: &impl GenericClient, id: &str, lock: bool) -> Result<Option<Worker>> {
    let sql = if lock {
        "SELECT body FROM workers WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT body FROM workers WHERE id = $1"
    };
    let stmt = c.prepare_cached(sql).await.map_err(pg_err)?;
    c.query_opt(&stmt, &[&id])
        .await
        .map_err(pg_err)?
        .map(|r| json_col(&r, 0))
        .transpose()
}

async fn save_worker(c: &impl GenericClient, w: &Worker) -> Result<()> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO workers (id, lane, status, last_seen, body) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET lane = $2, status = $3, last_seen = $4, body = $5",
        )
        .await
        .map_err(pg_err)?;
    c.execute(
        &stmt,
        &[
            &w.id,
            &w.lane.as_str(),
            &w.status.as_str(),
            &w.last_seen,
            &to_json(w)?,
        ],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

async fn insert_observations(
    c: &impl GenericClient,
    deployment_id: &str,
    obs: &[Observation],
) -> Result<()> {
    if obs.is_empty() {
        return Ok(());
    }
    let lane: Vec<&str> = obs.iter().map(|o| o.lane.as_str()).collect();
    let name: Vec<&str> = obs.iter().map(|o| o.name.as_str()).collect();
    let kind: Vec<&str> = obs.iter().map(|o| o.kind.as_str()).collect();
    let value: Vec<f64> = obs.iter().map(|o| o.value).collect();
    let ts: Vec<Timestamp> = obs.iter().map(|o| o.ts).collect();
    let stmt = c
        .prepare_cached(
            "INSERT INTO observations (deployment_id, lane, name, kind, value, ts)
             SELECT $1, u.lane, u.name, u.kind, u.value, u.ts
             FROM unnest($2::text[], $3::text[], $4::text[], $5::float8[], $6::timestamptz[]) AS u(lane, name, kind, value, ts)",
        )
        .await
        .map_err(pg_err)?;
    c.execute(&stmt, &[&deployment_id, &lane, &name, &kind, &value, &ts])
        .await
        .map_err(pg_err)?;
    Ok(())
}

fn event_row(r: &Row) -> Event {
    let kind: &str = r.get(2);
    Event {
        id: r.get(0),
        deployment_id: r.get(1),
        kind: EventType::parse(kind).unwrap_or(EventType::DeploymentCreated),
        resource_type: r.get(3),
        resource_id: r.get(4),
        actor: r.get(5),
        message: r.get(6),
        data: r.get(7),
        timestamp: r.get(8),
    }
}

mod api_keys;

impl PgStore {
    pub(crate) async fn create_deployment(
        &self,
        d: Deployment,
        event: Event,
        max_live: Option<u32>,
    ) -> Result<(Deployment, Vec<Event>)> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let tenant = tenant_key(d.tenant_id.as_deref());
        // Serialise creations per tenant so the count below can't race.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            &[&format!("serin-tenant:{tenant}")],
        )
        .await
        .map_err(pg_err)?;
        let existing = tx
            .query_opt(
                "SELECT id FROM deployments WHERE queue_name = $1 AND tenant_key = $2 AND live",
                &[&d.queue_name, &tenant],
            )
            .await
            .map_err(pg_err)?;
        if let Some(row) = existing {
            return Err(StoreError::Conflict {
                entity: Entity::Deployment,
                key: row.get(0),
            });
        }
        if let Some(limit) = max_live {
            let live: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM deployments WHERE tenant_key = $1 AND live",
                    &[&tenant],
                )
                .await
                .map_err(pg_err)?
                .get(0);
            if live >= i64::from(limit) {
                return Err(StoreError::ConcurrencyLimit {
                    tenant: d.tenant_id.clone(),
                    limit,
                });
            }
        }
        tx.execute(
            "INSERT INTO deployments (id, queue_name, tenant_key, status, live, revision, start_time, body, routed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[&d.id, &d.queue_name, &tenant, &d.status.as_str(), &d.status.is_live(), &(d.revision as i64), &d.start_time, &to_json(&d)?, &is_routed(&d)],
        )
        .await
        .map_err(|e| {
            if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                StoreError::Conflict { entity: Entity::Deployment, key: d.queue_name.clone() }
            } else {
                pg_err(e)
            }
        })?;
        if is_routed(&d) {
            reroute(&tx, &d.queue_name, &tenant).await?;
        }
        insert_event(&tx, &event).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok((d, vec![event]))
    }

    pub(crate) async fn get_deployment(&self, id: &str) -> Result<Deployment> {
        let client = self.client().await?;
        load_deployment(&client, id, false).await
    }

    pub(crate) async fn list_deployments(
        &self,
        f: &DeploymentFilter,
        offset: u64,
        limit: u64,
    ) -> Result<Paged<Deployment>> {
        let client = self.client().await?;
        let status = f.status.map(|s| s.as_str());
        let tenant = f.tenant_id.as_deref().map(|t| tenant_key(Some(t)));
        let where_ = "WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR queue_name = $2) AND ($3::text IS NULL OR tenant_key = $3)
            AND ($4::text IS NULL OR body->>'product' = $4) AND ($5::text IS NULL OR body->>'environment' = $5)";
        let args: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
            [&status, &f.queue_name, &tenant, &f.product, &f.environment];
        let order = "start_time DESC, id DESC";
        paged(
            &client,
            "SELECT body FROM deployments",
            where_,
            order,
            &args,
            Window { offset, limit },
            |r| json_col(r, 0),
        )
        .await
    }

    pub(crate) async fn live_deployment(
        &self,
        queue: &str,
        tenant: Option<&str>,
    ) -> Result<Option<Deployment>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT body FROM deployments WHERE queue_name = $1 AND tenant_key = $2 AND live",
            )
            .await
            .map_err(pg_err)?;
        client
            .query_opt(&stmt, &[&queue, &tenant_key(tenant)])
            .await
            .map_err(pg_err)?
            .map(|r| json_col(&r, 0))
            .transpose()
    }

    pub(crate) async fn update_deployment(
        &self,
        id: &str,
        expected: Option<u64>,
        change: DeploymentChange,
        actor: &str,
        now: Timestamp,
    ) -> Result<(Deployment, Vec<Event>)> {
        let mut client = self.client().await?;
        let mut tx = self.begin(&mut client).await?;
        let mut d = load_deployment(&tx, id, true).await?;
        let (was_routed, was) = (is_routed(&d), d.status);
        let Some((old, new_events)) = apply_change(&mut d, expected, change)? else {
            return Ok((d, Vec::new()));
        };
        let n = tx
            .execute(
                "UPDATE deployments SET status = $2, live = $3, revision = $4, body = $5, routed = $7 WHERE id = $1 AND revision = $6",
                &[&d.id, &d.status.as_str(), &d.status.is_live(), &(d.revision as i64), &to_json(&d)?, &(old as i64), &is_routed(&d)],
            )
            .await
            .map_err(pg_err)?;
        if n != 1 {
            return Err(StoreError::RevisionMismatch {
                expected: old,
                actual: None,
            });
        }
        if was_routed || is_routed(&d) {
            reroute(&tx, &d.queue_name, &tenant_key(d.tenant_id.as_deref())).await?;
        }
        let effect = serin_core::release::effect::candidate(was, &d, &new_events);
        let mut events = record(&tx, new_events, actor, now).await?;
        if let Some(effect) = effect {
            events.extend(
                super::release_effect::apply_or_log(&mut tx, &effect, &d, actor, now).await?,
            );
        }
        tx.commit().await.map_err(pg_err)?;
        Ok((d, events))
    }

    pub(crate) async fn delete_deployment(
        &self,
        id: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<Event> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let d = load_deployment(&tx, id, true).await?;
        let event = stamp(d.deletion()?, actor, now);
        tx.execute("DELETE FROM deployments WHERE id = $1", &[&id])
            .await
            .map_err(pg_err)?;
        if is_routed(&d) {
            reroute(&tx, &d.queue_name, &tenant_key(d.tenant_id.as_deref())).await?;
        }
        tx.execute("DELETE FROM observations WHERE deployment_id = $1", &[&id])
            .await
            .map_err(pg_err)?;
        tx.execute("DELETE FROM outside_calls WHERE deployment_id = $1", &[&id])
            .await
            .map_err(pg_err)?;
        insert_event(&tx, &event).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(event)
    }

    pub(crate) async fn append_events(&self, events: Vec<Event>) -> Result<Vec<Event>> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        for e in &events {
            insert_event(&tx, e).await?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(events)
    }

    pub(crate) async fn list_events(
        &self,
        f: &EventFilter,
        offset: u64,
        limit: u64,
    ) -> Result<Paged<Event>> {
        let client = self.client().await?;
        let where_ = "WHERE ($1::text IS NULL OR deployment_id = $1) AND ($2::text IS NULL OR resource_type = $2)
            AND ($3::text IS NULL OR resource_id = $3) AND ($4::text IS NULL OR actor = $4) AND ($5::text IS NULL OR kind = $5)
            AND ($6::timestamptz IS NULL OR ts >= $6) AND ($7::timestamptz IS NULL OR ts < $7)";
        let select = "SELECT id, deployment_id, kind, resource_type, resource_id, actor, message, data, ts FROM events";
        let args: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
            &f.deployment_id,
            &f.resource_type,
            &f.resource_id,
            &f.actor,
            &f.action,
            &f.since,
            &f.until,
        ];
        paged(
            &client,
            select,
            where_,
            "seq DESC",
            &args,
            Window { offset, limit },
            |r| Ok(event_row(r)),
        )
        .await
    }

    pub(crate) async fn upsert_worker(
        &self,
        w: Worker,
        actor: &str,
        now: Timestamp,
    ) -> Result<(Worker, bool, Vec<Event>)> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        // Take the row (inserting it if absent) before reading it, so that two first
        // registrations racing each other see one creation, as on SQLite.
        let inserted = tx
            .execute(
                "INSERT INTO workers (id, lane, status, last_seen, body) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                &[&w.id, &w.lane.as_str(), &w.status.as_str(), &now, &to_json(&w)?],
            )
            .await
            .map_err(pg_err)?;
        let old = if inserted == 1 {
            None
        } else {
            load_worker(&tx, &w.id, true).await?
        };
        let created = old.is_none();
        let mut w = w;
        if let Some(old) = old {
            w.metrics = old.metrics;
        }
        w.last_seen = now;
        save_worker(&tx, &w).await?;
        let e = stamp(
            NewEvent {
                kind: EventType::WorkerRegistered,
                resource_type: "worker",
                resource_id: w.id.clone(),
                deployment_id: None,
                message: format!(
                    "Worker {} registered in the {} lane (version {})",
                    w.id, w.lane, w.version
                ),
                data: serde_json::json!({"lane": w.lane, "version": w.version, "queues": w.queues, "re_registered": !created}),
            },
            actor,
            now,
        );
        insert_event(&tx, &e).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok((w, created, vec![e]))
    }

    pub(crate) async fn get_worker(&self, id: &str) -> Result<Worker> {
        let client = self.client().await?;
        load_worker(&client, id, false)
            .await?
            .ok_or_else(|| not_found(Entity::Worker, id))
    }

    pub(crate) async fn list_workers(
        &self,
        lane: Option<Lane>,
        offset: u64,
        limit: u64,
    ) -> Result<Paged<Worker>> {
        let client = self.client().await?;
        let lane = lane.map(Lane::as_str);
        let filter = "WHERE ($1::text IS NULL OR lane = $1)";
        paged(
            &client,
            "SELECT body FROM workers",
            filter,
            "id",
            &[&lane],
            Window { offset, limit },
            |r| json_col(r, 0),
        )
        .await
    }

    pub(crate) async fn set_worker_status(
        &self,
        id: &str,
        status: WorkerStatus,
        actor: &str,
        now: Timestamp,
    ) -> Result<(Worker, Vec<Event>)> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let mut w = load_worker(&tx, id, true)
            .await?
            .ok_or_else(|| not_found(Entity::Worker, id))?;
        let changes = status_change(&mut w, status);
        save_worker(&tx, &w).await?;
        let events = record(&tx, changes, actor, now).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok((w, events))
    }

    pub(crate) async fn heartbeat(
        &self,
        id: &str,
        hb: Heartbeat,
        now: Timestamp,
    ) -> Result<(Worker, Vec<Event>)> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let mut w = load_worker(&tx, id, true)
            .await?
            .ok_or_else(|| not_found(Entity::Worker, id))?;
        check_job_queues(&w, &hb)?;
        let changes = beat(&mut w, &hb, now);
        save_worker(&tx, &w).await?;
        let events = record(&tx, changes, &w.id, now).await?;
        let mut queues: Vec<&str> = hb.job_results.iter().map(|j| j.queue.as_str()).collect();
        queues.sort_unstable();
        queues.dedup();
        for q in queues {
            let live: Vec<(String, String)> = tx
                .query(
                    "SELECT id, tenant_key FROM deployments WHERE queue_name = $1 AND live",
                    &[&q],
                )
                .await
                .map_err(pg_err)?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let Some(dep) = attribute(&w, &live) else {
                continue;
            };
            let obs: Vec<Observation> = hb
                .job_results
                .iter()
                .filter(|j| j.queue == q)
                .flat_map(|j| job_observations(&w, j, now))
                .collect();
            insert_observations(&tx, &dep, &obs).await?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok((w, events))
    }

    pub(crate) async fn mark_unreachable(
        &self,
        now: Timestamp,
        timeout: chrono::Duration,
    ) -> Result<Vec<Event>> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let rows = tx
            .query("SELECT body FROM workers WHERE status <> 'unreachable' AND last_seen < $1 FOR UPDATE", &[&(now - timeout)])
            .await
            .map_err(pg_err)?;
        let mut events = Vec::new();
        for r in rows {
            let mut w: Worker = json_col(&r, 0)?;
            for e in status_change(&mut w, WorkerStatus::Unreachable) {
                let e = stamp(e, "system", now);
                insert_event(&tx, &e).await?;
                events.push(e);
            }
            save_worker(&tx, &w).await?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(events)
    }

    pub(crate) async fn record_observations(
        &self,
        deployment_id: &str,
        obs: Vec<Observation>,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        load_deployment(&tx, deployment_id, false).await?;
        insert_observations(&tx, deployment_id, &obs).await?;
        tx.commit().await.map_err(pg_err)
    }

    pub(crate) async fn observation_windows(
        &self,
        deployment_id: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<[LaneWindow; 2]> {
        let client = self.client().await?;
        let window = "deployment_id = $1 AND ts >= $2 AND ts <= $3";
        let args: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&deployment_id, &from, &to];
        let lane = |r: &Row| Lane::parse(r.get::<_, &str>(0));
        let outcomes = client
            .query(
                &format!("SELECT lane, COUNT(*) FILTER (WHERE value >= 1), COUNT(*) FILTER (WHERE value < 1) FROM observations WHERE {window} AND kind = 'outcome' GROUP BY lane"),
                &args,
            )
            .await
            .map_err(pg_err)?;
        let latencies = client
            .query(
                &format!(
                    "SELECT lane, value FROM observations WHERE {window} AND kind = 'latency'"
                ),
                &args,
            )
            .await
            .map_err(pg_err)?;
        let gauges = client
            .query(
                &format!("SELECT lane, name, value FROM observations WHERE {window} AND kind = 'gauge' ORDER BY ts, id"),
                &args,
            )
            .await
            .map_err(pg_err)?;
        Ok(windows_from(
            outcomes.iter().filter_map(|r| {
                Some((
                    lane(r)?,
                    r.get::<_, i64>(1) as u64,
                    r.get::<_, i64>(2) as u64,
                ))
            }),
            latencies
                .iter()
                .filter_map(|r| Some((lane(r)?, r.get::<_, f64>(1)))),
            gauges
                .iter()
                .filter_map(|r| Some((lane(r)?, r.get::<_, String>(1), r.get::<_, f64>(2)))),
        ))
    }

    pub(crate) async fn workers_on_queue(&self, queue: &str) -> Result<Vec<Worker>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT body FROM workers WHERE body->'queues' ? $1 ORDER BY id",
                &[&queue],
            )
            .await
            .map_err(pg_err)?;
        rows.into_iter().map(|r| json_col(&r, 0)).collect()
    }
}
