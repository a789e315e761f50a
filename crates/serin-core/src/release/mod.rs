//! Releases and their life cycle.
//!
//! A release is one version of a product. Its status follows a small state machine:
//!
//! ```text
//!   draft ──► approved ──► released ──► rolled_back
//!     │           │
//!     └─► cancelled ◄┘
//! ```
//!
//! `cancelled` and `rolled_back` are final. Asking for the status a release already
//! has is not a change and is accepted; any other move off the graph is a
//! [`DomainError::IllegalTransition`] naming the moves that are allowed.
//!
//! The *latest stable release* of a product is chosen by [`latest_stable`]: among
//! the `released` releases, the highest by semantic-version precedence when every
//! candidate's version parses as semver (an optional leading `v` is allowed), else
//! the one released most recently. A `rolled_back` release is never a candidate.
//! Mixing orders within one product would make "latest" depend on which releases
//! happen to parse, so the rule is all-or-nothing.

pub mod effect;
pub mod environment;
pub mod notes;
pub mod product;
pub mod signal;

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::release::product::{validate_description, validate_text};

/// Longest version string accepted.
pub const MAX_VERSION_LEN: usize = 100;

/// Where a release is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReleaseStatus {
    /// Created, not yet approved.
    Draft,
    /// Approved to be released.
    Approved,
    /// Released: a candidate for the latest stable release.
    Released,
    /// Withdrawn before release. Final.
    Cancelled,
    /// Released, then withdrawn. Never stable again. Final.
    RolledBack,
}

impl ReleaseStatus {
    /// Every status, in life-cycle order.
    pub const ALL: [ReleaseStatus; 5] = [
        ReleaseStatus::Draft,
        ReleaseStatus::Approved,
        ReleaseStatus::Released,
        ReleaseStatus::Cancelled,
        ReleaseStatus::RolledBack,
    ];

    /// The wire name, e.g. `rolled_back`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseStatus::Draft => "draft",
            ReleaseStatus::Approved => "approved",
            ReleaseStatus::Released => "released",
            ReleaseStatus::Cancelled => "cancelled",
            ReleaseStatus::RolledBack => "rolled_back",
        }
    }

    /// The statuses a release in this status may move to.
    pub fn next(self) -> &'static [ReleaseStatus] {
        use ReleaseStatus::*;
        match self {
            Draft => &[Approved, Cancelled],
            Approved => &[Released, Cancelled],
            Released => &[RolledBack],
            Cancelled | RolledBack => &[],
        }
    }

    /// Checks a move to `to`. `Ok(false)` means "already there, nothing to do".
    pub fn transition(self, to: ReleaseStatus) -> Result<bool, DomainError> {
        if self == to {
            return Ok(false);
        }
        if self.next().contains(&to) {
            return Ok(true);
        }
        let allowed = self.next().iter().map(|s| s.as_str()).collect::<Vec<_>>();
        Err(DomainError::IllegalTransition {
            from: self,
            to,
            allowed: if allowed.is_empty() {
                "none".into()
            } else {
                allowed.join(", ")
            },
        })
    }
}

impl fmt::Display for ReleaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReleaseStatus {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReleaseStatus::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| {
            DomainError::invalid(
                "status",
                format!("`{s}` is not a status; expected one of draft, approved, released, cancelled, rolled_back"),
            )
        })
    }
}

/// A version of a product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Release {
    /// Stable numeric identifier.
    pub id: i64,
    /// The product this is a release of.
    pub product_id: i64,
    /// The product's name.
    pub product_name: String,
    /// The version string, unique within the product.
    pub version: String,
    /// Where the release is in its life cycle.
    pub status: ReleaseStatus,
    /// Free text: release notes.
    pub description: Option<String>,
    /// When the release was created.
    pub created_at: DateTime<Utc>,
    /// When the release last changed.
    pub updated_at: DateTime<Utc>,
    /// When the release became `released`, if it has.
    pub released_at: Option<DateTime<Utc>>,
    /// Who created it (its author, who may not approve it); unknown for
    /// releases made before Serin recorded it.
    #[serde(default)]
    pub created_by: Option<String>,
}

