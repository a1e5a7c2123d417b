//! Runs `netns-scripts/bench.sh` the way an operator would, briefly, so the benchmark script
//! does not rot between the sessions that measure with it: one quick run of no tunnel, of
//! ironsec (IKEv2, AES-128-GCM, the freshly built debug binaries via IRONSEC_BIN_DIR) and of the
//! null forwarder (the dataplane's example, built here if `cargo test` did not) with the RTT and
//! UDP figures only, with `--lan-gro` (the LAN interfaces' GRO tuning, so that path of
//! the script runs too). It checks the report, not the numbers: every selected figure
//! measured and positive, the figures left out reported as not measured (null), UDP "arrived"
//! at least what iperf3 received, a loss line per UDP run in the log, and no namespace left
//! behind. Also checks that a bad `--figures` value is refused.
//!
//! A second quick run covers `--wan both`: the ironsec case over the IPv4 WAN and again over
//! the IPv6 one (RTT and UDP only): both measured, the second really between the IPv6 WAN
//! addresses (the tunnel's endpoints as ironsecctl reports them), and the report's
//! IPv6/IPv4 ratios present and positive. A bad `--wan` value is refused.
//!
//! The quick run needs root and iperf3 (tests/install-deps.sh): `#[ignore = "needs root"]`
//! (tests/run.sh runs it); FAILS, never skips, without them.
//!
//! Run: `cargo test -p ironsecd --test bench_script -- --include-ignored --nocapture`

mod common;

use std::path::Path;
use std::process::Command;

use common::{
    require_root, run_json_script, serial, unique_prefix, workspace_root, ScriptReport, IRONSECD,
};

#[test]
#[ignore = "needs root"]
fn quick_run_reports_selected_figures_and_cleans_up() {
    require_root();
    let _serial = serial();
    let prefix = format!("b{}", unique_prefix());
    let bin_dir = Path::new(IRONSECD).parent().expect("binary directory");
    // `cargo test --workspace` builds the example next to the binaries; a run of this test
    // alone does not, so build it. With the workspace's features, as `cargo test --workspace`
    // unifies them, this is a no-op after that.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let release = bin_dir.ends_with("release");
    let mut build = Command::new(cargo);
    // The variables cargo sets for a test (CARGO_PKG_NAME, CARGO_MANIFEST_DIR, ...) would make
    // build scripts that watch them (ring's) run again and rebuild the crates above them.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_") && k != "CARGO_HOME" && k != "CARGO_TARGET_DIR" {
            build.env_remove(&*k);
        }
    }
    let built = build
        .args(["build", "--workspace", "--examples"])
        .args(release.then_some("--release"))
        .current_dir(workspace_root())
        .status()
        .expect("run cargo build --workspace --examples");
    assert!(built.success(), "cargo build --workspace --examples failed");
    assert!(
        bin_dir.join("examples/null_forwarder").is_file(),
        "no null_forwarder in {}/examples",
        bin_dir.display()
    );
    let script = workspace_root().join("netns-scripts/bench.sh");
    let ScriptReport {
        json,
        stdout,
        stderr,
    } = run_json_script(
        "bench.sh",
        Command::new("timeout")
            .args(["-k", "10", "300", "bash"])
            .arg(&script)
            .args([
                "--quick",
                "--cases",
                "no-tunnel,ironsec,null",
                "--suite",
                "aes128gcm16",
                "--figures",
                "rtt,udp",
                "--pings",
                "5",
                "--lan-gro",
                "--json",
            ])
            .env("IRONSEC_BENCH_PREFIX", &prefix)
            .env("IRONSEC_BIN_DIR", bin_dir),
        &prefix,
    );
    assert_eq!(json["lan_gro"], true, "--lan-gro not in the report");
    assert!(
        stderr.contains("rx-udp-gro-forwarding and threaded NAPI on"),
        "--lan-gro did not say it tuned the LAN interfaces"
    );
    for case in ["no_tunnel", "ironsec_aes128gcm16", "null_forwarder"] {
        let c = &json["cases"][case];
        assert_eq!(c["status"], "ok", "{case}: {c}");
        for key in ["udp64_fwd_pps", "udp64_rev_pps", "rtt_idle_ms"] {
            let v = c[key].as_f64().unwrap_or(0.0);
            assert!(
                v > 0.0,
                "{case}: {key} = {} (expected a measurement)",
                c[key]
            );
        }
        for dir in ["fwd", "rev"] {
            let got = c[format!("udp64_{dir}_pps")].as_f64().unwrap();
            let arrived = c[format!("udp64_{dir}_arrived_pps")]
                .as_f64()
                .unwrap_or_else(|| panic!("{case}: no udp64_{dir}_arrived_pps"));
            // Both are rates over slightly different spans (iperf3's own vs the run's seconds).
            assert!(
                arrived >= got * 0.95,
                "{case} {dir}: arrived {arrived} packets/s < received {got}"
            );
        }
        for key in ["tcp1_fwd_mbps", "tcp4_rev_mbps", "rtt_load_ms"] {
            assert!(
                c[key].is_null(),
                "{case}: {key} measured though not selected"
            );
        }
    }
    let loss_lines = stderr
        .lines()
        .filter(|l| l.contains("UDP 64 B") && l.contains(" lost: "))
        .count();
    assert_eq!(
        loss_lines, 6,
        "one loss line per UDP run (3 cases x 2 directions)"
    );
    assert!(
        !stdout.contains("no successful run for"),
        "figures not selected were reported missing"
    );
}

