//! Integration tests of what an operator does with running gateways: start action `trap`,
//! `ironsecctl initiate` / `terminate` and their errors, reload (ironsecctl and SIGHUP) that
//! adds, changes and removes sites while others carry traffic, a refused reload, the systemd
//! notify protocol (READY=1, WATCHDOG=1, RELOADING=1) and the Prometheus endpoint.
//!
//! Two-site tests use netns-scripts/topology.sh; the reload test uses its four-site mode:
//!
//!   lanA 10.1.0.2 - gwA 192.0.2.1 ==br0== 192.0.2.2 gwB - lanB 10.2.0.2
//!                                   ||==== 192.0.2.3 gwC - lanC 10.3.0.2
//!                                   ||==== 192.0.2.4 gwD - lanD 10.4.0.2
//!
//! Every namespace, daemon and file is removed by guards, also when a test fails. These tests
//! need root: they are `#[ignore = "needs root"]` (tests/run.sh runs them) and FAIL (never
//! skip) without root.
//!
//! Run: `cargo test -p ironsecd --test daemon_ops -- --include-ignored --test-threads=1 --nocapture`

mod common;

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const PING_PATTERN: &[u8] = b"\x5a\x17\xc0\xde-IRONSEC-OPS-PING!\xa5";
const UP_TIMEOUT: Duration = Duration::from_secs(20);

