//! The running daemon: starts the fast path from a validated config, installs routes, runs
//! the IKE control plane, serves the control socket and shuts down cleanly on SIGTERM/SIGINT.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ironsec_dataplane::{iproute, Dataplane, DataplaneConfig, DropTotals, IkeSink};
use tokio::net::UdpSocket;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::config::{Config, Keying};
use crate::control::{self, Request, Response};
use crate::plane::Plane;
use crate::status::{self, Status};

/// IKE datagrams waiting for the control plane; beyond this a flood is dropped, not queued.
const IKE_QUEUE: usize = 1024;

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
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("fast path failed: {0}")]
    FastPath(String),
}

type IkeDatagram = (SocketAddr, SocketAddr, Vec<u8>);

struct Running {
    dp: Dataplane,
    plane: Mutex<Plane>,
    /// Send side of the IKE-port sockets: plain sockets, so a send never depends on the
    /// runtime having polled the socket's readiness first.
    ike_sockets: Vec<(SocketAddr, std::net::UdpSocket)>,
    started: Instant,
    control_socket: std::path::PathBuf,
}

impl Running {
    fn plane(&self) -> MutexGuard<'_, Plane> {
        self.plane.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies the engine's events (swapping in new tables if SAs changed), then sends what
    /// it queued.
    fn flush(&self, plane: &mut Plane, now: Instant, mut changed: bool) {
        // Tables first: a rekey response must not leave before its new inbound SA is in place,
        // or the peer's first packets on the new SA could beat it.
        changed |= plane.drain_events(now);
        if changed {
            match plane.tables() {
                Ok(t) => self.dp.install(t),
                Err(e) => tracing::error!(error = %e, "cannot rebuild the fast-path tables"),
            }
        }
        while let Some(t) = plane.poll_transmit() {
            let sent = if t.local.port() == plane.cfg.gateway.ike_port {
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
    }
}

pub fn run(cfg: Config) -> Result<(), DaemonError> {
    let dp_cfg = DataplaneConfig {
        tun_name: cfg.gateway.tun.clone(),
        tun_mtu: cfg.gateway.tun_mtu,
        tun_txqueuelen: cfg.gateway.tun_txqueuelen,
        local_addrs: cfg.local_addrs(),
        workers: cfg.gateway.workers,
        socket_buffer: cfg.gateway.socket_buffer,
        batch: cfg.gateway.batch,
    };
    let plane = Plane::new(cfg.clone(), dp_cfg.resolved_workers())?;
    let (tx, rx) = mpsc::channel::<IkeDatagram>(IKE_QUEUE);
    let sink_tx = tx.clone();
    let sink: IkeSink = Arc::new(move |local, remote, data: &[u8]| {
        let _ = sink_tx.try_send((local, remote, data.to_vec()));
    });
    let has_ike = cfg
        .connections
        .iter()
        .any(|c| matches!(c.keying, Keying::Ike(_)));
    let dp = Dataplane::start(&dp_cfg, plane.tables()?, has_ike.then_some(sink))?;
    let host = iproute::host_addresses();
    for c in &cfg.connections {
        for p in &c.remote_ts {
            // Traffic the gateway itself sends to the site should come from one of its own
            // addresses inside the local selectors, or no policy would match it.
            let src = host
                .iter()
                .find(|a| a.is_ipv4() == p.is_v4() && c.local_ts.iter().any(|l| l.contains(**a)))
                .copied();
            if let Err(e) = iproute::route_via(&p.to_string(), dp.tun_name(), src) {
                dp.shutdown();
                return Err(e.into());
            }
        }
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
    let r = rt.block_on(async move {
        let mut ike_sockets = Vec::new();
        for addr in plane.ike_addrs() {
            let bind = |addr| -> std::io::Result<(std::net::UdpSocket, UdpSocket)> {
                let s = std::net::UdpSocket::bind(addr)?;
                s.set_nonblocking(true)?;
                let sender = s.try_clone()?;
                Ok((sender, UdpSocket::from_std(s)?))
            };
            let (sender, receiver) =
                bind(addr).map_err(|source| DaemonError::Ike { addr, source })?;
            ike_sockets.push((addr, sender));
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    match receiver.recv_from(&mut buf).await {
                        Ok((n, from)) => {
                            let _ = tx.try_send((addr, from, buf[..n].to_vec()));
                        }
                        Err(e) => tracing::debug!(error = %e, "IKE receive failed"),
                    }
                }
            });
        }
        let running = Arc::new(Running {
            dp,
            plane: Mutex::new(plane),
            ike_sockets,
            started: Instant::now(),
            control_socket,
        });
        let r = event_loop(running.clone(), rx).await;
        Ok::<_, DaemonError>((r, running))
    });
    let (r, running) = r?;
    drop(rt);
    if let Ok(running) = Arc::try_unwrap(running) {
        let _ = std::fs::remove_file(&running.control_socket);
        // Routes go with the TUN device; the device goes with the fast path.
        running.dp.shutdown();
    }
    r
}

