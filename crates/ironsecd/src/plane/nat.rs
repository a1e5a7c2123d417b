//! NAT traversal beyond the engine's detection: keepalives that hold our NAT's mapping open
//! while a tunnel is idle (RFC 3948 2.3), and following a peer behind a NAT to the address
//! its authenticated packets now come from (RFC 7296 2.23 for IKE, RFC 3948 for ESP).
//!
//! Keepalives cost nothing per tick: a tunnel whose IKE SA found us behind a NAT has one
//! deadline in [`Plane`]'s `keepalives` set; when it is due, that tunnel alone is looked at:
//! if it sent ESP since the last look (its outbound counter moved) nothing is sent, else one
//! 0xFF byte goes from our NAT-T socket to the peer's NAT-T address. Either way the next
//! look is one interval later, so an idle tunnel sends a keepalive every interval and a busy
//! one none; a tunnel that falls idle sends its first one within two intervals.

use std::net::SocketAddr;
use std::time::Instant;

use ironsec_ike::{IkeSaId, NatDetected, Transmit};

use super::Plane;
use crate::config::Keying;
use crate::tables::TunnelKey;

/// RFC 3948 2.3: a NAT keepalive is one byte, 0xFF.
pub const NAT_KEEPALIVE: [u8; 1] = [0xFF];

/// Where a tunnel's IKE SA talks, and what NAT detection found: keepalives go from `local`
/// to `remote`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatPath {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub nat: NatDetected,
}

impl Plane {
    /// The keepalive interval of `key`'s connection; None = off (or not an IKE connection).
    fn keepalive_interval(&self, key: &TunnelKey) -> Option<std::time::Duration> {
        // By the name index, not a search of the config: this runs for every keepalive.
        let conn = self.cfg.connections.get(*self.by_name.get(&key.conn)?)?;
        match &conn.keying {
            Keying::Ike(k) => k.nat_keepalive,
            Keying::Static(_) => None,
        }
    }

    /// An IKE SA of tunnel `key` came up between these addresses with this NAT finding:
    /// remember where it talks, and start keepalives if we are behind a NAT.
    pub(super) fn nat_up(
        &mut self,
        key: &TunnelKey,
        local: SocketAddr,
        remote: SocketAddr,
        nat: NatDetected,
        now: Instant,
    ) {
        // Keepalives go from the NAT-T socket whatever port IKE_SA_INIT used.
        let local = SocketAddr::new(local.ip(), self.cfg.gateway.port);
        let sent = self.tunnel_traffic(key).0.packets;
        let Some(st) = self.tunnels.get_mut(key) else {
            return;
        };
        st.nat = Some(NatPath { local, remote, nat });
        st.keepalive_mark = sent;
        if nat.local || nat.remote {
            tracing::info!(
                connection = %key.conn,
                we_are_behind_nat = nat.local,
                peer_is_behind_nat = nat.remote,
                %remote,
                "NAT detected"
            );
        }
        match self.keepalive_interval(key).filter(|_| nat.local) {
            Some(every) => self.keepalives.set(key.clone(), now + every),
            None => self.keepalives.clear(key),
        }
    }

    /// Keepalives due now: one for each due tunnel that sent nothing since the last look.
    pub(super) fn keepalives_due(&mut self, now: Instant) {
        if !self.keepalives.any_due(now) {
            return;
        }
        for key in self.keepalives.take_due(now) {
            let Some(every) = self.keepalive_interval(&key) else {
                continue;
            };
            let sent = self.tunnel_traffic(&key).0.packets;
            let Some(st) = self.tunnels.get_mut(&key) else {
                continue;
            };
            let Some(path) = st.nat.filter(|p| p.nat.local && st.ike.is_some()) else {
                continue;
            };
            if sent == st.keepalive_mark {
                self.outbox.push_back(Transmit {
                    local: path.local,
                    remote: path.remote,
                    payload: NAT_KEEPALIVE.to_vec(),
                });
                self.stats_of(&key.conn).nat_keepalives += 1;
            } else if let Some(st) = self.tunnels.get_mut(&key) {
                st.keepalive_mark = sent;
            }
            self.keepalives.set(key, now + every);
        }
    }

    /// The engine followed IKE SA `ike`'s peer to `remote`: its CHILD_SAs now send there too.
    /// Returns whether the tables must be rebuilt.
    pub(super) fn peer_address_changed(
        &mut self,
        conn: Option<&str>,
        ike: IkeSaId,
        old: SocketAddr,
        remote: SocketAddr,
    ) -> bool {
        tracing::info!(
            connection = %conn.unwrap_or("-"),
            %old,
            %remote,
            "peer behind a NAT moved: following it"
        );
        if let Some(c) = conn {
            self.stats_of(c).peer_moves += 1;
        }
        if let Some(key) = self.tunnel_of_ike(ike) {
            if let Some(p) = self.tunnels.get_mut(&key).and_then(|s| s.nat.as_mut()) {
                p.remote = remote;
            }
        }
        self.store.move_peer(ike, remote)
    }

    /// The fast path delivered an authenticated, replay-checked packet of inbound SA `spi`
    /// from `from`, not from the address its tunnel sends to (it only reports SAs of peers
    /// behind a NAT). The IKE SA follows, and its [`ironsec_ike::Event::PeerAddressChanged`]
    /// moves the CHILD_SAs on the next [`Plane::drain_events`].
    pub fn on_peer_moved(&mut self, now: Instant, spi: u32, from: SocketAddr) {
        let Some(ike) = self
            .store
            .child(spi)
            .filter(|c| c.retiring_until.is_none())
            .map(|c| c.ike)
        else {
            return;
        };
        // Only an SA the engine no longer has fails here, and then there is nothing to move.
        let _ = self.ep.peer_moved(now, ike, from);
    }
}
