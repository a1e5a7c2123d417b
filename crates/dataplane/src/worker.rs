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
use crate::tables::{inner_addrs, InboundEntry, InnerAddr, Tables};
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
    /// Where IKE messages arriving on the NAT-T port go: the control plane.
    pub ike_sink: Option<crate::IkeSink>,
    /// The address each socket is bound to (same order as `sockets`).
    pub local_addrs: Vec<std::net::SocketAddr>,
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
                let verdict = open_one(&tables, dgram);
                if let (Inbound::Ike, Some(sink)) = (&verdict, &self.ike_sink) {
                    if let Some(from) = recv.source(i) {
                        let (dgram, _) = recv.datagram(i);
                        sink(self.local_addrs[s], from, dgram);
                    }
                }
                let (dgram, _) = recv.datagram(i);
                deliver(self.id, dgram, verdict, &self.tun, gw);
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

/// What one received UDP/4500 datagram turned out to be.
pub(crate) enum Inbound<'t> {
    /// A decrypted packet for the site, at this range of the datagram buffer, from this SA.
    Deliver(std::ops::Range<usize>, &'t InboundEntry),
    /// IKE on 4500: belongs to the control plane.
    Ike,
    NatKeepalive,
    /// Dropped; if an SA was identified, that SA, so its counters can be charged.
    Drop(DropReason, Option<&'t InboundEntry>),
}

/// Classifies, decrypts in place and checks selectors; touches no device, so the decision
/// logic is testable without a kernel.
#[inline]
pub(crate) fn open_one<'t>(tables: &'t Tables, dgram: &mut [u8]) -> Inbound<'t> {
    let spi = match classify(dgram) {
        Datagram::Esp { spi } => spi,
        Datagram::NatKeepalive => return Inbound::NatKeepalive,
        Datagram::Ike(_) => return Inbound::Ike,
        Datagram::Malformed(_) => return Inbound::Drop(DropReason::Malformed, None),
    };
    let Some(sa) = tables.inbound(spi) else {
        return Inbound::Drop(DropReason::UnknownSpi, None);
    };
    let reason = match sa.sa.open_in_place(dgram) {
        Ok(opened) => match inner_addrs(&dgram[opened.range()]) {
            Some((src, dst)) if sa.admits(src, dst) => return Inbound::Deliver(opened.range(), sa),
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
fn deliver(worker: usize, dgram: &[u8], verdict: Inbound, tun: &Tun, gw: &GatewayCounters) {
    let (reason, sa) = match verdict {
        Inbound::Deliver(range, sa) => {
            let pkt = &dgram[range];
            match tun.send(pkt) {
                Ok(_) => {
                    gw.tun_tx(1);
                    sa.counters.get(worker).packet(pkt.len());
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
    use crate::counters::{PerWorker, SaCounters};
    use crate::tables::{InboundEntry, OutboundEntry, Policy, Tunnel};
    use crate::Prefix;
    use ironsec_esp::{InboundSa, OutboundSa, Suite};

    const KEY_AB: [u8; 20] = [1; 20];
    const KEY_BA: [u8; 20] = [2; 20];

    /// Gateway tables for one side of a static tunnel: `local`/`remote` selectors, sending with
    /// `out_key` on SPI `out_spi`, receiving `in_spi` with `in_key`.
    fn side(local: &str, remote: &str, out: (u32, &[u8]), inb: (u32, &[u8])) -> Tables {
        let l: Prefix = local.parse().unwrap();
        let r: Prefix = remote.parse().unwrap();
        let o = OutboundSa::new(Suite::Aes128Gcm16, out.0, out.1, true).unwrap();
        let i = InboundSa::new(Suite::Aes128Gcm16, inb.0, inb.1, true, 1024).unwrap();
        Tables::new(
            vec![Tunnel::new(
                "peer".into(),
                0,
                "192.0.2.1:4500".parse().unwrap(),
                "192.0.2.2:4500".parse().unwrap(),
                Some(Arc::new(OutboundEntry {
                    sa: o,
                    counters: PerWorker::new(1),
                })),
            )],
            vec![Policy {
                local: l,
                remote: r,
                tunnel: 0,
            }],
            vec![Arc::new(InboundEntry {
                sa: i,
                tunnel: 0,
                local_ts: vec![l].into(),
                remote_ts: vec![r].into(),
                counters: PerWorker::<SaCounters>::new(1),
            })],
        )
        .unwrap()
    }

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
        seal_one(a, 0, &mut buf, pkt.len(), gw).map(|(len, _)| buf[..len].to_vec())
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
            Inbound::Deliver(r, _) => format!("deliver {}", r.len()),
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
        let Inbound::Deliver(range, _) = &v else {
            panic!("{}", verdict_name(&v))
        };
        assert_eq!(&esp[range.clone()], &pkt[..]);
        assert_eq!(verdict_name(&open_one(&b, &mut replay)), "drop replay");
    }

    #[test]
    fn outbound_without_policy_or_sa_is_never_sent_in_clear() {
        let (a, _) = pair();
        let pw = PerWorker::<GatewayCounters>::new(1);
        let gw = pw.get(0);
        assert!(seal(&a, &ipv4([10, 1, 0, 2], [10, 3, 0, 2], 60), gw).is_none());
        assert!(seal(&a, &ipv4([10, 9, 0, 2], [10, 2, 0, 2], 60), gw).is_none());
        assert!(seal(&a, &[0x45, 0, 0], gw).is_none());
        let no_sa = Tables::new(
            vec![Tunnel::new(
                "peer".into(),
                0,
                "192.0.2.1:4500".parse().unwrap(),
                "192.0.2.2:4500".parse().unwrap(),
                None,
            )],
            vec![Policy {
                local: "10.1.0.0/24".parse().unwrap(),
                remote: "10.2.0.0/24".parse().unwrap(),
                tunnel: 0,
            }],
            vec![],
        )
        .unwrap();
        assert!(seal(&no_sa, &ipv4([10, 1, 0, 2], [10, 2, 0, 2], 60), gw).is_none());
        let d = pw.totals().drops;
        assert_eq!(d.get(DropReason::NoPolicy), 2);
        assert_eq!(d.get(DropReason::Malformed), 1);
        assert_eq!(d.get(DropReason::NoSa), 1);
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
