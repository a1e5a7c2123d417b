//! The Debian package: built by `packaging/build-deb.sh` (cargo-deb), installed with the real
//! `dpkg -i` into a throwaway root, proven to work there without starting the daemon, then
//! removed and purged with dpkg.
//!
//! The throwaway root: a private mount namespace (`unshare --mount --propagation private`) held
//! open by a `sleep` that dies with the test (`setpriv --pdeathsig KILL`, and a [`Root`] guard
//! that kills it by PID). In it a tmpfs holds an overlayfs whose lower layer is the host's `/`,
//! with its own /proc, /dev (the five harmless device nodes), /run and /tmp. Every command runs
//! as `nsenter --target PID --mount chroot ROOT env -i ...`, so dpkg sees the host's installed
//! packages (iproute2, libc6, man-db, systemd) and its database, and everything it writes (the
//! files, /var/lib/dpkg, /var/log/dpkg.log, the man-db cache) lands on the tmpfs, which is gone
//! with the namespace. No systemd runs there, so the maintainer scripts cannot start anything
//! even by mistake; the test checks that they did not enable the unit either. Afterwards the
//! host's dpkg status of `ironsec` and the paths the package installs are checked unchanged.
//!
//! Needs root (mounts, dpkg) and cargo-deb (tests/install-deps.sh installs both it and the
//! Debian tools used: man-db, systemd's systemd-analyze, util-linux): without them it FAILS,
//! it never skips. Builds the release binaries (shared with netns-scripts' release build).
//!
//! Run: `cargo test -p ironsecd --test package -- --include-ignored --nocapture`

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

const PACKAGE: &str = "ironsec";
/// What the package installs that the host must not have (and must still not have after).
const HOST_PATHS: &[&str] = &[
    "/usr/sbin/ironsecd",
    "/usr/sbin/ironsecctl",
    "/usr/lib/systemd/system/ironsecd.service",
    "/etc/ironsec/ironsecd.toml",
    "/usr/share/doc/ironsec",
    "/usr/share/man/man8/ironsecd.8.gz",
];

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `dpkg-query` status of the package on the host ("" when dpkg never heard of it).
fn host_status() -> String {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status} ${Version}", PACKAGE])
        .output()
        .expect("run dpkg-query (Debian's dpkg)");
    text(&out.stdout)
}

/// The host's state the test must not change: dpkg's view and the installed paths.
fn host_state() -> (String, Vec<(&'static str, bool)>) {
    let paths = HOST_PATHS
        .iter()
        .map(|p| (*p, Path::new(p).symlink_metadata().is_ok()))
        .collect();
    (host_status(), paths)
}

/// The throwaway root. Dropping it kills the namespace holder by PID, which takes the mounts,
/// the tmpfs and everything installed with it.
struct Root {
    holder: BgProc,
    /// The overlay's mount point, a path inside the namespace only.
    dir: PathBuf,
    _scratch: TempDir,
}

impl Root {
    /// Mounts the root in a new mount namespace, with `debs` bound read-only at /mnt/pkg.
    fn new(debs: &Path) -> Root {
        let scratch = TempDir::new("package-root");
        let base = scratch.path.clone();
        let root = base.join("root");
        // The host sees only the empty directory: every mount below is in the new namespace.
        let script = r#"
set -euo pipefail
base=$1 debs=$2 r=$1/root
mount -t tmpfs -o mode=0700 ironsec-package-test "$base"
mkdir "$base/upper" "$base/work" "$r"
mount -t overlay overlay -o "lowerdir=/,upperdir=$base/upper,workdir=$base/work" "$r"
mount -t proc proc "$r/proc"
mount -t tmpfs -o mode=0755 tmpfs "$r/dev"
for n in null zero full random urandom; do
    touch "$r/dev/$n"
    mount --bind "/dev/$n" "$r/dev/$n"
done
mount -t tmpfs -o mode=0755 tmpfs "$r/run"
mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
mkdir -p "$r/mnt/pkg"
mount --bind "$debs" "$r/mnt/pkg"
mount -o remount,bind,ro "$r/mnt/pkg"
echo ready
exec setpriv --pdeathsig KILL sleep 1800
"#;
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "bash",
            "-c",
            script,
            "root",
        ])
        .arg(&base)
        .arg(debs);
        let mut holder = BgProc::spawn("namespace holder", cmd, scratch.join("holder.log"));
        let ready = poll_until(Duration::from_secs(20), || {
            holder.log_text().contains("ready") || holder.try_wait().is_some()
        });
        assert!(
            ready && holder.log_text().contains("ready"),
            "the throwaway root did not come up (overlayfs over / in a private mount namespace):\n{}",
            holder.log_text()
        );
        Root {
            holder,
            dir: root,
            _scratch: scratch,
        }
    }

    /// `ARGS` inside the root with a clean environment; its output, whatever the exit status.
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("nsenter");
        cmd.arg("--target")
            .arg(self.holder.pid().to_string())
            .args(["--mount", "--", "chroot"])
            .arg(&self.dir)
            .args([
                "env",
                "-i",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                "LC_ALL=C.UTF-8",
                "HOME=/root",
                "TERM=dumb",
                "MANWIDTH=100",
                "DEBIAN_FRONTEND=noninteractive",
            ])
            .args(args);
        run_timeout(&mut cmd, Duration::from_secs(120))
    }

    /// `ARGS` inside the root, which must succeed; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "in the package root, {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// A shell command line inside the root, which must succeed; returns stdout.
    fn sh(&self, script: &str) -> String {
        self.ok(&["sh", "-euc", script])
    }

    fn exists(&self, path: &str) -> bool {
        self.run(&["test", "-e", path]).status.success()
    }

    fn status(&self) -> String {
        text(
            &self
                .run(&["dpkg-query", "-W", "-f", "${Status} ${Version}", PACKAGE])
                .stdout,
        )
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        self.holder.stop(libc::SIGKILL, Duration::from_secs(5));
    }
}

