//! The IKE lab: topology + PSK files + two daemons configured from conf/ike-gw-{a,b}.toml
//! (A initiates: start_action = "start"; B responds: start_action = "none").

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{
    ctl_status, example_config, hex, poll_until, random_bytes, require_root, rewrite_toml_lines,
    toml_str, tunnel_up, unique_prefix, write_secret, Daemon, TempDir, Topology,
};

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
    /// Lines appended to the connection table (the example's last), e.g. volume lifetimes.
    pub conn_extra: String,
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
    /// A program (and its arguments) that runs both daemons, e.g. a sandbox; empty: none.
    pub wrapper: Vec<String>,
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
            conn_extra: String::new(),
        };
        IkeLabOpts {
            a: side.clone(),
            b: side,
            log_level: None,
            wrapper: Vec::new(),
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
            write_secret(&psk, format!("{}\n", side.psk_text));
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
            let text = text + &side.conn_extra;
            let cfg = dir.join(&format!("gw-{tag}.toml"));
            fs::write(&cfg, text).unwrap();
            (cfg, sock)
        };
        let (cfg_a, sock_a) = write("ike-gw-a.toml", &opts.a, "a");
        let (cfg_b, sock_b) = write("ike-gw-b.toml", &opts.b, "b");
        let level = opts.log_level.clone();
        let log_b = dir.join("ironsecd-b.0.log");
        let b = Daemon::start_wrapped(
            "gwB",
            &topo.gw_b,
            &cfg_b,
            &sock_b,
            log_b.clone(),
            level.as_deref(),
            &[],
            &opts.wrapper,
        );
        let log_a = dir.join("ironsecd-a.0.log");
        let a = Daemon::start_wrapped(
            "gwA",
            &topo.gw_a,
            &cfg_a,
            &sock_a,
            log_a.clone(),
            level.as_deref(),
            &[],
            &opts.wrapper,
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
        self.restart_a_with_env(&self.logs_a.len().to_string(), &[]);
    }

    /// Like [`IkeLab::restart_a`], with extra environment variables (a fault to inject, a
    /// notify socket) and the log DIR/ironsecd-a.TAG.log.
    pub fn restart_a_with_env(&mut self, tag: &str, env: &[(&str, String)]) {
        let log = self.dir.join(&format!("ironsecd-a.{tag}.log"));
        self.logs_a.push(log.clone());
        self.a = Daemon::start_wrapped(
            "gwA",
            &self.topo.gw_a,
            &self.cfg_a,
            &self.sock_a,
            log,
            self.opts.log_level.as_deref(),
            env,
            &self.opts.wrapper,
        );
    }

    /// Starts gwB again with a new log file.
    pub fn restart_b(&mut self) {
        let log = self
            .dir
            .join(&format!("ironsecd-b.{}.log", self.logs_b.len()));
        self.logs_b.push(log.clone());
        self.b = Daemon::start_wrapped(
            "gwB",
            &self.topo.gw_b,
            &self.cfg_b,
            &self.sock_b,
            log,
            self.opts.log_level.as_deref(),
            &[],
            &self.opts.wrapper,
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
