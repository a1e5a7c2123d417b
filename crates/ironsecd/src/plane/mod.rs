//! The control plane's state: the IKE engine, the SAs it negotiated, and which tunnel sends
//! with which SA. Turns engine events into fast-path tables and operator log lines, and
//! applies operator commands (initiate, terminate, reload).
//!
//! Each concern lives in a module of its own (see ARCHITECTURE.md):
//! - [`sas`]: engine events to SA bookkeeping (install, rekey, retire, IKE SA down);
//! - [`tunnels`]: per-tunnel state, starting and restarting tunnels;
//! - [`child_retry`]: a refused CHILD_SA tried again with a new IKE SA, with backoff;
//! - [`failover`]: which tunnels carry a connection's traffic ([`failover::decide`], pure);
//! - [`probing`]: "sending without hearing back" checks of multi-tunnel connections;
//! - [`nat`]: NAT keepalives and following a peer behind a NAT to its new address;
//! - [`sharing`]: the connections' bandwidth buckets;
//! - [`commands`] and [`reload`]: the operator's `initiate`, `terminate` and reload;
//! - [`drain`]: closing every connection for a planned drain, and letting them up again;
//! - `peer`: the config translated into the engine's peer settings;
//! - [`deadlines`]: per-key timers, so idle tunnels cost nothing;
//! - [`volume`]: volume lifetimes and the sequence space from the fast path's counters;
//! - [`clients`]: remote-access clients, each a tunnel of its connection while connected;
//! - [`shared`]: shared addresses of an active-standby pair, dormant tunnels;
//! - [`view`]: the read-only accessors `ironsecctl status` and metrics are built from.
//!
//! Per-tunnel state is kept by [`TunnelKey`] (connection name and addresses), never by the
//! fast path's tunnel id, so a reload that adds or removes tunnels leaves the others' state
//! where it was.

pub mod child_retry;
pub mod clients;
pub mod commands;
pub mod deadlines;
pub mod drain;
pub mod failover;
pub mod nat;
mod peer;
pub mod probing;
mod radius;
pub mod reload;
pub mod sas;
pub mod seqspace;
pub mod shared;
pub mod sharing;
pub mod tunnels;
pub mod view;
pub mod volume;

#[cfg(test)]
mod bench;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use ironsec_dataplane::{Bucket, IfaceId, Prefix, Tables, WatchId};
use ironsec_ike::crypto::SystemRng;
use ironsec_ike::{Endpoint, Event, IkeSaId, Transmit};

use crate::config::{Config, Connection, Keying, Mode};
use crate::tables::{self, BuildError, Choice, SaStore, TunnelKey, TunnelSpec};

pub use commands::{CommandDone, CommandError};
pub use failover::{FailoverReason, Selection};
pub use reload::{ReloadError, ReloadRefused, ReloadSummary};
pub use sharing::ShareState;
pub use tunnels::{Liveness, Traffic, TunnelState};

use deadlines::Deadlines;
use sharing::Shares;

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
    /// NAT keepalives sent (we are behind a NAT and the tunnel was idle).
    pub nat_keepalives: u64,
    /// Times the peer, behind a NAT, was followed to a new address or port.
    pub peer_moves: u64,
    /// CHILD_SA rekeys refused by the peer, and CHILD_SAs that reached a hard limit.
    pub child_rekey_failures: u64,
}

