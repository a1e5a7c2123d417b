//! Anti-replay window (RFC 4303 §3.4.3) shared by every worker thread without a lock.
//!
//! The bitmap is a ring of slots in the manner of RFC 6479 (sliding forward recycles whole
//! blocks instead of shifting bits, so a jump costs the same whatever the window size), but each
//! slot is one `AtomicU64` holding 32 bits of bitmap *and* the number of the block they belong
//! to. Marking a sequence number is then one compare-and-swap on one word: either the slot
//! already holds the number's block (set the bit; if it was set, the packet is a replay), or it
//! holds an older block (replace it with the new block and the one bit), or a newer one (the
//! number is too old). Two workers opening two copies of one packet at once cannot both win,
//! and no worker can wipe a bit another has just set, which is what a separate "highest"
//! counter and a clearing pass could not promise without a lock.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Window size used when the configuration leaves it at 0: large enough for
/// the reordering that several worker threads and multi-queue NICs cause.
pub const DEFAULT_REPLAY_WINDOW: usize = 1024;
/// Upper bound on the window (packets), so that a configuration typo cannot
/// make an SA allocate gigabytes; Linux XFRM's own limit is lower.
pub const MAX_REPLAY_WINDOW: usize = 1 << 20;

/// Sequence numbers per slot: the low half of a slot word is the bitmap.
const BLOCK_BITS: u64 = 32;

/// Why a sequence number is refused.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// Already received inside the window.
    #[error("sequence number already received")]
    Duplicate,
    /// Left of the window: it can no longer be told apart from a replay.
    #[error("sequence number is older than the replay window")]
    TooOld,
    /// RFC 4303 §3.3.3: the first packet is 1, so 0 is never sent by a peer.
    #[error("sequence number 0 is never sent")]
    Zero,
}

/// Received sequence numbers of one inbound SA; every method takes `&self`.
pub struct ReplayWindow {
    /// Ring indexed by `seq / 32`: each word is (block number mod 2^32) << 32 | bitmap. There
    /// are enough slots that a block still inside the window never shares its slot with a
    /// newer one: (slots - 1) * 32 >= size.
    slots: Box<[AtomicU64]>,
    mask: u64,
    size: u64,
    highest: AtomicU64,
}

/// What a slot says about a sequence number's block.
enum Slot {
    /// The slot holds the block: the number's bit is this word's `bit`.
    Same(u64),
    /// The slot holds an older block (or none yet): the number is new.
    Older,
    /// The slot holds a newer block: the number is left of the window.
    Newer,
}

impl ReplayWindow {
    /// `size` is in packets, rounded up to a multiple of 64, at least 64 and
    /// at most [`MAX_REPLAY_WINDOW`]; 0 selects [`DEFAULT_REPLAY_WINDOW`].
    pub fn new(size: usize) -> Self {
        let size = match size {
            0 => DEFAULT_REPLAY_WINDOW,
            s => s.clamp(64, MAX_REPLAY_WINDOW).next_multiple_of(64),
        };
        let slots = (size / BLOCK_BITS as usize + 1).next_power_of_two();
        ReplayWindow {
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            mask: slots as u64 - 1,
            size: size as u64,
            highest: AtomicU64::new(0),
        }
    }

    /// Window size in packets after rounding.
    pub fn size(&self) -> usize {
        self.size as usize
    }

    /// Highest sequence number accepted so far (0 before the first packet).
    pub fn highest(&self) -> u64 {
        self.highest.load(Ordering::Acquire)
    }

    /// The full sequence number a packet most likely carries, given only its
    /// low 32 bits: the candidate nearest the highest number seen.
    ///
    /// This is RFC 4303 Appendix A2.2 with one change. A2.2 puts every
    /// packet left of the window into the next 2^32 block, so a late packet
    /// costs a decryption, fails authentication and is counted as a forgery.
    /// Taking the nearest candidate gives the same answer for every number in
    /// the window or up to 2^31 ahead of it (more than any live peer can skip),
    /// and reports late packets as [`ReplayError::TooOld`] without
    /// decrypting. A wrong guess stays harmless either way: the high bits are
    /// authenticated, so the packet then fails authentication.
    pub fn infer(&self, seq_lo: u32, esn: bool) -> u64 {
        if !esn {
            return u64::from(seq_lo);
        }
        let highest = self.highest();
        // Distance from the highest number's low half, taken in the 32-bit
        // ring: within [-2^31, 2^31).
        let delta = seq_lo.wrapping_sub(highest as u32) as i32;
        // Near 0 or 2^64 the nearest candidate may not exist; the one in the
        // highest number's own block always does.
        let same_block = (highest & !u64::from(u32::MAX)) | u64::from(seq_lo);
        highest
            .checked_add_signed(i64::from(delta))
            .unwrap_or(same_block)
    }

