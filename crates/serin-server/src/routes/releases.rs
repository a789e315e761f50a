//! Releases: create, list, show, change status, and the latest stable one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serin_app::App;
use serin_core::page::{PageParams, Pagination};
use serin_core::release::environment::{
    Approval, ApprovalTally, Decision, DeployRequest, ReleaseDeployment, tally,
};
use serin_core::{NewRelease, Release, ReleasePatch, ReleaseStatus};
use serin_store::manager::ReleaseFilter;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// The release routes, including the original CanaryPy routes `POST /release`
/// and `GET /release/{product_name}/latest`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/products/{name}/releases",
            get(list).post(create_for_product),
        )
        .route("/api/v1/products/{name}/releases/latest", get(latest))
        .route("/api/v1/releases", post(create).get(list_all))
        .route(
            "/api/v1/releases/{id}",
            get(show).patch(update).delete(delete_release),
        )
        .route("/api/v1/releases/{id}/deploy", post(deploy))
        .route(
            "/api/v1/releases/{id}/approvals",
            get(approvals).post(decide),
        )
        .route("/api/v1/releases/{id}/notes", get(notes))
        .route("/api/v1/releases/{id}/notes/publish", post(publish_notes))
        .route("/release", post(create))
        .route("/release/{product_name}/latest", get(latest))
}

/// A release to create under a product named in the path.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductRelease {
    /// The version; unique within the product.
    pub version: String,
    /// Release notes.
    #[serde(default)]
    pub description: Option<String>,
}

/// A page of releases.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReleaseList {
    /// The releases on this page, newest first.
    pub items: Vec<Release>,
    /// How many on this page.
    pub count: usize,
    /// Where this page is.
    pub pagination: Pagination,
}

/// Create a `draft` release. Also served as `POST /release` (the original CanaryPy route).
#[utoipa::path(post, path = "/api/v1/releases", tag = "releases", request_body = NewRelease,
    responses(
        (status = 201, body = Release),
        (status = 400, body = ErrorBody),
        (status = 404, description = "`PRODUCT_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`RELEASE_EXISTS`", body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(product = %new.product_name, version = %new.version))]
pub async fn create(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiJson(new): ApiJson<NewRelease>,
) -> ApiResult<(StatusCode, Json<Release>)> {
    new.validate()?;
    let release = state
        .store
        .create_release(&new, &who.name, state.now())
        .await?;
    state.latest.clear();
    Ok((StatusCode::CREATED, Json(release)))
}

/// Create a `draft` release of the product in the path.
#[utoipa::path(post, path = "/api/v1/products/{name}/releases", tag = "releases", request_body = ProductRelease,
    params(("name" = String, Path, description = "the product's name")),
    responses(
        (status = 201, body = Release),
        (status = 404, description = "`PRODUCT_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`RELEASE_EXISTS`", body = ErrorBody)))]
pub async fn create_for_product(
    state: State<App>,
    who: Extension<Principal>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<ProductRelease>,
) -> ApiResult<(StatusCode, Json<Release>)> {
    let new = NewRelease {
        product_name: name,
        version: body.version,
        description: body.description,
    };
    create(state, who, ApiJson(new)).await
}

/// A product's releases, newest first.
#[utoipa::path(get, path = "/api/v1/products/{name}/releases", tag = "releases",
    params(("name" = String, Path, description = "the product's name"), PageParams),
    responses((status = 200, body = ReleaseList), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state))]
pub async fn list(
    State(state): State<App>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> ApiResult<Json<ReleaseList>> {
    let name = super::product_in_path(name)?;
    let page = p.check()?;
    let found = state
        .store
        .list_releases(&name, page.offset(), page.limit())
        .await?;
    Ok(Json(ReleaseList {
        count: found.items.len(),
        pagination: page.of(found.total),
        items: found.items,
    }))
}

/// The latest stable release: the highest semver among `released` releases (or the
/// most recently released when versions aren't all semver). Also served as
/// `GET /release/{product_name}/latest` (the original CanaryPy route).
#[utoipa::path(get, path = "/api/v1/products/{name}/releases/latest", tag = "releases",
    params(("name" = String, Path, description = "the product's name")),
    responses(
        (status = 200, body = Release),
        (status = 404, description = "`PRODUCT_NOT_FOUND` or `NO_STABLE_RELEASE`", body = ErrorBody)))]
