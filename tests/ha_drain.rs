//! Planned maintenance (README "Planned maintenance"): `ironsecctl drain`, `rejoin` and the
//! SIGTERM stop path with `[drain] on_stop`, on the IKE lab (gwA initiates, gwB answers).
//!
//! The withdraw and rejoin commands are the test's own: they write marker files in the
//! test's directory (the rejoin one records gwA's status at the moment it runs, which shows
//! whether the tunnels were up before it). gwA has a default route out of its WAN and a judge
//! on gwB's end of the wire counts lanB-bound packets arriving in clear, so "nothing leaks"
//! is seen from outside gwA.

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const LAN_B_HOST: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);
const LAN_B_NET: &str = "10.2.0.0/24";
const UP_TIMEOUT: Duration = Duration::from_secs(20);

fn toml_argv(argv: &[&str]) -> String {
    let items: Vec<String> = argv.iter().map(|a| toml_str(a)).collect();
    format!("[{}]", items.join(", "))
}

/// gwA's `[drain]` table: withdraw touches `withdrawn`, rejoin saves gwA's status as
/// `rejoin-status.json`; the state file is `drain-state`, all in `dir`.
fn drain_table(dir: &Path, sock: &Path, extra: &str) -> String {
    let withdrawn = dir.join("withdrawn");
    let status = dir.join("rejoin-status.json");
    let save_status = format!(
        "{IRONSECCTL} --socket {} status --json > {}",
        sock.display(),
        status.display()
    );
    format!(
        "\n[drain]\nwithdraw = [{}]\nrejoin = [{}]\nstate_file = {}\nidle_pps = 30\n{extra}",
        toml_argv(&["touch", withdrawn.to_str().unwrap()]),
        toml_argv(&["/bin/sh", "-c", &save_status]),
        toml_str(dir.join("drain-state").to_str().unwrap()),
    )
}

