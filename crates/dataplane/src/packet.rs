//! Inner IP packets as the fast path reads them: the version, addresses, protocol and header
//! lengths of the IPv4/IPv6 packets that cross the TUN device, and the numbers of the
//! virtio-net header that an offloading TUN device puts before them. One place for both, so
//! policy lookup ([`crate::tables`]), super-packet splitting ([`crate::offload`]) and merging
//! ([`crate::gro`]) read headers the same way.
//!
//! Every parser takes the packet's bytes from its first IP header byte and returns `None`
//! when they are too short for what it reads: a truncated or garbage packet is never a panic.

use crate::prefix::Prefix;

/// IPv4 header without options.
pub const IPV4_MIN_HEADER: usize = 20;
/// IPv6 fixed header.
pub const IPV6_HEADER: usize = 40;
/// UDP header.
pub const UDP_HEADER: usize = 8;
/// TCP header without options.
pub const TCP_MIN_HEADER: usize = 20;

/// IP protocol numbers (IANA) the fast path looks at.
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_SCTP: u8 = 132;

/// The virtio-net header of a TUN device opened with IFF_VNET_HDR (`struct virtio_net_hdr`,
/// linux/virtio_net.h): its length and the values of its `flags` and `gso_type` fields.
pub mod vnet {
    /// `struct virtio_net_hdr` (without num_buffers): what TUNSETVNETHDRSZ leaves at its
    /// default.
    pub const HDR_LEN: usize = 10;
    /// VIRTIO_NET_HDR_F_NEEDS_CSUM: the checksum at `csum_start + csum_offset` is partial.
    pub const F_NEEDS_CSUM: u8 = 1;
    /// VIRTIO_NET_HDR_GSO_*: what kind of super-packet follows.
    pub const GSO_NONE: u8 = 0;
    pub const GSO_TCPV4: u8 = 1;
    pub const GSO_TCPV6: u8 = 4;
    pub const GSO_UDP_L4: u8 = 5;
    /// Flag bit on `gso_type`: the TCP super-packet has ECN's CWR set.
    pub const GSO_ECN: u8 = 0x80;
}

/// The IP version of `pkt` (4 or 6 for packets we handle), from its first nibble.
#[inline]
pub fn version(pkt: &[u8]) -> Option<u8> {
    pkt.first().map(|b| b >> 4)
}

/// An IPv4 header's length from its IHL field, in bytes (not checked against the packet).
#[inline]
pub fn ipv4_header_len(pkt: &[u8]) -> Option<usize> {
    pkt.first().map(|b| usize::from(b & 0x0f) * 4)
}

/// Whether an IPv4 packet is a fragment: more fragments follow, or its offset is not zero.
#[inline]
pub fn ipv4_is_fragment(pkt: &[u8]) -> Option<bool> {
    let f = pkt.get(6..8)?;
    Some(u16::from_be_bytes([f[0], f[1]]) & 0x3fff != 0)
}

/// IPv6: the transport protocol and its header's offset, past the extension headers that GRO
/// merges across (hop-by-hop and destination options). None for a routing header (the
/// checksum's pseudo-header would need the final destination from it), a fragment header (GSO
/// never makes fragments), more than 8 extension headers, or a chain cut short.
pub fn ipv6_transport(pkt: &[u8]) -> Option<(u8, usize)> {
    let mut next = *pkt.get(6)?;
    let mut off = IPV6_HEADER;
    for _ in 0..8 {
        match next {
            0 | 60 => {
                next = *pkt.get(off)?;
                off += (usize::from(*pkt.get(off + 1)?) + 1) * 8;
            }
            43 | 44 => return None,
            _ => return Some((next, off)),
        }
    }
    None
}

/// The length of the TCP header at offset `at` of `pkt`, from its data offset field, in bytes
/// (not checked against the packet).
#[inline]
pub fn tcp_header_len(pkt: &[u8], at: usize) -> Option<usize> {
    pkt.get(at + 12).map(|b| usize::from(b >> 4) * 4)
}

