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
//!
//! Like the kernel's GRO, a segment joins a run only if its checksums verify (IPv4 header and
//! TCP/UDP; a UDP-over-IPv4 checksum of 0 means "none" and passes): the run gets a fresh
//! checksum, which would otherwise launder a segment corrupted before the remote gateway
//! encrypted it. A segment that fails is written alone and unchanged, so the receiving stack
//! drops it as it would without us, and counted. The check costs one pass over each segment
//! that joins a run (the head's when its first follower comes); a packet written alone is not
//! summed.

use crate::checksum;
use crate::packet::vnet::{
    F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4, HDR_LEN as VNET_HDR_LEN,
};
use crate::packet::{self, PROTO_TCP, PROTO_UDP};

const MAX_SEGMENTS: usize = 64;
const MAX_LEN: usize = 65_535;

/// Both coalescers, driven as a worker drives them: at most one holds a run at a time, so
/// packets reach the TUN device in the order they came.
#[derive(Default)]
pub struct Coalescers {
    pub tcp: Coalescer,
    pub udp: UdpCoalescer,
}

impl Coalescers {
    /// Offers a decrypted packet; `write(run, segments)` gets every run that must go out
    /// before it. True: held. False: nothing is pending, the caller writes `p` alone (not
    /// mergeable, or a checksum failed).
    pub fn offer(&mut self, p: &[u8], mut write: impl FnMut(&[u8], usize)) -> bool {
        loop {
            match self.tcp.offer(p) {
                Offer::FlushFirst => {
                    let n = self.tcp.segments();
                    write(self.tcp.take(), n);
                }
                Offer::Held => {
                    // `p` started a TCP run: an older UDP run goes first.
                    if self.udp.pending() {
                        let n = self.udp.segments();
                        write(self.udp.take(), n);
                    }
                    return true;
                }
                Offer::Refused => break,
            }
        }
        loop {
            match self.udp.offer(p) {
                Offer::FlushFirst => {
                    let n = self.udp.segments();
                    write(self.udp.take(), n);
                }
                Offer::Held => return true,
                Offer::Refused => return false,
            }
        }
    }

    /// Writes the pending run, if any.
    pub fn flush(&mut self, mut write: impl FnMut(&[u8], usize)) {
        if self.tcp.pending() {
            let n = self.tcp.segments();
            write(self.tcp.take(), n);
        }
        if self.udp.pending() {
            let n = self.udp.segments();
            write(self.udp.take(), n);
        }
    }

    /// Packets written alone because a checksum failed, since the last call.
    pub fn take_bad_checksums(&mut self) -> u64 {
        std::mem::take(&mut self.tcp.sums.bad) + std::mem::take(&mut self.udp.sums.bad)
    }
}

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

/// What a coalescer did with an offered packet ([`Coalescer::offer`], [`UdpCoalescer::offer`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    /// Held: the packet joined the pending run or started one.
    Held,
    /// The pending run must be written first ([`Coalescer::take`]); then offer the packet
    /// again. Said when the packet does not continue the run, or when it or the run's head
    /// failed its checksum.
    FlushFirst,
    /// Not mergeable and nothing is pending: the caller writes the packet alone.
    Refused,
}

/// Whether the checksums of `p` (IP header length `ip`, transport `proto`) verify, as the
/// receiving stack would check them: IPv4 header, then TCP or UDP over the pseudo-header. A
/// UDP checksum of 0 is "no checksum" over IPv4 (RFC 768) and invalid over IPv6 (RFC 8200
/// 8.1).
fn checksums_valid(p: &[u8], ip: usize, proto: u8) -> bool {
    let v4 = ip == 20;
    if v4 && checksum::fold(checksum::sum(&p[..20], 0)) != 0 {
        return false;
    }
    if proto == PROTO_UDP && p[ip + 6..ip + 8] == [0, 0] {
        return v4;
    }
    let pseudo = if v4 {
        checksum::sum(&p[12..20], 0)
    } else {
        checksum::sum(&p[8..40], 0)
    } + u64::from(proto)
        + (p.len() - ip) as u64;
    checksum::fold(checksum::sum(&p[ip..], pseudo)) == 0
}

/// What is known of a pending run's head checksums: summed only when a second segment would
/// join it, so a packet written alone is never summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum HeadSums {
    #[default]
    Unchecked,
    /// Verified (the run has more than one segment).
    Valid,
    /// Failed: the head goes out alone.
    Invalid,
}

