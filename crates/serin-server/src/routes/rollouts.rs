//! Rollouts: a deployment's plan as people watch and steer it, and groups of
//! deployments that roll out together (multi-target rollouts).
//!
//! A single deployment gets its plan at creation (`rollout` in the create body);
//! these routes show where it is (`…/rollout`) and add the two actions a plan
//! needs besides pause, resume, promote and rollback: `continue` (past a pause
//! that waits for a person, or an approval gate) and `abort` (stop now, all
//! traffic to stable). A group is created here in one call from several targets
//! and one plan; its members advance in lock-step and fall together.

use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use serin_app::App;
use serin_core::DomainError;
use serin_core::canary::{Deployment, DeploymentStatus, NewDeployment};
use serin_core::event::{Event, EventType, NewEvent};
use serin_core::judge::Judgement;
use serin_core::rollout::RolloutSpec;
use serin_core::rollout::{self, Rollout};
use serin_store::canary::EventFilter;

use super::{ActionAnswer, ReasonBody};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::OptionalJson;
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serin_app::deployments::change;

/// The rollout routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/canary/deployments/{id}/rollout", get(show))
        .route("/api/v1/canary/deployments/{id}/continue", post(continue_))
        .route("/api/v1/canary/deployments/{id}/abort", post(abort))
        .route(
            "/api/v1/canary/deployments/{id}/deliveries",
            get(deliveries),
        )
        .route("/api/v1/rollouts", post(create_group))
        .route("/api/v1/rollouts/{id}", get(show_group))
}

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Finished.
    Done,
    /// The current step.
    Running,
    /// The step the rollout ended at without finishing it (rolled back or aborted).
    Stopped,
    /// Not reached.
    Pending,
}

/// One step as shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StepView {
    /// Position, from 0.
    pub index: usize,
    /// The step in words.
    pub description: String,
    /// Done, running or pending.
    pub state: StepState,
    /// For a running timed pause or analysis: seconds left.
    pub seconds_left: Option<i64>,
}

/// A deployment's rollout as people watch it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RolloutView {
    /// The deployment.
    pub deployment_id: String,
    /// Its status.
    pub status: DeploymentStatus,
    /// Why it is paused, failed or rolled back.
    pub status_reason: Option<String>,
    /// The canary's share now.
    pub current_percent: u8,
    /// Promotes by itself after the last step.
    pub auto_promotion: bool,
    /// What it is waiting for, in words (null when it isn't).
    pub waiting_for: Option<String>,
    /// The steps and where each is.
    pub steps: Vec<StepView>,
    /// The plan and its position.
    pub rollout: Rollout,
    /// The latest judgement: the controller's at a running analysis step; once
    /// the rollout has ended, the one that decided it (from its event).
    pub judgement: Option<Judgement>,
    /// The deployment's status, read from the current step's window (once
    /// ended: the window that decided, up to the end).
    #[serde(flatten)]
    pub summary: StatusSummary,
}

/// Status fields: the deployment as a whole (both lanes together)
/// over the current step's window, and how the judges see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusSummary {
    /// The canary's share of traffic, percent.
    pub current_traffic_percent: f64,
    /// `healthy`, `warning`, `critical` (rolled back, or a judge sees harm) or
    /// `unknown` (no judgement with data yet).
    pub health_status: &'static str,
    /// Successful requests of both lanes, percent (null without traffic).
    pub success_rate_percent: Option<f64>,
    /// Failed requests of both lanes, percent.
    pub error_rate_percent: Option<f64>,
    /// Mean latency of both lanes, ms.
    pub avg_latency_ms: Option<f64>,
    /// How strongly the sequential evidence supports `health_status`, 0–1:
    /// 1 − 1/E, where E is the e-value behind it — for `critical` or `warning`
    /// the larger of the two "canary worse" tests (errors, latency), for
    /// `healthy` the smaller of the two "within tolerance" tests — and 1/E is an
    /// anytime-valid p-value. 0.99 means the opposite would have produced this
    /// much evidence with probability at most 1%. Null without sequential evidence.
    pub confidence_score: Option<f64>,
    /// The window the figures read.
    pub window_start: chrono::DateTime<chrono::Utc>,
    /// Its end.
    pub window_end: chrono::DateTime<chrono::Utc>,
}

