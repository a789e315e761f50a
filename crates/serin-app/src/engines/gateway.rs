//! The Kubernetes Gateway API through an `HTTPRoute`: the canary's share is
//! the weights of the route's `backendRefs` (stable's Services and canary's),
//! written with the Kubernetes client (kube-rs) and read back from the route
//! itself — the share in its spec, and in effect only once every parent
//! gateway says, in the route's status, that it accepted this generation.
//!
//! Any implementation that programs `HTTPRoute` weights (Envoy Gateway,
//! Istio, Cilium, NGINX Gateway Fabric…) splits the traffic; Serin never talks
//! to the data plane, only to the API server, with a Role that may `get` and
//! `update` the routes it names.
//!
//! A change replaces the route with the `resourceVersion` it was read at, so
//! an edit made between that read and the write is kept: the API server
//! answers 409, and the next tick reads the route again and sets the weights
//! on top of it. Only the weights of the `backendRefs` naming the
//! deployment's Services change, and only in rules that hold those Services
//! alone (see [`split_rules`]); the rest of the route is left as it was.
//!
//! Where it connects is the operator's (`--traffic-engine`): `in-cluster`
//! (the Pod's service account), `kubeconfig` (the default kubeconfig, or
//! `kubeconfig:PATH`), or an API server URL such as `kubectl proxy`'s
//! `http://127.0.0.1:8001`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures::FutureExt;
use futures::future::BoxFuture;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::Value;
use serin_core::traffic::engine::{
    EngineRule, EngineTarget, Pattern, RouteState, RuleSource, share,
};

use super::{EngineError, InEffect, TrafficEngine};

/// How long one call to the API server may take.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Where the API server is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    InCluster,
    Kubeconfig(Option<PathBuf>),
    Url(String),
}

/// One Kubernetes cluster's Gateway API, in one namespace.
pub struct GatewayApi {
    name: String,
    source: Source,
    namespace: String,
    /// The routes deployments may name (`None`: any in the namespace).
    routes: Option<Vec<String>>,
    /// Where the lanes' counters are asked, with the operator's queries.
    lane_queries: Option<(
        crate::prometheus::Prometheus,
        serin_core::traffic::engine::LaneQueries,
    )>,
    /// Per (route, lane, query or bucket bound): what its series grew by.
    growth: std::sync::Mutex<
        std::collections::HashMap<(String, usize, String), crate::prometheus::Growth>,
    >,
    client: tokio::sync::OnceCell<kube::Client>,
}

impl std::fmt::Debug for GatewayApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayApi")
            .field("name", &self.name)
            .field("source", &self.source)
            .field("namespace", &self.namespace)
            .field("routes", &self.routes)
            .field("lane_queries", &self.lane_queries.as_ref().map(|(_, q)| q))
            .finish_non_exhaustive()
    }
}

/// `gateway.networking.k8s.io/v1`, kind `HTTPRoute`.
fn http_route() -> ApiResource {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    ApiResource::from_gvk_with_plural(&gvk, "httproutes")
}

