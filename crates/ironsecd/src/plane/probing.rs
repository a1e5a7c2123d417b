//! "Sending without hearing back": a tunnel of a multi-tunnel connection that sends for a
//! sixth of `failover_after` without a sign of life from the peer gets a probe (an IKE
//! request), which closes its IKE SA unless the peer answers within a quarter of it. Only
//! connections with a tunnel to fail over to are watched; the others leave dead-peer
//! detection to DPD.
//!
//! Driven by the fast path's activity watches, not by reading counters: each watched
//! tunnel's SAs share one [`Watch`]; the first packet each way after the plane armed it
//! comes back as an [`SaActivity`]. Outbound activity starts a run of sending and a
//! silence deadline; inbound activity ends the silence. An idle tunnel has nothing armed
//! that fires and nothing due, so it costs the control plane nothing; a busy one a few
//! events a second (re-arming waits [`REARM_AFTER`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ironsec_dataplane::{Direction, SaActivity, Watch, WatchId};

use super::tunnels::Liveness;
use super::Plane;
use crate::config::{IkeKeying, Keying};
use crate::tables::TunnelKey;

/// After a packet, a watch is armed again this much later: the granularity at which the
/// plane follows a busy tunnel (that of the counter scan this replaced).
pub const REARM_AFTER: Duration = Duration::from_millis(100);

/// When a silent tunnel is probed, and how long the probe waits for an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub probe_after: Duration,
    pub give_up: Duration,
}

impl Thresholds {
    pub fn of(failover_after: Duration) -> Thresholds {
        Thresholds {
            probe_after: failover_after / 6,
            give_up: failover_after / 4,
        }
    }
}

/// Records a packet through the tunnel's SAs at `now`.
pub fn observe(seen: &mut Liveness, direction: Direction, now: Instant) {
    match direction {
        Direction::Inbound => seen.rx_at = Some(now),
        Direction::Outbound => {
            // A run of sending starts with the first packet after the last receive.
            if seen
                .tx_at
                .is_none_or(|t| seen.rx_at.is_some_and(|r| t <= r))
            {
                seen.sending_since = Some(now);
            }
            seen.tx_at = Some(now);
        }
    }
}

/// The moment silence started, when the tunnel sent after it last heard ESP: the last sign
/// of life, which is ESP in, the start of this run of sending, or any IKE message
/// (`last_ike`, an answered probe included, so a tunnel that only sends, its return traffic
/// hashed onto another tunnel, is checked again after each silence rather than left to DPD).
/// None when it has heard since it last sent.
pub fn silent_since(seen: &Liveness, last_ike: Instant) -> Option<Instant> {
    let (rx_at, tx_at) = (seen.rx_at?, seen.tx_at?);
    (tx_at > rx_at).then(|| rx_at.max(seen.sending_since.unwrap_or(rx_at)).max(last_ike))
}

/// What a silence deadline does at `now`: probe (the tunnel has been silent for
/// `probe_after`; returns how long), or look again at the returned moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilenceCheck {
    Probe {
        silent: Duration,
    },
    CheckAt(Instant),
    /// It heard since it last sent: nothing to watch until it sends again.
    Heard,
}

/// The probing decision, a pure function of the tunnel's record, the engine's last IKE
/// message and `now`.
pub fn check_silence(
    seen: &Liveness,
    last_ike: Instant,
    probe_after: Duration,
    now: Instant,
) -> SilenceCheck {
    match silent_since(seen, last_ike) {
        None => SilenceCheck::Heard,
        Some(since) => {
            let silent = now.saturating_duration_since(since);
            if silent >= probe_after {
                SilenceCheck::Probe { silent }
            } else {
                SilenceCheck::CheckAt(since + probe_after)
            }
        }
    }
}

/// Whether connection `c` has a tunnel to fail over to.
pub(super) fn is_multi(c: &crate::config::Connection) -> Option<&IkeKeying> {
    match &c.keying {
        Keying::Ike(k) if k.tunnels.len() >= 2 => Some(k),
        _ => None,
    }
}

