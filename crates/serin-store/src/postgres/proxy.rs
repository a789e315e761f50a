//! Route-set inputs, lane buckets and proxies on PostgreSQL.

use serin_core::Lane;
use serin_core::Timestamp;
use serin_core::canary::Deployment;
use serin_core::traffic::proxy::{BucketLane, LaneBucket, ProxyInfo};

use super::{PgStore, json_col, pg_err};
use crate::canary::{json_err, windows_from};
use crate::proxy::DeploymentSet;
use crate::proxy::second_of;
use crate::{Result, StoreError};
use serin_core::canary::metrics::LaneWindow;
use tokio_postgres::types::Json;

/// Lane buckets as column arrays for one `unnest` insert: deployment ids, seconds,
/// lanes, the four counters, latency histograms.
type Columns = (
    Vec<String>,
    Vec<i64>,
    Vec<String>,
    [Vec<i64>; 4],
    Vec<serde_json::Value>,
);

/// One range's outcome counts, latencies and gauges, as `windows_from` takes them.
type RangeRows = (
    Vec<(Lane, u64, u64)>,
    Vec<(Lane, f64)>,
    Vec<(Lane, String, f64)>,
);

impl PgStore {
    pub(crate) async fn deployment_set(&self, set: &DeploymentSet) -> Result<Vec<Deployment>> {
        let client = self.client().await?;
        let rows = match set {
            DeploymentSet::Routed => {
                client
                    .query(
                        "SELECT d.body FROM routes r JOIN deployments d ON d.id = r.deployment_id",
                        &[],
                    )
                    .await
            }
            DeploymentSet::Live => return self.live_set(&client).await,
            DeploymentSet::HooksPending => {
                client
                    .query(
                        "SELECT body FROM deployments WHERE NOT live AND body->'rollout'->>'hooks_pending' = 'true' ORDER BY id",
                        &[],
                    )
                    .await
            }
            DeploymentSet::Group(g) => client
                .query(
                    "SELECT body FROM deployments WHERE body->'rollout'->>'group' = $1 ORDER BY id",
                    &[g],
                )
                .await,
        }
        .map_err(pg_err)?;
        rows.into_iter().map(|r| json_col(&r, 0)).collect()
    }

    /// The live deployments, parsing only the bodies that changed since the
    /// last read: the query sends the revisions this store holds and gets a
    /// body back only where the row's revision differs. A controller tick
    /// reads the live set every second, and most of a thousand rollouts
    /// don't change between two ticks. Sound because every stored change of a
    /// body moves its revision (`crate::canary::apply_change`).
    async fn live_set(&self, client: &deadpool_postgres::Client) -> Result<Vec<Deployment>> {
        let (ids, revisions): (Vec<String>, Vec<i64>) = {
            let held = self.live.lock().expect("live set lock");
            held.iter()
                .map(|(id, d)| (id.clone(), d.revision as i64))
                .unzip()
        };
        let rows = client
            .query(
                "SELECT d.id, d.revision, CASE WHEN k.revision IS DISTINCT FROM d.revision THEN d.body END
                 FROM deployments d
                 LEFT JOIN unnest($1::text[], $2::bigint[]) AS k(id, revision) ON k.id = d.id
                 WHERE d.live ORDER BY d.start_time, d.id",
                &[&ids, &revisions],
            )
            .await
            .map_err(pg_err)?;
        // Each row's body: sent (it changed), or the one held now, if it is
        // still at the row's revision (a concurrent read may have changed
        // what is held since the revisions were sent).
        let mut got: Vec<(String, Option<Deployment>)> = {
            let held = self.live.lock().expect("live set lock");
            let mut got = Vec::with_capacity(rows.len());
            for r in &rows {
                let id: String = r.get(0);
                let revision: i64 = r.get(1);
                let sent = r
                    .try_get::<_, Option<Json<Deployment>>>(2)
                    .map_err(|e| StoreError::Backend(format!("stored JSON is unreadable: {e}")))?;
                let d = match sent {
                    Some(b) => Some(b.0),
                    None => held
                        .get(&id)
                        .filter(|d| d.revision as i64 == revision)
                        .cloned(),
                };
                got.push((id, d));
            }
            got
        };
        // Not held at the row's revision: read whole.
        let missing: Vec<&str> = got
            .iter()
            .filter(|(_, d)| d.is_none())
            .map(|(id, _)| id.as_str())
            .collect();
        if !missing.is_empty() {
            let rows = client
                .query(
                    "SELECT id, body FROM deployments WHERE id = ANY($1)",
                    &[&missing],
                )
                .await
                .map_err(pg_err)?;
            let mut read = std::collections::HashMap::with_capacity(rows.len());
            for r in &rows {
                read.insert(r.get::<_, String>(0), json_col::<Deployment>(r, 1)?);
            }
            for (id, d) in &mut got {
                if d.is_none() {
                    *d = read.remove(id.as_str());
                }
            }
        }
        let mut now_live = std::collections::HashMap::with_capacity(got.len());
        let mut out = Vec::with_capacity(got.len());
        for (id, d) in got {
            // A row deleted in between has nothing to read: it isn't live.
            if let Some(d) = d {
                out.push(d.clone());
                now_live.insert(id, d);
            }
        }
        // What is held becomes this read's set, except where a concurrent
        // read already holds a newer revision of a deployment.
        let mut held = self.live.lock().expect("live set lock");
        for (id, d) in now_live.iter_mut() {
            if let Some(newer) = held.remove(id).filter(|h| h.revision > d.revision) {
                *d = newer;
            }
        }
        *held = now_live;
        Ok(out)
    }

