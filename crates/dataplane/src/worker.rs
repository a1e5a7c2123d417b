//! One fast-path worker: moves packets TUN -> ESP -> UDP and UDP -> ESP -> TUN in batches.
//!
//! A worker waits in poll() on the shared TUN device and its own sockets, then drains each
//! ready one in batches: up to `batch` packets per syscall on the UDP side (recvmmsg/sendmmsg),
//! one table snapshot load per batch, and no allocation, lock or log line per packet. (The only
//! lock is inside an inbound SA's replay window, held for a bitmap update.)

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use ironsec_esp::{
    classify, Datagram, OpenError, SealError, HEADROOM, MAX_TRAILER, NEXT_HEADER_IPV4,
    NEXT_HEADER_IPV6,
};
use socket2::Socket;

use crate::counters::{DropReason, GatewayCounters, PerWorker};
use crate::tables::{inner_addrs, InnerAddr, Tables};
use crate::tun::Tun;
use crate::udp::{RecvBatch, SendBatch};

/// How long poll() may sleep before the worker looks at the stop flag again.
const POLL_MS: i32 = 100;

pub(crate) struct Worker {
    pub id: usize,
    pub tun: Arc<Tun>,
    pub sockets: Vec<Socket>,
    pub tables: Arc<ArcSwap<Tables>>,
    pub counters: Arc<PerWorker<GatewayCounters>>,
    pub stop: Arc<AtomicBool>,
    pub batch: usize,
    pub max_packet: usize,
}

/// Why a worker stopped on its own: the daemon treats it as fatal.
#[derive(Debug)]
pub(crate) struct WorkerFailure(pub String);

impl Worker {
    pub fn run(self) -> Result<(), WorkerFailure> {
        let mut out_bufs: Vec<Box<[u8]>> = (0..self.batch)
            .map(|_| vec![0u8; HEADROOM + self.max_packet + MAX_TRAILER].into_boxed_slice())
            .collect();
        let mut out_meta: Vec<(usize, usize, usize)> = Vec::with_capacity(self.batch); // (buf, len, tunnel)
        let mut send = SendBatch::new(self.batch);
        let mut recv = RecvBatch::new(self.batch, self.max_packet + 512);

        let tun_fd = self.tun.as_raw_fd();
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
                self.outbound(&mut out_bufs, &mut out_meta, &mut send, gw)?;
            }
            for i in 0..self.sockets.len() {
                if fds[i + 1].revents & libc::POLLIN != 0 {
                    self.inbound(i, &mut recv, gw)?;
                }
            }
        }
        Ok(())
    }

    /// Drains the TUN device: read, look up policy, seal in place, send in batches.
    fn outbound(
        &self,
        bufs: &mut [Box<[u8]>],
        meta: &mut Vec<(usize, usize, usize)>,
        send: &mut SendBatch,
        gw: &GatewayCounters,
    ) -> Result<(), WorkerFailure> {
        loop {
            let tables = self.tables.load();
            meta.clear();
            let mut drained = false;
            for (i, buf) in bufs.iter_mut().enumerate() {
                let n = match self
                    .tun
                    .recv(&mut buf[HEADROOM..HEADROOM + self.max_packet])
                {
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
                gw.tun_rx(1);
                if let Some(m) = seal_one(&tables, self.id, buf, n, gw) {
                    meta.push((i, m.0, m.1));
                }
            }
            // Group by socket; with one local address this is a single pass.
            for s in 0..self.sockets.len() {
                for &(i, len, t) in meta.iter() {
                    let tunnel = &tables.tunnels()[t];
                    if tunnel.socket == s {
                        send.push(&bufs[i][..len], tunnel.remote_sockaddr());
                    }
                }
                if !send.is_empty() {
                    let (sent, failed) = send.flush(self.sockets[s].as_raw_fd());
                    gw.udp_tx(sent as u64);
                    for _ in 0..failed {
                        gw.drop(DropReason::Io);
                    }
                }
            }
            if drained {
                return Ok(());
            }
        }
    }

    /// Drains socket `s`: classify, decrypt in place, check selectors, write to TUN.
    fn inbound(
        &self,
        s: usize,
        recv: &mut RecvBatch,
        gw: &GatewayCounters,
    ) -> Result<(), WorkerFailure> {
        let fd: RawFd = self.sockets[s].as_raw_fd();
        loop {
            let n = recv
                .recv(fd)
                .map_err(|e| WorkerFailure(format!("receiving on UDP socket: {e}")))?;
            if n == 0 {
                return Ok(());
            }
            gw.udp_rx(n as u64);
            let tables = self.tables.load();
            for i in 0..n {
                let (dgram, truncated) = recv.datagram(i);
                if truncated {
                    gw.drop(DropReason::Malformed);
                    continue;
                }
                open_one(&tables, self.id, dgram, &self.tun, gw);
            }
            if n < recv.capacity() {
                return Ok(());
            }
        }
    }
}

