//! HAProxy through its runtime API (the admin socket of `stats socket …
//! level admin`): weights are set with `set server BACKEND/SERVER weight N`
//! and read back with `get weight BACKEND/SERVER`, with no reload. All of a
//! change's commands go in one line (`;`-separated) on one connection, so
//! HAProxy applies them back to back; it answers each command with its
//! output and an empty line, then closes.
//!
//! Lane counters come from `show stat` on the same socket, or, with
//! `prometheus=URL`, from HAProxy's built-in Prometheus exporter as a
//! Prometheus server scraped it (`haproxy_server_http_responses_total` by
//! `code`, `haproxy_server_connection_errors_total`,
//! `haproxy_server_response_errors_total`, each scraped instance followed
//! on its own and their growth summed): per server, responses by status
//! class, connection errors and broken-off responses, summed per lane. Neither carries a latency
//! distribution (the exporter's response time is an average over the last
//! 1024 requests), so an HAProxy lane has no latency samples.
//!
//! Match rules go into HAProxy maps, also through the runtime API: for each
//! header or cookie a rule looks at, the operator's configuration loads a map
//! named `BACKEND.header.NAME.map` (the header's name in lower case) or
//! `BACKEND.cookie.NAME.map`, and uses its answer (`stable` or `canary`) to
//! pick a server (see `docs/engines.md`). Serin replaces each such map's
//! entries in one step (`prepare map`, `add map @VERSION`, `commit map`), so
//! a request never meets half a change, and reads them back with `show map`.
//! The maps match exact values; the order in which the maps are consulted is
//! the configuration's.
//!
//! The names in the commands are the deployment's, checked by
//! `EngineTarget::validate` to hold only letters, digits, `.`, `_` and `-`:
//! no name can end a command or start another. Rule values are held to
//! letters, digits and `._:@+=,/-` for the same reason.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serin_core::traffic::engine::{
    EngineRule, EngineTarget, Pattern, RouteState, RuleSource, share,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Address, Counters, EngineError, InEffect, TrafficEngine};

/// How long one command may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Most bytes read from one answer.
const MAX_ANSWER: u64 = 64 * 1024;

/// One HAProxy instance's runtime API.
#[derive(Debug)]
pub struct Haproxy {
    name: String,
    address: Address,
    /// The backends deployments may name (`None`: any).
    backends: Option<Vec<String>>,
    /// Where the lane counters are read, when not from the socket.
    prometheus: Option<crate::prometheus::Prometheus>,
    /// Through Prometheus: what each scraped instance last showed.
    fleet: std::sync::Mutex<Fleet>,
}

/// The instances of a fleet of HAProxies as Prometheus shows them. Each
/// instance's counters are followed on their own, so that one restarting, or
/// missing a scrape and coming back, adds only what it grew by (or, after a
/// restart, what it counted since), never its whole history at once.
#[derive(Debug, Default)]
struct Fleet {
    /// Per (backend, instance): the lane totals it showed last.
    last: std::collections::HashMap<(String, String), [Counters; 2]>,
    /// Per backend: what every instance grew by since Serin first saw it.
    grown: std::collections::HashMap<String, [Counters; 2]>,
}

impl Haproxy {
    /// Parses `unix:/path` or `tcp:host:port`, optionally followed by
    /// `?backends=a+b` (the only backends deployments may name) and
    /// `prometheus=URL` (read lane counters from HAProxy's exporter there),
    /// joined by `&`.
    pub fn parse(name: &str, spec: &str) -> Result<Self, String> {
        let (address, options) = spec.split_once('?').unwrap_or((spec, ""));
        let (mut backends, mut prometheus) = (None, None);
        for option in options.split('&').filter(|o| !o.is_empty()) {
            match option.split_once('=') {
                Some(("backends", list)) => backends = Some(super::backends_of(list)?),
                Some(("prometheus", url)) => {
                    prometheus = Some(crate::prometheus::Prometheus::new(url)?);
                }
                _ => {
                    return Err(format!(
                        "{option}: haproxy takes ?backends=a+b and prometheus=http://host:port"
                    ));
                }
            }
        }
        Ok(Haproxy {
            name: name.to_string(),
            address: address.parse()?,
            backends,
            prometheus,
            fleet: Default::default(),
        })
    }

