//! nginx through files it includes: for each backend a deployment names,
//! Serin writes `DIR/BACKEND.conf` (the `upstream BACKEND` block with the
//! lanes' servers and weights) and `DIR/BACKEND.probe` (a `location` that
//! answers the weights it was rendered with), checks the whole configuration
//! with `nginx -t`, and reloads (`nginx -s reload`); a configuration nginx
//! refuses is put back as it was. The weights are read back from nginx
//! itself, through the probe location on a listener the operator gives: an
//! answer there comes from workers running the new configuration, not from a
//! file Serin only believes nginx loaded.
//!
//! The operator's `nginx.conf` includes both kinds of file:
//!
//! ```text
//! http {
//!     include /etc/nginx/serin/*.conf;
//!     server { listen 127.0.0.1:8099; include /etc/nginx/serin/*.probe; }
//!     server { listen 80; location / { proxy_pass http://app; } }
//! }
//! ```
//!
//! Names reach the files only after `EngineTarget::validate` (letters,
//! digits, `.`, `_`, `-`, and `:` in server addresses): none can close a block
//! or start a directive.
//!
//! With `split=njs` nothing is rendered into nginx's configuration and nginx
//! is never reloaded: Serin's njs module reads a state file per backend (see
//! [`njs`]); the same probe location, answered by the module, reads back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serin_core::traffic::engine::{
    EngineRule, EngineTarget, Pattern, RouteState, RuleSource, share,
};

use super::{EngineError, InEffect, TrafficEngine};

pub mod njs;

/// How a change reaches nginx's workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Rendered `upstream` and `map` blocks, `nginx -t`, `nginx -s reload`.
    Reload,
    /// Serin's njs module and a state file per backend; no reload.
    Njs,
}

/// How long `nginx -t` or a reload may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One nginx, driven through the files in `dir`.
#[derive(Debug)]
pub struct Nginx {
    name: String,
    dir: PathBuf,
    /// The probe listener, `host:port`.
    probe: String,
    /// The main configuration (`nginx -c`), when not nginx's default.
    conf: Option<PathBuf>,
    /// The backends deployments may name: the only files Serin writes.
    backends: Vec<String>,
    /// How changes reach the workers.
    split: Split,
    /// The JSON access log the lanes are read from, when the operator gave one.
    access_log: Option<super::accesslog::AccessLog>,
    /// One change at a time (files, test and reload together), and when each
    /// backend's unchanged files were last reloaded for a probe that disagreed.
    changing: tokio::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    client: reqwest::Client,
}

