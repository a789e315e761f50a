//! Canary deployments: one target moving from a stable version to a
//! canary version, with a traffic split, a status, and a config.
//!
//! ```text
//!   active ⇄ paused
//!     │ promote            │ rollback
//!     ▼                    ▼
//!   completed (100%)     failed (0%, with the reason)
//! ```
//!
//! `promoting` and `rolling_back` are the in-between states a controller holds
//! while it drains traffic; `completed` and `failed` are final, and only final
//! deployments may be deleted. A deployment counts as *live* (for the one-per-target
//! rule and the concurrency limit) in every state but the final two.
//!
//! A new deployment's config comes from its profile (`default` when none is named)
//! with the request's explicit fields laid over it. Every transition returns the
//! events it causes; the store writes them in the same transaction.

mod hold;
pub mod metrics;
pub mod worker;

pub use hold::WaitingGate;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::duration::GoDuration;
use crate::event::{EventType, NewEvent};
use crate::rollout::Rollout;
use crate::rollout::RolloutSpec;
use crate::stats::sequential::Margins;
use crate::traffic::TrafficRules;
use crate::traffic::engine::EngineTarget;
use crate::validate::{validate_description, validate_text};
use crate::{DomainError, Timestamp};

/// The longest metrics window: metrics are computed from the window's raw
/// observations on each request, so it stays bounded.
pub const MAX_METRICS_WINDOW: GoDuration = GoDuration::from_hours(24);

/// Where a deployment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    /// Serving the split; changes allowed.
    Active,
    /// Being promoted (traffic draining to canary).
    Promoting,
    /// Being rolled back (traffic draining to stable).
    RollingBack,
    /// Promoted: canary is the new stable. Final.
    Completed,
    /// Rolled back. Final.
    Failed,
    /// Automation paused; manual changes still allowed.
    Paused,
}

impl DeploymentStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Active => "active",
            DeploymentStatus::Promoting => "promoting",
            DeploymentStatus::RollingBack => "rolling_back",
            DeploymentStatus::Completed => "completed",
            DeploymentStatus::Failed => "failed",
            DeploymentStatus::Paused => "paused",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<DeploymentStatus> {
        serde_json::from_value(Value::String(s.to_string())).ok()
    }

    /// Not final: counts against the one-per-target rule and the concurrency limit.
    pub fn is_live(self) -> bool {
        !matches!(self, DeploymentStatus::Completed | DeploymentStatus::Failed)
    }

    /// The statuses that are live, for queries.
    pub const LIVE: [DeploymentStatus; 4] = [
        DeploymentStatus::Active,
        DeploymentStatus::Promoting,
        DeploymentStatus::RollingBack,
        DeploymentStatus::Paused,
    ];
}

/// How jobs reach the canary lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RoutingStrategy {
    /// Canary jobs go to a separate queue, `<queue>:canary`.
    #[default]
    SplitQueue,
    /// One stream; each lane consumes through its own consumer group.
    StreamGroup,
    /// Lanes chosen by a consistent hash of the job key; queues `<queue>:<lane>`.
    HashRing,
}

/// When a deployment should roll back (`rollback_thresholds`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RollbackThresholds {
    /// Largest tolerated rise of the canary's error rate over stable's, in percentage points.
    pub max_error_rate_increase: f64,
    /// Largest tolerated rise of the canary's P95 latency over stable's, in percent.
    pub max_latency_increase: f64,
    /// Largest tolerated fall of the canary's throughput per traffic share, in percent.
    pub max_throughput_decrease: f64,
    /// Lowest tolerated canary success rate, in percent.
    pub min_success_rate: f64,
    /// Canary jobs needed before any verdict.
    pub required_sample_size: u64,
}

