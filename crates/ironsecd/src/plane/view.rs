//! Read-only access to the plane's state, for `ironsecctl status` and metrics
//! (`crate::report`). Nothing here changes the plane.

use ironsec_ike::{EndpointStats, IkeSaSummary};

use super::{ConnStats, Plane, Selection, ShareState, TunnelState};
use crate::config::Config;
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

    /// The engine's counters.
    pub fn engine_stats(&self) -> EndpointStats {
        self.ep.stats()
    }
}
