//! One fast-path worker: moves packets TUN -> ESP -> UDP and UDP -> ESP -> TUN in batches.
//!
//! The life of a packet. Outbound: [`Worker::outbound`] reads the TUN device into a batch
//! buffer behind [`HEADROOM`] bytes (an offloading device's TSO/USO super-packet is split by
//! [`offload::prepare`] first); [`seal_one`] parses the inner header ([`inner_addrs`]), finds
//! the policy (longest prefix, [`Tables::route_id`]) and its tunnel (active-active: by
//! [`crate::flow_hash`]), takes the tunnel's outbound SA (none: dropped, and a trapped tunnel
//! asks for one), lets the shaper admit it and seals it in place; [`account_sealed`] counts
//! it; [`Worker::send_sealed`] sends the batch per socket with one sendmmsg (GSO: one message
//! per same-sized run to a peer). Inbound: [`Worker::inbound`] receives a batch with recvmmsg
//! (GRO: one buffer holds several datagrams); [`open_one`] classifies each (IKE goes to the
//! control plane, NAT keepalives are counted), looks up the SPI ([`Tables::inbound`]), checks
//! replay and decrypts in place, and checks the inner addresses against the SA's selectors;
//! `deliver` writes the packet to the TUN device (offloading device: a flow's run merged by
//! [`crate::gro`] into one write). Sealing and opening work in place in the batch's buffers.
//! The first packet each way through an SA whose [`crate::Watch`] the control plane armed is
//! reported to it, once per arming.
//!
//! A worker waits in its epoll set on the shared TUN device, its own sockets and the
//! route-based connections' devices (`interfaces.rs`), then drains each ready one in batches
//! (a device's packets look only at its own policies, [`seal_in`]): up to `batch` packets per syscall on the UDP side (recvmmsg/sendmmsg),
//! one table snapshot load per batch, and no allocation, lock or log line per packet (an inbound
//! SA's replay window is lock-free: one compare-and-swap per packet).

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use ironsec_esp::{
    classify, Datagram, OpenError, SealError, HEADROOM, MAX_TRAILER, NEXT_HEADER_IPV4,
    NEXT_HEADER_IPV6,
};
use socket2::Socket;

use crate::activity::{Direction, Watch};
use crate::counters::{DropReason, GatewayCounters, PerWorker};
use crate::gro::Coalescers;
use crate::interfaces::{Devices, Epoll, IfaceId, Token};
use crate::mtu::{self, IcmpLimiter, TOO_BIG_BUF};
use crate::offload::{self, VnetHdr, VNET_HDR_LEN};
use crate::packet::{inner_addrs, InnerAddr};
use crate::tables::{InboundEntry, OutboundEntry, Tables, Trap, TunnelId};
use crate::tun::Tun;
use crate::udp::{RecvBatch, SendSlots};

/// How long poll() may sleep before the worker looks at the stop flag again.
const POLL_MS: i32 = 100;
/// Pacing of [`Worker::report_unknown_spi`]: ten reports a second per worker at most.
const UNKNOWN_SPI_REPORT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);
/// Pacing of [`Worker::report_peer_moved`]: ten reports a second per worker at most, until
/// the control plane's new tables send to the new address and the reports stop by themselves.
const PEER_MOVED_REPORT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

pub(crate) struct Worker {
    pub id: usize,
    pub tun: Arc<Tun>,
    /// Route-based connections' devices (`interfaces.rs`); their queues for this worker are
    /// in `epoll`, registered by the control plane as devices come and go.
    pub devices: Arc<ArcSwap<Devices>>,
    /// What this worker waits in: the shared TUN device's queue, its sockets, and the
    /// route-based devices' queues.
    pub epoll: Arc<Epoll>,
    pub sockets: Vec<Socket>,
    pub tables: Arc<ArcSwap<Tables>>,
    pub counters: Arc<PerWorker<GatewayCounters>>,
    pub stop: Arc<AtomicBool>,
    pub batch: usize,
    pub max_packet: usize,
    /// Send same-sized ESP packets to one peer as one GSO message.
    pub gso: bool,
    /// The sockets hand over coalesced datagrams (UDP GRO): receive buffers must hold 64 KiB.
    pub gro: bool,
    /// Where IKE messages arriving on the NAT-T port go: the control plane.
    pub ike_sink: Option<crate::IkeSink>,
    /// Where trapped tunnels without an SA are reported: the control plane negotiates.
    pub acquire_sink: Option<crate::AcquireSink>,
    /// Where ESP with an unknown SPI is reported (paced: see [`crate::UnknownSpiSink`]).
    pub unknown_spi_sink: Option<crate::UnknownSpiSink>,
    pub unknown_spi_reported: std::cell::Cell<Option<std::time::Instant>>,
    /// Where the first packet through an armed [`Watch`] is reported.
    pub activity_sink: Option<crate::ActivitySink>,
    /// Where an authenticated packet from a NAT peer's new address is reported (paced: see
    /// [`crate::PeerMovedSink`]).
    pub peer_moved_sink: Option<crate::PeerMovedSink>,
    pub peer_moved_reported: std::cell::Cell<Option<std::time::Instant>>,
    /// The address each socket is bound to (same order as `sockets`).
    pub local_addrs: Vec<std::net::SocketAddr>,
    /// Paces the ICMP "too big" errors this worker writes back to the site.
    pub icmp_limiter: IcmpLimiter,
}

/// Where a worker writes an ICMP error before sending it to the TUN device: room for the
/// virtio-net header an offloading device wants first. Owned by the worker's loop, so an
/// oversized packet costs no allocation.
pub(crate) type IcmpScratch = [u8; VNET_HDR_LEN + TOO_BIG_BUF];

/// The device a packet was read from: the TUN device to answer on and whose policies apply.
#[derive(Clone, Copy)]
struct Dev<'a> {
    tun: &'a Tun,
    scope: Option<IfaceId>,
}

/// What [`Worker::seal`] did with a packet.
enum Step {
    /// Sealed: queue it for sending.
    Queue(Sealed),
    /// Dropped or answered; counted.
    Done,
    /// Cut it into these fragments first ([`Worker::fragment`]).
    Fragment(mtu::Fragments),
}

/// The outbound batch's buffers, what is sealed in them, and the send slots: what
/// [`Worker::fragment`] needs to make room for fragments.
struct OutBatch<'a> {
    bufs: &'a mut [Box<[u8]>],
    meta: &'a mut Vec<Queued>,
    send: &'a mut SendSlots,
}

/// The outbound path's buffers, owned by the worker's loop and lent to each drain of a
/// device.
struct OutScratch<'a> {
    bufs: &'a mut Vec<Box<[u8]>>,
    meta: &'a mut Vec<Queued>,
    send: &'a mut SendSlots,
    /// Where an offloading device's super-packet is read before being split.
    big: &'a mut Vec<u8>,
    icmp: &'a mut IcmpScratch,
}

/// A sealed packet waiting in the outbound batch: which of the batch's buffers holds it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Queued {
    buf: usize,
    sealed: Sealed,
}

/// Why a worker stopped on its own: the daemon treats it as fatal.
#[derive(Debug)]
pub(crate) struct WorkerFailure(pub String);

impl Worker {
    pub fn run(self) -> Result<(), WorkerFailure> {
        let mut out_bufs: Vec<Box<[u8]>> = (0..self.batch)
            .map(|_| vec![0u8; HEADROOM + self.max_packet + MAX_TRAILER].into_boxed_slice())
            .collect();
        let mut out_meta: Vec<Queued> = Vec::with_capacity(self.batch);
        let mut send = SendSlots::new(self.batch).with_gso(self.gso);
        // Decrypted TCP segments merged for one TUN write (offloading devices only).
        let mut co = Coalescers::default();
        // Where a TSO super-packet from an offloading TUN device is read before being split.
        let mut big = vec![0u8; VNET_HDR_LEN + 65_535];
        let recv_len = if self.gro {
            65_535
        } else {
            self.max_packet + 512
        };
        let mut recv = RecvBatch::new(self.batch, recv_len);
        let mut icmp: IcmpScratch = [0u8; VNET_HDR_LEN + TOO_BIG_BUF];

        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 64];
        let gw = self.counters.get(self.id);
        #[cfg(feature = "fault-injection")]
        let fault = fault::Trigger::from_env(self.id);

