//! Checks of a new deployment's fields: text lengths, upstream URLs and
//! routing.

#[allow(unused_imports)]
use super::*;

pub(super) fn short_text(field: &str, v: &str, max: usize) -> Result<(), DomainError> {
    if v.trim().is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if v.len() > max {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    validate_text(field, v)
}

/// An upstream endpoint: `http://host[:port]` (HTTP/1.1 or h2c) or
/// `https://host[:port]` (HTTP/1.1 over TLS, verified by the proxy).
pub(super) fn check_url(field: &str, url: &str) -> Result<(), DomainError> {
    match url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    {
        Some(r)
            if !r.is_empty()
                && !r.starts_with('/')
                && !r.contains(char::is_whitespace)
                && r.parse::<UriAuthority>().is_ok() =>
        {
            if inside_address(r) {
                return Err(DomainError::invalid(
                    field,
                    format!(
                        "`{url}` is a link-local, metadata, unspecified or multicast address: the proxy would serve it to every client"
                    ),
                ));
            }
            Ok(())
        }
        _ => Err(DomainError::invalid(
            field,
            format!("`{url}` is not an http:// or https:// URL with a host"),
        )),
    }
}

/// Whether an upstream's literal host is an address no service lives at and a
/// proxy must never forward to: every special address (`crate::address`) but
/// loopback. Loopback and private ranges are real upstreams. (A name is not
/// resolved here.)
pub(super) fn inside_address(authority: &str) -> bool {
    let host = authority.trim_end_matches('/');
    let host = match host.rsplit_once(']') {
        Some((h, _)) => h.trim_start_matches('['),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    let Ok(ip) = host.parse::<std::net::IpAddr>() else {
        return false;
    };
    crate::address::special(ip).is_some_and(|k| k != crate::address::Special::Loopback)
}

/// `host[:port]` with an optional trailing `/`: enough to tell a usable endpoint.
pub(super) struct UriAuthority;

impl std::str::FromStr for UriAuthority {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let s = s.strip_suffix('/').unwrap_or(s);
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(p)),
            _ => (s, None),
        };
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._[]:".contains(c));
        let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok());
        if host_ok && port_ok {
            Ok(UriAuthority)
        } else {
            Err(())
        }
    }
}

/// Checks a deployment's HTTP routing fields.
pub(super) fn check_routing(
    upstreams: &Upstreams,
    route: &Route,
    traffic: &TrafficRules,
) -> Result<(), DomainError> {
    for (lane, urls) in [("stable", &upstreams.stable), ("canary", &upstreams.canary)] {
        if urls.len() > 64 {
            return Err(DomainError::invalid(
                format!("upstreams.{lane}"),
                "at most 64 endpoints per lane",
            ));
        }
        for (i, u) in urls.iter().enumerate() {
            check_url(&format!("upstreams.{lane}[{i}]"), u)?;
        }
    }
    if let Some(p) = &route.path_prefix
        && !p.starts_with('/')
    {
        return Err(DomainError::invalid(
            "route.path_prefix",
            "must start with '/'",
        ));
    }
    if let Some(h) = &route.host {
        short_text("route.host", h, 253)?;
    }
    traffic.validate()
}
