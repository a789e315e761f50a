//! Finished lane seconds on their way home.
//!
//! Whoever carries a proxy's seconds to the store (the embedded proxy's bridge
//! in the control plane) or to the control plane (`serin proxy`) keeps them
//! here until they are acknowledged: at most `capacity`, the oldest dropped
//! first and every drop counted, so a long outage costs old seconds, never
//! memory, and the loss is reported.

use std::collections::VecDeque;

use serin_core::traffic::proxy::LaneBucket;

use crate::Proxy;

/// Seconds taken from a proxy and not yet acknowledged.
#[derive(Debug)]
pub struct Backlog {
    /// Oldest first.
    pub buckets: VecDeque<LaneBucket>,
    /// Seconds dropped so far (here, or by the proxy because nobody drained them).
    pub dropped: u64,
    capacity: usize,
}

impl Backlog {
    /// An empty backlog of at most `capacity` seconds.
    pub fn new(capacity: usize) -> Self {
        Backlog {
            buckets: VecDeque::new(),
            dropped: 0,
            capacity,
        }
    }

    /// Takes the seconds the proxy finished before `now_sec`.
    pub fn take_finished(&mut self, proxy: &Proxy, now_sec: i64) {
        let (fresh, dropped) = proxy.registry().drain(now_sec);
        self.dropped += dropped;
        for b in fresh {
            if self.buckets.len() >= self.capacity {
                self.buckets.pop_front();
                self.dropped += 1;
            }
            self.buckets.push_back(b);
        }
    }

    /// Takes every second, the one still open included: for when the proxy
    /// has stopped serving and nothing more will be counted.
    pub fn take_all(&mut self, proxy: &Proxy) {
        self.take_finished(proxy, i64::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProxyConfig;
    use crate::stats::Outcome;
    use serin_core::Lane;

    #[test]
    fn the_oldest_go_first_and_every_loss_is_counted() {
        let proxy = Proxy::new(&ProxyConfig {
            keep_seconds: true,
            ..ProxyConfig::default()
        });
        let lane = proxy.registry().lane("d", Lane::Stable);
        for sec in 1..=5 {
            lane.record(sec, Outcome::Status(200), 1);
        }
        let mut b = Backlog::new(3);
        b.take_finished(&proxy, 5);
        assert_eq!(b.buckets.len(), 3);
        assert_eq!((b.buckets[0].second, b.dropped), (2, 1));
        b.take_all(&proxy);
        assert_eq!((b.buckets.back().unwrap().second, b.dropped), (5, 2));
    }
}