        while !self.stop.load(Ordering::Relaxed) {
            #[cfg(feature = "fault-injection")]
            if let Some(f) = &fault {
                if f.fire() {
                    return Ok(());
                }
            }
            let n = match self.epoll.wait(&mut events, POLL_MS) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(WorkerFailure(format!("epoll_wait: {e}"))),
            };
            let mut out = OutScratch {
                bufs: &mut out_bufs,
                meta: &mut out_meta,
                send: &mut send,
                big: &mut big,
                icmp: &mut icmp,
            };
            for ev in &events[..n] {
                let (flags, data) = (ev.events, ev.u64);
                let failed = flags & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0;
                let readable = flags & libc::EPOLLIN as u32 != 0;
                match Token::from_u64(data) {
                    Some(Token::SharedTun) => {
                        if failed {
                            return Err(WorkerFailure(format!(
                                "TUN device {} failed (deleted?)",
                                self.tun.name()
                            )));
                        }
                        if readable {
                            self.outbound(&self.tun, None, &mut out, gw)?;
                        }
                    }
                    Some(Token::Socket(i)) if readable && i < self.sockets.len() => {
                        self.inbound(i, &mut recv, gw, &mut co)?;
                    }
                    Some(Token::Iface(id)) => {
                        let devices = self.devices.load();
                        // Removed since the wait began: nothing to read from it any more.
                        let Some(tun) = devices.get(id).cloned() else {
                            continue;
                        };
                        drop(devices);
                        if failed {
                            // Deleted from outside (`ip link del`): stop waiting on it; the
                            // control plane's own removal finds it gone.
                            self.epoll.remove(tun.fd(self.id));
                            continue;
                        }
                        if readable {
                            self.outbound(&tun, Some(id), &mut out, gw)?;
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Drains a TUN device (the shared one, `scope` `None`, or a route-based connection's):
    /// read, look up policy among the device's, seal in place, send in batches.
    fn outbound(
        &self,
        tun: &Tun,
        scope: Option<IfaceId>,
        scratch: &mut OutScratch<'_>,
        gw: &GatewayCounters,
    ) -> Result<(), WorkerFailure> {
        let OutScratch {
            bufs,
            meta,
            send,
            big,
            icmp,
        } = scratch;
        let (bufs, big): (&mut [Box<[u8]>], &mut [u8]) = (&mut bufs[..], &mut big[..]);
        let dev = Dev { tun, scope };
        loop {
            let tables = self.tables.load();
            meta.clear();
            let mut used = 0;
            let mut drained = false;
            while used < bufs.len() {
                // With offload one read may be a TSO super-packet: read it aside, then split
                // it into the batch's buffers; else read straight into the next buffer.
                let into: &mut [u8] = if tun.vnet() {
                    &mut big[..]
                } else {
                    &mut bufs[used][HEADROOM..HEADROOM + self.max_packet]
                };
                let n = match tun.recv(self.id, into) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        drained = true;
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(WorkerFailure(format!(
                            "reading TUN device {}: {e}",
                            tun.name()
                        )))
                    }
                };
                if !tun.vnet() {
                    gw.tun_rx(1);
                    used = match self.seal(&tables, dev, &mut bufs[used], n, gw, icmp) {
                        Step::Queue(sealed) => {
                            meta.push(Queued { buf: used, sealed });
                            used + 1
                        }
                        Step::Done => used + 1,
                        Step::Fragment(plan) => {
                            let out = OutBatch { bufs, meta, send };
                            self.fragment(&tables, scope, out, gw, used, n, plan)
                        }
                    };
                    continue;
                }
                let Some(h) = VnetHdr::parse(&big[..n]) else {
                    gw.drop(DropReason::Malformed);
                    continue;
                };
                let pkt = &mut big[VNET_HDR_LEN..n];
                let segments = match offload::prepare(pkt, &h) {
                    offload::Read::Malformed => {
                        gw.tun_rx(1);
                        gw.drop(DropReason::Malformed);
                        continue;
                    }
                    offload::Read::Packet => None,
                    offload::Read::Segments(split) => {
                        gw.tun_rx_super();
                        Some(split)
                    }
                };
                // Every segment counts as read, sealed or dropped: one counter update per read.
                let count = segments.map_or(1, |s| s.count());
                gw.tun_rx(count as u64);
                for i in 0..count {
                    if used == bufs.len() {
                        // A super-packet larger than the batch: send what is sealed first.
                        self.send_sealed(&tables, bufs, meta, send, gw);
                        meta.clear();
                        used = 0;
                    }
                    let out = &mut bufs[used][HEADROOM..HEADROOM + self.max_packet];
                    let len = match segments {
                        None if pkt.len() <= out.len() => {
                            out[..pkt.len()].copy_from_slice(pkt);
                            pkt.len()
                        }
                        None => 0,
                        Some(split) => split.segment(pkt, i, out),
                    };
                    if len == 0 {
                        gw.drop(DropReason::Malformed);
                        continue;
                    }
                    used = match self.seal(&tables, dev, &mut bufs[used], len, gw, icmp) {
                        Step::Queue(sealed) => {
                            meta.push(Queued { buf: used, sealed });
                            used + 1
                        }
                        Step::Done => used + 1,
                        Step::Fragment(plan) => {
                            let out = OutBatch { bufs, meta, send };
                            self.fragment(&tables, scope, out, gw, used, len, plan)
                        }
                    };
                }
            }
            self.send_sealed(&tables, bufs, meta, send, gw);
            if drained {
                return Ok(());
            }
        }
    }

    /// Seals one packet read from the TUN device ([`seal_one`]), counts the verdict and, for a
    /// packet too big for its tunnel, writes the ICMP error back to the site.
    #[inline]
    fn seal(
        &self,
        tables: &Tables,
        dev: Dev<'_>,
        buf: &mut [u8],
        n: usize,
        gw: &GatewayCounters,
        icmp: &mut IcmpScratch,
    ) -> Step {
        let verdict = seal_in(tables, dev.scope, buf, n);
        match verdict {
            Outbound::TooBig { mtu, .. } => {
                self.too_big(dev.tun, &buf[HEADROOM..HEADROOM + n], mtu, gw, icmp)
            }
            Outbound::Fragment { plan, .. } => return Step::Fragment(plan),
            _ => {}
        }
        match account_sealed(self.id, verdict, gw, self.acquire_sink.as_ref()) {
            Some(s) => Step::Queue(s),
            None => Step::Done,
        }
    }

    /// Cuts the packet in `out.bufs[at]` (`n` bytes, no DF, longer than its tunnel carries)
    /// into `plan`'s fragments in the buffers from `at` on and seals each; when the batch has
    /// not that many buffers left it sends what is sealed first. Returns the next free buffer.
    #[cold]
    #[allow(clippy::too_many_arguments)]
    fn fragment(
        &self,
        tables: &Tables,
        scope: Option<IfaceId>,
        out: OutBatch<'_>,
        gw: &GatewayCounters,
        mut at: usize,
        n: usize,
        plan: mtu::Fragments,
    ) -> usize {
        let OutBatch { bufs, meta, send } = out;
        if plan.count > bufs.len() {
            // A batch of fewer buffers than fragments (batch = 1): cannot be cut here.
            gw.drop(DropReason::TooBig);
            return at + 1;
        }
        if at + plan.count > bufs.len() {
            self.send_sealed(tables, bufs, meta, send, gw);
            meta.clear();
            if at != 0 {
                let (first, rest) = bufs.split_at_mut(at);
                first[0][HEADROOM..HEADROOM + n].copy_from_slice(&rest[0][HEADROOM..HEADROOM + n]);
            }
            at = 0;
        }
        let (head, tail) = bufs.split_at_mut(at + 1);
        let pkt = &mut head[at][HEADROOM..HEADROOM + n];
        let mut lens = [0usize; mtu::Fragments::MAX];
        for (k, len) in lens.iter_mut().enumerate().take(plan.count).skip(1) {
            *len = plan.write(pkt, k, &mut tail[k - 1][HEADROOM..]);
        }
        lens[0] = plan.first_in_place(pkt);
        gw.inner_fragmented();
        for (k, len) in lens.iter().enumerate().take(plan.count) {
            let verdict = seal_in(tables, scope, &mut bufs[at + k], *len);
            if let Some(sealed) = account_sealed(self.id, verdict, gw, self.acquire_sink.as_ref()) {
                meta.push(Queued {
                    buf: at + k,
                    sealed,
                });
            }
        }
        at + plan.count
    }

    /// Answers an inner packet that does not fit its tunnel with ICMP "fragmentation needed"
    /// (IPv4) or "packet too big" (IPv6) carrying `mtu`, within the worker's rate limit.
    #[cold]
    fn too_big(
        &self,
        tun: &Tun,
        pkt: &[u8],
        mtu: u16,
        gw: &GatewayCounters,
        icmp: &mut IcmpScratch,
    ) {
        if !self.icmp_limiter.admit(crate::shaper::now_ns()) {
            gw.icmp_limited();
            return;
        }
        let Some(len) = mtu::write_too_big(pkt, mtu, &mut icmp[VNET_HDR_LEN..]) else {
            return;
        };
        // An offloading device wants a virtio-net header first: zeros, checksums done.
        let start = if tun.vnet() {
            icmp[..VNET_HDR_LEN].fill(0);
            0
        } else {
            VNET_HDR_LEN
        };
        match tun.send(self.id, &icmp[start..VNET_HDR_LEN + len]) {
            Ok(_) => gw.icmp_too_big(),
            Err(_) => gw.drop(DropReason::Io),
        }
    }

    /// Sends the sealed packets of `meta` in batches per socket.
    fn send_sealed(
        &self,
        tables: &Tables,
        bufs: &[Box<[u8]>],
        meta: &mut [Queued],
        send: &mut SendSlots,
        gw: &GatewayCounters,
    ) {
        // Same tunnel next to each other (stable: a tunnel's packets keep their order), so
        // GSO can send each tunnel's run as one message. Then group by socket; with one local
        // address this is a single pass.
        meta.sort_by_key(|q| q.sealed.tunnel);
        let mut send = send.batch();
        for s in 0..self.sockets.len() {
            let mut last = None;
            for &Queued {
                buf,
                sealed:
                    Sealed {
                        start,
                        len,
                        tunnel: t,
                        tos,
                    },
            } in meta.iter()
            {
                let tunnel = &tables.tunnels()[t];
                if tunnel.socket == s {
                    // Once per tunnel's run: the watch only wants the first packet.
                    if last != Some(t) {
                        last = Some(t);
                        if let Some(out) = &tunnel.outbound {
                            self.activity(&out.watch, Direction::Outbound);
                        }
                    }
                    let alone = len > usize::from(tunnel.mtu.max_datagram);
                    let packet = &bufs[buf][start..start + len];
                    send.push_marked(packet, tunnel.remote_sockaddr(), tos, alone);
                }
            }
            if !send.is_empty() {
                let (sent, failed) = send.flush(self.sockets[s].as_fd());
                gw.udp_tx(sent as u64);
                gw.udp_tx_super(send.take_sent_super());
                for _ in 0..failed {
                    gw.drop(DropReason::Io);
                }
            }
        }
    }

    /// Hands an unknown-SPI datagram's addresses and SPI to the control plane, at most once
    /// per [`UNKNOWN_SPI_REPORT_EVERY`]. `batch_now` is the receive batch's clock reading,
    /// taken by the first unknown SPI of the batch: a flood of them reads the clock once per
    /// batch, not once per packet.
    fn report_unknown_spi(
        &self,
        batch_now: &mut Option<std::time::Instant>,
        local: SocketAddr,
        from: SocketAddr,
        d: &[u8],
    ) {
        let (Some(sink), Some(spi)) = (&self.unknown_spi_sink, d.get(..4)) else {
            return;
        };
        let now = *batch_now.get_or_insert_with(std::time::Instant::now);
        if self
            .unknown_spi_reported
            .get()
            .is_some_and(|t| now.saturating_duration_since(t) < UNKNOWN_SPI_REPORT_EVERY)
        {
            return;
        }
        self.unknown_spi_reported.set(Some(now));
        sink(
            local,
            from,
            u32::from_be_bytes([spi[0], spi[1], spi[2], spi[3]]),
        );
    }

    /// Tells the control plane that inbound SA `spi`, whose peer is behind a NAT, delivered an
    /// authenticated, replay-checked packet from `from`, not from the address its tunnel
    /// sends to: the peer's NAT mapping changed (RFC 3948, RFC 7296 2.23). At most once per
    /// [`PEER_MOVED_REPORT_EVERY`]; `batch_now` is shared with [`Worker::report_unknown_spi`]
    /// so a batch reads the clock once.
    fn report_peer_moved(
        &self,
        batch_now: &mut Option<std::time::Instant>,
        spi: u32,
        from: SocketAddr,
    ) {
        let Some(sink) = &self.peer_moved_sink else {
            return;
        };
        let now = *batch_now.get_or_insert_with(std::time::Instant::now);
        if self
            .peer_moved_reported
            .get()
            .is_some_and(|t| now.saturating_duration_since(t) < PEER_MOVED_REPORT_EVERY)
        {
            return;
        }
        self.peer_moved_reported.set(Some(now));
        sink(spi, from);
    }

    /// Reports a packet through a watched SA to the control plane if it armed the watch.
    #[inline]
    fn activity(&self, watch: &Option<Arc<Watch>>, direction: Direction) {
        if let Some(a) = watch.as_ref().and_then(|w| w.packet(direction)) {
            if let Some(sink) = &self.activity_sink {
                sink(a);
            }
        }
    }

    /// Writes a coalesced run of `n` packets to TUN device `tun`.
    fn write_run(&self, tun: &Tun, run: &[u8], n: usize, gw: &GatewayCounters) {
        let n = n as u64;
        match tun.send(self.id, run) {
            Ok(_) => {
                gw.tun_tx(n);
                if n > 1 {
                    gw.tun_tx_super();
                }
            }
            Err(_) => {
                for _ in 0..n {
                    gw.drop(DropReason::Io);
                }
            }
        }
    }

    /// Drains socket `s`: classify, decrypt in place, check selectors, write to TUN.
    fn inbound(
        &self,
        s: usize,
        recv: &mut RecvBatch,
        gw: &GatewayCounters,
        co: &mut Coalescers,
    ) -> Result<(), WorkerFailure> {
        let fd: RawFd = self.sockets[s].as_raw_fd();
        loop {
            let n = recv
                .recv(fd)
                .map_err(|e| WorkerFailure(format!("receiving on UDP socket: {e}")))?;
            if n == 0 {
                return Ok(());
            }
            let tables = self.tables.load();
            let devices = self.devices.load();
            // The device the coalescer's pending runs are for: a packet for another one
            // flushes them first, so each run goes out of its own device.
            let mut pending: Option<IfaceId> = None;
            let mut batch_now = None;
            let dscp_in = tables.any_dscp_in();
            for i in 0..n {
                let seg = recv.segment_size(i);
                if seg.is_some() {
                    gw.udp_rx_super();
                }
                let outer_tos = if dscp_in { recv.tos(i) } else { None };
                let (buf, truncated, from) = recv.datagram_from(i);
                if truncated {
                    gw.udp_rx(1);
                    gw.drop(DropReason::Malformed);
                    continue;
                }
                // One datagram, or (GRO) several of `seg` bytes each, the last maybe shorter.
                let len = buf.len();
                let step = seg.unwrap_or(len).max(1);
                let mut off = 0;
                while off < len {
                    let end = (off + step).min(len);
                    let d = &mut buf[off..end];
                    gw.udp_rx(1);
                    let verdict = open_one(&tables, d);
                    if let Inbound::Deliver(range, sa, _) = &verdict {
                        let scope = sa.device.get();
                        if clamp_inbound_in(&tables, scope, &mut d[range.clone()]) {
                            gw.mss_clamped();
                        }
                        if let Some(tos) = outer_tos {
                            copy_dscp_in(&tables, scope, &mut d[range.clone()], tos);
                        }
                    }
                    if let (Inbound::Ike, Some(sink), Some(from)) =
                        (&verdict, &self.ike_sink, from.get())
                    {
                        sink(self.local_addrs[s], from, d);
                    }
                    if let (Inbound::Drop(DropReason::UnknownSpi, None), Some(from)) =
                        (&verdict, from.get())
                    {
                        self.report_unknown_spi(&mut batch_now, self.local_addrs[s], from, d);
                    }
                    if let Inbound::Deliver(_, sa, nat_peer) = &verdict {
                        self.activity(&sa.watch, Direction::Inbound);
                        // Only SAs of peers behind a NAT carry an address to compare with,
                        // so a fixed peer costs nothing here.
                        if let Some(peer) = nat_peer {
                            if let Some(from) = from.get().filter(|f| f != *peer) {
                                self.report_peer_moved(&mut batch_now, sa.sa.spi(), from);
                            }
                        }
                    }
                    let target = match &verdict {
                        Inbound::Deliver(_, sa, _) => sa.device.get(),
                        _ => None,
                    };
                    let tun: &Tun = match target {
                        None => &self.tun,
                        Some(id) => match devices.get(id) {
                            Some(t) => t,
                            None => {
                                // Its connection's device is gone (a reload removed it).
                                if let Inbound::Deliver(_, sa, _) = &verdict {
                                    sa.counters.get(self.id).drop(DropReason::Io);
                                }
                                gw.drop(DropReason::Io);
                                off = end;
                                continue;
                            }
                        },
                    };
                    if matches!(verdict, Inbound::Deliver(..)) && target != pending {
                        let was: &Tun = pending
                            .and_then(|id| devices.get(id).map(|t| &**t))
                            .unwrap_or(&self.tun);
                        co.flush(|run, n| self.write_run(was, run, n, gw));
                        pending = target;
                    }
                    match verdict {
                        // Offloading TUN: TCP segments, or same-sized UDP datagrams, of one
                        // flow are written as one.
                        Inbound::Deliver(range, sa, peer) if tun.vnet() => {
                            let pkt = &d[range.clone()];
                            if co.offer(pkt, |run, n| self.write_run(tun, run, n, gw)) {
                                sa.counters.get(self.id).packet(pkt.len());
                            } else {
                                let v = Inbound::Deliver(range, sa, peer);
                                deliver(self.id, d, v, tun, gw);
                            }
                        }
                        v => deliver(self.id, d, v, tun, gw),
                    }
                    off = end;
                }
            }
            let last: &Tun = pending
                .and_then(|id| devices.get(id).map(|t| &**t))
                .unwrap_or(&self.tun);
            co.flush(|run, n| self.write_run(last, run, n, gw));
            gw.gro_bad_checksums(co.take_bad_checksums());
            if n < recv.capacity() {
                return Ok(());
            }
        }
    }
}

/// A packet sealed for sending: `len` bytes of ESP-in-UDP payload from `start` in its buffer
/// (where its SA's header begins: `HEADROOM - header_len`, 8 for the AEADs, 0 for AES-CBC),
/// for `tunnel`, with outer TOS / traffic class `tos` (the inner DSCP, or 0). Each packet is
/// one contiguous slice, so a GSO run of them is a list of slices as before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub start: usize,
    pub len: usize,
    pub tunnel: TunnelId,
    pub tos: u8,
}

/// What one packet read from the TUN device turned out to be: [`seal_one`]'s verdict, which
/// [`account_sealed`] counts and acts on.
pub enum Outbound<'t> {
    /// Sealed with this SA; `plain_len` is the inner packet's length, for the SA's counters;
    /// `clamped`: a SYN whose MSS was lowered to fit the tunnel.
    Send {
        sealed: Sealed,
        plain_len: usize,
        sa: &'t OutboundEntry,
        clamped: bool,
    },
    /// Longer than the tunnel carries in one datagram and must not be fragmented (IPv4 with
    /// DF, or IPv6): dropped, and the sender is told `mtu` by ICMP.
    TooBig { mtu: u16, sa: &'t OutboundEntry },
    /// Longer than the tunnel carries, IPv4 without DF: to be cut into `plan`'s fragments and
    /// each sealed (the worker does; a caller that does not is dropping it, as `too_big`).
    Fragment {
        plan: mtu::Fragments,
        sa: &'t OutboundEntry,
    },
    /// The tunnel has no SA: dropped (never sent in clear); a trapped tunnel asks the control
    /// plane to negotiate one.
    NoSa {
        tunnel: TunnelId,
        trap: Option<&'t Trap>,
    },
    /// Dropped; if an SA was chosen, that SA, so its counters can be charged.
    Drop(DropReason, Option<&'t OutboundEntry>),
}

/// Looks up the policy and tunnel of the packet in `buf[HEADROOM..HEADROOM+n]` and encrypts it
/// in place; counts nothing and touches no device, like [`open_one`].
#[inline]
pub fn seal_one<'t>(tables: &'t Tables, buf: &mut [u8], n: usize) -> Outbound<'t> {
    seal_in(tables, None, buf, n)
}

/// [`seal_one`] for a packet read from device `scope` (`None`: the shared TUN device): only
/// that device's policies apply.
#[inline]
pub fn seal_in<'t>(
    tables: &'t Tables,
    scope: Option<IfaceId>,
    buf: &mut [u8],
    n: usize,
) -> Outbound<'t> {
    let Some((src, dst)) = inner_addrs(&buf[HEADROOM..HEADROOM + n]) else {
        return Outbound::Drop(DropReason::Malformed, None);
    };
    let next_header = match src {
        InnerAddr::V4(_) => NEXT_HEADER_IPV4,
        InnerAddr::V6(_) => NEXT_HEADER_IPV6,
    };
    let Some((mut tid, mut tunnel)) =
        tables.route_id_in(scope, &buf[HEADROOM..HEADROOM + n], src, dst)
    else {
        let reason = if dst.is_link_scoped_v6() {
            DropReason::LinkLocal
        } else {
            DropReason::NoPolicy
        };
        return Outbound::Drop(reason, None);
    };
    if let Some(spread) = &tunnel.spread {
        tid = spread.pick(crate::tables::flow_hash(&buf[HEADROOM..HEADROOM + n]));
        tunnel = &tables.tunnels()[tid];
    }
    let Some(out) = tunnel.outbound.as_deref() else {
        return Outbound::NoSa {
            tunnel: tid,
            trap: tunnel.trap.as_ref(),
        };
    };
    let pkt = &mut buf[HEADROOM..HEADROOM + n];
    let limit = tunnel.mtu.limit(next_header == NEXT_HEADER_IPV6);
    if n > usize::from(limit) {
        if mtu::must_not_fragment(pkt) {
            return Outbound::TooBig {
                mtu: limit,
                sa: out,
            };
        }
        if let Some(plan) = mtu::Fragments::plan(pkt, limit) {
            return Outbound::Fragment { plan, sa: out };
        }
    }
    let clamped = mtu::may_be_syn(pkt) && mtu::clamp_mss(pkt, tunnel.mtu.mss_for(pkt));
    // Read before sealing encrypts the header.
    let tos = if tunnel.dscp_out {
        crate::packet::dscp_byte(pkt, next_header == NEXT_HEADER_IPV6)
    } else {
        0
    };
    if let Some(b) = &tunnel.shaper {
        if !b.admit(n, crate::shaper::now_ns()) {
            return Outbound::Drop(DropReason::Shaped, None);
        }
    }
    match out.sa.seal_in_place(buf, n, next_header) {
        Ok(range) => Outbound::Send {
            sealed: Sealed {
                start: range.start,
                len: range.len(),
                tunnel: tid,
                tos,
            },
            plain_len: n,
            sa: out,
            clamped,
        },
        Err(SealError::SequenceExhausted) => Outbound::Drop(DropReason::SeqExhausted, Some(out)),
        Err(_) => Outbound::Drop(DropReason::Malformed, Some(out)),
    }
}

