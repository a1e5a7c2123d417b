//! What fits through a tunnel, and what the fast path does about packets that do not: TCP MSS
//! clamping on SYNs, and ICMP "fragmentation needed" / ICMPv6 "packet too big" back to the
//! inner sender. `ARCHITECTURE.md`, "Life of a packet", says where these run; the README's
//! "MTU" section says what an operator sees.
//!
//! Sizes depend on the SA's suite. With the outer path MTU `P` the UDP payload is
//! `P - outer IP header (20 or 40) - 8`, and an inner packet of `n` bytes takes
//! [`Suite::sealed_len`]`(n)` of it: for the AEADs `16 + round_up_4(n + 2) + 16` (8-byte SPI
//! and sequence, 8-byte IV, padding to 4 bytes, pad length and next header, 16-byte ICV), for
//! AES-CBC `24 + round_up_16(n + 2) + ICV` (16-byte IV, padding to the AES block, a 12- to
//! 32-byte truncated HMAC), up to 30 bytes more. [`TunnelMtu::for_path`] solves that for the
//! largest `n` ([`Suite::max_payload`]); the clamped MSS is that minus the inner IP and TCP
//! headers. The control plane builds each tunnel's [`TunnelMtu`] with the suite of the SA it
//! sends with, so MSS clamping, ICMP "too big" and fragmentation use that SA's overhead.
//!
//! Nothing here allocates: the ICMP error is written into a buffer the worker owns.

use std::cell::Cell;

use ironsec_esp::Suite;

use crate::checksum;
use crate::packet::{self, IPV4_MIN_HEADER, IPV6_HEADER, PROTO_TCP, TCP_MIN_HEADER, UDP_HEADER};

/// How the MSS of SYNs crossing a tunnel is clamped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MssClamp {
    /// To what fits the tunnel: [`TunnelMtu::max_inner`] minus inner IP and TCP headers.
    #[default]
    Auto,
    /// To this value for IPv4 (an operator's number, e.g. Azure's 1350); IPv6 gets 20 less,
    /// for its longer header. Never above what fits the tunnel.
    Fixed(u16),
    /// Left alone.
    Off,
}

/// What one tunnel carries in one outer datagram, fixed when the control plane builds the
/// tables (the path MTU it was built with, the SA's suite overhead, the clamp setting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelMtu {
    /// Largest inner packet that fits in one outer datagram. A DF (or any IPv6) packet longer
    /// than this gets an ICMP error back; a non-DF IPv4 one is sealed and its outer datagram
    /// fragmented by the kernel.
    pub max_inner: u16,
    /// MSS written into IPv4 SYNs whose MSS is larger; 0 = no clamping.
    pub mss_v4: u16,
    /// The same for IPv6 SYNs.
    pub mss_v6: u16,
    /// Largest ESP-in-UDP payload one outer datagram carries unfragmented: a longer one (a
    /// non-DF inner packet above `max_inner`) is sent alone, never in a GSO run.
    pub max_datagram: u16,
}

/// The smallest path MTU a tunnel is given: IPv6's minimum link MTU. Below it IPv6 inner
/// packets could not cross at all.
pub const MIN_PATH_MTU: u16 = 1280;

impl TunnelMtu {
    /// No limit known: nothing is clamped, no ICMP is sent (tables built in tests).
    pub const UNLIMITED: TunnelMtu = TunnelMtu {
        max_inner: u16::MAX,
        mss_v4: 0,
        mss_v6: 0,
        max_datagram: u16::MAX,
    };

    /// For an outer path of `path_mtu` bytes over IPv4 (`outer_v6` false) or IPv6, sealed with
    /// `suite`, capped by `device_mtu` (the TUN device's MTU: nothing larger ever arrives from
    /// the site, and the kernel answers the site's oversized DF packets itself).
    pub fn for_path(
        path_mtu: u16,
        outer_v6: bool,
        device_mtu: u16,
        clamp: MssClamp,
        suite: Suite,
    ) -> TunnelMtu {
        let outer_ip = if outer_v6 {
            IPV6_HEADER
        } else {
            IPV4_MIN_HEADER
        };
        let max_datagram = usize::from(path_mtu.max(MIN_PATH_MTU)) - outer_ip - UDP_HEADER;
        // The body (inner + 2) is padded to the suite's block: the inner packet gets the rest.
        // At least 1280 - 48 - 58 bytes whatever the suite, so the MSS arithmetic cannot wrap.
        let max_inner = suite.max_payload(max_datagram);
        let max_inner = u16::try_from(max_inner).unwrap_or(u16::MAX).min(device_mtu);
        let fits_v4 = max_inner - (IPV4_MIN_HEADER + TCP_MIN_HEADER) as u16;
        let fits_v6 = max_inner - (IPV6_HEADER + TCP_MIN_HEADER) as u16;
        let (mss_v4, mss_v6) = match clamp {
            MssClamp::Auto => (fits_v4, fits_v6),
            MssClamp::Fixed(m) => (m.min(fits_v4), m.saturating_sub(20).min(fits_v6)),
            MssClamp::Off => (0, 0),
        };
        TunnelMtu {
            max_inner,
            mss_v4,
            mss_v6,
            max_datagram: max_datagram as u16,
        }
    }

    /// The largest inner packet of IPv4 (`v6` false) or IPv6 sent without an ICMP error: for
    /// IPv6 never below 1280, which every IPv6 path must carry and no host may be told less
    /// than (RFC 8201 §4); such a packet is sealed and its outer datagram fragmented.
    #[inline]
    pub fn limit(&self, v6: bool) -> u16 {
        if v6 {
            self.max_inner.max(MIN_PATH_MTU)
        } else {
            self.max_inner
        }
    }

    /// The MSS limit for an inner packet of IP version `v`; 0 = none.
    #[inline]
    pub fn mss_for(&self, pkt: &[u8]) -> u16 {
        match packet::version(pkt) {
            Some(4) => self.mss_v4,
            Some(6) => self.mss_v6,
            _ => 0,
        }
    }
}