impl GatewayApi {
    /// Parses `in-cluster`, `kubeconfig[:PATH]` or `http(s)://HOST:PORT`,
    /// followed by `?namespace=NS[&routes=a+b][&prometheus=URL&queries=FILE]`
    /// (`FILE`: JSON `{"requests": PROMQL, "errors": PROMQL}`, read now).
    pub fn parse(name: &str, spec: &str) -> Result<Self, String> {
        let usage = "gateway-api needs in-cluster|kubeconfig[:PATH]|URL?namespace=NS[&routes=a+b][&prometheus=URL&queries=FILE]";
        let (source, query) = spec
            .split_once('?')
            .ok_or_else(|| format!("{spec}: {usage}"))?;
        let source = match source {
            "in-cluster" => Source::InCluster,
            "kubeconfig" => Source::Kubeconfig(None),
            s if s.starts_with("kubeconfig:") => {
                Source::Kubeconfig(Some(PathBuf::from(&s["kubeconfig:".len()..])))
            }
            s if s.starts_with("http://") || s.starts_with("https://") => {
                url::Url::parse(s).map_err(|e| format!("{s}: {e}"))?;
                Source::Url(s.to_string())
            }
            s => return Err(format!("{s}: {usage}")),
        };
        let (mut namespace, mut routes, mut prometheus, mut queries) = (None, None, None, None);
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("namespace", ns)) if is_dns_label(ns) => namespace = Some(ns.to_string()),
                Some(("routes", list)) => routes = Some(super::backends_of(list)?),
                Some(("prometheus", url)) => {
                    prometheus = Some(crate::prometheus::Prometheus::new(url)?);
                }
                Some(("queries", file)) => {
                    let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
                    let q: serin_core::traffic::engine::LaneQueries =
                        serde_json::from_str(&text).map_err(|e| format!("{file}: {e}"))?;
                    q.validate().map_err(|e| format!("{file}: {e}"))?;
                    queries = Some(q);
                }
                _ => return Err(format!("{pair}: {usage}")),
            }
        }
        Ok(GatewayApi {
            name: name.to_string(),
            source,
            namespace: namespace.ok_or_else(|| format!("{usage} (namespace is required)"))?,
            routes,
            lane_queries: match (prometheus, queries) {
                (Some(p), Some(q)) => Some((p, q)),
                (None, None) => None,
                _ => return Err(format!("{usage} (prometheus= and queries= go together)")),
            },
            growth: Default::default(),
            client: tokio::sync::OnceCell::new(),
        })
    }

    fn unreachable(&self, why: impl std::fmt::Display) -> EngineError {
        EngineError::Unreachable {
            engine: self.name.clone(),
            why: why.to_string(),
        }
    }

    fn refused(&self, said: impl Into<String>) -> EngineError {
        EngineError::Refused {
            engine: self.name.clone(),
            said: said.into(),
        }
    }

    /// The client, made at the first use (reading a kubeconfig is async).
    async fn routes_api(&self) -> Result<Api<DynamicObject>, EngineError> {
        let client = self
            .client
            .get_or_try_init(|| async {
                let config = match &self.source {
                    Source::InCluster => kube::Config::incluster().map_err(|e| e.to_string())?,
                    Source::Kubeconfig(None) => kube::Config::from_kubeconfig(&Default::default())
                        .await
                        .map_err(|e| e.to_string())?,
                    Source::Kubeconfig(Some(path)) => {
                        let k =
                            kube::config::Kubeconfig::read_from(path).map_err(|e| e.to_string())?;
                        kube::Config::from_custom_kubeconfig(k, &Default::default())
                            .await
                            .map_err(|e| e.to_string())?
                    }
                    Source::Url(url) => {
                        let mut c = kube::Config::new(url.parse().map_err(|e| format!("{e}"))?);
                        c.default_namespace = self.namespace.clone();
                        c
                    }
                };
                let mut config = config;
                // A slow API server must not hold the controller's tick.
                config.connect_timeout = Some(CALL_TIMEOUT);
                config.read_timeout = Some(CALL_TIMEOUT);
                config.write_timeout = Some(CALL_TIMEOUT);
                config.default_retry = false;
                kube::Client::try_from(config).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e: String| self.unreachable(e))?;
        Ok(Api::namespaced_with(
            client.clone(),
            &self.namespace,
            &http_route(),
        ))
    }

    async fn get(&self, route: &str) -> Result<(Api<DynamicObject>, DynamicObject), EngineError> {
        let api = self.routes_api().await?;
        let got = tokio::time::timeout(CALL_TIMEOUT, api.get(route))
            .await
            .map_err(|_| self.unreachable(format!("no answer within {CALL_TIMEOUT:?}")))?;
        let obj = got.map_err(|e| match &e {
            kube::Error::Api(s) if s.code == 404 => self.refused(format!(
                "no HTTPRoute {route} in namespace {}",
                self.namespace
            )),
            _ => self.unreachable(e),
        })?;
        Ok((api, obj))
    }
}

impl GatewayApi {
    /// Replaces the route with `obj` at its `resourceVersion` (409: someone
    /// else's edit came first); what the API server stored.
    async fn replace(
        &self,
        api: &Api<DynamicObject>,
        name: &str,
        obj: &DynamicObject,
    ) -> Result<DynamicObject, EngineError> {
        tokio::time::timeout(CALL_TIMEOUT, api.replace(name, &PostParams::default(), obj))
            .await
            .map_err(|_| self.unreachable(format!("no answer within {CALL_TIMEOUT:?}")))?
            .map_err(|e| match &e {
                kube::Error::Api(s) if s.code == 409 => self.refused(format!(
                    "HTTPRoute {name} changed while Serin wrote it; read again next tick"
                )),
                _ => self.unreachable(e),
            })
    }
}

