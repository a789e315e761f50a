//! Rollout specs: the plan a deployment follows, as a list of steps.
//!
//! A plan is what a person would write on a whiteboard: "5% and wait ten
//! minutes, look at the numbers, 25%, wait for a human, 50%, …". So a spec is a
//! list of five kinds of step, run in order:
//!
//! - `set_weight N`: the canary's share becomes N%;
//! - `pause`: for a duration, or (without one) until a person continues;
//! - `analysis`: the judges look at a window of lane metrics and say go, wait,
//!   or roll back;
//! - `gate`: something outside must say yes — a webhook answering 2xx, or an
//!   approval — before the rollout moves on;
//! - `mirror`: a share of the requests stable answers is copied to the canary,
//!   whose answers are judged but never sent to anyone.
//!
//! The canary-config.yaml shorthand (`traffic_steps: [5, 25, 50, 100]` with one
//! `wait_time`) expands to `set_weight, pause(wait), analysis` per step, the last
//! weight of 100 being the promotion itself. This module only describes and checks
//! plans; driving them is the controller's job.

use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::duration::GoDuration;
use crate::judge::health::HealthCheckSpec;
use crate::judge::policy::Policy;
use crate::rollout::hooks::{Hook, HookKind};
use crate::rollout::notify::Notification;

/// Most steps in one plan.
pub const MAX_STEPS: usize = 200;

/// One step of a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// The canary's share becomes this percentage.
    SetWeight(u8),
    /// Wait: for `duration`, or until a person continues when it is absent.
    Pause {
        /// How long; absent: until continued.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration: Option<GoDuration>,
    },
    /// Run the judges over the last `window` of lane metrics.
    Analysis {
        /// The window judged (default: the deployment's `metrics_window`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<GoDuration>,
    },
    /// Something outside must say yes.
    Gate(Gate),
    /// Copy this percent of the requests stable answers to the canary too,
    /// the copies' answers dropped (0 stops): the canary meets real requests
    /// before it serves any, and its answers to them are judged against
    /// stable's (the proxies count them in the `mirror` lane). Holds until a
    /// later mirror step or the end of the rollout. Serin's proxy and the
    /// Gateway API engine (`RequestMirror`) mirror.
    Mirror {
        /// The share of stable's requests copied, 0–100.
        percent: u8,
    },
}

/// What a gate asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Gate {
    /// A webhook: a 2xx answer is yes.
    Webhook {
        /// Where to ask (http:// or https://).
        url: String,
    },
    /// An approval by a person with at least the engineer role.
    Approval,
    /// The approval policy of an environment, met for a release (see
    /// `environment`): passed by the server when the approvals are in, never by
    /// a plain "continue".
    ReleaseApproval {
        /// The release.
        release_id: i64,
        /// The environment whose policy applies.
        environment: String,
        /// Approvals the policy needs.
        required: u32,
    },
}

/// A deployment's plan: its steps and what judges them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RolloutSpec {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Which built-in judges run at analysis steps.
    #[serde(default)]
    pub judges: Judges,
    /// Safety checks: a metric against a threshold, at an alert level.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub safety_checks: Vec<SafetyCheck>,
    /// Custom policies (CEL).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<Policy>,
    /// Health checks of each lane, probed on their interval all through the rollout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<HealthCheckSpec>,
    /// Hooks at the rollout's turning points.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<Hook>,
    /// Where the rollout's events are sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<Notification>,
    /// What happens when `max_canary_duration` passes before the rollout ends.
    #[serde(default)]
    pub on_max_duration: MaxDurationAction,
}

