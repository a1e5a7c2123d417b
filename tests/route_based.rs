//! Route-based connections (README "Route-based tunnels and BGP") between ironsec gateways in
//! namespaces, without a routing daemon (tests/route_bgp.rs runs BIRD over them):
//!
//! - a route-based connection beside a policy-based one on the same hub: each connection's
//!   traffic on its own device, the kernel's interface counters counting what the tunnel
//!   counts, strict reverse-path filtering passing (the SA delivers on the connection's own
//!   interface), status showing the interface;
//! - fail closed: with gwA given a default route out of its WAN, an outside judge on the wire
//!   counts zero cleartext packets for the protected prefix while the tunnel is down, while the
//!   routing daemon's route is withdrawn, and while ironsecd is stopped; the control step
//!   (guards removed) shows the judge does see cleartext when nothing guards it;
//! - active-standby: two tunnels under one interface, the standby taking the traffic when the
//!   active one's WAN link is cut.

mod common;

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const UP_TIMEOUT: Duration = Duration::from_secs(20);
const CANARY: &[u8] = b"IRONSEC-ROUTE-BASED-CANARY";

/// A route-based `[[connection]]` table: selectors left to their 0.0.0.0/0 default.
#[allow(clippy::too_many_arguments)]
fn rb_conn(
    name: &str,
    ids: (&str, &str),
    psk: &Path,
    interface: &str,
    address: &str,
    extra: &str,
    start_action: &str,
    tunnels: &str,
) -> String {
    format!(
        r#"
[[connection]]
name = "{name}"
keying = "ike"
interface = "{interface}"
interface_address = "{address}"
local_id = "{lid}"
remote_id = "{rid}"
psk_file = {psk}
ike_proposals = ["aes128gcm16-prfsha256-x25519"]
esp_proposals = ["aes128gcm16"]
start_action = "{start_action}"
dpd_interval = 2
dpd_timeout = 6
retransmit_timeout = 0.5
retransmit_tries = 3
{extra}
tunnels = {tunnels}
"#,
        lid = ids.0,
        rid = ids.1,
        psk = toml_str(psk.to_str().unwrap()),
    )
}

fn gateway(sock: &Path) -> String {
    format!(
        "[gateway]\ntun = \"ipsec0\"\ntun_mtu = 1400\ncontrol_socket = {}\nmetrics = \"off\"\n",
        toml_str(sock.to_str().unwrap())
    )
}

/// One ping from `ns` to `dst` every 250 ms until one is answered (bounded).
fn wait_ping(ns: &str, dst: Ipv4Addr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let r = ping(
            ns,
            dst,
            1,
            pattern_payload(CANARY, 56),
            Duration::ZERO,
            Duration::from_millis(250),
        );
        if r.received == 1 {
            return true;
        }
    }
    false
}

