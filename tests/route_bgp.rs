//! Route-based connections with BGP over them (issue 22): real ironsecd and BIRD 2 in the
//! hub-and-spokes topology of `netns-scripts/route-based.sh`, configured from the shipped
//! examples (conf/route-hub.toml, conf/route-spoke-{b,c}.toml, conf/bird/*.conf) with only
//! their paths rewritten. No LAN prefix is configured anywhere in ironsec: BIRD announces each
//! site's LAN over eBGP through the tunnel interfaces, the hub passes them on, and the kernel's
//! routing table decides which tunnel a packet takes.
//!
//! - the spokes' LAN prefixes are learned (in the other gateways' kernel tables, via the vti
//!   interfaces), and spoke B's LAN reaches spoke C's through the hub, both ways;
//! - an address added to spoke C's LAN interface is reachable from spoke B's LAN within
//!   seconds, with no ironsec reload (the time is printed); non-RFC 1918 and APIPA prefixes on
//!   the same interface never cross;
//! - with the direct spoke B <-> spoke C connection as the preferred path, cutting its WAN path
//!   is detected by BFD in under a second (printed) and the pings move to the hub path, as the
//!   interface counters show; healing it brings the direct path back;
//! - ironsecd on the hub stopped (SIGTERM) and started again: BGP and B <-> C traffic come
//!   back with no operator action, the spokes failing closed (guard routes) meanwhile;
//! - route-based.sh itself: up (with --direct), status, cut, heal, down, leaving nothing;
//! - the BIRD examples parse (`bird -p`), and conf/bird/azure-onprem.conf peers with a BIRD
//!   playing Azure VPN Gateway's side (veth instead of a tunnel: Azure cannot be reached here),
//!   taking only the VNet's RFC 1918 prefixes.
//!
//! Needs root (and bird2, tests/install-deps.sh): `#[ignore = "needs root"]`; FAILS, never
//! skips, without them. Run:
//! `cargo test -p ironsecd --test route_bgp -- --include-ignored --test-threads=1 --nocapture`

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use common::*;

const HUB: usize = 0;
const B: usize = 1;
const C: usize = 2;
/// Gateway and LAN host namespace roles of route-based.sh, by site.
const GW: [&str; 3] = ["hub", "spokeB", "spokeC"];
const LAN: [&str; 3] = ["lanHub", "lanB", "lanC"];
const TOML: [&str; 3] = ["route-hub.toml", "route-spoke-b.toml", "route-spoke-c.toml"];
const BIRD_CONF: [&str; 3] = ["hub.conf", "spoke-b.conf", "spoke-c.conf"];
const PSKS: [&str; 3] = ["hub-spoke-b.psk", "hub-spoke-c.psk", "spoke-b-spoke-c.psk"];
/// BGP protocol names in the BIRD configs, per gateway.
const SESSIONS: [&[&str]; 3] = [&["spoke_b", "spoke_c"], &["hub"], &["hub"]];
/// Where the examples' optional direct-path part starts.
const OPTIONAL_MARK: &str = "# --- optional";

fn lan_net(i: usize) -> String {
    format!("10.{}.0.0/24", i + 1)
}

