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
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::mpsc;

use crate::config::{Config, Keying};

/// An IKE datagram for the control plane: (local address, remote address, UDP payload).
pub type IkeDatagram = (SocketAddr, SocketAddr, Vec<u8>);

/// The smallest queue (what it was before it grew with the config).
const MIN_QUEUE: usize = 1024;
/// The largest queue: datagrams are at most a few KB, so a full queue stays below ~100 MB
/// even of the largest IKE_AUTH messages, and is a few MB of IKE_SA_INIT requests.
const MAX_QUEUE: usize = 65_536;
/// Receive buffer per queued datagram: the kernel charges a datagram's buffer (its
/// truesize, ~1-2.5 KB for an IKE_SA_INIT) against SO_RCVBUF, which it doubles.
const RCVBUF_PER_DATAGRAM: usize = 1024;
/// The largest IKE receive buffer asked for (the kernel doubles it).
const MAX_RCVBUF: usize = 32 << 20;

/// How many IKE datagrams may wait for the control plane: two per IKE tunnel (a burst of
/// every peer's IKE_SA_INIT, then its retry with the cookie), two per address a
/// remote-access pool can lease, at least [`MIN_QUEUE`], at most [`MAX_QUEUE`]. Fixed at
/// start (a reload that adds tunnels does not grow it).
pub fn queue_size(cfg: &Config) -> usize {
    let per_tunnel: usize = cfg
        .connections
        .iter()
        .map(|c| match &c.keying {
            Keying::Ike(k) => match &k.remote_access {
                // A client per address its pools lease.
                Some(ra) => ra
                    .pools
                    .iter()
                    .filter_map(|p| {
                        ironsec_ike::pool::AddressPool::new(&c.name, &p.to_string(), ra.lease_grace)
                            .ok()
                    })
                    .map(|p| {
                        usize::try_from(p.size())
                            .unwrap_or(MAX_QUEUE)
                            .min(MAX_QUEUE)
                    })
                    .fold(0usize, |a, b| a.saturating_add(b.saturating_mul(2))),
                None => 2 * k.tunnels.len(),
            },
            Keying::Static(_) => 0,
        })
        .fold(0usize, |a, b| a.saturating_add(b));
    per_tunnel.clamp(MIN_QUEUE, MAX_QUEUE)
}

/// The IKE sockets' receive buffer for a queue of `queue` datagrams: room for as many again
/// in the kernel while the reader thread waits for a core, and never less than the fast
/// path's sockets get (`gateway.socket_buffer`).
pub fn receive_buffer(cfg: &Config, queue: usize) -> usize {
    (queue * RCVBUF_PER_DATAGRAM)
        .min(MAX_RCVBUF)
        .max(cfg.gateway.socket_buffer)
}

/// The admission rule and what it dropped.
#[derive(Debug, Default)]
pub struct Admission {
    peers: RwLock<HashSet<IpAddr>>,
    dropped: AtomicU64,
    /// The IKE sockets the readers drain (copies of their descriptors), for the kernel's
    /// count of what it dropped before a reader got to it.
    sockets: Mutex<Vec<UdpSocket>>,
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

    /// Datagrams the kernel dropped on the IKE sockets before a reader took them (their
    /// receive buffer was full: `RcvbufErrors`, per socket), since the sockets were made.
    /// IKE on the NAT-T port arrives on the fast path's sockets and is not counted here.
    pub fn socket_dropped(&self) -> u64 {
        let sockets = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
        sockets.iter().map(|s| socket_drops(s).unwrap_or(0)).sum()
    }

    fn watch_socket(&self, s: &UdpSocket) {
        match s.try_clone() {
            Ok(c) => self
                .sockets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(c),
            Err(e) => tracing::debug!(error = %e, "IKE socket: no copy for its drop count"),
        }
    }
}

/// The kernel's count of datagrams a socket dropped (SO_MEMINFO, `SK_MEMINFO_DROPS`: a full
/// receive buffer, mostly).
fn socket_drops(s: &UdpSocket) -> io::Result<u64> {
    // SK_MEMINFO_VARS (9) u32 values; newer kernels may add more, so room for a few.
    let mut info = [0u32; 16];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: getsockopt on a valid fd with a buffer of `len` bytes it may fill.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            info.as_mut_ptr() as *mut libc::c_void,
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let at = libc::SK_MEMINFO_DROPS as usize;
    if (len as usize) < (at + 1) * 4 {
        return Err(io::Error::other("SO_MEMINFO: no drop count"));
    }
    Ok(u64::from(info[at]))
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
    adm.watch_socket(&socket);
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