/// The kernel's path MTU from `local` to `remote`: the route's MTU, or a smaller one learned
/// from ICMP on the outer path (PMTU cache). Asked of a UDP socket connected for the purpose
/// (IP_MTU / IPV6_MTU, ip(7)); nothing is sent.
pub fn route_mtu(local: std::net::IpAddr, remote: std::net::SocketAddr) -> std::io::Result<u16> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::fd::AsRawFd;
    let sock = Socket::new(
        Domain::for_address(remote),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    sock.bind(&std::net::SocketAddr::new(local, 0).into())?;
    sock.connect(&remote.into())?;
    let (level, name) = if remote.is_ipv6() {
        (libc::IPPROTO_IPV6, libc::IPV6_MTU)
    } else {
        (libc::IPPROTO_IP, libc::IP_MTU)
    };
    let mut mtu: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the socket is open for the duration of the call; `mtu` and `len` are valid,
    // writable and `len` holds the size of `mtu`.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&mut mtu as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    u16::try_from(mtu).map_err(|_| std::io::Error::other(format!("path MTU {mtu} out of range")))
}

/// TCP flag SYN.
const TCP_SYN: u8 = 0x02;
/// TCP option kinds.
const OPT_EOL: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;

/// Whether `pkt` may be a TCP SYN (or SYN-ACK): the one check every packet pays, inlined and
/// a handful of instructions (protocol byte, flags byte at the IHL's offset). IPv6 with
/// extension headers answers yes and leaves the walk to [`clamp_mss`]. A false positive costs
/// only the call; a false negative never happens.
#[inline(always)]
pub fn may_be_syn(pkt: &[u8]) -> bool {
    match pkt.first().map(|b| b >> 4) {
        Some(4) => {
            pkt.get(9) == Some(&PROTO_TCP)
                && pkt
                    .get(usize::from(pkt[0] & 0x0f) * 4 + 13)
                    .is_some_and(|f| f & TCP_SYN != 0)
        }
        Some(6) => match pkt.get(6) {
            Some(&PROTO_TCP) => pkt.get(IPV6_HEADER + 13).is_some_and(|f| f & TCP_SYN != 0),
            Some(0 | 60) => true,
            _ => false,
        },
        _ => false,
    }
}

/// Where the TCP header of a SYN starts, if `pkt` is one (IPv4 first fragment, or IPv6 with
/// at most hop-by-hop/destination options before TCP). Cheap on everything else: a protocol
/// byte and a flags byte.
#[inline]
pub fn syn_offset(pkt: &[u8]) -> Option<usize> {
    let th = match packet::version(pkt)? {
        4 => {
            if *pkt.get(9)? != PROTO_TCP || packet::ipv4_is_fragment(pkt)? {
                return None;
            }
            packet::ipv4_header_len(pkt)?
        }
        6 => {
            let (proto, off) = packet::ipv6_transport(pkt)?;
            if proto != PROTO_TCP {
                return None;
            }
            off
        }
        _ => return None,
    };
    (*pkt.get(th + 13)? & TCP_SYN != 0).then_some(th)
}

/// Lowers the MSS option of a SYN (or SYN-ACK) in `pkt` to `mss` if it is larger, and fixes
/// the TCP checksum incrementally (RFC 1624, eqn. 3). Returns whether it changed the packet.
/// Never raises an MSS, never adds an option a SYN lacks (the peer's default, 536 or 1220,
/// already fits), and leaves a malformed option list alone. Out of line: the fast path calls
/// it only when [`may_be_syn`] says so.
#[inline(never)]
pub fn clamp_mss(pkt: &mut [u8], mss: u16) -> bool {
    if mss == 0 {
        return false;
    }
    let Some(th) = syn_offset(pkt) else {
        return false;
    };
    let Some(hl) = packet::tcp_header_len(pkt, th) else {
        return false;
    };
    if hl < TCP_MIN_HEADER || th + hl > pkt.len() {
        return false;
    }
    let mut o = th + TCP_MIN_HEADER;
    let end = th + hl;
    while o < end {
        match pkt[o] {
            OPT_EOL => return false,
            OPT_NOP => o += 1,
            kind => {
                let Some(&len) = pkt.get(o + 1) else {
                    return false;
                };
                let len = usize::from(len);
                if len < 2 || o + len > end {
                    return false;
                }
                if kind == OPT_MSS && len == 4 {
                    let at = o + 2;
                    let old = u16::from_be_bytes([pkt[at], pkt[at + 1]]);
                    if old <= mss {
                        return false;
                    }
                    pkt[at..at + 2].copy_from_slice(&mss.to_be_bytes());
                    // The checksum sums 16-bit words from the TCP header's start: a value at
                    // an odd offset sits across two words, which in a ones'-complement sum is
                    // the same as its bytes swapped.
                    let (m, m2) = if (at - th).is_multiple_of(2) {
                        (old, mss)
                    } else {
                        (old.swap_bytes(), mss.swap_bytes())
                    };
                    let c = th + 16;
                    let hc = u16::from_be_bytes([pkt[c], pkt[c + 1]]);
                    let sum = u64::from(!hc) + u64::from(!m) + u64::from(m2);
                    pkt[c..c + 2].copy_from_slice(&checksum::fold(sum).to_be_bytes());
                    return true;
                }
                o += len;
            }
        }
    }
    false
}

/// Whether an inner packet that does not fit may be answered with an ICMP error rather than
/// sent: IPv4 with DF set, and every IPv6 packet (routers never fragment IPv6).
#[inline]
pub fn must_not_fragment(pkt: &[u8]) -> bool {
    match packet::version(pkt) {
        Some(4) => pkt.get(6).is_some_and(|b| b & 0x40 != 0),
        Some(6) => true,
        _ => false,
    }
}

