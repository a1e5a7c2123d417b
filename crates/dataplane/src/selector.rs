//! The protocol and port part of traffic selectors (RFC 4301 4.4.1.1, RFC 7296 3.13.1), as
//! the fast path enforces it, and strongSwan's `net[proto/port]` syntax for the config.
//!
//! An address-only selector is the common case and must cost nothing: policies and SAs hold
//! their [`Ports`] in an `Option` that is `None` for them, so the per-packet path checks one
//! discriminant and never parses a transport header (`ARCHITECTURE.md`, "Life of a packet").
//! Only a policy or SA narrowed to a protocol or ports reads [`Transport`] from the packet.

use std::fmt;
use std::str::FromStr;

use crate::packet::{self, PROTO_SCTP, PROTO_TCP, PROTO_UDP};
use crate::prefix::{Prefix, PrefixError};

/// ICMP and ICMPv6 (IANA): their type and code take the place of a port (RFC 4301 4.4.1.1:
/// type in the high byte, code in the low byte).
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_ICMPV6: u8 = 58;
/// DCCP and UDP-Lite carry ports where TCP and UDP do.
pub const PROTO_DCCP: u8 = 33;
pub const PROTO_UDPLITE: u8 = 136;

/// The protocol and port range of one traffic selector.
///
/// `proto` 0 is any protocol. The port range is inclusive; `0..=65535` is any port and also
/// admits packets that carry no port (other protocols, non-initial fragments). A narrower
/// range admits only packets whose port is known and inside it: a non-initial fragment of a
/// port-specific flow has no port, so it does not match (RFC 4301 7: such fragments belong
/// on an SA whose ports are ANY or OPAQUE). OPAQUE (`start` 65535, `end` 0, as RFC 7296
/// writes it) admits only packets whose port is not available.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ports {
    pub proto: u8,
    pub start: u16,
    pub end: u16,
}

impl Ports {
    /// Any protocol, any port: an address-only selector.
    pub const ANY: Ports = Ports {
        proto: 0,
        start: 0,
        end: u16::MAX,
    };

    /// Whether this selector restricts nothing beyond its addresses.
    #[inline]
    pub fn is_any(&self) -> bool {
        *self == Ports::ANY
    }

    /// Whether the port range is RFC 7296's OPAQUE (start 65535, end 0).
    #[inline]
    pub fn is_opaque(&self) -> bool {
        self.start == u16::MAX && self.end == 0
    }

    /// Whether the port range is the whole space.
    #[inline]
    pub fn any_port(&self) -> bool {
        self.start == 0 && self.end == u16::MAX
    }

    /// Whether a packet of transport `t` whose port on this selector's side is `port`
    /// matches. `t` is `None` when the packet's transport could not be read (an IPv6
    /// extension header chain too long): only a selector of any protocol and port admits it.
    #[inline]
    pub fn admits(&self, t: Option<&Transport>, port: Option<u16>) -> bool {
        let Some(t) = t else {
            return self.is_any();
        };
        if self.proto != 0 && self.proto != t.proto {
            return false;
        }
        if self.any_port() {
            return true;
        }
        match port {
            None => self.is_opaque(),
            Some(p) => !self.is_opaque() && self.start <= p && p <= self.end,
        }
    }

    /// How narrow this selector is, larger = narrower: a specific protocol before any, then a
    /// smaller port range first. The policy table tries narrower selectors first, so
    /// `10.2.0.0/24[tcp/443]` wins over `10.2.0.0/24` for HTTPS.
    pub fn specificity(&self) -> (bool, u32) {
        let span = if self.is_opaque() {
            0
        } else {
            u32::from(self.end) - u32::from(self.start)
        };
        (self.proto != 0, u32::from(u16::MAX) - span)
    }
}