/// A deployment's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentConfig {
    /// How jobs reach the canary lane.
    pub routing_strategy: RoutingStrategy,
    /// Same key, same lane (while the percentage doesn't drop).
    pub sticky_routing: bool,
    /// Promote automatically when the checks pass.
    pub auto_promotion: bool,
    /// Longest the canary may run.
    pub max_canary_duration: GoDuration,
    /// Shortest the canary must run before promotion.
    pub min_canary_duration: GoDuration,
    /// How long in-flight work may take to drain on a switch.
    pub drain_timeout: GoDuration,
    /// The window metrics and health are computed over.
    pub metrics_window: GoDuration,
    /// When to roll back.
    pub rollback_thresholds: RollbackThresholds,
    /// How much worse than stable is not yet a regression, for the judges
    /// that compare lanes (a plan's `judges.margins` overrides).
    #[serde(default)]
    pub margins: Margins,
}

mod profile;
pub use profile::*;

/// The stable and canary endpoints of an HTTP deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Upstreams {
    /// Stable lane endpoints (`http://host:port`).
    #[serde(default)]
    pub stable: Vec<String>,
    /// Canary lane endpoints.
    #[serde(default)]
    pub canary: Vec<String>,
}

/// Which HTTP requests a deployment serves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Match the `Host` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Match paths starting with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
}

impl Route {
    /// The route as one short text, for a metric's `target` label: the host
    /// (`*` for any) and the path prefix (`/` for any), `shop.example/api`.
    pub fn label(&self) -> String {
        format!(
            "{}{}",
            self.host.as_deref().unwrap_or("*"),
            self.path_prefix.as_deref().unwrap_or("/")
        )
    }
}

/// A canary deployment, and what it deploys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Deployment {
    /// `canary_<uuid>`.
    pub id: String,
    /// The target: a queue, or the name of an HTTP service.
    pub queue_name: String,
    /// Tenant, for multi-tenant setups.
    pub tenant_id: Option<String>,
    /// The version now trusted.
    pub stable_version: String,
    /// The version being tried.
    pub canary_version: String,
    /// Share of traffic the canary gets now (0–100).
    pub current_percent: u8,
    /// Share the canary is headed for (0–100).
    pub target_percent: u8,
    /// Where the deployment is in its life.
    pub status: DeploymentStatus,
    /// When it started.
    pub start_time: DateTime<Utc>,
    /// When it last changed.
    pub last_update: DateTime<Utc>,
    /// When it reached `completed` or `failed`.
    pub completed_at: Option<DateTime<Utc>>,
    /// Its configuration.
    pub config: DeploymentConfig,
    /// Who started it.
    pub created_by: String,
    /// Free-form labels.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: BTreeMap<String, Value>,
    /// The product deployed, if it is one Serin knows.
    pub product: Option<String>,
    /// The environment deployed to.
    pub environment: Option<String>,
    /// HTTP endpoints of each lane (for the proxy).
    pub upstreams: Upstreams,
    /// Which HTTP requests it serves (for the proxy).
    pub route: Route,
    /// How the proxy chooses lanes and talks to upstreams.
    #[serde(default)]
    pub traffic: TrafficRules,
    /// Why it is paused, failed, or was rolled back.
    pub status_reason: Option<String>,
    /// Optimistic-concurrency revision, raised by every change.
    pub revision: u64,
    /// When the current traffic split took effect (absent: at the start). A
    /// split change starts new metric windows: figures never mix two shares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_since: Option<DateTime<Utc>>,
    /// The plan the controller drives, and where it is (absent: driven by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// The external engine that splits its traffic (absent: Serin's proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineTarget>,
}