    /// `target`'s lane counters as Prometheus last scraped them from
    /// HAProxy's exporter: what the fleet grew by since Serin first saw each
    /// instance (see [`Fleet`]). The three queries are evaluated at one time.
    async fn scraped_counters(
        &self,
        p: &crate::prometheus::Prometheus,
        target: &EngineTarget,
    ) -> Result<[Counters; 2], String> {
        let sel = format!("proxy=\"{}\"", crate::prometheus::quoted(&target.backend));
        let at = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        let queries = [
            format!(
                "sum by (instance, server, code) (haproxy_server_http_responses_total{{{sel}}})"
            ),
            format!("sum by (instance, server) (haproxy_server_connection_errors_total{{{sel}}})"),
            format!("sum by (instance, server) (haproxy_server_response_errors_total{{{sel}}})"),
        ];
        let (answered, connect, broken) = tokio::join!(
            p.vector(&queries[0], at),
            p.vector(&queries[1], at),
            p.vector(&queries[2], at),
        );
        let lane_of = |labels: &std::collections::BTreeMap<String, String>| {
            let server = labels.get("server")?;
            if target.stable.contains(server) {
                Some(0)
            } else if target.canary.contains(server) {
                Some(1)
            } else {
                None
            }
        };
        let count = |v: f64| {
            if v.is_finite() && v > 0.0 {
                v.round() as u64
            } else {
                0
            }
        };
        let instance = |labels: &std::collections::BTreeMap<String, String>| {
            labels.get("instance").cloned().unwrap_or_default()
        };
        let mut now: std::collections::BTreeMap<String, [Counters; 2]> = Default::default();
        let mut seen = std::collections::BTreeSet::new();
        for s in answered? {
            let Some(lane) = lane_of(&s.labels) else {
                continue;
            };
            seen.insert(s.labels["server"].clone());
            let c = &mut now.entry(instance(&s.labels)).or_default()[lane];
            c.requests += count(s.value);
            if s.labels.get("code").map(String::as_str) == Some("5xx") {
                c.errors_5xx += count(s.value);
            }
        }
        for s in connect? {
            if let Some(lane) = lane_of(&s.labels) {
                now.entry(instance(&s.labels)).or_default()[lane].errors_connect += count(s.value);
            }
        }
        for s in broken? {
            if let Some(lane) = lane_of(&s.labels) {
                let c = &mut now.entry(instance(&s.labels)).or_default()[lane];
                c.errors_response += count(s.value);
                c.requests += count(s.value);
            }
        }
        let wanted = target.stable.len() + target.canary.len();
        if seen.len() < wanted {
            return Err(format!(
                "Prometheus has series for {} of backend {}'s {wanted} servers (does it scrape HAProxy's exporter?)",
                seen.len(),
                target.backend
            ));
        }
        let mut fleet = self.fleet.lock().expect("fleet lock");
        let Fleet { last, grown } = &mut *fleet;
        let total = grown.entry(target.backend.clone()).or_default();
        for (inst, lanes) in now {
            let Some(before) = last.insert((target.backend.clone(), inst), lanes.clone()) else {
                // First sight of this instance: its history is not new.
                continue;
            };
            for (l, c) in lanes.iter().enumerate() {
                // A counter that went down: the instance restarted.
                total[l].add(&c.since(&before[l]).unwrap_or_else(|| c.clone()));
            }
        }
        Ok(total.clone())
    }

    fn refused(&self, said: impl Into<String>) -> EngineError {
        EngineError::Refused {
            engine: self.name.clone(),
            said: said.into(),
        }
    }

    fn unreachable(&self, why: impl std::fmt::Display) -> EngineError {
        EngineError::Unreachable {
            engine: self.name.clone(),
            why: why.to_string(),
        }
    }