async fn event_loop(
    running: Arc<Running>,
    mut ike_rx: mpsc::Receiver<IkeDatagram>,
) -> Result<(), DaemonError> {
    let sock_path = running.control_socket.clone();
    let listener = control::bind(&sock_path).map_err(|source| DaemonError::Control {
        path: sock_path.display().to_string(),
        source,
    })?;
    let sig = |k| signal(k).map_err(DaemonError::Runtime);
    let mut term = sig(SignalKind::terminate())?;
    let mut int = sig(SignalKind::interrupt())?;
    let mut hup = sig(SignalKind::hangup())?;
    let mut health = tokio::time::interval(Duration::from_millis(500));
    // Keep-alives come from this loop, so a wedged event loop stops them and systemd restarts
    // the daemon.
    let watchdog_every = crate::sdnotify::watchdog_interval();
    let mut watchdog = tokio::time::interval(watchdog_every.unwrap_or(Duration::from_secs(3600)));
    {
        let mut plane = running.plane();
        let now = Instant::now();
        plane.start_tunnels(now);
        running.flush(&mut plane, now, false);
    }
    // Ready only now: the TUN device, routes, UDP sockets and control socket are all up.
    crate::sdnotify::notify("READY=1");
    tracing::info!(
        tun = running.dp.tun_name(),
        workers = running.dp.workers(),
        control_socket = %sock_path.display(),
        "ironsecd ready"
    );
    loop {
        let deadline = running.plane().next_deadline();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM: shutting down");
                crate::sdnotify::notify("STOPPING=1");
                return Ok(());
            }
            _ = int.recv() => { tracing::info!("SIGINT: shutting down"); return Ok(()); }
            _ = hup.recv() => {
                tracing::warn!("SIGHUP: configuration reload is not supported yet; restart ironsecd to apply changes");
            }
            Some((local, from, data)) = ike_rx.recv() => {
                let mut plane = running.plane();
                let now = Instant::now();
                plane.ep.handle(now, local, from, &data);
                running.flush(&mut plane, now, false);
            }
            _ = sleep => {
                let mut plane = running.plane();
                let now = Instant::now();
                let changed = plane.on_timeout(now);
                running.flush(&mut plane, now, changed);
            }
            _ = watchdog.tick(), if watchdog_every.is_some() => crate::sdnotify::notify("WATCHDOG=1"),
            _ = health.tick() => {
                if let Some(f) = running.dp.failure() {
                    return Err(DaemonError::FastPath(f));
                }
            }
            acc = listener.accept() => match acc {
                Ok((stream, _)) => {
                    let r = running.clone();
                    tokio::spawn(async move {
                        control::serve(stream, move |req| handle(&r, req)).await;
                    });
                }
                Err(e) => tracing::warn!(error = %e, "control socket accept failed"),
            }
        }
    }
}

