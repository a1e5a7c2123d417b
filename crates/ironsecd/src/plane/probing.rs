//! "Sending without hearing back": a tunnel of a multi-tunnel connection that sends for a
//! sixth of `failover_after` without a sign of life from the peer gets a probe (an IKE
//! request), which closes its IKE SA unless the peer answers within a quarter of it. Only
//! connections with a tunnel to fail over to are looked at; the others leave dead-peer
//! detection to DPD.

use std::time::{Duration, Instant};

use ironsec_ike::IkeSaId;

use super::tunnels::{Liveness, Traffic};
use super::Plane;
use crate::config::{Config, Keying};
use crate::tables::TunnelKey;

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

/// Updates a tunnel's record from its packet totals at `now`.
pub fn observe(seen: &mut Liveness, inbound: Traffic, outbound: Traffic, now: Instant) {
    if inbound.packets != seen.rx || seen.rx_at.is_none() {
        seen.rx = inbound.packets;
        seen.rx_at = Some(now);
    }
    if outbound.packets != seen.tx {
        if seen
            .tx_at
            .is_none_or(|t| seen.rx_at.is_some_and(|r| t <= r))
        {
            seen.sending_since = Some(now);
        }
        seen.tx = outbound.packets;
        seen.tx_at = Some(now);
    }
}

/// Whether an up tunnel whose IKE SA is not probing yet should be probed now: it sent after
/// it last heard ESP and has been silent for `probe_after`. Returns how long it has been
/// silent. Silence counts from the last sign of life: ESP in, the start of this run of
/// sending, or any IKE message (`last_ike`, an answered probe included, so a tunnel that
/// only sends, its return traffic hashed onto another tunnel, is checked again after each
/// silence rather than left to DPD).
pub fn probe_due(
    seen: &Liveness,
    last_ike: Instant,
    probe_after: Duration,
    now: Instant,
) -> Option<Duration> {
    let (rx_at, tx_at) = (seen.rx_at?, seen.tx_at?);
    let since = rx_at.max(seen.sending_since.unwrap_or(rx_at)).max(last_ike);
    let silent = now.saturating_duration_since(since);
    (tx_at > rx_at && silent >= probe_after).then_some(silent)
}

/// Connections (config indexes) with a tunnel to fail over to: the only ones the liveness
/// tick looks at.
pub(super) fn multi_tunnel(cfg: &Config) -> Vec<usize> {
    cfg.connections
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(&c.keying, Keying::Ike(k) if k.tunnels.len() >= 2))
        .map(|(i, _)| i)
        .collect()
}

impl Plane {
    /// Reads the packet counters of multi-tunnel connections' tunnels and probes those that
    /// send without hearing back, re-shares bandwidth, then re-selects the tunnels
    /// multi-tunnel connections use (silence and preempt hold times are clock-driven; a
    /// single tunnel's selection changes only with its SAs). Changed tables are reported by
    /// the next [`Plane::drain_events`]. Called every 100 ms; it costs nothing per tunnel of
    /// a single-tunnel connection.
    pub fn tick(&mut self, now: Instant) {
        let mut probes: Vec<(IkeSaId, Duration, TunnelKey, Duration)> = Vec::new();
        for &ci in &self.multi_tunnel {
            let Keying::Ike(k) = &self.cfg.connections[ci].keying else {
                continue;
            };
            let th = Thresholds::of(k.failover_after);
            for i in self.spans[ci].clone() {
                let key = self.specs[i].key();
                let (out, inb) = self.tunnel_traffic(&key);
                let up = self.is_up(&key);
                let Some(st) = self.tunnels.get_mut(&key) else {
                    continue;
                };
                observe(&mut st.seen, inb, out, now);
                let Some(ike) = st.ike else {
                    continue;
                };
                // The engine keeps the IKE side of liveness.
                let Some(live) = self.ep.liveness(ike) else {
                    continue;
                };
                if !up || live.probing {
                    continue;
                }
                if let Some(silent) = probe_due(&st.seen, live.last_heard, th.probe_after, now) {
                    probes.push((ike, th.give_up, key.clone(), silent));
                }
            }
        }
        self.shares.reshare(&self.cfg, now);
        for (ike, give_up, key, silent) in probes {
            if self.ep.probe(now, ike, give_up) == Ok(true) {
                tracing::info!(tunnel = %key, silent_ms = silent.as_millis() as u64, "sending without hearing back: probing the peer");
            }
        }
        let mut changed = false;
        for ci in self.multi_tunnel.clone() {
            changed |= self.select(ci, now);
        }
        self.tables_stale |= changed;
    }
}
