//! Shared helpers for ironsec's integration tests: network namespaces (netns-scripts/topology.sh),
//! daemons under guard, child processes with deadlines, an in-process pinger, pcap reading and
//! writing, and packet builders.
//!
//! Safety rules every helper keeps: all traffic stays inside namespaces the test created; every
//! process a test starts is killed by PID (never by name) and every namespace removed, also when
//! the test panics (Drop guards); every wait has a deadline.
#![allow(dead_code)]

pub mod strongswan;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const IRONSECD: &str = env!("CARGO_BIN_EXE_ironsecd");
pub const IRONSECCTL: &str = env!("CARGO_BIN_EXE_ironsecctl");

/// Workspace root (crates/ironsecd/../..; env IRONSEC_WORKSPACE_ROOT overrides it).
pub fn workspace_root() -> PathBuf {
    let p = match std::env::var_os("IRONSEC_WORKSPACE_ROOT") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."),
    };
    p.canonicalize().expect("workspace root")
}

pub fn topology_script() -> PathBuf {
    workspace_root().join("netns-scripts/topology.sh")
}

// ------------------------------------------------------------------------------------------
// Serialization, root check, unique names

static SERIAL: Mutex<()> = Mutex::new(());

/// The tests share two cores with two gateways, iperf3 and the kernel: run them one at a time
/// even when the harness runs tests in parallel. A panicking test poisons the lock; the next one
/// takes it anyway (every test cleans up after itself through its guards).
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Panics (never skips) when the test cannot do what it must: namespaces need root.
pub fn require_root() {
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this integration test needs root (network namespaces, TUN devices, raw sockets); \
         run `cargo test` as root — it is not skipped on purpose"
    );
}

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A short prefix unique to this process and this call: "ist<pid>-<n>".
pub fn unique_prefix() -> String {
    format!(
        "ist{}-{}",
        std::process::id(),
        NEXT_ID.fetch_add(1, Ordering::SeqCst)
    )
}

// ------------------------------------------------------------------------------------------
// Temporary directory

/// A per-test directory under /tmp. Removed on success, kept (and its path printed) when the
/// test panics so logs and captures can be inspected.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("ironsec-it-{tag}"));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
        TempDir { path }
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "[test] keeping test directory {} for inspection",
                self.path.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

// ------------------------------------------------------------------------------------------
// Processes

fn signal(pid: u32, sig: libc::c_int) {
    // Only ever a PID this test spawned itself.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Waits for a child with a deadline; returns None on timeout (the child keeps running).
pub fn wait_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) => {}
            Err(e) => panic!("waiting for child {}: {e}", child.id()),
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Terminates a child we spawned: SIGTERM (or `sig`), a grace period, then SIGKILL. Always reaps.
pub fn terminate(child: &mut Child, sig: libc::c_int, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(st)) = child.try_wait() {
        return Some(st);
    }
    signal(child.id(), sig);
    if let Some(st) = wait_deadline(child, grace) {
        return Some(st);
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Runs a command to completion with a deadline; on timeout the child is killed and the test
/// panics with whatever it printed.
pub fn run_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {desc}: {e}"));
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let to = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let te = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let status = match wait_deadline(&mut child, timeout) {
        Some(st) => st,
        None => {
            let _ = child.kill();
            let st = child.wait().unwrap();
            let out = to.join().unwrap();
            let err = te.join().unwrap();
            panic!(
                "timed out after {timeout:?} ({st}): {desc}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            );
        }
    };
    Output {
        status,
        stdout: to.join().unwrap(),
        stderr: te.join().unwrap(),
    }
}

/// Runs a command that must succeed within `timeout`.
pub fn run_ok(cmd: &mut Command, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    let out = run_timeout(cmd, timeout);
    if !out.status.success() {
        panic!(
            "command failed ({}): {desc}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// `ip netns exec <ns> <prog> <args...>`
pub fn ns_cmd(ns: &str, prog: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, prog]);
    c
}

/// A background process under guard: killed by PID (SIGTERM, then SIGKILL) when dropped.
/// stdout and stderr go to `log`.
pub struct BgProc {
    pub name: String,
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl BgProc {
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> BgProc {
        let f = File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let f2 = f.try_clone().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(f))
            .stderr(Stdio::from(f2))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({cmd:?}): {e}"));
        BgProc {
            name: name.to_string(),
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().unwrap().try_wait().unwrap()
    }

    /// Stops the process with `sig` and waits for it (grace, then SIGKILL). Returns the exit
    /// status if it exited by itself within the grace period.
    pub fn stop(&mut self, sig: libc::c_int, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        terminate(&mut child, sig, grace)
    }

    /// Waits for the process to exit on its own; kills it and panics on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        match wait_deadline(child, timeout) {
            Some(st) => {
                self.child = None;
                st
            }
            None => {
                let mut c = self.child.take().unwrap();
                terminate(&mut c, libc::SIGKILL, Duration::from_secs(2));
                panic!(
                    "{} did not finish within {timeout:?}; log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
        }
    }
}

impl Drop for BgProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&mut c, libc::SIGTERM, Duration::from_secs(3));
        }
        if std::thread::panicking() {
            eprintln!(
                "----- {} output ({}) -----\n{}",
                self.name,
                self.log.display(),
                self.log_text()
            );
        }
    }
}

// ------------------------------------------------------------------------------------------
// Namespaces

/// The four-namespace topology of netns-scripts/topology.sh under a private prefix. Dropping it
/// runs `topology.sh down`, which kills what still runs inside and deletes the namespaces.
pub struct Topology {
    pub prefix: String,
    pub lan_a: String,
    pub gw_a: String,
    pub gw_b: String,
    pub lan_b: String,
}

impl Topology {
    pub fn up(prefix: &str) -> Topology {
        Topology::up_links(prefix, 1)
    }

    /// With `links` = 2, a second WAN veth `wan2`: gwA 198.51.100.1 === 198.51.100.2 gwB.
    pub fn up_links(prefix: &str, links: u8) -> Topology {
        require_root();
        let t = Topology {
            prefix: prefix.to_string(),
            lan_a: format!("{prefix}-lanA"),
            gw_a: format!("{prefix}-gwA"),
            gw_b: format!("{prefix}-gwB"),
            lan_b: format!("{prefix}-lanB"),
        };
        // The guard exists before `up` so a half-built topology is removed too.
        topology_up(prefix, &[("IRONSEC_WAN_LINKS", links.to_string())]);
        for ns in [&t.lan_a, &t.gw_a, &t.gw_b, &t.lan_b] {
            assert!(
                Path::new(&format!("/var/run/netns/{ns}")).exists(),
                "namespace {ns} missing after topology.sh up"
            );
        }
        t
    }

