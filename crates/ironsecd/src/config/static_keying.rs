//! `keying = "static"`: manual SAs with SPIs and keys from a key file.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use ironsec_esp::Suite;

use super::error::ConfigError;
use super::keys::{self, Keymat};
use super::schema::ConnectionSchema;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticKeying {
    pub suite: Suite,
    pub esn: bool,
    /// Where the keys came from: `ironsecctl list-conns` names the file, never the keys.
    pub keys_file: std::path::PathBuf,
    pub tunnels: Vec<StaticTunnel>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticTunnel {
    pub local: IpAddr,
    pub remote: SocketAddr,
    pub spi_out: u32,
    pub spi_in: u32,
    pub key_out: Keymat,
    pub key_in: Keymat,
}

/// What a suite's key material is made of, in the order the key file holds it (RFC 4106
/// §8.1 / RFC 7634 §2: key then salt; RFC 7296 §2.17: encryption key then integrity key).
pub fn keymat_layout(suite: Suite) -> String {
    match suite.integ() {
        None => format!("{}-byte key + 4-byte salt", suite.key_len()),
        Some(integ) => format!(
            "{}-byte AES key + {}-byte HMAC key",
            suite.key_len(),
            integ.key_len()
        ),
    }
}

pub(super) fn validate(
    file: &Path,
    key: &str,
    c: ConnectionSchema,
    port: u16,
    errs: &mut Vec<ConfigError>,
) -> Option<StaticKeying> {
    super::refuse_keys(
        file,
        key,
        &[
            ("local_id", c.local_id.is_some()),
            ("remote_id", c.remote_id.is_some()),
            ("psk", c.psk.is_some()),
            ("psk_file", c.psk_file.is_some()),
            ("ike_proposals", c.ike_proposals.is_some()),
            ("esp_proposals", c.esp_proposals.is_some()),
            ("allow_legacy_crypto", c.allow_legacy_crypto.is_some()),
            ("start_action", c.start_action.is_some()),
            ("dpd_interval", c.dpd_interval.is_some()),
            ("nat_keepalive", c.nat_keepalive.is_some()),
            ("close_action", c.close_action.is_some()),
            ("mode", c.mode.is_some()),
            ("failover_after", c.failover_after.is_some()),
            ("preempt", c.preempt.is_some()),
            ("preempt_hold", c.preempt_hold.is_some()),
            ("dpd_timeout", c.dpd_timeout.is_some()),
            ("retransmit_timeout", c.retransmit_timeout.is_some()),
            ("retransmit_tries", c.retransmit_tries.is_some()),
            ("retransmit_base", c.retransmit_base.is_some()),
            ("rekey_time", c.rekey_time.is_some()),
            ("ike_rekey_time", c.ike_rekey_time.is_some()),
            ("reauth_time", c.reauth_time.is_some()),
            ("rekey_bytes", c.rekey_bytes.is_some()),
            ("life_bytes", c.life_bytes.is_some()),
            ("rekey_packets", c.rekey_packets.is_some()),
            ("life_packets", c.life_packets.is_some()),
            ("encap", c.encap.is_some()),
        ],
        "static",
        errs,
    );
    let suite = match c.esp.as_deref().map(str::parse::<Suite>) {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            errs.push(ConfigError::new(file, format!("{key}.esp"), e.to_string()));
            None
        }
        None => {
            errs.push(ConfigError::new(
                file,
                format!("{key}.esp"),
                "required with keying = \"static\"",
            ));
            None
        }
    };
    let esn = c.esn.unwrap_or(true);
    if !esn {
        // A manually keyed SA cannot be rekeyed: 32-bit sequence numbers would run out.
        errs.push(ConfigError::new(
            file,
            format!("{key}.esn"),
            "static keying requires esn = true (a manually keyed SA cannot be rekeyed when its 32-bit sequence space runs out)",
        ));
    }
    let Some(keys_file) = c.keys_file.clone() else {
        errs.push(ConfigError::new(
            file,
            format!("{key}.keys_file"),
            "required with keying = \"static\"",
        ));
        return None;
    };
    let allow_readable = c.allow_readable_secret_file.unwrap_or(false);
    let keys = keys::check_secret_file(
        file,
        &format!("{key}.keys_file"),
        &keys_file,
        allow_readable,
    )
    .map_err(|e| vec![e])
    .and_then(|()| keys::read_keys(&keys_file));
    let keys = match keys {
        Ok(k) => Some(k),
        Err(mut e) => {
            // Problems with the file as a whole point at the config key too, so the operator
            // knows which connection it is; problems with one line name the SPI in the file.
            for x in &mut e {
                if x.key.is_empty() {
                    x.reason = format!("{}: {}", keys_file.display(), x.reason);
                    x.file = file.to_path_buf();
                    x.key = format!("{key}.keys_file");
                }
            }
            errs.append(&mut e);
            None
        }
    };
    let mut tunnels = Vec::new();
    for (j, t) in c.tunnels.into_iter().flatten().enumerate() {
        let tk = format!("{key}.tunnels[{j}]");
        let (Some(spi_out), Some(spi_in)) = (t.spi_out, t.spi_in) else {
            errs.push(ConfigError::new(
                file,
                &tk,
                "static tunnels need spi_out and spi_in",
            ));
            continue;
        };
        let Some((local, remote)) =
            super::tunnel_addrs(file, &tk, t.local.as_deref(), t.remote.as_deref(), errs)
        else {
            continue;
        };
        for (name, spi) in [("spi_out", spi_out.0), ("spi_in", spi_in.0)] {
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
                    format!("no key for SPI 0x{spi:08x} in {}", keys_file.display()),
                ));
                return None;
            };
            if k.len() != suite.keymat_len() {
                errs.push(ConfigError::new(
                    &keys_file,
                    format!("0x{spi:08x}"),
                    format!(
                        "{suite} needs {} bytes of key material ({}), this key has {}",
                        suite.keymat_len(),
                        keymat_layout(suite),
                        k.len()
                    ),
                ));
                return None;
            }
            Some(k.clone())
        };
        let key_out = key_for("spi_out", spi_out.0);
        let key_in = key_for("spi_in", spi_in.0);
        if let (Some(key_out), Some(key_in)) = (key_out, key_in) {
            tunnels.push(StaticTunnel {
                local,
                remote: SocketAddr::new(remote, t.remote_port.unwrap_or(port)),
                spi_out: spi_out.0,
                spi_in: spi_in.0,
                key_out,
                key_in,
            });
        }
    }
    Some(StaticKeying {
        suite: suite?,
        esn,
        keys_file,
        tunnels,
    })
}
