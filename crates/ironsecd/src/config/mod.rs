//! Configuration: one set of types ([`schema`]) for what the file says, validated into the
//! model below, which is what the daemon runs on. Every error names file, key and reason.

pub mod error;
pub mod keys;
pub mod schema;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ironsec_dataplane::Prefix;
use ironsec_esp::Suite;

pub use error::{ConfigError, ConfigErrors};
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
}

#[derive(Debug, Clone)]
pub struct StaticKeying {
    pub suite: Suite,
    pub esn: bool,
    pub tunnels: Vec<StaticTunnel>,
}

#[derive(Debug, Clone)]
pub struct StaticTunnel {
    pub local: IpAddr,
    pub remote: SocketAddr,
    pub spi_out: u32,
    pub spi_in: u32,
    pub key_out: Keymat,
    pub key_in: Keymat,
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
            let Keying::Static(s) = &c.keying;
            for t in &s.tunnels {
                let a = SocketAddr::new(t.local, self.gateway.port);
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
            let Keying::Static(st) = &conn.keying;
            for (j, t) in st.tunnels.iter().enumerate() {
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
    let KeyingKind::Static = c.keying;
    let suite = match c.esp.parse::<Suite>() {
        Ok(s) => Some(s),
        Err(e) => {
            errs.push(ConfigError::new(file, format!("{key}.esp"), e.to_string()));
            None
        }
    };
    if !c.esn {
        // With manual keys the sequence number restarts at 1 whenever the daemon does. ESN
        // keeps 64 bits of room; without it a busy SA exhausts its 32-bit space in hours.
        errs.push(ConfigError::new(
            file,
            format!("{key}.esn"),
            "static keying requires esn = true (a manually keyed SA cannot be rekeyed when its 32-bit sequence space runs out)",
        ));
    }
    if c.tunnels.is_empty() {
        errs.push(ConfigError::new(
            file,
            format!("{key}.tunnels"),
            "needs at least one tunnel",
        ));
    }
    let keys = match keys::load(&c.keys_file) {
        Ok(k) => Some(k),
        Err(mut e) => {
            // Point at the config key too, so the operator knows which connection it is.
            for x in &mut e {
                if x.key.is_empty() {
                    x.key = format!("(keys_file of {key})");
                }
            }
            errs.append(&mut e);
            None
        }
    };
    let mut tunnels = Vec::new();
    for (j, t) in c.tunnels.into_iter().enumerate() {
        let tk = format!("{key}.tunnels[{j}]");
        let local = t.local.parse::<IpAddr>().map_err(|_| {
            ConfigError::new(
                file,
                format!("{tk}.local"),
                format!("'{}' is not an IP address", t.local),
            )
        });
        let remote = t.remote.parse::<IpAddr>().map_err(|_| {
            ConfigError::new(
                file,
                format!("{tk}.remote"),
                format!("'{}' is not an IP address", t.remote),
            )
        });
        let (local, remote) = match (local, remote) {
            (Ok(l), Ok(r)) => (l, r),
            (l, r) => {
                errs.extend(l.err());
                errs.extend(r.err());
                continue;
            }
        };
        if local.is_ipv4() != remote.is_ipv4() {
            errs.push(ConfigError::new(
                file,
                &tk,
                "local and remote must be the same IP version",
            ));
        }
        for (name, spi) in [("spi_out", t.spi_out.0), ("spi_in", t.spi_in.0)] {
            if spi < 256 {
                errs.push(ConfigError::new(
                    file,
                    format!("{tk}.{name}"),
                    format!("SPI {spi} is reserved (0-255); use 0x100 or above"),
                ));
            }
        }
        let (Some(keys), Some(suite)) = (&keys, suite) else {
            continue;
        };
        let mut key_for = |name: &str, spi: u32| -> Option<Keymat> {
            let Some(k) = keys.get(&spi) else {
                errs.push(ConfigError::new(
                    file,
                    format!("{tk}.{name}"),
                    format!("no key for SPI 0x{spi:08x} in {}", c.keys_file.display()),
                ));
                return None;
            };
            if k.len() != suite.keymat_len() {
                errs.push(ConfigError::new(
                    &c.keys_file,
                    format!("0x{spi:08x}"),
                    format!(
                        "{suite} needs {} bytes of key material (key + 4-byte salt), this key has {}",
                        suite.keymat_len(),
                        k.len()
                    ),
                ));
                return None;
            }
            Some(k.clone())
        };
        let key_out = key_for("spi_out", t.spi_out.0);
        let key_in = key_for("spi_in", t.spi_in.0);
        if let (Some(key_out), Some(key_in)) = (key_out, key_in) {
            tunnels.push(StaticTunnel {
                local,
                remote: SocketAddr::new(remote, t.remote_port.unwrap_or(port)),
                spi_out: t.spi_out.0,
                spi_in: t.spi_in.0,
                key_out,
                key_in,
            });
        }
    }
    if errs.len() > before {
        return None;
    }
    Some(Connection {
        name: c.name,
        local_ts,
        remote_ts,
        keying: Keying::Static(StaticKeying {
            suite: suite?,
            esn: c.esn,
            tunnels,
        }),
    })
}

#[cfg(test)]
mod tests;
