//! Where the server may connect: one policy for every call it makes on a
//! plan's behalf (health probes, gates, hooks, notifications, Prometheus).
//!
//! An engineer writes the URLs in a plan, and the server calls them from inside
//! the network, so a URL is a way to make the server speak for its author. The
//! dangerous targets are few and well known: the loopback interface (the
//! server's own API, a database trusting local connections), link-local
//! addresses (where every cloud keeps its instance metadata and credentials),
//! the other metadata addresses and names, the unspecified, multicast and
//! reserved ranges, and the server's own listeners on any interface. Those are
//! denied by default. Private ranges stay allowed: upstreams live there.
//!
//! An admin widens or narrows the policy with CIDRs and host names
//! (`--outbound-allow`, `--outbound-deny`). The order is: an explicit deny,
//! then the server's own listeners (never callable, however wide the allow
//! list), then an explicit allow, then the default denials.
//!
//! The policy is applied to addresses, after resolution, on every connection
//! (see the resolver in `super`), and to the literal host of a URL when a plan
//! is accepted, so a plan that names a denied address is refused at once.
//! IPv4 addresses carried inside IPv6 (mapped `::ffff:a.b.c.d`, NAT64
//! `64:ff9b::/96`) are judged as the IPv4 address they carry.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// One entry of an allow or deny list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Addresses in a network (`10.1.0.0/16`, `::1/128`, or a bare address).
    Net(IpNet),
    /// A host name (`api.example.com`), or every name under a domain
    /// (`*.example.com`), compared without case and without a trailing dot.
    Host(String),
}

impl std::str::FromStr for Rule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(Rule::Net(net.trunc()));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Rule::Net(IpNet::from(ip)));
        }
        let name = normalize(s.strip_prefix("*.").unwrap_or(s));
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            return Err(format!(
                "`{s}` is neither a CIDR, an address nor a host name (`*.domain` for a domain)"
            ));
        }
        Ok(Rule::Host(if s.starts_with("*.") {
            format!("*.{name}")
        } else {
            name
        }))
    }
}

impl Rule {
    fn matches_ip(&self, ip: IpAddr) -> bool {
        match self {
            Rule::Net(n) => n.contains(&ip),
            Rule::Host(_) => false,
        }
    }

    fn matches_host(&self, host: &str) -> bool {
        match self {
            Rule::Net(_) => false,
            Rule::Host(h) => match h.strip_prefix("*.") {
                Some(domain) => host
                    .strip_suffix(domain)
                    .is_some_and(|rest| rest.ends_with('.')),
                None => host == h,
            },
        }
    }
}

/// Why a target is refused, in words a plan's author can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// The host or address refused.
    pub target: String,
    /// What it is.
    pub reason: &'static str,
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the outbound policy refuses `{}`: {}",
            self.target, self.reason
        )?;
        if self.reason != OWN_LISTENER && self.reason != DENY_LIST {
            f.write_str(" (an admin can allow it with --outbound-allow)")?;
        }
        Ok(())
    }
}

const OWN_LISTENER: &str = "it is one of this server's own listeners";
const DENY_LIST: &str = "an admin denied it (--outbound-deny)";

/// Names that resolve to instance metadata on the clouds that use a name.
const METADATA_NAMES: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "metadata.azure.internal",
    "instance-data",
    "instance-data.ec2.internal",
];

/// The policy: admin lists and the server's own listeners.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    allow: Vec<Rule>,
    deny: Vec<Rule>,
    own: Vec<SocketAddr>,
}

impl Policy {
    /// A policy with an admin's lists.
    pub fn new(allow: Vec<Rule>, deny: Vec<Rule>) -> Self {
        Policy {
            allow,
            deny,
            own: Vec::new(),
        }
    }

    /// The same policy, also refusing these listeners of the server itself.
    #[must_use]
    pub fn with_own_listeners(mut self, own: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.own.extend(own);
        self
    }

    /// A host name, before resolution: an admin's lists, then the metadata
    /// names. (An address is judged by [`Policy::check_addr`].)
    pub fn check_name(&self, host: &str) -> Result<(), Denied> {
        let host = normalize(host);
        let denied = |reason| {
            Err(Denied {
                target: host.clone(),
                reason,
            })
        };
        if self.deny.iter().any(|r| r.matches_host(&host)) {
            return denied(DENY_LIST);
        }
        if self.allow.iter().any(|r| r.matches_host(&host)) {
            return Ok(());
        }
        if METADATA_NAMES.contains(&host.as_str())
            || host == "localhost"
            || host.ends_with(".localhost")
        {
            return denied(if host.contains("localhost") {
                "it names the loopback interface"
            } else {
                "it names a cloud's instance metadata service"
            });
        }
        Ok(())
    }

    /// An address about to be connected to (`port` 0: any port).
    pub fn check_addr(&self, ip: IpAddr, port: u16) -> Result<(), Denied> {
        let denied = |reason| {
            Err(Denied {
                target: ip.to_string(),
                reason,
            })
        };
        let ip = serin_core::address::carried_v4(ip).map_or(ip, IpAddr::V4);
        if self.deny.iter().any(|r| r.matches_ip(ip)) {
            return denied(DENY_LIST);
        }
        if self.is_own_listener(ip, port) {
            return denied(OWN_LISTENER);
        }
        if self.allow.iter().any(|r| r.matches_ip(ip)) {
            return Ok(());
        }
        if let Some(kind) = serin_core::address::special(ip) {
            return denied(kind.reason());
        }
        // Another service on this machine, reached through one of its own
        // addresses (a database bound to 0.0.0.0, a container runtime's API).
        if is_local(ip) {
            return denied("it is an address of this machine");
        }
        Ok(())
    }

