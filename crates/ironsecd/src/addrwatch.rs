//! The address watch: tells the plane when a shared address (`gateway.shared_addresses`)
//! arrives on this host or leaves it (`Plane::set_address_present`), so an active-standby
//! pair's tunnels follow the address keepalived moves, with no hook script in between.
//!
//! A NETLINK_ROUTE socket subscribed to RTNLGRP_IPV4_IFADDR hears every IPv4 RTM_NEWADDR and
//! RTM_DELADDR of this network namespace. The socket subscribes *before* the current
//! addresses are read, so no change falls between the read and the first event. A message
//! only says which address changed: whether a shared address is here is then read from the
//! host's addresses (the same address may also be on another interface, and a burst of
//! messages may have been lost to an overrun, ENOBUFS, after which everything is read again).
//!
//! The socket is read by a thread of its own (blocking reads with a timeout, so it notices
//! when the daemon stops); it hands `(address, present)` to the event loop through a bounded
//! queue. Address changes are rare: a full queue only delays the reader.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ironsec_dataplane::netlink::{self, IFA_ADDRESS, IFA_LOCAL, RTM_DELADDR, RTM_NEWADDR};
use tokio::sync::mpsc;

/// RTNLGRP_IPV4_IFADDR as a legacy group bit (`1 << (5 - 1)`): IPv4 address changes.
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
/// RTNLGRP_IPV6_IFADDR (`1 << (9 - 1)`): IPv6 address changes (routes' sources, below).
const RTMGRP_IPV6_IFADDR: u32 = 0x100;
/// `struct ifaddrmsg`: family, prefix length, flags, scope, interface index.
const IFADDRMSG_LEN: usize = 8;
/// How often the reader looks whether the daemon still listens, at most.
const POLL: Duration = Duration::from_millis(500);
/// Queued reports; address changes are rare.
const QUEUE: usize = 64;

/// What one netlink datagram says: the IPv4 addresses added or removed, in order, and the
/// messages that could not be read (counted, never a panic).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub addrs: Vec<(IpAddr, bool)>,
    pub malformed: usize,
}

/// The address changes in `buf`, a datagram of netlink messages: each RTM_NEWADDR (true) or
/// RTM_DELADDR (false) of family AF_INET with its IFA_LOCAL (the interface's own address;
/// IFA_ADDRESS only when there is no IFA_LOCAL). Other messages are skipped.
pub fn parse(buf: &[u8]) -> Changes {
    let mut out = Changes::default();
    for m in netlink::messages(buf) {
        let Ok((ty, _, msg)) = m else {
            out.malformed += 1;
            return out;
        };
        if ty == RTM_NEWADDR || ty == RTM_DELADDR {
            match address_of(msg) {
                Ok(Some(a)) => out.addrs.push((IpAddr::V4(a), ty == RTM_NEWADDR)),
                Ok(None) => {}
                Err(()) => out.malformed += 1,
            }
        }
    }
    out
}

/// Whether `buf` says an address (of any family) came or went on the host, or cannot be read
/// (then it may have).
pub fn any_address_change(buf: &[u8]) -> bool {
    netlink::messages(buf).any(|m| match m {
        Ok((ty, _, _)) => ty == RTM_NEWADDR || ty == RTM_DELADDR,
        Err(_) => true,
    })
}

/// The address an `ifaddrmsg` and its attributes carry; `Ok(None)` for another family.
fn address_of(msg: &[u8]) -> Result<Option<Ipv4Addr>, ()> {
    if msg.len() < IFADDRMSG_LEN {
        return Err(());
    }
    if i32::from(msg[0]) != libc::AF_INET {
        return Ok(None);
    }
    let (mut local, mut address) = (None, None);
    let mut at = IFADDRMSG_LEN;
    while at + 4 <= msg.len() {
        let len = usize::from(u16::from_ne_bytes([msg[at], msg[at + 1]]));
        let ty = u16::from_ne_bytes([msg[at + 2], msg[at + 3]]);
        if len < 4 || at + len > msg.len() {
            return Err(());
        }
        let payload = &msg[at + 4..at + len];
        let v4 = || {
            <[u8; 4]>::try_from(payload)
                .map(Ipv4Addr::from)
                .map_err(|_| ())
        };
        match ty {
            IFA_LOCAL => local = Some(v4()?),
            IFA_ADDRESS => address = Some(v4()?),
            _ => {}
        }
        at += (len + 3) & !3;
    }
    local.or(address).map(Some).ok_or(())
}

