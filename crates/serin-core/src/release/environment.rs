//! Environments, approvals and deploying a release (the release manager).
//!
//! A product runs in an ordered list of environments — `development`,
//! `staging`, `production` unless its owners say otherwise. Deploying a release
//! to an environment is *not* a second kind of deployment: it plans an ordinary
//! canary deployment (the same record `/api/v1/canary` shows, driven by the same
//! controller) whose target is `<product>.<environment>`, whose stable lane is
//! what runs there now and whose rollout follows the chosen strategy:
//!
//! ```text
//!   direct      [approval gate] → pre-deploy hook → 100%                  → promoted
//!   blue_green  [approval gate] → pre-deploy hook → [bake at 0%] → 100% → bake → promoted
//!   canary      [approval gate] → pre-deploy hook → the plan's steps (weights, analyses…)
//! ```
//!
//! (The bake at 0% happens only when there are health checks to watch the new
//! version before it gets traffic; a failing check rolls back at once.)
//!
//! The approval gate is first so that nothing — not even the pre-deploy hook,
//! which may migrate a database — happens before the policy is met. The release
//! deployment statuses are a reading of that record ([`ReleaseDeploymentStatus`]):
//! waiting at the gate or for the hook is `pending`, moving traffic is
//! `in_progress`, promoted is `succeeded`, rolled back by the judges or a
//! rejection is `failed`, and undone by a person's rollback is `rolled_back`.
//!
//! Promotion between environments: an environment may require that the
//! release's latest deployment to the previous environment succeeded. So a
//! staging failure blocks production until staging passes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::Role;
use crate::canary::{Deployment, DeploymentStatus, NewDeployment, Route, Upstreams};
use crate::duration::GoDuration;
use crate::event::{EventType, NewEvent};
use crate::release::product::validate_name;
use crate::rollout::hooks::{Hook, HookKind};
use crate::rollout::notify::Notification;
use crate::rollout::{Gate, RolloutSpec, Step};
use crate::{DomainError, Release, ReleaseStatus};

/// Most environments per product.
pub const MAX_ENVIRONMENTS: usize = 20;

/// Who must approve a release before it may enter an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApprovalPolicy {
    /// Approvals needed from distinct people (0: none).
    pub required: u32,
    /// The least role that may approve (default `engineer`; `viewer` is refused).
    #[serde(default = "engineer")]
    pub min_role: Role,
    /// Whether the release's author may approve it (default no).
    #[serde(default)]
    pub author_may_approve: bool,
}

fn engineer() -> Role {
    Role::Engineer
}

impl Default for ApprovalPolicy {
    fn default() -> Self {
        ApprovalPolicy {
            required: 0,
            min_role: Role::Engineer,
            author_may_approve: false,
        }
    }
}

/// A command or webhook run before traffic moves to a release in an
/// environment (a database migration, say). Its exit code gates the
/// deployment; its output is kept in the deployment's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PreDeployHook {
    /// A command and its arguments (no shell), e.g. `["alembic", "upgrade", "head"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Or a webhook URL: a 2xx answer is success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// Seconds one attempt may take (default 300).
    #[serde(default = "hook_timeout")]
    pub timeout_seconds: u32,
    /// Further attempts after a failure (default 0: migrations are not retried blindly).
    #[serde(default)]
    pub retry_count: u32,
}

fn hook_timeout() -> u32 {
    300
}

impl PreDeployHook {
    /// The rollout hook it becomes.
    pub fn hook(&self) -> Hook {
        Hook {
            name: "pre-deploy".into(),
            kind: HookKind::PreRollout,
            webhook: self.webhook.clone(),
            command: self.command.clone(),
            timeout_seconds: self.timeout_seconds,
            retry_count: self.retry_count,
        }
    }
}

/// One environment of a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Environment {
    /// The product.
    pub product: String,
    /// Its name, e.g. `staging`.
    pub name: String,
    /// Its place in the order, from 0 (`development`).
    pub position: u32,
    /// A release must have succeeded in the previous environment first.
    pub require_previous: bool,
    /// Who must approve a release before it enters.
    pub approvals: ApprovalPolicy,
    /// Run before traffic moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_deploy_hook: Option<PreDeployHook>,
    /// Which HTTP requests this environment's deployments serve by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
    /// Where this environment's deployments and published release notes are announced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<Notification>,
    /// False for the built-in defaults of a product that never configured any.
    pub configured: bool,
}