    fn is_own_listener(&self, ip: IpAddr, port: u16) -> bool {
        self.own.iter().any(|l| {
            (port == 0 || l.port() == port)
                && (l.ip() == ip
                    || (l.ip().is_unspecified()
                        && (ip.is_loopback() || ip.is_unspecified() || is_local(ip))))
        })
    }
}

impl Policy {
    /// A target as a plan writes it — a URL, or `host:port` for a TCP check —
    /// judged on what it says literally: a denied address or name is refused
    /// here, a name is judged again on every connection, after resolution.
    pub fn check_target(&self, target: &str) -> Result<(), Denied> {
        let Some((host, port)) = host_and_port(target) else {
            return Ok(()); // not an address: the plan's own validation says so
        };
        match host.parse::<IpAddr>() {
            Ok(ip) => self.check_addr(ip, port),
            Err(_) => self.check_name(&host),
        }
    }
}

/// The host (brackets removed) and port of `scheme://…` or `host:port`; the
/// port is the scheme's default when the URL has none (0 when unknown).
pub fn host_and_port(target: &str) -> Option<(String, u16)> {
    if target.contains("://") {
        let url = reqwest::Url::parse(target).ok()?;
        let port = url.port_or_known_default().unwrap_or(match url.scheme() {
            "redis" => 6379,
            "nats" => 4222,
            "postgres" | "postgresql" => 5432,
            _ => 0,
        });
        let host = match url.host()? {
            url::Host::Domain(d) => d.to_string(),
            url::Host::Ipv4(a) => a.to_string(),
            url::Host::Ipv6(a) => a.to_string(),
        };
        return Some((host, port));
    }
    let (host, port) = target.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

/// Whether this machine holds the address (binding to it works).
fn is_local(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// Host names compare in lower case without a trailing dot.
fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_default_denies_what_points_inside_and_allows_private_ranges() {
        let p = Policy::default();
        for bad in [
            "127.0.0.1",
            "127.8.9.10",
            "::1",
            "169.254.169.254",
            "169.254.170.2",
            "fd00:ec2::254",
            "fe80::1",
            "100.100.100.200",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "255.255.255.255",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(p.check_addr(ip(bad), 80).is_err(), "{bad} allowed");
        }
        for good in [
            "10.0.0.5",
            "172.16.3.4",
            "192.168.1.1",
            "100.64.0.1",
            "fd12::1",
            "93.184.216.34",
            "2606:2800::1",
        ] {
            assert!(p.check_addr(ip(good), 80).is_ok(), "{good} denied");
        }
        for bad in [
            "metadata.google.internal",
            "METADATA.google.internal.",
            "localhost",
            "a.localhost",
            "instance-data",
        ] {
            assert!(p.check_name(bad).is_err(), "{bad} allowed");
        }
        assert!(p.check_name("api.example.com").is_ok());
        for bad in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://LOCALHOST:8080/api",
            "127.0.0.1:22",
            "[::1]:5432",
            "redis://127.0.0.1",
            "http://2130706433/",
            "http://0x7f.1/",
        ] {
            assert!(p.check_target(bad).is_err(), "{bad} allowed");
        }
        assert!(p.check_target("https://ci.example.com/gate").is_ok());
        assert!(p.check_target("10.0.0.4:5432").is_ok());
    }

    #[test]
    fn an_admin_allows_and_denies_but_never_the_servers_own_listeners() {
        let allow = vec![
            "127.0.0.0/8".parse().unwrap(),
            "*.corp.example".parse().unwrap(),
        ];
        let deny = vec![
            "10.9.0.0/16".parse().unwrap(),
            "db.corp.example".parse().unwrap(),
        ];
        let p = Policy::new(allow, deny).with_own_listeners([
            "127.0.0.1:8080".parse().unwrap(),
            "0.0.0.0:8000".parse().unwrap(),
        ]);
        assert!(p.check_addr(ip("127.0.0.1"), 9000).is_ok());
        let own = p.check_addr(ip("127.0.0.1"), 8080).unwrap_err();
        assert_eq!(own.reason, OWN_LISTENER);
        assert!(!own.to_string().contains("--outbound-allow"));
        assert!(
            p.check_addr(ip("127.0.0.2"), 8000).is_err(),
            "a wildcard listener is on every local address"
        );
        assert!(p.check_addr(ip("10.9.1.1"), 80).is_err());
        assert!(p.check_addr(ip("10.8.1.1"), 80).is_ok());
        assert!(p.check_addr(ip("169.254.169.254"), 80).is_err());
        assert!(p.check_name("ci.corp.example").is_ok());
        assert!(p.check_name("db.corp.example").is_err());
        assert!(p.check_name("corp.example").is_ok());
    }

    #[test]
    fn rules_parse_cidrs_addresses_and_names() {
        assert_eq!(
            "10.1.2.3/16".parse::<Rule>().unwrap(),
            Rule::Net("10.1.0.0/16".parse().unwrap())
        );
        assert_eq!(
            "::1".parse::<Rule>().unwrap(),
            Rule::Net("::1/128".parse().unwrap())
        );
        assert_eq!(
            "*.Example.COM.".parse::<Rule>().unwrap(),
            Rule::Host("*.example.com".into())
        );
        for bad in ["", "*.", "a b", "http://x", "10.0.0.0/33", "a..b"] {
            assert!(bad.parse::<Rule>().is_err(), "{bad:?} parsed");
        }
        assert!(Rule::Host("*.example.com".into()).matches_host("a.b.example.com"));
        assert!(!Rule::Host("*.example.com".into()).matches_host("badexample.com"));
    }
}
