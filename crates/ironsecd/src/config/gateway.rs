//! The `[gateway]` table: one list of its keys ([`GatewayKey::ALL`]) from which the
//! environment's override names, the reload diff and the fast path's settings are derived.
//!
//! Adding a key means adding a [`GatewayKey`] variant: the compiler then asks for its name, when
//! it applies ([`GatewayKey::applies`]) and how it is shown ([`Gateway::shown`]), and the unit
//! tests check the variant against the serde schema ([`super::schema::GatewaySchema`]), its
//! default, the validated model ([`Gateway`]) and [`super::Config::dataplane_config`]. So a key
//! that a reload could not apply can no longer be accepted by a reload and silently ignored.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use ironsec_dataplane::{DataplaneConfig, Prefix};

pub use super::schema::Udp6ZeroChecksum;

/// The validated `[gateway]` table: what the daemon runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    pub tun: String,
    pub tun_mtu: u16,
    pub tun_txqueuelen: u32,
    pub port: u16,
    pub ike_port: u16,
    pub control_socket: PathBuf,
    pub workers: usize,
    pub replay_window: usize,
    pub socket_buffer: usize,
    pub batch: usize,
    /// Where the Prometheus text endpoint listens; None = off.
    pub metrics: Option<SocketAddr>,
    /// The metrics endpoint's bearer token file and the token read from it; None = no
    /// authentication.
    pub metrics_token: Option<(PathBuf, MetricsToken)>,
    /// Cap on all tunnels' egress in bits/s, shared among connections by weight; None = none.
    pub bandwidth: Option<u64>,
    /// UDP GSO/GRO on the ESP sockets.
    pub udp_offload: bool,
    /// TSO super-packets from the TUN device.
    pub tun_offload: bool,
    /// Whether the IPv6 ESP and IKE sockets accept zero-checksum UDP (UDP_NO_CHECK6_RX).
    pub udp6_zero_checksum: Udp6ZeroChecksum,
    /// Half-open IKE SAs above which IKE_SA_INIT must carry a cookie (RFC 7296 2.6).
    pub cookie_threshold: usize,
    /// Half-open IKE SAs above which new IKE_SA_INIT requests are dropped.
    pub half_open_limit: usize,
    /// Largest IP datagram (headers included) an IKE message goes out in once fragmentation
    /// (RFC 7383) is agreed: larger messages are sent as fragments.
    pub ike_fragment_size: usize,
    /// Where trust anchors and CRLs are read from (the loaded ones: [`super::Config::trust`]).
    pub ca_dir: Option<PathBuf>,
    pub crl_dir: Option<PathBuf>,
    /// Addresses this host holds only part of the time (the shared address of an
    /// active-standby pair, moved by keepalived): their sockets are bound with IP_FREEBIND so
    /// ironsecd starts and runs without them, and their tunnels stay dormant while the
    /// address is away (README "Active-standby with one shared address").
    pub shared_addresses: Vec<IpAddr>,
    /// Prefixes guarded by a blackhole route whatever connections the config has (README
    /// "Fail closed: guard routes"): a gateway that gives away its last connection to a site
    /// (a share moved to another gateway) still drops, never forwards in clear, what its LAN
    /// router sends it for those sites before the routing protocol withdraws its routes.
    pub protect: Vec<Prefix>,
}

/// The metrics endpoint's bearer token. Zeroed when dropped; `Debug` shows no byte of it;
/// compared in constant time ([`MetricsToken::matches`]).
#[derive(Clone, PartialEq, Eq)]
pub struct MetricsToken(zeroize::Zeroizing<String>);

impl MetricsToken {
    /// The token file's text without surrounding white space (a trailing newline is usual).
    pub fn new(text: &str) -> Option<MetricsToken> {
        let t = text.trim();
        (!t.is_empty()).then(|| MetricsToken(zeroize::Zeroizing::new(t.to_string())))
    }

    /// Whether `offered` is the token, in time that does not depend on where they differ (so
    /// a client cannot find it byte by byte by timing its answers).
    pub fn matches(&self, offered: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.0.as_bytes().ct_eq(offered))
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(<redacted>)")
    }
}

/// One key of `[gateway]`, in schema order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GatewayKey {
    Tun,
    TunMtu,
    TunTxqueuelen,
    Port,
    IkePort,
    ControlSocket,
    Workers,
    ReplayWindow,
    SocketBuffer,
    Batch,
    Metrics,
    MetricsTokenFile,
    Bandwidth,
    UdpOffload,
    TunOffload,
    Udp6ZeroChecksum,
    CookieThreshold,
    HalfOpenLimit,
    IkeFragmentSize,
    CaDir,
    CrlDir,
    SharedAddresses,
    Protect,
}