/// A DNS label (a namespace's name).
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether a backendRef points at a Service in `namespace` (the kind, group
/// and namespace the Gateway API defaults to when they are left out).
fn is_local_service(r: &Value, namespace: &str) -> bool {
    let field = |k: &str| r.get(k).and_then(Value::as_str);
    field("kind").is_none_or(|k| k == "Service")
        && field("group").is_none_or(str::is_empty)
        && field("namespace").is_none_or(|n| n == namespace)
}

/// The rules of `route` that split `target`: every rule naming one of the
/// deployment's Services must name all of them, once each, and nothing else
/// (a rule also sending to another backend would see that backend's share
/// change with the weights; a rule with only some of them would have all of
/// its weights at 0 at one end of the rollout).
pub fn split_rules(
    route: &Value,
    target: &EngineTarget,
    namespace: &str,
) -> Result<Vec<usize>, String> {
    let wanted: std::collections::BTreeSet<&str> = target
        .stable
        .iter()
        .chain(&target.canary)
        .map(String::as_str)
        .collect();
    let rules = route
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .ok_or("it has no rules")?;
    let mut out = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        if is_serins(rule) {
            continue;
        }
        let refs: Vec<&Value> = rule
            .get("backendRefs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect();
        let named: Vec<&str> = refs
            .iter()
            .filter(|r| is_local_service(r, namespace))
            .filter_map(|r| r.get("name").and_then(Value::as_str))
            .filter(|n| wanted.contains(n))
            .collect();
        if named.is_empty() {
            continue;
        }
        let distinct: std::collections::BTreeSet<&str> = named.iter().copied().collect();
        if distinct != wanted {
            return Err(format!(
                "rule {i} names {} of the deployment's {} Services: each rule it splits must name them all",
                distinct.len(),
                wanted.len()
            ));
        }
        if refs.len() != named.len() || named.len() != distinct.len() {
            return Err(format!(
                "rule {i} also sends to other backends, or names a Service twice: a rule Serin splits holds the deployment's Services alone"
            ));
        }
        out.push(i);
    }
    if out.is_empty() {
        return Err("no rule names the deployment's Services".into());
    }
    Ok(out)
}

/// The prefix of the names of the rules Serin writes for a deployment's
/// match rules: `serin-R-B` for its rule `R` on the split rule `B`.
const RULE_PREFIX: &str = "serin-";

/// The most rules an `HTTPRoute` holds (the CRD's `maxItems`).
const MAX_RULES: usize = 16;

/// Whether a route rule is one Serin wrote for a match rule.
fn is_serins(rule: &Value) -> bool {
    rule.get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| n.starts_with(RULE_PREFIX))
}

/// Whether an `HTTPRoute` can hold `rules`: header names as the Gateway API
/// spells them, cookies with exact values (the Gateway API has no cookie
/// match: a cookie becomes a regular expression on the `Cookie` header).
pub fn check_rules(rules: &[EngineRule]) -> Result<(), String> {
    // Each becomes a rule of the route (per rule it splits), and a route
    // holds 16 rules, one of them at least its own.
    if rules.len() > MAX_RULES - 1 {
        return Err(format!(
            "{} match rules (user ids and countries count one each): an HTTPRoute holds {MAX_RULES} rules, its own among them",
            rules.len()
        ));
    }
    for r in rules {
        match (&r.source, &r.pattern) {
            (RuleSource::Header(h), _)
                if h.is_empty()
                    || h.len() > 256
                    || !h
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)) =>
            {
                return Err(format!(
                    "header {h:?}: not a header name the Gateway API takes"
                ));
            }
            (RuleSource::Cookie(c), _)
                if c.is_empty()
                    || !c
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) =>
            {
                return Err(format!(
                    "cookie {c:?}: a cookie name of letters, digits and '_-.'"
                ));
            }
            (RuleSource::Cookie(c), Pattern::Regex(_)) => {
                return Err(format!(
                    "cookie {c:?}: the Gateway API has no cookie match, so cookie rules take exact values (equals)"
                ));
            }
            _ => {}
        }
        let (Pattern::Exact(v) | Pattern::Regex(v)) = &r.pattern;
        if v.is_empty() || v.len() > 1024 || v.chars().any(char::is_control) {
            return Err(format!(
                "{v:?}: 1 to 1024 characters, none a control character"
            ));
        }
    }
    Ok(())
}

/// The `HTTPHeaderMatch` of a rule.
fn header_match(r: &EngineRule) -> Value {
    match (&r.source, &r.pattern) {
        (RuleSource::Header(h), Pattern::Exact(v)) => {
            serde_json::json!({"type": "Exact", "name": h, "value": v})
        }
        // Written to mean the same whether the implementation matches the
        // whole value (Envoy's `safe_regex`) or any part of it: anchored, and
        // open at both ends where the rule is (Serin's rules are unanchored).
        (RuleSource::Header(h), Pattern::Regex(re)) => serde_json::json!({
            "type": "RegularExpression",
            "name": h,
            "value": format!("^.*(?:{re}).*$"),
        }),
        (RuleSource::Cookie(c), Pattern::Exact(v) | Pattern::Regex(v)) => serde_json::json!({
            "type": "RegularExpression",
            "name": "Cookie",
            "value": format!("^(?:.*;\\s*)?{}={}(?:;.*)?$", regex::escape(c), regex::escape(v)),
        }),
    }
}

