//! NAT traversal beyond the engine's detection: keepalives that hold our NAT's mapping open
//! while a tunnel is idle (RFC 3948 2.3), and following a peer behind a NAT to the address
//! its authenticated packets now come from (RFC 7296 2.23 for IKE, RFC 3948 for ESP).
//!
//! A keepalive goes out one `nat_keepalive` interval after the last datagram we sent to the
//! peer (ESP, IKE or keepalive), as strongSwan times its own, so a NAT whose UDP timeout is
//! longer than the interval never sees the mapping idle long enough to drop it. Neither the
//! fast path nor the plane's tick pays for it: a tunnel whose IKE SA found us behind a NAT
//! has one deadline in [`Plane`]'s `keepalives` set, and when it is due that tunnel alone is
//! looked at ([`SendLog::look`]). IKE messages the engine sends to the peer (DPD, rekeys)
//! are timed as they leave ([`Plane::poll_transmit`] notes them, one hash lookup each);
//! ESP is not timed per packet, so the look compares the tunnel's outbound ESP counter with
//! the previous look's:
//! - no ESP went out: the keepalive is due one interval after the last send we know of;
//! - some did, at an unknown moment since the last look: the tunnel is looked at again a
//!   tenth of an interval later ([`BUSY_LOOKS`]), so when it falls silent the end of its
//!   sending is known to that tenth, and the keepalive goes at most one interval after it
//!   (up to a tenth earlier, never later).
//!
//! An idle tunnel costs one look per interval (the keepalive's own), a busy one ten. The one
//! case the interval can stretch is ESP that starts and ends between two idle looks (a
//! burst shorter than an interval): the look after it cannot tell when it stopped, so the
//! keepalive goes a tenth of an interval after that look, at most 1.1 intervals after the
//! burst's last packet.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ironsec_ike::{IkeSaId, NatDetected, Transmit};

use super::Plane;
use crate::config::Keying;
use crate::tables::TunnelKey;

/// RFC 3948 2.3: a NAT keepalive is one byte, 0xFF.
pub const NAT_KEEPALIVE: [u8; 1] = [0xFF];

/// While a tunnel sends, it is looked at this many times per keepalive interval: the
/// precision with which the end of its sending is known, hence how much earlier than one
/// interval after its last packet its first keepalive may go (a tenth: 2 s at the default
/// 20 s), against one look per tenth of an interval per busy tunnel behind a NAT.
pub const BUSY_LOOKS: u32 = 10;

/// What keepalives know of a tunnel's sending to its peer, between looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendLog {
    /// The tunnel's outbound ESP packets at the last look.
    pub mark: u64,
    /// When the engine last sent an IKE message to the peer, if since the last look.
    pub ike_sent_at: Option<Instant>,
    /// When the tunnel was last looked at.
    pub looked_at: Instant,
    /// The last datagram to the peer went out at this moment or later.
    pub sent_after: Instant,
}

/// What a look decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LookResult {
    /// Send a keepalive now.
    pub keepalive: bool,
    /// When to look again.
    pub next: Instant,
}

impl SendLog {
    /// A log that starts at `now` (the IKE SA just came up: we sent to the peer) with the
    /// tunnel's outbound ESP counter at `packets`.
    pub fn new(now: Instant, packets: u64) -> SendLog {
        SendLog {
            mark: packets,
            ike_sent_at: None,
            looked_at: now,
            sent_after: now,
        }
    }

