//! The state every handler shares: cheap to clone, all `Arc`s inside.

use std::sync::Arc;

use axum::extract::FromRef;
use serin_app::App;
use serin_store::Store;

use crate::accounts::{Passwords, Throttle};
use crate::auth::Authenticator;
use crate::rate::{RateLimit, RateLimiter};

pub use serin_app::{Clock, Config as ServerConfig};

/// Shared handler state: the application's services and the HTTP
/// cross-cutting parts.
///
/// Handlers take the narrow part they need as a sub-state (`State<App>` for
/// the services, `State<Authenticator>` to forget a revoked key,
/// `State<Logins>` for logins and accounts, `State<Streams>` for
/// live streams), each extracted with [`FromRef`]; only the guard and the
/// router builder see the whole. It also dereferences to [`App`] for them.
#[derive(Clone)]
pub struct AppState {
    /// The application's services.
    pub app: App,
    /// API key resolution.
    pub auth: Authenticator,
    /// Per-key rate limits.
    pub rate: RateLimiter,
    /// Per-user rate limits of login sessions: three times a key's, since one
    /// dashboard page fans out into several requests.
    pub session_rate: RateLimiter,
    /// Failed authentications per client address.
    pub auth_failures: RateLimiter,
    /// Open live event streams (WebSocket), bounded.
    pub streams: Streams,
    /// Password hashing, a few at a time.
    pub passwords: Passwords,
    /// Wrong passwords per address and email (in the store: shared by replicas).
    pub throttle: Throttle,
}

impl std::ops::Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.app
    }
}

/// The permits of open live event streams, bounded by [`MAX_STREAMS`].
#[derive(Clone, Debug)]
pub struct Streams(pub Arc<tokio::sync::Semaphore>);

macro_rules! sub_state {
    ($($field:ident: $ty:ty),* $(,)?) => {$(
        impl FromRef<AppState> for $ty {
            fn from_ref(s: &AppState) -> $ty {
                s.$field.clone()
            }
        }
    )*};
}

sub_state! {
    app: App,
    auth: Authenticator,
    streams: Streams,
}

/// What logging in needs besides the services: the password hasher, the
/// per-email back-off, the per-address failure limit, and the key cache that
/// a changed account must clear.
#[derive(Clone, Debug)]
pub struct Logins {
    /// Password hashing, a few at a time.
    pub passwords: Passwords,
    /// Wrong passwords per address and email (in the store: shared by replicas).
    pub throttle: Throttle,
    /// Failed authentications per client address.
    pub failures: RateLimiter,
    /// Sessions and keys, cached.
    pub auth: Authenticator,
}

impl FromRef<AppState> for Logins {
    fn from_ref(s: &AppState) -> Logins {
        Logins {
            passwords: s.passwords.clone(),
            throttle: s.throttle.clone(),
            failures: s.auth_failures.clone(),
            auth: s.auth.clone(),
        }
    }
}

/// How many times a key's rate limit a login session gets.
pub const SESSION_RATE_FACTOR: u32 = 3;

/// Most live event streams open at once.
pub const MAX_STREAMS: usize = 1024;

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store.backend())
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State over `store` with the system clock.
    pub fn new(store: Store, config: ServerConfig) -> Self {
        let limit = config.rate_limit;
        let failures = config.auth_failures_per_minute;
        let throttle = Throttle::new(store.clone());
        let app = App::new(store, config);
        // Limits hold across the replicas: each enforces its share.
        let replicas = app.leadership.live_replicas();
        AppState {
            auth: Authenticator::default(),
            rate: RateLimiter::new(limit).shared_by(replicas.clone()),
            session_rate: RateLimiter::new(RateLimit {
                per_minute: limit.per_minute.saturating_mul(SESSION_RATE_FACTOR),
                burst: limit.burst.saturating_mul(SESSION_RATE_FACTOR),
            })
            .shared_by(replicas.clone()),
            auth_failures: RateLimiter::new(RateLimit {
                per_minute: failures,
                burst: (failures / 3).max(1),
            })
            .shared_by(replicas),
            app,
            streams: Streams(Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS))),
            passwords: Passwords::default(),
            throttle,
        }
    }

    /// The same state with an embedded proxy.
    #[must_use]
    pub fn with_proxy(mut self, proxy: serin_proxy::Proxy) -> Self {
        self.app = self.app.with_proxy(proxy);
        self
    }

    /// The same state with another clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.app = self.app.with_clock(clock);
        self
    }
}
