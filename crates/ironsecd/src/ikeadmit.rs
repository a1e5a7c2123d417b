//! Which IKE datagrams get into the control plane's queue while a flood fills it.
//!
//! The control plane handles IKE one datagram at a time on one thread (parse, cookie or
//! answer, send). A flood of IKE_SA_INIT requests from spoofed addresses faster than that
//! used to fill the IKE socket's receive buffer, and the kernel then dropped the datagrams of
//! real peers as readily as the flood's: cookies kept the flood from costing state, but a site
//! could not connect until the flood stopped.
//!
//! So each IKE socket is read by a thread of its own that drains the kernel as fast as
//! datagrams come (a receive and a set lookup each) and queues them for the control plane,
//! keeping the last half of the queue for the addresses of configured peers (the tunnels'
//! remote addresses, the only ones a responder accepts anyway): datagrams from any other
//! address may fill at most half of it; the rest are dropped and counted. IKE on the NAT-T
//! port, which the fast path hands over, goes through the same rule. A flood that spoofs a
//! configured peer's own address still competes with that peer; cookies keep it from costing
//! state.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::mpsc;

use crate::config::{Config, Keying};

/// An IKE datagram for the control plane: (local address, remote address, UDP payload).
pub type IkeDatagram = (SocketAddr, SocketAddr, Vec<u8>);

/// The admission rule and what it dropped.
#[derive(Debug, Default)]
pub struct Admission {
    peers: RwLock<HashSet<IpAddr>>,
    dropped: AtomicU64,
}

impl Admission {
    pub fn new(cfg: &Config) -> Admission {
        let a = Admission::default();
        a.set_peers(cfg);
        a
    }

    /// The configured peers' addresses (at start and after each reload).
    pub fn set_peers(&self, cfg: &Config) {
        let peers = cfg
            .connections
            .iter()
            .filter_map(|c| match &c.keying {
                Keying::Ike(k) => Some(k.tunnels.iter().map(|t| t.remote)),
                Keying::Static(_) => None,
            })
            .flatten()
            .collect();
        *self.peers.write().unwrap_or_else(|e| e.into_inner()) = peers;
    }

    fn is_peer(&self, ip: IpAddr) -> bool {
        self.peers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&ip)
    }

    /// Queues a copy of `data` (received on `local` from `from`) on `tx` if the rule lets it
    /// in and there is room; counts it otherwise.
    pub fn offer(
        &self,
        tx: &mpsc::Sender<IkeDatagram>,
        local: SocketAddr,
        from: SocketAddr,
        data: &[u8],
    ) {
        let room = tx.capacity() > tx.max_capacity() / 2 || self.is_peer(from.ip());
        if !room || tx.try_send((local, from, data.to_vec())).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Datagrams dropped because the queue was full (or half full and they came from an
    /// address no connection names).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Reads `socket` (non-blocking, bound to `local`) on a thread of its own and offers every
/// datagram to `tx` under `adm`'s rule; the thread ends when the control plane's receiver is
/// gone.
pub fn spawn_reader(
    local: SocketAddr,
    socket: UdpSocket,
    tx: mpsc::Sender<IkeDatagram>,
    adm: Arc<Admission>,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("ike-rx".into())
        .spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !tx.is_closed() {
                match socket.recv_from(&mut buf) {
                    Ok((n, from)) => adm.offer(&tx, local, from, &buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        let mut pfd = libc::pollfd {
                            fd: socket.as_raw_fd(),
                            events: libc::POLLIN,
                            revents: 0,
                        };
                        // Bounded, so a closed queue is noticed.
                        // SAFETY: one valid pollfd, for a socket this thread owns.
                        unsafe { libc::poll(&mut pfd, 1, 200) };
                    }
                    Err(e) => tracing::debug!(error = %e, "IKE receive failed"),
                }
            }
        })
        .map(|_| ())
}