/// The defaults: development, then staging (after development), then
/// production (after staging, with two approvals by engineers or admins other
/// than the author).
pub fn default_environments(product: &str) -> Vec<Environment> {
    let env = |name: &str, position, require_previous, required| Environment {
        product: product.to_string(),
        name: name.to_string(),
        position,
        require_previous,
        approvals: ApprovalPolicy {
            required,
            ..ApprovalPolicy::default()
        },
        pre_deploy_hook: None,
        route: None,
        notifications: Vec::new(),
        configured: false,
    };
    vec![
        env("development", 0, false, 0),
        env("staging", 1, true, 0),
        env("production", 2, true, 2),
    ]
}

/// An environment's settings as a client sends them (create or change).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnvironmentSpec {
    /// The name (required to create; ignored when changing).
    #[serde(default)]
    pub name: Option<String>,
    /// Where in the order (default: last). Later environments move down.
    #[serde(default)]
    pub position: Option<u32>,
    /// Require success in the previous environment (default false).
    #[serde(default)]
    pub require_previous: Option<bool>,
    /// The approval policy (default: none).
    #[serde(default)]
    pub approvals: Option<ApprovalPolicy>,
    /// The pre-deploy hook; `null` removes it.
    #[serde(default, with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<PreDeployHook>))]
    pub pre_deploy_hook: Option<Option<PreDeployHook>>,
    /// The default route; `null` removes it.
    #[serde(default, with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Route>))]
    pub route: Option<Option<Route>>,
    /// Where deployments and release notes are announced (replaces the list).
    #[serde(default)]
    pub notifications: Option<Vec<Notification>>,
}

mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(
        v: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

impl EnvironmentSpec {
    /// Lays the spec over `env` and checks the result.
    pub fn apply(&self, env: &mut Environment) -> Result<(), DomainError> {
        if let Some(v) = self.require_previous {
            env.require_previous = v;
        }
        if let Some(p) = &self.approvals {
            env.approvals = p.clone();
        }
        if let Some(h) = &self.pre_deploy_hook {
            env.pre_deploy_hook = h.clone();
        }
        if let Some(r) = &self.route {
            env.route = r.clone();
        }
        if let Some(n) = &self.notifications {
            env.notifications = n.clone();
        }
        env.configured = true;
        env.validate()
    }
}

impl Environment {
    /// Checks the settings; errors name the field.
    pub fn validate(&self) -> Result<(), DomainError> {
        validate_name("name", &self.name)?;
        if self.approvals.required > 10 {
            return Err(DomainError::invalid(
                "approvals.required",
                "at most 10 approvals",
            ));
        }
        if self.approvals.required > 0 && self.approvals.min_role == Role::Viewer {
            return Err(DomainError::invalid(
                "approvals.min_role",
                "viewers can't approve; use engineer or admin",
            ));
        }
        if self.notifications.len() > 20 {
            return Err(DomainError::invalid("notifications", "at most 20 targets"));
        }
        for (i, n) in self.notifications.iter().enumerate() {
            n.validate()
                .map_err(|e| e.under(&format!("notifications[{i}]")))?;
        }
        if let Some(h) = &self.pre_deploy_hook {
            h.hook()
                .validate()
                .map_err(|e| e.under("pre_deploy_hook"))?;
            if h.timeout_seconds == 0 || h.timeout_seconds > 3600 {
                return Err(DomainError::invalid(
                    "pre_deploy_hook.timeout_seconds",
                    "from 1 to 3600 seconds",
                ));
            }
        }
        Ok(())
    }

    /// The proxy target of this product in this environment.
    pub fn target(&self) -> String {
        format!("{}.{}", self.product, self.name)
    }
}

/// Adds an environment to a product's list (`create`) or changes one, keeping
/// positions 0, 1, 2… in order. Returns the new list and the changed entry.
pub fn upsert(
    mut list: Vec<Environment>,
    product: &str,
    name: &str,
    spec: &EnvironmentSpec,
    create: bool,
) -> Result<(Vec<Environment>, Environment), DomainError> {
    validate_name("name", name)?;
    list.sort_by_key(|e| e.position);
    let found = list.iter().position(|e| e.name == name);
    let idx = match (found, create) {
        (Some(_), true) => {
            return Err(DomainError::Refused {
                code: "ENVIRONMENT_EXISTS",
                message: format!("{product} already has an environment `{name}`"),
                kind: crate::error::Kind::Conflict,
            });
        }
        (None, false) => {
            return Err(DomainError::Refused {
                code: "ENVIRONMENT_NOT_FOUND",
                message: format!("{product} has no environment `{name}`"),
                kind: crate::error::Kind::NotFound,
            });
        }
        (Some(i), false) => i,
        (None, true) => {
            if list.len() >= MAX_ENVIRONMENTS {
                return Err(DomainError::invalid(
                    "name",
                    format!("a product has at most {MAX_ENVIRONMENTS} environments"),
                ));
            }
            list.push(Environment {
                product: product.to_string(),
                name: name.to_string(),
                position: 0,
                require_previous: false,
                approvals: ApprovalPolicy::default(),
                pre_deploy_hook: None,
                route: None,
                notifications: Vec::new(),
                configured: true,
            });
            list.len() - 1
        }
    };
    spec.apply(&mut list[idx])?;
    if let Some(p) = spec.position {
        let e = list.remove(idx);
        let at = (p as usize).min(list.len());
        list.insert(at, e);
    }
    for (i, e) in list.iter_mut().enumerate() {
        e.position = i as u32;
        e.configured = true;
    }
    let changed = list
        .iter()
        .find(|e| e.name == name)
        .cloned()
        .expect("just put there");
    Ok((list, changed))
}

mod approvals;
pub use approvals::*;

/// How a release enters an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// All traffic at once.
    #[default]
    Direct,
    /// Step by step, judged against stable.
    Canary,
    /// The new version warmed beside the old, then all traffic switched, then baked.
    BlueGreen,
}