/// The checksum check of one coalescer: each packet is summed at most once, when it would
/// join a run (or its first follower comes).
#[derive(Clone, Copy, Debug, Default)]
struct SumGate {
    head: HeadSums,
    /// The packet last refused for a bad checksum ([`Offer::FlushFirst`]) was that packet:
    /// offered again, it starts its run as [`HeadSums::Invalid`] and is not summed (or
    /// counted) twice. Only a bad verdict is carried over: if the caller offers another
    /// packet instead, the worst outcome is one good packet written alone.
    refused_bad: bool,
    /// Packets refused because a checksum failed.
    bad: u64,
}

impl SumGate {
    /// A run starts (with the packet offered again after a FlushFirst, if there was one).
    fn start(&mut self) {
        self.head = if std::mem::take(&mut self.refused_bad) {
            HeadSums::Invalid
        } else {
            HeadSums::Unchecked
        };
    }

    /// Whether `p` may join the run that starts at `head` (IP header lengths `ip`, transport
    /// `proto`): both verify. False means FlushFirst.
    fn admit(&mut self, head: &[u8], p: &[u8], ip: usize, proto: u8) -> bool {
        if self.head == HeadSums::Unchecked {
            self.head = if checksums_valid(head, ip, proto) {
                HeadSums::Valid
            } else {
                self.bad += 1;
                HeadSums::Invalid
            };
        }
        if self.head == HeadSums::Invalid {
            // The head alone; `p` is offered again and starts a run.
            return false;
        }
        if !checksums_valid(p, ip, proto) {
            self.bad += 1;
            self.refused_bad = true;
            return false;
        }
        true
    }
}

