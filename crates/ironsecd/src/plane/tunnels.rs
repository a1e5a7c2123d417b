//! Per-tunnel state beyond the SAs, and starting tunnels: at start (`start_action`), after
//! a loss (`close_action = "restart"`, timed by the plane's restart deadlines), on traffic
//! for a trapped tunnel, and on the operator's `initiate`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironsec_dataplane::{SaTotals, TunnelId, Watch};
use ironsec_ike::IkeSaId;

use super::Plane;
use crate::config::{Connection, Keying, StartAction};
use crate::tables::{TunnelKey, TunnelSpec};

/// Wait before initiating again after an IKE SA of a `restart` connection went down.
pub(super) const RESTART_DELAY: Duration = Duration::from_secs(5);

/// What the control plane knows about one tunnel beyond its SAs.
#[derive(Default, Debug, Clone)]
pub struct TunnelState {
    /// The IKE SA serving the tunnel (being set up or established).
    pub ike: Option<IkeSaId>,
    /// Traffic without an SA makes us negotiate (start or close action `trap`).
    pub trapped: bool,
    /// The operator terminated it: no automatic restart until `ironsecctl initiate`.
    pub held: bool,
    /// When the current IKE SA came up; None while connecting or down.
    pub established_at: Option<Instant>,
    // (traffic selection uses it for the preempt hold time)
    /// Why the last IKE SA went down or the last negotiation failed, for status.
    pub last_error: Option<String>,
    /// The CHILD_SA of the current IKE SA was refused: what, and when the tunnel tries again.
    pub child_refused: Option<super::child_retry::ChildRefusal>,
    /// Traffic of SAs that are gone, so totals in metrics never go backwards.
    pub retired_out: Traffic,
    pub retired_in: Traffic,
    /// Liveness as the fast path reports it: when packets last went each way.
    pub seen: Liveness,
    /// Shared by the tunnel's SAs, armed to hear of their next packet (tunnels of
    /// connections with a tunnel to fail over to; see `probing`).
    pub watch: Option<Arc<Watch>>,
    /// When traffic last moved off this tunnel because it failed: preempt waits for an IKE SA
    /// established after that, proof that the path works again.
    pub failed_at: Option<Instant>,
    /// Where the IKE SA talks and what NAT detection found (see `nat`); None before the
    /// first IKE SA came up.
    pub nat: Option<super::nat::NatPath>,
    /// What NAT keepalives know of this tunnel's sending (see `nat`); None until an IKE SA
    /// found us behind a NAT.
    pub keepalive: Option<super::nat::SendLog>,
    /// A peer given by name: the address the last initiation resolved it to, when that is
    /// not the one resolved at load (the IKE SA that comes up is this tunnel's).
    pub dialed: Option<std::net::IpAddr>,
}

/// When a tunnel last received and sent, as far as the plane followed it.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    pub rx_at: Option<Instant>,
    pub tx_at: Option<Instant>,
    /// When the tunnel started sending after its last receive: silence counts from the later
    /// of this and `rx_at`, so a standby that just took over is not suspect for the time it
    /// had nothing to send.
    pub sending_since: Option<Instant>,
}

#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traffic {
    pub packets: u64,
    pub bytes: u64,
}

impl Traffic {
    pub(super) fn add(&mut self, t: &SaTotals) {
        self.packets += t.packets;
        self.bytes += t.bytes;
    }
}

/// A tunnel's state when its connection is (re)configured.
pub(super) fn fresh_state(c: &Connection) -> TunnelState {
    TunnelState {
        trapped: matches!(&c.keying, Keying::Ike(k) if k.start_action == StartAction::Trap),
        ..Default::default()
    }
}

impl Plane {
    /// A tunnel is up when it has an SA to send with.
    pub(super) fn is_up(&self, key: &TunnelKey) -> bool {
        self.store.is_sending(key)
    }

    /// Totals of every SA a tunnel has had (live, retiring and gone), for metrics.
    pub fn tunnel_traffic(&self, key: &TunnelKey) -> (Traffic, Traffic) {
        let st = self.tunnels.get(key);
        let mut out = st.map(|s| s.retired_out).unwrap_or_default();
        let mut inb = st.map(|s| s.retired_in).unwrap_or_default();
        if let Some(s) = self.store.statics_of(key) {
            out.add(&s.outbound.counters.totals());
            inb.add(&s.inbound.counters.totals());
        }
        for c in self.store.children_of(key) {
            out.add(&c.outbound.counters.totals());
            inb.add(&c.inbound.counters.totals());
        }
        (out, inb)
    }

