//! Turns the config and the SAs that exist into the fast path's tables.
//!
//! SA entries live in a [`SaStore`] for as long as their SA does, and every table rebuild
//! shares them: a rebuilt table must carry the same sequence counters and replay windows on.
//! Tunnel ids are positions in [`tunnel_specs`], which only the config decides.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use ironsec_dataplane::{
    IfaceId, InboundEntry, OutboundEntry, PerWorker, Policy, PolicyPorts, PortSelectors, Ports,
    Prefix, Selector, Spread, TableError, Tables, Tunnel, TunnelId, Watch,
};
use ironsec_esp::{InboundSa, KeyError, OutboundSa};
use ironsec_ike::wire::TrafficSelector;
use ironsec_ike::{ChildSaInfo, IkeSaId};

use crate::config::{Config, Keying};

#[derive(thiserror::Error, Debug)]
pub enum BuildError {
    #[error("connection '{conn}': {source}")]
    Key {
        conn: String,
        #[source]
        source: KeyError,
    },
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("no fast-path socket is bound to {0} (a new local address needs a restart)")]
    NoSocket(IpAddr),
    #[error("cannot get random bytes for the IV offset: {0}")]
    Random(String),
}

/// What identifies a tunnel across reloads: its connection and its two addresses. Tunnel
/// ids (positions in the fast path's table) change when a reload adds or removes tunnels;
/// keys do not, so every piece of per-tunnel state is kept by key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TunnelKey {
    pub conn: Arc<str>,
    pub local: IpAddr,
    /// The peer's address: configured for a site, where the client connected from for a
    /// remote-access client (several clients behind one NAT share it).
    pub remote: IpAddr,
    /// A remote-access client's tunnel: the client's virtual address, which no other
    /// connected client holds. None for a site's tunnel.
    pub client: Option<IpAddr>,
}

impl std::fmt::Display for TunnelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} -> {}", self.conn, self.local, self.remote)?;
        match self.client {
            Some(v) => write!(f, " (client {v})"),
            None => Ok(()),
        }
    }
}

/// One tunnel of the config, in config order.
#[derive(Clone, Debug)]
pub struct TunnelSpec {
    pub conn: Arc<str>,
    /// Index of the connection in the config.
    pub conn_index: usize,
    pub local: IpAddr,
    pub remote: IpAddr,
    pub ike: bool,
    /// The peer was given by this DNS name: `remote` is what it resolved to at load, and
    /// every initiation resolves it again.
    pub remote_name: Option<Arc<str>>,
    /// A remote-access client's tunnel (see [`TunnelKey::client`]): made when the client
    /// connected, after the config's tunnels.
    pub client: Option<IpAddr>,
}

impl TunnelSpec {
    pub fn key(&self) -> TunnelKey {
        TunnelKey {
            conn: self.conn.clone(),
            local: self.local,
            remote: self.remote,
            client: self.client,
        }
    }
}

pub fn tunnel_specs(cfg: &Config) -> Vec<TunnelSpec> {
    let mut v = Vec::new();
    for (i, c) in cfg.connections.iter().enumerate() {
        let pairs: Vec<(IpAddr, IpAddr, bool, Option<Arc<str>>)> = match &c.keying {
            Keying::Static(s) => s
                .tunnels
                .iter()
                .map(|t| (t.local, t.remote.ip(), false, None))
                .collect(),
            Keying::Ike(k) => k
                .tunnels
                .iter()
                .map(|t| (t.local, t.remote, true, t.remote_name.clone()))
                .collect(),
        };
        for (local, remote, ike, remote_name) in pairs {
            v.push(TunnelSpec {
                conn: c.name.as_str().into(),
                conn_index: i,
                local,
                remote,
                ike,
                remote_name,
                client: None,
            });
        }
    }
    v
}

/// Which of a connection's tunnels carry its traffic, as the control plane decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Active-standby: this one.
    One(TunnelKey),
    /// Active-active: these, flows spread by weight.
    Spread(Vec<(TunnelKey, u32)>),
}

