//! The state every handler shares: cheap to clone, all `Arc`s inside.

use std::sync::Arc;

use serin_core::Timestamp;
use serin_store::Store;

use crate::auth::Authenticator;
use crate::hub::Hub;
use crate::rate::{RateLimit, RateLimiter};

/// A source of the current time. Handlers never call the system clock directly, so
/// tests can pin it.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Settings the handlers need.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Most live deployments per tenant (`CONCURRENCY_LIMIT` beyond); `None`: no limit.
    pub max_live_deployments: Option<u32>,
    /// Per-key rate limits.
    pub rate_limit: RateLimit,
    /// Failed authentications allowed per client address (a burst of a third of
    /// the per-minute figure); beyond, 429 without a database lookup. 0: off.
    pub auth_failures_per_minute: u32,
    /// The target of seed 002's `/admin/canary/*` endpoints.
    pub default_queue: String,
    /// Its tenant.
    pub default_tenant: Option<String>,
    /// A worker silent for this long becomes `unreachable`.
    pub worker_timeout: std::time::Duration,
    /// How often the rollout controller ticks.
    pub controller_interval: std::time::Duration,
    /// Whether rollout hooks may run commands on this machine.
    pub allow_hook_commands: bool,
    /// The secret that signs JSON notifications (none: unsigned).
    pub webhook_secret: Option<String>,
    /// How long a login session lasts.
    pub session_ttl: std::time::Duration,
    /// Products' git repositories on this machine, for release notes.
    pub git_repositories: std::collections::BTreeMap<String, std::path::PathBuf>,
    /// Databases `postgres` health checks may query, by name (URLs with their
    /// credentials: never returned by the API).
    pub check_targets: std::collections::BTreeMap<String, String>,
    /// Where the server may connect on a plan's behalf.
    pub outbound: crate::outbound::Policy,
    /// Proxies whose `X-Forwarded-For` names the client (see `peer`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long a request's body may take to arrive, from the end of its headers.
    pub body_timeout: std::time::Duration,
    /// Seals secrets with the operator's key; none: the secrets API refuses.
    pub sealer: Option<crate::secrets::Sealer>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_live_deployments: Some(50),
            rate_limit: RateLimit::default(),
            auth_failures_per_minute: 30,
            default_queue: "default".into(),
            default_tenant: None,
            worker_timeout: std::time::Duration::from_secs(60),
            controller_interval: std::time::Duration::from_secs(1),
            allow_hook_commands: false,
            webhook_secret: None,
            session_ttl: std::time::Duration::from_secs(12 * 3600),
            git_repositories: std::collections::BTreeMap::new(),
            check_targets: std::collections::BTreeMap::new(),
            outbound: crate::outbound::Policy::default(),
            trusted_proxies: Vec::new(),
            body_timeout: std::time::Duration::from_secs(30),
            sealer: None,
        }
    }
}

/// Shared handler state.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Live event subscribers.
    pub hub: Hub,
    /// API key resolution.
    pub auth: Authenticator,
    /// Per-key rate limits.
    pub rate: RateLimiter,
    /// Per-user rate limits of login sessions: three times a key's, since one
    /// dashboard page fans out into several requests.
    pub session_rate: RateLimiter,
    /// Failed authentications per client address.
    pub auth_failures: RateLimiter,
    /// Settings.
    pub config: Arc<ServerConfig>,
    /// Each product's latest stable release, briefly.
    pub latest: crate::latest::LatestCache,
    /// Open live event streams (WebSocket), bounded.
    pub streams: Arc<tokio::sync::Semaphore>,
    /// The route set for proxies.
    pub routes: crate::routewatch::RouteWatch,
    /// The embedded proxy, when `serin up` runs one (its counters are on `/metrics`).
    pub proxy: Option<serin_proxy::Proxy>,
    /// Outbound calls (gates, webhooks, health checks) under the outbound policy.
    pub outbound: crate::outbound::Outbound,
    /// Health-check results.
    pub probes: crate::probe::Probes,
    /// What the controller last saw.
    pub controller: crate::controller::ControllerMemory,
    /// Serin's own counters for `/metrics`.
    pub telemetry: crate::telemetry::Telemetry,
    /// One reader of lane seconds per streamed deployment.
    pub lane_feeds: crate::lanefeed::LaneFeeds,
    /// Password hashing, a few at a time.
    pub passwords: crate::accounts::Passwords,
    /// Wrong passwords per email.
    pub throttle: crate::accounts::Throttle,
    clock: Clock,
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
        let outbound = crate::outbound::Outbound::new(config.outbound.clone());
        AppState {
            outbound,
            store,
            hub: Hub::default(),
            auth: Authenticator::default(),
            rate: RateLimiter::new(config.rate_limit),
            session_rate: RateLimiter::new(RateLimit {
                per_minute: config
                    .rate_limit
                    .per_minute
                    .saturating_mul(SESSION_RATE_FACTOR),
                burst: config.rate_limit.burst.saturating_mul(SESSION_RATE_FACTOR),
            }),
            auth_failures: RateLimiter::new(RateLimit {
                per_minute: config.auth_failures_per_minute,
                burst: (config.auth_failures_per_minute / 3).max(1),
            }),
            config: Arc::new(config),
            latest: crate::latest::LatestCache::default(),
            streams: Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS)),
            routes: crate::routewatch::RouteWatch::default(),
            proxy: None,
            probes: crate::probe::Probes::default(),
            controller: crate::controller::ControllerMemory::default(),
            telemetry: crate::telemetry::Telemetry::default(),
            lane_feeds: crate::lanefeed::LaneFeeds::default(),
            passwords: crate::accounts::Passwords::default(),
            throttle: crate::accounts::Throttle::default(),
            clock: Arc::new(|| serin_core::to_micros(chrono::Utc::now())),
        }
    }

    /// The same state with an embedded proxy.
    #[must_use]
    pub fn with_proxy(mut self, proxy: serin_proxy::Proxy) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// The same state with another clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// Publishes events the store committed; a release among them forgets the
    /// cached latest stable releases.
    pub fn committed(&self, events: &[serin_core::event::Event]) {
        self.hub.publish(events);
        if events.iter().any(|e| e.resource_type == "release") {
            self.latest.clear();
        }
    }
}
