//! strongSwan as a peer in interop tests: one charon under guard (netns-scripts/strongswan.sh,
//! in a network namespace, all its state in one directory) and the parser of
//! `swanctl --list-sas --pretty`. Used by tests/interop_strongswan.rs, tests/interop_ha.rs
//! and tests/ha_active_standby.rs (strongSwan as the peer of an active-standby pair).
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::{
    ctl_status, ike_of, poll_until, run_timeout, tunnel_up, workspace_root, write_secret, T0,
};

pub fn strongswan_script() -> PathBuf {
    workspace_root().join("netns-scripts/strongswan.sh")
}

// ------------------------------------------------------------------------------------------
// strongSwan under guard

/// How [`StrongSwan::start_with`] starts charon beyond DIR/swanctl.conf; the default is what
/// [`StrongSwan::start`] does.
#[derive(Clone, Copy, Debug, Default)]
pub struct SwOptions<'a> {
    /// strongswan.conf template (the script's STRONGSWAN_TEMPLATE) instead of
    /// conf/strongswan/strongswan.conf.
    pub template: Option<&'a Path>,
    /// charon runs with TZ=UTC: its log times are UTC, like ironsec's.
    pub utc: bool,
}

/// One charon started by netns-scripts/strongswan.sh in namespace `ns` with all its state in
/// `dir`. Dropping it runs `strongswan.sh stop DIR`, which kills that PID only.
pub struct StrongSwan {
    pub ns: String,
    pub dir: PathBuf,
    pub pid: u32,
    stopped: bool,
}

impl StrongSwan {
    /// Writes `swanctl_conf` to DIR/swanctl.conf and starts charon; returns once the config is
    /// loaded.
    pub fn start(ns: &str, dir: &Path, swanctl_conf: &str) -> StrongSwan {
        StrongSwan::start_with(ns, dir, swanctl_conf, SwOptions::default())
    }

    /// Like [`StrongSwan::start`], with another strongswan.conf template and/or UTC log times.
    pub fn start_with(ns: &str, dir: &Path, swanctl_conf: &str, opts: SwOptions) -> StrongSwan {
        fs::create_dir_all(dir).unwrap();
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).unwrap();
        let conf = dir.join("swanctl.conf");
        write_secret(&conf, swanctl_conf);
        let mut cmd = Command::new("bash");
        cmd.arg(strongswan_script()).arg("start").arg(ns).arg(dir);
        if let Some(template) = opts.template {
            cmd.env("STRONGSWAN_TEMPLATE", template);
        }
        if opts.utc {
            cmd.env("TZ", "UTC");
        }
        let out = run_timeout(&mut cmd, Duration::from_secs(30));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "strongswan.sh start {ns} {} failed ({}); are strongswan-charon, strongswan-swanctl, \
             libcharon-extra-plugins, libstrongswan-extra-plugins and \
             libstrongswan-standard-plugins installed (tests/install-deps.sh)?\nstdout:\n{stdout}\nstderr:\n{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let pid: u32 = stdout
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("strongswan.sh start printed no PID: {stdout}"));
        StrongSwan {
            ns: ns.to_string(),
            dir: dir.to_path_buf(),
            pid,
            stopped: false,
        }
    }

    /// `swanctl CMD ARGS... --uri <this instance>`, whatever its exit status.
    pub fn swanctl(&self, args: &[&str]) -> Output {
        run_timeout(
            Command::new("bash")
                .arg(strongswan_script())
                .arg("swanctl")
                .arg(&self.dir)
                .args(args),
            Duration::from_secs(30),
        )
    }

    /// Like [`StrongSwan::swanctl`], panicking unless it succeeds.
    pub fn swanctl_ok(&self, args: &[&str]) -> String {
        let out = self.swanctl(args);
        assert!(
            out.status.success(),
            "swanctl {args:?} failed ({}):\n{}{}\ncharon log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// strongSwan's IKE SAs as `swanctl --list-sas --pretty` shows them.
    pub fn sas(&self) -> Vec<SwIke> {
        parse_list_sas(&self.swanctl_ok(&["--list-sas", "--pretty"]))
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(self.dir.join("charon.log")).unwrap_or_default()
    }

    /// Stops charon cleanly (SIGTERM by PID, via the script).
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let out = run_timeout(
            Command::new("bash")
                .arg(strongswan_script())
                .arg("stop")
                .arg(&self.dir),
            Duration::from_secs(20),
        );
        if !out.status.success() {
            eprintln!(
                "strongswan.sh stop {}: {}",
                self.dir.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// `kill -9` by PID: charon gets no chance to send a DELETE. Waits until it is gone.
    pub fn kill9(&mut self) {
        // SAFETY: kill(2) takes no pointers; `pid` is the charon this guard started.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGKILL);
        }
        let pid = self.pid;
        let gone = poll_until(Duration::from_secs(10), || !pid_alive(pid));
        assert!(gone, "charon {pid} still alive 10 s after SIGKILL");
        self.stopped = true;
    }
}

impl Drop for StrongSwan {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- strongSwan in {} ({}/charon.log) -----\n{}",
                self.ns,
                self.dir.display(),
                self.log_text()
            );
        }
        self.stop();
    }
}

