//! Lane decisions on the producer's side, without a request.

#[allow(unused_imports)]
use super::*;

/// A producer's local router for one deployment: the lane decision without a
/// request and without allocating, with the salt's hash state computed once.
/// Refresh it (build a new one) when the deployment's percentage changes.
#[derive(Debug, Clone)]
pub struct LocalRouter {
    deployment: Deployment,
    salt: u64,
    keyed: bool,
}

impl LocalRouter {
    /// A router over a deployment fetched from the server.
    pub fn new(deployment: Deployment) -> Self {
        let salt = serin_core::traffic::routing::salt_state(&deployment.id);
        let keyed = deployment.config.sticky_routing
            || deployment.config.routing_strategy == serin_core::canary::RoutingStrategy::HashRing;
        LocalRouter {
            deployment,
            salt,
            keyed,
        }
    }

    /// The lane for a job; `random_bucket` (0..10000) is used when the decision
    /// isn't keyed. Agrees with the server's decision for the same deployment.
    pub fn lane(&self, key: Option<&str>, random_bucket: u32) -> Lane {
        if !self.deployment.status.is_live() {
            return Lane::Stable;
        }
        let b = match key {
            Some(k) if self.keyed => serin_core::traffic::routing::bucket_after(self.salt, k),
            _ => random_bucket,
        };
        if serin_core::traffic::routing::in_canary(b, self.deployment.current_percent) {
            Lane::Canary
        } else {
            Lane::Stable
        }
    }

    /// The whole decision, physical queue included (allocates the names).
    pub fn route(&self, queue: &str, key: Option<&str>, random_bucket: u32) -> RouteDecision {
        route_locally(queue, Some(&self.deployment), key, random_bucket)
    }
}

/// Decides a job's lane locally, without a request: the same function the server
/// uses, over a deployment the caller fetched (and refreshes now and then).
/// `random_bucket` (0..10000) is used only when the decision isn't keyed.
pub fn route_locally(
    queue: &str,
    deployment: Option<&Deployment>,
    key: Option<&str>,
    random_bucket: u32,
) -> RouteDecision {
    serin_core::traffic::routing::route_job(queue, deployment, key, random_bucket)
}
