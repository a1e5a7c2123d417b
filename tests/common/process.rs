//! Child processes with deadlines: run to completion, or run in the background under a guard
//! that kills them by PID; `ip netns exec` commands; bounded polling.

use std::fs::{self, File};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) takes no pointers. Only ever a PID this test spawned itself.
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