/// The process exists and is not a zombie (charon is not our child, so we cannot reap it).
pub fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

// ------------------------------------------------------------------------------------------
// swanctl --list-sas --pretty

/// A CHILD_SA as strongSwan sees it.
#[derive(Clone, Debug, Default)]
pub struct SwChild {
    pub name: String,
    pub state: String,
    /// strongSwan's reqid (the same for CHILD_SAs with the same selectors).
    pub reqid: String,
    /// strongSwan's inbound SPI (= ironsec's outbound), hex without 0x.
    pub spi_in: String,
    pub spi_out: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    /// The ESP suite in strongSwan proposal syntax (`aes256gcm16`, with `-ecp384` after a
    /// rekey with PFS).
    pub algorithms: String,
    pub local_ts: Vec<String>,
    pub remote_ts: Vec<String>,
}

/// An IKE SA as strongSwan sees it.
#[derive(Clone, Debug, Default)]
pub struct SwIke {
    pub name: String,
    pub state: String,
    /// strongSwan initiated this IKE SA.
    pub initiator: bool,
    pub spi_i: String,
    pub spi_r: String,
    /// In strongSwan proposal syntax (`aes128gcm16-prfsha256-x25519`).
    pub algorithms: String,
    pub children: Vec<SwChild>,
    /// Virtual IPs this end got (`local-vips`: a remote-access client's lease) and handed out
    /// (`remote-vips`: a gateway's view of its client).
    pub local_vips: Vec<String>,
    pub remote_vips: Vec<String>,
    /// The peer's address and port as strongSwan last saw them (after NAT).
    pub remote_host: String,
    pub remote_port: String,
    /// The peer's IKE identity, and its EAP identity when EAP was used (empty otherwise).
    pub remote_id: String,
    pub remote_eap_id: String,
}

/// A section of swanctl's pretty output: `key = value`, `key = [ items ]`, `key { ... }`.
#[derive(Clone, Debug)]
enum Vici {
    Str(String),
    List(Vec<String>),
    Sec(Vec<(String, Vici)>),
}

impl Vici {
    fn get(&self, key: &str) -> Option<&Vici> {
        match self {
            Vici::Sec(v) => v.iter().find(|(k, _)| k == key).map(|(_, x)| x),
            _ => None,
        }
    }

    fn str(&self, key: &str) -> String {
        match self.get(key) {
            Some(Vici::Str(s)) => s.clone(),
            _ => String::new(),
        }
    }

    fn num(&self, key: &str) -> u64 {
        self.str(key).parse().unwrap_or(0)
    }

    fn list(&self, key: &str) -> Vec<String> {
        match self.get(key) {
            Some(Vici::List(v)) => v.clone(),
            _ => Vec::new(),
        }
    }

