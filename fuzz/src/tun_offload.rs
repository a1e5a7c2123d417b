//! Shared pieces of the `offload` and `gro` targets: the fast path's deliver loop over the
//! two coalescers (as `Worker::inbound` in crates/dataplane/src/worker.rs drives them), the
//! splitter as `Worker::outbound` drives it, and builders of valid super-packets for the
//! seeds (`examples/gen_offload_seeds.rs`).

use ironsec_dataplane::checksum;
use ironsec_dataplane::gro::Coalescers;
use ironsec_dataplane::offload::{self, Read, VnetHdr, VNET_HDR_LEN};
use ironsec_dataplane::packet::vnet::{F_NEEDS_CSUM, GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4};

/// Largest packet a TUN read or write carries (the IP total length field).
pub const MAX_PACKET: usize = 65_535;

/// What one TUN write carried: the virtio-net header the coalescer wrote, and the packet.
#[derive(Debug)]
pub struct Write {
    pub hdr: VnetHdr,
    pub pkt: Vec<u8>,
    /// How many packets went into it.
    pub segments: usize,
}

/// Feeds `packets` through the two coalescers exactly as the worker does for decrypted
/// packets on an offloading TUN device, and returns the writes in order. Packets neither
/// coalescer takes are written alone with an all-zero header.
pub fn coalesce<'a>(packets: impl IntoIterator<Item = &'a [u8]>) -> Vec<Write> {
    let mut co = Coalescers::default();
    let mut out = Vec::new();
    let emit = |w: &[u8], segments: usize, out: &mut Vec<Write>| {
        let hdr = VnetHdr::parse(w).expect("a coalescer's write starts with a vnet header");
        out.push(Write {
            hdr,
            pkt: w[VNET_HDR_LEN..].to_vec(),
            segments,
        });
    };
    for p in packets {
        let held = co.offer(p, |w, n| emit(w, n, &mut out));
        assert!(
            !co.tcp.pending() || !co.udp.pending(),
            "both coalescers hold a run"
        );
        if !held {
            assert!(
                !co.tcp.pending() && !co.udp.pending(),
                "a run left before a lone write"
            );
            out.push(Write {
                hdr: VnetHdr::default(),
                pkt: p.to_vec(),
                segments: 1,
            });
        }
    }
    co.flush(|w, n| emit(w, n, &mut out));
    assert!(!co.tcp.pending() && !co.udp.pending());
    out
}

/// Splits what was read from an offloading TUN device as the outbound path does: None if
/// `prepare` refuses it; the packet itself (checksum completed) if it is not a super-packet;
/// otherwise its segments. Checks on the way what holds for any input: at least one segment,
/// none empty, none beyond the buffer, every one of them a well-formed packet with valid
/// checksums, and their payloads together the super-packet's payload.
pub fn split(hdr: &VnetHdr, pkt: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut p = pkt.to_vec();
    match offload::prepare(&mut p, hdr) {
        Read::Malformed => None,
        Read::Packet => {
            if hdr.flags & F_NEEDS_CSUM != 0 && hdr.csum_offset.is_multiple_of(2) {
                // The field held the pseudo-header's sum; with it, the completed checksum
                // makes csum_start.. sum to zero.
                let start = usize::from(hdr.csum_start);
                let at = start + usize::from(hdr.csum_offset);
                let pseudo = u64::from(u16::from_be_bytes([pkt[at], pkt[at + 1]]));
                assert_eq!(checksum::fold(checksum::sum(&p[start..], pseudo)), 0);
            }
            Some(vec![p])
        }
        Read::Segments(s) => {
            let n = s.count();
            assert!(n >= 1);
            assert_eq!(offload::segment_count(pkt, hdr), n);
            let mut buf = vec![0u8; MAX_PACKET + 64];
            let mut segs = Vec::with_capacity(n.min(1024));
            let mut headers = None;
            for i in 0..n {
                let len = s.segment(pkt, i, &mut buf);
                assert!(
                    len > 0 && len <= pkt.len(),
                    "segment {i} of {n}: {len} bytes"
                );
                let seg = buf[..len].to_vec();
                let hl = check_segment(&seg, hdr);
                assert_eq!(*headers.get_or_insert(hl), hl, "header length changed");
                if i + 1 < n {
                    assert_eq!(len - hl, usize::from(hdr.gso_size), "segment {i} not full");
                }
                segs.push(seg);
            }
            assert_eq!(s.segment(pkt, n, &mut buf), 0, "a segment past the count");
            let hl = headers.expect("at least one segment");
            let payload: Vec<u8> = segs.iter().flat_map(|s| s[hl..].iter().copied()).collect();
            assert_eq!(
                payload,
                pkt[hl..],
                "payloads differ from the super-packet's"
            );
            Some(segs)
        }
    }
}