impl Plane {
    /// The keying of a watched tunnel's connection, and its config index.
    fn watched_conn(&self, key: &TunnelKey) -> Option<(usize, &IkeKeying)> {
        let ci = *self.by_name.get(&key.conn)?;
        Some((ci, is_multi(&self.cfg.connections[ci])?))
    }

    /// The watch a new SA of tunnel `key` carries: the tunnel's, made (and armed both ways)
    /// on its first SA. None for tunnels that are not watched.
    pub(super) fn watch_for(&mut self, key: &TunnelKey, now: Instant) -> Option<Arc<Watch>> {
        self.watched_conn(key)?;
        let st = self.tunnels.get_mut(key)?;
        if let Some(w) = &st.watch {
            return Some(w.clone());
        }
        self.next_watch += 1;
        let w = Arc::new(Watch::new(WatchId(self.next_watch)));
        w.arm(Direction::Outbound);
        w.arm(Direction::Inbound);
        // Silence counts from the first look at the tunnel at the earliest.
        st.seen.rx_at.get_or_insert(now);
        st.watch = Some(w.clone());
        self.watches.insert(w.id(), key.clone());
        Some(w)
    }

    /// The tunnel's record starts again (its IKE SA went): arms its watch both ways and
    /// drops its pending checks.
    pub(super) fn restart_liveness(&mut self, key: &TunnelKey, now: Instant) {
        self.silence.clear(key);
        self.rearm.clear(key);
        if let Some(st) = self.tunnels.get_mut(key) {
            // A tunnel that comes back starts with a clean record, not the silence that
            // killed it.
            st.seen = Liveness {
                rx_at: st.watch.as_ref().map(|_| now),
                ..Liveness::default()
            };
            if let Some(w) = &st.watch {
                w.arm(Direction::Outbound);
                w.arm(Direction::Inbound);
            }
        }
    }

    /// A packet went through a watched tunnel's SAs.
    pub fn on_activity(&mut self, a: SaActivity, now: Instant) {
        let Some(key) = self.watches.get(&a.watch).cloned() else {
            return;
        };
        let Some((_, k)) = self.watched_conn(&key) else {
            return;
        };
        let probe_after = Thresholds::of(k.failover_after).probe_after;
        let Some(st) = self.tunnels.get_mut(&key) else {
            return;
        };
        if st.watch.as_ref().map(|w| w.id()) != Some(a.watch) {
            return;
        }
        observe(&mut st.seen, a.direction, now);
        match a.direction {
            Direction::Inbound => {
                // The silence is over; follow the tunnel again in a moment.
                self.silence.clear(&key);
                // Traffic on another tunnel may mean the peer moved: decide in a moment, as
                // the 100 ms scan did, so that a peer moving back at the same time as we do
                // (preempt) is heard on its new tunnel first.
                if self.follow.get(&key.conn).is_none() {
                    self.follow.set(key.conn.clone(), now + REARM_AFTER);
                }
                self.rearm.set(key, now + REARM_AFTER);
            }
            Direction::Outbound => {
                if self.silence.get(&key).is_none() {
                    let last_ike = st
                        .ike
                        .and_then(|i| self.ep.liveness(i))
                        .map(|l| l.last_heard);
                    let since = silent_since(&st.seen, last_ike.unwrap_or(now)).unwrap_or(now);
                    self.silence.set(key, since + probe_after);
                }
            }
        }
    }

    /// Re-arms watches whose wait is over.
    pub(super) fn rearm_due(&mut self, now: Instant) {
        for key in self.rearm.take_due(now) {
            if let Some(w) = self.tunnels.get(&key).and_then(|s| s.watch.as_ref()) {
                w.arm(Direction::Inbound);
                w.arm(Direction::Outbound);
            }
        }
    }