#[tracing::instrument(skip(state))]
pub async fn latest(
    State(state): State<App>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Release>> {
    let name = super::product_in_path(name)?;
    if let Some(hit) = state.latest.get(&name) {
        return Ok(Json(hit));
    }
    let release = state.store.latest_stable(&name).await?;
    state.latest.put(&name, &release);
    Ok(Json(release))
}

/// One release.
#[utoipa::path(get, path = "/api/v1/releases/{id}", tag = "releases",
    params(("id" = i64, Path, description = "the release's id")),
    responses((status = 200, body = Release), (status = 404, description = "`RELEASE_NOT_FOUND`", body = ErrorBody)))]
#[tracing::instrument(skip(state))]
pub async fn show(State(state): State<App>, ApiPath(id): ApiPath<i64>) -> ApiResult<Json<Release>> {
    Ok(Json(state.store.get_release(id).await?))
}

/// Change a release's status (`draft → approved → released → rolled_back`, or
/// `cancelled` before release) or its notes. Asking for the current status changes nothing.
/// With `override_reason` (admins): a `rolled_back` release may be released
/// again, or one never released marked `rolled_back`; the reason is in the audit log.
#[utoipa::path(patch, path = "/api/v1/releases/{id}", tag = "releases", request_body = ReleasePatch,
    params(("id" = i64, Path, description = "the release's id")),
    responses(
        (status = 200, body = Release),
        (status = 403, description = "`FORBIDDEN`: an override needs an admin", body = ErrorBody),
        (status = 404, description = "`RELEASE_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`INVALID_STATUS_TRANSITION`, `RELEASE_SHIPS_THROUGH_ENVIRONMENTS` (a product with environments releases by deploying to the last one; an admin may override with a reason)", body = ErrorBody)))]
#[tracing::instrument(skip(state, who, patch), fields(status = ?patch.status))]
pub async fn update(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(patch): ApiJson<ReleasePatch>,
) -> ApiResult<Json<Release>> {
    patch.validate()?;
    // Leaving the life cycle is an admin's decision, and the audit log keeps why.
    if patch.override_reason.is_some() && who.role != serin_core::auth::Role::Admin {
        return Err(ApiError::forbidden(who.role, serin_core::auth::Role::Admin));
    }
    // A product that ships through its environments releases by deploying:
    // marking a release `released` here would make it the latest stable with
    // none of the environments' approvals, and nothing serving it.
    if patch.status == Some(ReleaseStatus::Released) && patch.override_reason.is_none() {
        let r = state.store.get_release(id).await?;
        if r.status != ReleaseStatus::Released
            && crate::releaser::ships_through_environments(&state, &r.product_name).await?
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "RELEASE_SHIPS_THROUGH_ENVIRONMENTS",
                format!(
                    "{} ships through its environments: a release becomes released when it is deployed to the last one (POST /api/v1/releases/{id}/deploy); an admin may override with a reason",
                    r.product_name
                ),
            )
            .details(serde_json::json!({"release_id": id, "product": r.product_name})));
        }
    }
    let release = state
        .store
        .update_release(id, &patch, &who.name, state.now())
        .await?;
    state.latest.clear();
    Ok(Json(release))
}

/// Filters of the release list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReleaseParams {
    /// Only this product's.
    pub product: Option<String>,
    /// Only in this status: `draft`, `approved`, `released`, `cancelled`, `rolled_back`.
    pub status: Option<String>,
    /// Page number, from 1.
    pub page: Option<u32>,
    /// Items per page, 1–100 (default 10).
    pub page_size: Option<u32>,
}

/// Every product's releases, newest first.
#[utoipa::path(get, path = "/api/v1/releases", tag = "releases", params(ReleaseParams),
    responses((status = 200, body = ReleaseList), (status = 400, body = ErrorBody)))]
#[tracing::instrument(skip(state))]
pub async fn list_all(
    State(state): State<App>,
    ApiQuery(p): ApiQuery<ReleaseParams>,
) -> ApiResult<Json<ReleaseList>> {
    let page = PageParams {
        page: p.page,
        page_size: p.page_size,
    }
    .check()?;
    let status = match p.status.as_deref() {
        Some(s) => Some(s.parse::<ReleaseStatus>()?),
        None => None,
    };
    let f = ReleaseFilter {
        product: p.product,
        status,
    };
    let found = state
        .store
        .list_all_releases(&f, page.offset(), page.limit())
        .await?;
    Ok(Json(ReleaseList {
        count: found.items.len(),
        pagination: page.of(found.total),
        items: found.items,
    }))
}

