//! Holds: when no traffic may move to a deployment by hand.
//!
//! A deployment planned by the release manager may wait at its release's
//! approval gate (a typed step of its plan), and may have promised its
//! environment a pre-deploy hook (a typed flag of its progress, set by the
//! release plan). Until both are behind it, raising the canary's share by hand
//! and promoting are refused, so an approval policy can't be stepped around.
//! Both facts are read from the deployment's own plan: this room knows nothing
//! of releases.

use crate::rollout::hooks::HookKind;
use crate::rollout::{Gate, Step};

use super::Deployment;

/// The release-approval gate a live deployment waits at, if it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitingGate<'a> {
    /// The release whose approvals it waits for.
    pub release_id: i64,
    /// The environment whose policy applies.
    pub environment: &'a str,
    /// Approvals the policy needed when the deployment was planned.
    pub required: u32,
}

impl Deployment {
    /// The one place that says whether a deployment waits at its release's
    /// approval gate: live, and the current step is that gate.
    pub fn approval_gate(&self) -> Option<WaitingGate<'_>> {
        if !self.status.is_live() {
            return None;
        }
        match self.rollout.as_ref()?.current()? {
            Step::Gate(Gate::ReleaseApproval {
                release_id,
                environment,
                required,
            }) => Some(WaitingGate {
                release_id: *release_id,
                environment,
                required: *required,
            }),
            _ => None,
        }
    }

    /// Why no traffic may move to this deployment by hand yet, if it may not.
    pub fn held(&self) -> Option<String> {
        if let Some(g) = self.approval_gate() {
            return Some(format!(
                "waits for {} approval(s) of release {} for {}",
                g.required, g.release_id, g.environment
            ));
        }
        let r = self.rollout.as_ref()?;
        (r.hold_for_pre_rollout && !r.pre_rollout_done && r.spec.has_hooks(HookKind::PreRollout))
            .then(|| "waits for its pre-deploy hook".to_string())
    }
}
