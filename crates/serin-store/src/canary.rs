//! Storage of the canary side: deployments (optimistically versioned), the event
//! log, workers, API keys and lane observations.
//!
//! Every change of a deployment goes through [`Store::update_deployment`]: the
//! store loads the deployment inside a write transaction, lets `serin-core` apply
//! the change (which returns the events it causes), and writes the new state with
//! its events, guarded by the revision it read. Two racing changes therefore end
//! in one consistent outcome: the second sees the first's result and is judged
//! against it (a promote after a rollback is refused as not active).

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serin_core::auth::Role;
use serin_core::canary::metrics::LaneWindow;
use serin_core::canary::worker::{Heartbeat, Worker, WorkerStatus};
use serin_core::canary::{Deployment, DeploymentStatus};
use serin_core::event::{Event, NewEvent};
use serin_core::{DomainError, Lane, SignalKind, Timestamp};

use crate::{Result, Store, StoreError};

/// Which deployments to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeploymentFilter {
    /// Only this status.
    pub status: Option<DeploymentStatus>,
    /// Only this target.
    pub queue_name: Option<String>,
    /// Only this tenant.
    pub tenant_id: Option<String>,
    /// Only this product's.
    pub product: Option<String>,
    /// Only to this environment.
    pub environment: Option<String>,
}

/// Which events to list (the audit log's filters).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    /// Only this deployment's.
    pub deployment_id: Option<String>,
    /// Only this kind of resource (`deployment`, `release`, …).
    pub resource_type: Option<String>,
    /// Only this resource.
    pub resource_id: Option<String>,
    /// Only this actor's.
    pub actor: Option<String>,
    /// Only this event type (`percentage_updated`, …).
    pub action: Option<String>,
    /// Only at or after this instant.
    pub since: Option<Timestamp>,
    /// Only before this instant.
    pub until: Option<Timestamp>,
}

/// A page of results and how many there are in all.
#[derive(Debug, Clone, PartialEq)]
pub struct Paged<T> {
    /// This page.
    pub items: Vec<T>,
    /// All matching.
    pub total: u64,
}

impl<T> Paged<T> {
    /// The same page with each item converted, or the first conversion's error.
    pub fn try_map<U, E>(
        self,
        f: impl FnMut(T) -> std::result::Result<U, E>,
    ) -> std::result::Result<Paged<U>, E> {
        Ok(Paged {
            items: self
                .items
                .into_iter()
                .map(f)
                .collect::<std::result::Result<_, E>>()?,
            total: self.total,
        })
    }
}

/// Where a page starts and how many rows it holds at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// Rows skipped.
    pub offset: u64,
    /// Rows at most.
    pub limit: u64,
}

/// An API key as stored: never the key itself, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// `key_<uuid>`.
    pub id: String,
    /// A name for people (shown as the actor in the audit log).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Hex SHA-256 of the key.
    #[serde(skip_serializing)]
    pub key_hash: String,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// Who made it.
    pub created_by: String,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
}

/// One observation of a deployment's lane.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The lane.
    pub lane: Lane,
    /// What was observed.
    pub name: String,
    /// Outcome (1/0), latency (ms), counter or gauge.
    pub kind: SignalKind,
    /// The value.
    pub value: f64,
    /// When.
    pub ts: Timestamp,
}

/// Stored JSON that no longer reads back is a backend failure, not a client's.
pub(crate) fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Backend(format!("stored JSON is unreadable: {e}"))
}

/// A record that isn't there.
pub(crate) fn not_found(entity: crate::Entity, key: &str) -> StoreError {
    StoreError::NotFound {
        entity,
        key: key.to_string(),
        field: None,
    }
}

/// Builds the stored event from what a change produced.
pub(crate) fn stamp(new: NewEvent, actor: &str, now: Timestamp) -> Event {
    Event {
        id: format!("event_{}", uuid::Uuid::new_v4()),
        deployment_id: new.deployment_id,
        kind: new.kind,
        message: new.message,
        timestamp: now,
        actor: actor.to_string(),
        resource_type: new.resource_type.to_string(),
        resource_id: new.resource_id,
        data: new.data,
    }
}