    fn down(&self) {
        topology_down(&self.prefix);
    }
}

/// `topology.sh up` for `prefix` with extra settings in `env`; panics with its output if it
/// fails (it removes what it built before it exits).
fn topology_up(prefix: &str, env: &[(&str, String)]) {
    let mut cmd = Command::new("bash");
    cmd.arg(topology_script())
        .arg("up")
        .env("IRONSEC_NS_PREFIX", prefix);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run_timeout(&mut cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "topology.sh up {env:?} failed (is this root with `ip netns add` allowed?): {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `topology.sh down` for `prefix`: removes every namespace it owns; never fails.
fn topology_down(prefix: &str) {
    let out = Command::new("bash")
        .arg(topology_script())
        .arg("down")
        .env("IRONSEC_NS_PREFIX", prefix)
        .stdin(Stdio::null())
        .output();
    if let Ok(o) = &out {
        if !o.status.success() {
            eprintln!("topology.sh down: {}", String::from_utf8_lossy(&o.stderr));
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.down();
    }
}

/// `topology.sh` with IRONSEC_SITES=n (3 or 4): gateways gwA.. on a WAN bridge, each with its
/// LAN. Site i (0-based) has WAN address 192.0.2.(i+1), LAN 10.(i+1).0.0/24 with the gateway
/// at .1 and a host at .2. Dropping it removes every namespace of the prefix.
pub struct MultiSite {
    pub prefix: String,
    pub sites: usize,
}

impl MultiSite {
    pub fn up(prefix: &str, sites: usize) -> MultiSite {
        require_root();
        let t = MultiSite {
            prefix: prefix.to_string(),
            sites,
        };
        topology_up(prefix, &[("IRONSEC_SITES", sites.to_string())]);
        t
    }

    fn letter(i: usize) -> char {
        (b'A' + i as u8) as char
    }

    pub fn gw(&self, i: usize) -> String {
        format!("{}-gw{}", self.prefix, MultiSite::letter(i))
    }

    pub fn lan(&self, i: usize) -> String {
        format!("{}-lan{}", self.prefix, MultiSite::letter(i))
    }

    pub fn wan_ip(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, i as u8 + 1)
    }

    pub fn lan_host(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, i as u8 + 1, 0, 2)
    }

    pub fn lan_net(i: usize) -> String {
        format!("10.{}.0.0/24", i + 1)
    }

    /// Site `i`'s letter in identities and connection names: the hub is `a`, the spokes `b`,
    /// `c`, `d`.
    pub fn id_letter(i: usize) -> char {
        Self::letter(i).to_ascii_lowercase()
    }

    /// The hub's (site 0) connection `site-<letter>` to spoke `i`, identities `gw-<letter>.example`.
    pub fn hub_conn(i: usize, psk: &Path, start_action: &str, extra: &str) -> String {
        conn_toml(&Conn {
            name: &format!("site-{}", Self::id_letter(i)),
            local_id: "gw-a.example",
            remote_id: &format!("gw-{}.example", Self::id_letter(i)),
            psk_file: psk,
            local_ts: &Self::lan_net(0),
            remote_ts: &Self::lan_net(i),
            local: Self::wan_ip(0),
            remote: Self::wan_ip(i),
            start_action,
            extra,
        })
    }

    /// Spoke `i`'s connection `site-a` to the hub.
    pub fn spoke_conn(i: usize, psk: &Path, start_action: &str, extra: &str) -> String {
        conn_toml(&Conn {
            name: "site-a",
            local_id: &format!("gw-{}.example", Self::id_letter(i)),
            remote_id: "gw-a.example",
            psk_file: psk,
            local_ts: &Self::lan_net(i),
            remote_ts: &Self::lan_net(0),
            local: Self::wan_ip(i),
            remote: Self::wan_ip(0),
            start_action,
            extra,
        })
    }
}

impl Drop for MultiSite {
    fn drop(&mut self) {
        topology_down(&self.prefix);
    }
}

// ------------------------------------------------------------------------------------------
// Generated IKE configs (one PSK connection per `Conn`)

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

pub fn write_psk(dir: &TempDir, name: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, format!("0x{}\n", hex(&random_bytes(32)))).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// Runs `ironsecctl --socket SOCKET ARGS...` and returns its output, whatever the exit code.
pub fn ironsecctl(socket: &Path, args: &[&str]) -> Output {
    run_timeout(
        Command::new(IRONSECCTL)
            .arg("--socket")
            .arg(socket)
            .args(args),
        Duration::from_secs(60),
    )
}

/// Runs `f` on a dedicated thread that has joined network namespace `ns` (setns CLONE_NEWNET);
/// sockets created there stay in that namespace after the thread ends.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    let h = std::thread::spawn(move || {
        let fd = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
        f()
    });
    match h.join() {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e),
    }
}