/// Merges consecutive segments into `buf` (virtio-net header, then the super-packet).
#[derive(Clone)]
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
    sums: SumGate,
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
            sums: SumGate::default(),
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

    /// Packets not merged because a checksum failed (they were written alone, unchanged).
    pub fn bad_checksums(&self) -> u64 {
        self.sums.bad
    }

    /// Offers a decrypted packet: held (joins or starts a run), FlushFirst (write
    /// [`Coalescer::take`], then offer it again), or Refused (not mergeable TCP, nothing
    /// pending: the caller writes it alone).
    pub fn offer(&mut self, p: &[u8]) -> Offer {
        let Some(t) = parse(p) else {
            return if self.pending() {
                Offer::FlushFirst
            } else {
                Offer::Refused
            };
        };
        let payload = p.len() - t.hl;
        if self.pending() {
            if !self.continues(p, &t) {
                return Offer::FlushFirst;
            }
            let h = self.head.expect("pending");
            let head = &self.buf[VNET_HDR_LEN..VNET_HDR_LEN + self.len];
            if !self.sums.admit(head, p, h.ip, PROTO_TCP) {
                return Offer::FlushFirst;
            }
            let at = VNET_HDR_LEN + self.len;
            self.buf[at..at + payload].copy_from_slice(&p[t.hl..]);
            self.len += payload;
            self.segments += 1;
            self.next_seq = t.seq.wrapping_add(payload as u32);
            if payload < self.mss || t.flags & 0x08 != 0 {
                self.closed = true;
                // The run ends with this segment's flags (PSH).
                self.buf[VNET_HDR_LEN + h.ip + 13] = t.flags;
            }
            return Offer::Held;
        }
        if payload == 0 || !matches!(t.flags, 0x10 | 0x18) {
            self.sums.refused_bad = false;
            return Offer::Refused;
        }
        self.buf[VNET_HDR_LEN..VNET_HDR_LEN + p.len()].copy_from_slice(p);
        self.len = p.len();
        self.head = Some(t);
        self.segments = 1;
        self.mss = payload;
        self.next_seq = t.seq.wrapping_add(payload as u32);
        self.closed = t.flags & 0x08 != 0;
        self.sums.start();
        Offer::Held
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
            assert_eq!(c.offer(s), Offer::Held);
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
        assert_eq!(c.offer(&a), Offer::Held);
        // A gap in the sequence, another flow, a SYN: not merged.
        assert_eq!(probe(&c, &tcp4(9999, 1300, 0x10, 1)), Offer::FlushFirst);
        let mut other = tcp4(2300, 1300, 0x10, 1);
        other[20..22].copy_from_slice(&40001u16.to_be_bytes());
        assert_eq!(probe(&c, &other), Offer::FlushFirst);
        assert_eq!(probe(&c, &tcp4(2300, 1300, 0x12, 1)), Offer::FlushFirst);
        assert_eq!(probe(&c, &tcp4(2300, 1300, 0x10, 1)), Offer::Held);
        // A single packet goes out as it came, with an all-zero header.
        let one = c.take().to_vec();
        assert_eq!(&one[..VNET_HDR_LEN], &[0u8; VNET_HDR_LEN]);
        assert_eq!(&one[VNET_HDR_LEN..], &a[..]);
        // Not TCP, or no payload: not taken.
        assert_eq!(c.offer(&[0x45u8; 28]), Offer::Refused);
        assert_eq!(c.offer(&tcp4(1, 0, 0x10, 0)), Offer::Refused);
    }

    /// What `c` would do with `p`, leaving `c` as it is.
    fn probe(c: &Coalescer, p: &[u8]) -> Offer {
        c.clone().offer(p)
    }

    /// Feeds `packets` through both coalescers as a worker does: the writes, each with its
    /// segment count.
    fn drive(packets: &[Vec<u8>]) -> (Vec<(Vec<u8>, usize)>, u64) {
        let mut co = Coalescers::default();
        let mut out = Vec::new();
        for p in packets {
            if !co.offer(p, |w, n| out.push((w.to_vec(), n))) {
                let mut alone = vec![0u8; VNET_HDR_LEN];
                alone.extend_from_slice(p);
                out.push((alone, 1));
            }
        }
        co.flush(|w, n| out.push((w.to_vec(), n)));
        (out, co.take_bad_checksums())
    }

    /// The finding of issue 19: a segment whose TCP checksum was already wrong is not merged
    /// (the run would get a fresh checksum and launder it). The run before it is written, it
    /// is written alone and unchanged, the segments after it merge again; a bad head is
    /// written alone too; each bad one is counted once.
    #[test]
    fn a_segment_with_a_bad_checksum_is_written_alone_unchanged() {
        let mut segs: Vec<Vec<u8>> = (0..7u32)
            .map(|i| tcp4(1000 + i * 1300, 1300, 0x10, i as u8))
            .collect();
        segs[3][60] ^= 0x01; // payload corrupted before the remote gateway encrypted it
        let (out, bad) = drive(&segs);
        let counts: Vec<usize> = out.iter().map(|(_, n)| *n).collect();
        assert_eq!(counts, [3, 1, 3]);
        assert_eq!(&out[1].0[..VNET_HDR_LEN], &[0u8; VNET_HDR_LEN]);
        assert_eq!(&out[1].0[VNET_HDR_LEN..], &segs[3][..]);
        assert_eq!(bad, 1);

        // A bad head: alone; the next two merge. A bad IPv4 header checksum counts too.
        let mut segs: Vec<Vec<u8>> = (0..3u32)
            .map(|i| tcp4(1000 + i * 1300, 1300, 0x10, i as u8))
            .collect();
        segs[0][36] ^= 0x80;
        let (out, bad) = drive(&segs);
        let counts: Vec<usize> = out.iter().map(|(_, n)| *n).collect();
        assert_eq!(counts, [1, 2]);
        assert_eq!(&out[0].0[VNET_HDR_LEN..], &segs[0][..]);
        assert_eq!(bad, 1);
        let mut segs: Vec<Vec<u8>> = (0..3u32)
            .map(|i| tcp4(1000 + i * 1300, 1300, 0x10, i as u8))
            .collect();
        segs[2][10] ^= 0x01;
        let (out, bad) = drive(&segs);
        let counts: Vec<usize> = out.iter().map(|(_, n)| *n).collect();
        assert_eq!((counts, bad), (vec![2, 1], 1));
        assert_eq!(&out[1].0[VNET_HDR_LEN..], &segs[2][..]);
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
            assert_eq!(c.offer(&first(df)), Offer::Held, "{what}");
            assert_eq!(probe(&c, &second) == Offer::Held, merges, "{what}");
        }
        // Longer than any run: refused by both coalescers, not a slice out of range.
        let mut c = Coalescer::default();
        assert_eq!(c.offer(&jumbo_tcp6()), Offer::Refused);
        let mut u = UdpCoalescer::default();
        let mut j = jumbo_tcp6();
        j[6] = PROTO_UDP;
        j[44..46].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(u.offer(&j), Offer::Refused);
        assert!(!c.pending() && !u.pending());
    }
}

/// Same-flow UDP datagrams of one size (the last may be shorter) merged into one write with a
/// UDP segmentation (USO, GSO_UDP_L4) header: for floods of small datagrams, where one TUN write
/// per packet is most of the receiving gateway's work.
#[derive(Clone)]
pub struct UdpCoalescer {
    buf: Vec<u8>,
    len: usize,
    /// IP header length of the pending run; 0 = nothing pending.
    ip: usize,
    v4: bool,
    segments: usize,
    size: usize,
    closed: bool,
    sums: SumGate,
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
            sums: SumGate::default(),
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

