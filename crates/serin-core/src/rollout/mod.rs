//! Rollouts: the plan a deployment follows and the machine that follows it.
//!
//! - [`spec`](RolloutSpec): the plan as people write it (steps, judges,
//!   hooks, notifications), validated;
//! - progress ([`Rollout`]): where a deployment is in its plan, stored inside
//!   the deployment;
//! - the machine ([`need`], [`advance`]): what the controller may do next,
//!   a pure function of the deployment and `now`;
//! - [`hooks`] and [`notify`]: what a rollout asks of and tells the outside world.
//!
//! **This room never imports `release`**: a rollout knows deployments, not
//! the release manager that may have planned them; an approval it waits for is
//! a typed step ([`Gate::ReleaseApproval`]), not a lookup.

pub mod hooks;
mod machine;
pub mod notify;
mod progress;
mod spec;

pub use machine::*;
pub use progress::*;
pub use spec::*;