/// How the judges see the deployment, and the confidence behind it.
fn health_of(d: &Deployment, j: Option<&Judgement>) -> (&'static str, Option<f64>) {
    use serin_core::judge::Outcome;
    let health = match (d.status, j.map(|j| j.outcome)) {
        (DeploymentStatus::Failed | DeploymentStatus::RollingBack, _) => "critical",
        (DeploymentStatus::Completed | DeploymentStatus::Promoting, _) => "healthy",
        (_, Some(Outcome::Fail)) => "critical",
        (_, Some(Outcome::Warn)) => "warning",
        (_, Some(Outcome::Pass)) => "healthy",
        _ => "unknown",
    };
    let seq = j.and_then(|j| j.verdicts.iter().find(|v| v.judge == "sequential"));
    let e = |path: [&str; 2]| {
        seq.and_then(|v| v.evidence.get(path[0]))
            .and_then(|x| x.get(path[1]))
            .and_then(serde_json::Value::as_f64)
    };
    let strength = match health {
        "critical" | "warning" => match (e(["errors", "bayes_factor"]), e(["latency", "evidence"]))
        {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        },
        "healthy" => match (
            e(["errors", "within_evidence"]),
            e(["latency", "within_evidence"]),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            _ => None,
        },
        _ => None,
    };
    let confidence = strength.map(|e| {
        let c = if e > 1.0 { 1.0 - 1.0 / e } else { 0.0 };
        (c * 1e4).round() / 1e4
    });
    (health, confidence)
}

async fn view(state: &App, d: &Deployment) -> ApiResult<RolloutView> {
    let r = d.rollout.clone().ok_or_else(|| {
        ApiError::from(DomainError::invalid(
            "id",
            format!(
                "deployment {} has no rollout plan (it is driven by hand)",
                d.id
            ),
        ))
    })?;
    let now = state.now();
    let running = d.status.is_live();
    let steps = r
        .spec
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let st = if i < r.step
                || (!running && i == r.step && d.status == DeploymentStatus::Completed)
            {
                StepState::Done
            } else if i == r.step && !running {
                StepState::Stopped
            } else if i == r.step {
                StepState::Running
            } else {
                StepState::Pending
            };
            let length = match s {
                rollout::Step::Pause { duration: Some(p) } => Some(*p),
                rollout::Step::Analysis { window } => {
                    Some(window.unwrap_or(d.config.metrics_window))
                }
                _ => None,
            };
            let seconds_left = (st == StepState::Running && running)
                .then_some(length)
                .flatten()
                .map(|l| {
                    (r.step_started_at + l.to_chrono() - now)
                        .num_seconds()
                        .max(0)
                });
            StepView {
                index: i,
                description: rollout::describe(s),
                state: st,
                seconds_left,
            }
        })
        .collect();
    let waiting_for = match (d.status, r.current()) {
        (DeploymentStatus::Paused, _) => Some(format!(
            "a person to resume it{}",
            d.status_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )),
        (DeploymentStatus::Active, _) if r.ready => Some("the other targets of its group".into()),
        (DeploymentStatus::Active, Some(rollout::Step::Pause { duration: None })) => {
            Some("a person to continue".into())
        }
        (DeploymentStatus::Active, Some(rollout::Step::Gate(g))) => Some(match g {
            rollout::Gate::Approval => "an approval (continue)".into(),
            rollout::Gate::ReleaseApproval {
                release_id,
                environment,
                required,
            } => format!("{required} approval(s) of release {release_id} for {environment}"),
            rollout::Gate::Webhook { url } => format!(
                "the gate {url} to answer 2xx{}",
                r.gate_refusal
                    .as_deref()
                    .map(|s| format!(" (last: {s})"))
                    .unwrap_or_default()
            ),
        }),
        (DeploymentStatus::Active, None) if !d.config.auto_promotion => {
            Some("a person to promote it (auto_promotion is off)".into())
        }
        (DeploymentStatus::Active, None) => Some(format!(
            "min_canary_duration {} or the other targets of its group",
            d.config.min_canary_duration
        )),
        _ => None,
    };
    let judgement = if running {
        state.controller.seen(&d.id).and_then(|s| s.judgement)
    } else {
        serin_app::verdict::deciding_judgement(state, d).await?
    };
    let until = d.completed_at.unwrap_or(now).min(now);
    let since = r.step_started_at.min(until);
    let [stable, canary] = state.store.lane_windows(&d.id, since, until).await?;
    let mut both = stable;
    both.merge(canary);
    let whole = serin_core::canary::metrics::snapshot(
        &both,
        &Default::default(),
        "",
        (since, until),
        until,
    );
    let (health_status, confidence_score) = health_of(d, judgement.as_ref());
    let summary = StatusSummary {
        current_traffic_percent: f64::from(d.current_percent),
        health_status,
        success_rate_percent: whole.success_rate,
        error_rate_percent: whole.error_rate,
        avg_latency_ms: whole.avg_latency,
        confidence_score,
        window_start: since,
        window_end: until,
    };
    Ok(RolloutView {
        deployment_id: d.id.clone(),
        status: d.status,
        status_reason: d.status_reason.clone(),
        current_percent: d.current_percent,
        auto_promotion: d.config.auto_promotion,
        waiting_for,
        steps,
        judgement,
        summary,
        rollout: r,
    })
}

