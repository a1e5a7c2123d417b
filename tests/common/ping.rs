//! Pingers from inside a namespace. iputils ping is not installed on this machine; a raw ICMP
//! socket does the same job and lets the test choose the payload exactly.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{icmp_echo, in_netns, ns_cmd, run_timeout, NEXT_ID};

/// A raw ICMP (or ICMPv6) socket aimed at one destination: what both pingers below send and
/// receive with.
struct IcmpSocket {
    fd: i32,
    dst: IpAddr,
    /// The destination as a sockaddr_in or sockaddr_in6, and its length.
    to: (libc::sockaddr_storage, libc::socklen_t),
    /// Echo identifier of this pinger, so concurrent pingers do not take each other's replies.
    ident: u16,
}

impl IcmpSocket {
    /// Opens the socket in the calling thread's namespace. `salt` keeps the identifiers of the
    /// two pinger kinds apart.
    fn open(dst: IpAddr, salt: u16) -> IcmpSocket {
        let (family, proto) = match dst {
            IpAddr::V4(_) => (libc::AF_INET, libc::IPPROTO_ICMP),
            IpAddr::V6(_) => (libc::AF_INET6, libc::IPPROTO_ICMPV6),
        };
        // SAFETY: socket(2) takes no pointers; the result is checked below.
        let fd = unsafe { libc::socket(family, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
        assert!(
            fd >= 0,
            "raw ICMP socket: {}",
            std::io::Error::last_os_error()
        );
        let ident =
            (std::process::id() as u16) ^ salt ^ (NEXT_ID.fetch_add(1, Ordering::SeqCst) as u16);
        IcmpSocket {
            fd,
            dst,
            to: raw_sockaddr(dst),
            ident,
        }
    }

    fn set_option<T>(&self, name: libc::c_int, value: &T) {
        // SAFETY: `value` is a live reference of exactly size_of::<T>() bytes for the call.
        unsafe {
            libc::setsockopt(
                self.fd,
                libc::SOL_SOCKET,
                name,
                value as *const T as *const libc::c_void,
                std::mem::size_of::<T>() as u32,
            )
        };
    }

    /// Sends from `src` (bind(2) on a raw socket sets the source address of what it sends).
    fn bind(&self, src: IpAddr) {
        let (sa, len) = raw_sockaddr(src);
        // SAFETY: `sa` outlives the call and its length is passed with it.
        let r = unsafe {
            libc::bind(
                self.fd,
                &sa as *const libc::sockaddr_storage as *const libc::sockaddr,
                len,
            )
        };
        assert_eq!(r, 0, "bind {src}: {}", std::io::Error::last_os_error());
    }

    fn send_echo(&self, seq: u16, payload: &[u8]) {
        let msg = match self.dst {
            IpAddr::V4(_) => icmp_echo(self.ident, seq, payload),
            // ICMPv6 echo request (type 128); a raw ICMPv6 socket has the kernel fill in the
            // checksum (it covers a pseudo-header the socket knows, RFC 4443).
            IpAddr::V6(_) => {
                let mut m = vec![128u8, 0, 0, 0];
                m.extend_from_slice(&self.ident.to_be_bytes());
                m.extend_from_slice(&seq.to_be_bytes());
                m.extend_from_slice(payload);
                m
            }
        };
        // SAFETY: `msg` and `self.to` outlive the call and their lengths are passed with them.
        let n = unsafe {
            libc::sendto(
                self.fd,
                msg.as_ptr() as *const libc::c_void,
                msg.len(),
                0,
                &self.to.0 as *const libc::sockaddr_storage as *const libc::sockaddr,
                self.to.1,
            )
        };
        assert_eq!(
            n as usize,
            msg.len(),
            "sendto: {}",
            std::io::Error::last_os_error()
        );
    }

    /// One received datagram, if it is an echo reply from `dst` to this pinger: (sequence
    /// number, whether its data is `payload`). None for anything else, or nothing to read.
    fn recv_reply(&self, flags: libc::c_int, payload: &[u8]) -> Option<Option<(u16, bool)>> {
        let mut buf = [0u8; 4096];
        // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid value.
        let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut from_len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: `buf` is writable for buf.len() bytes and `from` for `from_len` bytes.
        let n = unsafe {
            libc::recvfrom(
                self.fd,
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                flags,
                &mut from as *mut libc::sockaddr_storage as *mut libc::sockaddr,
                &mut from_len,
            )
        };
        if n <= 0 {
            return None;
        }
        let p = &buf[..n as usize];
        // An IPv4 raw socket hands over the IP header, an ICMPv6 one only the message.
        let (icmp, reply_type) = match self.dst {
            IpAddr::V4(dst) => {
                let ihl = ((p[0] & 0x0f) as usize) * 4;
                if p.len() < ihl + 8 || p[12..16] != dst.octets() {
                    return Some(None);
                }
                (&p[ihl..], 0u8)
            }
            IpAddr::V6(_) => {
                let src = (i32::from(from.ss_family) == libc::AF_INET6).then(|| {
                    // SAFETY: the kernel wrote a sockaddr_in6 into this storage (its family
                    // says so), which is large and aligned enough for one.
                    let sa = unsafe {
                        &*(&from as *const libc::sockaddr_storage as *const libc::sockaddr_in6)
                    };
                    IpAddr::V6(Ipv6Addr::from(sa.sin6_addr.s6_addr))
                });
                let _ = from_len;
                if p.len() < 8 || src != Some(self.dst) {
                    return Some(None);
                }
                (p, 129u8)
            }
        };
        if icmp[0] != reply_type || u16::from_be_bytes([icmp[4], icmp[5]]) != self.ident {
            return Some(None);
        }
        Some(Some((
            u16::from_be_bytes([icmp[6], icmp[7]]),
            icmp[8..] == *payload,
        )))
    }
}

/// `ip` (port 0) as the sockaddr_in or sockaddr_in6 the socket calls take, with its length.
fn raw_sockaddr(ip: IpAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let p = &mut ss as *mut libc::sockaddr_storage;
    match ip {
        IpAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in.
            let sa = unsafe { &mut *(p as *mut libc::sockaddr_in) };
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.octets()),
            };
            (
                ss,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        IpAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in6.
            let sa = unsafe { &mut *(p as *mut libc::sockaddr_in6) };
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_addr = libc::in6_addr {
                s6_addr: a.octets(),
            };
            (
                ss,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

impl Drop for IcmpSocket {
    fn drop(&mut self) {
        // SAFETY: `fd` is this socket's own descriptor, closed exactly once, here.
        unsafe { libc::close(self.fd) };
    }
}

pub struct PingResult {
    pub sent: u32,
    pub received: u32,
}

/// Sends `count` ICMP echo requests from namespace `ns` to `dst`, `interval` apart, each with
/// `payload`, waiting up to `reply_timeout` for each reply.
pub fn ping(
    ns: &str,
    dst: Ipv4Addr,
    count: u16,
    payload: Vec<u8>,
    interval: Duration,
    reply_timeout: Duration,
) -> PingResult {
    in_netns(ns, move || {
        let sock = IcmpSocket::open(dst.into(), 0x5a5a);
        sock.set_option(
            libc::SO_RCVTIMEO,
            &libc::timeval {
                tv_sec: 0,
                tv_usec: 50_000,
            },
        );
        let mut received = 0u32;
        for seq in 1..=count {
            sock.send_echo(seq, &payload);
            let deadline = Instant::now() + reply_timeout;
            let mut got = false;
            while Instant::now() < deadline {
                if let Some(Some((s, true))) = sock.recv_reply(0, &payload) {
                    if s == seq {
                        got = true;
                        break;
                    }
                }
            }
            if got {
                received += 1;
            }
            if seq != count {
                std::thread::sleep(interval);
            }
        }
        PingResult {
            sent: count as u32,
            received,
        }
    })
}

/// A payload of `len` bytes repeating `pattern`.
pub fn pattern_payload(pattern: &[u8], len: usize) -> Vec<u8> {
    pattern.iter().cycle().take(len).copied().collect()
}

// ------------------------------------------------------------------------------------------
// Paced pinger: sends on a fixed schedule (like `ping -i`) whatever the replies do, and
// records when each request left and whether (and when) its reply came.

/// One echo request of a [`PingRun`].
#[derive(Clone, Debug)]
pub struct PingRecord {
    pub seq: u16,
    /// Wall-clock send time (comparable with the daemons' log timestamps).
    pub sent_at: std::time::SystemTime,
    /// Round-trip time if the reply came within the reply timeout.
    pub rtt: Option<Duration>,
    /// A reply that came after the reply timeout.
    pub late: bool,
}

#[derive(Clone, Debug, Default)]
pub struct PingRun {
    pub records: Vec<PingRecord>,
    pub duplicates: u32,
}

impl PingRun {
    pub fn sent(&self) -> usize {
        self.records.len()
    }

    pub fn received(&self) -> usize {
        self.records.iter().filter(|r| r.rtt.is_some()).count()
    }

    pub fn lost(&self) -> Vec<&PingRecord> {
        self.records.iter().filter(|r| r.rtt.is_none()).collect()
    }

    pub fn max_rtt(&self) -> Duration {
        self.records
            .iter()
            .filter_map(|r| r.rtt)
            .max()
            .unwrap_or_default()
    }
}

/// [`ping_paced`] on its own thread, for pinging while the test does something else.
pub fn ping_paced_in_background(
    ns: &str,
    dst: Ipv4Addr,
    count: u16,
    payload: Vec<u8>,
    interval: Duration,
    reply_timeout: Duration,
) -> std::thread::JoinHandle<PingRun> {
    let ns = ns.to_string();
    std::thread::spawn(move || ping_paced(&ns, dst, count, payload, interval, reply_timeout))
}

/// [`ping_paced_from`] on its own thread: several of them, each from its own source address,
/// measure several sites at once (each pinger has its own echo identifier, so none takes
/// another's replies although every raw ICMP socket sees them all).
pub fn ping_paced_from_in_background(
    ns: &str,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    count: u16,
    payload: Vec<u8>,
    interval: Duration,
    reply_timeout: Duration,
) -> std::thread::JoinHandle<PingRun> {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        ping_paced_from(&ns, Some(src), dst, count, payload, interval, reply_timeout)
    })
}

/// Sends `count` echo requests from namespace `ns` to `dst`, one every `interval` on a fixed
/// schedule (a late reply never delays the next request), each carrying `payload`; a reply
/// counts if it comes within `reply_timeout`. Returns once every request is answered or timed
/// out.
pub fn ping_paced(
    ns: &str,
    dst: Ipv4Addr,
    count: u16,
    payload: Vec<u8>,
    interval: Duration,
    reply_timeout: Duration,
) -> PingRun {
    ping_paced_from(ns, None, dst, count, payload, interval, reply_timeout)
}

/// [`ping_paced`] with the requests' source address `src` (one of the namespace's own), so
/// that a route chosen by source (a site's prefix routed back through its own tunnel) carries
/// the replies; `None` lets the kernel choose.
pub fn ping_paced_from(
    ns: &str,
    src: Option<Ipv4Addr>,
    dst: Ipv4Addr,
    count: u16,
    payload: Vec<u8>,
    interval: Duration,
    reply_timeout: Duration,
) -> PingRun {
    paced(
        ns,
        src.map(IpAddr::V4),
        IpAddr::V4(dst),
        count,
        payload,
        interval,
        reply_timeout,
    )
}

/// [`ping_paced`] over IPv6 (ICMPv6 echo), on its own thread.
pub fn ping6_paced_in_background(
    ns: &str,
    dst: Ipv6Addr,
    count: u16,
    payload: Vec<u8>,
    interval: Duration,
    reply_timeout: Duration,
) -> std::thread::JoinHandle<PingRun> {
    let ns = ns.to_string();
    std::thread::spawn(move || ping6_paced(&ns, dst, count, payload, interval, reply_timeout))
}

/// [`ping_paced`] over IPv6 (ICMPv6 echo).
pub fn ping6_paced(
    ns: &str,
    dst: Ipv6Addr,
    count: u16,
    payload: Vec<u8>,
    interval: Duration,
    reply_timeout: Duration,
) -> PingRun {
    paced(
        ns,
        None,
        IpAddr::V6(dst),
        count,
        payload,
        interval,
        reply_timeout,
    )
}

/// The paced pinger of either family.
fn paced(
    ns: &str,
    src: Option<IpAddr>,
    dst: IpAddr,
    count: u16,
    payload: Vec<u8>,
    interval: Duration,
    reply_timeout: Duration,
) -> PingRun {
    in_netns(ns, move || {
        let sock = IcmpSocket::open(dst, 0xa5a5);
        if let Some(src) = src {
            sock.bind(src);
        }
        // A large receive buffer: at 20 requests/s nothing should ever be dropped here.
        let rcvbuf: libc::c_int = 1 << 20;
        sock.set_option(libc::SO_RCVBUF, &rcvbuf);
        let mut run = PingRun::default();
        let mut sent_mono: Vec<Instant> = Vec::with_capacity(count as usize);
        let start = Instant::now();
        let mut next = 0u16; // requests sent so far
        loop {
            let now = Instant::now();
            if next < count && now >= start + interval * u32::from(next) {
                let seq = next + 1;
                let sent_at = std::time::SystemTime::now();
                sock.send_echo(seq, &payload);
                sent_mono.push(Instant::now());
                run.records.push(PingRecord {
                    seq,
                    sent_at,
                    rtt: None,
                    late: false,
                });
                next += 1;
                continue;
            }
            let all_sent = next == count;
            let outstanding = run
                .records
                .iter()
                .zip(&sent_mono)
                .any(|(r, t)| r.rtt.is_none() && now < *t + reply_timeout);
            if all_sent && !outstanding {
                break;
            }
            // Wait for a reply until the next send is due (at most 10 ms at a time).
            let until_send = if all_sent {
                Duration::from_millis(10)
            } else {
                (start + interval * u32::from(next)).saturating_duration_since(now)
            };
            let ms = until_send.as_millis().clamp(0, 10) as libc::c_int;
            let mut pfd = libc::pollfd {
                fd: sock.fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: `pfd` is one valid pollfd, borrowed mutably for the call.
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r <= 0 {
                continue;
            }
            while let Some(reply) = sock.recv_reply(libc::MSG_DONTWAIT, &payload) {
                let got = Instant::now();
                let Some((seq, same_data)) = reply else {
                    continue;
                };
                if seq == 0 || seq > next || !same_data {
                    continue;
                }
                let i = (seq - 1) as usize;
                let rtt = got.saturating_duration_since(sent_mono[i]);
                let rec = &mut run.records[i];
                if rec.rtt.is_some() || rec.late {
                    run.duplicates += 1;
                } else if rtt <= reply_timeout {
                    rec.rtt = Some(rtt);
                } else {
                    rec.late = true;
                }
            }
        }
        run
    })
}

/// iputils ping from a chosen source address, 50 ms apart: how many of `count` were answered.
/// IPv4 or IPv6 (iputils takes the family from the addresses); the raw-socket pingers above
/// are IPv4 only.
pub fn ping_from(ns: &str, src: &str, dst: &str, count: u32) -> u32 {
    let out = run_timeout(
        ns_cmd(ns, "ping").args([
            "-n",
            "-q",
            "-c",
            &count.to_string(),
            "-i",
            "0.05",
            "-W",
            "1",
            "-I",
            src,
            dst,
        ]),
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            let (_, rest) = l.split_once(" transmitted, ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| {
            panic!(
                "ping -I {src} {dst} in {ns}: no summary\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}
