//! Runs `netns-scripts/demo.sh --ipv6` (IKEv2, and `--static`) the way an operator would, and
//! checks topology.sh's IPv6 mode (IRONSEC_IPV6=1) on its own, so the IPv6 paths of the lab
//! scripts do not rot.
//!
//! The demo must exit 0 (tunnel up over the IPv6 WAN, both pings answered through it, the
//! counters grown by at least both pings' requests) and say so: the PASS line names the IPv4
//! and the IPv6 pings, tcpdump saw ESP-in-UDP datagrams on the WAN and no clear-text ICMP or
//! ICMPv6 echo, the tunnel's addresses are the IPv6 WAN ones. The topology test pings every
//! IPv6 address of the convention (docs/plan-issue-26-ipv6.md section 4) from its neighbour, for
//! two sites with two uplinks and for the three-site bridge, right after `up` (so `nodad` and
//! accept_dad=0 must hold: a tentative address would not answer), and checks that without the
//! variable no global IPv6 address exists.
//!
//! Needs root, iproute2, ping and tcpdump (tests/install-deps.sh): `#[ignore = "needs root"]`
//! (tests/run.sh runs it); FAILS, never skips, without them. The binaries are this build's
//! (IRONSEC_BIN_DIR), so the demo does not build a release.
//!
//! Run: `cargo test -p ironsecd --test demo_script -- --include-ignored --test-threads=1 --nocapture`

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{
    namespaces_with, require_root, run_timeout, serial, unique_prefix, workspace_root, IRONSECD,
};

/// Removes every namespace of the prefix (topology.sh down, which also kills what runs inside
/// them by PID) when dropped, also when the test panicked half-way.
struct TopoGuard(String);

impl Drop for TopoGuard {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(workspace_root().join("netns-scripts/topology.sh"))
            .arg("down")
            .env("IRONSEC_NS_PREFIX", &self.0)
            .output();
    }
}

fn require_tool(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "{tool} is not installed (tests/install-deps.sh)");
}