/// How an IPv4 packet without DF that is longer than `limit` is cut into fragments that fit
/// (RFC 791; RFC 4459 §3 "inner fragmentation", as Linux does for IPsec tunnel mode): every
/// fragment but the last carries `per` payload bytes, a multiple of 8. `None` when the packet
/// has IPv4 options (which option is copied into which fragment is not worth the fast path's
/// code: such a packet is sealed whole and its outer datagram fragmented) or `limit` leaves
/// no room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragments {
    pub count: usize,
    pub per: usize,
}

impl Fragments {
    /// The most fragments a plan makes: a 9000-byte packet (the largest `tun_mtu`) over the
    /// smallest tunnel (`MIN_PATH_MTU` over IPv6: 1198 bytes, 1176 of payload each).
    pub const MAX: usize = 8;

    pub fn plan(pkt: &[u8], limit: u16) -> Option<Fragments> {
        if packet::ipv4_header_len(pkt)? != IPV4_MIN_HEADER || pkt.len() <= usize::from(limit) {
            return None;
        }
        let per = (usize::from(limit).checked_sub(IPV4_MIN_HEADER)?) & !7;
        if per == 0 {
            return None;
        }
        let count = (pkt.len() - IPV4_MIN_HEADER).div_ceil(per);
        // A fragment whose data would end past 65,535 bytes (its own offset plus its length)
        // has no valid offsets to give its pieces: the 13-bit field would overflow into the
        // flags. The receiver drops such a packet anyway; it is sealed whole.
        let offset = usize::from(u16::from_be_bytes([*pkt.get(6)?, *pkt.get(7)?]) & 0x1fff) * 8;
        if offset + pkt.len() - IPV4_MIN_HEADER > usize::from(u16::MAX) {
            return None;
        }
        (count <= Self::MAX).then_some(Fragments { count, per })
    }

    /// Writes fragment `k` of `pkt` into `out` (header, then its share of the payload) and
    /// returns its length; `out` must hold `IPV4_MIN_HEADER + per` bytes.
    pub fn write(&self, pkt: &[u8], k: usize, out: &mut [u8]) -> usize {
        let start = IPV4_MIN_HEADER + k * self.per;
        let end = (start + self.per).min(pkt.len());
        let len = IPV4_MIN_HEADER + end - start;
        out[..IPV4_MIN_HEADER].copy_from_slice(&pkt[..IPV4_MIN_HEADER]);
        out[IPV4_MIN_HEADER..len].copy_from_slice(&pkt[start..end]);
        self.fix_header(&mut out[..len], k, pkt);
        len
    }

    /// Turns `pkt` itself into its first fragment (the payload is already in place) and
    /// returns its length. Call after every [`Fragments::write`]: it shortens the packet.
    pub fn first_in_place(&self, pkt: &mut [u8]) -> usize {
        let len = IPV4_MIN_HEADER + self.per;
        let orig = [pkt[6], pkt[7]];
        let mut head = [0u8; IPV4_MIN_HEADER];
        head.copy_from_slice(&pkt[..IPV4_MIN_HEADER]);
        head[6..8].copy_from_slice(&orig);
        self.fix_header(&mut pkt[..len], 0, &head);
        len
    }

    /// Total length, MF and offset of fragment `k` (the original may itself be a fragment:
    /// offsets add, and its MF carries over to the last piece), and the header checksum.
    fn fix_header(&self, h: &mut [u8], k: usize, orig: &[u8]) {
        let len = h.len() as u16;
        h[2..4].copy_from_slice(&len.to_be_bytes());
        let f = u16::from_be_bytes([orig[6], orig[7]]);
        let off = (f & 0x1fff) + (k * self.per / 8) as u16;
        let more = k + 1 < self.count || f & 0x2000 != 0;
        let f = (f & 0x4000) | if more { 0x2000 } else { 0 } | off;
        h[6..8].copy_from_slice(&f.to_be_bytes());
        h[10..12].copy_from_slice(&[0, 0]);
        let c = checksum::fold(checksum::sum(&h[..IPV4_MIN_HEADER], 0));
        h[10..12].copy_from_slice(&c.to_be_bytes());
    }
}

/// ICMP type 3 code 4 and ICMPv6 type 2 code 0.
const ICMP_UNREACH: u8 = 3;
const ICMP_FRAG_NEEDED: u8 = 4;
const ICMP6_PACKET_TOO_BIG: u8 = 2;
const PROTO_ICMP: u8 = 1;
const PROTO_ICMPV6: u8 = 58;
/// RFC 1812 §4.3.2.3: an ICMPv4 error quotes as much as fits in 576 bytes; RFC 4443 §2.4: an
/// ICMPv6 error as much as fits in the minimum MTU, 1280.
const ICMP4_MAX: usize = 576;
const ICMP6_MAX: usize = 1280;
/// Buffer size [`write_too_big`] needs at most.
pub const TOO_BIG_BUF: usize = ICMP6_MAX;

/// Writes into `out` the ICMP error telling the sender of `pkt` that the path takes at most
/// `mtu` bytes; returns its length, or `None` if `pkt` must not be answered (not IPv4/IPv6,
/// truncated, itself an ICMP error, a non-first IPv4 fragment, or from an unspecified or
/// multicast source). Its source address is `pkt`'s destination: the tunnel answers for the
/// far end it could not reach, so the sender's reverse-path checks accept it, and the site
/// needs no address on the TUN device.
pub fn write_too_big(pkt: &[u8], mtu: u16, out: &mut [u8]) -> Option<usize> {
    match packet::version(pkt)? {
        4 => too_big_v4(pkt, mtu, out),
        6 => too_big_v6(pkt, mtu, out),
        _ => None,
    }
}

