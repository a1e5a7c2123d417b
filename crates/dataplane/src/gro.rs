//! Receive-side coalescing for an offloading TUN device (the mirror of [`crate::offload`]):
//! consecutive decrypted TCP segments of one flow are merged into one super-packet and written
//! with a virtio-net header that asks the kernel to treat it as a TSO packet (GSO TCPv4/v6,
//! partial checksum). One write then delivers what would have taken up to 64, and the local
//! stack forwards it whole as long as it can (veth and TCP understand GSO packets).
//!
//! Only packets the kernel's own GRO would merge are merged: same addresses and ports, the next
//! sequence number, same ACK number, window and options, only ACK set (PSH may end a run), no
//! IP options or fragments, and every segment but the last of the same size. Anything else is
//! written as it is, after the pending run, so packet order is kept.

use crate::checksum;
use crate::packet::vnet::{
    F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4, HDR_LEN as VNET_HDR_LEN,
};
use crate::packet::{self, PROTO_TCP, PROTO_UDP};

const MAX_SEGMENTS: usize = 64;
const MAX_LEN: usize = 65_535;

/// A TCP packet's layout, if it is one we may merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tcp {
    v4: bool,
    /// IP header length (20 or 40).
    ip: usize,
    /// IP + TCP header length.
    hl: usize,
    seq: u32,
    flags: u8,
}

fn parse(p: &[u8]) -> Option<Tcp> {
    // IPv6's length field allows 40 bytes more than a run's buffer holds.
    if p.len() > MAX_LEN {
        return None;
    }
    let v4 = match packet::version(p)? {
        4 => {
            if p[0] & 0x0f != 5 || p.len() < 20 || p[9] != PROTO_TCP {
                return None;
            }
            // No fragments (MF or offset).
            if u16::from_be_bytes([p[6], p[7]]) & 0x3fff != 0 {
                return None;
            }
            if usize::from(u16::from_be_bytes([p[2], p[3]])) != p.len() {
                return None;
            }
            true
        }
        6 => {
            if p.len() < 40 || p[6] != PROTO_TCP {
                return None;
            }
            if usize::from(u16::from_be_bytes([p[4], p[5]])) + 40 != p.len() {
                return None;
            }
            false
        }
        _ => return None,
    };
    let ip = if v4 { 20 } else { 40 };
    let tcp_len = packet::tcp_header_len(p, ip)?;
    let hl = ip + tcp_len;
    if tcp_len < 20 || hl > p.len() {
        return None;
    }
    Some(Tcp {
        v4,
        ip,
        hl,
        seq: u32::from_be_bytes([p[ip + 4], p[ip + 5], p[ip + 6], p[ip + 7]]),
        flags: p[ip + 13],
    })
}

/// Whether IPv4 packet `p` may follow `segments` packets that began with `head` in a run, as
/// the kernel's GRO decides (inet_gro_receive): the same DF (and reserved) bit, and without
/// DF the ID one more per packet. Splitting the run again gives every segment the head's ID
/// plus its index, which is then the ID it came with; a DF packet's ID identifies nothing
/// (RFC 6864) and may change.
fn ipv4_id_follows(head: &[u8], p: &[u8], segments: usize) -> bool {
    if head[6..8] != p[6..8] {
        return false;
    }
    let id = |b: &[u8]| u16::from_be_bytes([b[4], b[5]]);
    p[6] & 0x40 != 0 || id(p) == id(head).wrapping_add(segments as u16)
}

/// Merges consecutive segments into `buf` (virtio-net header, then the super-packet).
pub struct Coalescer {
    buf: Vec<u8>,
    /// Length of the pending packet after the header; 0 = nothing pending.
    len: usize,
    head: Option<Tcp>,
    segments: usize,
    mss: usize,
    next_seq: u32,
    /// The last segment was short or had PSH: the run is over.
    closed: bool,
}

impl Default for Coalescer {
    fn default() -> Self {
        Coalescer {
            buf: vec![0u8; VNET_HDR_LEN + MAX_LEN],
            len: 0,
            head: None,
            segments: 0,
            mss: 0,
            next_seq: 0,
            closed: false,
        }
    }
}

