//! Serin's application layer: the services between the HTTP API and the store.
//!
//! `serin-core` decides (pure functions that take `now`); `serin-store`
//! remembers (transactions that apply core's decisions). This crate *acts*:
//! it reads what a decision needs, asks core, has the store commit the result
//! and publishes what was committed. It knows nothing of HTTP — no router, no
//! status codes — so the same services serve the API, the background loops
//! and in-process tests alike:
//!
//! - [`deployments`]: start a deployment, apply a transition, read its lanes;
//! - [`releaser`]: the release manager (deploy a release to an environment,
//!   approvals at the gate, one-click rollback);
//! - [`controller`], [`probe`], [`hooks`], [`notifier`]: the rollout loop, its
//!   health checks, its hooks and its notifications;
//! - [`routewatch`] and [`lanefeed`]: the route set proxies follow and the
//!   lane seconds streams show;
//! - [`runtime`]: starts every background task and drains them on shutdown.
//!
//! Each service takes an [`App`]: the handles it needs (store, event hub,
//! clock, outbound client, caches), cheap to clone. Failures are [`AppError`]s
//! with a [`Kind`]; `serin-server` turns them into HTTP answers in one place.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serin_core::Timestamp;
use serin_store::Store;

pub mod admission;
pub mod config;
pub mod controller;
pub mod deployments;
pub mod engines;
pub mod error;
pub mod feed;
pub mod hooks;
pub mod hub;
pub mod lanefeed;
pub mod latest;
pub mod leadership;
pub mod notes;
pub mod notifier;
pub mod outbound;
pub mod probe;
pub mod prometheus;
pub mod releaser;
pub mod routewatch;
pub mod runtime;
pub mod secrets;
pub mod telemetry;
pub mod verdict;

pub use config::{Config, RateLimit};
pub use error::{AppError, AppResult, Kind};

/// Runs `f` once a second (a late tick is delayed, not doubled) until `shutdown`
/// resolves: the shape of the background loops (probes, notifier).
pub async fn every_second<F, Fut>(shutdown: impl Future<Output = ()>, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    tokio::pin!(shutdown);
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = every.tick() => {}
        }
        f().await;
    }
}

/// A source of the current time. Services never call the system clock
/// directly, so tests can pin it.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Who asks a service to act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The name recorded in events: a key's name or a user's email.
    pub name: String,
    /// What it may do.
    pub role: serin_core::auth::Role,
    /// Whether a person logged in (a session), not a machine with a key.
    pub is_person: bool,
}

/// The handles every service takes: cheap to clone, all `Arc`s inside.
#[derive(Clone)]
pub struct App {
    /// The database.
    pub store: Store,
    /// Committed events, to live subscribers.
    pub hub: hub::Hub,
    /// Settings.
    pub config: Arc<Config>,
    /// Each product's latest stable release, briefly.
    pub latest: latest::LatestCache,
    /// The route set for proxies.
    pub routes: routewatch::RouteWatch,
    /// The embedded proxy, when the process runs one.
    pub proxy: Option<serin_proxy::Proxy>,
    /// Outbound calls (gates, webhooks, health checks) under the outbound policy.
    pub outbound: outbound::Outbound,
    /// Health-check results.
    pub probes: probe::Probes,
    /// What the controller last saw.
    pub controller: controller::ControllerMemory,
    /// Serin's own counters for `/metrics`.
    pub telemetry: telemetry::Telemetry,
    /// One reader of lane seconds per streamed deployment.
    pub lane_feeds: lanefeed::LaneFeeds,
    /// This replica and whether it leads.
    pub leadership: leadership::Leadership,
    /// The leader's term these services act in, if any: tasks spawned
    /// through it end with it.
    pub term: leadership::Term,
    clock: Clock,
    /// How far the database's clock is ahead of `clock`, in microseconds,
    /// when `now()` follows the database's (see [`App::with_database_clock`]).
    offset: Option<Arc<AtomicI64>>,
    /// The round trip of the reading `offset` was set from, and when it was
    /// taken (none yet: `None`).
    kept: Arc<std::sync::Mutex<Option<(std::time::Duration, std::time::Instant)>>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("store", &self.store.backend())
            .finish_non_exhaustive()
    }
}

impl App {
    /// The services over `store`, with the system clock.
    pub fn new(store: Store, config: Config) -> Self {
        let config_name = config.replica_name.clone();
        App {
            outbound: outbound::Outbound::new(config.outbound.clone()),
            store,
            hub: hub::Hub::default(),
            config: Arc::new(config),
            latest: latest::LatestCache::default(),
            routes: routewatch::RouteWatch::default(),
            proxy: None,
            probes: probe::Probes::default(),
            controller: controller::ControllerMemory::default(),
            telemetry: telemetry::Telemetry::default(),
            lane_feeds: lanefeed::LaneFeeds::default(),
            leadership: leadership::Leadership::new(&config_name, chrono::Utc::now()),
            term: leadership::Term::default(),
            clock: Arc::new(|| serin_core::to_micros(chrono::Utc::now())),
            offset: Some(Arc::default()),
            kept: Arc::default(),
        }
    }

    /// The same services writing through a store fenced by `epoch` (see
    /// `serin_store::lease`): what the acting loops of a leader's term get.
    #[must_use]
    pub fn fenced(&self, epoch: i64) -> Self {
        App {
            store: self.store.fenced(epoch),
            term: leadership::Term::begin(),
            ..self.clone()
        }
    }

    /// The same services with an embedded proxy.
    #[must_use]
    pub fn with_proxy(mut self, proxy: serin_proxy::Proxy) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// The same services with another clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self.offset = None;
        self
    }

    /// The same services with `now()` set to the database's clock: the
    /// clock, moved by the offset [`leadership`] measures against the
    /// database at every beat. What [`App::new`] does for the system clock:
    /// several replicas then agree on time as well as the database does
    /// (claims that lapse, steps' pauses, backoffs), whatever their own
    /// clocks say.
    #[must_use]
    pub fn with_database_clock(mut self) -> Self {
        self.offset = Some(Arc::default());
        self.kept = Arc::default();
        self
    }

    /// The current time (on the database's clock, when it follows it).
    pub fn now(&self) -> Timestamp {
        let local = (self.clock)();
        match &self.offset {
            Some(o) => local + chrono::Duration::microseconds(o.load(Ordering::Relaxed)),
            None => local,
        }
    }

    /// The local clock, before any correction to the database's.
    pub(crate) fn local_now(&self) -> Timestamp {
        (self.clock)()
    }

    /// Sets how far the database's clock is ahead of the local one; `false`
    /// when `now()` doesn't follow the database's.
    pub(crate) fn set_clock_offset(&self, micros: i64, rtt: std::time::Duration) -> bool {
        self.offset.as_ref().is_some_and(|o| {
            o.store(micros, Ordering::Relaxed);
            true
        }) && {
            *self.kept.lock().expect("clock lock") = Some((rtt, std::time::Instant::now()));
            true
        }
    }

    /// The round trip of the reading the offset was set from and how long
    /// ago it was taken, if any.
    pub(crate) fn clock_reading(&self) -> Option<(std::time::Duration, std::time::Duration)> {
        self.kept
            .lock()
            .expect("clock lock")
            .map(|(rtt, at)| (rtt, at.elapsed()))
    }

    /// How far `now()` is moved from the local clock.
    pub fn clock_offset(&self) -> chrono::Duration {
        chrono::Duration::microseconds(
            self.offset
                .as_ref()
                .map_or(0, |o| o.load(Ordering::Relaxed)),
        )
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