    /// The tunnel of `conn` an SA between these addresses belongs to: the exact pair, else
    /// the remote address alone (NAT), else the connection's first tunnel. Looks only at the
    /// connection's own tunnels (its span of `specs`).
    pub(super) fn tunnel_for(
        &self,
        conn: &str,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<TunnelKey> {
        let &ci = self.by_name.get(conn)?;
        // Clients' tunnels are found by their IKE SA (`Clients::key_of`), never by address.
        let of_conn = || self.specs_of(ci).iter().filter(|s| s.client.is_none());
        let dialed = |s: &&TunnelSpec| {
            self.tunnels
                .get(&s.key())
                .is_some_and(|st| st.dialed == Some(remote.ip()))
        };
        of_conn()
            .find(|s| s.local == local.ip() && s.remote == remote.ip())
            .or_else(|| of_conn().find(|s| s.remote == remote.ip()))
            .or_else(|| of_conn().find(dialed))
            .or_else(|| of_conn().next())
            .map(|s| s.key())
    }

    /// The tunnel IKE SA `ike` serves (O(1): the IKE SA index, checked against the tunnel's
    /// state so an entry left behind by a state cleared elsewhere is never believed).
    pub(super) fn tunnel_of_ike(&self, ike: IkeSaId) -> Option<TunnelKey> {
        if let Some(k) = self.clients.key_of(ike) {
            return Some(k.clone());
        }
        let k = self.ike_index.get(&ike)?;
        self.tunnels
            .get(k)
            .is_some_and(|s| s.ike == Some(ike))
            .then(|| k.clone())
    }

    /// Sets (or clears) the IKE SA of tunnel `key`'s state and keeps the IKE SA index with
    /// it. One IKE SA serves one tunnel: another tunnel that had it forgets it.
    pub(super) fn set_ike(&mut self, key: &TunnelKey, ike: Option<IkeSaId>) {
        let st = self.tunnels.entry(key.clone()).or_default();
        let old = std::mem::replace(&mut st.ike, ike);
        if let Some(o) = old.filter(|o| Some(*o) != ike) {
            if self.ike_index.get(&o) == Some(key) {
                self.ike_index.remove(&o);
            }
        }
        if let Some(n) = ike {
            if let Some(prev) = self.ike_index.insert(n, key.clone()) {
                if prev != *key {
                    if let Some(p) = self.tunnels.get_mut(&prev).filter(|p| p.ike == Some(n)) {
                        p.ike = None;
                    }
                }
            }
        }
    }

    /// Test check: the IKE SA index agrees with a scan of the tunnel states (every tunnel
    /// with an IKE SA is found by it, and one IKE SA serves one tunnel).
    #[cfg(test)]
    pub(super) fn check_ike_index(&self) {
        let mut seen = std::collections::HashMap::new();
        for (k, st) in &self.tunnels {
            let Some(ike) = st.ike else { continue };
            if k.client.is_some() {
                continue;
            }
            assert_eq!(
                self.tunnel_of_ike(ike).as_ref(),
                Some(k),
                "IKE SA index: {ike:?} is not found as {k:?}'s"
            );
            if let Some(other) = seen.insert(ike, k.clone()) {
                panic!("IKE SA {ike:?} serves both {other:?} and {k:?}");
            }
        }
    }

    /// Starts an IKE SA for one tunnel.
    pub(super) fn initiate_tunnel(&mut self, spec: &TunnelSpec, now: Instant, why: &str) {
        // Every way of starting a tunnel comes here: a dormant one (its shared address is
        // on the other gateway) never speaks.
        if self.is_dormant(spec.local) {
            tracing::debug!(connection = %spec.conn, local = %spec.local, reason = %why, "not initiating: the shared address is not on this host");
            return;
        }
        let port = self.cfg.gateway.ike_port;
        let key = spec.key();
        let remote = self.resolve_peer(spec);
        match self.ep.initiate(
            now,
            &spec.conn,
            SocketAddr::new(spec.local, port),
            SocketAddr::new(remote, port),
        ) {
            Ok(ike) => {
                tracing::info!(connection = %spec.conn, local = %spec.local, %remote, reason = %why, "initiating IKE SA");
                self.restarts.clear(&key);
                self.set_ike(&key, Some(ike));
                let st = self.tunnels.entry(key).or_default();
                st.dialed = (remote != spec.remote).then_some(remote);
            }
            Err(e) => tracing::error!(connection = %spec.conn, error = %e, "cannot initiate"),
        }
    }

    /// Where to initiate to: a peer given by name is resolved again (it may have moved since
    /// the config was loaded); if that fails, the last address it had.
    fn resolve_peer(&self, spec: &TunnelSpec) -> std::net::IpAddr {
        let Some(name) = &spec.remote_name else {
            return spec.remote;
        };
        match crate::config::peer_name::resolve(name, spec.local) {
            Ok(a) => {
                if a != spec.remote {
                    tracing::info!(connection = %spec.conn, peer = %name, was = %spec.remote, now = %a, "peer's name resolves to a new address");
                }
                a
            }
            Err(e) => {
                let last = self
                    .tunnels
                    .get(&spec.key())
                    .and_then(|s| s.dialed)
                    .unwrap_or(spec.remote);
                tracing::warn!(connection = %spec.conn, error = %e, remote = %last, "cannot resolve the peer again: trying its last address");
                last
            }
        }
    }

    /// Initiates every tunnel of `start` connections that has no IKE SA, and every tunnel
    /// whose restart time has come: a walk over every tunnel, at start, rejoin, reload and
    /// when a shared address arrives. Every connection is decided again at the next change.
    /// Restarts that come due later go through [`Plane::restart_due`] alone.
    pub fn start_tunnels(&mut self, now: Instant) {
        self.dirty_all = true;
        // Drained: nothing starts until a rejoin (which calls this again).
        if self.drain.holding() {
            return;
        }
        for s in self.specs.clone() {
            self.start_one(&s, now, true);
        }
    }

    /// Initiates the tunnels whose restart time has come (close action `restart`): only
    /// those, however many tunnels there are.
    pub(super) fn restart_due(&mut self, now: Instant) {
        if self.drain.holding() {
            return;
        }
        for key in self.restarts.take_due(now) {
            let Some(&ci) = self.by_name.get(&key.conn) else {
                continue;
            };
            let Some(s) = self.specs_of(ci).iter().find(|s| s.key() == key).cloned() else {
                continue;
            };
            // Still due for `start_one` (it was taken off the deadlines above).
            self.restarts.set(key.clone(), now);
            self.start_one(&s, now, false);
            // Not started (it has an IKE SA already, or the operator holds it): nothing to
            // restart. Started but the engine refused: try again later, not at once.
            if self.restarts.get(&key).is_some_and(|t| t <= now) {
                match self.tunnels.get(&key) {
                    Some(st) if st.ike.is_none() && !st.held => {
                        self.restarts.set(key, now + RESTART_DELAY)
                    }
                    _ => self.restarts.clear(&key),
                }
            }
        }
    }

    /// Initiates tunnel `s` if it is due: its restart time has come, or (`at_start`) its
    /// connection starts at once and it has no IKE SA.
    fn start_one(&mut self, s: &TunnelSpec, now: Instant, at_start: bool) {
        if !s.ike || s.client.is_some() {
            return;
        }
        let Keying::Ike(k) = &self.cfg.connections[s.conn_index].keying else {
            return;
        };
        let start = at_start && k.start_action == StartAction::Start;
        let key = s.key();
        if self.is_dormant(s.local) {
            // Its arrival starts it (`set_address_present`); a due restart would only
            // stay due and spin the timers.
            self.restarts.clear(&key);
            return;
        }
        let restart_at = self.restarts.get(&key);
        let st = self.tunnels.entry(key).or_default();
        if st.ike.is_some() || st.held {
            return;
        }
        let why = match restart_at {
            Some(t) if t <= now => "restart",
            Some(_) => return,
            None if start => "start_action start",
            None => return,
        };
        self.initiate_tunnel(s, now, why);
    }

    /// The fast path saw traffic for trapped tunnel `id` with no SA.
    pub fn on_acquire(&mut self, id: TunnelId, now: Instant) {
        let Some(s) = self.specs.get(id).cloned() else {
            return;
        };
        if self.is_dormant(s.local) {
            // The fast path's report raced the tables that took the trap away: the packet
            // was dropped (`no_sa`); counted here too, so status shows the race.
            self.shared.ignored_acquires += 1;
            return;
        }
        let st = self.tunnels.entry(s.key()).or_default();
        // A trap outlives `terminate` (as in strongSwan): only removing it from the config
        // stops traffic from bringing the tunnel up. A drained gateway keeps its traps (the
        // traffic is dropped, fail closed) but negotiates nothing.
        if !st.trapped || st.ike.is_some() || self.drain.holding() {
            return;
        }
        self.initiate_tunnel(&s, now, "traffic for a trapped tunnel");
    }
}