/// The key under which a tenant's deployments are unique ("" for none).
pub(crate) fn tenant_key(tenant: Option<&str>) -> String {
    tenant.unwrap_or("").to_string()
}

/// Builds the per-lane windows `[stable, canary]` from what the database summed
/// and selected: outcome counts per lane, latency values, and gauge readings in
/// time order (the last one wins).
pub(crate) fn windows_from(
    outcomes: impl IntoIterator<Item = (Lane, u64, u64)>,
    latencies: impl IntoIterator<Item = (Lane, f64)>,
    gauges: impl IntoIterator<Item = (Lane, String, f64)>,
) -> [LaneWindow; 2] {
    let mut w = [LaneWindow::default(), LaneWindow::default()];
    let idx = |lane: Lane| usize::from(lane == Lane::Canary);
    for (lane, ok, bad) in outcomes {
        w[idx(lane)].success += ok;
        w[idx(lane)].errors += bad;
    }
    for (lane, v) in latencies {
        w[idx(lane)].latencies_ms.push(v);
    }
    for (lane, name, v) in gauges {
        match name.as_str() {
            "queue_depth" => w[idx(lane)].queue_depth = Some(v),
            "dead_letters" => w[idx(lane)].dead_letters = Some(v),
            _ => {}
        }
        w[idx(lane)].gauges.insert(name, v);
    }
    w
}

/// Checks that every job result names a queue the worker serves.
pub(crate) fn check_job_queues(w: &Worker, hb: &Heartbeat) -> Result<()> {
    for (i, j) in hb.job_results.iter().enumerate() {
        if !w.queues.contains(&j.queue) {
            return Err(DomainError::invalid(
                format!("job_results[{i}].queue"),
                format!(
                    "worker {} does not serve `{}` (it serves: {})",
                    w.id,
                    j.queue,
                    w.queues.join(", ")
                ),
            )
            .into());
        }
    }
    Ok(())
}

/// Which live deployment a worker's job results on a queue belong to: the one of
/// the worker's tenant (`metadata.tenant_id`), or the only live one on the queue.
/// With several tenants' canaries on the queue and no tenant on the worker, the
/// results can't be attributed and are not counted.
pub(crate) fn attribute(w: &Worker, live: &[(String, String)]) -> Option<String> {
    match w.metadata.get("tenant_id").and_then(|t| t.as_str()) {
        Some(t) => live
            .iter()
            .find(|(_, tenant)| tenant == t)
            .map(|(id, _)| id.clone()),
        None if live.len() == 1 => Some(live[0].0.clone()),
        None => None,
    }
}

/// The observations a job result becomes, in the worker's lane.
pub(crate) fn job_observations(
    w: &Worker,
    j: &serin_core::canary::worker::JobResult,
    now: Timestamp,
) -> Vec<Observation> {
    let ts = j.timestamp.map_or(now, serin_core::to_micros);
    let mut obs = vec![Observation {
        lane: w.lane,
        name: "job".into(),
        kind: SignalKind::Outcome,
        value: f64::from(u8::from(j.success)),
        ts,
    }];
    if let Some(ms) = j.duration_ms {
        obs.push(Observation {
            lane: w.lane,
            name: "job.duration".into(),
            kind: SignalKind::Latency,
            value: ms,
            ts,
        });
    }
    obs
}

/// Applies a heartbeat to a worker; returns the events it causes.
pub(crate) fn beat(w: &mut Worker, hb: &Heartbeat, now: Timestamp) -> Vec<NewEvent> {
    w.last_seen = now;
    if let Some(m) = &hb.metrics {
        w.metrics = m.clone();
    }
    let new_status = match (hb.status, w.status) {
        (Some(s), _) => s,
        (None, WorkerStatus::Unreachable) => WorkerStatus::Healthy,
        (None, s) => s,
    };
    status_change(w, new_status)
}

