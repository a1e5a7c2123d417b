//! No core dump of ironsecd holds key material (issue 19, finding 5: an aborted daemon's core
//! held three raw copies of the PSK).
//!
//! The daemon runs a PSK tunnel (the PSK, IKE and ESP keys all in memory), in a private
//! working directory, and the test turns core dumps on for it from outside the way an operator
//! would (`prlimit --core=unlimited`, which root may do whatever limit the daemon set). Then
//! SIGABRT. The judges are the kernel's: the wait status's core-dumped flag (WCOREDUMP, set
//! whenever a dump was written, to a file or to a `core_pattern` pipe handler alike), and no
//! core file where `core_pattern` says. The global `core_pattern` is read, never changed.
//! Before the fix both fail, and the core that appears is searched for the PSK's bytes so the
//! failure says how many copies it held.
//!
//! Needs root: `#[ignore = "needs root"]`. Run:
//! `cargo test -p ironsecd --test core_dumps -- --include-ignored --test-threads=1 --nocapture`

mod common;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const UP_TIMEOUT: Duration = Duration::from_secs(15);

/// `Max core file size` of /proc/PID/limits: (soft, hard) as printed.
fn core_limit(pid: u32) -> (String, String) {
    let text = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap_or_else(|| panic!("no core limit in\n{text}"));
    let mut w = line["Max core file size".len()..].split_whitespace();
    (w.next().unwrap().into(), w.next().unwrap().into())
}

/// Core files in `dir` (a relative `core_pattern` names them from the dying process's cwd).
fn cores_in(dir: &Path, pattern: &str) -> Vec<PathBuf> {
    // The pattern's fixed prefix, up to its first %-specifier.
    let prefix = pattern.split('%').next().unwrap_or("core");
    let prefix = if prefix.is_empty() { "core" } else { prefix };
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect()
}

