//! The plane's part of a planned drain (`crate::drain` decides when): closing every IKE
//! connection as `terminate` does and keeping the gateway closed, then letting it up again.
//!
//! While drained the plane initiates nothing (start, restarts, traps) and drops the peers'
//! IKE_SA_INIT requests, counted: a peer whose `close_action` restarts after our DELETE must
//! not bring a tunnel back to a gateway that is about to stop. The TUN devices, routes, traps
//! and guards stay, so traffic that still arrives is dropped, never sent in clear.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Instant;

use ironsec_ike::wire::{ExchangeType, Header, NON_ESP_MARKER};
use ironsec_ike::IkeSaId;

use super::Plane;
use crate::config::{Keying, StartAction};
use crate::tables::TunnelKey;

/// Whether the gateway is drained, and what the drain held.
#[derive(Debug, Default)]
pub struct Hold {
    /// Some while drained: the tunnels the drain held (those an operator's `terminate` held
    /// before stay held after the rejoin).
    held: Option<HashSet<TunnelKey>>,
    /// Peers' IKE_SA_INIT requests dropped while drained, since start.
    refused: u64,
}

impl Hold {
    pub fn holding(&self) -> bool {
        self.held.is_some()
    }
}

/// Whether `data` (UDP payload on `local`; the NAT-T port's carries the non-ESP marker) is
/// the first request of a new IKE SA.
fn is_new_ike_sa(local: SocketAddr, natt_port: u16, data: &[u8]) -> bool {
    let bytes = if local.port() == natt_port {
        match data.strip_prefix(&NON_ESP_MARKER[..]) {
            Some(b) => b,
            None => return false,
        }
    } else {
        data
    };
    Header::decode(bytes)
        .is_ok_and(|h| h.exchange == ExchangeType::IkeSaInit && !h.flags.response && h.spi_r == 0)
}

impl Plane {
    /// Closes every IKE connection as `terminate` does (DELETE to the peer, tunnels held
    /// down; `hold_and_delete`, done for all at once) and keeps the gateway closed until
    /// [`Plane::drain_release`]. Static connections
    /// are left alone: their SAs are their config. Answers how many IKE SAs were deleted.
    pub fn drain_close(&mut self, now: Instant) -> usize {
        self.saw(now);
        // One pass over the tunnels and one over the IKE SAs, whatever the number of
        // connections (`terminate` per connection would scan both once each: quadratic for a
        // hub, under the lock the event loop needs).
        let names: HashSet<&str> = self
            .cfg
            .connections
            .iter()
            .filter(|c| matches!(c.keying, Keying::Ike(_)))
            .map(|c| c.name.as_str())
            .collect();
        let mut held = self.drain.held.take().unwrap_or_default();
        for (k, st) in self.tunnels.iter_mut() {
            if !names.contains(&*k.conn) {
                continue;
            }
            if !st.held {
                held.insert(k.clone());
            }
            st.held = true;
            st.ike = None;
            self.restarts.clear(k);
            self.child_retries.clear(k);
        }
        let ids: Vec<IkeSaId> = self
            .ep
            .ike_sas()
            .into_iter()
            .filter(|s| s.conn.as_deref().is_some_and(|c| names.contains(c)))
            .map(|s| s.id)
            .collect();
        for id in &ids {
            if let Err(e) = self.ep.terminate(now, *id) {
                tracing::debug!(error = %e, "drain: terminate");
            }
        }
        let connections = names.len();
        self.drain.held = Some(held);
        tracing::info!(
            connections,
            ike_sas = ids.len(),
            "drain: IKE SAs deleted; connections held down until a rejoin (TUN devices, routes and guards stay)"
        );
        ids.len()
    }

    /// Ends the drain's hold: the tunnels it held may come up again, and the `start` ones
    /// are initiated now.
    pub fn drain_release(&mut self, now: Instant) {
        self.saw(now);
        if let Some(held) = self.drain.held.take() {
            for k in held {
                if let Some(st) = self.tunnels.get_mut(&k) {
                    st.held = false;
                }
            }
            tracing::info!("drain: connections released");
        }
        self.start_tunnels(now);
    }