/// Sets a worker's status; an event when it changed.
pub(crate) fn status_change(w: &mut Worker, to: WorkerStatus) -> Vec<NewEvent> {
    if w.status == to {
        return Vec::new();
    }
    let from = w.status;
    w.status = to;
    vec![NewEvent {
        kind: serin_core::event::EventType::WorkerStatusChanged,
        resource_type: "worker",
        resource_id: w.id.clone(),
        deployment_id: None,
        message: format!("Worker {} is {}", w.id, to.as_str()),
        data: serde_json::json!({"old_status": from, "new_status": to}),
    }]
}

/// Applies `change` to a deployment loaded inside the write transaction: the
/// revision must be the one the caller expected (when it said), and a change that
/// causes no event changes nothing. Returns the revision the deployment had and the
/// events to record, or `None` when there is nothing to write.
pub(crate) fn apply_change(
    d: &mut Deployment,
    expected: Option<u64>,
    change: DeploymentChange,
) -> Result<Option<(u64, Vec<NewEvent>)>> {
    let old = d.revision;
    if let Some(e) = expected
        && e != old
    {
        return Err(StoreError::RevisionMismatch {
            expected: e,
            actual: Some(old),
        });
    }
    let events = change(d)?;
    if events.is_empty() {
        return Ok(None);
    }
    // Every stored change moves the revision, whatever the change did: the
    // revision names the body (revision guards and the PostgreSQL live-set
    // cache rely on it).
    if d.revision == old {
        d.revision = old + 1;
    }
    Ok(Some((old, events)))
}

/// Whether a deployment has upstreams, so that it may be its target's route.
pub(crate) fn is_routed(d: &Deployment) -> bool {
    serin_core::traffic::proxy::ProxyRoute::of(d).is_some()
}

/// The change of a deployment the store applies inside its transaction.
pub type DeploymentChange =
    Box<dyn FnOnce(&mut Deployment) -> std::result::Result<Vec<NewEvent>, DomainError> + Send>;

impl Store {
    /// Stores a new deployment with its creation event. `Conflict` when a live
    /// deployment exists for the same target and tenant; `ConcurrencyLimit` when the
    /// tenant already has `max_live` live deployments.
    pub async fn create_deployment(
        &self,
        d: Deployment,
        event: NewEvent,
        actor: &str,
        max_live: Option<u32>,
    ) -> Result<(Deployment, Vec<Event>)> {
        let now = d.start_time;
        let event = stamp(event, actor, now);
        dispatch!(self, b => b.create_deployment(d, event, max_live))
    }

    /// One deployment.
    pub async fn get_deployment(&self, id: &str) -> Result<Deployment> {
        dispatch!(self, b => b.get_deployment(id))
    }

    /// Deployments, newest first.
    pub async fn list_deployments(
        &self,
        filter: &DeploymentFilter,
        offset: u64,
        limit: u64,
    ) -> Result<Paged<Deployment>> {
        dispatch!(self, b => b.list_deployments(filter, offset, limit))
    }

    /// The live deployment on a target, if any.
    pub async fn live_deployment(
        &self,
        queue_name: &str,
        tenant_id: Option<&str>,
    ) -> Result<Option<Deployment>> {
        dispatch!(self, b => b.live_deployment(queue_name, tenant_id))
    }

    /// Applies `change` to a deployment in one transaction with its events (see the
    /// module docs). `expected_revision`, when given, must match.
    pub async fn update_deployment(
        &self,
        id: &str,
        expected_revision: Option<u64>,
        change: DeploymentChange,
        actor: &str,
        now: Timestamp,
    ) -> Result<(Deployment, Vec<Event>)> {
        let now = serin_core::to_micros(now);
        dispatch!(self, b => b.update_deployment(id, expected_revision, change, actor, now))
    }

