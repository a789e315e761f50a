//! Which lane an HTTP request goes to, and how a deployment's HTTP traffic is set up.
//!
//! The proxy asks one question per request: stable or canary? The answer is a pure
//! function of the request's headers and cookies, the deployment's [`TrafficRules`],
//! its percentage and (only for unkeyed requests) a random number, so it is tested
//! here without sockets and every proxy replica answers the same way.
//!
//! The order, first match wins:
//! 1. **Override header** (`X-Canary: always|never` by default): for testers and
//!    smoke checks. It applies even at 0%, so a canary can be tried before it
//!    takes any traffic.
//! 2. **Affinity cookie** (`serin_lane=<deployment id>.<lane>`): a client that was
//!    once assigned stays in its lane — canary clients stay canary *and* stable
//!    clients stay stable — while the percentage is strictly between 0 and 100. At
//!    0% and 100% cookies are ignored (and none is set). A cookie of another
//!    deployment is ignored, so each canary draws a fresh cohort.
//! 3. **Match rules**, in order: a header value (exact or regex), a cookie value,
//!    a user id in a list (from the user header), a country code (from a header
//!    such as `CF-IPCountry` that the edge sets). A matching rule names its lane;
//!    rules apply at any percentage, so "beta testers see the canary" holds at 0%.
//!    (Once a deployment is final — promoted or rolled back — the proxy ignores
//!    overrides and rules and sends everything to the version that won.)
//! 4. **The percentage**: with a sticky key (a header or a cookie) the key is
//!    hashed into 10,000 buckets exactly as [`crate::routing`] documents, salted
//!    with the deployment id, and is canary when its bucket is below percent × 100;
//!    raising the percentage therefore only moves keys from stable to canary. A
//!    request without the key, or a deployment without one, is split at random.
//!
//! When affinity is on, a request whose lane came from the percentage (or a rule)
//! and that carried no valid cookie gets one, so its next requests stay put.
//!
//! Reading a country from a MaxMind database file is not built: the country comes
//! from a header that the edge (Cloudflare, a CDN, a load balancer) sets.

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::Lane;
use crate::DomainError;
use crate::duration::GoDuration;
use crate::traffic::routing::{bucket_after, in_canary, salt_state};

fn default_override_header() -> String {
    "X-Canary".into()
}
fn default_user_header() -> String {
    "X-User-Id".into()
}
fn default_country_header() -> String {
    "CF-IPCountry".into()
}
fn default_timeout() -> GoDuration {
    GoDuration::from_secs(30)
}
fn default_affinity() -> Option<Affinity> {
    Some(Affinity::default())
}
fn canary() -> Lane {
    Lane::Canary
}

/// How a deployment's HTTP requests are split and sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TrafficRules {
    /// Header that forces a lane: `always` (canary) or `never` (stable).
    #[serde(default = "default_override_header")]
    pub override_header: String,
    /// Session affinity by cookie; `null` turns it off.
    #[serde(default = "default_affinity")]
    pub affinity: Option<Affinity>,
    /// Match rules, tried in order before the percentage.
    #[serde(default)]
    pub rules: Vec<MatchRule>,
    /// Where the user id of `user_id` rules comes from.
    #[serde(default = "default_user_header")]
    pub user_header: String,
    /// Where the country code of `country` rules comes from.
    #[serde(default = "default_country_header")]
    pub country_header: String,
    /// What keeps a client in one lane under the percentage; `null`: random per request.
    #[serde(default)]
    pub sticky_key: Option<StickyKey>,
    /// How a lane's endpoints share its requests.
    #[serde(default)]
    pub balance: Balance,
    /// How the proxy talks to the upstreams.
    #[serde(default)]
    pub upstream_protocol: UpstreamProtocol,
    /// Longest a request may wait for the upstream's response headers.
    #[serde(default = "default_timeout")]
    pub timeout: GoDuration,
}

impl Default for TrafficRules {
    fn default() -> Self {
        TrafficRules {
            override_header: default_override_header(),
            affinity: default_affinity(),
            rules: Vec::new(),
            user_header: default_user_header(),
            country_header: default_country_header(),
            sticky_key: None,
            balance: Balance::default(),
            upstream_protocol: UpstreamProtocol::default(),
            timeout: default_timeout(),
        }
    }
}