/// What a client sends to create a release (also the body of `POST /release`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewRelease {
    /// The product, which must exist.
    pub product_name: String,
    /// The version: 1–100 printable characters without spaces or '/'. Semver is
    /// recommended: it decides which release is the latest stable one.
    pub version: String,
    /// Free text: release notes.
    #[serde(default)]
    pub description: Option<String>,
}

impl NewRelease {
    /// Checks the fields; the store relies on this having been called.
    pub fn validate(&self) -> Result<(), DomainError> {
        product::validate_name("product_name", &self.product_name)?;
        validate_version("version", &self.version)?;
        validate_description("description", self.description.as_deref())
    }
}

impl Release {
    /// Applies `patch` at `now`: a status change must follow the graph (becoming
    /// `released` stamps `released_at`), new notes replace the old. Returns whether
    /// anything changed; on an error the release is left as it was.
    pub fn apply(&mut self, patch: &ReleasePatch, now: DateTime<Utc>) -> Result<bool, DomainError> {
        let mut changed = false;
        if let Some(to) = patch.status
            && (patch.overrides(self.status, to) || self.status.transition(to)?)
        {
            if to == ReleaseStatus::Released {
                self.released_at = Some(now);
            }
            self.status = to;
            changed = true;
        }
        if let Some(d) = &patch.description
            && self.description.as_deref() != Some(d.as_str())
        {
            self.description = Some(d.clone());
            changed = true;
        }
        if changed {
            self.updated_at = now;
        }
        Ok(changed)
    }
}

/// A change to a release (`PATCH /api/v1/releases/{id}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReleasePatch {
    /// The new status; must be reachable from the current one.
    #[serde(default)]
    pub status: Option<ReleaseStatus>,
    /// New release notes.
    #[serde(default)]
    pub description: Option<String>,
    /// Why a move outside the life cycle is made anyway (recorded in the audit
    /// log): a `rolled_back` release released again (admins only), or a release
    /// that failed its canary marked `rolled_back` before it was ever released
    /// (Serin does this itself when a canary is rolled back automatically).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_reason: Option<String>,
}

impl ReleasePatch {
    /// Checks the fields.
    pub fn validate(&self) -> Result<(), DomainError> {
        if self.status.is_none() && self.description.is_none() {
            return Err(DomainError::invalid(
                "status",
                "give at least one of `status` and `description`",
            ));
        }
        if let Some(r) = &self.override_reason {
            validate_text("override_reason", r)?;
            if r.trim().is_empty() || r.len() > 500 {
                return Err(DomainError::invalid(
                    "override_reason",
                    "give a reason of 1–500 characters",
                ));
            }
            if self.status.is_none() {
                return Err(DomainError::invalid(
                    "override_reason",
                    "an override goes with a `status`",
                ));
            }
        }
        validate_description("description", self.description.as_deref())
    }

    /// Whether this patch moves `from → to` by an explicit override: released
    /// again after a rollback, or rolled back before release (a failed canary).
    pub fn overrides(&self, from: ReleaseStatus, to: ReleaseStatus) -> bool {
        use ReleaseStatus::*;
        self.override_reason.is_some()
            && matches!(
                (from, to),
                (RolledBack, Released) | (Draft | Approved, RolledBack)
            )
    }
}

/// Checks a version string.
pub fn validate_version(field: &str, version: &str) -> Result<(), DomainError> {
    if version.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if version.len() > MAX_VERSION_LEN {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {MAX_VERSION_LEN} characters"),
        ));
    }
    if !version.chars().all(|c| c.is_ascii_graphic() && c != '/') {
        return Err(DomainError::invalid(
            field,
            "must contain only printable ASCII characters, without spaces or '/'",
        ));
    }
    Ok(())
}