pub struct Plane {
    cfg: Config,
    /// The config's tunnels, then the connected remote-access clients' ([`Plane::respec`]).
    specs: Vec<TunnelSpec>,
    /// Connected remote-access clients.
    clients: clients::Clients,
    /// Per connection (config index): its tunnels' positions in `specs` (config order keeps
    /// them together), so per-connection work never scans every tunnel.
    spans: Vec<Range<usize>>,
    /// Connection name -> config index.
    by_name: HashMap<Arc<str>, usize>,
    /// Activity watches -> their tunnels (see [`probing`]).
    watches: HashMap<WatchId, TunnelKey>,
    next_watch: u64,
    /// Watched tunnels whose watch is armed again then.
    rearm: Deadlines<TunnelKey>,
    /// Watched tunnels sending without hearing back: checked (and probed) then.
    silence: Deadlines<TunnelKey>,
    /// Tunnels of preempting connections whose hold time ends then.
    reselect: Deadlines<TunnelKey>,
    /// Connections whose tunnels heard ESP: decided again then (the peer may have moved).
    follow: Deadlines<Arc<str>>,
    /// CHILD_SAs (inbound SPI) whose traffic is looked at then (see [`volume`]).
    volume: Deadlines<u32>,
    volume_samples: HashMap<u32, volume::Sample>,
    store: SaStore,
    ep: Endpoint,
    workers: usize,
    /// The fast path's sockets, fixed at start: tables refer to them by position.
    bound: Vec<SocketAddr>,
    /// Path MTUs towards the peers, read from the kernel and cached for table builds.
    path_mtus: crate::pathmtu::PathMtus,
    /// Route-based connections' interfaces as the daemon created them (it owns the devices;
    /// the plane only scopes tables to them).
    devices: HashMap<Arc<str>, IfaceId>,
    tunnels: HashMap<TunnelKey, TunnelState>,
    /// IKE SA -> the tunnel whose state's `ike` it is (kept by [`Plane::set_ike`]; an entry
    /// whose tunnel forgot the SA by another way is stale and ignored, and dropped when the
    /// SA goes down). Clients' IKE SAs are in `clients`.
    ike_index: HashMap<IkeSaId, TunnelKey>,
    /// Connections (config index) an event touched since their traffic was last decided:
    /// the next [`Plane::drain_events`] that changes the tables re-decides only these.
    dirty: BTreeSet<usize>,
    /// Every connection is to be decided again (start, reload, rejoin: see
    /// [`Plane::start_tunnels`]).
    dirty_all: bool,
    /// How many times a connection's traffic was decided ([`Plane::select`]), for tests that
    /// count work.
    #[cfg(test)]
    select_visits: u64,
    /// When tunnels initiate again (close action `restart`).
    restarts: Deadlines<TunnelKey>,
    /// When tunnels whose CHILD_SA was refused try again (see [`child_retry`]).
    child_retries: Deadlines<TunnelKey>,
    /// Tunnels behind a NAT: looked at then, and a keepalive sent if they were idle.
    keepalives: Deadlines<TunnelKey>,
    /// The paths (our NAT-T address, the peer's) of tunnels that send keepalives, so that
    /// the IKE messages the engine sends on them count as sends (see [`nat`]).
    nat_paths: HashMap<(SocketAddr, SocketAddr), TunnelKey>,
    /// The latest `now` the plane was given: when the engine's datagrams were made, at the
    /// latest (they are made in the calls that pass it).
    clock: Option<Instant>,
    /// Datagrams the plane itself sends (NAT keepalives), after the engine's.
    outbox: std::collections::VecDeque<Transmit>,
    /// EAP via RADIUS: the servers' clients and their outbox ([`radius`]).
    radius: radius::Relay,
    stats: HashMap<Arc<str>, ConnStats>,
    selections: HashMap<Arc<str>, Selection>,
    /// Bandwidth sharing: one bucket per connection while any cap is configured.
    shares: Shares,
    /// Which IKE datagrams get into the control plane's queue under a flood (the configured
    /// peers' addresses, kept current across reloads).
    admission: Arc<crate::ikeadmit::Admission>,
    /// Something changed what the fast path's tables hold (a retired SA, a new selection, a
    /// reload) outside an engine event; the next [`Plane::drain_events`] reports it.
    tables_stale: bool,
    /// Log lines caused by unauthenticated datagrams, limited per source (see
    /// [`crate::loglimit`]); its window's end is one of the plane's deadlines (summaries).
    log_limit: crate::loglimit::LogLimiter,
    /// Which shared addresses are on this host (see [`shared`]).
    shared: shared::Shared,
    /// A drain closed the connections ([`drain`]): nothing starts, and peers' new IKE SAs
    /// are refused, until a rejoin.
    drain: drain::Hold,
}

