//! Active-standby with one shared address (README "Active-standby with one shared address"):
//! ironsecd runs on both gateways with the same config; `gateway.shared_addresses` lets it
//! start and run while the address is on the other gateway (IP_FREEBIND), its tunnels
//! dormant, and its address watch starts them the moment the address arrives and abandons
//! them, silently, the moment it leaves.
//!
//! `shared_address_drives_the_tunnel` moves the address by hand (`ip addr add/del`) on the
//! standard two-site topology (netns-scripts/topology.sh), with the peer gateway's tunnel
//! pointing at the shared address 192.0.2.10 on gwA's WAN segment:
//!
//!   lanA 10.1.0.2 -- gwA 10.1.0.1 / 192.0.2.1 (+ 192.0.2.10 shared) ===wan=== 192.0.2.2 / gwB -- lanB 10.2.0.2
//!
//! Needs root: `#[ignore = "needs root"]`, run with
//! `cargo test -p ironsecd --test ha_active_standby -- --include-ignored --test-threads=1 --nocapture`.

mod common;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const SHARED: &str = "192.0.2.10";
const LAN_B_HOST: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);
const PING_PATTERN: &[u8] = b"IRONSEC-SHARED-ADDRESS-PING";
/// Two local daemons agree on an IKE SA in well under a second; this bounds a failure.
const UP_TIMEOUT: Duration = Duration::from_secs(15);

/// Counts, at the peer's end of the WAN wire (netdev ingress on gwB's `wan`), every UDP
/// datagram from the shared address to the IKE or NAT-T port: IKE, and ESP-in-UDP.
struct FromShared {
    ns: String,
}

impl FromShared {
    fn install(ns: &str) -> FromShared {
        let rules = format!(
            "table netdev shared_judge {{\n\
               chain wire {{\n\
                 type filter hook ingress device \"wan\" priority 0; policy accept;\n\
                 ip saddr {SHARED} udp dport {{ 500, 4500 }} counter comment \"from-shared\"\n\
               }}\n\
             }}\n"
        );
        let path = std::env::temp_dir().join(format!(
            "ironsec-shared-judge-{}-{ns}.nft",
            std::process::id()
        ));
        std::fs::write(&path, rules).unwrap();
        run_ok(
            ns_cmd(ns, "nft").args(["-f", path.to_str().unwrap()]),
            Duration::from_secs(5),
        );
        let _ = std::fs::remove_file(&path);
        FromShared { ns: ns.to_string() }
    }

