//! The state every handler shares: cheap to clone, all `Arc`s inside.

use std::sync::Arc;

use serin_core::Timestamp;
use serin_store::Store;

/// A source of the current time. Handlers never call the system clock directly, so
/// tests can pin it.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Shared handler state.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    clock: Clock,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store.backend())
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State over `store` with the system clock.
    pub fn new(store: Store) -> Self {
        AppState {
            store,
            clock: Arc::new(|| serin_core::to_micros(chrono::Utc::now())),
        }
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
}
