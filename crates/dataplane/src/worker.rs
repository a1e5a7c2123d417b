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
//! A worker waits in poll() on the shared TUN device and its own sockets, then drains each
//! ready one in batches: up to `batch` packets per syscall on the UDP side (recvmmsg/sendmmsg),
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
use crate::gro::{Coalescer, UdpCoalescer};
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
}

/// A sealed packet waiting in the outbound batch: which of the batch's buffers holds it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Queued {
    buf: usize,
    sealed: Sealed,
}

/// Decrypted packets merged for one TUN write (offloading device only): TCP segments of one
/// flow, and same-sized UDP datagrams of one flow.
#[derive(Default)]
pub(crate) struct Coalescers {
    tcp: Coalescer,
    udp: UdpCoalescer,
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
        // Decrypted TCP segments merged for one TUN write (offloading device only).
        let mut co = self.tun.vnet().then(Coalescers::default);
        // Where a TSO super-packet from the TUN device is read before being split.
        let mut big = vec![
            0u8;
            if self.tun.vnet() {
                VNET_HDR_LEN + 65_535
            } else {
                0
            }
        ];
        let recv_len = if self.gro {
            65_535
        } else {
            self.max_packet + 512
        };
        let mut recv = RecvBatch::new(self.batch, recv_len);

        let tun_fd = self.tun.fd(self.id);
        let mut fds: Vec<libc::pollfd> = std::iter::once(tun_fd)
            .chain(self.sockets.iter().map(|s| s.as_raw_fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let gw = self.counters.get(self.id);

        while !self.stop.load(Ordering::Relaxed) {
            // SAFETY: fds is a valid array of pollfd of the given length.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, POLL_MS) };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(WorkerFailure(format!("poll: {e}")));
            }
            if r == 0 {
                continue;
            }
            if fds[0].revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                return Err(WorkerFailure(format!(
                    "TUN device {} failed (deleted?)",
                    self.tun.name()
                )));
            }
            if fds[0].revents & libc::POLLIN != 0 {
                self.outbound(&mut out_bufs, &mut out_meta, &mut send, gw, &mut big)?;
            }
            for i in 0..self.sockets.len() {
                if fds[i + 1].revents & libc::POLLIN != 0 {
                    self.inbound(i, &mut recv, gw, &mut co)?;
                }
            }
        }
        Ok(())
    }

    /// Drains the TUN device: read, look up policy, seal in place, send in batches.
    fn outbound(
        &self,
        bufs: &mut [Box<[u8]>],
        meta: &mut Vec<Queued>,
        send: &mut SendSlots,
        gw: &GatewayCounters,
        big: &mut [u8],
    ) -> Result<(), WorkerFailure> {
        loop {
            let tables = self.tables.load();
            meta.clear();
            let mut used = 0;
            let mut drained = false;
            while used < bufs.len() {
                // With offload one read may be a TSO super-packet: read it aside, then split
                // it into the batch's buffers; else read straight into the next buffer.
                let into: &mut [u8] = if self.tun.vnet() {
                    &mut big[..]
                } else {
                    &mut bufs[used][HEADROOM..HEADROOM + self.max_packet]
                };
                let n = match self.tun.recv(self.id, into) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        drained = true;
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(WorkerFailure(format!(
                            "reading TUN device {}: {e}",
                            self.tun.name()
                        )))
                    }
                };
                if !self.tun.vnet() {
                    gw.tun_rx(1);
                    let verdict = seal_one(&tables, &mut bufs[used], n);
                    let acq = self.acquire_sink.as_ref();
                    if let Some(sealed) = account_sealed(self.id, verdict, gw, acq) {
                        meta.push(Queued { buf: used, sealed });
                    }
                    used += 1;
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
                    let verdict = seal_one(&tables, &mut bufs[used], len);
                    let acq = self.acquire_sink.as_ref();
                    if let Some(sealed) = account_sealed(self.id, verdict, gw, acq) {
                        meta.push(Queued { buf: used, sealed });
                    }
                    used += 1;
                }
            }
            self.send_sealed(&tables, bufs, meta, send, gw);
            if drained {
                return Ok(());
            }
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
                sealed: Sealed { len, tunnel: t },
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
                    send.push(&bufs[buf][..len], tunnel.remote_sockaddr());
                }
            }
            if !send.is_empty() {
                let (sent, failed) = send.flush(self.sockets[s].as_fd());
                gw.udp_tx(sent as u64);
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

    /// Writes a coalesced run of `n` packets to the TUN device.
    fn write_run(&self, run: &[u8], n: usize, gw: &GatewayCounters) {
        let n = n as u64;
        match self.tun.send(self.id, run) {
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
        co: &mut Option<Coalescers>,
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
            let mut batch_now = None;
            for i in 0..n {
                let seg = recv.segment_size(i);
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
                    match (verdict, co.as_mut()) {
                        // Offloading TUN: TCP segments, or same-sized UDP datagrams, of one
                        // flow are written as one.
                        (Inbound::Deliver(range, sa, peer), Some(co)) => {
                            let pkt = &d[range.clone()];
                            if co.tcp.must_flush_before(pkt) {
                                let n = co.tcp.segments();
                                self.write_run(co.tcp.take(), n, gw);
                            }
                            if co.udp.must_flush_before(pkt) {
                                let n = co.udp.segments();
                                self.write_run(co.udp.take(), n, gw);
                            }
                            if co.tcp.push(pkt) || co.udp.push(pkt) {
                                sa.counters.get(self.id).packet(pkt.len());
                            } else {
                                let v = Inbound::Deliver(range, sa, peer);
                                deliver(self.id, d, v, &self.tun, gw);
                            }
                        }
                        (v, _) => deliver(self.id, d, v, &self.tun, gw),
                    }
                    off = end;
                }
            }
            if let Some(co) = co.as_mut() {
                if co.tcp.pending() {
                    let n = co.tcp.segments();
                    self.write_run(co.tcp.take(), n, gw);
                }
                if co.udp.pending() {
                    let n = co.udp.segments();
                    self.write_run(co.udp.take(), n, gw);
                }
            }
            if n < recv.capacity() {
                return Ok(());
            }
        }
    }
}