/// Delete a `draft` release (and its signals). Anything past draft is history:
/// cancel it instead.
#[utoipa::path(delete, path = "/api/v1/releases/{id}", tag = "releases",
    params(("id" = i64, Path, description = "the release's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`RELEASE_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`RELEASE_NOT_DRAFT`", body = ErrorBody)))]
#[tracing::instrument(skip(state, who))]
pub async fn delete_release(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    state
        .store
        .delete_release(id, &who.name, state.now())
        .await?;
    state.latest.clear();
    Ok(StatusCode::NO_CONTENT)
}

/// Deploy a release to an environment with a strategy: `direct` (all traffic
/// at once), `canary` (the rollout controller follows `rollout`, or a default
/// 10% → 50% → 100% plan with analyses) or `blue_green` (the new version
/// warmed beside the old, then all traffic switched, then baked). The
/// deployment waits at an approval gate while the environment's policy isn't
/// met, and runs the environment's pre-deploy hook before traffic moves.
#[utoipa::path(post, path = "/api/v1/releases/{id}/deploy", tag = "releases", request_body = DeployRequest,
    params(("id" = i64, Path, description = "the release's id")),
    responses(
        (status = 202, body = ReleaseDeployment),
        (status = 400, body = ErrorBody),
        (status = 404, description = "`RELEASE_NOT_FOUND`, `ENVIRONMENT_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`PREVIOUS_ENVIRONMENT_NOT_PASSED`, `RELEASE_REJECTED`, `RELEASE_NOT_DEPLOYABLE`, `ALREADY_DEPLOYED`, `DEPLOYMENT_EXISTS`", body = ErrorBody)))]
#[tracing::instrument(skip(state, who, req), fields(environment = %req.environment))]
pub async fn deploy(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<DeployRequest>,
) -> ApiResult<(StatusCode, Json<ReleaseDeployment>)> {
    let d = crate::releaser::deploy(&state, &who.name, id, req).await?;
    Ok((StatusCode::ACCEPTED, Json(ReleaseDeployment::of(&d))))
}

/// An approval or a rejection.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// The environment it is for.
    pub environment: String,
    /// `approved` or `rejected`.
    pub decision: Decision,
    /// Why.
    #[serde(default)]
    pub comment: Option<String>,
}

/// A decision and where the policy stands after it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DecisionAnswer {
    /// The decision recorded.
    pub approval: Approval,
    /// The environment's policy, counted.
    pub tally: ApprovalTally,
}

/// Approve or reject a release for an environment. People decide, with a
/// login session (not an API key): engineers and admins (or the policy's
/// `min_role`); the release's author may not approve it unless the policy allows. When the policy is met, a deployment waiting
/// at its approval gate moves on; a rejection rolls a waiting deployment back
/// and blocks the release there until the rejecter approves.
#[utoipa::path(post, path = "/api/v1/releases/{id}/approvals", tag = "releases", request_body = DecisionBody,
    params(("id" = i64, Path, description = "the release's id")),
    responses(
        (status = 201, body = DecisionAnswer),
        (status = 403, description = "`SELF_APPROVAL`, `APPROVER_ROLE`, `APPROVAL_NEEDS_A_USER` (an API key)", body = ErrorBody),
        (status = 404, description = "`RELEASE_NOT_FOUND`, `ENVIRONMENT_NOT_FOUND`", body = ErrorBody)))]
#[tracing::instrument(skip(state, who, body), fields(environment = %body.environment))]
pub async fn decide(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> ApiResult<(StatusCode, Json<DecisionAnswer>)> {
    let (approval, tally) = crate::releaser::decide(
        &state,
        &who.actor(),
        id,
        &body.environment,
        body.decision,
        body.comment,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(DecisionAnswer { approval, tally }),
    ))
}

/// A release's decisions per environment.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApprovalsAnswer {
    /// Every decision, oldest first.
    pub items: Vec<Approval>,
    /// Each environment's policy, counted, in order.
    pub environments: Vec<EnvironmentTally>,
}

/// One environment's policy, counted.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EnvironmentTally {
    /// The environment.
    pub environment: String,
    /// The count.
    #[serde(flatten)]
    pub tally: ApprovalTally,
}

/// A release's approvals and rejections, and where each environment's policy stands.
#[utoipa::path(get, path = "/api/v1/releases/{id}/approvals", tag = "releases",
    params(("id" = i64, Path, description = "the release's id")),
    responses((status = 200, body = ApprovalsAnswer), (status = 404, description = "`RELEASE_NOT_FOUND`", body = ErrorBody)))]