fn lan_host(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, i as u8 + 1, 0, 2)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An example with its optional direct-path part (from the marker line on) cut off.
fn without_direct(text: &str) -> String {
    match text.find(&format!("\n{OPTIONAL_MARK}")) {
        Some(i) => text[..=i].to_string(),
        None => text.to_string(),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

// ------------------------------------------------------------------------------------------
// Topology and lab

/// route-based.sh's namespaces (`up PREFIX ARGS...`) under guard.
fn route_topo(prefix: &str, args: &[&str], env: &[(&str, &str)], timeout: Duration) -> ScriptTopo {
    ScriptTopo::up("route-based.sh", prefix, args, env, timeout)
}

/// Three gateways with ironsecd and BIRD each, from the shipped examples. Fields drop in
/// order: BIRD first (it removes its kernel routes), then ironsecd, then the namespaces; the
/// directory (logs) last.
struct RouteLab {
    birds: Vec<Bird>,
    daemons: Vec<Daemon>,
    topo: ScriptTopo,
    direct: bool,
    dir: TempDir,
}

impl RouteLab {
    /// Namespaces from route-based.sh (--net-only), fresh PSKs, the examples rewritten into the
    /// test directory, the daemons started; returns once every BGP session is established.
    fn start(direct: bool) -> RouteLab {
        require_root();
        let prefix = unique_prefix();
        let dir = TempDir::new(&format!("route-{prefix}"));
        let topo = route_topo(
            &prefix,
            &["--net-only"],
            &[("TMPDIR", dir.path.to_str().unwrap())],
            Duration::from_secs(60),
        );
        for p in PSKS {
            write_psk(&dir, p);
        }
        let mut lab = RouteLab {
            birds: Vec::new(),
            daemons: Vec::new(),
            topo,
            direct,
            dir,
        };
        let t0 = Instant::now();
        for i in 0..3 {
            let cfg = lab.ironsec_config(i);
            let d = lab.start_daemon(i, &cfg);
            lab.daemons.push(d);
        }
        for (i, name) in GW.iter().enumerate() {
            let conf = lab.bird_config(i);
            let log = lab.dir.join(&format!("{name}.bird.log"));
            let b = Bird::start(name, &lab.gw(i), &conf, &log, &lab.dir.path);
            lab.birds.push(b);
        }
        lab.wait_all_established(Duration::from_secs(30));
        println!(
            "[lab] {prefix}{}: ironsecd and BIRD started, every BGP session established {} after the first daemon started",
            if direct { " (with the direct B-C path)" } else { "" },
            secs(t0.elapsed())
        );
        lab
    }

    fn gw(&self, i: usize) -> String {
        self.topo.ns(GW[i])
    }

    fn lan(&self, i: usize) -> String {
        self.topo.ns(LAN[i])
    }

    fn sessions(&self, i: usize) -> Vec<&'static str> {
        let mut s = SESSIONS[i].to_vec();
        if self.direct {
            match i {
                B => s.push("spoke_c"),
                C => s.push("spoke_b"),
                _ => {}
            }
        }
        s
    }

    /// conf/<example> with the control socket and PSK files in the test directory (and without
    /// the direct path unless asked for).
    fn ironsec_config(&self, i: usize) -> PathBuf {
        let mut t = example_config(TOML[i]);
        if !self.direct {
            t = without_direct(&t);
        }
        let sock = self.dir.join(&format!("{}.sock", GW[i]));
        let from = "control_socket = \"/run/ironsec/ironsecd.sock\"";
        assert!(t.contains(from), "{}: no `{from}`", TOML[i]);
        t = t.replace(
            from,
            &format!("control_socket = {}", toml_str(sock.to_str().unwrap())),
        );
        for p in PSKS {
            t = t.replace(
                &format!("psk_file = \"psk/{p}\""),
                &format!(
                    "psk_file = {}",
                    toml_str(self.dir.join(p).to_str().unwrap())
                ),
            );
        }
        assert!(
            !t.contains("\"psk/"),
            "{}: a psk_file this test does not know",
            TOML[i]
        );
        let out = self.dir.join(&format!("{}.toml", GW[i]));
        std::fs::write(&out, t).unwrap();
        out
    }

    /// conf/bird/<example> logging to the test directory (and without the direct path unless
    /// asked for).
    fn bird_config(&self, i: usize) -> PathBuf {
        let path = workspace_root().join("conf/bird").join(BIRD_CONF[i]);
        let mut t = std::fs::read_to_string(&path).unwrap();
        if !self.direct {
            t = without_direct(&t);
        }
        let log = self.dir.join(&format!("{}.bird.log", GW[i]));
        let t = bird_example_for_test(&t, &path, &log);
        let out = self.dir.join(&format!("{}.bird.conf", GW[i]));
        std::fs::write(&out, t).unwrap();
        out
    }

    /// ironsecd of gateway `i` (a second run, after a restart, logs to a file of its own).
    fn start_daemon(&self, i: usize, cfg: &Path) -> Daemon {
        Daemon::start(
            GW[i],
            &self.gw(i),
            cfg,
            &self.dir.join(&format!("{}.sock", GW[i])),
            self.dir.join(&format!(
                "{}.ironsecd{}.log",
                GW[i],
                if self.daemons.len() > i { ".2" } else { "" }
            )),
        )
    }

    fn wait_all_established(&self, timeout: Duration) {
        for (i, b) in self.birds.iter().enumerate() {
            for s in self.sessions(i) {
                b.wait_established(s, timeout);
            }
        }
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for (i, d) in self.daemons.iter().enumerate() {
            s += &format!("----- ironsecd {} -----\n{}\n", GW[i], d.log_text());
        }
        for b in &self.birds {
            s += &format!("----- bird {} -----\n{}\n", b.name, b.log_text());
        }
        s
    }

    /// `count` pings from site `from`'s LAN host to `to`, 100 ms apart; how many came back.
    fn ping(&self, from: usize, to: Ipv4Addr, count: u16) -> u32 {
        ping(
            &self.lan(from),
            to,
            count,
            pattern_payload(b"route-bgp", 56),
            Duration::from_millis(100),
            Duration::from_secs(1),
        )
        .received
    }
}

/// Every tunnel of every connection in an `ironsecctl status --json` document is up (IKE SA
/// established with a CHILD_SA, SAs installed both ways).
fn all_tunnels_up(st: &Value) -> bool {
    let conns = st["connections"].as_array().cloned().unwrap_or_default();
    !conns.is_empty()
        && conns.iter().all(|c| {
            c["tunnels"].as_array().is_some_and(|ts| {
                ts.iter().all(|t| {
                    t["ike"]["state"] == "established"
                        && t["ike"]["children"].as_u64().unwrap_or(0) >= 1
                        && !t["outbound"].is_null()
                        && !t["inbound"].is_null()
                })
            })
        })
}

fn ip_ok(args: &[&str]) {
    run_ok(Command::new("ip").args(args), Duration::from_secs(5));
}

// ------------------------------------------------------------------------------------------
// No root: parsing birdc's answers

#[test]
fn birdc_answers_parse() {
    let p = parse_protocols(
        "BIRD 2.0.12 ready.\nName       Proto      Table      State  Since         Info\n\
         device1    Device     ---        up     2026-12-07 03:37:15.377  \n\
         spoke_c    BGP        ---        start  2026-12-07 03:37:35.251  Active        Error: BFD session down\n\
         hub        BGP        ---        up     03:37:16.339  Established   \n",
    );
    assert_eq!(p.len(), 3);
    assert_eq!(p[1].info, "Active Error: BFD session down");
    assert!(p[2].established() && !p[1].established());

    let r = parse_routes(
        "BIRD 2.0.12 ready.\nTable master4:\n\
         10.3.0.0/24          unicast [spoke_c 03:37:16.290] * (100) [AS65020i]\n\
         \tvia 169.254.22.2 on vti-spoke-c\n\
         \x20                    unicast [hub 03:37:16.405] (100) [AS65020i]\n\
         \tvia 169.254.21.1 on vti-hub\n\
         10.2.0.0/24          unicast [direct1 03:37:15.400] * (240)\n\tdev lan\n",
    );
    assert_eq!(r.len(), 3, "{r:#?}");
    assert_eq!(
        (r[0].net.as_str(), r[0].from.as_str(), r[0].primary),
        ("10.3.0.0/24", "spoke_c", true)
    );
    assert_eq!(r[0].iface.as_deref(), Some("vti-spoke-c"));
    assert_eq!(r[0].attrs, "AS65020i");
    assert_eq!(
        (r[1].net.as_str(), r[1].from.as_str(), r[1].primary),
        ("10.3.0.0/24", "hub", false)
    );
    assert_eq!(r[1].via.as_deref(), Some("169.254.21.1"));
    assert_eq!(r[2].iface.as_deref(), Some("lan"));

    let b = parse_bfd_sessions(
        "BIRD 2.0.12 ready.\nbfd1:\nIP address                Interface  State      Since         Interval  Timeout\n\
         169.254.22.2              vti-spoke-c Down       2026-12-07 03:37:36.090    1.000    3.000\n",
    );
    assert_eq!(b.len(), 1);
    assert_eq!(
        (b[0].iface.as_str(), b[0].state.as_str()),
        ("vti-spoke-c", "Down")
    );
    assert_eq!((b[0].interval, b[0].timeout), (1.0, 3.0));
    let since = b[0].since.unwrap().duration_since(UNIX_EPOCH).unwrap();
    assert_eq!(since.as_millis(), 1_796_614_656_090); // date -u -d '2026-12-07 03:37:36.090' +%s%3N
}

// ------------------------------------------------------------------------------------------
// The BIRD examples on their own

/// The BIRD examples the README and route-based.sh name.
const BIRD_EXAMPLES: [&str; 4] = [
    "hub.conf",
    "spoke-b.conf",
    "spoke-c.conf",
    "azure-onprem.conf",
];

#[test]
#[ignore = "needs bird2 (tests/install-deps.sh)"]
fn bird_examples_parse_and_filter_every_session() {
    let dir = workspace_root().join("conf/bird");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".conf"))
        .collect();
    names.sort();
    for want in BIRD_EXAMPLES {
        assert!(names.iter().any(|n| n == want), "conf/bird/{want} missing");
    }
    let tmp = TempDir::new(&format!("route-parse-{}", std::process::id()));
    for n in &names {
        let path = dir.join(n);
        let t = std::fs::read_to_string(&path).unwrap();
        let mut variants = vec![(path.clone(), t.clone())];
        if t.contains(OPTIONAL_MARK) {
            // What route-based.sh runs without --direct must parse too.
            let p = tmp.join(&format!("no-direct-{n}"));
            std::fs::write(&p, without_direct(&t)).unwrap();
            variants.push((p, without_direct(&t)));
        }
        for (p, t) in variants {
            bird_parse_ok(&p);
            // Every file parses; the hub-and-spokes and Azure examples (other files here belong
            // to other tests) also keep their promises: every BGP session has explicit filters
            // (BIRD 2 wants them for eBGP), the kernel gets only BGP routes, at metric 32
            // (under ironsec's guard routes at 4242).
            if !BIRD_EXAMPLES.contains(&n.as_str()) {
                continue;
            }
            let bgp = t.matches("\nprotocol bgp ").count() + t.matches("\ntemplate bgp ").count();
            assert!(bgp >= 1, "{}: no BGP session", p.display());
            for must in [
                "import filter bgp_in;",
                "export filter bgp_out;",
                "export filter to_kernel;",
                "metric 32;",
                "if net = 0.0.0.0/0 then return false;",
                "if net ~ [ 169.254.0.0/16+ ] then return false;",
                "protocol device",
                "protocol direct",
                "interface \"lan\";",
            ] {
                assert!(t.contains(must), "{}: no `{must}`", p.display());
            }
            // No session needs multihop: each peer is on its tunnel interface's /30.
            let code: String = t
                .lines()
                .map(|l| l.split('#').next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n");
            assert!(!code.contains("multihop"), "{}: multihop", p.display());
            if n != "azure-onprem.conf" {
                for must in ["min rx interval 100 ms;", "multiplier 3;", "bfd on;"] {
                    assert!(t.contains(must), "{}: no `{must}`", p.display());
                }
            }
        }
    }
}

