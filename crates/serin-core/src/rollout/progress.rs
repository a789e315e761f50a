//! Where a deployment is in its plan: the progress stored inside the
//! deployment, the only memory the machine has.

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::rollout::{RolloutSpec, Step};

/// A deployment's rollout: the plan and its position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rollout {
    /// The plan.
    pub spec: RolloutSpec,
    /// Index of the current step; `spec.steps.len()` once every step is done.
    pub step: usize,
    /// When the current step started.
    pub step_started_at: chrono::DateTime<chrono::Utc>,
    /// The group this rollout advances with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// How many targets the group has.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub group_size: usize,
    /// In a group: this target has finished its current step and waits for the others.
    #[serde(default)]
    pub ready: bool,
    /// A gate's latest "no", so the waiting is recorded once, not on every tick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_refusal: Option<String>,
    /// The pre-rollout hooks have succeeded.
    #[serde(default)]
    pub pre_rollout_done: bool,
    /// The step whose weight change the confirm-step hooks approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_step: Option<usize>,
    /// The deployment has ended and its post-rollout (or on-rollback) hooks haven't run yet.
    #[serde(default)]
    pub hooks_pending: bool,
    /// No traffic moves by hand until the pre-rollout hooks have succeeded:
    /// set by a release plan, whose pre-deploy hook is a promise to the
    /// environment, never by a request.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hold_for_pre_rollout: bool,
    /// The share of stable's requests copied to the canary now (the latest
    /// `mirror` step passed; 0: none).
    #[serde(default, skip_serializing_if = "is_zero_u8")]
    pub mirror_percent: u8,
}

impl Rollout {
    /// A rollout at its first step.
    pub fn start(spec: RolloutSpec, group: Option<String>, now: Timestamp) -> Rollout {
        Rollout {
            spec,
            step: 0,
            step_started_at: now,
            group,
            group_size: 0,
            ready: false,
            gate_refusal: None,
            pre_rollout_done: false,
            confirmed_step: None,
            hooks_pending: false,
            hold_for_pre_rollout: false,
            mirror_percent: 0,
        }
    }

    /// The current step, if any is left.
    pub fn current(&self) -> Option<&Step> {
        self.spec.steps.get(self.step)
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn is_zero_u8(n: &u8) -> bool {
    *n == 0
}