/// The affinity cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Affinity {
    /// Cookie name.
    #[serde(default = "Affinity::default_cookie")]
    pub cookie: String,
    /// How long the browser keeps it.
    #[serde(default = "Affinity::default_max_age")]
    pub max_age: GoDuration,
}

impl Affinity {
    fn default_cookie() -> String {
        "serin_lane".into()
    }
    fn default_max_age() -> GoDuration {
        GoDuration::from_hours(24)
    }
}

impl Default for Affinity {
    fn default() -> Self {
        Affinity {
            cookie: Affinity::default_cookie(),
            max_age: Affinity::default_max_age(),
        }
    }
}

/// A rule: when its condition holds, the request goes to its lane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MatchRule {
    /// The condition.
    #[serde(rename = "match")]
    pub condition: Condition,
    /// Where matching requests go (default canary).
    #[serde(default = "canary")]
    pub lane: Lane,
}

/// What a rule looks at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// A header's value.
    Header(ValueMatch),
    /// A cookie's value.
    Cookie(ValueMatch),
    /// The user header's value is one of these.
    UserId(Vec<String>),
    /// The country header's value is one of these ISO 3166 codes (any case).
    Country(Vec<String>),
}

/// A named value compared exactly (`equals`) or by a regular expression (`regex`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ValueMatch {
    /// Header or cookie name.
    pub name: String,
    /// The exact value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    /// A regular expression the value must match (Rust `regex` syntax, unanchored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// The sticky key: one header or one cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StickyKey {
    /// A request header (e.g. `X-User-Id`).
    Header(String),
    /// A cookie (e.g. a session cookie).
    Cookie(String),
}

/// Load balancing between a lane's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Each endpoint in turn.
    #[default]
    RoundRobin,
    /// The endpoint with the fewest requests in flight.
    LeastRequests,
}

/// The protocol spoken to upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive.
    #[default]
    Http1,
    /// HTTP/2 over cleartext, with prior knowledge.
    H2c,
}

/// Why a request went to its lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The override header.
    Override,
    /// The affinity cookie.
    Affinity,
    /// The match rule at this index.
    Rule(usize),
    /// The sticky key's bucket.
    Sticky(u32),
    /// A random draw.
    Random,
    /// The percentage is 0 or 100: everybody goes one way.
    Whole,
}

impl Reason {
    /// A short label (for logs and response headers).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Override => "override",
            Reason::Affinity => "affinity",
            Reason::Rule(_) => "rule",
            Reason::Sticky(_) => "sticky",
            Reason::Random => "random",
            Reason::Whole => "percentage",
        }
    }
}

/// A lane decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// The lane.
    pub lane: Lane,
    /// Why.
    pub reason: Reason,
    /// Whether the response should set the affinity cookie.
    pub set_cookie: bool,
}

/// What the lane choice reads from a request. The proxy implements it over its
/// header map; tests over a list of pairs.
pub trait RequestView {
    /// The first value of a header (name in any case).
    fn header(&self, name: &str) -> Option<&str>;
    /// Every `Cookie` header value.
    fn cookie_headers(&self) -> impl Iterator<Item = &str>;

    /// A cookie's value (the first of that name), read by the `cookie`
    /// crate: pairs it can't read are skipped, a quoted value loses its quotes.
    fn cookie(&self, name: &str) -> Option<&str> {
        self.cookie_headers()
            .flat_map(cookie::Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|c| c.name_raw() == Some(name))
            .and_then(|c| c.value_raw())
            .map(|v| v.trim_matches('"'))
    }
}

#[derive(Debug, Clone)]
enum Compiled {
    Header(String, Matcher),
    Cookie(String, Matcher),
    UserId(Vec<String>),
    Country(Vec<String>),
}

#[derive(Debug, Clone)]
enum Matcher {
    Equals(String),
    Regex(Regex),
}

impl Matcher {
    fn test(&self, v: &str) -> bool {
        match self {
            Matcher::Equals(e) => e == v,
            Matcher::Regex(r) => r.is_match(v),
        }
    }
}