impl Nginx {
    /// Parses `DIR?probe=HOST:PORT&backends=a+b[&split=reload|njs][&conf=PATH][&access_log=PATH]`.
    /// With `split=njs`, writes the module to `DIR/serin.js` (nginx loads it
    /// when it starts, so Serin writes it when it starts).
    pub fn parse(name: &str, spec: &str) -> Result<Nginx, String> {
        let usage = "nginx needs DIR?probe=HOST:PORT&backends=a+b[&split=reload|njs][&conf=PATH][&access_log=PATH]";
        let (dir, query) = spec
            .split_once('?')
            .ok_or_else(|| format!("{spec}: {usage}"))?;
        if dir.is_empty() {
            return Err("nginx needs the directory its configuration includes".into());
        }
        let (mut probe, mut conf, mut backends, mut access_log) = (None, None, None, None);
        let mut split = Split::Reload;
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("probe", p)) if p.contains(':') => probe = Some(p.to_string()),
                Some(("conf", c)) if !c.is_empty() => conf = Some(PathBuf::from(c)),
                Some(("split", "reload")) => split = Split::Reload,
                Some(("split", "njs")) => split = Split::Njs,
                Some(("backends", b)) => backends = Some(super::backends_of(b)?),
                Some(("access_log", l)) if !l.is_empty() => {
                    access_log = Some(super::accesslog::AccessLog::new(PathBuf::from(l)));
                }
                _ => return Err(format!("{pair}: {usage}")),
            }
        }
        let probe =
            probe.ok_or("nginx needs probe=HOST:PORT (the listener of the probe locations)")?;
        // Serin writes BACKEND.conf for each: the operator says which.
        let backends =
            backends.ok_or("nginx needs backends=a+b (the upstreams Serin may write)")?;
        if split == Split::Njs {
            let module = Path::new(dir).join("serin.js");
            if std::fs::read_to_string(&module).ok().as_deref() != Some(njs::MODULE) {
                std::fs::create_dir_all(dir)
                    .and_then(|()| std::fs::write(&module, njs::MODULE))
                    .map_err(|e| format!("cannot write {}: {e}", module.display()))?;
            }
        }
        Ok(Nginx {
            name: name.to_string(),
            dir: PathBuf::from(dir),
            probe,
            conf,
            backends,
            split,
            access_log,
            changing: tokio::sync::Mutex::new(Default::default()),
            client: reqwest::Client::builder()
                .timeout(PROBE_TIMEOUT)
                .no_proxy()
                .build()
                .map_err(|e| e.to_string())?,
        })
    }

    fn refused(&self, said: impl Into<String>) -> EngineError {
        EngineError::Refused {
            engine: self.name.clone(),
            said: said.into(),
        }
    }

    /// Runs `nginx [-c CONF] ARGS`; its error output when it fails.
    async fn nginx(&self, args: &[&str]) -> Result<(), EngineError> {
        let mut cmd = tokio::process::Command::new("nginx");
        if let Some(c) = &self.conf {
            cmd.arg("-c").arg(c);
        }
        cmd.args(args).kill_on_drop(true);
        let out = tokio::time::timeout(COMMAND_TIMEOUT, cmd.output())
            .await
            .map_err(|_| {
                self.refused(format!(
                    "nginx {} took longer than {COMMAND_TIMEOUT:?}",
                    args.join(" ")
                ))
            })?
            .map_err(|e| EngineError::Unreachable {
                engine: self.name.clone(),
                why: format!("cannot run nginx: {e}"),
            })?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: String = err
            .trim()
            .lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .join(" / ");
        Err(self.refused(format!("nginx {}: {tail}", args.join(" "))))
    }

    fn files(&self, backend: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{backend}.conf")),
            self.dir.join(format!("{backend}.probe")),
        )
    }
}

/// The variable the operator's `proxy_pass` names for `backend`'s requests
/// to follow the rules: `serin_` and the backend's name, letters and digits
/// as they are and the rest spelled out so that two backends never share a
/// variable: `_` as `__`, `-` as `_h`, `.` as `_d` (`web-app` →
/// `$serin_web_happ`, `app` → `$serin_app`).
pub fn variable(backend: &str) -> String {
    let mut name = String::from("serin_");
    for c in backend.chars() {
        match c {
            '_' => name.push_str("__"),
            '-' => name.push_str("_h"),
            '.' => name.push_str("_d"),
            c => name.push(c),
        }
    }
    name
}

/// `text` as an nginx quoted string: `\` and `"` escaped (nginx reads
/// `\\` as `\`, so a regular expression's own escapes survive).
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The nginx variable holding a rule's source.
fn source_variable(source: &RuleSource) -> String {
    match source {
        RuleSource::Header(h) => format!("$http_{}", h.replace('-', "_")),
        RuleSource::Cookie(c) => format!("$cookie_{c}"),
    }
}

/// Whether nginx can put `rules` in effect: header names of letters, digits
/// and `-` (nginx drops headers with `_` by default), cookie names of
/// letters, digits and `_` (what `$cookie_NAME` can name), values without
/// control characters.
pub fn check_rules(rules: &[EngineRule]) -> Result<(), String> {
    for r in rules {
        match &r.source {
            RuleSource::Header(h)
                if h.is_empty() || !h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
            {
                return Err(format!(
                    "header {h:?}: nginx matches headers named with letters, digits and '-'"
                ));
            }
            RuleSource::Cookie(c)
                if c.is_empty() || !c.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                return Err(format!(
                    "cookie {c:?}: nginx matches cookies named with letters, digits and '_'"
                ));
            }
            _ => {}
        }
        let (Pattern::Exact(v) | Pattern::Regex(v)) = &r.pattern;
        if v.chars().any(char::is_control) {
            return Err(format!("{v:?}: a value without control characters"));
        }
        // A map's regex sets $1… and named variables for the whole request:
        // a deployment's pattern must not reach the operator's variables.
        if let Pattern::Regex(re) = &r.pattern
            && regex::Regex::new(re).is_ok_and(|x| x.captures_len() > 1)
        {
            return Err(format!(
                "regex {re:?}: nginx would set variables from its groups; use (?:…) groups"
            ));
        }
    }
    Ok(())
}

