//! Who is calling: the client's address, which the failed-authentication
//! limiter and the login throttle count by.
//!
//! The TCP peer is the client unless it is a proxy the operator trusts
//! (`--trusted-proxy`, CIDRs). Then the client is read from
//! `X-Forwarded-For`, right to left, skipping trusted proxies: the first
//! address a trusted proxy did not add itself is the client. Anything to its
//! left was written by the client and proves nothing. A header from a peer
//! that is not trusted is ignored, so nobody can pick the address they are
//! counted under by sending the header straight to Serin.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client address of a request, as text ("unknown" without a peer: only
/// in-process tests serve without one).
pub fn client_address(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> String {
    let Some(peer) = peer else {
        return "unknown".into();
    };
    // An IPv4 balancer on a dual-stack listener shows up as `::ffff:a.b.c.d`.
    let mut client = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(&ip.to_canonical()));
    if !is_trusted(&client) {
        return counted(client);
    }
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => client = ip.to_canonical(),
            Ok(ip) => return counted(ip.to_canonical()),
            // A malformed hop: what lies to its left can't be trusted either.
            Err(_) => break,
        }
    }
    counted(client)
}

/// The unit a client is counted as: an IPv4 address, or an IPv6 address's
/// /64 — one host usually holds a whole /64, and counting its addresses one
/// by one would give a guesser 2^64 fresh allowances.
fn counted(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let lb: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted: Vec<IpNet> = vec!["10.0.0.0/24".parse().unwrap()];
        // Straight from a client: the header is the client's own words.
        assert_eq!(
            client_address(
                Some("203.0.113.9".parse().unwrap()),
                &headers(&["1.2.3.4"]),
                &trusted
            ),
            "203.0.113.9"
        );
        // Through the balancer: its hop names the client; what the client
        // wrote to the left is ignored.
        assert_eq!(
            client_address(Some(lb), &headers(&["6.6.6.6, 198.51.100.7"]), &trusted),
            "198.51.100.7"
        );
        assert_eq!(
            client_address(
                Some(lb),
                &headers(&["6.6.6.6", "198.51.100.7, 10.0.0.3"]),
                &trusted
            ),
            "198.51.100.7",
            "two trusted hops, several headers"
        );
        assert_eq!(
            client_address(Some(lb), &headers(&[]), &trusted),
            "10.0.0.2"
        );
        assert_eq!(
            client_address(Some(lb), &headers(&["nonsense, 10.0.0.9"]), &trusted),
            "10.0.0.9"
        );
        // Nothing trusted: the peer, whatever the header says.
        assert_eq!(
            client_address(Some(lb), &headers(&["1.2.3.4"]), &[]),
            "10.0.0.2"
        );
        assert_eq!(
            client_address(None, &headers(&["1.2.3.4"]), &trusted),
            "unknown"
        );
        // A dual-stack listener sees an IPv4 balancer as mapped IPv6.
        assert_eq!(
            client_address(
                Some("::ffff:10.0.0.2".parse().unwrap()),
                &headers(&["198.51.100.7"]),
                &trusted
            ),
            "198.51.100.7"
        );
        // IPv6 clients are counted by their /64.
        assert_eq!(
            client_address(
                Some("2001:db8:1:2:aaaa::1".parse().unwrap()),
                &headers(&[]),
                &[]
            ),
            client_address(
                Some("2001:db8:1:2:bbbb::9".parse().unwrap()),
                &headers(&[]),
                &[]
            ),
        );
    }
}
