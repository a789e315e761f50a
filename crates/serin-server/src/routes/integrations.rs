//! Serin as the judge of rollout tools that keep their own traffic control
//! (`serin_app::verdict` says what the verdict means and why every replica
//! gives the same one).
//!
//! - **Argo Rollouts**, `web` metric provider: `GET /api/v1/integrations/verdict`
//!   answers 200 with the verdict as JSON for an `AnalysisTemplate` to test
//!   (`result.verdict == "pass"` / `"fail"`); an unknown target is a 404,
//!   which Argo counts as a measurement error.
//! - **Flagger** webhooks: `POST /api/v1/integrations/flagger/{hook}` takes
//!   Flagger's payload and answers 200 to go on, 409 (with the verdict in the
//!   error's details) to halt. Flagger treats any status above 202 as "no".
//!   It can't send headers, so its key may come in the payload's
//!   `metadata.api_key` (the guard reads it there; see `crate::guard`).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use serin_app::App;
use serin_app::verdict::{self, Call, CanaryVerdict, Which};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// Where Flagger's webhooks are served: the guard reads a key from the body
/// under this prefix.
pub const FLAGGER_PREFIX: &str = "/api/v1/integrations/flagger/";

/// The integration routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/integrations/verdict", get(show))
        .route("/api/v1/integrations/flagger/{hook}", post(flagger))
}

/// Which deployment to judge: `deployment`, or a target's live (else latest)
/// deployment.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VerdictParams {
    /// The deployment's id.
    pub deployment: Option<String>,
    /// The target (`queue_name`): its live deployment, else its latest.
    pub queue: Option<String>,
    /// The tenant, with `queue`.
    pub tenant_id: Option<String>,
    /// With `queue`: the canary version the deployment must be judging
    /// (without it, a deployment that ended more than 15 minutes ago no
    /// longer answers for its target).
    pub version: Option<String>,
    /// Seconds to hold the answer while the verdict is `inconclusive`, at most
    /// 120: it comes back as soon as it is `pass` or `fail` (give the caller
    /// a timeout a little longer, e.g. Argo's `timeoutSeconds`). At most 64
    /// answers are held at once; past that, the answer comes at once.
    pub wait: Option<u64>,
}

/// The longest `wait`.
const MOST_WAIT: u64 = 120;
/// Answers held at once, across all callers.
static HELD: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(64);
/// How often a held request reads the deployment again.
const WAIT_STEP: std::time::Duration = std::time::Duration::from_millis(500);

/// The verdict on a deployment, for Argo Rollouts' `web` metric provider (and
/// anything else that polls): `pass` once every analysis step of its plan
/// passed or it was promoted, `fail` once it was rolled back, `inconclusive`
/// while it is judged or paused. Every replica gives the same answer. With
/// `wait`, the answer is held until the verdict is `pass` or `fail` or `wait`
/// seconds have passed, so one measurement can wait for Serin's decision.
#[utoipa::path(get, path = "/api/v1/integrations/verdict", tag = "integrations",
    params(VerdictParams),
    responses((status = 200, body = CanaryVerdict),
        (status = 400, description = "`VALIDATION_FAILED`", body = ErrorBody),
        (status = 404, description = "`DEPLOYMENT_NOT_FOUND`", body = ErrorBody)))]
pub async fn show(
    State(state): State<App>,
    ApiQuery(p): ApiQuery<VerdictParams>,
) -> ApiResult<Json<CanaryVerdict>> {
    let which = match (&p.deployment, &p.queue) {
        (Some(id), None) => Which::Id(id),
        (None, Some(q)) if !q.is_empty() && q.len() <= 200 => Which::Target {
            queue: q,
            tenant: p.tenant_id.as_deref(),
            version: p.version.as_deref(),
        },
        _ => {
            return Err(ApiError::invalid(
                "queue",
                "give either `deployment` (an id) or `queue` (a target of 1 to 200 characters)",
            ));
        }
    };
    let wait = match p.wait {
        Some(w) if w > MOST_WAIT => {
            return Err(ApiError::invalid("wait", "at most 120 seconds"));
        }
        w => std::time::Duration::from_secs(w.unwrap_or(0)),
    };
    let until = tokio::time::Instant::now() + wait;
    let mut held = None;
    loop {
        let d = verdict::find(&state, which).await?;
        let v = verdict::of(&state, &d).await?;
        let time_left = tokio::time::Instant::now() + WAIT_STEP <= until;
        if v.verdict != Call::Inconclusive || !time_left {
            return Ok(Json(v));
        }
        if held.is_none() {
            match HELD.try_acquire() {
                Ok(permit) => held = Some(permit),
                // Too many held already: the answer as it stands.
                Err(_) => return Ok(Json(v)),
            }
        }
        tokio::time::sleep(WAIT_STEP).await;
    }
}