    /// Deletes a final deployment (and its observations); the deletion is an event.
    pub async fn delete_deployment(&self, id: &str, actor: &str, now: Timestamp) -> Result<Event> {
        let now = serin_core::to_micros(now);
        dispatch!(self, b => b.delete_deployment(id, actor, now))
    }

    /// Records events that belong to no deployment change (releases, keys…).
    pub async fn append_events(
        &self,
        events: Vec<NewEvent>,
        actor: &str,
        now: Timestamp,
    ) -> Result<Vec<Event>> {
        let now = serin_core::to_micros(now);
        let events: Vec<Event> = events.into_iter().map(|e| stamp(e, actor, now)).collect();
        dispatch!(self, b => b.append_events(events))
    }

    /// Events, newest first.
    pub async fn list_events(
        &self,
        filter: &EventFilter,
        offset: u64,
        limit: u64,
    ) -> Result<Paged<Event>> {
        dispatch!(self, b => b.list_events(filter, offset, limit))
    }

    /// Registers a worker, or re-registers one (keeping its metrics). `true` when new.
    pub async fn upsert_worker(
        &self,
        w: Worker,
        actor: &str,
        now: Timestamp,
    ) -> Result<(Worker, bool, Vec<Event>)> {
        let now = serin_core::to_micros(now);
        dispatch!(self, b => b.upsert_worker(w, actor, now))
    }

    /// One worker.
    pub async fn get_worker(&self, id: &str) -> Result<Worker> {
        dispatch!(self, b => b.get_worker(id))
    }

    /// The workers that list `queue` among their queues.
    pub async fn workers_on_queue(&self, queue: &str) -> Result<Vec<Worker>> {
        dispatch!(self, b => b.workers_on_queue(queue))
    }

    /// Workers by id, optionally of one lane.
    pub async fn list_workers(
        &self,
        lane: Option<Lane>,
        offset: u64,
        limit: u64,
    ) -> Result<Paged<Worker>> {
        dispatch!(self, b => b.list_workers(lane, offset, limit))
    }

    /// Sets a worker's status.
    pub async fn set_worker_status(
        &self,
        id: &str,
        status: WorkerStatus,
        actor: &str,
        now: Timestamp,
    ) -> Result<(Worker, Vec<Event>)> {
        let now = serin_core::to_micros(now);
        dispatch!(self, b => b.set_worker_status(id, status, actor, now))
    }

    /// Records a heartbeat; its job results become observations of the worker's lane
    /// on the live deployment of each job's queue.
    pub async fn heartbeat(
        &self,
        id: &str,
        hb: Heartbeat,
        now: Timestamp,
    ) -> Result<(Worker, Vec<Event>)> {
        let now = serin_core::to_micros(now);
        dispatch!(self, b => b.heartbeat(id, hb, now))
    }

    /// Marks workers unheard of for `timeout` as unreachable.
    pub async fn mark_unreachable(
        &self,
        now: Timestamp,
        timeout: chrono::Duration,
    ) -> Result<Vec<Event>> {
        let now = serin_core::to_micros(now);
        dispatch!(self, b => b.mark_unreachable(now, timeout))
    }

    /// Records observations of a deployment's lanes.
    pub async fn record_observations(
        &self,
        deployment_id: &str,
        obs: Vec<Observation>,
    ) -> Result<usize> {
        let n = obs.len();
        dispatch!(self, b => b.record_observations(deployment_id, obs))?;
        Ok(n)
    }

