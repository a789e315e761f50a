//! Approvals: who decided what about a release entering an environment, and
//! whether the policy is met.

#[allow(unused_imports)]
use super::*;

/// An approver's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Yes.
    Approved,
    /// No: the release may not enter the environment.
    Rejected,
}

/// One approval or rejection of a release for an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Approval {
    /// `approval_<uuid>`.
    pub id: String,
    /// The release.
    pub release_id: i64,
    /// The environment it is for.
    pub environment: String,
    /// Who decided (a user's email or an API key's name).
    pub actor: String,
    /// Their role when they decided.
    pub role: Role,
    /// Yes or no.
    pub decision: Decision,
    /// Why.
    pub comment: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Where a release stands against an environment's approval policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApprovalTally {
    /// Approvals needed.
    pub required: u32,
    /// Distinct people whose latest decision is yes.
    pub approved_by: Vec<String>,
    /// Distinct people whose latest decision is no.
    pub rejected_by: Vec<String>,
    /// Whether the policy is met: enough approvals and no standing rejection.
    pub met: bool,
}

/// Counts each person's latest decision (people may change their minds). A
/// standing rejection blocks the release whatever the approvals.
pub fn tally(policy: &ApprovalPolicy, decisions: &[Approval]) -> ApprovalTally {
    let mut latest: BTreeMap<&str, &Approval> = BTreeMap::new();
    for a in decisions {
        match latest.get(a.actor.as_str()) {
            Some(b) if b.created_at > a.created_at => {}
            _ => {
                latest.insert(&a.actor, a);
            }
        }
    }
    let pick = |d: Decision| {
        latest
            .values()
            .filter(|a| a.decision == d)
            .map(|a| a.actor.clone())
            .collect::<Vec<_>>()
    };
    let (approved_by, rejected_by) = (pick(Decision::Approved), pick(Decision::Rejected));
    ApprovalTally {
        required: policy.required,
        met: rejected_by.is_empty() && approved_by.len() as u32 >= policy.required,
        approved_by,
        rejected_by,
    }
}

/// May this person decide on this release for an environment with this policy?
pub fn may_decide(
    policy: &ApprovalPolicy,
    release: &Release,
    actor: &str,
    role: Role,
) -> Result<(), DomainError> {
    if role == Role::Viewer || !role.allows(policy.min_role) {
        return Err(DomainError::Refused {
            code: "APPROVER_ROLE",
            message: format!(
                "approving needs the {} role (or higher); you have {role}",
                policy.min_role.max(Role::Engineer)
            ),
            kind: crate::error::Kind::Forbidden,
        });
    }
    let author = release.created_by.as_deref().unwrap_or("");
    if !policy.author_may_approve && author.eq_ignore_ascii_case(actor) {
        return Err(DomainError::Refused {
            code: "SELF_APPROVAL",
            message: format!(
                "{actor} created release {}@{}; someone else must approve it",
                release.product_name, release.version
            ),
            kind: crate::error::Kind::Forbidden,
        });
    }
    Ok(())
}