/// Acts on [`seal_one`]'s verdict: counts it on the gateway's and the SA's counters, reports a
/// trapped tunnel without SA to `acquire` (paced by its [`Trap`]), and returns the packet to
/// send, if any.
#[inline]
pub fn account_sealed(
    worker: usize,
    verdict: Outbound,
    gw: &GatewayCounters,
    acquire: Option<&crate::AcquireSink>,
) -> Option<Sealed> {
    match verdict {
        Outbound::Send {
            sealed,
            plain_len,
            sa,
            clamped,
        } => {
            sa.counters.get(worker).packet(plain_len);
            if clamped {
                gw.mss_clamped();
            }
            Some(sealed)
        }
        Outbound::TooBig { sa, .. } | Outbound::Fragment { sa, .. } => {
            sa.counters.get(worker).drop(DropReason::TooBig);
            gw.drop(DropReason::TooBig);
            None
        }
        Outbound::NoSa { tunnel, trap } => {
            gw.drop(DropReason::NoSa);
            if let (Some(trap), Some(sink)) = (trap, acquire) {
                if trap.due() {
                    sink(tunnel);
                }
            }
            None
        }
        Outbound::Drop(reason, sa) => {
            if let Some(sa) = sa {
                sa.counters.get(worker).drop(reason);
            }
            gw.drop(reason);
            None
        }
    }
}

