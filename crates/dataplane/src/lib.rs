//! ironsec's Linux fast path: packets between the site's TUN device and ESP-in-UDP sockets.
//!
//! The control plane (the daemon) builds [`Tables`] — tunnels, policies, SAs — and installs them
//! with [`Dataplane::install`]; worker threads pick up the new snapshot on their next batch
//! without locking. The control plane never touches a data packet.
//!
//! How a packet travels TUN -> ESP -> UDP and back: `ARCHITECTURE.md`, "Life of a packet" (and
//! the module doc of `worker.rs`).

pub mod activity;
pub mod checksum;
pub mod counters;
pub mod ethtool;
pub mod gro;
pub mod guard;
pub mod interfaces;
pub mod iproute;
pub mod mtu;
pub mod netlink;
pub mod offload;
pub mod packet;
pub mod prefix;
pub mod selector;
pub mod shaper;
mod supervise;
pub mod tables;
pub mod tun;
pub mod udp;
mod worker;

/// The per-packet verdict functions, for the criterion benches of the whole packet path.
#[doc(hidden)]
pub use worker::{
    account_sealed, clamp_inbound, open_one, seal_in, seal_one, Inbound, Outbound, Sealed,
};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use arc_swap::{ArcSwap, Guard};

pub use activity::{Direction, SaActivity, Watch, WatchId};
pub use counters::{DropReason, DropTotals, GatewayTotals, PerWorker, SaCounters, SaTotals};
pub use interfaces::{DeviceCell, IfaceId};
pub use prefix::{Prefix, PrefixError};
pub use selector::{PolicyPorts, PortSelectors, Ports, Selector, SelectorError};
pub use shaper::Bucket;
pub use tables::{
    flow_hash, one_tunnel, one_tunnel_with, InboundEntry, OutboundEntry, Policy, Spread,
    TableError, Tables, Trap, Tunnel, TunnelId,
};

use counters::GatewayCounters;
use interfaces::{Devices, Epoll, Token};
use tun::Tun;
use worker::Worker;

/// Receives IKE messages that arrive on the NAT-T port: (local address, peer address, UDP
/// payload including the non-ESP marker). Called on a worker thread, so it must only hand the
/// datagram over (e.g. a channel send), never block.
pub type IkeSink = Arc<dyn Fn(SocketAddr, SocketAddr, &[u8]) + Send + Sync>;

/// Receives the id of a trapped tunnel that has traffic but no SA (see
/// [`Tunnel::with_trap`]): the control plane should negotiate one. Called on a worker thread;
/// must not block.
pub type AcquireSink = Arc<dyn Fn(TunnelId) + Send + Sync>;

/// Receives (local address, peer address, SPI) of ESP-in-UDP whose SPI no inbound SA has: a
/// peer still sending on SAs this gateway lost (it restarted), or noise. At most ten reports a
/// second per worker, so a flood of random SPIs costs the control plane nothing. Called on a
/// worker thread; must not block.
pub type UnknownSpiSink = Arc<dyn Fn(SocketAddr, SocketAddr, u32) + Send + Sync>;

/// Receives the first packet through a watched SA after the control plane armed its
/// [`Watch`] for that direction: one call per arming, however many packets follow. Called on
/// a worker thread; must not block.
pub type ActivitySink = Arc<dyn Fn(SaActivity) + Send + Sync>;

/// Receives (inbound SPI, source address) when an SA whose peer is behind a NAT (see
/// [`Tables::following`]) delivered an authenticated, replay-checked packet from an address
/// other than the one its tunnel sends to: the peer's NAT mapping changed, and the control
/// plane should send there (RFC 3948; RFC 7296 2.23). At most ten reports a second per
/// worker. Called on a worker thread; must not block.
pub type PeerMovedSink = Arc<dyn Fn(u32, SocketAddr) + Send + Sync>;

/// Where the fast path hands work to the control plane.
#[derive(Clone, Default)]
pub struct Sinks {
    pub ike: Option<IkeSink>,
    pub acquire: Option<AcquireSink>,
    pub unknown_spi: Option<UnknownSpiSink>,
    /// Without one, an armed [`Watch`] is still disarmed by the next packet, for the control
    /// plane to poll with [`Watch::is_armed`].
    pub activity: Option<ActivitySink>,
    pub peer_moved: Option<PeerMovedSink>,
}

