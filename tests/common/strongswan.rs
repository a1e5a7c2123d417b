//! strongSwan as a peer in interop tests: one charon under guard (netns-scripts/strongswan.sh,
//! in a network namespace, all its state in one directory) and the parser of
//! `swanctl --list-sas --pretty`. Used by tests/interop_strongswan.rs, tests/interop_ha.rs
//! and tests/ha_active_standby.rs (strongSwan as the peer of an active-standby pair).
//!
//! The strongSwan lab ([`SwLab`], [`Setup`]) of tests/interop_strongswan.rs and
//! tests/interop_ipv6.rs lives here too: ironsecd on gwA from conf/strongswan/ironsec-gw-a.toml
//! and strongSwan on gwB from conf/strongswan/swanctl.conf, both edited per test, over the
//! IPv4 topology or (`SwLab::new_ipv6`) the same one with IPv6 addresses; with the checks of
//! both sides' views and counters and the tshark helpers that decrypt ESP with the keys
//! strongSwan logged.
#![allow(dead_code)]

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use super::{
    ctl_status, example_config, hex, ike_of, log_line_time, ns_cmd, poll_until, random_bytes,
    require_root, rewrite_toml_lines, run_ok, run_timeout, toml_str, tunnel_up, unique_prefix,
    workspace_root, write_secret, Daemon, TempDir, Topology, T0,
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

// ------------------------------------------------------------------------------------------
// The strongSwan lab

/// strongSwan's names in conf/strongswan/swanctl.conf: the connection and its CHILD_SA.
pub const SW_CONN: &str = "gw-a";
pub const SW_CHILD: &str = "site-a";

/// How long an IKE_SA_INIT + IKE_AUTH between the two may take (both answer in milliseconds).
pub const UP_TIMEOUT: Duration = Duration::from_secs(15);

/// The shared rewrite ([`super::rewrite_swanctl_template`]) for this file's template.
pub fn rewrite_swanctl(text: &str, replacements: &[(&str, String)]) -> String {
    super::rewrite_swanctl_template(text, "conf/strongswan/swanctl.conf", replacements)
}

/// A TOML array of strings.
pub fn toml_array(v: &[&str]) -> String {
    let items: Vec<String> = v.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", items.join(", "))
}

/// What one test runs: the two configs as edits of conf/strongswan/*.
#[derive(Clone, Debug)]
pub struct Setup {
    /// `key = value` rewrites of conf/strongswan/ironsec-gw-a.toml (value in TOML syntax).
    pub ironsec: Vec<(&'static str, String)>,
    /// Lines appended to the [[connection]] (keys the example does not set).
    pub ironsec_extra: Vec<String>,
    /// Rewrites of conf/strongswan/swanctl.conf (every line with that key).
    pub swanctl: Vec<(&'static str, String)>,
    /// Replaces the swanctl.conf text after the rewrites (e.g. a second child).
    pub swanctl_edit: Option<fn(String) -> String>,
    /// A different PSK for strongSwan (wrong PSK test).
    pub sw_psk: Option<String>,
    /// Edits conf/strongswan/strongswan.conf for this test (e.g. charon.fragment_size).
    pub sw_settings: Option<fn(String) -> String>,
}

impl Setup {
    /// ironsec initiates (`start_action = "start"`), strongSwan responds: the examples as is.
    pub fn ironsec_initiates() -> Setup {
        Setup {
            ironsec: vec![("start_action", toml_str("start"))],
            ironsec_extra: vec!["retransmit_timeout = 0.5".into()],
            swanctl: Vec::new(),
            swanctl_edit: None,
            sw_psk: None,
            sw_settings: None,
        }
    }

    /// strongSwan initiates (`swanctl --initiate`), ironsec waits (`start_action = "none"`).
    pub fn strongswan_initiates() -> Setup {
        let mut s = Setup::ironsec_initiates();
        s.ironsec = vec![("start_action", toml_str("none"))];
        s
    }

    /// The tunnel's outer addresses: ironsec's `tunnels` (local `a`, remote `b`) and
    /// strongSwan's `local_addrs` (`b`) and `remote_addrs` (`a`), IPv4 or IPv6.
    pub fn endpoints(mut self, a: IpAddr, b: IpAddr) -> Setup {
        self.ironsec.push((
            "tunnels",
            format!("[ {{ local = \"{a}\", remote = \"{b}\" }} ]"),
        ));
        self.swanctl.push(("local_addrs", b.to_string()));
        self.swanctl.push(("remote_addrs", a.to_string()));
        self
    }

    /// The CHILD_SA's selectors: gwA's (ironsec) side `a`, gwB's (strongSwan) side `b`; one
    /// or more prefixes of either family each, all in the one CHILD_SA.
    pub fn selectors(mut self, a: &[&str], b: &[&str]) -> Setup {
        self.ironsec.push(("local_ts", toml_array(a)));
        self.ironsec.push(("remote_ts", toml_array(b)));
        self.swanctl.push(("local_ts", b.join(", ")));
        self.swanctl.push(("remote_ts", a.join(", ")));
        self
    }

    /// The same IKE and ESP proposals on both sides.
    pub fn proposals(mut self, ike: &str, esp: &str) -> Setup {
        self.ironsec.push(("ike_proposals", toml_array(&[ike])));
        self.ironsec.push(("esp_proposals", toml_array(&[esp])));
        self.swanctl.push(("proposals", ike.to_string()));
        self.swanctl.push(("esp_proposals", esp.to_string()));
        self
    }
}

/// Field order matters: ironsecd and charon stop before the namespaces go, the directory
/// (logs, kept on failure) last.
pub struct SwLab {
    pub ironsec: Option<Daemon>,
    pub sw: Option<StrongSwan>,
    pub topo: Topology,
    pub psk: String,
    pub cfg_a: PathBuf,
    pub sock_a: PathBuf,
    pub sw_dir: PathBuf,
    pub starts: usize,
    pub dir: TempDir,
}

impl SwLab {
    /// The topology and a fresh PSK; nothing runs yet.
    pub fn new() -> SwLab {
        SwLab::with_topology(Topology::up)
    }

    /// The topology with the IPv6 addresses of docs/plan-issue-26-ipv6.md section 4 beside the
    /// IPv4 ones ([`Topology::add_ipv6`]). Without `v4_wan` the WAN link keeps only its IPv6
    /// addresses, so a tunnel over it cannot be anything but IPv6.
    pub fn new_ipv6(v4_wan: bool) -> SwLab {
        SwLab::with_topology(|p| {
            let t = Topology::up(p);
            t.add_ipv6();
            if !v4_wan {
                t.remove_wan_ipv4();
            }
            t
        })
    }

    fn with_topology(up: impl FnOnce(&str) -> Topology) -> SwLab {
        require_root();
        let prefix = unique_prefix();
        let dir = TempDir::new(&prefix);
        let topo = up(&prefix);
        SwLab {
            ironsec: None,
            sw: None,
            psk: format!("0x{}", hex(&random_bytes(32))),
            cfg_a: dir.join("ironsec-gw-a.toml"),
            sock_a: dir.join("a.sock"),
            sw_dir: dir.join("strongswan"),
            starts: 0,
            topo,
            dir,
        }
    }

    /// Starts strongSwan (first, as a responder must be) and then ironsecd as `s` says.
    pub fn start(s: &Setup) -> SwLab {
        let mut lab = SwLab::new();
        lab.start_strongswan(s);
        lab.start_ironsec(s);
        lab
    }

    pub fn start_strongswan(&mut self, s: &Setup) {
        let psk = s.sw_psk.clone().unwrap_or_else(|| self.psk.clone());
        let mut rw = vec![("secret", psk)];
        rw.extend(s.swanctl.iter().cloned());
        let mut text = rewrite_swanctl(&example_config("strongswan/swanctl.conf"), &rw);
        if let Some(f) = s.swanctl_edit {
            text = f(text);
        }
        let template = s.sw_settings.map(|edit| {
            let t = self.dir.join("strongswan.conf.template");
            fs::write(&t, edit(example_config("strongswan/strongswan.conf"))).unwrap();
            t
        });
        let opts = SwOptions {
            template: template.as_deref(),
            ..SwOptions::default()
        };
        self.sw = Some(StrongSwan::start_with(
            &self.topo.gw_b,
            &self.sw_dir,
            &text,
            opts,
        ));
    }

    pub fn start_ironsec(&mut self, s: &Setup) {
        let psk = self.dir.join("site-b.psk");
        write_secret(&psk, format!("{}\n", self.psk));
        let mut rw = vec![
            ("control_socket", toml_str(self.sock_a.to_str().unwrap())),
            ("psk_file", toml_str(psk.to_str().unwrap())),
        ];
        rw.extend(s.ironsec.iter().cloned());
        let mut text = rewrite_toml_lines(&example_config("strongswan/ironsec-gw-a.toml"), &rw);
        for l in &s.ironsec_extra {
            text.push_str(l);
            text.push('\n');
        }
        self.start_ironsec_text(&text);
    }

    /// Starts ironsecd with `text` as its whole config (which names the lab's control socket
    /// and PSK file, as [`SwLab::start_ironsec`] writes them).
    pub fn start_ironsec_text(&mut self, text: &str) {
        fs::write(&self.cfg_a, text).unwrap();
        let log = self.dir.join(&format!("ironsecd-a.{}.log", self.starts));
        self.starts += 1;
        self.ironsec = Some(Daemon::start(
            "gwA",
            &self.topo.gw_a,
            &self.cfg_a,
            &self.sock_a,
            log,
        ));
    }

    /// Stops both (ironsecd first) so the next [`SwLab::start_strongswan`] /
    /// [`SwLab::start_ironsec`] begin afresh in the same namespaces.
    pub fn stop_both(&mut self) {
        if let Some(mut d) = self.ironsec.take() {
            d.stop();
        }
        if let Some(mut sw) = self.sw.take() {
            sw.stop();
        }
    }

    pub fn a(&self) -> &Daemon {
        self.ironsec.as_ref().expect("ironsecd runs")
    }

    pub fn sw(&self) -> &StrongSwan {
        self.sw.as_ref().expect("strongSwan runs")
    }

    pub fn logs(&self) -> String {
        format!(
            "----- ironsecd (gwA) log -----\n{}\n----- strongSwan (gwB) charon.log -----\n{}",
            self.ironsec
                .as_ref()
                .map(Daemon::log_text)
                .unwrap_or_default(),
            self.sw
                .as_ref()
                .map(StrongSwan::log_text)
                .unwrap_or_default()
        )
    }

    /// Waits until ironsec's tunnel is up and strongSwan has an ESTABLISHED IKE SA whose
    /// INSTALLED CHILD_SA is the one ironsec sends on; returns the time it took and both views.
    pub fn wait_up(&self) -> (Duration, Value, SwIke) {
        self.wait_up_within(UP_TIMEOUT)
    }

    /// [`SwLab::wait_up`] with another bound.
    pub fn wait_up_within(&self, timeout: Duration) -> (Duration, Value, SwIke) {
        wait_both_up(&self.a().socket, self.sw(), SW_CONN, timeout)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.logs()))
    }
}

impl Drop for SwLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "[test] strongSwan lab {} failed; files kept in {}",
                self.topo.prefix,
                self.dir.path.display()
            );
        }
    }
}

