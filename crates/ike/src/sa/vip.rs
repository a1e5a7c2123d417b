//! Virtual IPs in IKE_AUTH (RFC 7296 §3.15): a client's CFG_REQUEST, the gateway's CFG_REPLY
//! with an address from each of the connection's pools the client asked for ([`crate::pool`]:
//! an IPv4 one for INTERNAL_IP4_ADDRESS, an IPv6 one for INTERNAL_IP6_ADDRESS), and the
//! CHILD_SAs narrowed to those addresses (a dual-stack client: one CHILD_SA with its /32 and
//! its /128). The leases live as long as the client's IKE SA (moving to its rekeyed successor)
//! and are given back when it closes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Ctx, IkeSa};
use crate::config::{PeerConfig, VipRequest, VipRole};
use crate::events::Event;
use crate::ts;
use crate::wire::{CpPayload, Payload, Payloads, TrafficSelector, CFG_REPLY, CFG_REQUEST};

/// Configuration attribute types (RFC 7296 §3.15.1).
pub const INTERNAL_IP4_ADDRESS: u16 = 1;
pub const INTERNAL_IP4_DNS: u16 = 3;
pub const INTERNAL_IP6_ADDRESS: u16 = 8;
pub const INTERNAL_IP6_DNS: u16 = 10;
pub const INTERNAL_IP4_SUBNET: u16 = 13;
pub const INTERNAL_IP6_SUBNET: u16 = 15;

/// An attribute value that is neither empty (a request for any value) nor of its type's
/// length: the peer is broken; the attribute is ignored and counted as malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadLength {
    pub attribute: u16,
    pub len: usize,
}

/// The value of an address attribute (INTERNAL_IP4_ADDRESS/DNS: 4 bytes; INTERNAL_IP6_DNS: 16
/// bytes; INTERNAL_IP6_ADDRESS and INTERNAL_IP6_SUBNET: 16 bytes and a prefix length, RFC 7296
/// §3.15.1). An IPv6 address always goes with prefix length 128 (one address per client).
pub fn encode_address(attribute: u16, a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) if matches!(attribute, INTERNAL_IP6_ADDRESS | INTERNAL_IP6_SUBNET) => {
            let mut v = a.octets().to_vec();
            v.push(128);
            v
        }
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// An address attribute's value: `Ok(None)` for an empty value (a request for any address) or
/// the unspecified address (what some clients send to mean the same), `Ok(Some((address,
/// prefix length)))`, or `Err` when its length fits neither. A prefix length above 128 is
/// malformed too. Attributes of other types are `Ok(None)`.
pub fn decode_address(attribute: u16, v: &[u8]) -> Result<Option<(IpAddr, u8)>, BadLength> {
    let bad = || BadLength {
        attribute,
        len: v.len(),
    };
    if v.is_empty() {
        return Ok(None);
    }
    let (a, len) = match attribute {
        INTERNAL_IP4_ADDRESS | INTERNAL_IP4_DNS => {
            let o = <[u8; 4]>::try_from(v).map_err(|_| bad())?;
            (IpAddr::V4(Ipv4Addr::from(o)), 32)
        }
        INTERNAL_IP6_DNS => {
            let o = <[u8; 16]>::try_from(v).map_err(|_| bad())?;
            (IpAddr::V6(Ipv6Addr::from(o)), 128)
        }
        INTERNAL_IP6_ADDRESS => {
            let (o, len) = v.split_at_checked(16).ok_or_else(bad)?;
            let o = <[u8; 16]>::try_from(o).map_err(|_| bad())?;
            match len {
                [l] if *l <= 128 => (IpAddr::V6(Ipv6Addr::from(o)), *l),
                _ => return Err(bad()),
            }
        }
        _ => return Ok(None),
    };
    Ok((!a.is_unspecified()).then_some((a, len)))
}

/// An IKE SA's virtual IPs: at most one per family, IPv4 first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vip {
    pub addresses: Vec<IpAddr>,
    /// Leased from our pools (we are the gateway): given back when the SA closes.
    pub leased: bool,
}

