//! Shared addresses (`gateway.shared_addresses`): local tunnel addresses that this host holds
//! only while it is the master of an active-standby pair (keepalived moves the address).
//!
//! A tunnel whose local address is an absent shared address is **dormant**: it never
//! initiates (start, restarts, traps, CHILD_SA retries, the operator's `initiate`), and its
//! trap is taken out of the fast path's tables, so its traffic is dropped and counted as
//! `no_sa` without waking the control plane. Nothing it sent could leave anyway: a freebind
//! socket's sends fail with ENETUNREACH while the address is away.
//!
//! The daemon's address watch (`crate::addrwatch`) reports the address coming and going:
//! - **arrival**: the tunnels initiate at once. Their first IKE SA carries INITIAL_CONTACT
//!   (no sibling SA is left, see below), so the peer drops the SAs it still has with the
//!   address, which were the other gateway's.
//! - **loss**: every IKE SA on the address is abandoned ([`ironsec_ike::Endpoint::abandon`]):
//!   forgotten with its CHILD_SAs, the down events applied as for any close, and nothing
//!   sent, since nothing can be. The CHILD_SAs are retired at once (no grace: no packet of
//!   theirs can come in or go out on this host any more).
//!
//! Until the watch's first report every shared address counts as absent: a host that does not
//! know it holds the address must not speak from it (two gateways would both initiate).

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Instant;

use ironsec_ike::IkeSaId;

use super::Plane;

/// What the plane knows of the shared addresses.
#[derive(Debug, Default)]
pub struct Shared {
    /// The configured shared addresses, in config order.
    addrs: Vec<IpAddr>,
    /// Those not on this host now (all of them until the address watch says otherwise).
    absent: HashSet<IpAddr>,
    /// Acquires (traffic for a trapped tunnel) that came for a dormant tunnel and were
    /// dropped: the fast path's report raced the table that took the trap away.
    pub(super) ignored_acquires: u64,
    /// Times each address came or went, for status.
    changes: Vec<u64>,
}

impl Shared {
    pub(super) fn new(addrs: &[IpAddr]) -> Shared {
        Shared {
            addrs: addrs.to_vec(),
            absent: addrs.iter().copied().collect(),
            ignored_acquires: 0,
            changes: vec![0; addrs.len()],
        }
    }
}

/// One shared address as status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedAddress {
    pub address: IpAddr,
    pub present: bool,
    /// Arrivals and losses seen since start (the first report counts when it says present).
    pub changes: u64,
}

impl Plane {
    /// Whether tunnels from `local` are dormant: it is a shared address not on this host.
    pub fn is_dormant(&self, local: IpAddr) -> bool {
        self.shared.absent.contains(&local)
    }

    /// The configured shared addresses and whether each is on this host now.
    pub fn shared_addresses(&self) -> Vec<SharedAddress> {
        self.shared
            .addrs
            .iter()
            .zip(&self.shared.changes)
            .map(|(a, n)| SharedAddress {
                address: *a,
                present: !self.shared.absent.contains(a),
                changes: *n,
            })
            .collect()
    }

    /// Acquires dropped because their tunnel was dormant, since start.
    pub fn ignored_acquires(&self) -> u64 {
        self.shared.ignored_acquires
    }

    /// The address watch saw shared address `ip` arrive on (`present`) or leave this host.
    /// Anything else, or no change, is ignored. Returns whether anything changed.
    pub fn set_address_present(&mut self, ip: IpAddr, present: bool, now: Instant) -> bool {
        self.saw(now);
        let Some(i) = self.shared.addrs.iter().position(|a| *a == ip) else {
            return false;
        };
        let changed = if present {
            self.shared.absent.remove(&ip)
        } else {
            self.shared.absent.insert(ip)
        };
        if !changed {
            return false;
        }
        self.shared.changes[i] += 1;
        // The path MTU read while the address was away is the fallback, not the path's.
        self.path_mtus.forget(ip);
        // Trap marks follow dormancy.
        self.tables_stale = true;
        if present {
            tracing::info!(address = %ip, "shared address is on this host: its tunnels initiate");
            self.start_tunnels(now);
        } else {
            self.abandon_address(ip, now);
        }
        true
    }

    /// Shared address `ip` left: its IKE SAs (and their CHILD_SAs) are forgotten without a
    /// word, and its tunnels' timers stop.
    fn abandon_address(&mut self, ip: IpAddr, now: Instant) {
        let ids: Vec<IkeSaId> = self
            .ep
            .ike_sas()
            .into_iter()
            .filter(|s| s.local.ip() == ip)
            .map(|s| s.id)
            .collect();
        tracing::warn!(
            address = %ip,
            ike_sas = ids.len(),
            "shared address left this host: its tunnels are dormant, their SAs abandoned without a DELETE"
        );
        for id in ids {
            if let Err(e) = self.ep.abandon(now, id) {
                tracing::debug!(error = %e, "abandon");
            }
        }
        let keys: Vec<_> = self
            .tunnels
            .keys()
            .filter(|k| k.local == ip)
            .cloned()
            .collect();
        // Their IKE SA goes with the down event (`on_ike_down`: not the peer's fault, so no
        // restart); what would start one again is stopped here.
        for k in keys {
            self.restarts.clear(&k);
            self.child_retries.clear(&k);
            self.keepalives.clear(&k);
            if let Some(st) = self.tunnels.get_mut(&k) {
                st.child_refused = None;
            }
        }
    }
}
