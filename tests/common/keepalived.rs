//! keepalived (Debian `keepalived`, 2.2.7) under guard in a gateway namespace: VRRP moving a
//! shared address between two gateways (tests/ha_active_standby.rs).
//!
//! Each instance runs in the foreground (`-n`), logging to its output (`-l -D`), with its own
//! pid files (`-p`, `-r`, `-c`) in the test's directory, so instances in several namespaces
//! never share one. keepalived forks a VRRP child: the guard kills the parent by PID and the
//! child by the PID in its pid file, so nothing outlives a test, whatever the parent did.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{ns_cmd, poll_until, run_timeout, BgProc};

pub const KEEPALIVED: &str = "keepalived";

pub struct Keepalived {
    pub name: String,
    pub ns: String,
    pub config: PathBuf,
    /// The VRRP child's pid file (`-r`).
    pub vrrp_pidfile: PathBuf,
    pub proc_: BgProc,
}

impl Keepalived {
    /// Starts `keepalived -f CONFIG -p DIR/NAME.ka.pid -r DIR/NAME.vrrp.pid -c
    /// DIR/NAME.check.pid -n -l -D` in `ns`, its output in DIR/NAME.ka.out, and waits (up to
    /// 5 s) for its VRRP child's pid file.
    pub fn start(name: &str, ns: &str, config: &Path, dir: &Path) -> Keepalived {
        let pid = |what: &str| dir.join(format!("{name}.{what}.pid"));
        let vrrp_pidfile = pid("vrrp");
        let mut cmd = ns_cmd(ns, KEEPALIVED);
        cmd.arg("-f")
            .arg(config)
            .arg("-p")
            .arg(pid("ka"))
            .arg("-r")
            .arg(&vrrp_pidfile)
            .arg("-c")
            .arg(pid("check"))
            .args(["-n", "-l", "-D"]);
        let proc_ = BgProc::spawn(
            &format!("keepalived {name}"),
            cmd,
            dir.join(format!("{name}.ka.out")),
        );
        let mut k = Keepalived {
            name: name.to_string(),
            ns: ns.to_string(),
            config: config.to_path_buf(),
            vrrp_pidfile,
            proc_,
        };
        let started = poll_until(Duration::from_secs(5), || {
            k.vrrp_pid().is_some() || k.proc_.try_wait().is_some()
        });
        assert!(
            started && k.proc_.try_wait().is_none(),
            "keepalived {name} did not start:\n{}",
            k.log_text()
        );
        k
    }

    /// The parent's PID.
    pub fn pid(&self) -> u32 {
        self.proc_.pid()
    }

    /// The VRRP child's PID, once it has written its pid file.
    pub fn vrrp_pid(&self) -> Option<u32> {
        std::fs::read_to_string(&self.vrrp_pidfile)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// What keepalived logged so far.
    pub fn log_text(&self) -> String {
        self.proc_.log_text()
    }

    /// SIGTERM: keepalived gives up mastership cleanly (advertises priority 0, removes its
    /// virtual addresses), the backup takes over at once: a planned handover.
    pub fn stop(&mut self) {
        let child = self.vrrp_pid();
        self.proc_.stop(libc::SIGTERM, Duration::from_secs(5));
        if let Some(p) = child {
            kill_if_alive(p, libc::SIGKILL);
        }
    }

    /// SIGKILL of the VRRP child and the parent: no priority 0, no address removed (a dead
    /// host, together with its links going down).
    pub fn kill(&mut self) {
        if let Some(p) = self.vrrp_pid() {
            kill_if_alive(p, libc::SIGKILL);
        }
        self.proc_.stop(libc::SIGKILL, Duration::from_secs(5));
    }

    /// Waits until `addr` (e.g. "192.0.2.10") is on an interface of this instance's
    /// namespace: it is master. Returns whether it was within `timeout`.
    pub fn wait_master(&self, addr: &str, timeout: Duration) -> bool {
        poll_until(timeout, || holds(&self.ns, addr))
    }
}

/// Whether `addr` is on an interface of namespace `ns` (`ip -n NS -o addr show`).
pub fn holds(ns: &str, addr: &str) -> bool {
    let out = run_timeout(
        Command::new("ip").args(["-n", ns, "-o", "addr", "show"]),
        Duration::from_secs(5),
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .any(|w| w.split('/').next() == Some(addr))
}

/// Signals `pid` if it is still a keepalived process (a pid file can outlive its process,
/// and the number be reused).
fn kill_if_alive(pid: u32, sig: libc::c_int) {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() == KEEPALIVED {
        // SAFETY: kill() takes plain integers; the PID is a process this test started.
        unsafe { libc::kill(pid as libc::pid_t, sig) };
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        let child = self.vrrp_pid();
        if let Some(mut c) = self.proc_.child.take() {
            super::terminate(&mut c, libc::SIGTERM, Duration::from_secs(3));
        }
        if let Some(p) = child {
            kill_if_alive(p, libc::SIGKILL);
        }
        // BgProc's own drop shows the output when the test failed.
    }
}