/// The two files for `target` in `state`: the upstreams and the rules'
/// `map`s, and the probe.
///
/// Besides the weighted `upstream BACKEND`, each lane has its own
/// (`BACKEND__stable`, `BACKEND__canary`), and a chain of `map`s, one per
/// rule in order, sets `$serin_BACKEND` to the upstream a request goes to:
/// the lane of the first rule that matches, else the weighted one.
pub fn render(target: &EngineTarget, state: &RouteState) -> (String, String) {
    let (ws, wc) = target.weights(state.percent);
    let b = &target.backend;
    let mut upstream = format!(
        "# Written by Serin: the lanes of backend {b}. Serin rewrites this file; don't edit it.\nupstream {b} {{\n"
    );
    for (servers, w) in [(&target.stable, ws), (&target.canary, wc)] {
        for s in servers {
            // nginx has no weight 0: a lane without traffic is `down`.
            if w == 0 {
                upstream.push_str(&format!("    server {s} down;\n"));
            } else {
                upstream.push_str(&format!("    server {s} weight={w};\n"));
            }
        }
    }
    upstream.push_str("}\n");
    for (lane, servers) in [("stable", &target.stable), ("canary", &target.canary)] {
        upstream.push_str(&format!("upstream {b}__{lane} {{\n"));
        for s in servers {
            upstream.push_str(&format!("    server {s};\n"));
        }
        upstream.push_str("}\n");
    }
    // The rules, first match wins: map i falls through to map i + 1.
    let var = variable(b);
    // `_r` can't come out of `variable`'s spelling: no other backend's name.
    let name = |i: usize| {
        if i == 0 {
            var.clone()
        } else {
            format!("{var}_r{i}")
        }
    };
    for (i, r) in state.rules.iter().enumerate() {
        let key = match &r.pattern {
            Pattern::Exact(v) => format!("~^{}$", regex::escape(v)),
            Pattern::Regex(re) => format!("~{re}"),
        };
        let next = if i + 1 == state.rules.len() {
            b.clone()
        } else {
            format!("${}", name(i + 1))
        };
        // A missing header or cookie is "" to nginx: it matches no rule (an
        // exact key is tried before the regular expressions).
        upstream.push_str(&format!(
            "map {} ${} {{\n    \"\" {next};\n    {} {b}__{};\n    default {next};\n}}\n",
            source_variable(&r.source),
            name(i),
            quoted(&key),
            r.lane.as_str(),
        ));
    }
    if state.rules.is_empty() {
        upstream.push_str(&format!("map $host ${var} {{\n    default {b};\n}}\n"));
    }
    let (total_s, total_c) = (
        ws * target.stable.len() as u32,
        wc * target.canary.len() as u32,
    );
    let digest = state.rules_digest();
    let probe = format!(
        "# Written by Serin: the weights and rules backend {b} was rendered with.\nlocation = /serin/{b} {{\n    default_type text/plain;\n    return 200 \"{total_s} {total_c} {digest}\\n\";\n}}\n"
    );
    (upstream, probe)
}

/// Writes `content` to `path` through a file beside it and a rename, so
/// nginx never reads half a file.
async fn write_atomic(path: &Path, content: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("serin-tmp");
    tokio::fs::write(&tmp, content).await?;
    tokio::fs::rename(&tmp, path).await
}

impl TrafficEngine for Nginx {
    fn allows(&self, backend: &str) -> bool {
        self.backends.iter().any(|b| b == backend)
    }

    fn servers_are_addresses(&self) -> bool {
        true
    }