impl Strategy {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Direct => "direct",
            Strategy::Canary => "canary",
            Strategy::BlueGreen => "blue_green",
        }
    }
}

/// What a client sends to deploy a release (`POST /api/v1/releases/{id}/deploy`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// The environment, e.g. `staging`.
    pub environment: String,
    /// `direct` (default), `canary` or `blue_green`.
    #[serde(default)]
    pub strategy: Strategy,
    /// Where the new version runs (`http://host:port`); default: where it ran in
    /// the previous environment is *not* assumed — give it, or leave it out for
    /// a target without a proxy (workers, an outside traffic layer).
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Which requests it serves (default: the environment's route, else the
    /// current deployment's).
    #[serde(default)]
    pub route: Option<Route>,
    /// The canary plan (strategy `canary`; default: 10% → analysis → 50% → analysis → 100%).
    #[serde(default)]
    pub rollout: Option<RolloutSpec>,
    /// The deployment profile: `default`, `conservative` or `aggressive`.
    #[serde(default)]
    pub profile: Option<String>,
    /// How long `blue_green` bakes before and after the switch (default 30s).
    #[serde(default)]
    pub bake_time: Option<GoDuration>,
}

/// What runs in an environment now, read from its most recent deployment: a
/// promoted one left its canary there, a rolled-back one its stable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// The version serving.
    pub version: String,
    /// Its endpoints.
    pub endpoints: Vec<String>,
    /// The route.
    pub route: Route,
}

impl Current {
    /// What `d` left running (`None` while it is live or if it left nothing).
    pub fn after(d: &Deployment) -> Option<Current> {
        let (version, endpoints) = match d.status {
            DeploymentStatus::Completed => (&d.canary_version, &d.upstreams.canary),
            DeploymentStatus::Failed => (&d.stable_version, &d.upstreams.stable),
            _ => return None,
        };
        (version != NOTHING).then(|| Current {
            version: version.clone(),
            endpoints: endpoints.clone(),
            route: d.route.clone(),
        })
    }
}

/// The stable version of a first deployment into an empty environment.
pub const NOTHING: &str = "none";