/// A namespace of this test under guard (for the Azure check, which needs no tunnel): removed,
/// with whatever still runs inside stopped by PID, when dropped.
struct TestNs(String);

impl TestNs {
    fn new(name: String) -> TestNs {
        ip_ok(&["netns", "add", &name]);
        let ns = TestNs(name);
        ip_ok(&["-n", &ns.0, "link", "set", "lo", "up"]);
        ns
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        if let Ok(o) = Command::new("ip").args(["netns", "pids", &self.0]).output() {
            for pid in text(&o.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    // SAFETY: kill(2) takes no pointers; a PID inside this test's own namespace.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
#[ignore = "needs root"]
fn azure_onprem_config_peers_with_an_azure_like_bird() {
    require_root();
    let _s = serial();
    let prefix = unique_prefix();
    let dir = TempDir::new(&format!("route-azure-{prefix}"));
    // Declared before the daemons: dropped after them.
    let onprem = TestNs::new(format!("{prefix}-onprem"));
    let azure = TestNs::new(format!("{prefix}-azure"));
    // The tunnel interface stand-in: a veth with the APIPA addresses, named as ironsecd would
    // name the route-based connection's interface on the on-premises side.
    ip_ok(&[
        "-n",
        &onprem.0,
        "link",
        "add",
        "vti-azure",
        "type",
        "veth",
        "peer",
        "name",
        "azure0",
        "netns",
        &azure.0,
    ]);
    ip_ok(&[
        "-n",
        &onprem.0,
        "addr",
        "add",
        "169.254.21.2/30",
        "dev",
        "vti-azure",
    ]);
    ip_ok(&[
        "-n",
        &azure.0,
        "addr",
        "add",
        "169.254.21.1/30",
        "dev",
        "azure0",
    ]);
    ip_ok(&["-n", &onprem.0, "link", "set", "vti-azure", "up"]);
    ip_ok(&["-n", &azure.0, "link", "set", "azure0", "up"]);
    // The on-premises LAN, with two prefixes that must never reach Azure beside the real one
    // (a veth whose other end stays in the namespace: this kernel has no dummy interfaces).
    ip_ok(&[
        "-n", &onprem.0, "link", "add", "lan", "type", "veth", "peer", "name", "lan-peer",
    ]);
    ip_ok(&["-n", &onprem.0, "link", "set", "lan-peer", "up"]);
    for a in ["10.1.0.1/24", "100.64.7.1/24", "169.254.99.1/30"] {
        ip_ok(&["-n", &onprem.0, "addr", "add", a, "dev", "lan"]);
    }
    ip_ok(&["-n", &onprem.0, "link", "set", "lan", "up"]);

    let example = workspace_root().join("conf/bird/azure-onprem.conf");
    let onprem_log = dir.join("onprem.bird.log");
    let onprem_conf = dir.join("onprem.bird.conf");
    let t = std::fs::read_to_string(&example).unwrap();
    assert!(t.contains("\nlog syslog all;\n"));
    std::fs::write(
        &onprem_conf,
        t.replace(
            "\nlog syslog all;\n",
            &format!("\nlog \"{}\" all;\n", onprem_log.display()),
        ),
    )
    .unwrap();
    // Azure's side as far as BGP goes: ASN 65515 on 169.254.21.1, timers 60/180, passive (it
    // does not open sessions to APIPA peers), announcing the VNet and what must be refused.
    let azure_log = dir.join("azure.bird.log");
    let azure_conf = dir.join("azure.bird.conf");
    std::fs::write(
        &azure_conf,
        format!(
            r#"log "{}" all;
timeformat protocol "%F %T.%3f";
router id 10.20.255.30;
protocol device {{ }}
protocol static {{
    ipv4;
    route 10.20.0.0/16 blackhole;       # the VNet
    route 0.0.0.0/0 blackhole;          # must not be taken
    route 169.254.21.0/30 blackhole;    # must not be taken
    route 52.0.0.0/8 blackhole;         # not RFC 1918: must not be taken
}}
protocol bgp onprem {{
    local 169.254.21.1 as 65515;
    neighbor 169.254.21.2 as 65050;
    direct;
    interface "azure0";
    passive on;
    hold time 180;
    keepalive time 60;
    ipv4 {{ import all; export all; }};
}}
"#,
            azure_log.display()
        ),
    )
    .unwrap();
    let az = Bird::start("azure", &azure.0, &azure_conf, &azure_log, &dir.path);
    let op = Bird::start("onprem", &onprem.0, &onprem_conf, &onprem_log, &dir.path);
    let took = op.wait_established("azure", Duration::from_secs(20));
    println!("on-prem <-> Azure-like BGP established in {}", secs(took));
    op.wait_route("10.20.0.0/16", Duration::from_secs(10));
    wait_kernel_route(
        &onprem.0,
        "10.20.0.0/16",
        "vti-azure",
        Duration::from_secs(5),
    );
    az.wait_route("10.1.0.0/24", Duration::from_secs(10));
    // Only the VNet came in, only the LAN went out.
    let learned: Vec<String> = op
        .routes()
        .into_iter()
        .filter(|r| r.from == "azure")
        .map(|r| r.net)
        .collect();
    assert_eq!(learned, ["10.20.0.0/16"], "on-prem took more than the VNet");
    let announced: Vec<String> = az
        .routes()
        .into_iter()
        .filter(|r| r.from == "onprem")
        .map(|r| r.net)
        .collect();
    assert_eq!(
        announced,
        ["10.1.0.0/24"],
        "on-prem announced more than its LAN"
    );
    assert!(kernel_routes(&onprem.0, "0.0.0.0/0").is_empty());
    // Azure's fixed hold time is what the session runs with.
    let all = op.birdc_ok(&["show", "protocols", "all", "azure"]);
    assert!(
        all.lines()
            .any(|l| l.contains("Hold timer") && l.trim_end().ends_with("/180")),
        "{all}"
    );
}

// ------------------------------------------------------------------------------------------
// ironsecd + BIRD, hub and spokes

#[test]
#[ignore = "needs root"]
fn spokes_learn_each_other_through_the_hub_and_a_new_lan_prefix_within_seconds() {
    require_root();
    let _s = serial();
    let lab = RouteLab::start(false);

    // No ironsec config names a LAN prefix (outside its comments): they all come from BGP.
    for (i, example) in TOML.iter().enumerate() {
        let t = std::fs::read_to_string(lab.dir.join(&format!("{}.toml", GW[i]))).unwrap();
        let t: String = t
            .lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        for j in 0..3 {
            assert!(
                !t.contains(&lan_net(j)),
                "{example} names {} (it must come from BGP)",
                lan_net(j)
            );
        }
        for key in ["remote_ts", "local_ts", "routes ="] {
            assert!(!t.contains(key), "{example} sets {key}");
        }
    }

    // (a) Every site's LAN prefix in every other gateway's kernel table, into a vti interface.
    for i in 0..3 {
        for j in (0..3).filter(|&j| j != i) {
            let dev = match (i, j) {
                (HUB, B) => "vti-spoke-b",
                (HUB, C) => "vti-spoke-c",
                _ => "vti-hub",
            };
            wait_kernel_route(&lab.gw(i), &lan_net(j), dev, Duration::from_secs(10));
        }
    }
    println!(
        "(a) learned over BGP, spoke B's kernel table:\n{}",
        route_table(&lab.gw(B))
    );
    // Spoke C's prefix reaches B through the hub: AS path 65515 65020.
    let r = lab.birds[B]
        .wait_route(&lan_net(C), Duration::from_secs(5))
        .0;
    assert_eq!(
        (r.from.as_str(), r.attrs.as_str()),
        ("hub", "AS65020i"),
        "{r:?}"
    );

    // (b) B's LAN host <-> C's LAN host, through the hub, both ways.
    let hub = lab.gw(HUB);
    let (rx_b0, _) = link_packets(&hub, "vti-spoke-b");
    let (_, tx_c0) = link_packets(&hub, "vti-spoke-c");
    let bc = lab.ping(B, lan_host(C), 10);
    let cb = lab.ping(C, lan_host(B), 10);
    let (rx_b1, _) = link_packets(&hub, "vti-spoke-b");
    let (_, tx_c1) = link_packets(&hub, "vti-spoke-c");
    println!(
        "(b) pings B->C {bc}/10, C->B {cb}/10; the hub's vti-spoke-b received {} packets, vti-spoke-c sent {} meanwhile",
        rx_b1 - rx_b0,
        tx_c1 - tx_c0
    );
    assert!(
        bc >= 9 && cb >= 9,
        "B<->C through the hub: {bc}/10, {cb}/10\n{}",
        lab.logs()
    );
    // 20 echo requests and replies each way crossed the hub (plus BFD and BGP).
    assert!(rx_b1 - rx_b0 >= 20 && tx_c1 - tx_c0 >= 20);

    // (c) A new prefix on spoke C's LAN interface: announced by BIRD's direct protocol, passed
    // on by the hub, reachable from B's LAN without touching ironsec. Two prefixes that must
    // never cross are added with it.
    let c_gw = lab.gw(C);
    let t0 = Instant::now();
    ip_ok(&["-n", &c_gw, "addr", "add", "10.33.0.1/24", "dev", "lan"]);
    ip_ok(&["-n", &c_gw, "addr", "add", "100.64.7.1/24", "dev", "lan"]);
    ip_ok(&["-n", &c_gw, "addr", "add", "169.254.99.1/30", "dev", "lan"]);
    let mut route_at = None;
    let reachable = poll_until(Duration::from_secs(10), || {
        if route_at.is_none() && !kernel_routes(&lab.gw(B), "10.33.0.0/24").is_empty() {
            route_at = Some(t0.elapsed());
        }
        ping(
            &lab.lan(B),
            Ipv4Addr::new(10, 33, 0, 1),
            1,
            pattern_payload(b"new-prefix", 32),
            Duration::ZERO,
            Duration::from_millis(200),
        )
        .received
            == 1
    });
    let took = t0.elapsed();
    println!(
        "(c) 10.33.0.1/24 added on spoke C's lan: in spoke B's kernel table after {}, answering B's LAN after {} (no ironsec reload)",
        route_at.map_or("-".into(), secs),
        secs(took)
    );
    assert!(
        reachable,
        "10.33.0.1 not reachable from B's LAN within 10 s\n{}\n{}",
        route_table(&lab.gw(B)),
        lab.logs()
    );
    for i in [HUB, B] {
        for net in ["100.64.7.0/24", "169.254.99.0/30"] {
            assert!(
                lab.birds[i].routes_for(net).is_empty(),
                "{} learned {net}",
                GW[i]
            );
            assert!(
                kernel_routes(&lab.gw(i), net).is_empty(),
                "{} kernel has {net}",
                GW[i]
            );
        }
    }
    // ironsec still shows the daemons' original configs: nothing was reloaded.
    for d in &lab.daemons {
        assert!(!d.log_text().contains("reload"), "{}", d.log_text());
    }
}

#[test]
#[ignore = "needs root"]
fn bfd_detects_a_cut_direct_path_within_a_second_and_traffic_moves_to_the_hub() {
    require_root();
    let _s = serial();
    let lab = RouteLab::start(true);
    let (b_gw, c_net) = (lab.gw(B), lan_net(C));
    // The direct path is preferred: shorter AS path (65020 against 65515 65020).
    wait_kernel_route(&b_gw, &c_net, "vti-spoke-c", Duration::from_secs(10));
    let r = lab.birds[B].wait_route(&c_net, Duration::from_secs(5)).0;
    assert_eq!(r.from, "spoke_c", "{r:?}");
    assert!(lab.ping(B, lan_host(C), 5) >= 4, "{}", lab.logs());
    for (i, peer) in [(B, "169.254.22.2"), (C, "169.254.22.1")] {
        lab.birds[i].wait_bfd_up(peer, Duration::from_secs(10));
    }

    // Pings B -> C every 50 ms for 8 s; the direct path is cut 2 s in.
    let interval = Duration::from_millis(50);
    let pinger = ping_paced_in_background(
        &lab.lan(B),
        lan_host(C),
        160,
        pattern_payload(b"bfd-cut", 56),
        interval,
        Duration::from_secs(1),
    );
    std::thread::sleep(Duration::from_millis(1000));
    let direct0 = link_packets(&b_gw, "vti-spoke-c").1;
    let hub0 = link_packets(&b_gw, "vti-hub").1;
    std::thread::sleep(Duration::from_millis(1000));
    let direct1 = link_packets(&b_gw, "vti-spoke-c").1;
    let hub1 = link_packets(&b_gw, "vti-hub").1;
    let cut_at = SystemTime::now();
    let cut_mono = Instant::now();
    lab.topo.run("cut", &["b-c"]);

    // BFD on both ends: the session's "since" is when BIRD declared it down.
    let mut detected = Vec::new();
    for (i, peer) in [(B, "169.254.22.2"), (C, "169.254.22.1")] {
        let s = lab.birds[i].wait_bfd_not_up(peer, Duration::from_secs(5));
        let at = s.since.unwrap_or_else(|| panic!("no since in {s:?}"));
        let d = at.duration_since(cut_at).unwrap_or_default();
        println!(
            "(d) {}: BFD session with {peer} {} {} after the cut (BIRD's clock)",
            GW[i],
            s.state,
            secs(d)
        );
        detected.push(d);
    }
    wait_kernel_route(&b_gw, &c_net, "vti-hub", Duration::from_secs(5));
    println!(
        "(d) spoke B routes {c_net} into vti-hub {} after the cut (seen by polling)",
        secs(cut_mono.elapsed())
    );
    for d in &detected {
        assert!(
            *d < Duration::from_secs(1),
            "BFD took {d:?}\n{}",
            lab.logs()
        );
    }

    std::thread::sleep(Duration::from_millis(1000));
    let direct2 = link_packets(&b_gw, "vti-spoke-c").1;
    let hub2 = link_packets(&b_gw, "vti-hub").1;
    std::thread::sleep(Duration::from_millis(1000));
    let direct3 = link_packets(&b_gw, "vti-spoke-c").1;
    let hub3 = link_packets(&b_gw, "vti-hub").1;
    let run = pinger.join().unwrap();

    let lost: Vec<f64> = run
        .lost()
        .iter()
        .map(|r| {
            r.sent_at
                .duration_since(cut_at)
                .map_or_else(|e| -e.duration().as_secs_f64(), |d| d.as_secs_f64())
        })
        .collect();
    println!(
        "(d) pings B->C every 50 ms: {} of {} answered; lost ones sent at {:?} s from the cut",
        run.received(),
        run.sent(),
        lost
    );
    println!(
        "(d) packets sent by spoke B in 1 s, before the cut: direct vti-spoke-c {}, vti-hub {}; after: vti-spoke-c {}, vti-hub {}",
        direct1 - direct0,
        hub1 - hub0,
        direct3 - direct2,
        hub3 - hub2
    );
    // Before the cut the pings (20/s) took the direct tunnel, after it the hub; BFD and BGP add
    // about 10 packets/s on a live session.
    assert!(
        direct1 - direct0 >= 18 && hub1 - hub0 < 18,
        "{}",
        lab.logs()
    );
    assert!(
        hub3 - hub2 >= 18 && direct3 - direct2 < 18,
        "{}",
        lab.logs()
    );
    // Pings keep going: everything sent a second or more after the cut was answered.
    assert!(
        lost.iter().all(|&t| t < 1.0),
        "pings lost later than 1 s after the cut: {lost:?}"
    );

    // Healed, the direct path is back and preferred again (BGP reconnects within seconds).
    let heal = Instant::now();
    lab.topo.run("heal", &["b-c"]);
    lab.birds[B].wait_established("spoke_c", Duration::from_secs(30));
    wait_kernel_route(&b_gw, &c_net, "vti-spoke-c", Duration::from_secs(10));
    println!(
        "(d) healed: direct path preferred again after {}",
        secs(heal.elapsed())
    );
    assert!(lab.ping(B, lan_host(C), 5) >= 4, "{}", lab.logs());
}

#[test]
#[ignore = "needs root"]
fn hub_ironsecd_restart_brings_bgp_and_traffic_back_without_an_operator() {
    require_root();
    let _s = serial();
    let mut lab = RouteLab::start(false);
    assert!(lab.ping(B, lan_host(C), 5) >= 4, "{}", lab.logs());
    let b_gw = lab.gw(B);
    // BFD up on both spokes first: traffic flows as soon as BGP is up, which (with the hub
    // quick to start) can be before BFD is; a session that never was up declares nothing.
    for (i, hub_addr) in [(B, "169.254.21.1"), (C, "169.254.21.5")] {
        lab.birds[i].wait_bfd_up(hub_addr, Duration::from_secs(10));
    }

    // SIGTERM: ironsecd exits, its tunnel interfaces go with it.
    let t_stop = Instant::now();
    let st = lab.daemons[HUB].stop();
    assert!(st.is_some_and(|s| s.success()), "hub ironsecd: {st:?}");
    for (i, hub_addr) in [(B, "169.254.21.1"), (C, "169.254.21.5")] {
        lab.birds[i].wait_bfd_not_up(hub_addr, Duration::from_secs(5));
    }
    println!(
        "(e) hub ironsecd stopped; both spokes' BFD sessions with the hub down {} later",
        secs(t_stop.elapsed())
    );
    // BIRD withdrew the route through the dead tunnel; the guard keeps C's LAN out of B's
    // default route (fail closed) while the hub is away.
    assert!(
        poll_until(Duration::from_secs(5), || kernel_routes(&b_gw, &lan_net(C))
            .is_empty()),
        "{}",
        route_table(&b_gw)
    );
    let get = run_timeout(
        Command::new("ip").args(["-n", &b_gw, "route", "get", "10.3.0.2"]),
        Duration::from_secs(5),
    );
    let get = format!("{}{}", text(&get.stdout), text(&get.stderr));
    let guard = route_table(&b_gw);
    println!(
        "(e) meanwhile on spoke B: `ip route get 10.3.0.2`: {} (the guard: {})",
        get.trim(),
        guard
            .lines()
            .find(|l| l.starts_with("blackhole"))
            .unwrap_or("none")
    );
    assert!(
        !get.contains("dev wan"),
        "C's LAN would leave B in clear: {get}"
    );
    assert!(
        guard.contains("blackhole 10.0.0.0/8 proto 147 metric 4242"),
        "no guard route on spoke B:\n{guard}"
    );

    // Started again with the same config: nothing else is done.
    let t_start = Instant::now();
    let cfg = lab.dir.join(&format!("{}.toml", GW[HUB]));
    let d = lab.start_daemon(HUB, &cfg);
    lab.daemons[HUB] = d;
    let hub_up = poll_until(Duration::from_secs(30), || {
        all_tunnels_up(&lab.daemons[HUB].status())
    });
    assert!(
        hub_up,
        "the hub's tunnels did not come back\n{}",
        lab.logs()
    );
    let ike = t_start.elapsed();
    lab.wait_all_established(Duration::from_secs(60));
    let bgp = t_start.elapsed();
    wait_kernel_route(&b_gw, &lan_net(C), "vti-hub", Duration::from_secs(10));
    let ok = poll_until(Duration::from_secs(20), || lab.ping(B, lan_host(C), 1) == 1);
    println!(
        "(e) hub ironsecd started again: both tunnels up after {}, every BGP session established after {}, B->C answered after {}",
        secs(ike),
        secs(bgp),
        secs(t_start.elapsed())
    );
    if bgp > Duration::from_secs(5) {
        // Slower than one error wait (1 s) and connect delay: say why (BIRD's events are on).
        for b in &lab.birds {
            println!("----- bird {} log -----\n{}", b.name, b.log_text());
        }
    }
    assert!(ok, "B->C did not come back\n{}", lab.logs());
    assert!(lab.ping(C, lan_host(B), 5) >= 4, "{}", lab.logs());
}

// ------------------------------------------------------------------------------------------
// The script, end to end

#[test]
#[ignore = "needs root"]
fn route_based_script_up_status_cut_heal_down() {
    require_root();
    let _s = serial();
    let lab = ScriptLab::up("route-based.sh", "rb", &["--direct"], &GW);
    let status = || lab.status();
    let st = status();
    println!("{st}");
    // hub: spoke_b spoke_c; B: hub spoke_c; C: hub spoke_b.
    assert_eq!(st.matches(" up Established").count(), 6, "{st}");
    assert!(st.contains("vti-spoke-c rx"), "{st}");
    let got = ping(
        &lab.topo.ns("lanB"),
        lan_host(C),
        3,
        pattern_payload(b"script", 32),
        Duration::from_millis(100),
        Duration::from_secs(1),
    );
    assert!(
        got.received >= 2,
        "lanB -> 10.3.0.2 through the script's network"
    );

    lab.topo.run("cut", &["b-c"]);
    assert!(
        poll_until(Duration::from_secs(5), || status()
            .matches(" up Established")
            .count()
            == 4),
        "{}",
        status()
    );
    lab.topo.run("heal", &["b-c"]);
    assert!(
        poll_until(Duration::from_secs(30), || status()
            .matches(" up Established")
            .count()
            == 6),
        "{}",
        status()
    );

    lab.down_and_check();
}