/// The DSCP of an IPv4 (`v6` false) or IPv6 packet, in place in the TOS / traffic class byte
/// (the low two ECN bits cleared): what an outer header copies with `copy_dscp`. The caller
/// has checked the header is there.
#[inline]
pub fn dscp_byte(pkt: &[u8], v6: bool) -> u8 {
    let tos = if v6 {
        (pkt[0] << 4) | (pkt[1] >> 4)
    } else {
        pkt[1]
    };
    tos & 0xfc
}

/// Writes DSCP `tos & 0xfc` into an IPv4 or IPv6 packet's TOS / traffic class, keeping its
/// ECN bits, and for IPv4 fixes the header checksum incrementally (RFC 1624). The caller has
/// checked the header is there (`inner_addrs`).
pub fn set_dscp(pkt: &mut [u8], tos: u8) {
    let dscp = tos & 0xfc;
    match pkt[0] >> 4 {
        4 => {
            let old = u16::from_be_bytes([pkt[0], pkt[1]]);
            pkt[1] = dscp | (pkt[1] & 0x03);
            let new = u16::from_be_bytes([pkt[0], pkt[1]]);
            let hc = u16::from_be_bytes([pkt[10], pkt[11]]);
            let sum = u64::from(!hc) + u64::from(!old) + u64::from(new);
            pkt[10..12].copy_from_slice(&crate::checksum::fold(sum).to_be_bytes());
        }
        6 => {
            // Traffic class: low nibble of byte 0, high nibble of byte 1.
            let tc = dscp | ((pkt[1] >> 4) & 0x03);
            pkt[0] = (pkt[0] & 0xf0) | (tc >> 4);
            pkt[1] = (pkt[1] & 0x0f) | (tc << 4);
        }
        _ => {}
    }
}

/// An address pulled out of an inner packet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InnerAddr {
    V4(u32),
    V6(u128),
}

impl InnerAddr {
    /// Whether one of `set` holds this address.
    #[inline]
    pub(crate) fn within(self, set: &[Prefix]) -> bool {
        match self {
            InnerAddr::V4(a) => set.iter().any(|p| p.contains_v4(a)),
            InnerAddr::V6(a) => set.iter().any(|p| p.contains_v6(a)),
        }
    }

    /// Whether this is an IPv6 address that never leaves its link: link-local unicast
    /// (fe80::/10) or interface- and link-scoped multicast (ff01::/16, ff02::/16, RFC 4291
    /// 2.7). IPv4's 169.254/16 is not included: route-based tunnels run BGP over it.
    #[inline]
    pub fn is_link_scoped_v6(self) -> bool {
        match self {
            InnerAddr::V4(_) => false,
            InnerAddr::V6(a) => {
                let top = (a >> 112) as u16;
                top & 0xffc0 == 0xfe80 || top & 0xff0f == 0xff01 || top & 0xff0f == 0xff02
            }
        }
    }

    #[inline]
    pub(crate) fn matches(self, p: &Prefix) -> bool {
        match self {
            InnerAddr::V4(a) => p.contains_v4(a),
            InnerAddr::V6(a) => p.contains_v6(a),
        }
    }
}