impl fmt::Display for Ports {
    /// strongSwan's form: `[tcp/443]`, `[udp/1024-65535]`, `[icmp/8]`, `[/53]`, `[17]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() {
            return Ok(());
        }
        f.write_str("[")?;
        match proto_name(self.proto) {
            Some(n) => f.write_str(n)?,
            None if self.proto == 0 => {}
            None => write!(f, "{}", self.proto)?,
        }
        let icmp = matches!(self.proto, PROTO_ICMP | PROTO_ICMPV6);
        if self.is_opaque() {
            f.write_str("/opaque")?;
        } else if icmp && !self.any_port() {
            let (t0, c0, t1, c1) = (
                self.start >> 8,
                self.start & 0xff,
                self.end >> 8,
                self.end & 0xff,
            );
            if t0 == t1 && c0 == 0 && c1 == 0xff {
                write!(f, "/{t0}")?;
            } else if self.start == self.end {
                write!(f, "/{t0}/{c0}")?;
            } else {
                write!(f, "/{}-{}", self.start, self.end)?;
            }
        } else if !self.any_port() {
            if self.start == self.end {
                write!(f, "/{}", self.start)?;
            } else {
                write!(f, "/{}-{}", self.start, self.end)?;
            }
        }
        f.write_str("]")
    }
}

fn proto_name(p: u8) -> Option<&'static str> {
    Some(match p {
        PROTO_TCP => "tcp",
        PROTO_UDP => "udp",
        PROTO_ICMP => "icmp",
        PROTO_ICMPV6 => "ipv6-icmp",
        PROTO_SCTP => "sctp",
        _ => return None,
    })
}

fn proto_number(s: &str) -> Option<u8> {
    Some(match s {
        "tcp" => PROTO_TCP,
        "udp" => PROTO_UDP,
        "icmp" => PROTO_ICMP,
        "icmpv6" | "ipv6-icmp" => PROTO_ICMPV6,
        "sctp" => PROTO_SCTP,
        "udplite" => PROTO_UDPLITE,
        "dccp" => PROTO_DCCP,
        _ => return s.parse().ok(),
    })
}

/// A traffic selector as configured: a prefix and its protocol and ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Selector {
    pub prefix: Prefix,
    pub ports: Ports,
}

