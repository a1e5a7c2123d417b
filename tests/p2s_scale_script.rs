//! Runs `netns-scripts/p2s-scale.sh` (remote access at scale: N EAP-MSCHAPv2 clients of one
//! gateway, their setup rate, the gateway's memory per client, idle CPU and status time) the
//! way an operator would, at a small scale, so the script and its load client
//! (crates/ironsecd/examples/p2s_load.rs) do not rot between the sessions that measure with
//! them: 50 clients started at once, with the binaries this test suite built (IRONSECD,
//! IRONSECCTL, and the p2s_load example of the same profile, built here if missing). It checks
//! the report, not the figures: every client up as the client sees it and as the gateway lists
//! it (its tunnel up, an address of its own, the pool's online count), the figures present, no
//! client lost over an idle window in which DPD ran (every 2 s: the load client answered it),
//! every IKE SA deleted at the end and the gateway's client list empty after, and no namespace
//! left behind. Also checks that bad options are refused, which needs no root.
//!
//! The run needs root: `#[ignore = "needs root"]` (tests/run.sh runs it); FAILS, never skips,
//! without it.
//!
//! Run: `cargo test -p ironsecd --test p2s_scale_script -- --include-ignored --nocapture`

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use common::{
    require_root, run_json_script, serial, unique_prefix, workspace_root, IRONSECCTL, IRONSECD,
};

const CLIENTS: u64 = 50;

fn script() -> Command {
    let mut c = Command::new("bash");
    c.arg(workspace_root().join("netns-scripts/p2s-scale.sh"));
    c
}

fn number(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no number {key} in {v:#}"))
}

/// The p2s_load example beside IRONSECD (target/<profile>/examples), built with the same
/// profile and target directory if it is not there yet (`cargo test --test` builds no
/// examples).
fn load_client() -> PathBuf {
    let bin_dir = Path::new(IRONSECD).parent().expect("IRONSECD's directory");
    let exe = bin_dir.join("examples/p2s_load");
    if exe.exists() {
        return exe;
    }
    let target_dir = bin_dir.parent().expect("the target directory");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(workspace_root())
        .args([
            "build",
            "--locked",
            "-p",
            "ironsecd",
            "--example",
            "p2s_load",
        ])
        .arg("--target-dir")
        .arg(target_dir);
    if bin_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let st = build.status().expect("run cargo build --example p2s_load");
    assert!(st.success(), "cargo build --example p2s_load failed");
    assert!(exe.exists(), "{} not built", exe.display());
    exe
}

#[test]
#[ignore = "needs root"]
fn fifty_clients_connect_stay_through_dpd_and_leave_and_the_report_says_so() {
    require_root();
    let _serial = serial();
    let load = load_client();
    let prefix = format!("p{}", unique_prefix());
    let j = run_json_script(
        "p2s-scale.sh",
        Command::new("timeout")
            .args(["-k", "10", "240", "bash"])
            .arg(workspace_root().join("netns-scripts/p2s-scale.sh"))
            .args([
                "--clients",
                &CLIENTS.to_string(),
                "--seconds",
                "3",
                "--settle",
                "1",
                "--dpd",
                "2",
                "--timeout",
                "90",
                "--json",
            ])
            .env("IRONSECD", IRONSECD)
            .env("IRONSECCTL", IRONSECCTL)
            .env("P2S_LOAD", &load)
            .env("IRONSEC_P2S_SCALE_PREFIX", &prefix),
        &prefix,
    )
    .json;
    assert_eq!(j["ironsecd"], IRONSECD, "not the binary the suite built");
    assert!(
        j["conditions"]
            .as_str()
            .is_some_and(|c| c.contains("EAP-MSCHAPv2") && c.contains("ironsec's own IKE engine")),
        "the report does not say what was measured: {j:#}"
    );
    assert_eq!(j["converged"], true, "{j:#}");
    assert_eq!(j["ok"], true, "{j:#}");
    assert_eq!(
        j["pool"], "10.100.0.0/26",
        "the smallest pool for 50: {j:#}"
    );
    for key in [
        "clients",
        "up",
        "gw_clients",
        "gw_clients_up",
        "gw_distinct_addresses",
        "pool_online",
        "gw_clients_after_window",
        "deleted",
    ] {
        assert_eq!(j[key], CLIENTS, "{key}: {j:#}");
    }
    assert_eq!(j["failed"], 0, "{j:#}");
    assert_eq!(j["lost"], 0, "clients lost during the idle window: {j:#}");
    assert_eq!(j["gw_clients_after_delete"], 0, "{j:#}");
    assert_eq!(j["pool_size"], 62, "{j:#}");
    assert_eq!(j["first_vip"], "10.100.0.1", "{j:#}");
    for key in [
        "setup_secs",
        "setup_per_sec",
        "client_setup_median_secs",
        "client_setup_p95_secs",
        "client_setup_max_secs",
        "rss_before_kib",
        "rss_after_kib",
        "hwm_kib",
        "status_json_secs",
        "status_json_bytes",
        "status_text_secs",
        "leases_secs",
        "rss_after_delete_kib",
    ] {
        assert!(number(&j, key) > 0.0, "{key}: {j:#}");
    }
    // Each client's IKE_SA_INIT and its four IKE_AUTH requests at least.
    assert!(
        number(&j, "gw_ike_received") >= (5 * CLIENTS) as f64,
        "{j:#}"
    );
    for key in [
        "client_retransmits",
        "gw_ike_queue_dropped",
        "gw_ike_half_open_dropped",
        "gw_ike_cookies_sent",
        "gw_ike_queue_dropped_end",
        "gw_udp_rcvbuf_errors",
        "client_udp_rcvbuf_errors",
        "load_client_cpu_pct",
        "gw_cpu_pct",
    ] {
        assert!(number(&j, key) >= 0.0, "{key}: {j:#}");
    }
    number(&j, "rss_per_client_kib");
    assert!(number(&j, "window_secs") >= 3.0, "{j:#}");
    let v = number(&j, "gw_cpu_pct_schedstat");
    assert!(v > 0.0 && v <= 200.0, "gw_cpu_pct_schedstat = {v}: {j:#}");
    // DPD every 2 s over a 3 s window: the gateway heard the clients' answers.
    assert!(
        number(&j, "gw_ike_received_during") >= CLIENTS as f64,
        "no DPD answers during the window: {j:#}"
    );
}

#[test]
fn bad_options_are_refused() {
    for (args, expect) in [
        (&["--clients", "0"][..], "--clients must be 1..10000"),
        (&["--clients", "10001"][..], "--clients must be 1..10000"),
        (&["--rate", "fast"][..], "--rate must be 0..10000"),
        (&["--seconds", "0"][..], "--seconds must be 1..3600"),
        (&["--nope"][..], "unknown option '--nope'"),
    ] {
        let out = script().args(args).output().expect("run p2s-scale.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted {args:?}");
        assert!(
            stderr.contains(expect),
            "{args:?}: expected '{expect}' in: {stderr}"
        );
    }
}
