//! TUN offload: the virtio-net header the kernel puts before each packet on a TUN device
//! opened with IFF_VNET_HDR, and the work it leaves to us: a TCP "super-packet" of up to 64 KiB
//! (TSO) is split here into MSS-sized segments with their own IP and TCP headers and
//! checksums; a UDP super-packet (USO: datagrams of one flow that the LAN interface's GRO
//! merged, or that a local sender handed over with UDP_SEGMENT) into its datagrams; and a
//! packet whose checksum the kernel left partial gets it completed.
//!
//! One read of the TUN device then brings up to ~45 full-sized TCP packets, or a run of small
//! datagrams (GRO merges at most 64), instead of one: reads are where a userspace gateway spends most of its time
//! (ARCHITECTURE.md). Everything here is pure byte work on caller buffers, tested without a device.

use crate::checksum;
use crate::packet::vnet::{F_NEEDS_CSUM, GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4};
use crate::packet::{self, PROTO_TCP, PROTO_UDP, TCP_MIN_HEADER, UDP_HEADER};

/// `struct virtio_net_hdr` (without num_buffers): what TUNSETVNETHDRSZ leaves at its default.
pub const VNET_HDR_LEN: usize = packet::vnet::HDR_LEN;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Little-endian on every host we run on (virtio 1.0 / TUNSETVNETLE are not needed on
    /// little-endian machines).
    pub fn parse(b: &[u8]) -> Option<VnetHdr> {
        let b = b.get(..VNET_HDR_LEN)?;
        let u16le = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16le(2),
            gso_size: u16le(4),
            csum_start: u16le(6),
            csum_offset: u16le(8),
        })
    }

    /// Whether the packet is a TSO super-packet to split.
    pub fn is_tso(&self) -> bool {
        matches!(self.gso_type & !GSO_ECN, GSO_TCPV4 | GSO_TCPV6)
    }

    /// Whether the packet is a UDP (USO) super-packet to split into datagrams.
    pub fn is_uso(&self) -> bool {
        self.gso_type & !GSO_ECN == GSO_UDP_L4
    }
}

