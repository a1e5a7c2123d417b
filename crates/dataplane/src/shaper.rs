//! Bandwidth sharing: one token bucket per connection, shared by every worker that sends for
//! it. The control plane measures each connection's offered load and sets the buckets' rates
//! (weighted fair shares of the gateway's cap, see the daemon's `share` module) every 100 ms;
//! the fast path only takes tokens, so a packet costs two atomic operations when sharing is
//! on and nothing when it is off.
//!
//! Packets over the rate are dropped and counted (`shaped`): a bucket polices rather than
//! queues, which keeps the fast path free of per-connection queues and timers. TCP reads the
//! drops as congestion and settles at its share; the bucket's depth (50 ms at the rate, at
//! least 64 KiB) absorbs the bursts a window of packets makes.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// Nanoseconds since the first call: the buckets' clock.
#[inline]
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

#[derive(Debug, Default)]
pub struct Bucket {
    /// Bytes per second; 0 = closed.
    rate: AtomicU64,
    /// Tokens in bytes (may dip below zero by one packet under a race; refills repay it).
    tokens: AtomicI64,
    /// When tokens were last added.
    last_ns: AtomicU64,
    /// Bytes and packets offered (admitted or not): the control plane's demand measure.
    offered_bytes: AtomicU64,
    offered_packets: AtomicU64,
    /// Packets dropped for want of tokens.
    dropped: AtomicU64,
}

impl Bucket {
    /// The depth of the bucket at `rate` bytes/s: 50 ms of traffic, at least 64 KiB.
    fn depth(rate: u64) -> i64 {
        (rate / 20).max(64 * 1024) as i64
    }

    pub fn new(rate_bytes_per_s: u64) -> Bucket {
        let b = Bucket::default();
        b.set_rate(rate_bytes_per_s);
        b.tokens
            .store(Bucket::depth(rate_bytes_per_s), Ordering::Relaxed);
        b.last_ns.store(now_ns(), Ordering::Relaxed);
        b
    }

    pub fn set_rate(&self, rate_bytes_per_s: u64) {
        self.rate.store(rate_bytes_per_s, Ordering::Relaxed);
    }

    pub fn rate(&self) -> u64 {
        self.rate.load(Ordering::Relaxed)
    }

    /// Takes `bytes` tokens if the bucket has them at `now`; false means drop the packet.
    #[inline]
    pub fn admit(&self, bytes: usize, now: u64) -> bool {
        self.offered_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.offered_packets.fetch_add(1, Ordering::Relaxed);
        let rate = self.rate.load(Ordering::Relaxed);
        // Refill: whoever moves `last_ns` forward adds the tokens for the elapsed time.
        let last = self.last_ns.load(Ordering::Relaxed);
        if now > last
            && self
                .last_ns
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let add = ((now - last) as u128 * rate as u128 / 1_000_000_000) as i64;
            let depth = Bucket::depth(rate);
            let _ = self
                .tokens
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                    Some((t.saturating_add(add)).min(depth))
                });
        }
        let need = bytes as i64;
        let ok = self
            .tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                (t >= need).then_some(t - need)
            })
            .is_ok();
        if !ok {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// (offered bytes, offered packets, dropped packets) since the bucket was made.
    pub fn counters(&self) -> (u64, u64, u64) {
        (
            self.offered_bytes.load(Ordering::Relaxed),
            self.offered_packets.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_the_rate_and_drops_the_rest() {
        // 1 MB/s: over one simulated second of 1000-byte packets offered at 2 MB/s, about
        // 1 MB (plus the initial depth) gets through.
        let b = Bucket::new(1_000_000);
        let t0 = now_ns();
        let mut admitted = 0u64;
        for i in 0..2000u64 {
            if b.admit(1000, t0 + i * 500_000) {
                admitted += 1000;
            }
        }
        let depth = Bucket::depth(1_000_000) as u64;
        assert!(
            admitted >= 1_000_000 && admitted <= 1_000_000 + depth + 1000,
            "{admitted}"
        );
        let (offered, packets, dropped) = b.counters();
        assert_eq!((offered, packets), (2_000_000, 2000));
        assert_eq!(dropped, 2000 - admitted / 1000);
    }

    #[test]
    fn closed_bucket_drains_its_depth_then_drops() {
        let b = Bucket::new(0);
        let t = now_ns();
        let depth = Bucket::depth(0) as usize;
        assert!(b.admit(depth, t));
        assert!(!b.admit(1, t + 1_000_000_000));
    }
}
