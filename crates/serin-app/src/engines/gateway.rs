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
//! an edit made meanwhile by someone else is never overwritten: the API
//! server answers 409, and the next tick reads the route again. Only the
//! weights of the `backendRefs` naming the deployment's Services change; the
//! rest of the route (matches, filters, other backends) is left as it was.
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
use serin_core::traffic::engine::{EngineTarget, share};

use super::{EngineError, TrafficEngine};

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
    /// Where deployments' lane queries (`engine.metrics`) are asked.
    prometheus: Option<crate::prometheus::Prometheus>,
    client: tokio::sync::OnceCell<kube::Client>,
}

impl std::fmt::Debug for GatewayApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayApi")
            .field("name", &self.name)
            .field("source", &self.source)
            .field("namespace", &self.namespace)
            .field("routes", &self.routes)
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
    /// followed by `?namespace=NS[&routes=a+b][&prometheus=URL]`.
    pub fn parse(name: &str, spec: &str) -> Result<Self, String> {
        let usage = "gateway-api needs in-cluster|kubeconfig[:PATH]|URL?namespace=NS[&routes=a+b][&prometheus=URL]";
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
        let (mut namespace, mut routes, mut prometheus) = (None, None, None);
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("namespace", ns)) if is_dns_label(ns) => namespace = Some(ns.to_string()),
                Some(("routes", list)) => routes = Some(super::backends_of(list)?),
                Some(("prometheus", url)) => {
                    prometheus = Some(crate::prometheus::Prometheus::new(url)?);
                }
                _ => return Err(format!("{pair}: {usage}")),
            }
        }
        Ok(GatewayApi {
            name: name.to_string(),
            source,
            namespace: namespace.ok_or_else(|| format!("{usage} (namespace is required)"))?,
            routes,
            prometheus,
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
        let obj = api.get(route).await.map_err(|e| match &e {
            kube::Error::Api(s) if s.code == 404 => self.refused(format!(
                "no HTTPRoute {route} in namespace {}",
                self.namespace
            )),
            _ => self.unreachable(e),
        })?;
        Ok((api, obj))
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

/// Sets the weights of `target`'s backendRefs in `route`'s rules; how many
/// refs it set and whether anything changed.
pub fn set_weights(route: &mut Value, target: &EngineTarget, percent: u8) -> (usize, bool) {
    let (ws, wc) = target.weights(percent);
    let (mut found, mut changed) = (0, false);
    let Some(rules) = route
        .pointer_mut("/spec/rules")
        .and_then(Value::as_array_mut)
    else {
        return (0, false);
    };
    for rule in rules {
        let Some(refs) = rule.get_mut("backendRefs").and_then(Value::as_array_mut) else {
            continue;
        };
        for r in refs {
            let Some(name) = r.get("name").and_then(Value::as_str) else {
                continue;
            };
            let w = if target.stable.iter().any(|s| s == name) {
                ws
            } else if target.canary.iter().any(|s| s == name) {
                wc
            } else {
                continue;
            };
            found += 1;
            if r.get("weight").and_then(Value::as_u64) != Some(u64::from(w)) {
                r["weight"] = Value::from(w);
                changed = true;
            }
        }
    }
    (found, changed)
}

/// The canary share `route`'s spec gives `target`'s Services (a ref without
/// a weight weighs 1, as the Gateway API says).
pub fn share_in_spec(route: &Value, target: &EngineTarget) -> Option<Option<u8>> {
    let (mut stable, mut canary, mut found) = (0u32, 0u32, 0);
    for rule in route.pointer("/spec/rules")?.as_array()? {
        for r in rule
            .get("backendRefs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
            let w = r.get("weight").and_then(Value::as_u64).unwrap_or(1) as u32;
            if target.stable.iter().any(|s| s == name) {
                stable += w;
                found += 1;
            } else if target.canary.iter().any(|s| s == name) {
                canary += w;
                found += 1;
            }
        }
    }
    (found > 0).then(|| share(stable, canary))
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

    fn reads_lane_queries(&self) -> bool {
        self.prometheus.is_some()
    }

    fn counters<'a>(
        &'a self,
        target: &'a EngineTarget,
    ) -> BoxFuture<'a, Result<Option<[super::Counters; 2]>, EngineError>> {
        async move {
            let (Some(p), Some(queries)) = (&self.prometheus, &target.metrics) else {
                return Ok(None);
            };
            let at = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
            let mut lanes = [super::Counters::default(); 2];
            for (lane, servers) in [&target.stable, &target.canary].into_iter().enumerate() {
                let [requests, errors] = queries.for_lane(servers);
                let (r, e) = tokio::join!(p.vector(&requests, at), p.vector(&errors, at));
                let sum = |v: Vec<crate::prometheus::Sample>| {
                    v.iter()
                        .filter(|s| s.value.is_finite() && s.value > 0.0)
                        .map(|s| s.value.round() as u64)
                        .sum::<u64>()
                };
                let r = r.map_err(|e| self.unreachable(e))?;
                if r.is_empty() {
                    return Err(self.refused(format!(
                        "the requests query of lane {} has no series yet",
                        if lane == 0 { "stable" } else { "canary" }
                    )));
                }
                lanes[lane].requests = sum(r);
                // No errors yet is no series at all for many exporters.
                lanes[lane].errors_5xx = sum(e.map_err(|e| self.unreachable(e))?);
            }
            Ok(Some(lanes))
        }
        .boxed()
    }

    fn apply<'a>(
        &'a self,
        target: &'a EngineTarget,
        percent: u8,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        async move {
            let (api, mut obj) = self.get(&target.backend).await?;
            let (found, changed) = set_weights(&mut obj.data, target, percent);
            if found < target.stable.len() + target.canary.len() {
                return Err(self.refused(format!(
                    "HTTPRoute {} names {found} of the deployment's {} Services in its backendRefs",
                    target.backend,
                    target.stable.len() + target.canary.len()
                )));
            }
            if !changed {
                return Ok(());
            }
            // Replaced at the resourceVersion it was read at: someone else's
            // edit meanwhile is a 409, never overwritten.
            api.replace(&target.backend, &PostParams::default(), &obj)
                .await
                .map_err(|e| match &e {
                    kube::Error::Api(s) if s.code == 409 => self.refused(format!(
                        "HTTPRoute {} changed while Serin wrote it; read again next tick",
                        target.backend
                    )),
                    _ => self.unreachable(e),
                })?;
            Ok(())
        }
        .boxed()
    }

    fn read_back<'a>(
        &'a self,
        target: &'a EngineTarget,
    ) -> BoxFuture<'a, Result<Option<u8>, EngineError>> {
        async move {
            let (_, obj) = self.get(&target.backend).await?;
            let share = share_in_spec(&obj.data, target).ok_or_else(|| {
                self.refused(format!(
                    "HTTPRoute {} has no backendRef naming the deployment's Services",
                    target.backend
                ))
            })?;
            let generation = obj.metadata.generation.unwrap_or(0);
            if let Some(why) = not_yet_accepted(&obj.data, generation) {
                return Err(self.refused(format!(
                    "HTTPRoute {} not in effect yet: {why}",
                    target.backend
                )));
            }
            Ok(share)
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
            metrics: None,
        }
    }

    fn route(generation_seen: i64, accepted: &str) -> Value {
        json!({
            "spec": {"rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                 "backendRefs": [{"name": "web-stable", "port": 80, "weight": 100},
                                 {"name": "web-canary", "port": 80, "weight": 0},
                                 {"name": "other", "port": 80}]}]},
            "status": {"parents": [{"parentRef": {"name": "edge"}, "controllerName": "x",
                "conditions": [
                    {"type": "Accepted", "status": accepted, "observedGeneration": generation_seen,
                     "reason": "Accepted", "message": ""},
                    {"type": "ResolvedRefs", "status": "True", "observedGeneration": generation_seen}]}]}
        })
    }

    #[test]
    fn weights_are_set_on_the_deployments_services_alone() {
        let mut r = route(1, "True");
        let (found, changed) = set_weights(&mut r, &target(), 20);
        assert_eq!((found, changed), (2, true));
        let refs = &r["spec"]["rules"][0]["backendRefs"];
        assert_eq!(refs[2], json!({"name": "other", "port": 80}), "left alone");
        assert_eq!(share_in_spec(&r, &target()), Some(Some(20)));
        assert_eq!(set_weights(&mut r, &target(), 20), (2, false));
        assert_eq!(
            share_in_spec(&json!({"spec": {"rules": []}}), &target()),
            None
        );
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
