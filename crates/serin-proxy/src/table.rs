//! The route table: a [`RouteSet`] compiled for the hot path.
//!
//! Compiling does everything that doesn't depend on the request once: regular
//! expressions, the hash salt, endpoint URIs, the lane stats handles. A table is
//! immutable; an update builds a new one and swaps it in, and a request keeps the
//! table it started with until it finishes.
//!
//! Matching: routes with a host come before routes without, then longer path
//! prefixes before shorter ones; the first whose host (exact, any case, port
//! ignored) and path prefix both match serves the request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::uri::{Authority, Scheme};
use serin_core::Lane;
use serin_core::duration::GoDuration;
use serin_core::traffic::proxy::{BucketLane, ProxyRoute, RouteSet};
use serin_core::traffic::{Balance, LaneChooser, UpstreamProtocol};

use crate::stats::{LaneStats, Registry};

/// One endpoint of a lane.
#[derive(Debug)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// `host:port`.
    pub authority: Authority,
    /// `host:port` as the `Host` header sent to it.
    pub host_header: http::HeaderValue,
    /// Requests in flight to it.
    pub in_flight: AtomicUsize,
}

/// A lane's endpoints and how they share requests.
#[derive(Debug)]
pub struct Pool {
    endpoints: Vec<Endpoint>,
    next: AtomicUsize,
    balance: Balance,
}