/// The client's request: an address and DNS servers of each family in `want`, values empty
/// ("any").
pub(crate) fn request(want: VipRequest) -> Payload {
    let mut attributes = Vec::new();
    if want.v4 {
        attributes.push((INTERNAL_IP4_ADDRESS, Vec::new()));
        attributes.push((INTERNAL_IP4_DNS, Vec::new()));
    }
    if want.v6 {
        attributes.push((INTERNAL_IP6_ADDRESS, Vec::new()));
        attributes.push((INTERNAL_IP6_DNS, Vec::new()));
    }
    Payload::Cp(CpPayload {
        cfg_type: CFG_REQUEST,
        attributes,
    })
}

/// `ts` as a split-tunnel attribute when it is a prefix: INTERNAL_IP4_SUBNET (address and
/// netmask) or INTERNAL_IP6_SUBNET (address and prefix length).
fn subnet_attribute(t: &TrafficSelector) -> Option<(u16, Vec<u8>)> {
    let (start, end, bits, ty) = match (t.start, t.end) {
        (IpAddr::V4(s), IpAddr::V4(e)) => (
            u128::from(u32::from(s)),
            u128::from(u32::from(e)),
            32,
            INTERNAL_IP4_SUBNET,
        ),
        (IpAddr::V6(s), IpAddr::V6(e)) => (u128::from(s), u128::from(e), 128, INTERNAL_IP6_SUBNET),
        _ => return None,
    };
    let host = start ^ end;
    // A prefix: the host part is all ones and the start has none of it.
    if host.checked_add(1).is_some_and(|n| !n.is_power_of_two()) || start & host != 0 {
        return None;
    }
    let len = bits - (128 - host.leading_zeros()) as u8;
    Some(match t.start {
        IpAddr::V4(s) => {
            let mask = !(host as u32);
            (ty, [s.octets(), mask.to_be_bytes()].concat())
        }
        IpAddr::V6(s) => {
            let mut v = s.octets().to_vec();
            v.push(len);
            (ty, v)
        }
    })
}

/// The addresses of attributes `ty` in `attrs` (malformed ones counted and left out).
fn addresses_of(ctx: &mut Ctx, attrs: &[(u16, Vec<u8>)], ty: u16) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for (t, v) in attrs.iter().filter(|(t, _)| *t == ty) {
        match decode_address(*t, v) {
            Ok(Some((a, _))) => out.push(a),
            Ok(None) => {}
            Err(_) => ctx.stats.malformed += 1,
        }
    }
    out
}