impl Coalescer {
    pub fn pending(&self) -> bool {
        self.len > 0
    }

    /// How many packets the pending run holds.
    pub fn segments(&self) -> usize {
        self.segments
    }

    /// Whether `p` continues the pending run.
    fn continues(&self, p: &[u8], t: &Tcp) -> bool {
        let Some(h) = self.head else {
            return false;
        };
        let cur = &self.buf[VNET_HDR_LEN..VNET_HDR_LEN + h.hl];
        let payload = p.len() - t.hl;
        !self.closed
            && t.v4 == h.v4
            && t.hl == h.hl
            && t.seq == self.next_seq
            && payload > 0
            && payload <= self.mss
            && self.segments < MAX_SEGMENTS
            && self.len + payload <= MAX_LEN
            && matches!(t.flags, 0x10 | 0x18)
            // Same addresses, (v4) TOS, TTL, DF and IDs that follow, (v6) traffic class,
            // flow and hop limit.
            && if h.v4 {
                cur[1] == p[1] && cur[8] == p[8] && cur[12..20] == p[12..20]
                    && ipv4_id_follows(cur, p, self.segments)
            } else {
                cur[0..4] == p[0..4] && cur[7..40] == p[7..40]
            }
            // Ports; ACK number; data offset, window; options.
            && cur[h.ip..h.ip + 4] == p[t.ip..t.ip + 4]
            && cur[h.ip + 8..h.ip + 12] == p[t.ip + 8..t.ip + 12]
            && cur[h.ip + 12] == p[t.ip + 12]
            && cur[h.ip + 14..h.ip + 16] == p[t.ip + 14..t.ip + 16]
            && cur[h.ip + 20..h.hl] == p[t.ip + 20..t.hl]
    }

    /// Offers a decrypted packet. Returns false if it cannot join or start a run (not TCP, or
    /// flags other than ACK/PSH): the caller flushes and writes it alone. When it returns true
    /// the packet is held; `flush` first if [`Coalescer::must_flush_before`] said so.
    pub fn must_flush_before(&self, p: &[u8]) -> bool {
        match parse(p) {
            Some(t) => self.pending() && !self.continues(p, &t),
            None => self.pending(),
        }
    }

    /// Adds `p` to the pending run or starts one with it; false if `p` is not mergeable TCP
    /// (nothing was taken).
    pub fn push(&mut self, p: &[u8]) -> bool {
        let Some(t) = parse(p) else {
            return false;
        };
        let payload = p.len() - t.hl;
        if self.pending() && self.continues(p, &t) {
            let at = VNET_HDR_LEN + self.len;
            self.buf[at..at + payload].copy_from_slice(&p[t.hl..]);
            self.len += payload;
            self.segments += 1;
            self.next_seq = t.seq.wrapping_add(payload as u32);
            if payload < self.mss || t.flags & 0x08 != 0 {
                self.closed = true;
                // The run ends with this segment's flags (PSH).
                let h = self.head.expect("pending");
                self.buf[VNET_HDR_LEN + h.ip + 13] = t.flags;
            }
            return true;
        }
        if self.pending() || payload == 0 || !matches!(t.flags, 0x10 | 0x18) {
            return false;
        }
        self.buf[VNET_HDR_LEN..VNET_HDR_LEN + p.len()].copy_from_slice(p);
        self.len = p.len();
        self.head = Some(t);
        self.segments = 1;
        self.mss = payload;
        self.next_seq = t.seq.wrapping_add(payload as u32);
        self.closed = t.flags & 0x08 != 0;
        true
    }

