//! Puts the git commit the binaries are built from into `IRONSEC_COMMIT` (read by
//! `cli::VERSION`, so `ironsecd --version` and `ironsecctl --version` name it): an operator
//! reporting a problem, or a package test, can then tell exactly which source a binary is.
//!
//! - In a git checkout of this workspace: `git rev-parse --short=12 HEAD`, plus `-dirty` when the
//!   sources compiled into the binaries (each workspace crate's `src/`, `build.rs` and
//!   `Cargo.toml`, the workspace's `Cargo.toml` and `Cargo.lock`) differ from that commit,
//!   untracked files there included.
//! - Otherwise (a source package or tarball, no git, or a checkout of some other repository
//!   around the sources): the `IRONSEC_COMMIT` environment variable of the build, as a
//!   packager who knows the commit sets it, else `unknown commit`.
//!
//! The script reruns when HEAD moves (`git rev-parse --git-path` finds HEAD, the branch's ref
//! and `packed-refs` in worktrees too) and when any of those sources changes, so `-dirty`
//! appears and disappears with edits. Not on edits elsewhere (tests, docs), nor on index
//! changes (`git add` does not change what differs from HEAD): each rerun recompiles this crate.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The sources compiled into the binaries, relative to the workspace root (existing ones only):
/// what decides `-dirty` and what reruns this script.
fn sources(root: &Path) -> Vec<String> {
    let mut paths = vec!["Cargo.toml".to_string(), "Cargo.lock".to_string()];
    let mut crates: Vec<String> = std::fs::read_dir(root.join("crates"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    crates.sort();
    for c in crates {
        for f in ["src", "build.rs", "Cargo.toml"] {
            paths.push(format!("crates/{c}/{f}"));
        }
    }
    paths.retain(|p| root.join(p).exists());
    paths
}

fn main() {
    println!("cargo:rerun-if-env-changed=IRONSEC_COMMIT");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest.join("../..");
    let commit = match git_commit(&root) {
        Some(c) => c,
        None => std::env::var("IRONSEC_COMMIT")
            .ok()
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "unknown commit".to_string()),
    };
    println!("cargo:rustc-env=IRONSEC_COMMIT={commit}");
}

/// `git ARGS` in `dir`; its trimmed stdout when it succeeded.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    // --no-optional-locks: `git status` would otherwise refresh and rewrite the index, whose
    // change would rerun this script on every build.
    let out = Command::new("git")
        .arg("--no-optional-locks")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The commit (with `-dirty`) when `root` is the top of a git work tree, with the rerun
/// triggers that keep it right; None otherwise.
fn git_commit(root: &Path) -> Option<String> {
    let top = git(root, &["rev-parse", "--show-toplevel"])?;
    // Sources unpacked inside some other repository (a packaging repository, say) are not
    // built from that repository's HEAD.
    if Path::new(&top).canonicalize().ok()? != root.canonicalize().ok()? {
        return None;
    }
    let hash = git(root, &["rev-parse", "--short=12", "HEAD"])?;

    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(root, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(p) = git(root, &["rev-parse", "--git-path", &name]) {
            let p = root.join(p);
            // A missing file (no packed-refs yet) would make cargo rerun the script every
            // build; it appears only together with a change to HEAD or the branch ref.
            if p.exists() {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    }
    let sources = sources(root);
    for s in &sources {
        println!("cargo:rerun-if-changed={}", root.join(s).display());
    }

    let mut status = vec!["status", "--porcelain", "--untracked-files=normal", "--"];
    status.extend(sources.iter().map(String::as_str));
    let dirty = match git(root, &status) {
        Some(s) => !s.is_empty(),
        // Cannot tell: do not claim a clean build.
        None => true,
    };
    Some(if dirty { format!("{hash}-dirty") } else { hash })
}
