//! External traffic engines: the traffic layer a team already runs (HAProxy
//! today), driven by the controller instead of Serin's own proxy.
//!
//! The operator names each engine when starting the server (`serin up
//! --traffic-engine edge=haproxy:unix:/run/haproxy/admin.sock`): where it
//! listens is the operator's to say, never a request's. A deployment only
//! names the engine and what to split on it — a backend and the servers of
//! each lane — in names the engine's own command language can't misread
//! (letters, digits, `.`, `_`, `-`, and `:` in a server's `host:port`).
//!
//! A lane's share becomes server weights: with `s` stable and `c` canary
//! servers, each stable server gets `(100 − p)·c` and each canary server
//! `p·s`, reduced by their common divisor, so the canary's share of the sum
//! is exactly `p`%. Engines that cap weights (HAProxy: 256) get them scaled
//! down and rounded; [`EngineTarget::share`] is what the rounded weights
//! give, and it is the share a step waits to read back.

use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::duration::GoDuration;

/// The largest server weight HAProxy accepts.
pub const MAX_WEIGHT: u32 = 256;

/// How long a step waits, by default, for the engine to report its weight.
pub const DEFAULT_CONFIRM_WITHIN: u64 = 30;

/// Where a deployment's traffic is split by an external engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EngineTarget {
    /// The engine, by the name the server was started with.
    pub engine: String,
    /// What the engine splits: an HAProxy backend, an nginx upstream.
    pub backend: String,
    /// The stable lane's servers in that backend (HAProxy: server names;
    /// nginx: `host:port`).
    pub stable: Vec<String>,
    /// The canary lane's servers in that backend.
    pub canary: Vec<String>,
    /// How long a weight may take to be read back in effect before the
    /// rollout pauses (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_within: Option<GoDuration>,
    /// Copies this percent of the requests the route splits to the canary
    /// too, its answers dropped, while the deployment is live (a dark
    /// launch: the canary sees real requests before it serves any). Only
    /// the `gateway-api` engine mirrors (an `HTTPRoute` `RequestMirror`
    /// filter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percent: Option<u8>,
    /// Keeps each client on the Service that first answered it, by a cookie,
    /// while the deployment is live: a canary's users stay on the canary as
    /// the weights move. Only the `gateway-api` engine does this (an
    /// `HTTPRoute` rule's `sessionPersistence`, an extended feature that not
    /// every implementation supports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_persistence: Option<SessionPersistence>,
}

/// A session cookie that keeps each client on one backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SessionPersistence {
    /// The cookie's name.
    pub cookie: String,
    /// How long a session lasts from its start (absent: the implementation's
    /// default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absolute_timeout: Option<GoDuration>,
}

/// PromQL giving a lane's counters since they started (they only grow until
/// a restart), evaluated once per lane with `$SERVERS` replaced by the
/// lane's servers as a regular expression (`web-canary`, or `a|b`). The
/// operator's (a file the engine is started with), never a request's: a
/// query reads whatever its Prometheus holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaneQueries {
    /// Requests answered, e.g. Envoy's
    /// `sum(envoy_cluster_upstream_rq_total{envoy_cluster_name=~".*($SERVERS).*"})`.
    pub requests: String,
    /// Of those, the ones that failed (5xx), e.g.
    /// `sum(envoy_cluster_upstream_rq_xx{envoy_response_code_class="5",envoy_cluster_name=~".*($SERVERS).*"})`.
    pub errors: String,
    /// Optional: the lane's request times as cumulative histogram buckets,
    /// one series per bucket bound (label `le`), e.g. Envoy's
    /// `sum by (le, pod) (envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=~".*($SERVERS).*"})`.
    /// Without it the latency judges have no samples from the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<String>,
    /// The unit of the `le` bounds: `s` (Prometheus' convention, the
    /// default) or `ms` (Envoy's `*_rq_time` histograms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_unit: Option<String>,
}

/// The longest query.
const MAX_QUERY: usize = 2000;

impl LaneQueries {
    /// Checks each query: one line of PromQL, naming `$SERVERS`, bounded.
    pub fn validate(&self) -> Result<(), String> {
        if !matches!(self.latency_unit.as_deref(), None | Some("s" | "ms")) {
            return Err("latency_unit: s or ms".into());
        }
        let latency = self.latency.as_ref().map(|q| ("latency", q));
        for (name, q) in [("requests", &self.requests), ("errors", &self.errors)]
            .into_iter()
            .chain(latency)
        {
            if q.trim().is_empty() || q.len() > MAX_QUERY || q.contains(['\n', '\r']) {
                return Err(format!(
                    "{name}: one line of PromQL, 1 to {MAX_QUERY} characters"
                ));
            }
            if !q.contains("$SERVERS") {
                return Err(format!(
                    "{name}: names no $SERVERS, so it can't tell the lanes apart"
                ));
            }
        }
        Ok(())
    }