fn too_big_v4(pkt: &[u8], mtu: u16, out: &mut [u8]) -> Option<usize> {
    let ihl = packet::ipv4_header_len(pkt)?;
    if ihl < IPV4_MIN_HEADER || pkt.len() < ihl + 8 {
        return None;
    }
    let frag_off = u16::from_be_bytes([pkt[6], pkt[7]]) & 0x1fff;
    let src = &pkt[12..16];
    // No error about an error, a later fragment, or to a source that names no one host.
    if frag_off != 0 || src[0] == 0 || src[0] >= 224 || is_icmp_error_v4(pkt, ihl) {
        return None;
    }
    let quoted = pkt.len().min(ICMP4_MAX - IPV4_MIN_HEADER - 8);
    let total = IPV4_MIN_HEADER + 8 + quoted;
    let out = out.get_mut(..total)?;
    out[..IPV4_MIN_HEADER].copy_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40, // DF: an ICMP error is never fragmented on the way back
        0,
        64,
        PROTO_ICMP,
        0,
        0,
        pkt[16],
        pkt[17],
        pkt[18],
        pkt[19],
        pkt[12],
        pkt[13],
        pkt[14],
        pkt[15],
    ]);
    let ip_csum = checksum::fold(checksum::sum(&out[..IPV4_MIN_HEADER], 0));
    out[10..12].copy_from_slice(&ip_csum.to_be_bytes());
    let icmp = &mut out[IPV4_MIN_HEADER..];
    icmp[..8].copy_from_slice(&[
        ICMP_UNREACH,
        ICMP_FRAG_NEEDED,
        0,
        0,
        0,
        0,
        (mtu >> 8) as u8,
        mtu as u8,
    ]);
    icmp[8..].copy_from_slice(&pkt[..quoted]);
    let c = checksum::fold(checksum::sum(icmp, 0));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    Some(total)
}

/// ICMP types that are errors (RFC 1122 §3.2.2: never answered with another error).
fn is_icmp_error_v4(pkt: &[u8], ihl: usize) -> bool {
    pkt[9] == PROTO_ICMP && matches!(pkt[ihl], 3 | 4 | 5 | 11 | 12)
}

fn too_big_v6(pkt: &[u8], mtu: u16, out: &mut [u8]) -> Option<usize> {
    if pkt.len() < IPV6_HEADER {
        return None;
    }
    let src = &pkt[8..24];
    if src[0] == 0xff || src.iter().all(|b| *b == 0) {
        return None;
    }
    // ICMPv6 errors (types below 128) are not answered (RFC 4443 2.4 (e)), wherever the
    // extension headers put them: behind a routing or fragment header too. An ICMPv6 type
    // that cannot be read (cut short, or a later fragment) may be an error: not answered
    // either, as Linux's icmp6_send decides.
    if let Some(t) = crate::selector::Transport::of(pkt) {
        if t.proto == PROTO_ICMPV6 && t.ports.is_none_or(|(tc, _)| tc >> 8 < 128) {
            return None;
        }
    }
    let quoted = pkt.len().min(ICMP6_MAX - IPV6_HEADER - 8);
    let plen = 8 + quoted;
    let total = IPV6_HEADER + plen;
    let out = out.get_mut(..total)?;
    out[..8].copy_from_slice(&[
        0x60,
        0,
        0,
        0,
        (plen >> 8) as u8,
        plen as u8,
        PROTO_ICMPV6,
        255,
    ]);
    out[8..24].copy_from_slice(&pkt[24..40]);
    out[24..40].copy_from_slice(&pkt[8..24]);
    let mtu = u32::from(mtu).to_be_bytes();
    out[40..48].copy_from_slice(&[
        ICMP6_PACKET_TOO_BIG,
        0,
        0,
        0,
        mtu[0],
        mtu[1],
        mtu[2],
        mtu[3],
    ]);
    out[48..].copy_from_slice(&pkt[..quoted]);
    // Pseudo-header: addresses, upper-layer length, next header.
    let pseudo = checksum::sum(&out[8..40], 0) + plen as u64 + u64::from(PROTO_ICMPV6);
    let c = checksum::fold(checksum::sum(&out[40..], pseudo));
    out[42..44].copy_from_slice(&c.to_be_bytes());
    Some(total)
}

/// A worker's token bucket for ICMP errors: `BURST` at once, `PER_SEC` a second after that
/// (the kernel's icmp_ratelimit is one per second per destination with a burst; a gateway
/// answering a whole site allows more). One worker owns it: no atomics, no allocation.
pub struct IcmpLimiter {
    tokens: Cell<u32>,
    last_ns: Cell<u64>,
}

impl IcmpLimiter {
    pub const PER_SEC: u32 = 100;
    pub const BURST: u32 = 20;

    pub fn new() -> IcmpLimiter {
        IcmpLimiter {
            tokens: Cell::new(Self::BURST),
            last_ns: Cell::new(0),
        }
    }

    /// Whether one more error may be sent at `now_ns` (a monotonic clock in nanoseconds).
    pub fn admit(&self, now_ns: u64) -> bool {
        let step = 1_000_000_000 / u64::from(Self::PER_SEC);
        let earned = now_ns.saturating_sub(self.last_ns.get()) / step;
        if earned > 0 {
            let t = u64::from(self.tokens.get()) + earned;
            self.tokens.set(t.min(u64::from(Self::BURST)) as u32);
            self.last_ns.set(self.last_ns.get() + earned * step);
        }
        match self.tokens.get() {
            0 => false,
            t => {
                self.tokens.set(t - 1);
                true
            }
        }
    }
}