    /// The pending packet with its virtio-net header, ready to write; resets the run.
    pub fn take(&mut self) -> &[u8] {
        let Some(h) = self.head.take() else {
            return &[];
        };
        let len = std::mem::take(&mut self.len);
        let hdr = &mut self.buf[..VNET_HDR_LEN];
        hdr.fill(0);
        let pkt_end = VNET_HDR_LEN + len;
        if self.segments > 1 {
            let p = &mut self.buf[VNET_HDR_LEN..pkt_end];
            if h.v4 {
                p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                p[10..12].fill(0);
                let c = checksum::fold(checksum::sum(&p[..20], 0));
                p[10..12].copy_from_slice(&c.to_be_bytes());
            } else {
                p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
            }
            // Partial checksum: the pseudo-header sum, not complemented (NEEDS_CSUM).
            let tcp_len = (len - h.ip) as u64;
            let pseudo = if h.v4 {
                checksum::sum(&p[12..20], 0)
            } else {
                checksum::sum(&p[8..40], 0)
            } + 6
                + tcp_len;
            let partial = !checksum::fold(pseudo);
            p[h.ip + 16..h.ip + 18].copy_from_slice(&partial.to_be_bytes());
            let hdr = &mut self.buf[..VNET_HDR_LEN];
            hdr[0] = F_NEEDS_CSUM;
            hdr[1] = if h.v4 { GSO_TCPV4 } else { GSO_TCPV6 };
            hdr[2..4].copy_from_slice(&(h.hl as u16).to_le_bytes());
            hdr[4..6].copy_from_slice(&(self.mss as u16).to_le_bytes());
            hdr[6..8].copy_from_slice(&(h.ip as u16).to_le_bytes());
            hdr[8..10].copy_from_slice(&16u16.to_le_bytes());
        }
        self.segments = 0;
        self.closed = false;
        &self.buf[..pkt_end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::{self, VnetHdr};

    fn tcp4(seq: u32, payload: usize, flags: u8, fill: u8) -> Vec<u8> {
        let mut p = vec![0u8; 52 + payload];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&((52 + payload) as u16).to_be_bytes());
        p[5] = fill; // IPv4 ID: the n-th segment of a burst
        p[6] = 0x40; // DF
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 1, 0, 2]);
        p[16..20].copy_from_slice(&[10, 2, 0, 2]);
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&5201u16.to_be_bytes());
        p[24..28].copy_from_slice(&seq.to_be_bytes());
        p[28..32].copy_from_slice(&77u32.to_be_bytes());
        p[32] = 8 << 4; // 32-byte TCP header: 12 bytes of options
        p[33] = flags;
        p[34..36].copy_from_slice(&500u16.to_be_bytes());
        p[40..52].copy_from_slice(&[1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7]); // NOP NOP TS
        p[52..].fill(fill);
        let c = checksum::fold(checksum::sum(&p[..20], 0));
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let tl = (p.len() - 20) as u64;
        let s = checksum::sum(&p[12..20], 0) + 6 + tl;
        let c = checksum::fold(checksum::sum(&p[20..], s));
        p[36..38].copy_from_slice(&c.to_be_bytes());
        p
    }

    /// Merged packets, split again by the TSO code, are the original packets byte for byte.
    #[test]
    fn merge_then_split_restores_the_segments() {
        let segs: Vec<Vec<u8>> = (0..5u32)
            .map(|i| {
                let last = i == 4;
                tcp4(
                    1000 + i * 1300,
                    if last { 500 } else { 1300 },
                    if last { 0x18 } else { 0x10 },
                    i as u8,
                )
            })
            .collect();
        let mut c = Coalescer::default();
        for s in &segs {
            assert!(!c.must_flush_before(s));
            assert!(c.push(s));
        }
        let out = c.take().to_vec();
        let h = VnetHdr::parse(&out).unwrap();
        assert!(h.is_tso());
        assert_eq!(h.gso_size, 1300);
        let mut sup = out[VNET_HDR_LEN..].to_vec();
        assert_eq!(sup.len(), 52 + 4 * 1300 + 500);
        // The kernel would complete the checksums per segment; our splitter does the same.
        assert!(matches!(
            offload::prepare(&mut sup, &h),
            offload::Read::Segments(s) if s.count() == 5
        ));
        for (i, orig) in segs.iter().enumerate() {
            let mut buf = vec![0u8; 2000];
            let n = offload::segment(&sup, &h, i, &mut buf);
            assert_eq!(&buf[..n], &orig[..], "segment {i}");
        }
        assert!(!c.pending());
    }

    #[test]
    fn only_true_continuations_merge() {
        let a = tcp4(1000, 1300, 0x10, 1);
        let mut c = Coalescer::default();
        assert!(c.push(&a));
        // A gap in the sequence, another flow, a SYN: not merged.
        assert!(c.must_flush_before(&tcp4(9999, 1300, 0x10, 1)));
        let mut other = tcp4(2300, 1300, 0x10, 1);
        other[20..22].copy_from_slice(&40001u16.to_be_bytes());
        assert!(c.must_flush_before(&other));
        assert!(c.must_flush_before(&tcp4(2300, 1300, 0x12, 1)));
        assert!(!c.must_flush_before(&tcp4(2300, 1300, 0x10, 1)));
        // A single packet goes out as it came, with an all-zero header.
        let one = c.take().to_vec();
        assert_eq!(&one[..VNET_HDR_LEN], &[0u8; VNET_HDR_LEN]);
        assert_eq!(&one[VNET_HDR_LEN..], &a[..]);
        // Not TCP, or no payload: not taken.
        assert!(!c.push(&[0x45u8; 28]));
        assert!(!c.push(&tcp4(1, 0, 0x10, 0)));
    }

    /// Sets the IPv4 ID and the DF bit and fixes the header checksum.
    fn with_id(mut p: Vec<u8>, id: u16, df: bool) -> Vec<u8> {
        p[4..6].copy_from_slice(&id.to_be_bytes());
        p[6] = if df { 0x40 } else { 0 };
        p[10..12].fill(0);
        let c = checksum::fold(checksum::sum(&p[..20], 0));
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    }

    /// An IPv6 TCP packet as long as its payload length field allows: 65,575 bytes, more
    /// than a run's buffer.
    fn jumbo_tcp6() -> Vec<u8> {
        let mut p = vec![0u8; 40 + 65_535];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&u16::MAX.to_be_bytes());
        p[6] = PROTO_TCP;
        p[52] = 5 << 4;
        p[53] = 0x10;
        p
    }

    /// What the `gro` fuzz target taught (fuzz/fuzz_targets/gro.rs): a second segment the
    /// kernel's GRO would not merge after the first, because splitting the run again could not
    /// give it back as it came, and input no coalescer may take.
    #[test]
    fn unmergeable_continuations_and_oversized_input() {
        let first = |df| with_id(tcp4(1000, 1300, 0x10, 1), 100, df);
        let next = |id, df| with_id(tcp4(2300, 1300, 0x10, 2), id, df);
        let rows: [(&str, bool, Vec<u8>, bool); 6] = [
            ("non-DF, next ID", false, next(101, false), true),
            ("non-DF, ID not following", false, next(107, false), false),
            ("non-DF, same ID", false, next(100, false), false),
            (
                "DF, ID not following (RFC 6864)",
                true,
                next(100, true),
                true,
            ),
            ("DF then no DF", true, next(101, false), false),
            ("no DF then DF", false, next(101, true), false),
        ];
        for (what, df, second, merges) in rows {
            let mut c = Coalescer::default();
            assert!(c.push(&first(df)), "{what}");
            assert_eq!(!c.must_flush_before(&second), merges, "{what}");
        }
        // Longer than any run: refused by both coalescers, not a slice out of range.
        let mut c = Coalescer::default();
        assert!(!c.push(&jumbo_tcp6()));
        let mut u = UdpCoalescer::default();
        let mut j = jumbo_tcp6();
        j[6] = PROTO_UDP;
        j[44..46].copy_from_slice(&u16::MAX.to_be_bytes());
        assert!(!u.push(&j));
        assert!(!c.pending() && !u.pending());
    }
}

