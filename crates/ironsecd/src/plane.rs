//! The control plane's state: the IKE engine, the SAs it negotiated, and which tunnel sends
//! with which SA. Turns engine events into fast-path tables and operator log lines, and
//! applies operator commands (initiate, terminate, reload).
//!
//! Per-tunnel state is kept by [`TunnelKey`] (connection name and addresses), never by the
//! fast path's tunnel id, so a reload that adds or removes tunnels leaves the others' state
//! where it was.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironsec_dataplane::{Bucket, Prefix, SaTotals, Tables, TunnelId};
use ironsec_ike::crypto::SystemRng;
use ironsec_ike::{
    ts, CloseReason, Endpoint, EndpointConfig, Event, IkeSaId, Lifetimes, PeerConfig, Transmit,
};

use crate::config::{CloseAction, Config, Connection, IkeKeying, Keying, Mode, StartAction};
use crate::tables::{self, BuildError, Choice, IkeChild, SaStore, TunnelKey, TunnelSpec};

/// How long a deleted CHILD_SA still accepts inbound packets already on their way.
const RETIRE_GRACE: Duration = Duration::from_secs(2);
/// Wait before initiating again after an IKE SA of a `restart` connection went down.
const RESTART_DELAY: Duration = Duration::from_secs(5);

/// What the control plane knows about one tunnel beyond its SAs.
#[derive(Default, Debug, Clone)]
pub struct TunnelState {
    /// The IKE SA serving the tunnel (being set up or established).
    pub ike: Option<IkeSaId>,
    /// When set, initiate at this moment (close action `restart`, start action `start`).
    pub restart_at: Option<Instant>,
    /// Traffic without an SA makes us negotiate (start or close action `trap`).
    pub trapped: bool,
    /// The operator terminated it: no automatic restart until `ironsecctl initiate`.
    pub held: bool,
    /// When the current IKE SA came up; None while connecting or down.
    pub established_at: Option<Instant>,
    // (traffic selection uses it for the preempt hold time)
    /// Why the last IKE SA went down or the last negotiation failed, for status.
    pub last_error: Option<String>,
    /// Traffic of SAs that are gone, so totals in metrics never go backwards.
    pub retired_out: Traffic,
    pub retired_in: Traffic,
    /// Liveness as the fast path sees it: packet totals and when they last moved.
    pub seen: Liveness,
    /// When traffic last moved off this tunnel because it failed: preempt waits for an IKE SA
    /// established after that, proof that the path works again.
    pub failed_at: Option<Instant>,
}

/// Packet totals of a tunnel at the last look, and when each last grew.
#[derive(Default, Debug, Clone, Copy)]
pub struct Liveness {
    pub rx: u64,
    pub tx: u64,
    pub rx_at: Option<Instant>,
    pub tx_at: Option<Instant>,
    /// When the tunnel started sending after its last receive: silence counts from the later
    /// of this and `rx_at`, so a standby that just took over is not suspect for the time it
    /// had nothing to send.
    pub sending_since: Option<Instant>,
}

/// Which tunnels carry a connection's traffic, and the story of its failovers.
#[derive(Default, Debug, Clone)]
pub struct Selection {
    /// The tunnels traffic goes to now (one in active-standby).
    pub active: Vec<TunnelKey>,
    /// When, and what happened, e.g. "192.0.2.2 -> 198.51.100.2: probe unanswered".
    pub last_failover: Option<(Instant, String)>,
}

#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traffic {
    pub packets: u64,
    pub bytes: u64,
}

impl Traffic {
    fn add(&mut self, t: &SaTotals) {
        self.packets += t.packets;
        self.bytes += t.bytes;
    }
}

/// Events per connection since the daemon started (or since a reload added it).
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnStats {
    pub ike_up: u64,
    pub child_rekeys: u64,
    pub ike_rekeys: u64,
    /// The peer stopped answering an established IKE SA (DPD or any other request).
    pub dpd_failures: u64,
    /// Negotiations that failed (AUTHENTICATION_FAILED, NO_PROPOSAL_CHOSEN, ...).
    pub failures: u64,
    /// Traffic moved off a tunnel that failed (or back, with preempt).
    pub failovers: u64,
    /// Traffic moved to the tunnel the peer sends on.
    pub follows: u64,
}

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

pub struct Plane {
    pub cfg: Config,
    pub specs: Vec<TunnelSpec>,
    pub store: SaStore,
    pub ep: Endpoint,
    workers: usize,
    /// The fast path's sockets, fixed at start: tables refer to them by position.
    bound: Vec<SocketAddr>,
    pub tunnels: HashMap<TunnelKey, TunnelState>,
    pub stats: HashMap<Arc<str>, ConnStats>,
    pub selections: HashMap<Arc<str>, Selection>,
    /// Bandwidth sharing: one bucket per connection while any cap is configured.
    pub shares: HashMap<Arc<str>, ShareState>,
    /// Which IKE datagrams get into the control plane's queue under a flood (the configured
    /// peers' addresses, kept current across reloads).
    pub admission: Arc<crate::ikeadmit::Admission>,
}