    /// The latency query for a lane whose servers are `servers`, if there is one.
    pub fn latency_for_lane(&self, servers: &[String]) -> Option<String> {
        self.latency
            .as_ref()
            .map(|q| q.replace("$SERVERS", &servers.join("|")))
    }

    /// Microseconds per unit of the latency query's `le` bounds.
    pub fn latency_unit_us(&self) -> f64 {
        match self.latency_unit.as_deref() {
            Some("ms") => 1e3,
            _ => 1e6,
        }
    }

    /// The two queries for a lane whose servers are `servers`.
    pub fn for_lane(&self, servers: &[String]) -> [String; 2] {
        // Names are letters, digits, `.`, `_`, `-` and `:` (see
        // `validate_server`): nothing a regular expression or a PromQL
        // string would read as more than itself but `.`, which matches
        // itself too.
        let alternatives = servers.join("|");
        [&self.requests, &self.errors].map(|q| q.replace("$SERVERS", &alternatives))
    }
}

/// What an engine's rule looks at: a request header (its name in lower
/// case) or a cookie.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleSource {
    /// A request header, by its lower-case name.
    Header(String),
    /// A cookie, by its name.
    Cookie(String),
}

/// How an engine's rule compares the value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pattern {
    /// The exact value.
    Exact(String),
    /// A regular expression, unanchored, in the engine's dialect (PCRE for
    /// nginx, RE2 for most Gateway API implementations); Serin checked it in
    /// Rust's, which agrees with both on the common forms.
    Regex(String),
}

/// A deployment's match rule as an engine puts it in effect: requests whose
/// `source` matches `pattern` go to `lane`, at any share.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EngineRule {
    /// What it looks at.
    pub source: RuleSource,
    /// What the value must be.
    pub pattern: Pattern,
    /// Where matching requests go.
    pub lane: crate::traffic::Lane,
}

/// What an engine puts in effect for one deployment: the canary's share and
/// the match rules, in order (the first that matches wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteState {
    /// The canary's share, in percent.
    pub percent: u8,
    /// Whether the deployment is live: mirroring and session persistence
    /// stop once it is final.
    pub live: bool,
    /// The rules (none once the deployment is final: the version that won
    /// takes every request, as through Serin's own proxy).
    pub rules: Vec<EngineRule>,
    /// The share of stable's requests its plan's latest `mirror` step copies
    /// to the canary while it is live (0: none; the target's own
    /// `mirror_percent` then holds).
    pub mirror_percent: u8,
}

impl RouteState {
    /// A deployment's state: its share, and its match rules while it is live.
    /// A `user_id` rule becomes exact matches on the user header, a
    /// `country` rule exact matches of the upper-case codes on the country
    /// header. The override header and affinity are the own proxy's: an
    /// engine deployment that wants them says so with a header or cookie rule.
    pub fn of(d: &crate::canary::Deployment) -> RouteState {
        let rules = if d.status.is_live() {
            engine_rules(&d.traffic)
        } else {
            Vec::new()
        };
        RouteState {
            percent: d.current_percent,
            live: d.status.is_live(),
            rules,
            mirror_percent: d.mirror_percent(),
        }
    }

    /// The share alone, without rules, of a live deployment.
    pub fn share_only(percent: u8) -> RouteState {
        RouteState {
            percent,
            live: true,
            rules: Vec::new(),
            mirror_percent: 0,
        }
    }

    /// A short, stable fingerprint of the rules in order (16 hex digits), for
    /// engines that report back a digest of what they were given.
    pub fn rules_digest(&self) -> String {
        // FNV-1a over an unambiguous rendering: the same in every process
        // and every Rust version (std's hashers promise neither).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for r in &self.rules {
            let text = format!("{r:?}");
            for b in text.bytes().chain([0u8]) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("{h:016x}")
    }
}

