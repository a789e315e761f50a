//! What a deployment's ending means for its product's release.
//!
//! A promoted canary makes its version the product's release (`released`,
//! through `approved` if it was a draft); a canary a verdict rolled back makes
//! its release `rolled_back`, so it can't be released by hand later without an
//! admin's audited override. These are decided here, from the deployment
//! before and after its change and the events the change produced, and the
//! store applies them **in the same transaction as the deployment's change**:
//! a promotion that committed has always moved its release, whatever fails or
//! crashes afterwards, and a change that failed moved nothing.
//!
//! Which deployments speak for a release:
//! - in a product's environments, only one in the last (production): a build
//!   that reached staging isn't the product's release yet, and a failure in
//!   staging is that deployment's (it blocks production already);
//! - outside them (no environment, or a name that isn't one), a promotion
//!   releases only when the product doesn't ship through its environments
//!   (none configured and none ever deployed to); otherwise releases happen by
//!   reaching production, with its approvals, and a canary promoted by hand
//!   elsewhere must not step around them. A verdict's rollback outside them
//!   still marks the release as failed.

use crate::canary::{Deployment, DeploymentStatus};
use crate::event::{EventType, NewEvent};
use crate::release::environment::Environment;
use crate::release::{Release, ReleasePatch, ReleaseStatus};

/// Longest reason recorded on a release that failed its canary.
const MAX_REASON: usize = 500;

/// A change a deployment's transition asks of its product's release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseEffect {
    /// The product.
    pub product: String,
    /// The release's version (the canary's).
    pub version: String,
    /// What happens to it.
    pub kind: EffectKind,
}

/// What happens to the release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EffectKind {
    /// The canary was promoted: the release becomes `released`.
    Promoted,
    /// A verdict rolled the canary back: the release becomes `rolled_back`,
    /// with this reason.
    CanaryFailed {
        /// Why, for the audit log.
        reason: String,
    },
}

/// Where the deployment ran, relative to its product's environments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Not one of the product's environments.
    Outside,
    /// The last environment (production).
    Last,
    /// An earlier environment.
    Earlier,
}

/// Where `d` ran among `envs` (the product's environments, in order).
pub fn placement(d: &Deployment, envs: &[Environment]) -> Placement {
    let Some(env) = &d.environment else {
        return Placement::Outside;
    };
    match envs.iter().position(|e| &e.name == env) {
        None => Placement::Outside,
        Some(i) if i + 1 == envs.len() => Placement::Last,
        Some(_) => Placement::Earlier,
    }
}

/// What the change from `before` to `after`, which produced `events`, asks of
/// the product's release, before looking at where it ran (see [`decide`]).
pub fn candidate(
    before: DeploymentStatus,
    after: &Deployment,
    events: &[NewEvent],
) -> Option<ReleaseEffect> {
    let product = after.product.clone()?;
    let kind =
        if after.status == DeploymentStatus::Completed && before != DeploymentStatus::Completed {
            EffectKind::Promoted
        } else if after.status == DeploymentStatus::Failed
            && before != DeploymentStatus::Failed
            && events.iter().any(|e| {
                e.kind == EventType::DeploymentRolledBack && e.data.get("judgement").is_some()
            })
        {
            EffectKind::CanaryFailed {
                reason: failure_reason(after),
            }
        } else {
            return None;
        };
    Some(ReleaseEffect {
        product,
        version: after.canary_version.clone(),
        kind,
    })
}

/// Whether `effect` applies, given where its deployment ran and whether the
/// product ships through its environments (it has configured them, or has
/// been deployed to one; only read for a promotion outside them).
pub fn decide(
    effect: &ReleaseEffect,
    placement: Placement,
    ships_through_environments: bool,
) -> bool {
    match (placement, &effect.kind) {
        (Placement::Earlier, _) => false,
        (Placement::Last, _) => true,
        (Placement::Outside, EffectKind::CanaryFailed { .. }) => true,
        (Placement::Outside, EffectKind::Promoted) => !ships_through_environments,
    }
}

/// The patches that carry `effect` out on `release`, in order (none when the
/// release is already past them).
pub fn patches(effect: &ReleaseEffect, release: &Release) -> Vec<ReleasePatch> {
    let status = |s| ReleasePatch {
        status: Some(s),
        ..ReleasePatch::default()
    };
    match (&effect.kind, release.status) {
        (EffectKind::Promoted, ReleaseStatus::Draft) => {
            vec![
                status(ReleaseStatus::Approved),
                status(ReleaseStatus::Released),
            ]
        }
        (EffectKind::Promoted, ReleaseStatus::Approved) => vec![status(ReleaseStatus::Released)],
        (EffectKind::CanaryFailed { reason }, ReleaseStatus::Draft | ReleaseStatus::Approved) => {
            vec![ReleasePatch {
                status: Some(ReleaseStatus::RolledBack),
                override_reason: Some(reason.clone()),
                ..ReleasePatch::default()
            }]
        }
        _ => Vec::new(),
    }
}