/// Encrypts the packet in `buf[HEADROOM..HEADROOM+n]`; returns (ESP length, tunnel) to send, or
/// counts why not.
#[inline]
pub(crate) fn seal_one(
    tables: &Tables,
    worker: usize,
    buf: &mut [u8],
    n: usize,
    gw: &GatewayCounters,
) -> Option<(usize, usize)> {
    let Some((src, dst)) = inner_addrs(&buf[HEADROOM..HEADROOM + n]) else {
        gw.drop(DropReason::Malformed);
        return None;
    };
    let next_header = match src {
        InnerAddr::V4(_) => NEXT_HEADER_IPV4,
        InnerAddr::V6(_) => NEXT_HEADER_IPV6,
    };
    let Some((tid, tunnel)) = tables.route_id(src, dst) else {
        gw.drop(DropReason::NoPolicy);
        return None;
    };
    let Some(out) = tunnel.outbound.as_ref() else {
        gw.drop(DropReason::NoSa);
        return None;
    };
    let c = out.counters.get(worker);
    match out.sa.seal_in_place(buf, n, next_header) {
        Ok(len) => {
            c.packet(n);
            Some((len, tid))
        }
        Err(SealError::SequenceExhausted) => {
            c.drop(DropReason::SeqExhausted);
            gw.drop(DropReason::SeqExhausted);
            None
        }
        Err(_) => {
            c.drop(DropReason::Malformed);
            gw.drop(DropReason::Malformed);
            None
        }
    }
}

/// Handles one received UDP/4500 datagram.
#[inline]
pub(crate) fn open_one(
    tables: &Tables,
    worker: usize,
    dgram: &mut [u8],
    tun: &Tun,
    gw: &GatewayCounters,
) {
    let spi = match classify(dgram) {
        Datagram::Esp { spi } => spi,
        Datagram::NatKeepalive => {
            gw.keepalive();
            return;
        }
        Datagram::Ike(_) => {
            // IKE on 4500 belongs to the control plane, which arrives with the IKE engine.
            gw.ike();
            return;
        }
        Datagram::Malformed(_) => {
            gw.drop(DropReason::Malformed);
            return;
        }
    };
    let Some(sa) = tables.inbound(spi) else {
        gw.drop(DropReason::UnknownSpi);
        return;
    };
    let c = sa.counters.get(worker);
    let reason = match sa.sa.open_in_place(dgram) {
        Ok(opened) => {
            let pkt = &dgram[opened.range()];
            match inner_addrs(pkt) {
                Some((src, dst)) if sa.admits(src, dst) => match tun.send(pkt) {
                    Ok(_) => {
                        c.packet(pkt.len());
                        gw.tun_tx(1);
                        return;
                    }
                    Err(_) => DropReason::Io,
                },
                Some(_) => DropReason::Selector,
                None => DropReason::Malformed,
            }
        }
        Err(OpenError::Dummy) => DropReason::Dummy,
        Err(OpenError::Replay | OpenError::TooOld) => DropReason::Replay,
        Err(OpenError::Authentication) => DropReason::Authentication,
        Err(_) => DropReason::Malformed,
    };
    c.drop(reason);
    gw.drop(reason);
}
