//! Lane seconds from an engine's own records, so the judges and the
//! sequential tests of a deployment an engine splits see its traffic as they
//! see the proxy's.
//!
//! An engine that records request by request (nginx's access log, see
//! `accesslog`) hands over whole seconds, latency included, each tick. The
//! rest keep counters:
//!
//! Each controller tick (on the leader) reads every engine deployment's lane
//! counters, keeps the growth since the last read, and once a new second has
//! begun stores what grew as that deployment's lane buckets for the second
//! just ended (source `engine:NAME`): counts of requests and errors by kind.
//! The first read after a start (or a new leader) only sets the baseline; a
//! counter that went down (the engine restarted) starts a new one. HAProxy's
//! counters carry no latency distribution, so these buckets have none: the
//! latency judges see no samples from HAProxy (they are inconclusive, not
//! passing).

use std::collections::HashMap;
use std::sync::Mutex;

use serin_core::Lane;
use serin_core::canary::Deployment;
use serin_core::traffic::proxy::LaneBucket;

use super::Counters;
use crate::App;

/// What the last read saw of a deployment: the totals, and what grew since
/// the last stored second.
#[derive(Debug, Clone, Default)]
struct Seen {
    totals: [Counters; 2],
    pending: [Counters; 2],
    second: i64,
}

/// The leader's memory of every engine deployment's counters.
#[derive(Debug, Default)]
pub struct Tallies(Mutex<HashMap<String, Seen>>);

impl Tallies {
    /// Forgets deployments that are not in `keep`.
    pub fn retain(&self, keep: &std::collections::HashSet<&str>) {
        self.0
            .lock()
            .expect("tallies lock")
            .retain(|k, _| keep.contains(k.as_str()));
    }

    /// Forgets everything (a term ended).
    pub fn clear(&self) {
        self.0.lock().expect("tallies lock").clear();
    }

    /// Folds `now_totals`, read at `second`, into `id`'s tally; the buckets to
    /// store when a new second began.
    fn fold(&self, id: &str, now_totals: [Counters; 2], second: i64) -> Vec<(Lane, Counters, i64)> {
        let mut all = self.0.lock().expect("tallies lock");
        let Some(seen) = all.get_mut(id) else {
            all.insert(
                id.to_string(),
                Seen {
                    totals: now_totals,
                    pending: Default::default(),
                    second,
                },
            );
            return Vec::new();
        };
        for (i, lane) in now_totals.iter().enumerate() {
            match lane.since(&seen.totals[i]) {
                Some(grew) => seen.pending[i].add(&grew),
                // Restarted: what it counted since is all new.
                None => seen.pending[i].add(lane),
            }
        }
        seen.totals = now_totals;
        if second <= seen.second {
            return Vec::new();
        }
        let out = [Lane::Stable, Lane::Canary]
            .into_iter()
            .zip(std::mem::take(&mut seen.pending))
            .filter(|(_, c)| c.requests > 0 || c.errors_connect > 0)
            .map(|(lane, c)| (lane, c, second - 1))
            .collect();
        seen.second = second;
        out
    }
}

/// Reads `d`'s engine counters and stores the second that ended, if one did.
pub async fn sample(app: &App, tallies: &Tallies, d: &Deployment) {
    let Some(target) = &d.engine else {
        return;
    };
    let Ok(engine) = app.config.engines.get(&target.engine) else {
        return;
    };
    // Request by request (an access log): whole seconds, a second's grace
    // for lines written late.
    let source = format!("engine:{}", target.engine);
    match engine.lane_seconds(target, app.now().timestamp() - 1).await {
        Ok(Some(seconds)) => {
            let buckets: Vec<LaneBucket> = seconds
                .into_iter()
                .map(|(lane, second, s)| LaneBucket {
                    deployment_id: d.id.clone(),
                    lane: lane.into(),
                    second,
                    requests: s.requests,
                    errors_5xx: s.errors_5xx,
                    errors_connect: s.errors_connect,
                    errors_timeout: 0,
                    latency: s.latency,
                })
                .collect();
            if !buckets.is_empty()
                && let Err(e) = app.store.record_lane_buckets(&source, buckets).await
            {
                tracing::warn!(deployment = %d.id, error = %e, "cannot store a traffic engine's lane seconds");
            }
            return;
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(deployment = %d.id, error = %e, "cannot read a traffic engine's lane seconds");
            return;
        }
    }
    // Counters (HAProxy; a gateway's Prometheus): what grew each second,
    // latency too where the engine keeps a histogram.
    let totals = match engine.counters(target).await {
        Ok(Some(t)) => t,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(deployment = %d.id, error = %e, "cannot read a traffic engine's counters");
            return;
        }
    };
    let second = app.now().timestamp();
    let buckets: Vec<LaneBucket> = tallies
        .fold(&d.id, totals, second)
        .into_iter()
        .map(|(lane, c, second)| LaneBucket {
            deployment_id: d.id.clone(),
            lane: lane.into(),
            second,
            requests: c.requests + c.errors_connect,
            errors_5xx: c.errors_5xx,
            errors_connect: c.errors_connect,
            errors_timeout: c.errors_response,
            latency: c.latency.histogram(),
        })
        .collect();
    if buckets.is_empty() {
        return;
    }
    if let Err(e) = app.store.record_lane_buckets(&source, buckets).await {
        tracing::warn!(deployment = %d.id, error = %e, "cannot store a traffic engine's lane seconds");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(requests: u64, errors_5xx: u64) -> Counters {
        Counters {
            requests,
            errors_5xx,
            ..Default::default()
        }
    }

    #[test]
    fn growth_is_stored_once_per_second() {
        let t = Tallies::default();
        assert!(
            t.fold("d", [c(100, 0), c(10, 1)], 10).is_empty(),
            "the baseline"
        );
        // Same second: kept for later.
        assert!(t.fold("d", [c(150, 0), c(15, 1)], 10).is_empty());
        let got = t.fold("d", [c(190, 0), c(20, 3)], 11);
        assert_eq!(
            got,
            vec![(Lane::Stable, c(90, 0), 10), (Lane::Canary, c(10, 2), 10)]
        );
        // A restart (counters went down) counts what it saw since as new.
        let got = t.fold("d", [c(5, 0), c(1, 1)], 12);
        assert_eq!(
            got,
            vec![(Lane::Stable, c(5, 0), 11), (Lane::Canary, c(1, 1), 11)]
        );
    }
}