/// What a client sends to start a deployment (HTTP target fields included).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewDeployment {
    /// Target queue (or service) name.
    pub queue_name: String,
    /// Tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Current stable version.
    pub stable_version: String,
    /// Version to try.
    pub canary_version: String,
    /// Initial canary share, 0–100 (default 0).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u8>))]
    pub percentage: Option<Value>,
    /// Overrides the profile's routing strategy.
    #[serde(default)]
    pub routing_strategy: Option<RoutingStrategy>,
    /// Overrides the profile's sticky routing.
    #[serde(default)]
    pub sticky_routing: Option<bool>,
    /// Overrides the profile's auto promotion.
    #[serde(default)]
    pub auto_promotion: Option<bool>,
    /// Overrides `max_canary_duration` ("2h", "30m").
    #[serde(default)]
    pub max_duration: Option<GoDuration>,
    /// Overrides `min_canary_duration`.
    #[serde(default)]
    pub min_duration: Option<GoDuration>,
    /// Overrides `metrics_window`.
    #[serde(default)]
    pub metrics_window: Option<GoDuration>,
    /// Overrides `drain_timeout`.
    #[serde(default)]
    pub drain_timeout: Option<GoDuration>,
    /// Overrides the profile's thresholds.
    #[serde(default)]
    pub rollback_thresholds: Option<RollbackThresholds>,
    /// Who starts it (defaults to the caller).
    #[serde(default)]
    pub created_by: Option<String>,
    /// `default`, `conservative` or `aggressive`.
    #[serde(default)]
    pub profile: Option<String>,
    /// Free-form labels.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: BTreeMap<String, Value>,
    /// The product deployed.
    #[serde(default)]
    pub product: Option<String>,
    /// The environment deployed to.
    #[serde(default)]
    pub environment: Option<String>,
    /// HTTP endpoints of each lane.
    #[serde(default)]
    pub upstreams: Option<Upstreams>,
    /// Which HTTP requests it serves.
    #[serde(default)]
    pub route: Option<Route>,
    /// How the proxy chooses lanes (override header, affinity, rules, sticky key).
    #[serde(default)]
    pub traffic: Option<TrafficRules>,
    /// A plan for the controller to drive (leave `percentage` out: its steps set the weights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutSpec>,
    /// Split by an external engine the server knows (HAProxy), not by Serin's proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineTarget>,
    /// Raising traffic by hand waits for the pre-rollout hooks (see
    /// [`Deployment::held`]): set by a release plan, never by a request.
    #[serde(skip)]
    pub hold_for_pre_rollout: bool,
}

/// A change of a deployment's HTTP routing (`PUT …/routing`). Each of
/// `upstreams`, `route` and `traffic` that is given changes only the keys it
/// names (a one-level merge, see [`RoutingChange::merged_onto`]):
/// `{"traffic": {"balance": "least_requests"}}` changes the balance and
/// keeps the rules, the sticky key and the rest; a key given as `null` is
/// set to null where that means something (`"affinity": null` turns
/// affinity off).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RoutingChange {
    /// New endpoints per lane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstreams: Option<Upstreams>,
    /// New request match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
    /// New traffic rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<TrafficRules>,
}

impl RoutingChange {
    /// The change `patch` (the JSON of a `RoutingChange`, any of its fields
    /// left out) makes to `d`: each field given merged key by key onto `d`'s
    /// current value, so keys it doesn't name keep theirs.
    pub fn merged_onto(d: &Deployment, patch: &Value) -> Result<RoutingChange, DomainError> {
        let fields = patch.as_object().ok_or_else(|| {
            DomainError::invalid("body", "an object of upstreams, route, traffic")
        })?;
        if let Some(k) = fields
            .keys()
            .find(|k| !matches!(k.as_str(), "upstreams" | "route" | "traffic"))
        {
            return Err(DomainError::invalid(
                k.as_str(),
                "unknown field: the routing has upstreams, route and traffic",
            ));
        }
        fn merge<T: Serialize + serde::de::DeserializeOwned>(
            field: &str,
            current: &T,
            patch: Option<&Value>,
        ) -> Result<Option<T>, DomainError> {
            // Left out, or `null` (as clients that write every field send it).
            let Some(patch) = patch.filter(|p| !p.is_null()) else {
                return Ok(None);
            };
            let keys = patch
                .as_object()
                .ok_or_else(|| DomainError::invalid(field, "an object"))?;
            let mut v = serde_json::to_value(current)
                .map_err(|e| DomainError::invalid(field, e.to_string()))?;
            for (k, x) in keys {
                v[k] = x.clone();
            }
            serde_json::from_value(v)
                .map(Some)
                .map_err(|e| DomainError::invalid(field, e.to_string()))
        }
        Ok(RoutingChange {
            upstreams: merge("upstreams", &d.upstreams, fields.get("upstreams"))?,
            route: merge("route", &d.route, fields.get("route"))?,
            traffic: merge("traffic", &d.traffic, fields.get("traffic"))?,
        })
    }
}