fn connection<'a>(st: &'a Value, name: &str) -> &'a Value {
    st["connections"]
        .as_array()
        .and_then(|v| v.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no connection {name} in {st:#}"))
}

/// The sum over a connection's tunnels of (packets out, packets in) as ironsecd counts them.
fn tunnel_packets(st: &Value, conn: &str) -> (u64, u64) {
    let c = connection(st, conn);
    let mut out = (0, 0);
    for t in c["tunnels"].as_array().into_iter().flatten() {
        out.0 += t["total_out"]["packets"].as_u64().unwrap_or(0);
        out.1 += t["total_in"]["packets"].as_u64().unwrap_or(0);
    }
    out
}

/// (tx, rx) packets of device `dev` in `ns`, from the kernel.
fn link_packets(ns: &str, dev: &str) -> (u64, u64) {
    let read = |f: &str| -> u64 {
        let o = run_ok(
            ns_cmd(ns, "cat").arg(format!("/sys/class/net/{dev}/statistics/{f}")),
            Duration::from_secs(5),
        );
        String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
    };
    (read("tx_packets"), read("rx_packets"))
}

fn conn_up(sock: &Path, conn: &str) -> bool {
    ctl_status(sock).is_ok_and(|st| {
        connection(&st, conn)["tunnels"]
            .as_array()
            .is_some_and(|ts| ts.iter().any(|t| t["state"] == "up"))
    })
}

/// Hub A with a route-based connection to B (`vti-b`, static route to B's LAN) and a
/// policy-based one to C, on one gateway; strict rp_filter on A.
#[test]
#[ignore = "needs root"]
fn route_based_beside_policy_based_on_one_gateway() {
    require_root();
    let prefix = unique_prefix();
    let dir = TempDir::new(&prefix);
    let topo = MultiSite::up(&prefix, 3);
    let psk_b = dir.join("psk-b");
    let psk_c = dir.join("psk-c");
    write_secret(&psk_b, format!("0x{}\n", hex(&random_bytes(32))));
    write_secret(&psk_c, format!("0x{}\n", hex(&random_bytes(32))));
    let (sock_a, sock_b, sock_c) = (dir.join("a.sock"), dir.join("b.sock"), dir.join("c.sock"));
    let one = |l: usize, r: usize| {
        format!(
            "[ {{ local = \"{}\", remote = \"{}\" }} ]",
            MultiSite::wan_ip(l),
            MultiSite::wan_ip(r)
        )
    };
    let cfg_a = gateway(&sock_a)
        + &rb_conn(
            "site-b",
            ("gw-a.example", "gw-b.example"),
            &psk_b,
            "vti-b",
            "169.254.21.1/30",
            &format!("routes = [\"{}\"]", MultiSite::lan_net(1)),
            "start",
            &one(0, 1),
        )
        + &MultiSite::hub_conn(2, &psk_c, "start", "");
    let cfg_b = gateway(&sock_b)
        + &rb_conn(
            "hub",
            ("gw-b.example", "gw-a.example"),
            &psk_b,
            "vti-hub",
            "169.254.21.2/30",
            &format!("routes = [\"{}\"]", MultiSite::lan_net(0)),
            "none",
            &one(1, 0),
        );
    let cfg_c = gateway(&sock_c) + &MultiSite::spoke_conn(2, &psk_c, "none", "");
    let path = |n: &str, text: &str| -> PathBuf {
        let p = dir.join(n);
        fs::write(&p, text).unwrap();
        p
    };
    let (pa, pb, pc) = (
        path("a.toml", &cfg_a),
        path("b.toml", &cfg_b),
        path("c.toml", &cfg_c),
    );
    let _b = Daemon::start("gwB", &topo.gw(1), &pb, &sock_b, dir.join("b.log"));
    let _c = Daemon::start("gwC", &topo.gw(2), &pc, &sock_c, dir.join("c.log"));
    let a = Daemon::start("gwA", &topo.gw(0), &pa, &sock_a, dir.join("a.log"));
    let logs = || {
        format!(
            "--- a ---\n{}\n--- b ---\n{}\n--- c ---\n{}",
            fs::read_to_string(dir.join("a.log")).unwrap_or_default(),
            fs::read_to_string(dir.join("b.log")).unwrap_or_default(),
            fs::read_to_string(dir.join("c.log")).unwrap_or_default()
        )
    };
    assert!(
        poll_until(UP_TIMEOUT, || conn_up(&sock_a, "site-b")
            && conn_up(&sock_a, "site-c")),
        "connections not up\n{}",
        logs()
    );
    // Strict reverse-path filtering on the hub: a packet from lanB must arrive on vti-b, the
    // interface the route back to lanB uses.
    sysctl(&topo.gw(0), "net.ipv4.conf.all.rp_filter=1");
    sysctl(&topo.gw(0), "net.ipv4.conf.vti-b.rp_filter=1");
    let routes = ip(&topo.gw(0), &["route"]);
    assert!(
        routes.contains(&format!("{} dev vti-b", MultiSite::lan_net(1))),
        "no static route into vti-b: {routes}"
    );
    assert!(
        routes.contains(&format!("{} dev ipsec0", MultiSite::lan_net(2))),
        "the policy-based route into the shared device is missing: {routes}"
    );
    assert!(
        !routes.contains("0.0.0.0/0") && !routes.starts_with("default"),
        "a route-based connection's 0.0.0.0/0 selectors must not become routes: {routes}"
    );
    // Both kinds carry traffic, the interface addresses answer through the tunnel.
    assert!(
        wait_ping(
            &topo.lan(0),
            MultiSite::lan_host(1),
            Duration::from_secs(10)
        ),
        "lanA -> lanB over vti-b\n{}",
        logs()
    );
    assert!(
        wait_ping(
            &topo.lan(0),
            MultiSite::lan_host(2),
            Duration::from_secs(10)
        ),
        "lanA -> lanC over the policy-based connection\n{}",
        logs()
    );
    assert!(
        wait_ping(
            &topo.gw(0),
            Ipv4Addr::new(169, 254, 21, 2),
            Duration::from_secs(10)
        ),
        "gwA -> B's interface address\n{}",
        logs()
    );
    // The kernel's counters of vti-b count what the tunnel counts.
    let st0 = a.status();
    let (k_tx0, k_rx0) = link_packets(&topo.gw(0), "vti-b");
    let (t_out0, t_in0) = tunnel_packets(&st0, "site-b");
    let (c_out0, _) = tunnel_packets(&st0, "site-c");
    let r = ping(
        &topo.lan(0),
        MultiSite::lan_host(1),
        20,
        pattern_payload(CANARY, 100),
        Duration::from_millis(20),
        Duration::from_secs(1),
    );
    assert_eq!(r.received, 20, "pings over vti-b lost\n{}", logs());
    let st1 = a.status();
    let (k_tx1, k_rx1) = link_packets(&topo.gw(0), "vti-b");
    let (t_out1, t_in1) = tunnel_packets(&st1, "site-b");
    let (c_out1, _) = tunnel_packets(&st1, "site-c");
    println!(
        "vti-b: kernel tx {} rx {}, tunnel out {} in {} (20 pings)",
        k_tx1 - k_tx0,
        k_rx1 - k_rx0,
        t_out1 - t_out0,
        t_in1 - t_in0
    );
    assert_eq!(k_tx1 - k_tx0, t_out1 - t_out0, "into vti-b vs sealed");
    assert_eq!(k_rx1 - k_rx0, t_in1 - t_in0, "out of vti-b vs opened");
    assert!(t_out1 - t_out0 >= 20 && t_in1 - t_in0 >= 20);
    assert_eq!(c_out1, c_out0, "site-c carried none of lanB's traffic");
    // Status and list-conns show the interface.
    let i = &connection(&st1, "site-b")["interface"];
    assert_eq!(i["name"], "vti-b", "{st1:#}");
    assert_eq!(i["present"], true);
    assert_eq!(i["state"], "up");
    assert_eq!(i["address"], "169.254.21.1/30");
    assert!(i["kernel"]["tx_packets"].as_u64().unwrap() >= k_tx1);
    assert!(connection(&st1, "site-c").get("interface").is_none());
    let text = String::from_utf8_lossy(&ironsecctl(&sock_a, &["status"]).stdout).into_owned();
    assert!(
        text.contains("interface vti-b: up, address 169.254.21.1/30, routes 10.2.0.0/24"),
        "{text}"
    );
    let conns = String::from_utf8_lossy(&ironsecctl(&sock_a, &["list-conns"]).stdout).into_owned();
    assert!(
        conns.contains("route-based: interface vti-b, address 169.254.21.1/30"),
        "{conns}"
    );
    // A reload that removes the connection removes its interface and its routes; one that
    // adds it back makes them again.
    let without = gateway(&sock_a) + &MultiSite::hub_conn(2, &psk_c, "start", "");
    fs::write(&pa, without).unwrap();
    let out = ironsecctl(&sock_a, &["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !ip(&topo.gw(0), &["link", "show"]).contains("vti-b"),
        "vti-b left after its connection was removed"
    );
    fs::write(&pa, &cfg_a).unwrap();
    let out = ironsecctl(&sock_a, &["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        poll_until(UP_TIMEOUT, || conn_up(&sock_a, "site-b")),
        "site-b not up again after the reload\n{}",
        logs()
    );
    assert!(
        wait_ping(
            &topo.lan(0),
            MultiSite::lan_host(1),
            Duration::from_secs(10)
        ),
        "lanA -> lanB after vti-b was made again\n{}",
        logs()
    );
}

/// Sends `n` pings lanA -> lanB (not expecting answers) and returns how many were answered.
fn burst(topo: &Topology, n: u16) -> u32 {
    ping(
        &topo.lan_a,
        Ipv4Addr::new(10, 2, 0, 2),
        n,
        pattern_payload(CANARY, 56),
        Duration::from_millis(20),
        Duration::from_millis(300),
    )
    .received
}

fn no_sa_drops(st: &Value) -> u64 {
    st["drops"]["no_sa"].as_u64().unwrap_or(0)
}

/// The issue's fail-closed test: route-based gwA, `protect = ["10.2.0.0/16"]`, the route to
/// lanB put in by a "routing daemon" (proto bird, metric 32), a default route out of the WAN.
#[test]
#[ignore = "needs root"]
fn route_based_fails_closed_with_the_tunnel_down_and_routes_withdrawn() {
    require_root();
    let prefix = unique_prefix();
    let dir = TempDir::new(&prefix);
    let topo = Topology::up(&prefix);
    let psk = dir.join("psk");
    write_secret(&psk, format!("0x{}\n", hex(&random_bytes(32))));
    let (sock_a, sock_b) = (dir.join("a.sock"), dir.join("b.sock"));
    let cfg_a = gateway(&sock_a)
        + &rb_conn(
            "site-b",
            ("gw-a.example", "gw-b.example"),
            &psk,
            "vti-b",
            "169.254.21.1/30",
            "protect = [\"10.2.0.0/16\"]",
            "start",
            "[ { local = \"192.0.2.1\", remote = \"192.0.2.2\" } ]",
        );
    let cfg_b = gateway(&sock_b)
        + &rb_conn(
            "site-a",
            ("gw-b.example", "gw-a.example"),
            &psk,
            "vti-a",
            "169.254.21.2/30",
            "routes = [\"10.1.0.0/24\"]",
            "none",
            "[ { local = \"192.0.2.2\", remote = \"192.0.2.1\" } ]",
        );
    let (pa, pb) = (dir.join("a.toml"), dir.join("b.toml"));
    fs::write(&pa, &cfg_a).unwrap();
    fs::write(&pb, &cfg_b).unwrap();
    let mut b = Daemon::start("gwB", &topo.gw_b, &pb, &sock_b, dir.join("b.log"));
    let mut a = Daemon::start("gwA", &topo.gw_a, &pa, &sock_a, dir.join("a.log"));
    let logs = || {
        format!(
            "--- a ---\n{}\n--- b ---\n{}",
            fs::read_to_string(dir.join("a.log")).unwrap_or_default(),
            fs::read_to_string(dir.join("b.log")).unwrap_or_default()
        )
    };
    assert!(
        poll_until(UP_TIMEOUT, || conn_up(&sock_a, "site-b")),
        "not up\n{}",
        logs()
    );
    // Anything gwA does not route elsewhere would leave in clear towards gwB.
    ip(
        &topo.gw_a,
        &["route", "add", "default", "via", "192.0.2.2", "dev", "wan"],
    );
    // What BIRD's kernel protocol would install (metric 32, its own protocol).
    let learned = [
        "10.2.0.0/24",
        "dev",
        "vti-b",
        "proto",
        "bird",
        "metric",
        "32",
    ];
    ip(&topo.gw_a, &[&["route", "add"][..], &learned[..]].concat());
    let judge = WireJudge::install(&topo.gw_b, "10.2.0.0/16");
    assert!(
        wait_ping(
            &topo.lan_a,
            Ipv4Addr::new(10, 2, 0, 2),
            Duration::from_secs(10)
        ),
        "no ping through vti-b\n{}",
        logs()
    );
    let (clear, esp) = judge.counts();
    assert_eq!(clear, 0, "cleartext with the tunnel up");
    assert!(esp > 0, "the judge saw no ESP");
    let guards = ip(&topo.gw_a, &["route", "show", "proto", "147"]);
    assert!(guards.contains("blackhole 10.2.0.0/16"), "{guards}");

    // 1. The tunnel goes down (terminated), the learned route stays: dropped as no_sa.
    let drops0 = no_sa_drops(&a.status());
    let out = ironsecctl(&sock_a, &["terminate", "site-b"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(poll_until(Duration::from_secs(5), || !conn_up(
        &sock_a, "site-b"
    )));
    assert_eq!(burst(&topo, 20), 0, "answered with the tunnel down");
    let st = a.status();
    assert!(
        no_sa_drops(&st) >= drops0 + 20,
        "packets routed into vti-b with no SA must be counted: {}",
        st["drops"]
    );
    assert_eq!(connection(&st, "site-b")["interface"]["state"], "down");
    assert_eq!(judge.counts().0, 0, "cleartext with the tunnel down");

    // 2. The routing daemon withdraws its route too: the guard takes the traffic.
    ip(&topo.gw_a, &[&["route", "del"][..], &learned[..]].concat());
    let get = run_timeout(
        ns_cmd(&topo.gw_a, "ip").args(["route", "get", "10.2.0.2"]),
        Duration::from_secs(5),
    );
    assert!(
        !get.status.success(),
        "with the route withdrawn gwA routes lanB by {}",
        String::from_utf8_lossy(&get.stdout)
    );
    assert_eq!(burst(&topo, 20), 0);
    assert_eq!(
        judge.counts().0,
        0,
        "cleartext with the tunnel down and the route withdrawn"
    );

    // 3. The daemon stopped (its interface gone with it).
    let st = a.stop();
    assert!(st.is_some_and(|s| s.success()), "gwA did not stop cleanly");
    assert!(!ip(&topo.gw_a, &["link", "show"]).contains("vti-b"));
    assert_eq!(burst(&topo, 20), 0);
    let (clear, _) = judge.counts();
    assert_eq!(clear, 0, "cleartext with ironsecd stopped");
    b.stop();

    // Control: without the guard the same traffic does leave in clear, so the judge can see
    // it. `ironsecd cleanup` removes the guards.
    let out = run_timeout(
        ns_cmd(&topo.gw_a, IRONSECD).arg("cleanup"),
        Duration::from_secs(10),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    burst(&topo, 10);
    let (clear, _) = judge.counts();
    println!("control: {clear} cleartext packets on the wire once the guard was removed");
    assert!(clear >= 10, "the judge did not see the unguarded traffic");
}

/// Two tunnels (two WAN links) under one interface, active-standby: cutting the active link
/// moves the interface's traffic to the standby tunnel.
#[test]
#[ignore = "needs root"]
fn route_based_active_standby_moves_traffic_when_a_link_is_cut() {
    two_tunnels_under_one_interface("active-standby");
}

/// The same with active-active: both tunnels carry the interface's flows until one link is
/// cut, then the other carries them all.
#[test]
#[ignore = "needs root"]
fn route_based_active_active_keeps_the_flows_on_the_tunnel_left() {
    two_tunnels_under_one_interface("active-active");
}

fn two_tunnels_under_one_interface(mode: &str) {
    require_root();
    let prefix = unique_prefix();
    let dir = TempDir::new(&prefix);
    let topo = Topology::up_links(&prefix, 2);
    let psk = dir.join("psk");
    write_secret(&psk, format!("0x{}\n", hex(&random_bytes(32))));
    let (sock_a, sock_b) = (dir.join("a.sock"), dir.join("b.sock"));
    let two = |l: [&str; 2], r: [&str; 2]| {
        format!(
            "[ {{ local = \"{}\", remote = \"{}\", priority = 2 }}, {{ local = \"{}\", remote = \"{}\", priority = 1 }} ]",
            l[0], r[0], l[1], r[1]
        )
    };
    let extra =
        |routes: &str| format!("routes = [\"{routes}\"]\nmode = \"{mode}\"\nfailover_after = 2");
    let cfg_a = gateway(&sock_a)
        + &rb_conn(
            "site-b",
            ("gw-a.example", "gw-b.example"),
            &psk,
            "vti-b",
            "169.254.21.1/30",
            &extra("10.2.0.0/24"),
            "start",
            &two(["192.0.2.1", "198.51.100.1"], ["192.0.2.2", "198.51.100.2"]),
        );
    let cfg_b = gateway(&sock_b)
        + &rb_conn(
            "site-a",
            ("gw-b.example", "gw-a.example"),
            &psk,
            "vti-a",
            "169.254.21.2/30",
            &extra("10.1.0.0/24"),
            "none",
            &two(["192.0.2.2", "198.51.100.2"], ["192.0.2.1", "198.51.100.1"]),
        );
    let (pa, pb) = (dir.join("a.toml"), dir.join("b.toml"));
    fs::write(&pa, &cfg_a).unwrap();
    fs::write(&pb, &cfg_b).unwrap();
    let _b = Daemon::start("gwB", &topo.gw_b, &pb, &sock_b, dir.join("b.log"));
    let a = Daemon::start("gwA", &topo.gw_a, &pa, &sock_a, dir.join("a.log"));
    let logs = || {
        format!(
            "--- a ---\n{}\n--- b ---\n{}",
            fs::read_to_string(dir.join("a.log")).unwrap_or_default(),
            fs::read_to_string(dir.join("b.log")).unwrap_or_default()
        )
    };
    let both_up = |sock: &Path| {
        ctl_status(sock).is_ok_and(|st| {
            connection(&st, if sock == sock_a { "site-b" } else { "site-a" })["tunnels"]
                .as_array()
                .is_some_and(|ts| ts.len() == 2 && ts.iter().all(|t| t["state"] == "up"))
        })
    };
    assert!(
        poll_until(UP_TIMEOUT, || both_up(&sock_a) && both_up(&sock_b)),
        "both tunnels not up\n{}",
        logs()
    );
    assert!(
        wait_ping(
            &topo.lan_a,
            Ipv4Addr::new(10, 2, 0, 2),
            Duration::from_secs(10)
        ),
        "no ping over vti-b\n{}",
        logs()
    );
    let active = |st: &Value| -> Vec<String> {
        connection(st, "site-b")["active"]
            .as_array()
            .map(|v| v.iter().map(|x| x.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let before: &[&str] = if mode == "active-standby" {
        &["192.0.2.2"]
    } else {
        &["192.0.2.2", "198.51.100.2"]
    };
    assert_eq!(
        active(&a.status()),
        before,
        "{mode}: which tunnels carry the interface's traffic"
    );
    // Cut the first link (both ends), pinging every 50 ms meanwhile.
    let pinger = ping_paced_in_background(
        &topo.lan_a,
        Ipv4Addr::new(10, 2, 0, 2),
        300,
        pattern_payload(CANARY, 56),
        Duration::from_millis(50),
        Duration::from_millis(500),
    );
    std::thread::sleep(Duration::from_millis(1000));
    for ns in [&topo.gw_a, &topo.gw_b] {
        Command::new("ip")
            .args(["-n", ns, "link", "set", "wan", "down"])
            .status()
            .unwrap();
    }
    let run = pinger.join().expect("pinger");
    let st = a.status();
    println!(
        "{mode}, link cut: {} of {} pings answered, {} lost; active now {:?}",
        run.received(),
        run.sent(),
        run.lost().len(),
        active(&st)
    );
    assert_eq!(
        active(&st),
        ["198.51.100.2"],
        "the standby took over\n{}",
        logs()
    );
    assert!(
        wait_ping(
            &topo.lan_a,
            Ipv4Addr::new(10, 2, 0, 2),
            Duration::from_secs(5)
        ),
        "no ping over the standby tunnel\n{}",
        logs()
    );
    // Same interface throughout.
    assert_eq!(connection(&st, "site-b")["interface"]["name"], "vti-b");
    assert!(
        run.received() >= run.sent() / 2,
        "most pings should pass: {} of {}",
        run.received(),
        run.sent()
    );
}