/// When a changed value takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// Only when ironsecd starts: it sets up something that exists for the daemon's life. A
    /// reload that changes it is refused whole.
    AtStart(SetsUp),
    /// On reload too: it is read again while running.
    Live,
}

/// What a start-only key sets up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetsUp {
    /// The fast path (TUN device, ESP sockets, workers): carried by [`DataplaneConfig`].
    FastPath,
    /// The daemon itself (IKE sockets, control socket, metrics listener, SA parameters).
    Daemon,
}

impl GatewayKey {
    /// Every key, in schema order.
    pub const ALL: [GatewayKey; 23] = [
        GatewayKey::Tun,
        GatewayKey::TunMtu,
        GatewayKey::TunTxqueuelen,
        GatewayKey::Port,
        GatewayKey::IkePort,
        GatewayKey::ControlSocket,
        GatewayKey::Workers,
        GatewayKey::ReplayWindow,
        GatewayKey::SocketBuffer,
        GatewayKey::Batch,
        GatewayKey::Metrics,
        GatewayKey::MetricsTokenFile,
        GatewayKey::Bandwidth,
        GatewayKey::UdpOffload,
        GatewayKey::TunOffload,
        GatewayKey::Udp6ZeroChecksum,
        GatewayKey::CookieThreshold,
        GatewayKey::HalfOpenLimit,
        GatewayKey::IkeFragmentSize,
        GatewayKey::CaDir,
        GatewayKey::CrlDir,
        GatewayKey::SharedAddresses,
        GatewayKey::Protect,
    ];

    /// The key as written in the file (and after `IRONSEC_GATEWAY__`).
    pub const fn name(self) -> &'static str {
        match self {
            GatewayKey::Tun => "tun",
            GatewayKey::TunMtu => "tun_mtu",
            GatewayKey::TunTxqueuelen => "tun_txqueuelen",
            GatewayKey::Port => "port",
            GatewayKey::IkePort => "ike_port",
            GatewayKey::ControlSocket => "control_socket",
            GatewayKey::Workers => "workers",
            GatewayKey::ReplayWindow => "replay_window",
            GatewayKey::SocketBuffer => "socket_buffer",
            GatewayKey::Batch => "batch",
            GatewayKey::Metrics => "metrics",
            GatewayKey::MetricsTokenFile => "metrics_token_file",
            GatewayKey::Bandwidth => "bandwidth",
            GatewayKey::UdpOffload => "udp_offload",
            GatewayKey::TunOffload => "tun_offload",
            GatewayKey::Udp6ZeroChecksum => "udp6_zero_checksum",
            GatewayKey::CookieThreshold => "cookie_threshold",
            GatewayKey::HalfOpenLimit => "half_open_limit",
            GatewayKey::IkeFragmentSize => "ike_fragment_size",
            GatewayKey::CaDir => "ca_dir",
            GatewayKey::CrlDir => "crl_dir",
            GatewayKey::SharedAddresses => "shared_addresses",
            GatewayKey::Protect => "protect",
        }
    }

    pub fn applies(self) -> Applies {
        use Applies::{AtStart, Live};
        use SetsUp::{Daemon, FastPath};
        match self {
            GatewayKey::Tun
            | GatewayKey::TunMtu
            | GatewayKey::TunTxqueuelen
            | GatewayKey::Port
            | GatewayKey::Workers
            | GatewayKey::SocketBuffer
            | GatewayKey::Batch
            | GatewayKey::UdpOffload
            | GatewayKey::TunOffload
            // A socket option set when the sockets are bound, ESP and IKE alike.
            | GatewayKey::Udp6ZeroChecksum
            // How the sockets are bound (IP_FREEBIND), ESP and IKE alike: they are bound once.
            | GatewayKey::SharedAddresses => AtStart(FastPath),
            // replay_window sizes the anti-replay window of every SA, static ones included,
            // which exist from the start: one value for all SAs keeps their behaviour alike.
            GatewayKey::IkePort
            | GatewayKey::ControlSocket
            | GatewayKey::ReplayWindow
            | GatewayKey::Metrics
            | GatewayKey::MetricsTokenFile => AtStart(Daemon),
            // The sharer reads it every round.
            GatewayKey::Bandwidth => Live,
            // The IKE engine reads them for each new IKE_SA_INIT or outgoing message; a
            // reload hands it the new values (`Endpoint::set_limits`).
            GatewayKey::CookieThreshold
            | GatewayKey::HalfOpenLimit
            | GatewayKey::IkeFragmentSize => Live,
            // Read again at every reload: renewed CA certificates and fresh CRLs apply to new
            // negotiations (established SAs stay).
            GatewayKey::CaDir | GatewayKey::CrlDir => Live,
            // Guards are reconciled with the config at every reload (`guards::wanted`).
            GatewayKey::Protect => Live,
        }
    }
}