    /// Whether `seq` would be accepted, without recording it; used before
    /// decryption so replayed packets cost no AEAD work.
    pub fn check(&self, seq: u64) -> Result<(), ReplayError> {
        self.in_window(seq)?;
        match self.slot(seq, self.slots[self.index(seq)].load(Ordering::Acquire)) {
            Slot::Same(word) if word & Self::bit(seq) != 0 => Err(ReplayError::Duplicate),
            Slot::Same(_) | Slot::Older => Ok(()),
            Slot::Newer => Err(ReplayError::TooOld),
        }
    }

    /// Checks `seq` again and records it, sliding the window when it is the
    /// new highest. Called only after authentication, so forged packets
    /// cannot move the window. Of concurrent calls with one number, exactly
    /// one succeeds.
    pub fn update(&self, seq: u64) -> Result<(), ReplayError> {
        self.in_window(seq)?;
        let slot = &self.slots[self.index(seq)];
        let mut current = slot.load(Ordering::Acquire);
        loop {
            let next = match self.slot(seq, current) {
                Slot::Same(word) if word & Self::bit(seq) != 0 => {
                    return Err(ReplayError::Duplicate)
                }
                Slot::Same(word) => word | Self::bit(seq),
                // The block it held is left of the window once `seq` is recorded: (slots - 1)
                // blocks cover more than the window.
                Slot::Older => Self::tag(seq) | Self::bit(seq),
                Slot::Newer => return Err(ReplayError::TooOld),
            };
            match slot.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
        self.highest.fetch_max(seq, Ordering::AcqRel);
        Ok(())
    }

    fn in_window(&self, seq: u64) -> Result<(), ReplayError> {
        if seq == 0 {
            return Err(ReplayError::Zero);
        }
        let highest = self.highest();
        if seq <= highest && highest - seq >= self.size {
            return Err(ReplayError::TooOld);
        }
        Ok(())
    }

    /// Compares the block a slot word holds with `seq`'s. Block numbers are kept mod 2^32:
    /// two blocks sharing a slot and both within 2^31 blocks (2^36 packets) of each other
    /// compare right, and numbers farther left than that were refused by the window check.
    /// A word without bits holds nothing (every slot starts so; a recorded block always has a
    /// bit), whatever its block number says.
    fn slot(&self, seq: u64, word: u64) -> Slot {
        if word as u32 == 0 {
            return Slot::Older;
        }
        let held = (word >> 32) as u32;
        let wanted = (seq / BLOCK_BITS) as u32;
        match wanted.wrapping_sub(held) as i32 {
            0 => Slot::Same(word),
            d if d > 0 => Slot::Older,
            _ => Slot::Newer,
        }
    }

    fn index(&self, seq: u64) -> usize {
        ((seq / BLOCK_BITS) & self.mask) as usize
    }

    fn tag(seq: u64) -> u64 {
        ((seq / BLOCK_BITS) as u32 as u64) << 32
    }

    fn bit(seq: u64) -> u64 {
        1u64 << (seq % BLOCK_BITS)
    }
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow::new(0)
    }
}