/// [`TrafficRules`] checked and ready to use: regular expressions compiled, the
/// hash salt's state computed once.
#[derive(Debug, Clone)]
pub struct LaneChooser {
    deployment_id: String,
    override_header: String,
    affinity: Option<String>,
    rules: Vec<(Compiled, Lane)>,
    user_header: String,
    country_header: String,
    sticky: Option<StickyKey>,
    salt: u64,
}

fn nonempty(field: &str, v: &str) -> Result<(), DomainError> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if v.is_empty() || !v.chars().all(token) {
        return Err(DomainError::invalid(
            field,
            format!("`{v}` is not a valid header or cookie name"),
        ));
    }
    Ok(())
}

fn compile_value(field: &str, m: &ValueMatch) -> Result<(String, Matcher), DomainError> {
    nonempty(&format!("{field}.name"), &m.name)?;
    let matcher = match (&m.equals, &m.regex) {
        (Some(e), None) => Matcher::Equals(e.clone()),
        (None, Some(r)) => {
            if r.len() > 1000 {
                return Err(DomainError::invalid(
                    format!("{field}.regex"),
                    "must be at most 1000 characters",
                ));
            }
            let re = regex::RegexBuilder::new(r)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| {
                    DomainError::invalid(format!("{field}.regex"), format!("invalid regex: {e}"))
                })?;
            Matcher::Regex(re)
        }
        _ => {
            return Err(DomainError::invalid(
                field,
                "give exactly one of `equals` and `regex`",
            ));
        }
    };
    Ok((m.name.clone(), matcher))
}

impl TrafficRules {
    /// Checks the rules; the error names the field at fault.
    pub fn validate(&self) -> Result<(), DomainError> {
        self.chooser("check").map(|_| ())
    }

    /// The chooser for deployment `deployment_id` (the hash salt).
    pub fn chooser(&self, deployment_id: &str) -> Result<LaneChooser, DomainError> {
        nonempty("traffic.override_header", &self.override_header)?;
        nonempty("traffic.user_header", &self.user_header)?;
        nonempty("traffic.country_header", &self.country_header)?;
        if let Some(a) = &self.affinity {
            nonempty("traffic.affinity.cookie", &a.cookie)?;
        }
        match &self.sticky_key {
            Some(StickyKey::Header(h)) => nonempty("traffic.sticky_key.header", h)?,
            Some(StickyKey::Cookie(c)) => nonempty("traffic.sticky_key.cookie", c)?,
            None => {}
        }
        if self.rules.len() > 100 {
            return Err(DomainError::invalid("traffic.rules", "at most 100 rules"));
        }
        if self.timeout == GoDuration::ZERO || self.timeout > GoDuration::from_hours(1) {
            return Err(DomainError::invalid(
                "traffic.timeout",
                "must be longer than 0s and at most 1h",
            ));
        }
        let mut rules = Vec::with_capacity(self.rules.len());
        for (i, r) in self.rules.iter().enumerate() {
            let field = format!("traffic.rules[{i}].match");
            let c = match &r.condition {
                Condition::Header(m) => {
                    let (n, m) = compile_value(&format!("{field}.header"), m)?;
                    Compiled::Header(n.to_ascii_lowercase(), m)
                }
                Condition::Cookie(m) => {
                    let (n, m) = compile_value(&format!("{field}.cookie"), m)?;
                    Compiled::Cookie(n, m)
                }
                Condition::UserId(ids) if !ids.is_empty() => Compiled::UserId(ids.clone()),
                Condition::Country(codes)
                    if !codes.is_empty()
                        && codes.iter().all(|c| {
                            c.len() == 2 && c.chars().all(|ch| ch.is_ascii_alphabetic())
                        }) =>
                {
                    Compiled::Country(codes.iter().map(|c| c.to_ascii_uppercase()).collect())
                }
                Condition::UserId(_) => {
                    return Err(DomainError::invalid(
                        format!("{field}.user_id"),
                        "list at least one user id",
                    ));
                }
                Condition::Country(_) => {
                    return Err(DomainError::invalid(
                        format!("{field}.country"),
                        "list two-letter ISO 3166 country codes",
                    ));
                }
            };
            rules.push((c, r.lane));
        }
        // Header names are stored lowercase: header maps look them up fastest so.
        Ok(LaneChooser {
            deployment_id: deployment_id.to_string(),
            override_header: self.override_header.to_ascii_lowercase(),
            affinity: self.affinity.as_ref().map(|a| a.cookie.clone()),
            rules,
            user_header: self.user_header.to_ascii_lowercase(),
            country_header: self.country_header.to_ascii_lowercase(),
            sticky: match &self.sticky_key {
                Some(StickyKey::Header(h)) => Some(StickyKey::Header(h.to_ascii_lowercase())),
                other => other.clone(),
            },
            salt: salt_state(deployment_id),
        })
    }
}

