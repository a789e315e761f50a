//! Who is calling, and may they?
//!
//! Callers present an API key as `Authorization: Bearer <key>` or `X-API-Key:
//! <key>`. Keys are random (`srn_` + 48 hex digits, 192 bits), shown
//! once when made, and stored only as their SHA-256: with that much entropy a
//! fast hash is enough, and a stolen database yields no usable key. A small cache
//! keeps the lookup off the hot path; it forgets entries after half a second, so
//! a revocation, a logout or a user's change on another replica takes effect on
//! this one within that time (at once on the replica that made it). Half a
//! second costs at most two indexed lookups a second per busy key, and keeps
//! revocation under a second everywhere without any channel between replicas.
//!
//! People log in instead (`POST /api/v1/auth/login`, see `crate::accounts`) and
//! get a session token (`srs_` + 48 hex digits) sent the same way. It is stored
//! only as its SHA-256 too, expires, and stops working when its user is
//! disabled, changes role or password, or logs out. Both kinds of caller become
//! the same [`Principal`], so there is one role policy.
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
const CACHE_TTL: Duration = Duration::from_millis(500);
/// Most keys cached at once.
const MAX_CACHED: usize = 10_000;

/// An authenticated caller: an API key, or a user's session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// The key's id, or the user's id for a session (what rate limits count).
    pub key_id: String,
    /// The key's name or the user's email: the actor recorded in events.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The session, when a user logged in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionInfo>,
}

impl Principal {
    /// Who this is, for the application's services.
    pub fn actor(&self) -> serin_app::Actor {
        serin_app::Actor {
            name: self.name.clone(),
            role: self.role,
            is_person: self.session.is_some(),
        }
    }
}

/// The session behind a principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// The session's id.
    pub id: String,
    /// The user's id.
    pub user_id: String,
    /// When it stops working.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// The prefix of session tokens (API keys have `srn_`).
pub const SESSION_PREFIX: &str = "srs_";

/// A fresh random key: `srn_` and 48 hex digits.
pub fn generate_key() -> Result<String, ApiError> {
    random_token("srn_")
}

/// `prefix` and 48 random hex digits (192 bits).
pub fn random_token(prefix: &str) -> Result<String, ApiError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
    Ok(format!("{prefix}{}", hex::encode(bytes)))
}

/// Hex SHA-256 of a key.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The WebSocket subprotocol that carries a token from a browser, which can't
/// set headers on a WebSocket: `new WebSocket(url, ["serin", token])`.
pub const WS_PROTOCOL: &str = "serin";

/// The key presented with a request, if any: `X-API-Key`, `Authorization:
/// Bearer`, or (a WebSocket from a browser) the token after the `serin`
/// subprotocol.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    if headers.get(header::AUTHORIZATION).is_none()
        && let Some(p) = headers
            .get(header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok())
    {
        let mut offered = p.split(',').map(str::trim);
        if offered.next() == Some(WS_PROTOCOL) {
            return offered.next();
        }
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
    if path == "/api/v1/auth/login"
        || path == "/docs"
        || path == "/redoc"
        || path.starts_with("/docs/assets/")
        || path == "/"
        || path == "/admin/canary"
        || path.starts_with("/ui/")
    {
        return None;
    }
    // What a remote proxy does, and all a proxy key may do.
    if path == "/api/v1/proxy/routes" || path == "/api/v1/proxy/metrics" {
        return Some(Role::Proxy);
    }
    // Flagger's webhooks are POSTs that only read a verdict.
    if path.starts_with(crate::routes::integrations::FLAGGER_PREFIX) {
        return Some(Role::Viewer);
    }
    // Anyone signed in may see who they are and log out.
    if path == "/api/v1/users/me" || path == "/api/v1/auth/logout" {
        return Some(Role::Viewer);
    }
    if path.starts_with("/api/v1/api-keys")
        || path.starts_with("/api/v1/users")
        || path.starts_with("/api/v1/secrets")
    {
        return Some(Role::Admin);
    }
    // Environments carry the approval policies: who may change them must not be
    // whoever the policies hold back.
    let mutating = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if mutating && path.starts_with("/api/v1/products/") && path.contains("/environments") {
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
    /// The principal for `key` (an API key or a session token), or 401.
    pub async fn authenticate(
        &self,
        store: &Store,
        key: Option<&str>,
    ) -> Result<Principal, ApiError> {
        let key = key.filter(|k| !k.is_empty()).ok_or_else(|| {
            ApiError::unauthorized(
                "send an API key or a session token as `Authorization: Bearer <token>` or `X-API-Key: <key>`",
            )
        })?;
        if key.starts_with(SESSION_PREFIX) {
            return self.session(store, key).await;
        }
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
                    self.remember(hash, p);
                }
                found
            }
        };
        principal.ok_or_else(|| ApiError::unauthorized("the API key is unknown or revoked"))
    }

    /// The principal of a session token, or 401.
    async fn session(&self, store: &Store, token: &str) -> Result<Principal, ApiError> {
        let hash = hash_key(token);
        let found = store.live_session(&hash, chrono::Utc::now()).await?;
        let p = found
            .map(|s| Principal {
                key_id: s.user.id.clone(),
                name: s.user.email,
                role: s.user.role,
                session: Some(SessionInfo {
                    id: s.id,
                    user_id: s.user.id,
                    expires_at: s.expires_at,
                }),
            })
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "the session has expired or ended; log in again (POST /api/v1/auth/login)",
                )
            })?;
        self.remember(hash, &p);
        Ok(p)
    }

    fn remember(&self, hash: String, p: &Principal) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
        }
        if cache.len() < MAX_CACHED {
            cache.insert(hash, (Some(p.clone()), Instant::now()));
        }
    }

    /// The principal for `key` if it was verified recently (no database lookup).
    /// A session is never taken from the cache past its expiry.
    pub fn cached(&self, key: Option<&str>) -> Option<Principal> {
        let hash = hash_key(key.filter(|k| !k.is_empty())?);
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(&hash)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .and_then(|(p, _)| p.clone())
            .filter(|p| {
                p.session
                    .as_ref()
                    .is_none_or(|s| s.expires_at > chrono::Utc::now())
            })
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
        session: None,
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
        assert_eq!(required_role(&Method::POST, "/api/v1/auth/login"), None);
        assert_eq!(
            required_role(&Method::POST, "/api/v1/auth/logout"),
            Some(Role::Viewer)
        );
        assert_eq!(
            required_role(&Method::GET, "/api/v1/users/me"),
            Some(Role::Viewer)
        );
        assert_eq!(
            required_role(&Method::GET, "/api/v1/users"),
            Some(Role::Admin)
        );
        assert_eq!(
            required_role(
                &Method::PATCH,
                "/api/v1/products/shop/environments/production"
            ),
            Some(Role::Admin)
        );
        assert_eq!(
            required_role(&Method::GET, "/api/v1/products/shop/environments"),
            Some(Role::Viewer)
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
        let mut ws = HeaderMap::new();
        ws.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            "serin, srs_z".parse().unwrap(),
        );
        assert_eq!(presented_key(&ws), Some("srs_z"));
        ws.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            "chat, srs_z".parse().unwrap(),
        );
        assert_eq!(presented_key(&ws), None);
    }
}