/// A deployment's rollout: steps, position, what it waits for, latest judgement.
#[utoipa::path(get, path = "/api/v1/canary/deployments/{id}/rollout", tag = "rollouts",
    params(("id" = String, Path, description = "the deployment's id")),
    responses((status = 200, body = RolloutView), (status = 400, description = "`VALIDATION_FAILED`: no plan", body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state))]
pub async fn show(
    State(state): State<App>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<RolloutView>> {
    let d = state.store.get_deployment(&id).await?;
    Ok(Json(view(&state, &d).await?))
}

/// Continue past a pause that waits for a person, or approve an approval gate
/// (also skips a running timed pause, analysis or webhook gate).
#[utoipa::path(post, path = "/api/v1/canary/deployments/{id}/continue", tag = "rollouts",
    params(("id" = String, Path, description = "the deployment's id")),
    responses((status = 200, body = RolloutView), (status = 400, description = "`DEPLOYMENT_NOT_ACTIVE`", body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state, who))]
pub async fn continue_(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<RolloutView>> {
    let (now, actor) = (state.now(), who.name.clone());
    let d = change(&state, &who.name, &id, move |d| {
        rollout::continue_step(d, &actor, now)
    })
    .await?;
    Ok(Json(view(&state, &d).await?))
}

/// Abort: stop the rollout now, all traffic to stable (the deployment fails
/// with the reason, marked as aborted).
#[utoipa::path(post, path = "/api/v1/canary/deployments/{id}/abort", tag = "rollouts", request_body(content = ReasonBody, description = "optional"),
    params(("id" = String, Path, description = "the deployment's id")),
    responses((status = 200, body = ActionAnswer), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state, who, body))]
pub async fn abort(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<ReasonBody>,
) -> ApiResult<Json<ActionAnswer>> {
    let why = body.unwrap_or_default().reason;
    let reason = match why {
        Some(r) => format!("aborted by {}: {r}", who.name),
        None => format!("aborted by {}", who.name),
    };
    let (r, now) = (reason.clone(), state.now());
    let d = change(&state, &who.name, &id, move |d| {
        let mut ev = d.rollback(&r, now)?;
        for e in &mut ev {
            if let Some(o) = e.data.as_object_mut() {
                o.insert("aborted".into(), json!(true));
            }
        }
        Ok(ev)
    })
    .await?;
    Ok(Json(ActionAnswer {
        success: true,
        message: format!("Rollout aborted: {reason}"),
        reason: Some(reason),
        timestamp: d.last_update,
    }))
}