/// Reads a percentage: an integer from 0 to 100.
pub fn parse_percentage(value: &Value) -> Result<u8, DomainError> {
    value
        .as_u64()
        .or_else(|| {
            value
                .as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        })
        .filter(|p| *p <= 100)
        .and_then(|p| u8::try_from(p).ok())
        .ok_or_else(|| DomainError::InvalidPercentage {
            value: value.to_string(),
        })
}

mod checks;
use checks::{check_routing, short_text};

impl NewDeployment {
    /// Checks the request and builds the deployment, applying the profile and then
    /// the explicit fields.
    pub fn resolve(
        self,
        id: String,
        actor: &str,
        now: Timestamp,
    ) -> Result<(Deployment, NewEvent), DomainError> {
        short_text("queue_name", &self.queue_name, 200)?;
        if self.queue_name.contains(':') || self.queue_name.contains(char::is_whitespace) {
            return Err(DomainError::invalid(
                "queue_name",
                "must not contain ':' or spaces (':' separates lane suffixes)",
            ));
        }
        if let Some(t) = &self.tenant_id {
            short_text("tenant_id", t, 200)?;
        }
        short_text("stable_version", &self.stable_version, 100)?;
        short_text("canary_version", &self.canary_version, 100)?;
        if self.stable_version == self.canary_version {
            return Err(DomainError::invalid(
                "canary_version",
                "must differ from stable_version",
            ));
        }
        let profile_name = self.profile.as_deref().unwrap_or("default");
        let profile = PROFILES.get(profile_name).ok_or_else(|| {
            DomainError::invalid(
                "profile",
                format!(
                    "`{profile_name}` is not a profile; use default, conservative or aggressive"
                ),
            )
        })?;
        let mut config = profile.config();
        if let Some(v) = self.routing_strategy {
            config.routing_strategy = v;
        }
        if let Some(v) = self.sticky_routing {
            config.sticky_routing = v;
        }
        if let Some(v) = self.auto_promotion {
            config.auto_promotion = v;
        }
        if let Some(v) = self.max_duration {
            config.max_canary_duration = v;
        }
        if let Some(v) = self.min_duration {
            config.min_canary_duration = v;
        }
        if let Some(v) = self.metrics_window {
            config.metrics_window = v;
        }
        if let Some(v) = self.drain_timeout {
            config.drain_timeout = v;
        }
        if let Some(t) = self.rollback_thresholds {
            config.rollback_thresholds = t;
        }
        validate_config(&config)?;
        if let Some(spec) = &self.rollout {
            let timed = spec.timed_length(config.metrics_window);
            if timed > config.max_canary_duration {
                return Err(DomainError::invalid(
                    "max_duration",
                    format!(
                        "the rollout's timed steps last {timed}, longer than max_duration {}: raise max_duration (or shorten the plan)",
                        config.max_canary_duration
                    ),
                ));
            }
        }
        let percent = match &self.percentage {
            Some(v) => parse_percentage(v)?,
            None => 0,
        };
        if let Some(spec) = &self.rollout {
            if self.percentage.is_some() {
                return Err(DomainError::invalid(
                    "percentage",
                    "leave it out when giving a rollout: the plan's steps set the weights",
                ));
            }
            spec.validate().map_err(|e| e.under("rollout"))?;
        }
        if let Some(e) = &self.engine {
            e.validate()?;
            if self.upstreams.is_some() {
                return Err(DomainError::invalid(
                    "upstreams",
                    "leave it out when an engine splits the traffic: the engine's servers are the lanes",
                ));
            }
        }
        let upstreams = self.upstreams.unwrap_or_default();
        let route = self.route.unwrap_or_default();
        let traffic = self.traffic.unwrap_or_default();
        check_routing(&upstreams, &route, &traffic)?;
        for (field, v) in [
            ("product", &self.product),
            ("environment", &self.environment),
        ] {
            if let Some(v) = v {
                crate::validate::validate_name(field, v)?;
            }
        }
        let created_by = self.created_by.unwrap_or_else(|| actor.to_string());
        validate_description("created_by", Some(&created_by))?;
        let d = Deployment {
            id,
            queue_name: self.queue_name,
            tenant_id: self.tenant_id,
            stable_version: self.stable_version,
            canary_version: self.canary_version,
            current_percent: percent,
            target_percent: percent,
            status: DeploymentStatus::Active,
            start_time: now,
            last_update: now,
            completed_at: None,
            config,
            created_by,
            metadata: self.metadata,
            product: self.product,
            environment: self.environment,
            upstreams,
            route,
            traffic,
            status_reason: None,
            revision: 1,
            split_since: None,
            rollout: self.rollout.map(|spec| Rollout {
                hold_for_pre_rollout: self.hold_for_pre_rollout,
                ..Rollout::start(spec, None, now)
            }),
            engine: self.engine,
        };
        let event = d.event(
            EventType::DeploymentCreated,
            format!(
                "Canary deployment created: {} → {} at {percent}%",
                d.stable_version, d.canary_version
            ),
            json!({"new_status": "active", "profile": profile_name, "percentage": percent, "rollout": d.rollout.as_ref().map(|r| &r.spec)}),
        );
        Ok((d, event))
    }
}