impl Default for IcmpLimiter {
    fn default() -> Self {
        IcmpLimiter::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironsec_esp::{CbcCipher, Integ};

    /// The AEADs all have the same overhead.
    const GCM: Suite = Suite::Aes128Gcm16;

    /// A SYN laid out as Linux sends one (10.1.0.2 -> 10.2.0.2:80): IPv4 + TCP with MSS 1460,
    /// SACK permitted, timestamps, NOP, window scale 7; its TCP checksum is filled in by
    /// [`syn_v4`].
    const SYN_V4: [u8; 60] = [
        0x45, 0x00, 0x00, 0x3c, 0x4b, 0x8d, 0x40, 0x00, 0x40, 0x06, 0xdb, 0x2d, 0x0a, 0x01, 0x00,
        0x02, 0x0a, 0x02, 0x00, 0x02, 0xb0, 0x7e, 0x00, 0x50, 0x2c, 0x4f, 0x1f, 0x05, 0x00, 0x00,
        0x00, 0x00, 0xa0, 0x02, 0xfa, 0xf0, 0x00, 0x00, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04,
        0x02, 0x08, 0x0a, 0x9a, 0x2b, 0x3c, 0x4d, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    /// Fills in the TCP checksum of an IPv4 TCP packet from scratch.
    fn tcp_checksum_v4(p: &mut [u8]) {
        p[36] = 0;
        p[37] = 0;
        let c = full_tcp_checksum_v4(p);
        p[36..38].copy_from_slice(&c.to_be_bytes());
    }

    fn full_tcp_checksum_v4(p: &[u8]) -> u16 {
        let len = (p.len() - 20) as u64;
        let pseudo = checksum::sum(&p[12..20], 0) + u64::from(PROTO_TCP) + len;
        checksum::fold(checksum::sum(&p[20..], pseudo))
    }

    fn syn_v4() -> Vec<u8> {
        let mut p = SYN_V4.to_vec();
        tcp_checksum_v4(&mut p);
        p
    }

    #[test]
    fn sizes_for_common_paths() {
        // 1500 over IPv4: 1472 bytes of UDP payload; 16 + round4(n + 2) + 16 + 8 <= 1480.
        let m = TunnelMtu::for_path(1500, false, 9000, MssClamp::Auto, GCM);
        assert_eq!(m.max_inner, 1438);
        assert_eq!((m.mss_v4, m.mss_v6), (1398, 1378));
        assert_eq!(m.max_datagram, 1472);
        let m = TunnelMtu::for_path(1280, false, 1400, MssClamp::Auto, GCM);
        assert_eq!(m.max_inner, 1218);
        assert_eq!((m.mss_v4, m.mss_v6), (1178, 1158));
        let m = TunnelMtu::for_path(1280, true, 1400, MssClamp::Auto, GCM);
        assert_eq!(m.max_inner, 1198);
        // The TUN device's MTU caps it; a fixed clamp is lowered to what fits, never raised.
        let m = TunnelMtu::for_path(1500, false, 1400, MssClamp::Fixed(1350), GCM);
        assert_eq!((m.max_inner, m.mss_v4, m.mss_v6), (1400, 1350, 1330));
        let m = TunnelMtu::for_path(1280, false, 1400, MssClamp::Fixed(1350), GCM);
        assert_eq!((m.mss_v4, m.mss_v6), (1178, 1158));
        let m = TunnelMtu::for_path(1500, false, 1400, MssClamp::Off, GCM);
        assert_eq!((m.mss_v4, m.mss_v6), (0, 0));
        // Below IPv6's minimum the path is taken as 1280.
        assert_eq!(
            TunnelMtu::for_path(576, false, 1400, MssClamp::Auto, GCM),
            TunnelMtu::for_path(1280, false, 1400, MssClamp::Auto, GCM)
        );
        // Check the arithmetic against the sealer's own, for every suite: the largest inner
        // packet seals to what the path carries, one more byte does not.
        for suite in Suite::ALL {
            for (path, v6) in [(1500u16, false), (1280, false), (1280, true), (1419, false)] {
                let m = TunnelMtu::for_path(path, v6, 9000, MssClamp::Auto, suite);
                let outer = |n: usize| {
                    (if v6 { 40 } else { 20 }) + UDP_HEADER + suite.sealed_len(n).unwrap()
                };
                let max = usize::from(m.max_inner);
                assert!(outer(max) <= usize::from(path), "{suite} {path}");
                assert!(outer(max + 1) > usize::from(path), "{suite} {path}");
                assert_eq!(
                    usize::from(m.mss_v4),
                    max - 40,
                    "{suite} {path}: MSS follows the suite"
                );
            }
        }
    }

    #[test]
    fn cbc_costs_more_than_gcm() {
        // 1500 over IPv4, 1472 of UDP payload. AES-CBC + HMAC-SHA-256-128: 24-byte header,
        // 16-byte ICV, body to 16: 1472 - 40 = 1432 -> 1424 of body -> 1422 inner.
        let cbc = Suite::Cbc(CbcCipher::Aes256, Integ::HmacSha256_128);
        let m = TunnelMtu::for_path(1500, false, 9000, MssClamp::Auto, cbc);
        assert_eq!((m.max_inner, m.mss_v4, m.mss_v6), (1422, 1382, 1362));
        assert_eq!(m.max_datagram, 1472);
        // HMAC-SHA-1-96: 12-byte ICV: 1436 -> 1424 of body, the same 1422.
        let sha1 = Suite::Cbc(CbcCipher::Aes128, Integ::HmacSha1_96);
        let m = TunnelMtu::for_path(1500, false, 9000, MssClamp::Auto, sha1);
        assert_eq!(m.max_inner, 1422);
        // HMAC-SHA-512-256: 32-byte ICV: 1416 -> 1408 of body -> 1406.
        let sha512 = Suite::Cbc(CbcCipher::Aes256, Integ::HmacSha512_256);
        let m = TunnelMtu::for_path(1500, false, 9000, MssClamp::Auto, sha512);
        assert_eq!(m.max_inner, 1406);
        // The IPv6 minimum path still carries a 1280-byte IPv6 packet's worth of TCP.
        let m = TunnelMtu::for_path(1280, true, 9000, MssClamp::Auto, sha512);
        assert_eq!(m.max_inner, 1166);
        assert_eq!(m.limit(true), MIN_PATH_MTU);
    }

    #[test]
    fn mss_is_lowered_with_a_valid_checksum() {
        let mut p = syn_v4();
        assert_eq!(full_tcp_checksum_v4(&p), 0, "captured SYN verifies");
        assert!(clamp_mss(&mut p, 1350));
        assert_eq!(&p[42..44], &1350u16.to_be_bytes());
        assert_eq!(full_tcp_checksum_v4(&p), 0, "incremental checksum verifies");
        let mut expect = syn_v4();
        expect[42..44].copy_from_slice(&1350u16.to_be_bytes());
        tcp_checksum_v4(&mut expect);
        assert_eq!(p, expect, "same bytes as a checksum computed from scratch");
        // Never raised, and a second clamp to the same value changes nothing.
        assert!(!clamp_mss(&mut p, 1400));
        assert!(!clamp_mss(&mut p, 1350));
        assert!(!clamp_mss(&mut p, 0), "0 = off");
    }

    #[test]
    fn mss_at_an_odd_offset_and_syn_ack() {
        // NOP first: the MSS value sits at an odd offset from the TCP header.
        let mut p = SYN_V4.to_vec();
        p[40..60].copy_from_slice(&[
            1, 2, 4, 0x05, 0xb4, 1, 1, 1, 8, 10, 0x9a, 0x2b, 0x3c, 0x4d, 0, 0, 0, 0, 1, 1,
        ]);
        p[33] = 0x12; // SYN-ACK
        tcp_checksum_v4(&mut p);
        assert!(clamp_mss(&mut p, 1200));
        assert_eq!(&p[43..45], &1200u16.to_be_bytes());
        assert_eq!(full_tcp_checksum_v4(&p), 0);
    }

    #[test]
    fn the_inline_check_never_misses_a_syn() {
        let syn = syn_v4();
        assert!(may_be_syn(&syn));
        let mut ack = syn.clone();
        ack[33] = 0x10;
        assert!(!may_be_syn(&ack));
        let mut udp = syn.clone();
        udp[9] = 17;
        assert!(!may_be_syn(&udp));
        // Whatever the bytes, a packet syn_offset takes for a SYN passes the inline check.
        let mut p = syn.clone();
        for i in 0..p.len() {
            for v in [0u8, 2, 6, 0x45, 0x46, 0x60, 0xff] {
                let old = p[i];
                p[i] = v;
                if syn_offset(&p).is_some() {
                    assert!(may_be_syn(&p), "byte {i} = {v}");
                }
                p[i] = old;
            }
        }
        let mut v6 = vec![0u8; 60];
        v6[0] = 0x60;
        v6[6] = PROTO_TCP;
        v6[53] = TCP_SYN;
        assert!(may_be_syn(&v6));
        v6[6] = 60;
        assert!(may_be_syn(&v6), "extension headers: the slow path decides");
        v6[6] = packet::PROTO_UDP;
        assert!(!may_be_syn(&v6));
    }

    #[test]
    fn non_syns_and_malformed_options_are_left_alone() {
        let mut ack = syn_v4();
        ack[33] = 0x10;
        tcp_checksum_v4(&mut ack);
        let before = ack.clone();
        assert!(!clamp_mss(&mut ack, 1000));
        assert_eq!(ack, before);
        let mut udp = syn_v4();
        udp[9] = 17;
        assert!(!clamp_mss(&mut udp, 1000));
        let mut frag = syn_v4();
        frag[7] = 1;
        assert!(!clamp_mss(&mut frag, 1000), "later fragment");
        let mut bad = syn_v4();
        bad[41] = 40; // MSS option claims 40 bytes
        assert!(!clamp_mss(&mut bad, 1000));
        let mut zero = syn_v4();
        zero[41] = 0;
        assert!(!clamp_mss(&mut zero, 1000), "option length 0 must not loop");
        for n in 0..SYN_V4.len() {
            let mut t = syn_v4()[..n].to_vec();
            clamp_mss(&mut t, 1000); // never panics on a truncated SYN
        }
    }

    #[test]
    fn mss_ipv6() {
        let mut p = vec![0u8; 40 + 24];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&24u16.to_be_bytes());
        p[6] = PROTO_TCP;
        p[7] = 64;
        p[8..24].copy_from_slice(&[0xfd, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p[24..40].copy_from_slice(&[0xfd, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p[52] = 6 << 4;
        p[53] = TCP_SYN;
        p[60..64].copy_from_slice(&[2, 4, 0x05, 0xa0]);
        let sum = |p: &[u8]| {
            let pseudo = checksum::sum(&p[8..40], 0) + 24 + u64::from(PROTO_TCP);
            checksum::fold(checksum::sum(&p[40..], pseudo))
        };
        let c = sum(&p);
        p[56..58].copy_from_slice(&c.to_be_bytes());
        assert_eq!(sum(&p), 0);
        assert!(clamp_mss(&mut p, 1158));
        assert_eq!(&p[62..64], &1158u16.to_be_bytes());
        assert_eq!(sum(&p), 0);
    }

    #[test]
    fn frag_needed_is_byte_exact() {
        let mut pkt = vec![0u8; 1400];
        pkt[..SYN_V4.len()].copy_from_slice(&SYN_V4);
        pkt[2..4].copy_from_slice(&1400u16.to_be_bytes());
        assert!(must_not_fragment(&pkt));
        let mut out = [0u8; TOO_BIG_BUF];
        let n = write_too_big(&pkt, 1218, &mut out).unwrap();
        assert_eq!(n, 576);
        let mut expect = vec![
            0x45, 0x00, 0x02, 0x40, 0x00, 0x00, 0x40, 0x00, 0x40, 0x01, 0x00,
            0x00, // ..ttl, proto
            10, 2, 0, 2, 10, 1, 0, 2, // from the unreachable far end to the sender
            3, 4, 0x00, 0x00, 0, 0, 0x04, 0xc2, // type 3 code 4, next-hop MTU 1218
        ];
        expect.extend_from_slice(&pkt[..548]);
        let ip = checksum::fold(checksum::sum(&expect[..20], 0));
        expect[10..12].copy_from_slice(&ip.to_be_bytes());
        let icmp = checksum::fold(checksum::sum(&expect[20..], 0));
        expect[22..24].copy_from_slice(&icmp.to_be_bytes());
        assert_eq!(&out[..n], &expect[..]);
        // Both checksums verify.
        assert_eq!(checksum::fold(checksum::sum(&out[..20], 0)), 0);
        assert_eq!(checksum::fold(checksum::sum(&out[20..n], 0)), 0);
        // No answer to ICMP errors, later fragments, or from-nowhere sources.
        let mut err = pkt.clone();
        err[9] = PROTO_ICMP;
        err[20] = 3;
        assert_eq!(write_too_big(&err, 1218, &mut out), None);
        err[20] = 8; // an echo request is answered
        assert!(write_too_big(&err, 1218, &mut out).is_some());
        let mut frag = pkt.clone();
        frag[7] = 10;
        assert_eq!(write_too_big(&frag, 1218, &mut out), None);
        let mut zero = pkt.clone();
        zero[12] = 0;
        assert_eq!(write_too_big(&zero, 1218, &mut out), None);
        assert_eq!(write_too_big(&pkt[..27], 1218, &mut out), None);
        let mut no_df = pkt.clone();
        no_df[6] = 0;
        assert!(!must_not_fragment(&no_df));
    }

    #[test]
    fn packet_too_big_is_byte_exact() {
        let mut pkt = vec![0u8; 1400];
        pkt[0] = 0x60;
        pkt[4..6].copy_from_slice(&1360u16.to_be_bytes());
        pkt[6] = packet::PROTO_UDP;
        pkt[7] = 64;
        pkt[8] = 0xfd;
        pkt[23] = 2;
        pkt[24] = 0xfd;
        pkt[25] = 2;
        pkt[39] = 2;
        assert!(must_not_fragment(&pkt));
        let mut out = [0u8; TOO_BIG_BUF];
        let n = write_too_big(&pkt, 1198, &mut out).unwrap();
        assert_eq!(n, 1280);
        assert_eq!(&out[..8], &[0x60, 0, 0, 0, 0x04, 0xd8, 58, 255]);
        assert_eq!(&out[8..24], &pkt[24..40]);
        assert_eq!(&out[24..40], &pkt[8..24]);
        assert_eq!(&out[40..42], &[2, 0]);
        assert_eq!(&out[44..48], &1198u32.to_be_bytes());
        assert_eq!(&out[48..n], &pkt[..1232]);
        let pseudo = checksum::sum(&out[8..40], 0) + 1240 + 58;
        assert_eq!(checksum::fold(checksum::sum(&out[40..n], pseudo)), 0);
        // A packet-too-big is not answered with one.
        let mut err = pkt.clone();
        err[6] = PROTO_ICMPV6;
        err[40] = 2;
        assert_eq!(write_too_big(&err, 1198, &mut out), None);
        let mut mcast = pkt.clone();
        mcast[8] = 0xff;
        assert_eq!(write_too_big(&mcast, 1198, &mut out), None);
    }

    /// IPv6 rows for the inner-packet readers: a Packet Too Big is never sent for an ICMPv6
    /// error however it is wrapped, SYNs behind extension headers are clamped only where the
    /// chain is whole, and no length of a cut chain panics.
    #[test]
    fn ipv6_extension_headers_too_big_and_syns() {
        // 1400 bytes from fd02::2 to fd01::2: `next` first, `ext` at 40, then `l4`.
        let v6 = |next: u8, ext: &[u8], l4: &[u8]| {
            let mut p = vec![0u8; 1400];
            p[0] = 0x60;
            p[4..6].copy_from_slice(&1360u16.to_be_bytes());
            p[6] = next;
            p[7] = 64;
            p[8] = 0xfd;
            p[9] = 2;
            p[23] = 2;
            p[24] = 0xfd;
            p[25] = 1;
            p[39] = 2;
            p[40..40 + ext.len()].copy_from_slice(ext);
            p[40 + ext.len()..40 + ext.len() + l4.len()].copy_from_slice(l4);
            p
        };
        let mut out = [0u8; TOO_BIG_BUF];
        let dst_opts = [PROTO_ICMPV6, 0, 1, 4, 0, 0, 0, 0];
        let routing = [PROTO_ICMPV6, 0, 0, 0, 0, 0, 0, 0];
        let first_frag = [PROTO_ICMPV6, 0, 0, 1, 0, 0, 0, 9];
        let later_frag = [PROTO_ICMPV6, 0, 0x05, 0x01, 0, 0, 0, 9];
        let unreachable = [1u8, 0, 0, 0];
        let echo = [128u8, 0, 0, 0];
        for (what, next, ext, answered) in [
            ("after destination options", 60, &dst_opts, false),
            ("after a routing header", 43, &routing, false),
            ("in a first fragment", 44, &first_frag, false),
            (
                "in a later fragment (type unreadable)",
                44,
                &later_frag,
                false,
            ),
        ] {
            let p = v6(next, ext, &unreachable);
            assert_eq!(
                write_too_big(&p, 1280, &mut out).is_some(),
                answered,
                "{what}"
            );
            // An echo request in the same wrapping is answered, except in a later fragment,
            // whose type cannot be told.
            let p = v6(next, ext, &echo);
            assert_eq!(
                write_too_big(&p, 1280, &mut out).is_some(),
                next != 44 || ext[2] == 0,
                "echo {what}"
            );
        }
        // A chain running past the packet: the transport is unknown, the packet is quoted.
        let cut = v6(60, &[60, 255], &[]);
        assert_eq!(write_too_big(&cut, 1280, &mut out), Some(1280));
        // Fewer than 40 bytes: no answer (the addresses are not there), never a panic.
        assert_eq!(write_too_big(&v6(17, &[], &[])[..39], 1280, &mut out), None);

        // A SYN (MSS 1460) behind destination options is clamped; behind a routing header
        // or in a fragment it is left alone (the checksum's pseudo-header would need the
        // routing header's final address; GSO never fragments).
        let syn = {
            let mut t = [0u8; 24];
            t[12] = 6 << 4;
            t[13] = TCP_SYN;
            t[20..24].copy_from_slice(&[2, 4, 0x05, 0xb4]);
            t
        };
        let tcp_dst = [PROTO_TCP, 0, 1, 4, 0, 0, 0, 0];
        let mut p = v6(60, &tcp_dst, &syn);
        assert!(may_be_syn(&p));
        assert_eq!(syn_offset(&p), Some(48));
        assert!(clamp_mss(&mut p, 1200));
        assert_eq!(&p[70..72], &1200u16.to_be_bytes());
        for (next, ext) in [
            (43u8, [PROTO_TCP, 0, 0, 0, 0, 0, 0, 0]),
            (44, [PROTO_TCP, 0, 0, 1, 0, 0, 0, 9]),
        ] {
            let mut p = v6(next, &ext, &syn);
            let before = p.clone();
            assert!(!clamp_mss(&mut p, 1200), "next header {next}");
            assert_eq!(p, before);
        }
        // A destination options header claiming 2 KB: the SYN's flags are beyond the
        // packet; nothing is read or written out of bounds.
        let mut long = v6(60, &[PROTO_TCP, 255, 1, 4, 0, 0, 0, 0], &syn);
        long.truncate(200);
        assert!(may_be_syn(&long));
        assert_eq!(syn_offset(&long), None);
        assert!(!clamp_mss(&mut long, 1200));
        // Every cut of the SYN with its chain: never a panic, clamped only when whole.
        let whole = v6(60, &tcp_dst, &syn)[..72].to_vec();
        for n in 0..=whole.len() {
            let mut t = whole[..n].to_vec();
            assert_eq!(clamp_mss(&mut t, 1200), n == 72, "cut at {n}");
        }
    }

    #[test]
    fn route_mtu_of_loopback() {
        let lo = std::net::IpAddr::from([127, 0, 0, 1]);
        let m = route_mtu(lo, "127.0.0.1:4500".parse().unwrap()).unwrap();
        assert!(m >= 1280, "loopback's MTU is 64k: {m}");
    }

    #[test]
    fn inner_fragments_reassemble_to_the_packet() {
        // 1400 bytes of UDP without DF, a 1218-byte limit: 1192 + 188 payload bytes.
        let mut pkt: Vec<u8> = (0..1400u32).map(|i| (i * 7) as u8).collect();
        pkt[..20].copy_from_slice(&[
            0x45, 0, 0x05, 0x78, 0x12, 0x34, 0, 0, 64, 17, 0, 0, 10, 1, 0, 2, 10, 2, 0, 2,
        ]);
        let c = checksum::fold(checksum::sum(&pkt[..20], 0));
        pkt[10..12].copy_from_slice(&c.to_be_bytes());
        let orig = pkt.clone();
        let f = Fragments::plan(&pkt, 1218).unwrap();
        assert_eq!(
            f,
            Fragments {
                count: 2,
                per: 1192
            }
        );
        let mut second = vec![0u8; 1400];
        let n1 = f.write(&pkt, 1, &mut second);
        let n0 = f.first_in_place(&mut pkt);
        assert_eq!((n0, n1), (1212, 208));
        let (a, b) = (&pkt[..n0], &second[..n1]);
        for h in [a, b] {
            assert_eq!(
                checksum::fold(checksum::sum(&h[..20], 0)),
                0,
                "header checksum"
            );
            assert_eq!(&h[4..6], &[0x12, 0x34], "same identification");
            assert_eq!(&h[12..20], &orig[12..20]);
        }
        assert_eq!(u16::from_be_bytes([a[2], a[3]]), 1212);
        assert_eq!(u16::from_be_bytes([a[6], a[7]]), 0x2000, "MF, offset 0");
        assert_eq!(u16::from_be_bytes([b[2], b[3]]), 208);
        assert_eq!(u16::from_be_bytes([b[6], b[7]]), 1192 / 8, "last: no MF");
        let mut joined = a[20..].to_vec();
        joined.extend_from_slice(&b[20..]);
        assert_eq!(joined, orig[20..]);
        // A fragment fragmented again: offsets add, its MF stays on the last piece.
        let mut frag = orig.clone();
        frag[6..8].copy_from_slice(&(0x2000u16 | 100).to_be_bytes());
        let f = Fragments::plan(&frag, 1218).unwrap();
        let mut last = vec![0u8; 1400];
        f.write(&frag, 1, &mut last);
        assert_eq!(u16::from_be_bytes([last[6], last[7]]), 0x2000 | (100 + 149));
        // Options, or a packet that fits: not planned.
        let mut opts = orig.clone();
        opts[0] = 0x46;
        assert_eq!(Fragments::plan(&opts, 1218), None);
        assert_eq!(Fragments::plan(&orig, 1400), None);
        // A fragment near the end of the offset space (what the `inner` fuzz target looks
        // for): its pieces' offsets would spill into the flags; not planned. Right at the
        // end it still is.
        let mut end = orig.clone();
        end[6..8].copy_from_slice(&(0x1fffu16).to_be_bytes());
        assert_eq!(Fragments::plan(&end, 1218), None);
        let last = (65_535 - (orig.len() - 20)) / 8;
        end[6..8].copy_from_slice(&(last as u16).to_be_bytes());
        assert!(Fragments::plan(&end, 1218).is_some());
        end[6..8].copy_from_slice(&(last as u16 + 1).to_be_bytes());
        assert_eq!(Fragments::plan(&end, 1218), None);
    }

    #[test]
    fn limiter_bursts_then_paces() {
        let l = IcmpLimiter::new();
        let t0 = 5_000_000_000;
        let sent = (0..100).filter(|_| l.admit(t0)).count();
        assert_eq!(sent, IcmpLimiter::BURST as usize);
        assert!(!l.admit(t0 + 9_000_000), "under one token's time");
        assert!(l.admit(t0 + 10_000_000));
        // A second later at most PER_SEC more, capped by the burst.
        let sent = (0..1000).filter(|_| l.admit(t0 + 1_010_000_000)).count();
        assert_eq!(sent, IcmpLimiter::BURST as usize);
    }
}