/// A negotiated CHILD_SA installed in the fast path.
pub struct IkeChild {
    pub ike: IkeSaId,
    pub tunnel: TunnelKey,
    pub info: ChildSaInfo,
    pub outbound: Arc<OutboundEntry>,
    pub inbound: Arc<InboundEntry>,
    pub installed: Instant,
    /// Deleted: the inbound SA stays a moment for packets already in flight, then goes.
    pub retiring_until: Option<Instant>,
    /// The peer is behind a NAT: an authenticated packet from a new address moves it.
    pub nat_peer: bool,
}

/// A manually keyed tunnel's two SAs, created once per config of the connection.
pub struct StaticSas {
    pub outbound: Arc<OutboundEntry>,
    pub inbound: Arc<InboundEntry>,
}

/// The SAs that exist, static and negotiated. Its indexes (per tunnel, by retirement time)
/// are kept by its methods, so the control plane finds a tunnel's SAs and the next SA to
/// retire without scanning every SA.
#[derive(Default)]
pub struct SaStore {
    statics: HashMap<TunnelKey, StaticSas>,
    children: BTreeMap<u32, IkeChild>,
    /// Per tunnel: the inbound SPIs of its CHILD_SAs (live and retiring).
    by_tunnel: HashMap<TunnelKey, BTreeSet<u32>>,
    /// Retiring CHILD_SAs by the moment they go.
    retiring: BTreeSet<(Instant, u32)>,
    /// Per tunnel: the CHILD_SAs it sends with (inbound SPIs), in the order they came up. Each
    /// carries the traffic of its own selectors; the first is the tunnel's main one.
    sending: HashMap<TunnelKey, Vec<u32>>,
    /// Rekeys the peer started: the new SA (value) takes over sending when the old one (key)
    /// is deleted (make-before-break).
    successor: HashMap<u32, u32>,
}

/// Address ranges from a negotiation as prefixes (a range that is not a single prefix
/// becomes the prefixes that cover exactly it), for routes and status.
pub fn ts_prefixes(ts: &[TrafficSelector]) -> Vec<Prefix> {
    ts_selectors(ts).into_iter().map(|s| s.prefix).collect()
}

/// Negotiated selectors as the fast path enforces them: each address range as the prefixes
/// that cover exactly it, every one with the selector's protocol and port range.
pub fn ts_selectors(ts: &[TrafficSelector]) -> Vec<Selector> {
    let mut out = Vec::new();
    for t in ts {
        let ports = Ports {
            proto: t.ip_protocol,
            start: t.start_port,
            end: t.end_port,
        };
        let (s, e, bits) = match (t.start, t.end) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32u32),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
            _ => continue,
        };
        let mut cur = s;
        while cur <= e {
            // Largest aligned block starting at `cur` that stays within `e`.
            let mut size_bits = if cur == 0 {
                bits
            } else {
                cur.trailing_zeros().min(bits)
            };
            while size_bits > 0 {
                let span = if size_bits >= 128 {
                    u128::MAX
                } else {
                    (1u128 << size_bits) - 1
                };
                if cur.checked_add(span).is_some_and(|end| end <= e) {
                    break;
                }
                size_bits -= 1;
            }
            let len = (bits - size_bits) as u8;
            let addr = if bits == 32 {
                IpAddr::V4((cur as u32).into())
            } else {
                IpAddr::V6(cur.into())
            };
            if let Ok(prefix) = Prefix::new(addr, len) {
                out.push(Selector { prefix, ports });
            }
            let span = if size_bits >= 128 {
                u128::MAX
            } else {
                1u128 << size_bits
            };
            match cur.checked_add(span) {
                Some(n) if size_bits < bits => cur = n,
                _ => break,
            }
        }
    }
    out
}

fn random_u64() -> Result<u64, BuildError> {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut b = [0u8; 8];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| BuildError::Random("getrandom failed".into()))?;
    Ok(u64::from_ne_bytes(b))
}

