//! Daemon configurations: generated IKE connections, the examples under conf/ rewritten key by
//! key, PSK and static key files, random bytes and hex.

use std::fs::{self, File};
use std::io::Read;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{workspace_root, TempDir};

/// One `[[connection]]` of a generated config.
pub struct Conn<'a> {
    pub name: &'a str,
    pub local_id: &'a str,
    pub remote_id: &'a str,
    pub psk_file: &'a Path,
    pub local_ts: &'a str,
    pub remote_ts: &'a str,
    pub local: Ipv4Addr,
    pub remote: Ipv4Addr,
    pub start_action: &'a str,
    /// More `key = value` lines.
    pub extra: &'a str,
}

pub fn conn_toml(c: &Conn) -> String {
    format!(
        r#"
[[connection]]
name = "{name}"
keying = "ike"
local_id = "{lid}"
remote_id = "{rid}"
psk_file = {psk}
local_ts = ["{lts}"]
remote_ts = ["{rts}"]
ike_proposals = ["aes128gcm16-prfsha256-x25519"]
esp_proposals = ["aes128gcm16"]
start_action = "{start}"
dpd_interval = 5
retransmit_timeout = 0.5
retransmit_tries = 3
{extra}
tunnels = [ {{ local = "{local}", remote = "{remote}" }} ]
"#,
        name = c.name,
        lid = c.local_id,
        rid = c.remote_id,
        psk = toml_str(c.psk_file.to_str().unwrap()),
        lts = c.local_ts,
        rts = c.remote_ts,
        start = c.start_action,
        extra = c.extra,
        local = c.local,
        remote = c.remote,
    )
}

pub fn gateway_toml(socket: &Path, extra: &str) -> String {
    format!(
        "[gateway]\ntun = \"ipsec0\"\ntun_mtu = 1400\ncontrol_socket = {}\nworkers = 2\n{extra}\n",
        toml_str(socket.to_str().unwrap())
    )
}

/// Writes a fresh random 32-byte PSK (hex) to DIR/NAME, mode 0600.
pub fn write_psk(dir: &TempDir, name: &str) -> PathBuf {
    let p = dir.join(name);
    write_secret(&p, format!("0x{}\n", hex(&random_bytes(32))));
    p
}

/// Writes a secret file (PSK, keys, a config with secrets) and makes it mode 0600, as an
/// operator keeps them.
pub fn write_secret(path: &Path, contents: impl AsRef<[u8]>) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

// ------------------------------------------------------------------------------------------
// Keys and configuration

pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut v)
        .unwrap();
    v
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Key material length of a suite name: an AEAD's key || 4-byte salt, AES-CBC's key || HMAC key.
pub fn keymat_len(suite: &str) -> usize {
    suite
        .parse::<ironsec_esp::Suite>()
        .unwrap_or_else(|e| panic!("{e}"))
        .keymat_len()
}

/// The SPIs of conf/static-gw-a.toml: gwA -> gwB and gwB -> gwA.
pub const SPI_A_TO_B: u32 = 0xc000_0102;
pub const SPI_B_TO_A: u32 = 0xc000_0201;

/// Writes a keys file (mode 0600) for both SPIs.
pub fn write_keys_file(path: &Path, entries: &[(u32, &[u8])]) {
    let mut s = String::from("# written by ironsec integration tests\n");
    for (spi, km) in entries {
        s.push_str(&format!("0x{spi:08x} = \"{}\"\n", hex(km)));
    }
    write_secret(path, s);
}

/// Replaces the value of every `key = ...` line of a swanctl.conf (all sections), keeping the
/// indentation; panics if the key is not there so template drift is noticed (`what` names the
/// template in that message).
pub fn rewrite_swanctl_template(text: &str, what: &str, replacements: &[(&str, String)]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for (key, value) in replacements {
        let mut found = false;
        for l in lines.iter_mut() {
            let t = l.trim_start();
            if t.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
            {
                let indent = &l[..l.len() - t.len()];
                *l = format!("{indent}{key} = {value}");
                found = true;
            }
        }
        assert!(found, "key `{key}` not found in {what}");
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Rewrites `key = ...` lines (the first line whose trimmed text starts with `key =` or
/// `key=`) of a TOML text; panics if a key is not found so example drift is noticed.
pub fn rewrite_toml_lines(text: &str, replacements: &[(&str, String)]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for (key, value) in replacements {
        let idx = lines
            .iter()
            .position(|l| {
                let t = l.trim_start();
                t.strip_prefix(key)
                    .map(|r| r.trim_start().starts_with('='))
                    .unwrap_or(false)
            })
            .unwrap_or_else(|| panic!("key `{key}` not found in example config"));
        lines[idx] = format!("{key} = {value}");
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

pub fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn example_config(name: &str) -> String {
    let p = workspace_root().join("conf").join(name);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}
