//! The running daemon: starts the fast path from a validated config, installs routes, runs
//! the IKE control plane, serves the control socket and shuts down cleanly on SIGTERM/SIGINT.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ironsec_dataplane::{
    guard, iproute, netlink, AcquireSink, ActivitySink, Dataplane, IfaceId, IkeSink, PeerMovedSink,
    Prefix, SaActivity, Sinks, TunnelId, UnknownSpiSink,
};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, Notify, Semaphore};

use crate::config::{Config, Keying};
use crate::control::{self, Request, Response};
use crate::guards::GuardStart;
use crate::limits;
use crate::plane::Plane;
use crate::status;

mod drain;

/// How long the event loop keeps taking queued IKE datagrams under one lock before one
/// flush: a flush installs the fast path's tables and checks routes, so a burst of peers'
/// messages shares one rather than paying one each; the bound keeps timers, commands and
/// the fast path's reports from waiting long behind a burst.
const IKE_BATCH_TIME: Duration = Duration::from_millis(5);
/// And at most this many datagrams (each is at least a parse, most a cookie or a reply).
const IKE_BATCH_MAX: usize = 1024;
/// Trapped tunnels reported by the fast path; each tunnel reports at most every 250 ms.
const ACQUIRE_QUEUE: usize = 256;
/// Unknown-SPI reports from the fast path (each worker reports at most ten a second).
const UNKNOWN_SPI_QUEUE: usize = 64;
/// After the stop path's drain, how long the daemon waits for the peers to answer its DELETEs
/// (the engine retransmits meanwhile): a lost DELETE would leave a peer sending into a gateway
/// that is gone until its DPD gives up.
const STOP_LINGER: Duration = Duration::from_secs(2);
/// "Peer behind a NAT moved" reports from the fast path (each worker reports at most ten a
/// second, and only until the tables send to the new address).
const PEER_MOVED_QUEUE: usize = 64;