    pub(crate) async fn route_generation(&self) -> Result<i64> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT n FROM route_generation WHERE id = 1", &[])
            .await
            .map_err(pg_err)?;
        Ok(row.get(0))
    }

    pub(crate) async fn record_lane_buckets(
        &self,
        source: &str,
        buckets: Vec<LaneBucket>,
    ) -> Result<u64> {
        let client = self.client().await?;
        let mut cols: Columns = Default::default();
        for b in buckets {
            cols.4
                .push(serde_json::to_value(&b.latency).map_err(json_err)?);
            cols.0.push(b.deployment_id);
            cols.1.push(b.second);
            cols.2.push(b.lane.as_str().to_string());
            for (v, n) in cols.3.iter_mut().zip([
                b.requests,
                b.errors_5xx,
                b.errors_connect,
                b.errors_timeout,
            ]) {
                v.push(n as i64);
            }
        }
        let n = client
            .execute(
                "INSERT INTO lane_buckets (deployment_id, second, lane, source, requests, errors_5xx,
                   errors_connect, errors_timeout, latency)
                 SELECT d, s, l, $4, r, e5, ec, et, lat
                 FROM unnest($1::text[], $2::bigint[], $3::text[], $5::bigint[], $6::bigint[], $7::bigint[],
                             $8::bigint[], $9::jsonb[]) AS t(d, s, l, r, e5, ec, et, lat)
                 ON CONFLICT DO NOTHING",
                &[&cols.0, &cols.1, &cols.2, &source, &cols.3[0], &cols.3[1], &cols.3[2], &cols.3[3], &cols.4],
            )
            .await
            .map_err(pg_err)?;
        Ok(n)
    }

    pub(crate) async fn lane_buckets(
        &self,
        deployment_id: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<LaneBucket>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT second, lane, requests, errors_5xx, errors_connect, errors_timeout, latency
                 FROM lane_buckets WHERE deployment_id = $1 AND second >= $2 AND second <= $3
                 ORDER BY second, lane",
                &[&deployment_id, &from, &to],
            )
            .await
            .map_err(pg_err)?;
        rows.into_iter()
            .filter_map(|r| {
                let lane = BucketLane::parse(r.get::<_, &str>(1))?;
                Some(json_col(&r, 6).map(|latency| LaneBucket {
                    deployment_id: deployment_id.to_string(),
                    lane,
                    second: r.get(0),
                    requests: r.get::<_, i64>(2) as u64,
                    errors_5xx: r.get::<_, i64>(3) as u64,
                    errors_connect: r.get::<_, i64>(4) as u64,
                    errors_timeout: r.get::<_, i64>(5) as u64,
                    latency,
                }))
            })
            .collect()
    }

    /// Many deployments' lanes, each over its own range, in four queries
    /// whatever their number (`unnest` of the ranges joined to the tables):
    /// a controller tick over a thousand rollouts is four round trips, not
    /// four thousand.
    pub(crate) async fn lane_windows_many(
        &self,
        ranges: Vec<(String, Timestamp, Timestamp)>,
    ) -> Result<Vec<[LaneWindow; 2]>> {
        let ids: Vec<&str> = ranges.iter().map(|r| r.0.as_str()).collect();
        let from: Vec<Timestamp> = ranges.iter().map(|r| r.1).collect();
        let to: Vec<Timestamp> = ranges.iter().map(|r| r.2).collect();
        let lo: Vec<i64> = from.iter().map(|t| second_of(*t)).collect();
        let hi: Vec<i64> = to.iter().map(|t| second_of(*t)).collect();
        let obs = "FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) WITH ORDINALITY AS r(id, lo, hi, i)
                   JOIN observations o ON o.deployment_id = r.id AND o.ts >= r.lo AND o.ts <= r.hi";
        let args: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&ids, &from, &to];
        // The four reads go out together, each on its own connection, so the
        // tick waits for the slowest of them rather than for their sum.
        let outcome_sql = format!(
            "SELECT r.i, o.lane, COUNT(*) FILTER (WHERE o.value >= 1), COUNT(*) FILTER (WHERE o.value < 1)
             {obs} AND o.kind = 'outcome' GROUP BY r.i, o.lane"
        );
        let latency_sql = format!("SELECT r.i, o.lane, o.value {obs} AND o.kind = 'latency'");
        let gauge_sql = format!(
            "SELECT r.i, o.lane, o.name, o.value {obs} AND o.kind = 'gauge' ORDER BY r.i, o.ts, o.id"
        );
        let bucket_args: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&ids, &lo, &hi];
        let (outcomes, latencies, gauges, buckets) = tokio::try_join!(
            self.query_on_own(&outcome_sql, &args),
            self.query_on_own(&latency_sql, &args),
            self.query_on_own(&gauge_sql, &args),
            self.query_on_own(
                "SELECT r.i, b.second, b.lane, b.requests, b.errors_5xx, b.errors_connect, b.errors_timeout, b.latency
                 FROM unnest($1::text[], $2::bigint[], $3::bigint[]) WITH ORDINALITY AS r(id, lo, hi, i)
                 JOIN lane_buckets b ON b.deployment_id = r.id AND b.second >= r.lo AND b.second <= r.hi
                 ORDER BY r.i, b.second, b.lane",
                &bucket_args,
            ),
        )?;
        let n = ranges.len();
        let at = |r: &tokio_postgres::Row| {
            usize::try_from(r.get::<_, i64>(0) - 1)
                .ok()
                .filter(|i| *i < n)
        };
        let lane = |r: &tokio_postgres::Row| Lane::parse(r.get::<_, &str>(1));
        let mut parts: Vec<RangeRows> = (0..n).map(|_| Default::default()).collect();
        for r in &outcomes {
            if let (Some(i), Some(l)) = (at(r), lane(r)) {
                parts[i]
                    .0
                    .push((l, r.get::<_, i64>(2) as u64, r.get::<_, i64>(3) as u64));
            }
        }
        for r in &latencies {
            if let (Some(i), Some(l)) = (at(r), lane(r)) {
                parts[i].1.push((l, r.get(2)));
            }
        }
        for r in &gauges {
            if let (Some(i), Some(l)) = (at(r), lane(r)) {
                parts[i].2.push((l, r.get(2), r.get(3)));
            }
        }
        let mut out: Vec<[LaneWindow; 2]> = parts
            .into_iter()
            .map(|(o, l, g)| windows_from(o, l, g))
            .collect();
        for r in &buckets {
            let (Some(i), Some(l)) = (at(r), BucketLane::parse(r.get::<_, &str>(2))) else {
                continue;
            };
            let b = LaneBucket {
                deployment_id: ranges[i].0.clone(),
                lane: l,
                second: r.get(1),
                requests: r.get::<_, i64>(3) as u64,
                errors_5xx: r.get::<_, i64>(4) as u64,
                errors_connect: r.get::<_, i64>(5) as u64,
                errors_timeout: r.get::<_, i64>(6) as u64,
                latency: json_col(r, 7)?,
            };
            out[i][usize::from(l.answered_by() == Lane::Canary)].add_bucket(&b);
        }
        Ok(out)
    }

    /// One query on a connection of its own from the pool.
    async fn query_on_own(
        &self,
        sql: &str,
        args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>> {
        let client = self.client().await?;
        client.query(sql, args).await.map_err(pg_err)
    }

    pub(crate) async fn touch_proxy(&self, p: ProxyInfo) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO proxies (id, name, kind, route_version, last_contact, dropped_buckets)
                 VALUES ($1, COALESCE(NULLIF($2, ''), $1), $3, $4, $5, $6)
                 ON CONFLICT (id) DO UPDATE SET
                   name = CASE WHEN $2 = '' THEN proxies.name ELSE excluded.name END,
                   kind = excluded.kind,
                   route_version = CASE WHEN $4 = '' THEN proxies.route_version ELSE excluded.route_version END,
                   last_contact = excluded.last_contact,
                   dropped_buckets = GREATEST(proxies.dropped_buckets, excluded.dropped_buckets)",
                &[
                    &p.id,
                    &p.name,
                    &p.kind,
                    &p.route_version,
                    &p.last_contact,
                    &(p.dropped_buckets as i64),
                ],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    pub(crate) async fn list_proxies(&self, since: Timestamp) -> Result<Vec<ProxyInfo>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, name, kind, route_version, last_contact, dropped_buckets FROM proxies
                 WHERE last_contact >= $1 ORDER BY last_contact DESC, id",
                &[&since],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows
            .into_iter()
            .map(|r| ProxyInfo {
                id: r.get(0),
                name: r.get(1),
                kind: r.get(2),
                route_version: r.get(3),
                last_contact: r.get(4),
                dropped_buckets: r.get::<_, i64>(5) as u64,
            })
            .collect())
    }
}