/// Completes a checksum the kernel left partial (NEEDS_CSUM): the field at
/// `csum_start + csum_offset` holds the pseudo-header sum; the checksum covers
/// `csum_start..`. Returns false when the offsets do not fit the packet (then drop it).
pub fn complete_checksum(pkt: &mut [u8], h: &VnetHdr) -> bool {
    if h.flags & F_NEEDS_CSUM == 0 {
        return true;
    }
    let start = usize::from(h.csum_start);
    let field = start + usize::from(h.csum_offset);
    if field + 2 > pkt.len() || start > pkt.len() {
        return false;
    }
    let c = checksum::fold(checksum::sum(&pkt[start..], 0));
    pkt[field..field + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// Where the headers of a super-packet end, by what it carries.
#[derive(Clone, Copy, Debug)]
enum Layout {
    Tcp { v4: bool, ip: usize, tcp: usize },
    Udp { v4: bool, ip: usize },
}

impl Layout {
    /// The super-packet's layout if its headers match its GSO type (TSO: TCP; USO: UDP) and
    /// fit. Every segment repeats the IP header, IPv6 extension headers included.
    fn of(pkt: &[u8], h: &VnetHdr) -> Option<Layout> {
        let proto = if h.is_tso() {
            PROTO_TCP
        } else if h.is_uso() {
            PROTO_UDP
        } else {
            return None;
        };
        let v4 = match packet::version(pkt)? {
            4 => true,
            6 => false,
            _ => return None,
        };
        let (next, ip) = if v4 {
            (*pkt.get(9)?, packet::ipv4_header_len(pkt)?)
        } else {
            packet::ipv6_transport(pkt)?
        };
        if ip < 20 || next != proto {
            return None;
        }
        if proto == PROTO_UDP {
            return (ip + UDP_HEADER <= pkt.len()).then_some(Layout::Udp { v4, ip });
        }
        let tcp = packet::tcp_header_len(pkt, ip)?;
        if tcp < TCP_MIN_HEADER || ip + tcp > pkt.len() {
            return None;
        }
        Some(Layout::Tcp { v4, ip, tcp })
    }

    /// Length of the headers every segment repeats.
    fn headers(self) -> usize {
        match self {
            Layout::Tcp { ip, tcp, .. } => ip + tcp,
            Layout::Udp { ip, .. } => ip + 8,
        }
    }
}

/// A super-packet that can be split: its layout, segment size and count, worked out once per
/// read by [`prepare`] so that fetching each segment does not parse the headers again.
#[derive(Clone, Copy, Debug)]
pub struct Split {
    layout: Layout,
    size: usize,
    count: usize,
}

impl Split {
    /// None if `pkt` is not a TSO or USO super-packet we can split.
    fn of(pkt: &[u8], h: &VnetHdr) -> Option<Split> {
        let layout = Layout::of(pkt, h)?;
        let size = usize::from(h.gso_size);
        if size == 0 {
            return None;
        }
        let count = (pkt.len() - layout.headers()).div_ceil(size).max(1);
        Some(Split {
            layout,
            size,
            count,
        })
    }

    /// How many segments the super-packet makes.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Writes segment `i` of super-packet `pkt` (the one this was made from) into `out`;
    /// returns its length (0 when `out` is too small or there is no segment `i`). Each segment
    /// gets the super-packet's headers with its own IP length, IPv4 ID and checksum. TCP
    /// segments get their sequence number, flags (FIN and PSH only on the last, CWR only on
    /// the first) and a full TCP checksum; UDP datagrams their length and a full UDP checksum,
    /// as the kernel's own segmentation would.
    pub fn segment(&self, pkt: &[u8], i: usize, out: &mut [u8]) -> usize {
        let (layout, size, n) = (self.layout, self.size, self.count);
        let hl = layout.headers();
        if i >= n || pkt.len() < hl {
            return 0;
        }
        let payload = &pkt[hl..];
        let start = i * size;
        let chunk = &payload[start.min(payload.len())..(start + size).min(payload.len())];
        let len = hl + chunk.len();
        if out.len() < len {
            return 0;
        }
        out[..hl].copy_from_slice(&pkt[..hl]);
        out[hl..len].copy_from_slice(chunk);
        let (v4, ip) = match layout {
            Layout::Tcp { v4, ip, .. } | Layout::Udp { v4, ip } => (v4, ip),
        };
        if v4 {
            out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            let id = u16::from_be_bytes([pkt[4], pkt[5]]).wrapping_add(i as u16);
            out[4..6].copy_from_slice(&id.to_be_bytes());
            out[10..12].copy_from_slice(&[0, 0]);
            let c = checksum::fold(checksum::sum(&out[..ip], 0));
            out[10..12].copy_from_slice(&c.to_be_bytes());
        } else {
            out[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
        }
        let t = ip;
        let (proto, csum_at) = match layout {
            Layout::Tcp { .. } => {
                let seq = u32::from_be_bytes([pkt[t + 4], pkt[t + 5], pkt[t + 6], pkt[t + 7]])
                    .wrapping_add(start as u32);
                out[t + 4..t + 8].copy_from_slice(&seq.to_be_bytes());
                let mut flags = pkt[t + 13];
                if i + 1 < n {
                    flags &= !(0x01 | 0x08); // FIN, PSH
                }
                if i > 0 {
                    flags &= !0x80; // CWR
                }
                out[t + 13] = flags;
                (6, t + 16)
            }
            Layout::Udp { .. } => {
                out[t + 4..t + 6].copy_from_slice(&((len - ip) as u16).to_be_bytes());
                (17, t + 6)
            }
        };
        // Transport checksum: pseudo-header + transport header + data.
        out[csum_at..csum_at + 2].copy_from_slice(&[0, 0]);
        let seg_len = (len - ip) as u64;
        let pseudo = if v4 { &out[12..20] } else { &out[8..40] };
        let sum = checksum::sum(pseudo, 0) + proto + seg_len;
        let mut c = checksum::fold(checksum::sum(&out[t..len], sum));
        if proto == 17 && c == 0 {
            c = 0xffff; // zero means "no checksum" in UDP (RFC 768)
        }
        out[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
        len
    }
}

/// How many segments a TSO or USO super-packet makes (0 if it is not one we can split).
pub fn segment_count(pkt: &[u8], h: &VnetHdr) -> usize {
    Split::of(pkt, h).map_or(0, |s| s.count)
}

/// Segment `i` of super-packet `pkt` into `out`, as [`Split::segment`] (0 if `pkt` cannot be
/// split). For one-off use; the fast path keeps the [`Split`] that [`prepare`] returned.
pub fn segment(pkt: &[u8], h: &VnetHdr, i: usize, out: &mut [u8]) -> usize {
    Split::of(pkt, h).map_or(0, |s| s.segment(pkt, i, out))
}

/// What the fast path does with one packet read from an offloading TUN device.
pub enum Read {
    /// A plain packet (checksum completed if needed) at this range of the read buffer.
    Packet,
    /// A TSO or USO super-packet: fetch each segment with [`Split::segment`].
    Segments(Split),
    /// Unusable (bad offsets, a GSO type we never asked for): drop and count.
    Malformed,
}

/// Classifies `pkt` (the bytes after the vnet header) and completes its checksum if it is a
/// plain packet.
pub fn prepare(pkt: &mut [u8], h: &VnetHdr) -> Read {
    if h.is_tso() || h.is_uso() {
        return Split::of(pkt, h).map_or(Read::Malformed, Read::Segments);
    }
    if h.gso_type != GSO_NONE {
        return Read::Malformed;
    }
    if complete_checksum(pkt, h) {
        Read::Packet
    } else {
        Read::Malformed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid IPv4 TCP packet's checksums verify to zero.
    fn verify_v4(p: &[u8]) {
        assert_eq!(
            checksum::fold(checksum::sum(&p[..20], 0)),
            0,
            "IPv4 header checksum"
        );
        let tcp_len = (p.len() - 20) as u64;
        let sum = checksum::sum(&p[12..20], 0) + 6 + tcp_len;
        assert_eq!(
            checksum::fold(checksum::sum(&p[20..], sum)),
            0,
            "TCP checksum"
        );
    }

    fn super_packet(payload: usize, flags: u8) -> Vec<u8> {
        let mut p = vec![0u8; 40 + payload];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&((40 + payload) as u16).to_be_bytes());
        p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 1, 0, 2]);
        p[16..20].copy_from_slice(&[10, 2, 0, 2]);
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&5201u16.to_be_bytes());
        p[24..28].copy_from_slice(&1000u32.to_be_bytes());
        p[32] = 5 << 4;
        p[33] = flags;
        for (i, b) in p[40..].iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        p
    }

    #[test]
    fn tso_splits_into_valid_segments() {
        let p = super_packet(3000, 0x18 | 0x01 | 0x80); // ACK PSH FIN CWR
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 40,
            gso_size: 1400,
            csum_start: 20,
            csum_offset: 16,
        };
        assert_eq!(segment_count(&p, &h), 3);
        let mut data = Vec::new();
        for i in 0..3 {
            let mut out = vec![0u8; 2000];
            let n = segment(&p, &h, i, &mut out);
            let s = &out[..n];
            assert_eq!(n, 40 + if i < 2 { 1400 } else { 200 });
            verify_v4(s);
            assert_eq!(u16::from_be_bytes([s[2], s[3]]) as usize, n);
            assert_eq!(u16::from_be_bytes([s[4], s[5]]), 0x1234 + i as u16);
            let seq = u32::from_be_bytes([s[24], s[25], s[26], s[27]]);
            assert_eq!(seq, 1000 + 1400 * i as u32);
            let fin_psh = s[33] & 0x09;
            assert_eq!(fin_psh, if i == 2 { 0x09 } else { 0 }, "segment {i}");
            assert_eq!(s[33] & 0x80 != 0, i == 0, "CWR on the first only");
            data.extend_from_slice(&s[40..]);
        }
        assert_eq!(data, p[40..]);
        let mut small = vec![0u8; 100];
        assert_eq!(segment(&p, &h, 0, &mut small), 0);
        assert_eq!(segment(&p, &h, 3, &mut vec![0u8; 2000]), 0);
    }

    /// A UDP super-packet as GRO leaves it: one flow's datagrams of `size` bytes, headers
    /// of the first, lengths of the whole.
    fn udp_super_packet(v4: bool, size: usize, count: usize, last: usize) -> Vec<u8> {
        let ip = if v4 { 20 } else { 40 };
        let payload = size * (count - 1) + last;
        let mut p = vec![0u8; ip + 8 + payload];
        let total = p.len();
        if v4 {
            p[0] = 0x45;
            p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            p[4..6].copy_from_slice(&0xfffeu16.to_be_bytes());
            p[8] = 64;
            p[9] = 17;
            p[12..16].copy_from_slice(&[10, 1, 0, 2]);
            p[16..20].copy_from_slice(&[10, 2, 0, 2]);
        } else {
            p[0] = 0x60;
            p[4..6].copy_from_slice(&((total - 40) as u16).to_be_bytes());
            p[6] = 17;
            p[7] = 64;
            p[8] = 0xfd;
            p[23] = 2;
            p[24] = 0xfd;
            p[39] = 3;
        }
        p[ip..ip + 2].copy_from_slice(&40000u16.to_be_bytes());
        p[ip + 2..ip + 4].copy_from_slice(&5201u16.to_be_bytes());
        p[ip + 4..ip + 6].copy_from_slice(&((total - ip) as u16).to_be_bytes());
        for (i, b) in p[ip + 8..].iter_mut().enumerate() {
            *b = (i % 253) as u8;
        }
        p
    }

    #[test]
    fn uso_splits_into_valid_datagrams() {
        for v4 in [true, false] {
            let ip = if v4 { 20 } else { 40 };
            let p = udp_super_packet(v4, 64, 5, 17);
            let h = VnetHdr {
                flags: F_NEEDS_CSUM,
                gso_type: GSO_UDP_L4,
                hdr_len: (ip + 8) as u16,
                gso_size: 64,
                csum_start: ip as u16,
                csum_offset: 6,
            };
            assert!(h.is_uso() && !h.is_tso());
            let mut q = p.clone();
            assert!(matches!(prepare(&mut q, &h), Read::Segments(s) if s.count() == 5));
            let mut data = Vec::new();
            for i in 0..5 {
                let mut out = vec![0u8; 200];
                let n = segment(&p, &h, i, &mut out);
                let s = &out[..n];
                let size = if i < 4 { 64 } else { 17 };
                assert_eq!(n, ip + 8 + size, "datagram {i}");
                if v4 {
                    assert_eq!(checksum::fold(checksum::sum(&s[..20], 0)), 0);
                    assert_eq!(usize::from(u16::from_be_bytes([s[2], s[3]])), n);
                    assert_eq!(
                        u16::from_be_bytes([s[4], s[5]]),
                        0xfffeu16.wrapping_add(i as u16)
                    );
                } else {
                    assert_eq!(usize::from(u16::from_be_bytes([s[4], s[5]])), n - 40);
                }
                let udp_len = usize::from(u16::from_be_bytes([s[ip + 4], s[ip + 5]]));
                assert_eq!(udp_len, 8 + size);
                let pseudo = if v4 { &s[12..20] } else { &s[8..40] };
                let sum = checksum::sum(pseudo, 0) + 17 + udp_len as u64;
                assert_eq!(
                    checksum::fold(checksum::sum(&s[ip..], sum)),
                    0,
                    "UDP checksum"
                );
                assert_ne!(&s[ip + 6..ip + 8], &[0, 0]);
                data.extend_from_slice(&s[ip + 8..]);
            }
            assert_eq!(data, p[ip + 8..]);
            assert_eq!(segment(&p, &h, 5, &mut [0u8; 200]), 0);
            assert_eq!(segment(&p, &h, 0, &mut [0u8; 50]), 0);
        }
    }

    #[test]
    fn uso_keeps_ipv6_destination_options_and_refuses_routing_headers() {
        // Insert an 8-byte destination options header (PadN) between IPv6 and UDP.
        let plain = udp_super_packet(false, 64, 3, 64);
        let mut p = plain[..40].to_vec();
        p[6] = 60;
        p.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        p.extend_from_slice(&plain[40..]);
        let total = p.len();
        p[4..6].copy_from_slice(&((total - 40) as u16).to_be_bytes());
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_UDP_L4,
            hdr_len: 56,
            gso_size: 64,
            csum_start: 48,
            csum_offset: 6,
        };
        assert!(matches!(prepare(&mut p.clone(), &h), Read::Segments(s) if s.count() == 3));
        for i in 0..3 {
            let mut out = [0u8; 200];
            let n = segment(&p, &h, i, &mut out);
            let s = &out[..n];
            assert_eq!(n, 40 + 8 + 8 + 64);
            assert_eq!(&s[40..48], &p[40..48], "extension header repeated");
            assert_eq!(usize::from(u16::from_be_bytes([s[4], s[5]])), n - 40);
            let udp_len = usize::from(u16::from_be_bytes([s[52], s[53]]));
            assert_eq!(udp_len, 72);
            let sum = checksum::sum(&s[8..40], 0) + 17 + udp_len as u64;
            assert_eq!(
                checksum::fold(checksum::sum(&s[48..], sum)),
                0,
                "UDP checksum"
            );
        }
        // The same with a routing header: refused, not split with a wrong pseudo-header.
        p[6] = 43;
        assert!(matches!(prepare(&mut p, &h), Read::Malformed));
    }

    #[test]
    fn gso_type_must_match_the_transport() {
        let h = VnetHdr {
            gso_type: GSO_UDP_L4,
            gso_size: 100,
            ..Default::default()
        };
        // A TCP packet announced as USO, a UDP one announced as TSO, a truncated UDP header,
        // a zero segment size: not split, dropped.
        assert!(matches!(
            prepare(&mut super_packet(300, 0x10), &h),
            Read::Malformed
        ));
        let tso = VnetHdr {
            gso_type: GSO_TCPV4,
            ..h
        };
        let mut udp = udp_super_packet(true, 100, 3, 100);
        assert!(matches!(prepare(&mut udp, &tso), Read::Malformed));
        assert!(matches!(
            prepare(&mut udp[..25].to_vec(), &h),
            Read::Malformed
        ));
        let zero = VnetHdr { gso_size: 0, ..h };
        assert!(matches!(prepare(&mut udp, &zero), Read::Malformed));
        assert!(matches!(prepare(&mut udp, &h), Read::Segments(s) if s.count() == 3));
    }

    proptest::proptest! {
        /// Whatever the kernel (or a bug) hands over, preparing and splitting never panics,
        /// and every segment fits the buffer it was written to and says its own length.
        #[test]
        fn any_header_and_packet_is_safe(
            mut pkt in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            flags in 0u8..2,
            gso_type in proptest::sample::select(vec![0u8, 1, 4, 5, 0x81, 3, 0x85]),
            gso_size in 0u16..300,
            csum_start in 0u16..700,
            csum_offset in 0u16..20,
            ip_first in proptest::sample::select(vec![0x45u8, 0x46, 0x4f, 0x60, 0x00]),
            proto in proptest::sample::select(vec![6u8, 17, 1, 0, 60, 43]),
        ) {
            if let Some(b) = pkt.first_mut() { *b = ip_first; }
            if pkt.len() > 9 { pkt[9] = proto; }
            if pkt.len() > 6 && ip_first >> 4 == 6 { pkt[6] = proto; }
            let h = VnetHdr { flags, gso_type, hdr_len: 0, gso_size, csum_start, csum_offset };
            let orig = pkt.clone();
            if let Read::Segments(split) = prepare(&mut pkt, &h) {
                let n = split.count();
                proptest::prop_assert!(n >= 1);
                let mut out = vec![0u8; 400];
                for i in 0..=n {
                    let len = segment(&orig, &h, i, &mut out);
                    proptest::prop_assert!(len <= out.len());
                    if i == n {
                        proptest::prop_assert_eq!(len, 0);
                    }
                    let v4 = len >= 20 && out[0] >> 4 == 4;
                    if v4 {
                        proptest::prop_assert_eq!(usize::from(u16::from_be_bytes([out[2], out[3]])), len);
                    }
                }
            }
        }
    }

    /// What a read from an offloading TUN device may hold that the splitter must refuse (or
    /// may take), one row each: the malformed-input table the `offload` fuzz target
    /// (fuzz/fuzz_targets/offload.rs) checks around. `Some(n)`: split into `n` segments;
    /// `None`: dropped as malformed.
    #[test]
    fn malformed_offload_headers_and_packets() {
        let tso = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 40,
            gso_size: 1000,
            csum_start: 20,
            csum_offset: 16,
        };
        let uso6 = VnetHdr {
            gso_type: GSO_UDP_L4,
            hdr_len: 48,
            gso_size: 64,
            csum_start: 40,
            csum_offset: 6,
            ..tso
        };
        let tcp = super_packet(2500, 0x10);
        let udp6 = udp_super_packet(false, 64, 3, 64);
        let edit = |p: &[u8], f: &dyn Fn(&mut Vec<u8>)| {
            let mut p = p.to_vec();
            f(&mut p);
            p
        };
        // IPv6 with an extension header of `next` (8 bytes) before UDP.
        let v6_ext = |next: u8| {
            let mut p = udp6[..40].to_vec();
            p[6] = next;
            p.extend_from_slice(&[17, 0, 0, 0, 0, 0, 0, 0]);
            p.extend_from_slice(&udp6[40..]);
            p
        };
        let rows: Vec<(&str, VnetHdr, Vec<u8>, Option<usize>)> = vec![
            ("valid TSO", tso, tcp.clone(), Some(3)),
            (
                "gso_size 0",
                VnetHdr { gso_size: 0, ..tso },
                tcp.clone(),
                None,
            ),
            (
                "gso_size 1",
                VnetHdr { gso_size: 1, ..tso },
                tcp.clone(),
                Some(2500),
            ),
            (
                "gso_size above the payload",
                VnetHdr {
                    gso_size: 65535,
                    ..tso
                },
                tcp.clone(),
                Some(1),
            ),
            (
                "hdr_len beyond the packet (ignored: headers are read from the packet)",
                VnetHdr {
                    hdr_len: 65535,
                    ..tso
                },
                tcp.clone(),
                Some(3),
            ),
            (
                "csum_start/offset beyond the packet (ignored for GSO: recomputed)",
                VnetHdr {
                    csum_start: 65535,
                    csum_offset: 65535,
                    ..tso
                },
                tcp.clone(),
                Some(3),
            ),
            (
                "ECN flag on the GSO type",
                VnetHdr {
                    gso_type: GSO_TCPV4 | GSO_ECN,
                    ..tso
                },
                tcp.clone(),
                Some(3),
            ),
            (
                "GSO type we never asked for",
                VnetHdr { gso_type: 3, ..tso },
                tcp.clone(),
                None,
            ),
            ("headers only", tso, tcp[..40].to_vec(), Some(1)),
            ("IHL below 5", tso, edit(&tcp, &|p| p[0] = 0x44), None),
            (
                "IHL beyond the packet",
                tso,
                edit(&tcp[..50], &|p| p[0] = 0x4f),
                None,
            ),
            (
                "TCP data offset below 5",
                tso,
                edit(&tcp, &|p| p[32] = 4 << 4),
                None,
            ),
            (
                "TCP options beyond the packet",
                tso,
                edit(&tcp[..50], &|p| p[32] = 15 << 4),
                None,
            ),
            (
                "TCP options up to the end",
                tso,
                edit(&tcp[..80], &|p| p[32] = 15 << 4),
                Some(1),
            ),
            ("IP version 5", tso, edit(&tcp, &|p| p[0] = 0x55), None),
            (
                "TSO type on IPv6 TCP, GSO_TCPV4 given",
                VnetHdr {
                    gso_size: 64,
                    ..tso
                },
                {
                    // The split follows the packet's version; the kernel's type says only "TCP".
                    let mut p = udp6.clone();
                    p[6] = 6;
                    p[52] = 5 << 4;
                    p
                },
                Some(3),
            ),
            ("valid USO over IPv6", uso6, udp6.clone(), Some(3)),
            ("IPv6 hop-by-hop options", uso6, v6_ext(0), Some(3)),
            ("IPv6 destination options", uso6, v6_ext(60), Some(3)),
            ("IPv6 routing header", uso6, v6_ext(43), None),
            ("IPv6 fragment header", uso6, v6_ext(44), None),
            (
                "IPv6 extension chain cut short",
                uso6,
                v6_ext(60)[..44].to_vec(),
                None,
            ),
            (
                "IPv6 hop-by-hop then destination options",
                uso6,
                {
                    let mut p = udp6[..40].to_vec();
                    p[6] = 0;
                    p.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0]);
                    p.extend_from_slice(&udp6[40..]);
                    p
                },
                Some(3),
            ),
            (
                "IPv6 nine destination options headers",
                uso6,
                {
                    let mut p = udp6[..40].to_vec();
                    p[6] = 60;
                    for i in 0..9 {
                        p.extend_from_slice(&[if i < 8 { 60 } else { 17 }, 0, 1, 4, 0, 0, 0, 0]);
                    }
                    p.extend_from_slice(&udp6[40..]);
                    p
                },
                None,
            ),
            (
                "IPv6 destination options longer than the packet",
                uso6,
                edit(&v6_ext(60), &|p| p[41] = 255),
                None,
            ),
            (
                "IPv6 unknown next header after hop-by-hop",
                uso6,
                edit(&v6_ext(0), &|p| p[40] = 253),
                None,
            ),
            (
                "IPv6 ESP as the next header",
                uso6,
                edit(&udp6, &|p| p[6] = 50),
                None,
            ),
            // The payload length is not read: the split follows the read's length and every
            // segment gets its own, as the kernel's ipv6_gso_segment does (a BIG TCP
            // super-packet, longer than 64 KiB, carries 0).
            (
                "IPv6 payload length 0 (jumbo)",
                uso6,
                edit(&udp6, &|p| p[4..6].fill(0)),
                Some(3),
            ),
            (
                "IPv6 payload length beyond the read",
                uso6,
                edit(&udp6, &|p| p[4..6].copy_from_slice(&u16::MAX.to_be_bytes())),
                Some(3),
            ),
            (
                "IPv4 nibble under GSO_TCPV6",
                VnetHdr {
                    gso_type: GSO_TCPV6,
                    ..uso6
                },
                edit(&udp6, &|p| p[0] = 0x40),
                None,
            ),
            ("IPv6 UDP header cut short", uso6, udp6[..46].to_vec(), None),
            ("IPv6 header cut short", uso6, udp6[..30].to_vec(), None),
            ("empty", uso6, Vec::new(), None),
        ];
        for (what, h, p, want) in rows {
            let mut q = p.clone();
            let got = match prepare(&mut q, &h) {
                Read::Segments(s) => Some(s.count()),
                Read::Malformed => None,
                Read::Packet => panic!("{what}: a GSO read taken as a plain packet"),
            };
            assert_eq!(got, want, "{what}");
            assert_eq!(q, p, "{what}: prepare changed a super-packet");
            if let Read::Segments(s) = prepare(&mut q, &h) {
                let mut out = vec![0u8; 70_000];
                let mut total = 0;
                for i in 0..s.count() {
                    let n = s.segment(&p, i, &mut out);
                    total += n;
                    // Every IPv6 segment states its own length, whatever the read said.
                    if p[0] >> 4 == 6 {
                        assert_eq!(
                            usize::from(u16::from_be_bytes([out[4], out[5]])) + 40,
                            n,
                            "{what}: segment {i}"
                        );
                    }
                }
                assert!(total >= p.len(), "{what}");
            }
        }
        // Plain packets: the partial checksum's field must lie inside the packet.
        let plain = VnetHdr {
            gso_type: GSO_NONE,
            gso_size: 0,
            ..tso
        };
        let len = tcp.len() as u16;
        for (what, start, offset, ok) in [
            ("field at the end", len - 2, 0, true),
            ("field one byte past the end", len - 1, 0, false),
            ("start past the end", len + 1, 0, false),
            ("offset overflowing past the end", 20, u16::MAX, false),
        ] {
            let h = VnetHdr {
                csum_start: start,
                csum_offset: offset,
                ..plain
            };
            let r = prepare(&mut tcp.clone(), &h);
            assert_eq!(matches!(r, Read::Packet), ok, "{what}");
            assert_eq!(matches!(r, Read::Malformed), !ok, "{what}");
        }
    }

    #[test]
    fn partial_checksum_is_completed() {
        let mut p = super_packet(100, 0x18);
        // The kernel leaves the pseudo-header sum (not inverted) in the TCP checksum field.
        let pseudo = checksum::sum(&p[12..20], 0) + 6 + (p.len() - 20) as u64;
        let mut s = pseudo;
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        p[36..38].copy_from_slice(&(s as u16).to_be_bytes());
        // and a valid IPv4 header checksum
        let c = checksum::fold(checksum::sum(&p[..20], 0));
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_NONE,
            csum_start: 20,
            csum_offset: 16,
            ..Default::default()
        };
        assert!(matches!(prepare(&mut p, &h), Read::Packet));
        verify_v4(&p);
        let bad = VnetHdr {
            csum_start: 500,
            ..h
        };
        assert!(matches!(prepare(&mut p, &bad), Read::Malformed));
    }

    #[test]
    fn header_parses_little_endian() {
        let b = [1u8, 1, 40, 0, 0x78, 0x05, 20, 0, 16, 0];
        let h = VnetHdr::parse(&b).unwrap();
        assert_eq!(h.gso_size, 1400);
        assert!(h.is_tso());
        assert!(VnetHdr::parse(&b[..9]).is_none());
        assert!(matches!(prepare(&mut [0x45u8; 10], &h), Read::Malformed));
    }
}