/// The built-in judges a rollout uses, and the sequential judge's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Judges {
    /// The rollback thresholds, from the deployment's profile (default on).
    #[serde(default = "yes")]
    pub threshold: bool,
    /// The sequential judge: anytime-valid tests of error rate and latency
    /// against stable (default on).
    #[serde(default = "yes")]
    pub sequential: bool,
    /// The whole rollout's false-rollback probability for the sequential judge
    /// (split over its two metrics and the analysis steps), and its budget for
    /// promoting early a canary outside the tolerances. Default 0.01.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Early promotion needs evidence that the canary's error rate is below this
    /// multiple of stable's (default 1.2).
    #[serde(default = "default_error_tolerance")]
    pub error_tolerance: f64,
    /// …and that its p95 latency is below this multiple of stable's (default 1.1).
    #[serde(default = "default_latency_tolerance")]
    pub latency_tolerance: f64,
    /// Whether an analysis step with that evidence ends before its window is
    /// over (default on). Off: every analysis lasts its whole window.
    #[serde(default = "yes")]
    pub promote_early: bool,
    /// How much worse than stable is not yet a regression (default: the
    /// deployment profile's margins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margins: Option<crate::stats::sequential::Margins>,
}

fn yes() -> bool {
    true
}

fn default_alpha() -> f64 {
    0.01
}

fn default_error_tolerance() -> f64 {
    1.2
}

fn default_latency_tolerance() -> f64 {
    1.1
}

impl Default for Judges {
    fn default() -> Self {
        Judges {
            threshold: true,
            sequential: true,
            alpha: default_alpha(),
            error_tolerance: default_error_tolerance(),
            latency_tolerance: default_latency_tolerance(),
            promote_early: true,
            margins: None,
        }
    }
}

impl Judges {
    /// Checks the sequential judge's settings.
    pub fn validate(&self) -> Result<(), DomainError> {
        if !(self.alpha > 0.0 && self.alpha <= 0.2) {
            return Err(DomainError::invalid(
                "judges.alpha",
                "give a probability above 0 and at most 0.2 (e.g. 0.01)",
            ));
        }
        for (field, v) in [
            ("judges.error_tolerance", self.error_tolerance),
            ("judges.latency_tolerance", self.latency_tolerance),
        ] {
            if !(v > 1.0 && v <= 10.0) {
                return Err(DomainError::invalid(
                    field,
                    "give a ratio above 1 and at most 10 (e.g. 1.2)",
                ));
            }
        }
        if let Some(m) = &self.margins {
            m.validate().map_err(|e| e.under("judges"))?;
        }
        Ok(())
    }

    /// The margins the judges use: the plan's, else the deployment's profile's.
    pub fn margins_or(
        &self,
        profile: crate::stats::sequential::Margins,
    ) -> crate::stats::sequential::Margins {
        self.margins.unwrap_or(profile)
    }
}

/// What the controller does when a rollout outlives `max_canary_duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MaxDurationAction {
    /// Traffic back to stable: the canary wasn't proven in time.
    #[default]
    Rollback,
    /// Hold where it is until a person decides.
    Pause,
}

impl RolloutSpec {
    /// A plan of steps alone, with the default judges.
    pub fn of_steps(steps: Vec<Step>) -> RolloutSpec {
        RolloutSpec {
            steps,
            judges: Judges::default(),
            safety_checks: Vec::new(),
            policies: Vec::new(),
            health_checks: Vec::new(),
            hooks: Vec::new(),
            notifications: Vec::new(),
            on_max_duration: MaxDurationAction::default(),
        }
    }

    /// The canary-config.yaml shorthand. With a `wait`, each weight is followed by an
    /// analysis lasting `wait` (the judges watch the whole wait and may roll back
    /// during it); without one (automatic progression off), by an analysis over the
    /// metrics window and then a pause until a person continues. 100% is the
    /// promotion itself and gets neither.
    pub fn from_traffic_steps(weights: &[u8], wait: GoDuration) -> RolloutSpec {
        let mut steps = Vec::with_capacity(weights.len() * 3);
        for &w in weights {
            steps.push(Step::SetWeight(w));
            if w < 100 {
                if wait > GoDuration::ZERO {
                    steps.push(Step::Analysis { window: Some(wait) });
                } else {
                    steps.push(Step::Analysis { window: None });
                    steps.push(Step::Pause { duration: None });
                }
            }
        }
        RolloutSpec::of_steps(steps)
    }