#[tracing::instrument(skip(state))]
pub async fn approvals(
    State(state): State<App>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ApprovalsAnswer>> {
    let release = state.store.get_release(id).await?;
    let items = state.store.approvals(id, None).await?;
    let environments = state
        .store
        .environments(&release.product_name)
        .await?
        .into_iter()
        .map(|e| {
            let mine: Vec<Approval> = items
                .iter()
                .filter(|a| a.environment == e.name)
                .cloned()
                .collect();
            EnvironmentTally {
                tally: tally(&e.approvals, &mine),
                environment: e.name,
            }
        })
        .collect();
    Ok(Json(ApprovalsAnswer {
        items,
        environments,
    }))
}

/// Which notes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NotesParams {
    /// For this environment: the releases since the one running there.
    pub environment: Option<String>,
    /// `json` (default) or `markdown` (the Markdown alone, as `text/markdown`).
    pub format: Option<String>,
}

/// A release's notes in Markdown: its own notes and those of the releases since
/// the one running in the environment (default: since the latest stable
/// release), then the commit subjects between their git tags when the server
/// knows the product's repository (`--git-repository`).
#[utoipa::path(get, path = "/api/v1/releases/{id}/notes", tag = "releases",
    params(("id" = i64, Path, description = "the release's id"), NotesParams),
    responses(
        (status = 200, body = crate::notes::Notes, description = "JSON, or `text/markdown` with `format=markdown`"),
        (status = 400, body = ErrorBody),
        (status = 404, description = "`RELEASE_NOT_FOUND`, `ENVIRONMENT_NOT_FOUND`", body = ErrorBody)))]
#[tracing::instrument(skip(state))]
pub async fn notes(
    State(state): State<App>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(p): ApiQuery<NotesParams>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let markdown = match p.format.as_deref() {
        None | Some("json") => false,
        Some("markdown") => true,
        Some(_) => {
            return Err(ApiError::invalid("format", "use json or markdown"));
        }
    };
    let n = crate::notes::build(&state, id, p.environment).await?;
    Ok(if markdown {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/markdown; charset=utf-8",
            )],
            n.markdown,
        )
            .into_response()
    } else {
        Json(n).into_response()
    })
}

/// Where to publish notes.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    /// The environment (its notification targets, and the releases since the one running there).
    #[serde(default)]
    pub environment: Option<String>,
}

/// Publish a release's notes: a `release_notes_published` event with the
/// Markdown, sent to the notification targets of the release's deployment in
/// that environment (the environment's targets and its rollout's).
#[utoipa::path(post, path = "/api/v1/releases/{id}/notes/publish", tag = "releases", request_body = PublishBody,
    params(("id" = i64, Path, description = "the release's id")),
    responses(
        (status = 201, body = crate::notes::Notes),
        (status = 404, description = "`RELEASE_NOT_FOUND`, `ENVIRONMENT_NOT_FOUND`", body = ErrorBody)))]
#[tracing::instrument(skip(state, who, body))]
pub async fn publish_notes(
    State(state): State<App>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<PublishBody>,
) -> ApiResult<(StatusCode, Json<crate::notes::Notes>)> {
    let n = crate::notes::build(&state, id, body.environment.clone()).await?;
    // The notes go out with the deployment that brought (or brings) the release there.
    let deployment = match &n.environment {
        Some(env) => crate::releaser::latest_in(&state, &n.product, env)
            .await?
            .filter(|d| d.canary_version == n.version),
        None => None,
    };
    let event = serin_core::event::NewEvent {
        kind: serin_core::event::EventType::ReleaseNotesPublished,
        resource_type: "release",
        resource_id: id.to_string(),
        deployment_id: deployment.as_ref().map(|d| d.id.clone()),
        message: format!(
            "Release notes of {} {}{} published",
            n.product,
            n.version,
            n.environment
                .as_deref()
                .map(|e| format!(" for {e}"))
                .unwrap_or_default()
        ),
        data: serde_json::json!({"environment": n.environment, "since_version": n.since_version, "releases": n.releases, "markdown": n.markdown}),
    };
    let events = state
        .store
        .append_events(vec![event], &who.name, state.now())
        .await?;
    state.hub.publish(&events);
    Ok((StatusCode::CREATED, Json(n)))
}
