//! Release notes (see `serin_core::notes`): gathers the releases a release
//! brings to an environment and, when the server knows the product's git
//! repository (`--git-repository PRODUCT=PATH`), the commit subjects between
//! their tags. Git runs as a program with arguments (no shell), with a clean
//! environment and a timeout, and only ever on tag names it listed itself.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serin_core::release::environment::Current;
use serin_core::release::notes::{self, Commit, CommitRange};
use serin_core::{Release, ReleaseStatus};

use crate::App;
use crate::error::AppResult;

/// How long one git command may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most commits listed.
const MAX_COMMITS: usize = 500;
/// Most releases of a product considered.
const MAX_RELEASES: u64 = 1000;

/// A release's notes.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Notes {
    /// The release.
    pub release_id: i64,
    /// Its product.
    pub product: String,
    /// Its version.
    pub version: String,
    /// The environment the notes are for, if one was named.
    pub environment: Option<String>,
    /// The version it replaces there (or the latest stable one).
    pub since_version: Option<String>,
    /// The releases it brings, newest first.
    pub releases: Vec<String>,
    /// The commits between the tags, when a repository is configured.
    pub commits: Option<CommitRange>,
    /// The notes in Markdown.
    pub markdown: String,
}

/// Builds the notes of a release, for an environment or against the latest stable release.
pub async fn build(state: &App, release_id: i64, environment: Option<String>) -> AppResult<Notes> {
    let target = state.store.get_release(release_id).await?;
    let product = target.product_name.clone();
    let all = state
        .store
        .list_releases(&product, 0, MAX_RELEASES)
        .await?
        .items;
    let baseline = match &environment {
        Some(env) => {
            crate::releaser::environment(state, &product, env).await?;
            let latest = crate::releaser::latest_in(state, &product, env).await?;
            match latest.as_ref().and_then(Current::after) {
                // Already there: what it replaced when it arrived.
                Some(c) if c.version == target.version => latest
                    .map(|d| d.stable_version)
                    .filter(|v| v != serin_core::release::environment::NOTHING),
                Some(c) => Some(c.version),
                None => None,
            }
        }
        None => {
            let others: Vec<Release> = all
                .iter()
                .filter(|r| r.id != target.id && r.status == ReleaseStatus::Released)
                .cloned()
                .collect();
            serin_core::latest_stable(&others).map(|r| r.version.clone())
        }
    };
    let brought = notes::since(&all, baseline.as_deref(), &target);
    let commits = match state.config.git_repositories.get(&product) {
        Some(repo) => Some(commits(repo, baseline.as_deref(), &target.version).await),
        None => None,
    };
    let markdown = notes::markdown(
        &target,
        environment.as_deref(),
        baseline.as_deref(),
        &brought,
        commits.as_ref(),
    );
    Ok(Notes {
        release_id,
        product,
        version: target.version.clone(),
        environment,
        since_version: baseline,
        releases: brought.iter().map(|r| r.version.clone()).collect(),
        commits,
        markdown,
    })
}

/// At most two git commands at once, whoever asks for notes.
static GIT_RUNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

async fn git(repo: &Path, args: &[&str]) -> Result<String, String> {
    let _permit = GIT_RUNS
        .acquire()
        .await
        .map_err(|e| format!("git is unavailable: {e}"))?;
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("-C")
        .arg(repo)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .env("GIT_TERMINAL_PROMPT", "0")
        .kill_on_drop(true);
    let out = tokio::time::timeout(GIT_TIMEOUT, cmd.output())
        .await
        .map_err(|_| format!("git {} took longer than {GIT_TIMEOUT:?}", args[0]))?
        .map_err(|e| format!("git can't run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {} failed: {}",
            args[0],
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The tag of a version: `v1.2.0` or `1.2.0`, whichever the repository has.
fn tag_of<'a>(tags: &'a [&'a str], version: &str) -> Option<&'a str> {
    let bare = version.strip_prefix('v').unwrap_or(version);
    let prefixed = format!("v{bare}");
    [prefixed.as_str(), bare]
        .into_iter()
        .find_map(|want| tags.iter().copied().find(|t| *t == want))
}

/// Commit subjects between the two versions' tags.
async fn commits(repo: &Path, from: Option<&str>, to: &str) -> CommitRange {
    let fail = |range: String, note: String| CommitRange {
        range,
        commits: Vec::new(),
        note: Some(note),
    };
    let listed = match git(repo, &["tag", "--list"]).await {
        Ok(t) => t,
        Err(e) => return fail(String::new(), e),
    };
    // A tag can't start with `-` when made by `git tag`, but refs can be written
    // by other means; such a name would read as an option.
    let tags: Vec<&str> = listed
        .lines()
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.starts_with('-'))
        .collect();
    let Some(to_tag) = tag_of(&tags, to) else {
        return fail(
            String::new(),
            format!("the repository has no tag for {to} (looked for v{to} and {to})"),
        );
    };
    let from_tag = from.and_then(|f| tag_of(&tags, f));
    let range = match from_tag {
        Some(f) => format!("{f}..{to_tag}"),
        None => to_tag.to_string(),
    };
    let max = format!("--max-count={}", MAX_COMMITS + 1);
    let log = match git(
        repo,
        &[
            "log",
            "--format=%h%x1f%s",
            &max,
            "--end-of-options",
            &range,
            "--",
        ],
    )
    .await
    {
        Ok(l) => l,
        Err(e) => return fail(range, e),
    };
    let mut commits: Vec<Commit> = log
        .lines()
        .filter_map(|l| l.split_once('\x1f'))
        .map(|(sha, subject)| Commit {
            sha: sha.to_string(),
            subject: subject.to_string(),
        })
        .collect();
    let mut note = None;
    if commits.len() > MAX_COMMITS {
        commits.truncate(MAX_COMMITS);
        note = Some(format!("the newest {MAX_COMMITS} commits only"));
    }
    if from.is_some() && from_tag.is_none() {
        note = Some(format!(
            "no tag for {}: every commit up to {to_tag} is listed",
            from.unwrap_or_default()
        ));
    }
    CommitRange {
        range,
        commits,
        note,
    }
}