/// Plans the canary deployment that deploys `release` to `env`, given what runs
/// there now. The approval gate is included when `approval_needed`.
pub fn plan(
    release: &Release,
    env: &Environment,
    req: &DeployRequest,
    current: Option<&Current>,
    approval_needed: bool,
) -> Result<NewDeployment, DomainError> {
    if matches!(
        release.status,
        ReleaseStatus::Cancelled | ReleaseStatus::RolledBack
    ) {
        return Err(DomainError::Refused {
            code: "RELEASE_NOT_DEPLOYABLE",
            message: format!(
                "release {}@{} is {}; it can't be deployed",
                release.product_name, release.version, release.status
            ),
            kind: crate::error::Kind::Conflict,
        });
    }
    if current.is_some_and(|c| c.version == release.version) {
        return Err(DomainError::Refused {
            code: "ALREADY_DEPLOYED",
            message: format!(
                "{} already runs {} in {}",
                release.product_name, release.version, env.name
            ),
            kind: crate::error::Kind::Conflict,
        });
    }
    if req.strategy != Strategy::Direct && current.is_none() {
        return Err(DomainError::invalid(
            "strategy",
            format!(
                "nothing runs in {} yet, so there is nothing to compare with or switch from: the first deployment is `direct`",
                env.name
            ),
        ));
    }
    for (i, e) in req.endpoints.iter().enumerate() {
        crate::rollout::check_http_url(&format!("endpoints[{i}]"), e)?;
    }
    let mut steps = Vec::new();
    if approval_needed {
        steps.push(Step::Gate(Gate::ReleaseApproval {
            release_id: release.id,
            environment: env.name.clone(),
            required: env.approvals.required,
        }));
    }
    let bake = req.bake_time.unwrap_or(GoDuration::from_secs(30));
    let mut spec = match req.strategy {
        Strategy::Canary => {
            let mut spec = req.rollout.clone().unwrap_or_else(default_canary_plan);
            spec.steps.splice(0..0, steps);
            spec
        }
        Strategy::Direct => {
            if req.rollout.is_some() {
                return Err(DomainError::invalid(
                    "rollout",
                    "only the `canary` strategy takes a plan",
                ));
            }
            steps.push(Step::SetWeight(100));
            RolloutSpec::of_steps(steps)
        }
        Strategy::BlueGreen => {
            let checks = req
                .rollout
                .as_ref()
                .map(|r| r.health_checks.clone())
                .unwrap_or_default();
            if !checks.is_empty() {
                steps.push(Step::Pause {
                    duration: Some(bake),
                });
            }
            steps.push(Step::SetWeight(100));
            steps.push(Step::Pause {
                duration: Some(bake),
            });
            let mut spec = RolloutSpec::of_steps(steps);
            spec.health_checks = checks;
            if let Some(r) = &req.rollout {
                if !r.steps.is_empty() {
                    return Err(DomainError::invalid(
                        "rollout.steps",
                        "blue_green makes its own steps; give only health_checks, hooks and notifications",
                    ));
                }
                spec.hooks = r.hooks.clone();
                spec.notifications = r.notifications.clone();
            }
            spec
        }
    };
    if let Some(h) = &env.pre_deploy_hook {
        spec.hooks.retain(|x| x.kind != HookKind::PreRollout);
        spec.hooks.push(h.hook());
    }
    for n in &env.notifications {
        if !spec.notifications.iter().any(|m| m.url == n.url) {
            spec.notifications.push(n.clone());
        }
    }
    let route = req
        .route
        .clone()
        .or_else(|| env.route.clone())
        .or_else(|| current.map(|c| c.route.clone()))
        .unwrap_or_default();
    let stable = current.map(|c| c.endpoints.clone()).unwrap_or_default();
    let upstreams = if req.endpoints.is_empty() && stable.is_empty() {
        None
    } else {
        Some(Upstreams {
            stable,
            canary: req.endpoints.clone(),
        })
    };
    let mut metadata = BTreeMap::new();
    metadata.insert("release_id".to_string(), json!(release.id));
    metadata.insert("strategy".to_string(), json!(req.strategy.as_str()));
    Ok(NewDeployment {
        queue_name: env.target(),
        stable_version: current.map_or_else(|| NOTHING.to_string(), |c| c.version.clone()),
        canary_version: release.version.clone(),
        auto_promotion: Some(true),
        min_duration: Some(GoDuration::ZERO),
        profile: req.profile.clone(),
        metadata,
        product: Some(release.product_name.clone()),
        environment: Some(env.name.clone()),
        upstreams,
        route: (route != Route::default()).then_some(route),
        rollout: Some(spec),
        hold_for_pre_rollout: true,
        ..NewDeployment::default()
    })
}

/// The plan of a canary deployment when none is given.
pub fn default_canary_plan() -> RolloutSpec {
    let window = Some(GoDuration::from_secs(60));
    RolloutSpec::of_steps(vec![
        Step::SetWeight(10),
        Step::Analysis { window },
        Step::SetWeight(50),
        Step::Analysis { window },
        Step::SetWeight(100),
    ])
}

