//! Volume lifetimes and the sequence space: how the traffic the fast path counts per SA
//! drives a CHILD_SA's rekey, without per-packet work in the control plane.
//!
//! Each negotiated CHILD_SA with a volume limit (configured `rekey_*`/`life_*`, or the 32-bit
//! sequence space of an SA without ESN) has one deadline. When it is due the plane sums the
//! SA's per-worker counters (a few relaxed loads), hands them to the engine
//! ([`ironsec_ike::Endpoint::child_traffic`], which rekeys past the soft limit and deletes past
//! the hard one) and files the next look at [`next_check`]: soon when a limit is near for the
//! rate the SA could be moving at, rarely when it is far. An idle SA with the default limits is
//! looked at every five minutes ([`MAX_CHECK`]).

use std::time::{Duration, Instant};

use super::Plane;
use crate::config::{Keying, VolumeLimits};

/// Sequence numbers used (in either direction) after which an SA without ESN is rekeyed: 2^32 - 2^28, 15/16
/// of the space. The 2^28 (268 million) packets left must cover the look that notices
/// (at most [`MIN_CHECK`] late near the limit) and the CREATE_CHILD_SA exchange, retransmissions
/// included (about 45 s with the default schedule): at [`ASSUMED_PPS`] that is under 100
/// million packets, so the SA never reaches `seq_exhausted`. Giving up 6% of the space costs
/// one rekey in 16 more, which is nothing next to a dropped packet.
pub const SEQ_REKEY_AT: u64 = (1 << 32) - (1 << 28);

/// Shortest wait between two looks at one SA: the granularity of volume limits. A limit is
/// passed by at most this long's traffic before the plane notices.
pub const MIN_CHECK: Duration = Duration::from_millis(100);
/// Longest wait: an idle SA costs one look every five minutes. Only reached when every limit
/// is more than ten minutes away at the assumed rates (below), so it is a bound on the cost of
/// idle SAs, not on safety.
pub const MAX_CHECK: Duration = Duration::from_secs(300);

/// The rates an SA is assumed able to reach between two looks, whatever it did before: a
/// burst after an idle minute must not run past a limit unseen. Above what this fast path
/// moves per SA (measured in the low Gbit/s on this class of machine); an SA seen faster is
/// planned at the rate seen.
pub const ASSUMED_BYTES_PER_SEC: u64 = 10_000_000_000 / 8;
pub const ASSUMED_PPS: u64 = 2_000_000;

/// What an SA has carried: bytes and packets in its busier direction, and the highest
/// sequence number used in either direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub packets: u64,
    pub seq: u64,
}

/// The limits still ahead of an SA, in each measure; `None` = none in that measure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ahead {
    pub bytes: Option<u64>,
    pub packets: Option<u64>,
    pub seq: Option<u64>,
}

impl Ahead {
    /// The nearest limit not yet passed in each measure: the soft one, then the hard one.
    pub fn of(limits: &VolumeLimits, seq_limit: Option<u64>, used: Usage) -> Ahead {
        let next = |soft: Option<u64>, hard: Option<u64>, v: u64| {
            [soft, hard].into_iter().flatten().find(|l| v < *l)
        };
        Ahead {
            bytes: next(limits.rekey_bytes, limits.life_bytes, used.bytes),
            packets: next(limits.rekey_packets, limits.life_packets, used.packets),
            seq: seq_limit.filter(|l| used.seq < *l),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_none() && self.packets.is_none() && self.seq.is_none()
    }
}

/// How long until the next look at an SA that has used `now` (and `before`, `elapsed`
/// earlier): half the time the nearest limit needs at the faster of the rate seen and the
/// assumed one, within [`MIN_CHECK`]..=[`MAX_CHECK`]. `None` when no limit is ahead.
pub fn next_check(ahead: Ahead, before: Usage, now: Usage, elapsed: Duration) -> Option<Duration> {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let wait = |limit: Option<u64>, was: u64, is: u64, assumed: u64| {
        let limit = limit?;
        let seen = is.saturating_sub(was) as f64 / secs;
        let rate = seen.max(assumed as f64);
        Some(limit.saturating_sub(is) as f64 / rate / 2.0)
    };
    [
        wait(ahead.bytes, before.bytes, now.bytes, ASSUMED_BYTES_PER_SEC),
        wait(ahead.packets, before.packets, now.packets, ASSUMED_PPS),
        wait(ahead.seq, before.seq, now.seq, ASSUMED_PPS),
    ]
    .into_iter()
    .flatten()
    .reduce(f64::min)
    .map(|s| Duration::from_secs_f64(s.min(MAX_CHECK.as_secs_f64())).clamp(MIN_CHECK, MAX_CHECK))
}

/// What the plane remembers of an SA between two looks.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sample {
    at: Instant,
    used: Usage,
    /// The sequence-space rekey was asked for (once: the engine does not refuse a second).
    seq_rekey_asked: bool,
}