/// A deployment's notification deliveries, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryList {
    /// The deliveries.
    pub deliveries: Vec<rollout::notify::Delivery>,
}

/// A deployment's notification deliveries: each event sent to each target, with
/// its attempts, last error and status.
#[utoipa::path(get, path = "/api/v1/canary/deployments/{id}/deliveries", tag = "rollouts",
    params(("id" = String, Path, description = "the deployment's id")),
    responses((status = 200, body = DeliveryList), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state))]
pub async fn deliveries(
    State(state): State<App>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<DeliveryList>> {
    state.store.get_deployment(&id).await?;
    Ok(Json(DeliveryList {
        deliveries: state.store.deliveries_for(&id).await?,
    }))
}

/// Several targets, one plan.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    /// The targets: each a deployment request without `rollout` (2–50).
    pub targets: Vec<NewDeployment>,
    /// The plan they follow together.
    pub rollout: RolloutSpec,
}

/// A group of targets rolling out together.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Group {
    /// `group_<uuid>`.
    pub id: String,
    /// `running`, `paused` (some target waits for a person), `promoted` (all),
    /// `rolled_back` (any target rolled back), or `mixed`.
    pub status: String,
    /// The targets.
    pub deployments: Vec<Deployment>,
    /// The group's events and its targets', oldest first.
    pub events: Vec<Event>,
}

fn group_status(ds: &[Deployment]) -> &'static str {
    if ds.iter().any(|d| d.status == DeploymentStatus::Failed) {
        "rolled_back"
    } else if ds.iter().all(|d| d.status == DeploymentStatus::Completed) {
        "promoted"
    } else if ds.iter().any(|d| d.status == DeploymentStatus::Paused) {
        "paused"
    } else if ds.iter().all(|d| d.status.is_live()) {
        "running"
    } else {
        "mixed"
    }
}

async fn group(state: &App, id: &str) -> ApiResult<Group> {
    let deployments = state.store.group_deployments(id).await?;
    if deployments.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ROLLOUT_GROUP_NOT_FOUND",
            format!("no rollout group {id}"),
        )
        .details(json!({"id": id})));
    }
    let mut events = Vec::new();
    let own = EventFilter {
        resource_type: Some("rollout_group".into()),
        resource_id: Some(id.to_string()),
        ..Default::default()
    };
    events.extend(state.store.list_events(&own, 0, 1000).await?.items);
    for d in &deployments {
        let f = EventFilter {
            deployment_id: Some(d.id.clone()),
            ..Default::default()
        };
        events.extend(state.store.list_events(&f, 0, 1000).await?.items);
    }
    events.sort_by(|a, b| a.timestamp.cmp(&b.timestamp).then(a.id.cmp(&b.id)));
    Ok(Group {
        id: id.to_string(),
        status: group_status(&deployments).into(),
        deployments,
        events,
    })
}

