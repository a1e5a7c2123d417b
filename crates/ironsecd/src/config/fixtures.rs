//! Test fixtures: a hub's config with one `conf.d` fragment per site, as a config manager
//! writes it, for the tests and benches of loading and reloading many connections.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Site `i`'s fragment: one IKE connection `s{i}` with two tunnels (active-standby) to
/// addresses of its own, its own remote subnet, the shared PSK file. `dpd` sets its
/// `dpd_interval`: what a test changes to make the site's SAs change.
pub(crate) fn site(i: usize, dpd: u32) -> String {
    let (hi, lo) = (i / 256, i % 256);
    format!(
        "[[connection]]\nname = \"s{i}\"\nkeying = \"ike\"\nlocal_id = \"hub.example\"\n\
         remote_id = \"s{i}.example\"\npsk_file = \"../site.psk\"\n\
         local_ts = [\"10.{}.{lo}.0/24\"]\nremote_ts = [\"10.{}.{lo}.0/24\"]\n\
         ike_proposals = [\"aes128gcm16-prfsha256-x25519\"]\nesp_proposals = [\"aes128gcm16\"]\n\
         mode = \"active-standby\"\nstart_action = \"none\"\ndpd_interval = {dpd}\n\
         tunnels = [ {{ local = \"192.0.2.1\", remote = \"100.64.{hi}.{lo}\" }}, \
         {{ local = \"198.51.100.1\", remote = \"100.65.{hi}.{lo}\" }} ]\n",
        64 + hi,
        128 + hi
    )
}

/// The path of site `i`'s fragment in the hub config whose main file is `main`.
pub(crate) fn fragment(main: &Path, i: usize) -> PathBuf {
    main.parent()
        .unwrap_or(Path::new(""))
        .join(super::FRAGMENT_DIR)
        .join(format!("site-{i:05}.toml"))
}

/// Writes a hub config into `dir` (which exists): `ironsecd.toml` with `[gateway]` only,
/// `site.psk`, and `conf.d/site-NNNNN.toml` for sites `0..n`. Returns the main file.
pub(crate) fn hub(dir: &Path, n: usize) -> PathBuf {
    let main = dir.join("ironsecd.toml");
    std::fs::write(
        &main,
        "[gateway]\ntun = \"hub0\"\nport = 4500\nike_port = 500\n",
    )
    .unwrap();
    let psk = dir.join("site.psk");
    std::fs::write(&psk, "a-long-enough-secret-phrase-0123\n").unwrap();
    std::fs::set_permissions(&psk, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::create_dir_all(dir.join(super::FRAGMENT_DIR)).unwrap();
    for i in 0..n {
        std::fs::write(fragment(&main, i), site(i, 0)).unwrap();
    }
    main
}

/// Sizes from the variable `var` (comma-separated counts), else `default`.
pub(crate) fn sizes(var: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(var)
        .ok()
        .map(|v| {
            v.split(',')
                .map(|n| n.trim().parse().expect("comma-separated counts"))
                .collect()
        })
        .unwrap_or_else(|| default.to_vec())
}

/// A directory of its own under the temp dir, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!(
            "ironsec-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
