//! Faults an operator's gateway meets in the field, each with two real ironsecd processes in
//! namespaces (netns-scripts/topology.sh):
//! - the daemon's own privileges: only CAP_NET_ADMIN and CAP_NET_BIND_SERVICE in every thread,
//!   no_new_privs, and route changes (which run `ip`) still work with just those;
//! - the WAN link down for 30 s and back, with DPD fast enough to give up on the peer during
//!   the outage (SAs torn down and negotiated again) and with the examples' DPD, slow enough
//!   that the SAs outlive the outage: either way the tunnel recovers by itself;
//! - the system clock jumping days forward and back (libfaketime, for the daemons only): SA
//!   lifetimes run on the monotonic clock, so nothing expires or rekeys early;
//! - the TUN device deleted under the daemon: a clear error and a non-zero exit, so systemd
//!   (Restart=on-failure) starts it again.
//! - a fast-path worker that panics or returns on its own (injected through the test build's
//!   `fault-injection` hook): noticed, logged, a non-zero exit, and the guard routes drop the
//!   remote site's traffic while the daemon is away.
//!
//! - a peer that restarts and loses its SAs while traffic flows: it answers the old SPIs with
//!   INVALID_SPI, the survivor checks liveness at once instead of after its DPD interval, and
//!   the tunnel comes back with new SPIs. (Restarts without traffic, found by DPD, and a
//!   restarted initiator's INITIAL_CONTACT are `tests/ike_tunnel.rs
//!   ike_kill_and_restart_recovers`.)
//!
//! Needs root and libfaketime (tests/install-deps.sh): every test is `#[ignore = "needs root"]`
//! (tests/run.sh runs them); FAILS (never skips) without them.
//!
//! Run: `cargo test -p ironsecd --test faults -- --include-ignored --test-threads=1 --nocapture`

mod common;

use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use serde_json::Value;

const LAN_A_HOST: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const LAN_B_HOST: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);
const PING_PATTERN: &[u8] = b"\x5a\x17\xc0\xde-IRONSEC-FAULT-PING!\xa5";
const UP_TIMEOUT: Duration = Duration::from_secs(15);

/// CAP_NET_BIND_SERVICE (10) and CAP_NET_ADMIN (12), as /proc shows capability sets.
const NET_CAPS: u64 = (1 << 10) | (1 << 12);

fn wait_up(lab: &IkeLab) {
    lab.wait_up(UP_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
}

fn ping_ok(lab: &IkeLab, from_ns: &str, to: Ipv4Addr, count: u16) {
    let r = ping(
        from_ns,
        to,
        count,
        pattern_payload(PING_PATTERN, 56),
        Duration::from_millis(20),
        Duration::from_secs(2),
    );
    assert_eq!(
        r.received,
        u32::from(count),
        "ping {from_ns} -> {to}: {} of {count} answered\n{}",
        r.received,
        lab.logs()
    );
}

fn ping_both_ways(lab: &IkeLab, count: u16) {
    ping_ok(lab, &lab.topo.lan_a, LAN_B_HOST, count);
    ping_ok(lab, &lab.topo.lan_b, LAN_A_HOST, count);
}

fn wan(lab: &IkeLab, up: bool) {
    run_ok(
        ns_cmd(&lab.topo.gw_a, "ip").args(["link", "set", "wan", if up { "up" } else { "down" }]),
        Duration::from_secs(5),
    );
}

/// (IKE SPIs, CHILD_SA inbound SPI) of the first tunnel, or None when it has none.
fn spis(st: &Value) -> Option<(String, String, String)> {
    let ike = ike_of(st)?;
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    Some((
        s(&ike["spi_i"]),
        s(&ike["spi_r"]),
        s(st.pointer(&format!("{T0}/inbound/spi"))?),
    ))
}

/// `Name:\tvalue` from a /proc status file.
fn proc_field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {name} in\n{status}"))
}

fn cap_set(status: &str, name: &str) -> u64 {
    u64::from_str_radix(&proc_field(status, name), 16).unwrap()
}