    /// Silence deadlines that came: probes the peer of a tunnel that sends without hearing
    /// back, and looks again after the probe had its time.
    pub(super) fn check_silences(&mut self, now: Instant) {
        for key in self.silence.take_due(now) {
            let Some((ci, k)) = self.watched_conn(&key) else {
                continue;
            };
            let th = Thresholds::of(k.failover_after);
            let up = self.is_up(&key);
            let Some(st) = self.tunnels.get(&key) else {
                continue;
            };
            let Some(live) = st.ike.and_then(|i| self.ep.liveness(i)) else {
                continue;
            };
            let ike = st.ike;
            match check_silence(&st.seen, live.last_heard, th.probe_after, now) {
                SilenceCheck::Heard => {}
                SilenceCheck::CheckAt(t) => self.silence.set(key, t),
                SilenceCheck::Probe { silent } => {
                    if up && !live.probing {
                        if let Some(ike) = ike {
                            if self.ep.probe(now, ike, th.give_up) == Ok(true) {
                                tracing::info!(connection = %key.conn, local = %key.local, remote = %key.remote, silent_ms = silent.as_millis() as u64, "sending without hearing back: probing the peer");
                            }
                        }
                    }
                    // The probe is answered (a sign of life) or closes the IKE SA by then.
                    self.silence.set(key, now + th.give_up);
                }
            }
            self.tables_stale |= self.select(ci, now);
        }
    }

    /// A tunnel of a preempting connection came up: traffic may move back to it once it
    /// has been up for the hold time.
    pub(super) fn schedule_preempt(&mut self, key: &TunnelKey, now: Instant) {
        if let Some(hold) = self.watched_conn(key).and_then(|(_, k)| k.preempt_hold) {
            self.reselect.set(key.clone(), now + hold);
        }
    }

    /// Preempt hold times that ended, and connections whose tunnels heard ESP a moment ago:
    /// re-decides those connections.
    pub(super) fn reselect_due(&mut self, now: Instant) {
        let mut conns: Vec<Arc<str>> = self.follow.take_due(now);
        conns.extend(self.reselect.take_due(now).into_iter().map(|k| k.conn));
        conns.sort();
        conns.dedup();
        for conn in conns {
            let Some(&ci) = self.by_name.get(&conn) else {
                continue;
            };
            self.tables_stale |= self.select(ci, now);
            self.keep_preempting(ci, now);
        }
    }

    /// While a tunnel that may take the traffic back (preempt, hold time over) is up but
    /// does not carry it (it is being probed, or traffic followed the peer off it before the
    /// peer moved back too), the connection is decided again every [`REARM_AFTER`], as the
    /// 100 ms scan did, until both ends meet on it.
    fn keep_preempting(&mut self, ci: usize, now: Instant) {
        let Some(k) = is_multi(&self.cfg.connections[ci]) else {
            return;
        };
        let Some(hold) = k.preempt_hold else {
            return;
        };
        let tunnels: Vec<(TunnelKey, u32)> = self
            .specs_of(ci)
            .iter()
            .zip(&k.tunnels)
            .map(|(s, t)| (s.key(), t.priority))
            .collect();
        let Some(sel) = self.selections.get(&*self.cfg.connections[ci].name) else {
            return;
        };
        let carrying = tunnels
            .iter()
            .filter(|(t, _)| sel.active.contains(t))
            .map(|(_, p)| *p)
            .max()
            .unwrap_or(0);
        for (key, p) in tunnels {
            let held_long = self
                .tunnels
                .get(&key)
                .and_then(|s| s.established_at)
                .is_some_and(|t| now.saturating_duration_since(t) >= hold);
            if p > carrying && held_long && self.is_up(&key) && self.reselect.get(&key).is_none() {
                self.reselect.set(key, now + REARM_AFTER);
            }
        }
    }

    /// Re-shares bandwidth among the connections (every 100 ms, while any cap is set).
    pub fn reshare(&mut self, now: Instant) {
        self.shares.reshare(&self.cfg, now);
    }
}
