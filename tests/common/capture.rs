//! Packet captures: tcpdump under guard in a namespace.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{ns_cmd, poll_until, BgProc};

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