/// What one received UDP/4500 datagram turned out to be.
pub enum Inbound<'t> {
    /// A decrypted packet for the site, at this range of the datagram buffer, from this SA;
    /// for a peer behind a NAT, the address its tunnel sends to now (see
    /// [`Tables::following`]).
    Deliver(
        std::ops::Range<usize>,
        &'t InboundEntry,
        Option<&'t SocketAddr>,
    ),
    /// IKE on 4500: belongs to the control plane.
    Ike,
    NatKeepalive,
    /// Dropped; if an SA was identified, that SA, so its counters can be charged.
    Drop(DropReason, Option<&'t InboundEntry>),
}

/// Classifies, decrypts in place and checks selectors; touches no device, so the decision
/// logic is testable without a kernel.
#[inline]
pub fn open_one<'t>(tables: &'t Tables, dgram: &mut [u8]) -> Inbound<'t> {
    let spi = match classify(dgram) {
        Datagram::Esp { spi } => spi,
        Datagram::NatKeepalive => return Inbound::NatKeepalive,
        Datagram::Ike(_) => return Inbound::Ike,
        Datagram::Malformed(_) => return Inbound::Drop(DropReason::Malformed, None),
    };
    let Some((sa, nat_peer)) = tables.inbound_followed(spi) else {
        return Inbound::Drop(DropReason::UnknownSpi, None);
    };
    let reason = match sa.sa.open_in_place(dgram) {
        Ok(opened) => match inner_addrs(&dgram[opened.range()]) {
            Some((src, dst)) if sa.admits(src, dst) && sa.admits_ports(dgram, opened.range()) => {
                return Inbound::Deliver(opened.range(), sa, nat_peer)
            }
            Some(_) => DropReason::Selector,
            None => DropReason::Malformed,
        },
        Err(OpenError::Dummy) => DropReason::Dummy,
        Err(OpenError::Replay | OpenError::TooOld) => DropReason::Replay,
        Err(OpenError::Authentication) => DropReason::Authentication,
        Err(_) => DropReason::Malformed,
    };
    Inbound::Drop(reason, Some(sa))
}