/// A CHILD_SA's volume as status shows it: what it carried, its limits, the next look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildVolume {
    pub used: Usage,
    pub limits: VolumeLimits,
    /// Without ESN: the sequence number past which it is rekeyed ([`SEQ_REKEY_AT`]).
    pub seq_rekey_at: Option<u64>,
    /// When the plane next reads its counters; `None` when no limit is ahead.
    pub next_check: Option<Instant>,
}

/// What is left of `used` before `limit`: `None` when there is no limit or it was reached.
pub fn left(limit: Option<u64>, used: u64) -> Option<u64> {
    limit.filter(|l| used < *l).map(|l| l - used)
}

impl Plane {
    /// A negotiated CHILD_SA's volume (live counters) and limits, for status.
    pub fn child_volume(&self, spi: u32) -> Option<ChildVolume> {
        let used = self.usage_of(spi)?;
        let (limits, seq_rekey_at) = self.volume_limits(spi)?;
        Some(ChildVolume {
            used,
            limits,
            seq_rekey_at,
            next_check: self.volume.get(&spi),
        })
    }

    /// Starts watching a new CHILD_SA's volume (if it has any limit) from `now`.
    pub(super) fn watch_volume(&mut self, spi: u32, now: Instant) {
        let sample = Sample {
            at: now,
            used: Usage::default(),
            seq_rekey_asked: false,
        };
        self.volume_samples.insert(spi, sample);
        self.schedule_volume(spi, sample, sample.used, Duration::ZERO, now);
    }

    /// Forgets an SA's volume watch (deleted or gone).
    pub(super) fn unwatch_volume(&mut self, spi: u32) {
        self.volume_samples.remove(&spi);
        self.volume.clear(&spi);
    }

    /// The volume limits of `spi`'s connection and its sequence-space limit.
    fn volume_limits(&self, spi: u32) -> Option<(VolumeLimits, Option<u64>)> {
        let c = self.store.child(spi)?;
        let limits = match self.connection(&c.tunnel.conn).map(|c| &c.keying) {
            Some(Keying::Ike(k)) => k.volume,
            _ => VolumeLimits::default(),
        };
        let seq = (!c.info.algorithms.esn).then_some(SEQ_REKEY_AT);
        Some((limits, seq))
    }

    fn schedule_volume(
        &mut self,
        spi: u32,
        before: Sample,
        used: Usage,
        elapsed: Duration,
        now: Instant,
    ) {
        let Some((limits, seq)) = self.volume_limits(spi) else {
            return self.unwatch_volume(spi);
        };
        let ahead = Ahead::of(&limits, seq, used);
        match next_check(ahead, before.used, used, elapsed) {
            Some(wait) => self.volume.set(spi, now + wait),
            None => self.volume.clear(&spi),
        }
    }

    /// What `spi` has carried so far, as the fast path counted it.
    fn usage_of(&self, spi: u32) -> Option<Usage> {
        let c = self.store.child(spi)?;
        let (o, i) = (c.outbound.counters.totals(), c.inbound.counters.totals());
        Some(Usage {
            bytes: o.bytes.max(i.bytes),
            packets: o.packets.max(i.packets),
            // The peer's sequence numbers too: a peer that does not rekey in time would
            // otherwise run its SA into our replay window's end.
            seq: c
                .outbound
                .sa
                .next_seq()
                .saturating_sub(1)
                .max(c.inbound.sa.highest_seq()),
        })
    }