/// Plans a one-click rollback: a direct deployment from what runs now back to
/// `previous` (what ran before), with the health checks of the deployment it undoes.
pub fn rollback_plan(
    undone: &Deployment,
    now_running: &Current,
    previous: &Current,
    release_id: Option<i64>,
) -> NewDeployment {
    let mut spec = RolloutSpec::of_steps(vec![Step::SetWeight(100)]);
    if let Some(r) = &undone.rollout {
        spec.health_checks = r.spec.health_checks.clone();
        if !spec.health_checks.is_empty() {
            // Stay until the checks have had a look at the restored version.
            spec.steps.push(Step::Pause {
                duration: Some(GoDuration::from_secs(30)),
            });
        }
    }
    let mut metadata = BTreeMap::new();
    if let Some(id) = release_id {
        metadata.insert("release_id".to_string(), json!(id));
    }
    metadata.insert("strategy".to_string(), json!("direct"));
    metadata.insert("rollback_of".to_string(), json!(undone.id));
    let has_upstreams = !(now_running.endpoints.is_empty() && previous.endpoints.is_empty());
    NewDeployment {
        queue_name: undone.queue_name.clone(),
        tenant_id: undone.tenant_id.clone(),
        stable_version: now_running.version.clone(),
        canary_version: previous.version.clone(),
        auto_promotion: Some(true),
        min_duration: Some(GoDuration::ZERO),
        metadata,
        product: undone.product.clone(),
        environment: undone.environment.clone(),
        upstreams: has_upstreams.then(|| Upstreams {
            stable: now_running.endpoints.clone(),
            canary: previous.endpoints.clone(),
        }),
        route: (previous.route != Route::default()).then(|| previous.route.clone()),
        traffic: Some(undone.traffic.clone()),
        rollout: Some(spec),
        ..NewDeployment::default()
    }
}

/// A person's rollback of a live deployment: traffic back to stable, and the
/// deployment reads as `rolled_back` rather than `failed`.
pub fn manual_rollback(
    d: &mut Deployment,
    reason: &str,
    now: crate::Timestamp,
) -> Result<Vec<NewEvent>, DomainError> {
    let events = d.rollback(reason, now)?;
    d.metadata.insert("manual_rollback".into(), json!(true));
    Ok(events)
}

/// Marks a promoted deployment as undone by the rollback deployment `by`.
pub fn revert(
    d: &mut Deployment,
    by: &str,
    now: crate::Timestamp,
) -> Result<Vec<NewEvent>, DomainError> {
    if d.status != DeploymentStatus::Completed || d.metadata.contains_key("rolled_back_by") {
        return Err(DomainError::NotActive {
            id: d.id.clone(),
            status: d.status.as_str(),
            action: "undo it: only a promoted deployment that is still current can be rolled back"
                .into(),
        });
    }
    d.metadata.insert("rolled_back_by".into(), json!(by));
    d.touch(now);
    Ok(vec![d.event(
        EventType::DeploymentReverted,
        format!(
            "{} {} in {} undone: {} restored by deployment {by}",
            d.product.as_deref().unwrap_or(&d.queue_name),
            d.canary_version,
            d.environment.as_deref().unwrap_or("its target"),
            d.stable_version
        ),
        json!({"rolled_back_by": by, "restored_version": d.stable_version}),
    )])
}

mod view;
pub use view::*;

/// Checks the promotion rule: when `env` requires it, the release's latest
/// deployment to the previous environment (`latest_there`) must have succeeded.
pub fn check_previous(
    env: &Environment,
    previous: Option<&Environment>,
    release: &Release,
    latest_there: Option<&Deployment>,
) -> Result<(), DomainError> {
    let (true, Some(prev)) = (env.require_previous, previous) else {
        return Ok(());
    };
    let status = latest_there.map(ReleaseDeploymentStatus::of);
    if status == Some(ReleaseDeploymentStatus::Succeeded) {
        return Ok(());
    }
    let what = match status {
        None => "has not been deployed there".to_string(),
        Some(s) => format!("its latest deployment there is {}", s.as_str()),
    };
    Err(DomainError::Refused {
        code: "PREVIOUS_ENVIRONMENT_NOT_PASSED",
        message: format!(
            "{} requires success in {} first: {}@{} {what}",
            env.name, prev.name, release.product_name, release.version
        ),
        kind: crate::error::Kind::Conflict,
    })
}

#[cfg(test)]
mod tests;