fn validate_config(c: &DeploymentConfig) -> Result<(), DomainError> {
    if c.min_canary_duration > c.max_canary_duration {
        return Err(DomainError::invalid(
            "min_duration",
            "must not exceed max_duration",
        ));
    }
    if c.metrics_window == GoDuration::ZERO || c.metrics_window > MAX_METRICS_WINDOW {
        return Err(DomainError::invalid(
            "metrics_window",
            format!("must be longer than 0s and at most {MAX_METRICS_WINDOW}"),
        ));
    }
    let t = &c.rollback_thresholds;
    for (field, v, max) in [
        (
            "rollback_thresholds.max_error_rate_increase",
            t.max_error_rate_increase,
            100.0,
        ),
        (
            "rollback_thresholds.max_latency_increase",
            t.max_latency_increase,
            100_000.0,
        ),
        (
            "rollback_thresholds.max_throughput_decrease",
            t.max_throughput_decrease,
            100.0,
        ),
        (
            "rollback_thresholds.min_success_rate",
            t.min_success_rate,
            100.0,
        ),
    ] {
        if !(0.0..=max).contains(&v) {
            return Err(DomainError::invalid(
                field,
                format!("must be between 0 and {max}"),
            ));
        }
    }
    Ok(())
}

impl Deployment {
    /// Where its traffic is split, for a metric's `target` label: its
    /// engine and backend (`engine:web/app`), else its proxy route
    /// ([`Route::label`]) when it has upstreams, else `queue` (worker lanes).
    pub fn target_label(&self) -> String {
        if let Some(e) = &self.engine {
            format!("engine:{}/{}", e.engine, e.backend)
        } else if !self.upstreams.stable.is_empty() || !self.upstreams.canary.is_empty() {
            self.route.label()
        } else {
            "queue".into()
        }
    }

