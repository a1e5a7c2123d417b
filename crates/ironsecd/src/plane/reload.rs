//! Reload: the new config compared with the running one, connection by connection.
//! Unchanged connections are not touched; changed ones are torn down and brought up again
//! with their new settings; removed ones are deleted. A config that needs a restart is
//! refused whole and changes nothing.

use std::net::IpAddr;
use std::time::Instant;

use ironsec_ike::IkeSaId;

use super::sas::RETIRE_GRACE;
use super::{peer, tunnels, Plane};
use crate::config::gateway::NeedsRestart;
use crate::config::Config;

/// What a reload did, for the operator.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct ReloadSummary {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: Vec<String>,
}

impl std::fmt::Display for ReloadSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        write!(
            f,
            "added: {}; changed: {}; removed: {}; unchanged: {}",
            list(&self.added),
            list(&self.changed),
            list(&self.removed),
            list(&self.unchanged)
        )
    }
}

/// Why a new config cannot be applied without a restart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Gateway(#[from] NeedsRestart),
    /// The fast path's sockets are bound at start.
    #[error("connection '{connection}': local address {ip} is not one the running daemon listens on (restart ironsecd to add an address)")]
    UnboundAddress { connection: String, ip: IpAddr },
}

/// Every reason a reload was refused, one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ReloadRefused(pub Vec<ReloadError>);

impl Plane {
    /// What keeps `new` from being applied to the running daemon.
    fn refusals(&self, new: &Config) -> Vec<ReloadError> {
        let mut errs: Vec<ReloadError> = self
            .cfg
            .gateway
            .restart_changes(&new.gateway)
            .into_iter()
            .map(ReloadError::Gateway)
            .collect();
        for c in &new.connections {
            for ip in c.keying.local_ips() {
                if !self.bound.iter().any(|a| a.ip() == ip) {
                    errs.push(ReloadError::UnboundAddress {
                        connection: c.name.clone(),
                        ip,
                    });
                }
            }
        }
        errs
    }