/// Start a multi-target rollout (201): one deployment per target, advancing in
/// lock-step; if any target rolls back, all do.
#[utoipa::path(post, path = "/api/v1/rollouts", tag = "rollouts", request_body = NewGroup,
    responses((status = 201, body = Group), (status = 400, description = "`VALIDATION_FAILED`", body = ErrorBody), (status = 409, description = "`DEPLOYMENT_EXISTS`, `ENGINE_BACKEND_IN_USE`", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn create_group(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiJson(new): ApiJson<NewGroup>,
) -> ApiResult<(StatusCode, Json<Group>)> {
    if !(2..=50).contains(&new.targets.len()) {
        return Err(DomainError::invalid(
            "targets",
            "give 2–50 targets (one target is a plain deployment)",
        )
        .into());
    }
    new.rollout.validate().map_err(|e| e.under("rollout"))?;
    crate::admission::plan(&state.config, &new.rollout)?;
    crate::admission::secrets(&state.store, &state.config, &new.rollout).await?;
    let id = format!("group_{}", uuid::Uuid::new_v4());
    let now = state.now();
    let size = new.targets.len();
    // Resolve every target before creating any, so a bad one changes nothing.
    let mut resolved = Vec::with_capacity(size);
    for (i, t) in new.targets.into_iter().enumerate() {
        if t.rollout.is_some() {
            return Err(DomainError::invalid(
                format!("targets[{i}].rollout"),
                "the group's `rollout` applies to every target; leave it out here",
            )
            .into());
        }
        crate::releaser::check_unmanaged(&state, &who.actor(), &t, &format!("targets[{i}]."))
            .await?;
        crate::engines::admit(
            &state,
            t.engine.as_ref(),
            t.traffic.as_ref().unwrap_or(&Default::default()),
            Some(&new.rollout),
        )
        .await
        .map_err(|e| e.under(&format!("targets[{i}]")))?;
        crate::engines::not_in_use(&state, t.engine.as_ref()).await?;
        if let Some(e) = &t.engine
            && resolved.iter().any(|(d, _): &(Deployment, _)| {
                d.engine
                    .as_ref()
                    .is_some_and(|o| o.engine == e.engine && o.backend == e.backend)
            })
        {
            return Err(DomainError::invalid(
                format!("targets[{i}].engine.backend"),
                format!(
                    "another target of the group splits backend {} on engine {}",
                    e.backend, e.engine
                ),
            )
            .into());
        }
        let t = NewDeployment {
            rollout: Some(new.rollout.clone()),
            ..t
        };
        let (mut d, ev) = t
            .resolve(format!("canary_{}", uuid::Uuid::new_v4()), &who.name, now)
            .map_err(|e| e.under(&format!("targets[{i}]")))?;
        if let Some(r) = &mut d.rollout {
            r.group = Some(id.clone());
            r.group_size = size;
        }
        resolved.push((d, ev));
    }
    let ids: Vec<String> = resolved.iter().map(|(d, _)| d.id.clone()).collect();
    let mut created: Vec<String> = Vec::new();
    for (d, ev) in resolved {
        match state
            .store
            .create_deployment(d, ev, &who.name, state.config.max_live_deployments)
            .await
        {
            Ok((d, events)) => {
                state.hub.publish(&events);
                crate::engines::follow(&state, &d);
                created.push(d.id);
            }
            Err(e) => {
                // Undo the targets already started, so no half-group is left running.
                for c in &created {
                    let reason = "its rollout group could not be started".to_string();
                    let _ = change(&state, &who.name, c, move |d| d.rollback(&reason, now)).await;
                }
                return Err(e.into());
            }
        }
    }
    let event = NewEvent {
        kind: EventType::RolloutGroupCreated,
        resource_type: "rollout_group",
        resource_id: id.clone(),
        deployment_id: None,
        message: format!("Rollout group of {size} targets started"),
        data: json!({"deployments": ids, "rollout": new.rollout}),
    };
    let events = state
        .store
        .append_events(vec![event], &who.name, now)
        .await?;
    state.hub.publish(&events);
    Ok((StatusCode::CREATED, Json(group(&state, &id).await?)))
}

/// A rollout group: its status, targets and events.
#[utoipa::path(get, path = "/api/v1/rollouts/{id}", tag = "rollouts",
    params(("id" = String, Path, description = "the group's id")),
    responses((status = 200, body = Group), (status = 404, description = "`ROLLOUT_GROUP_NOT_FOUND`", body = ErrorBody)))]
#[tracing::instrument(skip(state))]
pub async fn show_group(
    State(state): State<App>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Group>> {
    Ok(Json(group(&state, &id).await?))
}