/// The engine rules of a deployment's traffic rules, in order.
pub fn engine_rules(t: &crate::traffic::TrafficRules) -> Vec<EngineRule> {
    use crate::traffic::Condition;
    let value = |v: &crate::traffic::ValueMatch| match (&v.equals, &v.regex) {
        (Some(e), _) => Pattern::Exact(e.clone()),
        (None, Some(r)) => Pattern::Regex(r.clone()),
        (None, None) => Pattern::Regex(String::new()),
    };
    let mut out = Vec::new();
    for r in &t.rules {
        match &r.condition {
            Condition::Header(v) => out.push(EngineRule {
                source: RuleSource::Header(v.name.to_ascii_lowercase()),
                pattern: value(v),
                lane: r.lane,
            }),
            Condition::Cookie(v) => out.push(EngineRule {
                source: RuleSource::Cookie(v.name.clone()),
                pattern: value(v),
                lane: r.lane,
            }),
            Condition::UserId(ids) => out.extend(ids.iter().map(|id| EngineRule {
                source: RuleSource::Header(t.user_header.to_ascii_lowercase()),
                pattern: Pattern::Exact(id.clone()),
                lane: r.lane,
            })),
            Condition::Country(codes) => out.extend(codes.iter().map(|c| EngineRule {
                source: RuleSource::Header(t.country_header.to_ascii_lowercase()),
                pattern: Pattern::Exact(c.to_ascii_uppercase()),
                lane: r.lane,
            })),
        }
    }
    out
}

/// Most servers per lane.
const MAX_SERVERS: usize = 64;

impl EngineTarget {
    /// Checks the names and the lanes.
    pub fn validate(&self) -> Result<(), DomainError> {
        crate::validate::validate_name("engine.engine", &self.engine)?;
        crate::validate::validate_name("engine.backend", &self.backend)?;
        for (field, servers) in [
            ("engine.stable", &self.stable),
            ("engine.canary", &self.canary),
        ] {
            if servers.is_empty() || servers.len() > MAX_SERVERS {
                return Err(DomainError::invalid(
                    field,
                    format!("names 1–{MAX_SERVERS} servers"),
                ));
            }
            for s in servers {
                validate_server(field, s)?;
            }
        }
        if self.stable.iter().any(|s| self.canary.contains(s)) {
            return Err(DomainError::invalid(
                "engine.canary",
                "a server can't be in both lanes",
            ));
        }
        if let Some(d) = self.confirm_within
            && (d.to_std().is_zero() || d.to_std().as_secs() > 3600)
        {
            return Err(DomainError::invalid(
                "engine.confirm_within",
                "is between 1s and 1h",
            ));
        }
        if let Some(p) = self.mirror_percent
            && !(1..=100).contains(&p)
        {
            return Err(DomainError::invalid(
                "engine.mirror_percent",
                "is between 1 and 100",
            ));
        }
        if let Some(s) = &self.session_persistence {
            let ok = !s.cookie.is_empty()
                && s.cookie.len() <= 128
                && s.cookie
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
            if !ok {
                return Err(DomainError::invalid(
                    "engine.session_persistence.cookie",
                    "a cookie name of 1–128 letters, digits and '_-.'",
                ));
            }
            if let Some(t) = s.absolute_timeout
                && t.to_std().as_secs() < 1
            {
                return Err(DomainError::invalid(
                    "engine.session_persistence.absolute_timeout",
                    "is at least 1s",
                ));
            }
        }
        Ok(())
    }

    /// Each stable and each canary server's weight for a canary share of `percent`.
    pub fn weights(&self, percent: u8) -> (u32, u32) {
        weights(percent.min(100), self.stable.len(), self.canary.len())
    }

    /// The canary share the weights for `percent` give (what is read back).
    pub fn share(&self, percent: u8) -> u8 {
        let (s, c) = self.weights(percent);
        share(s * self.stable.len() as u32, c * self.canary.len() as u32).unwrap_or(0)
    }

    /// How long a step waits for the engine to report its weight.
    pub fn confirm_within(&self) -> std::time::Duration {
        self.confirm_within.map_or(
            std::time::Duration::from_secs(DEFAULT_CONFIRM_WITHIN),
            |d| d.to_std(),
        )
    }
}

/// A server: an HAProxy server's name, or an nginx upstream's `host:port`.
/// Letters, digits, `.`, `_`, `-` and `:`; nothing that can end a runtime API
/// command (`;`, a line break) or an nginx directive (`;`, `{`, `}`, spaces).
fn validate_server(field: &str, s: &str) -> Result<(), DomainError> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'));
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            "a server is letters, digits, '.', '_', '-' and ':' (a name, or host:port), starting with a letter or digit",
        ))
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Per-server weights (stable, canary) for `percent` over `s` and `c` servers.
fn weights(percent: u8, s: usize, c: usize) -> (u32, u32) {
    let p = u32::from(percent);
    let (s, c) = (s.max(1) as u32, c.max(1) as u32);
    let (mut ws, mut wc) = ((100 - p) * c, p * s);
    let g = gcd(ws, wc).max(1);
    (ws, wc) = (ws / g, wc / g);
    let top = ws.max(wc);
    if top > MAX_WEIGHT {
        // Scaled into range; a lane that has traffic keeps at least 1.
        let scale = |w: u32| {
            if w == 0 {
                0
            } else {
                ((u64::from(w) * u64::from(MAX_WEIGHT) + u64::from(top) / 2) / u64::from(top))
                    .max(1) as u32
            }
        };
        (ws, wc) = (scale(ws), scale(wc));
    }
    (ws, wc)
}