/// A packet sealed for sending: `len` bytes of ESP-in-UDP payload from the start of its
/// buffer, for `tunnel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub len: usize,
    pub tunnel: TunnelId,
}

/// What one packet read from the TUN device turned out to be: [`seal_one`]'s verdict, which
/// [`account_sealed`] counts and acts on.
pub enum Outbound<'t> {
    /// Sealed with this SA; `plain_len` is the inner packet's length, for the SA's counters.
    Send {
        sealed: Sealed,
        plain_len: usize,
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
    let Some((src, dst)) = inner_addrs(&buf[HEADROOM..HEADROOM + n]) else {
        return Outbound::Drop(DropReason::Malformed, None);
    };
    let next_header = match src {
        InnerAddr::V4(_) => NEXT_HEADER_IPV4,
        InnerAddr::V6(_) => NEXT_HEADER_IPV6,
    };
    let Some((mut tid, mut tunnel)) = tables.route_id(src, dst) else {
        return Outbound::Drop(DropReason::NoPolicy, None);
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
    if let Some(b) = &tunnel.shaper {
        if !b.admit(n, crate::shaper::now_ns()) {
            return Outbound::Drop(DropReason::Shaped, None);
        }
    }
    match out.sa.seal_in_place(buf, n, next_header) {
        Ok(len) => Outbound::Send {
            sealed: Sealed { len, tunnel: tid },
            plain_len: n,
            sa: out,
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
        } => {
            sa.counters.get(worker).packet(plain_len);
            Some(sealed)
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
            Some((src, dst)) if sa.admits(src, dst) => {
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
        account_sealed(0, verdict, gw, None).map(|s| buf[..s.len].to_vec())
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
        let n = out
            .sa
            .seal_in_place(&mut buf, 80, NEXT_HEADER_IPV4)
            .unwrap();
        assert_eq!(verdict_name(&open_one(&b, &mut buf[..n])), "drop selector");

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
}
