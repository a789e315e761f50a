//! The cluster: the replicas on this database, which one leads, at which
//! epoch, and how fresh each is.

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serin_app::App;
use serin_core::Timestamp;

use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

/// A replica is listed while its last beat is younger than this.
const LISTED_FOR: Duration = Duration::from_secs(30);

/// The cluster routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/cluster", get(show))
}

/// The leader lease as the database holds it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Leader {
    /// The replica that holds the lease.
    pub replica: String,
    /// Its name, when it is listed.
    pub name: Option<String>,
    /// Grows by one at every change of leader; the acting loops' writes are
    /// fenced by it.
    pub epoch: i64,
    /// When this leader took the lease.
    pub acquired_at: DateTime<Utc>,
    /// Its last renewal.
    pub renewed_at: DateTime<Utc>,
    /// When the lease lapses unless renewed.
    pub expires_at: DateTime<Utc>,
    /// Seconds since the last renewal (the database's clock).
    pub lease_age_seconds: f64,
    /// The lease has lapsed and nobody has taken it yet.
    pub expired: bool,
}

/// One replica.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Replica {
    /// A new id at every start.
    pub id: String,
    /// `--name`, or host and process id.
    pub name: String,
    /// Its build.
    pub version: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last beat.
    pub seen_at: DateTime<Utc>,
    /// Seconds since its last beat (the database's clock).
    pub lag_seconds: f64,
    /// It holds the lease.
    pub leader: bool,
    /// It answered this request.
    pub this: bool,
}

/// `GET /api/v1/cluster`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Cluster {
    /// `sqlite` (always one replica) or `postgres`.
    pub database: &'static str,
    /// The replica that answered.
    pub this_replica: String,
    /// The lease, once any replica has taken it.
    pub leader: Option<Leader>,
    /// Replicas heard from in the last 30 seconds, the newest first.
    pub replicas: Vec<Replica>,
}

fn seconds(from: Timestamp, to: Timestamp) -> f64 {
    ((to - from).num_microseconds().unwrap_or(0) as f64 / 1e6).max(0.0)
}

/// The replicas, the leader and its epoch.
#[utoipa::path(get, path = "/api/v1/cluster", tag = "health",
    responses((status = 200, body = Cluster), (status = 503, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn show(State(state): State<App>) -> ApiResult<Json<Cluster>> {
    let lease = state.store.lease().await?;
    let listed = state.store.replicas(LISTED_FOR).await?;
    let me = state.leadership.me().id.clone();
    let now = lease.as_ref().map_or_else(|| state.now(), |l| l.now);
    let holder = lease.as_ref().map(|l| l.holder.clone());
    let replicas = listed
        .into_iter()
        .map(|r| Replica {
            leader: holder.as_deref() == Some(r.id.as_str())
                && lease.as_ref().is_some_and(|l| l.expires_at > l.now),
            this: r.id == me,
            lag_seconds: seconds(r.seen_at, now),
            id: r.id,
            name: r.name,
            version: r.version,
            started_at: r.started_at,
            seen_at: r.seen_at,
        })
        .collect::<Vec<_>>();
    let leader = lease.map(|l| Leader {
        name: replicas
            .iter()
            .find(|r| r.id == l.holder)
            .map(|r| r.name.clone()),
        lease_age_seconds: seconds(l.renewed_at, l.now),
        expired: l.expires_at <= l.now,
        replica: l.holder,
        epoch: l.epoch,
        acquired_at: l.acquired_at,
        renewed_at: l.renewed_at,
        expires_at: l.expires_at,
    });
    Ok(Json(Cluster {
        database: state.store.backend(),
        this_replica: me,
        leader,
        replicas,
    }))
}
