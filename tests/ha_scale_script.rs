//! Scale-out (issue 25): runs `netns-scripts/ha-scale.sh` small, the way an operator would,
//! and measures what moving a share of spokes from one hub gateway to another costs. Three
//! gateways each own a share of the spoke sites by configuration (12 spokes: gw1 1-4, gw2 5-8,
//! gw3 9-12); the script moves sites 1-4 from gw1 to gw2, make before break (gw2 reloaded with
//! them; once their tunnels are up gw2's BIRD announces them; gw1's BIRD withdraws them; once
//! the spokes' replies have followed to gw2, gw1 is reloaded without them, which leaves gw1
//! with no connection at all, only its `[gateway] protect` guard). Meanwhile, from the hub LAN, 100 pings/s go to
//! two moved sites (1, 4) and two unmoved ones (5 on the receiving gateway, 9 on the third),
//! each from its own hub-site address, and an iperf3 TCP stream at 20 Mbit/s runs through moved
//! site 1. Asserted: a moved site's longest run of lost pings under 100 (1 s), no unmoved site
//! loses a ping, the TCP stream survives, and no packet for a spoke site crosses the WAN
//! router's gateway ports in clear (tests/common/judge.rs); the script's JSON (setup time,
//! move steps, shares, memory) is printed with the figures.
//!
//! Larger runs with the same test: IRONSEC_HA_SCALE_SPOKES (default 12), IRONSEC_HA_SCALE_MOVE
//! (sites moved from gw1 to gw2, default "1-4"; the measured moved sites are its first and
//! last, the unmoved ones the first site of gw2's and gw3's shares) and
//! IRONSEC_HA_SCALE_SECONDS (length of the pings, default 12).
//!
//! Needs root (and bird2, iperf3, nftables: tests/install-deps.sh), so its
//! tests are ignored as "needs root"; tests/run.sh runs it. The option checks need no root.
//!
//! Run: `cargo test -p ironsecd --test ha_scale_script -- --include-ignored --test-threads=1
//! --nocapture`

mod common;

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use common::*;

fn script() -> Command {
    let mut c = Command::new("bash");
    c.arg(workspace_root().join("netns-scripts/ha-scale.sh"));
    c.env("IRONSECD", IRONSECD).env("IRONSECCTL", IRONSECCTL);
    c
}

/// Runs the script with `args`, bounded to `limit`; panics with its output unless it succeeds;
/// returns its last stdout line as JSON.
fn run(args: &[&str], limit: Duration) -> Value {
    let out = run_timeout(script().args(args), limit);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    println!("$ ha-scale.sh {}\n{stdout}{stderr}", args.join(" "));
    assert!(
        out.status.success(),
        "ha-scale.sh {args:?} failed ({})",
        out.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("no JSON last line ({e}): {stdout}"))
}

/// The lab of one test: `down` on drop, whatever happened.
struct Lab {
    prefix: String,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = run_timeout(
            script().args(["down", &self.prefix]),
            Duration::from_secs(120),
        );
        let left = namespaces_with(&self.prefix);
        if !left.is_empty() {
            eprintln!("ha-scale.sh down left namespaces behind: {left:?}");
        }
    }
}

/// Site i's hub-side and spoke-side .1 addresses (10.64.0.0/10's and 10.128.0.0/10's i-th /24).
fn site(i: u32) -> (Ipv4Addr, Ipv4Addr) {
    let k = i - 1;
    (
        Ipv4Addr::new(10, (64 + k / 256) as u8, (k % 256) as u8, 1),
        Ipv4Addr::new(10, (128 + k / 256) as u8, (k % 256) as u8, 1),
    )
}