impl std::fmt::Display for GatewayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

const fn key_names() -> [&'static str; GatewayKey::ALL.len()] {
    let mut out = [""; GatewayKey::ALL.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = GatewayKey::ALL[i].name();
        i += 1;
    }
    out
}

/// Every key's name, in schema order: what an `IRONSEC_GATEWAY__<KEY>` variable may name.
pub const GATEWAY_KEYS: [&str; GatewayKey::ALL.len()] = key_names();

fn shown_path(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map_or("none".to_string(), |p| p.display().to_string())
}

/// A reload changed a key that applies only at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("gateway.{key}: changed from {from} to {to}; gateway settings apply at start (restart ironsecd)")]
pub struct NeedsRestart {
    pub key: GatewayKey,
    pub from: String,
    pub to: String,
}

impl Gateway {
    /// A key's value as the operator reads it in messages.
    pub fn shown(&self, key: GatewayKey) -> String {
        match key {
            GatewayKey::Tun => self.tun.clone(),
            GatewayKey::TunMtu => self.tun_mtu.to_string(),
            GatewayKey::TunTxqueuelen => self.tun_txqueuelen.to_string(),
            GatewayKey::Port => self.port.to_string(),
            GatewayKey::IkePort => self.ike_port.to_string(),
            GatewayKey::ControlSocket => self.control_socket.display().to_string(),
            GatewayKey::Workers => self.workers.to_string(),
            GatewayKey::ReplayWindow => self.replay_window.to_string(),
            GatewayKey::SocketBuffer => self.socket_buffer.to_string(),
            GatewayKey::Batch => self.batch.to_string(),
            GatewayKey::Metrics => self.metrics.map_or("off".to_string(), |a| a.to_string()),
            // The path only: the token itself is never shown.
            GatewayKey::MetricsTokenFile => self
                .metrics_token
                .as_ref()
                .map_or("none".to_string(), |(p, _)| p.display().to_string()),
            GatewayKey::Bandwidth => self
                .bandwidth
                .map_or("none".to_string(), |b| format!("{b} bit/s")),
            GatewayKey::UdpOffload => self.udp_offload.to_string(),
            GatewayKey::TunOffload => self.tun_offload.to_string(),
            GatewayKey::Udp6ZeroChecksum => self.udp6_zero_checksum.word().to_string(),
            GatewayKey::CookieThreshold => self.cookie_threshold.to_string(),
            GatewayKey::HalfOpenLimit => self.half_open_limit.to_string(),
            GatewayKey::IkeFragmentSize => self.ike_fragment_size.to_string(),
            GatewayKey::CaDir => shown_path(&self.ca_dir),
            GatewayKey::CrlDir => shown_path(&self.crl_dir),
            GatewayKey::SharedAddresses => {
                if self.shared_addresses.is_empty() {
                    "none".to_string()
                } else {
                    let v: Vec<String> = self
                        .shared_addresses
                        .iter()
                        .map(|a| a.to_string())
                        .collect();
                    v.join(", ")
                }
            }
            GatewayKey::Protect if self.protect.is_empty() => "none".to_string(),
            GatewayKey::Protect => self
                .protect
                .iter()
                .map(Prefix::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// What a reload from `self` to `new` would change that only a restart can apply, in key
    /// order. Empty: the reload can go ahead.
    pub fn restart_changes(&self, new: &Gateway) -> Vec<NeedsRestart> {
        GatewayKey::ALL
            .into_iter()
            .filter(|k| matches!(k.applies(), Applies::AtStart(_)))
            .filter_map(|key| {
                let (from, to) = (self.shown(key), new.shown(key));
                (from != to).then_some(NeedsRestart { key, from, to })
            })
            .collect()
    }

    /// The fast path's settings, for sockets on `local_addrs`.
    pub(super) fn dataplane_config(&self, local_addrs: Vec<SocketAddr>) -> DataplaneConfig {
        DataplaneConfig {
            tun_name: self.tun.clone(),
            tun_mtu: self.tun_mtu,
            tun_txqueuelen: self.tun_txqueuelen,
            local_addrs,
            freebind_addrs: self.shared_addresses.clone(),
            workers: self.workers,
            socket_buffer: self.socket_buffer,
            batch: self.batch,
            udp_offload: self.udp_offload,
            tun_offload: self.tun_offload,
            udp6_zero_checksum_rx: self.udp6_zero_checksum == Udp6ZeroChecksum::Accept,
        }
    }
}
