//! The engine's events turned into SA bookkeeping: CHILD_SAs installed, rekeyed (make before
//! break), retired after a grace period, and what a lost IKE SA does to its tunnel (its
//! connection's close action).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironsec_ike::{CloseReason, Event, IkeSaId};

use super::tunnels::RESTART_DELAY;
use super::Plane;
use crate::config::{CloseAction, Keying};
use crate::loglimit::LogKind;
use crate::tables::{self, IkeChild, SaStore, TunnelKey};

/// How long a deleted CHILD_SA still accepts inbound packets already on their way.
pub(super) const RETIRE_GRACE: Duration = Duration::from_secs(2);

impl Plane {
    fn install(
        &mut self,
        conn: Arc<str>,
        ike: IkeSaId,
        info: ironsec_ike::ChildSaInfo,
        now: Instant,
    ) -> Option<(TunnelKey, u32)> {
        let key = match self.clients.key_of(ike) {
            Some(k) => k.clone(),
            // A remote-access connection's SAs belong to their client or to nothing.
            None if self.connection(&conn).is_some_and(|c| c.is_remote_access()) => {
                tracing::warn!(connection = %conn, "CHILD_SA of a client without an address: not installed");
                return None;
            }
            None => self.tunnel_for(&conn, info.local, info.remote)?,
        };
        self.mark_dirty(&key.conn);
        let watch = self.watch_for(&key, now);
        let (outbound, inbound) = match SaStore::child_entries(
            &info,
            self.cfg.gateway.replay_window,
            self.workers,
            watch,
        ) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(connection = %conn, error = %e, "cannot install CHILD_SA");
                return None;
            }
        };
        let spi = info.spi_in;
        let nat_peer = self
            .tunnels
            .get(&key)
            .and_then(|s| s.nat)
            .is_some_and(|p| p.nat.remote);
        self.store.insert_child(IkeChild {
            ike,
            tunnel: key.clone(),
            info,
            outbound,
            inbound,
            installed: now,
            retiring_until: None,
            nat_peer,
        });
        self.watch_volume(spi, now);
        Some((key, spi))
    }

    /// Retiring CHILD_SAs whose grace period is over leave the tables; their traffic stays
    /// in the tunnel's totals.
    pub(super) fn retire_expired(&mut self, now: Instant) {
        let expired = self.store.expire(now);
        for c in &expired {
            self.unwatch_volume(c.info.spi_in);
            if let Some(st) = self.tunnels.get_mut(&c.tunnel) {
                st.retired_out.add(&c.outbound.counters.totals());
                st.retired_in.add(&c.inbound.counters.totals());
            }
        }
        self.tables_stale |= !expired.is_empty();
    }

    /// Applies one engine event; returns whether the tables must be rebuilt.
    pub(super) fn on_event(&mut self, e: Event, now: Instant) -> bool {
        match e {
            Event::IkeSaUp {
                conn,
                ike,
                local,
                remote,
                remote_id,
                algorithms,
                initiator,
                nat,
            } => {
                tracing::info!(connection = %conn, %local, %remote, %remote_id, %algorithms, initiator, "IKE SA up");
                self.stats_of(&conn).ike_up += 1;
                if self.connection(&conn).is_some_and(|c| c.is_remote_access()) {
                    return self.client_up(&conn, ike, local, remote, &remote_id, nat, now);
                }
                if let Some(key) = self.tunnel_for(&conn, local, remote) {
                    self.restarts.clear(&key);
                    self.schedule_preempt(&key, now);
                    self.set_ike(&key, Some(ike));
                    let st = self.tunnels.entry(key.clone()).or_default();
                    st.held = false;
                    st.last_error = None;
                    st.established_at = Some(now);
                    self.nat_up(&key, local, remote, nat, now);
                }
                false
            }
            Event::PeerAddressChanged {
                conn,
                ike,
                old,
                remote,
            } => self.peer_address_changed(conn.as_deref(), ike, old, remote),
            Event::ChildSaUp { conn, ike, child } => {
                tracing::info!(
                    connection = %conn,
                    spi_in = %crate::status::spi_string(child.spi_in),
                    spi_out = %crate::status::spi_string(child.spi_out),
                    algorithms = %child.algorithms,
                    local_ts = %ts_list(&child.local_ts),
                    remote_ts = %ts_list(&child.remote_ts),
                    "CHILD_SA up"
                );
                if let Some((key, spi)) = self.install(conn, ike, child, now) {
                    self.store.start_sending(&key, spi);
                    self.child_accepted(&key);
                }
                true
            }
            Event::ChildSaRefused {
                conn,
                ike,
                notify,
                detail,
                rekey_of: _,
                retry_at,
            } => {
                // Counted with the Failure event that came just before.
                self.on_child_refused(&conn, ike, (notify, detail), retry_at, now);
                false
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
                    old_spi_in = %crate::status::spi_string(old_spi_in),
                    spi_in = %crate::status::spi_string(new.spi_in),
                    initiated,
                    "CHILD_SA rekeyed"
                );
                self.stats_of(&conn).child_rekeys += 1;
                if let Some((key, spi)) = self.install(conn, ike, new, now) {
                    // Make-before-break: send on the new SA only once the peer surely has it.
                    self.store.rekeyed(&key, old_spi_in, spi, initiated);
                    self.child_accepted(&key);
                }
                true
            }
            Event::ChildSaDown {
                conn,
                ike,
                spi_in,
                reason,
                ..
            } => {
                tracing::info!(connection = %conn, spi_in = %crate::status::spi_string(spi_in), reason = %reason, "CHILD_SA down");
                if reason == CloseReason::Expired {
                    self.stats_of(&conn).child_rekey_failures += 1;
                }
                self.unwatch_volume(spi_in);
                // An abandoned SA's address is gone: nothing of it can come in late.
                let grace = if reason == CloseReason::Abandoned {
                    Duration::ZERO
                } else {
                    RETIRE_GRACE
                };
                let Some(key) = self.store.retire(spi_in, now + grace) else {
                    return false;
                };
                self.store.stop_sending(&key, spi_in);
                if reason == CloseReason::Expired {
                    self.on_child_expired(&key, ike, now);
                }
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
                self.clients.rekeyed(old, new);
                if let Some(key) = self.tunnel_of_ike(old).filter(|k| k.client.is_none()) {
                    self.set_ike(&key, Some(new));
                }
                self.ike_index.remove(&old);
                self.store.move_children(old, new);
                false
            }
            Event::Failure {
                conn,
                remote,
                remote_id,
                notify,
                detail,
                legacy_refused,
            } => {
                // Anyone can cause this line (an IKE_SA_INIT from any address): limited per
                // source. The identity and detail are already escaped (`PeerText`).
                if self
                    .log_limit
                    .admit(remote.ip(), LogKind::NegotiationFailed, now)
                {
                    tracing::warn!(
                        connection = %conn.as_deref().unwrap_or("-"),
                        %remote,
                        remote_id = %remote_id.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
                        notify = %notify,
                        "negotiation failed: {detail}"
                    );
                    // Our own keywords (not peer text): what the operator can opt in to.
                    if !legacy_refused.is_empty() {
                        let kws: Vec<&str> = legacy_refused.iter().map(|l| l.keyword).collect();
                        tracing::warn!(
                            connection = %conn.as_deref().unwrap_or("-"),
                            %remote,
                            legacy = %kws.join(","),
                            "the peer offered legacy {}, refused: accepting it needs \
                             allow_legacy_crypto = true and the group in ike_proposals",
                            kws.join(", ")
                        );
                    }
                }
                if let Some(c) = conn.as_deref() {
                    self.stats_of(c).failures += 1;
                    let msg = format!("{notify}: {detail}");
                    // The connection's own tunnels (its span), and its clients' when it has
                    // clients: never every tunnel.
                    let mut keys: Vec<TunnelKey> = match self.by_name.get(c) {
                        Some(&ci) => self
                            .specs_of(ci)
                            .iter()
                            .filter(|s| s.remote == remote.ip())
                            .map(|s| s.key())
                            .collect(),
                        None => Vec::new(),
                    };
                    if self.connection(c).is_some_and(|c| c.is_remote_access()) {
                        keys.extend(
                            self.clients
                                .iter()
                                .map(|(k, _)| k)
                                .filter(|k| *k.conn == *c && k.remote == remote.ip())
                                .cloned(),
                        );
                    }
                    for k in keys {
                        if let Some(st) = self.tunnels.get_mut(&k) {
                            st.last_error = Some(msg.clone());
                        }
                    }
                }
                false
            }
            // The lease comes just before its IKE SA's IkeSaUp, which makes the client.
            Event::VirtualIp {
                conn,
                ike,
                addresses,
                to_peer,
                eap_identity,
                ..
            } => {
                let text: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
                tracing::info!(
                    connection = %conn,
                    address = %text.join(", "),
                    to_peer,
                    "virtual IP"
                );
                if to_peer {
                    self.clients.leased(ike, addresses, eap_identity);
                }
                false
            }
            Event::EapRadius {
                conn,
                ike,
                local,
                remote,
                identity,
                eap,
                ..
            } => {
                self.on_eap_radius(now, &conn, ike, local, remote, identity, &eap.0);
                false
            }
            Event::InvalidSpiHint { remote } => {
                if self
                    .log_limit
                    .admit(remote.ip(), LogKind::InvalidSpiHint, now)
                {
                    tracing::info!(
                        %remote,
                        "peer reports INVALID_SPI (it may have restarted): checking it is alive"
                    );
                }
                false
            }
            Event::InvalidSpiSent { remote, spi } => {
                if self
                    .log_limit
                    .admit(remote.ip(), LogKind::InvalidSpiSent, now)
                {
                    tracing::info!(
                        %remote,
                        spi = %crate::status::spi_string(spi),
                        "ESP for an SA we do not have: told the peer (INVALID_SPI)"
                    );
                }
                false
            }
        }
    }

    /// An IKE SA went down: its tunnel forgets it and, when the peer is at fault and the
    /// operator did not hold the tunnel, follows its connection's close action (restart
    /// after [`RESTART_DELAY`], or trap). Returns whether the tables must change.
    pub(super) fn on_ike_down(
        &mut self,
        conn: Option<Arc<str>>,
        ike: IkeSaId,
        remote: SocketAddr,
        reason: CloseReason,
        now: Instant,
    ) -> bool {
        let conn_s = conn.as_deref().unwrap_or("-").to_string();
        self.radius.forget(ike);
        if let Some((key, client)) = self.clients.gone(ike) {
            tracing::info!(
                connection = %conn_s,
                %remote,
                identity = %client.identity,
                address = %super::clients::Clients::vips_text(&client),
                reason = %reason,
                "client disconnected"
            );
            self.forget_tunnel(&key);
            self.respec();
            return true;
        }
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
                tracing::warn!(connection = %conn_s, %remote, reason = %reason, "IKE SA down")
            }
            _ => tracing::info!(connection = %conn_s, %remote, reason = %reason, "IKE SA down"),
        }
        self.ike_index.remove(&ike);
        let Some(key) = key else {
            return false;
        };
        self.mark_dirty(&key.conn);
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
        // (The index entry went above.)
        st.ike = None;
        st.established_at = None;
        let was_trapped = st.trapped;
        let mut restart = false;
        if peer_fault {
            st.last_error.get_or_insert_with(|| format!("{reason:?}"));
            if !st.held {
                match action {
                    CloseAction::Restart => restart = true,
                    CloseAction::Trap => st.trapped = true,
                    CloseAction::None => {}
                }
            }
        }
        // The trap flag lives in the tables.
        let changed = st.trapped != was_trapped;
        self.restart_liveness(&key, now);
        self.reselect.clear(&key);
        if restart {
            self.restarts.set(key, now + RESTART_DELAY);
        }
        changed
    }
}