/// Same-flow UDP datagrams of one size (the last may be shorter) merged into one write with a
/// UDP segmentation (USO, GSO_UDP_L4) header: for floods of small datagrams, where one TUN write
/// per packet is most of the receiving gateway's work.
pub struct UdpCoalescer {
    buf: Vec<u8>,
    len: usize,
    /// IP header length of the pending run; 0 = nothing pending.
    ip: usize,
    v4: bool,
    segments: usize,
    size: usize,
    closed: bool,
}

impl Default for UdpCoalescer {
    fn default() -> Self {
        UdpCoalescer {
            buf: vec![0u8; VNET_HDR_LEN + MAX_LEN],
            len: 0,
            ip: 0,
            v4: false,
            segments: 0,
            size: 0,
            closed: false,
        }
    }
}

/// (v4, IP header length) of a UDP datagram we may merge: no IP options, no fragments,
/// lengths consistent.
fn udp_layout(p: &[u8]) -> Option<(bool, usize)> {
    if p.len() > MAX_LEN {
        return None;
    }
    match packet::version(p)? {
        4 if p.len() >= 28
            && p[0] & 0x0f == 5
            && p[9] == PROTO_UDP
            && u16::from_be_bytes([p[6], p[7]]) & 0x3fff == 0
            && usize::from(u16::from_be_bytes([p[2], p[3]])) == p.len()
            && usize::from(u16::from_be_bytes([p[24], p[25]])) == p.len() - 20 =>
        {
            Some((true, 20))
        }
        6 if p.len() >= 48
            && p[6] == PROTO_UDP
            && usize::from(u16::from_be_bytes([p[4], p[5]])) + 40 == p.len()
            && usize::from(u16::from_be_bytes([p[44], p[45]])) == p.len() - 40 =>
        {
            Some((false, 40))
        }
        _ => None,
    }
}