    /// Whether the plane is drained (closed by [`Plane::drain_close`]).
    pub fn drain_holding(&self) -> bool {
        self.drain.holding()
    }

    /// Peers' IKE_SA_INIT requests dropped while drained, since start.
    pub fn drain_refused(&self) -> u64 {
        self.drain.refused
    }

    /// (up, wanted): of the site connections with `start_action = "start"`, those with a
    /// CHILD_SA to send with on at least one tunnel, and all of them. A connection whose
    /// tunnels are all dormant (their shared address is on the other host of an
    /// active-standby pair) is not wanted: a rejoining standby cannot bring it up, and
    /// waiting for it would only run into the timeout.
    pub fn drain_ready(&self) -> (usize, usize) {
        let mut up = 0;
        let mut wanted = 0;
        for (i, c) in self.cfg.connections.iter().enumerate() {
            let Keying::Ike(k) = &c.keying else { continue };
            if k.start_action != StartAction::Start || k.remote_access.is_some() {
                continue;
            }
            let specs = self.specs_of(i);
            if specs.iter().all(|s| self.is_dormant(s.local)) {
                continue;
            }
            wanted += 1;
            if specs.iter().any(|s| self.is_up(&s.key())) {
                up += 1;
            }
        }
        (up, wanted)
    }

    /// Packets every tunnel has carried, both directions, live and retired SAs: only grows
    /// while the config stays (a drain samples it every 100 ms).
    pub fn traffic_packets(&self) -> u64 {
        self.specs
            .iter()
            .map(|s| {
                let (o, i) = self.tunnel_traffic(&s.key());
                o.packets + i.packets
            })
            .sum()
    }