impl IkeSa {
    /// Gateway: answers the client's CFG_REQUEST with an address from `conn`'s pool of each
    /// family it asked for (INTERNAL_IP4_ADDRESS, INTERNAL_IP6_ADDRESS) that the connection
    /// has: a client that asks for IPv4 only gets IPv4 only from a dual-stack connection.
    /// DNS servers and split-tunnel subnets are sent for the families it got (a resolver the
    /// client has no address of its family for is of no use to it).
    /// `Ok(None)`: nothing asked (or this is no remote-access connection); `Err`: no address
    /// at all (INTERNAL_ADDRESS_FAILURE, with the reason to log). One family failing while
    /// the other is leased is no failure: the client gets what could be given.
    pub(crate) fn assign_vip(
        &mut self,
        ctx: &mut Ctx,
        conn: &PeerConfig,
        payloads: &[Payload],
        owner: &str,
    ) -> Result<Option<Payload>, String> {
        let VipRole::Assign(cfg) = &conn.vip else {
            return Ok(None);
        };
        let Some(req) = payloads.cp().filter(|c| c.cfg_type == CFG_REQUEST) else {
            return Ok(None);
        };
        // What the client asks for, by family: (asked, the address it would like).
        let mut asked = [(false, None), (false, None)];
        for (t, v) in &req.attributes {
            let fam = match *t {
                INTERNAL_IP4_ADDRESS => 0,
                INTERNAL_IP6_ADDRESS => 1,
                _ => continue,
            };
            asked[fam].0 = true;
            match decode_address(*t, v) {
                Ok(Some((a, _))) => asked[fam].1 = asked[fam].1.or(Some(a)),
                Ok(None) => {}
                // A broken preference is no preference; the request still stands.
                Err(_) => ctx.stats.malformed += 1,
            }
        }
        if !asked[0].0 && !asked[1].0 {
            return Ok(None);
        }
        let no_pool = || {
            format!(
                "connection '{}' has no usable address pool ({}) of the family asked for",
                conn.name,
                cfg.ranges.join(", ")
            )
        };
        let pools = ctx.pools.get_mut(&conn.name).ok_or_else(no_pool)?;
        let mut addresses = Vec::new();
        let mut failures = Vec::new();
        for (v6, (want, requested)) in [false, true].into_iter().zip(asked) {
            if !want {
                continue;
            }
            let Some(pool) = pools.iter_mut().find(|p| p.is_v6() == v6) else {
                continue;
            };
            match pool.acquire(owner, requested, ctx.now) {
                Ok(a) => addresses.push(a),
                Err(e) => failures.push(e.to_string()),
            }
        }
        if addresses.is_empty() {
            return Err(if failures.is_empty() {
                no_pool()
            } else {
                failures.join("; ")
            });
        }
        let has = |v6: bool| addresses.iter().any(|a| a.is_ipv6() == v6);
        let mut attributes = Vec::new();
        for &a in &addresses {
            let t = if a.is_ipv6() {
                INTERNAL_IP6_ADDRESS
            } else {
                INTERNAL_IP4_ADDRESS
            };
            attributes.push((t, encode_address(t, a)));
        }
        let dns: Vec<IpAddr> = cfg
            .dns
            .iter()
            .copied()
            .filter(|d| has(d.is_ipv6()))
            .collect();
        for &d in &dns {
            let t = if d.is_ipv6() {
                INTERNAL_IP6_DNS
            } else {
                INTERNAL_IP4_DNS
            };
            attributes.push((t, encode_address(t, d)));
        }
        // Split tunnel: what the client should send through us (our selectors).
        attributes.extend(
            conn.local_ts
                .iter()
                .filter(|t| has(t.start.is_ipv6()))
                .filter_map(subnet_attribute),
        );
        self.vip = Some(Vip {
            addresses: addresses.clone(),
            leased: true,
        });
        ctx.events.push_back(Event::VirtualIp {
            conn: conn.name.clone(),
            ike: self.id,
            addresses,
            dns,
            to_peer: true,
            eap_identity: self.eap_identity.clone(),
        });
        Ok(Some(Payload::Cp(CpPayload {
            cfg_type: CFG_REPLY,
            attributes,
        })))
    }

    /// Client: the gateway's CFG_REPLY, if we asked.
    pub(crate) fn read_vip(&mut self, ctx: &mut Ctx, conn: &PeerConfig, payloads: &[Payload]) {
        if !matches!(conn.vip, VipRole::Request(_)) {
            return;
        }
        let Some(reply) = payloads.cp().filter(|c| c.cfg_type == CFG_REPLY) else {
            return;
        };
        let mut addresses = Vec::new();
        for (ty, v6) in [(INTERNAL_IP4_ADDRESS, false), (INTERNAL_IP6_ADDRESS, true)] {
            // One address per family: the first.
            if let Some(&a) = addresses_of(ctx, &reply.attributes, ty).first() {
                debug_assert_eq!(a.is_ipv6(), v6);
                addresses.push(a);
            }
        }
        if addresses.is_empty() {
            return;
        }
        let mut dns = addresses_of(ctx, &reply.attributes, INTERNAL_IP4_DNS);
        dns.extend(addresses_of(ctx, &reply.attributes, INTERNAL_IP6_DNS));
        self.vip = Some(Vip {
            addresses: addresses.clone(),
            leased: false,
        });
        ctx.events.push_back(Event::VirtualIp {
            conn: conn.name.clone(),
            ike: self.id,
            addresses,
            dns,
            to_peer: false,
            eap_identity: None,
        });
    }

