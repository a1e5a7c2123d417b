//! Route-based connections' tunnel interfaces: one TUN device per connection beside the
//! gateway's shared one (ARCHITECTURE.md, "Route-based connections").
//!
//! A packet the kernel routes into such a device belongs to that connection, whatever its
//! addresses: the routing table (static routes, a routing daemon) chose it, so the fast path
//! looks its policy up among that connection's policies only ([`crate::Policy::scope`]). A
//! packet the connection's SAs decrypt goes back out of the same device
//! ([`crate::InboundEntry::device`]), so the kernel's per-interface counters, `rp_filter` and
//! nftables rules by interface see what they expect.
//!
//! Devices come and go while the workers run (a reload adds or removes a connection). Each
//! worker waits in its own epoll set, in which the control plane registers and removes the
//! device's queue for that worker; the workers find a ready device in a [`Devices`] snapshot
//! (swapped like the tables), so waiting costs the same with one device or thousands, and a
//! packet's cost does not depend on how many there are.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use crate::tun::Tun;

/// Names a route-based connection's device for as long as it exists; never reused within a
/// process, so a packet or snapshot that still names a removed device finds nothing rather
/// than another connection's device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfaceId(NonZeroU32);

impl IfaceId {
    /// A device that never exists: an SA of a route-based connection whose interface is
    /// not (or no longer) there delivers to it, so its packets are dropped and counted rather
    /// than written to the shared TUN device. [`crate::Dataplane::add_interface`] never hands
    /// it out.
    pub const NOWHERE: IfaceId = IfaceId(NonZeroU32::MAX);

    /// The id with number `n` (tests and the dataplane's own counter); `None` for 0.
    pub fn new(n: u32) -> Option<IfaceId> {
        NonZeroU32::new(n).map(IfaceId)
    }

    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl std::fmt::Display for IfaceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "if{}", self.0)
    }
}

/// Where an inbound SA's decrypted packets go: the gateway's shared TUN device (policy-based
/// connections) or a route-based connection's own. Held in an atomic so the control plane can
/// point an SA, which outlives table snapshots, at the device its connection has now.
#[derive(Debug, Default)]
pub struct DeviceCell(std::sync::atomic::AtomicU32);

impl DeviceCell {
    #[inline]
    pub fn get(&self) -> Option<IfaceId> {
        IfaceId::new(self.0.load(std::sync::atomic::Ordering::Relaxed))
    }

