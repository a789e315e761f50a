//! A short-lived cache of each product's latest stable release.
//!
//! `GET /release/{product}/latest` is what every deploy pipeline and application
//! asks, often; answering it means reading every released version of the product
//! and ranking them by semver. The answer changes only when a release changes, so
//! it is cached per product for [`TTL`], and every release write on this server
//! clears the cache at once. With several replicas, a change made through another
//! replica is seen here within [`TTL`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serin_core::Release;

/// How long a cached answer is trusted.
pub const TTL: Duration = Duration::from_secs(1);
/// Most products cached at once.
const MAX_PRODUCTS: usize = 10_000;

/// Latest stable release per product.
#[derive(Debug, Clone, Default)]
pub struct LatestCache {
    entries: Arc<Mutex<HashMap<String, (Release, Instant)>>>,
}

impl LatestCache {
    /// The cached answer for `product`, if fresh.
    pub fn get(&self, product: &str) -> Option<Release> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(product)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(r, _)| r.clone())
    }

    /// Remembers an answer.
    pub fn put(&self, product: &str, release: &Release) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_PRODUCTS {
            entries.retain(|_, (_, at)| at.elapsed() < TTL);
        }
        if entries.len() < MAX_PRODUCTS {
            entries.insert(product.to_string(), (release.clone(), Instant::now()));
        }
    }

    /// Forgets every answer (after any release write).
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}