    /// Sends one line of commands; the answer of each, in order.
    async fn run(&self, line: &str) -> Result<Vec<String>, EngineError> {
        let talk = async {
            let mut answer = Vec::new();
            match &self.address {
                Address::Unix(path) => {
                    let mut s = tokio::net::UnixStream::connect(path).await?;
                    s.write_all(format!("{line}\n").as_bytes()).await?;
                    s.take(MAX_ANSWER).read_to_end(&mut answer).await?;
                }
                Address::Tcp(addr) => {
                    let mut s = tokio::net::TcpStream::connect(addr).await?;
                    s.write_all(format!("{line}\n").as_bytes()).await?;
                    s.take(MAX_ANSWER).read_to_end(&mut answer).await?;
                }
            }
            Ok::<_, std::io::Error>(answer)
        };
        let answer = tokio::time::timeout(TIMEOUT, talk)
            .await
            .map_err(|_| self.unreachable(format!("no answer within {TIMEOUT:?}")))?
            .map_err(|e| self.unreachable(e))?;
        if answer.len() as u64 >= MAX_ANSWER {
            return Err(self.unreachable(format!("an answer longer than {MAX_ANSWER} bytes")));
        }
        let text = String::from_utf8_lossy(&answer);
        Ok(text.split("\n\n").map(|a| a.trim().to_string()).collect())
    }

    /// `backend`'s rule maps loaded in HAProxy, by file name.
    async fn maps_of(
        &self,
        backend: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, EngineError> {
        let listing = self.run("show map").await?.join("\n");
        Ok(rule_maps(&listing, backend))
    }

    /// A map's entries. One connection each: an empty map's answer is a
    /// lone line break, which can't be told apart from the next answer's
    /// separator when several `show map`s share a line.
    async fn entries_of(
        &self,
        file: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, EngineError> {
        let answer = self.run(&format!("show map {file}")).await?.join("\n");
        Ok(entries(&answer))
    }

    /// Replaces each of `target`'s rule maps with the entries `rules` give
    /// it, each in one step; a map a rule needs that HAProxy hasn't loaded is
    /// an error.
    async fn put_rules(
        &self,
        target: &EngineTarget,
        rules: &[EngineRule],
    ) -> Result<(), EngineError> {
        let loaded = self.maps_of(&target.backend).await?;
        let wanted = wanted_maps(&target.backend, rules);
        if let Some(missing) = wanted.keys().find(|m| !loaded.contains_key(*m)) {
            return Err(self.refused(format!(
                "HAProxy has no map {missing} loaded for backend {} (see docs/engines.md)",
                target.backend
            )));
        }
        // Only the maps whose entries differ are replaced.
        let mut change = Vec::new();
        for (name, file) in &loaded {
            let want = wanted_entries(&wanted, name);
            if self.entries_of(file).await? != want {
                change.push((file, want));
            }
        }
        if change.is_empty() {
            return Ok(());
        }
        let prepared = self
            .run(
                &change
                    .iter()
                    .map(|(f, _)| format!("prepare map {f}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
            .await?;
        let mut line = Vec::new();
        for (i, (file, want)) in change.iter().enumerate() {
            // "New version created: 3"
            let said = prepared.get(i).map(String::as_str).unwrap_or("no answer");
            let version: u64 = said
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| self.refused(format!("prepare map {file}: {said}")))?;
            for (k, v) in want {
                line.push(format!("add map @{version} {file} {k} {v}"));
            }
            line.push(format!("commit map @{version} {file}"));
        }
        let answers = self.run(&line.join("; ")).await?;
        match answers.iter().find(|a| !a.is_empty()) {
            None => Ok(()),
            Some(said) => Err(self.refused(said.clone())),
        }
    }

    /// How `target`'s rule maps differ from what `rules` give them, if they do.
    async fn rules_differ(
        &self,
        target: &EngineTarget,
        rules: &[EngineRule],
    ) -> Result<Option<String>, EngineError> {
        let loaded = self.maps_of(&target.backend).await?;
        let wanted = wanted_maps(&target.backend, rules);
        if let Some(missing) = wanted.keys().find(|m| !loaded.contains_key(*m)) {
            return Ok(Some(format!("HAProxy has no map {missing} loaded")));
        }
        for (name, file) in &loaded {
            let have = self.entries_of(file).await?;
            let want = wanted_entries(&wanted, name);
            if have != want {
                return Ok(Some(format!(
                    "map {name} holds {} entries, {} of them as wanted, {} wanted",
                    have.len(),
                    have.iter()
                        .filter(|(k, v)| want.get(*k) == Some(*v))
                        .count(),
                    want.len()
                )));
            }
        }
        Ok(None)
    }

    fn servers(target: &EngineTarget) -> impl Iterator<Item = (&str, bool)> {
        target
            .stable
            .iter()
            .map(|s| (s.as_str(), false))
            .chain(target.canary.iter().map(|s| (s.as_str(), true)))
    }
}

/// Whether HAProxy's maps can hold `rules`: exact values of letters, digits
/// and `._:@+=,/-`, header names of letters, digits and `-`, cookie names of
/// letters, digits, `_` and `-`.
pub fn check_rules(rules: &[EngineRule]) -> Result<(), String> {
    let plain = |v: &str, more: &str| {
        !v.is_empty()
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || more.contains(c))
    };
    for r in rules {
        match &r.source {
            RuleSource::Header(h) if !plain(h, "-") => {
                return Err(format!(
                    "header {h:?}: HAProxy's maps are named after headers of letters, digits and '-'"
                ));
            }
            RuleSource::Cookie(c) if !plain(c, "_-") => {
                return Err(format!(
                    "cookie {c:?}: HAProxy's maps are named after cookies of letters, digits, '_' and '-'"
                ));
            }
            _ => {}
        }
        match &r.pattern {
            Pattern::Regex(re) => {
                return Err(format!(
                    "regex {re:?}: HAProxy's maps match exact values (use equals)"
                ));
            }
            Pattern::Exact(v) if !plain(v, "._:@+=,/-") => {
                return Err(format!(
                    "{v:?}: HAProxy's maps take values of letters, digits and '._:@+=,/-'"
                ));
            }
            Pattern::Exact(_) => {}
        }
    }
    Ok(())
}

/// The file name (without its directory) of the map for `source` on `backend`.
pub fn map_name(backend: &str, source: &RuleSource) -> String {
    match source {
        RuleSource::Header(h) => format!("{backend}.header.{h}.map"),
        RuleSource::Cookie(c) => format!("{backend}.cookie.{c}.map"),
    }
}

/// The rule maps of `backend` among the maps `show map` lists: their files,
/// by file name.
fn rule_maps(listing: &str, backend: &str) -> std::collections::BTreeMap<String, String> {
    let (header, cookie) = (format!("{backend}.header."), format!("{backend}.cookie."));
    listing
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            // "0 (/etc/haproxy/serin/app.header.x-beta.map) pattern loaded …"
            let file = l.split_once(" (")?.1.split_once(')')?.0;
            let name = file.rsplit('/').next()?;
            ((name.starts_with(&header) || name.starts_with(&cookie)) && name.ends_with(".map"))
                .then(|| (name.to_string(), file.to_string()))
        })
        .collect()
}

/// What each of `backend`'s maps should hold for `rules`: key → lane, per
/// map name (the first rule for a key wins, as it does through the proxy).
fn wanted_maps(
    backend: &str,
    rules: &[EngineRule],
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, &'static str>> {
    let mut maps: std::collections::BTreeMap<_, std::collections::BTreeMap<_, _>> =
        Default::default();
    for r in rules {
        if let Pattern::Exact(v) = &r.pattern {
            maps.entry(map_name(backend, &r.source))
                .or_default()
                .entry(v.clone())
                .or_insert(r.lane.as_str());
        }
    }
    maps
}

/// The entries wanted in map `name`.
fn wanted_entries(
    wanted: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, &'static str>>,
    name: &str,
) -> std::collections::BTreeMap<String, String> {
    wanted
        .get(name)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.to_string())).collect())
        .unwrap_or_default()
}

