//! The control plane's state: the IKE engine, the SAs it negotiated, and which tunnel sends
//! with which SA. Turns engine events into fast-path tables and operator log lines.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironsec_dataplane::{Tables, TunnelId};
use ironsec_ike::crypto::SystemRng;
use ironsec_ike::{
    ts, CloseReason, Endpoint, EndpointConfig, Event, IkeSaId, Lifetimes, PeerConfig, Transmit,
};

use crate::config::{Config, Keying, StartAction};
use crate::tables::{self, BuildError, IkeChild, SaStore, TunnelSpec};

/// How long a deleted CHILD_SA still accepts inbound packets already on their way.
const RETIRE_GRACE: Duration = Duration::from_secs(2);
/// Wait before initiating again after an IKE SA of a `start` connection went down.
const RESTART_DELAY: Duration = Duration::from_secs(5);

pub struct Plane {
    pub cfg: Config,
    pub specs: Vec<TunnelSpec>,
    pub store: SaStore,
    pub ep: Endpoint,
    workers: usize,
    /// The IKE SA serving each IKE tunnel.
    pub tunnel_ike: HashMap<TunnelId, IkeSaId>,
    restart_at: HashMap<TunnelId, Instant>,
}

fn peer_config(cfg: &Config, index: usize) -> Option<PeerConfig> {
    let c = &cfg.connections[index];
    let Keying::Ike(k) = &c.keying else {
        return None;
    };
    let to_ts = |v: &[ironsec_dataplane::Prefix]| {
        v.iter()
            .map(|p| ts::from_prefix(p.addr(), p.len()))
            .collect()
    };
    let jitter = (k.rekey_time / 10).min(Duration::from_secs(60));
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
        retransmit: Default::default(),
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

impl Plane {
    pub fn new(cfg: Config, workers: usize) -> Result<Plane, BuildError> {
        let specs = tables::tunnel_specs(&cfg);
        let store = SaStore::with_static(&cfg, &specs, workers)?;
        let peers = (0..cfg.connections.len())
            .filter_map(|i| peer_config(&cfg, i))
            .collect();
        let ep_cfg = EndpointConfig {
            ike_port: cfg.gateway.ike_port,
            natt_port: cfg.gateway.port,
            ..Default::default()
        };
        Ok(Plane {
            ep: Endpoint::new(ep_cfg, peers, Box::new(SystemRng::new())),
            cfg,
            specs,
            store,
            workers,
            tunnel_ike: HashMap::new(),
            restart_at: HashMap::new(),
        })
    }

    pub fn tables(&self) -> Result<Tables, BuildError> {
        tables::build(&self.cfg, &self.specs, &self.store)
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

    /// Initiates every tunnel of `start` connections that has no IKE SA.
    pub fn start_tunnels(&mut self, now: Instant) {
        for (id, s) in self.specs.clone().iter().enumerate() {
            let Keying::Ike(k) = &self.cfg.connections[s.conn_index].keying else {
                continue;
            };
            if k.start_action != StartAction::Start || self.tunnel_ike.contains_key(&id) {
                continue;
            }
            if self.restart_at.get(&id).is_some_and(|t| *t > now) {
                continue;
            }
            self.restart_at.remove(&id);
            let port = self.cfg.gateway.ike_port;
            match self.ep.initiate(
                now,
                &s.conn,
                SocketAddr::new(s.local, port),
                SocketAddr::new(s.remote, port),
            ) {
                Ok(ike) => {
                    tracing::info!(connection = %s.conn, local = %s.local, remote = %s.remote, "initiating IKE SA");
                    self.tunnel_ike.insert(id, ike);
                }
                Err(e) => tracing::error!(connection = %s.conn, error = %e, "cannot initiate"),
            }
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let retire = self
            .store
            .children
            .values()
            .filter_map(|c| c.retiring_until);
        self.ep
            .poll_timeout()
            .into_iter()
            .chain(self.restart_at.values().copied())
            .chain(retire)
            .min()
    }

    /// Timers: the engine's, restarts, and retiring SAs. Returns whether tables changed.
    pub fn on_timeout(&mut self, now: Instant) -> bool {
        self.ep.handle_timeout(now);
        if self.restart_at.values().any(|t| *t <= now) {
            self.start_tunnels(now);
        }
        let before = self.store.children.len();
        self.store
            .children
            .retain(|_, c| c.retiring_until.is_none_or(|t| t > now));
        before != self.store.children.len()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.ep.poll_transmit()
    }

    fn tunnel_for(&self, conn: &str, local: SocketAddr, remote: SocketAddr) -> Option<TunnelId> {
        let of_conn = || {
            self.specs
                .iter()
                .enumerate()
                .filter(|(_, s)| &*s.conn == conn)
        };
        of_conn()
            .find(|(_, s)| s.local == local.ip() && s.remote == remote.ip())
            .or_else(|| of_conn().find(|(_, s)| s.remote == remote.ip()))
            .or_else(|| of_conn().next())
            .map(|(i, _)| i)
    }

    fn install(
        &mut self,
        conn: Arc<str>,
        ike: IkeSaId,
        info: ironsec_ike::ChildSaInfo,
        now: Instant,
    ) -> Option<(TunnelId, u32)> {
        let tid = self.tunnel_for(&conn, info.local, info.remote)?;
        let (outbound, inbound) = match SaStore::child_entries(
            &info,
            tid,
            self.cfg.gateway.replay_window,
            self.workers,
        ) {
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
                conn,
                ike,
                tunnel: tid,
                info,
                outbound,
                inbound,
                installed: now,
                retiring_until: None,
            },
        );
        Some((tid, spi))
    }

    /// Applies every pending engine event; returns whether the tables must be rebuilt.
    pub fn drain_events(&mut self, now: Instant) -> bool {
        let mut changed = false;
        while let Some(e) = self.ep.poll_event() {
            changed |= self.on_event(e, now);
        }
        changed
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
                if let Some(tid) = self.tunnel_for(&conn, local, remote) {
                    self.tunnel_ike.insert(tid, ike);
                }
                false
            }
            Event::ChildSaUp { conn, ike, child } => {
                tracing::info!(
                    connection = %conn,
                    spi_in = %format!("0x{:08x}", child.spi_in),
                    spi_out = %format!("0x{:08x}", child.spi_out),
                    algorithms = %child.algorithms,
                    "CHILD_SA up"
                );
                if let Some((tid, spi)) = self.install(conn, ike, child, now) {
                    self.store.active_out.insert(tid, spi);
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
                    "CHILD_SA rekeyed"
                );
                if let Some((tid, spi)) = self.install(conn, ike, new, now) {
                    // Make-before-break: send on the new SA only once the peer surely has it.
                    if initiated || !self.store.active_out.contains_key(&tid) {
                        self.store.active_out.insert(tid, spi);
                    }
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
                let tid = c.tunnel;
                if self.store.active_out.get(&tid) == Some(&spi_in) {
                    let next = self
                        .store
                        .children
                        .values()
                        .filter(|c| c.tunnel == tid && c.retiring_until.is_none())
                        .max_by_key(|c| c.installed)
                        .map(|c| c.info.spi_in);
                    match next {
                        Some(n) => self.store.active_out.insert(tid, n),
                        None => self.store.active_out.remove(&tid),
                    };
                }
                true
            }
            Event::IkeSaDown {
                conn,
                ike,
                remote,
                reason,
            } => {
                let conn_s = conn.as_deref().unwrap_or("-").to_string();
                match &reason {
                    CloseReason::PeerUnreachable
                    | CloseReason::Refused(_)
                    | CloseReason::ProtocolError(_) => {
                        tracing::warn!(connection = %conn_s, %remote, reason = ?reason, "IKE SA down")
                    }
                    _ => {
                        tracing::info!(connection = %conn_s, %remote, reason = ?reason, "IKE SA down")
                    }
                }
                let tid = self
                    .tunnel_ike
                    .iter()
                    .find(|(_, v)| **v == ike)
                    .map(|(k, _)| *k);
                if let Some(tid) = tid {
                    self.tunnel_ike.remove(&tid);
                    let restart = !matches!(
                        reason,
                        CloseReason::Local | CloseReason::Rekeyed | CloseReason::Replaced
                    );
                    if restart {
                        self.restart_at.insert(tid, now + RESTART_DELAY);
                    }
                }
                false
            }
            Event::IkeSaRekeyed {
                conn,
                old,
                new,
                algorithms,
            } => {
                tracing::info!(connection = %conn, %algorithms, "IKE SA rekeyed");
                for v in self.tunnel_ike.values_mut() {
                    if *v == old {
                        *v = new;
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
                false
            }
        }
    }
}
