//! Serin's domain, with no IO.
//!
//! This crate owns the words of the system (products, releases, signals) and the
//! rules between them: which names are valid, which release status may follow
//! which, and which release is the *latest stable* one. Everything here is a pure
//! function of its arguments — including the clock, which callers pass in — so
//! that the server, the store, the CLI and the tests all share one set of rules
//! and none of them can fail for outside reasons.
//!
//! Layout:
//! - [`error`]: [`DomainError`], the one error type of this crate.
//! - [`product`]: products and the rules for their names.
//! - [`release`]: releases, [`ReleaseStatus`] and its transitions, latest-stable choice.
//! - [`signal`]: observations about a lane of a release, and their validation.
//! - [`page`]: list envelopes and pagination shared by every list in the API.
//! - [`deployment`]: canary deployments, profiles, and their transitions.
//! - [`duration`]: Go-style durations (`"1h30m"` in, `"1h30m0s"` out).
//! - [`event`]: the append-only event record and its live-stream form.
//! - [`auth`]: roles and what each may do.
//! - [`routing`]: lane choice and the documented key hash.
//! - [`metrics`]: lane snapshots over a window and seed 004's health checks.
//! - [`worker`]: workers, heartbeats and job results.
//! - [`traffic`]: HTTP lane choice (override, affinity, match rules, percentage).
//! - [`histogram`]: log-linear latency histograms that merge.
//! - [`proxy`]: route sets for proxies and the lane buckets they report.
//! - [`rollout`]: rollout plans (steps, seed 002's `traffic_steps` shorthand).
//! - [`controller`]: the rollout state machine the controller drives.
//! - [`hooks`]: pre-rollout, confirmation, post-rollout and rollback hooks.
//! - [`notify`]: outbound alert webhooks (JSON, signed; Slack) and their deliveries.
//! - [`sequential`]: anytime-valid tests (so far the error-rate test; not yet a judge).
//! - [`user`]: people who log in, their passwords' rules, the login back-off.
//! - [`environment`]: environments, approval policies, deploying a release with a strategy.
//! - [`notes`]: release notes in Markdown from releases' notes and commit subjects.
//! - [`judge`]: the judges (thresholds, safety checks, CEL policies, health) and how they combine.
#![forbid(unsafe_code)]

pub mod address;
pub mod auth;
pub mod controller;
pub mod deployment;
pub mod duration;
pub mod environment;
pub mod error;
pub mod event;
pub mod histogram;
pub mod hooks;
pub mod judge;
pub mod metrics;
pub mod notes;
pub mod notify;
pub mod page;
pub mod product;
pub mod proxy;
pub mod release;
pub mod release_effect;
pub mod rollout;
pub mod routing;
pub mod secret;
pub mod sequential;
pub mod signal;
pub mod simulate;
pub mod traffic;
pub mod user;
pub mod worker;

pub use error::DomainError;
pub use page::List;
pub use product::{NewProduct, Product};
pub use release::{NewRelease, Release, ReleasePatch, ReleaseStatus, latest_stable};
pub use signal::{BatchAccepted, Lane, NewSignal, Signal, SignalBatch, SignalKind};

/// Instants are UTC everywhere in Serin.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// `t` truncated to whole microseconds: the precision both databases keep, so an
/// instant reads back exactly as it was returned.
pub fn to_micros(t: Timestamp) -> Timestamp {
    chrono::DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}