/// "1-4" -> (1, 4).
fn range(s: &str) -> (u32, u32) {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    (
        a.parse().expect("a site number"),
        b.parse().expect("a site number"),
    )
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// Longest run of consecutive lost pings.
fn longest_loss_run(run: &PingRun) -> usize {
    let (mut best, mut cur) = (0, 0);
    for r in &run.records {
        if r.rtt.is_none() {
            cur += 1;
            best = best.max(cur);
        } else {
            cur = 0;
        }
    }
    best
}

#[test]
#[ignore = "needs root"]
fn moving_a_share_interrupts_only_the_moved_sites() {
    require_root();
    let _s = serial();
    let spokes: u32 = env_or("IRONSEC_HA_SCALE_SPOKES", "12")
        .parse()
        .expect("IRONSEC_HA_SCALE_SPOKES");
    let moved = env_or("IRONSEC_HA_SCALE_MOVE", "1-4");
    let seconds: u64 = env_or("IRONSEC_HA_SCALE_SECONDS", "12")
        .parse()
        .expect("IRONSEC_HA_SCALE_SECONDS");
    let (m_first, m_last) = range(&moved);
    // The script's shares: three contiguous ranges, the first gateways taking the remainder.
    let gw1 = spokes.div_ceil(3);
    let gw2_first = gw1 + 1;
    let gw3_first = gw1 + (spokes - gw1).div_ceil(2) + 1;
    assert!(
        m_last <= gw1,
        "the moved sites must be in gw1's share 1-{gw1}"
    );

    let lab = Lab {
        prefix: unique_prefix(),
    };
    let p = lab.prefix.clone();
    let bring_up = Duration::from_secs(60 + u64::from(spokes));
    let up = run(
        &[
            "up",
            &p,
            "--spokes",
            &spokes.to_string(),
            "--timeout",
            &bring_up.as_secs().to_string(),
        ],
        bring_up + Duration::from_secs(60),
    );
    let lh = format!("{p}-lh");
    let ls = format!("{p}-ls");
    let judge = WireJudge::install_on(&format!("{p}-wan"), &["gw1", "gw2", "gw3"], "10.128.0.0/10");

    // Every measured site answers before the move.
    let measured = [
        (m_first, true),
        (m_last, true),
        (gw2_first, false),
        (gw3_first, false),
    ];
    for (i, _) in measured {
        let (src, dst) = site(i);
        let r = ping_paced_from(
            &lh,
            Some(src),
            dst,
            20,
            pattern_payload(b"ha-scale-warmup", 56),
            Duration::from_millis(10),
            Duration::from_secs(1),
        );
        assert_eq!(
            r.received(),
            20,
            "site {i} ({src} -> {dst}) does not answer before the move"
        );
    }

    // The TCP stream through moved site 1 for the whole run, then 100 pings/s to each
    // measured site; the move starts 3 s into the pings.
    let count = (seconds * 100) as u16;
    let (tcp_src, tcp_dst) = site(m_first);
    let (lh2, ls2) = (lh.clone(), ls.clone());
    let dir = TempDir::new(&format!("ha-scale-{p}"));
    let iperf_dir = dir.path.clone();
    let tcp_secs = (seconds + 1).to_string();
    let iperf = std::thread::spawn(move || {
        iperf3_json(
            &lh2,
            &ls2,
            tcp_dst,
            5201,
            &[
                "-t",
                &tcp_secs,
                "-b",
                "20M",
                "-i",
                "1",
                "-B",
                &tcp_src.to_string(),
            ],
            &iperf_dir,
            "ha-scale",
        )
    });
    std::thread::sleep(Duration::from_millis(500));
    let pingers: Vec<_> = measured
        .iter()
        .map(|&(i, _)| {
            let (src, dst) = site(i);
            ping_paced_from_in_background(
                &lh,
                src,
                dst,
                count,
                pattern_payload(format!("ha-scale-site-{i}").as_bytes(), 56),
                Duration::from_millis(10),
                Duration::from_secs(1),
            )
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let t_move = Instant::now();
    let move_wall_clock = SystemTime::now();
    let mv = run(
        &[
            "move",
            &p,
            "--sites",
            &moved,
            "--from",
            "gw1",
            "--to",
            "gw2",
            "--timeout",
            "120",
        ],
        Duration::from_secs(200),
    );
    let move_wall = t_move.elapsed();
    let runs: Vec<PingRun> = pingers
        .into_iter()
        .map(|h| h.join().expect("pinger"))
        .collect();
    let iperf = iperf.join();
    let report = run(&["report", &p], Duration::from_secs(120));
    // gw1 gave away its whole share: no connection is left, and the gateway's own guard
    // (`[gateway] protect`) still blackholes every spoke site there.
    let gw1_routes = run_timeout(
        ns_cmd(&format!("{p}-gw1"), "ip").args(["route", "show", "10.128.0.0/10"]),
        Duration::from_secs(10),
    );
    let gw1_routes = String::from_utf8_lossy(&gw1_routes.stdout).into_owned();
    let (clear, esp) = judge.counts();

    println!("[ha-scale] {spokes} spokes; up: {up}");
    println!(
        "[ha-scale] move of sites {moved} gw1 -> gw2: {mv} ({:.3} s with the script's start)",
        move_wall.as_secs_f64()
    );
    let mut failures = Vec::new();
    for (&(i, is_moved), r) in measured.iter().zip(&runs) {
        let longest = longest_loss_run(r);
        println!(
            "[ha-scale] site {i} ({}): {} sent, {} lost, longest loss run {longest} ({} ms), max rtt {:.1} ms",
            if is_moved { "moved" } else { "unmoved" },
            r.sent(),
            r.lost().len(),
            longest * 10,
            r.max_rtt().as_secs_f64() * 1e3
        );
        if !r.lost().is_empty() {
            // When the losses were, from the start of the move script.
            let at: Vec<String> = r
                .lost()
                .iter()
                .map(|l| {
                    let t = l
                        .sent_at
                        .duration_since(move_wall_clock)
                        .map_or_else(|e| -e.duration().as_secs_f64(), |d| d.as_secs_f64());
                    format!("{t:.3}")
                })
                .collect();
            println!(
                "[ha-scale]   site {i}: lost pings sent at {} s from the move's start",
                at.join(" ")
            );
        }
        if is_moved && longest >= 100 {
            failures.push(format!("moved site {i}: {longest} pings lost in a row"));
        }
        if !is_moved && !r.lost().is_empty() {
            failures.push(format!("unmoved site {i}: {} pings lost", r.lost().len()));
        }
    }
    println!("[ha-scale] report: {report}");
    println!("[judge] WAN router's gateway ports: {clear} packets to 10.128.0.0/10 in clear, {esp} ESP-in-UDP");
    let iperf =
        iperf.unwrap_or_else(|_| panic!("iperf3 did not survive the move (its panic is above)"));
    let intervals = iperf3_interval_mbits(&iperf);
    let retr = iperf3_retransmits(&iperf);
    println!("[iperf3] TCP -b 20M through moved site {m_first}: per second {intervals:.1?} Mbit/s, {retr} retransmits");

    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(
        clear, 0,
        "{clear} packets for spoke sites crossed the WAN in clear"
    );
    if m_first == 1 && m_last == gw1 {
        assert!(
            gw1_routes.contains("blackhole 10.128.0.0/10 proto 147"),
            "gw1 lost its guard with its last connection:\n{gw1_routes}"
        );
    }
    assert!(
        esp >= 1000,
        "only {esp} ESP packets on the WAN: did the tunnels carry the pings?"
    );
    assert!(
        intervals.last().is_some_and(|&m| m > 1.0),
        "the TCP stream did not carry on after the move: {intervals:?}"
    );
    // The script's view after the move: gw1 owns nothing, gw2 its own and the moved sites,
    // every site routed once, and the spoke sending each moved site's traffic to gw2.
    let n_moved = u64::from(m_last - m_first + 1);
    assert_eq!(mv["sites"], n_moved, "{mv}");
    let owned = |g: &str| report["shares"][g].as_array().map_or(0, Vec::len) as u64;
    assert_eq!(owned("gw1"), u64::from(gw1) - n_moved, "{report}");
    assert_eq!(report["connections_up"]["gw2"], owned("gw2"), "{report}");
    assert_eq!(report["rtr_routes"], u64::from(spokes), "{report}");
    assert_eq!(report["rtr_ecmp_routes"], 0, "{report}");
    assert_eq!(report["spoke_active_to"]["gw2"], owned("gw2"), "{report}");
}

/// Bad commands and options are refused before anything is built (no root needed).
#[test]
fn bad_options_are_refused() {
    for args in [
        vec!["up", "x", "--spokes", "2"],
        vec!["up", "x", "--spokes", "many"],
        vec!["up", "bad/prefix"],
        vec!["move", "x", "--bogus"],
        vec!["launch", "x"],
    ] {
        let out = run_timeout(script().args(&args), Duration::from_secs(30));
        assert!(!out.status.success(), "{args:?} was accepted");
    }
}
