//! Reload: the new config compared with the running one, connection by connection.
//! Unchanged connections are not touched; changed ones are torn down and brought up again
//! with their new settings; removed ones are deleted. A config that needs a restart is
//! refused whole and changes nothing.
//!
//! The work is O(N) hash lookups and comparisons to find what changed among N connections,
//! then proportional to what changed: a site's fragment edited among 10,000 tears down and
//! starts that site only, and the summary names only what was added, changed or removed.
//! What is still rebuilt whole on every reload (each O(N), none per changed connection):
//! the engine's peer list (`set_peers`: a changed certificate of an "unchanged" connection
//! must reach it too), the admission list, the tunnel specs and the tables.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use ironsec_ike::IkeSaId;

use super::sas::RETIRE_GRACE;
use super::{peer, tunnels, Plane};
use crate::config::gateway::NeedsRestart;
use crate::config::{Config, Connection, Keying, RouteBased, StartAction};
use crate::tables::TunnelKey;

/// What a reload did, for the operator: the connections added, changed and removed by name
/// (in config order), the unchanged ones counted.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct ReloadSummary {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: usize,
}

/// How many names of each kind the summary line shows; the rest are counted.
pub const NAMES_SHOWN: usize = 20;

impl std::fmt::Display for ReloadSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[String]| match v.len() {
            0 => "none".to_string(),
            n if n <= NAMES_SHOWN => v.join(", "),
            n => format!(
                "{n} ({} and {} more)",
                v[..NAMES_SHOWN].join(", "),
                n - NAMES_SHOWN
            ),
        };
        write!(
            f,
            "added: {}; changed: {}; removed: {}; unchanged: {}",
            list(&self.added),
            list(&self.changed),
            list(&self.removed),
            self.unchanged
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

/// Whether `a` and `b` negotiate the same SAs: equal but for a route-based connection's
/// routes, guards and interface address, which are the daemon's to apply (its SAs carry
/// on). Every field is named, so a new one must be placed on one side or the other.
fn same_sas(a: &Connection, b: &Connection) -> bool {
    let Connection {
        name,
        local_ts,
        remote_ts,
        local_selectors,
        remote_selectors,
        bandwidth_weight,
        bandwidth,
        mss_clamp,
        path_mtu,
        copy_dscp,
        route_based,
        keying,
    } = a;
    let same_interface = match (route_based, &b.route_based) {
        (None, None) => true,
        (Some(x), Some(y)) => {
            let RouteBased {
                interface,
                address: _,
                routes: _,
                protect: _,
            } = x;
            *interface == y.interface
        }
        _ => false,
    };
    *name == b.name
        && same_interface
        && *bandwidth_weight == b.bandwidth_weight
        && *bandwidth == b.bandwidth
        && *mss_clamp == b.mss_clamp
        && *path_mtu == b.path_mtu
        && *copy_dscp == b.copy_dscp
        && *local_ts == b.local_ts
        && *remote_ts == b.remote_ts
        && *local_selectors == b.local_selectors
        && *remote_selectors == b.remote_selectors
        && *keying == b.keying
}

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
        let errs = self.refusals(&new);
        if !errs.is_empty() {
            return Err(ReloadRefused(errs));
        }
        let mut summary = ReloadSummary::default();
        // Old config indexes of what changed or went away, new ones of what is added or
        // changed; both in config order.
        let mut gone: Vec<usize> = Vec::new();
        let mut fresh: Vec<usize> = Vec::new();
        {
            let new_index: HashMap<&str, usize> = new
                .connections
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name.as_str(), i))
                .collect();
            for (i, old) in self.cfg.connections.iter().enumerate() {
                match new_index.get(old.name.as_str()) {
                    Some(&j) if same_sas(&new.connections[j], old) => summary.unchanged += 1,
                    Some(&j) => {
                        summary.changed.push(old.name.clone());
                        gone.push(i);
                        fresh.push(j);
                    }
                    None => {
                        summary.removed.push(old.name.clone());
                        gone.push(i);
                    }
                }
            }
            for (j, c) in new.connections.iter().enumerate() {
                if !self.by_name.contains_key(c.name.as_str()) {
                    summary.added.push(c.name.clone());
                    fresh.push(j);
                }
            }
            fresh.sort_unstable();
        }
        self.tear_down(&gone, &summary.removed, now);
        self.cfg = new;
        self.by_name = super::names_of(&self.cfg);
        self.respec();
        self.ep.set_peers(peer::peer_configs(&self.cfg));
        self.ep.set_limits(peer::endpoint_config(&self.cfg));
        self.admission.set_peers(&self.cfg);
        for &j in &fresh {
            let c = &self.cfg.connections[j];
            if let Err(e) = self.store.add_static(&self.cfg, j, self.workers) {
                tracing::error!(connection = %c.name, error = %e, "cannot create static SAs");
            }
            self.stats.entry(c.name.as_str().into()).or_default();
            let span = self.spans.get(j).cloned().unwrap_or(0..0);
            for s in self.specs.get(span).unwrap_or(&[]) {
                self.tunnels
                    .entry(s.key())
                    .or_insert_with(|| tunnels::fresh_state(c));
            }
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
        for &j in &fresh {
            self.start_connection(j, now);
        }
        // The daemon swaps in new tables after a reload whatever changed.
        self.tables_stale = true;
        Ok(summary)
    }

    /// Tears down connections `gone` (old config indexes) before the new config replaces
    /// the old: their IKE SAs are deleted (the peer hears it), their CHILD_SAs retire
    /// (packets in flight still get in), their tunnels' state and timers are forgotten.
    /// Those in `removed` lose their counters too. Only their own tunnels are looked at.
    fn tear_down(&mut self, gone: &[usize], removed: &[String], now: Instant) {
        if gone.is_empty() {
            return;
        }
        let names: Vec<Arc<str>> = gone
            .iter()
            .map(|&i| Arc::from(self.cfg.connections[i].name.as_str()))
            .collect();
        let place: HashMap<&str, usize> =
            names.iter().enumerate().map(|(p, n)| (&**n, p)).collect();
        // Their IKE SAs, connection by connection in config order. One copy of the
        // engine's SA list for all of them (the engine has no lookup by connection yet).
        let mut ids: Vec<(usize, IkeSaId)> = self
            .ep
            .ike_sas()
            .into_iter()
            .filter_map(|s| Some((*place.get(s.conn.as_deref()?)?, s.id)))
            .collect();
        ids.sort_by_key(|(p, _)| *p);
        for (_, id) in ids {
            let _ = self.ep.terminate(now, id);
        }
        // Their tunnels: the configured ones (the old specs, still in place) and their
        // connected remote-access clients'.
        let mut keys: Vec<TunnelKey> = gone
            .iter()
            .flat_map(|&i| self.specs_of(i).iter().map(|s| s.key()))
            .collect();
        if !self.clients.is_empty() {
            keys.extend(
                self.clients
                    .iter()
                    .filter(|(k, _)| place.contains_key(&*k.conn))
                    .map(|(k, _)| k.clone()),
            );
        }
        for key in &keys {
            self.forget_tunnel_state(key);
        }
        let removed: HashSet<&str> = removed.iter().map(String::as_str).collect();
        for name in &names {
            self.store.retire_connection(name, now + RETIRE_GRACE);
            self.follow.clear(name);
            self.selections.remove(name);
            if removed.contains(&**name) {
                self.stats.remove(name);
            }
            self.clients.forget_connection(name);
        }
    }

    /// A tunnel of a connection a reload tears down: its state, watch, NAT path and timers.
    fn forget_tunnel_state(&mut self, key: &TunnelKey) {
        if let Some(st) = self.tunnels.remove(key) {
            if let Some(w) = &st.watch {
                self.watches.remove(&w.id());
            }
            if let Some(p) = st.nat {
                self.nat_paths.remove(&(p.local, p.remote));
            }
        }
        self.restarts.clear(key);
        self.child_retries.clear(key);
        self.keepalives.clear(key);
        self.rearm.clear(key);
        self.silence.clear(key);
        self.reselect.clear(key);
    }

    /// Initiates the tunnels of connection `conn_index` (added or changed by a reload) if
    /// it starts on its own, as [`Plane::start_tunnels`] does for every connection at start.
    fn start_connection(&mut self, conn_index: usize, now: Instant) {
        // Drained: nothing starts until a rejoin (which starts every connection).
        if self.drain.holding() {
            return;
        }
        let Keying::Ike(k) = &self.cfg.connections[conn_index].keying else {
            return;
        };
        if k.start_action != StartAction::Start {
            return;
        }
        for s in self.specs_of(conn_index).to_vec() {
            if !s.ike || s.client.is_some() || self.is_dormant(s.local) {
                continue;
            }
            let st = self.tunnels.entry(s.key()).or_default();
            if st.ike.is_some() || st.held {
                continue;
            }
            self.initiate_tunnel(&s, now, "start_action start");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::config::fixtures::{fragment, hub, site, TempDir};
    use crate::testutil::{settle, ConfFile};

    fn load(main: &std::path::Path) -> Config {
        Config::load_with_env(main, Vec::new()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Tunnel states that still carry the mark set before the reload, by connection.
    fn marked(plane: &Plane) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for (k, st) in &plane.tunnels {
            if st.last_error.as_deref() == Some("mark") {
                *out.entry(k.conn.to_string()).or_default() += 1;
            }
        }
        out
    }

    #[test]
    fn one_fragment_among_many_touches_only_its_connection() {
        let n = 300;
        let d = TempDir::new("reload-one");
        let main = hub(&d.0, n);
        let now = Instant::now();
        let mut plane = Plane::new(load(&main), 1).unwrap();
        // Mark every tunnel's state and give each a restart timer: a reload that touched a
        // tunnel would have replaced or cleared them.
        let later = now + Duration::from_secs(3600);
        let keys: Vec<TunnelKey> = plane.tunnels.keys().cloned().collect();
        assert_eq!(keys.len(), 2 * n);
        for k in &keys {
            plane.tunnels.get_mut(k).unwrap().last_error = Some("mark".into());
            plane.restarts.set(k.clone(), later);
        }
        let k = 123;
        std::fs::write(fragment(&main, k), site(k, 30)).unwrap();
        let s = plane.reload(load(&main), now).unwrap();
        assert_eq!(s.changed, [format!("s{k}")]);
        assert!(s.added.is_empty() && s.removed.is_empty(), "{s:?}");
        assert_eq!(s.unchanged, n - 1);
        assert_eq!(
            s.to_string(),
            format!(
                "added: none; changed: s{k}; removed: none; unchanged: {}",
                n - 1
            )
        );
        // Touched: the changed connection's two tunnels, fresh; every other one as it was.
        let m = marked(&plane);
        assert_eq!(m.len(), n - 1, "every other connection keeps its state");
        assert!(m.values().all(|&c| c == 2));
        assert!(!m.contains_key(&format!("s{k}")));
        assert_eq!(plane.tunnels.len(), 2 * n);
        for key in &keys {
            let kept = plane.restarts.get(key).is_some();
            assert_eq!(kept, *key.conn != *format!("s{k}"), "{key}");
        }
        assert!(plane.drain_events(now), "a reload asks for tables");

        // One fragment removed, one added: those two, nothing else.
        std::fs::remove_file(fragment(&main, 7)).unwrap();
        std::fs::write(fragment(&main, n), site(n, 0)).unwrap();
        let s = plane.reload(load(&main), now).unwrap();
        assert_eq!(s.removed, ["s7"]);
        assert_eq!(s.added, [format!("s{n}")]);
        assert!(s.changed.is_empty());
        assert_eq!(s.unchanged, n - 1);
        let m = marked(&plane);
        assert_eq!(m.len(), n - 2);
        assert!(!m.contains_key("s7") && !m.contains_key(&format!("s{n}")));
        assert!(plane.tunnels.keys().all(|t| &*t.conn != "s7"));
        assert!(!plane.stats.contains_key("s7"));
        assert_eq!(
            plane
                .tunnels
                .keys()
                .filter(|t| *t.conn == *format!("s{n}"))
                .count(),
            2
        );
        assert_eq!(plane.by_name.get(format!("s{n}").as_str()), Some(&(n - 1)));
    }

    #[test]
    fn a_summary_of_thousands_names_twenty_of_each_and_counts_the_rest() {
        let s = ReloadSummary {
            added: (0..25).map(|i| format!("a{i}")).collect(),
            changed: vec!["c".into()],
            removed: Vec::new(),
            unchanged: 9_999,
        };
        let first: Vec<String> = (0..20).map(|i| format!("a{i}")).collect();
        assert_eq!(
            s.to_string(),
            format!(
                "added: 25 ({} and 5 more); changed: c; removed: none; unchanged: 9999",
                first.join(", ")
            )
        );
    }

    /// Site `i` as the spoke sees it: the mirror of [`site`], starting on its own.
    fn spoke(i: usize) -> String {
        let (hi, lo) = (i / 256, i % 256);
        format!(
            "[[connection]]\nname = \"h{i}\"\nkeying = \"ike\"\nlocal_id = \"s{i}.example\"\n\
             remote_id = \"hub.example\"\npsk = \"a-long-enough-secret-phrase-0123\"\n\
             local_ts = [\"10.{}.{lo}.0/24\"]\nremote_ts = [\"10.{}.{lo}.0/24\"]\n\
             ike_proposals = [\"aes128gcm16-prfsha256-x25519\"]\nesp_proposals = [\"aes128gcm16\"]\n\
             mode = \"active-standby\"\nstart_action = \"start\"\ndpd_interval = 0\n\
             tunnels = [ {{ local = \"100.64.{hi}.{lo}\", remote = \"192.0.2.1\" }}, \
             {{ local = \"100.65.{hi}.{lo}\", remote = \"198.51.100.1\" }} ]\n",
            128 + hi,
            64 + hi
        )
    }

    /// Each connection's IKE SAs in the engine.
    fn sas_by_conn(p: &Plane) -> BTreeMap<String, Vec<IkeSaId>> {
        let mut out: BTreeMap<String, Vec<IkeSaId>> = BTreeMap::new();
        for s in p.ep.ike_sas() {
            out.entry(s.conn.map(|c| c.to_string()).unwrap_or_default())
                .or_default()
                .push(s.id);
        }
        for v in out.values_mut() {
            v.sort();
        }
        out
    }

    #[test]
    fn a_changed_site_loses_its_sas_and_no_other_site_hears_a_thing() {
        let n = 12;
        let d = TempDir::new("reload-sas");
        let main = hub(&d.0, n);
        let spokes = ConfFile::new(
            "reload-spokes",
            &format!(
                "[gateway]\ntun = \"spoke0\"\nport = 4500\nike_port = 500\n{}",
                (0..n).map(spoke).collect::<String>()
            ),
        );
        let mut now = Instant::now();
        let mut hub_plane = Plane::new(load(&main), 1).unwrap();
        let mut spoke_plane = Plane::new(spokes.load(), 1).unwrap();
        spoke_plane.start_tunnels(now);
        let all_up = |p: &Plane| p.specs().iter().all(|s| p.sas().is_sending(&s.key()));
        for _ in 0..60 {
            settle(&mut spoke_plane, &mut hub_plane, now);
            if all_up(&spoke_plane) {
                break;
            }
            now += Duration::from_millis(500);
            spoke_plane.on_timeout(now);
            hub_plane.on_timeout(now);
        }
        assert!(all_up(&spoke_plane), "every tunnel is up");
        settle(&mut spoke_plane, &mut hub_plane, now);
        let before = sas_by_conn(&hub_plane);
        assert_eq!(before.len(), n);
        assert!(before.values().all(|v| v.len() == 2), "{before:?}");

        let k = 5;
        std::fs::write(fragment(&main, k), site(k, 30)).unwrap();
        let s = hub_plane.reload(load(&main), now).unwrap();
        assert_eq!(s.changed, [format!("s{k}")]);
        hub_plane.drain_events(now);
        // What the hub sends: a DELETE on each of the changed site's two IKE SAs, nothing to
        // anyone else.
        let mut sent = Vec::new();
        while let Some(t) = hub_plane.poll_transmit() {
            sent.push(t);
        }
        let site_k: [IpAddr; 2] = [
            format!("100.64.0.{k}").parse().unwrap(),
            format!("100.65.0.{k}").parse().unwrap(),
        ];
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert!(sent.iter().all(|t| site_k.contains(&t.remote.ip())));
        let after = sas_by_conn(&hub_plane);
        for (conn, ids) in &before {
            if *conn == format!("s{k}") {
                continue;
            }
            assert_eq!(after.get(conn), Some(ids), "{conn} keeps its IKE SAs");
        }
        for conn in before.keys().filter(|c| **c != format!("s{k}")) {
            for spec in hub_plane.specs().iter().filter(|s| *s.conn == **conn) {
                assert!(
                    hub_plane.sas().is_sending(&spec.key()),
                    "{conn} still sends"
                );
            }
        }
        for spec in hub_plane
            .specs()
            .iter()
            .filter(|s| *s.conn == *format!("s{k}"))
        {
            assert!(!hub_plane.sas().is_sending(&spec.key()));
        }
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
