//! Counters written by one worker each and summed when read.
//!
//! Every worker owns one cache-line-aligned slot of each counter set, so the fast path never
//! shares a written cache line with another core and never needs an atomic read-modify-write:
//! a slot has exactly one writer, so a relaxed load + store is enough. Readers (status, metrics)
//! sum the slots and may see a value a few packets old, which is all a counter promises.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why a packet was dropped. One list, so status output, metrics and docs agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum DropReason {
    /// Sequence number already seen or left of the anti-replay window.
    Replay,
    /// ICV check failed: wrong key, corruption or forgery.
    Authentication,
    /// ESP with an SPI we have no inbound SA for.
    UnknownSpi,
    /// Not parseable: short datagram, reserved SPI, bad padding, bad inner header.
    Malformed,
    /// Decrypted packet whose inner addresses are outside the SA's traffic selectors: one site
    /// must not be able to inject traffic as another.
    Selector,
    /// Packet from the TUN device that matches no connection's selectors.
    NoPolicy,
    /// Matches a connection whose tunnel has no outbound SA (yet): fail closed, never clear text.
    NoSa,
    /// Outbound SA used up its sequence numbers; it must be rekeyed.
    SeqExhausted,
    /// ESP dummy packet (next header 59), dropped by design (RFC 4303 2.6).
    Dummy,
    /// A send or TUN write failed.
    Io,
    /// Over the connection's bandwidth share (gateway.bandwidth).
    Shaped,
    /// Larger than the tunnel carries in one datagram, and DF (or IPv6): the sender gets an
    /// ICMP "fragmentation needed" / "packet too big" instead (see `icmp_too_big`).
    TooBig,
    /// IPv6 from the TUN device with a link-scoped destination (ff01::/16, ff02::/16 or
    /// fe80::/10) that matches no policy: what the kernel sends into any IPv6-enabled device by
    /// itself (MLD reports from `::` to ff02::16 when it comes up, with forwarding on). It can
    /// never be tunnel traffic; counted apart so that `no_policy` means a real miss.
    LinkLocal,
}

impl DropReason {
    pub const COUNT: usize = 13;
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::Replay,
        DropReason::Authentication,
        DropReason::UnknownSpi,
        DropReason::Malformed,
        DropReason::Selector,
        DropReason::NoPolicy,
        DropReason::NoSa,
        DropReason::SeqExhausted,
        DropReason::Dummy,
        DropReason::Io,
        DropReason::Shaped,
        DropReason::TooBig,
        DropReason::LinkLocal,
    ];

    /// Name used in status JSON and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Replay => "replay",
            DropReason::Authentication => "authentication",
            DropReason::UnknownSpi => "unknown_spi",
            DropReason::Malformed => "malformed",
            DropReason::Selector => "selector",
            DropReason::NoPolicy => "no_policy",
            DropReason::NoSa => "no_sa",
            DropReason::SeqExhausted => "seq_exhausted",
            DropReason::Dummy => "dummy",
            DropReason::Io => "io",
            DropReason::Shaped => "shaped",
            DropReason::TooBig => "too_big",
            DropReason::LinkLocal => "link_local",
        }
    }
}