/// What Flagger posts to a webhook.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct FlaggerPayload {
    /// The `Canary` object's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its phase (`Progressing`, `WaitingPromotion`…).
    #[serde(default)]
    pub phase: String,
    /// A hash of the canary's configuration.
    #[serde(default)]
    pub checksum: String,
    /// The webhook's `metadata`: `queue` names the Serin target (default
    /// `NAME.NAMESPACE`), `version` the canary version it must be judging,
    /// `tenant_id` its tenant, `api_key` the key (Flagger can't send headers).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// Flagger's webhooks that Serin answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hook {
    /// Before any traffic moves: is there a deployment judging it, not failed?
    PreRollout,
    /// Every interval: go on unless the canary failed.
    Rollout,
    /// Before promotion: only once the verdict is `pass`.
    ConfirmPromotion,
}

impl Hook {
    fn parse(s: &str) -> Option<Hook> {
        Some(match s {
            "pre-rollout" => Hook::PreRollout,
            "rollout" => Hook::Rollout,
            "confirm-promotion" => Hook::ConfirmPromotion,
            _ => return None,
        })
    }

    /// Whether `v` lets the canary go on.
    fn goes_on(self, v: &CanaryVerdict) -> bool {
        match self {
            Hook::PreRollout => v.verdict != Call::Fail && v.status.is_live(),
            Hook::Rollout => v.verdict != Call::Fail,
            Hook::ConfirmPromotion => v.verdict == Call::Pass,
        }
    }
}

/// Flagger's `pre-rollout`, `rollout` and `confirm-promotion` webhooks: 200
/// to go on, 409 `CANARY_HALTED` to halt (the verdict is in the details).
/// `pre-rollout` goes on when the target has a live deployment that hasn't
/// failed; `rollout` unless the canary was rolled back (Flagger counts each
/// halt toward its `threshold`, then rolls back); `confirm-promotion` only
/// once the verdict is `pass` (Flagger waits meanwhile).
#[utoipa::path(post, path = "/api/v1/integrations/flagger/{hook}", tag = "integrations",
    params(("hook" = String, Path, description = "`pre-rollout`, `rollout` or `confirm-promotion`")),
    request_body = FlaggerPayload,
    responses((status = 200, body = CanaryVerdict),
        (status = 400, description = "`VALIDATION_FAILED`", body = ErrorBody),
        (status = 404, description = "`NOT_FOUND` (another hook), `DEPLOYMENT_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`CANARY_HALTED`", body = ErrorBody)))]
pub async fn flagger(
    State(state): State<App>,
    ApiPath(hook): ApiPath<String>,
    ApiJson(p): ApiJson<FlaggerPayload>,
) -> ApiResult<Json<CanaryVerdict>> {
    let Some(kind) = Hook::parse(&hook) else {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!(
                "no Flagger webhook {hook:?}: Serin answers pre-rollout, rollout and confirm-promotion"
            ),
        ));
    };
    let queue = p
        .metadata
        .get("queue")
        .cloned()
        .unwrap_or_else(|| format!("{}.{}", p.name, p.namespace));
    if queue.is_empty() || queue.len() > 200 {
        return Err(ApiError::invalid(
            "metadata.queue",
            "the target must be 1 to 200 characters",
        ));
    }
    let d = verdict::find(
        &state,
        Which::Target {
            queue: &queue,
            tenant: p.metadata.get("tenant_id").map(String::as_str),
            version: p.metadata.get("version").map(String::as_str),
        },
    )
    .await?;
    let v = verdict::of(&state, &d).await?;
    if kind.goes_on(&v) {
        return Ok(Json(v));
    }
    let call = match v.verdict {
        Call::Pass => "pass",
        Call::Inconclusive => "inconclusive",
        Call::Fail => "fail",
    };
    let message = format!("{hook}: {} is {call} ({})", d.id, v.reason);
    Err(
        ApiError::new(axum::http::StatusCode::CONFLICT, "CANARY_HALTED", message)
            .details(json!({"verdict": v, "phase": p.phase, "checksum": p.checksum})),
    )
}