impl UdpCoalescer {
    pub fn pending(&self) -> bool {
        self.len > 0
    }

    pub fn segments(&self) -> usize {
        self.segments
    }

    fn continues(&self, p: &[u8]) -> bool {
        let Some((v4, ip)) = udp_layout(p) else {
            return false;
        };
        let cur = &self.buf[VNET_HDR_LEN..VNET_HDR_LEN + self.ip + 8];
        let payload = p.len() - ip - 8;
        !self.closed
            && v4 == self.v4
            && payload > 0
            && payload <= self.size
            && self.segments < MAX_SEGMENTS
            && self.len + payload <= MAX_LEN
            && if v4 {
                cur[1] == p[1]
                    && cur[8] == p[8]
                    && cur[12..20] == p[12..20]
                    && ipv4_id_follows(cur, p, self.segments)
            } else {
                cur[0..4] == p[0..4] && cur[7..40] == p[7..40]
            }
            && cur[ip..ip + 4] == p[ip..ip + 4]
    }

    /// Whether the pending run must be written before `p` is offered.
    pub fn must_flush_before(&self, p: &[u8]) -> bool {
        self.pending() && !self.continues(p)
    }

    /// Adds `p` to the pending run or starts one; false if `p` is not a mergeable datagram.
    pub fn push(&mut self, p: &[u8]) -> bool {
        let Some((v4, ip)) = udp_layout(p) else {
            return false;
        };
        let payload = p.len() - ip - 8;
        if self.pending() && self.continues(p) {
            let at = VNET_HDR_LEN + self.len;
            self.buf[at..at + payload].copy_from_slice(&p[ip + 8..]);
            self.len += payload;
            self.segments += 1;
            self.closed = payload < self.size;
            return true;
        }
        if self.pending() || payload == 0 {
            return false;
        }
        self.buf[VNET_HDR_LEN..VNET_HDR_LEN + p.len()].copy_from_slice(p);
        self.len = p.len();
        self.ip = ip;
        self.v4 = v4;
        self.segments = 1;
        self.size = payload;
        self.closed = false;
        true
    }

