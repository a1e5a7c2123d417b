//! Runs `netns-scripts/route-scale.sh` (route-based connections at scale: setup time, hub
//! memory, idle CPU, TCP through the first and the last connection) the way an operator would,
//! at a tiny scale, so the script does not rot between the sessions that measure with it: 3
//! route-based connections and the 1-connection baseline, with the binaries this test suite
//! built (IRONSECD, IRONSECCTL). It checks the report, not the figures: every connection up on
//! both sides before and after the idle window, a vti device per connection, setup time,
//! memory and CPU figures present, the window idle, and a TCP stream through the first and the
//! last connection that the hub's own vti1 and vti3 carried (so the static routes and the
//! per-connection devices really steer each site's traffic), and no namespace left behind.
//! Also checks that bad options are refused, which needs no root.
//!
//! The run needs root: `#[ignore = "needs root"]` (tests/run.sh runs it); FAILS, never skips,
//! without it.
//!
//! Run: `cargo test -p ironsecd --test route_scale_script -- --include-ignored --nocapture`

mod common;

use std::process::Command;

use serde_json::Value;

use common::{
    require_root, run_json_script, serial, unique_prefix, workspace_root, IRONSECCTL, IRONSECD,
};

fn script() -> Command {
    let mut c = Command::new("bash");
    c.arg(workspace_root().join("netns-scripts/route-scale.sh"));
    c
}

/// `v[key]` as f64, panicking with the whole object when it is missing or not a number.
fn number(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no number {key} in {v:#}"))
}

/// Bytes one TCP stream of 2 s must at least have put through the connection's device on the
/// hub (the slowest debug build moves hundreds of megabytes; a stream that went elsewhere puts
/// nothing there).
const MIN_STREAM_BYTES: f64 = 1_000_000.0;

/// One measurement's object: `connections` connections, all up on both sides before and after
/// the window, figures present, the window idle, the TCP streams through the right devices.
fn check_case(c: &Value, connections: u64) {
    assert_eq!(c["connections"], connections, "{c:#}");
    assert_eq!(c["converged"], true, "bring-up did not converge: {c:#}");
    for key in [
        "hub_interfaces",
        "connections_up_hub",
        "connections_up_spoke",
        "connections_up_hub_after",
    ] {
        assert_eq!(c[key], connections, "{key}: {c:#}");
    }
    for key in [
        "hub_start_secs",
        "spoke_start_secs",
        "setup_secs",
        "negotiate_secs",
        "setup_per_sec",
        "hub_rss_kib",
        "hub_hwm_kib",
        "hub_rss_per_connection_kib",
        "hub_status_secs",
        "hub_status_bytes",
        "hub_stop_secs",
        "spoke_stop_secs",
    ] {
        assert!(number(c, key) > 0.0, "{key}: {c:#}");
    }
    // Each connection's IKE_SA_INIT and IKE_AUTH at least; what bring-up lost, present.
    assert!(
        number(c, "hub_ike_received") >= (2 * connections) as f64,
        "{c:#}"
    );
    for key in [
        "hub_ike_queue_dropped",
        "hub_ike_half_open_dropped",
        "hub_ike_cookies_sent",
        "hub_udp_rcvbuf_errors",
        "spoke_ike_retransmits_sent",
        "spoke_udp_rcvbuf_errors",
    ] {
        assert!(number(c, key) >= 0.0, "{key}: {c:#}");
    }
    for key in ["tcp_cpu_busy_pct", "tcp_cpu_steal_pct"] {
        let v = number(c, key);
        assert!((0.0..=100.0).contains(&v), "{key} = {v}: {c:#}");
    }
    // Slab and per-CPU memory of the whole machine: present, its sign up to what else runs.
    number(c, "kernel_kib");
    number(c, "kernel_per_connection_kib");
    assert!(number(c, "window_secs") >= 2.0, "{c:#}");
    for key in ["hub_cpu_pct", "spoke_cpu_pct"] {
        let v = number(c, key);
        assert!((0.0..=200.0).contains(&v), "{key} = {v}: {c:#}");
    }
    for key in ["hub_cpu_pct_schedstat", "spoke_cpu_pct_schedstat"] {
        let v = number(c, key);
        assert!(v > 0.0 && v <= 200.0, "{key} = {v}: {c:#}");
    }
    assert_eq!(
        c["hub_ike_received_during"], 0,
        "IKE messages during an idle window (DPD is off): {c:#}"
    );
    assert_eq!(c["tcp_first_interface"], "vti1", "{c:#}");
    assert_eq!(
        c["tcp_last_interface"],
        format!("vti{connections}"),
        "{c:#}"
    );
    for which in ["first", "last"] {
        assert!(number(c, &format!("tcp_{which}_mbps")) > 0.0, "{c:#}");
        let runs = c[format!("tcp_{which}_runs_mbps")]
            .as_array()
            .unwrap_or_else(|| panic!("no tcp_{which}_runs_mbps: {c:#}"));
        assert_eq!(runs.len(), 1, "--tcp-runs 1: {c:#}");
        assert!(
            number(c, &format!("tcp_{which}_interface_bytes")) > MIN_STREAM_BYTES,
            "the {which} connection's device on the hub carried (almost) nothing of its \
             stream: {c:#}"
        );
    }
}

#[test]
#[ignore = "needs root"]
fn tiny_run_reports_setup_memory_cpu_and_tcp_through_each_end_and_cleans_up() {
    require_root();
    let _serial = serial();
    let prefix = format!("r{}", unique_prefix());
    let json = run_json_script(
        "route-scale.sh",
        Command::new("timeout")
            .args(["-k", "10", "300", "bash"])
            .arg(workspace_root().join("netns-scripts/route-scale.sh"))
            .args([
                "--connections",
                "3",
                "--seconds",
                "2",
                "--tcp-seconds",
                "2",
                "--tcp-runs",
                "1",
                "--settle",
                "1",
                "--timeout",
                "60",
                "--baseline",
                "--json",
            ])
            .env("IRONSECD", IRONSECD)
            .env("IRONSECCTL", IRONSECCTL)
            .env("IRONSEC_ROUTE_SCALE_PREFIX", &prefix),
        &prefix,
    )
    .json;
    assert_eq!(json["ironsecd"], IRONSECD, "not the binary the suite built");
    assert!(
        json["conditions"]
            .as_str()
            .is_some_and(|c| c.contains("route-based") && c.contains("DPD off")),
        "the report does not say what was measured: {json:#}"
    );
    assert_eq!(json["tcp_runs"], 1, "{json:#}");
    check_case(&json, 3);
    check_case(&json["baseline"], 1);
    for key in ["tcp_first_vs_baseline", "tcp_last_vs_baseline"] {
        assert!(number(&json, key) > 0.0, "{key}: {json:#}");
    }
    number(&json, "hub_rss_marginal_per_connection_kib");
}

#[test]
fn bad_options_are_refused() {
    for (args, expect) in [
        (
            &["--connections", "0"][..],
            "--connections must be 1..10000",
        ),
        (
            &["--connections", "10001"][..],
            "--connections must be 1..10000",
        ),
        (&["--tcp-runs", "many"][..], "--tcp-runs must be 1..20"),
        (&["--tcp-seconds", "0"][..], "--tcp-seconds must be 1..600"),
        (&["--nope"][..], "unknown option '--nope'"),
    ] {
        let out = script().args(args).output().expect("run route-scale.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted {args:?}");
        assert!(
            stderr.contains(expect),
            "{args:?}: expected '{expect}' in: {stderr}"
        );
    }
}
