//! Outbound calls: the one HTTP client and the one TCP connector Serin uses
//! for webhooks, gates, health probes and Prometheus, under one policy of where
//! they may go ([`policy`]), and how their failures are described.
//!
//! Every connection is judged twice. Before a call, the URL's host is judged
//! as written and, when it is a name, each address it resolves to, with the
//! port (so the server's own listeners are refused on any interface). Then the
//! client's resolver judges the addresses it is about to connect to, so a name
//! that resolves elsewhere between the two (DNS rebinding) still can't reach a
//! denied range. Literal addresses never reach a resolver, which is why the
//! first check exists.
//!
//! Redirects are not followed (a gate or a webhook answers itself), there is no
//! proxy from the environment, and every call sets its own timeout. Failure text
//! names the kind of failure — timeout, refused, DNS, policy — without internal
//! detail.

pub mod policy;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use policy::{Denied, Policy};

/// The outbound client and its policy; cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    http: reqwest::Client,
    policy: Arc<Policy>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("policy", &self.policy)
            .finish()
    }
}

/// Resolves names for the HTTP client and keeps only the addresses the policy allows.
struct PolicyResolver(Arc<Policy>);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            policy.check_name(&host)?;
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = allowed(&policy, &addrs)?;
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The addresses the policy allows, or why none is.
fn allowed(policy: &Policy, addrs: &[SocketAddr]) -> Result<Vec<SocketAddr>, Denied> {
    let mut first_denial = None;
    let ok: Vec<SocketAddr> = addrs
        .iter()
        .filter(|a| match policy.check_addr(a.ip(), a.port()) {
            Ok(()) => true,
            Err(d) => {
                first_denial.get_or_insert(d);
                false
            }
        })
        .copied()
        .collect();
    match (ok.is_empty(), first_denial) {
        (true, Some(d)) => Err(d),
        _ => Ok(ok),
    }
}

impl std::error::Error for Denied {}

impl Outbound {
    /// A client under `policy`.
    pub fn new(policy: Policy) -> Self {
        let policy = Arc::new(policy);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("serin/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(PolicyResolver(policy.clone())))
            .build()
            .expect("the HTTP client builds with static settings");
        Outbound { http, policy }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Judges a target (a URL or `host:port`) before a call: as written, then
    /// each address its name resolves to, with the port.
    pub async fn admit(&self, target: &str) -> Result<(), String> {
        self.policy
            .check_target(target)
            .map_err(|d| d.to_string())?;
        let Some((host, port)) = policy::host_and_port(target) else {
            return Ok(());
        };
        if host.parse::<std::net::IpAddr>().is_ok() {
            return Ok(());
        }
        let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host.as_str(), port)).await {
            Ok(a) => a.collect(),
            Err(_) => return Err(format!("could not resolve `{host}`")),
        };
        allowed(&self.policy, &addrs)
            .map(drop)
            .map_err(|d| d.to_string())
    }

    /// A request to `url` once the policy admits it.
    pub async fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, String> {
        self.admit(url).await?;
        Ok(self.http.request(method, url))
    }

    /// A TCP connection to `host:port`, to the first address the policy allows.
    pub async fn connect(&self, target: &str) -> Result<tokio::net::TcpStream, String> {
        self.policy
            .check_target(target)
            .map_err(|d| d.to_string())?;
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(target)
            .await
            .map_err(|_| format!("could not resolve `{target}`"))?
            .collect();
        let allowed = allowed(&self.policy, &addrs).map_err(|d| d.to_string())?;
        let mut last = String::from("no address to connect to");
        for a in allowed {
            match tokio::net::TcpStream::connect(a).await {
                Ok(s) => return Ok(s),
                Err(e) => last = format!("connect failed: {}", e.kind()),
            }
        }
        Err(last)
    }

    /// POSTs `body` as JSON; yes when the answer is 2xx. The text kept is the
    /// status and the first 500 characters of the answer's body, or why there
    /// was none.
    pub async fn post_json(
        &self,
        url: &str,
        body: &serde_json::Value,
        timeout: Duration,
    ) -> (bool, String) {
        let req = match self.request(reqwest::Method::POST, url).await {
            Ok(r) => r,
            Err(e) => return (false, format!("not called: {e}")),
        };
        match req.timeout(timeout).json(body).send().await {
            Ok(resp) => {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                let text: String = text.trim().chars().take(500).collect();
                (
                    status.is_success(),
                    format!("HTTP {}: {text}", status.as_u16()),
                )
            }
            Err(e) => (false, format!("no answer: {}", describe(&e))),
        }
    }
}

/// A failure in words.
pub fn describe(e: &reqwest::Error) -> String {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(d) = s.downcast_ref::<Denied>() {
            return d.to_string();
        }
        source = s.source();
    }
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else if e.is_request() {
        "the request could not be sent".into()
    } else if e.is_body() || e.is_decode() {
        "the answer could not be read".into()
    } else {
        "the call failed".into()
    }
}