/// Connection name -> config index.
fn names_of(cfg: &Config) -> HashMap<Arc<str>, usize> {
    cfg.connections
        .iter()
        .enumerate()
        .map(|(i, c)| (Arc::from(c.name.as_str()), i))
        .collect()
}

/// Per connection, the range of its tunnels in `specs`.
fn spans_of(cfg: &Config, specs: &[TunnelSpec]) -> Vec<Range<usize>> {
    let mut spans = vec![0..0; cfg.connections.len()];
    for (i, s) in specs.iter().enumerate() {
        let r = &mut spans[s.conn_index];
        if r.start == r.end {
            *r = i..i + 1;
        } else {
            r.end = i + 1;
        }
    }
    spans
}

impl Plane {
    pub fn new(cfg: Config, workers: usize) -> Result<Plane, BuildError> {
        let specs = tables::tunnel_specs(&cfg);
        let store = SaStore::with_static(&cfg, workers)?;
        let ep_cfg = peer::endpoint_config(&cfg);
        let mut tunnels = HashMap::new();
        for s in &specs {
            tunnels.insert(
                s.key(),
                tunnels::fresh_state(&cfg.connections[s.conn_index]),
            );
        }
        let stats = cfg
            .connections
            .iter()
            .map(|c| (Arc::from(c.name.as_str()), ConnStats::default()))
            .collect();
        let mut shares = Shares::default();
        shares.sync(&cfg, Instant::now());
        let cfg_shared = cfg.gateway.shared_addresses.clone();
        Ok(Plane {
            ep: Endpoint::new(ep_cfg, peer::peer_configs(&cfg), Box::new(SystemRng::new())),
            admission: Arc::new(crate::ikeadmit::Admission::new(&cfg)),
            bound: cfg.local_addrs(),
            path_mtus: Default::default(),
            devices: HashMap::new(),
            spans: spans_of(&cfg, &specs),
            by_name: names_of(&cfg),
            watches: HashMap::new(),
            next_watch: 0,
            rearm: Deadlines::default(),
            silence: Deadlines::default(),
            reselect: Deadlines::default(),
            follow: Deadlines::default(),
            volume: Deadlines::default(),
            volume_samples: HashMap::new(),
            cfg,
            specs,
            clients: Default::default(),
            store,
            workers,
            tunnels,
            ike_index: HashMap::new(),
            dirty: BTreeSet::new(),
            dirty_all: false,
            #[cfg(test)]
            select_visits: 0,
            restarts: Deadlines::default(),
            child_retries: Deadlines::default(),
            keepalives: Deadlines::default(),
            nat_paths: HashMap::new(),
            clock: None,
            outbox: Default::default(),
            radius: Default::default(),
            stats,
            selections: HashMap::new(),
            shares,
            tables_stale: false,
            log_limit: crate::loglimit::LogLimiter::default(),
            shared: shared::Shared::new(&cfg_shared),
            drain: Default::default(),
        })
    }

    /// The addresses the fast path's sockets are bound to.
    pub fn bound(&self) -> &[SocketAddr] {
        &self.bound
    }

    /// Log lines of unauthenticated traffic not written (rate limit), since start.
    pub fn log_suppressed(&self) -> u64 {
        self.log_limit.suppressed_total()
    }

    /// Which IKE datagrams the readers let into the control plane's queue.
    pub fn admission(&self) -> &Arc<crate::ikeadmit::Admission> {
        &self.admission
    }

