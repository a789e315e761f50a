//! Route-set inputs, lane buckets and proxies on SQLite.

use rusqlite::params;
use serin_core::Lane;
use serin_core::Timestamp;
use serin_core::canary::Deployment;
use serin_core::canary::metrics::LaneWindow;
use serin_core::traffic::proxy::{BucketLane, LaneBucket, ProxyInfo};

use super::{SqliteStore, instant_of, micros, sql_err};
use crate::Result;
use crate::canary::json_err;
use crate::proxy::{DeploymentSet, second_of};

impl SqliteStore {
    pub(crate) async fn deployment_set(&self, set: &DeploymentSet) -> Result<Vec<Deployment>> {
        let set = set.clone();
        self.read(move |c| {
            let (sql, arg) = match &set {
                DeploymentSet::Routed => (
                    "SELECT d.body FROM routes r JOIN deployments d ON d.id = r.deployment_id",
                    None,
                ),
                DeploymentSet::Live => (
                    "SELECT body FROM deployments WHERE live = 1 ORDER BY start_time, id",
                    None,
                ),
                DeploymentSet::HooksPending => (
                    "SELECT body FROM deployments WHERE live = 0 AND json_extract(body, '$.rollout.hooks_pending') = 1 ORDER BY id",
                    None,
                ),
                DeploymentSet::Group(g) => (
                    "SELECT body FROM deployments WHERE json_extract(body, '$.rollout.group') = ?1 ORDER BY id",
                    Some(g.clone()),
                ),
            };
            let bodies: Vec<String> = c
                .prepare_cached(sql)
                .and_then(|mut s| {
                    match &arg {
                        Some(a) => s.query_map([a], |r| r.get(0))?.collect(),
                        None => s.query_map([], |r| r.get(0))?.collect(),
                    }
                })
                .map_err(sql_err)?;
            bodies
                .iter()
                .map(|b| serde_json::from_str(b).map_err(json_err))
                .collect()
        })
        .await
    }

    pub(crate) async fn route_generation(&self) -> Result<i64> {
        self.read(|c| {
            c.prepare_cached("SELECT n FROM route_generation WHERE id = 1")
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .map_err(sql_err)
        })
        .await
    }

    pub(crate) async fn record_lane_buckets(
        &self,
        source: &str,
        buckets: Vec<LaneBucket>,
    ) -> Result<u64> {
        let source = source.to_string();
        let rows = buckets
            .into_iter()
            .map(|b| Ok((serde_json::to_string(&b.latency).map_err(json_err)?, b)))
            .collect::<Result<Vec<_>>>()?;
        self.writer
            .write(move |c| {
                let mut s = c
                    .prepare_cached(
                        "INSERT OR IGNORE INTO lane_buckets (deployment_id, second, lane, source, requests,
                         errors_5xx, errors_connect, errors_timeout, latency)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )
                    .map_err(sql_err)?;
                let mut n = 0;
                for (latency, b) in &rows {
                    n += s
                        .execute(params![
                            b.deployment_id,
                            b.second,
                            b.lane.as_str(),
                            source,
                            b.requests as i64,
                            b.errors_5xx as i64,
                            b.errors_connect as i64,
                            b.errors_timeout as i64,
                            latency
                        ])
                        .map_err(sql_err)? as u64;
                }
                Ok(n)
            })
            .await
    }

    pub(crate) async fn lane_buckets(
        &self,
        deployment_id: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<LaneBucket>> {
        let id = deployment_id.to_string();
        self.read(move |c| lane_buckets_on(c, &id, from, to)).await
    }

    /// Several deployments' lanes, each over its own range, on one connection
    /// in one hand-off to the reading thread (the controller's per-tick read).
    pub(crate) async fn lane_windows_many(
        &self,
        ranges: Vec<(String, Timestamp, Timestamp)>,
    ) -> Result<Vec<[LaneWindow; 2]>> {
        self.read(move |c| {
            ranges
                .iter()
                .map(|(id, from, to)| {
                    let mut w = super::canary::observation_windows_on(c, id, *from, *to)?;
                    for b in lane_buckets_on(c, id, second_of(*from), second_of(*to))? {
                        w[usize::from(b.lane.answered_by() == Lane::Canary)].add_bucket(&b);
                    }
                    Ok(w)
                })
                .collect()
        })
        .await
    }

    pub(crate) async fn touch_proxy(&self, p: ProxyInfo) -> Result<()> {
        self.writer
            .write(move |c| {
                c.execute(
                    "INSERT INTO proxies (id, name, kind, route_version, last_contact, dropped_buckets)
                     VALUES (?1, COALESCE(NULLIF(?2, ''), ?1), ?3, ?4, ?5, ?6)
                     ON CONFLICT (id) DO UPDATE SET
                       name = CASE WHEN ?2 = '' THEN proxies.name ELSE excluded.name END,
                       kind = excluded.kind,
                       route_version = CASE WHEN ?4 = '' THEN proxies.route_version ELSE excluded.route_version END,
                       last_contact = excluded.last_contact,
                       dropped_buckets = MAX(dropped_buckets, excluded.dropped_buckets)",
                    params![p.id, p.name, p.kind, p.route_version, micros(p.last_contact), p.dropped_buckets as i64],
                )
                .map_err(sql_err)?;
                Ok(())
            })
            .await
    }

    pub(crate) async fn list_proxies(&self, since: Timestamp) -> Result<Vec<ProxyInfo>> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT id, name, kind, route_version, last_contact, dropped_buckets FROM proxies
                 WHERE last_contact >= ?1 ORDER BY last_contact DESC, id",
            )
            .and_then(|mut s| {
                s.query_map([micros(since)], |r| {
                    Ok(ProxyInfo {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        kind: r.get(2)?,
                        route_version: r.get(3)?,
                        last_contact: instant_of(r.get(4)?),
                        dropped_buckets: r.get::<_, i64>(5)? as u64,
                    })
                })?
                .collect()
            })
            .map_err(sql_err)
        })
        .await
    }
}

/// A deployment's lane buckets for seconds `[from, to]`, on one connection.
fn lane_buckets_on(
    c: &rusqlite::Connection,
    id: &str,
    from: i64,
    to: i64,
) -> Result<Vec<LaneBucket>> {
    let id = id.to_string();
    type Row = (i64, String, i64, i64, i64, i64, String);
    let rows: Vec<Row> = c
        .prepare_cached(
            "SELECT second, lane, requests, errors_5xx, errors_connect, errors_timeout, latency
             FROM lane_buckets WHERE deployment_id = ?1 AND second >= ?2 AND second <= ?3
             ORDER BY second, lane",
        )
        .and_then(|mut s| {
            s.query_map(params![id, from, to], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })?
            .collect()
        })
        .map_err(sql_err)?;
    rows.into_iter()
        .filter_map(|(second, lane, req, e5, ec, et, lat)| {
            let lane = BucketLane::parse(&lane)?;
            Some(
                serde_json::from_str(&lat)
                    .map_err(json_err)
                    .map(|latency| LaneBucket {
                        deployment_id: id.clone(),
                        lane,
                        second,
                        requests: req as u64,
                        errors_5xx: e5 as u64,
                        errors_connect: ec as u64,
                        errors_timeout: et as u64,
                        latency,
                    }),
            )
        })
        .collect()
}