    /// Every place the plan makes the server connect, with its field: gate and
    /// hook webhooks, health-check endpoints (not registered targets, which an
    /// admin vouches for) and notification URLs.
    pub fn outbound_targets(&self) -> Vec<(String, &str)> {
        let mut out = Vec::new();
        for (i, s) in self.steps.iter().enumerate() {
            if let Step::Gate(Gate::Webhook { url }) = s {
                out.push((format!("steps[{i}]"), url.as_str()));
            }
        }
        for (i, c) in self.health_checks.iter().enumerate() {
            if c.target().is_none() {
                out.push((format!("health_checks[{i}].endpoint"), c.endpoint.as_str()));
            }
        }
        for (i, h) in self.hooks.iter().enumerate() {
            if let Some(url) = &h.webhook {
                out.push((format!("hooks[{i}].webhook"), url.as_str()));
            }
        }
        for (i, n) in self.notifications.iter().enumerate() {
            out.push((format!("notifications[{i}].url"), n.url.as_str()));
        }
        out
    }

    /// Checks the plan; the error names the step at fault (`steps[3]`).
    pub fn validate(&self) -> Result<(), DomainError> {
        if self.steps.is_empty() {
            return Err(DomainError::invalid("steps", "give at least one step"));
        }
        if self.steps.len() > MAX_STEPS {
            return Err(DomainError::invalid(
                "steps",
                format!("at most {MAX_STEPS} steps"),
            ));
        }
        self.judges.validate()?;
        let mut last_weight = 0u8;
        for (i, s) in self.steps.iter().enumerate() {
            let field = format!("steps[{i}]");
            match s {
                Step::SetWeight(w) if *w > 100 => {
                    return Err(DomainError::invalid(
                        field,
                        format!("weight {w} is not a percentage (0–100)"),
                    ));
                }
                Step::SetWeight(w) if *w < last_weight => {
                    return Err(DomainError::invalid(
                        field,
                        format!(
                            "weight {w} is below the previous {last_weight}: a plan only moves traffic towards the canary (roll back instead)"
                        ),
                    ));
                }
                Step::SetWeight(w) => last_weight = *w,
                Step::Pause { duration: Some(d) }
                    if *d == GoDuration::ZERO || *d > GoDuration::from_hours(7 * 24) =>
                {
                    return Err(DomainError::invalid(
                        field,
                        "a pause lasts more than 0s and at most 168h (leave the duration out to wait for a person)",
                    ));
                }
                Step::Analysis { window: Some(w) }
                    if *w == GoDuration::ZERO || *w > GoDuration::from_hours(24) =>
                {
                    return Err(DomainError::invalid(
                        field,
                        "an analysis window is more than 0s and at most 24h",
                    ));
                }
                Step::Gate(Gate::Webhook { url }) => check_http_url(&field, url)?,
                Step::Mirror { percent } if *percent > 100 => {
                    return Err(DomainError::invalid(
                        field,
                        format!("mirror {percent} is not a percentage (0–100)"),
                    ));
                }
                _ => {}
            }
        }
        check_named(
            "safety_checks",
            &self.safety_checks,
            |c| &c.name,
            SafetyCheck::validate,
        )?;
        check_named("policies", &self.policies, |p| &p.name, Policy::validate)?;
        check_named(
            "health_checks",
            &self.health_checks,
            |h| &h.name,
            HealthCheckSpec::validate,
        )?;
        check_named("hooks", &self.hooks, |h| &h.name, Hook::validate)?;
        if self.notifications.len() > 20 {
            return Err(DomainError::invalid("notifications", "at most 20 targets"));
        }
        for (i, n) in self.notifications.iter().enumerate() {
            n.validate()
                .map_err(|e| e.under(&format!("notifications[{i}]")))?;
        }
        Ok(())
    }

    /// The hooks of one kind, in order.
    pub fn hooks_of(&self, kind: HookKind) -> impl Iterator<Item = &Hook> {
        self.hooks.iter().filter(move |h| h.kind == kind)
    }