fn failure_reason(d: &Deployment) -> String {
    let mut why = format!(
        "its canary {} was rolled back automatically: {}",
        d.id,
        d.status_reason.as_deref().unwrap_or("no reason recorded")
    );
    if why.len() > MAX_REASON {
        let mut end = MAX_REASON - 3;
        while !why.is_char_boundary(end) {
            end -= 1;
        }
        why.truncate(end);
        why.push('…');
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::NewDeployment;
    use crate::release::environment::default_environments;
    use chrono::{TimeZone, Utc};

    fn deployment(env: Option<&str>) -> Deployment {
        let now = Utc.timestamp_opt(1_757_851_200, 0).unwrap();
        let (mut d, _) = NewDeployment {
            queue_name: "web".into(),
            stable_version: "1.0.0".into(),
            canary_version: "1.1.0".into(),
            ..Default::default()
        }
        .resolve("canary_web".into(), "ops", now)
        .unwrap();
        d.product = Some("shop".into());
        d.environment = env.map(str::to_string);
        d
    }

    fn release(status: ReleaseStatus) -> Release {
        let now = Utc.timestamp_opt(1_757_851_200, 0).unwrap();
        Release {
            id: 1,
            product_id: 1,
            product_name: "shop".into(),
            version: "1.1.0".into(),
            status,
            description: None,
            created_at: now,
            updated_at: now,
            released_at: None,
            created_by: None,
        }
    }

    #[test]
    fn a_promotion_releases_a_draft_through_approved() {
        let before = deployment(Some("production"));
        let mut after = before.clone();
        let now = before.start_time;
        after.promote(now).unwrap();
        let e = candidate(before.status, &after, &[]).unwrap();
        assert_eq!(e.kind, EffectKind::Promoted);
        let envs = default_environments("shop");
        assert_eq!(placement(&after, &envs), Placement::Last);
        assert!(decide(&e, Placement::Last, true));
        let steps: Vec<_> = patches(&e, &release(ReleaseStatus::Draft))
            .into_iter()
            .map(|p| p.status.unwrap())
            .collect();
        assert_eq!(steps, [ReleaseStatus::Approved, ReleaseStatus::Released]);
        assert!(patches(&e, &release(ReleaseStatus::Released)).is_empty());
        // Nothing new on a change that doesn't end it.
        assert_eq!(candidate(after.status, &after, &[]), None);
    }

    #[test]
    fn where_it_ran_decides() {
        let envs = default_environments("shop");
        assert_eq!(
            placement(&deployment(Some("staging")), &envs),
            Placement::Earlier
        );
        assert_eq!(
            placement(&deployment(Some("elsewhere")), &envs),
            Placement::Outside
        );
        assert_eq!(placement(&deployment(None), &envs), Placement::Outside);
        let promoted = ReleaseEffect {
            product: "shop".into(),
            version: "1.1.0".into(),
            kind: EffectKind::Promoted,
        };
        let failed = ReleaseEffect {
            kind: EffectKind::CanaryFailed { reason: "r".into() },
            ..promoted.clone()
        };
        assert!(!decide(&promoted, Placement::Earlier, false));
        assert!(!decide(&failed, Placement::Earlier, false));
        assert!(decide(&promoted, Placement::Outside, false));
        assert!(
            !decide(&promoted, Placement::Outside, true),
            "ships through environments"
        );
        assert!(decide(&failed, Placement::Outside, true));
    }

    #[test]
    fn only_a_verdicts_rollback_fails_the_release() {
        let before = deployment(None);
        let mut after = before.clone();
        let events = after.rollback(&"x".repeat(800), before.start_time).unwrap();
        assert_eq!(
            candidate(before.status, &after, &events),
            None,
            "a manual rollback"
        );
        let mut judged = events.clone();
        judged[0].data["judgement"] = serde_json::json!({"outcome": "fail"});
        let e = candidate(before.status, &after, &judged).unwrap();
        let EffectKind::CanaryFailed { reason } = &e.kind else {
            panic!("{e:?}")
        };
        assert!(reason.len() <= MAX_REASON && reason.ends_with('…'));
        assert_eq!(
            patches(&e, &release(ReleaseStatus::Approved))[0].status,
            Some(ReleaseStatus::RolledBack)
        );
        assert!(patches(&e, &release(ReleaseStatus::Released)).is_empty());
    }
}
