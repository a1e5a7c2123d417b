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
