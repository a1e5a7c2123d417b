//! The running daemon: starts the fast path from a validated config, installs routes, serves
//! the control socket and shuts down cleanly on SIGTERM/SIGINT.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironsec_dataplane::{iproute, Dataplane, DataplaneConfig, DropTotals};
use tokio::signal::unix::{signal, SignalKind};

use crate::config::{Config, Keying};
use crate::control::{self, Request, Response};
use crate::status::{self, Status};

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
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("fast path failed: {0}")]
    FastPath(String),
}

struct Running {
    cfg: Config,
    dp: Dataplane,
    started: Instant,
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
    let tables = crate::tables::build(&cfg, dp_cfg.resolved_workers())?;
    let dp = Dataplane::start(&dp_cfg, tables, None)?;
    let result = (|| {
        let host = iproute::host_addresses();
        for c in &cfg.connections {
            for p in &c.remote_ts {
                // Traffic the gateway itself sends to the site should come from one of its own
                // addresses inside the local selectors, or no policy would match it.
                let src = host
                    .iter()
                    .find(|a| {
                        a.is_ipv4() == p.is_v4() && c.local_ts.iter().any(|l| l.contains(**a))
                    })
                    .copied();
                iproute::route_via(&p.to_string(), dp.tun_name(), src)?;
            }
        }
        Ok::<_, DaemonError>(())
    })();
    if let Err(e) = result {
        dp.shutdown();
        return Err(e);
    }
    for c in &cfg.connections {
        let Keying::Static(st) = &c.keying;
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
    let running = Arc::new(Running {
        cfg,
        dp,
        started: Instant::now(),
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
    let r = rt.block_on(event_loop(running.clone()));
    drop(rt);
    let running = Arc::try_unwrap(running).ok();
    if let Some(running) = running {
        // Routes go with the TUN device; the device goes with the fast path.
        running.dp.shutdown();
        let _ = std::fs::remove_file(&running.cfg.gateway.control_socket);
    }
    r
}

async fn event_loop(running: Arc<Running>) -> Result<(), DaemonError> {
    let sock_path = running.cfg.gateway.control_socket.clone();
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
    let mut watchdog = tokio::time::interval(
        crate::sdnotify::watchdog_interval().unwrap_or(Duration::from_secs(3600)),
    );
    let watchdog_on = crate::sdnotify::watchdog_interval().is_some();
    // Ready only now: the TUN device, routes, UDP sockets and control socket are all up.
    crate::sdnotify::notify("READY=1");
    tracing::info!(
        tun = running.dp.tun_name(),
        workers = running.dp.workers(),
        control_socket = %sock_path.display(),
        "ironsecd ready"
    );
    loop {
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
            _ = watchdog.tick(), if watchdog_on => crate::sdnotify::notify("WATCHDOG=1"),
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
    // Workers count every drop gateway-wide as well as per SA: the totals already include them.
    let drops = totals.drops;
    let mut connections: Vec<status::ConnectionStatus> = r
        .cfg
        .connections
        .iter()
        .map(|c| status::ConnectionStatus {
            name: c.name.clone(),
            keying: "static".into(),
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
        let inbound = tables.inbound_entries().find(|e| e.tunnel == id).map(|e| {
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
        let ts = status::TunnelStatus {
            local: t.local.to_string(),
            remote: t.remote.to_string(),
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