/// A UDP socket inside namespace `ns`, bound to `bind`.
pub fn udp_socket_in(ns: &str, bind: SocketAddr) -> UdpSocket {
    in_netns(ns, move || {
        UdpSocket::bind(bind).unwrap_or_else(|e| panic!("bind {bind}: {e}"))
    })
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

/// Key material length (key || 4-byte salt) for a suite name.
pub fn keymat_len(suite: &str) -> usize {
    match suite {
        "aes128gcm16" => 20,
        "aes256gcm16" | "chacha20poly1305" => 36,
        s => panic!("unknown suite {s}"),
    }
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
    fs::write(path, s).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
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

// ------------------------------------------------------------------------------------------
// Daemon

pub fn ctl_status(socket: &Path) -> Result<Value, String> {
    let out = run_timeout(
        Command::new(IRONSECCTL)
            .arg("--socket")
            .arg(socket)
            .args(["status", "--json"]),
        Duration::from_secs(5),
    );
    if !out.status.success() {
        return Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "bad JSON from ironsecctl ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// ironsecd running in a gateway namespace, under guard.
pub struct Daemon {
    pub name: String,
    pub ns: String,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub proc_: BgProc,
}

impl Daemon {
    pub fn start(name: &str, ns: &str, config: &Path, socket: &Path, log: PathBuf) -> Daemon {
        Daemon::start_with_log_level(name, ns, config, socket, log, None)
    }

    /// Like [`Daemon::start`], with IRONSEC_LOG set to `level` (default: env IRONSEC_TEST_LOG,
    /// else "info").
    pub fn start_with_log_level(
        name: &str,
        ns: &str,
        config: &Path,
        socket: &Path,
        log: PathBuf,
        level: Option<&str>,
    ) -> Daemon {
        Daemon::start_with_env(name, ns, config, socket, log, level, &[])
    }

    /// Like [`Daemon::start_with_log_level`], with extra environment variables.
    pub fn start_with_env(
        name: &str,
        ns: &str,
        config: &Path,
        socket: &Path,
        log: PathBuf,
        level: Option<&str>,
        env: &[(&str, String)],
    ) -> Daemon {
        let mut cmd = ns_cmd(ns, IRONSECD);
        cmd.arg("--config").arg(config);
        let level = match level {
            Some(l) => l.to_string(),
            None => std::env::var("IRONSEC_TEST_LOG").unwrap_or_else(|_| "info".into()),
        };
        cmd.env("IRONSEC_LOG", level);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let proc_ = BgProc::spawn(&format!("ironsecd {name}"), cmd, log);
        let mut d = Daemon {
            name: name.to_string(),
            ns: ns.to_string(),
            socket: socket.to_path_buf(),
            config: config.to_path_buf(),
            proc_,
        };
        d.wait_ready(Duration::from_secs(10));
        d
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            if let Some(st) = self.proc_.try_wait() {
                panic!(
                    "ironsecd {} exited during startup ({st}); log:\n{}",
                    self.name,
                    self.proc_.log_text()
                );
            }
            if self.socket.exists() {
                match ctl_status(&self.socket) {
                    Ok(_) => return,
                    Err(e) => last = e,
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "ironsecd {} not ready within {timeout:?} (last ironsecctl error: {last}); log:\n{}",
                    self.name,
                    self.proc_.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn status(&self) -> Value {
        ctl_status(&self.socket).unwrap_or_else(|e| {
            panic!(
                "ironsecctl status for {} failed: {e}\nlog:\n{}",
                self.name,
                self.proc_.log_text()
            )
        })
    }

    pub fn log_text(&self) -> String {
        self.proc_.log_text()
    }

    /// The logs of two gateways, for failure messages.
    pub fn both_logs(a: &Daemon, b: &Daemon) -> String {
        format!(
            "----- gwA -----\n{}\n----- gwB -----\n{}",
            a.log_text(),
            b.log_text()
        )
    }

    /// SIGTERM and wait; returns the exit status (None if it had to be killed).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.proc_.stop(libc::SIGTERM, Duration::from_secs(5))
    }

    /// `kill -9` (by PID) and reap: no clean shutdown, the control socket file stays behind.
    pub fn kill9(&mut self) {
        self.proc_.stop(libc::SIGKILL, Duration::from_secs(5));
    }
}

/// The first tunnel of connection `conn` in a status document.
pub fn conn_tunnel<'a>(st: &'a Value, conn: &str) -> &'a Value {
    st["connections"]
        .as_array()
        .and_then(|v| v.iter().find(|c| c["name"] == conn))
        .map(|c| &c["tunnels"][0])
        .unwrap_or_else(|| panic!("no connection {conn} in {st:#}"))
}

/// `v[ptr]` as u64, panicking with the whole document when missing.
pub fn num(v: &Value, ptr: &str) -> u64 {
    v.pointer(ptr)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("status has no unsigned number at {ptr}: {v:#}"))
}

/// Polls `f` until it returns true or the deadline passes; returns the last result.
pub fn poll_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Path of the first tunnel of the first connection in a status document.
pub const T0: &str = "/connections/0/tunnels/0";

// ------------------------------------------------------------------------------------------
// Lab: topology + keys + two daemons configured from conf/static-gw-{a,b}.toml

pub struct LabOpts {
    pub suite: &'static str,
    pub esn: bool,
    /// UDP GSO/GRO. A capture on a host with segmentation offload sees the super-packets
    /// before the kernel splits them, so tests that judge captured ESP packet by packet turn
    /// it off.
    pub udp_offload: bool,
}

impl Default for LabOpts {
    fn default() -> Self {
        LabOpts {
            suite: "aes128gcm16",
            esn: true,
            udp_offload: true,
        }
    }
}

/// Field order matters: daemons stop before the namespaces go, the directory (logs) goes last.
pub struct Lab {
    pub a: Daemon,
    pub b: Daemon,
    pub topo: Topology,
    pub suite: &'static str,
    pub esn: bool,
    /// Key material gwA -> gwB (SPI_A_TO_B) and gwB -> gwA (SPI_B_TO_A).
    pub key_ab: Vec<u8>,
    pub key_ba: Vec<u8>,
    pub dir: TempDir,
}

impl Lab {
    pub fn start(opts: LabOpts) -> Lab {
        require_root();
        let prefix = unique_prefix();
        let dir = TempDir::new(&prefix);
        let topo = Topology::up(&prefix);
        let key_ab = random_bytes(keymat_len(opts.suite));
        let key_ba = random_bytes(keymat_len(opts.suite));
        let keys = dir.join("site.keys");
        write_keys_file(&keys, &[(SPI_A_TO_B, &key_ab), (SPI_B_TO_A, &key_ba)]);

        let mk = |example: &str, sock: &Path, out: &Path| {
            let text = rewrite_toml_lines(
                &example_config(example),
                &[
                    ("control_socket", toml_str(sock.to_str().unwrap())),
                    ("keys_file", toml_str(keys.to_str().unwrap())),
                    ("esp", toml_str(opts.suite)),
                    ("esn", opts.esn.to_string()),
                    ("udp_offload", opts.udp_offload.to_string()),
                ],
            );
            fs::write(out, text).unwrap();
        };
        let (sock_a, sock_b) = (dir.join("a.sock"), dir.join("b.sock"));
        let (cfg_a, cfg_b) = (dir.join("gw-a.toml"), dir.join("gw-b.toml"));
        mk("static-gw-a.toml", &sock_a, &cfg_a);
        mk("static-gw-b.toml", &sock_b, &cfg_b);

        let a = Daemon::start(
            "gwA",
            &topo.gw_a,
            &cfg_a,
            &sock_a,
            dir.join("ironsecd-a.log"),
        );
        let b = Daemon::start(
            "gwB",
            &topo.gw_b,
            &cfg_b,
            &sock_b,
            dir.join("ironsecd-b.log"),
        );
        Lab {
            a,
            b,
            topo,
            suite: opts.suite,
            esn: opts.esn,
            key_ab,
            key_ba,
            dir,
        }
    }

    /// Starts tcpdump on `iface` in `ns`, writing `file`; returns once it is capturing.
    pub fn capture(&self, ns: &str, iface: &str, file: &Path, filter: &[&str]) -> Capture {
        Capture::start(
            ns,
            iface,
            file,
            filter,
            self.dir.join(&format!("tcpdump-{ns}-{iface}.log")),
        )
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "[test] lab {} failed; daemon logs follow (from their guards)",
                self.topo.prefix
            );
        }
    }
}

// ------------------------------------------------------------------------------------------
// Capture

pub struct Capture {
    pub file: PathBuf,
    proc_: BgProc,
}

impl Capture {
    pub fn start(ns: &str, iface: &str, file: &Path, filter: &[&str], log: PathBuf) -> Capture {
        let mut cmd = ns_cmd(ns, "tcpdump");
        // --immediate-mode: without it TPACKET_V3 holds packets back and SIGINT loses them.
        // -Z root: Debian's tcpdump would drop to user tcpdump and fail to write into our 0700 dir.
        cmd.args([
            "-i",
            iface,
            "-n",
            "-U",
            "--immediate-mode",
            "-s",
            "0",
            "-Z",
            "root",
            "-w",
        ])
        .arg(file)
        .args(filter);
        let proc_ = BgProc::spawn(&format!("tcpdump {ns}/{iface}"), cmd, log);
        let mut c = Capture {
            file: file.to_path_buf(),
            proc_,
        };
        let ok = poll_until(Duration::from_secs(10), || {
            c.proc_.log_text().contains("listening on") || c.proc_.try_wait().is_some()
        });
        if !ok || c.proc_.try_wait().is_some() {
            panic!(
                "tcpdump did not start capturing on {ns}/{iface}:\n{}",
                c.proc_.log_text()
            );
        }
        c
    }

    /// Stops tcpdump (SIGINT by PID so it flushes), returns the capture's bytes.
    pub fn stop(mut self) -> Vec<u8> {
        // Let the last packets of the exchange reach the wire and the file.
        std::thread::sleep(Duration::from_millis(300));
        self.proc_.stop(libc::SIGINT, Duration::from_secs(5));
        fs::read(&self.file).unwrap_or_else(|e| panic!("read capture {}: {e}", self.file.display()))
    }
}

// ------------------------------------------------------------------------------------------
// pcap

pub struct PcapRecord {
    pub data: Vec<u8>,
}

pub struct Pcap {
    pub linktype: u32,
    pub records: Vec<PcapRecord>,
}

pub fn parse_pcap(b: &[u8]) -> Pcap {
    assert!(b.len() >= 24, "pcap too short ({} bytes)", b.len());
    let magic = u32::from_le_bytes(b[0..4].try_into().unwrap());
    let le = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        m => panic!("not a classic pcap file (magic {m:#x})"),
    };
    let rd = |o: usize| -> u32 {
        let a: [u8; 4] = b[o..o + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let linktype = rd(20);
    let mut records = Vec::new();
    let mut off = 24;
    while off + 16 <= b.len() {
        let incl = rd(off + 8) as usize;
        let start = off + 16;
        assert!(
            start + incl <= b.len(),
            "truncated pcap record at offset {off}"
        );
        records.push(PcapRecord {
            data: b[start..start + incl].to_vec(),
        });
        off = start + incl;
    }
    Pcap { linktype, records }
}

/// Writes a pcap of raw IPv4 packets (LINKTYPE_RAW = 101).
pub fn write_raw_ip_pcap(path: &Path, packets: &[Vec<u8>]) {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&0i32.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&101u32.to_le_bytes());
    for (i, p) in packets.iter().enumerate() {
        f.extend_from_slice(&(i as u32).to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(p);
    }
    fs::write(path, f).unwrap();
}

/// A UDP datagram seen in an Ethernet capture.
#[derive(Clone, Debug)]
pub struct UdpDatagram {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub payload: Vec<u8>,
}

/// What one Ethernet frame of a capture is.
#[derive(Debug)]
pub enum Frame {
    Udp(UdpDatagram),
    /// IPv4 but not UDP (protocol number, src, dst).
    OtherIpv4(u8, Ipv4Addr, Ipv4Addr),
    /// Not IPv4 (ethertype).
    NonIpv4(u16),
}

pub fn classify_ethernet(f: &[u8]) -> Frame {
    assert!(f.len() >= 14, "short Ethernet frame");
    let et = u16::from_be_bytes([f[12], f[13]]);
    if et != 0x0800 {
        return Frame::NonIpv4(et);
    }
    let ip = &f[14..];
    assert!(ip.len() >= 20 && ip[0] >> 4 == 4, "bad IPv4 header");
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    let tot = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    let proto = ip[9];
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    if proto != 17 {
        return Frame::OtherIpv4(proto, src, dst);
    }
    let udp = &ip[ihl..tot.min(ip.len())];
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    let ulen = u16::from_be_bytes([udp[4], udp[5]]) as usize;
    Frame::Udp(UdpDatagram {
        src: SocketAddrV4::new(src, sport),
        dst: SocketAddrV4::new(dst, dport),
        payload: udp[8..ulen.min(udp.len())].to_vec(),
    })
}

/// ESP-in-UDP payloads (not IKE with its zero marker, not a 0xFF keepalive) sent from `src` to
/// `dst` in an Ethernet capture.
pub fn esp_datagrams(pcap: &Pcap, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<UdpDatagram> {
    assert_eq!(pcap.linktype, 1, "expected an Ethernet capture");
    pcap.records
        .iter()
        .filter_map(|r| match classify_ethernet(&r.data) {
            Frame::Udp(d) if *d.src.ip() == src && *d.dst.ip() == dst && d.dst.port() == 4500 => {
                let p = &d.payload;
                if p.len() > 8 && p[0..4] != [0, 0, 0, 0] {
                    Some(d)
                } else {
                    None
                }
            }
            _ => None,
        })
        .collect()
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

// ------------------------------------------------------------------------------------------
// Packet builders

pub fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for ch in data.chunks(2) {
        let w = if ch.len() == 2 {
            u16::from_be_bytes([ch[0], ch[1]])
        } else {
            u16::from_be_bytes([ch[0], 0])
        };
        sum += w as u32;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 packet (20-byte header, valid checksum, DF clear, TTL 64).
pub fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, id: u16, payload: &[u8]) -> Vec<u8> {
    let tot = 20 + payload.len();
    let mut p = vec![0u8; 20];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(tot as u16).to_be_bytes());
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[8] = 64;
    p[9] = proto;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let c = inet_checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// An ICMP echo request message (type 8) with a valid checksum.
pub fn icmp_echo(id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut m = vec![8u8, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(data);
    let c = inet_checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

// ------------------------------------------------------------------------------------------
// Pinger (iputils ping is not installed on this machine; a raw ICMP socket does the same job
// and lets the test choose the payload exactly).

/// A raw ICMP socket aimed at one destination: what both pingers below send and receive with.
struct IcmpSocket {
    fd: i32,
    dst: Ipv4Addr,
    to: libc::sockaddr_in,
    /// Echo identifier of this pinger, so concurrent pingers do not take each other's replies.
    ident: u16,
}

impl IcmpSocket {
    /// Opens the socket in the calling thread's namespace. `salt` keeps the identifiers of the
    /// two pinger kinds apart.
    fn open(dst: Ipv4Addr, salt: u16) -> IcmpSocket {
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_ICMP,
            )
        };
        assert!(
            fd >= 0,
            "raw ICMP socket: {}",
            std::io::Error::last_os_error()
        );
        let mut to: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        to.sin_family = libc::AF_INET as libc::sa_family_t;
        to.sin_addr = libc::in_addr {
            s_addr: u32::from_ne_bytes(dst.octets()),
        };
        let ident =
            (std::process::id() as u16) ^ salt ^ (NEXT_ID.fetch_add(1, Ordering::SeqCst) as u16);
        IcmpSocket { fd, dst, to, ident }
    }

    fn set_option<T>(&self, name: libc::c_int, value: &T) {
        unsafe {
            libc::setsockopt(
                self.fd,
                libc::SOL_SOCKET,
                name,
                value as *const T as *const libc::c_void,
                std::mem::size_of::<T>() as u32,
            )
        };
    }

    fn send_echo(&self, seq: u16, payload: &[u8]) {
        let msg = icmp_echo(self.ident, seq, payload);
        let n = unsafe {
            libc::sendto(
                self.fd,
                msg.as_ptr() as *const libc::c_void,
                msg.len(),
                0,
                &self.to as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        assert_eq!(
            n as usize,
            msg.len(),
            "sendto: {}",
            std::io::Error::last_os_error()
        );
    }

    /// One received datagram, if it is an echo reply from `dst` to this pinger: (sequence
    /// number, whether its data is `payload`). None for anything else, or nothing to read.
    fn recv_reply(&self, flags: libc::c_int, payload: &[u8]) -> Option<Option<(u16, bool)>> {
        let mut buf = [0u8; 4096];
        let n = unsafe {
            libc::recv(
                self.fd,
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                flags,
            )
        };
        if n <= 0 {
            return None;
        }
        let p = &buf[..n as usize];
        let ihl = ((p[0] & 0x0f) as usize) * 4;
        if p.len() < ihl + 8 || p[12..16] != self.dst.octets() {
            return Some(None);
        }
        let icmp = &p[ihl..];
        if icmp[0] != 0 || u16::from_be_bytes([icmp[4], icmp[5]]) != self.ident {
            return Some(None);
        }
        Some(Some((
            u16::from_be_bytes([icmp[6], icmp[7]]),
            icmp[8..] == *payload,
        )))
    }
}

impl Drop for IcmpSocket {
    fn drop(&mut self) {
        unsafe { libc::close(self.fd) };
    }
}

pub struct PingResult {
    pub sent: u32,
    pub received: u32,
}

/// Sends `count` ICMP echo requests from namespace `ns` to `dst`, `interval` apart, each with
/// `payload`, waiting up to `reply_timeout` for each reply.
pub fn ping(
    ns: &str,
    dst: Ipv4Addr,
    count: u16,
    payload: Vec<u8>,
    interval: Duration,
    reply_timeout: Duration,
) -> PingResult {
    in_netns(ns, move || {
        let sock = IcmpSocket::open(dst, 0x5a5a);
        sock.set_option(
            libc::SO_RCVTIMEO,
            &libc::timeval {
                tv_sec: 0,
                tv_usec: 50_000,
            },
        );
        let mut received = 0u32;
        for seq in 1..=count {
            sock.send_echo(seq, &payload);
            let deadline = Instant::now() + reply_timeout;
            let mut got = false;
            while Instant::now() < deadline {
                if let Some(Some((s, true))) = sock.recv_reply(0, &payload) {
                    if s == seq {
                        got = true;
                        break;
                    }
                }
            }
            if got {
                received += 1;
            }
            if seq != count {
                std::thread::sleep(interval);
            }
        }
        PingResult {
            sent: count as u32,
            received,
        }
    })
}

/// A payload of `len` bytes repeating `pattern`.
pub fn pattern_payload(pattern: &[u8], len: usize) -> Vec<u8> {
    pattern.iter().cycle().take(len).copied().collect()
}

// ------------------------------------------------------------------------------------------
// TCP transfer between namespaces

/// Sends `total` bytes of `pattern` over TCP from namespace `client_ns` to `server` (listening
/// in `server_ns`) and returns the number of bytes the server received. Bounded by `timeout`.
pub fn tcp_transfer(
    client_ns: &str,
    server_ns: &str,
    server: SocketAddrV4,
    pattern: &'static [u8],
    total: usize,
    timeout: Duration,
) -> usize {
    let listener: TcpListener = in_netns(server_ns, move || {
        TcpListener::bind(server).expect("bind TCP listener")
    });
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + timeout;
    let srv = std::thread::spawn(move || -> Result<usize, String> {
        let mut s = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err("no connection before the deadline".into());
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(format!("accept: {e}")),
            }
        };
        s.set_nonblocking(false).unwrap();
        let mut got = 0usize;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("receive timed out after {got} bytes"));
            }
            s.set_read_timeout(Some(left)).unwrap();
            match s.read(&mut buf) {
                Ok(0) => return Ok(got),
                Ok(n) => got += n,
                Err(e) => return Err(format!("read after {got} bytes: {e}")),
            }
        }
    });
    let client: Result<(), String> = in_netns(client_ns, move || {
        let mut c = TcpStream::connect_timeout(&SocketAddr::V4(server), Duration::from_secs(5))
            .map_err(|e| format!("connect {server}: {e}"))?;
        c.set_write_timeout(Some(timeout)).unwrap();
        let chunk = pattern_payload(pattern, 16384);
        let mut left = total;
        while left > 0 {
            let n = left.min(chunk.len());
            c.write_all(&chunk[..n])
                .map_err(|e| format!("write: {e}"))?;
            left -= n;
        }
        c.shutdown(std::net::Shutdown::Write)
            .map_err(|e| format!("shutdown: {e}"))?;
        // Wait for the server's FIN so the whole exchange is on the wire before we return.
        c.set_read_timeout(Some(timeout)).unwrap();
        let mut b = [0u8; 16];
        let _ = c.read(&mut b);
        Ok(())
    });
    let got = srv.join().unwrap();
    client.unwrap_or_else(|e| panic!("TCP client {client_ns} -> {server}: {e}"));
    got.unwrap_or_else(|e| panic!("TCP server {server_ns} {server}: {e}"))
}

// ------------------------------------------------------------------------------------------
// Paced pinger: sends on a fixed schedule (like `ping -i`) whatever the replies do, and
// records when each request left and whether (and when) its reply came.

/// One echo request of a [`PingRun`].
#[derive(Clone, Debug)]
pub struct PingRecord {
    pub seq: u16,
    /// Wall-clock send time (comparable with the daemons' log timestamps).
    pub sent_at: std::time::SystemTime,
    /// Round-trip time if the reply came within the reply timeout.
    pub rtt: Option<Duration>,
    /// A reply that came after the reply timeout.
    pub late: bool,
}

#[derive(Clone, Debug, Default)]
pub struct PingRun {
    pub records: Vec<PingRecord>,
    pub duplicates: u32,
}

impl PingRun {
    pub fn sent(&self) -> usize {
        self.records.len()
    }

    pub fn received(&self) -> usize {
        self.records.iter().filter(|r| r.rtt.is_some()).count()
    }

    pub fn lost(&self) -> Vec<&PingRecord> {
        self.records.iter().filter(|r| r.rtt.is_none()).collect()
    }

    pub fn max_rtt(&self) -> Duration {
        self.records
            .iter()
            .filter_map(|r| r.rtt)
            .max()
            .unwrap_or_default()
    }
}

/// [`ping_paced`] on its own thread, for pinging while the test does something else.
pub fn ping_paced_in_background(
    ns: &str,
    dst: Ipv4Addr,
    count: u16,
    payload: Vec<u8>,
    interval: Duration,
    reply_timeout: Duration,
) -> std::thread::JoinHandle<PingRun> {
    let ns = ns.to_string();
    std::thread::spawn(move || ping_paced(&ns, dst, count, payload, interval, reply_timeout))
}

/// Sends `count` echo requests from namespace `ns` to `dst`, one every `interval` on a fixed
/// schedule (a late reply never delays the next request), each carrying `payload`; a reply
/// counts if it comes within `reply_timeout`. Returns once every request is answered or timed
/// out.
pub fn ping_paced(
    ns: &str,
    dst: Ipv4Addr,
    count: u16,
    payload: Vec<u8>,
    interval: Duration,
    reply_timeout: Duration,
) -> PingRun {
    in_netns(ns, move || {
        let sock = IcmpSocket::open(dst, 0xa5a5);
        // A large receive buffer: at 20 requests/s nothing should ever be dropped here.
        let rcvbuf: libc::c_int = 1 << 20;
        sock.set_option(libc::SO_RCVBUF, &rcvbuf);
        let mut run = PingRun::default();
        let mut sent_mono: Vec<Instant> = Vec::with_capacity(count as usize);
        let start = Instant::now();
        let mut next = 0u16; // requests sent so far
        loop {
            let now = Instant::now();
            if next < count && now >= start + interval * u32::from(next) {
                let seq = next + 1;
                let sent_at = std::time::SystemTime::now();
                sock.send_echo(seq, &payload);
                sent_mono.push(Instant::now());
                run.records.push(PingRecord {
                    seq,
                    sent_at,
                    rtt: None,
                    late: false,
                });
                next += 1;
                continue;
            }
            let all_sent = next == count;
            let outstanding = run
                .records
                .iter()
                .zip(&sent_mono)
                .any(|(r, t)| r.rtt.is_none() && now < *t + reply_timeout);
            if all_sent && !outstanding {
                break;
            }
            // Wait for a reply until the next send is due (at most 10 ms at a time).
            let until_send = if all_sent {
                Duration::from_millis(10)
            } else {
                (start + interval * u32::from(next)).saturating_duration_since(now)
            };
            let ms = until_send.as_millis().clamp(0, 10) as libc::c_int;
            let mut pfd = libc::pollfd {
                fd: sock.fd,
                events: libc::POLLIN,
                revents: 0,
            };
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r <= 0 {
                continue;
            }
            while let Some(reply) = sock.recv_reply(libc::MSG_DONTWAIT, &payload) {
                let got = Instant::now();
                let Some((seq, same_data)) = reply else {
                    continue;
                };
                if seq == 0 || seq > next || !same_data {
                    continue;
                }
                let i = (seq - 1) as usize;
                let rtt = got.saturating_duration_since(sent_mono[i]);
                let rec = &mut run.records[i];
                if rec.rtt.is_some() || rec.late {
                    run.duplicates += 1;
                } else if rtt <= reply_timeout {
                    rec.rtt = Some(rtt);
                } else {
                    rec.late = true;
                }
            }
        }
        run
    })
}

// ------------------------------------------------------------------------------------------
// Wall-clock times as the daemons log them (tracing-subscriber: RFC 3339, UTC, microseconds)

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Seconds since the Unix epoch.
pub fn unix_secs(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `2025-01-31T12:34:56.123456Z`, as the daemons' log lines start.
pub fn utc_string(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (y, m, day) = civil_from_days(secs.div_euclid(86400));
    let s = secs.rem_euclid(86400);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        d.subsec_micros()
    )
}

/// The timestamp at the start of a log line, as seconds since the Unix epoch.
pub fn log_line_time(line: &str) -> Option<f64> {
    let t = line.split_whitespace().next()?;
    let t = t.strip_suffix('Z')?;
    let (date, time) = t.split_once('T')?;
    let mut dp = date.splitn(3, '-').map(|x| x.parse::<i64>());
    let (y, m, d) = (dp.next()?.ok()?, dp.next()?.ok()?, dp.next()?.ok()?);
    let mut tp = time.splitn(3, ':');
    let h: i64 = tp.next()?.parse().ok()?;
    let mi: i64 = tp.next()?.parse().ok()?;
    let s: f64 = tp.next()?.parse().ok()?;
    Some((days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60) as f64 + s)
}

/// Log lines whose timestamp lies within [from, to] (Unix seconds).
pub fn log_lines_between(log: &str, from: f64, to: f64) -> Vec<String> {
    log.lines()
        .filter(|l| log_line_time(l).is_some_and(|t| t >= from && t <= to))
        .map(str::to_string)
        .collect()
}

// ------------------------------------------------------------------------------------------
// iperf3

pub struct Iperf3Result {
    pub sent: u64,
    pub received: u64,
    pub secs: f64,
    pub mbit_s: f64,
}

/// One iperf3 run from `client_ns` to a one-shot server on `server_ip`:`port` in `server_ns`
/// with the client arguments `args` (e.g. `["-t", "5", "-P", "4"]`); returns the client's JSON
/// report. Bounded in time (the run's own length plus 60 s); panics with both sides' output if
/// iperf3 fails.
pub fn iperf3_json(
    client_ns: &str,
    server_ns: &str,
    server_ip: Ipv4Addr,
    port: u16,
    args: &[&str],
    dir: &Path,
    tag: &str,
) -> Value {
    let port_s = port.to_string();
    let mut srv_cmd = ns_cmd(server_ns, "iperf3");
    srv_cmd.args([
        "-s",
        "-1",
        "-B",
        &server_ip.to_string(),
        "-p",
        &port_s,
        "--json",
    ]);
    let mut srv = BgProc::spawn(
        &format!("iperf3 server {tag}"),
        srv_cmd,
        dir.join(format!("iperf3-server-{tag}.json")),
    );
    let listening = poll_until(Duration::from_secs(10), || {
        let o = run_timeout(
            ns_cmd(server_ns, "ss").args(["-Htln", "sport", "=", &format!(":{port}")]),
            Duration::from_secs(5),
        );
        let udp = run_timeout(
            ns_cmd(server_ns, "ss").args(["-Huln", "sport", "=", &format!(":{port}")]),
            Duration::from_secs(5),
        );
        !String::from_utf8_lossy(&o.stdout).trim().is_empty()
            || !String::from_utf8_lossy(&udp.stdout).trim().is_empty()
    });
    assert!(
        listening,
        "iperf3 server {tag} did not listen within 10 s:\n{}",
        srv.log_text()
    );
    let secs: u64 = args
        .windows(2)
        .find(|w| w[0] == "-t")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(10);
    let mut cli = ns_cmd(client_ns, "iperf3");
    cli.args(["-c", &server_ip.to_string(), "-p", &port_s, "--json"])
        .args(args);
    let out = run_timeout(&mut cli, Duration::from_secs(secs + 60));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "iperf3 client ({tag}) failed: {}\n{text}\n{}\nserver:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        srv.log_text(),
    );
    let _ = srv.wait_exit(Duration::from_secs(15));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("iperf3 JSON ({e}): {text}"))
}