    /// Whether any hook is of this kind.
    pub fn has_hooks(&self, kind: HookKind) -> bool {
        self.hooks_of(kind).next().is_some()
    }

    /// How many analysis steps the plan has (the sequential judge splits its α
    /// over them).
    pub fn analysis_steps(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s, Step::Analysis { .. }))
            .count()
    }

    /// How long the plan's timed steps (pauses with a duration, analyses) last
    /// at least, with `metrics_window` for analyses that name no window.
    pub fn timed_length(&self, metrics_window: GoDuration) -> GoDuration {
        let nanos = self
            .steps
            .iter()
            .map(|s| match s {
                Step::Pause { duration: Some(d) } => d.as_nanos(),
                Step::Analysis { window } => window.unwrap_or(metrics_window).as_nanos(),
                _ => 0,
            })
            .fold(0u64, u64::saturating_add);
        GoDuration::from_nanos(nanos)
    }

    /// The weight the plan ends at (what promotion means for it).
    pub fn final_weight(&self) -> u8 {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::SetWeight(w) => Some(*w),
                _ => None,
            })
            .next_back()
            .unwrap_or(0)
    }
}

/// Checks each item of a named list (errors under `list[i]`) and that the names
/// are unique within it.
fn check_named<T>(
    list: &str,
    items: &[T],
    name: impl Fn(&T) -> &String,
    check: impl Fn(&T) -> Result<(), DomainError>,
) -> Result<(), DomainError> {
    let mut seen = std::collections::BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        check(item).map_err(|e| e.under(&format!("{list}[{i}]")))?;
        if !seen.insert(name(item)) {
            return Err(DomainError::invalid(
                format!("{list}[{i}].name"),
                "names are unique",
            ));
        }
    }
    Ok(())
}

/// Whether a webhook URL is acceptable: http:// or https://, no spaces, at most 2 KiB.
pub(crate) fn is_http_url(url: &str) -> bool {
    (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() <= 2048
        && !url.contains(char::is_whitespace)
}

/// Whether a URL carries credentials (`user[:pass]@` before its host).
pub fn has_credentials(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return true;
    }
    // A token in the query string.
    let query = rest.split_once('?').map_or("", |(_, q)| q);
    let secret_param = query.split('&').any(|pair| {
        let key = pair.split('=').next().unwrap_or("").to_ascii_lowercase();
        SECRET_PARAMS.contains(&key.as_str())
    });
    // Chat webhooks whose path is the credential.
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .to_ascii_lowercase();
    let path = &rest[authority.len()..];
    let secret_path = SECRET_PATHS
        .iter()
        .any(|(h, p)| host == *h && path.starts_with(p));
    secret_param || secret_path
}

/// Query parameters that carry a credential.
const SECRET_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "api_key",
    "apikey",
    "key",
    "secret",
    "password",
    "sig",
    "signature",
    "code",
    "auth",
];

/// Hosts and paths whose URL is itself a credential.
const SECRET_PATHS: &[(&str, &str)] = &[
    ("hooks.slack.com", "/services/"),
    ("hooks.slack.com", "/workflows/"),
    ("discord.com", "/api/webhooks/"),
    ("discordapp.com", "/api/webhooks/"),
    ("outlook.office.com", "/webhook"),
    ("chat.googleapis.com", "/v1/spaces/"),
];

/// Checks a URL a plan carries: http:// or https://, bounded, and without
/// credentials — a plan is read by every viewer (deployment, events, audit
/// log), so a password in it is a password for all. The message never repeats
/// such a URL.
pub fn check_http_url(field: &str, url: &str) -> Result<(), DomainError> {
    if let Some(name) = crate::secret::reference(url) {
        return crate::secret::validate_name(field, name);
    }
    if has_credentials(url) {
        return Err(DomainError::invalid(
            field,
            "a URL in a plan can't carry credentials (`user:pass@`, a token in its query, a chat webhook's secret path): every viewer reads plans; store it as a secret (`PUT /api/v1/secrets/NAME`, admins) and write `secret:NAME` instead",
        ));
    }
    if !is_http_url(url) {
        return Err(DomainError::invalid(
            field,
            format!("`{url}` is not an http:// or https:// URL"),
        ));
    }
    Ok(())
}

