//! Configuration: one set of types ([`schema`]) for what the file says, validated into the
//! model below, which is what the daemon runs on. Every error names file, key and reason.

pub mod error;
pub mod ike_keying;
pub mod keys;
pub mod schema;
pub mod static_keying;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ironsec_dataplane::Prefix;

pub use error::{ConfigError, ConfigErrors};
#[cfg(test)]
use ironsec_esp::Suite;
pub use keys::Keymat;
use schema::{ConnectionSchema, FileSchema, GatewaySchema, KeyingKind};

#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub gateway: Gateway,
    pub connections: Vec<Connection>,
}

#[derive(Debug, Clone)]
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
}

#[derive(Debug, Clone)]
pub struct Connection {
    pub name: String,
    pub local_ts: Vec<Prefix>,
    pub remote_ts: Vec<Prefix>,
    pub keying: Keying,
}

#[derive(Debug, Clone)]
pub enum Keying {
    Static(StaticKeying),
    Ike(IkeKeying),
}

pub use ike_keying::{IkeKeying, IkeTunnel};
pub use schema::StartAction;
pub use static_keying::{StaticKeying, StaticTunnel};

impl Keying {
    /// Local addresses of the tunnels: where ESP-in-UDP sockets must be bound.
    pub fn local_ips(&self) -> Vec<IpAddr> {
        match self {
            Keying::Static(s) => s.tunnels.iter().map(|t| t.local).collect(),
            Keying::Ike(i) => i.tunnels.iter().map(|t| t.local).collect(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Keying::Static(_) => "static",
            Keying::Ike(_) => "ike",
        }
    }
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let raw = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .build()
            .map_err(|e| ConfigError::new(path, "", strip_location(&e.to_string())))?;
        let schema: FileSchema = serde_path_to_error::deserialize(raw).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." { String::new() } else { key };
            ConfigError::new(path, key, strip_location(&e.into_inner().to_string()))
        })?;
        validate(path, schema)
    }

    /// Distinct local tunnel addresses, each with the gateway port: the sockets to bind.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = Vec::new();
        for c in &self.connections {
            for ip in c.keying.local_ips() {
                let a = SocketAddr::new(ip, self.gateway.port);
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        out
    }
}

/// The config crate appends where it was (`in FILE`, `for key K`); our errors say that in
/// their own fields, so drop the suffix.
fn strip_location(msg: &str) -> String {
    let mut m = msg.trim_end();
    for marker in [" for key `", "\n in ", " in "] {
        if let Some(i) = m.rfind(marker) {
            // Only a trailing location, not " in " inside the message itself.
            let tail = &m[i + marker.len()..];
            if !tail.contains(' ') || marker != " in " {
                m = m[..i].trim_end();
            }
        }
    }
    m.to_string()
}

fn validate(file: &Path, s: FileSchema) -> Result<Config, ConfigErrors> {
    let mut errs = Vec::new();
    let gateway = validate_gateway(file, s.gateway, &mut errs);
    let mut connections = Vec::new();
    let mut names = HashSet::new();
    let mut spis_in: HashMap<u32, String> = HashMap::new();
    for (i, c) in s.connection.into_iter().enumerate() {
        let key = format!("connection[{i}]");
        if !names.insert(c.name.clone()) {
            errs.push(ConfigError::new(
                file,
                format!("{key}.name"),
                format!("connection name '{}' is used twice", c.name),
            ));
        }
        if let Some(conn) = validate_connection(file, &key, c, gateway.port, &mut errs) {
            let tunnels = match &conn.keying {
                Keying::Static(st) => &st.tunnels[..],
                Keying::Ike(_) => &[],
            };
            for (j, t) in tunnels.iter().enumerate() {
                let here = format!("{key}.tunnels[{j}].spi_in");
                if let Some(prev) = spis_in.insert(t.spi_in, here.clone()) {
                    errs.push(ConfigError::new(
                        file,
                        here,
                        format!("inbound SPI 0x{:08x} is also used by {prev}", t.spi_in),
                    ));
                }
            }
            connections.push(conn);
        }
    }
    // Two connections claiming the same remote addresses would make routing ambiguous and let
    // one site receive another's traffic.
    for (i, a) in connections.iter().enumerate() {
        for b in &connections[i + 1..] {
            for pa in &a.remote_ts {
                if let Some(pb) = b.remote_ts.iter().find(|pb| pa.overlaps(pb)) {
                    errs.push(ConfigError::new(
                        file,
                        format!("connection '{}'.remote_ts", b.name),
                        format!("{pb} overlaps {pa} of connection '{}'", a.name),
                    ));
                }
            }
        }
    }
    if errs.is_empty() {
        Ok(Config {
            file: file.to_path_buf(),
            gateway,
            connections,
        })
    } else {
        Err(ConfigErrors(errs))
    }
}