    /// An event of this deployment; its data carries the deployment's revision
    /// after the change, so a stream reader can drop messages older than what it has.
    pub(crate) fn event(&self, kind: EventType, message: String, mut data: Value) -> NewEvent {
        if let Some(d) = data.as_object_mut() {
            d.insert("revision".into(), json!(self.revision));
        }
        NewEvent {
            kind,
            resource_type: "deployment",
            resource_id: self.id.clone(),
            deployment_id: Some(self.id.clone()),
            message,
            data,
        }
    }

    fn require_live(&self, action: &str) -> Result<(), DomainError> {
        if self.status.is_live() {
            Ok(())
        } else {
            Err(DomainError::NotActive {
                id: self.id.clone(),
                status: self.status.as_str(),
                action: action.to_string(),
            })
        }
    }

    /// Refuses to move traffic to a release that waits for its approvals or its
    /// pre-deploy hook (see [`Deployment::held`]).
    fn require_not_held(&self) -> Result<(), DomainError> {
        match self.held() {
            Some(why) => Err(DomainError::Refused {
                code: "DEPLOYMENT_HELD",
                message: format!("deployment {} {why}; no traffic moves until then", self.id),
                kind: crate::error::Kind::Conflict,
            }),
            None => Ok(()),
        }
    }

    /// The share of stable's requests copied to the canary now: the plan's
    /// latest `mirror` step while the deployment is live, else 0.
    pub fn mirror_percent(&self) -> u8 {
        match &self.rollout {
            Some(r) if self.status.is_live() => r.mirror_percent,
            _ => 0,
        }
    }

    pub(crate) fn touch(&mut self, now: Timestamp) {
        self.last_update = now;
        self.revision += 1;
    }

    /// Sets the canary's share. No event when it is already there.
    pub fn set_percentage(
        &mut self,
        percent: u8,
        now: Timestamp,
    ) -> Result<Vec<NewEvent>, DomainError> {
        self.require_live("change its traffic")?;
        if matches!(
            self.status,
            DeploymentStatus::Promoting | DeploymentStatus::RollingBack
        ) {
            return Err(DomainError::NotActive {
                id: self.id.clone(),
                status: self.status.as_str(),
                action: "change its traffic".into(),
            });
        }
        let old = self.current_percent;
        if percent > old {
            self.require_not_held()?;
        }
        if old == percent && self.target_percent == percent {
            return Ok(Vec::new());
        }
        if old != percent {
            self.split_since = Some(now);
        }
        self.current_percent = percent;
        self.target_percent = percent;
        self.touch(now);
        Ok(vec![self.event(
            EventType::PercentageUpdated,
            format!("Traffic split updated to {percent}%"),
            json!({"old_percentage": old, "new_percentage": percent}),
        )])
    }

    /// Promotes: canary to 100%, `completed`.
    pub fn promote(&mut self, now: Timestamp) -> Result<Vec<NewEvent>, DomainError> {
        self.require_live("promote it")?;
        self.require_not_held()?;
        let (old_status, old) = (self.status, self.current_percent);
        self.status = DeploymentStatus::Completed;
        self.current_percent = 100;
        self.target_percent = 100;
        self.completed_at = Some(now);
        self.status_reason = None;
        crate::rollout::mark_ended(self);
        self.touch(now);
        Ok(vec![self.event(
            EventType::DeploymentPromoted,
            format!("Deployment promoted to 100%: {} is the new stable version", self.canary_version),
            json!({"old_status": old_status, "new_status": self.status, "old_percentage": old, "new_percentage": 100}),
        )])
    }