/// `demo.sh ARGS` with this build's binaries and its own namespace prefix; returns stdout
/// after checking it exited 0 and left no namespace behind.
fn run_demo(args: &[&str]) -> String {
    require_root();
    require_tool("tcpdump");
    require_tool("ping");
    let prefix = format!("d{}", unique_prefix());
    let _guard = TopoGuard(prefix.clone());
    let bin_dir = Path::new(IRONSECD).parent().expect("binary directory");
    let out = run_timeout(
        Command::new("timeout")
            .args(["-k", "10", "120", "bash"])
            .arg(workspace_root().join("netns-scripts/demo.sh"))
            .args(args)
            .env("IRONSEC_DEMO_PREFIX", &prefix)
            .env("IRONSEC_BIN_DIR", bin_dir)
            .env_remove("IRONSEC_IPV6"),
        Duration::from_secs(140),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    println!("{stdout}\n--- stderr ---\n{stderr}");
    assert!(
        out.status.success(),
        "demo.sh {args:?} failed ({})",
        out.status
    );
    let left = namespaces_with(&prefix);
    assert!(left.is_empty(), "demo.sh left namespaces behind: {left:?}");
    stdout
}

/// The checks both modes share: dual-stack selectors, both pings, the IPv6 WAN, no clear echo.
fn check_ipv6_demo(stdout: &str) {
    assert!(
        stdout.contains("selectors 10.1.0.0/24 2001:db8:1::/64 <-> 10.2.0.0/24 2001:db8:2::/64"),
        "no dual-stack selectors announced"
    );
    assert!(
        stdout.contains("-lanA 10.1.0.2 -> ") && stdout.contains("-lanB 10.2.0.2 ("),
        "no IPv4 ping lanA -> lanB"
    );
    assert!(
        stdout.contains("-lanA 2001:db8:1::2 -> ") && stdout.contains("-lanB 2001:db8:2::2 ("),
        "no IPv6 ping lanA -> lanB"
    );
    let pass = stdout
        .lines()
        .find(|l| l.starts_with("PASS: "))
        .expect("a PASS line");
    assert!(
        pass.contains("5/5 IPv4 and 5/5 IPv6 pings crossed"),
        "not every ping crossed: {pass}"
    );
    // The WAN capture: ESP-in-UDP between the IPv6 WAN addresses, no clear-text echo.
    let wan = stdout
        .lines()
        .find(|l| l.starts_with("WAN of "))
        .expect("a tcpdump summary");
    assert!(wan.contains("icmp6"), "tcpdump did not watch ICMPv6: {wan}");
    let esp_line = stdout
        .lines()
        .find(|l| l.contains("ESP-in-UDP/4500 datagrams") || l.contains("UDP/4500 datagrams"))
        .expect("a count of ESP datagrams");
    let esp: u64 = esp_line
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .expect("a number of ESP datagrams");
    assert!(esp >= 10, "only {esp} ESP datagrams on the WAN: {esp_line}");
    assert!(
        esp_line.contains(" 0 clear-text ICMP echoes") || wan.contains(" 0 clear-text ICMP echoes"),
        "clear-text echoes on the WAN: {wan} {esp_line}"
    );
    assert!(
        stdout.contains("IP6 2001:db8:f::1.") || stdout.contains("IP6 2001:db8:f::2."),
        "no datagram between the IPv6 WAN addresses in the capture's first lines"
    );
}

#[test]
#[ignore = "needs root"]
fn demo_ipv6_ike_carries_both_families() {
    let _serial = serial();
    let stdout = run_demo(&["--ipv6"]);
    assert!(
        stdout.contains("2001:db8:f::1 (gw-a.example, initiator) <==IKEv2==>"),
        "the IKE tunnel is not on the IPv6 WAN"
    );
    check_ipv6_demo(&stdout);
}

#[test]
#[ignore = "needs root"]
fn demo_ipv6_static_carries_both_families() {
    let _serial = serial();
    let stdout = run_demo(&["--ipv6", "--static"]);
    assert!(
        stdout.contains("2001:db8:f::1:4500 <==ESP-in-UDP==>"),
        "the static tunnel is not on the IPv6 WAN"
    );
    check_ipv6_demo(&stdout);
}

/// `ip netns exec NS ping -c 1 -W 1 ADDR` succeeded.
fn pings(ns: &str, addr: &str) -> bool {
    run_timeout(
        Command::new("ip").args([
            "netns", "exec", ns, "ping", "-n", "-c", "1", "-W", "1", addr,
        ]),
        Duration::from_secs(10),
    )
    .status
    .success()
}

/// `topology.sh up` with `env`, under guard.
fn topo_up(prefix: &str, env: &[(&str, &str)]) -> TopoGuard {
    let guard = TopoGuard(prefix.to_string());
    let mut cmd = Command::new("bash");
    cmd.arg(workspace_root().join("netns-scripts/topology.sh"))
        .arg("up")
        .env("IRONSEC_NS_PREFIX", prefix)
        .env_remove("IRONSEC_IPV6")
        .env_remove("IRONSEC_SITES")
        .env_remove("IRONSEC_WAN_LINKS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run_timeout(&mut cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "topology.sh up {env:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    guard
}

#[test]
#[ignore = "needs root"]
fn topology_ipv6_addresses_answer_at_once() {
    require_root();
    require_tool("ping");
    let _serial = serial();

    // Two sites, two uplinks: every link's IPv6 neighbour, and the LAN hosts' default route.
    let p = format!("t{}", unique_prefix());
    let g = topo_up(&p, &[("IRONSEC_IPV6", "1"), ("IRONSEC_WAN_LINKS", "2")]);
    for (ns, addr) in [
        ("lanA", "2001:db8:1::1"),
        ("gwA", "2001:db8:f::2"),
        ("gwA", "2001:db8:e::2"),
        ("lanB", "2001:db8:2::1"),
        // gwA's WAN address from lanA: only through lanA's default IPv6 route (gwB has no
        // route back to site A's LAN without a tunnel, as with IPv4).
        ("lanA", "2001:db8:f::1"),
        ("gwA", "192.0.2.2"),
    ] {
        assert!(pings(&format!("{p}-{ns}"), addr), "{ns} cannot ping {addr}");
    }
    drop(g);
    assert!(namespaces_with(&p).is_empty());

    // Three sites on the bridge.
    let p = format!("t{}", unique_prefix());
    let g = topo_up(&p, &[("IRONSEC_IPV6", "1"), ("IRONSEC_SITES", "3")]);
    for (ns, addr) in [
        ("gwA", "2001:db8:f::3"),
        ("gwC", "2001:db8:f::2"),
        ("lanC", "2001:db8:3::1"),
        ("lanB", "2001:db8:f::2"),
    ] {
        assert!(pings(&format!("{p}-{ns}"), addr), "{ns} cannot ping {addr}");
    }
    drop(g);

    // Without the variable: exactly as before, no global IPv6 address anywhere.
    let p = format!("t{}", unique_prefix());
    let g = topo_up(&p, &[]);
    for ns in ["lanA", "gwA", "gwB", "lanB"] {
        let out = run_timeout(
            Command::new("ip").args([
                "-n",
                &format!("{p}-{ns}"),
                "-6",
                "addr",
                "show",
                "scope",
                "global",
            ]),
            Duration::from_secs(10),
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).trim().is_empty(),
            "{ns} has a global IPv6 address without IRONSEC_IPV6"
        );
    }
    drop(g);
    assert!(namespaces_with(&p).is_empty());
}