/// A connection's bandwidth bucket and what the sharer measured of it.
#[derive(Debug)]
pub struct ShareState {
    pub bucket: Arc<Bucket>,
    last_offered: u64,
    last_at: Instant,
    /// Offered load, bits/s, smoothed over the last few rounds.
    pub demand: f64,
}

fn peer_config(c: &Connection) -> Option<PeerConfig> {
    let Keying::Ike(k) = &c.keying else {
        return None;
    };
    let to_ts = |v: &[Prefix]| {
        v.iter()
            .map(|p| ts::from_prefix(p.addr(), p.len()))
            .collect()
    };
    let jitter = (k.rekey_time / 10).min(Duration::from_secs(60));
    let mut retransmit = k.retransmit;
    retransmit.give_up_after = k.dpd_timeout;
    Some(PeerConfig {
        name: c.name.as_str().into(),
        local_id: k.local_id.clone(),
        remote_id: k.remote_id.clone(),
        psk: k.psk.clone(),
        ike_proposals: k.ike_proposals.clone(),
        esp_proposals: k.esp_proposals.clone(),
        local_ts: to_ts(&c.local_ts),
        remote_ts: to_ts(&c.remote_ts),
        remote_addrs: k.tunnels.iter().map(|t| t.remote).collect(),
        retransmit,
        lifetimes: Lifetimes {
            ike_rekey: k.ike_rekey_time,
            ike_reauth: None,
            child_rekey: k.rekey_time,
            child_hard: k.rekey_time + k.rekey_time / 10 + jitter,
            child_rekey_bytes: None,
            child_rekey_packets: None,
            child_hard_bytes: None,
            child_hard_packets: None,
            jitter,
        },
        dpd_interval: k.dpd_interval,
        force_encap: k.encap,
    })
}

fn peer_configs(cfg: &Config) -> Vec<PeerConfig> {
    cfg.connections.iter().filter_map(peer_config).collect()
}

/// A tunnel's state when its connection is (re)configured.
fn fresh_state(c: &Connection) -> TunnelState {
    TunnelState {
        trapped: matches!(&c.keying, Keying::Ike(k) if k.start_action == StartAction::Trap),
        ..Default::default()
    }
}

impl Plane {
    pub fn new(cfg: Config, workers: usize) -> Result<Plane, BuildError> {
        let specs = tables::tunnel_specs(&cfg);
        let store = SaStore::with_static(&cfg, workers)?;
        let ep_cfg = EndpointConfig {
            ike_port: cfg.gateway.ike_port,
            natt_port: cfg.gateway.port,
            ..Default::default()
        };
        let mut tunnels = HashMap::new();
        for s in &specs {
            tunnels.insert(s.key(), fresh_state(&cfg.connections[s.conn_index]));
        }
        let stats = cfg
            .connections
            .iter()
            .map(|c| (Arc::from(c.name.as_str()), ConnStats::default()))
            .collect();
        Ok(Plane {
            ep: Endpoint::new(ep_cfg, peer_configs(&cfg), Box::new(SystemRng::new())),
            admission: Arc::new(crate::ikeadmit::Admission::new(&cfg)),
            bound: cfg.local_addrs(),
            cfg,
            specs,
            store,
            workers,
            tunnels,
            stats,
            selections: HashMap::new(),
            shares: HashMap::new(),
        }
        .with_shares())
    }

    /// Creates (or drops) the connections' bandwidth buckets to match the config; existing
    /// buckets of unchanged connections keep their counters.
    fn with_shares(mut self) -> Plane {
        self.sync_shares(Instant::now());
        self
    }

    fn sync_shares(&mut self, now: Instant) {
        let any_cap = self.cfg.gateway.bandwidth.is_some()
            || self.cfg.connections.iter().any(|c| c.bandwidth.is_some());
        let names: Vec<(Arc<str>, Option<u64>)> = self
            .cfg
            .connections
            .iter()
            .filter(|c| any_cap && (self.cfg.gateway.bandwidth.is_some() || c.bandwidth.is_some()))
            .map(|c| (Arc::from(c.name.as_str()), c.bandwidth))
            .collect();
        self.shares.retain(|n, _| names.iter().any(|(m, _)| m == n));
        let n = names.len().max(1) as u64;
        for (name, cap) in names {
            self.shares.entry(name).or_insert_with(|| {
                let start = self
                    .cfg
                    .gateway
                    .bandwidth
                    .map(|t| t / n)
                    .into_iter()
                    .chain(cap)
                    .min()
                    .unwrap_or(u64::MAX / 16);
                ShareState {
                    bucket: Arc::new(Bucket::new(start / 8)),
                    last_offered: 0,
                    last_at: now,
                    demand: 0.0,
                }
            });
        }
    }