    /// The pending run with its virtio-net header; resets the run.
    pub fn take(&mut self) -> &[u8] {
        if !self.pending() {
            return &[];
        }
        let len = std::mem::take(&mut self.len);
        let ip = std::mem::take(&mut self.ip);
        self.buf[..VNET_HDR_LEN].fill(0);
        if self.segments > 1 {
            let p = &mut self.buf[VNET_HDR_LEN..VNET_HDR_LEN + len];
            if self.v4 {
                p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                p[10..12].fill(0);
                let c = checksum::fold(checksum::sum(&p[..20], 0));
                p[10..12].copy_from_slice(&c.to_be_bytes());
            } else {
                p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
            }
            let udp_len = (len - ip) as u16;
            p[ip + 4..ip + 6].copy_from_slice(&udp_len.to_be_bytes());
            // Partial checksum over the whole run's length: the kernel adjusts it per segment.
            let pseudo = if self.v4 {
                checksum::sum(&p[12..20], 0)
            } else {
                checksum::sum(&p[8..40], 0)
            } + 17
                + u64::from(udp_len);
            let partial = !checksum::fold(pseudo);
            p[ip + 6..ip + 8].copy_from_slice(&partial.to_be_bytes());
            let hdr = &mut self.buf[..VNET_HDR_LEN];
            hdr[0] = F_NEEDS_CSUM;
            hdr[1] = GSO_UDP_L4;
            hdr[2..4].copy_from_slice(&((ip + 8) as u16).to_le_bytes());
            hdr[4..6].copy_from_slice(&(self.size as u16).to_le_bytes());
            hdr[6..8].copy_from_slice(&(ip as u16).to_le_bytes());
            hdr[8..10].copy_from_slice(&6u16.to_le_bytes());
        }
        self.segments = 0;
        self.closed = false;
        &self.buf[..VNET_HDR_LEN + len]
    }
}

#[cfg(test)]
mod udp_tests {
    use super::*;

    fn udp4(sport: u16, payload: usize, fill: u8) -> Vec<u8> {
        let mut p = vec![fill; 28 + payload];
        p[0] = 0x45;
        p[1] = 0;
        p[2..4].copy_from_slice(&((28 + payload) as u16).to_be_bytes());
        // IPv4 ID: the n-th datagram of a burst (no DF: IDs must follow each other).
        p[4..6].copy_from_slice(&u16::from(fill).to_be_bytes());
        p[6] = 0;
        p[7] = 0;
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&[10, 1, 0, 2]);
        p[16..20].copy_from_slice(&[10, 2, 0, 2]);
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&5201u16.to_be_bytes());
        p[24..26].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        p[26..28].fill(0);
        p
    }

    #[test]
    fn same_flow_same_size_datagrams_merge() {
        let mut c = UdpCoalescer::default();
        for i in 0..10u8 {
            let d = udp4(40000, 64, i);
            assert!(!c.must_flush_before(&d));
            assert!(c.push(&d));
        }
        // Another flow, or a larger datagram, ends the run.
        assert!(c.must_flush_before(&udp4(40001, 64, 0)));
        assert!(c.must_flush_before(&udp4(40000, 65, 0)));
        // So does a non-DF datagram whose IPv4 ID does not follow the run's.
        let mut d = udp4(40000, 64, 10);
        assert!(!c.must_flush_before(&d));
        d[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert!(c.must_flush_before(&d));
        assert_eq!(c.segments(), 10);
        let out = c.take().to_vec();
        assert_eq!(out[1], GSO_UDP_L4);
        assert_eq!(u16::from_le_bytes([out[4], out[5]]), 64);
        let p = &out[VNET_HDR_LEN..];
        assert_eq!(p.len(), 28 + 640);
        assert_eq!(u16::from_be_bytes([p[2], p[3]]) as usize, p.len());
        assert_eq!(checksum::fold(checksum::sum(&p[..20], 0)), 0);
        for i in 0..10 {
            assert!(p[28 + i * 64..28 + (i + 1) * 64]
                .iter()
                .all(|b| *b == i as u8));
        }
        // A lone datagram goes out as it came.
        let d = udp4(1, 30, 9);
        assert!(c.push(&d));
        let one = c.take().to_vec();
        assert_eq!(&one[..VNET_HDR_LEN], &[0u8; VNET_HDR_LEN]);
        assert_eq!(&one[VNET_HDR_LEN..], &d[..]);
    }
}