impl Plane {
    /// IKE SA `ike` of remote-access connection `conn` is up: with the address the engine
    /// leased it, the client gets a tunnel of its own. Returns whether the tables change.
    #[allow(clippy::too_many_arguments)]
    fn client_up(
        &mut self,
        conn: &Arc<str>,
        ike: IkeSaId,
        local: SocketAddr,
        remote: SocketAddr,
        remote_id: &ironsec_ike::Identity,
        nat: ironsec_ike::NatDetected,
        now: Instant,
    ) -> bool {
        let Some(key) =
            self.clients
                .connected(conn, ike, local, remote, remote_id.to_string(), now)
        else {
            // The engine told the client why (INTERNAL_ADDRESS_FAILURE) and logged it.
            return false;
        };
        let (identity, addresses) = self
            .clients
            .get(&key)
            .map(|c| (c.identity.clone(), super::clients::Clients::vips_text(c)))
            .unwrap_or_default();
        tracing::info!(
            connection = %conn,
            %remote,
            identity = %identity,
            ike_identity = %remote_id,
            address = %addresses,
            "client connected"
        );
        let st = self.tunnels.entry(key.clone()).or_default();
        st.ike = Some(ike);
        st.established_at = Some(now);
        self.nat_up(&key, local, remote, nat, now);
        self.respec();
        true
    }

    /// A client's tunnel is gone: its state and timers with it (its SAs retire on their own).
    fn forget_tunnel(&mut self, key: &TunnelKey) {
        if let Some(st) = self.tunnels.remove(key) {
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
}

fn ts_list(v: &[ironsec_ike::wire::TrafficSelector]) -> String {
    tables::ts_selectors(v)
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",")
}
