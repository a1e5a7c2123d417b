//! Per-SA activity watches: how the control plane learns that an SA carried a packet without
//! reading every tunnel's counters on a timer.
//!
//! The control plane gives a tunnel's [`crate::OutboundEntry`] and [`crate::InboundEntry`] one
//! shared [`Watch`] and arms a direction when it wants to hear about that direction's next
//! packet. The worker that seals or opens that next packet disarms it and reports one
//! [`SaActivity`] to the [`crate::ActivitySink`]; later packets cost one relaxed load of a flag
//! that stays clear until the control plane arms it again. An idle tunnel therefore costs the
//! control plane nothing, and a busy one one event per arming, however many packets it moves.

use std::sync::atomic::{AtomicBool, Ordering};

/// Which way a packet went through an SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sealed and sent to the peer.
    Outbound,
    /// Received from the peer, authenticated and admitted by the selectors.
    Inbound,
}

/// The control plane's name for what a [`Watch`] watches (typically one tunnel's SA pair).
/// Opaque to the fast path, which only hands it back in [`SaActivity`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatchId(pub u64);

/// A packet moved through a watched SA in a direction that was armed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SaActivity {
    pub watch: WatchId,
    pub direction: Direction,
}

/// Armed flags for both directions of one SA pair. Shared (in an `Arc`) by the table entries
/// and the control plane; outlives table swaps with the entries that hold it.
#[derive(Debug)]
pub struct Watch {
    id: WatchId,
    outbound: AtomicBool,
    inbound: AtomicBool,
}

impl Watch {
    /// A watch with both directions disarmed.
    pub fn new(id: WatchId) -> Watch {
        Watch {
            id,
            outbound: AtomicBool::new(false),
            inbound: AtomicBool::new(false),
        }
    }

    pub fn id(&self) -> WatchId {
        self.id
    }

    fn flag(&self, direction: Direction) -> &AtomicBool {
        match direction {
            Direction::Outbound => &self.outbound,
            Direction::Inbound => &self.inbound,
        }
    }

    /// Asks to hear about the next packet in `direction` (once). Arming an armed direction
    /// changes nothing.
    pub fn arm(&self, direction: Direction) {
        self.flag(direction).store(true, Ordering::Relaxed);
    }

    /// Withdraws an arming, e.g. when the control plane no longer cares about the tunnel.
    pub fn disarm(&self, direction: Direction) {
        self.flag(direction).store(false, Ordering::Relaxed);
    }

    /// Whether `direction` is armed: no packet has gone that way since [`Watch::arm`]. Lets
    /// the control plane poll a watch it armed instead of (or besides) waiting for the event.
    pub fn is_armed(&self, direction: Direction) -> bool {
        self.flag(direction).load(Ordering::Relaxed)
    }

    /// Called by the fast path for a packet that went through the SA: the activity to
    /// report when `direction` was armed (the first packet since arming), else `None`. When
    /// several workers race, exactly one of them gets the report.
    #[inline]
    pub fn packet(&self, direction: Direction) -> Option<SaActivity> {
        let flag = self.flag(direction);
        // The common case is one relaxed load of a flag no worker writes, so the cache line
        // stays shared between the workers' cores.
        if !flag.load(Ordering::Relaxed) {
            return None;
        }
        flag.swap(false, Ordering::Relaxed).then_some(SaActivity {
            watch: self.id,
            direction,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(id: u64) -> Option<SaActivity> {
        Some(SaActivity {
            watch: WatchId(id),
            direction: Direction::Outbound,
        })
    }

    #[test]
    fn unarmed_reports_nothing() {
        let w = Watch::new(WatchId(7));
        assert_eq!(w.packet(Direction::Outbound), None);
        assert_eq!(w.packet(Direction::Inbound), None);
        assert!(!w.is_armed(Direction::Outbound));
    }

    #[test]
    fn first_packet_after_arming_reports_once_then_rearm_reports_again() {
        let w = Watch::new(WatchId(7));
        w.arm(Direction::Outbound);
        w.arm(Direction::Outbound);
        assert!(w.is_armed(Direction::Outbound));
        assert_eq!(
            w.packet(Direction::Inbound),
            None,
            "the other direction is not armed"
        );
        assert_eq!(w.packet(Direction::Outbound), out(7));
        assert!(!w.is_armed(Direction::Outbound));
        assert_eq!(w.packet(Direction::Outbound), None, "reported once");
        w.arm(Direction::Outbound);
        assert_eq!(w.packet(Direction::Outbound), out(7), "re-armed");
    }

    #[test]
    fn directions_are_independent_and_disarm_withdraws() {
        let w = Watch::new(WatchId(3));
        w.arm(Direction::Inbound);
        w.arm(Direction::Outbound);
        w.disarm(Direction::Outbound);
        assert_eq!(w.packet(Direction::Outbound), None);
        assert_eq!(
            w.packet(Direction::Inbound),
            Some(SaActivity {
                watch: WatchId(3),
                direction: Direction::Inbound
            })
        );
    }

    #[test]
    fn racing_workers_report_exactly_once() {
        let w = std::sync::Arc::new(Watch::new(WatchId(1)));
        for _ in 0..50 {
            w.arm(Direction::Inbound);
            let reports: usize = std::thread::scope(|s| {
                let hs: Vec<_> = (0..4)
                    .map(|_| s.spawn(|| w.packet(Direction::Inbound).is_some() as usize))
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum()
            });
            assert_eq!(reports, 1);
        }
    }
}
