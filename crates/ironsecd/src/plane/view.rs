//! Read-only access to the plane's state, for `ironsecctl status` and metrics
//! (`crate::report`). Nothing here changes the plane.

use ironsec_ike::{EndpointStats, IkeSaSummary};

use super::{ConnStats, Plane, Selection, ShareState, TunnelState};
use crate::config::{Config, Keying};
use crate::tables::{SaStore, TunnelKey, TunnelSpec};

impl Plane {
    /// The running config.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Every tunnel of the config, in config order (positions are the fast path's tunnel
    /// ids).
    pub fn specs(&self) -> &[TunnelSpec] {
        &self.specs
    }

    /// The connected remote-access client of a tunnel, if it is one.
    pub fn client(&self, key: &TunnelKey) -> Option<&super::clients::Client> {
        self.clients.get(key)
    }

    /// Every connected remote-access client.
    pub fn clients(&self) -> &super::clients::Clients {
        &self.clients
    }

    /// A remote-access connection's leases: addresses held by connected clients and those
    /// kept for clients that left.
    pub fn leases(&self, conn: &str) -> Vec<ironsec_ike::pool::Lease> {
        self.ep.leases(conn)
    }

    /// Every lease of every remote-access pool, for `ironsecctl leases`.
    pub fn lease_list(&self, now: std::time::Instant) -> Vec<crate::leases::LeaseInfo> {
        use ironsec_ike::pool::LeaseState;
        let mut out = Vec::new();
        for c in &self.cfg.connections {
            let Keying::Ike(k) = &c.keying else { continue };
            let Some(ra) = &k.remote_access else { continue };
            for l in self.ep.leases(&c.name) {
                let (state, secs, expires) = match l.state {
                    LeaseState::Active { since, .. } => {
                        ("online", now.saturating_duration_since(since), None)
                    }
                    LeaseState::Released { at } => (
                        "offline",
                        now.saturating_duration_since(at),
                        Some((at + ra.lease_grace).saturating_duration_since(now)),
                    ),
                };
                out.push(crate::leases::LeaseInfo {
                    connection: c.name.clone(),
                    pool: ra
                        .pools
                        .iter()
                        .find(|p| p.contains(l.address))
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                    address: l.address.to_string(),
                    identity: l.owner.clone(),
                    state: state.into(),
                    secs: secs.as_secs(),
                    expires_in_secs: expires.map(|d| d.as_secs()),
                });
            }
        }
        out
    }

    /// How many addresses pool `pool` of a remote-access connection can hand out (0 for
    /// others).
    pub fn pool_size(&self, conn: &str, pool: &ironsec_dataplane::Prefix) -> u64 {
        let Some(Keying::Ike(k)) = self.connection(conn).map(|c| &c.keying) else {
            return 0;
        };
        k.remote_access
            .as_ref()
            .filter(|ra| ra.pools.contains(pool))
            .and_then(|ra| {
                ironsec_ike::pool::AddressPool::new(conn, &pool.to_string(), ra.lease_grace).ok()
            })
            .map_or(0, |p| p.size())
    }

    /// The SAs that exist.
    pub fn sas(&self) -> &SaStore {
        &self.store
    }

    /// A tunnel's state beyond its SAs.
    pub fn tunnel(&self, key: &TunnelKey) -> Option<&TunnelState> {
        self.tunnels.get(key)
    }

    /// When a tunnel whose CHILD_SA was refused tries again (see `child_retry`).
    pub fn child_retry_at(&self, key: &TunnelKey) -> Option<std::time::Instant> {
        self.child_retries.get(key)
    }

    /// A connection's event counters.
    pub fn conn_stats(&self, name: &str) -> ConnStats {
        self.stats.get(name).copied().unwrap_or_default()
    }

    /// Which tunnels carry a connection's traffic.
    pub fn selection(&self, name: &str) -> Option<&Selection> {
        self.selections.get(name)
    }

    /// A connection's bandwidth bucket, while sharing is on.
    pub fn share(&self, name: &str) -> Option<&ShareState> {
        self.shares.get(name)
    }

    /// The engine's IKE SAs.
    pub fn ike_sas(&self) -> Vec<IkeSaSummary> {
        self.ep.ike_sas()
    }

    /// How many IKE SAs the engine has (in any state), without copying them.
    pub fn ike_sa_count(&self) -> usize {
        self.ep.sa_count()
    }

    /// The engine's counters.
    pub fn engine_stats(&self) -> EndpointStats {
        self.ep.stats()
    }
}