fn ctl(d: &Daemon, args: &[&str]) -> Output {
    ironsecctl(&d.socket, args)
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn state(d: &Daemon, conn: &str) -> String {
    conn_tunnel(&d.status(), conn)["state"]
        .as_str()
        .unwrap_or("?")
        .to_string()
}

fn wait_state(d: &Daemon, conn: &str, want: &str, timeout: Duration) {
    let ok = poll_until(timeout, || state(d, conn) == want);
    assert!(
        ok,
        "{}: connection {conn} not {want} within {timeout:?}: {:#}\nlog:\n{}",
        d.name,
        conn_tunnel(&d.status(), conn),
        d.log_text()
    );
}

fn ike_spi(d: &Daemon, conn: &str) -> String {
    conn_tunnel(&d.status(), conn)["ike"]["spi_i"]
        .as_str()
        .unwrap_or("-")
        .to_string()
}

fn ping_run(ns: &str, dst: Ipv4Addr, count: u16) -> PingRun {
    ping_paced(
        ns,
        dst,
        count,
        pattern_payload(PING_PATTERN, 56),
        Duration::from_millis(50),
        Duration::from_secs(1),
    )
}

fn assert_no_loss(run: &PingRun, what: &str) {
    let lost: Vec<u16> = run.lost().iter().map(|r| r.seq).collect();
    assert!(
        lost.is_empty(),
        "{what}: {} of {} pings lost (seq {lost:?})",
        lost.len(),
        run.sent()
    );
}

// ------------------------------------------------------------------------------------------
// Two sites

struct Pair {
    a: Daemon,
    b: Daemon,
    topo: Topology,
    dir: TempDir,
}

/// gwA and gwB with one connection each; `a_start`/`b_start` are their start actions.
fn pair(a_start: &str, b_start: &str) -> Pair {
    require_root();
    let prefix = unique_prefix();
    let dir = TempDir::new(&prefix);
    let topo = Topology::up(&prefix);
    let psk = write_psk(&dir, "ab.psk");
    let (sa, sb) = (dir.join("a.sock"), dir.join("b.sock"));
    let ca = dir.join("gw-a.toml");
    let cb = dir.join("gw-b.toml");
    fs::write(
        &ca,
        gateway_toml(&sa, "")
            + &conn_toml(&Conn {
                name: "site-b",
                local_id: "gw-a.example",
                remote_id: "gw-b.example",
                psk_file: &psk,
                local_ts: "10.1.0.0/24",
                remote_ts: "10.2.0.0/24",
                local: Ipv4Addr::new(192, 0, 2, 1),
                remote: Ipv4Addr::new(192, 0, 2, 2),
                start_action: a_start,
                extra: "",
            }),
    )
    .unwrap();
    fs::write(
        &cb,
        gateway_toml(&sb, "")
            + &conn_toml(&Conn {
                name: "site-a",
                local_id: "gw-b.example",
                remote_id: "gw-a.example",
                psk_file: &psk,
                local_ts: "10.2.0.0/24",
                remote_ts: "10.1.0.0/24",
                local: Ipv4Addr::new(192, 0, 2, 2),
                remote: Ipv4Addr::new(192, 0, 2, 1),
                start_action: b_start,
                extra: "",
            }),
    )
    .unwrap();
    let b = Daemon::start("gwB", &topo.gw_b, &cb, &sb, dir.join("ironsecd-b.log"));
    let a = Daemon::start("gwA", &topo.gw_a, &ca, &sa, dir.join("ironsecd-a.log"));
    Pair { a, b, topo, dir }
}

#[test]
#[ignore = "needs root"]
fn trap_negotiates_on_the_first_packet() {
    let _s = serial();
    let p = pair("trap", "none");
    // No traffic, no negotiation.
    std::thread::sleep(Duration::from_secs(1));
    let st = p.a.status();
    assert_eq!(conn_tunnel(&st, "site-b")["state"], "trapped", "{st:#}");
    assert!(conn_tunnel(&st, "site-b")["ike"].is_null(), "{st:#}");
    assert_eq!(st["ike"]["requests_sent"], 0, "nothing sent yet: {st:#}");

    // The first packet towards lanB brings the tunnel up; it is dropped (counted) while the
    // SA does not exist, the following ones get through.
    let t0 = Instant::now();
    let run = ping_run(&p.topo.lan_a, Ipv4Addr::new(10, 2, 0, 2), 40);
    let first_ok = run
        .records
        .iter()
        .position(|r| r.rtt.is_some())
        .expect("no ping ever answered");
    println!(
        "trap: {} of {} pings answered; first answered: #{} ({:?} after the first packet)",
        run.received(),
        run.sent(),
        first_ok + 1,
        Duration::from_millis(50) * first_ok as u32
    );
    assert!(
        first_ok <= 4,
        "tunnel took more than 4 pings to come up\n{}",
        p.a.log_text()
    );
    assert!(
        run.records[first_ok..].iter().all(|r| r.rtt.is_some()),
        "pings lost after the tunnel came up"
    );
    let st = p.a.status();
    let t = conn_tunnel(&st, "site-b");
    assert_eq!(t["state"], "up", "{st:#}");
    assert_eq!(t["ike"]["initiator"], true, "gwA initiated: {st:#}");
    assert!(
        num(&st, "/drops/no_sa") >= 1,
        "first packet counted: {st:#}"
    );
    assert!(
        p.a.log_text().contains("traffic for a trapped tunnel"),
        "{}",
        p.a.log_text()
    );
    assert!(t0.elapsed() < Duration::from_secs(10));

    // Terminated by the operator, a trapped connection goes back to waiting for traffic.
    let o = ctl(&p.a, &["terminate", "site-b"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "terminate: {out}{err}");
    assert!(out.contains("deleting 1 IKE SA"), "{out}");
    wait_state(&p.a, "site-b", "trapped", Duration::from_secs(5));
    wait_state(&p.b, "site-a", "down", Duration::from_secs(5));
    let run = ping_run(&p.topo.lan_a, Ipv4Addr::new(10, 2, 0, 2), 20);
    assert!(
        run.received() >= 15,
        "trap after terminate: {} of 20",
        run.received()
    );
    wait_state(&p.a, "site-b", "up", Duration::from_secs(5));
}

#[test]
#[ignore = "needs root"]
fn initiate_and_terminate_with_errors_verbatim() {
    let _s = serial();
    let p = pair("none", "none");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(state(&p.a, "site-b"), "down");

    let o = ctl(&p.a, &["initiate", "site-b", "--timeout", "15"]);
    let (out, err) = text(&o);
    assert!(
        o.status.success(),
        "initiate: {out}{err}\n{}",
        p.a.log_text()
    );
    assert!(
        out.contains("connection 'site-b': initiating 1 tunnel"),
        "{out}"
    );
    assert!(out.contains("connection 'site-b' is up"), "{out}");
    assert_no_loss(
        &ping_run(&p.topo.lan_a, Ipv4Addr::new(10, 2, 0, 2), 5),
        "A->B",
    );
    assert_no_loss(
        &ping_run(&p.topo.lan_b, Ipv4Addr::new(10, 1, 0, 2), 5),
        "B->A",
    );

    // Refusals come back as the daemon wrote them, with exit code 1.
    for (args, want) in [
        (
            vec!["initiate", "site-b"],
            "ironsecd: connection 'site-b': every tunnel already has an IKE SA\n",
        ),
        (
            vec!["initiate", "nope"],
            "ironsecd: no connection named 'nope'\n",
        ),
        (
            vec!["terminate", "nope"],
            "ironsecd: no connection named 'nope'\n",
        ),
    ] {
        let o = ctl(&p.a, &args);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {out}{err}");
        assert_eq!(err, want, "{args:?}");
    }
    let o = ctl(&p.a, &["--json", "initiate", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON error");
    assert_eq!(v["error"], "no connection named 'nope'");

    let o = ctl(&p.a, &["terminate", "site-b"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "terminate: {out}{err}");
    wait_state(&p.a, "site-b", "down", Duration::from_secs(5));
    wait_state(&p.b, "site-a", "down", Duration::from_secs(5));
    let drops_before = num(&p.a.status(), "/drops/no_sa");
    let run = ping_run(&p.topo.lan_a, Ipv4Addr::new(10, 2, 0, 2), 3);
    assert_eq!(run.received(), 0, "no tunnel, no ping");
    assert!(num(&p.a.status(), "/drops/no_sa") >= drops_before + 3);
    // Held down by the operator: no restart after the restart delay (5 s).
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(state(&p.a, "site-b"), "down", "{}", p.a.log_text());
    let o = ctl(&p.a, &["terminate", "site-b"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(text(&o).1, "ironsecd: connection 'site-b' has no IKE SA\n");
    // And back on the operator's word.
    let o = ctl(&p.a, &["initiate", "site-b"]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert_no_loss(
        &ping_run(&p.topo.lan_b, Ipv4Addr::new(10, 1, 0, 2), 5),
        "B->A again",
    );
    drop(p.dir);
}

// ------------------------------------------------------------------------------------------
// Four sites: reload

/// Reads every notify datagram waiting on `sock`.
fn notifications(sock: &UnixDatagram) -> Vec<String> {
    let mut v = Vec::new();
    let mut buf = [0u8; 512];
    while let Ok(n) = sock.recv(&mut buf) {
        v.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    v
}

fn wait_notify(sock: &UnixDatagram, want: &str, timeout: Duration, seen: &mut Vec<String>) {
    let ok = poll_until(timeout, || {
        seen.extend(notifications(sock));
        seen.iter().any(|m| m.lines().any(|l| l == want))
    });
    assert!(
        ok,
        "no {want} on NOTIFY_SOCKET within {timeout:?}: {seen:?}"
    );
}

fn metrics(ns: &str) -> String {
    in_netns(ns, || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect("127.0.0.1:9814").expect("metrics connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
}

fn metric(text: &str, prefix: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {prefix} in\n{text}"))
}

#[test]
#[ignore = "needs root"]
fn reload_adds_changes_and_removes_sites_without_touching_the_others() {
    let _s = serial();
    require_root();
    let prefix = unique_prefix();
    let dir = TempDir::new(&prefix);
    let net = MultiSite::up(&prefix, 4);
    let names = ["site-a", "site-b", "site-c", "site-d"];
    let psks: Vec<PathBuf> = (1..4)
        .map(|i| write_psk(&dir, &format!("a{i}.psk")))
        .collect();
    // The hub's connection to spoke i (1..=3).
    let hub_conn = |i: usize, extra: &str| MultiSite::hub_conn(i, &psks[i - 1], "start", extra);
    let sock_a = dir.join("a.sock");
    let hub =
        |conns: &[String]| gateway_toml(&sock_a, "metrics = \"127.0.0.1:9814\"") + &conns.concat();
    let cfg_a = dir.join("gw-a.toml");
    fs::write(&cfg_a, hub(&[hub_conn(1, ""), hub_conn(2, "")])).unwrap();

    // Spokes wait for the hub.
    let mut spokes = Vec::new();
    for i in 1..4 {
        let sock = dir.join(&format!("{}.sock", names[i]));
        let cfg = dir.join(&format!("{}.toml", names[i]));
        fs::write(
            &cfg,
            gateway_toml(&sock, "") + &MultiSite::spoke_conn(i, &psks[i - 1], "none", ""),
        )
        .unwrap();
        spokes.push(Daemon::start(
            names[i],
            &net.gw(i),
            &cfg,
            &sock,
            dir.join(&format!("ironsecd-{}.log", names[i])),
        ));
    }
    // The hub reports to a notify socket the test reads, as systemd would.
    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_nonblocking(true).unwrap();
    let a = Daemon::start_with_env(
        "gwA",
        &net.gw(0),
        &cfg_a,
        &sock_a,
        dir.join("ironsecd-a.log"),
        None,
        &[
            ("NOTIFY_SOCKET", notify_path.display().to_string()),
            ("WATCHDOG_USEC", "4000000".into()),
        ],
    );
    let mut seen = Vec::new();
    wait_notify(&notify, "READY=1", Duration::from_secs(5), &mut seen);
    wait_notify(&notify, "WATCHDOG=1", Duration::from_secs(4), &mut seen);
    for n in ["site-b", "site-c"] {
        wait_state(&a, n, "up", UP_TIMEOUT);
    }
    let (spi_b, spi_c) = (ike_spi(&a, "site-b"), ike_spi(&a, "site-c"));

    // 1. Add site D while lanA pings lanB and lanC at 20/s.
    let pingers = |secs: u16| {
        let (na, nb) = (net.lan(0), net.lan(0));
        let hb = std::thread::spawn(move || ping_run(&na, MultiSite::lan_host(1), secs * 20));
        let hc = std::thread::spawn(move || ping_run(&nb, MultiSite::lan_host(2), secs * 20));
        (hb, hc)
    };
    let (hb, hc) = pingers(6);
    std::thread::sleep(Duration::from_millis(1500));
    // The kernel queues only a few datagrams per socket: read what waits, so the reload's
    // messages find room.
    notifications(&notify);
    seen.clear();
    fs::write(
        &cfg_a,
        hub(&[hub_conn(1, ""), hub_conn(2, ""), hub_conn(3, "")]),
    )
    .unwrap();
    let o = ctl(&a, &["reload"]);
    let (out, err) = text(&o);
    println!("reload: {out}{err}");
    assert!(o.status.success(), "reload: {out}{err}\n{}", a.log_text());
    assert!(out.contains("added: site-d"), "{out}");
    assert!(out.contains("unchanged: 2"), "{out}");
    wait_notify(&notify, "RELOADING=1", Duration::from_secs(2), &mut seen);
    wait_notify(&notify, "READY=1", Duration::from_secs(2), &mut seen);
    let reloading = seen.iter().position(|m| m.starts_with("RELOADING=1"));
    let ready = seen.iter().rposition(|m| m == "READY=1");
    assert!(reloading < ready, "READY=1 after RELOADING=1: {seen:?}");
    assert!(
        seen.iter().any(|m| m.contains("MONOTONIC_USEC=")),
        "{seen:?}"
    );
    let (rb, rc) = (hb.join().unwrap(), hc.join().unwrap());
    assert_no_loss(&rb, "lanA->lanB during the reload");
    assert_no_loss(&rc, "lanA->lanC during the reload");
    println!(
        "reload adding site-d: lanB {}/{} and lanC {}/{} pings answered",
        rb.received(),
        rb.sent(),
        rc.received(),
        rc.sent()
    );
    assert_eq!(ike_spi(&a, "site-b"), spi_b, "site-b untouched");
    assert_eq!(ike_spi(&a, "site-c"), spi_c, "site-c untouched");
    wait_state(&a, "site-d", "up", UP_TIMEOUT);
    assert_no_loss(&ping_run(&net.lan(0), MultiSite::lan_host(3), 5), "A->D");
    assert_no_loss(&ping_run(&net.lan(3), MultiSite::lan_host(0), 5), "D->A");

    // 2. Refused reloads: the errors come back verbatim, everything keeps running.
    let (hb, hc) = pingers(4);
    let good = fs::read_to_string(&cfg_a).unwrap();
    let bad_cidr = good.replacen("10.3.0.0/24", "10.3.0.0/33", 1);
    let bad_gateway = good.replace("tun = \"ipsec0\"", "tun = \"ipsec9\"");
    // Several errors in one file: every one comes back, not just the first serde met.
    let bad_many = bad_cidr.replacen("keying = \"ike\"", "keying = \"ike\"\ndpd_intervall = 5", 1);
    assert_ne!(bad_many, bad_cidr, "the example has a keying line");
    for (bad, wants) in [
        (&bad_cidr, &["10.3.0.0/33"][..]),
        (
            &bad_gateway,
            &["gateway.tun: changed from ipsec0 to ipsec9; gateway settings apply at start (restart ironsecd)"][..],
        ),
        (
            &bad_many,
            &[
                "10.3.0.0/33",
                ".dpd_intervall: unknown key (did you mean \"dpd_interval\"?)",
            ][..],
        ),
    ] {
        fs::write(&cfg_a, bad).unwrap();
        let o = ctl(&a, &["reload"]);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "bad reload accepted: {out}{err}");
        assert!(
            err.starts_with("ironsecd: reload refused, the running config stays:"),
            "{err}"
        );
        for want in wants {
            assert!(err.contains(want), "{err}");
        }
        if wants[0].contains("33") {
            assert!(err.contains(&cfg_a.display().to_string()), "names the file: {err}");
        }
    }
    fs::write(&cfg_a, &good).unwrap();
    let (rb, rc) = (hb.join().unwrap(), hc.join().unwrap());
    assert_no_loss(&rb, "lanA->lanB during refused reloads");
    assert_no_loss(&rc, "lanA->lanC during refused reloads");
    let st = a.status();
    assert_eq!(st["connections"].as_array().unwrap().len(), 3, "{st:#}");
    assert_eq!(st["tun"], "ipsec0");

    // 3. SIGHUP with one connection changed: only that one is renegotiated.
    let spi_d = ike_spi(&a, "site-d");
    fs::write(
        &cfg_a,
        hub(&[
            hub_conn(1, ""),
            hub_conn(2, "rekey_time = 3000"),
            hub_conn(3, ""),
        ]),
    )
    .unwrap();
    let (hb, _hc) = pingers(4);
    // SAFETY: kill(2) touches no memory; the PID is the daemon this test started and still owns.
    unsafe { libc::kill(a.proc_.pid() as i32, libc::SIGHUP) };
    let ok = poll_until(Duration::from_secs(10), || {
        let s = ike_spi(&a, "site-c");
        s != spi_c && s != "-" && state(&a, "site-c") == "up"
    });
    assert!(ok, "site-c not renegotiated after SIGHUP\n{}", a.log_text());
    assert!(a.log_text().contains("changed: site-c"), "{}", a.log_text());
    assert_no_loss(&hb.join().unwrap(), "lanA->lanB during SIGHUP reload");
    assert_eq!(ike_spi(&a, "site-b"), spi_b, "site-b untouched by SIGHUP");
    assert_eq!(ike_spi(&a, "site-d"), spi_d, "site-d untouched by SIGHUP");
    assert_no_loss(&ping_run(&net.lan(0), MultiSite::lan_host(2), 5), "A->C");

    // 4. Metrics: what status says, in Prometheus text.
    let m = metrics(&net.gw(0));
    assert!(m.starts_with("HTTP/1.1 200 OK"), "{m}");
    assert_eq!(
        metric(
            &m,
            "ironsec_tunnel_up{connection=\"site-b\",local=\"192.0.2.1\",remote=\"192.0.2.2\"}"
        ),
        1
    );
    assert!(
        metric(
            &m,
            "ironsec_tunnel_packets_total{connection=\"site-b\",local=\"192.0.2.1\",remote=\"192.0.2.2\",direction=\"out\"}"
        ) >= 200
    );
    assert!(metric(&m, "ironsec_ike_requests_total") >= 3);
    assert_eq!(
        metric(&m, "ironsec_connection_up{connection=\"site-d\"}"),
        1
    );
    assert!(m.contains("# TYPE ironsec_rekeys_total counter"), "{m}");
    assert!(
        m.contains("ironsec_drops_total{reason=\"replay\"} 0"),
        "{m}"
    );

    // 5. Remove site D: its SAs are deleted (the spoke hears it) and its route goes.
    fs::write(
        &cfg_a,
        hub(&[hub_conn(1, ""), hub_conn(2, "rekey_time = 3000")]),
    )
    .unwrap();
    let o = ctl(&a, &["reload"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("removed: site-d"), "{out}");
    wait_state(&spokes[2], "site-a", "down", Duration::from_secs(5));
    let routes = run_ok(
        ns_cmd(&net.gw(0), "ip").args(["route", "show", "10.4.0.0/24"]),
        Duration::from_secs(5),
    );
    assert!(
        routes.stdout.is_empty(),
        "route to the removed site stays: {}",
        String::from_utf8_lossy(&routes.stdout)
    );
    assert_no_loss(
        &ping_run(&net.lan(0), MultiSite::lan_host(1), 5),
        "A->B at the end",
    );
    drop(spokes);
    drop(a);
    drop(net);
}
