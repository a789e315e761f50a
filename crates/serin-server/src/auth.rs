//! Who is calling, and may they?
//!
//! Callers present an API key as `Authorization: Bearer <key>` or `X-API-Key:
//! <key>` (seed 004). Keys are random (`srn_` + 48 hex digits, 192 bits), shown
//! once when made, and stored only as their SHA-256: with that much entropy a
//! fast hash is enough, and a stolen database yields no usable key. A small cache
//! keeps the lookup off the hot path; it forgets entries after a few seconds, so a
//! revocation on another replica takes effect within that time (at once on this one).
//!
//! The role policy lives in one place, [`required_role`]: reads need `viewer`,
//! changes need `engineer`, key management needs `admin`. A few routes are public
//! (liveness, readiness, the OpenAPI document).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, header};
use serde::Serialize;
use serin_core::auth::Role;
use serin_store::Store;
use serin_store::canary::ApiKeyRecord;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// How long a looked-up key is trusted without asking the database again.
const CACHE_TTL: Duration = Duration::from_secs(5);
/// Most keys cached at once.
const MAX_CACHED: usize = 10_000;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// The key's id.
    pub key_id: String,
    /// The key's name: the actor recorded in events.
    pub name: String,
    /// What it may do.
    pub role: Role,
}

/// A fresh random key: `srn_` and 48 hex digits.
pub fn generate_key() -> Result<String, ApiError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
    Ok(format!("srn_{}", hex::encode(bytes)))
}

/// Hex SHA-256 of a key.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The key presented with a request, if any.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The least role a request needs; `None` for public routes.
pub fn required_role(method: &Method, path: &str) -> Option<Role> {
    if matches!(
        path,
        "/api/v1/health" | "/api/v1/ready" | "/openapi.json" | "/metrics" | "/api/v1/metrics"
    ) {
        return None;
    }
    if path.starts_with("/api/v1/api-keys") {
        return Some(Role::Admin);
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        Some(Role::Viewer)
    } else {
        Some(Role::Engineer)
    }
}

/// A looked-up valid key and when it was looked up.
type CacheEntry = (Option<Principal>, Instant);

/// Resolves keys to principals, with a short-lived cache.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    cache: Arc<Mutex<HashMap<String, CacheEntry>>>,
}

impl Authenticator {
    /// The principal for `key`, or 401.
    pub async fn authenticate(
        &self,
        store: &Store,
        key: Option<&str>,
    ) -> Result<Principal, ApiError> {
        let key = key.filter(|k| !k.is_empty()).ok_or_else(|| {
            ApiError::unauthorized(
                "send an API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`",
            )
        })?;
        let hash = hash_key(key);
        let cached = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache
                .get(&hash)
                .filter(|(_, at)| at.elapsed() < CACHE_TTL)
                .map(|(p, _)| p.clone())
        };
        let principal = match cached {
            Some(p) => p,
            None => {
                let found = store
                    .api_key_by_hash(&hash)
                    .await?
                    .filter(|k| k.revoked_at.is_none())
                    .map(principal_of);
                // Only valid keys are cached: a flood of made-up keys must not be able
                // to fill the cache and push the real ones out.
                if let Some(p) = &found {
                    let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                    if cache.len() >= MAX_CACHED {
                        cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
                    }
                    if cache.len() < MAX_CACHED {
                        cache.insert(hash, (Some(p.clone()), Instant::now()));
                    }
                }
                found
            }
        };
        principal.ok_or_else(|| ApiError::unauthorized("the API key is unknown or revoked"))
    }

    /// The principal for `key` if it was verified recently (no database lookup).
    pub fn cached(&self, key: Option<&str>) -> Option<Principal> {
        let hash = hash_key(key.filter(|k| !k.is_empty())?);
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(&hash)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .and_then(|(p, _)| p.clone())
    }

    /// Forgets every cached key (after a revocation).
    pub fn forget_all(&self) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

fn principal_of(k: ApiKeyRecord) -> Principal {
    Principal {
        key_id: k.id,
        name: k.name,
        role: k.role,
    }
}

/// 403 unless `principal` has `needed`.
pub fn authorize(principal: &Principal, needed: Role) -> Result<(), ApiError> {
    if principal.role.allows(needed) {
        Ok(())
    } else {
        Err(ApiError::forbidden(principal.role, needed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert_eq!(required_role(&Method::GET, "/api/v1/health"), None);
        assert_eq!(
            required_role(&Method::GET, "/api/v1/canary/deployments"),
            Some(Role::Viewer)
        );
        assert_eq!(
            required_role(&Method::PUT, "/api/v1/canary/deployments/x/percentage"),
            Some(Role::Engineer)
        );
        assert_eq!(
            required_role(&Method::GET, "/api/v1/api-keys"),
            Some(Role::Admin)
        );
        assert_eq!(
            required_role(&Method::POST, "/product"),
            Some(Role::Engineer)
        );
    }

    #[test]
    fn keys() {
        let k = generate_key().unwrap();
        assert!(k.starts_with("srn_") && k.len() == 52);
        assert_ne!(k, generate_key().unwrap());
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer srn_x".parse().unwrap());
        assert_eq!(presented_key(&h), Some("srn_x"));
        h.insert("x-api-key", "srn_y".parse().unwrap());
        assert_eq!(presented_key(&h), Some("srn_y"));
    }
}
