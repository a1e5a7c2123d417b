//! The outer path MTU of each tunnel, as the kernel knows it, asked at most once per
//! [`PathMtus::TTL`] per address pair: tables are rebuilt on every SA event, and a hub with
//! thousands of tunnels must not pay a socket and three syscalls per tunnel each time.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{Connection, PathMtu};
use ironsec_dataplane::mtu::{route_mtu, TunnelMtu};
use ironsec_esp::Suite;

/// Used when the kernel cannot say (no route yet): Ethernet's.
pub const FALLBACK_PATH_MTU: u16 = 1500;

#[derive(Default)]
pub struct PathMtus {
    cache: Mutex<HashMap<(IpAddr, SocketAddr), (u16, Instant)>>,
}

impl PathMtus {
    /// How long a path MTU read from the kernel is used before it is read again, so a route
    /// change or a learned (smaller) path MTU is picked up at the next rebuild after it.
    pub const TTL: Duration = Duration::from_secs(60);

    /// The kernel's path MTU from `local` to `remote` (cached), as of `now`.
    pub fn kernel(&self, now: Instant, local: IpAddr, remote: SocketAddr) -> u16 {
        self.cached(now, local, remote, || {
            // A shared address that is not on this host cannot be bound (EADDRNOTAVAIL): its
            // tunnels cannot send anyway, and get the fallback until it arrives (`forget`).
            route_mtu(local, remote).unwrap_or_else(|e| {
                tracing::debug!(%local, %remote, error = %e, fallback = FALLBACK_PATH_MTU, "cannot read the path MTU");
                FALLBACK_PATH_MTU
            })
        })
    }

    /// What was read for the path from `local` to `remote` if it is younger than
    /// [`Self::TTL`] at `now`, else `read()` (remembered as read at `now`).
    fn cached(
        &self,
        now: Instant,
        local: IpAddr,
        remote: SocketAddr,
        read: impl FnOnce() -> u16,
    ) -> u16 {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((m, at)) = cache.get(&(local, remote)) {
            if now.saturating_duration_since(*at) < Self::TTL {
                return *m;
            }
        }
        let m = read();
        cache.insert((local, remote), (m, now));
        m
    }

    /// Forgets what was read for paths from `local`: a shared address that came or went (read
    /// while it was away, the path MTU is the fallback).
    pub fn forget(&self, local: IpAddr) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|(l, _), _| *l != local);
    }

    /// What one tunnel of `c` carries: its path MTU (configured or the kernel's), the
    /// overhead of `suite` (the suite of the SA it sends with; without one,
    /// [`Connection::costliest_suite`]) and the TUN device's MTU `device_mtu`, and the
    /// connection's MSS clamp. `now` is the time the caller read once for all its tunnels.
    pub fn tunnel_at(
        &self,
        now: Instant,
        c: &Connection,
        device_mtu: u16,
        local: IpAddr,
        remote: SocketAddr,
        suite: Suite,
    ) -> TunnelMtu {
        let path = match c.path_mtu {
            PathMtu::Fixed(m) => m,
            PathMtu::Auto => self.kernel(now, local, remote),
        };
        TunnelMtu::for_path(path, remote.is_ipv6(), device_mtu, c.mss_clamp, suite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_once_per_ttl_on_the_callers_clock() {
        let m = PathMtus::default();
        let (l, r): (IpAddr, SocketAddr) = (
            "192.0.2.1".parse().unwrap(),
            "198.51.100.7:4500".parse().unwrap(),
        );
        let t0 = Instant::now();
        let reads = std::cell::Cell::new(0);
        let read = |v: u16| {
            reads.set(reads.get() + 1);
            v
        };
        assert_eq!(m.cached(t0, l, r, || read(1400)), 1400);
        // Within the TTL the cached value stands, whatever the kernel would say now.
        let later = t0 + PathMtus::TTL - Duration::from_millis(1);
        assert_eq!(m.cached(later, l, r, || read(1300)), 1400);
        assert_eq!(reads.get(), 1);
        // Another path is read on its own.
        let r2: SocketAddr = "198.51.100.8:4500".parse().unwrap();
        assert_eq!(m.cached(later, l, r2, || read(1280)), 1280);
        assert_eq!(reads.get(), 2);
        // At the TTL it is read again, and that is kept from then on.
        let expired = t0 + PathMtus::TTL;
        assert_eq!(m.cached(expired, l, r, || read(1300)), 1300);
        assert_eq!(
            m.cached(expired + Duration::from_secs(1), l, r, || read(9)),
            1300
        );
        assert_eq!(reads.get(), 3);
        // `forget` drops what was read from that local address.
        m.forget(l);
        assert_eq!(m.cached(expired, l, r, || read(1200)), 1200);
        assert_eq!(reads.get(), 4);
    }
}