pub fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("status has no string at {ptr}: {v:#}"))
}

pub fn strs_at(v: &Value, ptr: &str) -> Vec<String> {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("status has no array at {ptr}: {v:#}"))
        .iter()
        .map(|x| x.as_str().unwrap_or_default().to_string())
        .collect()
}

/// The CHILD_SA of strongSwan's IKE SA that receives what ironsec sends.
pub fn sw_child_for<'a>(ike: &'a SwIke, st: &Value) -> &'a SwChild {
    let out = bare(str_at(st, &format!("{T0}/outbound/spi")));
    ike.children
        .iter()
        .find(|c| c.spi_in == out)
        .unwrap_or_else(|| panic!("strongSwan has no CHILD_SA with inbound SPI {out}: {ike:#?}"))
}

/// Both sides agree on the IKE SA and the CHILD_SA: SPIs crossed, algorithms, selectors.
pub fn check_views(st: &Value, ike: &SwIke, ike_algs: &str, esp_algs: &str) {
    let ours = ike_of(st).unwrap();
    assert_eq!(ours["algorithms"], ike_algs, "ironsec IKE SA: {ours}");
    assert_eq!(ike.algorithms, ike_algs, "strongSwan IKE SA: {ike:#?}");
    assert_eq!(
        ours["initiator"].as_bool(),
        Some(!ike.initiator),
        "exactly one side initiated: ironsec {ours}, strongSwan {ike:#?}"
    );
    let c = sw_child_for(ike, st);
    assert_eq!(c.state, "INSTALLED", "{c:#?}");
    assert_eq!(
        c.spi_out,
        bare(str_at(st, &format!("{T0}/inbound/spi"))),
        "strongSwan's outbound SPI is ironsec's inbound: {c:#?}\n{st:#}"
    );
    assert_eq!(c.algorithms, esp_algs, "strongSwan CHILD_SA: {c:#?}");
    assert_eq!(
        str_at(st, &format!("{T0}/child/algorithms")),
        esp_algs,
        "ironsec CHILD_SA"
    );
    assert_eq!(c.local_ts, strs_at(st, &format!("{T0}/child/remote_ts")));
    assert_eq!(c.remote_ts, strs_at(st, &format!("{T0}/child/local_ts")));
}

