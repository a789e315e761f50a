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
//! The names in the commands are the deployment's, checked by
//! `EngineTarget::validate` to hold only letters, digits, `.`, `_` and `-`:
//! no name can end a command or start another.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serin_core::traffic::engine::{EngineTarget, share};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Address, Counters, EngineError, TrafficEngine};

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
            let Some(before) = last.insert((target.backend.clone(), inst), lanes) else {
                // First sight of this instance: its history is not new.
                continue;
            };
            for (l, c) in lanes.iter().enumerate() {
                // A counter that went down: the instance restarted.
                total[l].add(c.since(before[l]).unwrap_or(*c));
            }
        }
        Ok(*total)
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

    fn servers(target: &EngineTarget) -> impl Iterator<Item = (&str, bool)> {
        target
            .stable
            .iter()
            .map(|s| (s.as_str(), false))
            .chain(target.canary.iter().map(|s| (s.as_str(), true)))
    }
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
    let mut lanes = [Counters::default(); 2];
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
        lanes[lane].add(Counters {
            requests: answered.iter().map(|i| n(*i)).sum::<u64>() + n(eresp),
            errors_5xx: n(e5),
            errors_connect: n(econ),
            errors_response: n(eresp),
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

    fn apply<'a>(
        &'a self,
        target: &'a EngineTarget,
        percent: u8,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        async move {
            let (ws, wc) = target.weights(percent);
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
    ) -> BoxFuture<'a, Result<Option<u8>, EngineError>> {
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
            Ok(share(stable, canary))
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