fn handle(r: &Running, req: Request) -> Response {
    match req {
        Request::Status => Response::Status(status_of(r)),
    }
}

fn drops_map(d: &DropTotals) -> BTreeMap<String, u64> {
    d.iter().map(|(r, n)| (r.name().to_string(), n)).collect()
}

fn status_of(r: &Running) -> Status {
    let tables = r.dp.tables();
    let totals = r.dp.totals();
    let plane = r.plane();
    let ike_sas = plane.ep.ike_sas();
    let now = Instant::now();
    // Workers count every drop gateway-wide as well as per SA: the totals already include them.
    let drops = totals.drops;
    let mut connections: Vec<status::ConnectionStatus> = plane
        .cfg
        .connections
        .iter()
        .map(|c| status::ConnectionStatus {
            name: c.name.clone(),
            keying: c.keying.name().into(),
            local_ts: c.local_ts.iter().map(|p| p.to_string()).collect(),
            remote_ts: c.remote_ts.iter().map(|p| p.to_string()).collect(),
            tunnels: Vec::new(),
        })
        .collect();
    for (id, t) in tables.tunnels().iter().enumerate() {
        let outbound = t.outbound.as_ref().map(|o| {
            let tot = o.counters.totals();
            status::OutboundStatus {
                spi: status::spi_string(o.sa.spi()),
                suite: o.sa.suite().to_string(),
                esn: o.sa.esn(),
                packets: tot.packets,
                bytes: tot.bytes,
                next_seq: o.sa.next_seq(),
                drops: drops_map(&tot.drops),
            }
        });
        let active_in = plane.store.active_out.get(&id).copied();
        let inbound = tables
            .inbound_entries()
            .filter(|e| e.tunnel == id)
            .max_by_key(|e| Some(e.sa.spi()) == active_in)
            .map(|e| {
                let tot = e.counters.totals();
                status::InboundStatus {
                    spi: status::spi_string(e.sa.spi()),
                    suite: e.sa.suite().to_string(),
                    esn: e.sa.esn(),
                    packets: tot.packets,
                    bytes: tot.bytes,
                    highest_seq: e.sa.highest_seq(),
                    drops: drops_map(&tot.drops),
                }
            });
        let ike = plane
            .tunnel_ike
            .get(&id)
            .and_then(|ike| ike_sas.iter().find(|s| s.id == *ike))
            .map(|s| status::IkeStatus {
                state: if s.established {
                    "established"
                } else {
                    "connecting"
                }
                .into(),
                initiator: s.initiator,
                spi_i: format!("0x{:016x}", s.spi_i),
                spi_r: format!("0x{:016x}", s.spi_r),
                algorithms: s.algorithms.map(|a| a.to_string()),
                established_secs: s
                    .established_at
                    .map(|t| now.saturating_duration_since(t).as_secs()),
                rekey_in_secs: s
                    .rekey_at
                    .map(|t| t.saturating_duration_since(now).as_secs()),
                children: s.children.len(),
            });
        let ts = status::TunnelStatus {
            local: t.local.to_string(),
            remote: t.remote.to_string(),
            ike,
            outbound,
            inbound,
        };
        if let Some(c) = connections.iter_mut().find(|c| *c.name == *t.connection) {
            c.tunnels.push(ts);
        }
    }
    Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        tun: r.dp.tun_name().to_string(),
        workers: r.dp.workers(),
        uptime_secs: r.started.elapsed().as_secs(),
        counters: status::Counters {
            tun_rx_packets: totals.tun_rx_packets,
            tun_tx_packets: totals.tun_tx_packets,
            udp_rx_packets: totals.udp_rx_packets,
            udp_tx_packets: totals.udp_tx_packets,
            ike_packets: totals.ike_packets,
            keepalives: totals.keepalives,
        },
        drops: drops_map(&drops),
        connections,
    }
}