/// One iperf3 TCP run of `bytes` (-n) from `client_ns` to a one-shot server (-1) on
/// `server_ip`:5201 in `server_ns` (reverse: -R). Bounded in time; panics with both sides'
/// output on failure. iperf3 stops counting at the sender's end-of-test message, so the
/// receiver's total may fall short of `bytes` (esnet/iperf#382): only the sender's is exact.
pub fn iperf3_tcp(
    client_ns: &str,
    server_ns: &str,
    server_ip: Ipv4Addr,
    bytes: u64,
    reverse: bool,
    dir: &Path,
    tag: &str,
) -> Iperf3Result {
    let port = "5201";
    let mut srv_cmd = ns_cmd(server_ns, "iperf3");
    srv_cmd.args([
        "-s",
        "-1",
        "-B",
        &server_ip.to_string(),
        "-p",
        port,
        "--json",
    ]);
    let mut srv = BgProc::spawn(
        &format!("iperf3 server {tag}"),
        srv_cmd,
        dir.join(format!("iperf3-server-{tag}.json")),
    );
    let listening = poll_until(Duration::from_secs(10), || {
        let o = run_timeout(
            ns_cmd(server_ns, "ss").args(["-Htln", "sport", "=", ":5201"]),
            Duration::from_secs(5),
        );
        !String::from_utf8_lossy(&o.stdout).trim().is_empty()
    });
    assert!(
        listening,
        "iperf3 server did not listen within 10 s:\n{}",
        srv.log_text()
    );
    let t0 = Instant::now();
    let mut cli = ns_cmd(client_ns, "iperf3");
    cli.args([
        "-c",
        &server_ip.to_string(),
        "-p",
        port,
        "-n",
        &bytes.to_string(),
        "--json",
        "--connect-timeout",
        "5000",
    ]);
    if reverse {
        cli.arg("-R");
    }
    let out = run_timeout(&mut cli, Duration::from_secs(90));
    let secs = t0.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "iperf3 client ({tag}) failed: {}\n{text}\n{}\nserver:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        srv.log_text(),
    );
    let v: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("iperf3 JSON ({e}): {text}"));
    let get = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("iperf3 JSON has no {p}: {v:#}"))
    };
    let received = get("/end/sum_received/bytes");
    let sent = get("/end/sum_sent/bytes");
    let bps = v
        .pointer("/end/sum_received/bits_per_second")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let st = srv.wait_exit(Duration::from_secs(15));
    assert!(
        st.success(),
        "iperf3 server ({tag}) exited {st}:\n{}",
        srv.log_text()
    );
    Iperf3Result {
        sent,
        received,
        secs,
        mbit_s: bps / 1e6,
    }
}