impl SaStore {
    /// Creates the static SAs of connection `conn_index` (at start, and when a reload
    /// changed that connection).
    ///
    /// Static SAs start their sequence numbers at 1 every time they are created, so each gets
    /// a random IV offset: the GCM/ChaCha nonce must never repeat under one key, and with
    /// manual keys the key outlives the process.
    pub fn add_static(
        &mut self,
        cfg: &Config,
        conn_index: usize,
        workers: usize,
    ) -> Result<(), BuildError> {
        let c = &cfg.connections[conn_index];
        let Keying::Static(st) = &c.keying else {
            return Ok(());
        };
        let local_ts: Arc<[_]> = c.local_ts.clone().into();
        let remote_ts: Arc<[_]> = c.remote_ts.clone().into();
        let ports = PortSelectors::of(&c.local_selectors, &c.remote_selectors);
        for t in &st.tunnels {
            let key_err = |source| BuildError::Key {
                conn: c.name.clone(),
                source,
            };
            let out = OutboundSa::new(st.suite, t.spi_out, t.key_out.bytes(), st.esn)
                .map_err(key_err)?
                .with_iv_offset(random_u64()?);
            let inb = InboundSa::new(
                st.suite,
                t.spi_in,
                t.key_in.bytes(),
                st.esn,
                cfg.gateway.replay_window,
            )
            .map_err(key_err)?;
            self.statics.insert(
                TunnelKey {
                    conn: c.name.as_str().into(),
                    local: t.local,
                    remote: t.remote.ip(),
                    client: None,
                },
                StaticSas {
                    outbound: Arc::new(OutboundEntry {
                        sa: out,
                        counters: PerWorker::new(workers),
                        watch: None,
                    }),
                    inbound: Arc::new(InboundEntry {
                        sa: inb,
                        local_ts: local_ts.clone(),
                        remote_ts: remote_ts.clone(),
                        ports: ports.clone().map(Box::new),
                        counters: PerWorker::new(workers),
                        watch: None,
                        device: Default::default(),
                    }),
                },
            );
        }
        Ok(())
    }

    /// The store for a fresh start: every static SA, no negotiated one.
    pub fn with_static(cfg: &Config, workers: usize) -> Result<SaStore, BuildError> {
        let mut store = SaStore::default();
        for i in 0..cfg.connections.len() {
            store.add_static(cfg, i, workers)?;
        }
        Ok(store)
    }

    /// A negotiated CHILD_SA, by inbound SPI.
    pub fn child(&self, spi: u32) -> Option<&IkeChild> {
        self.children.get(&spi)
    }

    /// A negotiated CHILD_SA to change, for tests that fake what the fast path did to it.
    #[cfg(test)]
    pub fn child_mut(&mut self, spi: u32) -> Option<&mut IkeChild> {
        self.children.get_mut(&spi)
    }