impl Selector {
    /// The selector of a whole prefix, any protocol and port.
    pub fn addresses(prefix: Prefix) -> Selector {
        Selector {
            prefix,
            ports: Ports::ANY,
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.prefix, self.ports)
    }
}

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum SelectorError {
    #[error(transparent)]
    Prefix(#[from] PrefixError),
    #[error("'[' without a closing ']'; expected e.g. 10.2.0.0/24[tcp/443]")]
    Unclosed,
    #[error("text after ']'")]
    Trailing,
    #[error("'{0}' is not a protocol name (tcp, udp, icmp, ipv6-icmp, sctp, udplite, dccp) or number 0-255")]
    BadProtocol(String),
    #[error("'{0}' is not a port, a port range like 1024-65535, %any or opaque")]
    BadPort(String),
    #[error("port range {0}-{1} runs backwards")]
    Backwards(u16, u16),
    #[error("'{0}': an ICMP selector takes TYPE or TYPE/CODE, each 0-255")]
    BadIcmp(String),
    #[error("ports need a protocol that has them (tcp, udp, sctp, udplite, dccp, icmp as type/code) or none")]
    PortsWithoutPorts,
}

impl FromStr for Selector {
    type Err = SelectorError;

    /// `PREFIX` or `PREFIX[PROTO/PORT]` as swanctl.conf writes `local_ts`/`remote_ts`:
    /// `10.2.0.0/24[tcp/443]`, `10.2.0.0/24[udp]`, `10.2.0.0/24[/53]` (any protocol, port 53),
    /// `10.2.0.0/24[tcp/1024-65535]`, `10.2.0.0/24[tcp/%any]`, `10.2.0.0/24[icmp/8]` (echo
    /// request, any code), `10.2.0.0/24[icmp/3/4]` (type 3 code 4), `[udp/opaque]`.
    fn from_str(s: &str) -> Result<Selector, SelectorError> {
        let (net, spec) = match s.split_once('[') {
            None => (s, None),
            Some((net, rest)) => {
                let Some((inner, after)) = rest.split_once(']') else {
                    return Err(SelectorError::Unclosed);
                };
                if !after.is_empty() {
                    return Err(SelectorError::Trailing);
                }
                (net, Some(inner))
            }
        };
        let prefix: Prefix = net.trim().parse()?;
        let ports = match spec {
            None => Ports::ANY,
            Some(spec) => parse_ports(spec.trim())?,
        };
        Ok(Selector { prefix, ports })
    }
}

fn parse_ports(spec: &str) -> Result<Ports, SelectorError> {
    let (proto_s, port_s) = match spec.split_once('/') {
        Some((p, rest)) => (p.trim(), Some(rest.trim())),
        None => (spec, None),
    };
    let proto = match proto_s {
        "" | "%any" | "any" => 0,
        p => proto_number(&p.to_ascii_lowercase())
            .ok_or_else(|| SelectorError::BadProtocol(p.to_string()))?,
    };
    let mut ports = Ports {
        proto,
        ..Ports::ANY
    };
    let Some(port_s) = port_s.filter(|p| !p.is_empty() && *p != "%any" && *p != "any") else {
        return Ok(ports);
    };
    if port_s == "opaque" {
        ports.start = u16::MAX;
        ports.end = 0;
        return Ok(ports);
    }
    if matches!(proto, PROTO_ICMP | PROTO_ICMPV6) {
        let bad = || SelectorError::BadIcmp(port_s.to_string());
        let byte = |v: &str| v.trim().parse::<u8>().map_err(|_| bad());
        match port_s.split_once('/') {
            Some((t, c)) => {
                let v = u16::from(byte(t)?) << 8 | u16::from(byte(c)?);
                (ports.start, ports.end) = (v, v);
            }
            None => {
                let t = u16::from(byte(port_s)?) << 8;
                (ports.start, ports.end) = (t, t | 0xff);
            }
        }
        return Ok(ports);
    }
    if proto != 0 && !has_ports(proto) {
        return Err(SelectorError::PortsWithoutPorts);
    }
    let port = |v: &str| {
        v.trim()
            .parse::<u16>()
            .map_err(|_| SelectorError::BadPort(port_s.to_string()))
    };
    let (a, b) = match port_s.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(port_s)?;
            (p, p)
        }
    };
    if a > b {
        return Err(SelectorError::Backwards(a, b));
    }
    (ports.start, ports.end) = (a, b);
    Ok(ports)
}

/// Whether a protocol's header starts with a source and a destination port.
#[inline]
fn has_ports(proto: u8) -> bool {
    matches!(
        proto,
        PROTO_TCP | PROTO_UDP | PROTO_SCTP | PROTO_UDPLITE | PROTO_DCCP
    )
}

/// A packet's transport as selectors see it: the protocol and, when the packet carries them
/// and is not a non-initial fragment, its source and destination "ports" (for ICMP both are
/// the type/code word).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transport {
    pub proto: u8,
    pub ports: Option<(u16, u16)>,
}