    /// A look at `now`, the tunnel's outbound ESP counter being `packets`: whether a
    /// keepalive must go now (one `every` after the last send) and when to look again.
    pub fn look(&mut self, now: Instant, packets: u64, every: Duration) -> LookResult {
        if let Some(t) = self.ike_sent_at.take() {
            self.sent_after = self.sent_after.max(t);
        }
        let esp_sent = packets != self.mark;
        self.mark = packets;
        let previous = std::mem::replace(&mut self.looked_at, now);
        if esp_sent {
            // Something went out since the previous look, at a moment we cannot know: take
            // the earliest (so the keepalive is never late) and look again soon, to find
            // the end of this run of sending to a tenth of an interval.
            self.sent_after = self.sent_after.max(previous);
            return LookResult {
                keepalive: false,
                next: now + every / BUSY_LOOKS,
            };
        }
        let due = self.sent_after + every;
        if now >= due {
            self.sent_after = now;
            LookResult {
                keepalive: true,
                next: now + every,
            }
        } else {
            LookResult {
                keepalive: false,
                next: due,
            }
        }
    }
}

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
        let old = st.nat.replace(NatPath { local, remote, nat });
        st.keepalive = Some(SendLog::new(now, sent));
        if let Some(old) = old {
            self.nat_paths.remove(&(old.local, old.remote));
        }
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
            Some(every) => {
                self.nat_paths.insert((local, remote), key.clone());
                self.keepalives.set(key.clone(), now + every);
            }
            None => self.keepalives.clear(key),
        }
    }

    /// The engine sends `t`: when it goes to the peer of a tunnel that sends keepalives, it
    /// counts as a send of that tunnel's, at the plane's latest `now` (the engine made it
    /// then or later, so the keepalive is never late). One hash lookup per IKE datagram, and
    /// only the peers of tunnels behind a NAT are in the map.
    pub(super) fn note_ike_sent(&mut self, t: &Transmit) {
        if self.nat_paths.is_empty() {
            return;
        }
        let Some(key) = self.nat_paths.get(&(t.local, t.remote)) else {
            return;
        };
        let Some(at) = self.clock else {
            return;
        };
        if let Some(log) = self.tunnels.get_mut(key).and_then(|s| s.keepalive.as_mut()) {
            log.ike_sent_at = Some(log.ike_sent_at.map_or(at, |t| t.max(at)));
        }
    }

    /// Tunnels whose look is due: a keepalive for each that sent nothing to its peer for an
    /// interval, and the next look (see [`SendLog::look`]).
    pub(super) fn keepalives_due(&mut self, now: Instant) {
        if !self.keepalives.any_due(now) {
            return;
        }
        for key in self.keepalives.take_due(now) {
            let Some(every) = self.keepalive_interval(&key) else {
                continue;
            };
            let packets = self.tunnel_traffic(&key).0.packets;
            let Some(st) = self.tunnels.get_mut(&key) else {
                continue;
            };
            let Some(path) = st.nat.filter(|p| p.nat.local && st.ike.is_some()) else {
                continue;
            };
            let log = st
                .keepalive
                .get_or_insert_with(|| SendLog::new(now, packets));
            let look = log.look(now, packets, every);
            if look.keepalive {
                self.outbox.push_back(Transmit {
                    local: path.local,
                    remote: path.remote,
                    payload: NAT_KEEPALIVE.to_vec(),
                });
                self.stats_of(&key.conn).nat_keepalives += 1;
            }
            self.keepalives.set(key, look.next);
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
                let before = (p.local, p.remote);
                p.remote = remote;
                let after = (p.local, p.remote);
                if self.nat_paths.remove(&before).is_some() {
                    self.nat_paths.insert(after, key);
                }
            }
        }
        self.store.move_peer(ike, remote)
    }

    /// The fast path delivered an authenticated, replay-checked packet of inbound SA `spi`
    /// from `from`, not from the address its tunnel sends to (it only reports SAs of peers
    /// behind a NAT). The IKE SA follows, and its [`ironsec_ike::Event::PeerAddressChanged`]
    /// moves the CHILD_SAs on the next [`Plane::drain_events`].
    pub fn on_peer_moved(&mut self, now: Instant, spi: u32, from: SocketAddr) {
        self.saw(now);
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

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_secs(20);

    /// Follows a log's looks from `start` to `end` (ms), `esp(ms)` being the outbound
    /// counter then; returns when keepalives went.
    fn run(start: Instant, end: u64, esp: impl Fn(u64) -> u64) -> Vec<u64> {
        let mut log = SendLog::new(start, esp(0));
        let mut next = start + EVERY;
        let mut sent = Vec::new();
        loop {
            let ms = (next - start).as_millis() as u64;
            if ms > end {
                return sent;
            }
            let look = log.look(next, esp(ms), EVERY);
            if look.keepalive {
                sent.push(ms);
            }
            assert!(look.next > next, "each look schedules a later one");
            next = look.next;
        }
    }

    #[test]
    fn idle_sends_every_interval_from_the_ike_sa_up() {
        assert_eq!(run(Instant::now(), 60_000, |_| 5), [20_000, 40_000, 60_000]);
    }

    #[test]
    fn a_run_of_esp_is_followed_within_an_interval_never_later() {
        // ESP (one packet per ms) until `stop`, for stops all over the busy looks' grid.
        for stop in (21_000..31_000).step_by(700) {
            let sent = run(Instant::now(), 80_000, |ms| ms.min(stop));
            let first = sent[0];
            assert!(
                first > stop && first <= stop + 20_000 && first + 2_000 >= stop + 20_000,
                "stop {stop} ms: {sent:?}"
            );
        }
    }

    #[test]
    fn a_burst_between_idle_looks_delays_the_keepalive_by_a_tenth_at_most() {
        // ESP from 20.5 s to 21 s, between the looks at 20 s (keepalive) and 40 s.
        let sent = run(Instant::now(), 45_000, |ms| {
            ms.clamp(20_500, 21_000) - 20_500
        });
        // The look at 40 s sees ESP it cannot time; the one at 42 s finds it over and sends:
        // 21.5 s after the last packet, within 1.1 intervals of it.
        assert_eq!(sent, [20_000, 42_000]);
    }

    #[test]
    fn an_ike_message_moves_the_keepalive_to_one_interval_after_it() {
        let start = Instant::now();
        let mut log = SendLog::new(start, 0);
        log.ike_sent_at = Some(start + Duration::from_secs(7));
        let look = log.look(start + EVERY, 0, EVERY);
        assert_eq!(
            look,
            LookResult {
                keepalive: false,
                next: start + Duration::from_secs(27)
            }
        );
        assert!(log.look(look.next, 0, EVERY).keepalive);
    }
}
