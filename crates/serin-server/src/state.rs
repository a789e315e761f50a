//! The state every handler shares: cheap to clone, all `Arc`s inside.

use std::sync::Arc;

use serin_app::App;
use serin_store::Store;

use crate::auth::Authenticator;
use crate::rate::{RateLimit, RateLimiter};

pub use serin_app::{Clock, Config as ServerConfig};

/// Shared handler state: the application's services and the HTTP
/// cross-cutting parts. It dereferences to [`App`], so a handler reaches the
/// store, the hub or the clock as `state.store`, `state.hub`, `state.now()`.
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
    pub streams: Arc<tokio::sync::Semaphore>,
    /// Password hashing, a few at a time.
    pub passwords: crate::accounts::Passwords,
    /// Wrong passwords per email.
    pub throttle: crate::accounts::Throttle,
}

impl std::ops::Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.app
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
        AppState {
            app: App::new(store, config),
            auth: Authenticator::default(),
            rate: RateLimiter::new(limit),
            session_rate: RateLimiter::new(RateLimit {
                per_minute: limit.per_minute.saturating_mul(SESSION_RATE_FACTOR),
                burst: limit.burst.saturating_mul(SESSION_RATE_FACTOR),
            }),
            auth_failures: RateLimiter::new(RateLimit {
                per_minute: failures,
                burst: (failures / 3).max(1),
            }),
            streams: Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS)),
            passwords: crate::accounts::Passwords::default(),
            throttle: crate::accounts::Throttle::default(),
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