impl Transport {
    /// Reads the transport of an IPv4/IPv6 packet; `None` when it cannot be told (bad
    /// version, truncated header, an IPv6 extension header chain too long to walk). Out of
    /// line, so the policy lookup that calls it for narrowed policies stays small.
    #[inline(never)]
    pub fn of(pkt: &[u8]) -> Option<Transport> {
        let (proto, at, first) = match packet::version(pkt)? {
            4 if pkt.len() >= packet::IPV4_MIN_HEADER => {
                let off = u16::from_be_bytes([pkt[6], pkt[7]]) & 0x1fff;
                let ihl = packet::ipv4_header_len(pkt).filter(|l| *l >= packet::IPV4_MIN_HEADER)?;
                (pkt[9], ihl, off == 0)
            }
            6 if pkt.len() >= packet::IPV6_HEADER => ipv6_walk(pkt)?,
            _ => return None,
        };
        let ports = if !first {
            None
        } else if matches!(proto, PROTO_ICMP | PROTO_ICMPV6) {
            pkt.get(at..at + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .map(|tc| (tc, tc))
        } else if has_ports(proto) {
            pkt.get(at..at + 4).map(|b| {
                (
                    u16::from_be_bytes([b[0], b[1]]),
                    u16::from_be_bytes([b[2], b[3]]),
                )
            })
        } else {
            None
        };
        Some(Transport { proto, ports })
    }

    #[inline]
    pub fn src_port(&self) -> Option<u16> {
        self.ports.map(|p| p.0)
    }

    #[inline]
    pub fn dst_port(&self) -> Option<u16> {
        self.ports.map(|p| p.1)
    }
}

/// IPv6: the upper-layer protocol, its offset and whether this is the first fragment (or no
/// fragment), past hop-by-hop, routing, destination options and fragment headers (a later
/// fragment stops at its fragment header, whose next header is then the protocol).
fn ipv6_walk(pkt: &[u8]) -> Option<(u8, usize, bool)> {
    let mut next = *pkt.get(6)?;
    let mut off = packet::IPV6_HEADER;
    let mut first = true;
    for _ in 0..8 {
        match next {
            0 | 43 | 60 => {
                next = *pkt.get(off)?;
                off += (usize::from(*pkt.get(off + 1)?) + 1) * 8;
            }
            44 => {
                next = *pkt.get(off)?;
                let o = pkt.get(off + 2..off + 4)?;
                first = u16::from_be_bytes([o[0], o[1]]) & 0xfff8 == 0;
                off += 8;
                // A later fragment carries data, not headers: its next header is the
                // protocol (RFC 8200 4.5), and reading on would take payload bytes for an
                // extension header chain.
                if !first {
                    return Some((next, off, false));
                }
            }
            _ => return Some((next, off, first)),
        }
    }
    None
}

/// The protocol and port parts of one SA's (or policy's) selectors, for a packet whose
/// addresses already matched: `local` and `remote` pair each prefix with its [`Ports`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSelectors {
    pub local: Box<[Selector]>,
    pub remote: Box<[Selector]>,
}

impl PortSelectors {
    /// `None` when every selector is address-only: then the fast path checks addresses only.
    pub fn of(local: &[Selector], remote: &[Selector]) -> Option<PortSelectors> {
        if local.iter().chain(remote).all(|s| s.ports.is_any()) {
            return None;
        }
        Some(PortSelectors {
            local: local.into(),
            remote: remote.into(),
        })
    }

    /// Whether a decrypted packet (from the peer's side) matches: its source and source port
    /// in a remote selector, its destination and destination port in a local one. Out of
    /// line and reading the addresses again: only narrowed SAs get here, and the
    /// address-only check that calls it stays as small as it was.
    #[cold]
    #[inline(never)]
    pub fn admits_inbound(&self, pkt: &[u8]) -> bool {
        let Some((src, dst)) = packet::inner_addrs(pkt) else {
            return false;
        };
        let t = Transport::of(pkt);
        let t = t.as_ref();
        self.remote
            .iter()
            .any(|s| src.matches(&s.prefix) && s.ports.admits(t, t.and_then(Transport::src_port)))
            && self.local.iter().any(|s| {
                dst.matches(&s.prefix) && s.ports.admits(t, t.and_then(Transport::dst_port))
            })
    }
}

/// The protocol and port parts of one outbound policy: its local selector's (the packet's
/// source port) and its remote selector's (the destination port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyPorts {
    pub local: Ports,
    pub remote: Ports,
}

impl PolicyPorts {
    /// `None` for an address-only pair: the policy then matches on addresses alone.
    pub fn of(local: Ports, remote: Ports) -> Option<PolicyPorts> {
        (!local.is_any() || !remote.is_any()).then_some(PolicyPorts { local, remote })
    }

    /// Whether a packet leaving the site with transport `t` matches.
    #[inline]
    pub fn admits_outbound(&self, t: Option<&Transport>) -> bool {
        self.local.admits(t, t.and_then(Transport::src_port))
            && self.remote.admits(t, t.and_then(Transport::dst_port))
    }

    /// [`admits_outbound`](Self::admits_outbound) of a packet leaving the site. Out of line
    /// and cold: address-only policies never call it, and the lookup loop stays as small as
    /// it is without ports.
    #[cold]
    #[inline(never)]
    pub fn admits_packet(&self, pkt: &[u8]) -> bool {
        self.admits_outbound(Transport::of(pkt).as_ref())
    }

