//! The release manager's actions: deploy a release to an environment, decide
//! on it, roll an environment back, and keep releases' statuses in step with
//! what their deployments did. The rules are `serin_core::release::environment`'s; this
//! module reads what they need from the store and writes what they decide.
//!
//! Approvals and deployments meet at the deployment's approval gate, and they
//! can happen in either order. So both sides write first and look second: a
//! deploy creates its deployment and then counts the approvals; an approval is
//! recorded and then looks for a deployment waiting for it. Whichever comes
//! second sees the other, and passing a gate twice is harmless (the second
//! finds no gate).
//!
//! Release statuses follow production (the last environment): when a release's
//! deployment there is promoted, the release becomes `released` in the same
//! transaction (the store applies `serin_core::release::effect`, which leaves
//! earlier environments out); when a person rolls it back there, `rolled_back`.

use serde_json::json;
use serin_core::canary::{Deployment, DeploymentStatus};
use serin_core::release::environment::{
    self, Approval, ApprovalTally, Current, Decision, DeployRequest, Environment,
};
use serin_core::rollout;
use serin_core::{Release, ReleasePatch, ReleaseStatus};
use serin_store::StoreError;
use serin_store::canary::DeploymentFilter;

use crate::App;
use crate::deployments::{change, start};
use crate::error::{AppError, AppResult, Kind};

/// How many of an environment's most recent deployments are searched for a
/// release's latest one.
const SEARCH: u64 = 500;