fn validate_gateway(file: &Path, g: GatewaySchema, errs: &mut Vec<ConfigError>) -> Gateway {
    let mut bad = |k: &str, r: String| errs.push(ConfigError::new(file, format!("gateway.{k}"), r));
    if g.tun.is_empty() || g.tun.len() > 15 || g.tun.contains(['/', ' ', '%']) {
        bad(
            "tun",
            format!(
                "'{}' is not a valid interface name (1-15 characters, no '/', ' ' or '%')",
                g.tun
            ),
        );
    }
    if !(576..=9000).contains(&g.tun_mtu) {
        bad("tun_mtu", format!("{} is outside 576..=9000", g.tun_mtu));
    }
    if g.port == 0 {
        bad("port", "port 0 is not a port".into());
    }
    if !(64..=65536).contains(&g.replay_window) {
        bad(
            "replay_window",
            format!("{} is outside 64..=65536 packets", g.replay_window),
        );
    }
    if g.workers > 256 {
        bad("workers", format!("{} is more than 256", g.workers));
    }
    if !(1..=1024).contains(&g.batch) {
        bad("batch", format!("{} is outside 1..=1024", g.batch));
    }
    if g.control_socket.as_os_str().is_empty() || !g.control_socket.is_absolute() {
        bad("control_socket", "must be an absolute path".into());
    }
    Gateway {
        tun: g.tun,
        tun_mtu: g.tun_mtu,
        tun_txqueuelen: g.tun_txqueuelen,
        port: g.port,
        ike_port: g.ike_port,
        control_socket: g.control_socket,
        workers: g.workers,
        replay_window: g.replay_window,
        socket_buffer: g.socket_buffer,
        batch: g.batch,
    }
}

fn prefixes(file: &Path, key: &str, v: &[String], errs: &mut Vec<ConfigError>) -> Vec<Prefix> {
    if v.is_empty() {
        errs.push(ConfigError::new(file, key, "needs at least one subnet"));
    }
    v.iter()
        .enumerate()
        .filter_map(|(i, s)| match s.parse::<Prefix>() {
            Ok(p) => Some(p),
            Err(e) => {
                errs.push(ConfigError::new(
                    file,
                    format!("{key}[{i}]"),
                    format!("'{s}': {e}"),
                ));
                None
            }
        })
        .collect()
}

fn validate_connection(
    file: &Path,
    key: &str,
    c: ConnectionSchema,
    port: u16,
    errs: &mut Vec<ConfigError>,
) -> Option<Connection> {
    let before = errs.len();
    if c.name.is_empty()
        || !c
            .name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
    {
        errs.push(ConfigError::new(
            file,
            format!("{key}.name"),
            format!(
                "'{}' is not a valid name (letters, digits, '.', '_', '-')",
                c.name
            ),
        ));
    }
    let local_ts = prefixes(file, &format!("{key}.local_ts"), &c.local_ts, errs);
    let remote_ts = prefixes(file, &format!("{key}.remote_ts"), &c.remote_ts, errs);
    if c.tunnels.is_empty() {
        errs.push(ConfigError::new(
            file,
            format!("{key}.tunnels"),
            "needs at least one tunnel",
        ));
    }
    let name = c.name.clone();
    let keying = match c.keying {
        KeyingKind::Static => static_keying::validate(file, key, c, port, errs).map(Keying::Static),
        KeyingKind::Ike => ike_keying::validate(file, key, c, errs).map(Keying::Ike),
    };
    if errs.len() > before {
        return None;
    }
    Some(Connection {
        name,
        local_ts,
        remote_ts,
        keying: keying?,
    })
}

/// Parses a tunnel's two addresses, which must be of one IP version.
pub(crate) fn tunnel_addrs(
    file: &Path,
    tk: &str,
    local: &str,
    remote: &str,
    errs: &mut Vec<ConfigError>,
) -> Option<(IpAddr, IpAddr)> {
    let l = local.parse::<IpAddr>().map_err(|_| {
        ConfigError::new(
            file,
            format!("{tk}.local"),
            format!("'{local}' is not an IP address"),
        )
    });
    let r = remote.parse::<IpAddr>().map_err(|_| {
        ConfigError::new(
            file,
            format!("{tk}.remote"),
            format!("'{remote}' is not an IP address"),
        )
    });
    match (l, r) {
        (Ok(l), Ok(r)) if l.is_ipv4() == r.is_ipv4() => Some((l, r)),
        (Ok(_), Ok(_)) => {
            errs.push(ConfigError::new(
                file,
                tk,
                "local and remote must be the same IP version",
            ));
            None
        }
        (l, r) => {
            errs.extend(l.err());
            errs.extend(r.err());
            None
        }
    }
}

/// Refuses keys that belong to the other keying, so a typo is not silently ignored.
pub(crate) fn refuse_keys(
    file: &Path,
    key: &str,
    present: &[(&str, bool)],
    keying: &str,
    errs: &mut Vec<ConfigError>,
) {
    for (name, is) in present {
        if *is {
            errs.push(ConfigError::new(
                file,
                format!("{key}.{name}"),
                format!("not used with keying = \"{keying}\""),
            ));
        }
    }
}

#[cfg(test)]
mod tests;