/// A NETLINK_ROUTE socket subscribed to IPv4 address changes, with a receive timeout.
fn subscribe() -> io::Result<OwnedFd> {
    let fd = netlink::route_socket(POLL)?;
    // SAFETY: an all-zero sockaddr_nl is valid; family and groups are set below. Port 0:
    // the kernel picks one.
    let mut me: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    me.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    me.nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
    // SAFETY: `me` is a sockaddr_nl of the size passed, valid for the call.
    if unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&me as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    } < 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Whether each of `shared` is on an interface of this host now.
fn presence(shared: &[IpAddr]) -> Vec<(IpAddr, bool)> {
    let host = ironsec_dataplane::iproute::host_addresses();
    shared.iter().map(|a| (*a, host.contains(a))).collect()
}

/// Starts watching the host's addresses: `shared`'s state is reported at once, then every
/// change (the receiver gets `(address, present)`, possibly repeating what it knows already:
/// the plane ignores that), and `changes` is bumped at every address that comes or goes (the
/// routes read the host's addresses again only then, `crate::routemtu::HostAddrs`). With no
/// shared address, a watch that cannot start is not fatal: `changes` says
/// [`crate::routemtu::UNWATCHED`], the addresses are read whenever the routes need them.
pub fn spawn(
    shared: Vec<IpAddr>,
    changes: Arc<AtomicU64>,
) -> io::Result<mpsc::Receiver<(IpAddr, bool)>> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let fd = match subscribe() {
        Ok(fd) => fd,
        Err(e) if shared.is_empty() => {
            tracing::warn!(error = %e, "cannot watch the host's addresses: routes read them at every change");
            changes.store(crate::routemtu::UNWATCHED, Ordering::Release);
            return Ok(rx);
        }
        Err(e) => return Err(e),
    };
    std::thread::Builder::new()
        .name("addr-watch".into())
        .spawn(move || watch(fd, shared, changes, tx))?;
    Ok(rx)
}