    pub fn set(&self, dev: Option<IfaceId>) {
        self.0.store(
            dev.map_or(0, IfaceId::get),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

/// The route-based devices that exist, as one immutable snapshot.
#[derive(Default)]
pub struct Devices {
    map: HashMap<IfaceId, Arc<Tun>>,
}

impl Devices {
    #[inline]
    pub(crate) fn get(&self, id: IfaceId) -> Option<&Arc<Tun>> {
        self.map.get(&id)
    }

    pub(crate) fn with(&self, id: IfaceId, tun: Arc<Tun>) -> Devices {
        let mut map = self.map.clone();
        map.insert(id, tun);
        Devices { map }
    }

    pub(crate) fn without(&self, id: IfaceId) -> (Devices, Option<Arc<Tun>>) {
        let mut map = self.map.clone();
        let gone = map.remove(&id);
        (Devices { map }, gone)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The devices, for closing.
    pub(crate) fn into_tuns(self) -> Vec<Arc<Tun>> {
        self.map.into_values().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// What a ready descriptor in a worker's epoll set is: epoll hands back the `u64` each was
/// registered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Token {
    /// The gateway's shared TUN device.
    SharedTun,
    /// The worker's UDP socket with this index.
    Socket(usize),
    /// A route-based connection's device.
    Iface(IfaceId),
}

const IFACE_BIT: u64 = 1 << 32;
const SOCKET_BIT: u64 = 1 << 33;

impl Token {
    pub(crate) fn to_u64(self) -> u64 {
        match self {
            Token::SharedTun => 0,
            Token::Socket(i) => SOCKET_BIT | i as u64,
            Token::Iface(id) => IFACE_BIT | u64::from(id.get()),
        }
    }

    pub(crate) fn from_u64(v: u64) -> Option<Token> {
        if v == 0 {
            Some(Token::SharedTun)
        } else if v & SOCKET_BIT != 0 {
            Some(Token::Socket((v & 0xffff_ffff) as usize))
        } else if v & IFACE_BIT != 0 {
            IfaceId::new((v & 0xffff_ffff) as u32).map(Token::Iface)
        } else {
            None
        }
    }
}

/// One worker's epoll set.
pub(crate) struct Epoll(OwnedFd);

impl Epoll {
    pub(crate) fn new() -> std::io::Result<Epoll> {
        // SAFETY: epoll_create1 takes only flags; a non-negative result is a new descriptor
        // that nothing else owns.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nothing else.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Watches `fd` for input (level-triggered, like poll()).
    pub(crate) fn add(&self, fd: RawFd, token: Token) -> std::io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32,
            u64: token.to_u64(),
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call; a bad `fd` is
        // refused by the kernel with an error, never undefined behaviour.
        if unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Stops watching `fd` (which must still be open); an fd not in the set is not an error.
    pub(crate) fn remove(&self, fd: RawFd) {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as in `add`; the event argument is ignored for EPOLL_CTL_DEL but must be
        // non-null on old kernels.
        unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut ev) };
    }

    /// Waits up to `ms` for ready descriptors; returns how many of `events` were filled.
    pub(crate) fn wait(&self, events: &mut [libc::epoll_event], ms: i32) -> std::io::Result<usize> {
        let max = events.len().min(i32::MAX as usize) as i32;
        // SAFETY: `events` is a writable array of `max` epoll_event.
        let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), max, ms) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

/// Registers queue `w` of `tun` in worker `w`'s set for every worker (a single-queue device's
/// one queue in every set); on failure removes what it added.
pub(crate) fn register(epolls: &[Arc<Epoll>], tun: &Tun, id: IfaceId) -> std::io::Result<()> {
    for (w, ep) in epolls.iter().enumerate() {
        if let Err(e) = ep.add(tun.fd(w), Token::Iface(id)) {
            for (v, ep) in epolls.iter().enumerate().take(w) {
                ep.remove(tun.fd(v));
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Undoes [`register`].
pub(crate) fn unregister(epolls: &[Arc<Epoll>], tun: &Tun) {
    for (w, ep) in epolls.iter().enumerate() {
        ep.remove(tun.fd(w));
    }
}

/// Threads [`close_all`] closes devices on at most.
const CLOSERS: usize = 16;

/// Closes `tuns` (each goes when its last handle does) on up to [`CLOSERS`] threads at once.
/// The kernel removes a TUN device when its last queue closes, and each removal waits for RCU
/// grace periods after it released the routing lock: one after the other, 1,000 devices took
/// 17 s here (the most of a 1,000-connection hub's stop, past systemd's TimeoutStopSec), while
/// from 8 threads 500 took 1.4 s instead of 8.2 s, since the waits overlap.
pub(crate) fn close_all(tuns: Vec<Arc<Tun>>) {
    if tuns.len() < 2 {
        return;
    }
    let per = tuns.len().div_ceil(CLOSERS);
    let mut tuns = tuns;
    std::thread::scope(|s| {
        while !tuns.is_empty() {
            let chunk: Vec<Arc<Tun>> = tuns.split_off(tuns.len().saturating_sub(per));
            // A thread that cannot be started: this one closes the chunk instead.
            if let Err(e) = std::thread::Builder::new()
                .name("ironsec-close".into())
                .spawn_scoped(s, move || drop(chunk))
            {
                tracing::debug!(error = %e, "closing devices on the calling thread");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let id = IfaceId::new(7).unwrap();
        for t in [
            Token::SharedTun,
            Token::Socket(0),
            Token::Socket(3),
            Token::Iface(id),
        ] {
            assert_eq!(Token::from_u64(t.to_u64()), Some(t));
        }
        assert_eq!(
            Token::from_u64(IFACE_BIT),
            None,
            "interface 0 does not exist"
        );
    }

    #[test]
    #[ignore = "needs root"]
    fn close_all_removes_every_device() {
        crate::netlink::tests::in_new_netns(|| {
            let tuns: Vec<Arc<Tun>> = (0..40)
                .map(|i| {
                    let t = Tun::create(
                        &format!("ct{i}"),
                        1400,
                        1000,
                        true,
                        2,
                        crate::tun::Queueing::Single,
                    )
                    .unwrap();
                    Arc::new(t)
                })
                .collect();
            // One still held elsewhere stays until that handle goes too.
            let kept = tuns[7].clone();
            let count = || {
                crate::netlink::tests::ip_cmd("ip", &["-o", "link", "show"])
                    .lines()
                    .filter(|l| l.contains(": ct"))
                    .count()
            };
            assert_eq!(count(), 40);
            close_all(tuns);
            assert_eq!(count(), 1);
            drop(kept);
            assert_eq!(count(), 0);
        });
    }

    #[test]
    fn device_cell_holds_none_or_an_id() {
        let c = DeviceCell::default();
        assert_eq!(c.get(), None);
        let id = IfaceId::new(42).unwrap();
        c.set(Some(id));
        assert_eq!(c.get(), Some(id));
        c.set(None);
        assert_eq!(c.get(), None);
    }
}