/// A product's environment by name, with the one before it.
pub async fn environment(
    state: &App,
    product: &str,
    name: &str,
) -> AppResult<(Environment, Option<Environment>, bool)> {
    let envs = state.store.environments(product).await?;
    let i = envs.iter().position(|e| e.name == name).ok_or_else(|| {
        AppError::new(
            Kind::NotFound,
            "ENVIRONMENT_NOT_FOUND",
            format!(
                "{product} has no environment `{name}`; it has {}",
                envs.iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .details(json!({"field": "environment", "environment": name}))
    })?;
    let last = i + 1 == envs.len();
    let previous = i.checked_sub(1).map(|p| envs[p].clone());
    Ok((envs[i].clone(), previous, last))
}

/// The most recent deployment of a product to an environment, if any.
pub async fn latest_in(
    state: &App,
    product: &str,
    env: &str,
) -> Result<Option<Deployment>, StoreError> {
    let f = DeploymentFilter {
        product: Some(product.to_string()),
        environment: Some(env.to_string()),
        ..DeploymentFilter::default()
    };
    Ok(state.store.list_deployments(&f, 0, 1).await?.items.pop())
}

/// Whether a product ships through its environments: it has configured them, or
/// a release of it has been deployed to one. Such a product's releases become
/// `released` by reaching its last environment, not by a status change.
pub async fn ships_through_environments(state: &App, product: &str) -> Result<bool, StoreError> {
    if state
        .store
        .environments(product)
        .await?
        .iter()
        .any(|e| e.configured)
    {
        return Ok(true);
    }
    for env in state.store.environments(product).await? {
        if latest_in(state, product, &env.name).await?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The most recent deployment of this version of a product to an environment.
async fn latest_of_version(
    state: &App,
    product: &str,
    env: &str,
    version: &str,
) -> Result<Option<Deployment>, StoreError> {
    let f = DeploymentFilter {
        product: Some(product.to_string()),
        environment: Some(env.to_string()),
        ..DeploymentFilter::default()
    };
    let page = state.store.list_deployments(&f, 0, SEARCH).await?;
    Ok(page
        .items
        .into_iter()
        .find(|d| d.canary_version == version && !d.metadata.contains_key("rollback_of")))
}

/// Metadata only the release manager writes.
const RESERVED: [&str; 5] = [
    "release_id",
    "rollback_of",
    "rolled_back_by",
    "manual_rollback",
    "strategy",
];

/// Refuses a deployment made through the canary API (or a rollout group) that
/// would pass for the release manager's: reserved metadata, or a product's
/// configured environment as its target, which only `POST /releases/{id}/deploy`
/// enters (with its approvals and hooks). Admins may, to repair by hand.
pub async fn check_unmanaged(
    state: &App,
    who: &crate::Actor,
    new: &serin_core::canary::NewDeployment,
    field: &str,
) -> AppResult<()> {
    if let Some(k) = RESERVED.iter().find(|k| new.metadata.contains_key(**k)) {
        return Err(AppError::invalid(
            &format!("{field}metadata.{k}"),
            "is written by the release manager only",
        ));
    }
    let (Some(product), Some(env)) = (&new.product, &new.environment) else {
        return Ok(());
    };
    if who.role == serin_core::auth::Role::Admin {
        return Ok(());
    }
    let managed = match state.store.environments(product).await {
        Ok(envs) => envs.iter().any(|e| &e.name == env),
        Err(StoreError::NotFound { .. }) => false,
        Err(e) => return Err(e.into()),
    };
    if managed {
        return Err(AppError::new(
            Kind::Conflict,
            "USE_RELEASE_DEPLOY",
            format!(
                "{env} is one of {product}'s environments: deploy a release there with POST /api/v1/releases/{{id}}/deploy, which applies its approvals and pre-deploy hook"
            ),
        )
        .details(json!({"field": format!("{field}environment")})));
    }
    Ok(())
}

/// Deploys a release to an environment (see the module docs of
/// `serin_core::release::environment`); returns the canary deployment it started.
pub async fn deploy(
    state: &App,
    actor: &str,
    release_id: i64,
    req: DeployRequest,
) -> AppResult<Deployment> {
    let release = state.store.get_release(release_id).await?;
    let product = release.product_name.clone();
    let (env, previous, _) = environment(state, &product, &req.environment).await?;
    if let Some(prev) = &previous {
        let there = latest_of_version(state, &product, &prev.name, &release.version).await?;
        environment::check_previous(&env, Some(prev), &release, there.as_ref())?;
    }
    let latest = latest_in(state, &product, &env.name).await?;
    if let Some(d) = latest.as_ref().filter(|d| d.status.is_live()) {
        return Err(AppError::new(
            Kind::Conflict,
            "DEPLOYMENT_EXISTS",
            format!(
                "{product} has a deployment in progress in {}: {} ({} → {}); finish or roll it back first",
                env.name, d.id, d.stable_version, d.canary_version
            ),
        )
        .details(json!({"existing_deployment_id": d.id})));
    }
    let current = latest.as_ref().and_then(Current::after);
    let decisions = state.store.approvals(release.id, Some(&env.name)).await?;
    let t = environment::tally(&env.approvals, &decisions);
    if !t.rejected_by.is_empty() {
        return Err(AppError::new(
            Kind::Conflict,
            "RELEASE_REJECTED",
            format!(
                "{}@{} was rejected for {} by {}",
                product,
                release.version,
                env.name,
                t.rejected_by.join(", ")
            ),
        )
        .details(json!({"rejected_by": t.rejected_by})));
    }
    let waits = env.approvals.required > 0 && !t.met;
    let new = environment::plan(&release, &env, &req, current.as_ref(), waits)?;
    let d = start(state, actor, new).await?;
    if waits {
        // An approval that landed while this deployment was being made.
        return pass_gate(state, &release, &env)
            .await
            .map(|p| p.unwrap_or(d));
    }
    Ok(d)
}

/// The live deployment of a release waiting at its approval gate for `env`.
async fn waiting(
    state: &App,
    release: &Release,
    env: &str,
) -> Result<Option<Deployment>, StoreError> {
    let Some(d) = latest_in(state, &release.product_name, env).await? else {
        return Ok(None);
    };
    let at_gate = d
        .approval_gate()
        .is_some_and(|g| g.release_id == release.id);
    Ok(at_gate.then_some(d))
}

/// Looks again at a deployment waiting at an approval gate in `env` (after its
/// policy changed): passes it when the policy is met now.
pub async fn recheck(state: &App, env: &Environment) -> AppResult<()> {
    let Some(d) = latest_in(state, &env.product, &env.name).await? else {
        return Ok(());
    };
    if let Some(rid) = d.approval_gate().map(|g| g.release_id) {
        let release = state.store.get_release(rid).await?;
        pass_gate(state, &release, env).await?;
    }
    Ok(())
}

/// Passes the gate of a deployment waiting for `release` in `env` if the policy
/// is met now; returns the deployment when it moved.
async fn pass_gate(
    state: &App,
    release: &Release,
    env: &Environment,
) -> AppResult<Option<Deployment>> {
    let decisions = state.store.approvals(release.id, Some(&env.name)).await?;
    let t = environment::tally(&env.approvals, &decisions);
    if !t.met {
        return Ok(None);
    }
    open_gate(state, release, &env.name, t.approved_by).await
}

/// Moves a deployment of `release` waiting at its gate in `env` past it.
async fn open_gate(
    state: &App,
    release: &Release,
    env: &str,
    by: Vec<String>,
) -> AppResult<Option<Deployment>> {
    let Some(d) = waiting(state, release, env).await? else {
        return Ok(None);
    };
    let now = state.now();
    let d = change(state, "system", &d.id, move |d| {
        Ok(rollout::pass_release_approval(d, &by, now))
    })
    .await?;
    Ok(Some(d))
}

/// Records an approval or a rejection of a release for an environment, then
/// acts on it: a met policy opens a waiting deployment's gate; a rejection
/// rolls a waiting deployment back.
pub async fn decide(
    state: &App,
    who: &crate::Actor,
    release_id: i64,
    env: &str,
    decision: Decision,
    comment: Option<String>,
) -> AppResult<(Approval, ApprovalTally)> {
    // Approvals are people's: an API key is a machine, and one person with a
    // key and a session must not count twice.
    if !who.is_person {
        return Err(AppError::new(
            Kind::Forbidden,
            "APPROVAL_NEEDS_A_USER",
            "approvals are given by people: log in (POST /api/v1/auth/login) and approve with the session",
        ));
    }
    let (actor, role) = (who.name.as_str(), who.role);
    if let Some(c) = &comment {
        serin_core::release::product::validate_description("comment", Some(c))?;
    }
    let release = state.store.get_release(release_id).await?;
    let (environment, _, _) = environment(state, &release.product_name, env).await?;
    environment::may_decide(&environment.approvals, &release, actor, role)?;
    let approval = Approval {
        id: format!("approval_{}", uuid::Uuid::new_v4()),
        release_id,
        environment: environment.name.clone(),
        actor: actor.to_string(),
        role,
        decision,
        comment: comment.clone(),
        created_at: state.now(),
    };
    let approval = state.store.record_approval(approval, &release).await?;
    let decisions = state
        .store
        .approvals(release_id, Some(&environment.name))
        .await?;
    let t = environment::tally(&environment.approvals, &decisions);
    match decision {
        Decision::Approved => {
            if t.met {
                open_gate(state, &release, &environment.name, t.approved_by.clone()).await?;
                if release.status == ReleaseStatus::Draft && environment.approvals.required > 0 {
                    set_status(state, &release, ReleaseStatus::Approved).await?;
                }
            }
        }
        Decision::Rejected => {
            if let Some(d) = waiting(state, &release, &environment.name).await? {
                let why = format!(
                    "rejected by {actor}{}",
                    comment.map(|c| format!(": {c}")).unwrap_or_default()
                );
                let now = state.now();
                change(state, actor, &d.id, move |d| d.rollback(&why, now)).await?;
            }
        }
    }
    Ok((approval, t))
}

async fn set_status(state: &App, r: &Release, to: ReleaseStatus) -> AppResult<()> {
    let patch = ReleasePatch {
        status: Some(to),
        ..Default::default()
    };
    state
        .store
        .update_release(r.id, &patch, "system", state.now())
        .await?;
    state.latest.clear();
    Ok(())
}

/// One-click rollback of a deployment: a live one sends its traffic back to
/// stable; a promoted one that still runs in its environment is undone by a
/// new direct deployment back to the version it replaced (with the health
/// checks it had). Returns the deployment that does the work.
pub async fn rollback(
    state: &App,
    actor: &str,
    id: &str,
    reason: Option<String>,
) -> AppResult<Deployment> {
    let d = state.store.get_deployment(id).await?;
    if d.status.is_live() {
        let why = reason.unwrap_or_else(|| format!("rolled back by {actor}"));
        let now = state.now();
        return change(state, actor, id, move |d| {
            environment::manual_rollback(d, &why, now)
        })
        .await;
    }
    let refuse = |code: &'static str, message: String| {
        Err(AppError::new(Kind::Conflict, code, message).details(json!({"deployment_id": id})))
    };
    if d.status == DeploymentStatus::Failed || d.metadata.contains_key("rolled_back_by") {
        return refuse(
            "ALREADY_ROLLED_BACK",
            format!("deployment {id} was already rolled back"),
        );
    }
    let (Some(product), Some(env)) = (d.product.clone(), d.environment.clone()) else {
        return refuse(
            "NOT_AN_ENVIRONMENT_DEPLOYMENT",
            format!(
                "deployment {id} names no product and environment, so there is no previous release to restore; start a deployment back to {} instead",
                d.stable_version
            ),
        );
    };
    // It must still be what runs there: the latest deployment, or a later one
    // that failed and so left it running.
    let latest = latest_in(state, &product, &env).await?;
    let now_running = latest.as_ref().and_then(Current::after);
    let current = latest.as_ref().is_some_and(|l| !l.status.is_live())
        && now_running.as_ref().map(|c| c.version.as_str()) == Some(d.canary_version.as_str());
    let Some(now_running) = now_running.filter(|_| current) else {
        return refuse(
            "NOT_CURRENT",
            format!(
                "{id} no longer runs in {env} (the latest deployment there is {}); roll that one back instead",
                latest.map(|l| l.id).unwrap_or_default()
            ),
        );
    };
    let previous = Current {
        version: d.stable_version.clone(),
        endpoints: d.upstreams.stable.clone(),
        route: d.route.clone(),
    };
    if previous.version == environment::NOTHING {
        return refuse(
            "NO_PREVIOUS_RELEASE",
            format!("{id} was the first deployment of {product} to {env}; nothing ran before it"),
        );
    }
    let previous_release = state
        .store
        .release_by_version(&product, &previous.version)
        .await?;
    // Restoring brings a release back without approvals: only one that may
    // still run. Undoing the undo of a bad release would re-deploy it.
    if let Some(r) = previous_release.as_ref().filter(|r| {
        matches!(
            r.status,
            ReleaseStatus::RolledBack | ReleaseStatus::Cancelled
        )
    }) {
        return refuse(
            "RELEASE_NOT_DEPLOYABLE",
            format!(
                "rolling {id} back would restore {product} {} to {env}, and that release is {}; deploy a release through the environments instead",
                r.version, r.status
            ),
        );
    }
    let plan = environment::rollback_plan(
        &d,
        &now_running,
        &previous,
        previous_release.as_ref().map(|r| r.id),
    );
    let mut plan = plan;
    if let Some(r) = reason {
        plan.metadata.insert("reason".into(), json!(r));
    }
    let restoring = start(state, actor, plan).await?;
    let (by, now) = (restoring.id.clone(), state.now());
    change(state, actor, id, move |d| environment::revert(d, &by, now)).await?;
    // The undone release is withdrawn when it was production's.
    let (_, _, last) = environment(state, &product, &env).await?;
    if last
        && let Some(rid) = d.metadata.get("release_id").and_then(|v| v.as_i64())
        && let Ok(r) = state.store.get_release(rid).await
        && r.status == ReleaseStatus::Released
    {
        set_status(state, &r, ReleaseStatus::RolledBack).await?;
    }
    Ok(restoring)
}