    /// While drained, a peer's IKE_SA_INIT request is dropped and counted.
    pub(super) fn refuse_while_drained(&mut self, local: SocketAddr, data: &[u8]) -> bool {
        if self.drain.holding() && is_new_ike_sa(local, self.cfg.gateway.port, data) {
            self.drain.refused += 1;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::tests::{primary, standby, Pair};
    use crate::drain::{Effect, Machine, Report, SAMPLE_EVERY};

    /// The machine and the plane together, as the daemon drives them: a drain waits while
    /// the fast path's counters still move, then deletes every IKE SA (the peer hears it)
    /// and holds the connection down; a rejoin brings it back.
    #[test]
    fn drain_closes_with_delete_and_rejoin_brings_the_tunnels_back() {
        let base = Instant::now();
        let at = |ms: u64| base + Duration::from_millis(ms);
        let mut p = Pair::up("drain", "", "", base);
        assert!(p.a.sas().is_sending(&primary()));
        assert_eq!(p.a.drain_ready(), (1, 1));
        let mut s = p.a.config().drain.clone();
        s.quiet = Duration::from_millis(500);
        let mut m = Machine::new();
        let (op, fx) = m.drain(at(0), &s, "test").unwrap();
        assert!(fx.is_empty(), "no state file, no command: {fx:?}");
        // No traffic through the fast path here: the counters stand still, so the wait ends
        // after the quiet time.
        let mut t = at(0);
        let fx = loop {
            t += SAMPLE_EVERY;
            let fx = m.tick(t, p.a.traffic_packets(), p.a.drain_ready());
            if !fx.is_empty() {
                break fx;
            }
            assert!(t < at(5000));
        };
        assert_eq!(fx, vec![Effect::CloseAll]);
        let deleted = p.a.drain_close(t);
        assert_eq!(deleted, 2);
        let fx = m.closed(t, deleted);
        assert!(matches!(
            &fx[..],
            [Effect::Finished { op: o, outcome: Ok(Report::Drain(r)) }] if *o == op && r.ike_sas_deleted == 2
        ));
        p.settle(t);
        // The peer heard the DELETEs: no IKE SA left on either side.
        assert!(p.b.ike_sas().is_empty(), "{:?}", p.b.ike_sas());
        assert!(p.a.ike_sas().is_empty());
        assert!(!p.a.sas().is_sending(&primary()));
        assert!(p.a.drain_holding());
        // Nothing restarts while drained, not even the operator's initiate.
        p.a.on_timeout(t + Duration::from_secs(60));
        assert!(p.a.tunnel(&primary()).unwrap().ike.is_none());
        assert!(p.a.initiate("site-b", t).is_err());
        // The peer initiating is refused (dropped, counted).
        p.b.initiate("site-a", t).unwrap();
        p.settle(t);
        assert!(p.a.drain_refused() >= 1);
        assert!(p.a.ike_sas().is_empty());
        p.b.terminate("site-a", t).ok();
        p.settle(t);
        // Rejoin: released, initiated, up; then the machine goes on.
        let t2 = t + Duration::from_secs(70);
        let (rop, fx) = m.rejoin(t2, &s, "test");
        assert_eq!(fx, vec![Effect::ReleaseHolds]);
        assert_eq!(m.tick(t2 + SAMPLE_EVERY, 0, p.a.drain_ready()), vec![]);
        p.a.drain_release(t2);
        assert!(!p.a.drain_holding());
        p.settle(t2);
        assert!(p.a.sas().is_sending(&primary()));
        assert!(p.a.sas().is_sending(&standby()));
        let fx = m.tick(t2 + 2 * SAMPLE_EVERY, 0, p.a.drain_ready());
        assert!(matches!(
            &fx[..],
            [Effect::Finished { op: o, outcome: Ok(Report::Rejoin(r)) }] if *o == rop && r.connections_up == 1
        ));
    }

    /// A connection a reload adds while drained does not start either; the rejoin starts it.
    #[test]
    fn a_connection_added_while_drained_waits_for_the_rejoin() {
        let base = Instant::now();
        let mut p = Pair::up("drain-reload", "", "", base);
        p.a.drain_close(base);
        p.settle(base);
        let file = p.a.config().file.clone();
        let text = std::fs::read_to_string(&file).unwrap()
            + "[[connection]]\nname = \"site-c\"\nkeying = \"ike\"\nlocal_id = \"gw-a.example\"\n\
               remote_id = \"gw-c.example\"\npsk = \"0123456789abcdef0123456789abcdef\"\n\
               local_ts = [\"10.1.0.0/24\"]\nremote_ts = [\"10.3.0.0/24\"]\n\
               ike_proposals = [\"aes256gcm16-prfsha256-x25519\"]\nesp_proposals = [\"aes256gcm16\"]\n\
               start_action = \"start\"\ntunnels = [ { local = \"192.0.2.1\", remote = \"192.0.2.3\" } ]\n";
        std::fs::write(&file, text).unwrap();
        let cfg = crate::config::Config::load_with_env(&file, Vec::new()).unwrap();
        p.a.reload(cfg, base).unwrap();
        assert!(p.a.drain_holding());
        assert!(p.a.ike_sas().is_empty(), "{:?}", p.a.ike_sas());
        assert_eq!(p.a.drain_ready(), (0, 2));
        p.a.drain_release(base);
        // Both connections initiate (site-c's peer does not exist here).
        let conns: std::collections::BTreeSet<String> =
            p.a.ike_sas()
                .into_iter()
                .filter_map(|s| s.conn)
                .map(|c| c.to_string())
                .collect();
        assert_eq!(conns, ["site-b".to_string(), "site-c".to_string()].into());
    }

    /// A connection the operator terminated before the drain stays down after the rejoin.
    #[test]
    fn rejoin_keeps_the_operators_terminate() {
        let base = Instant::now();
        let mut p = Pair::up("drain-held", "", "", base);
        p.a.terminate("site-b", base).unwrap();
        p.settle(base);
        assert_eq!(p.a.drain_close(base), 0);
        p.a.drain_release(base);
        p.settle(base);
        assert!(p.a.tunnel(&primary()).unwrap().held);
        assert!(p.a.tunnel(&primary()).unwrap().ike.is_none());
        assert_eq!(p.a.drain_ready(), (0, 1));
    }
}
