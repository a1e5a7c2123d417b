//! Traffic selector arithmetic: narrowing (RFC 7296 2.9) is intersection of ranges.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::TrafficSelector;

fn key(a: IpAddr) -> (u8, u128) {
    match a {
        IpAddr::V4(v) => (4, u32::from(v) as u128),
        IpAddr::V6(v) => (6, u128::from(v)),
    }
}

fn addr(family: u8, v: u128) -> IpAddr {
    if family == 4 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

/// The selector covering `prefix/len`, any protocol and port.
pub fn from_prefix(prefix: IpAddr, len: u8) -> TrafficSelector {
    let (fam, v) = key(prefix);
    let bits: u32 = if fam == 4 { 32 } else { 128 };
    let len = u32::from(len).min(bits);
    let host_mask: u128 = if len == bits {
        0
    } else if bits - len >= 128 {
        u128::MAX
    } else {
        (1u128 << (bits - len)) - 1
    };
    TrafficSelector {
        ip_protocol: 0,
        start_port: 0,
        end_port: 65535,
        start: addr(fam, v & !host_mask),
        end: addr(fam, v | host_mask),
    }
}

fn is_opaque(t: &TrafficSelector) -> bool {
    t.start_port == 65535 && t.end_port == 0
}

fn is_any_port(t: &TrafficSelector) -> bool {
    t.start_port == 0 && t.end_port == 65535
}

/// The part of `a` that is also in `b`, if any.
pub fn intersect(a: &TrafficSelector, b: &TrafficSelector) -> Option<TrafficSelector> {
    let (fa, sa) = key(a.start);
    let (_, ea) = key(a.end);
    let (fb, sb) = key(b.start);
    let (_, eb) = key(b.end);
    if fa != fb {
        return None;
    }
    let proto = match (a.ip_protocol, b.ip_protocol) {
        (0, p) | (p, 0) => p,
        (p, q) if p == q => p,
        _ => return None,
    };
    // OPAQUE ports (RFC 7296 3.13.1: start 65535, end 0) are inside ANY and only inside
    // ANY or OPAQUE; an ordinary range intersects by its bounds.
    let (sp, ep) = match (is_opaque(a), is_opaque(b)) {
        (true, true) => (65535, 0),
        (true, false) if is_any_port(b) => (65535, 0),
        (false, true) if is_any_port(a) => (65535, 0),
        (true, _) | (_, true) => return None,
        _ => {
            let r = (a.start_port.max(b.start_port), a.end_port.min(b.end_port));
            if r.0 > r.1 {
                return None;
            }
            r
        }
    };
    let (s, e) = (sa.max(sb), ea.min(eb));
    if s > e {
        return None;
    }
    Some(TrafficSelector {
        ip_protocol: proto,
        start_port: sp,
        end_port: ep,
        start: addr(fa, s),
        end: addr(fa, e),
    })
}

/// Responder narrowing: every non-empty intersection of a proposed selector with a configured
/// one, in the proposer's order, without duplicates. Empty means TS_UNACCEPTABLE.
pub fn narrow(
    proposed: &[TrafficSelector],
    configured: &[TrafficSelector],
) -> Vec<TrafficSelector> {
    let mut out: Vec<TrafficSelector> = Vec::new();
    for p in proposed {
        for c in configured {
            if let Some(x) = intersect(p, c) {
                if !out.contains(&x) {
                    out.push(x);
                }
            }
        }
    }
    out
}

/// Whether `inner` lies entirely within `outer`.
pub fn within(inner: &TrafficSelector, outer: &TrafficSelector) -> bool {
    intersect(inner, outer).as_ref() == Some(inner)
}

/// Initiator check of a response: every returned selector must be inside one we proposed.
pub fn all_within(returned: &[TrafficSelector], proposed: &[TrafficSelector]) -> bool {
    !returned.is_empty()
        && returned
            .iter()
            .all(|r| proposed.iter().any(|p| within(r, p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> TrafficSelector {
        let (a, l) = s.split_once('/').unwrap();
        from_prefix(a.parse().unwrap(), l.parse().unwrap())
    }

    #[test]
    fn prefixes_become_ranges() {
        let t = ts("10.1.0.0/24");
        assert_eq!(t.start, "10.1.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(t.end, "10.1.0.255".parse::<IpAddr>().unwrap());
        let t = ts("0.0.0.0/0");
        assert_eq!(t.end, "255.255.255.255".parse::<IpAddr>().unwrap());
        let t = ts("::/0");
        assert_eq!(t.end, IpAddr::V6(Ipv6Addr::from(u128::MAX)));
        let t = ts("2001:db8::1/128");
        assert_eq!(t.start, t.end);
    }

    #[test]
    fn narrowing_intersects_in_proposer_order() {
        let n = narrow(
            &[ts("10.0.0.0/8")],
            &[ts("10.2.0.0/24"), ts("192.168.0.0/16")],
        );
        assert_eq!(n, vec![ts("10.2.0.0/24")]);
        assert!(narrow(&[ts("10.0.0.0/8")], &[ts("192.168.0.0/16")]).is_empty());
        assert!(narrow(&[ts("10.0.0.0/8")], &[ts("::/0")]).is_empty());
        let mut tcp = ts("10.2.0.0/24");
        tcp.ip_protocol = 6;
        tcp.start_port = 443;
        tcp.end_port = 443;
        assert_eq!(
            narrow(&[ts("10.0.0.0/8")], &[tcp.clone()]),
            vec![tcp.clone()]
        );
        let mut udp = tcp.clone();
        udp.ip_protocol = 17;
        assert!(intersect(&tcp, &udp).is_none());
        // Port ranges intersect by bounds; ICMP type/code ranges the same way.
        let mut high = tcp.clone();
        (high.start_port, high.end_port) = (1024, 65535);
        let mut mid = tcp.clone();
        (mid.start_port, mid.end_port) = (1000, 2000);
        assert_eq!(
            intersect(&high, &mid).map(|t| (t.start_port, t.end_port)),
            Some((1024, 2000))
        );
        let mut echo = ts("10.2.0.0/24");
        (echo.ip_protocol, echo.start_port, echo.end_port) = (1, 0x0800, 0x08ff);
        let mut unreach = echo.clone();
        (unreach.start_port, unreach.end_port) = (0x0300, 0x03ff);
        assert!(intersect(&echo, &unreach).is_none());
        assert_eq!(
            narrow(&[ts("10.0.0.0/8")], &[echo.clone()]),
            vec![echo.clone()]
        );
        // OPAQUE: within ANY, not within a range.
        let mut opaque = udp.clone();
        (opaque.start_port, opaque.end_port) = (65535, 0);
        let mut any_udp = ts("10.2.0.0/24");
        any_udp.ip_protocol = 17;
        assert_eq!(intersect(&opaque, &any_udp), Some(opaque.clone()));
        assert_eq!(intersect(&any_udp, &opaque), Some(opaque.clone()));
        assert!(intersect(&opaque, &udp).is_none());
        assert!(within(&opaque, &any_udp));
    }

    /// IPv6 rows: ranges that are inverted (addresses or ports), of the other family or
    /// outside the configuration narrow to nothing (TS_UNACCEPTABLE); a proposal of both
    /// families narrows to the family configured; a response wider than the proposal or
    /// inverted is refused by the initiator.
    #[test]
    fn ipv6_ranges_inverted_or_foreign_are_refused() {
        let v6 = |s: &str| -> IpAddr { s.parse().unwrap() };
        let configured = [ts("2001:db8:1::/64")];
        let mut inverted = ts("2001:db8:1::/64");
        std::mem::swap(&mut inverted.start, &mut inverted.end);
        assert!(narrow(&[inverted.clone()], &configured).is_empty());
        assert!(narrow(&[ts("2001:db8:1::/64")], &[inverted.clone()]).is_empty());
        // Inverted by a single address: ::2 to ::1.
        let mut close = ts("2001:db8:1::1/128");
        close.start = v6("2001:db8:1::2");
        assert!(intersect(&close, &configured[0]).is_none());
        // Inverted ports that are not OPAQUE.
        let mut ports = ts("2001:db8:1::/64");
        (ports.ip_protocol, ports.start_port, ports.end_port) = (6, 2000, 1000);
        assert!(narrow(&[ports], &configured).is_empty());
        // Other family or outside: nothing.
        assert!(narrow(&[ts("10.1.0.0/24")], &configured).is_empty());
        assert!(narrow(&[ts("2001:db8:9::/64")], &configured).is_empty());
        assert!(narrow(&[ts("::ffff:10.1.0.0/120")], &[ts("10.1.0.0/24")]).is_empty());
        // Both families proposed: each narrows to its own family's configuration.
        assert_eq!(
            narrow(
                &[ts("0.0.0.0/0"), ts("::/0")],
                &[ts("2001:db8:1::/64"), ts("10.1.0.0/24")]
            ),
            vec![ts("10.1.0.0/24"), ts("2001:db8:1::/64")]
        );
        // The initiator refuses a wider, foreign or inverted answer.
        assert!(all_within(&[ts("2001:db8:1::/65")], &configured));
        assert!(!all_within(&[ts("2001:db8:1::/63")], &configured));
        assert!(!all_within(&[ts("10.1.0.0/24")], &configured));
        assert!(!all_within(&[inverted], &configured));
    }

    #[test]
    fn responses_must_stay_within_the_proposal() {
        assert!(all_within(&[ts("10.2.0.0/25")], &[ts("10.2.0.0/24")]));
        assert!(!all_within(&[ts("10.2.0.0/23")], &[ts("10.2.0.0/24")]));
        assert!(!all_within(&[], &[ts("10.2.0.0/24")]));
    }
}