/// The route rules for `rules` on the rules that split `target`: for each of
/// the deployment's rules in order, and each split rule, a copy of the split
/// rule (its filters and timeouts too) whose every match also needs the
/// rule's header, sending to the rule's lane alone. A match with one more
/// header wins over the split rule's by the Gateway API's precedence, and
/// among Serin's rules the first listed wins, as the first rule does
/// through Serin's proxy.
pub fn lane_rules(
    route: &Value,
    target: &EngineTarget,
    namespace: &str,
    rules: &[EngineRule],
) -> Result<Vec<Value>, String> {
    let base = split_rules(route, target, namespace)?;
    let mut out = Vec::new();
    for (ri, r) in rules.iter().enumerate() {
        let lane = match r.lane {
            serin_core::Lane::Stable => &target.stable,
            serin_core::Lane::Canary => &target.canary,
        };
        for &bi in &base {
            let mut rule = route
                .pointer(&format!("/spec/rules/{bi}"))
                .cloned()
                .ok_or("a rule went missing")?;
            let matches = rule
                .get("matches")
                .and_then(Value::as_array)
                .filter(|m| !m.is_empty())
                .cloned()
                .unwrap_or_else(|| {
                    vec![serde_json::json!({"path": {"type": "PathPrefix", "value": "/"}})]
                });
            let matches: Vec<Value> = matches
                .into_iter()
                .map(|mut m| {
                    let mut headers = m
                        .get("headers")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    headers.push(header_match(r));
                    m["headers"] = Value::from(headers);
                    m
                })
                .collect();
            let refs: Vec<Value> = rule
                .get("backendRefs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|b| {
                    b.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| lane.iter().any(|s| s == n))
                })
                .map(|b| {
                    let mut b = b.clone();
                    b["weight"] = Value::from(1);
                    b
                })
                .collect();
            // A request a rule sends to one lane isn't mirrored to the canary.
            if let Some(f) = rule.get_mut("filters").and_then(Value::as_array_mut) {
                f.retain(|f| !is_our_mirror(f, target));
                if f.is_empty() {
                    rule.as_object_mut().map(|o| o.remove("filters"));
                }
            }
            rule["name"] = Value::from(format!("{RULE_PREFIX}{ri}-{bi}"));
            rule["matches"] = Value::from(matches);
            rule["backendRefs"] = Value::from(refs);
            out.push(rule);
        }
    }
    Ok(out)
}

/// The rules Serin wrote for match rules, in the route's order.
fn serins(route: &Value) -> Vec<Value> {
    route
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| is_serins(r))
        .cloned()
        .collect()
}

/// Whether a filter is the mirror Serin writes for `target` (a
/// `RequestMirror` to one of its canary Services).
fn is_our_mirror(f: &Value, target: &EngineTarget) -> bool {
    f.get("type").and_then(Value::as_str) == Some("RequestMirror")
        && f.pointer("/requestMirror/backendRef/name")
            .and_then(Value::as_str)
            .is_some_and(|n| target.canary.iter().any(|c| c == n))
}

/// Sets, in each rule that splits `target`, the mirror to the canary and the
/// session persistence the deployment asks for while it is live, and takes
/// them out once it is final (only Serin's: a mirror elsewhere, or a session
/// cookie of another name, is the operator's). Whether anything changed.
fn set_extras(
    route: &mut Value,
    target: &EngineTarget,
    namespace: &str,
    state: &RouteState,
) -> Result<bool, String> {
    let live = state.live;
    // The plan's latest mirror step, else the target's own share.
    let mirror = Some(state.mirror_percent)
        .filter(|p| *p > 0)
        .or(target.mirror_percent);
    let mut changed = false;
    for i in split_rules(route, target, namespace)? {
        let rule = route
            .pointer_mut(&format!("/spec/rules/{i}"))
            .ok_or("a rule went missing")?;
        // The canary's first Service, at the port the rule sends it to.
        let canary_ref = rule
            .get("backendRefs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|b| {
                b.get("name").and_then(Value::as_str) == target.canary.first().map(String::as_str)
            })
            .cloned();
        let mut filters: Vec<Value> = rule
            .get("filters")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let before = filters.clone();
        filters.retain(|f| !is_our_mirror(f, target));
        if let (true, Some(p), Some(c)) = (live, mirror, canary_ref) {
            let mut backend = serde_json::json!({"name": c["name"]});
            for k in ["group", "kind", "namespace", "port"] {
                if let Some(v) = c.get(k) {
                    backend[k] = v.clone();
                }
            }
            filters.push(serde_json::json!({
                "type": "RequestMirror",
                "requestMirror": {"backendRef": backend, "percent": p},
            }));
        }
        if filters != before {
            if filters.is_empty() {
                rule.as_object_mut().map(|o| o.remove("filters"));
            } else {
                rule["filters"] = Value::from(filters);
            }
            changed = true;
        }
        if let Some(s) = &target.session_persistence {
            let ours = rule
                .pointer("/sessionPersistence/sessionName")
                .and_then(Value::as_str)
                == Some(s.cookie.as_str());
            if live {
                let mut want = serde_json::json!({"sessionName": s.cookie, "type": "Cookie"});
                if let Some(t) = s.absolute_timeout {
                    want["absoluteTimeout"] = Value::from(gateway_duration(t.to_std()));
                }
                if rule.get("sessionPersistence") != Some(&want) {
                    rule["sessionPersistence"] = want;
                    changed = true;
                }
            } else if ours {
                rule.as_object_mut().map(|o| o.remove("sessionPersistence"));
                changed = true;
            }
        }
    }
    Ok(changed)
}