    pub fn tables(&self) -> Result<Tables, BuildError> {
        // Asked once per tunnel while building (no set of every trapped key made first). A
        // dormant tunnel's traffic is dropped (`no_sa`) without an acquire: it could not
        // initiate anyway.
        let trapped = |k: &TunnelKey| {
            self.tunnels
                .get(k)
                .is_some_and(|s| s.trapped && !self.is_dormant(k.local))
        };
        // Each connection's choice as the build asks for it (no map of them made first).
        let choice = |c: &crate::config::Connection| {
            let Keying::Ike(k) = &c.keying else {
                return None;
            };
            let sel = self.selections.get(c.name.as_str())?;
            Some(match k.mode {
                Mode::ActiveStandby => Choice::One(sel.active.first()?.clone()),
                Mode::ActiveActive => Choice::Spread(
                    sel.active
                        .iter()
                        .map(|key| (key.clone(), failover::weight_of(k, key)))
                        .collect(),
                ),
            })
        };
        let shapers: HashMap<Arc<str>, Arc<Bucket>> = self.shares.buckets();
        tables::build(
            &self.cfg,
            &self.specs,
            &self.store,
            &trapped,
            &choice,
            tables::Shaping {
                shapers: &shapers,
                mtus: &self.path_mtus,
                devices: &self.devices,
            },
            &self.bound,
        )
    }

    /// Records that route-based connection `conn`'s interface is device `id` (`None`: it
    /// has none now). The caller builds and installs new tables afterwards.
    pub fn set_device(&mut self, conn: &str, id: Option<IfaceId>) {
        match id {
            Some(id) => {
                self.devices.insert(Arc::from(conn), id);
            }
            None => {
                self.devices.remove(conn);
            }
        }
    }

    /// Asks for new tables at the next flush (something they are built from changed outside
    /// the plane's own events, e.g. a device).
    pub fn touch_tables(&mut self) {
        self.tables_stale = true;
    }

    /// The device of each route-based connection that has one.
    pub fn devices(&self) -> &HashMap<Arc<str>, IfaceId> {
        &self.devices
    }

    /// The tunnels again: the config's (their positions in config order, `spans` over
    /// them), then one per connected remote-access client. After a reload and whenever a
    /// client comes or goes.
    fn respec(&mut self) {
        self.specs = tables::tunnel_specs(&self.cfg);
        self.spans = spans_of(&self.cfg, &self.specs);
        let by_name = &self.by_name;
        self.specs
            .extend(self.clients.specs(|n| by_name.get(n).copied()));
    }

    /// The tunnels of connection number `conn_index`, in config order (a remote-access
    /// connection's clients are not among them).
    fn specs_of(&self, conn_index: usize) -> &[TunnelSpec] {
        self.spans
            .get(conn_index)
            .and_then(|r| self.specs.get(r.clone()))
            .unwrap_or(&[])
    }

    /// Local addresses that take IKE on the IKE port (UDP 500).
    pub fn ike_addrs(&self) -> Vec<SocketAddr> {
        let mut v: Vec<SocketAddr> = Vec::new();
        let ike_locals = self
            .cfg
            .connections
            .iter()
            .filter(|c| matches!(c.keying, Keying::Ike(_)))
            .flat_map(|c| c.keying.local_ips());
        for ip in ike_locals {
            let a = SocketAddr::new(ip, self.cfg.gateway.ike_port);
            if !v.contains(&a) {
                v.push(a);
            }
        }
        v
    }

    /// The connection named `name`, by the name index (O(1)).
    fn connection(&self, name: &str) -> Option<&Connection> {
        self.by_name
            .get(name)
            .and_then(|&i| self.cfg.connections.get(i))
    }

    /// Connection `conn`'s traffic is decided again at the next [`Plane::drain_events`] that
    /// changes the tables.
    fn mark_dirty(&mut self, conn: &str) {
        if let Some(&i) = self.by_name.get(conn) {
            self.dirty.insert(i);
        }
    }

    fn stats_of(&mut self, conn: &str) -> &mut ConnStats {
        self.stats.entry(conn.into()).or_default()
    }

