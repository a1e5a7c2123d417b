//! What `ironsecctl list-conns` shows: the connections of the daemon's running config (so
//! what a reload applied, not what the file says now), as one set of serde types the daemon
//! fills ([`list`]) and the CLI renders ([`render`]) or prints as JSON, like `swanctl
//! --list-conns`.
//!
//! Secrets never get in: a PSK or a static key is named by the file it came from at most
//! (`psk_file`, `keys_file`), never by its value, so a listing may be pasted into a ticket.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use ironsec_ike::SendCert;

use crate::config::pki::{AuthConfig, LocalAuthConfig, RemoteAuthConfig};
use crate::config::schema::{CloseAction, Mode, StartAction};
use crate::config::{Config, Connection, Keying};

/// One configured connection.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ConnConfig {
    pub name: String,
    /// `ike` or `static`.
    pub keying: String,
    /// Selectors as configured (`10.1.0.0/24`, `10.2.0.0/24[tcp/443]`).
    pub local_ts: Vec<String>,
    pub remote_ts: Vec<String>,
    /// IKE connections only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ike: Option<IkeConfig>,
    /// Manually keyed connections only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_keys: Option<StaticConfig>,
    /// Share of gateway.bandwidth under contention.
    pub bandwidth_weight: u32,
    /// The connection's own cap, bits/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_bps: Option<u64>,
    /// Route-based connections only: their tunnel interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_based: Option<RouteBasedConfig>,
    /// A remote-access connection's listening address and pool (its tunnels are its
    /// clients', listed by `status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_access: Option<RemoteAccessConfig>,
    pub tunnels: Vec<TunnelConfig>,
}

/// A remote-access connection's keys as configured.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RemoteAccessConfig {
    pub local: String,
    pub pool: String,
    pub dns: Vec<String>,
    pub lease_grace_secs: u64,
}

/// A route-based connection's interface keys as configured.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RouteBasedConfig {
    pub interface: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_address: Option<String>,
    #[serde(default)]
    pub routes: Vec<String>,
    #[serde(default)]
    pub protect: Vec<String>,
}

/// The IKE side of a connection.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct IkeConfig {
    pub local_id: String,
    pub remote_id: String,
    /// `psk` or `pubkey` when both directions use it, else `local/remote` (`pubkey/psk`).
    pub auth: String,
    /// How we authenticate to the peer: `psk` or `pubkey`.
    #[serde(default)]
    pub local_auth: String,
    /// How the peer must authenticate to us: `psk` or `pubkey`.
    #[serde(default)]
    pub remote_auth: String,
    /// Where the PSK was read from; absent for an inline `psk` (whose value is never shown)
    /// and when no direction uses a PSK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psk_file: Option<String>,
    /// Whether a PSK is configured and used (psk_file or inline).
    #[serde(default)]
    pub psk: bool,
    /// local_auth pubkey: our certificate file (with its intermediates) and its key's file
    /// (the key itself is never shown), and when the certificate is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_cert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_cert: Option<String>,
    /// remote_auth pubkey with a pinned peer certificate: its file. Absent with pubkey: any
    /// certificate that chains to a trust anchor (ca_dir) and carries remote_id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_cert: Option<String>,
    pub ike_proposals: Vec<String>,
    pub esp_proposals: Vec<String>,
    /// `active-standby` or `active-active`.
    pub mode: String,
    pub start_action: String,
    pub close_action: String,
    pub lifetimes: Lifetimes,
    /// DPD interval, seconds; absent: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpd_interval_secs: Option<u64>,
    /// Seconds a request on an established IKE SA may stay unanswered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpd_timeout_secs: Option<u64>,
    /// Traffic moves off a dead tunnel within this time.
    pub failover_after_secs: u64,
    /// Moving back to a higher-priority tunnel after it has been up this long; absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt_hold_secs: Option<u64>,
}

/// When SAs are rekeyed, reauthenticated or deleted.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Lifetimes {
    pub rekey_time_secs: u64,
    pub ike_rekey_time_secs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reauth_time_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekey_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub life_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekey_packets: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub life_packets: Option<u64>,
}

/// A manually keyed connection's suite and key file.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct StaticConfig {
    pub esp: String,
    pub esn: bool,
    pub keys_file: String,
}