/// The watch's thread: reads address changes until the receiver is gone.
fn watch(
    fd: OwnedFd,
    shared: Vec<IpAddr>,
    changes: Arc<AtomicU64>,
    tx: mpsc::Sender<(IpAddr, bool)>,
) {
    let bump = || {
        changes.fetch_add(1, Ordering::AcqRel);
    };
    let mut told: HashMap<IpAddr, bool> = HashMap::new();
    let mut report = |now: Vec<(IpAddr, bool)>, tx: &mpsc::Sender<(IpAddr, bool)>| -> bool {
        for (a, present) in now {
            if told.insert(a, present) != Some(present) {
                tracing::info!(address = %a, present, "shared address");
                if tx.blocking_send((a, present)).is_err() {
                    return false;
                }
            }
        }
        true
    };
    if !shared.is_empty() && !report(presence(&shared), &tx) {
        return;
    }
    let mut malformed = 0usize;
    let mut buf = vec![0u8; 16384];
    while !tx.is_closed() {
        // SAFETY: `buf` is writable for its length; the descriptor is this thread's.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
                // Messages were lost: read everything again.
                Some(libc::ENOBUFS) => {
                    tracing::debug!("address watch overrun: reading the addresses again");
                }
                _ => {
                    tracing::warn!(error = %e, "address watch cannot read; reading the addresses again in 1 s");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
            bump();
            if !shared.is_empty() && !report(presence(&shared), &tx) {
                return;
            }
            continue;
        }
        let datagram = &buf[..n as usize];
        if any_address_change(datagram) {
            bump();
        }
        let parsed = parse(datagram);
        if parsed.malformed > 0 {
            malformed += parsed.malformed;
            tracing::debug!(
                malformed,
                "address watch: unreadable netlink messages skipped"
            );
        }
        if parsed.addrs.iter().any(|(a, _)| shared.contains(a)) && !report(presence(&shared), &tx) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A netlink message header's length (the framing itself is `netlink::messages`').
    const NLMSG_HDRLEN: usize = 16;

    /// An RTM_NEWADDR/RTM_DELADDR as the kernel sends it: header, ifaddrmsg, attributes.
    fn msg(ty: u16, family: u8, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut b = vec![0u8; NLMSG_HDRLEN];
        b[4..6].copy_from_slice(&ty.to_ne_bytes());
        b.extend_from_slice(&[family, 24, 0, 0]);
        b.extend_from_slice(&7u32.to_ne_bytes());
        for (t, p) in attrs {
            b.extend_from_slice(&((4 + p.len()) as u16).to_ne_bytes());
            b.extend_from_slice(&t.to_ne_bytes());
            b.extend_from_slice(p);
            while !b.len().is_multiple_of(4) {
                b.push(0);
            }
        }
        let len = b.len() as u32;
        b[..4].copy_from_slice(&len.to_ne_bytes());
        b
    }

    const V4: u8 = libc::AF_INET as u8;
    const V6: u8 = libc::AF_INET6 as u8;

    #[test]
    fn new_and_del_addr_are_read_and_other_messages_skipped() {
        let mut d = msg(
            RTM_NEWADDR,
            V4,
            &[
                (IFA_ADDRESS, &[192, 0, 2, 10]),
                (IFA_LOCAL, &[192, 0, 2, 10]),
                (3, b"wan\0"),
            ],
        );
        d.extend(msg(
            RTM_NEWADDR,
            V6,
            &[(
                IFA_ADDRESS,
                &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            )],
        ));
        // Point-to-point: IFA_LOCAL is ours, IFA_ADDRESS the far end's.
        d.extend(msg(
            RTM_DELADDR,
            V4,
            &[(IFA_ADDRESS, &[10, 9, 9, 9]), (IFA_LOCAL, &[192, 0, 2, 11])],
        ));
        // Only IFA_ADDRESS: taken as ours.
        d.extend(msg(RTM_DELADDR, V4, &[(IFA_ADDRESS, &[192, 0, 2, 12])]));
        // A link message (RTM_NEWLINK) is not ours to read.
        d.extend(msg(16, V4, &[(IFA_LOCAL, &[1, 2, 3, 4])]));
        let c = parse(&d);
        assert_eq!(c.malformed, 0);
        assert_eq!(
            c.addrs,
            [
                ("192.0.2.10".parse().unwrap(), true),
                ("192.0.2.11".parse().unwrap(), false),
                ("192.0.2.12".parse().unwrap(), false),
            ]
        );
    }

    #[test]
    fn malformed_messages_are_counted_never_a_panic() {
        // An address attribute of the wrong size, a message with no address at all.
        let mut d = msg(RTM_NEWADDR, V4, &[(IFA_LOCAL, &[192, 0, 2])]);
        d.extend(msg(RTM_NEWADDR, V4, &[]));
        d.extend(msg(RTM_NEWADDR, V4, &[(IFA_LOCAL, &[192, 0, 2, 10])]));
        let c = parse(&d);
        assert_eq!(c.malformed, 2);
        assert_eq!(c.addrs, [("192.0.2.10".parse().unwrap(), true)]);
        // An attribute running past its message, a message past the datagram, a header cut
        // short: every prefix of a good datagram reads without a panic.
        let mut bad = msg(RTM_NEWADDR, V4, &[(IFA_LOCAL, &[192, 0, 2, 10])]);
        bad[NLMSG_HDRLEN + IFADDRMSG_LEN] = 200;
        assert_eq!(parse(&bad).malformed, 1);
        let good = msg(RTM_DELADDR, V4, &[(IFA_LOCAL, &[192, 0, 2, 10])]);
        for cut in 0..good.len() {
            let c = parse(&good[..cut]);
            assert!(c.addrs.is_empty(), "{cut}");
        }
        // Garbage of every length up to a few messages' worth.
        for n in 0..200usize {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37 + n) as u8).collect();
            let _ = parse(&junk);
        }
    }
}