    /// An IKE datagram from the network. What it leads to comes out as engine events (an
    /// INVALID_SPI hint among them) on the next [`Plane::drain_events`].
    pub fn on_ike_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        self.saw(now);
        if self.refuse_while_drained(local, data) {
            return;
        }
        self.ep.handle(now, local, remote, data);
    }

    /// The fast path got ESP for an SPI it has no SA for; when the engine tells the peer
    /// (INVALID_SPI), an [`ironsec_ike::Event::InvalidSpiSent`] says so.
    pub fn on_unknown_spi(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        spi: u32,
    ) {
        self.saw(now);
        self.ep.unknown_esp_spi(now, local, remote, spi);
    }

    /// The earliest moment something is due: the engine's timers, restarts, retiring SAs,
    /// liveness checks. The plane's part costs O(1) in the number of tunnels.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.ep.poll_timeout(),
            self.restarts.next(),
            self.child_retries.next(),
            self.store.next_retirement(),
            self.rearm.next(),
            self.silence.next(),
            self.reselect.next(),
            self.follow.next(),
            self.volume.next(),
            self.keepalives.next(),
            self.log_limit.next_deadline(),
            self.radius_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Timers: the engine's, restarts, retiring SAs, liveness checks and preempt hold
    /// times. Only what is due is looked at. Tables that changed are reported by the next
    /// [`Plane::drain_events`].
    pub fn on_timeout(&mut self, now: Instant) {
        self.saw(now);
        self.ep.handle_timeout(now);
        self.radius_timeouts(now);
        if self.restarts.any_due(now) {
            self.restart_due(now);
        }
        if self.child_retries.any_due(now) {
            self.retry_refused_children(now);
        }
        self.retire_expired(now);
        self.rearm_due(now);
        self.check_silences(now);
        self.reselect_due(now);
        self.check_volumes(now);
        self.keepalives_due(now);
        for s in self.log_limit.due(now) {
            s.log();
        }
    }

    /// Moves the plane's clock (see `clock`) forward to `now`.
    fn saw(&mut self, now: Instant) {
        self.clock = Some(self.clock.map_or(now, |c| c.max(now)));
        // Certificates are checked against the wall clock: the engine reads none, so it is
        // told with every call (a stepped system clock is seen at once).
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.ep.set_wall_clock(now, unix);
    }

    /// The next datagram to send: the engine's IKE messages, then the plane's keepalives.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(t) = self.ep.poll_transmit() {
            self.note_ike_sent(&t);
            return Some(t);
        }
        self.outbox.pop_front()
    }

    /// Applies every pending engine event; returns whether the tables must be rebuilt (for
    /// these events or for any earlier change).
    pub fn drain_events(&mut self, now: Instant) -> bool {
        self.saw(now);
        let mut changed = false;
        while let Some(e) = self.ep.poll_event() {
            if let Some(c) = event_conn(&e) {
                self.mark_dirty(c);
            }
            changed |= self.on_event(e, now);
        }
        if changed {
            self.select_dirty(now);
        }
        changed | std::mem::take(&mut self.tables_stale)
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

/// The connection an engine event is about, when it names one.
fn event_conn(e: &Event) -> Option<&str> {
    match e {
        Event::EapRadius { conn, .. }
        | Event::IkeSaUp { conn, .. }
        | Event::IkeSaRekeyed { conn, .. }
        | Event::ChildSaUp { conn, .. }
        | Event::ChildSaRekeyed { conn, .. }
        | Event::ChildSaDown { conn, .. }
        | Event::ChildSaRefused { conn, .. }
        | Event::VirtualIp { conn, .. } => Some(conn),
        Event::IkeSaDown { conn, .. }
        | Event::Failure { conn, .. }
        | Event::PeerAddressChanged { conn, .. } => conn.as_deref(),
        Event::InvalidSpiHint { .. } | Event::InvalidSpiSent { .. } => None,
    }
}