    /// Rolls back: canary to 0%, `failed`, with the reason.
    pub fn rollback(&mut self, reason: &str, now: Timestamp) -> Result<Vec<NewEvent>, DomainError> {
        self.require_live("roll it back")?;
        validate_text("reason", reason)?;
        if reason.len() > 2000 {
            return Err(DomainError::invalid(
                "reason",
                "must be at most 2000 characters",
            ));
        }
        let (old_status, old) = (self.status, self.current_percent);
        self.status = DeploymentStatus::Failed;
        self.current_percent = 0;
        self.target_percent = 0;
        self.completed_at = Some(now);
        self.status_reason = Some(reason.to_string());
        crate::rollout::mark_ended(self);
        self.touch(now);
        Ok(vec![self.event(
            EventType::DeploymentRolledBack,
            format!("Deployment rolled back: {reason}"),
            json!({"old_status": old_status, "new_status": self.status, "old_percentage": old, "new_percentage": 0, "reason": reason}),
        )])
    }

    /// Pauses automation (manual changes stay allowed).
    pub fn pause(
        &mut self,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<NewEvent>, DomainError> {
        if self.status != DeploymentStatus::Active {
            return Err(DomainError::NotActive {
                id: self.id.clone(),
                status: self.status.as_str(),
                action: "pause it".into(),
            });
        }
        self.status = DeploymentStatus::Paused;
        self.status_reason = reason.map(str::to_string);
        self.touch(now);
        Ok(vec![self.event(
            EventType::DeploymentPaused,
            format!(
                "Deployment paused{}",
                reason.map(|r| format!(": {r}")).unwrap_or_default()
            ),
            json!({"old_status": "active", "new_status": "paused", "reason": reason}),
        )])
    }

    /// Resumes a paused deployment.
    pub fn resume(&mut self, now: Timestamp) -> Result<Vec<NewEvent>, DomainError> {
        if self.status != DeploymentStatus::Paused {
            return Err(DomainError::NotActive {
                id: self.id.clone(),
                status: self.status.as_str(),
                action: "resume it (it is not paused)".into(),
            });
        }
        self.status = DeploymentStatus::Active;
        self.status_reason = None;
        crate::rollout::restart_step(self, now);
        self.touch(now);
        Ok(vec![self.event(
            EventType::DeploymentResumed,
            "Deployment resumed".into(),
            json!({"old_status": "paused", "new_status": "active"}),
        )])
    }

    /// Changes the HTTP routing (live deployments only). No event when nothing changes.
    pub fn set_routing(
        &mut self,
        change: RoutingChange,
        now: Timestamp,
    ) -> Result<Vec<NewEvent>, DomainError> {
        self.require_live("change its routing")?;
        let upstreams = change.upstreams.unwrap_or_else(|| self.upstreams.clone());
        let route = change.route.unwrap_or_else(|| self.route.clone());
        let traffic = change.traffic.unwrap_or_else(|| self.traffic.clone());
        check_routing(&upstreams, &route, &traffic)?;
        let mut changed = Vec::new();
        if upstreams != self.upstreams {
            changed.push("upstreams");
        }
        if route != self.route {
            changed.push("route");
        }
        if traffic != self.traffic {
            changed.push("traffic");
        }
        if changed.is_empty() {
            return Ok(Vec::new());
        }
        let old =
            json!({"upstreams": self.upstreams, "route": self.route, "traffic": self.traffic});
        self.upstreams = upstreams;
        self.route = route;
        self.traffic = traffic;
        self.touch(now);
        Ok(vec![self.event(
            EventType::RoutingUpdated,
            format!("Routing updated: {}", changed.join(", ")),
            json!({
                "changed": changed,
                "old": old,
                "new": {"upstreams": self.upstreams, "route": self.route, "traffic": self.traffic},
            }),
        )])
    }

    /// Checks that the deployment may be deleted (only final ones may).
    pub fn deletion(&self) -> Result<NewEvent, DomainError> {
        if self.status.is_live() {
            return Err(DomainError::StillActive {
                id: self.id.clone(),
                status: self.status.as_str(),
            });
        }
        Ok(self.event(
            EventType::DeploymentDeleted,
            format!("Deployment deleted ({})", self.status.as_str()),
            json!({"status": self.status}),
        ))
    }
}

#[cfg(test)]
mod tests;