/// The canary's share (rounded percent) of the backend's total weight; `None`
/// when every server's weight is 0.
pub fn share(stable_total: u32, canary_total: u32) -> Option<u8> {
    let total = u64::from(stable_total) + u64::from(canary_total);
    (total > 0).then(|| ((u64::from(canary_total) * 100 + total / 2) / total) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_queries_name_the_lanes_servers() {
        let q = LaneQueries {
            requests: r#"sum by (pod) (rq_total{svc=~"$SERVERS"})"#.into(),
            errors: r#"sum by (pod) (rq_5xx{svc=~"$SERVERS"})"#.into(),
            latency: Some(r#"sum by (le, pod) (rq_time_bucket{svc=~"$SERVERS"})"#.into()),
            latency_unit: Some("ms".into()),
        };
        assert_eq!(
            q.latency_for_lane(&["a".into()]).unwrap(),
            r#"sum by (le, pod) (rq_time_bucket{svc=~"a"})"#
        );
        assert_eq!(q.latency_unit_us(), 1e3);
        let [r, e] = q.for_lane(&["a".into(), "b".into()]);
        assert_eq!(r, r#"sum by (pod) (rq_total{svc=~"a|b"})"#);
        assert_eq!(e, r#"sum by (pod) (rq_5xx{svc=~"a|b"})"#);
        assert!(q.validate().is_ok());
        let mut bad = q.clone();
        bad.errors = "sum(x)\nor vector(1)".into();
        assert!(bad.validate().is_err(), "one line");
        bad.errors = "sum(rq_5xx)".into();
        assert!(bad.validate().is_err(), "names the lane");
        bad.errors = "x".repeat(MAX_QUERY + 1);
        assert!(bad.validate().is_err(), "bounded");
        let mut bad = q.clone();
        bad.latency_unit = Some("us".into());
        assert!(bad.validate().is_err(), "a unit it knows");
        bad.latency_unit = None;
        bad.latency = Some("sum(rq_time_bucket)".into());
        assert!(
            bad.validate().is_err(),
            "the latency query names the lane too"
        );
    }

    fn target(s: usize, c: usize) -> EngineTarget {
        EngineTarget {
            engine: "edge".into(),
            backend: "app".into(),
            stable: (0..s).map(|i| format!("s{i}")).collect(),
            canary: (0..c).map(|i| format!("c{i}")).collect(),
            confirm_within: None,
            mirror_percent: None,
            session_persistence: None,
        }
    }

    #[test]
    fn weights_give_the_share_exactly_where_they_fit() {
        for (s, c) in [(1, 1), (2, 1), (1, 3), (2, 2)] {
            let t = target(s, c);
            for p in 0..=100u8 {
                let (ws, wc) = t.weights(p);
                assert!(
                    ws <= MAX_WEIGHT && wc <= MAX_WEIGHT,
                    "{s} {c} {p}: {ws} {wc}"
                );
                assert_eq!(t.share(p), p, "{s} stable, {c} canary, {p}%: {ws} {wc}");
            }
        }
        assert_eq!(target(1, 1).weights(10), (9, 1));
        assert_eq!(target(1, 1).weights(0), (1, 0));
        assert_eq!(target(1, 1).weights(100), (0, 1));
        // Many servers: scaled, still within a percent or so.
        let t = target(7, 5);
        for p in [1u8, 10, 33, 50, 99] {
            assert!(t.share(p).abs_diff(p) <= 1, "{p}: {}", t.share(p));
        }
        assert_eq!(share(0, 0), None);
    }

    #[test]
    fn names_that_a_command_language_could_misread_are_refused() {
        assert!(target(1, 1).validate().is_ok());
        for bad in [
            "app; shutdown sessions",
            "app\nset",
            "",
            "a b",
            "app/x",
            "x{",
            "x}",
        ] {
            let mut t = target(1, 1);
            t.backend = bad.into();
            assert!(t.validate().is_err(), "{bad:?}");
            let mut t = target(1, 1);
            t.canary = vec![bad.into()];
            assert!(t.validate().is_err(), "{bad:?}");
        }
        let mut t = target(1, 1);
        t.canary = vec!["s0".into()];
        assert!(t.validate().is_err(), "one server in both lanes");
        assert!(target(0, 1).validate().is_err());
    }
}