/// A segment's header length, after checking its lengths and checksums.
fn check_segment(s: &[u8], hdr: &VnetHdr) -> usize {
    let v4 = s[0] >> 4 == 4;
    let ip = if v4 {
        assert_eq!(usize::from(u16::from_be_bytes([s[2], s[3]])), s.len());
        assert_eq!(
            checksum::fold(checksum::sum(&s[..ip_len(s)], 0)),
            0,
            "IPv4 checksum"
        );
        ip_len(s)
    } else {
        assert_eq!(s[0] >> 4, 6);
        assert_eq!(usize::from(u16::from_be_bytes([s[4], s[5]])) + 40, s.len());
        ip_len(s)
    };
    let (proto, hl) = if hdr.is_tso() {
        (6u64, ip + usize::from(s[ip + 12] >> 4) * 4)
    } else {
        assert_eq!(
            usize::from(u16::from_be_bytes([s[ip + 4], s[ip + 5]])),
            s.len() - ip,
            "UDP length"
        );
        assert_ne!(&s[ip + 6..ip + 8], &[0, 0], "UDP checksum left out");
        (17, ip + 8)
    };
    let pseudo = if v4 { &s[12..20] } else { &s[8..40] };
    let sum = checksum::sum(pseudo, 0) + proto + (s.len() - ip) as u64;
    assert_eq!(
        checksum::fold(checksum::sum(&s[ip..], sum)),
        0,
        "transport checksum"
    );
    hl
}

/// IP header length of a segment (IPv6: up to the transport header, past the extension
/// headers the splitter accepts).
fn ip_len(s: &[u8]) -> usize {
    if s[0] >> 4 == 4 {
        usize::from(s[0] & 0x0f) * 4
    } else {
        ironsec_dataplane::packet::ipv6_transport(s)
            .expect("segment of a split IPv6 packet")
            .1
    }
}

/// Splits the coalescers' writes again: a write with a GSO header into its segments, any
/// other as it is. What the kernel does with them, as far as the packets go.
pub fn resplit(writes: &[Write]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for w in writes {
        if w.hdr == VnetHdr::default() {
            assert_eq!(
                w.segments, 1,
                "a run of {} written without a header",
                w.segments
            );
            out.push(w.pkt.clone());
            continue;
        }
        assert!(w.segments > 1, "a header on a lone packet");
        assert!(w.hdr.is_tso() || w.hdr.is_uso(), "{:?}", w.hdr);
        assert!(w.pkt.len() <= MAX_PACKET);
        let segs = split(&w.hdr, &w.pkt).expect("a coalesced write is a valid super-packet");
        assert_eq!(segs.len(), w.segments, "{:?}", w.hdr);
        out.extend(segs);
    }
    out
}

/// Builders of valid super-packets (with the header the kernel would put before them) for
/// the seeds.
pub mod build {
    use super::*;

    pub struct Shape {
        pub v6: bool,
        pub udp: bool,
        /// Bytes of IPv4 options or of IPv6 destination options (multiple of 8) before the
        /// transport header.
        pub ip_extra: usize,
        /// Bytes of TCP options (multiple of 4).
        pub tcp_options: usize,
        pub tcp_flags: u8,
        pub gso_size: u16,
        pub payload: usize,
    }