#[inline]
fn bump(c: &AtomicU64, n: u64) {
    // Single writer per slot: no read-modify-write needed.
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

/// Drop counters by reason.
#[derive(Default)]
pub struct Drops([AtomicU64; DropReason::COUNT]);

impl Drops {
    #[inline]
    pub fn add(&self, r: DropReason) {
        bump(&self.0[r as usize], 1);
    }
}

/// Per-SA (and so per-direction, per-tunnel) packet counters.
#[derive(Default)]
pub struct SaCounters {
    packets: AtomicU64,
    bytes: AtomicU64,
    drops: Drops,
}

impl SaCounters {
    #[inline]
    pub fn packet(&self, bytes: usize) {
        bump(&self.packets, 1);
        bump(&self.bytes, bytes as u64);
    }

    #[inline]
    pub fn drop(&self, r: DropReason) {
        self.drops.add(r);
    }
}

/// Gateway-wide counters of one worker.
#[derive(Default)]
pub struct GatewayCounters {
    tun_rx: AtomicU64,
    tun_tx: AtomicU64,
    tun_rx_super: AtomicU64,
    tun_tx_super: AtomicU64,
    udp_rx: AtomicU64,
    udp_tx: AtomicU64,
    udp_rx_super: AtomicU64,
    udp_tx_super: AtomicU64,
    ike: AtomicU64,
    keepalives: AtomicU64,
    mss_clamped: AtomicU64,
    gro_bad_checksums: AtomicU64,
    icmp_too_big: AtomicU64,
    icmp_limited: AtomicU64,
    inner_fragmented: AtomicU64,
    drops: Drops,
}

impl GatewayCounters {
    #[inline]
    pub fn tun_rx(&self, n: u64) {
        bump(&self.tun_rx, n);
    }
    #[inline]
    pub fn tun_tx(&self, n: u64) {
        bump(&self.tun_tx, n);
    }
    /// One TSO/USO super-packet read from the TUN device (its segments count in `tun_rx`).
    #[inline]
    pub fn tun_rx_super(&self) {
        bump(&self.tun_rx_super, 1);
    }
    /// One coalesced (GRO) write to the TUN device (its packets count in `tun_tx`).
    #[inline]
    pub fn tun_tx_super(&self) {
        bump(&self.tun_tx_super, 1);
    }
    #[inline]
    pub fn udp_rx(&self, n: u64) {
        bump(&self.udp_rx, n);
    }
    #[inline]
    pub fn udp_tx(&self, n: u64) {
        bump(&self.udp_tx, n);
    }
    /// One coalesced (UDP GRO) receive: its datagrams count in `udp_rx`.
    #[inline]
    pub fn udp_rx_super(&self) {
        bump(&self.udp_rx_super, 1);
    }
    /// `n` segmented (UDP GSO) sends: their datagrams count in `udp_tx`.
    #[inline]
    pub fn udp_tx_super(&self, n: u64) {
        bump(&self.udp_tx_super, n);
    }
    #[inline]
    pub fn ike(&self) {
        bump(&self.ike, 1);
    }
    #[inline]
    pub fn keepalive(&self) {
        bump(&self.keepalives, 1);
    }
    /// A SYN or SYN-ACK whose MSS was lowered to fit its tunnel (either direction).
    #[inline]
    pub fn mss_clamped(&self) {
        bump(&self.mss_clamped, 1);
    }
    /// Decrypted packets the coalescers did not merge because a checksum failed (written alone,
    /// unchanged, for the receiving stack to drop). Zero is not bumped: called once per batch.
    #[inline]
    pub fn gro_bad_checksums(&self, n: u64) {
        if n > 0 {
            bump(&self.gro_bad_checksums, n);
        }
    }
    /// An ICMP "fragmentation needed" / "packet too big" written to the site.
    #[inline]
    pub fn icmp_too_big(&self) {
        bump(&self.icmp_too_big, 1);
    }
    /// One not written: over the worker's ICMP rate limit.
    #[inline]
    pub fn icmp_limited(&self) {
        bump(&self.icmp_limited, 1);
    }
    /// A packet without DF cut into fragments to fit its tunnel.
    #[inline]
    pub fn inner_fragmented(&self) {
        bump(&self.inner_fragmented, 1);
    }
    #[inline]
    pub fn drop(&self, r: DropReason) {
        self.drops.add(r);
    }
}

#[repr(align(128))]
struct Slot<T>(T);

/// One `T` per worker thread; worker `i` writes only slot `i`.
pub struct PerWorker<T> {
    slots: Box<[Slot<T>]>,
}

impl<T: Default> PerWorker<T> {
    pub fn new(workers: usize) -> Self {
        PerWorker {
            slots: (0..workers.max(1)).map(|_| Slot(T::default())).collect(),
        }
    }
}

impl<T> PerWorker<T> {
    /// The slot of worker `w`. Out-of-range ids map onto the last slot rather than panic; the
    /// dataplane never hands those out, but a miscount must not take the fast path down.
    #[inline]
    pub fn get(&self, w: usize) -> &T {
        &self.slots[w.min(self.slots.len() - 1)].0
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().map(|s| &s.0)
    }
}

/// Summed drop counters, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropTotals(pub [u64; DropReason::COUNT]);

impl DropTotals {
    pub fn get(&self, r: DropReason) -> u64 {
        self.0[r as usize]
    }

    fn add(&mut self, d: &Drops) {
        for (t, c) in self.0.iter_mut().zip(d.0.iter()) {
            *t += c.load(Relaxed);
        }
    }

    pub fn merge(&mut self, other: &DropTotals) {
        for (t, o) in self.0.iter_mut().zip(other.0.iter()) {
            *t += o;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(move |r| (*r, self.get(*r)))
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SaTotals {
    pub packets: u64,
    pub bytes: u64,
    pub drops: DropTotals,
}

impl PerWorker<SaCounters> {
    pub fn totals(&self) -> SaTotals {
        let mut t = SaTotals::default();
        for s in self.iter() {
            t.packets += s.packets.load(Relaxed);
            t.bytes += s.bytes.load(Relaxed);
            t.drops.add(&s.drops);
        }
        t
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatewayTotals {
    pub tun_rx_packets: u64,
    pub tun_tx_packets: u64,
    /// Super-packets read (TSO/USO) and coalesced writes: whether TUN offload is doing its job.
    pub tun_rx_super_packets: u64,
    pub tun_tx_super_packets: u64,
    pub udp_rx_packets: u64,
    pub udp_tx_packets: u64,
    /// Coalesced receives (UDP GRO) and segmented sends (UDP GSO) on the ESP sockets: whether
    /// UDP offload is doing its job.
    pub udp_rx_super_packets: u64,
    pub udp_tx_super_packets: u64,
    pub ike_packets: u64,
    pub keepalives: u64,
    /// SYNs whose MSS was clamped; ICMP too-big errors sent to the site, and those the rate
    /// limit held back.
    pub mss_clamped: u64,
    /// Decrypted packets not coalesced because a checksum failed.
    pub gro_bad_checksums: u64,
    pub icmp_too_big: u64,
    pub icmp_limited: u64,
    /// Packets without DF cut into fragments before sealing.
    pub inner_fragmented: u64,
    pub drops: DropTotals,
}

impl PerWorker<GatewayCounters> {
    pub fn totals(&self) -> GatewayTotals {
        let mut t = GatewayTotals::default();
        for s in self.iter() {
            t.tun_rx_packets += s.tun_rx.load(Relaxed);
            t.tun_tx_packets += s.tun_tx.load(Relaxed);
            t.tun_rx_super_packets += s.tun_rx_super.load(Relaxed);
            t.tun_tx_super_packets += s.tun_tx_super.load(Relaxed);
            t.udp_rx_packets += s.udp_rx.load(Relaxed);
            t.udp_tx_packets += s.udp_tx.load(Relaxed);
            t.udp_rx_super_packets += s.udp_rx_super.load(Relaxed);
            t.udp_tx_super_packets += s.udp_tx_super.load(Relaxed);
            t.ike_packets += s.ike.load(Relaxed);
            t.keepalives += s.keepalives.load(Relaxed);
            t.mss_clamped += s.mss_clamped.load(Relaxed);
            t.gro_bad_checksums += s.gro_bad_checksums.load(Relaxed);
            t.icmp_too_big += s.icmp_too_big.load(Relaxed);
            t.icmp_limited += s.icmp_limited.load(Relaxed);
            t.inner_fragmented += s.inner_fragmented.load(Relaxed);
            t.drops.add(&s.drops);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_worker_slots_sum() {
        let c: PerWorker<SaCounters> = PerWorker::new(3);
        c.get(0).packet(100);
        c.get(2).packet(50);
        c.get(2).drop(DropReason::Replay);
        c.get(7).drop(DropReason::Replay); // clamps, never panics
        let t = c.totals();
        assert_eq!((t.packets, t.bytes), (2, 150));
        assert_eq!(t.drops.get(DropReason::Replay), 2);
        assert_eq!(t.drops.get(DropReason::Authentication), 0);
    }

    #[test]
    fn reason_table_is_consistent() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }
}