/// gwB (strongSwan with libipsec) sends `dst` (a lanA address, IPv4 or IPv6) into its ipsec0
/// TUN, through table 220, and has no other route for lanA's prefix of that family: libipsec
/// sends only what is routed into its TUN, so a leftover plain route would bypass the tunnel.
pub fn check_gw_b_routes(lab: &SwLab, dst: &str) {
    let out = run_ok(
        ns_cmd(&lab.topo.gw_b, "ip").args(["route", "get", dst]),
        Duration::from_secs(5),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("dev ipsec0") && text.contains("table 220"),
        "gwB routes {dst} via {text} (expected ipsec0 in table 220)"
    );
    let (family, lan_a) = if dst.contains(':') {
        ("-6", "2001:db8:1:")
    } else {
        ("-4", "10.1.")
    };
    let main = run_ok(
        ns_cmd(&lab.topo.gw_b, "ip").args([family, "route", "show", "table", "main"]),
        Duration::from_secs(5),
    );
    let main = String::from_utf8_lossy(&main.stdout);
    assert!(
        !main.contains(lan_a) && !main.contains("default"),
        "gwB's main table has a route that would bypass the tunnel:\n{main}"
    );
}

/// strongSwan's counters of the CHILD_SA ironsec sends on, once both directions carried
/// traffic; panics if it never does.
pub fn sw_counts_traffic(lab: &SwLab) -> SwChild {
    let mut last = None;
    let ok = poll_until(Duration::from_secs(5), || {
        let st = lab.a().status();
        let Some(ike) = matching_ike(&st, &lab.sw().sas(), SW_CONN) else {
            return false;
        };
        let c = sw_child_for(&ike, &st).clone();
        let ok = c.bytes_in > 0 && c.bytes_out > 0 && c.packets_in > 0 && c.packets_out > 0;
        last = Some(c);
        ok
    });
    assert!(
        ok,
        "strongSwan's CHILD_SA counted no traffic: {last:#?}\n{}",
        lab.logs()
    );
    last.unwrap()
}