    /// `[vnet header][super-packet]`, as a TSO/USO read from the TUN device brings it.
    pub fn super_packet(s: &Shape) -> Vec<u8> {
        let ip = if s.v6 { 40 } else { 20 } + s.ip_extra;
        let th = if s.udp { 8 } else { 20 + s.tcp_options };
        let total = ip + th + s.payload;
        let mut p = vec![0u8; total];
        let proto = if s.udp { 17 } else { 6 };
        if s.v6 {
            p[0] = 0x60;
            p[4..6].copy_from_slice(&((total - 40) as u16).to_be_bytes());
            p[7] = 64;
            p[8..24].copy_from_slice(&[0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
            p[24..40].copy_from_slice(&[0xfd, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
            if s.ip_extra > 0 {
                p[6] = 60;
                p[40] = proto;
                p[41] = (s.ip_extra / 8 - 1) as u8;
                p[42] = 1; // PadN
                p[43] = (s.ip_extra - 4) as u8;
            } else {
                p[6] = proto;
            }
        } else {
            p[0] = 0x40 | (ip / 4) as u8;
            p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            p[4..6].copy_from_slice(&0xfff0u16.to_be_bytes());
            p[6] = 0x40; // DF
            p[8] = 64;
            p[9] = proto;
            p[12..16].copy_from_slice(&[10, 1, 0, 2]);
            p[16..20].copy_from_slice(&[10, 2, 0, 2]);
            p[20..ip].fill(1); // NOP options
            let c = checksum::fold(checksum::sum(&p[..ip], 0));
            p[10..12].copy_from_slice(&c.to_be_bytes());
        }
        p[ip..ip + 2].copy_from_slice(&40000u16.to_be_bytes());
        p[ip + 2..ip + 4].copy_from_slice(&5201u16.to_be_bytes());
        if s.udp {
            p[ip + 4..ip + 6].copy_from_slice(&((total - ip) as u16).to_be_bytes());
        } else {
            p[ip + 4..ip + 8].copy_from_slice(&0xffff_f000u32.to_be_bytes()); // wraps
            p[ip + 8..ip + 12].copy_from_slice(&77u32.to_be_bytes());
            p[ip + 12] = ((th / 4) as u8) << 4;
            p[ip + 13] = s.tcp_flags;
            p[ip + 14..ip + 16].copy_from_slice(&502u16.to_be_bytes());
            let opts = &mut p[ip + 20..ip + th];
            if opts.len() >= 12 {
                opts[..12].copy_from_slice(&[1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7]); // TS
                opts[12..].fill(1);
            } else {
                opts.fill(1);
            }
        }
        for (i, b) in p[ip + th..].iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        // The kernel leaves the pseudo-header sum in the checksum field (NEEDS_CSUM).
        let at = ip + if s.udp { 6 } else { 16 };
        let pseudo = if s.v6 { &p[8..40] } else { &p[12..20] };
        let sum = checksum::sum(pseudo, 0) + u64::from(proto) + (total - ip) as u64;
        let partial = !checksum::fold(sum);
        p[at..at + 2].copy_from_slice(&partial.to_be_bytes());
        let gso_type = match (s.udp, s.v6) {
            (true, _) => GSO_UDP_L4,
            (false, false) => GSO_TCPV4,
            (false, true) => GSO_TCPV6,
        };
        let mut out = vec![0u8; VNET_HDR_LEN];
        out[0] = F_NEEDS_CSUM;
        out[1] = if s.payload == 0 { GSO_NONE } else { gso_type };
        out[2..4].copy_from_slice(&((ip + th) as u16).to_le_bytes());
        out[4..6].copy_from_slice(&s.gso_size.to_le_bytes());
        out[6..8].copy_from_slice(&(ip as u16).to_le_bytes());
        out[8..10].copy_from_slice(&(if s.udp { 6u16 } else { 16 }).to_le_bytes());
        out.extend_from_slice(&p);
        out
    }
}

/// Panics, naming the first differing byte (not dumping 64 KiB), unless `a == b`.
pub fn assert_same(what: std::fmt::Arguments, a: &[u8], b: &[u8]) {
    if a == b {
        return;
    }
    let at = (0..a.len().min(b.len()))
        .find(|&k| a[k] != b[k])
        .unwrap_or(a.len().min(b.len()));
    panic!(
        "{what}: {} vs {} bytes, first difference at {at}: {:02x?} vs {:02x?}",
        a.len(),
        b.len(),
        &a[at.min(a.len())..(at + 8).min(a.len())],
        &b[at.min(b.len())..(at + 8).min(b.len())]
    );
}
