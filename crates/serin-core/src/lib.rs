//! Serin's domain, with no IO.
//!
//! This crate owns the words of the system (products, releases, signals) and the
//! rules between them: which names are valid, which release status may follow
//! which, and which release is the *latest stable* one. Everything here is a pure
//! function of its arguments — including the clock, which callers pass in — so
//! that the server, the store, the CLI and the tests all share one set of rules
//! and none of them can fail for outside reasons.
//!
//! Layout, in rooms; a room imports only the rooms above it in this list
//! (and `canary` ⇄ `rollout`, a deployment and its plan):
//! - [`validate`], [`duration`], [`error`], [`page`], [`address`]: the words
//!   every room shares: names, durations, the one error type, list envelopes.
//! - [`stats`]: histograms that merge and anytime-valid sequential tests.
//! - [`traffic`]: lanes, HTTP lane choice, the keyed hash, route sets for proxies.
//! - [`judge`]: the judges (sequential, thresholds, safety checks, CEL
//!   policies, health) and how they combine.
//! - [`canary`]: deployments, profiles, lane metrics over a window, workers.
//! - [`rollout`]: the plan (spec), the progress and the state machine the
//!   controller drives; hooks and notifications.
//! - [`event`]: the append-only event record and its live-stream form.
//! - [`release`]: products, releases, signals, environments and approvals,
//!   release notes, and what a deployment's ending means for its release.
//!   **`canary` and `rollout` never import `release`.**
//! - [`auth`], [`user`], [`secret`]: roles, people, secrets.
//! - [`simulate`]: the real judges and controller over synthetic traffic.
#![forbid(unsafe_code)]

pub mod address;
pub mod auth;
pub mod canary;
pub mod duration;
pub mod error;
pub mod event;
pub mod judge;
pub mod page;
pub mod release;
pub mod rollout;
pub mod secret;
pub mod simulate;
pub mod stats;
pub mod traffic;
pub mod user;
pub mod validate;

pub use error::DomainError;
pub use page::List;
pub use release::product::{NewProduct, Product};
pub use release::signal::{BatchAccepted, NewSignal, Signal, SignalBatch, SignalKind};
pub use release::{NewRelease, Release, ReleasePatch, ReleaseStatus, latest_stable};
pub use traffic::Lane;

/// Instants are UTC everywhere in Serin.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// `t` truncated to whole microseconds: the precision both databases keep, so an
/// instant reads back exactly as it was returned.
pub fn to_micros(t: Timestamp) -> Timestamp {
    chrono::DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}