    /// Applies a new config: connections that did not change are not touched; changed ones
    /// are torn down and brought up again with their new settings; removed ones are deleted.
    /// Returns the errors instead (and changes nothing) when the new config needs a restart.
    pub fn reload(&mut self, new: Config, now: Instant) -> Result<ReloadSummary, ReloadRefused> {
        fn same_sas(a: &crate::config::Connection, b: &crate::config::Connection) -> bool {
            let sas_of = |c: &crate::config::Connection| {
                let mut c = c.clone();
                if let Some(rb) = &mut c.route_based {
                    rb.routes.clear();
                    rb.protect.clear();
                    rb.address = None;
                }
                c
            };
            sas_of(a) == sas_of(b)
        }
        let errs = self.refusals(&new);
        if !errs.is_empty() {
            return Err(ReloadRefused(errs));
        }
        let mut summary = ReloadSummary::default();
        let mut gone: Vec<String> = Vec::new();
        for old in &self.cfg.connections {
            match new.connections.iter().find(|c| c.name == old.name) {
                // A route-based connection's routes, guards and interface address are the
                // daemon's to apply; its SAs carry on.
                Some(c) if same_sas(c, old) => summary.unchanged.push(old.name.clone()),
                Some(_) => {
                    summary.changed.push(old.name.clone());
                    gone.push(old.name.clone());
                }
                None => {
                    summary.removed.push(old.name.clone());
                    gone.push(old.name.clone());
                }
            }
        }
        for c in &new.connections {
            if !self.cfg.connections.iter().any(|o| o.name == c.name) {
                summary.added.push(c.name.clone());
            }
        }
        // Tear down what changed or went away: its IKE SAs are deleted (the peer hears it),
        // its CHILD_SAs retire (packets in flight still get in), its state is forgotten.
        for name in &gone {
            let ids: Vec<IkeSaId> = self
                .ep
                .ike_sas()
                .into_iter()
                .filter(|s| s.conn.as_deref() == Some(name.as_str()))
                .map(|s| s.id)
                .collect();
            for id in ids {
                let _ = self.ep.terminate(now, id);
            }
            self.store.retire_connection(name, now + RETIRE_GRACE);
            self.tunnels.retain(|k, _| *k.conn != **name);
            self.restarts.retain(|k| *k.conn != **name);
            self.child_retries.retain(|k| *k.conn != **name);
            self.rearm.retain(|k| *k.conn != **name);
            self.silence.retain(|k| *k.conn != **name);
            self.reselect.retain(|k| *k.conn != **name);
            self.follow.retain(|c| **c != **name);
            self.watches.retain(|_, k| *k.conn != **name);
            self.selections.remove(name.as_str());
            if summary.removed.contains(name) {
                self.stats.remove(name.as_str());
            }
        }
        for name in &gone {
            self.clients.forget_connection(name);
        }
        self.cfg = new;
        self.by_name = super::names_of(&self.cfg);
        self.respec();
        self.ep.set_peers(peer::peer_configs(&self.cfg));
        self.ep.set_limits(peer::endpoint_config(&self.cfg));
        self.admission.set_peers(&self.cfg);
        for (i, c) in self.cfg.connections.iter().enumerate() {
            if summary.unchanged.contains(&c.name) {
                continue;
            }
            if let Err(e) = self.store.add_static(&self.cfg, i, self.workers) {
                tracing::error!(connection = %c.name, error = %e, "cannot create static SAs");
            }
            self.stats.entry(c.name.as_str().into()).or_default();
        }
        for s in &self.specs {
            let c = &self.cfg.connections[s.conn_index];
            self.tunnels
                .entry(s.key())
                .or_insert_with(|| tunnels::fresh_state(c));
        }
        let shares_before = self.shares.len();
        self.shares.sync(&self.cfg, now);
        if self.shares.len() != shares_before {
            tracing::info!(
                connections = self.shares.len(),
                "bandwidth sharing: {} connection bucket(s)",
                self.shares.len()
            );
        }
        self.start_tunnels(now);
        // The daemon swaps in new tables after a reload whatever changed.
        self.tables_stale = true;
        Ok(summary)
    }
}

/// What a reload that changes one site's fragment among many costs, the whole way the daemon
/// goes: loading the config again, [`Plane::reload`], the new tables. Measure with
/// `IRONSEC_RELOAD_BENCH_SIZES=1000,5000,10000 cargo test -p ironsecd --release --lib
/// plane::reload::bench -- --nocapture`; it prints times and asserts only that the one
/// connection changed. The suite runs it at 100 connections.
#[cfg(test)]
mod bench {
    use std::time::Instant;

    use super::Plane;
    use crate::config::fixtures::{fragment, hub, site, sizes, TempDir};
    use crate::config::Config;

    #[test]
    fn reload_one_fragment_cost() {
        for n in sizes("IRONSEC_RELOAD_BENCH_SIZES", &[100]) {
            let d = TempDir::new("reload-bench");
            let main = hub(&d.0, n);
            let load =
                || Config::load_with_env(&main, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
            let now = Instant::now();
            let mut plane = Plane::new(load(), 1).unwrap();
            plane.start_tunnels(now);
            plane.drain_events(now);
            plane.tables().unwrap();
            let k = n / 2;
            std::fs::write(fragment(&main, k), site(k, 30)).unwrap();
            let t = Instant::now();
            let new = load();
            let loaded = t.elapsed();
            let t = Instant::now();
            let s = plane.reload(new, now).unwrap();
            let reloaded = t.elapsed();
            let t = Instant::now();
            assert!(plane.drain_events(now), "a reload asks for tables");
            std::hint::black_box(plane.tables().unwrap());
            let built = t.elapsed();
            assert_eq!(s.changed, [format!("s{k}")]);
            assert!(s.added.is_empty() && s.removed.is_empty());
            let line = s.to_string();
            println!(
                "{n:>6} connections, one fragment changed: load {loaded:>10.1?}  Plane::reload {reloaded:>10.1?}  tables {built:>10.1?}  summary {} bytes",
                line.len()
            );
        }
    }
}