/// The rule for the name of a check, policy or hook: 1–100 characters, not blank.
pub(crate) fn check_item_name(name: &str) -> Result<(), DomainError> {
    if name.trim().is_empty() || name.len() > 100 {
        return Err(DomainError::invalid(
            "name",
            "give a name of 1–100 characters",
        ));
    }
    Ok(())
}

/// The canary-config form's reference example, character for character (what
/// `serin lint` and the live verdict benchmark read as the canary-config plan).
pub const CANARY_CONFIG_EXAMPLE: &str = r#"# canary-config.yaml
canary:
  auto_progression:
    enabled: true
    wait_time: "24h"
    thresholds:
      max_latency: "1000ms"
      min_success_rate: 0.85
      max_error_rate: 0.15
  
  traffic_steps: [5, 25, 50, 100]
  
  safety_checks:
    - name: "Total Latency"
      metric: "p95_latency_ms"  
      threshold: 1000
      alert_level: "critical"
    
    - name: "Memory Queries"
      metric: "memory_query_latency_ms"
      threshold: 50
      alert_level: "warning"
"#;

/// What a spec file asks for: the plan, and whether it promotes by itself
/// (a canary-config.yaml's `auto_progression.enabled`; absent in a plain plan).
#[derive(Debug, Clone, PartialEq)]
pub struct SpecFile {
    /// The plan.
    pub spec: RolloutSpec,
    /// Promote automatically after the last step.
    pub auto_promotion: Option<bool>,
}

impl SpecFile {
    /// The plan a file's content describes (read from YAML or JSON into
    /// JSON's data model), or why it describes none: a `canary:` config
    /// (canary-config.yaml), or a plain `{"steps": [...]}` plan, validated.
    pub fn from_value(value: serde_json::Value) -> Result<SpecFile, String> {
        if value.get("canary").is_some() {
            let f: CanaryConfigFile = serde_json::from_value(value)
                .map_err(|e| format!("not a valid canary config (`canary:`): {e}"))?;
            let spec = f.canary.spec().map_err(|e| e.to_string())?;
            let auto = f.canary.auto_progression.as_ref().map(|a| a.enabled);
            return Ok(SpecFile {
                spec,
                auto_promotion: auto,
            });
        }
        if value.get("steps").is_some() {
            let spec: RolloutSpec = serde_json::from_value(value)
                .map_err(|e| format!("not a valid rollout spec: {e}"))?;
            spec.validate().map_err(|e| e.to_string())?;
            return Ok(SpecFile {
                spec,
                auto_promotion: None,
            });
        }
        Err("neither a `canary:` config nor a `steps:` list".into())
    }
}

/// The `canary-config.yaml` configuration file (examples/canary-config.yaml).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryConfigFile {
    /// The one top-level key.
    pub canary: CanaryConfigSection,
}

/// The `canary:` section of a `canary-config.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryConfigSection {
    /// Automatic progression between steps.
    #[serde(default)]
    pub auto_progression: Option<AutoProgression>,
    /// The weights, in order.
    pub traffic_steps: Vec<u8>,
    /// Safety checks: a metric against a threshold, at an alert level.
    #[serde(default)]
    pub safety_checks: Vec<SafetyCheck>,
}

/// The `auto_progression` of a `canary-config.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoProgression {
    /// Whether steps advance by themselves.
    pub enabled: bool,
    /// How long each step waits.
    pub wait_time: GoDuration,
    /// Limits that hold at every step.
    #[serde(default)]
    pub thresholds: Option<ProgressionThresholds>,
}

/// The `auto_progression.thresholds` (rates as fractions, latency as a duration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressionThresholds {
    /// Highest tolerated latency.
    #[serde(default)]
    pub max_latency: Option<GoDuration>,
    /// Lowest tolerated success rate, 0–1.
    #[serde(default)]
    pub min_success_rate: Option<f64>,
    /// Highest tolerated error rate, 0–1.
    #[serde(default)]
    pub max_error_rate: Option<f64>,
}

