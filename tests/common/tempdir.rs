//! A per-test directory under /tmp for configs, keys, sockets, logs and captures.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

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