/// One tunnel of a connection: addresses, and its place in the connection's mode.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TunnelConfig {
    pub local: String,
    pub remote: String,
    /// The peer as configured when given by name (`remote` is what it resolved to at load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_name: Option<String>,
    #[serde(default)]
    pub priority: u32,
    #[serde(default)]
    pub weight: u32,
    /// Static tunnels: their SPIs (never their keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spi_in: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spi_out: Option<String>,
}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

pub fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::ActiveStandby => "active-standby",
        Mode::ActiveActive => "active-active",
    }
}

pub fn start_action_name(a: StartAction) -> &'static str {
    match a {
        StartAction::Start => "start",
        StartAction::Trap => "trap",
        StartAction::None => "none",
    }
}

pub fn close_action_name(a: CloseAction) -> &'static str {
    match a {
        CloseAction::Restart => "restart",
        CloseAction::Trap => "trap",
        CloseAction::None => "none",
    }
}

pub fn send_cert_name(s: SendCert) -> &'static str {
    match s {
        SendCert::IfAsked => "ifasked",
        SendCert::Always => "always",
        SendCert::Never => "never",
    }
}

/// `auth`, `local_auth`, `remote_auth`, `local_cert`, `local_key`, `send_cert`, `remote_cert`
/// of a connection's authentication.
struct AuthView {
    auth: String,
    local: &'static str,
    remote: &'static str,
    local_cert: Option<String>,
    local_key: Option<String>,
    send_cert: Option<String>,
    remote_cert: Option<String>,
}