/// Parses a version as semver, allowing a leading `v` (`v1.2.3`).
pub fn parse_semver(version: &str) -> Option<semver::Version> {
    semver::Version::parse(version.strip_prefix('v').unwrap_or(version)).ok()
}

/// The latest stable release among `releases` (which may hold any statuses).
///
/// See the module docs for the rule. Ties (equal precedence, e.g. `1.0.0+a` and
/// `1.0.0+b`, or equal release times) go to the later release time, then the higher id.
pub fn latest_stable(releases: &[Release]) -> Option<&Release> {
    let released: Vec<&Release> = releases
        .iter()
        .filter(|r| r.status == ReleaseStatus::Released)
        .collect();
    let parsed: Option<Vec<semver::Version>> =
        released.iter().map(|r| parse_semver(&r.version)).collect();
    let by_time =
        |a: &Release, b: &Release| a.released_at.cmp(&b.released_at).then(a.id.cmp(&b.id));
    match parsed {
        Some(versions) => released
            .iter()
            .zip(versions.iter())
            .max_by(|(ra, va), (rb, vb)| match va.cmp_precedence(vb) {
                Ordering::Equal => by_time(ra, rb),
                other => other,
            })
            .map(|(r, _)| *r),
        None => released.into_iter().max_by(|a, b| by_time(a, b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    fn rel(id: i64, version: &str, status: ReleaseStatus, released_secs: Option<i64>) -> Release {
        let t = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        Release {
            id,
            product_id: 1,
            product_name: "p".into(),
            version: version.into(),
            status,
            description: None,
            created_at: t,
            updated_at: t,
            released_at: released_secs.map(|s| Utc.timestamp_opt(s, 0).unwrap()),
            created_by: None,
        }
    }

    use ReleaseStatus::*;

    #[test]
    fn semver_precedence_beats_release_time() {
        let rs = [
            rel(1, "1.10.0", Released, Some(10)),
            rel(2, "1.9.0", Released, Some(20)),
            rel(3, "2.0.0", Draft, None),
            rel(4, "3.0.0", RolledBack, Some(30)),
        ];
        assert_eq!(latest_stable(&rs).unwrap().version, "1.10.0");
    }

    #[test]
    fn prerelease_is_lower_and_v_prefix_parses() {
        let rs = [
            rel(1, "v2.0.0-rc.1", Released, Some(30)),
            rel(2, "v1.5.0", Released, Some(10)),
        ];
        assert_eq!(latest_stable(&rs).unwrap().version, "v2.0.0-rc.1");
        let rs = [
            rel(1, "2.0.0-rc.1", Released, Some(30)),
            rel(2, "2.0.0", Released, Some(10)),
        ];
        assert_eq!(latest_stable(&rs).unwrap().version, "2.0.0");
    }

    #[test]
    fn non_semver_falls_back_to_release_time() {
        let rs = [
            rel(1, "2024-05-01", Released, Some(50)),
            rel(2, "1.0.0", Released, Some(10)),
        ];
        assert_eq!(latest_stable(&rs).unwrap().id, 1);
        let rs = [
            rel(1, "build-9", Released, Some(5)),
            rel(2, "build-10", Released, Some(6)),
        ];
        assert_eq!(latest_stable(&rs).unwrap().id, 2);
    }

    #[test]
    fn none_without_released() {
        let rs = [
            rel(1, "1.0.0", Approved, None),
            rel(2, "1.1.0", RolledBack, Some(3)),
        ];
        assert!(latest_stable(&rs).is_none());
    }

    #[test]
    fn transitions() {
        assert_eq!(Draft.transition(Approved), Ok(true));
        assert_eq!(Approved.transition(Released), Ok(true));
        assert_eq!(Released.transition(RolledBack), Ok(true));
        assert_eq!(Released.transition(Released), Ok(false));
        let err = Draft.transition(Released).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a release in status `draft` cannot become `released`; allowed next: approved, cancelled"
        );
        assert!(RolledBack.transition(Released).is_err());
        assert!(Cancelled.transition(Draft).is_err());
    }

    #[test]
    fn overrides_are_explicit_and_narrow() {
        let t0 = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let mut r = rel(1, "2.0.0", Draft, None);
        let failed = ReleasePatch {
            status: Some(RolledBack),
            override_reason: Some("canary rolled back".into()),
            ..Default::default()
        };
        assert_eq!(r.apply(&failed, t0), Ok(true));
        assert_eq!(r.status, RolledBack);
        let plain = ReleasePatch {
            status: Some(Released),
            ..Default::default()
        };
        assert!(r.apply(&plain, t0).is_err(), "no release by hand");
        let forced = ReleasePatch {
            status: Some(Released),
            override_reason: Some("the failure was the load balancer".into()),
            ..Default::default()
        };
        forced.validate().unwrap();
        assert_eq!(r.apply(&forced, t0), Ok(true));
        assert_eq!(r.status, Released);
        // An override never opens other doors.
        let cancel = ReleasePatch {
            status: Some(Cancelled),
            override_reason: Some("x".into()),
            ..Default::default()
        };
        assert!(r.apply(&cancel, t0).is_err());
        let empty = ReleasePatch {
            status: Some(Released),
            override_reason: Some(" ".into()),
            ..Default::default()
        };
        assert!(empty.validate().is_err());
    }

    #[test]
    fn apply_stamps_release_and_leaves_unchanged_alone() {
        let mut r = rel(1, "1.0.0", Approved, None);
        let t = |s| Utc.timestamp_opt(s, 0).unwrap();
        let release = ReleasePatch {
            status: Some(Released),
            description: None,
            override_reason: None,
        };
        assert_eq!(r.apply(&release, t(50)), Ok(true));
        assert_eq!(
            (r.status, r.released_at, r.updated_at),
            (Released, Some(t(50)), t(50))
        );
        assert_eq!(
            r.apply(&release, t(60)),
            Ok(false),
            "same status: no change"
        );
        assert_eq!((r.released_at, r.updated_at), (Some(t(50)), t(50)));
        let back = ReleasePatch {
            status: Some(Draft),
            description: Some("x".into()),
            override_reason: None,
        };
        let before = r.clone();
        assert!(r.apply(&back, t(70)).is_err());
        assert_eq!(r, before, "a refused patch changes nothing, notes included");
    }

    fn status() -> impl Strategy<Value = ReleaseStatus> {
        proptest::sample::select(ReleaseStatus::ALL.to_vec())
    }

    proptest! {
        /// Any walk over the graph never leaves a final status and never reaches
        /// `released` without passing `approved`.
        #[test]
        fn walks_respect_the_graph(asks in proptest::collection::vec(status(), 0..20)) {
            let mut s = Draft;
            let mut approved_seen = false;
            for to in asks {
                let before = s;
                if let Ok(changed) = s.transition(to) {
                    if changed { s = to; }
                    prop_assert!(!(matches!(before, Cancelled | RolledBack) && changed));
                }
                approved_seen |= s == Approved;
                if s == Released { prop_assert!(approved_seen); }
            }
        }

        /// The chosen release is released, and no other released semver release outranks it.
        #[test]
        fn latest_is_maximal(specs in proptest::collection::vec((0u64..4, 0u64..4, 0u64..4, status(), 0i64..100), 0..12)) {
            let rs: Vec<Release> = specs.iter().enumerate().map(|(i, (a, b, c, st, t))| {
                rel(i as i64, &format!("{a}.{b}.{c}"), *st, Some(*t))
            }).collect();
            match latest_stable(&rs) {
                None => prop_assert!(rs.iter().all(|r| r.status != Released)),
                Some(best) => {
                    prop_assert_eq!(best.status, Released);
                    let bv = parse_semver(&best.version).unwrap();
                    for r in rs.iter().filter(|r| r.status == Released) {
                        prop_assert!(parse_semver(&r.version).unwrap() <= bv);
                    }
                }
            }
        }
    }
}