    /// Gives leased addresses back to their pools (the SA is closing; its owner keeps them for
    /// the pools' grace period).
    pub(crate) fn release_vip(&mut self, ctx: &mut Ctx) {
        if !self.vip.as_ref().is_some_and(|v| v.leased) {
            return;
        }
        let Some(vip) = self.vip.take() else { return };
        if let Some(pools) = self.conn.as_ref().and_then(|c| ctx.pools.get_mut(&c.name)) {
            for a in vip.addresses {
                for p in pools.iter_mut() {
                    p.release(a, ctx.now);
                }
            }
        }
    }

    /// What the peer's selectors (its TSi, our TSr as initiator... the peer's side) are
    /// narrowed to: its virtual IPs (a /32, a /128) when we leased it some, else the
    /// configured `remote_ts`.
    pub(crate) fn peer_selectors(&self, conn: &PeerConfig) -> Vec<TrafficSelector> {
        match &self.vip {
            Some(Vip {
                addresses,
                leased: true,
            }) => addresses
                .iter()
                .map(|&a| ts::from_prefix(a, if a.is_ipv6() { 128 } else { 32 }))
                .collect(),
            _ => conn.remote_ts.clone(),
        }
    }

    /// What our selectors (the responder's TSr) are narrowed to: `local_ts` of the families
    /// we leased the peer addresses of (a client given only an IPv4 address gets no IPv6
    /// selector, which would pair its /32 with an IPv6 prefix), else all of `local_ts`.
    pub(crate) fn own_selectors(&self, conn: &PeerConfig) -> Vec<TrafficSelector> {
        match &self.vip {
            Some(Vip {
                addresses,
                leased: true,
            }) => conn
                .local_ts
                .iter()
                .filter(|t| addresses.iter().any(|a| a.is_ipv6() == t.start.is_ipv6()))
                .cloned()
                .collect(),
            _ => conn.local_ts.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str, l: u8) -> TrafficSelector {
        ts::from_prefix(s.parse().unwrap(), l)
    }

    #[test]
    fn subnets_are_sent_for_prefixes_only() {
        assert_eq!(
            subnet_attribute(&p("10.2.0.0", 24)),
            Some((INTERNAL_IP4_SUBNET, vec![10, 2, 0, 0, 255, 255, 255, 0]))
        );
        assert_eq!(
            subnet_attribute(&p("0.0.0.0", 0)),
            Some((INTERNAL_IP4_SUBNET, vec![0, 0, 0, 0, 0, 0, 0, 0]))
        );
        assert_eq!(
            subnet_attribute(&p("10.2.0.7", 32)),
            Some((INTERNAL_IP4_SUBNET, vec![10, 2, 0, 7, 255, 255, 255, 255]))
        );
        let mut range = p("10.2.0.0", 24);
        range.end = "10.2.0.99".parse().unwrap();
        assert_eq!(subnet_attribute(&range), None);
        let mut v6 = vec![0x20, 0x01, 0x0d, 0xb8, 0, 1];
        v6.extend([0; 10]);
        v6.push(64);
        assert_eq!(
            subnet_attribute(&p("2001:db8:1::", 64)),
            Some((INTERNAL_IP6_SUBNET, v6))
        );
        let mut any6 = vec![0; 16];
        any6.push(0);
        assert_eq!(
            subnet_attribute(&p("::", 0)),
            Some((INTERNAL_IP6_SUBNET, any6))
        );
        let mut range6 = p("2001:db8:1::", 64);
        range6.end = "2001:db8:1::99".parse().unwrap();
        assert_eq!(subnet_attribute(&range6), None);
    }

    #[test]
    fn address_attributes_round_trip() {
        let cases: [(u16, &str, usize, u8); 4] = [
            (INTERNAL_IP4_ADDRESS, "10.99.0.7", 4, 32),
            (INTERNAL_IP4_DNS, "10.1.0.53", 4, 32),
            (INTERNAL_IP6_ADDRESS, "2001:db8:99::7", 17, 128),
            (INTERNAL_IP6_DNS, "2001:db8:1::53", 16, 128),
        ];
        for (t, a, len, prefix) in cases {
            let a: IpAddr = a.parse().unwrap();
            let v = encode_address(t, a);
            assert_eq!(v.len(), len, "attribute {t}");
            assert_eq!(decode_address(t, &v), Ok(Some((a, prefix))));
        }
        // The known bytes of INTERNAL_IP6_ADDRESS: address, then the prefix length.
        let v = encode_address(INTERNAL_IP6_ADDRESS, "2001:db8::1".parse().unwrap());
        assert_eq!(
            v,
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 128]
        );
        // A client's own prefix length is kept as it sent it.
        let mut v64 = v.clone();
        v64[16] = 64;
        assert_eq!(
            decode_address(INTERNAL_IP6_ADDRESS, &v64),
            Ok(Some(("2001:db8::1".parse().unwrap(), 64)))
        );
    }