/// Source and destination of an inner IPv4/IPv6 packet, or `None` when the header is not a
/// plausible IP header.
#[inline]
pub fn inner_addrs(pkt: &[u8]) -> Option<(InnerAddr, InnerAddr)> {
    match pkt.first()? >> 4 {
        4 if pkt.len() >= 20 => {
            let src = u32::from_be_bytes(pkt[12..16].try_into().ok()?);
            let dst = u32::from_be_bytes(pkt[16..20].try_into().ok()?);
            Some((InnerAddr::V4(src), InnerAddr::V4(dst)))
        }
        6 if pkt.len() >= 40 => {
            let src = u128::from_be_bytes(pkt[8..24].try_into().ok()?);
            let dst = u128::from_be_bytes(pkt[24..40].try_into().ok()?);
            Some((InnerAddr::V6(src), InnerAddr::V6(dst)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_scoped_ipv6_addresses() {
        let v6 = |s: &str| InnerAddr::V6(u128::from(s.parse::<std::net::Ipv6Addr>().unwrap()));
        for a in [
            "ff02::16",
            "ff02::1:ff00:1",
            "ff01::1",
            "fe80::1",
            "febf::1",
            "ff12::2",
        ] {
            assert!(v6(a).is_link_scoped_v6(), "{a}");
        }
        for a in [
            "ff05::2",
            "ff0e::1",
            "fec0::1",
            "2001:db8::1",
            "::",
            "ff00::",
        ] {
            assert!(!v6(a).is_link_scoped_v6(), "{a}");
        }
        assert!(!InnerAddr::V4(0xa9fe_0001).is_link_scoped_v6());
    }

    fn v4_packet() -> [u8; 40] {
        let mut p = [0u8; 40];
        p[0] = 0x46; // IHL 6: 24 bytes
        p[6] = 0x40; // DF only: not a fragment
        p[9] = PROTO_UDP;
        p[12..16].copy_from_slice(&[10, 1, 0, 2]);
        p[16..20].copy_from_slice(&[10, 2, 0, 2]);
        p
    }

    fn v6_packet(next: u8) -> Vec<u8> {
        let mut p = vec![0u8; 64];
        p[0] = 0x60;
        p[6] = next;
        p[8..24].copy_from_slice(&1u128.to_be_bytes());
        p[24..40].copy_from_slice(&2u128.to_be_bytes());
        p
    }

    #[test]
    fn ipv4_fields() {
        let mut p = v4_packet();
        assert_eq!(version(&p), Some(4));
        assert_eq!(ipv4_header_len(&p), Some(24));
        assert_eq!(ipv4_is_fragment(&p), Some(false));
        assert_eq!(
            inner_addrs(&p),
            Some((InnerAddr::V4(0x0a01_0002), InnerAddr::V4(0x0a02_0002)))
        );
        p[6] = 0x20; // more fragments
        assert_eq!(ipv4_is_fragment(&p), Some(true));
        p[6] = 0;
        p[7] = 1; // offset 8
        assert_eq!(ipv4_is_fragment(&p), Some(true));
        // TCP header at 20 with data offset 8 words.
        p[32] = 8 << 4;
        assert_eq!(tcp_header_len(&p, 20), Some(32));
    }

    #[test]
    fn ipv6_fields_and_extension_headers() {
        let p = v6_packet(PROTO_TCP);
        assert_eq!(version(&p), Some(6));
        assert_eq!(inner_addrs(&p), Some((InnerAddr::V6(1), InnerAddr::V6(2))));
        assert_eq!(ipv6_transport(&p), Some((PROTO_TCP, 40)));
        // A destination options header of 16 bytes, then UDP.
        let mut d = v6_packet(60);
        d[40] = PROTO_UDP;
        d[41] = 1;
        assert_eq!(ipv6_transport(&d), Some((PROTO_UDP, 56)));
        assert_eq!(ipv6_transport(&v6_packet(43)), None, "routing header");
        assert_eq!(ipv6_transport(&v6_packet(44)), None, "fragment header");
    }

    #[test]
    fn ipv6_extension_header_rows() {
        // Hop-by-hop (8) then destination options (16) then TCP at 64.
        let mut p = v6_packet(0);
        p[40] = 60;
        p[48] = PROTO_TCP;
        p[49] = 1;
        p.resize(84, 0);
        assert_eq!(ipv6_transport(&p), Some((PROTO_TCP, 64)));
        // Cut inside the second header's length byte: no answer rather than a guess.
        assert_eq!(ipv6_transport(&p[..49]), None);
        // A header whose length runs past the packet: the offset is returned as the chain
        // states it, past the end; every caller reads the transport through `get` (the
        // offload, SYN and ICMPv6 rows check it) and finds nothing there.
        let mut long = v6_packet(60);
        long[40] = PROTO_UDP;
        long[41] = 255;
        assert_eq!(ipv6_transport(&long), Some((PROTO_UDP, 40 + 256 * 8)));
        assert!(long.get(40 + 256 * 8..).is_none());
        // Eight destination options headers are walked, a ninth is too many.
        let chain = |n: usize| {
            let mut p = v6_packet(60);
            p.resize(40 + 8 * n + 8, 0);
            for i in 0..n {
                p[40 + 8 * i] = if i + 1 < n { 60 } else { PROTO_UDP };
            }
            p
        };
        assert_eq!(ipv6_transport(&chain(7)), Some((PROTO_UDP, 40 + 56)));
        assert_eq!(
            ipv6_transport(&chain(8)),
            None,
            "8 headers then the transport"
        );
        assert_eq!(ipv6_transport(&chain(9)), None);
        // Unknown or odd next headers are the transport for all this parser knows: "no next
        // header", ESP, AH (not walked), IPv4-in-IPv6, reserved 255.
        for next in [59, 50, 51, 4, 255] {
            assert_eq!(ipv6_transport(&v6_packet(next)), Some((next, 40)), "{next}");
        }
        // A version-6 nibble on fewer than 40 bytes has no addresses; a version-4 packet is
        // not read as IPv6 by `inner_addrs` (version decides).
        assert_eq!(inner_addrs(&v6_packet(PROTO_UDP)[..39]), None);
        let mut v4_as_v6 = v6_packet(PROTO_UDP);
        v4_as_v6[0] = 0x45;
        assert!(matches!(
            inner_addrs(&v4_as_v6),
            Some((InnerAddr::V4(_), _))
        ));
    }

    #[test]
    fn dscp_of_both_versions() {
        let mut p = v4_packet();
        p[1] = 0xb9; // EF with ECN ECT(1)
        assert_eq!(dscp_byte(&p, false), 0xb8);
        let mut v6 = v6_packet(PROTO_UDP);
        v6[0] = 0x6b; // traffic class 0xb9 across the first two bytes
        v6[1] = 0x90;
        assert_eq!(dscp_byte(&v6, true), 0xb8);
    }

    #[test]
    fn dscp_is_written_keeping_ecn_and_a_valid_checksum() {
        let mut p = v4_packet();
        p[0] = 0x45;
        p[1] = 0x01; // ECT(1)
        let c = crate::checksum::fold(crate::checksum::sum(&p[..20], 0));
        p[10..12].copy_from_slice(&c.to_be_bytes());
        set_dscp(&mut p, 0x28); // AF11
        assert_eq!(p[1], 0x29);
        assert_eq!(crate::checksum::fold(crate::checksum::sum(&p[..20], 0)), 0);
        let mut v6 = v6_packet(PROTO_UDP);
        v6[0] = 0x60;
        v6[1] = 0x1f; // traffic class 0x01 (ECT(1)), flow label bits kept
        set_dscp(&mut v6, 0xb8);
        assert_eq!(dscp_byte(&v6, true), 0xb8);
        assert_eq!((v6[0], v6[1]), (0x6b, 0x9f));
    }

    #[test]
    fn truncated_input_is_none() {
        let p = v4_packet();
        assert_eq!(version(&[]), None);
        assert_eq!(ipv4_header_len(&[]), None);
        assert_eq!(ipv4_is_fragment(&p[..7]), None);
        assert_eq!(inner_addrs(&p[..19]), None);
        assert_eq!(inner_addrs(&[]), None);
        assert_eq!(tcp_header_len(&p[..32], 20), None, "no byte 32");
        let v6 = v6_packet(60);
        assert_eq!(inner_addrs(&v6[..39]), None);
        assert_eq!(ipv6_transport(&v6[..6]), None);
        assert_eq!(ipv6_transport(&v6[..40]), None, "extension header cut off");
        assert_eq!(inner_addrs(&[0x15; 40]), None, "version 1");
    }

    fn v4(s: &str) -> InnerAddr {
        let a: std::net::Ipv4Addr = s.parse().unwrap();
        InnerAddr::V4(a.into())
    }

    /// (Moved from tables.rs with the parser.)
    #[test]
    fn inner_addresses() {
        let mut p = [0u8; 20];
        p[0] = 0x45;
        p[12..16].copy_from_slice(&[10, 1, 0, 2]);
        p[16..20].copy_from_slice(&[10, 2, 0, 2]);
        assert_eq!(inner_addrs(&p), Some((v4("10.1.0.2"), v4("10.2.0.2"))));
        assert_eq!(inner_addrs(&p[..19]), None);
        assert_eq!(inner_addrs(&[]), None);
        p[0] = 0x65;
        assert_eq!(inner_addrs(&p), None, "v6 needs 40 bytes");
    }
}
