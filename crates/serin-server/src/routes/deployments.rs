//! Deployments of releases to environments. They are the same records as
//! `/api/v1/canary/deployments`, read with the release manager's statuses.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serin_app::App;
use serin_core::event::EventType;
use serin_core::page::{PageParams, Pagination};
use serin_core::release::environment::{ApprovalTally, ReleaseDeployment, tally};
use serin_store::canary::{DeploymentFilter, EventFilter};

use crate::auth::Principal;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::OptionalJson;
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;

/// The deployment routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/deployments", get(list))
        .route("/api/v1/deployments/{id}", get(show))
        .route("/api/v1/deployments/{id}/rollback", post(rollback))
}

/// Which deployments to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeploymentParams {
    /// Only this product's.
    pub product: Option<String>,
    /// Only to this environment.
    pub environment: Option<String>,
    /// Page number, from 1.
    pub page: Option<u32>,
    /// Items per page, 1–100 (default 10).
    pub page_size: Option<u32>,
}

/// A page of deployments.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReleaseDeploymentList {
    /// Newest first.
    pub items: Vec<ReleaseDeployment>,
    /// How many on this page.
    pub count: usize,
    /// Where this page is.
    pub pagination: Pagination,
}

/// Deployments of releases to environments, newest first, with their
/// statuses (`pending`, `in_progress`, `succeeded`, `failed`, `rolled_back`).
#[utoipa::path(get, path = "/api/v1/deployments", tag = "deployments", params(DeploymentParams),
    responses((status = 200, body = ReleaseDeploymentList), (status = 400, body = ErrorBody)))]
#[tracing::instrument(skip(state))]
pub async fn list(
    State(state): State<App>,
    ApiQuery(p): ApiQuery<DeploymentParams>,
) -> ApiResult<Json<ReleaseDeploymentList>> {
    let page = PageParams {
        page: p.page,
        page_size: p.page_size,
    }
    .check()?;
    let f = DeploymentFilter {
        product: p.product,
        environment: p.environment,
        ..DeploymentFilter::default()
    };
    let found = state
        .store
        .list_deployments(&f, page.offset(), page.limit())
        .await?;
    let items: Vec<_> = found.items.iter().map(ReleaseDeployment::of).collect();
    Ok(Json(ReleaseDeploymentList {
        count: items.len(),
        pagination: page.of(found.total),
        items,
    }))
}

/// One deployment in detail.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeploymentDetail {
    /// The release deployment's fields.
    #[serde(flatten)]
    pub deployment: ReleaseDeployment,
    /// What it waits for, when it waits.
    pub waiting_for: Option<String>,
    /// Where its approval gate stands, while it waits at one.
    pub approvals: Option<ApprovalTally>,
    /// Its hooks' runs (the pre-deploy hook among them): outcome and output.
    #[schema(value_type = Vec<Object>)]
    pub hooks: Vec<Value>,
    /// Its rollout's current step, from 0, and how many there are.
    pub step: Option<(usize, usize)>,
}

/// A deployment's status with its hooks' output and, at an approval gate,
/// the approvals so far.
#[utoipa::path(get, path = "/api/v1/deployments/{id}", tag = "deployments",
    params(("id" = String, Path, description = "the deployment's id")),
    responses((status = 200, body = DeploymentDetail), (status = 404, description = "`DEPLOYMENT_NOT_FOUND`", body = ErrorBody)))]
#[tracing::instrument(skip(state))]
pub async fn show(
    State(state): State<App>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<DeploymentDetail>> {
    let d = state.store.get_deployment(&id).await?;
    let f = EventFilter {
        deployment_id: Some(id.clone()),
        action: Some(EventType::HookCompleted.as_str().into()),
        ..EventFilter::default()
    };
    let hooks = state
        .store
        .list_events(&f, 0, 100)
        .await?
        .items
        .into_iter()
        .rev()
        .map(|mut e| e.data.get_mut("hook").map(Value::take).unwrap_or(e.data))
        .collect();
    let gate = d
        .approval_gate()
        .map(|g| (g.release_id, g.environment.to_string()));
    let (mut waiting_for, mut approvals) = (None, None);
    if let Some((rid, env)) = gate {
        let product = d.product.clone().unwrap_or_default();
        let (e, _, _) = crate::releaser::environment(&state, &product, &env).await?;
        let t = tally(&e.approvals, &state.store.approvals(rid, Some(&env)).await?);
        waiting_for = Some(format!(
            "{} more approval(s) for {env} (have {} of {})",
            t.required.saturating_sub(t.approved_by.len() as u32),
            t.approved_by.len(),
            t.required
        ));
        approvals = Some(t);
    } else if let Some(r) = &d.rollout
        && d.status.is_live()
        && !r.pre_rollout_done
        && r.spec
            .has_hooks(serin_core::rollout::hooks::HookKind::PreRollout)
    {
        waiting_for = Some("its pre-deploy hook".into());
    }
    Ok(Json(DeploymentDetail {
        deployment: ReleaseDeployment::of(&d),
        waiting_for,
        approvals,
        hooks,
        step: d.rollout.as_ref().map(|r| (r.step, r.spec.steps.len())),
    }))
}

/// Why a rollback.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// Why, for the audit log.
    #[serde(default)]
    pub reason: Option<String>,
}

/// One-click rollback. A deployment in progress sends all traffic back to
/// stable at once. A promoted deployment that still runs in its environment
/// is undone by a new direct deployment back to the release it replaced, with
/// the health checks it had; that deployment is returned (202), and its status
/// tells when the restored release is verified.
#[utoipa::path(post, path = "/api/v1/deployments/{id}/rollback", tag = "deployments",
    request_body(content = RollbackBody, description = "optional"),
    params(("id" = String, Path, description = "the deployment's id")),
    responses(
        (status = 202, body = ReleaseDeployment),
        (status = 404, description = "`DEPLOYMENT_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`ALREADY_ROLLED_BACK`, `NOT_CURRENT`, `NO_PREVIOUS_RELEASE`, `NOT_AN_ENVIRONMENT_DEPLOYMENT`, `RELEASE_NOT_DEPLOYABLE` (the release it would restore was rolled back or cancelled)", body = ErrorBody)))]
#[tracing::instrument(skip(state, who, body))]
pub async fn rollback(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<RollbackBody>,
) -> ApiResult<(StatusCode, Json<ReleaseDeployment>)> {
    let reason = body.unwrap_or_default().reason;
    if let Some(r) = &reason {
        serin_core::release::product::validate_description("reason", Some(r))?;
    }
    let d = crate::releaser::rollback(&state, &who.name, &id, reason).await?;
    Ok((StatusCode::ACCEPTED, Json(ReleaseDeployment::of(&d))))
}
