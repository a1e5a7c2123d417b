//! ironsecd under guard in a gateway namespace, and ironsecctl against its control socket.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{ns_cmd, run_timeout, BgProc, IRONSECCTL, IRONSECD};

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
        Daemon::start_wrapped(name, ns, config, socket, log, level, env, &[])
    }

    /// Like [`Daemon::start_with_env`], with ironsecd run by `wrapper` (a program and its
    /// arguments, ironsecd's command line appended), e.g. tests/tools/unit_sandbox.py.
    /// An empty `wrapper` runs ironsecd directly.
    #[allow(clippy::too_many_arguments)]
    pub fn start_wrapped(
        name: &str,
        ns: &str,
        config: &Path,
        socket: &Path,
        log: PathBuf,
        level: Option<&str>,
        env: &[(&str, String)],
        wrapper: &[String],
    ) -> Daemon {
        let mut cmd = match wrapper.split_first() {
            Some((prog, args)) => {
                let mut c = ns_cmd(ns, prog);
                c.args(args).arg(IRONSECD);
                c
            }
            None => ns_cmd(ns, IRONSECD),
        };
        cmd.arg("--config").arg(config);
        Daemon::start_command(name, ns, cmd, config, socket, log, level, env)
    }

    /// ironsecd started by `cmd` (already naming the binary and `--config`), e.g. wrapped
    /// to run in a mount namespace of its own; otherwise as [`Daemon::start_with_env`].
    #[allow(clippy::too_many_arguments)]
    pub fn start_command(
        name: &str,
        ns: &str,
        mut cmd: Command,
        config: &Path,
        socket: &Path,
        log: PathBuf,
        level: Option<&str>,
        env: &[(&str, String)],
    ) -> Daemon {
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