    fn entries(&self) -> &[(String, Vici)] {
        match self {
            Vici::Sec(v) => v,
            _ => &[],
        }
    }
}

/// Parses swanctl's `--pretty` output into its top-level sections (`list-sa event`, ...).
fn parse_vici_pretty(text: &str) -> Vec<(String, Vici)> {
    let mut stack: Vec<(String, Vec<(String, Vici)>)> = vec![(String::new(), Vec::new())];
    let mut list: Option<(String, Vec<String>)> = None;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some((key, items)) = list.as_mut() {
            if line == "]" {
                let (key, items) = (std::mem::take(key), std::mem::take(items));
                stack.last_mut().unwrap().1.push((key, Vici::List(items)));
                list = None;
            } else {
                items.push(line.to_string());
            }
            continue;
        }
        if line == "}" {
            let (name, body) = stack.pop().expect("unbalanced swanctl output");
            stack.last_mut().unwrap().1.push((name, Vici::Sec(body)));
        } else if let Some(name) = line.strip_suffix(" {") {
            stack.push((name.to_string(), Vec::new()));
        } else if let Some(key) = line.strip_suffix(" = [") {
            list = Some((key.to_string(), Vec::new()));
        } else if let Some((k, v)) = line.split_once(" = ") {
            stack
                .last_mut()
                .unwrap()
                .1
                .push((k.to_string(), Vici::Str(v.to_string())));
        }
        // Anything else (swanctl's own messages) is not part of a section.
    }
    assert_eq!(stack.len(), 1, "unbalanced swanctl output:\n{text}");
    stack.pop().unwrap().1
}

/// The cipher (and, for a non-AEAD one, the integrity algorithm) in ironsec's keywords.
fn sw_encr(v: &Vici) -> String {
    let encr = match (v.str("encr-alg").as_str(), v.str("encr-keysize").as_str()) {
        ("AES_GCM_16", k) => format!("aes{k}gcm16"),
        ("AES_CBC", k) => format!("aes{k}"),
        ("CHACHA20_POLY1305", _) => "chacha20poly1305".to_string(),
        (a, k) => format!("{a}/{k}"),
    };
    match v.str("integ-alg").as_str() {
        "" => encr,
        "HMAC_SHA1_96" => format!("{encr}-sha1"),
        "HMAC_SHA2_256_128" => format!("{encr}-sha256"),
        "HMAC_SHA2_384_192" => format!("{encr}-sha384"),
        "HMAC_SHA2_512_256" => format!("{encr}-sha512"),
        i => format!("{encr}-{i}"),
    }
}

fn sw_group(g: &str) -> String {
    match g {
        "CURVE_25519" => "x25519".into(),
        "ECP_256" => "ecp256".into(),
        "ECP_384" => "ecp384".into(),
        "ECP_521" => "ecp521".into(),
        // MODP_2048 .. MODP_8192, MODP_1024, MODP_1536; MODP_2048_256 is RFC 5114's group 24.
        "MODP_2048_256" => "modp2048s256".into(),
        g if g.starts_with("MODP_") => format!("modp{}", &g["MODP_".len()..]),
        g => g.to_string(),
    }
}

fn sw_prf(p: &str) -> String {
    match p.strip_prefix("PRF_HMAC_SHA2_") {
        Some(bits) => format!("prfsha{bits}"),
        None if p == "PRF_HMAC_SHA1" => "prfsha1".to_string(),
        None => p.to_string(),
    }
}