/// Runs gcore on `pid` from a process with every capability but CAP_SYS_PTRACE; the core
/// file it wrote, if any.
fn gcore_without_ptrace_cap(dir: &Path, pid: u32) -> Option<PathBuf> {
    let prefix = dir.join("gcore");
    let out = run_timeout(
        std::process::Command::new("capsh").args([
            "--drop=cap_sys_ptrace",
            "--",
            "-c",
            &format!("exec gcore -o {} {pid}", prefix.display()),
        ]),
        Duration::from_secs(60),
    );
    let core = PathBuf::from(format!("{}.{pid}", prefix.display()));
    println!(
        "gcore of {pid} without CAP_SYS_PTRACE: {} ({})",
        out.status,
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .chain(String::from_utf8_lossy(&out.stdout).lines())
            .filter(|l| l.contains("ptrace") || l.contains("Saved") || l.contains("attach"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    core.exists().then_some(core)
}

/// A child killed when dropped (the control process of the gcore judge).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

#[test]
#[ignore = "needs root"]
fn an_aborted_daemon_with_core_dumps_enabled_writes_no_core() {
    let _s = serial();
    require_root();
    let mut lab = IkeLab::start(IkeLabOpts::default());
    lab.wait_up(UP_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));

    // gwA again, in a working directory of its own where a relative core_pattern would put
    // its core, started with core dumps on (soft and hard limit unlimited), as from a shell
    // after `ulimit -c unlimited` or a unit with LimitCORE=infinity.
    let cwd = lab.dir.join("cwd-a");
    fs::create_dir(&cwd).unwrap();
    lab.a.stop();
    let log = lab.dir.join("ironsecd-a.cwd.log");
    lab.logs_a.push(log.clone());
    let mut cmd = std::process::Command::new("prlimit");
    cmd.args(["--core=unlimited:unlimited", "--"])
        .args(["ip", "netns", "exec", &lab.topo.gw_a, IRONSECD])
        .arg("--config")
        .arg(&lab.cfg_a)
        .current_dir(&cwd);
    lab.a = Daemon::start_command(
        "gwA",
        &lab.topo.gw_a,
        cmd,
        &lab.cfg_a,
        &lab.sock_a,
        log,
        None,
        &[],
    );
    lab.wait_up(UP_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    let pid = lab.a.proc_.pid();
    let psk = lab.opts.a.psk_bytes();

    // The daemon's own limit: 0, soft and hard, whatever it inherited.
    assert_eq!(core_limit(pid), ("0".into(), "0".into()), "RLIMIT_CORE");

    // gcore, as an operator without CAP_SYS_PTRACE would run it (same uid, every other
    // capability): it must not get a core of the daemon. First the judge itself, on a
    // process that is dumpable and holds no capability gcore lacks (ptrace needs the
    // tracer's capabilities to cover the tracee's, as they cover the daemon's two): there
    // gcore does work.
    let control = std::process::Command::new("capsh")
        .args(["--drop=cap_sys_ptrace", "--", "-c", "exec sleep 30"])
        .spawn()
        .unwrap();
    let mut control = KillOnDrop(control);
    let control_core = gcore_without_ptrace_cap(&cwd, control.0.id());
    assert!(
        control_core.is_some(),
        "gcore without CAP_SYS_PTRACE could not dump a plain process: the judge is broken"
    );
    let _ = control.0.kill();
    let _ = control.0.wait();
    if let Some(core) = gcore_without_ptrace_cap(&cwd, pid) {
        let bytes = fs::read(&core).unwrap_or_default();
        panic!(
            "gcore dumped gwA to {} ({} bytes, {} copies of the PSK)",
            core.display(),
            bytes.len(),
            count(&bytes, &psk)
        );
    }
    for f in cores_in(&cwd, "gcore") {
        fs::remove_file(f).unwrap();
    }

    // Root with CAP_SYS_RESOURCE could raise the limit again from outside; where the test
    // holds it, it does, so the abort below then checks PR_SET_DUMPABLE alone.
    let raised = run_timeout(
        std::process::Command::new("prlimit").args([
            "--pid",
            &pid.to_string(),
            "--core=unlimited:unlimited",
        ]),
        Duration::from_secs(5),
    )
    .status
    .success();
    println!(
        "RLIMIT_CORE of gwA raised from outside before the abort: {raised} ({})",
        if raised {
            "the abort tests PR_SET_DUMPABLE alone"
        } else {
            "no CAP_SYS_RESOURCE here: the abort tests both locks together"
        }
    );

    let pattern = fs::read_to_string("/proc/sys/kernel/core_pattern")
        .unwrap()
        .trim()
        .to_string();
    // SAFETY: kill(2) of the daemon this test started, by its PID.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGABRT) }, 0);
    let status = lab.a.proc_.wait_exit(Duration::from_secs(30));
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{status}");

    // Where a core would be: the daemon's cwd for a relative pattern, the pattern's directory
    // for an absolute one; a pipe handler's output has no place this test may look.
    let dir = match pattern.strip_prefix('|') {
        Some(_) => None,
        None if pattern.starts_with('/') => Path::new(&pattern).parent().map(Path::to_path_buf),
        None => Some(cwd.clone()),
    };
    let file_pattern = Path::new(&pattern)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cores = dir
        .as_deref()
        .map(|d| cores_in(d, &file_pattern))
        .unwrap_or_default();
    let copies: Vec<String> = cores
        .iter()
        .map(|c| {
            let bytes = fs::read(c).unwrap_or_default();
            format!(
                "{} ({} bytes, {} copies of the PSK)",
                c.display(),
                bytes.len(),
                count(&bytes, &psk)
            )
        })
        .collect();
    println!(
        "core_pattern {pattern:?}: gwA {status}, core dumped: {}, core files: {copies:?}",
        status.core_dumped()
    );
    assert!(
        !status.core_dumped(),
        "the kernel wrote a core of gwA: {copies:?}"
    );
    // A core from this test run only (a core_pattern directory may hold others' cores, so
    // only files naming this PID count there).
    let ours: Vec<&String> = copies
        .iter()
        .filter(|c| dir.as_deref() == Some(cwd.as_path()) || c.contains(&pid.to_string()))
        .collect();
    assert!(ours.is_empty(), "core files: {ours:?}");
}
