//! Profiles: named sets of defaults for a deployment's configuration, with the
//! documented values.

#[allow(unused_imports)]
use super::*;

/// A named set of defaults (`GET /api/v1/canary/config/profiles`). `drain_timeout` and
/// `metrics_window` are absent where a profile doesn't set them; the `default`
/// profile's values apply then.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Profile {
    /// How jobs reach the canary lane.
    pub routing_strategy: RoutingStrategy,
    /// Same key, same lane.
    pub sticky_routing: bool,
    /// Promote automatically.
    pub auto_promotion: bool,
    /// Longest the canary may run.
    pub max_canary_duration: GoDuration,
    /// Shortest the canary must run.
    pub min_canary_duration: GoDuration,
    /// Drain time on a switch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_timeout: Option<GoDuration>,
    /// Metrics window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_window: Option<GoDuration>,
    /// When to roll back.
    pub rollback_thresholds: RollbackThresholds,
    /// How much worse than stable is not yet a regression (Serin's addition to
    /// the documented profiles: see `serin_core::stats::sequential::Margins`).
    pub margins: Margins,
}

/// The three profiles: `default`, `conservative`, `aggressive`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Profiles {
    /// For most services.
    pub default: Profile,
    /// For critical systems: payments, authentication.
    pub conservative: Profile,
    /// For analytics and other non-critical work.
    pub aggressive: Profile,
}

/// The profiles, with their documented values.
pub const PROFILES: Profiles = Profiles {
    default: Profile {
        routing_strategy: RoutingStrategy::SplitQueue,
        sticky_routing: true,
        auto_promotion: false,
        max_canary_duration: GoDuration::from_hours(2),
        min_canary_duration: GoDuration::from_mins(5),
        drain_timeout: Some(GoDuration::from_mins(5)),
        metrics_window: Some(GoDuration::from_mins(5)),
        rollback_thresholds: RollbackThresholds {
            max_error_rate_increase: 5.0,
            max_latency_increase: 50.0,
            max_throughput_decrease: 20.0,
            min_success_rate: 95.0,
            required_sample_size: 20,
        },
        margins: Margins {
            latency_percent: 10.0,
            latency_ms: 1.0,
            error_ratio: 1.25,
            error_points: 0.1,
        },
    },
    conservative: Profile {
        routing_strategy: RoutingStrategy::SplitQueue,
        sticky_routing: true,
        auto_promotion: false,
        max_canary_duration: GoDuration::from_hours(4),
        min_canary_duration: GoDuration::from_mins(15),
        drain_timeout: None,
        metrics_window: None,
        rollback_thresholds: RollbackThresholds {
            max_error_rate_increase: 2.0,
            max_latency_increase: 20.0,
            max_throughput_decrease: 10.0,
            min_success_rate: 95.0,
            required_sample_size: 20,
        },
        margins: Margins {
            latency_percent: 5.0,
            latency_ms: 0.5,
            error_ratio: 1.1,
            error_points: 0.05,
        },
    },
    aggressive: Profile {
        routing_strategy: RoutingStrategy::SplitQueue,
        sticky_routing: false,
        auto_promotion: true,
        max_canary_duration: GoDuration::from_mins(30),
        min_canary_duration: GoDuration::from_mins(2),
        drain_timeout: None,
        metrics_window: None,
        rollback_thresholds: RollbackThresholds {
            max_error_rate_increase: 20.0,
            max_latency_increase: 200.0,
            max_throughput_decrease: 75.0,
            min_success_rate: 70.0,
            required_sample_size: 5,
        },
        margins: Margins {
            latency_percent: 25.0,
            latency_ms: 5.0,
            error_ratio: 2.0,
            error_points: 0.5,
        },
    },
};

impl Profiles {
    /// A profile by name.
    pub fn get(&self, name: &str) -> Option<&Profile> {
        match name {
            "default" => Some(&self.default),
            "conservative" => Some(&self.conservative),
            "aggressive" => Some(&self.aggressive),
            _ => None,
        }
    }
}

impl Profile {
    /// The full config this profile gives.
    pub fn config(&self) -> DeploymentConfig {
        let d = &PROFILES.default;
        DeploymentConfig {
            routing_strategy: self.routing_strategy,
            sticky_routing: self.sticky_routing,
            auto_promotion: self.auto_promotion,
            max_canary_duration: self.max_canary_duration,
            min_canary_duration: self.min_canary_duration,
            drain_timeout: self.drain_timeout.or(d.drain_timeout).unwrap_or_default(),
            metrics_window: self.metrics_window.or(d.metrics_window).unwrap_or_default(),
            rollback_thresholds: self.rollback_thresholds,
            margins: self.margins,
        }
    }
}