/// The IKE SAs (with their CHILD_SAs) of `swanctl --list-sas --pretty` output.
pub fn parse_list_sas(text: &str) -> Vec<SwIke> {
    let mut out = Vec::new();
    for (section, body) in parse_vici_pretty(text) {
        if section != "list-sa event" {
            continue;
        }
        for (name, ike) in body.entries() {
            let mut children = Vec::new();
            if let Some(cs) = ike.get("child-sas") {
                for (_, c) in cs.entries() {
                    let dh = c.str("dh-group");
                    let mut algorithms = sw_encr(c);
                    if !dh.is_empty() {
                        algorithms = format!("{algorithms}-{}", sw_group(&dh));
                    }
                    children.push(SwChild {
                        name: c.str("name"),
                        state: c.str("state"),
                        reqid: c.str("reqid"),
                        spi_in: c.str("spi-in"),
                        spi_out: c.str("spi-out"),
                        bytes_in: c.num("bytes-in"),
                        bytes_out: c.num("bytes-out"),
                        packets_in: c.num("packets-in"),
                        packets_out: c.num("packets-out"),
                        algorithms,
                        local_ts: c.list("local-ts"),
                        remote_ts: c.list("remote-ts"),
                    });
                }
            }
            out.push(SwIke {
                name: name.clone(),
                state: ike.str("state"),
                initiator: ike.str("initiator") == "yes",
                spi_i: ike.str("initiator-spi"),
                spi_r: ike.str("responder-spi"),
                algorithms: format!(
                    "{}-{}-{}",
                    sw_encr(ike),
                    sw_prf(&ike.str("prf-alg")),
                    sw_group(&ike.str("dh-group"))
                ),
                children,
                local_vips: ike.list("local-vips"),
                remote_vips: ike.list("remote-vips"),
                remote_host: ike.str("remote-host"),
                remote_port: ike.str("remote-port"),
                remote_id: ike.str("remote-id"),
                remote_eap_id: ike.str("remote-eap-id"),
            });
        }
    }
    out
}

/// "0x1234abcd" -> "1234abcd" (strongSwan prints SPIs as bare hex).
pub fn bare(spi: &str) -> String {
    spi.trim_start_matches("0x").to_ascii_lowercase()
}

/// strongSwan's ESTABLISHED IKE SA of connection `conn` that is ironsec's first tunnel's
/// (status `st`): same SPIs, with an INSTALLED CHILD_SA receiving what ironsec sends.
pub fn matching_ike(st: &serde_json::Value, sas: &[SwIke], conn: &str) -> Option<SwIke> {
    let ike = ike_of(st)?;
    let (i, r) = (bare(ike["spi_i"].as_str()?), bare(ike["spi_r"].as_str()?));
    let out = bare(st.pointer(&format!("{T0}/outbound/spi"))?.as_str()?);
    sas.iter()
        .find(|s| {
            s.name == conn
                && s.state == "ESTABLISHED"
                && s.spi_i == i
                && s.spi_r == r
                && s.children
                    .iter()
                    .any(|c| c.state == "INSTALLED" && c.spi_in == out)
        })
        .cloned()
}

/// Waits (bounded) until the ironsecd answering on `socket` has its tunnel up and strongSwan
/// `sw` the matching IKE SA of connection `conn` ([`matching_ike`]); returns how long that
/// took, ironsec's status and strongSwan's SA, or both views when they did not meet in time.
pub fn wait_both_up(
    socket: &Path,
    sw: &StrongSwan,
    conn: &str,
    timeout: Duration,
) -> Result<(Duration, serde_json::Value, SwIke), String> {
    let t0 = std::time::Instant::now();
    let mut last: (serde_json::Value, Vec<SwIke>) = (serde_json::Value::Null, Vec::new());
    let ok = poll_until(timeout, || {
        let Ok(st) = ctl_status(socket) else {
            return false;
        };
        let sas = sw.sas();
        let up = tunnel_up(&st) && matching_ike(&st, &sas, conn).is_some();
        last = (st, sas);
        up
    });
    let (st, sas) = last;
    match matching_ike(&st, &sas, conn).filter(|_| ok) {
        Some(ike) => Ok((t0.elapsed(), st, ike)),
        None => Err(format!(
            "not up on both sides within {timeout:?}\nironsec: {st:#}\nstrongSwan: {sas:#?}"
        )),
    }
}