/// A safety check: one metric of the canary lane against a limit, at an alert level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SafetyCheck {
    /// What people call it.
    pub name: String,
    /// The metric compared (e.g. `p95_latency_ms`).
    pub metric: String,
    /// Its limit.
    pub threshold: f64,
    /// How bad crossing it is.
    pub alert_level: AlertLevel,
}

/// How bad crossing a safety check is: a warning watches, a critical rolls back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlertLevel {
    /// WATCH.
    Warning,
    /// RED.
    Critical,
}

impl SafetyCheck {
    /// Checks the fields; errors name the field.
    pub fn validate(&self) -> Result<(), DomainError> {
        check_item_name(&self.name)?;
        if self.metric.trim().is_empty() || self.metric.len() > 200 {
            return Err(DomainError::invalid(
                "metric",
                "give a metric name of 1–200 characters",
            ));
        }
        if !self.threshold.is_finite() {
            return Err(DomainError::invalid("threshold", "must be a finite number"));
        }
        Ok(())
    }
}

impl CanaryConfigSection {
    /// The plan this file describes: with automatic progression each weight is
    /// analysed for `wait_time`; without it, over the metrics window and then held
    /// until a person continues. The thresholds become critical safety checks.
    pub fn spec(&self) -> Result<RolloutSpec, DomainError> {
        let wait = self
            .auto_progression
            .as_ref()
            .filter(|a| a.enabled)
            .map_or(GoDuration::ZERO, |a| a.wait_time);
        if self.traffic_steps.is_empty() {
            return Err(DomainError::invalid(
                "canary.traffic_steps",
                "give at least one weight",
            ));
        }
        for (i, w) in self.traffic_steps.iter().enumerate() {
            let previous = i.checked_sub(1).map(|p| self.traffic_steps[p]);
            if *w > 100 || previous.is_some_and(|p| *w < p) {
                return Err(DomainError::invalid(
                    format!("canary.traffic_steps[{i}]"),
                    format!("{w} must be a percentage no lower than the step before"),
                ));
            }
        }
        let mut spec = RolloutSpec::from_traffic_steps(&self.traffic_steps, wait);
        spec.validate()
            .map_err(|e| DomainError::invalid("canary.traffic_steps", e.to_string()))?;
        for (i, c) in self.safety_checks.iter().enumerate() {
            c.validate()
                .map_err(|e| e.under(&format!("canary.safety_checks[{i}]")))?;
        }
        spec.safety_checks = self.safety_checks.clone();
        if let Some(t) = self
            .auto_progression
            .as_ref()
            .and_then(|a| a.thresholds.as_ref())
        {
            for (field, v) in [
                ("min_success_rate", t.min_success_rate),
                ("max_error_rate", t.max_error_rate),
            ] {
                if let Some(v) = v
                    && !(0.0..=1.0).contains(&v)
                {
                    return Err(DomainError::invalid(
                        format!("canary.auto_progression.thresholds.{field}"),
                        "is a fraction between 0 and 1",
                    ));
                }
            }
            // The thresholds hold at every step: critical safety checks on the
            // canary lane (rates given as fractions become percent).
            let mut add = |name: &str, metric: &str, threshold: Option<f64>| {
                if let Some(threshold) = threshold {
                    spec.safety_checks.push(SafetyCheck {
                        name: name.into(),
                        metric: metric.into(),
                        threshold,
                        alert_level: AlertLevel::Critical,
                    });
                }
            };
            add(
                "max_latency",
                "p95_latency_ms",
                t.max_latency.map(|d| d.to_std().as_secs_f64() * 1000.0),
            );
            add(
                "min_success_rate",
                "success_rate",
                t.min_success_rate.map(|v| v * 100.0),
            );
            add(
                "max_error_rate",
                "error_rate",
                t.max_error_rate.map(|v| v * 100.0),
            );
        }
        spec.validate().map_err(|e| e.under("canary"))?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests;