    /// Packets not merged because a checksum failed (they were written alone, unchanged).
    pub fn bad_checksums(&self) -> u64 {
        self.sums.bad
    }

    fn continues(&self, p: &[u8], v4: bool, ip: usize) -> bool {
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

    /// Offers a decrypted packet, as [`Coalescer::offer`] does for TCP.
    pub fn offer(&mut self, p: &[u8]) -> Offer {
        let Some((v4, ip)) = udp_layout(p) else {
            return if self.pending() {
                Offer::FlushFirst
            } else {
                Offer::Refused
            };
        };
        let payload = p.len() - ip - 8;
        if self.pending() {
            if !self.continues(p, v4, ip) {
                return Offer::FlushFirst;
            }
            let head = &self.buf[VNET_HDR_LEN..VNET_HDR_LEN + self.len];
            if !self.sums.admit(head, p, ip, PROTO_UDP) {
                return Offer::FlushFirst;
            }
            let at = VNET_HDR_LEN + self.len;
            self.buf[at..at + payload].copy_from_slice(&p[ip + 8..]);
            self.len += payload;
            self.segments += 1;
            self.closed = payload < self.size;
            return Offer::Held;
        }
        if payload == 0 {
            self.sums.refused_bad = false;
            return Offer::Refused;
        }
        self.buf[VNET_HDR_LEN..VNET_HDR_LEN + p.len()].copy_from_slice(p);
        self.len = p.len();
        self.ip = ip;
        self.v4 = v4;
        self.segments = 1;
        self.size = payload;
        self.closed = false;
        self.sums.start();
        Offer::Held
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
        p[26..28].fill(0); // no UDP checksum: allowed over IPv4
        ip_sum(&mut p);
        p
    }

    fn ip_sum(p: &mut [u8]) {
        p[10..12].fill(0);
        let c = checksum::fold(checksum::sum(&p[..20], 0));
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }

    /// Fills in the UDP checksum of an IPv4 or IPv6 datagram.
    fn udp_sum(p: &mut [u8]) {
        let ip = if p[0] >> 4 == 4 { 20 } else { 40 };
        p[ip + 6..ip + 8].fill(0);
        let pseudo = if ip == 20 {
            checksum::sum(&p[12..20], 0)
        } else {
            checksum::sum(&p[8..40], 0)
        } + 17
            + (p.len() - ip) as u64;
        let c = checksum::fold(checksum::sum(&p[ip..], pseudo));
        let c = if c == 0 { 0xffff } else { c };
        p[ip + 6..ip + 8].copy_from_slice(&c.to_be_bytes());
    }

    fn udp6(payload: usize, fill: u8) -> Vec<u8> {
        let mut p = vec![fill; 48 + payload];
        p[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
        p[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        p[6] = 17;
        p[7] = 64;
        p[8..24].fill(0);
        p[23] = 1;
        p[24..40].fill(0);
        p[39] = 2;
        p[40..42].copy_from_slice(&40000u16.to_be_bytes());
        p[42..44].copy_from_slice(&5201u16.to_be_bytes());
        p[44..46].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        udp_sum(&mut p);
        p
    }

    fn probe(c: &UdpCoalescer, p: &[u8]) -> Offer {
        c.clone().offer(p)
    }

    /// Segment counts of the writes of both coalescers driven over `packets`, and the bad
    /// checksums counted.
    fn runs(packets: &[Vec<u8>]) -> (Vec<usize>, u64) {
        let mut co = Coalescers::default();
        let mut out = Vec::new();
        for p in packets {
            if !co.offer(p, |_, n| out.push(n)) {
                out.push(1);
            }
        }
        co.flush(|_, n| out.push(n));
        (out, co.take_bad_checksums())
    }

    /// UDP checksums: a wrong one is never merged; 0 is "no checksum" over IPv4 and merges,
    /// but is invalid over IPv6 (RFC 8200 8.1) and does not.
    #[test]
    fn udp_checksums_gate_merging() {
        // IPv4 with real checksums, one corrupted in the middle.
        let mut d: Vec<Vec<u8>> = (0..6u8)
            .map(|i| {
                let mut p = udp4(40000, 64, i);
                udp_sum(&mut p);
                p
            })
            .collect();
        assert_eq!(runs(&d), (vec![6], 0));
        d[2][40] ^= 0x10;
        assert_eq!(runs(&d), (vec![2, 1, 3], 1));
        // IPv4 without checksums: merged.
        let d: Vec<Vec<u8>> = (0..6u8).map(|i| udp4(40000, 64, i)).collect();
        assert_eq!(runs(&d), (vec![6], 0));
        // IPv6: valid checksums merge; a zero one is written alone.
        let mut d: Vec<Vec<u8>> = (0..4u8).map(|i| udp6(64, i)).collect();
        assert_eq!(runs(&d), (vec![4], 0));
        d[3][46..48].fill(0);
        assert_eq!(runs(&d), (vec![3, 1], 1));
        d[0][46..48].fill(0);
        assert_eq!(runs(&d), (vec![1, 2, 1], 2));
    }

    /// IPv6 rows: what the coalescers must write alone (Refused) rather than merge: extension
    /// headers (hop-by-hop, destination options, routing, fragment), payload lengths that
    /// disagree with the packet (a jumbogram's 0, one byte more or less), a UDP length that
    /// disagrees with the payload length, and a version nibble that is not 6.
    #[test]
    fn ipv6_packets_written_alone() {
        let good = udp6(100, 7);
        let with_ext = |next: u8| {
            let mut p = good[..40].to_vec();
            p[6] = next;
            p[4..6].copy_from_slice(&(8 + 108u16).to_be_bytes());
            p.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
            p.extend_from_slice(&good[40..]);
            p
        };
        let edit = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut p = good.clone();
            f(&mut p);
            p
        };
        let rows: Vec<(&str, Vec<u8>)> = vec![
            ("hop-by-hop", with_ext(0)),
            ("destination options", with_ext(60)),
            ("routing header", with_ext(43)),
            ("fragment header", with_ext(44)),
            ("payload length 0 (jumbogram)", edit(&|p| p[4..6].fill(0))),
            (
                "payload length one more",
                edit(&|p| p[4..6].copy_from_slice(&109u16.to_be_bytes())),
            ),
            (
                "payload length one less",
                edit(&|p| p[4..6].copy_from_slice(&107u16.to_be_bytes())),
            ),
            (
                "UDP length disagrees",
                edit(&|p| p[44..46].copy_from_slice(&100u16.to_be_bytes())),
            ),
            ("version 4 nibble", edit(&|p| p[0] = 0x40)),
            ("cut short", good[..47].to_vec()),
        ];
        let mut tcp_rows = rows.clone();
        for (_, p) in &mut tcp_rows {
            if p.len() > 6 && p[6] == 17 {
                p[6] = PROTO_TCP;
            }
        }
        for (what, p) in &rows {
            let mut u = UdpCoalescer::default();
            assert_eq!(u.offer(&good), Offer::Held, "{what}");
            // Behind a pending run: the run goes out first, then the packet is refused.
            assert_eq!(probe(&u, p), Offer::FlushFirst, "udp {what}");
            let mut empty = UdpCoalescer::default();
            assert_eq!(empty.offer(p), Offer::Refused, "udp {what}");
            assert!(!empty.pending());
        }
        for (what, p) in &tcp_rows {
            let mut c = Coalescer::default();
            assert_eq!(c.offer(p), Offer::Refused, "tcp {what}");
            assert!(!c.pending());
        }
    }

    #[test]
    fn same_flow_same_size_datagrams_merge() {
        let mut c = UdpCoalescer::default();
        for i in 0..10u8 {
            let d = udp4(40000, 64, i);
            assert_eq!(c.offer(&d), Offer::Held);
        }
        // Another flow, or a larger datagram, ends the run.
        assert_eq!(probe(&c, &udp4(40001, 64, 0)), Offer::FlushFirst);
        assert_eq!(probe(&c, &udp4(40000, 65, 0)), Offer::FlushFirst);
        // So does a non-DF datagram whose IPv4 ID does not follow the run's.
        let mut d = udp4(40000, 64, 10);
        assert_eq!(probe(&c, &d), Offer::Held);
        d[4..6].copy_from_slice(&7u16.to_be_bytes());
        ip_sum(&mut d);
        assert_eq!(probe(&c, &d), Offer::FlushFirst);
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
        assert_eq!(c.offer(&d), Offer::Held);
        let one = c.take().to_vec();
        assert_eq!(&one[..VNET_HDR_LEN], &[0u8; VNET_HDR_LEN]);
        assert_eq!(&one[VNET_HDR_LEN..], &d[..]);
    }
}