/// strongSwan's settings with CHILD_SA key material in charon.log: `chd 4` makes
/// keymat_v2.c's derive_child_keys dump the encryption and integrity keys of both directions
/// (never do this outside a test).
pub fn sw_chd_keys(text: String) -> String {
    text.replace("cfg = 2", "cfg = 2\n            chd = 4")
}

/// One key dump of charon.log: `... encryption initiator key => 36 bytes @ 0x...` and the
/// hex lines after it (`   0: 3C 1F ...  ascii`); the last dump of that name (the newest
/// CHILD_SA), or None if the log has none.
pub fn sw_logged_key(log: &str, name: &str) -> Option<Vec<u8>> {
    let lines: Vec<&str> = log.lines().collect();
    let head = format!("{name} key => ");
    let at = lines.iter().rposition(|l| l.contains(&head))?;
    let after = lines[at].split(&head).nth(1)?;
    let len: usize = after.split_whitespace().next()?.parse().ok()?;
    let mut key = Vec::with_capacity(len);
    for l in &lines[at + 1..] {
        if key.len() >= len {
            break;
        }
        // "<time> 09[CHD] <gw-a|1>    0: 3C 1F ..." : the 48 columns after "N: " are hex.
        let (_, rest) = l.split_once("> ")?;
        let (off, hexpart) = rest.trim_start().split_once(": ")?;
        if off.parse::<usize>().ok()? != key.len() {
            return None;
        }
        let hexpart: String = hexpart.chars().take(48).collect();
        for b in hexpart.split_whitespace().take(len - key.len()) {
            key.push(u8::from_str_radix(b, 16).ok()?);
        }
    }
    (key.len() == len).then_some(key)
}