    #[test]
    fn empty_and_unspecified_values_ask_for_any_address() {
        for t in [
            INTERNAL_IP4_ADDRESS,
            INTERNAL_IP4_DNS,
            INTERNAL_IP6_ADDRESS,
            INTERNAL_IP6_DNS,
        ] {
            assert_eq!(decode_address(t, &[]), Ok(None), "attribute {t}");
        }
        assert_eq!(decode_address(INTERNAL_IP4_ADDRESS, &[0; 4]), Ok(None));
        assert_eq!(decode_address(INTERNAL_IP6_ADDRESS, &[0; 17]), Ok(None));
        assert_eq!(decode_address(INTERNAL_IP6_DNS, &[0; 16]), Ok(None));
        // Not an address attribute: nothing to read.
        assert_eq!(decode_address(INTERNAL_IP4_SUBNET, &[1; 8]), Ok(None));
    }

    #[test]
    fn malformed_address_values_are_refused_with_their_length() {
        let mut v6 = vec![0x20, 0x01, 0x0d, 0xb8];
        v6.extend([0; 11]);
        v6.push(1);
        let cases: [(u16, Vec<u8>); 9] = [
            (INTERNAL_IP4_ADDRESS, vec![10, 0, 0]),
            (INTERNAL_IP4_ADDRESS, vec![10, 0, 0, 1, 0]),
            (INTERNAL_IP4_DNS, vec![10; 16]),
            // An IPv6 address without its prefix length (16 bytes), or with two.
            (INTERNAL_IP6_ADDRESS, v6.clone()),
            (INTERNAL_IP6_ADDRESS, [v6.clone(), vec![128, 0]].concat()),
            // A prefix length above 128.
            (INTERNAL_IP6_ADDRESS, [v6.clone(), vec![129]].concat()),
            (INTERNAL_IP6_ADDRESS, vec![1; 4]),
            // INTERNAL_IP6_DNS has no prefix length.
            (INTERNAL_IP6_DNS, [v6.clone(), vec![128]].concat()),
            (INTERNAL_IP6_DNS, vec![1; 4]),
        ];
        for (t, v) in cases {
            assert_eq!(
                decode_address(t, &v),
                Err(BadLength {
                    attribute: t,
                    len: v.len()
                }),
                "attribute {t}, {} bytes",
                v.len()
            );
        }
    }

    /// A gateway's answer to `attributes` from a client of a dual-stack connection
    /// (10.10.0.0/29, 2001:db8:99::/112, resolvers of both families, LAN 10.2.0.0/24 and
    /// 2001:db8:2::/64), and the malformed count after.
    fn answer(attributes: Vec<(u16, Vec<u8>)>) -> (Result<Option<Payload>, String>, u64) {
        use crate::config::VipPool;
        use crate::pool::AddressPool;
        use std::time::{Duration, Instant};
        let (_, mut conn) =
            crate::testkit::pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
        let ranges = ["10.10.0.0/29", "2001:db8:99::/112"];
        conn.vip = VipRole::Assign(VipPool {
            ranges: ranges.iter().map(|r| r.to_string()).collect(),
            grace: Duration::from_secs(60),
            dns: vec![
                "10.2.0.53".parse().unwrap(),
                "2001:db8:2::53".parse().unwrap(),
            ],
        });
        conn.local_ts = vec![p("10.2.0.0", 24), p("2001:db8:2::", 64)];
        let grace = Duration::from_secs(60);
        let mut out = super::super::ctx::Outputs::default();
        out.pools.insert(
            conn.name.clone(),
            ranges
                .iter()
                .map(|r| AddressPool::new(&conn.name, r, grace).unwrap())
                .collect(),
        );
        let cfg = crate::EndpointConfig::default();
        let mut rng = crate::crypto::TestRng::new(1);
        let now = Instant::now();
        let mut ctx = Ctx::new(now, Default::default(), &mut rng, &cfg, &mut out);
        let a = "192.0.2.1:4500".parse().unwrap();
        let b = "198.51.100.7:4500".parse().unwrap();
        let mut sa = IkeSa::new(1, false, 1, 2, a, b, now);
        let req = Payload::Cp(CpPayload {
            cfg_type: CFG_REQUEST,
            attributes,
        });
        let r = sa.assign_vip(&mut ctx, &conn, &[req], "alice");
        (r, out.stats.malformed)
    }

