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

    /// The kernel's path MTU from `local` to `remote` (cached).
    pub fn kernel(&self, local: IpAddr, remote: SocketAddr) -> u16 {
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((m, at)) = cache.get(&(local, remote)) {
            if now.saturating_duration_since(*at) < Self::TTL {
                return *m;
            }
        }
        // A shared address that is not on this host cannot be bound (EADDRNOTAVAIL): its
        // tunnels cannot send anyway, and get the fallback until it arrives (`forget`).
        let m = route_mtu(local, remote).unwrap_or_else(|e| {
            tracing::debug!(%local, %remote, error = %e, fallback = FALLBACK_PATH_MTU, "cannot read the path MTU");
            FALLBACK_PATH_MTU
        });
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
    /// connection's MSS clamp.
    pub fn tunnel(
        &self,
        c: &Connection,
        device_mtu: u16,
        local: IpAddr,
        remote: SocketAddr,
        suite: Suite,
    ) -> TunnelMtu {
        let path = match c.path_mtu {
            PathMtu::Fixed(m) => m,
            PathMtu::Auto => self.kernel(local, remote),
        };
        TunnelMtu::for_path(path, remote.is_ipv6(), device_mtu, c.mss_clamp, suite)
    }
}