/// Clamps the MSS of a SYN or SYN-ACK arriving from the peer, before it reaches the site:
/// the site's host will send through the tunnel its reply takes, so that tunnel's
/// [`crate::mtu::TunnelMtu`] decides. Returns whether the packet changed. A non-SYN costs a
/// protocol byte and a flags byte; only SYNs look up the route back.
#[inline]
pub fn clamp_inbound(tables: &Tables, pkt: &mut [u8]) -> bool {
    clamp_inbound_in(tables, None, pkt)
}

/// [`clamp_inbound`] for a packet delivered to device `scope`: the reply's tunnel is found
/// among that device's policies.
#[inline]
pub fn clamp_inbound_in(tables: &Tables, scope: Option<IfaceId>, pkt: &mut [u8]) -> bool {
    mtu::may_be_syn(pkt) && clamp_inbound_syn(tables, scope, pkt)
}

/// [`clamp_inbound`] for a packet that may be a SYN: out of line, so the route lookup it
/// repeats stays inlined in [`seal_one`].
#[inline(never)]
fn clamp_inbound_syn(tables: &Tables, scope: Option<IfaceId>, pkt: &mut [u8]) -> bool {
    let Some((src, dst)) = inner_addrs(pkt) else {
        return false;
    };
    let Some(tunnel) = tables.route_back_in(scope, pkt, src, dst) else {
        return false;
    };
    let m = tunnel.mtu.mss_for(pkt);
    mtu::clamp_mss(pkt, m)
}

/// Writes the outer header's DSCP `tos` into a decrypted packet if the tunnel its reply takes
/// copies DSCP inwards (`copy_dscp = "in"`). Called only when [`Tables::any_dscp_in`].
#[inline(never)]
pub fn copy_dscp_in(tables: &Tables, scope: Option<IfaceId>, pkt: &mut [u8], tos: u8) {
    let Some((src, dst)) = inner_addrs(pkt) else {
        return;
    };
    if tables
        .route_back_in(scope, pkt, src, dst)
        .is_some_and(|t| t.dscp_in)
    {
        crate::packet::set_dscp(pkt, tos);
    }
}

