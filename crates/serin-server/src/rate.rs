//! Rate limiting per API key: a token bucket per key.
//!
//! Each key has a bucket of `burst` tokens that refills at `per_minute / 60`
//! tokens a second; a request takes one token or is refused with 429. Every
//! answer to an authenticated request carries `X-RateLimit-Limit` (requests per
//! minute), `X-RateLimit-Remaining` (whole tokens left) and `X-RateLimit-Reset`
//! (the Unix time at which the bucket will be full again). The clock is passed in,
//! so tests drive it by hand.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

pub use serin_app::RateLimit;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: f64,
}

/// What a request was told.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Whether it may proceed.
    pub allowed: bool,
    /// `X-RateLimit-Limit`.
    pub limit: u32,
    /// `X-RateLimit-Remaining`.
    pub remaining: u32,
    /// `X-RateLimit-Reset`, Unix seconds.
    pub reset: u64,
    /// Seconds until a token is available (when refused).
    pub retry_after: u64,
}

/// The buckets of all keys.
#[derive(Debug, Clone, Default)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
    /// How many replicas share the limit (each enforces its part); 1 alone.
    replicas: Arc<AtomicU32>,
}

impl RateLimiter {
    /// A limiter with these limits.
    pub fn new(limit: RateLimit) -> Self {
        RateLimiter {
            limit,
            buckets: Arc::default(),
            replicas: Arc::new(AtomicU32::new(1)),
        }
    }

    /// The same limiter, its limit shared by the `replicas` that serve the
    /// cluster: each enforces `1/replicas` of the rate and of the burst (at
    /// least one request), so a key spread over the replicas by a balancer
    /// gets its limit in all, never more; a key that reaches one replica only
    /// gets that replica's part. The counter is the cluster's live replicas,
    /// kept by the leadership task.
    #[must_use]
    pub fn shared_by(mut self, replicas: Arc<AtomicU32>) -> Self {
        self.replicas = replicas;
        self
    }

    /// This replica's part of the limit: tokens per second and the burst.
    fn part(&self) -> (f64, f64) {
        let n = f64::from(self.replicas.load(Ordering::Relaxed).max(1));
        let RateLimit { per_minute, burst } = self.limit;
        (
            f64::from(per_minute) / 60.0 / n,
            (f64::from(burst.max(1)) / n).max(1.0),
        )
    }

    /// Whether `key` has no token left at `now`, without taking one.
    pub fn exhausted(&self, key: &str, now: f64) -> bool {
        if self.limit.per_minute == 0 {
            return false;
        }
        let (rate, cap) = self.part();
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets.get(key).is_some_and(|b| {
            let refilled = b.tokens + (now - b.at).max(0.0) * rate;
            refilled.min(cap) < 1.0
        })
    }

    /// Takes a token for `key` at `now` (Unix seconds, fractional).
    pub fn check(&self, key: &str, now: f64) -> Option<Verdict> {
        let per_minute = self.limit.per_minute;
        if per_minute == 0 {
            return None;
        }
        let (rate, cap) = self.part();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: cap,
            at: now,
        });
        b.tokens = (b.tokens + (now - b.at).max(0.0) * rate).min(cap);
        b.at = now;
        let allowed = b.tokens >= 1.0;
        if allowed {
            b.tokens -= 1.0;
        }
        let reset = now + (cap - b.tokens) / rate;
        Some(Verdict {
            allowed,
            limit: per_minute,
            remaining: b.tokens.floor() as u32,
            reset: reset.ceil() as u64,
            retry_after: if allowed {
                0
            } else {
                ((1.0 - b.tokens) / rate).ceil() as u64
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_share_the_limit_and_each_keeps_at_least_one() {
        let n = Arc::new(AtomicU32::new(2));
        let r = RateLimiter::new(RateLimit {
            per_minute: 60,
            burst: 4,
        })
        .shared_by(n.clone());
        let t = 1_000.0;
        let allowed = (0..4).filter(|_| r.check("k", t).unwrap().allowed).count();
        assert_eq!(allowed, 2, "half the burst on each of two replicas");
        // Half the rate: one token every two seconds.
        assert!(!r.check("k", t + 1.5).unwrap().allowed);
        assert!(r.check("k", t + 2.1).unwrap().allowed);
        // Alone again: the whole limit.
        n.store(1, Ordering::Relaxed);
        let allowed = (0..5).filter(|_| r.check("j", t).unwrap().allowed).count();
        assert_eq!(allowed, 4);
        // Many replicas: each still lets one through.
        n.store(1_000, Ordering::Relaxed);
        assert!(r.check("i", t).unwrap().allowed);
    }

    #[test]
    fn burst_then_refill() {
        let r = RateLimiter::new(RateLimit {
            per_minute: 60,
            burst: 3,
        });
        let t = 1_000.0;
        let v: Vec<_> = (0..4).map(|_| r.check("k", t).unwrap()).collect();
        assert_eq!(
            v.iter().map(|v| v.allowed).collect::<Vec<_>>(),
            [true, true, true, false]
        );
        assert_eq!(
            (v[0].remaining, v[2].remaining, v[3].retry_after),
            (2, 0, 1)
        );
        assert!(r.check("other", t).unwrap().allowed, "buckets are per key");
        assert!(
            r.check("k", t + 1.0).unwrap().allowed,
            "one token a second at 60/min"
        );
        assert_eq!(
            r.check("k", t + 100.0).unwrap().remaining,
            2,
            "refills only to the burst"
        );
        assert!(
            RateLimiter::new(RateLimit {
                per_minute: 0,
                burst: 0
            })
            .check("k", t)
            .is_none()
        );
    }

    #[test]
    fn exhausted_peeks_without_taking() {
        let r = RateLimiter::new(RateLimit {
            per_minute: 60,
            burst: 1,
        });
        assert!(!r.exhausted("k", 0.0), "an unknown key has its full burst");
        r.check("k", 0.0);
        assert!(r.exhausted("k", 0.5));
        assert!(r.exhausted("k", 0.5), "peeking took nothing");
        assert!(!r.exhausted("k", 1.0), "refilled after a second at 60/min");
    }
}
