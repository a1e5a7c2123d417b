//! Helpers of the unit tests of several modules (compiled for tests only).

use std::path::PathBuf;

use crate::config::Config;

/// A config file `ironsecd.toml` in a directory of its own (removed on drop), named by the
/// test's tag, the process and the thread, so that tests running side by side never share one.
pub(crate) struct ConfFile(pub(crate) PathBuf);

impl ConfFile {
    pub(crate) fn new(tag: &str, body: &str) -> ConfFile {
        let d = std::env::temp_dir().join(format!(
            "ironsec-conf-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("ironsecd.toml");
        std::fs::write(&p, body).unwrap();
        ConfFile(p)
    }

    /// The file loaded with no environment; panics with the error if it does not load.
    pub(crate) fn load(&self) -> Config {
        Config::load_with_env(&self.0, Vec::new()).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for ConfFile {
    fn drop(&mut self) {
        if let Some(d) = self.0.parent() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Hands each plane's IKE datagrams to the other until neither has any (two planes wired
/// back to back, as the benches and the scale tests of several modules use them).
pub(crate) fn settle(
    a: &mut crate::plane::Plane,
    b: &mut crate::plane::Plane,
    now: std::time::Instant,
) {
    loop {
        let mut moved = false;
        for a_to_b in [true, false] {
            let (from, to) = if a_to_b {
                (&mut *a, &mut *b)
            } else {
                (&mut *b, &mut *a)
            };
            from.drain_events(now);
            while let Some(t) = from.poll_transmit() {
                to.on_ike_datagram(now, t.remote, t.local, &t.payload);
                moved = true;
            }
        }
        if !moved {
            return;
        }
    }
}
