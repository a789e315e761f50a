//! Addresses no ordinary service lives at: what the outbound policy denies by
//! default and what an upstream may never be. One list, so the metadata
//! addresses of the clouds are written once.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a special address is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 169.254.0.0/16, fe80::/10: where clouds serve instance metadata.
    LinkLocal,
    /// A cloud's metadata address outside link-local.
    Metadata,
    /// 0.0.0.0/8, ::.
    Unspecified,
    /// Multicast, broadcast, 240.0.0.0/4.
    MulticastOrReserved,
}

impl Special {
    /// Why an address of this kind is refused, for people.
    pub fn reason(self) -> &'static str {
        match self {
            Special::Loopback => "it is a loopback address",
            Special::LinkLocal => {
                "it is a link-local address, where clouds serve instance metadata"
            }
            Special::Metadata => "it is a cloud's instance metadata address",
            Special::Unspecified => "it is an unspecified (`this network`) address",
            Special::MulticastOrReserved => "it is a multicast, broadcast or reserved address",
        }
    }
}

/// The IPv4 address inside a mapped (`::ffff:a.b.c.d`) or NAT64
/// (`64:ff9b::/96`) IPv6 address.
pub fn carried_v4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else { return None };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let o = v6.octets();
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    None
}

/// What a special address is (an IPv4 address carried in IPv6 judged as
/// itself), or `None` for an ordinary one.
pub fn special(ip: IpAddr) -> Option<Special> {
    match carried_v4(ip).map_or(ip, IpAddr::V4) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some(Special::Loopback)
            } else if v4.is_link_local() {
                Some(Special::LinkLocal)
            } else if v4 == Ipv4Addr::new(100, 100, 100, 200)
                || v4 == Ipv4Addr::new(168, 63, 129, 16)
            {
                Some(Special::Metadata)
            } else if o[0] == 0 {
                Some(Special::Unspecified)
            } else if v4.is_multicast() || v4.is_broadcast() || o[0] >= 240 {
                Some(Special::MulticastOrReserved)
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() {
                Some(Special::Loopback)
            } else if v6.is_unspecified() {
                Some(Special::Unspecified)
            } else if v6.segments()[0] & 0xffc0 == 0xfe80 {
                Some(Special::LinkLocal)
            } else if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some(Special::Metadata)
            } else if v6.is_multicast() {
                Some(Special::MulticastOrReserved)
            } else {
                None
            }
        }
    }
}
