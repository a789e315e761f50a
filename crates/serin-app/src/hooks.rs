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
//!
//! Every call is claimed in the store before it is made (see
//! `serin_store::calls`): each attempt is counted before it is sent and the
//! answer recorded after, so a leader that takes over reuses a recorded answer
//! instead of calling again, waits out the claim of a leader that may still
//! be calling, and sends again only the attempt whose answer died with its
//! leader. The key is the `delivery_id` the receiver sees.

use std::future::Future;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use serin_core::canary::Deployment;
use serin_core::rollout;
use serin_core::rollout::hooks::{Hook, HookKind, HookRun};
use serin_store::StoreError;
use serin_store::calls::{Claim, Reuse};

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
    let key = delivery_id(d, hook);
    // A confirmation is a question asked until it says yes; the others run once.
    let reuse = match kind {
        HookKind::ConfirmStep | HookKind::ConfirmPromotion => Reuse::NoFor(ASK_AGAIN),
        _ => Reuse::Always,
    };
    let call = Call {
        key: &key,
        deployment_id: &d.id,
        reuse,
        attempts: hook.retry_count + 1,
        timeout,
    };
    let (ok, output, attempts) = claimed(state, call, |_| async {
        match (&hook.webhook, &hook.command) {
            (Some(url), _) => webhook(state, d, hook, url, &key, timeout).await,
            (None, Some(argv)) if state.config.allow_hook_commands => {
                command(d, kind, argv, timeout).await
            }
            (None, Some(_)) => (
                false,
                "command hooks are disabled on this server (--allow-hook-commands)".into(),
            ),
            (None, None) => (false, "the hook has neither a webhook nor a command".into()),
        }
    })
    .await;
    tracing::info!(deployment = %d.id, hook = %hook.name, kind = kind.as_str(), ok, attempts, "hook ran");
    HookRun {
        name: hook.name.clone(),
        kind,
        ok,
        attempts,
        output,
    }
}

/// How long a recorded "no" of a question (a confirmation, a gate) stands
/// before it is asked again, as the controller paces its asking.
pub(crate) const ASK_AGAIN: Duration = Duration::from_secs(5);

/// The same for every try of this hook at this step, on any leader: a
/// receiver that keeps the ids it has seen acts once even when a new leader
/// calls again after the old one died mid-call.
fn delivery_id(d: &Deployment, hook: &Hook) -> String {
    format!(
        "hook:{}:{}:{}:{}",
        d.id,
        hook.kind.as_str(),
        hook.name,
        d.rollout.as_ref().map_or(0, |r| r.step)
    )
}

/// One outside call to make through [`claimed`].
pub(crate) struct Call<'a> {
    /// The call's key: its `delivery_id`.
    pub key: &'a str,
    pub deployment_id: &'a str,
    pub reuse: Reuse,
    /// Attempts allowed in all (on every leader).
    pub attempts: u32,
    /// How long one attempt may take.
    pub timeout: Duration,
}

/// Makes a call at most once per attempt across leaders: claims it, counts
/// each attempt before `attempt` sends it, records the answer (see the module
/// docs). Returns yes or no, what was said, and the attempts on record. A
/// store that can't be reached, or a replica no longer leading, is waited for
/// (the leader's term aborts this when it ends); any other store error is
/// tried again for half a minute before the call answers no.
pub(crate) async fn claimed<F, Fut>(
    state: &App,
    call: Call<'_>,
    mut attempt: F,
) -> (bool, String, u32)
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = (bool, String)>,
{
    // An attempt, the pause before the next, and a margin.
    let per_attempt = call.timeout + Duration::from_secs(6);
    let until = |left: u32| {
        state.now() + chrono::Duration::from_std(per_attempt * left.max(1)).unwrap_or_default()
    };
    let mut errors = 0;
    let mut sent = loop {
        let now = state.now();
        match state
            .store
            .claim_call(
                call.key,
                call.deployment_id,
                until(call.attempts),
                now,
                call.reuse,
            )
            .await
        {
            Ok(Claim::Mine { attempts }) => break attempts,
            Ok(Claim::Answered {
                ok,
                output,
                attempts,
                ..
            }) => return (ok, output, attempts),
            Ok(Claim::Held { until }) => {
                let wait = (until - now).to_std().unwrap_or_default();
                tokio::time::sleep(wait.max(Duration::from_millis(200))).await;
            }
            Err(e) => match retry_after(&e, &mut errors) {
                Some(pause) => tokio::time::sleep(pause).await,
                None => return (false, format!("not called: {e}"), 0),
            },
        }
    };
    // An attempt counted by a leader that died before its answer was
    // recorded is sent again, under the same count: the one way a receiver
    // sees a call twice.
    let mut again = sent > 0;
    let mut answer = (false, "no attempt left".to_string());
    loop {
        if !again {
            if sent >= call.attempts {
                break;
            }
            if sent > 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            sent = loop {
                match state
                    .store
                    .count_call_attempt(call.key, until(call.attempts - sent))
                    .await
                {
                    Ok(n) => break n,
                    Err(e) => match retry_after(&e, &mut errors) {
                        Some(pause) => tokio::time::sleep(pause).await,
                        None => return (false, format!("not called: {e}"), sent),
                    },
                }
            };
        }
        again = false;
        answer = attempt(sent).await;
        if answer.0 {
            break;
        }
    }
    loop {
        match state
            .store
            .finish_call(call.key, answer.0, &answer.1, state.now())
            .await
        {
            Ok(()) => break,
            Err(e) => match retry_after(&e, &mut errors) {
                Some(pause) => tokio::time::sleep(pause).await,
                None => {
                    tracing::warn!(call = call.key, error = %e, "an outside call's answer was not recorded");
                    break;
                }
            },
        }
    }
    (answer.0, answer.1, sent)
}

/// How long to wait before trying the store again after `e`, or `None` to
/// give up: never while the database is away or this replica no longer leads
/// (its term then aborts the caller), after 30 tries for any other error.
fn retry_after(e: &StoreError, errors: &mut u32) -> Option<Duration> {
    let pause = Duration::from_secs(1);
    if matches!(e, StoreError::Unavailable(_) | StoreError::Fenced { .. }) {
        return Some(pause);
    }
    *errors += 1;
    tracing::warn!(error = %e, tries = *errors, "an outside call's record failed");
    (*errors < 30).then_some(pause)
}

async fn webhook(
    state: &App,
    d: &Deployment,
    hook: &Hook,
    url: &str,
    delivery_id: &str,
    timeout: Duration,
) -> (bool, String) {
    let mut body = position("hook", d);
    body["kind"] = json!(hook.kind.as_str());
    body["name"] = json!(hook.name);
    body["delivery_id"] = json!(delivery_id);
    let (ok, said) = post(state, url, &body, timeout).await;
    state
        .telemetry
        .delivery("hook", if ok { "delivered" } else { "failed" });
    (ok, said)
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