/// A duration as the Gateway API spells it (`^([0-9]{1,5}(h|m|s|ms)){1,4}$`):
/// whole hours, minutes and seconds.
fn gateway_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out += &format!("{}h", h.min(99_999));
    }
    if m > 0 {
        out += &format!("{m}m");
    }
    if sec > 0 || out.is_empty() {
        out += &format!("{sec}s");
    }
    out
}

/// Whether anything but the weights differs from what `state` wants: the
/// match rules, the mirror, the session persistence.
pub fn extras_differ(
    route: &Value,
    target: &EngineTarget,
    namespace: &str,
    state: &RouteState,
) -> Result<bool, String> {
    let mut copy = route.clone();
    let rules = serins(route) != lane_rules(route, target, namespace, &state.rules)?;
    Ok(rules || set_extras(&mut copy, target, namespace, state)?)
}

/// Puts `state` in `route`: the weights of the rules that split `target`,
/// their mirror and session persistence, and Serin's rules for the match
/// rules after the route's own (the old ones replaced). Whether anything
/// changed.
pub fn set_state(
    route: &mut Value,
    target: &EngineTarget,
    namespace: &str,
    state: &RouteState,
) -> Result<bool, String> {
    let mut changed = set_weights(route, target, namespace, state.percent)?;
    changed |= set_extras(route, target, namespace, state)?;
    let want = lane_rules(route, target, namespace, &state.rules)?;
    if serins(route) != want {
        let rules = route
            .pointer_mut("/spec/rules")
            .and_then(Value::as_array_mut)
            .ok_or("it has no rules")?;
        rules.retain(|r| !is_serins(r));
        rules.extend(want);
        if rules.len() > MAX_RULES {
            return Err(format!(
                "with the deployment's match rules it would hold {} rules; an HTTPRoute holds at most {MAX_RULES}",
                rules.len()
            ));
        }
        changed = true;
    }
    Ok(changed)
}

/// Sets the weights of `target`'s backendRefs in the rules it splits;
/// whether anything changed.
pub fn set_weights(
    route: &mut Value,
    target: &EngineTarget,
    namespace: &str,
    percent: u8,
) -> Result<bool, String> {
    let rules = split_rules(route, target, namespace)?;
    let (ws, wc) = target.weights(percent);
    let mut changed = false;
    for i in rules {
        let refs = route
            .pointer_mut(&format!("/spec/rules/{i}/backendRefs"))
            .and_then(Value::as_array_mut)
            .ok_or("a rule lost its backendRefs")?;
        for r in refs {
            let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
            let w = if target.stable.iter().any(|s| s == name) {
                ws
            } else {
                wc
            };
            if r.get("weight").and_then(Value::as_u64) != Some(u64::from(w)) {
                r["weight"] = Value::from(w);
                changed = true;
            }
        }
    }
    Ok(changed)
}