/// Acts on [`open_one`]'s verdict: writes to the TUN device and counts.
#[inline]
fn deliver(worker: usize, dgram: &mut [u8], verdict: Inbound, tun: &Tun, gw: &GatewayCounters) {
    let (reason, sa) = match verdict {
        Inbound::Deliver(range, sa, _) => {
            // An offloading device wants a virtio-net header first: all zeros (a plain packet
            // whose checksums are done) in the bytes the ESP header and IV held.
            let start = if tun.vnet() && range.start >= VNET_HDR_LEN {
                dgram[range.start - VNET_HDR_LEN..range.start].fill(0);
                range.start - VNET_HDR_LEN
            } else {
                range.start
            };
            let plain_len = range.end - range.start;
            let pkt = &dgram[start..range.end];
            match tun.send(worker, pkt) {
                Ok(_) => {
                    gw.tun_tx(1);
                    sa.counters.get(worker).packet(plain_len);
                    return;
                }
                Err(_) => (DropReason::Io, Some(sa)),
            }
        }
        Inbound::Ike => {
            // Handed to the control plane (if any) by the caller; counted here.
            gw.ike();
            return;
        }
        Inbound::NatKeepalive => {
            gw.keepalive();
            return;
        }
        Inbound::Drop(reason, spi) => (reason, spi),
    };
    gw.drop(reason);
    if let Some(sa) = sa {
        sa.counters.get(worker).drop(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::PerWorker;
    use crate::tables::{Policy, Tunnel};

    const KEY_AB: [u8; 20] = [1; 20];
    const KEY_BA: [u8; 20] = [2; 20];

    /// Gateway tables for one side of a static tunnel: `local`/`remote` selectors, sending with
    /// `out_key` on SPI `out_spi`, receiving `in_spi` with `in_key`.
    use crate::tables::one_tunnel as side;

    fn ipv4(src: [u8; 4], dst: [u8; 4], len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p
    }

    /// Runs a packet through `a`'s outbound path; returns the ESP datagram.
    fn seal(a: &Tables, pkt: &[u8], gw: &GatewayCounters) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; HEADROOM + pkt.len() + MAX_TRAILER];
        buf[HEADROOM..HEADROOM + pkt.len()].copy_from_slice(pkt);
        let verdict = seal_one(a, &mut buf, pkt.len());
        account_sealed(0, verdict, gw, None).map(|s| buf[s.start..s.start + s.len].to_vec())
    }

    fn pair() -> (Tables, Tables) {
        (
            side(
                "10.1.0.0/24",
                "10.2.0.0/24",
                (0x201, &KEY_AB),
                (0x102, &KEY_BA),
            ),
            side(
                "10.2.0.0/24",
                "10.1.0.0/24",
                (0x102, &KEY_BA),
                (0x201, &KEY_AB),
            ),
        )
    }

    fn verdict_name(v: &Inbound) -> String {
        match v {
            Inbound::Deliver(r, _, _) => format!("deliver {}", r.len()),
            Inbound::Ike => "ike".into(),
            Inbound::NatKeepalive => "keepalive".into(),
            Inbound::Drop(r, _) => format!("drop {}", r.name()),
        }
    }

    #[test]
    fn packet_crosses_and_is_delivered_once() {
        let (a, b) = pair();
        let gw = GatewayCounters::default();
        let pkt = ipv4([10, 1, 0, 2], [10, 2, 0, 2], 100);
        let mut esp = seal(&a, &pkt, &gw).expect("policy matches");
        let mut replay = esp.clone();
        let v = open_one(&b, &mut esp);
        let Inbound::Deliver(range, _, _) = &v else {
            panic!("{}", verdict_name(&v))
        };
        assert_eq!(&esp[range.clone()], &pkt[..]);
        assert_eq!(verdict_name(&open_one(&b, &mut replay)), "drop replay");
    }

    #[test]
    fn only_sas_of_nat_peers_carry_the_address_to_compare_with() {
        let (a, b) = pair();
        let gw = GatewayCounters::default();
        let pkt = ipv4([10, 1, 0, 2], [10, 2, 0, 2], 100);
        let mut esp = seal(&a, &pkt, &gw).unwrap();
        let mut again = seal(&a, &pkt, &gw).unwrap();
        assert!(matches!(
            open_one(&b, &mut esp),
            Inbound::Deliver(_, _, None)
        ));
        let peer: SocketAddr = "198.51.100.7:4500".parse().unwrap();
        // B's inbound SA is 0x201; an SPI the table does not hold is ignored.
        let b = b.following([(0x201, peer), (0x999, peer)]);
        let v = open_one(&b, &mut again);
        assert!(
            matches!(v, Inbound::Deliver(_, _, Some(p)) if *p == peer),
            "{}",
            verdict_name(&v)
        );
    }

    /// One tunnel 10.1.0.0/24 -> 10.2.0.0/24 that has no SA, trapped or not.
    fn tunnel_without_sa(trap: bool) -> Tables {
        let t = Tunnel::new(
            "peer".into(),
            0,
            "192.0.2.1:4500".parse().unwrap(),
            "192.0.2.2:4500".parse().unwrap(),
            None,
        );
        Tables::new(
            vec![if trap { t.with_trap() } else { t }],
            vec![Policy {
                local: "10.1.0.0/24".parse().unwrap(),
                remote: "10.2.0.0/24".parse().unwrap(),
                tunnel: 0,
                ports: None,
                scope: None,
            }],
            vec![],
        )
        .unwrap()
    }

    #[test]
    fn outbound_without_policy_or_sa_is_never_sent_in_clear() {
        let (a, _) = pair();
        let pw = PerWorker::<GatewayCounters>::new(1);
        let gw = pw.get(0);
        assert!(seal(&a, &ipv4([10, 1, 0, 2], [10, 3, 0, 2], 60), gw).is_none());
        assert!(seal(&a, &ipv4([10, 9, 0, 2], [10, 2, 0, 2], 60), gw).is_none());
        assert!(seal(&a, &[0x45, 0, 0], gw).is_none());
        let no_sa = tunnel_without_sa(false);
        assert!(seal(&no_sa, &ipv4([10, 1, 0, 2], [10, 2, 0, 2], 60), gw).is_none());
        // Trapped: the same packet is still dropped (never sent in clear) and the tunnel is
        // reported once for a burst.
        let trapped = tunnel_without_sa(true);
        let reported = Arc::new(std::sync::Mutex::new(Vec::new()));
        let r = reported.clone();
        let sink: crate::AcquireSink = Arc::new(move |t| r.lock().unwrap().push(t));
        for _ in 0..5 {
            let pkt = ipv4([10, 1, 0, 2], [10, 2, 0, 2], 60);
            let mut buf = vec![0u8; HEADROOM + pkt.len() + MAX_TRAILER];
            buf[HEADROOM..HEADROOM + pkt.len()].copy_from_slice(&pkt);
            let verdict = seal_one(&trapped, &mut buf, pkt.len());
            assert!(account_sealed(0, verdict, gw, Some(&sink)).is_none());
        }
        assert_eq!(*reported.lock().unwrap(), vec![0]);
        let d = pw.totals().drops;
        assert_eq!(d.get(DropReason::NoPolicy), 2);
        assert_eq!(d.get(DropReason::Malformed), 1);
        assert_eq!(d.get(DropReason::NoSa), 6);
    }

    /// A TCP SYN 10.1.0.2 -> 10.2.0.2 with MSS 1460 (and a valid checksum), `len` bytes long
    /// with DF set.
    fn tcp_syn(src: [u8; 4], dst: [u8; 4], flags: u8) -> Vec<u8> {
        let mut p = ipv4(src, dst, 44);
        p[6] = 0x40;
        p[9] = crate::packet::PROTO_TCP;
        p[32] = 6 << 4;
        p[33] = flags;
        p[40..44].copy_from_slice(&[2, 4, 0x05, 0xb4]);
        let pseudo = crate::checksum::sum(&p[12..20], 0) + 6 + 24;
        let c = crate::checksum::fold(crate::checksum::sum(&p[20..], pseudo));
        p[36..38].copy_from_slice(&c.to_be_bytes());
        p
    }

    fn tcp_ok(p: &[u8]) -> bool {
        let pseudo = crate::checksum::sum(&p[12..20], 0) + 6 + (p.len() as u64 - 20);
        crate::checksum::fold(crate::checksum::sum(&p[20..], pseudo)) == 0
    }

    /// An AES-CBC tunnel: the sealed packet starts at the front of the buffer (24-byte
    /// header), round-trips, and the MTU arithmetic uses CBC's larger overhead.
    #[test]
    fn cbc_tunnel_seals_from_the_buffer_start_and_sizes_its_mtu() {
        use crate::mtu::{MssClamp, TunnelMtu};
        use crate::tables::one_tunnel_with;
        use ironsec_esp::{CbcCipher, Integ, Suite};
        let suite = Suite::Cbc(CbcCipher::Aes256, Integ::HmacSha256_128);
        let (k1, k2) = ([1u8; 64], [2u8; 64]);
        let m = TunnelMtu::for_path(1280, false, 1400, MssClamp::Auto, suite);
        // 1280 - 20 - 8 = 1252 of UDP payload; 1252 - 24 - 16 = 1212 -> 1200 of body.
        assert_eq!(m.max_inner, 1198);
        let a = one_tunnel_with(
            suite,
            "10.1.0.0/24",
            "10.2.0.0/24",
            (0x201, &k1),
            (0x102, &k2),
        )
        .with_mtu(m);
        let b = one_tunnel_with(
            suite,
            "10.2.0.0/24",
            "10.1.0.0/24",
            (0x102, &k2),
            (0x201, &k1),
        );
        let gw = GatewayCounters::default();
        for len in [20, 100, 1198] {
            let mut pkt = ipv4([10, 1, 0, 2], [10, 2, 0, 2], len);
            pkt[6] = 0x40; // DF
            let mut buf = vec![0u8; HEADROOM + pkt.len() + MAX_TRAILER];
            buf[HEADROOM..HEADROOM + pkt.len()].copy_from_slice(&pkt);
            let Outbound::Send { sealed, .. } = seal_one(&a, &mut buf, pkt.len()) else {
                panic!("not sealed")
            };
            assert_eq!(sealed.start, 0);
            assert!(sealed.len <= usize::from(m.max_datagram), "{len}");
            let esp = &mut buf[sealed.start..sealed.start + sealed.len];
            let Inbound::Deliver(r, _, _) = open_one(&b, esp) else {
                panic!("not delivered")
            };
            assert_eq!(r.start, 24);
            assert_eq!(&esp[r], &pkt[..]);
        }
        // One byte more than fits, with DF: refused with the CBC tunnel's MTU.
        let mut big = ipv4([10, 1, 0, 2], [10, 2, 0, 2], 1199);
        big[6] = 0x40;
        let mut buf = vec![0u8; HEADROOM + big.len() + MAX_TRAILER];
        buf[HEADROOM..HEADROOM + big.len()].copy_from_slice(&big);
        assert!(matches!(
            seal_one(&a, &mut buf, big.len()),
            Outbound::TooBig { mtu: 1198, .. }
        ));
        // The AEAD tunnel over the same path carries 20 bytes more.
        let gcm = TunnelMtu::for_path(1280, false, 1400, MssClamp::Auto, Suite::Aes128Gcm16);
        assert_eq!(gcm.max_inner, 1218);
        assert!(seal(&pair().0.with_mtu(gcm), &big, &gw).is_some());
    }

    #[test]
    fn syns_are_clamped_both_ways_and_oversized_df_packets_refused() {
        use crate::mtu::{MssClamp, TunnelMtu};
        let m = TunnelMtu::for_path(
            1280,
            false,
            1400,
            MssClamp::Auto,
            ironsec_esp::Suite::Aes128Gcm16,
        );
        let (a, b) = pair();
        let (a, b) = (a.with_mtu(m), b.with_mtu(m));
        let pw = PerWorker::<GatewayCounters>::new(1);
        let gw = pw.get(0);
        // Outbound: the SYN leaves with MSS 1178 and a valid checksum.
        let syn = tcp_syn([10, 1, 0, 2], [10, 2, 0, 2], 0x02);
        let mut esp = seal(&a, &syn, gw).unwrap();
        let Inbound::Deliver(r, _, _) = open_one(&b, &mut esp) else {
            panic!("not delivered")
        };
        let got = &mut esp[r];
        assert_eq!(&got[42..44], &1178u16.to_be_bytes());
        assert!(tcp_ok(got));
        // Inbound: a SYN-ACK from the peer that was not clamped there (say, clamping off on
        // the far side) is clamped before it reaches the site, by the tunnel back.
        let synack = tcp_syn([10, 2, 0, 2], [10, 1, 0, 2], 0x12);
        let mut esp = seal(&b.with_mtu(TunnelMtu::UNLIMITED), &synack, gw).unwrap();
        let (a2, _) = pair();
        let a2 = a2.with_mtu(m);
        let Inbound::Deliver(r, _, _) = open_one(&a2, &mut esp) else {
            panic!("not delivered")
        };
        assert_eq!(&esp[r.clone()][42..44], &1460u16.to_be_bytes());
        assert!(clamp_inbound(&a2, &mut esp[r.clone()]));
        assert_eq!(&esp[r.clone()][42..44], &1178u16.to_be_bytes());
        assert!(tcp_ok(&esp[r]));
        assert_eq!(
            pw.totals().mss_clamped,
            1,
            "the outbound one (account_sealed)"
        );
        // A DF packet of 1219 bytes does not fit (1218 do); without DF it is sealed whole.
        let (a, _) = pair();
        let a = a.with_mtu(m);
        let mut big = ipv4([10, 1, 0, 2], [10, 2, 0, 2], 1218);
        big[6] = 0x40;
        assert!(seal(&a, &big, gw).is_some());
        let mut big = ipv4([10, 1, 0, 2], [10, 2, 0, 2], 1219);
        big[6] = 0x40;
        let mut buf = vec![0u8; HEADROOM + big.len() + MAX_TRAILER];
        buf[HEADROOM..HEADROOM + big.len()].copy_from_slice(&big);
        assert!(matches!(
            seal_one(&a, &mut buf, big.len()),
            Outbound::TooBig { mtu: 1218, .. }
        ));
        assert!(seal(&a, &big, gw).is_none());
        assert_eq!(pw.totals().drops.get(DropReason::TooBig), 1);
        big[6] = 0;
        let mut buf = vec![0u8; HEADROOM + big.len() + MAX_TRAILER];
        buf[HEADROOM..HEADROOM + big.len()].copy_from_slice(&big);
        assert!(
            matches!(
                seal_one(&a, &mut buf, big.len()),
                Outbound::Fragment {
                    plan: mtu::Fragments {
                        count: 2,
                        per: 1192
                    },
                    ..
                }
            ),
            "no DF: cut into fragments that fit (the worker seals each)"
        );
        // IPv6 may not be told less than 1280 (RFC 8201): up to 1280 it is sealed (the outer
        // fragmented), above it refused with 1280.
        let v6 = |len: usize| {
            let mut p = vec![0u8; len];
            p[0] = 0x60;
            p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
            p[6] = crate::packet::PROTO_UDP;
            p[8] = 0xfd;
            p[24] = 0xfd;
            p
        };
        let a6 = side("fd00::/8", "fd00::/8", (0x301, &KEY_AB), (0x103, &KEY_BA)).with_mtu(m);
        assert!(seal(&a6, &v6(1280), gw).is_some());
        let p = v6(1281);
        let mut buf = vec![0u8; HEADROOM + p.len() + MAX_TRAILER];
        buf[HEADROOM..HEADROOM + p.len()].copy_from_slice(&p);
        assert!(matches!(
            seal_one(&a6, &mut buf, p.len()),
            Outbound::TooBig { mtu: 1280, .. }
        ));
    }

    #[test]
    fn outer_tos_is_the_inner_dscp_unless_off() {
        let (a, _) = pair();
        let mut pkt = ipv4([10, 1, 0, 2], [10, 2, 0, 2], 100);
        pkt[1] = 0xb9; // EF, ECT(1): the ECN bits are not copied
        let mut buf = vec![0u8; HEADROOM + pkt.len() + MAX_TRAILER];
        buf[HEADROOM..HEADROOM + pkt.len()].copy_from_slice(&pkt);
        let Outbound::Send { sealed, .. } = seal_one(&a, &mut buf, pkt.len()) else {
            panic!("not sealed")
        };
        assert_eq!(sealed.tos, 0xb8);
        let a = pair().0.with_dscp_out(false);
        buf[HEADROOM..HEADROOM + pkt.len()].copy_from_slice(&pkt);
        let Outbound::Send { sealed, .. } = seal_one(&a, &mut buf, pkt.len()) else {
            panic!("not sealed")
        };
        assert_eq!(sealed.tos, 0, "copy_dscp = no");
    }

    #[test]
    fn outer_dscp_is_copied_in_only_where_asked() {
        let a = pair().0;
        let mut pkt = ipv4([10, 1, 0, 2], [10, 2, 0, 2], 100);
        pkt[1] = 0x01; // ECT(1), DSCP 0
        let c = crate::checksum::fold(crate::checksum::sum(&pkt[..20], 0));
        pkt[10..12].copy_from_slice(&c.to_be_bytes());
        let gw = GatewayCounters::default();
        let esp = seal(&a, &pkt, &gw).unwrap();
        for (on, want) in [(true, 0x29u8), (false, 0x01)] {
            let b = pair().1.with_dscp_in(on);
            assert_eq!(b.any_dscp_in(), on);
            let mut d = esp.clone();
            let Inbound::Deliver(r, _, _) = open_one(&b, &mut d) else {
                panic!("not delivered")
            };
            copy_dscp_in(&b, None, &mut d[r.clone()], 0x28);
            assert_eq!(d[r.start + 1], want, "copy in {on}");
            assert_eq!(
                crate::checksum::fold(crate::checksum::sum(&d[r][..20], 0)),
                0
            );
        }
    }

    #[test]
    fn inbound_selector_mismatch_and_garbage_are_dropped() {
        let (a, b) = pair();
        let gw = GatewayCounters::default();
        // gwA's policy would not send this, so forge it with A's outbound SA directly: a
        // peer that holds valid keys but claims another site's source address.
        let spoofed = ipv4([10, 9, 9, 9], [10, 2, 0, 2], 80);
        let out = a.tunnels()[0].outbound.as_ref().unwrap();
        let mut buf = vec![0u8; HEADROOM + 80 + MAX_TRAILER];
        buf[HEADROOM..HEADROOM + 80].copy_from_slice(&spoofed);
        let r = out
            .sa
            .seal_in_place(&mut buf, 80, NEXT_HEADER_IPV4)
            .unwrap();
        assert_eq!(verdict_name(&open_one(&b, &mut buf[r])), "drop selector");

        let mut esp = seal(&a, &ipv4([10, 1, 0, 2], [10, 2, 0, 2], 64), &gw).unwrap();
        let last = esp.len() - 1;
        esp[last] ^= 1;
        assert_eq!(verdict_name(&open_one(&b, &mut esp)), "drop authentication");
        esp[0] ^= 0x40; // another SPI
        assert_eq!(verdict_name(&open_one(&b, &mut esp)), "drop unknown_spi");
        assert_eq!(verdict_name(&open_one(&b, &mut [0xff])), "keepalive");
        let mut ike = vec![0u8; 40];
        assert_eq!(verdict_name(&open_one(&b, &mut ike)), "ike");
        assert_eq!(
            verdict_name(&open_one(&b, &mut [1, 2, 3])),
            "drop malformed"
        );
    }

    /// IPv6 sites 2001:db8:1::/64 (A) and 2001:db8:2::/64 (B), the SPIs of [`pair`].
    fn pair6() -> (Tables, Tables) {
        (
            side(
                "2001:db8:1::/64",
                "2001:db8:2::/64",
                (0x201, &KEY_AB),
                (0x102, &KEY_BA),
            ),
            side(
                "2001:db8:2::/64",
                "2001:db8:1::/64",
                (0x102, &KEY_BA),
                (0x201, &KEY_AB),
            ),
        )
    }

    /// An IPv6 UDP packet from 2001:db8:`src`::2 to 2001:db8:`dst`::2 with `ext` (extension
    /// headers, `next` the first) before 8 bytes of UDP and `data` bytes; payload length right.
    fn ipv6(src: u16, dst: u16, next: u8, ext: &[u8], data: usize) -> Vec<u8> {
        let addr = |site: u16| (0x2001_0db8u128 << 96) | (u128::from(site) << 80) | 2;
        let payload = ext.len() + 8 + data;
        let mut p = vec![0u8; 40 + payload];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&(payload as u16).to_be_bytes());
        p[6] = next;
        p[7] = 64;
        p[8..24].copy_from_slice(&addr(src).to_be_bytes());
        p[24..40].copy_from_slice(&addr(dst).to_be_bytes());
        p[40..40 + ext.len()].copy_from_slice(ext);
        p
    }

    /// What the kernel sends into an IPv6-enabled TUN device by itself (an MLDv2 report from
    /// `::` to ff02::16, a router solicitation to ff02::2, anything to fe80::/10) matches no
    /// policy and is never sent; it is counted as `link_local`, not as a policy miss. A
    /// link-scoped destination inside a policy is sealed like any other, and a global
    /// destination outside every policy stays `no_policy`.
    #[test]
    fn link_scoped_ipv6_from_the_tun_is_counted_apart() {
        let (a, _) = pair6();
        let pw = PerWorker::<GatewayCounters>::new(1);
        let gw = pw.get(0);
        let to = |dst: u128| {
            let mut p = ipv6(1, 2, 17, &[], 8);
            p[8..24].fill(0);
            p[24..40].copy_from_slice(&dst.to_be_bytes());
            p
        };
        let mld = to(0xff02_u128 << 112 | 0x16);
        let rs = to(0xff02_u128 << 112 | 2);
        let ll = to(0xfe80_u128 << 112 | 1);
        let global = to((0x2001_0db8u128 << 96) | (9u128 << 80) | 2);
        for p in [&mld, &rs, &ll, &global] {
            assert!(seal(&a, p, gw).is_none());
        }
        let d = pw.totals().drops;
        assert_eq!(d.get(DropReason::LinkLocal), 3);
        assert_eq!(d.get(DropReason::NoPolicy), 1);
        // Inside the policy: sealed.
        assert!(seal(&a, &ipv6(1, 2, 17, &[], 8), gw).is_some());
    }

    /// IPv6 rows of the malformed-input table at the worker: what B's inbound path does with
    /// ESP from A's keys whose inner IPv6 packet or trailer is wrong (each dropped and
    /// counted under the reason named), and what A's outbound path does with IPv6 reads
    /// from the TUN device it cannot send.
    #[test]
    fn ipv6_inside_esp_malformed_rows() {
        let (a, b) = pair6();
        let gw = GatewayCounters::default();
        let out = a.tunnels()[0].outbound.as_ref().unwrap();
        // Sealed by A's SA as it stands: next header `nh` however wrong.
        let forge = |inner: &[u8], nh: u8| {
            let mut buf = vec![0u8; HEADROOM + inner.len() + MAX_TRAILER];
            buf[HEADROOM..HEADROOM + inner.len()].copy_from_slice(inner);
            let r = out.sa.seal_in_place(&mut buf, inner.len(), nh).unwrap();
            buf[r].to_vec()
        };
        let dst_opts = [17, 0, 1, 4, 0, 0, 0, 0];
        let good = ipv6(1, 2, 60, &dst_opts, 32);
        let mut rows: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "genuine, destination options",
                forge(&good, NEXT_HEADER_IPV6),
                "deliver 88",
            ),
            (
                "TFC padding after it",
                forge(&[&good[..], &[0u8; 40][..]].concat(), NEXT_HEADER_IPV6),
                "deliver 88",
            ),
            (
                "source outside the peer's selectors",
                forge(&ipv6(9, 2, 17, &[], 32), NEXT_HEADER_IPV6),
                "drop selector",
            ),
            (
                "IPv6 under next header 4",
                forge(&good, NEXT_HEADER_IPV4),
                "drop malformed",
            ),
            (
                "IPv4 under next header 41",
                forge(&ipv4([10, 1, 0, 2], [10, 2, 0, 2], 60), NEXT_HEADER_IPV6),
                "drop malformed",
            ),
            (
                "payload length beyond the data",
                forge(
                    &{
                        let mut p = good.clone();
                        p[5] += 1;
                        p
                    },
                    NEXT_HEADER_IPV6,
                ),
                "drop malformed",
            ),
            (
                "payload length ends inside the extension header",
                forge(
                    &{
                        let mut p = good.clone();
                        p[4..6].copy_from_slice(&4u16.to_be_bytes());
                        p
                    },
                    NEXT_HEADER_IPV6,
                ),
                "drop malformed",
            ),
            (
                "jumbogram (payload length 0, Jumbo Payload option)",
                forge(
                    &{
                        let mut p = ipv6(1, 2, 0, &[17, 0, 0xc2, 4, 0, 0, 0, 48], 32);
                        p[4..6].fill(0);
                        p
                    },
                    NEXT_HEADER_IPV6,
                ),
                "drop malformed",
            ),
            (
                "shorter than the fixed header",
                forge(&good[..39], NEXT_HEADER_IPV6),
                "drop malformed",
            ),
            ("dummy", forge(&good, 59), "drop dummy"),
        ];
        for nh in [0u8, 43, 44, 60, 6, 17, 58, 255] {
            rows.push((
                "next header not tunnel mode",
                forge(&good, nh),
                "drop malformed",
            ));
        }
        let pw = PerWorker::<GatewayCounters>::new(1);
        let counted = pw.get(0);
        for (what, mut esp, want) in rows {
            let v = open_one(&b, &mut esp);
            assert_eq!(verdict_name(&v), want, "{what}");
            if let Inbound::Drop(reason, _) = v {
                counted.drop(reason);
            }
        }
        let d = pw.totals().drops;
        assert_eq!(d.get(DropReason::Malformed), 14);
        assert_eq!(d.get(DropReason::Selector), 1);
        assert_eq!(d.get(DropReason::Dummy), 1);

        // Outbound: a read with the version-6 nibble shorter than the fixed header is
        // malformed; an IPv6 packet outside every policy has none; an IPv4 read on an
        // IPv6-only table has none either. None is sent.
        let pw = PerWorker::<GatewayCounters>::new(1);
        let counted = pw.get(0);
        assert!(seal(&a, &good[..39], counted).is_none());
        assert!(seal(&a, &ipv6(1, 9, 17, &[], 8), counted).is_none());
        assert!(seal(&a, &ipv4([10, 1, 0, 2], [10, 2, 0, 2], 60), counted).is_none());
        assert!(seal(&a, &good, &gw).is_some());
        let d = pw.totals().drops;
        assert_eq!(d.get(DropReason::Malformed), 1);
        assert_eq!(d.get(DropReason::NoPolicy), 2);
    }

    /// A UDP packet from `src:sport` to `dst:dport`, or a non-initial fragment of one.
    fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, later_fragment: bool) -> Vec<u8> {
        let mut p = ipv4(src, dst, 64);
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        if later_fragment {
            p[7] = 0x10;
        }
        p
    }

    /// Side A with two SAs to the same subnets: UDP/53 on tunnel 0 ("dns"), the rest on
    /// tunnel 1 ("rest"); side B receives both, the DNS SA narrowed to port 53.
    fn port_pair() -> (Tables, Tables) {
        use crate::selector::{PolicyPorts, PortSelectors, Selector};
        use ironsec_esp::{InboundSa, OutboundSa, Suite};
        let sel = |s: &str| s.parse::<Selector>().unwrap();
        let out = |spi| {
            Some(Arc::new(crate::tables::OutboundEntry {
                sa: OutboundSa::new(Suite::Aes128Gcm16, spi, &KEY_AB, true).unwrap(),
                counters: PerWorker::new(1),
                watch: None,
            }))
        };
        let tunnel = |name: &str, spi| {
            Tunnel::new(
                name.into(),
                0,
                "192.0.2.1:4500".parse().unwrap(),
                "192.0.2.2:4500".parse().unwrap(),
                out(spi),
            )
        };
        let (l, r) = (sel("10.1.0.0/24"), sel("10.2.0.0/24"));
        let dns = sel("10.2.0.0/24[udp/53]");
        let policy = |remote: Selector, tunnel| Policy {
            local: l.prefix,
            remote: remote.prefix,
            tunnel,
            ports: PolicyPorts::of(l.ports, remote.ports),
            scope: None,
        };
        // Listed address-only first: the table must still try the narrower one first.
        let a = Tables::new(
            vec![tunnel("dns", 0x201), tunnel("rest", 0x202)],
            vec![policy(r, 1), policy(dns, 0)],
            vec![],
        )
        .unwrap();
        let inbound = |spi, local: Selector| {
            Arc::new(InboundEntry {
                sa: InboundSa::new(Suite::Aes128Gcm16, spi, &KEY_AB, true, 1024).unwrap(),
                local_ts: vec![local.prefix].into(),
                remote_ts: vec![l.prefix].into(),
                ports: PortSelectors::of(&[local], &[l]).map(Box::new),
                counters: PerWorker::new(1),
                watch: None,
                device: Default::default(),
            })
        };
        let b = Tables::new(vec![], vec![], vec![inbound(0x201, dns), inbound(0x202, r)]).unwrap();
        (a, b)
    }

    fn spi_of(esp: &[u8]) -> u32 {
        u32::from_be_bytes(esp[..4].try_into().unwrap())
    }

    #[test]
    fn ports_pick_the_sa_and_are_enforced_inbound() {
        let (a, b) = port_pair();
        let pw = PerWorker::<GatewayCounters>::new(1);
        let gw = pw.get(0);
        let (h1, h2) = ([10, 1, 0, 2], [10, 2, 0, 2]);
        let dns = seal(&a, &udp(h1, h2, 40000, 53, false), gw).unwrap();
        assert_eq!(spi_of(&dns), 0x201, "UDP/53 takes the DNS SA");
        let other = seal(&a, &udp(h1, h2, 40000, 54, false), gw).unwrap();
        assert_eq!(spi_of(&other), 0x202, "UDP/54 takes the other");
        // A later fragment has no port: not the port-specific SA, the any-port one.
        let frag = seal(&a, &udp(h1, h2, 0, 0, true), gw).unwrap();
        assert_eq!(spi_of(&frag), 0x202);
        for mut esp in [dns, other, frag] {
            assert!(matches!(open_one(&b, &mut esp), Inbound::Deliver(..)));
        }
        // The peer sends UDP/54 or a later fragment on the DNS SA: dropped as selector.
        let dns_out = a.tunnels()[0].outbound.as_ref().unwrap();
        for pkt in [udp(h1, h2, 40000, 54, false), udp(h1, h2, 0, 0, true)] {
            let mut buf = vec![0u8; HEADROOM + pkt.len() + MAX_TRAILER];
            buf[HEADROOM..HEADROOM + pkt.len()].copy_from_slice(&pkt);
            let r = dns_out
                .sa
                .seal_in_place(&mut buf, pkt.len(), NEXT_HEADER_IPV4)
                .unwrap();
            assert_eq!(verdict_name(&open_one(&b, &mut buf[r])), "drop selector");
        }
        // Only a port-specific policy: other traffic to the subnet is dropped, not sent.
        let only_dns = Tables::new(
            vec![Tunnel::new(
                "dns".into(),
                0,
                "192.0.2.1:4500".parse().unwrap(),
                "192.0.2.2:4500".parse().unwrap(),
                a.tunnels()[0].outbound.clone(),
            )],
            vec![Policy {
                local: "10.1.0.0/24".parse().unwrap(),
                remote: "10.2.0.0/24".parse().unwrap(),
                tunnel: 0,
                ports: crate::selector::PolicyPorts::of(
                    crate::selector::Ports::ANY,
                    "10.2.0.0/24[udp/53]"
                        .parse::<crate::selector::Selector>()
                        .unwrap()
                        .ports,
                ),
                scope: None,
            }],
            vec![],
        )
        .unwrap();
        assert!(seal(&only_dns, &udp(h1, h2, 1, 53, false), gw).is_some());
        assert!(seal(&only_dns, &udp(h1, h2, 1, 54, false), gw).is_none());
        assert!(seal(&only_dns, &udp(h1, h2, 0, 0, true), gw).is_none());
        assert_eq!(pw.totals().drops.get(DropReason::NoPolicy), 2);
    }
}

/// A test-only way to make a running worker fail, for the integration test of worker
/// supervision (`tests/faults.rs`). Compiled only with the `fault-injection` feature, which
/// only the ironsecd crate's test build enables (a dev-dependency feature), so the shipped
/// binary has no such hook.
#[cfg(feature = "fault-injection")]
mod fault {
    /// `IRONSEC_FAULT_WORKER=<path>`: once a file appears at `path`, worker 0 panics if it
    /// says `panic`, or returns as if its loop ended if it says `return`.
    pub(super) struct Trigger(std::path::PathBuf);

    impl Trigger {
        pub(super) fn from_env(worker: usize) -> Option<Trigger> {
            let path = std::env::var_os("IRONSEC_FAULT_WORKER")?;
            (worker == 0).then(|| Trigger(path.into()))
        }

        /// Panics for `panic`; true for `return`; false while there is no file.
        pub(super) fn fire(&self) -> bool {
            match std::fs::read_to_string(&self.0)
                .ok()
                .as_deref()
                .map(str::trim)
            {
                Some("panic") => panic!("fault injected through IRONSEC_FAULT_WORKER"),
                Some("return") => true,
                _ => false,
            }
        }
    }
}