/// A map's entries as `show map FILE` lists them (`0x55d… key value`).
fn entries(answer: &str) -> std::collections::BTreeMap<String, String> {
    answer
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (_, k, v) = (w.next()?, w.next()?, w.next()?);
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// Sums `show stat` CSV rows of `target`'s servers into lane counters.
/// HAProxy quotes nothing in this CSV; the columns read here all come before
/// the free-text ones (check descriptions) that could hold a comma.
pub fn lane_counters(csv: &str, target: &EngineTarget) -> Result<[Counters; 2], String> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .ok_or("show stat answered without its header")?
        .split(',')
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or(format!("show stat has no column {name}"))
    };
    let (px, sv) = (col("pxname")?, col("svname")?);
    let answered: Vec<usize> = [
        "hrsp_1xx",
        "hrsp_2xx",
        "hrsp_3xx",
        "hrsp_4xx",
        "hrsp_5xx",
        "hrsp_other",
    ]
    .iter()
    .map(|c| col(c))
    .collect::<Result<_, _>>()?;
    let (e5, econ, eresp) = (col("hrsp_5xx")?, col("econ")?, col("eresp")?);
    let mut lanes: [Counters; 2] = Default::default();
    let mut found = 0;
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        if f.get(px) != Some(&target.backend.as_str()) {
            continue;
        }
        let Some(server) = f.get(sv) else { continue };
        let lane = if target.stable.iter().any(|s| s == server) {
            0
        } else if target.canary.iter().any(|s| s == server) {
            1
        } else {
            continue;
        };
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        found += 1;
        lanes[lane].add(&Counters {
            requests: answered.iter().map(|i| n(*i)).sum::<u64>() + n(eresp),
            errors_5xx: n(e5),
            errors_connect: n(econ),
            errors_response: n(eresp),
            ..Default::default()
        });
    }
    if found < target.stable.len() + target.canary.len() {
        return Err(format!(
            "show stat lists {found} of backend {}'s {} servers",
            target.backend,
            target.stable.len() + target.canary.len()
        ));
    }
    Ok(lanes)
}