    /// Looks at the SAs whose volume check is due: reports their traffic to the engine,
    /// asks for the sequence-space rekey, and files the next look.
    pub(super) fn check_volumes(&mut self, now: Instant) {
        for spi in self.volume.take_due(now) {
            let (Some(before), Some(used)) =
                (self.volume_samples.get(&spi).copied(), self.usage_of(spi))
            else {
                self.unwatch_volume(spi);
                continue;
            };
            let Some(c) = self.store.child(spi) else {
                continue;
            };
            if c.retiring_until.is_some() {
                self.unwatch_volume(spi);
                continue;
            }
            let (ike, esn) = (c.ike, c.info.algorithms.esn);
            let mut sample = Sample {
                at: now,
                used,
                seq_rekey_asked: before.seq_rekey_asked,
            };
            if let Some((limits, _)) = self.volume_limits(spi) {
                let over = |l: Option<u64>, v: u64| l.is_some_and(|l| v >= l);
                if over(limits.life_bytes, used.bytes) || over(limits.life_packets, used.packets) {
                    // In normal operation the rekey at the soft limit replaced this SA long
                    // ago: reaching the hard limit means it failed or was not answered.
                    tracing::warn!(
                        connection = %c.tunnel.conn,
                        spi_in = %crate::status::spi_string(spi),
                        bytes = used.bytes,
                        packets = used.packets,
                        "CHILD_SA reached its hard volume limit (life_bytes/life_packets): deleting"
                    );
                }
            }
            let _ = self
                .ep
                .child_traffic(now, ike, spi, used.bytes, used.packets);
            if !esn && used.seq >= SEQ_REKEY_AT && !sample.seq_rekey_asked {
                tracing::info!(
                    connection = %c.tunnel.conn,
                    spi_in = %crate::status::spi_string(spi),
                    seq = used.seq,
                    "CHILD_SA near the end of its sequence numbers: rekeying"
                );
                sample.seq_rekey_asked = self.ep.rekey_child(now, ike, spi).is_ok();
            }
            self.volume_samples.insert(spi, sample);
            self.schedule_volume(spi, before, used, now.duration_since(before.at), now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1_000_000;

    fn limits(rekey: u64, life: u64) -> VolumeLimits {
        VolumeLimits {
            rekey_bytes: Some(rekey),
            life_bytes: Some(life),
            ..Default::default()
        }
    }

    fn bytes(b: u64) -> Usage {
        Usage {
            bytes: b,
            ..Default::default()
        }
    }

    #[test]
    fn the_nearest_limit_not_passed_is_ahead() {
        let l = limits(100 * MB, 200 * MB);
        assert_eq!(Ahead::of(&l, None, bytes(0)).bytes, Some(100 * MB));
        assert_eq!(Ahead::of(&l, None, bytes(100 * MB)).bytes, Some(200 * MB));
        assert!(Ahead::of(&l, None, bytes(200 * MB)).is_empty());
        let seq = Ahead::of(
            &VolumeLimits::default(),
            Some(SEQ_REKEY_AT),
            Usage::default(),
        );
        assert_eq!(seq.seq, Some(SEQ_REKEY_AT));
        assert!(Ahead::of(&VolumeLimits::default(), None, Usage::default()).is_empty());
    }

    #[test]
    fn an_idle_sa_with_far_limits_is_looked_at_every_five_minutes() {
        let ahead = Ahead::of(
            &VolumeLimits::default(),
            Some(SEQ_REKEY_AT),
            Usage::default(),
        );
        let w = next_check(ahead, Usage::default(), Usage::default(), Duration::ZERO);
        assert_eq!(w, Some(MAX_CHECK));
        assert_eq!(
            next_check(Ahead::default(), bytes(0), bytes(5), MIN_CHECK),
            None
        );
    }

    #[test]
    fn a_near_limit_is_looked_at_within_half_the_time_a_burst_needs() {
        // 1 GB ahead at the assumed 1.25 GB/s: 0.8 s to reach, looked at after 0.4 s.
        let ahead = Ahead::of(&limits(1000 * MB, 1100 * MB), None, bytes(0));
        let w = next_check(ahead, bytes(0), bytes(0), Duration::from_secs(1)).unwrap();
        assert_eq!(w, Duration::from_millis(400));
        // Small limits are looked at every MIN_CHECK, never more often.
        let ahead = Ahead::of(&limits(2 * MB, 8 * MB), None, bytes(0));
        assert_eq!(
            next_check(ahead, bytes(0), bytes(0), Duration::from_secs(1)),
            Some(MIN_CHECK)
        );
    }

    #[test]
    fn an_sa_seen_faster_than_assumed_is_planned_at_its_rate() {
        // 10 GB ahead; moved 5 GB in the last second (faster than assumed): 2 s to go,
        // looked at after 1 s (at the assumed rate it would have been 4 s).
        let ahead = Ahead::of(&limits(20_000 * MB, 30_000 * MB), None, bytes(10_000 * MB));
        let w = next_check(
            ahead,
            bytes(5_000 * MB),
            bytes(10_000 * MB),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(w, Duration::from_secs(1));
    }

    #[test]
    fn the_sequence_space_is_approached_by_halving_and_never_overrun() {
        // A fake clock and an SA sending at the assumed maximum: each look comes at half the
        // remaining time until MIN_CHECK; the look that passes SEQ_REKEY_AT does so with
        // far fewer than 2^28 packets used beyond it.
        let base = Instant::now();
        let mut t = Duration::ZERO;
        let (mut before, mut seq) = (Usage::default(), 0u64);
        let mut looks = 0;
        loop {
            let used = Usage {
                seq,
                ..Default::default()
            };
            let ahead = Ahead::of(&VolumeLimits::default(), Some(SEQ_REKEY_AT), used);
            if ahead.is_empty() {
                break;
            }
            let w = next_check(ahead, before, used, MAX_CHECK).unwrap();
            looks += 1;
            before = used;
            t += w;
            seq = (t.as_secs_f64() * ASSUMED_PPS as f64) as u64;
            assert!(base + t > base);
        }
        assert!(seq >= SEQ_REKEY_AT);
        let overrun = seq - SEQ_REKEY_AT;
        assert!(
            overrun <= ASSUMED_PPS * MIN_CHECK.as_millis() as u64 / 1000,
            "{overrun}"
        );
        assert!(overrun < 1 << 28);
        assert!(looks < 100, "{looks} looks");
    }
}