/// tshark 4.0's names for an ESP proposal's cipher and integrity algorithm.
pub fn tshark_esp_names(esp: &str) -> (&'static str, &'static str) {
    let enc = if esp.contains("gcm16") {
        "AES-GCM with 16 octet ICV [RFC4106]"
    } else {
        "AES-CBC [RFC3602]"
    };
    let auth = if esp.contains("gcm16") {
        "NULL"
    } else if esp.contains("sha1") {
        "HMAC-SHA-1-96 [RFC2404]"
    } else if esp.contains("sha256") {
        "HMAC-SHA-256-128 [RFC4868]"
    } else if esp.contains("sha384") {
        "HMAC-SHA-384-192 [RFC4868]"
    } else {
        "HMAC-SHA-512-256 [RFC4868]"
    };
    (enc, auth)
}

/// tshark's `esp_sa` UAT entry (an `-o` value) for one ESP SA from `src` to `dst` with SPI
/// `spi` (hex without 0x) and the keys of ESP proposal `esp`: `ek` the encryption key (with
/// an AEAD's 4-byte salt), `ak` the integrity key (empty for an AEAD). The address family
/// follows the addresses.
pub fn esp_sa_uat(src: IpAddr, dst: IpAddr, spi: &str, esp: &str, ek: &[u8], ak: &[u8]) -> String {
    let (enc, auth) = tshark_esp_names(esp);
    let family = if src.is_ipv6() { "IPv6" } else { "IPv4" };
    let ak = if ak.is_empty() {
        String::new()
    } else {
        format!("0x{}", hex(ak))
    };
    format!(
        "uat:esp_sa:\"{family}\",\"{src}\",\"{dst}\",\"0x{spi}\",\"{enc}\",\"0x{}\",\"{auth}\",\"{ak}\"",
        hex(ek)
    )
}

/// tshark over capture `file` with ESP-in-UDP (port 4500) decrypted by the `esp_sa` UAT
/// entries `sas` ([`esp_sa_uat`]), ICVs verified when `auth_check`, frames matching `filter`,
/// printed as `-T fields` with `-e` for each of `fields` and `extra` arguments before them.
/// iperf3's random payload on TCP 5201 is decoded as data: left to the heuristics, tshark now
/// and then takes a segment for Thrift and reports it malformed.
pub fn tshark_esp_fields(
    file: &str,
    sas: &[&str],
    auth_check: bool,
    filter: &str,
    extra: &[&str],
    fields: &[&str],
) -> String {
    let mut args = vec![
        "-r",
        file,
        "-n",
        "-d",
        "udp.port==4500,udpencap",
        "-d",
        "tcp.port==5201,data",
        "-o",
        "esp.enable_encryption_decode:TRUE",
    ];
    if auth_check {
        args.extend(["-o", "esp.enable_authentication_check:TRUE"]);
    }
    for sa in sas {
        args.extend(["-o", sa]);
    }
    args.extend(["-Y", filter, "-T", "fields"]);
    args.extend(extra);
    for e in fields {
        args.extend(["-e", e]);
    }
    tshark_out(&args)
}

/// tshark's output for `args`; panics unless it succeeds.
pub fn tshark_out(args: &[&str]) -> String {
    let out = run_ok(Command::new("tshark").args(args), Duration::from_secs(60));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn count_lines(s: &str) -> usize {
    s.lines().filter(|l| !l.trim().is_empty()).count()
}

/// The first line of `log` containing every one of `needles`.
pub fn first_line_with<'a>(log: &'a str, needles: &[&str]) -> Option<&'a str> {
    log.lines().find(|l| needles.iter().all(|n| l.contains(n)))
}

/// Time from ironsec's first 'initiating IKE SA' log line to its first 'CHILD_SA up', as text.
pub fn exchange_time(log: &str) -> String {
    let at = |needle: &str| first_line_with(log, &[needle]).and_then(log_line_time);
    match (at("initiating IKE SA"), at("CHILD_SA up")) {
        (Some(a), Some(b)) => format!("{:.1} ms", (b - a) * 1e3),
        _ => "? (log lines missing)".to_string(),
    }
}