impl fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("size", &self.size)
            .field("highest", &self.highest())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn sizes_round() {
        assert_eq!(ReplayWindow::new(0).size(), 1024);
        assert_eq!(ReplayWindow::new(1).size(), 64);
        assert_eq!(ReplayWindow::new(64).size(), 64);
        assert_eq!(ReplayWindow::new(65).size(), 128);
        assert_eq!(ReplayWindow::new(1000).size(), 1024);
        assert_eq!(ReplayWindow::new(usize::MAX).size(), MAX_REPLAY_WINDOW);
        assert_eq!(ReplayWindow::default().size(), DEFAULT_REPLAY_WINDOW);
    }

    #[test]
    fn basic_accept_replay_old() {
        let w = ReplayWindow::new(64);
        assert_eq!(w.update(0), Err(ReplayError::Zero));
        assert_eq!(w.update(1), Ok(()));
        assert_eq!(w.update(1), Err(ReplayError::Duplicate));
        assert_eq!(w.update(100), Ok(()));
        assert_eq!(w.check(37), Ok(()));
        assert_eq!(w.check(36), Err(ReplayError::TooOld));
        assert_eq!(w.update(37), Ok(()));
        assert_eq!(w.update(37), Err(ReplayError::Duplicate));
        assert_eq!(w.highest(), 100);
        // A jump far beyond the ring clears everything.
        assert_eq!(w.update(1_000_000), Ok(()));
        assert_eq!(w.check(1_000_000 - 63), Ok(()));
        assert_eq!(w.check(1_000_000 - 64), Err(ReplayError::TooOld));
    }

    #[test]
    fn infer_without_esn_is_identity() {
        let w = ReplayWindow::new(64);
        w.update(5 << 32).unwrap();
        assert_eq!(w.infer(7, false), 7);
    }

    #[test]
    fn infer_cases() {
        let w = ReplayWindow::new(1024);
        // Before any packet: everything is in subspace 0.
        assert_eq!(w.infer(1, true), 1);
        assert_eq!(w.infer(u32::MAX, true), u64::from(u32::MAX));
        // Near the end of block 0.
        w.update(0xFFFF_FFF0).unwrap();
        assert_eq!(w.infer(0xFFFF_FFF5, true), 0xFFFF_FFF5);
        assert_eq!(w.infer(0xFFFF_FC00, true), 0xFFFF_FC00);
        assert_eq!(w.infer(3, true), 0x1_0000_0003);
        // Just after the wrap.
        w.update(0x1_0000_0002).unwrap();
        assert_eq!(w.infer(0xFFFF_FFF5, true), 0xFFFF_FFF5);
        assert_eq!(w.infer(1, true), 0x1_0000_0001);
        assert_eq!(w.infer(0x8000_0000, true), 0x1_8000_0000);
        // Left of the window: in the past, not 2^32 ahead.
        assert_eq!(w.infer(0xF000_0000, true), 0xF000_0000);
        w.update(0x1_0000_1000).unwrap();
        assert_eq!(w.infer(0x10, true), 0x1_0000_0010);
        assert_eq!(w.check(0x1_0000_0010), Err(ReplayError::TooOld));
        // No block before the first or after the last.
        let w = ReplayWindow::new(64);
        w.update(5).unwrap();
        assert_eq!(w.infer(0xFFFF_FF00, true), 0xFFFF_FF00);
        let w = ReplayWindow::new(64);
        w.update(u64::MAX - 1).unwrap();
        assert_eq!(w.infer(u32::MAX, true), u64::MAX);
        assert_eq!(w.infer(0, true), u64::MAX << 32);
    }

    /// Several workers opening copies of the same packets at once (as when a
    /// peer's datagrams are duplicated onto several sockets): each number is
    /// accepted exactly once, whoever gets it first, while the window slides.
    #[test]
    fn concurrent_copies_are_accepted_once() {
        const N: u64 = 50_000;
        let w = ReplayWindow::new(1024);
        let accepted: Vec<Vec<u64>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4u64)
                .map(|t| {
                    let w = &w;
                    scope.spawn(move || {
                        let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ t;
                        let mut order: Vec<u64> = (1..=N).collect();
                        // Local reordering: swap neighbours at random.
                        for i in 1..order.len() {
                            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1);
                            if rng >> 63 == 1 {
                                order.swap(i - 1, i);
                            }
                        }
                        order.into_iter().filter(|&q| w.update(q).is_ok()).collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut all: Vec<u64> = accepted.into_iter().flatten().collect();
        all.sort_unstable();
        let expected: Vec<u64> = (1..=N).collect();
        assert_eq!(all, expected, "every number accepted exactly once");
        assert_eq!(w.highest(), N);
    }

    proptest! {
        /// The ring must agree with the obvious model: a set of seen numbers
        /// and the highest one.
        #[test]
        fn matches_model(
            size in prop_oneof![Just(64usize), Just(128), Just(1024), 1usize..300],
            start in prop_oneof![Just(0u64), Just(u64::from(u32::MAX) - 200), Just(u64::MAX - 5000)],
            steps in proptest::collection::vec(-300i64..300, 1..300),
        ) {
            let w = ReplayWindow::new(size);
            let wsize = w.size() as u64;
            let mut seen = HashSet::new();
            let mut highest = 0u64;
            let mut cur = start;
            for step in steps {
                cur = cur.saturating_add_signed(step);
                let expected = if cur == 0 {
                    Err(ReplayError::Zero)
                } else if cur > highest {
                    Ok(())
                } else if highest - cur >= wsize {
                    Err(ReplayError::TooOld)
                } else if seen.contains(&cur) {
                    Err(ReplayError::Duplicate)
                } else {
                    Ok(())
                };
                prop_assert_eq!(w.check(cur), expected);
                prop_assert_eq!(w.update(cur), expected);
                if expected.is_ok() {
                    seen.insert(cur);
                    highest = highest.max(cur);
                }
                prop_assert_eq!(w.highest(), highest);
            }
        }

        /// Whatever was accepted, inference maps the low bits of any number
        /// inside or just right of the window back to that number.
        #[test]
        fn infer_recovers_nearby(
            highest in 1u64..u64::MAX - (1 << 31),
            offset in -1023i64..(1 << 30),
        ) {
            let w = ReplayWindow::new(1024);
            w.update(highest).unwrap();
            let seq = highest.saturating_add_signed(offset);
            prop_assume!(seq > 0);
            prop_assert_eq!(w.infer(seq as u32, true), seq);
        }
    }
}
