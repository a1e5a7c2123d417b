//! The kernel's view inside a namespace, read with `ip -j`: routes (what BIRD installed) and
//! interface packet counters. Shared by the BGP labs, which all ask the same questions of
//! the kernel rather than of BIRD: the kernel is what forwards.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{poll_until, run_ok};

/// Routes of the kernel's main table in `ns` for exactly `prefix` (`ip -j route show exact`),
/// of either family (`ip` shows IPv4 unless told `-6`, even for an IPv6 prefix).
pub fn kernel_routes(ns: &str, prefix: &str) -> Vec<Value> {
    let family = if prefix.contains(':') { "-6" } else { "-4" };
    let out = run_ok(
        Command::new("ip").args(["-n", ns, family, "-j", "route", "show", "exact", prefix]),
        Duration::from_secs(5),
    );
    let s = String::from_utf8_lossy(&out.stdout);
    if s.trim().is_empty() {
        return Vec::new();
    }
    serde_json::from_str::<Value>(&s)
        .unwrap_or_else(|e| panic!("ip -j route: {e}: {s}"))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// `ip route show` in `ns`, for failure messages.
pub fn route_table(ns: &str) -> String {
    String::from_utf8_lossy(
        &run_ok(
            Command::new("ip").args(["-n", ns, "route", "show"]),
            Duration::from_secs(5),
        )
        .stdout,
    )
    .into_owned()
}

/// Whether `ns` routes `prefix` into `dev` through BIRD (proto bird, metric 32).
pub fn has_bird_route(ns: &str, prefix: &str, dev: &str) -> bool {
    kernel_routes(ns, prefix)
        .iter()
        .any(|r| r["dev"] == dev && r["protocol"] == "bird" && r["metric"] == 32)
}

/// Waits until `ns`'s kernel table routes `prefix` into interface `dev` through BIRD (proto
/// bird, metric 32); returns how long it took. Panics with the table if it does not within
/// `timeout`.
pub fn wait_kernel_route(ns: &str, prefix: &str, dev: &str, timeout: Duration) -> Duration {
    let t0 = Instant::now();
    let found = poll_until(timeout, || has_bird_route(ns, prefix, dev));
    assert!(
        found,
        "{ns}: no route for {prefix} via {dev} (proto bird, metric 32) within {timeout:?}:\n{}",
        route_table(ns)
    );
    t0.elapsed()
}

/// Packets (received, sent) by interface `dev` in `ns`.
pub fn link_packets(ns: &str, dev: &str) -> (u64, u64) {
    let out = run_ok(
        Command::new("ip").args(["-n", ns, "-j", "-s", "link", "show", "dev", dev]),
        Duration::from_secs(5),
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v[0]["stats64"];
    (
        s["rx"]["packets"].as_u64().unwrap_or(0),
        s["tx"]["packets"].as_u64().unwrap_or(0),
    )
}