    /// The tunnel's CHILD_SAs, live and retiring.
    pub fn children_of<'a>(&'a self, key: &TunnelKey) -> impl Iterator<Item = &'a IkeChild> + 'a {
        self.by_tunnel
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|spi| self.children.get(spi))
    }

    /// A tunnel's static SAs to change, for tests that fake what the fast path did to them.
    #[cfg(test)]
    pub fn static_mut(&mut self, key: &TunnelKey) -> Option<&mut StaticSas> {
        self.statics.get_mut(key)
    }

    /// The tunnel's static SAs, if it is manually keyed.
    pub fn statics_of(&self, key: &TunnelKey) -> Option<&StaticSas> {
        self.statics.get(key)
    }

    /// Whether the tunnel has an SA to send with.
    pub fn is_sending(&self, key: &TunnelKey) -> bool {
        self.sending.contains_key(key)
    }

    /// The CHILD_SAs (inbound SPIs) the tunnel sends with, main one first.
    pub fn sending_of(&self, key: &TunnelKey) -> &[u32] {
        self.sending.get(key).map_or(&[], Vec::as_slice)
    }

    /// A CHILD_SA the engine negotiated, now in the fast path's tables.
    pub fn insert_child(&mut self, child: IkeChild) {
        let spi = child.info.spi_in;
        let tunnel = child.tunnel.clone();
        if let Some(old) = self.children.insert(spi, child) {
            if let Some(t) = old.retiring_until {
                self.retiring.remove(&(t, spi));
            }
            if let Some(set) = self.by_tunnel.get_mut(&old.tunnel) {
                set.remove(&spi);
            }
        }
        self.by_tunnel.entry(tunnel).or_default().insert(spi);
    }

    /// CHILD_SA `spi` was deleted: its inbound SA stays until `until` for packets in flight.
    /// Returns its tunnel.
    pub fn retire(&mut self, spi: u32, until: Instant) -> Option<TunnelKey> {
        let c = self.children.get_mut(&spi)?;
        if let Some(t) = c.retiring_until.replace(until) {
            self.retiring.remove(&(t, spi));
        }
        self.retiring.insert((until, spi));
        Some(c.tunnel.clone())
    }

    /// Retires every CHILD_SA of connection `conn` and forgets its tunnels' sending state
    /// and static SAs (a reload changed or removed it).
    pub fn retire_connection(&mut self, conn: &str, until: Instant) {
        let spis: Vec<u32> = self
            .by_tunnel
            .iter()
            .filter(|(k, _)| *k.conn == *conn)
            .flat_map(|(_, v)| v.iter().copied())
            .collect();
        for spi in spis {
            self.retire(spi, until);
        }
        self.sending.retain(|k, _| *k.conn != *conn);
        self.statics.retain(|k, _| *k.conn != *conn);
    }

    /// When the next retiring CHILD_SA goes.
    pub fn next_retirement(&self) -> Option<Instant> {
        self.retiring.first().map(|(t, _)| *t)
    }

    /// Removes the retiring CHILD_SAs whose time has come and returns them.
    pub fn expire(&mut self, now: Instant) -> Vec<IkeChild> {
        let mut gone = Vec::new();
        while let Some(&(t, spi)) = self.retiring.first() {
            if t > now {
                break;
            }
            self.retiring.pop_first();
            let Some(c) = self.children.remove(&spi) else {
                continue;
            };
            if let Some(set) = self.by_tunnel.get_mut(&c.tunnel) {
                set.remove(&spi);
                if set.is_empty() {
                    self.by_tunnel.remove(&c.tunnel);
                }
            }
            gone.push(c);
        }
        gone
    }

    /// The peer of IKE SA `ike`, behind a NAT, moved to `remote`: its CHILD_SAs send there.
    /// Returns whether any did not already.
    pub fn move_peer(&mut self, ike: IkeSaId, remote: SocketAddr) -> bool {
        let mut moved = false;
        for c in self.children.values_mut().filter(|c| c.ike == ike) {
            moved |= c.info.remote != remote;
            c.info.remote = remote;
        }
        moved
    }

    /// The IKE SA `old` was rekeyed into `new`: its CHILD_SAs now belong to `new`.
    pub fn move_children(&mut self, old: IkeSaId, new: IkeSaId) {
        for c in self.children.values_mut() {
            if c.ike == old {
                c.ike = new;
            }
        }
    }

    /// The tunnel's main CHILD_SA: the first it sends with.
    pub fn active_out(&self, key: &TunnelKey) -> Option<u32> {
        self.sending.get(key).and_then(|v| v.first()).copied()
    }

    /// A new CHILD_SA to send with.
    pub fn start_sending(&mut self, key: &TunnelKey, spi: u32) {
        let v = self.sending.entry(key.clone()).or_default();
        if !v.contains(&spi) {
            v.push(spi);
        }
    }

    /// `new` replaced `old` by a rekey: now if we started it (the peer has the new SA), else
    /// when the peer deletes `old`.
    pub fn rekeyed(&mut self, key: &TunnelKey, old: u32, new: u32, initiated: bool) {
        let v = self.sending.entry(key.clone()).or_default();
        match v.iter().position(|s| *s == old) {
            Some(i) if initiated => {
                v[i] = new;
                // A rekey collision (RFC 7296 2.8.1): the peer's rekey of `old` came first.
                // Whoever made the redundant SA deletes it; if that is ours, the peer's
                // takes its place rather than leaving the tunnel without an SA.
                if let Some(peer_new) = self.successor.remove(&old) {
                    self.successor.insert(new, peer_new);
                }
            }
            Some(_) => {
                self.successor.insert(old, new);
            }
            None => v.push(new),
        }
    }

    /// CHILD_SA `spi` is gone: its successor, if any, takes its place.
    pub fn stop_sending(&mut self, key: &TunnelKey, spi: u32) {
        let next = self.successor.remove(&spi).filter(|n| {
            self.children
                .get(n)
                .is_some_and(|c| c.retiring_until.is_none())
        });
        self.successor.retain(|_, n| *n != spi);
        if let Some(v) = self.sending.get_mut(key) {
            match (v.iter().position(|s| *s == spi), next) {
                (Some(i), Some(n)) => v[i] = n,
                (Some(i), None) => {
                    v.remove(i);
                }
                (None, _) => {}
            }
            if v.is_empty() {
                self.sending.remove(key);
            }
        }
    }

    /// Inbound SPIs of a tunnel's SAs, static and negotiated.
    pub fn inbound_of(&self, key: &TunnelKey) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .statics
            .get(key)
            .map(|s| s.inbound.sa.spi())
            .into_iter()
            .collect();
        v.extend(self.children_of(key).map(|c| c.info.spi_in));
        v
    }

    /// A negotiated CHILD_SA's entries; `watch` (its tunnel's) tells the control plane of
    /// packets through them when armed.
    pub fn child_entries(
        info: &ChildSaInfo,
        replay_window: usize,
        workers: usize,
        watch: Option<Arc<Watch>>,
    ) -> Result<(Arc<OutboundEntry>, Arc<InboundEntry>), KeyError> {
        let a = info.algorithms;
        let (local, remote) = (ts_selectors(&info.local_ts), ts_selectors(&info.remote_ts));
        let out = OutboundSa::new(a.encr, info.spi_out, info.key_out.bytes(), a.esn)?;
        let inb = InboundSa::new(
            a.encr,
            info.spi_in,
            info.key_in.bytes(),
            a.esn,
            replay_window,
        )?;
        Ok((
            Arc::new(OutboundEntry {
                sa: out,
                counters: PerWorker::new(workers),
                watch: watch.clone(),
            }),
            Arc::new(InboundEntry {
                sa: inb,
                local_ts: local.iter().map(|s| s.prefix).collect(),
                remote_ts: remote.iter().map(|s| s.prefix).collect(),
                ports: PortSelectors::of(&local, &remote).map(Box::new),
                counters: PerWorker::new(workers),
                watch,
                device: Default::default(),
            }),
        ))
    }
}

