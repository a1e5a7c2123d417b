//! The config file as written: serde types that refuse unknown keys. [`super::validate`] turns
//! them into the checked model the daemon runs on.

use std::path::PathBuf;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileSchema {
    #[serde(default)]
    pub gateway: GatewaySchema,
    #[serde(default)]
    pub connection: Vec<ConnectionSchema>,
}

fn default_tun() -> String {
    "ipsec0".into()
}
fn default_tun_mtu() -> u16 {
    1400
}
fn default_txqueuelen() -> u32 {
    1000
}
fn default_port() -> u16 {
    4500
}
fn default_ike_port() -> u16 {
    500
}
fn default_control_socket() -> PathBuf {
    "/run/ironsec/ironsecd.sock".into()
}
fn default_replay_window() -> usize {
    1024
}
fn default_socket_buffer() -> usize {
    4 << 20
}
fn default_batch() -> usize {
    64
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct GatewaySchema {
    #[serde(default = "default_tun")]
    pub tun: String,
    #[serde(default = "default_tun_mtu")]
    pub tun_mtu: u16,
    #[serde(default = "default_txqueuelen")]
    pub tun_txqueuelen: u32,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "default_ike_port")]
    pub ike_port: u16,
    #[serde(default = "default_control_socket")]
    pub control_socket: PathBuf,
    #[serde(default)]
    pub workers: usize,
    #[serde(default = "default_replay_window")]
    pub replay_window: usize,
    #[serde(default = "default_socket_buffer")]
    pub socket_buffer: usize,
    #[serde(default = "default_batch")]
    pub batch: usize,
}

impl Default for GatewaySchema {
    fn default() -> Self {
        GatewaySchema {
            tun: default_tun(),
            tun_mtu: default_tun_mtu(),
            tun_txqueuelen: default_txqueuelen(),
            port: default_port(),
            ike_port: default_ike_port(),
            control_socket: default_control_socket(),
            workers: 0,
            replay_window: default_replay_window(),
            socket_buffer: default_socket_buffer(),
            batch: default_batch(),
        }
    }
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KeyingKind {
    /// Manual SAs: SPIs and keys from the config, like `ip xfrm state add`.
    Static,
    /// IKEv2 with a pre-shared key.
    Ike,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StartAction {
    /// Initiate at start, and again whenever the IKE SA goes away.
    Start,
    /// Wait for the peer to initiate.
    None,
}

/// One schema for both keyings: which keys apply depends on `keying`, and validation says
/// which ones are missing or do not belong.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSchema {
    pub name: String,
    pub keying: KeyingKind,
    pub local_ts: Vec<String>,
    pub remote_ts: Vec<String>,
    pub tunnels: Vec<TunnelSchema>,
    // keying = "static"
    pub esp: Option<String>,
    pub esn: Option<bool>,
    pub keys_file: Option<PathBuf>,
    // keying = "ike"
    pub local_id: Option<String>,
    pub remote_id: Option<String>,
    pub psk: Option<String>,
    pub psk_file: Option<PathBuf>,
    pub ike_proposals: Option<Vec<String>>,
    pub esp_proposals: Option<Vec<String>>,
    pub start_action: Option<StartAction>,
    /// Seconds of inbound silence before a liveness check; 0 disables.
    pub dpd_interval: Option<u64>,
    /// CHILD_SA rekey after this many seconds (hard limit: 10% later).
    pub rekey_time: Option<u64>,
    /// IKE SA rekey after this many seconds.
    pub ike_rekey_time: Option<u64>,
    /// Force UDP encapsulation (the fast path speaks ESP-in-UDP only).
    pub encap: Option<bool>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct TunnelSchema {
    pub local: String,
    pub remote: String,
    pub remote_port: Option<u16>,
    pub spi_out: Option<Spi>,
    pub spi_in: Option<Spi>,
}

/// An SPI written as `"0xc0000102"` (as `ip xfrm` and swanctl print them) or as an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spi(pub u32);

impl<'de> Deserialize<'de> for Spi {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Spi, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Spi;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an SPI: \"0x\" and up to 8 hex digits, or an integer")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Spi, E> {
                u32::try_from(v)
                    .map(Spi)
                    .map_err(|_| E::custom("SPI does not fit in 32 bits"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Spi, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom("SPI cannot be negative"))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Spi, E> {
                parse_spi(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

pub fn parse_spi(v: &str) -> Result<Spi, String> {
    let v = v.trim();
    let r = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) if !h.is_empty() && h.len() <= 8 => u32::from_str_radix(h, 16),
        Some(_) => {
            return Err(format!(
                "'{v}' is not an SPI: expected 0x and 1 to 8 hex digits"
            ))
        }
        None => v.parse::<u32>(),
    };
    r.map(Spi)
        .map_err(|_| format!("'{v}' is not an SPI: expected 0x and 1 to 8 hex digits"))
}