/// Builds the package with the script the README documents; returns the .deb.
fn build_package() -> PathBuf {
    let start = Instant::now();
    let mut cmd = Command::new("bash");
    cmd.arg(workspace_root().join("packaging/build-deb.sh"));
    let out = run_timeout(&mut cmd, Duration::from_secs(40 * 60));
    assert!(
        out.status.success(),
        "packaging/build-deb.sh failed ({}); is cargo-deb installed (tests/install-deps.sh)?\n\
         stdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    let deb = PathBuf::from(stdout.lines().last().unwrap_or("").trim());
    assert!(
        deb.extension().is_some_and(|e| e == "deb") && deb.is_file(),
        "build-deb.sh did not end with the path of a .deb: {stdout}"
    );
    println!(
        "[package] built {} ({} KiB) in {:.0?}",
        deb.display(),
        deb.metadata().map(|m| m.len() / 1024).unwrap_or(0),
        start.elapsed()
    );
    deb
}

/// The commit `--version` must name: what build.rs read from the same work tree.
fn expected_commit() -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(workspace_root())
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .expect("run git");
    assert!(out.status.success(), "git rev-parse: {}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

/// The example's commented `[[connection]]` block, uncommented: what an operator gets by
/// deleting the `# ` in front of each of its lines. The block ends at the first blank line
/// (the commented tables after it, such as `[drain]`, stay commented).
fn uncomment_connection(example: &str) -> String {
    let mut out = String::new();
    let mut in_block = false;
    for line in example.lines() {
        if line.trim_end() == "# [[connection]]" {
            in_block = true;
        } else if line.trim().is_empty() {
            in_block = false;
        }
        let body = line.strip_prefix("# ").unwrap_or(line);
        let setting = body.split_once(" = ").is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        });
        if in_block && (setting || body == "[[connection]]") {
            out.push_str(body);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[test]
#[ignore = "needs root and cargo-deb"]
fn deb_installs_works_and_removes_cleanly() {
    require_root();
    let _serial = serial();
    let host_before = host_state();
    assert!(
        host_before.0.is_empty() || host_before.0.contains("not-installed"),
        "the host has the {PACKAGE} package ({}); the throwaway root is a copy of the host's, \
         so this test needs a host without it",
        host_before.0
    );

    let deb = build_package();
    let deb_name = deb.file_name().unwrap().to_str().unwrap().to_string();
    let root = Root::new(deb.parent().unwrap());
    let pkg = format!("/mnt/pkg/{deb_name}");

    // --- Install. The path-include options keep the man pages and docs on images whose dpkg
    // excludes /usr/share/{man,doc} (minimal containers); a no-op elsewhere.
    let start = Instant::now();
    let install = root.ok(&[
        "dpkg",
        "--path-include=/usr/share/man/man8/ironsec*",
        "--path-include=/usr/share/doc/ironsec/*",
        "-i",
        &pkg,
    ]);
    println!("[package] dpkg -i in {:.1?}:\n{install}", start.elapsed());
    let version = root.status();
    assert!(
        version.starts_with("install ok installed "),
        "dpkg status after install: {version:?}"
    );

    // --- What dpkg says it installed: every expected file, nothing outside the package's
    // directories.
    let listed = root.ok(&["dpkg", "-L", PACKAGE]);
    let files: Vec<&str> = listed.lines().collect();
    for want in [
        "/usr/sbin/ironsecd",
        "/usr/sbin/ironsecctl",
        "/usr/lib/systemd/system/ironsecd.service",
        "/etc/ironsec/ironsecd.toml",
        "/usr/share/doc/ironsec/README.md",
        "/usr/share/doc/ironsec/copyright",
        "/usr/share/doc/ironsec/changelog.Debian.gz",
        "/usr/share/doc/ironsec/examples/ike-gw-a.toml",
        "/usr/share/doc/ironsec/examples/fragment-example/conf.d/site-c.toml",
        "/usr/share/man/man8/ironsecd.8.gz",
        "/usr/share/man/man8/ironsecd-check.8.gz",
        "/usr/share/man/man8/ironsecctl.8.gz",
        "/usr/share/man/man8/ironsecctl-initiate.8.gz",
        "/usr/share/bash-completion/completions/ironsecd",
        "/usr/share/bash-completion/completions/ironsecctl",
        "/usr/share/zsh/vendor-completions/_ironsecd",
        "/usr/share/zsh/vendor-completions/_ironsecctl",
        "/usr/share/fish/vendor_completions.d/ironsecd.fish",
        "/usr/share/fish/vendor_completions.d/ironsecctl.fish",
    ] {
        assert!(
            files.contains(&want),
            "dpkg -L {PACKAGE} lacks {want}:\n{listed}"
        );
    }
    const ALLOWED: &[&str] = &[
        "/.",
        "/etc",
        "/etc/ironsec",
        "/usr",
        "/usr/sbin",
        "/usr/share",
        "/usr/lib",
        "/usr/lib/systemd",
        "/usr/share/man",
        "/usr/share/bash-completion",
        "/usr/share/zsh",
        "/usr/share/fish",
    ];
    const ALLOWED_UNDER: &[&str] = &[
        "/etc/ironsec/",
        "/usr/sbin/ironsec",
        "/usr/lib/systemd/system",
        "/usr/share/doc",
        "/usr/share/man/man8",
        "/usr/share/bash-completion/completions",
        "/usr/share/zsh/vendor-completions",
        "/usr/share/fish/vendor_completions.d",
    ];
    for f in &files {
        assert!(
            ALLOWED.contains(f) || ALLOWED_UNDER.iter().any(|p| f.starts_with(p)),
            "unexpected path in the package: {f}"
        );
    }
    let conffiles = root.ok(&["dpkg-query", "-W", "-f", "${Conffiles}", PACKAGE]);
    let conffiles: Vec<&str> = conffiles
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(conffiles, ["/etc/ironsec/ironsecd.toml"], "conffiles");

    // --- Modes: the config tree is root's only (keys live there).
    let modes = root.ok(&[
        "stat",
        "-c",
        "%a %U %n",
        "/etc/ironsec",
        "/etc/ironsec/conf.d",
        "/etc/ironsec/ironsecd.toml",
        "/usr/sbin/ironsecd",
        "/usr/sbin/ironsecctl",
    ]);
    assert_eq!(
        modes,
        "700 root /etc/ironsec\n700 root /etc/ironsec/conf.d\n644 root /etc/ironsec/ironsecd.toml\n\
         755 root /usr/sbin/ironsecd\n755 root /usr/sbin/ironsecctl\n"
    );

    // --- The binaries name their commit.
    let commit = expected_commit();
    for bin in ["ironsecd", "ironsecctl"] {
        let v = root.ok(&[bin, "--version"]);
        assert!(
            v.starts_with(&format!("{bin} {} ({commit}", env!("CARGO_PKG_VERSION"))),
            "{bin} --version: {v:?}, expected commit {commit}"
        );
        println!("[package] {}", v.trim());
    }
    let help = root.ok(&["ironsecd", "--help"]);
    assert!(
        help.contains("IRONSEC_GATEWAY__<KEY>") && help.contains("SIGHUP"),
        "{help}"
    );

    // --- The shipped config passes check as installed; so does its commented connection once
    // uncommented and given its key file.
    let check = root.ok(&[
        "ironsecd",
        "check",
        "--config",
        "/etc/ironsec/ironsecd.toml",
    ]);
    assert_eq!(
        check.trim(),
        "/etc/ironsec/ironsecd.toml: OK (0 connections from /etc/ironsec/ironsecd.toml)"
    );
    let example = root.ok(&["cat", "/etc/ironsec/ironsecd.toml"]);
    let with_conn = uncomment_connection(&example);
    assert_ne!(
        with_conn, example,
        "no commented [[connection]] found in the example"
    );
    // The key file made as the example's comment says, with the installed ironsecctl.
    root.ok(&[
        "sh",
        "-euc",
        "mkdir -m 0700 /tmp/site && printf '%s' \"$1\" > /tmp/site/ironsecd.toml && \
         ironsecctl genpsk /tmp/site/site-b.psk",
        "sh",
        &with_conn,
    ]);
    assert!(
        example.contains("ironsecctl genpsk /etc/ironsec/site-b.psk"),
        "the example no longer says how to make its key file"
    );
    let check = root.ok(&["ironsecd", "check", "--config", "/tmp/site/ironsecd.toml"]);
    assert!(
        check.contains("OK (1 connection from"),
        "the example's connection, uncommented: {check}"
    );

    // --- Man pages: found by name, rendered, no groff warnings; the subcommand pages too.
    assert_eq!(
        root.ok(&["man", "-w", "ironsecd"]).trim(),
        "/usr/share/man/man8/ironsecd.8.gz"
    );
    let page = root.ok(&["man", "-P", "cat", "ironsecd"]);
    for want in [
        "ironsecd - ironsec IPsec gateway daemon",
        "ENVIRONMENT",
        "IRONSEC_GATEWAY__<KEY>",
        "SIGNALS",
        "SIGHUP",
        "ironsecd-check(8)",
        &commit,
    ] {
        assert!(page.contains(want), "man ironsecd lacks {want:?}:\n{page}");
    }
    for name in [
        "ironsecd",
        "ironsecd-check",
        "ironsecd-cleanup",
        "ironsecctl",
        "ironsecctl-initiate",
    ] {
        let out = root.run(&["man", "--warnings", "-P", "cat", name]);
        assert!(
            out.status.success() && text(&out.stderr).trim().is_empty(),
            "man {name}: {}\n{}",
            out.status,
            text(&out.stderr)
        );
    }
    assert!(
        root.ok(&["man", "-P", "cat", "ironsecctl-initiate"])
            .contains("--timeout"),
        "man ironsecctl-initiate lacks --timeout"
    );

    // --- Completions: bash and fish complete a subcommand for real, zsh parses its script.
    let bash = root.ok(&[
        "bash",
        "-c",
        "source /usr/share/bash-completion/completions/ironsecctl
         fn=$(complete -p ironsecctl | sed -n 's/.* -F \\([^ ]*\\) .*/\\1/p')
         COMP_WORDS=(ironsecctl ini); COMP_CWORD=1; COMP_LINE='ironsecctl ini'; COMP_POINT=14
         \"$fn\" ironsecctl ini ironsecctl
         printf '%s\\n' \"${COMPREPLY[@]}\"",
    ]);
    assert_eq!(
        bash.trim(),
        "initiate",
        "bash completion of `ironsecctl ini`"
    );
    // fish loads vendor_completions.d by itself, as it would for an operator.
    let fish = root.ok(&["fish", "-c", "complete -C 'ironsecctl ini'"]);
    assert!(
        fish.starts_with("initiate\t"),
        "fish completion of `ironsecctl ini`: {fish:?}"
    );
    for f in ["_ironsecd", "_ironsecctl"] {
        root.ok(&[
            "zsh",
            "-n",
            &format!("/usr/share/zsh/vendor-completions/{f}"),
        ]);
    }

    // --- The installed unit: runs the installed binaries, passes systemd-analyze verify, points
    // at documentation that exists; not enabled, not started.
    let unit = root.ok(&["cat", "/usr/lib/systemd/system/ironsecd.service"]);
    assert!(unit.contains("\nExecStart=/usr/sbin/ironsecd --config /etc/ironsec/ironsecd.toml\n"));
    assert!(unit.contains("\nExecReload=/usr/sbin/ironsecctl "));
    assert!(
        !unit.contains("/usr/local"),
        "the packaged unit names /usr/local:\n{unit}"
    );
    assert!(
        unit.contains("\nRuntimeDirectory=ironsec\n")
            && unit.contains("\nRuntimeDirectoryMode=0700\n")
    );
    assert!(root.exists("/usr/share/doc/ironsec/README.md"));
    let verify = root.run(&[
        "systemd-analyze",
        "verify",
        "--man=no",
        "--recursive-errors=no",
        "/usr/lib/systemd/system/ironsecd.service",
    ]);
    // On Debian 12 it prints nothing for a good unit; lines about other units (the host's,
    // pulled in as dependencies) do not count, as in tests/systemd_unit.rs.
    let said = format!("{}{}", text(&verify.stdout), text(&verify.stderr));
    assert!(
        verify.status.success() && !said.lines().any(|l| l.contains("ironsec")),
        "systemd-analyze verify of the installed unit ({}):\n{said}",
        verify.status
    );
    assert!(
        !root
            .run(&["deb-systemd-helper", "was-enabled", "ironsecd.service"])
            .status
            .success(),
        "the package enabled ironsecd.service"
    );
    assert!(!root.exists("/etc/systemd/system/multi-user.target.wants/ironsecd.service"));
    assert!(
        !root.exists("/run/ironsec"),
        "something ran ironsecd (/run/ironsec exists)"
    );

    // --- Reinstall (the upgrade path of the maintainer scripts): the operator's edit of the
    // conffile and their mode of /etc/ironsec stay.
    root.sh(
        "echo '# edited by the operator' >> /etc/ironsec/ironsecd.toml; chmod 0750 /etc/ironsec",
    );
    root.ok(&["dpkg", "-i", &pkg]);
    assert!(root
        .ok(&["cat", "/etc/ironsec/ironsecd.toml"])
        .contains("# edited by the operator"));
    assert_eq!(root.ok(&["stat", "-c", "%a", "/etc/ironsec"]).trim(), "750");

    // --- Remove: the files go, the conffile stays; purge: the config tree goes too.
    root.ok(&["dpkg", "-r", PACKAGE]);
    assert_eq!(
        root.status(),
        format!("deinstall ok config-files {}-1", env!("CARGO_PKG_VERSION"))
    );
    for gone in [
        "/usr/sbin/ironsecd",
        "/usr/sbin/ironsecctl",
        "/usr/lib/systemd/system/ironsecd.service",
        "/usr/share/man/man8/ironsecd.8.gz",
        "/usr/share/doc/ironsec",
        "/usr/share/bash-completion/completions/ironsecctl",
    ] {
        assert!(!root.exists(gone), "{gone} left after dpkg -r");
    }
    assert!(
        root.exists("/etc/ironsec/ironsecd.toml"),
        "dpkg -r must keep the conffile"
    );
    root.ok(&["dpkg", "-P", PACKAGE]);
    assert!(
        !root.exists("/etc/ironsec"),
        "/etc/ironsec left after dpkg -P"
    );
    assert_eq!(root.status(), "", "dpkg still knows {PACKAGE} after purge");

    // --- The host never saw any of it.
    drop(root);
    assert_eq!(
        host_state(),
        host_before,
        "the host's dpkg status or files changed"
    );
    println!("[package] host unchanged: {:?}", host_before.0);
}