/// The outbound policies of a pair of selector lists: one per local x remote selector of
/// one IP version whose protocols agree (a TCP local with a UDP remote selects nothing).
fn policies_for(
    local: &[Selector],
    remote: &[Selector],
    tunnel: TunnelId,
    scope: Option<IfaceId>,
    out: &mut Vec<Policy>,
) {
    for l in local {
        for r in remote {
            let (lp, rp) = (l.ports.proto, r.ports.proto);
            if l.prefix.is_v4() == r.prefix.is_v4() && (lp == 0 || rp == 0 || lp == rp) {
                out.push(Policy {
                    local: l.prefix,
                    remote: r.prefix,
                    tunnel,
                    ports: PolicyPorts::of(l.ports, r.ports),
                    scope,
                });
            }
        }
    }
}

/// How the tunnels' traffic is shaped: each connection's bandwidth bucket, and the path
/// MTUs its tunnels are sized for (MSS clamp, ICMP too-big).
#[derive(Clone, Copy)]
pub struct Shaping<'a> {
    pub shapers: &'a HashMap<Arc<str>, Arc<ironsec_dataplane::Bucket>>,
    pub mtus: &'a crate::pathmtu::PathMtus,
    /// The device of each route-based connection whose interface exists: its policies apply
    /// to that device's packets, its SAs deliver there. A route-based connection without one
    /// (not created yet) gets no policies: nothing can arrive for it anyway.
    pub devices: &'a HashMap<Arc<str>, IfaceId>,
}