    /// The deployment's lanes over `[from, to]`: `[stable, canary]`, from the
    /// observations (signals, job results) and the proxies' lane buckets.
    pub async fn lane_windows(
        &self,
        deployment_id: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<[LaneWindow; 2]> {
        let mut w = dispatch!(self, b => b.observation_windows(deployment_id, from, to))?;
        for b in self.lane_buckets(deployment_id, from, to).await? {
            w[usize::from(b.lane.answered_by() == Lane::Canary)].add_bucket(&b);
        }
        Ok(w)
    }

    /// Stores a new API key (its hash) with an event.
    pub async fn create_api_key(&self, key: ApiKeyRecord, actor: &str) -> Result<ApiKeyRecord> {
        let event = stamp(
            NewEvent {
                kind: serin_core::event::EventType::ApiKeyCreated,
                resource_type: "api_key",
                resource_id: key.id.clone(),
                deployment_id: None,
                message: format!("API key {} ({}) created", key.name, key.role),
                data: serde_json::json!({"name": key.name, "role": key.role}),
            },
            actor,
            key.created_at,
        );
        dispatch!(self, b => b.create_api_key(key, event))
    }

    /// API keys, newest first.
    pub async fn list_api_keys(&self, offset: u64, limit: u64) -> Result<Paged<ApiKeyRecord>> {
        dispatch!(self, b => b.list_api_keys(offset, limit))
    }

    /// Revokes a key.
    pub async fn revoke_api_key(
        &self,
        id: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<ApiKeyRecord> {
        let now = serin_core::to_micros(now);
        dispatch!(self, b => b.revoke_api_key(id, actor, now))
    }

    /// The key with this hash, revoked or not.
    pub async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>> {
        dispatch!(self, b => b.api_key_by_hash(hash))
    }

    /// How many keys exist (revoked ones included).
    pub async fn count_api_keys(&self) -> Result<u64> {
        dispatch!(self, b => b.count_api_keys())
    }
}

/// The event of a product's creation.
pub(crate) fn product_created(p: &serin_core::Product) -> NewEvent {
    NewEvent {
        kind: serin_core::event::EventType::ProductCreated,
        resource_type: "product",
        resource_id: p.name.clone(),
        deployment_id: None,
        message: format!("Product {} created", p.name),
        data: serde_json::json!({"name": p.name, "description": p.description}),
    }
}

/// The event of a release's creation.
pub(crate) fn release_created(r: &serin_core::Release) -> NewEvent {
    NewEvent {
        kind: serin_core::event::EventType::ReleaseCreated,
        resource_type: "release",
        resource_id: r.id.to_string(),
        deployment_id: None,
        message: format!("Release {}@{} created as draft", r.product_name, r.version),
        data: serde_json::json!({"product": r.product_name, "version": r.version, "status": r.status}),
    }
}

/// The event of a release's change.
pub(crate) fn release_updated(
    old: &serin_core::Release,
    new: &serin_core::Release,
    override_reason: Option<&str>,
) -> NewEvent {
    let mut changes = serde_json::Map::new();
    if let Some(r) = override_reason
        && old.status != new.status
    {
        changes.insert("override_reason".into(), serde_json::json!(r));
    }
    if old.status != new.status {
        changes.insert(
            "status".into(),
            serde_json::json!({"old": old.status, "new": new.status}),
        );
    }
    if old.description != new.description {
        changes.insert(
            "description".into(),
            serde_json::json!({"old": old.description, "new": new.description}),
        );
    }
    let what = match override_reason {
        Some(r) if old.status != new.status => {
            format!("is now {} by override ({r})", new.status)
        }
        _ if old.status != new.status => format!("is now {}", new.status),
        _ => "notes changed".to_string(),
    };
    NewEvent {
        kind: serin_core::event::EventType::ReleaseUpdated,
        resource_type: "release",
        resource_id: new.id.to_string(),
        deployment_id: None,
        message: format!("Release {}@{} {what}", new.product_name, new.version),
        data: serde_json::Value::Object(changes),
    }
}

/// The event of a key's revocation.
pub(crate) fn revoked_event(key: &ApiKeyRecord) -> NewEvent {
    NewEvent {
        kind: serin_core::event::EventType::ApiKeyRevoked,
        resource_type: "api_key",
        resource_id: key.id.clone(),
        deployment_id: None,
        message: format!("API key {} revoked", key.name),
        data: serde_json::json!({"name": key.name, "role": key.role}),
    }
}

/// Now, in microseconds (what both databases keep).
pub fn now_micros() -> Timestamp {
    serin_core::to_micros(Utc::now())
}