impl LaneChooser {
    /// The lane of `req` at `percent`. `random_bucket` (0..10,000) is used only
    /// when the percentage decides and the request has no sticky key.
    pub fn choose(&self, req: &impl RequestView, percent: u8, random_bucket: u32) -> Choice {
        let fixed = |lane, reason| Choice {
            lane,
            reason,
            set_cookie: false,
        };
        if let Some(v) = req.header(&self.override_header) {
            match v.trim().to_ascii_lowercase().as_str() {
                "always" | "canary" | "true" | "1" => return fixed(Lane::Canary, Reason::Override),
                "never" | "stable" | "false" | "0" => return fixed(Lane::Stable, Reason::Override),
                _ => {}
            }
        }
        let whole = percent == 0 || percent >= 100;
        let mut set_cookie = false;
        if let Some(cookie) = self.affinity.as_ref().filter(|_| !whole) {
            match req.cookie(cookie).and_then(|v| self.affinity_lane(v)) {
                Some(lane) => return fixed(lane, Reason::Affinity),
                None => set_cookie = true,
            }
        }
        let decided = |lane, reason| Choice {
            lane,
            reason,
            set_cookie,
        };
        for (i, (rule, lane)) in self.rules.iter().enumerate() {
            let hit = match rule {
                Compiled::Header(name, m) => req.header(name).is_some_and(|v| m.test(v)),
                Compiled::Cookie(name, m) => req.cookie(name).is_some_and(|v| m.test(v)),
                Compiled::UserId(ids) => req
                    .header(&self.user_header)
                    .is_some_and(|u| ids.iter().any(|id| id == u.trim())),
                Compiled::Country(codes) => req
                    .header(&self.country_header)
                    .is_some_and(|c| codes.iter().any(|code| code.eq_ignore_ascii_case(c.trim()))),
            };
            if hit {
                return decided(*lane, Reason::Rule(i));
            }
        }
        if whole {
            let lane = if percent == 0 {
                Lane::Stable
            } else {
                Lane::Canary
            };
            return fixed(lane, Reason::Whole);
        }
        let key = match &self.sticky {
            Some(StickyKey::Header(h)) => req.header(h),
            Some(StickyKey::Cookie(c)) => req.cookie(c),
            None => None,
        }
        .filter(|k| !k.is_empty());
        let (bucket, reason) = match key {
            Some(k) => {
                let b = bucket_after(self.salt, k);
                (b, Reason::Sticky(b))
            }
            None => (random_bucket, Reason::Random),
        };
        let lane = if in_canary(bucket, percent) {
            Lane::Canary
        } else {
            Lane::Stable
        };
        decided(lane, reason)
    }

    /// Every header name this chooser may look up (lowercase). The strings live as
    /// long as the chooser, so a caller may key a cache of parsed names on their
    /// addresses.
    pub fn header_names(&self) -> Vec<&str> {
        let mut v = vec![
            self.override_header.as_str(),
            self.user_header.as_str(),
            self.country_header.as_str(),
        ];
        if let Some(StickyKey::Header(h)) = &self.sticky {
            v.push(h);
        }
        for (rule, _) in &self.rules {
            if let Compiled::Header(name, _) = rule {
                v.push(name);
            }
        }
        v
    }

    fn affinity_lane(&self, value: &str) -> Option<Lane> {
        let (id, lane) = value.rsplit_once('.')?;
        (id == self.deployment_id).then(|| Lane::parse(lane))?
    }

