//! Running hooks (see `serin_core::hooks` for what each kind means).
//!
//! A webhook hook is a POST of the deployment's position as JSON; a 2xx answer
//! is yes. A command hook runs the program directly (no shell) in a clean
//! environment — `PATH`, `HOME`, `LANG` and `TZ` only, never the server's own
//! secrets — plus the deployment (`SERIN_DEPLOYMENT_ID`, `SERIN_QUEUE_NAME`,
//! `SERIN_STABLE_VERSION`, `SERIN_CANARY_VERSION`, `SERIN_HOOK_KIND`); exit 0 is
//! yes. Each attempt has the hook's timeout (a command is killed when it passes);
//! failed attempts are retried after a second. The output kept is the HTTP
//! status and the first 500 characters of the body, or the exit status and the
//! last 2,000 characters of stdout and stderr.
//!
//! Commands run on the server's machine with the server's rights, so they are
//! off unless the server is started with `--allow-hook-commands`; a plan that
//! asks for one is refused at creation otherwise.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use serin_core::canary::Deployment;
use serin_core::rollout;
use serin_core::rollout::hooks::{Hook, HookKind, HookRun};

use crate::App;

/// The hooks a need asks for: the ending ones for an ended deployment.
pub fn due(d: &Deployment, kind: HookKind) -> Vec<Hook> {
    match kind {
        HookKind::OnRollback | HookKind::PostRollout => rollout::ending_hooks(d),
        k => d
            .rollout
            .as_ref()
            .map(|r| r.spec.hooks_of(k).cloned().collect())
            .unwrap_or_default(),
    }
}

/// Runs the hooks of a kind, in order, each with its retries.
pub async fn run(state: &App, d: &Deployment, kind: HookKind) -> Vec<HookRun> {
    let mut runs = Vec::new();
    for hook in due(d, kind) {
        runs.push(run_one(state, d, &hook).await);
    }
    runs
}

async fn run_one(state: &App, d: &Deployment, hook: &Hook) -> HookRun {
    let kind = hook.kind;
    let timeout = Duration::from_secs(u64::from(hook.timeout_seconds));
    let mut attempts = 0;
    let mut result = (false, String::new());
    for attempt in 0..=hook.retry_count {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        attempts += 1;
        result = match (&hook.webhook, &hook.command) {
            (Some(url), _) => webhook(state, d, hook, url, timeout).await,
            (None, Some(argv)) if state.config.allow_hook_commands => {
                command(d, kind, argv, timeout).await
            }
            (None, Some(_)) => (
                false,
                "command hooks are disabled on this server (--allow-hook-commands)".into(),
            ),
            (None, None) => (false, "the hook has neither a webhook nor a command".into()),
        };
        if result.0 {
            break;
        }
    }
    tracing::info!(deployment = %d.id, hook = %hook.name, kind = kind.as_str(), ok = result.0, attempts, "hook ran");
    HookRun {
        name: hook.name.clone(),
        kind,
        ok: result.0,
        attempts,
        output: result.1,
    }
}

async fn webhook(
    state: &App,
    d: &Deployment,
    hook: &Hook,
    url: &str,
    timeout: Duration,
) -> (bool, String) {
    let mut body = position("hook", d);
    body["kind"] = json!(hook.kind.as_str());
    body["name"] = json!(hook.name);
    // The same for every try of this hook at this step, on any leader: a
    // receiver that keeps the ids it has seen runs it once even when a new
    // leader calls again after the old one died mid-call.
    body["delivery_id"] = json!(format!(
        "hook:{}:{}:{}:{}",
        d.id,
        hook.kind.as_str(),
        hook.name,
        d.rollout.as_ref().map_or(0, |r| r.step)
    ));
    post(state, url, &body, timeout).await
}

/// POSTs a hook's or a webhook gate's body to the URL its plan gives, or to
/// the URL the secret it names holds (`secret:NAME`, resolved for this call
/// only); through the outbound policy.
pub(crate) async fn post(
    state: &App,
    url: &str,
    body: &serde_json::Value,
    timeout: Duration,
) -> (bool, String) {
    match crate::secrets::resolve_url(&state.store, state.config.sealer.as_ref(), url).await {
        // Failure text may name the host; a secret's URL stays unsaid.
        Ok(resolved) if resolved != url => {
            match state.outbound.post_json(&resolved, body, timeout).await {
                (false, why) if why.starts_with("not called") || why.starts_with("no answer") => (
                    false,
                    format!("{url}: not called or no answer (the URL is a secret's)"),
                ),
                answer => answer,
            }
        }
        Ok(url) => state.outbound.post_json(&url, body, timeout).await,
        Err(e) => (false, format!("not called: {e}")),
    }
}

/// What a webhook gate or hook is sent: the deployment's position.
pub(crate) fn position(kind: &str, d: &Deployment) -> serde_json::Value {
    json!({
        "type": kind,
        "deployment_id": d.id,
        "queue_name": d.queue_name,
        "stable_version": d.stable_version,
        "canary_version": d.canary_version,
        "status": d.status,
        "current_percent": d.current_percent,
        "step": d.rollout.as_ref().map(|r| r.step),
    })
}

async fn command(
    d: &Deployment,
    kind: HookKind,
    argv: &[String],
    timeout: Duration,
) -> (bool, String) {
    // A clean environment: the server's own (its admin token, its webhook
    // secret, database URLs) is not the hook's business.
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.env_clear();
    for var in ["PATH", "HOME", "LANG", "TZ"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    let child = cmd
        .args(&argv[1..])
        .env("SERIN_DEPLOYMENT_ID", &d.id)
        .env("SERIN_QUEUE_NAME", &d.queue_name)
        .env("SERIN_STABLE_VERSION", &d.stable_version)
        .env("SERIN_CANARY_VERSION", &d.canary_version)
        .env("SERIN_HOOK_KIND", kind.as_str())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            return (
                false,
                format!("could not start `{}`: {}", argv[0], e.kind()),
            );
        }
    };
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => (false, format!("killed after {}s", timeout.as_secs())),
        Ok(Err(e)) => (false, format!("could not wait for it: {}", e.kind())),
        Ok(Ok(out)) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            let text = text.trim();
            let tail: String = {
                let n = text.chars().count();
                text.chars().skip(n.saturating_sub(2000)).collect()
            };
            let status = match out.status.code() {
                Some(c) => format!("exit {c}"),
                None => "killed by a signal".into(),
            };
            (out.status.success(), format!("{status}: {tail}"))
        }
    }
}