/// The canary share the rules `target` splits give it (a ref without a
/// weight weighs 1, as the Gateway API says); the rules must agree.
pub fn share_in_spec(
    route: &Value,
    target: &EngineTarget,
    namespace: &str,
) -> Result<Option<u8>, String> {
    let mut shares = std::collections::BTreeSet::new();
    for i in split_rules(route, target, namespace)? {
        let (mut stable, mut canary) = (0u32, 0u32);
        for r in route
            .pointer(&format!("/spec/rules/{i}/backendRefs"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
            let w = r.get("weight").and_then(Value::as_u64).unwrap_or(1) as u32;
            if target.stable.iter().any(|s| s == name) {
                stable += w;
            } else {
                canary += w;
            }
        }
        shares.insert(share(stable, canary));
    }
    match shares.len() {
        1 => Ok(shares.into_iter().next().flatten()),
        _ => Err("the rules it splits give different shares".into()),
    }
}

/// Why the route's parents haven't all taken generation `generation` yet
/// (`None`: they have).
pub fn not_yet_accepted(route: &Value, generation: i64) -> Option<String> {
    let parents = route
        .pointer("/status/parents")
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty());
    let Some(parents) = parents else {
        return Some("no gateway lists it in its status yet".into());
    };
    // Every parent the spec names must have reported.
    for want in route
        .pointer("/spec/parentRefs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = want.get("name").and_then(Value::as_str).unwrap_or("?");
        if !parents
            .iter()
            .any(|p| p.pointer("/parentRef/name").and_then(Value::as_str) == Some(name))
        {
            return Some(format!("gateway {name} hasn't reported on it yet"));
        }
    }
    for p in parents {
        let gateway = p
            .pointer("/parentRef/name")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let conditions: BTreeMap<&str, &Value> = p
            .get("conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| Some((c.get("type")?.as_str()?, c)))
            .collect();
        for kind in ["Accepted", "ResolvedRefs"] {
            let Some(c) = conditions.get(kind) else {
                if kind == "Accepted" {
                    return Some(format!("gateway {gateway} has no Accepted condition"));
                }
                continue;
            };
            let status = c.get("status").and_then(Value::as_str).unwrap_or("Unknown");
            let seen = c
                .get("observedGeneration")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if seen < generation {
                return Some(format!(
                    "gateway {gateway} has seen generation {seen} of {generation}"
                ));
            }
            if status != "True" {
                let reason = c.get("reason").and_then(Value::as_str).unwrap_or("");
                let message = c.get("message").and_then(Value::as_str).unwrap_or("");
                return Some(format!(
                    "gateway {gateway}: {kind} is {status} ({reason}{}{message})",
                    if message.is_empty() { "" } else { ": " }
                ));
            }
        }
    }
    None
}

impl TrafficEngine for GatewayApi {
    fn allows(&self, backend: &str) -> bool {
        self.routes
            .as_ref()
            .is_none_or(|r| r.iter().any(|x| x == backend))
    }

    fn counters<'a>(
        &'a self,
        target: &'a EngineTarget,
    ) -> BoxFuture<'a, Result<Option<[super::Counters; 2]>, EngineError>> {
        async move {
            let Some((p, queries)) = &self.lane_queries else {
                return Ok(None);
            };
            let at = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
            let mut read = Vec::new();
            for servers in [&target.stable, &target.canary] {
                let [requests, errors] = queries.for_lane(servers);
                let latency = queries.latency_for_lane(servers);
                let (r, e, l) =
                    tokio::join!(p.vector(&requests, at), p.vector(&errors, at), async {
                        match &latency {
                            Some(q) => p.vector(q, at).await.map(Some),
                            None => Ok(None),
                        }
                    });
                read.push((
                    r.map_err(|e| self.unreachable(e))?,
                    e.map_err(|e| self.unreachable(e))?,
                    l.map_err(|e| self.unreachable(e))?,
                ));
            }
            if let Some(lane) = read.iter().position(|(r, _, _)| r.is_empty()) {
                return Err(self.refused(format!(
                    "the requests query of lane {} has no series yet",
                    if lane == 0 { "stable" } else { "canary" }
                )));
            }
            let unit_us = queries.latency_unit_us();
            let mut growth = self.growth.lock().expect("growth lock");
            let mut lanes: [super::Counters; 2] = Default::default();
            for (lane, (r, e, l)) in read.iter().enumerate() {
                let mut grown = |series: String, samples: &[crate::prometheus::Sample]| {
                    let g = growth
                        .entry((target.backend.clone(), lane, series))
                        .or_default()
                        .fold(samples);
                    g.round() as u64
                };
                lanes[lane].requests = grown("requests".into(), r);
                // No errors yet is no series at all for many exporters.
                lanes[lane].errors_5xx = grown("errors".into(), e);
                // Each bucket bound's series grow on their own (one per pod).
                let mut by_bound: BTreeMap<u64, Vec<crate::prometheus::Sample>> = BTreeMap::new();
                for s in l.iter().flatten() {
                    let Some(le) = s.labels.get("le").and_then(|le| le.parse::<f64>().ok()) else {
                        continue;
                    };
                    let us = if le.is_infinite() {
                        u64::MAX
                    } else {
                        (le * unit_us).round().max(0.0) as u64
                    };
                    by_bound.entry(us).or_default().push(s.clone());
                }
                for (us, samples) in by_bound {
                    let n = grown(format!("le={us}"), &samples);
                    lanes[lane].latency.0.insert(us, n);
                }
            }
            Ok(Some(lanes))
        }
        .boxed()
    }

    fn check_rules(&self, rules: &[EngineRule]) -> Result<(), String> {
        check_rules(rules)
    }

    fn check_target(&self, _: &EngineTarget) -> Result<(), (&'static str, String)> {
        // Mirroring and session persistence are HTTPRoute fields.
        Ok(())
    }

    fn apply<'a>(
        &'a self,
        target: &'a EngineTarget,
        state: &'a RouteState,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        async move {
            check_rules(&state.rules).map_err(|why| self.refused(why))?;
            let (api, mut obj) = self.get(&target.backend).await?;
            let original = obj.data.clone();
            let changed = set_state(&mut obj.data, target, &self.namespace, state)
                .map_err(|why| self.refused(format!("HTTPRoute {}: {why}", target.backend)))?;
            if !changed {
                return Ok(());
            }
            // Replaced at the resourceVersion it was read at: someone else's
            // edit meanwhile is a 409, never overwritten.
            let written = self.replace(&api, &target.backend, &obj).await?;
            // A cluster whose HTTPRoute schema predates a field Serin wrote
            // (rule names before Gateway API v1.4's standard channel, a
            // mirror's percent) drops it without an error: then put back
            // what was there and say so, rather than leave rules Serin can't
            // recognise or a mirror of every request.
            if extras_differ(&written.data, target, &self.namespace, state).unwrap_or(true) {
                let mut back = written.clone();
                back.data = original;
                let _ = self.replace(&api, &target.backend, &back).await;
                return Err(self.refused(format!(
                    "HTTPRoute {}: the API server dropped fields Serin wrote (rule names, a mirror's percent): this cluster's Gateway API CRDs are older than v1.4 (standard channel); match rules and mirroring need v1.4 or the experimental channel",
                    target.backend
                )));
            }
            Ok(())
        }
        .boxed()
    }

    fn read_back<'a>(
        &'a self,
        target: &'a EngineTarget,
        want: &'a RouteState,
    ) -> BoxFuture<'a, Result<InEffect, EngineError>> {
        async move {
            let (_, obj) = self.get(&target.backend).await?;
            let refused = |why| self.refused(format!("HTTPRoute {}: {why}", target.backend));
            let share = share_in_spec(&obj.data, target, &self.namespace).map_err(refused)?;
            let rules_differ = extras_differ(&obj.data, target, &self.namespace, want)
                .map_err(refused)?
                .then(|| {
                    format!(
                        "HTTPRoute {} holds other match rules, mirror or session persistence than the deployment's",
                        target.backend
                    )
                });
            let generation = obj.metadata.generation.unwrap_or(0);
            if let Some(why) = not_yet_accepted(&obj.data, generation) {
                return Err(self.refused(format!(
                    "HTTPRoute {} not in effect yet: {why}",
                    target.backend
                )));
            }
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
    use serde_json::json;

    fn target() -> EngineTarget {
        EngineTarget {
            engine: "gw".into(),
            backend: "web".into(),
            stable: vec!["web-stable".into()],
            canary: vec!["web-canary".into()],
            confirm_within: None,
            mirror_percent: None,
            session_persistence: None,
        }
    }

    fn route(generation_seen: i64, accepted: &str) -> Value {
        json!({
            "spec": {"rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                 "backendRefs": [{"name": "web-stable", "port": 80, "weight": 100},
                                 {"name": "web-canary", "port": 80, "weight": 0}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
                 "backendRefs": [{"name": "admin", "port": 80}]}],
                "parentRefs": [{"name": "edge"}]},
            "status": {"parents": [{"parentRef": {"name": "edge"}, "controllerName": "x",
                "conditions": [
                    {"type": "Accepted", "status": accepted, "observedGeneration": generation_seen,
                     "reason": "Accepted", "message": ""},
                    {"type": "ResolvedRefs", "status": "True", "observedGeneration": generation_seen}]}]}
        })
    }

    #[test]
    fn weights_are_set_in_the_rules_the_deployment_splits() {
        let mut r = route(1, "True");
        assert_eq!(set_weights(&mut r, &target(), "prod", 20), Ok(true));
        let refs = &r["spec"]["rules"][0]["backendRefs"];
        assert_eq!(
            (refs[0]["weight"].clone(), refs[1]["weight"].clone()),
            (json!(4), json!(1))
        );
        assert_eq!(share_in_spec(&r, &target(), "prod"), Ok(Some(20)));
        assert_eq!(set_weights(&mut r, &target(), "prod", 20), Ok(false));
        // A rule that also sends elsewhere, or names only one lane, is refused.
        let mut other = r.clone();
        other["spec"]["rules"][0]["backendRefs"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "other", "port": 80}));
        assert!(
            set_weights(&mut other, &target(), "prod", 50)
                .unwrap_err()
                .contains("other backends")
        );
        let mut half = r.clone();
        half["spec"]["rules"]
            .as_array_mut()
            .unwrap()
            .push(json!({"backendRefs": [{"name": "web-stable", "port": 80}]}));
        assert!(
            share_in_spec(&half, &target(), "prod")
                .unwrap_err()
                .contains("rule 2 names 1")
        );
        // A Service of another namespace, or another kind, isn't the deployment's.
        let mut far = r.clone();
        far["spec"]["rules"][0]["backendRefs"][1]["namespace"] = json!("elsewhere");
        assert!(set_weights(&mut far, &target(), "prod", 50).is_err());
        assert!(share_in_spec(&json!({"spec": {"rules": []}}), &target(), "prod").is_err());
    }

    #[test]
    fn a_plans_mirror_step_sets_the_request_mirror() {
        let mut r = route(1, "True");
        let mut state = RouteState::share_only(0);
        state.mirror_percent = 30;
        assert_eq!(set_state(&mut r, &target(), "prod", &state), Ok(true));
        let mirror = &r["spec"]["rules"][0]["filters"][0];
        assert_eq!(
            mirror,
            &json!({"type": "RequestMirror",
                    "requestMirror": {"backendRef": {"name": "web-canary", "port": 80}, "percent": 30}})
        );
        assert_eq!(extras_differ(&r, &target(), "prod", &state), Ok(false));
        // The step's share takes the place of the target's own.
        let mut own = target();
        own.mirror_percent = Some(5);
        assert_eq!(extras_differ(&r, &own, "prod", &state), Ok(false));
        state.mirror_percent = 0;
        assert_eq!(extras_differ(&r, &own, "prod", &state), Ok(true));
        assert_eq!(set_state(&mut r, &own, "prod", &state), Ok(true));
        assert_eq!(
            r["spec"]["rules"][0]["filters"][0]["requestMirror"]["percent"],
            5
        );
        // Once final, no mirror.
        state.live = false;
        assert_eq!(set_state(&mut r, &own, "prod", &state), Ok(true));
        assert!(r["spec"]["rules"][0].get("filters").is_none(), "{r}");
    }

    #[test]
    fn rule_regexes_mean_the_same_matched_whole_or_in_part() {
        let rule = |source, pattern| EngineRule {
            source,
            pattern,
            lane: serin_core::Lane::Canary,
        };
        let cookie = header_match(&rule(
            RuleSource::Cookie("tier".into()),
            Pattern::Exact("gold".into()),
        ));
        let re = regex::Regex::new(cookie["value"].as_str().unwrap()).unwrap();
        // Anchored at both ends, so a whole-value match (Envoy) and a partial
        // one agree.
        for (header, hit) in [
            ("tier=gold", true),
            ("a=1; tier=gold", true),
            ("a=1; tier=gold; b=2", true),
            ("xtier=gold", false),
            ("tier=golden", false),
            ("a=tier=gold", false),
        ] {
            assert_eq!(re.is_match(header), hit, "{header}");
        }
        let header = header_match(&rule(
            RuleSource::Header("x-region".into()),
            Pattern::Regex("^eu-".into()),
        ));
        let re = regex::Regex::new(header["value"].as_str().unwrap()).unwrap();
        assert!(re.is_match("eu-west") && !re.is_match("us-eu-1"));
        let many: Vec<EngineRule> = (0..16)
            .map(|i| {
                rule(
                    RuleSource::Header("x".into()),
                    Pattern::Exact(i.to_string()),
                )
            })
            .collect();
        assert!(check_rules(&many).unwrap_err().contains("16 rules"));
    }

    #[test]
    fn in_effect_only_once_every_parent_took_the_generation() {
        assert_eq!(not_yet_accepted(&route(2, "True"), 2), None);
        assert!(
            not_yet_accepted(&route(1, "True"), 2)
                .unwrap()
                .contains("generation 1 of 2")
        );
        let why = not_yet_accepted(&route(2, "False"), 2).unwrap();
        assert!(why.contains("Accepted is False"), "{why}");
        assert!(not_yet_accepted(&json!({"status": {"parents": []}}), 1).is_some());
    }

    #[test]
    fn specs() {
        let g =
            GatewayApi::parse("gw", "http://127.0.0.1:8001?namespace=prod&routes=web+api").unwrap();
        assert!(g.allows("web") && !g.allows("other"));
        assert_eq!(g.source, Source::Url("http://127.0.0.1:8001".into()));
        assert!(GatewayApi::parse("gw", "in-cluster?namespace=Prod").is_err());
        assert!(GatewayApi::parse("gw", "in-cluster").is_err());
        assert!(GatewayApi::parse("gw", "ftp://x?namespace=a").is_err());
        let k = GatewayApi::parse("gw", "kubeconfig:/etc/k.yaml?namespace=a").unwrap();
        assert_eq!(k.source, Source::Kubeconfig(Some("/etc/k.yaml".into())));
    }
}