    fn reply_types(r: &Result<Option<Payload>, String>) -> Vec<(u16, usize)> {
        match r {
            Ok(Some(Payload::Cp(c))) => c.attributes.iter().map(|(t, v)| (*t, v.len())).collect(),
            other => panic!("no CFG_REPLY: {other:?}"),
        }
    }

    #[test]
    fn malformed_address_requests_are_counted_and_answered_as_requests_for_any() {
        // A 3-byte IPv4 address and a 16-byte IPv6 one (no prefix length): both counted, both
        // families still asked for, so both given.
        let (r, malformed) = answer(vec![
            (INTERNAL_IP4_ADDRESS, vec![10, 10, 0]),
            (INTERNAL_IP6_ADDRESS, vec![0x20; 16]),
        ]);
        assert_eq!(malformed, 2);
        assert_eq!(
            reply_types(&r),
            [
                (INTERNAL_IP4_ADDRESS, 4),
                (INTERNAL_IP6_ADDRESS, 17),
                (INTERNAL_IP4_DNS, 4),
                (INTERNAL_IP6_DNS, 16),
                (INTERNAL_IP4_SUBNET, 8),
                (INTERNAL_IP6_SUBNET, 17),
            ]
        );
    }

    #[test]
    fn a_requested_ipv6_address_is_honoured_and_one_family_asked_is_one_family_given() {
        let want: Ipv6Addr = "2001:db8:99::42".parse().unwrap();
        let (r, malformed) = answer(vec![(
            INTERNAL_IP6_ADDRESS,
            encode_address(INTERNAL_IP6_ADDRESS, IpAddr::V6(want)),
        )]);
        assert_eq!(malformed, 0);
        let Ok(Some(Payload::Cp(c))) = &r else {
            panic!("{r:?}")
        };
        assert_eq!(
            c.attributes[0],
            (
                INTERNAL_IP6_ADDRESS,
                encode_address(INTERNAL_IP6_ADDRESS, IpAddr::V6(want))
            )
        );
        assert_eq!(
            reply_types(&r),
            [
                (INTERNAL_IP6_ADDRESS, 17),
                (INTERNAL_IP6_DNS, 16),
                (INTERNAL_IP6_SUBNET, 17)
            ]
        );
        // No address attribute at all: nothing asked.
        let (r, _) = answer(vec![(INTERNAL_IP6_DNS, vec![])]);
        assert_eq!(r, Ok(None));
    }

    #[test]
    fn requests_ask_for_the_families_configured() {
        let types = |want| match request(want) {
            Payload::Cp(c) => c.attributes.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
            _ => unreachable!(),
        };
        assert_eq!(
            types(VipRequest::V4),
            [INTERNAL_IP4_ADDRESS, INTERNAL_IP4_DNS]
        );
        assert_eq!(
            types(VipRequest::V6),
            [INTERNAL_IP6_ADDRESS, INTERNAL_IP6_DNS]
        );
        assert_eq!(
            types(VipRequest::DUAL),
            [
                INTERNAL_IP4_ADDRESS,
                INTERNAL_IP4_DNS,
                INTERNAL_IP6_ADDRESS,
                INTERNAL_IP6_DNS
            ]
        );
    }
}