// ------------------------------------------------------------------------------------------
// IKE lab: topology + PSK files + two daemons configured from conf/ike-gw-{a,b}.toml
// (A initiates: start_action = "start"; B responds: start_action = "none")

/// One gateway's IKE settings (the rest comes from the example config).
#[derive(Clone, Debug)]
pub struct IkeSide {
    pub ike_proposals: Vec<String>,
    pub esp_proposals: Vec<String>,
    /// The PSK file's text: the key as text, or 0x followed by hex.
    pub psk_text: String,
    pub dpd_interval: u64,
    /// Seconds a request may go unanswered before the peer is declared dead.
    pub dpd_timeout: u64,
    pub rekey_time: u64,
    pub ike_rekey_time: u64,
}

impl IkeSide {
    /// The PSK's bytes as the daemon reads them.
    pub fn psk_bytes(&self) -> Vec<u8> {
        match self.psk_text.strip_prefix("0x") {
            Some(h) => (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex PSK"))
                .collect(),
            None => self.psk_text.as_bytes().to_vec(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct IkeLabOpts {
    pub a: IkeSide,
    pub b: IkeSide,
    /// IRONSEC_LOG for both daemons (default: env IRONSEC_TEST_LOG, else "info").
    pub log_level: Option<String>,
}

impl Default for IkeLabOpts {
    /// The examples' settings with a fresh random 32-byte PSK (hex) on both sides.
    fn default() -> Self {
        let side = IkeSide {
            ike_proposals: vec!["aes256gcm16-prfsha256-x25519".into()],
            esp_proposals: vec!["aes256gcm16".into()],
            psk_text: format!("0x{}", hex(&random_bytes(32))),
            dpd_interval: 30,
            dpd_timeout: 60,
            rekey_time: 3600,
            ike_rekey_time: 14400,
        };
        IkeLabOpts {
            a: side.clone(),
            b: side,
            log_level: None,
        }
    }
}

impl IkeLabOpts {
    /// Sets IRONSEC_LOG for both daemons.
    pub fn log_level(mut self, level: &str) -> Self {
        self.log_level = Some(level.to_string());
        self
    }

    /// Applies `f` to both sides.
    pub fn both(mut self, f: impl Fn(&mut IkeSide)) -> Self {
        f(&mut self.a);
        f(&mut self.b);
        self
    }
}

fn toml_str_array(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", items.join(", "))
}

/// Field order matters: daemons stop before the namespaces go, the directory (logs) goes last.
pub struct IkeLab {
    pub a: Daemon,
    pub b: Daemon,
    pub topo: Topology,
    pub opts: IkeLabOpts,
    pub cfg_a: PathBuf,
    pub cfg_b: PathBuf,
    pub sock_a: PathBuf,
    pub sock_b: PathBuf,
    /// Every log file of each side, oldest first (one per daemon start).
    pub logs_a: Vec<PathBuf>,
    pub logs_b: Vec<PathBuf>,
    pub dir: TempDir,
}

impl IkeLab {
    /// Builds the topology, writes both configs and PSK files (0600), starts B (responder)
    /// then A (initiator). Returns as soon as both daemons answer on their control sockets;
    /// the tunnel may still be negotiating (see [`IkeLab::wait_up`]).
    pub fn start(opts: IkeLabOpts) -> IkeLab {
        require_root();
        let prefix = unique_prefix();
        let dir = TempDir::new(&prefix);
        let topo = Topology::up(&prefix);
        let write = |example: &str, side: &IkeSide, tag: &str| -> (PathBuf, PathBuf) {
            let psk = dir.join(&format!("psk-{tag}"));
            fs::write(&psk, format!("{}\n", side.psk_text)).unwrap();
            fs::set_permissions(&psk, fs::Permissions::from_mode(0o600)).unwrap();
            let sock = dir.join(&format!("{tag}.sock"));
            let text = rewrite_toml_lines(
                &example_config(example),
                &[
                    ("control_socket", toml_str(sock.to_str().unwrap())),
                    ("psk_file", toml_str(psk.to_str().unwrap())),
                    ("ike_proposals", toml_str_array(&side.ike_proposals)),
                    ("esp_proposals", toml_str_array(&side.esp_proposals)),
                    ("dpd_interval", side.dpd_interval.to_string()),
                    ("dpd_timeout", side.dpd_timeout.to_string()),
                    ("rekey_time", side.rekey_time.to_string()),
                    ("ike_rekey_time", side.ike_rekey_time.to_string()),
                ],
            );
            let cfg = dir.join(&format!("gw-{tag}.toml"));
            fs::write(&cfg, text).unwrap();
            (cfg, sock)
        };
        let (cfg_a, sock_a) = write("ike-gw-a.toml", &opts.a, "a");
        let (cfg_b, sock_b) = write("ike-gw-b.toml", &opts.b, "b");
        let level = opts.log_level.clone();
        let log_b = dir.join("ironsecd-b.0.log");
        let b = Daemon::start_with_log_level(
            "gwB",
            &topo.gw_b,
            &cfg_b,
            &sock_b,
            log_b.clone(),
            level.as_deref(),
        );
        let log_a = dir.join("ironsecd-a.0.log");
        let a = Daemon::start_with_log_level(
            "gwA",
            &topo.gw_a,
            &cfg_a,
            &sock_a,
            log_a.clone(),
            level.as_deref(),
        );
        IkeLab {
            a,
            b,
            topo,
            opts,
            cfg_a,
            cfg_b,
            sock_a,
            sock_b,
            logs_a: vec![log_a],
            logs_b: vec![log_b],
            dir,
        }
    }

    /// Starts gwA again (after [`Daemon::kill9`] or [`Daemon::stop`]) with a new log file.
    pub fn restart_a(&mut self) {
        let log = self
            .dir
            .join(&format!("ironsecd-a.{}.log", self.logs_a.len()));
        self.logs_a.push(log.clone());
        self.a = Daemon::start_with_log_level(
            "gwA",
            &self.topo.gw_a,
            &self.cfg_a,
            &self.sock_a,
            log,
            self.opts.log_level.as_deref(),
        );
    }

    /// Starts gwB again with a new log file.
    pub fn restart_b(&mut self) {
        let log = self
            .dir
            .join(&format!("ironsecd-b.{}.log", self.logs_b.len()));
        self.logs_b.push(log.clone());
        self.b = Daemon::start_with_log_level(
            "gwB",
            &self.topo.gw_b,
            &self.cfg_b,
            &self.sock_b,
            log,
            self.opts.log_level.as_deref(),
        );
    }

    fn all_logs(paths: &[PathBuf]) -> String {
        let mut s = String::new();
        for (i, p) in paths.iter().enumerate() {
            if paths.len() > 1 {
                s.push_str(&format!("=== daemon start #{i} ({}) ===\n", p.display()));
            }
            s.push_str(&fs::read_to_string(p).unwrap_or_default());
        }
        s
    }

    /// Everything gwA logged, over all its starts.
    pub fn log_a(&self) -> String {
        Self::all_logs(&self.logs_a)
    }

    pub fn log_b(&self) -> String {
        Self::all_logs(&self.logs_b)
    }

    /// Both logs, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "----- gwA log -----\n{}\n----- gwB log -----\n{}",
            self.log_a(),
            self.log_b()
        )
    }

    /// Waits (bounded) until both sides show an established IKE SA with a CHILD_SA installed
    /// in both directions; returns how long that took.
    pub fn wait_up(&self, timeout: Duration) -> Result<Duration, String> {
        let t0 = Instant::now();
        let mut last = (Value::Null, Value::Null);
        let ok = poll_until(timeout, || {
            let (sa, sb) = match (ctl_status(&self.a.socket), ctl_status(&self.b.socket)) {
                (Ok(a), Ok(b)) => (a, b),
                _ => return false,
            };
            let up = tunnel_up(&sa) && tunnel_up(&sb);
            last = (sa, sb);
            up
        });
        if ok {
            Ok(t0.elapsed())
        } else {
            Err(format!(
                "tunnel not up within {timeout:?}\ngwA status: {:#}\ngwB status: {:#}\n{}",
                last.0,
                last.1,
                self.logs()
            ))
        }
    }
}

impl Drop for IkeLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "[test] IKE lab {} failed; logs kept in {} (gwA: {:?}, gwB: {:?})",
                self.topo.prefix,
                self.dir.path.display(),
                self.logs_a,
                self.logs_b
            );
        }
    }
}

/// The first tunnel's `ike` object of a status document, if any.
pub fn ike_of(st: &Value) -> Option<&Value> {
    st.pointer(&format!("{T0}/ike")).filter(|v| !v.is_null())
}

/// The first tunnel has an established IKE SA with at least one CHILD_SA, and SAs installed
/// for both directions.
pub fn tunnel_up(st: &Value) -> bool {
    let Some(ike) = ike_of(st) else { return false };
    ike["state"] == "established"
        && ike["children"].as_u64().unwrap_or(0) >= 1
        && st
            .pointer(&format!("{T0}/outbound"))
            .is_some_and(|v| !v.is_null())
        && st
            .pointer(&format!("{T0}/inbound"))
            .is_some_and(|v| !v.is_null())
}
