//! Runs `netns-scripts/idle-hub.sh` (the idle control-plane cost measurement) the way an
//! operator would, at a tiny scale, so the script does not rot between the sessions that
//! measure with it: 2 connections (4 tunnels) and the 1-connection baseline, 3 s each, with the
//! binaries this test suite built (IRONSECD, IRONSECCTL). It checks the report, not the
//! figures: every tunnel up on both sides before and after the window, a bring-up time, CPU
//! figures present (the schedstat ones above zero: a live daemon always runs a little), no IKE
//! message during the window (DPD off, no traffic: the window really was idle), and no
//! namespace left behind. Also checks that bad options are refused, which needs no root.
//!
//! The run needs root: `#[ignore = "needs root"]` (tests/run.sh runs it); FAILS, never skips,
//! without it.
//!
//! Run: `cargo test -p ironsecd --test idle_hub_script -- --include-ignored --nocapture`

mod common;

use std::process::Command;

use serde_json::Value;

use common::{
    require_root, run_json_script, serial, unique_prefix, workspace_root, IRONSECCTL, IRONSECD,
};

fn script() -> Command {
    let mut c = Command::new("bash");
    c.arg(workspace_root().join("netns-scripts/idle-hub.sh"));
    c
}

/// `v[key]` as f64, panicking with the whole object when it is missing or not a number.
fn number(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no number {key} in {v:#}"))
}

/// One measurement's object: `tunnels` tunnels, all up on both sides before and after the
/// window, figures present, the window idle.
fn check_case(c: &Value, connections: u64, window: f64) {
    let tunnels = connections * 2;
    assert_eq!(c["connections"], connections, "{c:#}");
    assert_eq!(c["tunnels"], tunnels, "{c:#}");
    assert_eq!(c["converged"], true, "bring-up did not converge: {c:#}");
    for key in [
        "tunnels_up_hub",
        "tunnels_up_peer",
        "tunnels_up_hub_after",
        "tunnels_up_peer_after",
    ] {
        assert_eq!(c[key], tunnels, "{key}: {c:#}");
    }
    assert!(number(c, "bringup_secs") > 0.0, "{c:#}");
    assert!(number(c, "hub_status_secs") > 0.0, "{c:#}");
    assert!(number(c, "window_secs") >= window, "{c:#}");
    for key in ["hub_cpu_pct", "peer_cpu_pct"] {
        let v = number(c, key);
        assert!((0.0..=200.0).contains(&v), "{key} = {v}: {c:#}");
    }
    for key in ["hub_cpu_pct_schedstat", "peer_cpu_pct_schedstat"] {
        let v = number(c, key);
        assert!(v > 0.0 && v <= 200.0, "{key} = {v}: {c:#}");
    }
    assert_eq!(
        c["hub_ike_received_during"], 0,
        "IKE messages during an idle window (DPD is off): {c:#}"
    );
}

#[test]
#[ignore = "needs root"]
fn tiny_run_reports_tunnels_up_and_cpu_and_cleans_up() {
    require_root();
    let _serial = serial();
    let prefix = format!("i{}", unique_prefix());
    let json = run_json_script(
        "idle-hub.sh",
        Command::new("timeout")
            .args(["-k", "10", "240", "bash"])
            .arg(workspace_root().join("netns-scripts/idle-hub.sh"))
            .args([
                "--connections",
                "2",
                "--seconds",
                "3",
                "--settle",
                "1",
                "--timeout",
                "60",
                "--baseline",
                "--json",
            ])
            .env("IRONSECD", IRONSECD)
            .env("IRONSECCTL", IRONSECCTL)
            .env("IRONSEC_IDLE_PREFIX", &prefix),
        &prefix,
    )
    .json;
    assert_eq!(json["ironsecd"], IRONSECD, "not the binary the suite built");
    assert!(
        json["conditions"]
            .as_str()
            .is_some_and(|c| c.contains("DPD off") && c.contains("no traffic")),
        "the report does not say what was measured: {json:#}"
    );
    check_case(&json, 2, 3.0);
    check_case(&json["baseline"], 1, 3.0);
    for key in ["hub_cpu_ratio", "peer_cpu_ratio"] {
        assert!(number(&json, key) > 0.0, "{key}: {json:#}");
    }
}

#[test]
fn bad_options_are_refused() {
    for (args, expect) in [
        (
            &["--connections", "0"][..],
            "--connections must be 1..16000",
        ),
        (&["--pace", "fast"][..], "--pace must be a whole number"),
        (&["--nope"][..], "unknown option '--nope'"),
    ] {
        let out = script().args(args).output().expect("run idle-hub.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted {args:?}");
        assert!(
            stderr.contains(expect),
            "{args:?}: expected '{expect}' in: {stderr}"
        );
    }
}