    fn lane_seconds<'a>(
        &'a self,
        target: &'a EngineTarget,
        before: i64,
    ) -> BoxFuture<'a, Result<Option<Vec<super::LaneSecond>>, EngineError>> {
        async move {
            let Some(log) = &self.access_log else {
                return Ok(None);
            };
            log.take(&target.stable, &target.canary, before)
                .await
                .map(Some)
                .map_err(|why| EngineError::Unreachable {
                    engine: self.name.clone(),
                    why,
                })
        }
        .boxed()
    }

    fn check_rules(&self, rules: &[EngineRule]) -> Result<(), String> {
        check_rules(rules)
    }

    fn check_target(&self, target: &EngineTarget) -> Result<(), (&'static str, String)> {
        super::no_extras(target)?;
        match self.split {
            Split::Reload => Ok(()),
            Split::Njs => njs::check_servers(target),
        }
    }

    fn apply<'a>(
        &'a self,
        target: &'a EngineTarget,
        state: &'a RouteState,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        async move {
            if !self.allows(&target.backend) {
                return Err(self.refused(format!(
                    "backend {} is not in the engine's list",
                    target.backend
                )));
            }
            let mut reloaded = self.changing.lock().await;
            let (conf, probe) = self.files(&target.backend);
            check_rules(&state.rules).map_err(|why| self.refused(why))?;
            if self.split == Split::Njs {
                // In effect from the next request on: the module reads the
                // file per request.
                let path = self.dir.join(format!("{}.json", target.backend));
                return write_atomic(&path, &njs::state_file(target, state))
                    .await
                    .map_err(|e| self.refused(format!("cannot write {}: {e}", path.display())));
            }
            let (new_conf, new_probe) = render(target, state);
            let old_conf = tokio::fs::read_to_string(&conf).await.ok();
            let old_probe = tokio::fs::read_to_string(&probe).await.ok();
            if old_conf.as_deref() == Some(&new_conf) && old_probe.as_deref() == Some(&new_probe) {
                // Already rendered. Reload only if nginx isn't running it yet,
                // and not again within 5 s (a reload restarts the workers'
                // balancing and closes idle client connections; a slow reload
                // is still under way).
                if self
                    .read_back(target, state)
                    .await
                    .is_ok_and(|seen| seen.holds(target, state))
                {
                    return Ok(());
                }
                let now = std::time::Instant::now();
                if reloaded
                    .get(&target.backend)
                    .is_some_and(|at| now.duration_since(*at) < Duration::from_secs(5))
                {
                    return Ok(());
                }
                reloaded.insert(target.backend.clone(), now);
                return self.nginx(&["-s", "reload"]).await;
            }
            let io = |e: std::io::Error| {
                self.refused(format!("cannot write {}: {e}", self.dir.display()))
            };
            write_atomic(&conf, &new_conf).await.map_err(io)?;
            write_atomic(&probe, &new_probe).await.map_err(io)?;
            if let Err(e) = self.nginx(&["-t", "-q"]).await {
                // Put back what nginx ran with.
                for (path, old) in [(&conf, old_conf), (&probe, old_probe)] {
                    let _ = match old {
                        Some(text) => write_atomic(path, &text).await,
                        None => tokio::fs::remove_file(path).await,
                    };
                }
                return Err(e);
            }
            self.nginx(&["-s", "reload"]).await
        }
        .boxed()
    }

    fn read_back<'a>(
        &'a self,
        target: &'a EngineTarget,
        want: &'a RouteState,
    ) -> BoxFuture<'a, Result<InEffect, EngineError>> {
        async move {
            let url = format!("http://{}/serin/{}", self.probe, target.backend);
            let unreachable = |e: reqwest::Error| EngineError::Unreachable {
                engine: self.name.clone(),
                why: format!("{url}: {e}"),
            };
            let answer = self.client.get(&url).send().await.map_err(unreachable)?;
            if !answer.status().is_success() {
                return Err(self.refused(format!("{url} answered {}", answer.status())));
            }
            let text = answer.text().await.map_err(unreachable)?;
            let mut words = text.split_whitespace();
            let mut n = words.by_ref().take(2).map(str::parse::<u32>);
            let share = match (n.next(), n.next()) {
                (Some(Ok(s)), Some(Ok(c))) => share(s, c),
                _ => return Err(self.refused(format!("{url} answered {text:?}"))),
            };
            if self.split == Split::Njs {
                let module = format!("njs{}", njs::FORMAT);
                if text.split_whitespace().nth(3) != Some(module.as_str()) {
                    return Err(self.refused(format!(
                        "{url} answered {text:?}: not Serin's njs module (format {}); is the probe location `js_content serin.probe`?",
                        njs::FORMAT
                    )));
                }
            }
            let want_digest = want.rules_digest();
            let rules_differ = match words.next() {
                Some(d) if d == want_digest => None,
                Some(_) => Some("nginx runs other rules than the deployment's".to_string()),
                None => Some("nginx runs a configuration rendered without rules".to_string()),
            };
            Ok(InEffect {
                share,
                rules_differ,
            })
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rules_as_a_chain_of_maps() {
        let t = EngineTarget {
            engine: "web".into(),
            backend: "web-app".into(),
            stable: vec!["10.0.0.1:80".into()],
            canary: vec!["10.0.0.3:80".into()],
            confirm_within: None,
            mirror_percent: None,
            session_persistence: None,
        };
        let rule = |source, pattern, lane| EngineRule {
            source,
            pattern,
            lane,
        };
        let state = RouteState {
            percent: 5,
            live: true,
            mirror_percent: 0,
            rules: vec![
                rule(
                    RuleSource::Header("x-beta".into()),
                    Pattern::Exact("a.b\"c".into()),
                    serin_core::Lane::Canary,
                ),
                rule(
                    RuleSource::Cookie("tier".into()),
                    Pattern::Regex(r"^gold\d$".into()),
                    serin_core::Lane::Stable,
                ),
            ],
        };
        let (conf, _) = render(&t, &state);
        assert!(
            conf.contains("map $http_x_beta $serin_web_happ {\n    \"\" $serin_web_happ_r1;\n    \"~^a\\\\.b\\\"c$\" web-app__canary;\n    default $serin_web_happ_r1;\n}"),
            "{conf}"
        );
        assert!(
            conf.contains("map $cookie_tier $serin_web_happ_r1 {\n    \"\" web-app;\n    \"~^gold\\\\d$\" web-app__stable;\n    default web-app;\n}"),
            "{conf}"
        );
        assert!(check_rules(&state.rules).is_ok());
        assert_ne!(variable("a-b"), variable("a_b"));
        assert_ne!(variable("a.b"), variable("a_b"));
        let grouped = vec![rule(
            RuleSource::Header("x".into()),
            Pattern::Regex("^(beta|gamma)$".into()),
            serin_core::Lane::Canary,
        )];
        assert!(check_rules(&grouped).unwrap_err().contains("(?:"));
        let bad = |source| {
            vec![rule(
                source,
                Pattern::Exact("1".into()),
                serin_core::Lane::Canary,
            )]
        };
        assert!(check_rules(&bad(RuleSource::Header("x_beta".into()))).is_err());
        assert!(check_rules(&bad(RuleSource::Cookie("a-b".into()))).is_err());
        assert!(
            check_rules(&[rule(
                RuleSource::Header("x".into()),
                Pattern::Exact("a\nb".into()),
                serin_core::Lane::Canary
            )])
            .is_err()
        );
    }

    #[test]
    fn renders_weights_and_down_lanes() {
        let t = EngineTarget {
            engine: "web".into(),
            backend: "app".into(),
            stable: vec!["10.0.0.1:80".into(), "10.0.0.2:80".into()],
            canary: vec!["10.0.0.3:80".into()],
            confirm_within: None,
            mirror_percent: None,
            session_persistence: None,
        };
        let (conf, probe) = render(&t, &RouteState::share_only(10));
        assert!(conf.contains("upstream app {\n    server 10.0.0.1:80 weight=9;\n    server 10.0.0.2:80 weight=9;\n    server 10.0.0.3:80 weight=2;\n}"), "{conf}");
        assert!(
            conf.contains("upstream app__canary {\n    server 10.0.0.3:80;\n}"),
            "{conf}"
        );
        assert!(
            conf.contains("map $host $serin_app {\n    default app;\n}"),
            "{conf}"
        );
        let digest = RouteState::share_only(10).rules_digest();
        assert!(
            probe.contains(&format!("return 200 \"18 2 {digest}\\n\";")),
            "{probe}"
        );
        let (conf, _) = render(&t, &RouteState::share_only(0));
        assert!(conf.contains("server 10.0.0.3:80 down;"), "{conf}");
        assert!(Nginx::parse("web", "/etc/nginx/serin").is_err());
        assert!(Nginx::parse("web", "/etc/nginx/serin?conf=/x").is_err());
        assert!(
            Nginx::parse("web", "/etc/nginx/serin?probe=127.0.0.1:8099").is_err(),
            "no backends"
        );
        assert!(Nginx::parse("web", "/etc/nginx/serin?probe=127.0.0.1:8099&backends=a/b").is_err());
        let n = Nginx::parse(
            "web",
            "/etc/nginx/serin?probe=127.0.0.1:8099&backends=app+web&conf=/etc/nginx/nginx.conf",
        )
        .unwrap();
        assert!(n.allows("app") && n.allows("web") && !n.allows("default"));
        assert_eq!(
            (n.probe.as_str(), n.conf.as_deref()),
            ("127.0.0.1:8099", Some(Path::new("/etc/nginx/nginx.conf")))
        );
    }
}
