//! Passwords and logins.
//!
//! Passwords are hashed with Argon2id at OWASP's recommended parameters (19 MiB
//! of memory, 2 passes, 1 lane: the `argon2` crate's defaults), which cost tens
//! of milliseconds of one core per hash. That cost is the point — it is what
//! makes a stolen hash expensive to guess — and also a way to starve the API,
//! so hashing runs on the blocking pool behind a semaphore with one permit per
//! two cores: however many logins arrive, at most that many cores hash at once
//! and the async workers keep answering everything else. A login that can't get
//! a permit within a few seconds is refused with 503 rather than queued forever.
//!
//! Guessing is slowed per email and client address ([`Throttle`], keyed by
//! both, the address read through trusted proxies by `crate::peer`): after
//! five wrong passwords in a row from one address each further attempt from
//! it must wait 1 s, 2 s, 4 s … up to 15 minutes
//! (`serin_core::user::login_delay`), and is refused with 429 and
//! `Retry-After` before any hashing. Every attempt counts as a failure from
//! the moment it starts until it succeeds, so parallel guesses are counted
//! too. Keyed by address as well, a guesser can't lock an account's owner out:
//! the owner's own address has no failures, and a right password from it is
//! never refused. Failed logins also use up the client address's allowance of failed
//! authentications (`--auth-failure-limit`), which limits trying one password
//! across many emails. The count is kept on the user (`failed_logins`,
//! written after the answer) and in `serin_logins_total`. An unknown email
//! costs the same hash as a known one, so timing doesn't tell which emails
//! exist. The throttle's counts are in the database (`serin_store::throttle`,
//! under a hash of the address and email), so every replica of a cluster
//! slows the same guesser the same way and a restart doesn't reset them.

use std::sync::Arc;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// How long a login may wait for a hashing permit.
const PERMIT_WAIT: Duration = Duration::from_secs(5);

/// Hashes and checks passwords, a few at a time.
#[derive(Debug, Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// A hash of a random password, checked for unknown emails.
    decoy: Arc<str>,
}

impl Default for Passwords {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let decoy = hash_now("not a password anyone has").unwrap_or_default();
        Passwords {
            permits: Arc::new(Semaphore::new((cores / 2).max(1))),
            decoy: decoy.into(),
        }
    }
}

fn hash_now(password: &str) -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    let salt = SaltString::encode_b64(&bytes).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

fn verify_now(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

impl Passwords {
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = tokio::time::timeout(PERMIT_WAIT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| {
                ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "LOGIN_BUSY",
                    "too many logins at once; retry in a few seconds",
                )
            })?
            .map_err(|e| ApiError::internal(format!("hash permits closed: {e}")))?;
        let out = tokio::task::spawn_blocking(move || {
            let out = f();
            drop(permit);
            out
        })
        .await
        .map_err(|e| ApiError::internal(format!("hashing task failed: {e}")))?;
        Ok(out)
    }

    /// The Argon2id hash (PHC string) of a new password.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.run(move || hash_now(&password))
            .await?
            .map_err(|e| ApiError::internal(format!("argon2: {e}")))
    }

    /// Whether `password` matches `hash`; with no hash (an unknown email) the
    /// decoy is checked, so the answer takes as long and is always no.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, ApiError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.decoy.to_string());
        let ok = self.run(move || verify_now(&password, &hash)).await?;
        Ok(ok && known)
    }
}

/// Consecutive wrong passwords per client address and email, in the store.
#[derive(Debug, Clone)]
pub struct Throttle {
    store: serin_store::Store,
}

impl Throttle {
    /// The throttle over `store`'s counts.
    pub fn new(store: serin_store::Store) -> Throttle {
        Throttle { store }
    }

    /// The stored key: a hash, so the table names no address or email.
    fn key(client_and_email: &str) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(client_and_email.as_bytes()))
    }

    /// Starts an attempt: refused with the time left while it must wait;
    /// otherwise counted as a failure at once (parallel guesses are decided
    /// one at a time, so none slips past the check), until
    /// [`Throttle::succeeded`] forgets it.
    pub async fn begin(
        &self,
        client_and_email: &str,
        now: serin_core::Timestamp,
    ) -> Result<Result<(), Duration>, serin_store::StoreError> {
        let wait = self
            .store
            .login_attempt(&Self::key(client_and_email), now)
            .await?;
        Ok(wait.map_or(Ok(()), Err))
    }

    /// Forgets the failures after a success.
    pub async fn succeeded(&self, client_and_email: &str) -> Result<(), serin_store::StoreError> {
        self.store
            .login_succeeded(&Self::key(client_and_email))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_unknown_users_never_pass() {
        let p = Passwords::default();
        let h = p.hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(
            p.verify("correct horse".into(), Some(h.clone()))
                .await
                .unwrap()
        );
        assert!(!p.verify("wrong horse".into(), Some(h)).await.unwrap());
        assert!(
            !p.verify("not a password anyone has".into(), None)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn the_throttle_waits_after_five_failures() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/serin.db", dir.path().display());
        let store = serin_store::Store::connect(&url, &serin_store::StoreOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let t = Throttle::new(store);
        let now = chrono::Utc::now();
        for _ in 0..5 {
            assert_eq!(t.begin("a@b.co", now).await.unwrap(), Ok(()));
        }
        assert!(
            t.begin("a@b.co", now)
                .await
                .unwrap()
                .is_err_and(|d| d <= Duration::from_secs(1))
        );
        assert_eq!(
            t.begin("other@b.co", now).await.unwrap(),
            Ok(()),
            "per email"
        );
        t.succeeded("a@b.co").await.unwrap();
        assert_eq!(t.begin("a@b.co", now).await.unwrap(), Ok(()));
    }
}