/// The IKE lab with gwA's `[drain]` table (`extra` appended to it), the tunnel up, a default
/// route out of gwA's WAN and the judge on gwB's end of it.
fn lab(extra: &str) -> (IkeLab, WireJudge) {
    // The table names paths in the lab's directory, known once the lab is up: it starts
    // with a placeholder, and a reload reads the table (so `[drain]` applies on reload).
    let mut opts = IkeLabOpts::default();
    opts.a.conn_extra = "\n#DRAIN\n".into();
    let lab = IkeLab::start(opts);
    let table = drain_table(&lab.dir.path, &lab.sock_a, extra);
    let text = std::fs::read_to_string(&lab.cfg_a).unwrap();
    std::fs::write(&lab.cfg_a, text.replace("\n#DRAIN\n", &table)).unwrap();
    let out = ironsecctl(&lab.sock_a, &["reload"]);
    assert!(
        out.status.success(),
        "reload with [drain] failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        lab.logs()
    );
    lab.wait_up(UP_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    ip(
        &lab.topo.gw_a,
        &["route", "add", "default", "via", "192.0.2.2", "dev", "wan"],
    );
    let judge = WireJudge::install(&lab.topo.gw_b, LAN_B_NET);
    (lab, judge)
}

fn ctl_json(sock: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = ironsecctl(sock, &all);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ironsecctl {args:?}: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(out.status.success(), "ironsecctl {args:?}: {v:#}");
    v
}

fn ike_sa_count(st: &Value) -> usize {
    st["connections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["tunnels"].as_array().unwrap())
        .filter(|t| !t["ike"].is_null())
        .count()
}

/// What a finished drain of gwA leaves: the withdraw command ran, the state file `dir`/drain-state
/// says drained ("1"), and gwB heard the DELETE (no IKE SA there within a moment).
fn assert_drained(lab: &IkeLab, dir: &Path) {
    assert!(
        dir.join("withdrawn").exists(),
        "withdraw command did not run"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("drain-state")).unwrap(),
        "1\n"
    );
    let gone = poll_until(Duration::from_secs(3), || {
        ctl_status(&lab.sock_b).is_ok_and(|st| ike_sa_count(&st) == 0)
    });
    assert!(gone, "gwB still has an IKE SA: {:#}", lab.b.status());
}

fn pings(lab: &IkeLab, count: u16, interval: Duration) -> PingRun {
    ping_paced(
        &lab.topo.lan_a,
        LAN_B_HOST,
        count,
        pattern_payload(b"IRONSEC-DRAIN", 56),
        interval,
        Duration::from_secs(1),
    )
}

/// The traffic a drain waits for: 1.5 s of pings at 100/s from lanA to lanB, in the background.
fn traffic_in_background(lab: &IkeLab) -> std::thread::JoinHandle<PingRun> {
    ping_paced_in_background(
        &lab.topo.lan_a,
        LAN_B_HOST,
        150,
        pattern_payload(b"IRONSEC-DRAIN", 56),
        Duration::from_millis(10),
        Duration::from_secs(1),
    )
}

/// `ironsecctl drain` under 100 pings/s: runs the withdraw command, writes the state file,
/// waits until the pings stop (none lost), deletes the IKE SA (gwB sees the DELETE), keeps
/// routes and guards, and nothing leaves in clear afterwards; `rejoin` brings the tunnel
/// back first and runs the rejoin command after.
#[test]
#[ignore = "needs root"]
fn drain_waits_for_traffic_closes_and_rejoins() {
    let (lab, judge) = lab("quiet = 0.5\ntimeout = 10\n");
    let dir = &lab.dir.path;
    assert_eq!(
        lab.a.status()["drain"]["state"],
        "ready",
        "{:#}",
        lab.a.status()
    );
    // 1.5 s of pings at 100/s, the drain asked for 0.3 s in.
    let ping = traffic_in_background(&lab);
    std::thread::sleep(Duration::from_millis(300));
    let asked = Instant::now();
    let report = ctl_json(&lab.sock_a, &["drain"]);
    let drained_after = asked.elapsed();
    let run = ping.join().unwrap();
    let r = &report["drain"];
    println!(
        "drain under 100 pings/s: {} (ironsecctl returned after {:.2} s)\n{report:#}",
        r["withdraw"],
        drained_after.as_secs_f64()
    );
    assert_eq!(report["command"], "drain");
    assert_eq!(r["withdraw"]["commands"], 1, "{report:#}");
    assert!(r["withdraw"]["failed"].as_array().unwrap().is_empty());
    assert_eq!(r["timed_out"], false, "{report:#}\n{}", lab.logs());
    assert!(r["last_pps"].as_f64().unwrap() < 30.0, "{report:#}");
    assert_eq!(r["ike_sas_deleted"], 1, "{report:#}");
    // The pings ran for 1.2 s after the drain was asked for: the wait covered them.
    assert!(
        drained_after > Duration::from_millis(1200),
        "drained after {drained_after:?}, before the pings stopped"
    );
    assert_eq!(
        run.lost().len(),
        0,
        "pings lost while draining: the SAs closed under traffic\n{}",
        lab.logs()
    );
    assert_drained(&lab, dir);
    let st = lab.a.status();
    assert_eq!(st["drain"]["state"], "drained", "{st:#}");
    assert_eq!(ike_sa_count(&st), 0, "{st:#}");
    let text = String::from_utf8_lossy(&ironsecctl(&lab.sock_a, &["status"]).stdout).into_owned();
    assert!(text.contains("  drain: drained (since "), "{text}");
    // Routes and guards stay: traffic for lanB goes into the TUN device and is dropped.
    let routes = ip(&lab.topo.gw_a, &["-4", "route", "show", LAN_B_NET]);
    assert!(routes.contains("dev ipsec0"), "{routes}");
    let guards = ip(&lab.topo.gw_a, &["-4", "route", "show", "proto", "147"]);
    assert!(guards.contains(LAN_B_NET), "guard gone: {guards}");
    let (clear_before, _) = judge.counts();
    let after = pings(&lab, 20, Duration::from_millis(20));
    assert_eq!(after.received(), 0, "pings answered while drained");
    std::thread::sleep(Duration::from_millis(200));
    let (clear, _) = judge.counts();
    assert_eq!(
        clear, 0,
        "cleartext on the WAN (before the last pings: {clear_before})"
    );
    // Drained stays drained: no restart, the peer cannot bring it back.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(ike_sa_count(&lab.a.status()), 0);
    let again = ironsecctl(&lab.sock_a, &["drain"]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already drained"),
        "{again:?}"
    );

    let asked = Instant::now();
    let report = ctl_json(&lab.sock_a, &["rejoin"]);
    let r = &report["rejoin"];
    println!(
        "rejoin: tunnels after {} s, total {} s (ironsecctl {:.2} s)",
        r["tunnels_secs"],
        r["total_secs"],
        asked.elapsed().as_secs_f64()
    );
    assert_eq!(r["connections_up"], 1, "{report:#}");
    assert_eq!(r["timed_out"], false, "{report:#}");
    assert_eq!(r["rejoin"]["commands"], 1);
    assert_eq!(
        std::fs::read_to_string(dir.join("drain-state")).unwrap(),
        "0\n"
    );
    // The rejoin command ran with the tunnel up already.
    let seen: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("rejoin-status.json")).expect("rejoin command output"),
    )
    .unwrap();
    assert!(
        tunnel_up(&seen),
        "the rejoin command ran before the tunnel was up: {seen:#}"
    );
    assert_eq!(seen["drain"]["state"], "ready");
    let back = pings(&lab, 20, Duration::from_millis(20));
    assert_eq!(back.received(), 20, "{}", lab.logs());
    let (clear, _) = judge.counts();
    assert_eq!(clear, 0);
    let st = lab.a.status();
    assert_eq!(st["drain"]["state"], "ready");
    assert!(st["drain"]["last"]
        .as_str()
        .unwrap()
        .starts_with("rejoined in "));
}

