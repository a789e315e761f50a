//! Which lane a job or request goes to.
//!
//! The lane of a *keyed* job is a pure function of the deployment, the key and the
//! percentage, so a producer, the server, the proxy and an SDK all agree without
//! talking to each other. The hash, exactly (SDKs reproduce it):
//!
//! ```text
//! h      = FNV-1a 64-bit over the bytes of: salt ‖ 0x1F ‖ key
//!          (offset basis 0xcbf29ce484222325, prime 0x100000001b3)
//! bucket = h mod 10000
//! canary ⇔ bucket < percent × 100
//! ```
//!
//! The salt is the deployment's id, so each new canary draws a fresh cohort. Since
//! the comparison is `bucket < percent × 100`, raising the percentage only ever moves
//! keys from stable to canary, and lowering it only moves them back: a key never
//! flips while the percentage holds. Without a key (or without sticky routing) the
//! caller supplies a uniformly random bucket.
//!
//! Where a lane's jobs physically go depends on the routing strategy:
//! `split_queue` sends canary jobs to `<queue>:canary` and leaves stable on
//! `<queue>`; `stream_group` keeps one stream `<queue>` and names a consumer group
//! per lane, `<queue>:<lane>`; `hash_ring` always keys by the job key and uses
//! `<queue>:<lane>` for both lanes.

use serde::{Deserialize, Serialize};

use super::Lane;
use crate::canary::{Deployment, RoutingStrategy};

/// Buckets a key is hashed into.
pub const BUCKETS: u32 = 10_000;

/// The bucket of `key` under `salt` (see the module docs for the exact hash).
pub fn bucket(salt: &str, key: &str) -> u32 {
    bucket_after(salt_state(salt), key)
}

/// The hash state after `salt ‖ 0x1F`. FNV-1a runs byte by byte, so a caller that
/// routes many keys under one deployment computes this once.
pub fn salt_state(salt: &str) -> u64 {
    fnv(0xcbf2_9ce4_8422_2325, salt.as_bytes().iter().chain(&[0x1F]))
}

/// The bucket of `key`, continuing from a [`salt_state`].
pub fn bucket_after(state: u64, key: &str) -> u32 {
    (fnv(state, key.as_bytes()) % u64::from(BUCKETS)) as u32
}

/// FNV-1a 64 from state `h` over `bytes` (also the route-set fingerprint).
pub(crate) fn fnv<'a>(mut h: u64, bytes: impl IntoIterator<Item = &'a u8>) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Whether `bucket` falls in the canary share at `percent`.
pub fn in_canary(bucket: u32, percent: u8) -> bool {
    bucket < u32::from(percent.min(100)) * 100
}

/// Where a job goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RouteDecision {
    /// The live deployment on this queue, if any.
    pub deployment_id: Option<String>,
    /// The lane chosen.
    pub lane: Lane,
    /// The queue (or stream) to publish to.
    pub queue: String,
    /// The consumer group that reads this lane (`stream_group` only).
    pub consumer_group: Option<String>,
    /// The canary share the decision used.
    pub percentage: u8,
    /// Whether the decision came from the key's hash (same key, same lane).
    pub sticky: bool,
    /// The key's bucket, when keyed.
    pub bucket: Option<u32>,
}

/// Chooses the lane for a job on `deployment` (`None`: no live deployment).
/// `random_bucket` (0..10000) is used only when the decision isn't keyed.
pub fn choose_lane(
    deployment: &Deployment,
    key: Option<&str>,
    random_bucket: u32,
) -> (Lane, Option<u32>) {
    let p = deployment.current_percent;
    let keyed = key.filter(|_| {
        deployment.config.sticky_routing
            || deployment.config.routing_strategy == RoutingStrategy::HashRing
    });
    let b = keyed.map(|k| bucket(&deployment.id, k));
    let lane = if in_canary(b.unwrap_or(random_bucket), p) {
        Lane::Canary
    } else {
        Lane::Stable
    };
    (lane, b)
}

/// The whole decision for a job on `queue`.
pub fn route_job(
    queue: &str,
    deployment: Option<&Deployment>,
    key: Option<&str>,
    random_bucket: u32,
) -> RouteDecision {
    let Some(d) = deployment.filter(|d| d.status.is_live()) else {
        return RouteDecision {
            deployment_id: None,
            lane: Lane::Stable,
            queue: queue.to_string(),
            consumer_group: None,
            percentage: 0,
            sticky: false,
            bucket: None,
        };
    };
    let (lane, b) = choose_lane(d, key, random_bucket);
    let (target, group) = match d.config.routing_strategy {
        RoutingStrategy::SplitQueue => match lane {
            Lane::Stable => (queue.to_string(), None),
            Lane::Canary => (format!("{queue}:canary"), None),
        },
        RoutingStrategy::StreamGroup => (queue.to_string(), Some(format!("{queue}:{lane}"))),
        RoutingStrategy::HashRing => (format!("{queue}:{lane}"), None),
    };
    RouteDecision {
        deployment_id: Some(d.id.clone()),
        lane,
        queue: target,
        consumer_group: group,
        percentage: d.current_percent,
        sticky: b.is_some(),
        bucket: b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hash_is_pinned() {
        // Reference values, computed by an independent implementation (Python);
        // SDKs must reproduce them exactly.
        assert_eq!(bucket("canary_1", "user-42"), 9_810);
        let h = {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in b"d\x1fk" {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            h
        };
        assert_eq!(bucket("d", "k"), (h % 10_000) as u32);
        assert_eq!(bucket("d", "k"), 1_725);
        assert_eq!(bucket_after(salt_state("canary_1"), "user-42"), 9_810);
    }

    #[test]
    fn extremes() {
        for b in [0, 1, 9_999] {
            assert!(!in_canary(b, 0));
            assert!(in_canary(b, 100));
        }
        assert!(in_canary(999, 10) && !in_canary(1_000, 10));
    }

    proptest! {
        /// Raising the percentage never moves a key from canary back to stable.
        #[test]
        fn monotone(key in ".{0,40}", salt in "[a-z0-9_]{1,20}", a in 0u8..=100, b in 0u8..=100) {
            let (lo, hi) = (a.min(b), a.max(b));
            let k = bucket(&salt, &key);
            prop_assert!(k < BUCKETS);
            if in_canary(k, lo) { prop_assert!(in_canary(k, hi)); }
        }

        /// The canary share of many keys is close to the percentage.
        #[test]
        fn share_is_close(p in 0u8..=100, salt in "[a-z]{3,8}") {
            let n = 20_000;
            let c = (0..n).filter(|i| in_canary(bucket(&salt, &format!("user-{i}")), p)).count();
            let share = c as f64 / n as f64 * 100.0;
            prop_assert!((share - f64::from(p)).abs() < 1.5, "{share} vs {p}");
        }
    }
}