impl TrafficEngine for Haproxy {
    fn allows(&self, backend: &str) -> bool {
        self.backends
            .as_ref()
            .is_none_or(|b| b.iter().any(|x| x == backend))
    }

    fn check_rules(&self, rules: &[EngineRule]) -> Result<(), String> {
        check_rules(rules)
    }

    fn apply<'a>(
        &'a self,
        target: &'a EngineTarget,
        state: &'a RouteState,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        async move {
            check_rules(&state.rules).map_err(|why| self.refused(why))?;
            // Rules first: a canary that takes traffic for the first time
            // does so with its rules in place.
            self.put_rules(target, &state.rules).await?;
            let (ws, wc) = target.weights(state.percent);
            let line = Self::servers(target)
                .map(|(s, canary)| {
                    let w = if canary { wc } else { ws };
                    format!("set server {}/{s} weight {w}", target.backend)
                })
                .collect::<Vec<_>>()
                .join("; ");
            let answers = self.run(&line).await?;
            // Success is an empty answer to every command.
            match answers.iter().find(|a| !a.is_empty()) {
                None => Ok(()),
                Some(said) => Err(EngineError::Refused {
                    engine: self.name.clone(),
                    said: said.clone(),
                }),
            }
        }
        .boxed()
    }

    fn read_back<'a>(
        &'a self,
        target: &'a EngineTarget,
        want: &'a RouteState,
    ) -> BoxFuture<'a, Result<InEffect, EngineError>> {
        async move {
            let servers: Vec<(&str, bool)> = Self::servers(target).collect();
            let line = servers
                .iter()
                .map(|(s, _)| format!("get weight {}/{s}", target.backend))
                .collect::<Vec<_>>()
                .join("; ");
            let answers = self.run(&line).await?;
            let (mut stable, mut canary) = (0u32, 0u32);
            for (i, (_, is_canary)) in servers.iter().enumerate() {
                // "9 (initial 100)": the weight in effect first.
                let said = answers.get(i).map(String::as_str).unwrap_or("no answer");
                let weight: u32 = said
                    .split_whitespace()
                    .next()
                    .and_then(|w| w.parse().ok())
                    .ok_or_else(|| EngineError::Refused {
                        engine: self.name.clone(),
                        said: said.to_string(),
                    })?;
                if *is_canary {
                    canary += weight;
                } else {
                    stable += weight;
                }
            }
            Ok(InEffect {
                share: share(stable, canary),
                rules_differ: self.rules_differ(target, &want.rules).await?,
            })
        }
        .boxed()
    }

    fn counters<'a>(
        &'a self,
        target: &'a EngineTarget,
    ) -> BoxFuture<'a, Result<Option<[Counters; 2]>, EngineError>> {
        async move {
            if let Some(p) = &self.prometheus {
                return self
                    .scraped_counters(p, target)
                    .await
                    .map(Some)
                    .map_err(|why| self.unreachable(why));
            }
            // Only this backend's servers (type 4): the answer stays small.
            let csv = self
                .run(&format!("show stat {} 4 -1", target.backend))
                .await?
                .join("\n\n");
            lane_counters(&csv, target)
                .map(Some)
                .map_err(|said| EngineError::Refused {
                    engine: self.name.clone(),
                    said,
                })
        }
        .boxed()
    }
}