impl Pool {
    fn new(urls: &[String], balance: Balance) -> Result<Pool, String> {
        let endpoints = urls
            .iter()
            .map(|u| {
                let uri: http::Uri = u.parse().map_err(|e| format!("`{u}`: {e}"))?;
                let authority = uri
                    .authority()
                    .cloned()
                    .ok_or_else(|| format!("`{u}` has no host"))?;
                Ok(Endpoint {
                    scheme: uri.scheme().cloned().unwrap_or(Scheme::HTTP),
                    host_header: http::HeaderValue::from_str(authority.as_str())
                        .map_err(|e| format!("`{u}`: {e}"))?,
                    authority,
                    in_flight: AtomicUsize::new(0),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Pool {
            endpoints,
            next: AtomicUsize::new(0),
            balance,
        })
    }

    /// Picks an endpoint (`None`: the lane has none).
    pub fn pick(&self) -> Option<&Endpoint> {
        let n = self.endpoints.len();
        if n <= 1 {
            return self.endpoints.first();
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        match self.balance {
            Balance::RoundRobin => self.endpoints.get(start),
            // Fewest in flight; ties go round robin so load spreads when idle.
            Balance::LeastRequests => (0..n)
                .map(|i| &self.endpoints[(start + i) % n])
                .min_by_key(|e| e.in_flight.load(Ordering::Relaxed)),
        }
    }
}

/// The chooser's header names, parsed once, keyed by the address of the
/// chooser's own strings (which live as long as the route).
#[derive(Debug, Default)]
pub struct ParsedNames(Vec<(usize, usize, http::HeaderName)>);

impl ParsedNames {
    /// Parses every name the chooser may ask for.
    pub fn of(chooser: &LaneChooser) -> Self {
        ParsedNames(
            chooser
                .header_names()
                .into_iter()
                .filter_map(|n| {
                    let parsed = http::HeaderName::from_bytes(n.as_bytes()).ok()?;
                    Some((n.as_ptr() as usize, n.len(), parsed))
                })
                .collect(),
        )
    }

    /// The parsed form of `name`, when it is one of the chooser's own strings.
    pub fn get(&self, name: &str) -> Option<&http::HeaderName> {
        let key = (name.as_ptr() as usize, name.len());
        self.0
            .iter()
            .find(|(p, l, _)| (*p, *l) == key)
            .map(|(_, _, h)| h)
    }
}

/// A compiled route.
#[derive(Debug)]
pub struct CompiledRoute {
    /// The deployment.
    pub deployment_id: Arc<str>,
    /// Its name (`queue_name`).
    pub name: Arc<str>,
    /// Its route as a label (`host/prefix`).
    pub target: Arc<str>,
    /// Host to match (lowercase), if any.
    pub host: Option<String>,
    /// Path prefix to match, if any.
    pub path_prefix: Option<String>,
    /// The canary's share.
    pub percent: u8,
    /// The deployment is live; when final, only the percentage counts (no
    /// overrides, rules or cookies: everything goes to the version that won).
    pub live: bool,
    /// Lane choice.
    pub chooser: LaneChooser,
    /// The chooser's header names, parsed.
    pub names: ParsedNames,
    /// Endpoints of `[stable, canary]`.
    pub pools: [Pool; 2],
    /// Stats of `[stable, canary]`.
    pub stats: [Arc<LaneStats>; 2],
    /// Mirroring: the share of stable's requests copied to the canary, in
    /// hundredths of a percent (out of 10,000), and the `mirror` lane's stats.
    pub mirror: Option<Mirror>,
    /// Response-header timeout.
    pub timeout: Duration,
    /// HTTP/1.1 or h2c.
    pub protocol: UpstreamProtocol,
    /// Affinity cookie lifetime.
    pub affinity_max_age: Option<GoDuration>,
}

impl CompiledRoute {
    /// Index of a lane in `pools` and `stats`.
    pub fn idx(lane: Lane) -> usize {
        usize::from(lane == Lane::Canary)
    }

    fn matches(&self, host: Option<&str>, path: &str) -> bool {
        if let Some(h) = &self.host {
            let Some(req) = host else { return false };
            let req = req.rsplit_once(':').map_or(req, |(h, port)| {
                if port.chars().all(|c| c.is_ascii_digit()) {
                    h
                } else {
                    req
                }
            });
            if !req.eq_ignore_ascii_case(h) {
                return false;
            }
        }
        // A prefix matches whole segments: `/api` serves `/api` and `/api/x`, not `/apiary`.
        self.path_prefix.as_deref().is_none_or(|p| {
            path.strip_prefix(p).is_some_and(|rest| {
                rest.is_empty() || p.ends_with('/') || rest.starts_with(['/', '?'])
            })
        })
    }
}

/// A route's mirroring.
#[derive(Debug)]
pub struct Mirror {
    /// Out of 10,000 of stable's requests, how many are copied.
    pub share: u32,
    /// The `mirror` lane.
    pub stats: Arc<LaneStats>,
}

/// All routes, ready to serve.
#[derive(Debug, Default)]
pub struct Table {
    /// The route set's version.
    pub version: String,
    routes: Vec<CompiledRoute>,
}

impl Table {
    /// Compiles a route set. A route that doesn't compile (which the control plane
    /// prevents) is left out and reported, never taking the others down.
    pub fn compile(set: &RouteSet, registry: &Registry) -> (Table, Vec<String>) {
        let mut problems = Vec::new();
        let mut routes: Vec<CompiledRoute> = set
            .routes
            .iter()
            .filter_map(|r| match compile_route(r, registry) {
                Ok(c) => Some(c),
                Err(e) => {
                    problems.push(format!("{}: {e}", r.deployment_id));
                    None
                }
            })
            .collect();
        routes.sort_by_key(|r| {
            (
                r.host.is_none(),
                std::cmp::Reverse(r.path_prefix.as_ref().map_or(0, String::len)),
            )
        });
        (
            Table {
                version: set.version.clone(),
                routes,
            },
            problems,
        )
    }

    /// The route serving `host` and `path`.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&CompiledRoute> {
        self.routes.iter().find(|r| r.matches(host, path))
    }

    /// How many routes it has.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Each route, for the metrics page (its labels and canary share).
    pub fn routes(&self) -> impl Iterator<Item = &CompiledRoute> {
        self.routes.iter()
    }
}

fn compile_route(r: &ProxyRoute, registry: &Registry) -> Result<CompiledRoute, String> {
    let chooser = r
        .traffic
        .chooser(&r.deployment_id)
        .map_err(|e| e.to_string())?;
    let balance = r.traffic.balance;
    let target = r.route.label();
    Ok(CompiledRoute {
        deployment_id: Arc::from(r.deployment_id.as_str()),
        name: Arc::from(r.name.as_str()),
        target: Arc::from(target.as_str()),
        host: r.route.host.as_ref().map(|h| h.to_ascii_lowercase()),
        path_prefix: r.route.path_prefix.clone(),
        percent: r.percent,
        live: r.status.is_live(),
        names: ParsedNames::of(&chooser),
        chooser,
        pools: [
            Pool::new(&r.upstreams.stable, balance)?,
            Pool::new(&r.upstreams.canary, balance)?,
        ],
        stats: [
            registry.lane_of(&r.deployment_id, BucketLane::Stable, &r.name, &target),
            registry.lane_of(&r.deployment_id, BucketLane::Canary, &r.name, &target),
        ],
        mirror: (r.mirror_percent > 0 && r.status.is_live() && !r.upstreams.canary.is_empty())
            .then(|| Mirror {
                share: u32::from(r.mirror_percent.min(100)) * 100,
                stats: registry.lane_of(&r.deployment_id, BucketLane::Mirror, &r.name, &target),
            }),
        timeout: r.traffic.timeout.to_std(),
        protocol: r.traffic.upstream_protocol,
        affinity_max_age: r.traffic.affinity.as_ref().map(|a| a.max_age),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serin_core::canary::{DeploymentStatus, Route, Upstreams};
    use serin_core::traffic::TrafficRules;

    fn route(id: &str, host: Option<&str>, prefix: Option<&str>) -> ProxyRoute {
        ProxyRoute {
            deployment_id: id.into(),
            name: id.into(),
            tenant_id: None,
            status: DeploymentStatus::Active,
            percent: 10,
            stable_version: "v1".into(),
            canary_version: "v2".into(),
            route: Route {
                host: host.map(str::to_string),
                path_prefix: prefix.map(str::to_string),
            },
            upstreams: Upstreams {
                stable: vec!["http://127.0.0.1:1".into(), "http://127.0.0.1:2".into()],
                canary: vec!["http://127.0.0.1:3".into()],
            },
            traffic: TrafficRules::default(),
            revision: 1,
            mirror_percent: 0,
        }
    }

    #[test]
    fn most_specific_route_wins() {
        let set = RouteSet::new(vec![
            route("any", None, None),
            route("api", None, Some("/api")),
            route("host", Some("Shop.example"), None),
            route("host-api", Some("shop.example"), Some("/api/v2")),
        ]);
        let (t, problems) = Table::compile(&set, &Registry::new(false));
        assert!(problems.is_empty());
        let id = |h: Option<&str>, p: &str| t.find(h, p).map(|r| &*r.deployment_id);
        assert_eq!(id(Some("shop.example:8080"), "/api/v2/x"), Some("host-api"));
        assert_eq!(id(Some("SHOP.example"), "/api/v1"), Some("host"));
        assert_eq!(id(Some("other"), "/api/v1"), Some("api"));
        assert_eq!(id(None, "/"), Some("any"));
        assert_eq!(id(None, "/api"), Some("api"));
        assert_eq!(
            id(None, "/apiary"),
            Some("any"),
            "prefixes match whole segments"
        );
    }

    #[test]
    fn parsed_names_answer_only_for_the_choosers_own_strings() {
        let rules: TrafficRules =
            serde_json::from_str(r#"{"sticky_key": {"header": "X-User-Id"}}"#).unwrap();
        let chooser = rules.chooser("d").unwrap();
        let names = ParsedNames::of(&chooser);
        for n in chooser.header_names() {
            assert_eq!(names.get(n).map(http::HeaderName::as_str), Some(n));
        }
        let copy = String::from("x-canary");
        assert!(
            names.get(&copy).is_none(),
            "an equal string elsewhere takes the slow path"
        );
        // Both paths find the same header.
        let mut h = http::HeaderMap::new();
        h.insert("x-user-id", "u1".parse().unwrap());
        let fast = crate::HeaderView::with_names(&h, &names);
        let slow = crate::HeaderView::new(&h);
        assert_eq!(chooser.choose(&fast, 50, 0), chooser.choose(&slow, 50, 0));
    }

    #[test]
    fn round_robin_and_least_requests() {
        let urls = [
            "http://a:1".to_string(),
            "http://b:1".into(),
            "http://c:1".into(),
        ];
        let p = Pool::new(&urls, Balance::RoundRobin).unwrap();
        let picks: Vec<_> = (0..6)
            .map(|_| p.pick().unwrap().authority.host().to_string())
            .collect();
        assert_eq!(picks, ["a", "b", "c", "a", "b", "c"]);
        let p = Pool::new(&urls, Balance::LeastRequests).unwrap();
        p.endpoints[0].in_flight.store(5, Ordering::Relaxed);
        p.endpoints[2].in_flight.store(1, Ordering::Relaxed);
        for _ in 0..4 {
            assert_eq!(p.pick().unwrap().authority.host(), "b");
        }
        assert!(
            Pool::new(&[], Balance::RoundRobin)
                .unwrap()
                .pick()
                .is_none()
        );
    }
}
