//! Release notes: what a release brings to an environment, in Markdown.
//!
//! A release's notes are its own description *and* those of the releases since
//! the one that runs in the environment now — a release that skips 1.1 and 1.2
//! on its way to production brings their changes too. With a git repository
//! configured for the product, the commit subjects between the two releases'
//! tags follow (`v1.0.0..v2.0.0`, or without the `v`). Reading git is the
//! server's job; this module orders releases and writes the Markdown.

use serde::{Deserialize, Serialize};

use crate::release::parse_semver;
use crate::{Release, ReleaseStatus};

/// One commit: its short hash and subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Commit {
    /// Abbreviated hash.
    pub sha: String,
    /// The first line of its message.
    pub subject: String,
}

/// Commits between two tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommitRange {
    /// `from..to` as given to git (`to` alone when there is no earlier tag).
    pub range: String,
    /// Newest first.
    pub commits: Vec<Commit>,
    /// Why the list is missing or partial (a tag that doesn't exist…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The releases a deployment of `target` brings, newest first: those after
/// `baseline` (the version running now; none: from the start) up to `target`,
/// cancelled ones left out. Versions are ordered by semver when every one
/// parses, else by creation.
pub fn since<'a>(all: &'a [Release], baseline: Option<&str>, target: &Release) -> Vec<&'a Release> {
    let mut ordered: Vec<&Release> = all
        .iter()
        .filter(|r| r.product_name == target.product_name)
        .collect();
    let semver: Option<Vec<_>> = ordered.iter().map(|r| parse_semver(&r.version)).collect();
    if semver.is_some() {
        ordered.sort_by_key(|r| parse_semver(&r.version));
    } else {
        ordered.sort_by_key(|r| (r.created_at, r.id));
    }
    let end = ordered.iter().position(|r| r.id == target.id);
    let start = baseline
        .and_then(|b| ordered.iter().position(|r| r.version == b))
        .map_or(0, |i| i + 1);
    let Some(end) = end else {
        return vec![];
    };
    if start > end {
        // Going back (a rollback's notes): only the target itself.
        return all.iter().filter(|r| r.id == target.id).collect();
    }
    ordered[start..=end]
        .iter()
        .rev()
        .filter(|r| r.status != ReleaseStatus::Cancelled || r.id == target.id)
        .copied()
        .collect()
}

/// The notes in Markdown.
pub fn markdown(
    target: &Release,
    environment: Option<&str>,
    baseline: Option<&str>,
    releases: &[&Release],
    commits: Option<&CommitRange>,
) -> String {
    let mut out = format!("# {} {}\n\n", target.product_name, target.version);
    let mut facts = Vec::new();
    match (baseline, environment) {
        (Some(b), Some(e)) => facts.push(format!("Replaces {b} in {e}")),
        (None, Some(e)) => facts.push(format!("First release in {e}")),
        (Some(b), None) => facts.push(format!("Since {b}")),
        (None, None) => {}
    }
    facts.push(match releases.len() {
        1 => "1 release".to_string(),
        n => format!("{n} releases"),
    });
    if let Some(c) = commits {
        facts.push(match c.commits.len() {
            1 => "1 commit".to_string(),
            n => format!("{n} commits"),
        });
    }
    out.push_str(&facts.join(" · "));
    out.push_str("\n\n");
    for r in releases {
        out.push_str(&format!("## {}\n\n", r.version));
        match r.description.as_deref().map(str::trim) {
            Some(d) if !d.is_empty() => {
                out.push_str(d);
                out.push_str("\n\n");
            }
            _ => out.push_str("_No notes._\n\n"),
        }
    }
    if let Some(c) = commits {
        out.push_str(&format!("## Commits ({})\n\n", c.range));
        if let Some(n) = &c.note {
            out.push_str(&format!("_{n}_\n\n"));
        }
        for commit in &c.commits {
            out.push_str(&format!("- {} ({})\n", commit.subject, commit.sha));
        }
        if !c.commits.is_empty() {
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn rel(id: i64, version: &str, status: ReleaseStatus, notes: Option<&str>) -> Release {
        let t = Utc.timestamp_opt(1_757_851_200 + id, 0).unwrap();
        Release {
            id,
            product_id: 1,
            product_name: "shop".into(),
            version: version.into(),
            status,
            description: notes.map(str::to_string),
            created_at: t,
            updated_at: t,
            released_at: None,
            created_by: None,
        }
    }

    #[test]
    fn notes_gather_the_releases_since_the_running_one() {
        use ReleaseStatus::*;
        let all = [
            rel(1, "1.0.0", Released, Some("first")),
            rel(2, "1.10.0", Draft, Some("ten")),
            rel(3, "1.2.0", Cancelled, Some("withdrawn")),
            rel(4, "1.3.0", Approved, None),
            rel(5, "0.9.0", Released, Some("old")),
        ];
        let got: Vec<&str> = since(&all, Some("1.0.0"), &all[1])
            .iter()
            .map(|r| r.version.as_str())
            .collect();
        assert_eq!(got, ["1.10.0", "1.3.0"], "semver order, cancelled left out");
        let md = markdown(
            &all[1],
            Some("production"),
            Some("1.0.0"),
            &since(&all, Some("1.0.0"), &all[1]),
            Some(&CommitRange {
                range: "v1.0.0..v1.10.0".into(),
                commits: vec![Commit {
                    sha: "abc1234".into(),
                    subject: "Faster checkout".into(),
                }],
                note: None,
            }),
        );
        assert!(md.starts_with("# shop 1.10.0\n\nReplaces 1.0.0 in production · 2 releases · 1 commit\n\n## 1.10.0\n\nten\n\n## 1.3.0\n\n_No notes._\n\n## Commits (v1.0.0..v1.10.0)\n\n- Faster checkout (abc1234)\n"), "{md}");
        let back: Vec<&str> = since(&all, Some("1.10.0"), &all[0])
            .iter()
            .map(|r| r.version.as_str())
            .collect();
        assert_eq!(back, ["1.0.0"]);
        let first: Vec<&str> = since(&all, None, &all[0])
            .iter()
            .map(|r| r.version.as_str())
            .collect();
        assert_eq!(first, ["1.0.0", "0.9.0"]);
    }
}