#[test]
#[ignore = "needs root"]
fn wan_both_runs_each_case_over_ipv4_and_ipv6() {
    require_root();
    let _serial = serial();
    let prefix = format!("b{}", unique_prefix());
    let bin_dir = Path::new(IRONSECD).parent().expect("binary directory");
    let ScriptReport { json, stdout, .. } = run_json_script(
        "bench.sh --wan both",
        Command::new("timeout")
            .args(["-k", "10", "300", "bash"])
            .arg(workspace_root().join("netns-scripts/bench.sh"))
            .args([
                "--quick",
                "--cases",
                "ironsec",
                "--suite",
                "aes128gcm16",
                "--figures",
                "rtt,udp",
                "--pings",
                "5",
                "--wan",
                "both",
                "--json",
            ])
            .env("IRONSEC_BENCH_PREFIX", &prefix)
            .env("IRONSEC_BIN_DIR", bin_dir),
        &prefix,
    );
    assert_eq!(
        json["wan"],
        serde_json::json!([4, 6]),
        "WAN families of the run"
    );
    for (case, wan, endpoints) in [
        ("ironsec_aes128gcm16", 4, "192.0.2.1 -> 192.0.2.2"),
        (
            "ironsec_aes128gcm16_wan6",
            6,
            "2001:db8:f::1 -> 2001:db8:f::2",
        ),
    ] {
        let c = &json["cases"][case];
        assert_eq!(c["status"], "ok", "{case}: {c}");
        assert_eq!(c["wan"], wan, "{case}: {c}");
        assert_eq!(c["endpoints"], endpoints, "{case}: tunnel endpoints");
        for key in ["udp64_fwd_pps", "udp64_rev_pps", "rtt_idle_ms"] {
            let v = c[key].as_f64().unwrap_or(0.0);
            assert!(v > 0.0, "{case}: {key} = {}", c[key]);
        }
    }
    let v6 = &json["cases"]["ironsec_aes128gcm16_wan6"];
    for key in ["udp64_fwd", "udp64_rev"] {
        let r = v6["ratio_wan6_to_wan4"][key].as_f64().unwrap_or(0.0);
        assert!(r > 0.0, "ratio_wan6_to_wan4.{key} = {r}");
    }
    assert!(
        v6["rtt_delta_wan6_to_wan4_ms"]["rtt_idle"].is_f64(),
        "no IPv6 - IPv4 idle RTT difference: {v6}"
    );
    assert!(
        json["cases"]["ironsec_aes128gcm16"]
            .get("ratio_wan6_to_wan4")
            .is_none(),
        "the IPv4 case has an IPv6/IPv4 ratio"
    );
    assert!(
        stdout.contains("IPv6 WAN / IPv4 WAN"),
        "no IPv6/IPv4 table in the report"
    );
}

#[test]
fn unknown_wan_is_refused() {
    let out = Command::new("bash")
        .arg(workspace_root().join("netns-scripts/bench.sh"))
        .args(["--wan", "5"])
        .output()
        .expect("run bench.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted --wan 5");
    assert!(
        stderr.contains("--wan must be 4, 6 or both"),
        "unexpected error: {stderr}"
    );
}

#[test]
fn unknown_figure_is_refused() {
    let out = Command::new("bash")
        .arg(workspace_root().join("netns-scripts/bench.sh"))
        .args(["--figures", "rtt,nope"])
        .output()
        .expect("run bench.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted --figures rtt,nope");
    assert!(
        stderr.contains("unknown figure 'nope'"),
        "unexpected error: {stderr}"
    );
}