/// Whether `s` is the tunnel of `k` (as `s.key() == *k`, without making the key).
fn is_spec_of(s: &TunnelSpec, k: &TunnelKey) -> bool {
    s.local == k.local && s.remote == k.remote && s.client == k.client && s.conn == k.conn
}

/// Builds the fast path's tables from the config and the SAs that exist. Tunnels for which
/// `trapped` is true report packets that find no SA, so the control plane negotiates one.
///
/// Called at every SA change, so its cost is linear in the tunnels and SAs, with as few
/// lookups per tunnel as it can: each tunnel's key is looked up in the SA store once.
pub fn build(
    cfg: &Config,
    specs: &[TunnelSpec],
    store: &SaStore,
    trapped: &dyn Fn(&TunnelKey) -> bool,
    choice: &dyn Fn(&crate::config::Connection) -> Option<Choice>,
    shaping: Shaping,
    addrs: &[SocketAddr],
) -> Result<Tables, BuildError> {
    let Shaping {
        shapers,
        mtus,
        devices,
    } = shaping;
    // One clock reading for the whole build (path MTUs read at most once per TTL).
    let now = Instant::now();
    let mut tunnels = Vec::with_capacity(specs.len());
    // Per spec: the CHILD_SAs its tunnel sends with (inbound SPIs), looked up once.
    let mut sending_of: Vec<&[u32]> = Vec::with_capacity(specs.len());
    // And the first of them (its main one), found once.
    let mut main_of: Vec<Option<&IkeChild>> = Vec::with_capacity(specs.len());
    for s in specs {
        let key = s.key();
        let sending: &[u32] = store.sending.get(&key).map_or(&[], |v| v.as_slice());
        let main = sending.first().and_then(|spi| store.children.get(spi));
        sending_of.push(sending);
        main_of.push(main);
        let socket = addrs
            .iter()
            .position(|a| a.ip() == s.local)
            .ok_or(BuildError::NoSocket(s.local))?;
        let (remote, outbound) = if s.ike {
            match main {
                Some(c) => (c.info.remote, Some(c.outbound.clone())),
                None => (SocketAddr::new(s.remote, cfg.gateway.port), None),
            }
        } else {
            let remote = match &cfg.connections[s.conn_index].keying {
                Keying::Static(st) => st
                    .tunnels
                    .iter()
                    .find(|t| t.local == s.local && t.remote.ip() == s.remote)
                    .map(|t| t.remote),
                Keying::Ike(_) => None,
            }
            .unwrap_or(SocketAddr::new(s.remote, cfg.gateway.port));
            (remote, store.statics.get(&key).map(|x| x.outbound.clone()))
        };
        let conn = &cfg.connections[s.conn_index];
        let suite = outbound
            .as_ref()
            .map_or_else(|| conn.costliest_suite(), |o| o.sa.suite());
        let mut t = Tunnel::new(s.conn.clone(), socket, addrs[socket], remote, outbound);
        t.mtu = mtus.tunnel_at(now, conn, cfg.gateway.tun_mtu, s.local, remote, suite);
        t.dscp_out = conn.copy_dscp.outwards();
        t.dscp_in = conn.copy_dscp.inwards();
        tunnels.push(if trapped(&key) { t.with_trap() } else { t });
    }
    // Every CHILD_SA a tunnel sends with beyond its main one gets an entry of its own (same
    // addresses, its own SA), reached by the policies of its selectors.
    let mut extra: HashMap<u32, TunnelId> = HashMap::new();
    for (s, sending) in specs.iter().zip(&sending_of).filter(|(s, _)| s.ike) {
        for spi in sending.iter().skip(1) {
            let Some(c) = store.children.get(spi) else {
                continue;
            };
            let socket = addrs
                .iter()
                .position(|a| a.ip() == s.local)
                .ok_or(BuildError::NoSocket(s.local))?;
            extra.insert(*spi, tunnels.len());
            let mut t = Tunnel::new(
                s.conn.clone(),
                socket,
                addrs[socket],
                c.info.remote,
                Some(c.outbound.clone()),
            );
            let conn = &cfg.connections[s.conn_index];
            let suite = c.outbound.sa.suite();
            t.mtu = mtus.tunnel_at(
                now,
                conn,
                cfg.gateway.tun_mtu,
                s.local,
                c.info.remote,
                suite,
            );
            t.dscp_out = conn.copy_dscp.outwards();
            t.dscp_in = conn.copy_dscp.inwards();
            tunnels.push(t);
        }
    }
    // Each connection's tunnels, in one pass: the tables are rebuilt at every SA change, and
    // a search of all tunnels per connection (and of all connections per SA, below) made a
    // hub bringing up a thousand connections spend most of its time here.
    let mut by_conn: Vec<Vec<TunnelId>> = vec![Vec::new(); cfg.connections.len()];
    for (i, s) in specs.iter().enumerate() {
        if let Some(ids) = by_conn.get_mut(s.conn_index) {
            ids.push(i);
        }
    }
    let mut policies = Vec::new();
    for (c, ids) in cfg.connections.iter().zip(&by_conn) {
        let Some(&first) = ids.first() else { continue };
        let scope = devices.get(c.name.as_str()).copied();
        if c.is_remote_access() {
            // Every client is its own tunnel with its own selectors (its address): all of
            // them carry traffic at once. A client without an SA gets no policy (its
            // address is no one's yet: dropped as matching none, never sent in clear).
            for &id in ids {
                for (n, spi) in sending_of[id].iter().enumerate() {
                    let (entry, child) = if n == 0 {
                        (Some(id), main_of[id])
                    } else {
                        (extra.get(spi).copied(), store.children.get(spi))
                    };
                    if let (Some(entry), Some(child)) = (entry, child) {
                        policies_for(
                            &ts_selectors(&child.info.local_ts),
                            &ts_selectors(&child.info.remote_ts),
                            entry,
                            scope,
                            &mut policies,
                        );
                    }
                }
            }
            continue;
        }
        if c.route_based.is_some() && scope.is_none() {
            continue;
        }
        let id_of = |k: &TunnelKey| ids.iter().copied().find(|i| is_spec_of(&specs[*i], k));
        // The control plane's choice if it made one; else the connection's first tunnel that
        // has an SA; with none, traffic for the site still matches (and is dropped as no_sa)
        // rather than leaking elsewhere.
        let up = match choice(c) {
            Some(Choice::One(k)) => id_of(&k),
            Some(Choice::Spread(members)) => {
                let weighted: Vec<(TunnelId, u32)> = members
                    .iter()
                    .filter_map(|(k, w)| id_of(k).map(|i| (i, *w)))
                    .collect();
                match (weighted.first(), Spread::weighted(&weighted)) {
                    (Some((head, _)), Some(spread)) => {
                        tunnels[*head].spread = Some(spread);
                        Some(*head)
                    }
                    _ => None,
                }
            }
            None => None,
        }
        .or_else(|| {
            ids.iter()
                .find(|id| tunnels[**id].outbound.is_some())
                .copied()
        });
        let sending: Vec<(TunnelId, &IkeChild)> = up
            .map(|id| {
                sending_of[id]
                    .iter()
                    .enumerate()
                    .filter_map(|(n, spi)| {
                        if n == 0 {
                            Some(id).zip(main_of[id])
                        } else {
                            extra.get(spi).copied().zip(store.children.get(spi))
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        match (&c.keying, sending.is_empty()) {
            (Keying::Ike(_), false) => {
                for (entry, child) in sending {
                    policies_for(
                        &ts_selectors(&child.info.local_ts),
                        &ts_selectors(&child.info.remote_ts),
                        entry,
                        scope,
                        &mut policies,
                    );
                }
            }
            _ => policies_for(
                &c.local_selectors,
                &c.remote_selectors,
                up.unwrap_or(first),
                scope,
                &mut policies,
            ),
        }
    }
    if !shapers.is_empty() {
        for t in tunnels.iter_mut() {
            t.shaper = shapers.get(&t.connection).cloned();
        }
    }
    // Each SA delivers to its connection's device as it is now (a reload may have made or
    // removed it); a route-based connection without one delivers nowhere (dropped, counted),
    // never to the shared device. An SA of a connection a reload removed keeps its device.
    let route_based: HashMap<&str, bool> = cfg
        .connections
        .iter()
        .map(|c| (c.name.as_str(), c.route_based.is_some()))
        .collect();
    let point = |e: &InboundEntry, conn: &str| {
        let Some(&route_based) = route_based.get(conn) else {
            return;
        };
        e.device.set(match (devices.get(conn), route_based) {
            (Some(id), _) => Some(*id),
            (None, true) => Some(IfaceId::NOWHERE),
            (None, false) => None,
        });
    };
    let mut inbound: Vec<Arc<InboundEntry>> =
        Vec::with_capacity(store.statics.len() + store.children.len());
    if !store.statics.is_empty() {
        let live: HashSet<TunnelKey> = specs.iter().map(|s| s.key()).collect();
        inbound.extend(
            store
                .statics
                .iter()
                .filter(|(k, _)| live.contains(*k))
                .map(|(k, s)| {
                    point(&s.inbound, &k.conn);
                    s.inbound.clone()
                }),
        );
    }
    // A retiring SA of a tunnel a reload removed still takes its last packets in flight.
    inbound.extend(store.children.values().map(|c| {
        point(&c.inbound, &c.tunnel.conn);
        c.inbound.clone()
    }));
    let followed = store
        .children
        .values()
        .filter(|c| c.nat_peer)
        .map(|c| (c.info.spi_in, c.info.remote));
    Ok(Tables::new(tunnels, policies, inbound)?.following(followed))
}

#[cfg(test)]
mod bench;

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(a: &str, b: &str) -> TrafficSelector {
        TrafficSelector {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            start: a.parse().unwrap(),
            end: b.parse().unwrap(),
        }
    }

    fn show(v: Vec<Prefix>) -> Vec<String> {
        v.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn ranges_become_covering_prefixes() {
        assert_eq!(
            show(ts_prefixes(&[ts("10.2.0.0", "10.2.0.255")])),
            ["10.2.0.0/24"]
        );
        assert_eq!(
            show(ts_prefixes(&[ts("0.0.0.0", "255.255.255.255")])),
            ["0.0.0.0/0"]
        );
        assert_eq!(
            show(ts_prefixes(&[ts("10.0.0.1", "10.0.0.6")])),
            ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]
        );
        assert_eq!(
            show(ts_prefixes(&[ts(
                "::",
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
            )])),
            ["::/0"]
        );
        assert_eq!(
            show(ts_prefixes(&[ts("10.0.0.9", "10.0.0.9")])),
            ["10.0.0.9/32"]
        );
    }

    #[test]
    fn negotiated_ports_reach_the_fast_path() {
        let mut t = ts("10.0.0.1", "10.0.0.2");
        (t.ip_protocol, t.start_port, t.end_port) = (6, 443, 443);
        let v: Vec<String> = ts_selectors(&[t]).iter().map(|s| s.to_string()).collect();
        assert_eq!(v, ["10.0.0.1/32[tcp/443]", "10.0.0.2/32[tcp/443]"]);
        let sel = |s: &str| s.parse::<Selector>().unwrap();
        let mut out = Vec::new();
        policies_for(
            &[sel("10.1.0.0/24[tcp]"), sel("10.1.0.0/24[udp]")],
            &[sel("10.2.0.0/24[tcp/443]"), sel("2001:db8::/64")],
            0,
            None,
            &mut out,
        );
        // tcp x tcp/443 only: udp x tcp/443 selects nothing, and v4 never pairs with v6.
        assert_eq!(out.len(), 1, "{out:?}");
        let p = out[0].ports.expect("narrowed");
        assert_eq!((p.local.proto, p.remote.proto, p.remote.start), (6, 6, 443));
        out.clear();
        policies_for(
            &[sel("10.1.0.0/24")],
            &[sel("10.2.0.0/24")],
            0,
            None,
            &mut out,
        );
        assert_eq!(out[0].ports, None, "address-only stays address-only");
    }
}
