//! The daemon's config loader: `Config::load` on the fuzz input as a file never panics, and a
//! config it accepts can be turned into the daemon's control plane (`Plane::new`, its tables,
//! initiating the `start` tunnels) without panicking either, as `ironsecd` does right after
//! loading. Secret files a config may name are fixed, valid and 0600:
//! `/tmp/ironsec-fuzz-config/static.keys` and `/tmp/ironsec-fuzz-config/site.psk`.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use ironsecd::config::Config;
use libfuzzer_sys::fuzz_target;

fn input_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = ironsec_fuzz::config_fixture_dir();
        dir.join(format!("input-{}.toml", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = input_path();
    std::fs::write(path, data).expect("write the fuzz input");
    match Config::load(path) {
        Ok(cfg) => {
            let _ = cfg.local_addrs();
            if let Ok(plane) = ironsecd::plane::Plane::new(cfg, 1) {
                let mut plane = plane;
                let _ = plane.tables();
                let _ = plane.ike_addrs();
                plane.start_tunnels(Instant::now());
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