    /// The `Set-Cookie` value that pins a client to `lane`, scoped to `path`.
    pub fn affinity_cookie(&self, lane: Lane, path: &str, max_age: GoDuration) -> Option<String> {
        let name = self.affinity.as_ref()?;
        let c = cookie::Cookie::build((name.as_str(), format!("{}.{lane}", self.deployment_id)))
            .path(path)
            .max_age(cookie::time::Duration::seconds(
                i64::try_from(max_age.to_std().as_secs()).unwrap_or(i64::MAX),
            ))
            .http_only(true)
            .same_site(cookie::SameSite::Lax);
        Some(c.to_string())
    }
}

/// A request view over `(name, value)` pairs, for tests and SDKs.
#[derive(Debug, Clone, Default)]
pub struct Headers(pub Vec<(String, String)>);

impl RequestView for Headers {
    fn header(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn cookie_headers(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        Headers(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        )
    }

    fn rules(json: &str) -> LaneChooser {
        serde_json::from_str::<TrafficRules>(json)
            .unwrap()
            .chooser("canary_x")
            .unwrap()
    }

    #[test]
    fn override_beats_everything_even_at_zero() {
        let c = rules("{}");
        let r = c.choose(&h(&[("x-canary", "always")]), 0, 9999);
        assert_eq!((r.lane, r.reason), (Lane::Canary, Reason::Override));
        let r = c.choose(&h(&[("X-Canary", "never")]), 100, 0);
        assert_eq!(r.lane, Lane::Stable);
        // An unknown value is ignored.
        assert_eq!(
            c.choose(&h(&[("X-Canary", "maybe")]), 0, 0).lane,
            Lane::Stable
        );
    }

    #[test]
    fn affinity_holds_in_both_directions() {
        let c = rules("{}");
        let canary = h(&[("cookie", "a=1; serin_lane=canary_x.canary")]);
        let stable = h(&[("cookie", "serin_lane=canary_x.stable")]);
        for p in [1, 50, 99] {
            // Random draws that would say the opposite.
            assert_eq!(c.choose(&canary, p, 9999).lane, Lane::Canary);
            assert_eq!(c.choose(&stable, p, 0).lane, Lane::Stable);
            assert!(!c.choose(&stable, p, 0).set_cookie);
        }
        // Another deployment's cookie is ignored, and replaced.
        let other = h(&[("cookie", "serin_lane=canary_y.canary")]);
        let r = c.choose(&other, 50, 9999);
        assert_eq!((r.lane, r.set_cookie), (Lane::Stable, true));
        // At 0% and 100% cookies don't count (rules still do).
        assert_eq!(c.choose(&canary, 0, 0).lane, Lane::Stable);
        assert!(!c.choose(&other, 0, 0).set_cookie);
        assert_eq!(c.choose(&stable, 100, 0).lane, Lane::Canary);
        let cookie = c
            .affinity_cookie(Lane::Canary, "/api", GoDuration::from_hours(1))
            .unwrap();
        assert_eq!(
            cookie,
            "serin_lane=canary_x.canary; HttpOnly; SameSite=Lax; Path=/api; Max-Age=3600"
        );
    }

    #[test]
    fn match_rules() {
        let c = rules(
            r#"{"rules": [
                {"match": {"header": {"name": "X-Beta", "equals": "yes"}}},
                {"match": {"header": {"name": "User-Agent", "regex": "^Mobile/[0-9]+"}}, "lane": "stable"},
                {"match": {"cookie": {"name": "plan", "regex": "^(gold|platinum)$"}}},
                {"match": {"user_id": ["u1", "u2"]}},
                {"match": {"country": ["nz", "CA"]}}
            ], "affinity": null}"#,
        );
        let lane = |pairs: &[(&str, &str)]| c.choose(&h(pairs), 50, 9999).lane;
        assert_eq!(lane(&[("x-beta", "yes")]), Lane::Canary);
        assert_eq!(lane(&[("x-beta", "no")]), Lane::Stable);
        assert_eq!(
            lane(&[("user-agent", "Mobile/12"), ("x-user-id", "u1")]),
            Lane::Stable
        );
        assert_eq!(lane(&[("cookie", "plan=gold")]), Lane::Canary);
        assert_eq!(lane(&[("cookie", "plan=golden")]), Lane::Stable);
        assert_eq!(lane(&[("X-User-Id", "u2")]), Lane::Canary);
        assert_eq!(lane(&[("X-User-Id", "u3")]), Lane::Stable);
        assert_eq!(lane(&[("cf-ipcountry", "NZ")]), Lane::Canary);
        assert_eq!(lane(&[("cf-ipcountry", "ca")]), Lane::Canary);
        assert_eq!(lane(&[("cf-ipcountry", "US")]), Lane::Stable);
        // A rule's lane is pinned by affinity once decided (when affinity is on).
        let c = rules(r#"{"rules": [{"match": {"user_id": ["u1"]}}]}"#);
        let r = c.choose(&h(&[("X-User-Id", "u1")]), 10, 9999);
        assert_eq!(
            (r.lane, r.reason, r.set_cookie),
            (Lane::Canary, Reason::Rule(0), true)
        );
        let r = c.choose(&h(&[("X-User-Id", "u1")]), 0, 9999);
        assert_eq!((r.lane, r.set_cookie), (Lane::Canary, false));
    }

