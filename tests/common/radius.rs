//! freeradius 3 (Debian's `freeradius`, tests/install-deps.sh) as the RADIUS server of a
//! remote-access test (docs/plan-issue-24-remote-access.md 4.3): its own copy of
//! /etc/freeradius/3.0 in the test directory (log, pid file and run dir there, no user
//! switch), one client (the gateway) with a random secret and Message-Authenticator required,
//! users with NT-Password (never a cleartext password), the eap module with EAP-MSCHAPv2 only
//! (no TLS: no certificates needed). Run in the foreground (`-f`) in a namespace, killed by PID
//! on drop ([`BgProc`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::{ns_cmd, run_ok, BgProc};

pub const FREERADIUS: &str = "/usr/sbin/freeradius";

pub struct FreeRadius {
    pub dir: PathBuf,
    pub secret: String,
    pub log: PathBuf,
    pub proc_: Option<BgProc>,
    ns: String,
}

/// A random secret (hex) for the client entry.
pub fn random_secret() -> String {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl FreeRadius {
    /// Writes the config into `dir` (users: (name, NT hash as 32 hex digits)), the gateway's
    /// address as seen by the server `nas`, and starts it in `ns` (waits for "Ready to process
    /// requests").
    pub fn start(ns: &str, dir: &Path, nas: &str, users: &[(&str, &str)]) -> FreeRadius {
        assert!(
            Path::new(FREERADIUS).exists(),
            "{FREERADIUS} missing: run tests/install-deps.sh (freeradius)"
        );
        let raddb = dir.join("raddb");
        let _ = std::fs::remove_dir_all(&raddb);
        run_ok(
            Command::new("cp")
                .arg("-a")
                .arg("/etc/freeradius/3.0")
                .arg(&raddb),
            Duration::from_secs(10),
        );
        let d = dir.display().to_string();
        let conf = raddb.join("radiusd.conf");
        let text = std::fs::read_to_string(&conf).unwrap();
        let text: String = text
            .lines()
            .filter(|l| {
                let t = l.trim_start();
                !(t.starts_with("user = ") || t.starts_with("group = "))
            })
            .map(|l| {
                if l.starts_with("logdir = ") {
                    format!("logdir = {d}")
                } else if l.starts_with("raddbdir = ") {
                    format!("raddbdir = {}", raddb.display())
                } else if l.starts_with("run_dir = ") {
                    format!("run_dir = {d}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&conf, text).unwrap();
        std::fs::write(
            raddb.join("mods-available/eap"),
            "eap {\n\tdefault_eap_type = mschapv2\n\ttimer_expire = 60\n\t\
             ignore_unknown_eap_types = no\n\tcisco_accounting_username_bug = no\n\t\
             max_sessions = ${max_requests}\n\tmd5 {\n\t}\n\tmschapv2 {\n\t}\n}\n",
        )
        .unwrap();
        let secret = random_secret();
        std::fs::write(
            raddb.join("clients.conf"),
            format!(
                "client ironsec {{\n\tipaddr = {nas}\n\tsecret = {secret}\n\t\
                 require_message_authenticator = yes\n\tnas_type = other\n}}\n"
            ),
        )
        .unwrap();
        let mut authorize = String::new();
        for (user, hash) in users {
            authorize.push_str(&format!("{user}\tNT-Password := 0x{hash}\n"));
        }
        std::fs::write(raddb.join("mods-config/files/authorize"), authorize).unwrap();
        let log = dir.join("radius.log");
        let mut r = FreeRadius {
            dir: dir.to_path_buf(),
            secret,
            log: log.clone(),
            proc_: None,
            ns: ns.to_string(),
        };
        r.run();
        r
    }

    /// Starts (again) with the config written by [`FreeRadius::start`].
    pub fn run(&mut self) {
        let mut cmd = ns_cmd(&self.ns, FREERADIUS);
        cmd.arg("-X").arg("-d").arg(self.dir.join("raddb"));
        let out = self.dir.join("radius.out");
        let _ = std::fs::remove_file(&out);
        let mut p = BgProc::spawn("freeradius", cmd, out);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = p.try_wait() {
                panic!("freeradius exited during startup ({st}):\n{}", p.log_text());
            }
            if p.log_text().contains("Ready to process requests") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "freeradius not ready within 15 s:\n{}",
                p.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.proc_ = Some(p);
    }

    /// Kills it by PID (the "server down" case).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc_.take() {
            p.stop(libc::SIGTERM, Duration::from_secs(5));
        }
    }

    /// freeradius's debug output (`-X`) so far.
    pub fn output(&self) -> String {
        self.proc_
            .as_ref()
            .map(|p| p.log_text())
            .unwrap_or_else(|| {
                std::fs::read_to_string(self.dir.join("radius.out")).unwrap_or_default()
            })
    }
}