/// SIGTERM with `on_stop = true` drains before the daemon exits (log order: withdraw, wait,
/// close, exit), exits 0, and gwB sees the DELETE. Started again with `rejoin_on_start`, the
/// state file says "0" and the rejoin command runs once the tunnel is up.
#[test]
#[ignore = "needs root"]
fn sigterm_drains_before_exit_and_start_rejoins() {
    let (mut lab, judge) =
        lab("quiet = 0.5\ntimeout = 10\non_stop = true\nrejoin_on_start = true\n");
    let dir = lab.dir.path.clone();
    let t0 = Instant::now();
    let status = lab
        .a
        .stop()
        .expect("ironsecd did not exit within 5 s of SIGTERM");
    let took = t0.elapsed();
    println!("SIGTERM to exit: {:.2} s", took.as_secs_f64());
    assert!(status.success(), "exit status {status}\n{}", lab.log_a());
    let log = lab.log_a();
    let at = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in the log:\n{log}"))
    };
    let order = [
        at("SIGTERM: draining before exit"),
        at("drain: withdraw command done"),
        at("drain: IKE SAs deleted"),
        at("drained in "),
        at("drained: shutting down"),
    ];
    // gwB answered the DELETE before gwA exited.
    assert!(
        log.contains("drained: shutting down unanswered_deletes=0"),
        "{log}"
    );
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "log out of order {order:?}:\n{log}"
    );
    assert_drained(&lab, &dir);
    // Daemon gone: the guards keep lanB's traffic from leaving in clear.
    let gone_pings = pings(&lab, 10, Duration::from_millis(20));
    assert_eq!(gone_pings.received(), 0);
    assert_eq!(judge.counts().0, 0, "cleartext on the WAN after the stop");

    assert!(!dir.join("rejoin-status.json").exists());
    lab.restart_a();
    let ok = poll_until(Duration::from_secs(15), || {
        dir.join("rejoin-status.json").exists()
            && std::fs::read_to_string(dir.join("drain-state")).is_ok_and(|s| s == "0\n")
    });
    assert!(ok, "no rejoin at start\n{}", lab.log_a());
    // Give the shell's redirect a moment to finish writing.
    let seen: Value = {
        let mut v = Value::Null;
        poll_until(Duration::from_secs(3), || {
            v = std::fs::read_to_string(dir.join("rejoin-status.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null);
            !v.is_null()
        });
        v
    };
    assert!(
        tunnel_up(&seen),
        "rejoin command ran before the tunnel was up: {seen:#}"
    );
    lab.wait_up(UP_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let log = lab.log_a();
    assert!(log.contains("rejoined in "), "{log}");
}

/// Every notify datagram waiting on `sock`, one string each.
fn notifications(sock: &std::os::unix::net::UnixDatagram) -> Vec<String> {
    let mut v = Vec::new();
    let mut buf = [0u8; 512];
    while let Ok(n) = sock.recv(&mut buf) {
        v.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    v
}

/// A stop-path drain that waits (pings keep the tunnel busy) tells systemd STATUS=draining
/// then STOPPING=1, keeps the watchdog fed while it waits, and a second SIGTERM exits at
/// once (exit status 0).
#[test]
#[ignore = "needs root"]
fn stop_drain_feeds_the_watchdog_and_a_second_sigterm_exits_at_once() {
    let (mut lab, _judge) = lab("quiet = 3\ntimeout = 30\non_stop = true\n");
    // gwA again, reporting to a notify socket the test reads, as systemd would.
    lab.a.stop();
    let notify_path = lab.dir.join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify.set_nonblocking(true).unwrap();
    lab.restart_a_with_env(
        "notify",
        &[
            ("NOTIFY_SOCKET", notify_path.display().to_string()),
            ("WATCHDOG_USEC", "1000000".into()),
        ],
    );
    lab.wait_up(UP_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    // 1.5 s of pings at 100/s, then 3 s of quiet: the drain waits at least 4 s.
    let ping = traffic_in_background(&lab);
    std::thread::sleep(Duration::from_millis(300));
    notifications(&notify);
    let pid = lab.a.proc_.pid() as libc::pid_t;
    // SAFETY: kill(2) on the PID of the daemon this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        lab.a.proc_.try_wait().is_none(),
        "exited before the drain was done"
    );
    let seen = notifications(&notify);
    let first = |want: &str| seen.iter().position(|m| m.lines().any(|l| l == want));
    let (draining, stopping) = (first("STATUS=draining"), first("STOPPING=1"));
    assert!(
        draining.is_some() && stopping.is_some() && draining < stopping,
        "expected STATUS=draining then STOPPING=1: {seen:?}"
    );
    let fed = seen[stopping.unwrap()..]
        .iter()
        .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
        .count();
    assert!(
        fed >= 2,
        "watchdog not fed while draining (1.5 s at one per 0.5 s): {seen:?}"
    );
    let run = ping.join().unwrap();
    assert_eq!(run.lost().len(), 0, "pings lost during the drain's wait");
    let st = lab.a.status();
    assert_eq!(st["drain"]["state"], "draining", "{st:#}");
    let t0 = Instant::now();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = lab.a.proc_.wait_exit(Duration::from_secs(3));
    let took = t0.elapsed();
    println!(
        "second SIGTERM to exit: {:.3} s; watchdog keep-alives during 1.5 s of drain: {fed}",
        took.as_secs_f64()
    );
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    let log = lab.a.log_text();
    assert!(
        log.contains("second SIGTERM: exiting without finishing the drain"),
        "{log}"
    );
    assert!(!log.contains("drained in "), "{log}");
}