/// Checks every thread of `pid`: the two network capabilities and nothing else, anywhere.
fn check_caps(name: &str, pid: u32) -> usize {
    let tasks: Vec<_> = fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap_or_else(|e| panic!("{name}: /proc/{pid}/task: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    for t in &tasks {
        let st = fs::read_to_string(t.join("status")).unwrap();
        let thread = proc_field(&st, "Name");
        for (set, want) in [
            ("CapEff", NET_CAPS),
            ("CapPrm", NET_CAPS),
            ("CapBnd", NET_CAPS),
            ("CapInh", 0),
            ("CapAmb", 0),
        ] {
            assert_eq!(
                cap_set(&st, set),
                want,
                "{name} thread {thread} ({}): {set}\n{st}",
                t.display()
            );
        }
        assert_eq!(proc_field(&st, "NoNewPrivs"), "1", "{name} thread {thread}");
    }
    tasks.len()
}

#[test]
#[ignore = "needs root"]
fn daemon_keeps_only_the_network_capabilities() {
    let _s = serial();
    require_root();
    let lab = IkeLab::start(IkeLabOpts::default());
    wait_up(&lab);
    ping_both_ways(&lab, 3);
    for d in [&lab.a, &lab.b] {
        let threads = check_caps(&d.name, d.proc_.pid());
        println!(
            "{}: {threads} threads, each with CapEff = CapPrm = CapBnd = {NET_CAPS:#x} (CAP_NET_ADMIN, CAP_NET_BIND_SERVICE), no inheritable or ambient capabilities, NoNewPrivs 1",
            d.name
        );
    }
    assert!(
        lab.log_a()
            .contains("capabilities dropped to the network ones"),
        "{}",
        lab.logs()
    );

    // A reload that adds a remote subnet runs `ip route` as a child: with only the two
    // capabilities (the bounding set is what a root child gets) the route must still appear.
    let text = fs::read_to_string(&lab.cfg_a).unwrap();
    let text = rewrite_toml_lines(
        &text,
        &[("remote_ts", r#"["10.2.0.0/24", "10.9.0.0/24"]"#.to_string())],
    );
    fs::write(&lab.cfg_a, text).unwrap();
    let out = ironsecctl(&lab.sock_a, &["reload"]);
    assert!(
        out.status.success(),
        "reload: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let routes = run_ok(
        ns_cmd(&lab.topo.gw_a, "ip").args(["route", "show", "10.9.0.0/24"]),
        Duration::from_secs(5),
    );
    let routes = String::from_utf8_lossy(&routes.stdout).to_string();
    assert!(
        routes.contains("dev ipsec0"),
        "route for the added subnet after reload: {routes:?}\n{}",
        lab.logs()
    );
    check_caps("gwA after reload", lab.a.proc_.pid());
}

#[test]
#[ignore = "needs root"]
fn tun_device_deleted_exits_non_zero_with_a_clear_error() {
    let _s = serial();
    require_root();
    let mut lab = IkeLab::start(IkeLabOpts::default());
    wait_up(&lab);
    ping_both_ways(&lab, 2);
    let t0 = Instant::now();
    run_ok(
        ns_cmd(&lab.topo.gw_a, "ip").args(["link", "del", "ipsec0"]),
        Duration::from_secs(5),
    );
    let status = lab.a.proc_.wait_exit(Duration::from_secs(10));
    let took = t0.elapsed();
    let log = lab.log_a();
    println!(
        "ipsec0 deleted: gwA exited after {took:.2?} with {status}; its last lines:\n{}",
        log.lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        status.code(),
        Some(1),
        "exit status after the TUN device went: {status}\n{log}"
    );
    assert!(
        log.contains("ironsecd: fast path failed: TUN device ipsec0 failed (deleted?)"),
        "no clear error on stderr\n{log}"
    );
    // The peer is untouched: its own daemon still runs.
    assert!(lab.b.proc_.try_wait().is_none(), "gwB exited too");
}

/// Restarts gwA with its worker 0 watching a trigger file (the `fault-injection` hook of the
/// test build, `IRONSEC_FAULT_WORKER`), brings the tunnel up, writes `kind` ("panic" or
/// "return") into the trigger, and checks the daemon notices: an error line naming the worker,
/// exit status 1 within 5 s, and the remote site's traffic dropped by the guard route while it
/// is gone.
fn injected_worker_failure(kind: &str, expect: &str) {
    let _s = serial();
    require_root();
    let mut lab = IkeLab::start(IkeLabOpts::default());
    wait_up(&lab);
    let trigger = lab.dir.join("worker-fault");
    lab.a.stop();
    lab.restart_a_with_env(
        "fault",
        &[("IRONSEC_FAULT_WORKER", trigger.display().to_string())],
    );
    wait_up(&lab);
    ping_both_ways(&lab, 2);
    assert_eq!(lab.a.status()["workers_failed"], 0, "{}", lab.logs());

    fs::write(&trigger, kind).unwrap();
    let t0 = Instant::now();
    let status = lab.a.proc_.wait_exit(Duration::from_secs(10));
    let took = t0.elapsed();
    let log = lab.log_a();
    println!("worker 0 told to {kind}: gwA exited after {took:.2?} with {status}");
    assert_eq!(status.code(), Some(1), "exit status: {status}\n{log}");
    assert!(
        took < Duration::from_secs(5),
        "noticed only after {took:?}\n{log}"
    );
    let stopped = log
        .lines()
        .find(|l| l.contains("fast-path worker stopped"))
        .unwrap_or_else(|| panic!("no error line for the worker\n{log}"));
    assert!(
        stopped.contains("ERROR") && stopped.contains(expect),
        "{stopped}"
    );
    assert!(
        log.contains(&format!("ironsecd: fast path failed: {expect}")),
        "no clear error on stderr\n{log}"
    );
    // Fail closed while the daemon is away: nothing from site A reaches site B.
    let r = ping(
        &lab.topo.lan_a,
        LAN_B_HOST,
        3,
        pattern_payload(PING_PATTERN, 56),
        Duration::from_millis(20),
        Duration::from_millis(500),
    );
    assert_eq!(r.received, 0, "traffic got through with gwA down");
    let guards = run_ok(
        ns_cmd(&lab.topo.gw_a, "ip").args(["-4", "route", "show", "proto", "147"]),
        Duration::from_secs(5),
    );
    let guards = String::from_utf8_lossy(&guards.stdout).to_string();
    assert!(guards.contains("blackhole 10.2.0.0/24"), "guards: {guards}");
}

#[test]
#[ignore = "needs root"]
fn a_panicking_worker_is_noticed_and_the_daemon_exits_non_zero() {
    injected_worker_failure(
        "panic",
        "fast-path worker 0 panicked: fault injected through IRONSEC_FAULT_WORKER",
    );
}

#[test]
#[ignore = "needs root"]
fn a_worker_that_returns_unasked_is_noticed_and_the_daemon_exits_non_zero() {
    injected_worker_failure(
        "return",
        "fast-path worker 0 returned without being asked to stop",
    );
}

/// The pings of `run` whose replies came, as (seconds since `t0`, answered).
fn timeline(run: &PingRun, t0: SystemTime) -> Vec<(f64, bool)> {
    run.records
        .iter()
        .map(|r| {
            (
                r.sent_at
                    .duration_since(t0)
                    .unwrap_or_default()
                    .as_secs_f64(),
                r.rtt.is_some(),
            )
        })
        .collect()
}

/// Pings (5/s) from lanA to lanB while the WAN link of gwA is down for 30 s; returns the
/// seconds from the link coming back to the first answered ping after it.
fn outage(lab: &IkeLab, what: &str) -> f64 {
    const DOWN: f64 = 30.0;
    const AFTER: f64 = 40.0;
    let interval = Duration::from_millis(200);
    let count = ((5.0 + DOWN + AFTER) * 5.0) as u16;
    let t0 = SystemTime::now();
    let pinger = ping_paced_in_background(
        &lab.topo.lan_a,
        LAN_B_HOST,
        count,
        pattern_payload(PING_PATTERN, 56),
        interval,
        Duration::from_secs(1),
    );
    std::thread::sleep(Duration::from_secs(5));
    wan(lab, false);
    std::thread::sleep(Duration::from_secs_f64(DOWN));
    wan(lab, true);
    let run = pinger.join().unwrap();
    let tl = timeline(&run, t0);
    let back = 5.0 + DOWN;
    let lost_before = tl.iter().filter(|(t, ok)| *t < 4.5 && !ok).count();
    let first_after = tl
        .iter()
        .find(|(t, ok)| *t >= back && *ok)
        .map(|(t, _)| t - back);
    let last_lost = tl
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(t, _)| *t)
        .fold(0.0, f64::max);
    println!(
        "{what}: {} of {} pings answered; link down {DOWN:.0} s; first answer {} after it came back; last lost ping at {last_lost:.1} s (link back at {back:.1} s)",
        run.received(),
        run.sent(),
        first_after.map_or("none".into(), |s| format!("{s:.1} s")),
    );
    assert_eq!(
        lost_before,
        0,
        "{what}: pings lost before the outage\n{}",
        lab.logs()
    );
    let first_after = first_after.unwrap_or_else(|| {
        panic!(
            "{what}: no ping answered in the {AFTER:.0} s after the link came back\ngwA: {:#}\ngwB: {:#}\n{}",
            lab.a.status(),
            lab.b.status(),
            lab.logs()
        )
    });
    // Recovered for good: the last 10 s of pings are all answered.
    let end = tl.last().map_or(0.0, |(t, _)| *t);
    let late_losses: Vec<f64> = tl
        .iter()
        .filter(|(t, ok)| *t > end - 10.0 && !ok)
        .map(|(t, _)| *t)
        .collect();
    assert!(
        late_losses.is_empty(),
        "{what}: pings still lost at the end: {late_losses:?}\n{}",
        lab.logs()
    );
    first_after
}

#[test]
#[ignore = "needs root"]
fn wan_down_30_s_with_fast_dpd_renegotiates_by_itself() {
    let _s = serial();
    require_root();
    // DPD gives up on the peer after 3 + 9 s of silence: well inside the outage, so both
    // sides tear the SAs down and gwA (start_action start) must negotiate new ones.
    let lab = IkeLab::start(IkeLabOpts::default().both(|s| {
        s.dpd_interval = 3;
        s.dpd_timeout = 9;
    }));
    wait_up(&lab);
    let before = spis(&lab.a.status()).unwrap();
    let recovery = outage(&lab, "fast DPD");
    wait_up(&lab);
    ping_both_ways(&lab, 3);
    let (sa, sb) = (lab.a.status(), lab.b.status());
    let after = spis(&sa).unwrap();
    assert_ne!(before, after, "SAs were not renegotiated\n{}", lab.logs());
    assert_eq!(spis(&sb).map(|s| (s.0, s.1)), Some((after.0, after.1)));
    for (name, log) in [("gwA", lab.log_a()), ("gwB", lab.log_b())] {
        assert!(
            log.contains("IKE SA down") && log.contains("PeerUnreachable"),
            "{name} did not declare the peer dead during the outage\n{log}"
        );
    }
    // Only the new SAs remain: one CHILD_SA on the one IKE SA each side shows.
    for (name, st) in [("gwA", &sa), ("gwB", &sb)] {
        assert_eq!(
            ike_of(st).and_then(|i| i["children"].as_u64()),
            Some(1),
            "{name} keeps stale SAs: {st:#}"
        );
    }
    println!("fast DPD: pings crossed again {recovery:.1} s after the link came back");
}

#[test]
#[ignore = "needs root"]
fn wan_down_30_s_with_example_dpd_keeps_the_sas() {
    let _s = serial();
    require_root();
    // The examples' DPD (30 s of silence, then 60 s to answer): a 30 s outage is over before
    // the peer is declared dead, so the same SAs carry on when the link returns.
    let lab = IkeLab::start(IkeLabOpts::default());
    wait_up(&lab);
    let before = spis(&lab.a.status()).unwrap();
    let recovery = outage(&lab, "example DPD");
    let after = spis(&lab.a.status()).unwrap();
    assert_eq!(before, after, "SAs changed\n{}", lab.logs());
    assert!(
        recovery < 2.0,
        "pings resumed {recovery:.1} s after the link came back with the SAs intact\n{}",
        lab.logs()
    );
    ping_both_ways(&lab, 3);
}

/// Restarts both daemons of `lab` under libfaketime, which makes them see the system clock at
/// the offset written in `offset_file` (re-read every second); the monotonic clock is left real.
fn restart_under_faketime(lab: &mut IkeLab, offset_file: &Path) {
    const LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
    assert!(
        Path::new(LIB).exists(),
        "{LIB} missing: tests/install-deps.sh installs libfaketime"
    );
    let env = [
        ("LD_PRELOAD", LIB.to_string()),
        ("FAKETIME_TIMESTAMP_FILE", offset_file.display().to_string()),
        ("FAKETIME_CACHE_DURATION", "1".to_string()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
    ];
    lab.a.stop();
    lab.b.stop();
    let (log_a, log_b) = (
        lab.dir.join("ironsecd-a.ft.log"),
        lab.dir.join("ironsecd-b.ft.log"),
    );
    lab.logs_a.push(log_a.clone());
    lab.logs_b.push(log_b.clone());
    lab.b = Daemon::start_with_env(
        "gwB",
        &lab.topo.gw_b,
        &lab.cfg_b,
        &lab.sock_b,
        log_b,
        None,
        &env,
    );
    lab.a = Daemon::start_with_env(
        "gwA",
        &lab.topo.gw_a,
        &lab.cfg_a,
        &lab.sock_a,
        log_a,
        None,
        &env,
    );
}

/// Years in the UTC timestamps that start the daemon's log lines since `from` (byte offset).
fn log_dates(log: &str, from: usize) -> Vec<String> {
    log[from.min(log.len())..]
        .lines()
        .filter_map(|l| l.get(..10))
        .filter(|d| d.starts_with("20"))
        .map(str::to_string)
        .collect()
}

#[test]
#[ignore = "needs root"]
fn system_clock_jumps_do_not_expire_or_rekey_sas() {
    let _s = serial();
    require_root();
    let mut lab = IkeLab::start(IkeLabOpts::default().both(|s| {
        s.rekey_time = 3600;
        s.ike_rekey_time = 14400;
    }));
    let offset = lab.dir.join("faketime-offset");
    fs::write(&offset, "+0\n").unwrap();
    restart_under_faketime(&mut lab, &offset);
    wait_up(&lab);
    ping_both_ways(&lab, 2);
    let before = (
        spis(&lab.a.status()).unwrap(),
        spis(&lab.b.status()).unwrap(),
    );
    let today = utc_string(SystemTime::now())[..10].to_string();

    // Pings at 10/s all through: two days forward, then three days back (a day before now).
    let pinger = ping_paced_in_background(
        &lab.topo.lan_a,
        LAN_B_HOST,
        200,
        pattern_payload(PING_PATTERN, 56),
        Duration::from_millis(100),
        Duration::from_secs(1),
    );
    let (mark_a, mark_b) = (lab.log_a().len(), lab.log_b().len());
    std::thread::sleep(Duration::from_secs(3));
    fs::write(&offset, "+2d\n").unwrap();
    std::thread::sleep(Duration::from_secs(4));
    // Something to log while the clock is two days ahead (a quiet tunnel logs nothing): a
    // reload of the unchanged config.
    let out = ironsecctl(&lab.sock_a, &["reload"]);
    assert!(out.status.success(), "{out:?}");
    fs::write(&offset, "-1d\n").unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let run = pinger.join().unwrap();
    let after = (
        spis(&lab.a.status()).unwrap(),
        spis(&lab.b.status()).unwrap(),
    );
    println!(
        "system clock +2 days then -1 day (daemons only): {} of {} pings answered; SPIs before {:?}, after {:?}",
        run.received(),
        run.sent(),
        before.0,
        after.0
    );
    assert_eq!(
        run.lost().len(),
        0,
        "pings lost across clock jumps\n{}",
        lab.logs()
    );
    assert_eq!(
        before,
        after,
        "SAs rekeyed or replaced by a clock jump\n{}",
        lab.logs()
    );
    for (name, log) in [
        ("gwA", lab.log_a()[mark_a..].to_string()),
        ("gwB", lab.log_b()[mark_b..].to_string()),
    ] {
        for bad in ["IKE SA down", "CHILD_SA down", "rekey", "expired"] {
            let hits: Vec<&str> = log.lines().filter(|l| l.contains(bad)).collect();
            assert!(
                hits.is_empty(),
                "{name} after a clock jump: {hits:?}\n{log}"
            );
        }
    }
    // The jump did reach the daemon (else this test proves nothing): it logged with a date
    // other than today's while the offset was in force.
    let dates = log_dates(&lab.log_a(), mark_a);
    println!("gwA log dates during the jumps: {dates:?} (today {today})");
    assert!(
        dates.iter().any(|d| *d != today),
        "libfaketime did not move gwA's clock: dates {dates:?}\n{}",
        lab.logs()
    );
    // Status ages come from the monotonic clock too: seconds, not days.
    let st = lab.a.status();
    let age = st
        .pointer(&format!("{T0}/ike/established_secs"))
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no IKE SA age in {st:#}"));
    assert!(age < 120, "IKE SA age after clock jumps: {age} s\n{st:#}");
}

#[test]
#[ignore = "needs root"]
fn restarted_peer_answers_old_spis_with_invalid_spi_and_the_tunnel_recovers() {
    let _s = serial();
    require_root();
    // DPD would only look after 30 s of silence; the liveness check gives up after 6 s.
    let mut lab = IkeLab::start(IkeLabOpts::default().both(|s| {
        s.dpd_interval = 30;
        s.dpd_timeout = 6;
    }));
    wait_up(&lab);
    ping_both_ways(&lab, 2);
    let before = spis(&lab.a.status()).unwrap();
    let t_kill = Instant::now();
    lab.b.kill9();
    lab.restart_b();
    let restarted = t_kill.elapsed();
    // Traffic from lanA keeps arriving at the restarted gwB on SPIs it never heard of.
    let lan_a = lab.topo.lan_a.clone();
    let run = ping_paced(
        &lan_a,
        LAN_B_HOST,
        150,
        pattern_payload(PING_PATTERN, 56),
        Duration::from_millis(200),
        Duration::from_secs(1),
    );
    let first_ok = run
        .records
        .iter()
        .position(|r| r.rtt.is_some())
        .map(|i| i as f64 * 0.2);
    let (sa, sb) = (lab.a.status(), lab.b.status());
    let sent = num(&sb, "/ike/invalid_spi_sent");
    let hints = num(&sa, "/ike/invalid_spi_hints");
    println!(
        "gwB killed and restarted {:.1} s after the kill; pings from lanA answered again {} s after the restart ({} of {}); gwB sent {sent} INVALID_SPI, gwA took {hints} as hints",
        restarted.as_secs_f64(),
        first_ok.map_or("never".into(), |t| format!("{t:.1}")),
        run.received(),
        run.sent()
    );
    assert!(
        sent >= 1,
        "restarted gwB sent no INVALID_SPI: {sb:#}\n{}",
        lab.logs()
    );
    assert!(
        hints >= 1,
        "gwA got no INVALID_SPI hint: {sa:#}\n{}",
        lab.logs()
    );
    assert!(
        lab.log_a().contains("peer reports INVALID_SPI"),
        "{}",
        lab.logs()
    );
    // Well before DPD's 30 s of silence: the hint's liveness check (6 s), the close action's
    // restart delay and a new negotiation.
    let first_ok = first_ok.unwrap_or_else(|| panic!("tunnel never came back\n{}", lab.logs()));
    assert!(
        first_ok < 25.0,
        "pings crossed again only {first_ok:.1} s after gwB restarted\n{}",
        lab.logs()
    );
    wait_up(&lab);
    ping_both_ways(&lab, 2);
    let after = spis(&lab.a.status()).unwrap();
    assert_ne!(before, after, "same SPIs after the peer restarted");
    let sb = lab.b.status();
    assert_eq!(
        spis(&sb).map(|s| (s.0, s.1)),
        Some((after.0.clone(), after.1.clone()))
    );
}