    /// Measures each connection's offered load and gives its bucket its share of the cap.
    fn reshare(&mut self, now: Instant) {
        if self.shares.is_empty() {
            return;
        }
        let mut claims = Vec::new();
        let mut order = Vec::new();
        for c in &self.cfg.connections {
            let Some(st) = self.shares.get_mut(c.name.as_str()) else {
                continue;
            };
            let (offered, _, _) = st.bucket.counters();
            let dt = now.saturating_duration_since(st.last_at).as_secs_f64();
            if dt > 0.0 {
                let bps = (offered - st.last_offered) as f64 * 8.0 / dt;
                // Quick to rise (a new flow needs room now), slower to fall.
                st.demand = if bps > st.demand {
                    bps
                } else {
                    0.5 * st.demand + 0.5 * bps
                };
                st.last_offered = offered;
                st.last_at = now;
            }
            claims.push(crate::share::Claim {
                weight: c.bandwidth_weight,
                demand: st.demand,
                cap: c.bandwidth.map(|b| b as f64),
            });
            order.push(c.name.clone());
        }
        let total = match self.cfg.gateway.bandwidth {
            Some(t) => t as f64,
            // Per-connection caps only: each gets its cap.
            None => claims.iter().filter_map(|c| c.cap).sum(),
        };
        let rates = match self.cfg.gateway.bandwidth {
            Some(_) => crate::share::allocate(total, &claims),
            None => claims.iter().map(|c| c.cap.unwrap_or(total)).collect(),
        };
        for (name, rate) in order.iter().zip(rates) {
            if let Some(st) = self.shares.get(name.as_str()) {
                st.bucket.set_rate((rate / 8.0) as u64);
            }
        }
    }

    /// The addresses the fast path's sockets are bound to.
    pub fn bound(&self) -> &[SocketAddr] {
        &self.bound
    }

    pub fn tables(&self) -> Result<Tables, BuildError> {
        let trapped: HashSet<TunnelKey> = self
            .tunnels
            .iter()
            .filter(|(_, s)| s.trapped)
            .map(|(k, _)| k.clone())
            .collect();
        let choice: HashMap<Arc<str>, Choice> = self
            .cfg
            .connections
            .iter()
            .filter_map(|c| {
                let Keying::Ike(k) = &c.keying else {
                    return None;
                };
                let sel = self.selections.get(c.name.as_str())?;
                let choice = match k.mode {
                    Mode::ActiveStandby => Choice::One(sel.active.first()?.clone()),
                    Mode::ActiveActive => Choice::Spread(
                        sel.active
                            .iter()
                            .map(|key| (key.clone(), weight_of(k, key)))
                            .collect(),
                    ),
                };
                Some((Arc::from(c.name.as_str()), choice))
            })
            .collect();
        let shapers: HashMap<Arc<str>, Arc<Bucket>> = self
            .shares
            .iter()
            .map(|(n, s)| (n.clone(), s.bucket.clone()))
            .collect();
        tables::build(
            &self.cfg,
            &self.specs,
            &self.store,
            &trapped,
            &choice,
            &shapers,
            &self.bound,
        )
    }

    /// A tunnel is up when it has an SA to send with.
    fn is_up(&self, key: &TunnelKey) -> bool {
        self.store.sending.contains_key(key)
    }

    /// Looks at every tunnel's packet counters: a tunnel of a multi-tunnel connection that
    /// sends without hearing back for a sixth of `failover_after` gets a probe, which closes
    /// its IKE SA unless the peer answers within a quarter of it. Then re-selects the tunnels
    /// traffic uses. Returns whether the tables must change. Called every 100 ms.
    pub fn tick(&mut self, now: Instant) -> bool {
        let mut probes: Vec<(IkeSaId, Duration, TunnelKey, Duration)> = Vec::new();
        for c in &self.cfg.connections {
            let Keying::Ike(k) = &c.keying else {
                continue;
            };
            if k.tunnels.len() < 2 {
                continue;
            }
            let (probe_after, give_up) = (k.failover_after / 6, k.failover_after / 4);
            for s in self.specs.iter().filter(|s| *s.conn == *c.name) {
                let key = s.key();
                let (out, inb) = self.tunnel_traffic(&key);
                let up = self.is_up(&key);
                let Some(st) = self.tunnels.get_mut(&key) else {
                    continue;
                };
                let seen = &mut st.seen;
                if inb.packets != seen.rx || seen.rx_at.is_none() {
                    seen.rx = inb.packets;
                    seen.rx_at = Some(now);
                }
                if out.packets != seen.tx {
                    if seen
                        .tx_at
                        .is_none_or(|t| seen.rx_at.is_some_and(|r| t <= r))
                    {
                        seen.sending_since = Some(now);
                    }
                    seen.tx = out.packets;
                    seen.tx_at = Some(now);
                }
                let (Some(rx_at), Some(tx_at), Some(ike)) = (seen.rx_at, seen.tx_at, st.ike) else {
                    continue;
                };
                // Silence counts from the last sign of life: ESP in, the start of this run of
                // sending, or any IKE message (an answered probe included, so a tunnel that
                // only sends, its return traffic hashed onto another tunnel, is checked again
                // after each silence rather than left to DPD). The engine keeps the IKE side.
                let Some(live) = self.ep.liveness(ike) else {
                    continue;
                };
                let since = rx_at
                    .max(seen.sending_since.unwrap_or(rx_at))
                    .max(live.last_heard);
                let silent = now.saturating_duration_since(since);
                if up && !live.probing && tx_at > rx_at && silent >= probe_after {
                    probes.push((ike, give_up, key.clone(), silent));
                }
            }
        }
        self.reshare(now);
        for (ike, give_up, key, silent) in probes {
            if self.ep.probe(now, ike, give_up) == Ok(true) {
                tracing::info!(tunnel = %key, silent_ms = silent.as_millis() as u64, "sending without hearing back: probing the peer");
            }
        }
        self.select_all(now)
    }