    fn packets(&self) -> u64 {
        let o = run_ok(
            ns_cmd(&self.ns, "nft").args(["list", "chain", "netdev", "shared_judge", "wire"]),
            Duration::from_secs(5),
        );
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let line = out
            .lines()
            .find(|l| l.contains("from-shared"))
            .unwrap_or_else(|| panic!("no counter in:\n{out}"));
        let mut w = line.split_whitespace();
        w.find(|x| *x == "packets")
            .and_then(|_| w.next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no packet count in {line:?}"))
    }
}

fn ip_addr(ns: &str, verb: &str) {
    run_ok(
        ns_cmd(ns, "ip").args(["addr", verb, &format!("{SHARED}/24"), "dev", "wan"]),
        Duration::from_secs(5),
    );
}

fn tunnel_state(st: &Value) -> String {
    conn_tunnel(st, "site-b")["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// gwA's config (conf/ike-gw-a.toml) with its tunnel on the shared address, gwB's
/// (conf/ike-gw-b.toml) pointing at it. DPD every 2 s on gwA, so an SA it still believed in
/// would send within the quiet windows below.
fn configs(dir: &TempDir) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let psk = dir.join("psk");
    write_secret(&psk, format!("0x{}\n", hex(&random_bytes(32))));
    let sock_a = dir.join("a.sock");
    let sock_b = dir.join("b.sock");
    let a = rewrite_toml_lines(
        &example_config("ike-gw-a.toml"),
        &[
            ("control_socket", toml_str(sock_a.to_str().unwrap())),
            ("psk_file", toml_str(psk.to_str().unwrap())),
            ("dpd_interval", "2".into()),
            ("dpd_timeout", "10".into()),
            (
                "tunnels",
                format!("[ {{ local = \"{SHARED}\", remote = \"192.0.2.2\" }} ]"),
            ),
        ],
    )
    .replacen(
        "[gateway]\n",
        &format!("[gateway]\nshared_addresses = [\"{SHARED}\"]\n"),
        1,
    );
    let b = rewrite_toml_lines(
        &example_config("ike-gw-b.toml"),
        &[
            ("control_socket", toml_str(sock_b.to_str().unwrap())),
            ("psk_file", toml_str(psk.to_str().unwrap())),
            (
                "tunnels",
                format!("[ {{ local = \"192.0.2.2\", remote = \"{SHARED}\" }} ]"),
            ),
        ],
    );
    let (cfg_a, cfg_b) = (dir.join("gw-a.toml"), dir.join("gw-b.toml"));
    std::fs::write(&cfg_a, a).unwrap();
    std::fs::write(&cfg_b, b).unwrap();
    (cfg_a, sock_a, cfg_b, sock_b)
}

fn ping_through(ns: &str, count: u16) -> PingResult {
    ping(
        ns,
        LAN_B_HOST,
        count,
        pattern_payload(PING_PATTERN, 56),
        Duration::from_millis(50),
        Duration::from_secs(1),
    )
}

/// Seconds from `t` until gwA's tunnel is up (panics with both logs after [`UP_TIMEOUT`]).
fn wait_up(a: &Daemon, b: &Daemon, t: Instant) -> f64 {
    assert!(
        poll_until(UP_TIMEOUT, || tunnel_up(&a.status())),
        "tunnel not up {UP_TIMEOUT:?} after the address arrived\n{}",
        Daemon::both_logs(a, b)
    );
    t.elapsed().as_secs_f64()
}

#[test]
#[ignore = "needs root"]
fn shared_address_drives_the_tunnel() {
    let _serial = serial();
    require_root();
    let prefix = unique_prefix();
    let dir = TempDir::new(&prefix);
    let topo = Topology::up(&prefix);
    let wire = FromShared::install(&topo.gw_b);
    let clear = WireJudge::install(&topo.gw_b, "10.2.0.0/24");
    let (cfg_a, sock_a, cfg_b, sock_b) = configs(&dir);
    let b = Daemon::start("gwB", &topo.gw_b, &cfg_b, &sock_b, dir.join("b.log"));
    let a = Daemon::start("gwA", &topo.gw_a, &cfg_a, &sock_a, dir.join("a.log"));

    // 1. The address is on no host: gwA started all the same (IP_FREEBIND) and stays silent.
    std::thread::sleep(Duration::from_secs(3));
    let st = a.status();
    assert_eq!(tunnel_state(&st), "dormant", "{st:#}");
    assert_eq!(st["shared_addresses"][0]["address"], SHARED);
    assert_eq!(st["shared_addresses"][0]["present"], false);
    assert_eq!(num(&st, "/ike/requests_sent"), 0, "{}", a.log_text());
    assert!(
        !a.log_text().contains("initiating IKE SA"),
        "{}",
        a.log_text()
    );
    assert_eq!(wire.packets(), 0);
    let out = ironsecctl(&sock_a, &["initiate", "site-b"]);
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && said.contains("192.0.2.10 is not on this host"),
        "{said}"
    );
    let text = String::from_utf8_lossy(&ironsecctl(&sock_a, &["status"]).stdout).into_owned();
    assert!(
        text.contains("dormant (192.0.2.10 not on this host)"),
        "{text}"
    );
    // Traffic for the site meanwhile: dropped, never in clear.
    assert_eq!(ping_through(&topo.lan_a, 3).received, 0);
    assert_eq!(wire.packets(), 0);

    // 2. The address arrives (keepalived's job in production): the tunnel comes up at once.
    let t = Instant::now();
    ip_addr(&topo.gw_a, "add");
    let up_after = wait_up(&a, &b, t);
    let st = a.status();
    assert_eq!(st["shared_addresses"][0]["present"], true);
    let r = ping_through(&topo.lan_a, 10);
    assert_eq!(r.received, r.sent, "{}", Daemon::both_logs(&a, &b));
    eprintln!("shared address added: tunnel up after {up_after:.3} s; 10/10 pings through it");

    // 3. The address leaves: the tunnel goes dormant without a word (no DELETE, no DPD, no
    //    retransmission, for longer than the DPD interval), and gwB still believes in its SA.
    let requests = num(&st, "/ike/requests_sent");
    ip_addr(&topo.gw_a, "del");
    assert!(
        poll_until(Duration::from_secs(5), || tunnel_state(&a.status())
            == "dormant"),
        "{}",
        a.log_text()
    );
    let wire_at_loss = wire.packets();
    std::thread::sleep(Duration::from_secs(5));
    let st = a.status();
    assert_eq!(num(&st, "/ike/requests_sent"), requests, "{}", a.log_text());
    assert!(
        st.pointer(&format!("{T0}/ike")).is_none_or(Value::is_null),
        "{st:#}"
    );
    assert!(
        a.log_text().contains("abandoned without a DELETE"),
        "{}",
        a.log_text()
    );
    assert_eq!(wire.packets(), wire_at_loss);
    assert!(tunnel_up(&b.status()), "gwB heard of the loss");
    assert_eq!(ping_through(&topo.lan_a, 3).received, 0);

    // 4. Back again (this host is master once more): a new IKE SA with INITIAL_CONTACT, which
    //    makes gwB drop the stale one, and traffic flows.
    let t = Instant::now();
    ip_addr(&topo.gw_a, "add");
    let again_after = wait_up(&a, &b, t);
    assert!(
        poll_until(Duration::from_secs(5), || b
            .log_text()
            .contains("reason=Replaced")),
        "gwB kept its stale IKE SA: no INITIAL_CONTACT\n{}",
        Daemon::both_logs(&a, &b)
    );
    let r = ping_through(&topo.lan_a, 10);
    assert_eq!(r.received, r.sent, "{}", Daemon::both_logs(&a, &b));
    eprintln!("shared address back: tunnel up after {again_after:.3} s; gwB replaced its stale SA; 10/10 pings");
    assert_eq!(clear.counts().0, 0, "cleartext to 10.2.0.0/24 on the WAN");
}