    /// Whether a packet arriving from the peer (its source is remote, its destination local)
    /// belongs to this policy's flows: the mirror of [`admits_packet`](Self::admits_packet),
    /// for the inbound path's questions about the tunnel a reply would take (MSS, DSCP).
    #[cold]
    #[inline(never)]
    pub fn admits_arriving(&self, pkt: &[u8]) -> bool {
        let t = Transport::of(pkt);
        let t = t.as_ref();
        self.local.admits(t, t.and_then(Transport::dst_port))
            && self.remote.admits(t, t.and_then(Transport::src_port))
    }

    /// Order among policies of the same prefixes: narrower first.
    pub fn specificity(&self) -> (bool, u32) {
        let (a, b) = (self.local.specificity(), self.remote.specificity());
        (a.0 || b.0, a.1 + b.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(s: &str) -> Selector {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ports(s: &str) -> Ports {
        sel(&format!("10.2.0.0/24{s}")).ports
    }

    #[test]
    fn parses_strongswan_forms() {
        assert_eq!(sel("10.2.0.0/24").ports, Ports::ANY);
        assert_eq!(
            ports("[tcp/443]"),
            Ports {
                proto: 6,
                start: 443,
                end: 443
            }
        );
        assert_eq!(
            ports("[udp]"),
            Ports {
                proto: 17,
                ..Ports::ANY
            }
        );
        assert_eq!(
            ports("[/53]"),
            Ports {
                proto: 0,
                start: 53,
                end: 53
            }
        );
        assert_eq!(
            ports("[tcp/1024-65535]"),
            Ports {
                proto: 6,
                start: 1024,
                end: 65535
            }
        );
        assert_eq!(
            ports("[tcp/%any]"),
            Ports {
                proto: 6,
                ..Ports::ANY
            }
        );
        assert_eq!(ports("[%any/%any]"), Ports::ANY);
        assert_eq!(
            ports("[47]"),
            Ports {
                proto: 47,
                ..Ports::ANY
            }
        );
        assert_eq!(
            ports("[icmp/8]"),
            Ports {
                proto: 1,
                start: 0x0800,
                end: 0x08ff
            }
        );
        assert_eq!(
            ports("[icmp/3/4]"),
            Ports {
                proto: 1,
                start: 0x0304,
                end: 0x0304
            }
        );
        assert_eq!(
            ports("[ipv6-icmp/128]"),
            Ports {
                proto: 58,
                start: 0x8000,
                end: 0x80ff
            }
        );
        assert!(ports("[udp/opaque]").is_opaque());
        assert_eq!(sel("2001:db8::/64[TCP/22]").ports.proto, 6);
    }

    #[test]
    fn refuses_with_a_reason() {
        let err = |s: &str| s.parse::<Selector>().unwrap_err();
        assert_eq!(err("10.2.0.0/24[tcp/443"), SelectorError::Unclosed);
        assert_eq!(err("10.2.0.0/24[tcp/443]x"), SelectorError::Trailing);
        assert_eq!(
            err("10.2.0.0/24[tcpp/443]"),
            SelectorError::BadProtocol("tcpp".into())
        );
        assert_eq!(
            err("10.2.0.0/24[tcp/https]"),
            SelectorError::BadPort("https".into())
        );
        assert_eq!(
            err("10.2.0.0/24[tcp/70000]"),
            SelectorError::BadPort("70000".into())
        );
        assert_eq!(
            err("10.2.0.0/24[tcp/90-80]"),
            SelectorError::Backwards(90, 80)
        );
        assert_eq!(
            err("10.2.0.0/24[icmp/300]"),
            SelectorError::BadIcmp("300".into())
        );
        assert_eq!(
            err("10.2.0.0/24[gre/1]".replace("gre", "47").as_str()),
            SelectorError::PortsWithoutPorts
        );
        assert!(matches!(err("10.2.0.1/24[tcp]"), SelectorError::Prefix(_)));
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "10.2.0.0/24",
            "10.2.0.0/24[tcp/443]",
            "10.2.0.0/24[udp]",
            "10.2.0.0/24[/53]",
            "10.2.0.0/24[tcp/1024-65535]",
            "10.2.0.0/24[icmp/8]",
            "10.2.0.0/24[icmp/3/4]",
            "10.2.0.0/24[udp/opaque]",
            "10.2.0.0/24[47]",
        ] {
            assert_eq!(sel(s).to_string(), s);
            assert_eq!(sel(&sel(s).to_string()), sel(s));
        }
    }

    /// An IPv4 packet of `proto` from 10.1.0.2 to 10.2.0.2 with `l4` after a 20-byte header.
    fn v4(proto: u8, l4: &[u8], frag_off: u16) -> Vec<u8> {
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[6..8].copy_from_slice(&frag_off.to_be_bytes());
        p[9] = proto;
        p[12..16].copy_from_slice(&[10, 1, 0, 2]);
        p[16..20].copy_from_slice(&[10, 2, 0, 2]);
        p.extend_from_slice(l4);
        p
    }

    fn tcp(sport: u16, dport: u16) -> Vec<u8> {
        let mut l4 = sport.to_be_bytes().to_vec();
        l4.extend_from_slice(&dport.to_be_bytes());
        l4.resize(20, 0);
        v4(PROTO_TCP, &l4, 0)
    }

    #[test]
    fn transport_of_packets() {
        assert_eq!(
            Transport::of(&tcp(40000, 443)),
            Some(Transport {
                proto: 6,
                ports: Some((40000, 443))
            })
        );
        let echo = v4(PROTO_ICMP, &[8, 0, 0, 0], 0);
        assert_eq!(Transport::of(&echo).unwrap().ports, Some((0x0800, 0x0800)));
        // First fragment (MF set, offset 0) has ports; a later one does not.
        let mut first = tcp(1, 443);
        first[6] = 0x20;
        assert_eq!(Transport::of(&first).unwrap().ports, Some((1, 443)));
        let later = v4(PROTO_TCP, &[0; 20], 0x0010);
        assert_eq!(
            Transport::of(&later),
            Some(Transport {
                proto: 6,
                ports: None
            })
        );
        // Truncated transport header: protocol known, ports not.
        assert_eq!(
            Transport::of(&v4(PROTO_UDP, &[0, 1], 0)).unwrap().ports,
            None
        );
        assert_eq!(Transport::of(&[0x45]), None);
        let mut short_ihl = tcp(1, 443);
        short_ihl[0] = 0x44;
        assert_eq!(Transport::of(&short_ihl), None, "IHL below 5 words");
        assert_eq!(Transport::of(&[]), None);
        // IPv6: a fragment header then UDP; first fragment has ports, a later one not.
        let v6 = |offset: u16| {
            let mut p = vec![0u8; 40];
            p[0] = 0x60;
            p[6] = 44;
            let mut fh = vec![PROTO_UDP, 0];
            fh.extend_from_slice(&(offset << 3).to_be_bytes());
            fh.extend_from_slice(&[0, 0, 0, 1]);
            p.extend_from_slice(&fh);
            p.extend_from_slice(&[0x13, 0x88, 0x00, 0x35, 0, 0, 0, 0]);
            p
        };
        assert_eq!(
            Transport::of(&v6(0)),
            Some(Transport {
                proto: 17,
                ports: Some((5000, 53))
            })
        );
        assert_eq!(
            Transport::of(&v6(1)),
            Some(Transport {
                proto: 17,
                ports: None
            })
        );
    }

    /// An IPv6 packet from 2001:db8:1::2 to 2001:db8:2::2 whose first next header is `next`,
    /// then `rest` (extension headers and transport), payload length right.
    fn v6(next: u8, rest: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&(rest.len() as u16).to_be_bytes());
        p[6] = next;
        p[7] = 64;
        p[8..24].copy_from_slice(&0x2001_0db8_0001_0000_0000_0000_0000_0002u128.to_be_bytes());
        p[24..40].copy_from_slice(&0x2001_0db8_0002_0000_0000_0000_0000_0002u128.to_be_bytes());
        p.extend_from_slice(rest);
        p
    }

    /// IPv6 rows: extension header chains the walk passes, stops at or refuses, and what a
    /// port selector then makes of the packet (a port-specific selector refuses what has no
    /// readable ports).
    #[test]
    fn ipv6_extension_header_chains() {
        let udp = [0x13, 0x88, 0x00, 0x35, 0, 8, 0, 0];
        let t = |p: &[u8]| Transport::of(p);
        let dns = ports("[udp/53]");
        let m = |p: &[u8]| dns.admits(t(p).as_ref(), t(p).and_then(|t| t.dst_port()));
        let with = |headers: &[&[u8]], l4: &[u8]| {
            let mut r: Vec<u8> = headers.concat();
            r.extend_from_slice(l4);
            r
        };
        // Hop-by-hop, routing (type 0 segments left 0), destination options, then UDP.
        let hbh: &[u8] = &[43, 0, 1, 4, 0, 0, 0, 0];
        let rh: &[u8] = &[60, 0, 0, 0, 0, 0, 0, 0];
        let dst: &[u8] = &[17, 0, 1, 4, 0, 0, 0, 0];
        let chain = v6(0, &with(&[hbh, rh, dst], &udp));
        assert_eq!(
            t(&chain),
            Some(Transport {
                proto: 17,
                ports: Some((5000, 53))
            })
        );
        assert!(m(&chain));
        // Cut inside the chain: the transport cannot be told; only address-only selectors
        // take it.
        for n in [41, 48, 49, 55] {
            assert_eq!(t(&chain[..n]), None, "cut at {n}");
            assert!(!m(&chain[..n]), "cut at {n}");
            assert!(Ports::ANY.admits(t(&chain[..n]).as_ref(), None));
        }
        // Cut inside the last extension header (whose next header and length are there),
        // at its end, or inside the UDP header: protocol known, ports not.
        for n in [60, 64, 66] {
            assert_eq!(t(&chain[..n]).map(|t| (t.proto, t.ports)), Some((17, None)));
            assert!(!m(&chain[..n]), "cut at {n}");
        }
        // A header whose length runs past the packet.
        let long = v6(60, &[17, 255, 0, 0, 0, 0, 0, 0]);
        assert_eq!(t(&long).map(|t| (t.proto, t.ports)), Some((17, None)));
        // More than 8 extension headers: not walked to the end.
        let nine: Vec<&[u8]> = vec![&[60, 0, 1, 4, 0, 0, 0, 0]; 8];
        let nine = v6(60, &with(&[&nine.concat(), dst], &udp));
        assert_eq!(t(&nine), None);
        assert!(!m(&nine));
        // An unknown next header is the protocol; "no next header" has no ports.
        assert_eq!(
            t(&v6(0, &[253, 0, 1, 4, 0, 0, 0, 0, 1, 2, 3, 4])).map(|t| (t.proto, t.ports)),
            Some((253, None))
        );
        assert_eq!(
            t(&v6(59, &[])).map(|t| (t.proto, t.ports)),
            Some((59, None))
        );
        // A later fragment whose fragment header names a destination options header: the
        // bytes after it are fragment data (here made to look like a header chain leading
        // to UDP port 53), so the walk stops and the packet has no ports.
        let later = v6(44, &with(&[&[60, 0, 0x01, 0x00, 0, 0, 0, 7], dst], &udp));
        assert_eq!(
            t(&later),
            Some(Transport {
                proto: 60,
                ports: None
            })
        );
        assert!(!m(&later), "fragment data is not read as ports");
        // The first fragment of the same packet is walked to its ports.
        let first = v6(44, &with(&[&[60, 0, 0, 1, 0, 0, 0, 7], dst], &udp));
        assert_eq!(t(&first).and_then(|t| t.ports), Some((5000, 53)));
        // A fragment header cut short.
        assert_eq!(t(&v6(44, &[17, 0, 0])), None);
        // Version 6 with fewer than 40 bytes.
        assert_eq!(t(&chain[..39]), None);
    }

    #[test]
    fn matching_protocols_ports_icmp_and_fragments() {
        let https = ports("[tcp/443]");
        let t = |p: &[u8]| Transport::of(p);
        let dport = |p: &[u8]| t(p).and_then(|t| t.dst_port());
        let m = |s: &Ports, p: &[u8]| s.admits(t(p).as_ref(), dport(p));
        assert!(m(&https, &tcp(40000, 443)));
        assert!(!m(&https, &tcp(40000, 444)));
        let udp443 = v4(PROTO_UDP, &[0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 0], 0);
        assert!(!m(&https, &udp443), "wrong protocol");
        assert!(m(&ports("[/443]"), &udp443), "any protocol, port 443");
        assert!(m(&ports("[tcp/1024-65535]"), &tcp(1, 1024)));
        assert!(!m(&ports("[tcp/1024-65535]"), &tcp(1, 1023)));
        // A non-initial fragment has no ports: port-specific selectors refuse it, any-port
        // and opaque ones take it.
        let later = v4(PROTO_TCP, &[0; 20], 0x0010);
        assert!(!m(&https, &later));
        assert!(m(&ports("[tcp]"), &later));
        assert!(m(&ports("[tcp/opaque]"), &later));
        assert!(!m(&ports("[tcp/opaque]"), &tcp(1, 443)));
        // ICMP: type in the high byte, code in the low byte.
        let echo = v4(PROTO_ICMP, &[8, 0, 0, 0], 0);
        let reply = v4(PROTO_ICMP, &[0, 0, 0, 0], 0);
        let frag_needed = v4(PROTO_ICMP, &[3, 4, 0, 0], 0);
        let unreachable = v4(PROTO_ICMP, &[3, 1, 0, 0], 0);
        assert!(m(&ports("[icmp/8]"), &echo));
        assert!(!m(&ports("[icmp/8]"), &reply));
        assert!(m(&ports("[icmp/3/4]"), &frag_needed));
        assert!(!m(&ports("[icmp/3/4]"), &unreachable));
        assert!(m(&ports("[icmp/3]"), &unreachable));
        assert!(m(&ports("[icmp]"), &reply));
        assert!(!m(&ports("[icmp]"), &tcp(1, 2)));
        // Unreadable transport: only the any selector.
        assert!(Ports::ANY.admits(None, None));
        assert!(!ports("[tcp]").admits(None, None));
    }

    #[test]
    fn narrower_selectors_sort_first() {
        let mut v = [
            ports(""),
            ports("[tcp]"),
            ports("[tcp/443]"),
            ports("[tcp/1024-65535]"),
            ports("[/53]"),
        ];
        v.sort_by_key(|p| std::cmp::Reverse(p.specificity()));
        assert_eq!(v[0], ports("[tcp/443]"));
        assert_eq!(v[1], ports("[tcp/1024-65535]"));
        assert_eq!(v[2], ports("[tcp]"));
        assert_eq!(v[3], ports("[/53]"));
        assert_eq!(v[4], Ports::ANY);
    }

    #[test]
    fn inbound_pairs_each_side_with_its_port() {
        let s = PortSelectors::of(&[sel("10.2.0.0/24[tcp/443]")], &[sel("10.1.0.0/24")]).unwrap();
        let ok = |p: &[u8]| s.admits_inbound(p);
        // Inbound packet: from the peer's 10.1/24 to our 10.2.0.2:443.
        assert!(ok(&tcp(40000, 443)));
        assert!(!ok(&tcp(443, 40000)), "source port 443 is not ours");
        assert!(!ok(&v4(PROTO_ICMP, &[8, 0, 0, 0], 0)));
        let mut elsewhere = tcp(40000, 443);
        elsewhere[19] = 9;
        elsewhere[18] = 9;
        assert!(!ok(&elsewhere), "10.2.9.9 is outside 10.2.0.0/24");
        assert_eq!(
            PortSelectors::of(&[sel("10.2.0.0/24")], &[sel("10.1.0.0/24")]),
            None
        );
    }
}
