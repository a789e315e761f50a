//! Traffic: which lane a job or request goes to, and what the control plane
//! and the proxies exchange about it.
//!
//! - [`Lane`]: the two sides of every deployment;
//! - the rules (this module's items): an HTTP deployment's override, affinity,
//!   match rules and percentage, and the one question the proxy asks per request;
//! - [`routing`]: the keyed lane choice and its documented hash (SDKs reproduce it);
//! - [`proxy`]: route sets going out to proxies, lane buckets coming back;
//! - [`engine`]: an external engine (HAProxy) that splits instead of the proxy.

pub mod engine;
mod lane;
pub mod proxy;
pub mod routing;
mod rules;

pub use lane::Lane;
pub use rules::*;