fn auth_view(a: &AuthConfig) -> AuthView {
    let (local, local_cert, local_key, send_cert) = match &a.local {
        LocalAuthConfig::Psk => ("psk", None, None, None),
        // Several certificates (`local_certs`): listed in order, comma-separated.
        LocalAuthConfig::Pubkey(certs) => {
            let list = |f: fn(&crate::config::pki::LocalCert) -> &std::path::Path| {
                certs
                    .iter()
                    .map(|lc| f(lc).display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            (
                "pubkey",
                Some(list(|lc| &lc.cert_file)),
                Some(list(|lc| &lc.key_file)),
                Some(send_cert_name(certs.first.credential.send_cert).to_string()),
            )
        }
    };
    let (remote, remote_cert) = match &a.remote {
        RemoteAuthConfig::Psk => ("psk", None),
        RemoteAuthConfig::Pubkey { pinned } => (
            "pubkey",
            pinned.as_ref().map(|p| p.file.display().to_string()),
        ),
        RemoteAuthConfig::EapMschapv2(_) => ("eap-mschapv2", None),
        RemoteAuthConfig::EapRadius(_) => ("eap-radius", None),
        RemoteAuthConfig::EapTls => ("eap-tls", None),
    };
    AuthView {
        auth: if local == remote {
            local.to_string()
        } else {
            format!("{local}/{remote}")
        },
        local,
        remote,
        local_cert,
        local_key,
        send_cert,
        remote_cert,
    }
}

/// One connection of the running config as `list-conns` shows it.
pub fn conn_config(c: &Connection) -> ConnConfig {
    let (ike, static_keys, tunnels) = match &c.keying {
        Keying::Ike(k) => {
            let a = auth_view(&k.auth);
            let psk_used = a.local == "psk" || a.remote == "psk";
            (
                Some(IkeConfig {
                    local_id: k.local_id.to_string(),
                    remote_id: k.remote_id.to_string(),
                    auth: a.auth,
                    local_auth: a.local.into(),
                    remote_auth: a.remote.into(),
                    psk_file: k
                        .psk_file
                        .as_ref()
                        .filter(|_| psk_used)
                        .map(|p| p.display().to_string()),
                    psk: psk_used && k.psk.is_some(),
                    local_cert: a.local_cert,
                    local_key: a.local_key,
                    send_cert: a.send_cert,
                    remote_cert: a.remote_cert,
                    ike_proposals: k.ike_proposals.iter().map(|p| p.to_string()).collect(),
                    esp_proposals: k.esp_proposals.iter().map(|p| p.to_string()).collect(),
                    mode: mode_name(k.mode).into(),
                    start_action: start_action_name(k.start_action).into(),
                    close_action: close_action_name(k.close_action).into(),
                    lifetimes: Lifetimes {
                        rekey_time_secs: secs(k.rekey_time),
                        ike_rekey_time_secs: secs(k.ike_rekey_time),
                        reauth_time_secs: k.reauth_time.map(secs),
                        rekey_bytes: k.volume.rekey_bytes,
                        life_bytes: k.volume.life_bytes,
                        rekey_packets: k.volume.rekey_packets,
                        life_packets: k.volume.life_packets,
                    },
                    dpd_interval_secs: k.dpd_interval.map(secs),
                    dpd_timeout_secs: k.dpd_timeout.map(secs),
                    failover_after_secs: secs(k.failover_after),
                    preempt_hold_secs: k.preempt_hold.map(secs),
                }),
                None,
                k.tunnels
                    .iter()
                    .map(|t| TunnelConfig {
                        local: t.local.to_string(),
                        remote: t.remote.to_string(),
                        remote_name: t.remote_name.as_deref().map(str::to_string),
                        priority: t.priority,
                        weight: t.weight,
                        spi_in: None,
                        spi_out: None,
                    })
                    .collect(),
            )
        }
        Keying::Static(s) => (
            None,
            Some(StaticConfig {
                esp: s.suite.to_string(),
                esn: s.esn,
                keys_file: s.keys_file.display().to_string(),
            }),
            s.tunnels
                .iter()
                .map(|t| TunnelConfig {
                    local: t.local.to_string(),
                    remote: t.remote.to_string(),
                    remote_name: None,
                    priority: 0,
                    weight: 0,
                    spi_in: Some(crate::status::spi_string(t.spi_in)),
                    spi_out: Some(crate::status::spi_string(t.spi_out)),
                })
                .collect(),
        ),
    };
    ConnConfig {
        name: c.name.clone(),
        keying: c.keying.name().into(),
        local_ts: c.local_selectors.iter().map(|s| s.to_string()).collect(),
        remote_ts: c.remote_selectors.iter().map(|s| s.to_string()).collect(),
        ike,
        static_keys,
        bandwidth_weight: c.bandwidth_weight,
        bandwidth_bps: c.bandwidth,
        route_based: c.route_based.as_ref().map(|rb| RouteBasedConfig {
            interface: rb.interface.clone(),
            interface_address: rb.address_text(),
            routes: rb.routes.iter().map(|p| p.to_string()).collect(),
            protect: rb.protect.iter().map(|p| p.to_string()).collect(),
        }),
        remote_access: match &c.keying {
            Keying::Ike(k) => k.remote_access.as_ref().map(|ra| RemoteAccessConfig {
                local: ra.local.to_string(),
                pool: ra.pools_text(),
                dns: ra.dns.iter().map(|d| d.to_string()).collect(),
                lease_grace_secs: ra.lease_grace.as_secs(),
            }),
            Keying::Static(_) => None,
        },
        tunnels,
    }
}

/// Every connection of the running config, in config order.
pub fn list(cfg: &Config) -> Vec<ConnConfig> {
    cfg.connections.iter().map(conn_config).collect()
}

fn or_never(v: Option<u64>, unit: &str) -> String {
    v.map_or("never".into(), |n| format!("{n}{unit}"))
}

/// The listing as text, one block per connection (swanctl's layout, ironsec's words).
pub fn render(conns: &[ConnConfig]) -> String {
    let mut s = String::new();
    for c in conns {
        let _ = write!(s, "{}: ", c.name);
        match (&c.ike, &c.static_keys) {
            (Some(k), _) => {
                let auth = if k.local_auth != k.remote_auth && !k.local_auth.is_empty() {
                    format!("local {} / remote {}", k.local_auth, k.remote_auth)
                } else {
                    k.auth.clone()
                };
                let _ = writeln!(
                    s,
                    "IKEv2, {auth} auth, {}, start_action {}, close_action {}",
                    k.mode, k.start_action, k.close_action
                );
                let _ = writeln!(s, "  local:  {}  {}", k.local_id, c.local_ts.join(", "));
                let _ = writeln!(s, "  remote: {}  {}", k.remote_id, c.remote_ts.join(", "));
                if let Some(cert) = &k.local_cert {
                    let _ = writeln!(
                        s,
                        "  local_cert: {cert} (key {}, send_cert {})",
                        k.local_key.as_deref().unwrap_or("?"),
                        k.send_cert.as_deref().unwrap_or("ifasked")
                    );
                }
                if k.remote_auth == "pubkey" {
                    match &k.remote_cert {
                        Some(p) => {
                            let _ = writeln!(s, "  remote_cert: {p} (pinned)");
                        }
                        None => {
                            let _ = writeln!(
                                s,
                                "  remote_cert: any chaining to ca_dir with identity {}",
                                k.remote_id
                            );
                        }
                    }
                }
                if let Some(p) = &k.psk_file {
                    let _ = writeln!(s, "  psk_file: {p}");
                } else if k.psk {
                    let _ = writeln!(s, "  psk: inline in the config (not shown)");
                }
                let _ = writeln!(s, "  ike proposals: {}", k.ike_proposals.join(", "));
                let _ = writeln!(s, "  esp proposals: {}", k.esp_proposals.join(", "));
                let l = &k.lifetimes;
                let _ = write!(
                    s,
                    "  lifetimes: CHILD rekey {}s, IKE rekey {}s, reauth {}",
                    l.rekey_time_secs,
                    l.ike_rekey_time_secs,
                    or_never(l.reauth_time_secs, "s")
                );
                if let (Some(r), Some(f)) = (l.rekey_bytes, l.life_bytes) {
                    let _ = write!(s, ", rekey_bytes {r}, life_bytes {f}");
                }
                if let (Some(r), Some(f)) = (l.rekey_packets, l.life_packets) {
                    let _ = write!(s, ", rekey_packets {r}, life_packets {f}");
                }
                let _ = writeln!(s);
                let _ = writeln!(
                    s,
                    "  dpd: interval {}, timeout {}; failover within {}s, preempt {}",
                    or_never(k.dpd_interval_secs, "s"),
                    k.dpd_timeout_secs
                        .map_or("after retransmissions".into(), |n| format!("{n}s")),
                    k.failover_after_secs,
                    k.preempt_hold_secs
                        .map_or("off".into(), |n| format!("after {n}s up"))
                );
            }
            (None, Some(st)) => {
                let _ = writeln!(
                    s,
                    "static keys, {}{}",
                    st.esp,
                    if st.esn { ", esn" } else { "" }
                );
                let _ = writeln!(s, "  local:  {}", c.local_ts.join(", "));
                let _ = writeln!(s, "  remote: {}", c.remote_ts.join(", "));
                let _ = writeln!(s, "  keys_file: {}", st.keys_file);
            }
            (None, None) => {
                let _ = writeln!(s, "{}", c.keying);
            }
        }
        if let Some(ra) = &c.remote_access {
            let _ = writeln!(
                s,
                "  remote access: clients connect to {}, addresses from {}{}, kept {}s after a client leaves",
                ra.local,
                ra.pool,
                if ra.dns.is_empty() {
                    String::new()
                } else {
                    format!(", DNS {}", ra.dns.join(","))
                },
                ra.lease_grace_secs
            );
        }
        if let Some(rb) = &c.route_based {
            let _ = writeln!(
                s,
                "  route-based: interface {}{}",
                rb.interface,
                crate::status::interface_keys(
                    rb.interface_address.as_deref(),
                    &rb.routes,
                    &rb.protect
                )
            );
        }
        if c.bandwidth_bps.is_some() || c.bandwidth_weight != 1 {
            let _ = writeln!(
                s,
                "  bandwidth: weight {}{}",
                c.bandwidth_weight,
                c.bandwidth_bps
                    .map(|b| format!(", cap {b} bit/s"))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(s, "  tunnels:");
        for t in &c.tunnels {
            let _ = write!(s, "    {} -> {}", t.local, t.remote);
            if let Some(n) = &t.remote_name {
                let _ = write!(s, " ({n})");
            }
            if c.ike.is_some() {
                let _ = write!(s, "  priority {} weight {}", t.priority, t.weight);
            }
            if let (Some(i), Some(o)) = (&t.spi_in, &t.spi_out) {
                let _ = write!(s, "  spi in {i} out {o}");
            }
            let _ = writeln!(s);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            let d =
                std::env::temp_dir().join(format!("ironsec-conns-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Dir(d)
        }

        fn write(&self, name: &str, body: &str) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, body).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            p
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const PSK: &str = "0x5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e7";
    const INLINE_PSK: &str = "inline-secret-never-shown";
    const KEY_OUT: &str = "000102030405060708090a0b0c0d0e0f10111213";
    const KEY_IN: &str = "202122232425262728292a2b2c2d2e2f30313233";

    fn load(d: &Dir) -> Config {
        let psk = d.write("b.psk", &format!("{PSK}\n"));
        let keys = d.write(
            "c.keys",
            &format!("0xc0000102 = \"{KEY_OUT}\"\n0xc0000201 = \"{KEY_IN}\"\n"),
        );
        let q = |p: &Path| format!("{:?}", p.to_str().unwrap());
        let toml = format!(
            r#"
[gateway]
tun = "ipsec0"

[[connection]]
name = "site-b"
keying = "ike"
local_id = "gw-a.example"
remote_id = "gw-b.example"
psk_file = {psk}
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.2.0.0/24", "10.9.0.0/24[tcp/443]"]
ike_proposals = ["aes256gcm16-prfsha256-x25519"]
esp_proposals = ["aes256gcm16", "aes128gcm16"]
mode = "active-active"
rekey_time = 1800
rekey_bytes = 2000000000
tunnels = [ {{ local = "192.0.2.1", remote = "198.51.100.1" }},
            {{ local = "192.0.2.1", remote = "198.51.100.2", priority = 2, weight = 3 }} ]

[[connection]]
name = "site-d"
keying = "ike"
local_id = "gw-a.example"
remote_id = "gw-d.example"
psk = "{INLINE_PSK}"
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.4.0.0/24"]
start_action = "trap"
tunnels = [ {{ local = "192.0.2.1", remote = "198.51.100.4" }} ]

[[connection]]
name = "site-c"
keying = "static"
esp = "aes128gcm16"
esn = true
keys_file = {keys}
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.3.0.0/24"]
tunnels = [ {{ local = "192.0.2.1", remote = "198.51.100.3", spi_out = "0xc0000102", spi_in = "0xc0000201" }} ]
"#,
            psk = q(&psk),
            keys = q(&keys),
        );
        let p = d.write("gw.toml", &toml);
        Config::load(&p).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_listing_shows_the_config_and_no_secret() {
        let d = Dir::new("list");
        let cfg = load(&d);
        let l = list(&cfg);
        assert_eq!(
            l.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["site-b", "site-d", "site-c"]
        );
        let b = &l[0];
        let k = b.ike.as_ref().unwrap();
        assert_eq!(k.mode, "active-active");
        assert_eq!(k.ike_proposals, ["aes256gcm16-prfsha256-x25519"]);
        assert_eq!(k.esp_proposals, ["aes256gcm16", "aes128gcm16"]);
        assert_eq!(k.lifetimes.rekey_time_secs, 1800);
        assert_eq!(k.lifetimes.rekey_bytes, Some(2_000_000_000));
        assert_eq!(k.psk_file.as_deref(), d.0.join("b.psk").to_str());
        assert_eq!(b.remote_ts, ["10.2.0.0/24", "10.9.0.0/24[tcp/443]"]);
        assert_eq!(b.tunnels[1].priority, 2);
        assert_eq!(b.tunnels[1].weight, 3);
        assert_eq!(l[1].ike.as_ref().unwrap().psk_file, None);
        assert_eq!(l[1].ike.as_ref().unwrap().start_action, "trap");
        let c = l[2].static_keys.as_ref().unwrap();
        assert_eq!(c.esp, "aes128gcm16");
        assert!(c.esn);
        assert_eq!(l[2].tunnels[0].spi_out.as_deref(), Some("0xc0000102"));

        let text = render(&l);
        let json = serde_json::to_string(&l).unwrap();
        for want in [
            "site-b: IKEv2, psk auth, active-active, start_action start, close_action restart",
            "  local:  gw-a.example  10.1.0.0/24",
            "  remote: gw-b.example  10.2.0.0/24, 10.9.0.0/24[tcp/443]",
            "  ike proposals: aes256gcm16-prfsha256-x25519",
            "  esp proposals: aes256gcm16, aes128gcm16",
            "  lifetimes: CHILD rekey 1800s, IKE rekey 14400s, reauth never, rekey_bytes 2000000000",
            "    192.0.2.1 -> 198.51.100.2  priority 2 weight 3",
            "site-d: IKEv2, psk auth, active-standby, start_action trap, close_action trap",
            "  psk: inline in the config (not shown)",
            "site-c: static keys, aes128gcm16, esn",
            "    192.0.2.1 -> 198.51.100.3:4500  spi in 0xc0000201 out 0xc0000102",
        ] {
            assert!(text.contains(want), "no {want:?} in\n{text}");
        }
        assert!(text.contains(&format!("  psk_file: {}", d.0.join("b.psk").display())));
        assert!(text.contains(&format!("  keys_file: {}", d.0.join("c.keys").display())));
        // The PSKs and keys, in any spelling, are in neither form.
        for secret in [PSK, &PSK[2..], INLINE_PSK, KEY_OUT, KEY_IN, &KEY_OUT[..16]] {
            assert!(!text.contains(secret), "{secret} in\n{text}");
            assert!(!json.contains(secret), "{secret} in\n{json}");
        }
        let back: Vec<ConnConfig> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, l);
    }

    fn conf(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../conf")
            .join(name)
    }

    #[test]
    fn certificate_authentication_is_shown_per_direction() {
        // The example pair (conf/pki's keys are marked examples: only check-mode loads them).
        let cfg = Config::load_for_check_with_env(&conf("cert-gw-a.toml"), [])
            .unwrap_or_else(|e| panic!("{e}"));
        let l = list(&cfg);
        let k = l[0].ike.as_ref().unwrap();
        assert_eq!(
            (
                k.auth.as_str(),
                k.local_auth.as_str(),
                k.remote_auth.as_str()
            ),
            ("pubkey", "pubkey", "pubkey")
        );
        assert!(!k.psk && k.psk_file.is_none() && k.remote_cert.is_none());
        assert!(k
            .local_cert
            .as_deref()
            .unwrap()
            .ends_with("pki/certs/gw-a.example.pem"));
        assert!(k
            .local_key
            .as_deref()
            .unwrap()
            .ends_with("pki/private/gw-a.example.key"));
        assert_eq!(k.send_cert.as_deref(), Some("ifasked"));
        let text = render(&l);
        for want in [
            "site-b: IKEv2, pubkey auth, active-standby",
            "  local_cert: ",
            "gw-a.example.pem (key ",
            "gw-a.example.key, send_cert ifasked)",
            "  remote_cert: any chaining to ca_dir with identity C=CH, O=ironsec test, \
             CN=gw-b.example",
        ] {
            assert!(text.contains(want), "no {want:?} in\n{text}");
        }
        assert!(!text.contains("psk"), "{text}");

        // Our certificate, the peer's PSK; and a pinned peer certificate.
        let d = Dir::new("mixed");
        let psk = d.write("b.psk", &format!("{PSK}\n"));
        let q = |p: &Path| format!("{:?}", p.to_str().unwrap());
        let toml = format!(
            r#"
[gateway]
tun = "ipsec0"
ca_dir = {ca}

[[connection]]
name = "mixed"
keying = "ike"
local_cert = {cert}
local_key = {key}
remote_auth = "psk"
psk_file = {psk}
send_cert = "always"
local_id = "gw-a.example"
remote_id = "gw-b.example"
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.2.0.0/24"]
tunnels = [ {{ local = "192.0.2.1", remote = "198.51.100.1" }} ]

[[connection]]
name = "pinned"
keying = "ike"
local_auth = "psk"
remote_auth = "pubkey"
remote_cert = {peer}
psk_file = {psk}
local_id = "gw-a.example"
remote_id = "gw-b.example"
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.3.0.0/24"]
tunnels = [ {{ local = "192.0.2.1", remote = "198.51.100.2" }} ]
"#,
            ca = q(&conf("pki/cacerts")),
            cert = q(&conf("pki/certs/gw-a.example.pem")),
            key = q(&conf("pki/private/gw-a.example.key")),
            peer = q(&conf("pki/certs/gw-b.example.pem")),
            psk = q(&psk),
        );
        let p = d.write("gw.toml", &toml);
        let cfg = Config::load_for_check_with_env(&p, []).unwrap_or_else(|e| panic!("{e}"));
        let l = list(&cfg);
        let (m, pin) = (l[0].ike.as_ref().unwrap(), l[1].ike.as_ref().unwrap());
        assert_eq!(m.auth, "pubkey/psk");
        assert_eq!(pin.auth, "psk/pubkey");
        assert!(m.psk && pin.psk);
        assert_eq!(m.send_cert.as_deref(), Some("always"));
        assert!(pin.local_cert.is_none());
        assert!(pin
            .remote_cert
            .as_deref()
            .unwrap()
            .ends_with("pki/certs/gw-b.example.pem"));
        let text = render(&l);
        for want in [
            "mixed: IKEv2, local pubkey / remote psk auth,",
            "pinned: IKEv2, local psk / remote pubkey auth,",
            "gw-b.example.pem (pinned)",
            &format!("  psk_file: {}", psk.display()),
        ] {
            assert!(text.contains(want), "no {want:?} in\n{text}");
        }
        let json = serde_json::to_string(&l).unwrap();
        for secret in [PSK, &PSK[2..]] {
            assert!(!text.contains(secret) && !json.contains(secret));
        }
        let key = std::fs::read_to_string(conf("pki/private/gw-a.example.key")).unwrap();
        for line in key.lines().filter(|l| !l.starts_with('-') && l.len() > 16) {
            assert!(!text.contains(line) && !json.contains(line), "{line}");
        }
    }

    #[test]
    fn eap_tls_connection_is_listed_and_its_mistakes_refused() {
        let d = Dir::new("eaptls");
        let q = |p: &Path| format!("{:?}", p.to_str().unwrap());
        let conn = |extra: &str| {
            format!(
                r#"
[[connection]]
name = "rw-eap-tls"
keying = "ike"
local_cert = {cert}
local_key = {key}
remote_auth = "eap-tls"
local_id = "gw-a.example"
remote_id = "*@tls.example.org"
local_ts = ["10.1.0.0/24"]
pool = "10.98.0.0/24"
tunnels = [ {{ local = "192.0.2.1", remote = "%any" }} ]
{extra}
"#,
                cert = q(&conf("pki/certs/gw-a.example.pem")),
                key = q(&conf("pki/private/gw-a.example.key")),
            )
        };
        let gw = |ca: bool| {
            format!(
                "[gateway]\ntun = \"ipsec0\"\n{}\n",
                if ca {
                    format!("ca_dir = {}", q(&conf("pki/cacerts")))
                } else {
                    String::new()
                }
            )
        };
        let p = d.write("ok.toml", &format!("{}{}", gw(true), conn("")));
        let cfg = Config::load_for_check_with_env(&p, []).unwrap_or_else(|e| panic!("{e}"));
        let l = list(&cfg);
        let k = l[0].ike.as_ref().unwrap();
        assert_eq!(
            (k.auth.as_str(), k.remote_auth.as_str()),
            ("pubkey/eap-tls", "eap-tls")
        );
        let text = render(&l);
        assert!(
            text.contains("rw-eap-tls: IKEv2, local pubkey / remote eap-tls auth"),
            "{text}"
        );
        let refused = |name: &str, toml: String| -> Vec<String> {
            let p = d.write(name, &toml);
            Config::load_for_check_with_env(&p, [])
                .expect_err("refused")
                .0
                .iter()
                .map(|e| e.to_string())
                .collect()
        };
        // No CA to check client certificates against.
        let e = refused("noca.toml", format!("{}{}", gw(false), conn("")));
        assert!(
            e.len() == 1 && e[0].contains("remote_auth") && e[0].contains("gateway.ca_dir"),
            "{e:#?}"
        );
        // A pinned remote_cert, and EAP-TLS offered as our own method.
        let peer = q(&conf("pki/certs/gw-b.example.pem"));
        let e = refused(
            "pinned.toml",
            format!("{}{}", gw(true), conn(&format!("remote_cert = {peer}"))),
        );
        assert!(
            e.iter()
                .any(|e| e.contains("remote_cert") && e.contains("eap-tls")),
            "{e:#?}"
        );
        let e = refused(
            "local.toml",
            format!(
                "{}{}",
                gw(true),
                conn("").replace("remote_auth = \"eap-tls\"", "local_auth = \"eap-tls\"")
            ),
        );
        assert!(
            e.iter()
                .any(|e| e.contains("local_auth") && e.contains("remote-access clients")),
            "{e:#?}"
        );
    }
}