    #[test]
    fn sticky_key_uses_the_documented_hash() {
        let c = rules(r#"{"sticky_key": {"header": "X-User-Id"}, "affinity": null}"#);
        let b = crate::traffic::routing::bucket("canary_x", "user-42");
        let r = c.choose(&h(&[("x-user-id", "user-42")]), 50, 0);
        assert_eq!(r.reason, Reason::Sticky(b));
        assert_eq!(r.lane == Lane::Canary, b < 5000);
        let c = rules(r#"{"sticky_key": {"cookie": "sid"}, "affinity": null}"#);
        let r = c.choose(&h(&[("cookie", "sid=user-42")]), 50, 0);
        assert_eq!(r.reason, Reason::Sticky(b));
        // Without the key: the random draw.
        assert_eq!(c.choose(&h(&[]), 50, 4999).lane, Lane::Canary);
        assert_eq!(c.choose(&h(&[]), 50, 5000).lane, Lane::Stable);
    }

    #[test]
    fn bad_rules_name_their_field() {
        let bad = |json: &str| {
            serde_json::from_str::<TrafficRules>(json)
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string()
        };
        assert!(
            bad(r#"{"rules": [{"match": {"header": {"name": "X", "regex": "("}}}]}"#)
                .contains("traffic.rules[0].match.header.regex")
        );
        assert!(
            bad(r#"{"rules": [{"match": {"header": {"name": "X"}}}]}"#).contains("exactly one")
        );
        assert!(bad(r#"{"rules": [{"match": {"country": ["USA"]}}]}"#).contains("country"));
        assert!(bad(r#"{"override_header": "bad header"}"#).contains("override_header"));
        assert!(bad(r#"{"timeout": "0s"}"#).contains("timeout"));
        assert!(serde_json::from_str::<TrafficRules>(r#"{"surprise": 1}"#).is_err());
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Raising the percentage never moves a keyed client from canary back to
            /// stable, and the same key always gets the same lane.
            #[test]
            fn raising_the_percent_only_moves_keys_to_canary(
                keys in proptest::collection::vec("[a-z0-9-]{1,24}", 1..200),
                mut steps in proptest::collection::vec(0u8..=100, 1..12),
            ) {
                steps.sort_unstable();
                let c = rules(r#"{"sticky_key": {"header": "X-User-Id"}, "affinity": null}"#);
                for k in &keys {
                    let req = h(&[("X-User-Id", k)]);
                    let mut was_canary = false;
                    for &p in &steps {
                        let first = c.choose(&req, p, 0).lane;
                        prop_assert_eq!(first, c.choose(&req, p, 9999).lane);
                        let canary = first == Lane::Canary;
                        prop_assert!(!was_canary || canary, "key {} left canary at {}%", k, p);
                        was_canary = canary;
                    }
                }
            }
        }
    }
}