#[derive(thiserror::Error, Debug)]
pub enum DaemonError {
    #[error(transparent)]
    Dataplane(#[from] ironsec_dataplane::DataplaneError),
    #[error(transparent)]
    Build(#[from] crate::tables::BuildError),
    #[error("control socket {path}: {source}")]
    Control {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot bind IKE socket {addr}: {source}")]
    Ike {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen for metrics on {addr}: {source} (gateway.metrics: another address, or \"off\")")]
    Metrics {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("fast path failed: {0}")]
    FastPath(String),
    #[error("cannot drop capabilities: {0}")]
    Privileges(#[from] crate::privs::PrivError),
    #[error("tunnel interface: {0}")]
    Interface(String),
    #[error("cannot install routes: {0}")]
    Routes(String),
    #[error("cannot watch the shared addresses (gateway.shared_addresses): {0}")]
    AddressWatch(#[source] std::io::Error),
}

/// Why a reload did not happen; the running config stays.
#[derive(thiserror::Error, Debug)]
enum ReloadFailed {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigErrors),
    #[error(transparent)]
    Refused(#[from] crate::plane::ReloadRefused),
}

type IkeDatagram = (SocketAddr, SocketAddr, Vec<u8>);
/// ESP with an SPI we have no SA for: (local, remote, SPI).
type UnknownSpi = (SocketAddr, SocketAddr, u32);
/// Authenticated ESP of a NAT peer from a new address: (inbound SPI, source).
type PeerMoved = (u32, SocketAddr);

struct Running {
    dp: Dataplane,
    plane: Mutex<Plane>,
    /// Send side of the IKE-port sockets: plain sockets, so a send never depends on the
    /// runtime having polled the socket's readiness first.
    ike_sockets: Vec<(SocketAddr, std::net::UdpSocket)>,
    started: Instant,
    control_socket: PathBuf,
    /// The file a reload reads again.
    config_path: PathBuf,
    /// Routes into the TUN devices and guard routes, as wanted and as installed (prefix ->
    /// device, source and MTU), kept by change (see `crate::routemtu::RouteState`).
    routes: Mutex<crate::routemtu::RouteState>,
    /// Route-based connections' interfaces, by connection name.
    ifaces: Mutex<BTreeMap<String, Iface>>,
    /// What the start found of the guard routes (status shows it).
    guard_start: GuardStart,
    /// Wakes the event loop after a control command changed the engine's timers.
    wake: Notify,
    /// The RADIUS client socket (`remote_auth = "eap-radius"`): any local port, in the
    /// daemon's network namespace; answers are taken only from the configured servers
    /// (plane/radius.rs). None when it could not be bound (logged).
    radius: Option<tokio::net::UdpSocket>,
    /// Planned maintenance: the drain/rejoin machine (see `drain`).
    drain: Mutex<crate::drain::Machine>,
    /// Finished drains and rejoins, for the clients waiting for them.
    drain_done: tokio::sync::broadcast::Sender<(u64, crate::drain::Outcome)>,
    /// SIGTERM with `drain.on_stop`: exit once the drain is done.
    stop_after_drain: std::sync::atomic::AtomicBool,
    /// Told when that drain is done.
    stop: Notify,
}

/// The routes a config needs with the fast path's `tunnels`: [`wanted_routes`] with each
/// route's MTU from the tunnels that carry it (the shared device's routes; a route-based
/// connection's static routes take its interface's MTU).
///
/// The daemon keeps this up to date by change (`crate::routemtu::RouteState`); this whole
/// computation is what that must equal (its tests, the flush bench).
#[cfg(test)]
pub(crate) fn wanted_tun_routes<'a>(
    cfg: &'a Config,
    tunnels: impl IntoIterator<Item = (&'a str, ironsec_dataplane::mtu::TunnelMtu)>,
    host: impl FnOnce() -> Vec<IpAddr>,
) -> BTreeMap<String, crate::routemtu::TunRoute> {
    let policy_based = || cfg.connections.iter().filter(|c| c.route_based.is_none());
    let mtus = crate::routemtu::route_mtus(
        policy_based().map(|c| (c.name.as_str(), c.remote_ts.as_slice())),
        tunnels,
        cfg.gateway.tun_mtu,
    );
    let mut out = BTreeMap::new();
    for c in policy_based() {
        for p in &c.remote_ts {
            out.insert(p.to_string(), mtus.get(p).copied());
        }
    }
    wanted_routes(cfg, host)
        .into_iter()
        .map(|(p, (dev, src))| {
            let mtu = out.get(&p).copied().flatten();
            (p, crate::routemtu::TunRoute { dev, src, mtu })
        })
        .collect()
}

/// The routes a config needs: every policy-based remote selector into the shared TUN device,
/// every route-based connection's static route into its interface. Traffic the gateway itself
/// sends to a policy-based site should come from one of its own addresses inside the local
/// selectors, or no policy would match it: `host` gives the host's addresses, read only when
/// there is such a route. The daemon keeps this up to date by change
/// (`crate::routemtu::RouteState`, which reads the addresses only after the address watch saw
/// them change); this whole computation is what that must equal.
#[cfg(test)]
pub(crate) fn wanted_routes(
    cfg: &Config,
    host: impl FnOnce() -> Vec<IpAddr>,
) -> BTreeMap<String, (String, Option<IpAddr>)> {
    let mut host = Some(host);
    let mut addrs: Vec<IpAddr> = Vec::new();
    let mut out = BTreeMap::new();
    for c in &cfg.connections {
        if let Some(rb) = &c.route_based {
            for p in &rb.routes {
                out.insert(p.to_string(), (rb.interface.clone(), None));
            }
            continue;
        }
        if let Some(read) = host.take() {
            addrs = read();
        }
        for p in &c.remote_ts {
            let src = addrs
                .iter()
                .find(|a| a.is_ipv4() == p.is_v4() && c.local_ts.iter().any(|l| l.contains(**a)))
                .copied();
            out.insert(p.to_string(), (cfg.gateway.tun.clone(), src));
        }
    }
    out
}

/// Brings the guard routes in line with `want` at start: installs (or adopts, after a crash
/// or a restart) one per guarded prefix and removes those no longer configured (a connection
/// removed while the daemon was stopped). See `ironsec_dataplane::guard`.
fn reconcile_guards(want: &[Prefix]) -> Result<GuardStart, ironsec_dataplane::DataplaneError> {
    let have = guard::list()?;
    for p in want {
        guard::install(p)?;
    }
    let adopted = want.iter().filter(|p| have.contains(p)).count();
    let stale: Vec<&Prefix> = have.iter().filter(|p| !want.contains(p)).collect();
    for p in &stale {
        guard::remove(p)?;
    }
    tracing::info!(
        guards = want.len(),
        adopted,
        removed = stale.len(),
        "guard routes in place (they stay when ironsecd stops; `ironsecd cleanup` removes them)"
    );
    Ok(GuardStart {
        adopted,
        removed: stale.len(),
    })
}

/// A route-based connection's interface as the daemon made it.
#[derive(Debug, Clone)]
struct Iface {
    name: String,
    id: IfaceId,
    /// The address put on it (169.254.21.1 and 30), if any.
    address: Option<(IpAddr, u8)>,
}

/// The guard routes as the kernel has them now (one dump of its routes, read on the
/// status request's blocking thread, after the plane's lock is released). Not cached: a
/// guard deleted by hand must show as missing in the very next status.
fn guards_status(want: &[Prefix], start: GuardStart) -> status::GuardsStatus {
    crate::guards::status(want, start)
}

impl Running {
    fn plane(&self) -> MutexGuard<'_, Plane> {
        self.plane.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The status document of the connections `filter` matches (all without one): the
    /// plane's and the fast path's, built under the plane's lock (O(tunnels), no file or
    /// kernel read); the interfaces' counters and the guard routes as the kernel has them now
    /// are read after it is released. Called on a blocking thread (`handle`, metrics), never
    /// on the event loop's.
    fn status(&self, filter: Option<&crate::namefilter::NameFilter>) -> status::Status {
        let (mut st, want) = {
            let plane = self.plane();
            let st = crate::report::status(&self.dp, &plane, self.started, filter);
            (st, crate::guards::wanted(plane.config()))
        };
        crate::report::read_interfaces(&mut st);
        st.guards = Some(guards_status(&want, self.guard_start));
        st.drain = Some(self.drain_status());
        st
    }

    /// The running config's certificates and CRLs (`ironsecctl certs`, the certificate
    /// metrics), expiry counted from the wall clock now.
    fn certs(&self) -> crate::certs::CertList {
        crate::certs::list(self.plane().config(), crate::certs::unix_now())
    }

    /// Brings the kernel's routes in line with `cfg` and the installed tables (a route's MTU
    /// follows its tunnels'), and the guard routes with the config's guarded prefixes: a new
    /// guard before its route, a stale one after its route went; returns what failed.
    ///
    /// By change: only the routes of connections whose config or tunnel MTU changed are
    /// computed again, and only those (and the ones that failed before) are compared with the
    /// kernel's; the host's addresses are read again only after the address watch saw them
    /// change (`crate::routemtu::RouteState`).
    fn apply_routes(&self, cfg: &Config) -> Vec<String> {
        let mut st = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        {
            let tables = self.dp.tables();
            st.update(
                cfg,
                tables.tunnels().iter().map(|t| (&*t.connection, t.mtu)),
                iproute::host_addresses,
            );
        }
        let work = st.work();
        let mut errs = Vec::new();
        // The guards first, so a new prefix never follows the main table in clear.
        for g in work.add_guards {
            match guard::install(&g) {
                Ok(()) => st.guard_added(g),
                Err(e) => {
                    st.retry_guard(g);
                    errs.push(e.to_string());
                }
            }
        }
        for (p, r) in work.set {
            let text = p.to_string();
            match iproute::route_via(&text, &r.dev, r.src, r.mtu) {
                Ok(()) => {
                    if st.installed(&p).map(|h| h.mtu) != Some(r.mtu) && r.mtu.is_some() {
                        tracing::info!(
                            prefix = %text,
                            mtu = r.mtu.map_or("device".to_string(), |m| m.to_string()),
                            "route into the TUN device sized to its tunnels"
                        );
                    }
                    st.route_set(p, r);
                }
                Err(e) => {
                    st.retry_route(p);
                    errs.push(e.to_string());
                }
            }
        }
        for (p, dev) in work.del {
            // A removed interface took its routes with it.
            let gone = !std::path::Path::new("/sys/class/net").join(&dev).exists();
            match iproute::route_del(&p.to_string(), &dev) {
                Ok(()) => st.route_gone(p),
                Err(_) if gone => st.route_gone(p),
                Err(e) => {
                    st.retry_route(p);
                    errs.push(e.to_string());
                }
            }
        }
        // A removed connection's traffic is no longer ours to guard: its guards go too.
        for g in work.del_guards {
            match guard::remove(&g) {
                Ok(()) => st.guard_removed(g),
                Err(e) => {
                    st.retry_guard(g);
                    errs.push(e.to_string());
                }
            }
        }
        errs
    }

    /// Makes the route-based connections' interfaces match the plane's config: creates the
    /// new ones (with their address), removes those of connections gone or no longer
    /// route-based, recreates a renamed one, and tells the plane which device each has.
    /// The caller installs new tables afterwards. Returns what failed.
    fn sync_interfaces(&self, plane: &mut Plane) -> Vec<String> {
        let mut have = self.ifaces.lock().unwrap_or_else(|p| p.into_inner());
        let mut errs = Vec::new();
        let want: BTreeMap<String, crate::config::RouteBased> = plane
            .config()
            .connections
            .iter()
            .filter_map(|c| Some((c.name.clone(), c.route_based.clone()?)))
            .collect();
        let stale: Vec<String> = have
            .iter()
            .filter(|(conn, i)| want.get(*conn).is_none_or(|rb| rb.interface != i.name))
            .map(|(conn, _)| conn.clone())
            .collect();
        for conn in stale {
            if let Some(i) = have.remove(&conn) {
                plane.set_device(&conn, None);
                self.dp.remove_interface(i.id);
            }
        }
        for (conn, rb) in &want {
            let address = rb.address;
            if !have.contains_key(conn) {
                match self.dp.add_interface(&rb.interface) {
                    Ok(id) => {
                        plane.set_device(conn, Some(id));
                        have.insert(
                            conn.clone(),
                            Iface {
                                name: rb.interface.clone(),
                                id,
                                address: None,
                            },
                        );
                    }
                    Err(e) => {
                        errs.push(format!("connection '{conn}': {e}"));
                        continue;
                    }
                }
            }
            let Some(i) = have.get_mut(conn) else {
                continue;
            };
            if i.address != address {
                if let Some((old, len)) = i.address {
                    let _ = netlink::addr_del(&i.name, old, len);
                }
                match address {
                    Some((a, len)) => match netlink::addr_replace(&i.name, a, len) {
                        Ok(()) => i.address = address,
                        Err(e) => errs.push(format!("connection '{conn}': {e}")),
                    },
                    None => i.address = None,
                }
            }
        }
        errs
    }

    /// Re-reads the config and applies what changed. A config with errors, or one that needs
    /// a restart, is refused whole: the running one stays.
    fn reload(&self, origin: &str) -> Result<String, String> {
        crate::sdnotify::reloading();
        // The whole path, config read to routes applied, for the log: what an operator
        // changing one site among thousands waits for.
        let begun = Instant::now();
        let path = self.config_path.display().to_string();
        let result = (|| -> Result<String, ReloadFailed> {
            let new = Config::load(&self.config_path)?;
            let warnings = new.warnings();
            let (summary, iface_errs) = self.act(|plane, now| {
                let summary = plane.reload(new, now)?;
                let errs = self.sync_interfaces(plane);
                // Scoped to the devices as they are now, whatever else changed.
                plane.touch_tables();
                Ok::<_, crate::plane::ReloadRefused>((summary, errs))
            })?;
            // After the act: its flush has installed the tables the routes' MTUs come from.
            let route_errs = {
                let plane = self.plane();
                self.apply_routes(plane.config())
            };
            let mut msg = format!("reloaded {path}: {summary}");
            for e in warnings.iter().chain(&iface_errs).chain(&route_errs) {
                msg.push_str(&format!("\nwarning: {e}"));
            }
            Ok(msg)
        })()
        .map_err(|e| e.to_string());
        match &result {
            Ok(m) => tracing::info!(
                origin = %origin,
                took_ms = begun.elapsed().as_millis() as u64,
                "{m}"
            ),
            Err(e) => {
                for line in e.lines() {
                    tracing::error!(origin = %origin, "reload refused, the running config stays: {line}");
                }
            }
        }
        self.wake.notify_one();
        crate::sdnotify::notify("READY=1");
        result.map_err(|e| format!("reload refused, the running config stays:\n{e}"))
    }

    /// Locks the plane, lets `f` act on it at one `now`, then flushes: the one way the
    /// daemon changes the plane.
    fn act<R>(&self, f: impl FnOnce(&mut Plane, Instant) -> R) -> R {
        let mut plane = self.plane();
        let now = Instant::now();
        let r = f(&mut plane, now);
        self.flush(&mut plane, now);
        r
    }

    /// Applies the engine's events (swapping in new tables if SAs, or anything else the
    /// tables hold, changed), then sends what it queued.
    fn flush(&self, plane: &mut Plane, now: Instant) {
        // Tables first: a rekey response must not leave before its new inbound SA is in place,
        // or the peer's first packets on the new SA could beat it.
        if plane.drain_events(now) {
            match plane.tables() {
                Ok(t) => {
                    self.dp.install(t);
                    // A tunnel's MTU may have changed (a new path MTU, a peer that moved):
                    // its routes follow, so the kernel's ICMP errors stay right.
                    for e in self.apply_routes(plane.config()) {
                        tracing::warn!(error = %e, "cannot update a route into the TUN device");
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot rebuild the fast-path tables"),
            }
        }
        while let Some(t) = plane.poll_transmit() {
            tracing::debug!(local = %t.local, remote = %t.remote, "IKE out: {}", crate::ikelog::summary(&t.payload));
            let sent = if t.local.port() == plane.config().gateway.ike_port {
                match self.ike_sockets.iter().find(|(a, _)| *a == t.local) {
                    Some((_, s)) => s.send_to(&t.payload, t.remote).map(|_| ()),
                    None => Err(std::io::Error::other("no IKE socket on that address")),
                }
            } else {
                self.dp.send_ike(t.local, t.remote, &t.payload).map(|_| ())
            };
            if let Err(e) = sent {
                tracing::debug!(local = %t.local, remote = %t.remote, error = %e, "IKE send failed");
            }
        }
        while let Some((to, bytes)) = plane.poll_radius() {
            let sent = match &self.radius {
                Some(s) => s.try_send_to(&bytes, to).map(|_| ()),
                None => Err(std::io::Error::other("no RADIUS socket")),
            };
            // A lost request is sent again on its timer, and counted as unreachable at last.
            if let Err(e) = sent {
                tracing::debug!(radius_server = %to, error = %e, "RADIUS send failed");
            }
        }
    }
}

pub fn run(cfg: Config) -> Result<(), DaemonError> {
    // First, while descriptors are plentiful: the notify socket every READY/WATCHDOG reuses,
    // so a later descriptor shortage cannot cost a keep-alive.
    crate::sdnotify::init();
    match limits::raise_nofile_limit() {
        Ok(l) => match l.raised_from {
            Some(old) => tracing::info!(
                limit = l.soft,
                was = old,
                "descriptor limit raised to the hard limit"
            ),
            None => tracing::info!(limit = l.soft, "descriptor limit"),
        },
        Err(e) => tracing::warn!(error = %e, "cannot read or raise the descriptor limit"),
    }
    // Before any thread exists, so that every thread has only these (see privs).
    let kept = crate::privs::drop_to_network_caps()?;
    tracing::info!(
        kept = %crate::privs::names(&kept.effective),
        "capabilities dropped to the network ones"
    );
    if !kept.bounding_extra.is_empty() {
        tracing::debug!(
            bounding = %crate::privs::names(&kept.bounding_extra),
            "bounding set left as it was (no CAP_SETPCAP); no_new_privs keeps it unusable"
        );
    }
    for w in cfg.warnings() {
        tracing::warn!("{w}");
    }
    let dp_cfg = cfg.dataplane_config();
    let plane = Plane::new(cfg.clone(), dp_cfg.resolved_workers())?;
    // IKE datagrams waiting for the control plane, sized for a burst of every configured
    // peer at once; beyond it a flood is dropped, not queued (see ikeadmit).
    let ike_queue = crate::ikeadmit::queue_size(&cfg);
    let ike_rcvbuf = crate::ikeadmit::receive_buffer(&cfg, ike_queue);
    tracing::debug!(queue = ike_queue, receive_buffer = ike_rcvbuf, "IKE intake");
    let (tx, rx) = mpsc::channel::<IkeDatagram>(ike_queue);
    let sink_tx = tx.clone();
    let sink_admission = plane.admission().clone();
    // Always handed over, even when no connection negotiates yet: a reload may add one.
    let ike: IkeSink = Arc::new(move |local, remote, data: &[u8]| {
        sink_admission.offer(&sink_tx, local, remote, data);
    });
    let (acq_tx, acq_rx) = mpsc::channel::<TunnelId>(ACQUIRE_QUEUE);
    let acquire: AcquireSink = Arc::new(move |id| {
        let _ = acq_tx.try_send(id);
    });
    let (spi_tx, spi_rx) = mpsc::channel::<UnknownSpi>(UNKNOWN_SPI_QUEUE);
    let unknown_spi: UnknownSpiSink = Arc::new(move |local, remote, spi| {
        let _ = spi_tx.try_send((local, remote, spi));
    });
    // Unbounded, yet bounded in fact: a watch reports once per arming, and the plane arms
    // each tunnel's watch at most once per direction until it hears back.
    let (act_tx, act_rx) = mpsc::unbounded_channel::<SaActivity>();
    let activity: ActivitySink = Arc::new(move |a| {
        let _ = act_tx.send(a);
    });
    let (moved_tx, moved_rx) = mpsc::channel::<PeerMoved>(PEER_MOVED_QUEUE);
    let peer_moved: PeerMovedSink = Arc::new(move |spi, from| {
        let _ = moved_tx.try_send((spi, from));
    });
    let sinks = Sinks {
        ike: Some(ike),
        acquire: Some(acquire),
        unknown_spi: Some(unknown_spi),
        activity: Some(activity),
        peer_moved: Some(peer_moved),
    };
    // Guards before the TUN devices: from here on, whatever happens to this process, traffic
    // for the remote selectors (and route-based connections' guarded prefixes) is never
    // routed out in clear.
    let guards = crate::guards::wanted(&cfg);
    let guard_start = reconcile_guards(&guards)?;
    let dp = Dataplane::start(&dp_cfg, plane.tables()?, sinks)?;
    if dp.tun_uso() {
        crate::tuning::advise_udp_gro_forwarding(
            cfg.connections.iter().flat_map(|c| &c.local_ts),
            dp.tun_name(),
        );
    }
    for c in &cfg.connections {
        if let Keying::Static(st) = &c.keying {
            for t in &st.tunnels {
                tracing::info!(
                    connection = %c.name,
                    local = %t.local,
                    remote = %t.remote,
                    spi_out = %status::spi_string(t.spi_out),
                    spi_in = %status::spi_string(t.spi_in),
                    suite = %st.suite,
                    "static tunnel installed"
                );
            }
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
    let control_socket = cfg.gateway.control_socket.clone();
    let config_path = cfg.file.clone();
    let metrics_addr = cfg.gateway.metrics;
    let metrics_token = cfg.gateway.metrics_token.as_ref().map(|(_, t)| t.clone());
    // Shared addresses may be absent (this host is the standby): their sockets are bound with
    // IP_FREEBIND, and the watch tells the plane when they come and go (crate::addrwatch).
    let shared = cfg.gateway.shared_addresses.clone();
    let accept_zero_checksum6 =
        cfg.gateway.udp6_zero_checksum == crate::config::gateway::Udp6ZeroChecksum::Accept;
    // The watch also tells the routes when the host's addresses change (their sources).
    let host_changes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let addr_rx = crate::addrwatch::spawn(shared.clone(), host_changes.clone())
        .map_err(DaemonError::AddressWatch)?;
    let r = rt.block_on(async move {
        let mut ike_sockets = Vec::new();
        for addr in plane.ike_addrs() {
            // Read on a thread of its own, so a flood cannot crowd real peers out in the
            // kernel's receive buffer (see ikeadmit).
            let bind = |addr: SocketAddr| -> std::io::Result<std::net::UdpSocket> {
                let freebind = shared.contains(&addr.ip());
                let s = ironsec_dataplane::udp::bind_ike(addr, freebind, ike_rcvbuf)?;
                if addr.is_ipv6() && accept_zero_checksum6 {
                    ironsec_dataplane::udp::accept_zero_checksum6(&s)?;
                }
                s.set_nonblocking(true)?;
                let sender = s.try_clone()?;
                crate::ikeadmit::spawn_reader(addr, s, tx.clone(), plane.admission().clone())?;
                Ok(sender)
            };
            let sender = bind(addr).map_err(|source| DaemonError::Ike { addr, source })?;
            ike_sockets.push((addr, sender));
        }
        let radius = match tokio::net::UdpSocket::bind("0.0.0.0:0").await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot bind the RADIUS client socket: eap-radius clients will be refused");
                None
            }
        };
        let running = Arc::new(Running {
            radius,
            dp,
            plane: Mutex::new(plane),
            ike_sockets,
            started: Instant::now(),
            control_socket,
            config_path,
            routes: Mutex::new(crate::routemtu::RouteState::new(
                &guards,
                crate::routemtu::HostAddrs::new(host_changes),
            )),
            ifaces: Mutex::new(BTreeMap::new()),
            guard_start,
            wake: Notify::new(),
            drain: Mutex::new(crate::drain::Machine::new()),
            drain_done: tokio::sync::broadcast::channel(drain::FINISHED_QUEUE).0,
            stop_after_drain: Default::default(),
            stop: Notify::new(),
        });
        tokio::spawn(follow_addresses(addr_rx, running.clone()));
        // The route-based connections' interfaces, then tables scoped to them, then the
        // routes (some point into those interfaces).
        {
            let mut plane = running.plane();
            let errs = running.sync_interfaces(&mut plane);
            if let Some(e) = errs.first() {
                return Err(DaemonError::Interface(e.clone()));
            }
            running.dp.install(plane.tables()?);
            if let Some(e) = running.apply_routes(plane.config()).first() {
                return Err(DaemonError::Routes(e.clone()));
            }
        }
        if let Some(addr) = metrics_addr {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| DaemonError::Metrics { addr, source })?;
            let r = running.clone();
            let auth = if metrics_token.is_some() {
                "bearer token"
            } else {
                "none"
            };
            tokio::spawn(crate::metrics::serve(l, metrics_token, move || {
                crate::metrics::render_all(&r.status(None), &r.certs())
            }));
            tracing::info!(listen = %addr, auth, "metrics endpoint listening");
        }
        let queues = Queues {
            ike: rx,
            acquire: acq_rx,
            unknown_spi: spi_rx,
            activity: act_rx,
            peer_moved: moved_rx,
        };
        let r = event_loop(running.clone(), queues).await;
        Ok::<_, DaemonError>((r, running))
    });
    let (r, running) = r?;
    drop(rt);
    if let Ok(running) = Arc::try_unwrap(running) {
        let _ = std::fs::remove_file(&running.control_socket);
        // Routes go with the TUN device; the device goes with the fast path. The guard routes
        // stay (see `ironsec_dataplane::guard`).
        running.dp.shutdown();
    }
    r
}

/// Hands the address watch's reports to the plane: a shared address that arrives starts its
/// tunnels, one that leaves makes them dormant (plane/shared.rs).
async fn follow_addresses(mut rx: mpsc::Receiver<(IpAddr, bool)>, running: Arc<Running>) {
    while let Some((ip, present)) = rx.recv().await {
        running.act(|plane, now| plane.set_address_present(ip, present, now));
        // The plane's deadlines changed (a new IKE SA's retransmission, or none at all).
        running.wake.notify_one();
    }
}

/// What the fast path and the IKE readers hand the event loop.
struct Queues {
    ike: mpsc::Receiver<IkeDatagram>,
    acquire: mpsc::Receiver<TunnelId>,
    unknown_spi: mpsc::Receiver<UnknownSpi>,
    activity: mpsc::UnboundedReceiver<SaActivity>,
    peer_moved: mpsc::Receiver<PeerMoved>,
}

async fn event_loop(running: Arc<Running>, queues: Queues) -> Result<(), DaemonError> {
    let Queues {
        ike: mut ike_rx,
        acquire: mut acq_rx,
        unknown_spi: mut spi_rx,
        activity: mut act_rx,
        peer_moved: mut moved_rx,
    } = queues;
    let sock_path = running.control_socket.clone();
    let listener = control::bind(&sock_path).map_err(|source| DaemonError::Control {
        path: sock_path.display().to_string(),
        source,
    })?;
    // Clients are served by a task of their own: backing off a failing accept must not stall
    // this loop (the watchdog keep-alives come from it).
    tokio::spawn(serve_control(listener, running.clone()));
    let sig = |k| signal(k).map_err(DaemonError::Runtime);
    let mut term = sig(SignalKind::terminate())?;
    let mut int = sig(SignalKind::interrupt())?;
    let mut hup = sig(SignalKind::hangup())?;
    let mut health = tokio::time::interval(Duration::from_millis(500));
    // Bandwidth sharing measures and re-divides this often (failover detection is driven by
    // the fast path's activity reports and the plane's deadlines).
    let mut share = tokio::time::interval(Duration::from_millis(100));
    // Keep-alives come from this loop, so a wedged event loop stops them and systemd restarts
    // the daemon.
    let watchdog_every = crate::sdnotify::watchdog_interval();
    let mut watchdog = tokio::time::interval(watchdog_every.unwrap_or(Duration::from_secs(3600)));
    running.act(|plane, now| plane.start_tunnels(now));
    // Ready only now: the TUN device, routes, UDP sockets and control socket are all up.
    crate::sdnotify::notify("READY=1");
    if running.plane().config().drain.rejoin_on_start {
        // State file "0" now, the rejoin commands once the tunnels are up.
        let _ = running.start_rejoin("start");
    }
    // SIGTERM under drain.on_stop started a drain: the next signal exits at once.
    let mut stopping = false;
    // Drained on the stop path: exit once every DELETE is answered, or then.
    let mut exit_by: Option<Instant> = None;
    tracing::info!(
        tun = running.dp.tun_name(),
        workers = running.dp.workers(),
        control_socket = %sock_path.display(),
        "ironsecd ready"
    );
    let mut radius_buf = vec![0u8; 4096];
    loop {
        let deadline = running.plane().next_deadline();
        let radius_in = async {
            match &running.radius {
                Some(s) => s.recv_from(&mut radius_buf).await,
                None => std::future::pending().await,
            }
        };
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = term.recv() => {
                if stopping {
                    tracing::warn!("second SIGTERM: exiting without finishing the drain");
                    return Ok(());
                }
                let on_stop = running.plane().config().drain.on_stop;
                if on_stop && running.drain_state() != crate::drain::State::Drained {
                    tracing::info!("SIGTERM: draining before exit (drain.on_stop; a second SIGTERM or SIGINT exits at once)");
                    crate::sdnotify::notify("STATUS=draining");
                    crate::sdnotify::notify("STOPPING=1");
                    running.stop_after_drain.store(true, std::sync::atomic::Ordering::Relaxed);
                    if running.start_drain("SIGTERM").is_ok() {
                        stopping = true;
                        continue;
                    }
                }
                tracing::info!("SIGTERM: shutting down");
                crate::sdnotify::notify("STOPPING=1");
                return Ok(());
            }
            _ = running.stop.notified() => {
                exit_by = Some(Instant::now() + STOP_LINGER);
            }
            _ = int.recv() => { tracing::info!("SIGINT: shutting down"); return Ok(()); }
            _ = hup.recv() => {
                let _ = running.reload("SIGHUP");
            }
            _ = running.wake.notified() => {}
            Some(id) = acq_rx.recv() => running.act(|plane, now| plane.on_acquire(id, now)),
            Some(first) = ike_rx.recv() => running.act(|plane, now| {
                // What else is queued already (a burst: many peers at once) under the same lock
                // and one flush, so the tables and routes are rebuilt once for the burst rather
                // than once per message; the flush still installs them before anything is sent.
                let mut next = Some(first);
                let mut taken = 0;
                let until = Instant::now() + IKE_BATCH_TIME;
                while let Some((local, from, data)) = next.take() {
                    tracing::debug!(%local, remote = %from, "IKE in: {}", crate::ikelog::summary(&data));
                    plane.on_ike_datagram(now, local, from, &data);
                    taken += 1;
                    if taken < IKE_BATCH_MAX && Instant::now() < until {
                        next = ike_rx.try_recv().ok();
                    }
                }
            }),
            Some((local, from, spi)) = spi_rx.recv() => {
                running.act(|plane, now| plane.on_unknown_spi(now, local, from, spi));
            }
            Some((spi, from)) = moved_rx.recv() => {
                running.act(|plane, now| plane.on_peer_moved(now, spi, from));
            }
            _ = sleep => running.act(|plane, now| plane.on_timeout(now)),
            Ok((n, from)) = radius_in => {
                let data = radius_buf[..n].to_vec();
                running.act(|plane, now| plane.on_radius_datagram(now, from, &data));
            }
            _ = watchdog.tick(), if watchdog_every.is_some() => crate::sdnotify::notify("WATCHDOG=1"),
            _ = share.tick() => {
                running.act(|plane, now| plane.reshare(now));
                running.drain_tick();
                if let Some(by) = exit_by {
                    let left = running.plane().ike_sa_count();
                    if left == 0 || Instant::now() >= by {
                        tracing::info!(unanswered_deletes = left, "drained: shutting down");
                        return Ok(());
                    }
                }
            }
            Some(a) = act_rx.recv() => running.act(|plane, now| {
                plane.on_activity(a, now);
                // Whatever else came in meanwhile, under the same lock.
                while let Ok(a) = act_rx.try_recv() {
                    plane.on_activity(a, now);
                }
            }),
            _ = health.tick() => {
                if let Some(f) = running.dp.failure() {
                    return Err(DaemonError::FastPath(f));
                }
            }
        }
    }
}

/// Accepts control-socket clients, at most [`limits::CONTROL_CONNECTIONS`] at once (one more
/// is told so and closed), backing off failed accepts (see [`limits::AcceptBackoff`]).
async fn serve_control(listener: tokio::net::UnixListener, running: Arc<Running>) {
    let slots = Arc::new(Semaphore::new(limits::CONTROL_CONNECTIONS));
    let mut backoff = limits::AcceptBackoff::new("control socket");
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                backoff.succeeded(Instant::now());
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    let _ = stream.try_write(control::busy().as_bytes());
                    continue;
                };
                let r = running.clone();
                tokio::spawn(async move {
                    control::serve(stream, move |req| {
                        let r = r.clone();
                        async move { handle(&r, req).await }
                    })
                    .await;
                    drop(slot);
                });
            }
            Err(e) => {
                let pause = backoff.failed(Instant::now(), &e);
                tokio::time::sleep(pause).await;
            }
        }
    }
}

async fn handle(r: &Arc<Running>, req: Request) -> Response {
    let reads_only = matches!(
        req,
        Request::Status { .. } | Request::ListConns | Request::Certs | Request::Leases
    );
    let resp = apply(r, req).await;
    if !reads_only {
        // A scrape right after a command shows what it did, not the cached state from before.
        crate::metrics::invalidate();
    }
    resp
}

async fn apply(r: &Arc<Running>, req: Request) -> Response {
    fn answer<T: ToString, E: ToString>(res: Result<T, E>) -> Response {
        match res {
            Ok(m) => Response::Ok(m.to_string()),
            Err(e) => Response::Error(e.to_string()),
        }
    }
    match req {
        Request::Status { filter, brief } => {
            // Built on a blocking thread: the event loop waits only while the plane's lock is
            // held for the build, and the answer is serialised off it too (control::serve).
            let r = r.clone();
            let built = tokio::task::spawn_blocking(move || {
                let filter = filter.as_deref().map(crate::namefilter::NameFilter::new);
                let mut st = r.status(filter.as_ref());
                if brief {
                    st.make_brief();
                }
                st
            })
            .await;
            match built {
                Ok(st) => Response::Status(Box::new(st)),
                Err(e) => Response::Error(format!("status failed: {e}")),
            }
        }
        Request::Initiate { connection } => {
            let res = r.act(|plane, now| plane.initiate(&connection, now));
            r.wake.notify_one();
            answer(res)
        }
        Request::Terminate { connection } => {
            let res = r.act(|plane, now| plane.terminate(&connection, now));
            r.wake.notify_one();
            answer(res)
        }
        Request::Reload => answer(r.reload("ironsecctl")),
        Request::Rekey { connection, ike } => {
            let kind = if ike {
                crate::rekey::RekeyKind::Ike
            } else {
                crate::rekey::RekeyKind::Child
            };
            let res = r.act(|plane, now| plane.rekey(&connection, kind, now));
            r.wake.notify_one();
            match res {
                Ok(crate::plane::CommandDone::Rekeying(started)) => Response::Rekeying(started),
                other => answer(other),
            }
        }
        Request::ListConns => Response::Connections(crate::conns::list(r.plane().config())),
        Request::Certs => Response::Certificates(r.certs()),
        Request::Leases => Response::Leases(r.plane().lease_list(std::time::Instant::now())),
        Request::Disconnect { identity } => {
            let res = r.act(|plane, now| plane.disconnect(&identity, now));
            r.wake.notify_one();
            answer(res)
        }
        Request::Drain { wait } => {
            let rx = r.drain_done.subscribe();
            match r.start_drain("ironsecctl") {
                Err(e) => Response::Error(e.to_string()),
                Ok(_) if !wait => {
                    Response::Ok("draining: `ironsecctl status` shows its progress".into())
                }
                Ok(op) => r.wait_drain(rx, op).await,
            }
        }
        Request::Rejoin { wait } => {
            let rx = r.drain_done.subscribe();
            match r.start_rejoin("ironsecctl") {
                Err(e) => Response::Error(e),
                Ok(_) if !wait => {
                    Response::Ok("rejoining: `ironsecctl status` shows its progress".into())
                }
                Ok(op) => r.wait_drain(rx, op).await,
            }
        }
    }
}