    /// Re-decides which tunnels carry each multi-tunnel connection's traffic; returns whether
    /// anything changed.
    pub fn select_all(&mut self, now: Instant) -> bool {
        let mut changed = false;
        for i in 0..self.cfg.connections.len() {
            let Keying::Ike(k) = &self.cfg.connections[i].keying else {
                continue;
            };
            let k = k.clone();
            let name: Arc<str> = self.cfg.connections[i].name.as_str().into();
            changed |= self.select(&name, &k, now);
        }
        changed
    }

    fn select(&mut self, name: &Arc<str>, k: &IkeKeying, now: Instant) -> bool {
        let keys: Vec<(TunnelKey, u32)> = self
            .specs
            .iter()
            .filter(|s| s.conn == *name)
            .map(|s| s.key())
            .zip(k.tunnels.iter().map(|t| t.priority))
            .collect();
        let up: Vec<(TunnelKey, u32)> = keys
            .iter()
            .filter(|(key, _)| self.is_up(key))
            .cloned()
            .collect();
        let probe_after = k.failover_after / 6;
        let silent = |key: &TunnelKey| {
            self.tunnels
                .get(key)
                .and_then(|s| s.seen.rx_at)
                .is_some_and(|t| now.saturating_duration_since(t) >= probe_after)
        };
        let heard_recently = |key: &TunnelKey| {
            self.tunnels
                .get(key)
                .and_then(|s| s.seen.rx_at)
                .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_millis(300))
        };
        let sel = self.selections.entry(name.clone()).or_default();
        let before = sel.active.clone();
        let (next, why): (Vec<TunnelKey>, String) = match k.mode {
            Mode::ActiveActive => (up.iter().map(|(k, _)| k.clone()).collect(), String::new()),
            Mode::ActiveStandby => {
                // Best first: highest priority, then config order (max_by_key keeps the last
                // of equals, so walk in reverse).
                let best = up
                    .iter()
                    .rev()
                    .max_by_key(|(_, p)| *p)
                    .map(|(k, p)| (k.clone(), *p));
                let current = before
                    .first()
                    .filter(|c| up.iter().any(|(k, _)| k == *c))
                    .map(|c| {
                        let p = keys.iter().find(|(k, _)| k == c).map_or(0, |(_, p)| *p);
                        (c.clone(), p)
                    });
                match (current, best) {
                    (None, Some((b, _))) => {
                        let why = match before.first() {
                            Some(old) => format!("{} is down", old.remote),
                            None => String::new(),
                        };
                        (vec![b], why)
                    }
                    (None, None) => (Vec::new(), "no tunnel is up".into()),
                    (Some((c, cp)), best) => {
                        // The peer moved first: traffic arrives on another tunnel while ours
                        // is silent. Follow it rather than wait for our own probe.
                        let moved = up
                            .iter()
                            .find(|(o, _)| *o != c && silent(&c) && heard_recently(o))
                            .map(|(o, _)| o.clone());
                        let probing = |key: &TunnelKey| {
                            self.tunnels
                                .get(key)
                                .and_then(|s| s.ike)
                                .and_then(|i| self.ep.liveness(i))
                                .is_some_and(|l| l.probing)
                        };
                        // A better tunnel that never failed (it just came up a moment after
                        // this one, at start) takes over at once, preempt or not; one that
                        // failed comes back only with preempt, on an IKE SA newer than the
                        // failure that has been up for the hold time.
                        let better = best.filter(|(b, bp)| *bp > cp && !probing(b));
                        let fresh = better.clone().filter(|(b, _)| {
                            self.tunnels.get(b).is_some_and(|s| s.failed_at.is_none())
                        });
                        let preempt = better.filter(|(b, _)| {
                            let st = self.tunnels.get(b);
                            let since = st.and_then(|s| s.established_at);
                            let failed = st.and_then(|s| s.failed_at);
                            since.is_some_and(|t| failed.is_some_and(|f| t > f))
                                && k.preempt_hold.is_some_and(|hold| {
                                    since.is_some_and(|t| now.saturating_duration_since(t) >= hold)
                                })
                        });
                        match (moved, fresh, preempt) {
                            (Some(o), _, _) => {
                                let why = format!("the peer moved to {}", o.remote);
                                (vec![o], why)
                            }
                            (None, Some((b, _)), _) => (
                                vec![b.clone()],
                                format!("{} has a higher priority", b.remote),
                            ),
                            (None, None, Some((b, _))) => {
                                (vec![b.clone()], format!("{} is back (preempt)", b.remote))
                            }
                            (None, None, None) => (vec![c], String::new()),
                        }
                    }
                }
            }
        };
        if next == before {
            return false;
        }
        let preempted = why.ends_with("(preempt)") || why.ends_with("has a higher priority");
        if !preempted {
            for b in before.iter().filter(|b| !next.contains(b)) {
                if let Some(st) = self.tunnels.get_mut(b) {
                    st.failed_at = Some(now);
                }
            }
        }
        let sel = self.selections.entry(name.clone()).or_default();
        let lost = before.iter().any(|b| !next.contains(b));
        let multi = k.tunnels.len() > 1;
        let followed = why.starts_with("the peer moved");
        let upgraded = why.ends_with("has a higher priority");
        if !multi {
            // One tunnel: up and down are logged as such; there is nothing to fail over to.
        } else if upgraded {
            tracing::info!(connection = %name, "traffic on {}: {why}", show(&next));
        } else if followed {
            // Not a failure of ours: the peer sends on another tunnel (it failed over first,
            // or, like strongSwan, it uses its newest CHILD_SA), so we answer there too.
            self.stats.entry(name.clone()).or_default().follows += 1;
            tracing::info!(connection = %name, "traffic follows the peer: {} -> {}: {why}", show(&before), show(&next));
        } else if lost && !before.is_empty() {
            self.stats.entry(name.clone()).or_default().failovers += 1;
            let text = format!(
                "{} -> {}{}",
                show(&before),
                show(&next),
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {why}")
                }
            );
            tracing::warn!(connection = %name, "failover {text}");
            sel.last_failover = Some((now, text));
        } else if !next.is_empty() {
            tracing::info!(connection = %name, active = %show(&next), "traffic on {}", show(&next));
        }
        sel.active = next;
        true
    }

    /// Local addresses that take IKE on the IKE port (UDP 500).
    pub fn ike_addrs(&self) -> Vec<SocketAddr> {
        let mut v: Vec<SocketAddr> = Vec::new();
        for s in self.specs.iter().filter(|s| s.ike) {
            let a = SocketAddr::new(s.local, self.cfg.gateway.ike_port);
            if !v.contains(&a) {
                v.push(a);
            }
        }
        v
    }

    fn connection(&self, name: &str) -> Option<&Connection> {
        self.cfg.connections.iter().find(|c| c.name == name)
    }

    /// Starts an IKE SA for one tunnel.
    fn initiate_tunnel(&mut self, spec: &TunnelSpec, now: Instant, why: &str) {
        let port = self.cfg.gateway.ike_port;
        let key = spec.key();
        match self.ep.initiate(
            now,
            &spec.conn,
            SocketAddr::new(spec.local, port),
            SocketAddr::new(spec.remote, port),
        ) {
            Ok(ike) => {
                tracing::info!(connection = %spec.conn, local = %spec.local, remote = %spec.remote, reason = why, "initiating IKE SA");
                let st = self.tunnels.entry(key).or_default();
                st.ike = Some(ike);
                st.restart_at = None;
            }
            Err(e) => tracing::error!(connection = %spec.conn, error = %e, "cannot initiate"),
        }
    }

    /// Initiates every tunnel of `start` connections that has no IKE SA, and every tunnel
    /// whose restart time has come.
    pub fn start_tunnels(&mut self, now: Instant) {
        for s in self.specs.clone() {
            if !s.ike {
                continue;
            }
            let Keying::Ike(k) = &self.cfg.connections[s.conn_index].keying else {
                continue;
            };
            let start = k.start_action == StartAction::Start;
            let st = self.tunnels.entry(s.key()).or_default();
            if st.ike.is_some() || st.held {
                continue;
            }
            let why = match st.restart_at {
                Some(t) if t <= now => "restart",
                Some(_) => continue,
                None if start => "start_action start",
                None => continue,
            };
            self.initiate_tunnel(&s, now, why);
        }
    }

    /// The fast path saw traffic for trapped tunnel `id` with no SA.
    pub fn on_acquire(&mut self, id: TunnelId, now: Instant) {
        let Some(s) = self.specs.get(id).cloned() else {
            return;
        };
        let st = self.tunnels.entry(s.key()).or_default();
        // A trap outlives `terminate` (as in strongSwan): only removing it from the config
        // stops traffic from bringing the tunnel up.
        if !st.trapped || st.ike.is_some() {
            return;
        }
        self.initiate_tunnel(&s, now, "traffic for a trapped tunnel");
    }

    /// `ironsecctl initiate`: brings up every tunnel of `name` that has no IKE SA.
    pub fn initiate(&mut self, name: &str, now: Instant) -> Result<String, String> {
        let c = self
            .connection(name)
            .ok_or_else(|| format!("no connection named '{name}'"))?;
        if !matches!(c.keying, Keying::Ike(_)) {
            return Err(format!(
                "connection '{name}' uses static keys: there is nothing to negotiate"
            ));
        }
        let specs: Vec<TunnelSpec> = self
            .specs
            .iter()
            .filter(|s| &*s.conn == name)
            .cloned()
            .collect();
        let mut started = 0;
        for s in &specs {
            let st = self.tunnels.entry(s.key()).or_default();
            st.held = false;
            if st.ike.is_none() {
                self.initiate_tunnel(s, now, "ironsecctl initiate");
                started += 1;
            }
        }
        if started == 0 {
            return Err(format!(
                "connection '{name}': every tunnel already has an IKE SA"
            ));
        }
        Ok(format!(
            "connection '{name}': initiating {started} tunnel{}",
            if started == 1 { "" } else { "s" }
        ))
    }

    /// `ironsecctl terminate`: deletes the connection's IKE SAs (and with them its CHILD_SAs)
    /// and keeps them down until `initiate`. A trapped connection stays trapped.
    pub fn terminate(&mut self, name: &str, now: Instant) -> Result<String, String> {
        let c = self
            .connection(name)
            .ok_or_else(|| format!("no connection named '{name}'"))?;
        if !matches!(c.keying, Keying::Ike(_)) {
            return Err(format!(
                "connection '{name}' uses static keys: its SAs exist as long as its config does"
            ));
        }
        let ids: Vec<IkeSaId> = self
            .ep
            .ike_sas()
            .into_iter()
            .filter(|s| s.conn.as_deref() == Some(name))
            .map(|s| s.id)
            .collect();
        for (k, st) in self.tunnels.iter_mut() {
            if &*k.conn == name {
                st.held = true;
                st.restart_at = None;
                st.ike = None;
            }
        }
        if ids.is_empty() {
            return Err(format!("connection '{name}' has no IKE SA"));
        }
        for id in &ids {
            if let Err(e) = self.ep.terminate(now, *id) {
                tracing::debug!(connection = name, error = %e, "terminate");
            }
        }
        tracing::info!(connection = name, "terminated by the operator");
        Ok(format!(
            "connection '{name}': deleting {} IKE SA{}",
            ids.len(),
            if ids.len() == 1 { "" } else { "s" }
        ))
    }

    /// Applies a new config: connections that did not change are not touched; changed ones
    /// are torn down and brought up again with their new settings; removed ones are deleted.
    /// Returns the errors instead (and changes nothing) when the new config needs a restart.
    pub fn reload(&mut self, new: Config, now: Instant) -> Result<ReloadSummary, Vec<String>> {
        let mut errs: Vec<String> = (self.cfg.gateway.restart_changes(&new.gateway))
            .iter()
            .map(ToString::to_string)
            .collect();
        for c in &new.connections {
            for ip in c.keying.local_ips() {
                if !self.bound.iter().any(|a| a.ip() == ip) {
                    errs.push(format!(
                        "connection '{}': local address {ip} is not one the running daemon listens on (restart ironsecd to add an address)",
                        c.name
                    ));
                }
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let mut summary = ReloadSummary::default();
        let mut gone: Vec<String> = Vec::new();
        for old in &self.cfg.connections {
            match new.connections.iter().find(|c| c.name == old.name) {
                Some(c) if c == old => summary.unchanged.push(old.name.clone()),
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
            for c in self.store.children.values_mut() {
                if *c.tunnel.conn == **name {
                    c.retiring_until = Some(now + RETIRE_GRACE);
                }
            }
            self.store.sending.retain(|k, _| *k.conn != **name);
            self.store.statics.retain(|k, _| *k.conn != **name);
            self.tunnels.retain(|k, _| *k.conn != **name);
            self.selections.remove(name.as_str());
            if summary.removed.contains(name) {
                self.stats.remove(name.as_str());
            }
        }
        self.cfg = new;
        self.specs = tables::tunnel_specs(&self.cfg);
        self.ep.set_peers(peer_configs(&self.cfg));
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
                .or_insert_with(|| fresh_state(c));
        }
        let shares_before = self.shares.len();
        self.sync_shares(now);
        if self.shares.len() != shares_before {
            tracing::info!(
                connections = self.shares.len(),
                "bandwidth sharing: {} connection bucket(s)",
                self.shares.len()
            );
        }
        self.start_tunnels(now);
        Ok(summary)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let retire = self
            .store
            .children
            .values()
            .filter_map(|c| c.retiring_until);
        let restarts = self.tunnels.values().filter_map(|s| s.restart_at);
        self.ep
            .poll_timeout()
            .into_iter()
            .chain(restarts)
            .chain(retire)
            .min()
    }

    /// Timers: the engine's, restarts, and retiring SAs. Returns whether tables changed.
    pub fn on_timeout(&mut self, now: Instant) -> bool {
        self.ep.handle_timeout(now);
        if self
            .tunnels
            .values()
            .any(|s| s.restart_at.is_some_and(|t| t <= now))
        {
            self.start_tunnels(now);
        }
        let expired: Vec<u32> = self
            .store
            .children
            .iter()
            .filter(|(_, c)| c.retiring_until.is_some_and(|t| t <= now))
            .map(|(spi, _)| *spi)
            .collect();
        for spi in &expired {
            if let Some(c) = self.store.children.remove(spi) {
                if let Some(st) = self.tunnels.get_mut(&c.tunnel) {
                    st.retired_out.add(&c.outbound.counters.totals());
                    st.retired_in.add(&c.inbound.counters.totals());
                }
            }
        }
        !expired.is_empty()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.ep.poll_transmit()
    }

    fn tunnel_for(&self, conn: &str, local: SocketAddr, remote: SocketAddr) -> Option<TunnelKey> {
        let of_conn = || self.specs.iter().filter(|s| &*s.conn == conn);
        of_conn()
            .find(|s| s.local == local.ip() && s.remote == remote.ip())
            .or_else(|| of_conn().find(|s| s.remote == remote.ip()))
            .or_else(|| of_conn().next())
            .map(|s| s.key())
    }

    fn tunnel_of_ike(&self, ike: IkeSaId) -> Option<TunnelKey> {
        self.tunnels
            .iter()
            .find(|(_, s)| s.ike == Some(ike))
            .map(|(k, _)| k.clone())
    }

    fn install(
        &mut self,
        conn: Arc<str>,
        ike: IkeSaId,
        info: ironsec_ike::ChildSaInfo,
        now: Instant,
    ) -> Option<(TunnelKey, u32)> {
        let key = self.tunnel_for(&conn, info.local, info.remote)?;
        let (outbound, inbound) =
            match SaStore::child_entries(&info, self.cfg.gateway.replay_window, self.workers) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(connection = %conn, error = %e, "cannot install CHILD_SA");
                    return None;
                }
            };
        let spi = info.spi_in;
        self.store.children.insert(
            spi,
            IkeChild {
                ike,
                tunnel: key.clone(),
                info,
                outbound,
                inbound,
                installed: now,
                retiring_until: None,
            },
        );
        Some((key, spi))
    }

    /// Applies every pending engine event; returns whether the tables must be rebuilt.
    pub fn drain_events(&mut self, now: Instant) -> bool {
        let mut changed = false;
        while let Some(e) = self.ep.poll_event() {
            changed |= self.on_event(e, now);
        }
        if changed {
            self.select_all(now);
        }
        changed
    }

    fn stats_of(&mut self, conn: &str) -> &mut ConnStats {
        self.stats.entry(conn.into()).or_default()
    }

    fn on_event(&mut self, e: Event, now: Instant) -> bool {
        match e {
            Event::IkeSaUp {
                conn,
                ike,
                local,
                remote,
                remote_id,
                algorithms,
                initiator,
            } => {
                tracing::info!(connection = %conn, %local, %remote, %remote_id, %algorithms, initiator, "IKE SA up");
                self.stats_of(&conn).ike_up += 1;
                if let Some(key) = self.tunnel_for(&conn, local, remote) {
                    let st = self.tunnels.entry(key).or_default();
                    st.ike = Some(ike);
                    st.restart_at = None;
                    st.held = false;
                    st.last_error = None;
                    st.established_at = Some(now);
                }
                false
            }
            Event::ChildSaUp { conn, ike, child } => {
                tracing::info!(
                    connection = %conn,
                    spi_in = %format!("0x{:08x}", child.spi_in),
                    spi_out = %format!("0x{:08x}", child.spi_out),
                    algorithms = %child.algorithms,
                    local_ts = %ts_list(&child.local_ts),
                    remote_ts = %ts_list(&child.remote_ts),
                    "CHILD_SA up"
                );
                if let Some((key, spi)) = self.install(conn, ike, child, now) {
                    self.store.start_sending(&key, spi);
                }
                true
            }
            Event::ChildSaRekeyed {
                conn,
                ike,
                old_spi_in,
                new,
                initiated,
            } => {
                tracing::info!(
                    connection = %conn,
                    old_spi_in = %format!("0x{old_spi_in:08x}"),
                    spi_in = %format!("0x{:08x}", new.spi_in),
                    initiated,
                    "CHILD_SA rekeyed"
                );
                self.stats_of(&conn).child_rekeys += 1;
                if let Some((key, spi)) = self.install(conn, ike, new, now) {
                    // Make-before-break: send on the new SA only once the peer surely has it.
                    self.store.rekeyed(&key, old_spi_in, spi, initiated);
                }
                true
            }
            Event::ChildSaDown {
                conn,
                spi_in,
                reason,
                ..
            } => {
                tracing::info!(connection = %conn, spi_in = %format!("0x{spi_in:08x}"), reason = ?reason, "CHILD_SA down");
                let Some(c) = self.store.children.get_mut(&spi_in) else {
                    return false;
                };
                c.retiring_until = Some(now + RETIRE_GRACE);
                let key = c.tunnel.clone();
                self.store.stop_sending(&key, spi_in);
                true
            }
            Event::IkeSaDown {
                conn,
                ike,
                remote,
                reason,
            } => self.on_ike_down(conn, ike, remote, reason, now),
            Event::IkeSaRekeyed {
                conn,
                old,
                new,
                algorithms,
            } => {
                tracing::info!(connection = %conn, %algorithms, "IKE SA rekeyed");
                self.stats_of(&conn).ike_rekeys += 1;
                for st in self.tunnels.values_mut() {
                    if st.ike == Some(old) {
                        st.ike = Some(new);
                    }
                }
                for c in self.store.children.values_mut() {
                    if c.ike == old {
                        c.ike = new;
                    }
                }
                false
            }
            Event::Failure {
                conn,
                remote,
                remote_id,
                notify,
                detail,
            } => {
                tracing::warn!(
                    connection = %conn.as_deref().unwrap_or("-"),
                    %remote,
                    remote_id = %remote_id.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
                    notify = %notify,
                    "negotiation failed: {detail}"
                );
                if let Some(c) = conn.as_deref() {
                    self.stats_of(c).failures += 1;
                    let msg = format!("{notify}: {detail}");
                    for (k, st) in self.tunnels.iter_mut() {
                        if *k.conn == *c && k.remote == remote.ip() {
                            st.last_error = Some(msg.clone());
                        }
                    }
                }
                false
            }
            Event::InvalidSpiHint { remote } => {
                tracing::info!(
                    %remote,
                    "peer reports INVALID_SPI (it may have restarted): checking it is alive"
                );
                false
            }
            Event::InvalidSpiSent { remote, spi } => {
                tracing::info!(
                    %remote,
                    spi = %crate::status::spi_string(spi),
                    "ESP for an SA we do not have: told the peer (INVALID_SPI)"
                );
                false
            }
        }
    }

    fn on_ike_down(
        &mut self,
        conn: Option<Arc<str>>,
        ike: IkeSaId,
        remote: std::net::SocketAddr,
        reason: CloseReason,
        now: Instant,
    ) -> bool {
        let conn_s = conn.as_deref().unwrap_or("-").to_string();
        let key = self.tunnel_of_ike(ike);
        let peer_fault = matches!(
            reason,
            CloseReason::PeerUnreachable
                | CloseReason::PeerDeleted
                | CloseReason::Refused(_)
                | CloseReason::ProtocolError(_)
                | CloseReason::Expired
        );
        match &reason {
            CloseReason::PeerUnreachable
            | CloseReason::Refused(_)
            | CloseReason::ProtocolError(_) => {
                tracing::warn!(connection = %conn_s, %remote, reason = ?reason, "IKE SA down")
            }
            _ => tracing::info!(connection = %conn_s, %remote, reason = ?reason, "IKE SA down"),
        }
        let Some(key) = key else {
            return false;
        };
        let established = self
            .tunnels
            .get(&key)
            .is_some_and(|s| s.established_at.is_some());
        if reason == CloseReason::PeerUnreachable && established {
            self.stats_of(&conn_s).dpd_failures += 1;
        }
        let action = match self.connection(&key.conn).map(|c| &c.keying) {
            Some(Keying::Ike(k)) => k.close_action,
            _ => CloseAction::None,
        };
        let Some(st) = self.tunnels.get_mut(&key) else {
            return false;
        };
        st.ike = None;
        st.established_at = None;
        // A tunnel that comes back starts with a clean record, not the silence that killed it.
        st.seen = Liveness::default();
        let was_trapped = st.trapped;
        if peer_fault {
            st.last_error.get_or_insert_with(|| format!("{reason:?}"));
            if !st.held {
                match action {
                    CloseAction::Restart => st.restart_at = Some(now + RESTART_DELAY),
                    CloseAction::Trap => st.trapped = true,
                    CloseAction::None => {}
                }
            }
        }
        // The trap flag lives in the tables.
        st.trapped != was_trapped
    }

    /// Totals of every SA a tunnel has had (live, retiring and gone), for metrics.
    pub fn tunnel_traffic(&self, key: &TunnelKey) -> (Traffic, Traffic) {
        let st = self.tunnels.get(key);
        let mut out = st.map(|s| s.retired_out).unwrap_or_default();
        let mut inb = st.map(|s| s.retired_in).unwrap_or_default();
        if let Some(s) = self.store.statics.get(key) {
            out.add(&s.outbound.counters.totals());
            inb.add(&s.inbound.counters.totals());
        }
        for c in self.store.children.values().filter(|c| &c.tunnel == key) {
            out.add(&c.outbound.counters.totals());
            inb.add(&c.inbound.counters.totals());
        }
        (out, inb)
    }

    /// Remote subnets per connection, for routes into the TUN device.
    pub fn routes(&self) -> BTreeMap<String, (Vec<Prefix>, Vec<Prefix>)> {
        self.cfg
            .connections
            .iter()
            .map(|c| (c.name.clone(), (c.local_ts.clone(), c.remote_ts.clone())))
            .collect()
    }
}

fn weight_of(k: &IkeKeying, key: &TunnelKey) -> u32 {
    k.tunnels
        .iter()
        .find(|t| t.local == key.local && t.remote == key.remote)
        .map_or(1, |t| t.weight)
}

fn show(v: &[TunnelKey]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.iter()
        .map(|k| k.remote.to_string())
        .collect::<Vec<_>>()
        .join("+")
}

fn ts_list(v: &[ironsec_ike::wire::TrafficSelector]) -> String {
    tables::ts_prefixes(v)
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",")
}