#[derive(thiserror::Error, Debug)]
pub enum DataplaneError {
    #[error("cannot create TUN device '{name}': {source}")]
    Tun {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot bind UDP socket on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("`ip {cmd}` failed: {reason}")]
    Ip { cmd: String, reason: String },
    /// An rtnetlink request (`netlink`) the kernel refused.
    #[error("{what}: {source}")]
    Netlink {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start worker thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("cannot set up the workers' wait (epoll): {0}")]
    Epoll(#[source] std::io::Error),
}

/// How the fast path is set up; fixed for the life of a [`Dataplane`].
#[derive(Clone, Debug)]
pub struct DataplaneConfig {
    pub tun_name: String,
    pub tun_mtu: u16,
    pub tun_txqueuelen: u32,
    /// One socket per address (per worker); tunnels refer to them by index.
    pub local_addrs: Vec<SocketAddr>,
    /// Those of `local_addrs`' addresses that may be absent from this host (shared addresses
    /// of an active-standby pair): their sockets are bound with IP_FREEBIND.
    pub freebind_addrs: Vec<std::net::IpAddr>,
    /// Worker threads; 0 = one per core.
    pub workers: usize,
    /// SO_RCVBUF / SO_SNDBUF per socket, in bytes.
    pub socket_buffer: usize,
    /// Packets per batched syscall.
    pub batch: usize,
    /// UDP segmentation offload: GSO on send, GRO on receive, where the kernel allows.
    pub udp_offload: bool,
    /// TUN offload: TSO super-packets from the device, split in the fast path.
    pub tun_offload: bool,
    /// UDP_NO_CHECK6_RX on the IPv6 sockets: accept zero-checksum UDP (RFC 6936).
    pub udp6_zero_checksum_rx: bool,
}

impl DataplaneConfig {
    /// The worker count `workers` resolves to on this machine. Tables need it before the
    /// dataplane starts, to size per-worker counters.
    pub fn resolved_workers(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
}

pub struct Dataplane {
    tun: Arc<Tun>,
    /// Route-based connections' devices (`interfaces.rs`).
    devices: Arc<ArcSwap<Devices>>,
    /// Each worker's epoll set, in worker order: a new device's queue `w` goes into set `w`.
    epolls: Vec<Arc<Epoll>>,
    /// The last [`IfaceId`] handed out; ids are never reused.
    last_iface: std::sync::Mutex<u32>,
    /// How new devices are made (MTU, queue length, offload), as the shared one was.
    tun_settings: TunSettings,
    tables: Arc<ArcSwap<Tables>>,
    counters: Arc<PerWorker<GatewayCounters>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// How the workers ended, if any did on its own (`supervise.rs`).
    supervision: Arc<supervise::Supervision>,
    workers: usize,
    /// Clones of one worker's sockets, for the control plane's IKE messages on the NAT-T port
    /// (a socket of its own on that port would take a share of the inbound ESP).
    control: Vec<(SocketAddr, socket2::Socket)>,
    /// Clones of every worker's sockets, to turn on IP_RECVTOS when tables first ask for the
    /// outer DSCP (`copy_dscp = "in"`); until then no receive pays for it.
    all_sockets: Vec<(SocketAddr, socket2::Socket)>,
    recv_tos: AtomicBool,
}

/// How every TUN device of the fast path is made: the shared one and each route-based one.
#[derive(Clone, Copy, Debug)]
struct TunSettings {
    mtu: u16,
    txqueuelen: u32,
    offload: bool,
}

impl Dataplane {
    /// Creates the TUN device and sockets and starts the workers with `tables`.
    pub fn start(
        cfg: &DataplaneConfig,
        tables: Tables,
        sinks: Sinks,
    ) -> Result<Dataplane, DataplaneError> {
        let workers = cfg.resolved_workers();
        let tun = Arc::new(Tun::create(
            &cfg.tun_name,
            cfg.tun_mtu,
            cfg.tun_txqueuelen,
            cfg.tun_offload,
            workers,
            tun::Queueing::KernelDefault,
        )?);
        tracing::info!(
            tun = %tun.name(),
            offload = tun.vnet(),
            udp_segmentation = tun.uso(),
            queues = tun.queues(),
            "TUN device up"
        );
        let mut sockets = Vec::with_capacity(workers);
        let mut gro = cfg.udp_offload;
        for _ in 0..workers {
            let mut per_worker = Vec::with_capacity(cfg.local_addrs.len());
            for &addr in &cfg.local_addrs {
                let freebind = cfg.freebind_addrs.contains(&addr.ip());
                let sock = udp::bind(addr, cfg.socket_buffer, freebind)
                    .map_err(|source| DataplaneError::Bind { addr, source })?;
                if addr.is_ipv6() && cfg.udp6_zero_checksum_rx {
                    udp::accept_zero_checksum6(&sock)
                        .map_err(|source| DataplaneError::Bind { addr, source })?;
                }
                if cfg.udp_offload && !udp::enable_gro(&sock) {
                    gro = false;
                }
                per_worker.push(sock);
            }
            sockets.push(per_worker);
        }
        if cfg.udp_offload {
            tracing::info!(gro, gso = true, "UDP segmentation offload");
        }
        let control = match sockets.first() {
            Some(first) => first
                .iter()
                .zip(&cfg.local_addrs)
                .map(|(s, a)| {
                    s.try_clone()
                        .map(|c| (*a, c))
                        .map_err(|source| DataplaneError::Bind { addr: *a, source })
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let all_sockets = sockets
            .iter()
            .flat_map(|w| w.iter().zip(&cfg.local_addrs))
            .map(|(s, a)| {
                s.try_clone()
                    .map(|c| (*a, c))
                    .map_err(|source| DataplaneError::Bind { addr: *a, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let want_tos = tables.any_dscp_in();
        let tables = Arc::new(ArcSwap::from_pointee(tables));
        let counters = Arc::new(PerWorker::new(workers));
        let stop = Arc::new(AtomicBool::new(false));
        let supervision = Arc::new(supervise::Supervision::default());
        let max_packet = usize::from(cfg.tun_mtu).max(1500);
        let devices = Arc::new(ArcSwap::from_pointee(Devices::default()));
        let mut epolls = Vec::with_capacity(workers);
        for (id, socks) in sockets.iter().enumerate() {
            let ep = Epoll::new().map_err(DataplaneError::Epoll)?;
            ep.add(tun.fd(id), Token::SharedTun)
                .map_err(DataplaneError::Epoll)?;
            for (i, s) in socks.iter().enumerate() {
                ep.add(std::os::fd::AsRawFd::as_raw_fd(s), Token::Socket(i))
                    .map_err(DataplaneError::Epoll)?;
            }
            epolls.push(Arc::new(ep));
        }
        let mut threads = Vec::with_capacity(workers);
        for (id, sockets) in sockets.into_iter().enumerate() {
            let w = Worker {
                id,
                tun: tun.clone(),
                devices: devices.clone(),
                epoll: epolls[id].clone(),
                sockets,
                tables: tables.clone(),
                counters: counters.clone(),
                stop: stop.clone(),
                batch: cfg.batch.max(1),
                max_packet,
                gso: cfg.udp_offload,
                gro,
                ike_sink: sinks.ike.clone(),
                acquire_sink: sinks.acquire.clone(),
                unknown_spi_sink: sinks.unknown_spi.clone(),
                activity_sink: sinks.activity.clone(),
                peer_moved_sink: sinks.peer_moved.clone(),
                peer_moved_reported: std::cell::Cell::new(None),
                unknown_spi_reported: std::cell::Cell::new(None),
                icmp_limiter: mtu::IcmpLimiter::new(),
                local_addrs: cfg.local_addrs.clone(),
            };
            let sup = supervision.clone();
            let stop_all = stop.clone();
            let t = std::thread::Builder::new()
                .name(format!("ironsec-worker-{id}"))
                .spawn(move || supervise::supervised(id, &sup, &stop_all, || w.run()))
                .map_err(DataplaneError::Thread)?;
            threads.push(t);
        }
        let dp = Dataplane {
            tun,
            devices,
            epolls,
            last_iface: std::sync::Mutex::new(0),
            tun_settings: TunSettings {
                mtu: cfg.tun_mtu,
                txqueuelen: cfg.tun_txqueuelen,
                offload: cfg.tun_offload,
            },
            tables,
            counters,
            stop,
            threads,
            supervision,
            workers,
            control,
            all_sockets,
            recv_tos: AtomicBool::new(false),
        };
        if want_tos {
            dp.enable_recv_tos();
        }
        Ok(dp)
    }

    /// Asks every socket for the outer TOS of what it receives, once.
    fn enable_recv_tos(&self) {
        if self.recv_tos.swap(true, Ordering::Relaxed) {
            return;
        }
        for (a, s) in &self.all_sockets {
            if !udp::enable_recv_tos(s, a.is_ipv6()) {
                tracing::warn!(socket = %a, "cannot read the outer DSCP (IP_RECVTOS): copy_dscp \"in\" copies nothing");
            }
        }
    }

    /// Sends an IKE message from a NAT-T socket (`payload` already has the non-ESP marker).
    pub fn send_ike(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        payload: &[u8],
    ) -> std::io::Result<usize> {
        let sock = self
            .control
            .iter()
            .find(|(a, _)| *a == local)
            .map(|(_, s)| s)
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::AddrNotAvailable,
                    format!("no NAT-T socket on {local}"),
                )
            })?;
        sock.send_to(payload, &remote.into())
    }

    /// Creates a route-based connection's TUN device `name` (made like the shared one: MTU,
    /// queue length, offload, one queue per worker), brings it up and has every worker wait
    /// on it. Its packets find no policy until tables scoped to the returned id are installed,
    /// so they are dropped, never sent anywhere else. The device goes away with
    /// [`remove_interface`](Self::remove_interface) or with the process.
    pub fn add_interface(&self, name: &str) -> Result<IfaceId, DataplaneError> {
        let TunSettings {
            mtu,
            txqueuelen,
            offload,
        } = self.tun_settings;
        let tun = Arc::new(Tun::create(
            name,
            mtu,
            txqueuelen,
            offload,
            self.workers,
            tun::Queueing::Single,
        )?);
        let mut last = self.last_iface.lock().unwrap_or_else(|p| p.into_inner());
        let id = IfaceId::new(last.wrapping_add(1))
            .filter(|id| *id != IfaceId::NOWHERE)
            .ok_or_else(|| DataplaneError::Tun {
                name: name.to_string(),
                source: std::io::Error::other("out of interface ids"),
            })?;
        *last = id.get();
        // In the snapshot before any worker can be woken for it.
        self.devices.rcu(|d| d.with(id, tun.clone()));
        if let Err(source) = interfaces::register(&self.epolls, &tun, id) {
            self.devices.rcu(|d| d.without(id).0);
            return Err(DataplaneError::Tun {
                name: name.to_string(),
                source,
            });
        }
        tracing::info!(
            interface = %tun.name(),
            offload = tun.vnet(),
            queues = tun.queues(),
            "tunnel interface up"
        );
        Ok(id)
    }

    /// Removes a route-based connection's device: the workers stop waiting on it, and it
    /// (with the kernel's routes through it) goes once the last worker let go of it.
    pub fn remove_interface(&self, id: IfaceId) {
        let mut gone = None;
        self.devices.rcu(|d| {
            let (next, tun) = d.without(id);
            gone = tun;
            next
        });
        if let Some(tun) = gone {
            interfaces::unregister(&self.epolls, &tun);
            tracing::info!(interface = %tun.name(), "tunnel interface removed");
        }
    }

    /// How many route-based devices exist.
    pub fn interfaces(&self) -> usize {
        self.devices.load().len()
    }

    /// Swaps in a new table snapshot; workers see it on their next batch.
    pub fn install(&self, tables: Tables) {
        if tables.any_dscp_in() {
            self.enable_recv_tos();
        }
        self.tables.store(Arc::new(tables));
    }

    pub fn tables(&self) -> Guard<Arc<Tables>> {
        self.tables.load()
    }

    pub fn totals(&self) -> GatewayTotals {
        self.counters.totals()
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn tun_name(&self) -> &str {
        self.tun.name()
    }

    /// Whether the TUN device hands over UDP super-packets (see [`offload`]).
    pub fn tun_uso(&self) -> bool {
        self.tun.uso()
    }

    /// The first fatal worker error, if a worker stopped (for example the TUN device vanished).
    /// The fast path is then down and the daemon should exit so its supervisor restarts it.
    /// A worker that panicked or returned unasked counts as failed too (`supervise.rs`).
    pub fn failure(&self) -> Option<String> {
        self.supervision
            .first
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many workers ended without being asked to (0 while the fast path is whole).
    pub fn workers_failed(&self) -> usize {
        self.supervision.failed.load(Ordering::Relaxed)
    }

    /// Stops the workers and waits for them; the TUN device goes away with the last handle.
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // The workers are gone: the route-based devices close, many at once.
        let devices = self.devices.swap(Arc::new(Devices::default()));
        if let Ok(devices) = Arc::try_unwrap(devices) {
            interfaces::close_all(devices.into_tuns());
        }
    }
}
