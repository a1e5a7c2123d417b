//! An active-active pair of gateways with BGP/ECMP and BFD (issue 25, plan section 2.1): real
//! ironsecd and BIRD 2 in the topology of `netns-scripts/ha-lab.sh` (kind aa), configured from
//! the shipped examples (conf/ha/aa-*.toml, conf/bird/ha-aa-*.conf) with only their paths
//! rewritten. No daemon code is specific to this: the LAN router and the remote site each hold
//! an ECMP route over both gateways (BIRD `merge paths`), and BFD (100 ms x 3) takes a dead
//! gateway's path out of it.
//!
//! - both ECMP routes have two nexthops, and eight flows (one per destination address) spread
//!   over both gateways in both directions, each flow on one gateway;
//! - the gateway carrying the LAN -> remote ping flow (100 pings/s) and an iperf3 TCP stream
//!   (capped at 50 Mbit/s) fails: its ironsecd and BIRD SIGKILLed (links left up), or the
//!   same after the host went dark (nothing leaves it: only BFD's timeout can tell), or only
//!   its ironsecd SIGKILLed, or its WAN cut in the WAN router. In each case at most 100 pings
//!   are lost (the limit; the outage, BFD times and route changes are printed), the TCP
//!   stream completes and moves data in every second after the fault, both ECMP routes shrink
//!   to the surviving gateway, and the WAN router sees nothing in clear for 10.0.0.0/8 from
//!   either gateway (nftables counters on its ports);
//! - `birdc configure` of a gateway's -drain file (GRACEFUL_SHUTDOWN on its routes) moves all
//!   traffic to the other gateway and back without a BGP session restarting and without losing
//!   a ping (what a planned drain builds on);
//! - the daemon's drain, with the `[drain]` table of the examples (withdraw and rejoin are
//!   `birdc configure` of the -drain and the normal file): each gateway in turn drained
//!   (`ironsecctl drain`), stopped and started again (`rejoin_on_start`) under 100 pings/s and
//!   an iperf3 stream loses not one ping, and so does a plain SIGTERM with `on_stop` (log order
//!   withdraw, wait, close, exit 0); the tunnels' packet rate with BFD and BGP alone is printed
//!   (what `idle_pps` must stay above);
//! - the BIRD files parse (`bird -p`), and the -drain files differ from the normal ones only in
//!   `define DRAIN`;
//! - ha-lab.sh itself: up (with daemons), status, cut, heal, kill, down, leaving nothing.
//!
//! Needs root (and bird2, iperf3, nftables; tests/install-deps.sh), so its
//! tests are ignored as "needs root"; FAILS, never skips, without them. Run:
//! `cargo test -p ironsecd --test ha_active_active -- --include-ignored --test-threads=1 --nocapture`

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use common::*;

/// The pair: namespace role, ironsec example, BIRD example, BIRD's address on its link to the
/// LAN router, its tunnel address, the remote's tunnel address, the LAN router's port and the
/// remote's tunnel interface towards it.
struct Gw {
    role: &'static str,
    toml: &'static str,
    bird: &'static str,
    lan_addr: &'static str,
    vti_addr: &'static str,
    remote_vti_addr: &'static str,
    rtr_port: &'static str,
    remote_dev: &'static str,
}

const GWS: [Gw; 2] = [
    Gw {
        role: "gwa",
        toml: "aa-gw-a.toml",
        bird: "ha-aa-gw-a.conf",
        lan_addr: "10.1.1.2",
        vti_addr: "169.254.21.1",
        remote_vti_addr: "169.254.21.2",
        rtr_port: "gwa",
        remote_dev: "vti-gwa",
    },
    Gw {
        role: "gwb",
        toml: "aa-gw-b.toml",
        bird: "ha-aa-gw-b.conf",
        lan_addr: "10.1.2.2",
        vti_addr: "169.254.21.5",
        remote_vti_addr: "169.254.21.6",
        rtr_port: "gwb",
        remote_dev: "vti-gwb",
    },
];
const REMOTE_TOML: &str = "aa-remote.toml";
const RTR_BIRD: &str = "ha-aa-lan-router.conf";
const REMOTE_BIRD: &str = "ha-aa-remote.conf";
/// Files the gateways' BIRD configs include (copied beside them).
const BIRD_INCLUDES: [&str; 1] = ["ha-aa-gateway.inc"];
const PSKS: [&str; 2] = ["aa-gw-a.psk", "aa-gw-b.psk"];
/// BGP protocol names per BIRD.
const RTR_SESSIONS: [&str; 2] = ["gw_a", "gw_b"];
const GW_SESSIONS: [&str; 2] = ["lan_router", "remote_site"];
const REMOTE_SESSIONS: [&str; 2] = ["gw_a", "gw_b"];

const LAN_NET: &str = "10.1.0.0/24";
const REMOTE_NET: &str = "10.2.0.0/24";
const LAN_HOST: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const REMOTE_HOST: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);

/// 100 pings/s, each waited for up to 1 s.
const PING_INTERVAL: Duration = Duration::from_millis(10);
const REPLY_TIMEOUT: Duration = Duration::from_secs(1);
/// The limit for an unplanned failover of one gateway.
const MAX_LOST: usize = 100;

fn script() -> PathBuf {
    workspace_root().join("netns-scripts/ha-lab.sh")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// Seconds from `from` to `to` (negative if `to` is earlier).
fn since(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

// ------------------------------------------------------------------------------------------
// Lab

/// The namespaces of `ha-lab.sh up PREFIX aa --net-only` under guard: dropping it runs
/// `ha-lab.sh down PREFIX aa`, which stops what still runs inside (by PID) and removes them.
struct HaTopo {
    prefix: String,
    tmpdir: PathBuf,
}

impl HaTopo {
    fn up(prefix: &str, tmpdir: &Path) -> HaTopo {
        require_root();
        let t = HaTopo {
            prefix: prefix.to_string(),
            tmpdir: tmpdir.to_path_buf(),
        };
        let out = run_timeout(
            &mut t.command(&["up", prefix, "aa", "--net-only"]),
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "ha-lab.sh up {prefix} aa --net-only failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        t
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("bash");
        c.arg(script()).args(args).env("TMPDIR", &self.tmpdir);
        c
    }

    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// `ha-lab.sh cut|heal PREFIX aa GW`.
    fn script(&self, verb: &str, gw: &str) {
        run_ok(
            &mut self.command(&[verb, &self.prefix, "aa", gw]),
            Duration::from_secs(20),
        );
    }
}

impl Drop for HaTopo {
    fn drop(&mut self) {
        let out = self
            .command(&["down", &self.prefix, "aa"])
            .stdin(std::process::Stdio::null())
            .output();
        if let Ok(o) = out {
            if !o.status.success() {
                eprintln!("ha-lab.sh down {}: {}", self.prefix, text(&o.stderr));
            }
        }
    }
}

/// The whole pair: BIRD on the LAN router, both gateways and the remote; ironsecd on both
/// gateways and the remote. Fields drop in order: BIRDs first (they remove their kernel
/// routes), then ironsecd, then the namespaces; the directory (logs) last.
struct AaLab {
    /// rtr, gwa, gwb, rem (a killed one is still here, its process gone).
    birds: Vec<Bird>,
    /// gwa, gwb, rem.
    daemons: Vec<Daemon>,
    topo: HaTopo,
    dir: TempDir,
}

const RTR: usize = 0;
const REM_BIRD: usize = 3;

impl AaLab {
    /// Namespaces from ha-lab.sh (--net-only), fresh PSKs, the examples rewritten into the test
    /// directory, the daemons started; returns once every BGP and BFD session is up and both
    /// ECMP routes have both gateways.
    fn start() -> AaLab {
        AaLab::start_with(false)
    }

    /// [`AaLab::start`] with the gateways' `[drain]` tables as shipped (`on_stop` and
    /// `rejoin_on_start` on) when `drain_on_stop`; otherwise those two are off, so the other
    /// tests stop and start the daemons as they always did.
    fn start_with(drain_on_stop: bool) -> AaLab {
        require_root();
        let prefix = unique_prefix();
        let dir = TempDir::new(&format!("ha-aa-{prefix}"));
        let topo = HaTopo::up(&prefix, &dir.path);
        for p in PSKS {
            write_psk(&dir, p);
        }
        let mut lab = AaLab {
            birds: Vec::new(),
            daemons: Vec::new(),
            topo,
            dir,
        };
        let t0 = Instant::now();
        // The remote answers (start_action none): it runs first, so the gateways' first
        // IKE_SA_INIT finds it.
        let mut order: Vec<(&str, &str)> = vec![("rem", REMOTE_TOML)];
        order.extend(GWS.iter().map(|g| (g.role, g.toml)));
        for (role, toml) in order {
            let cfg = lab.ironsec_config(role, toml, drain_on_stop);
            let d = Daemon::start(
                role,
                &lab.topo.ns(role),
                &cfg,
                &lab.dir.join(&format!("{role}.sock")),
                lab.dir.join(&format!("{role}.ironsecd.log")),
            );
            lab.daemons.push(d);
        }
        // gwa, gwb, rem
        lab.daemons.rotate_left(1);
        for inc in BIRD_INCLUDES {
            std::fs::copy(
                workspace_root().join("conf/bird").join(inc),
                lab.dir.join(inc),
            )
            .unwrap();
        }
        for (role, example) in [
            ("rtr", RTR_BIRD),
            (GWS[0].role, GWS[0].bird),
            (GWS[1].role, GWS[1].bird),
            ("rem", REMOTE_BIRD),
        ] {
            let conf = lab.bird_config(role, example);
            let log = lab.dir.join(&format!("{role}.bird.log"));
            let b = Bird::start(role, &lab.topo.ns(role), &conf, &log, &lab.dir.path);
            lab.birds.push(b);
        }
        let timeout = Duration::from_secs(30);
        for s in RTR_SESSIONS {
            lab.birds[RTR].wait_established(s, timeout);
        }
        for i in 0..2 {
            for s in GW_SESSIONS {
                lab.birds[1 + i].wait_established(s, timeout);
            }
        }
        for s in REMOTE_SESSIONS {
            lab.birds[REM_BIRD].wait_established(s, timeout);
        }
        let bgp = t0.elapsed();
        // BFD up everywhere: a session that never was up declares nothing when its peer dies.
        for g in &GWS {
            lab.birds[RTR].wait_bfd_up(g.lan_addr, timeout);
            lab.birds[REM_BIRD].wait_bfd_up(g.vti_addr, timeout);
        }
        for (i, g) in GWS.iter().enumerate() {
            lab.birds[1 + i].wait_bfd_up(g.remote_vti_addr, timeout);
        }
        let rtr = lab.topo.ns("rtr");
        let rem = lab.topo.ns("rem");
        wait_nexthops(&rtr, REMOTE_NET, &["gwa", "gwb"], timeout);
        wait_nexthops(&rem, LAN_NET, &["vti-gwa", "vti-gwb"], timeout);
        println!(
            "[lab] {prefix}: every BGP session established {}, BFD up and both ECMP routes complete {} after the first daemon started",
            secs(bgp),
            secs(t0.elapsed())
        );
        lab
    }

    fn bird(&self, gw: usize) -> &Bird {
        &self.birds[1 + gw]
    }

    /// conf/ha/<example> with the control socket and PSK files in the test directory, and a
    /// gateway's `[drain]` table pointing at this lab's BIRD (its socket, its normal and -drain
    /// files, both written here) and a state file in the test directory.
    fn ironsec_config(&self, role: &str, example: &str, drain_on_stop: bool) -> PathBuf {
        let mut t = example_config(&format!("ha/{example}"));
        if let Some(g) = GWS.iter().find(|g| g.role == role) {
            let drain_example = g.bird.replace(".conf", "-drain.conf");
            let drain =
                self.bird_config_as(role, &drain_example, &format!("{role}-drain.bird.conf"));
            let normal = self.dir.join(&format!("{role}.bird.conf"));
            let sock = self.dir.join(&format!("{role}.bird.sock"));
            let state = self.dir.join(&format!("{role}.drain"));
            let mut rewrites = vec![
                (
                    format!("/etc/bird/{drain_example}"),
                    drain.display().to_string(),
                ),
                (
                    format!("/etc/bird/{}", g.bird),
                    normal.display().to_string(),
                ),
                ("/run/bird/bird.ctl".to_string(), sock.display().to_string()),
                (
                    "/run/ironsec/drain".to_string(),
                    state.display().to_string(),
                ),
            ];
            if !drain_on_stop {
                rewrites.push(("on_stop = true".into(), "on_stop = false".into()));
                rewrites.push((
                    "rejoin_on_start = true".into(),
                    "rejoin_on_start = false".into(),
                ));
            }
            for (from, to) in rewrites {
                assert!(t.contains(&from), "{example}: no `{from}` in [drain]");
                t = t.replace(&from, &to);
            }
        }
        let from = "control_socket = \"/run/ironsec/ironsecd.sock\"";
        assert!(t.contains(from), "{example}: no `{from}`");
        let sock = self.dir.join(&format!("{role}.sock"));
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
            "{example}: a psk_file this test does not know"
        );
        let out = self.dir.join(&format!("{role}.toml"));
        std::fs::write(&out, t).unwrap();
        out
    }

    /// conf/bird/<example> logging to the test directory, with BIRD's events in the log too.
    fn bird_config(&self, role: &str, example: &str) -> PathBuf {
        self.bird_config_as(role, example, &format!("{role}.bird.conf"))
    }

    /// [`AaLab::bird_config`] written to `out` (another file for the same BIRD, e.g. its
    /// -drain variant, logging where the first one does).
    fn bird_config_as(&self, role: &str, example: &str, out: &str) -> PathBuf {
        let path = workspace_root().join("conf/bird").join(example);
        let mut t = std::fs::read_to_string(&path).unwrap();
        let log = self.dir.join(&format!("{role}.bird.log"));
        assert!(t.contains("\nlog syslog all;\n"), "{}", path.display());
        t = t.replace(
            "\nlog syslog all;\n",
            &format!("\nlog \"{}\" all;\n", log.display()),
        );
        t = t.replace("debug { states };", "debug { states, events };");
        let out = self.dir.join(out);
        std::fs::write(&out, t).unwrap();
        out
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for d in &self.daemons {
            s += &format!("----- ironsecd {} -----\n{}\n", d.name, d.log_text());
        }
        for b in &self.birds {
            s += &format!("----- bird {} -----\n{}\n", b.name, b.log_text());
        }
        s
    }
}

// ------------------------------------------------------------------------------------------
// Kernel routes and flow counters

/// The interfaces of `ns`'s kernel route for exactly `prefix` (one per nexthop; empty without
/// a route).
fn nexthop_devs(ns: &str, prefix: &str) -> Vec<String> {
    let out = run_ok(
        Command::new("ip").args(["-n", ns, "-j", "route", "show", "exact", prefix]),
        Duration::from_secs(5),
    );
    let s = text(&out.stdout);
    if s.trim().is_empty() {
        return Vec::new();
    }
    let v: Value = serde_json::from_str(&s).unwrap_or_else(|e| panic!("ip -j route: {e}: {s}"));
    let mut devs = Vec::new();
    for r in v.as_array().into_iter().flatten() {
        if r["protocol"] != "bird" {
            continue;
        }
        if let Some(nhs) = r["nexthops"].as_array() {
            devs.extend(
                nhs.iter()
                    .filter_map(|n| n["dev"].as_str().map(String::from)),
            );
        } else if let Some(d) = r["dev"].as_str() {
            devs.push(d.to_string());
        }
    }
    devs.sort();
    devs
}

fn route_text(ns: &str, prefix: &str) -> String {
    text(
        &run_ok(
            Command::new("ip").args(["-n", ns, "route", "show", "exact", prefix]),
            Duration::from_secs(5),
        )
        .stdout,
    )
}

/// Waits until `ns` routes `prefix` (through BIRD) over exactly the interfaces `want`.
fn wait_nexthops(ns: &str, prefix: &str, want: &[&str], timeout: Duration) -> Duration {
    let t0 = Instant::now();
    let mut last = Vec::new();
    let ok = poll_until(timeout, || {
        last = nexthop_devs(ns, prefix);
        last == want
    });
    assert!(
        ok,
        "{ns}: {prefix} not over {want:?} within {timeout:?} (last: {last:?}):\n{}",
        route_text(ns, prefix)
    );
    t0.elapsed()
}

/// nftables counters in the forward path of one namespace: packets per (output interface,
/// source, destination), by name. What proves which gateway a flow took.
struct FlowCounters {
    ns: String,
}

impl FlowCounters {
    /// `rules`: (name, output interface, source prefix, destination prefix).
    fn install(ns: &str, rules: &[(String, &str, String, String)]) -> FlowCounters {
        let mut body = String::from(
            "table inet ha_flows {\n chain flows {\n  type filter hook forward priority -10; policy accept;\n",
        );
        for (name, oif, src, dst) in rules {
            body += &format!(
                "  oifname \"{oif}\" ip saddr {src} ip daddr {dst} counter comment \"{name}\"\n"
            );
        }
        body += " }\n}\n";
        nft_load(ns, "flows", &body);
        FlowCounters { ns: ns.to_string() }
    }

    /// Packets counted per rule name.
    fn read(&self) -> std::collections::BTreeMap<String, u64> {
        let o = run_ok(
            ns_cmd(&self.ns, "nft").args(["list", "chain", "inet", "ha_flows", "flows"]),
            Duration::from_secs(5),
        );
        let mut m = std::collections::BTreeMap::new();
        for l in text(&o.stdout).lines() {
            let Some((_, name)) = l.split_once("comment \"") else {
                continue;
            };
            let name = name.trim_end_matches('"').to_string();
            let mut w = l.split_whitespace();
            let n = w
                .find(|x| *x == "packets")
                .and_then(|_| w.next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no packet count in {l:?}"));
            m.insert(name, n);
        }
        m
    }
}

/// Counters for the LAN host <-> remote host flow: on the LAN router per gateway port (forward
/// direction) and on the remote per tunnel interface (replies).
fn main_flow_counters(lab: &AaLab) -> (FlowCounters, FlowCounters) {
    let fwd: Vec<_> = GWS
        .iter()
        .map(|g| {
            (
                g.role.to_string(),
                g.rtr_port,
                LAN_HOST.to_string(),
                REMOTE_HOST.to_string(),
            )
        })
        .collect();
    let back: Vec<_> = GWS
        .iter()
        .map(|g| {
            (
                g.role.to_string(),
                g.remote_dev,
                REMOTE_HOST.to_string(),
                LAN_HOST.to_string(),
            )
        })
        .collect();
    (
        FlowCounters::install(&lab.topo.ns("rtr"), &fwd),
        FlowCounters::install(&lab.topo.ns("rem"), &back),
    )
}

/// Which gateway (index) carries the flow, from counters read before and after some traffic:
/// the one whose counter rose; panics if both or none did.
fn carrier(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
    what: &str,
) -> usize {
    let rose: Vec<usize> = GWS
        .iter()
        .enumerate()
        .filter(|(_, g)| after[g.role] > before.get(g.role).copied().unwrap_or(0))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        rose.len(),
        1,
        "{what}: expected exactly one gateway to carry the flow: before {before:?}, after {after:?}"
    );
    rose[0]
}

// ------------------------------------------------------------------------------------------
// No root: the BIRD files

/// Every ha-aa BIRD file: the top-level ones (the include is parsed through them).
const BIRD_FILES: [&str; 6] = [
    "ha-aa-gw-a.conf",
    "ha-aa-gw-a-drain.conf",
    "ha-aa-gw-b.conf",
    "ha-aa-gw-b-drain.conf",
    "ha-aa-lan-router.conf",
    "ha-aa-remote.conf",
];

#[test]
#[ignore = "needs bird2 (tests/install-deps.sh)"]
fn bird_configs_parse_and_drain_files_differ_only_in_drain() {
    let dir = workspace_root().join("conf/bird");
    for n in BIRD_FILES {
        let p = dir.join(n);
        bird_parse_ok(&p);
        let t = std::fs::read_to_string(&p).unwrap();
        assert!(
            t.contains("\nlog syslog all;\n"),
            "{n}: the tests rewrite that line"
        );
    }
    // What every session promises (the gateways' sessions live in the include).
    let inc = std::fs::read_to_string(dir.join(BIRD_INCLUDES[0])).unwrap();
    for (n, t) in [
        ("ha-aa-gateway.inc", inc.clone()),
        (
            "ha-aa-lan-router.conf",
            std::fs::read_to_string(dir.join("ha-aa-lan-router.conf")).unwrap(),
        ),
        (
            "ha-aa-remote.conf",
            std::fs::read_to_string(dir.join("ha-aa-remote.conf")).unwrap(),
        ),
    ] {
        for must in [
            "import filter bgp_in;",
            "export filter bgp_out;",
            "export filter to_kernel;",
            "metric 32;",
            "merge paths on;",
            "if net = 0.0.0.0/0 then return false;",
            "if net ~ [ 169.254.0.0/16+ ] then return false;",
            "min rx interval 100 ms;",
            "min tx interval 100 ms;",
            "multiplier 3;",
            "bfd on;",
            // Receivers take a draining gateway's routes last.
            "if (65535, 0) ~ bgp_community then bgp_local_pref = 0;",
        ] {
            assert!(t.contains(must), "{n}: no `{must}`");
        }
    }
    assert!(inc.contains("if DRAIN = 1 then bgp_community.add((65535, 0));"));
    // The -drain file is the normal one with DRAIN = 1, apart from its header comment.
    let code = |n: &str| -> Vec<String> {
        std::fs::read_to_string(dir.join(n))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(String::from)
            .collect()
    };
    for g in ["a", "b"] {
        let normal = code(&format!("ha-aa-gw-{g}.conf"));
        let drain = code(&format!("ha-aa-gw-{g}-drain.conf"));
        assert!(
            normal.contains(&"define DRAIN = 0;".to_string()),
            "{normal:?}"
        );
        let expect: Vec<String> = normal
            .iter()
            .map(|l| {
                if l == "define DRAIN = 0;" {
                    "define DRAIN = 1;".to_string()
                } else {
                    l.clone()
                }
            })
            .collect();
        assert_eq!(drain, expect, "ha-aa-gw-{g}-drain.conf");
    }
}

// ------------------------------------------------------------------------------------------
// ECMP

#[test]
#[ignore = "needs root"]
fn ecmp_spreads_flows_over_both_gateways() {
    require_root();
    let _s = serial();
    let lab = AaLab::start();
    let rtr = lab.topo.ns("rtr");
    let rem = lab.topo.ns("rem");
    println!(
        "LAN router:\n{}remote:\n{}",
        route_text(&rtr, REMOTE_NET),
        route_text(&rem, LAN_NET)
    );
    // Both routes: two nexthops, one per gateway, from BGP paths of equal AS path length.
    for (b, net, peers) in [
        (RTR, REMOTE_NET, RTR_SESSIONS),
        (REM_BIRD, LAN_NET, REMOTE_SESSIONS),
    ] {
        let routes = lab.birds[b].routes_for(net);
        let mut from: Vec<&str> = routes.iter().map(|r| r.from.as_str()).collect();
        from.sort();
        assert_eq!(from, peers, "{}: {routes:?}", lab.birds[b].name);
    }

    // Eight flows: the remote host answers on eight addresses, each flow hashed on (source,
    // destination) by the LAN router and on (destination, source) by the remote.
    let rh = lab.topo.ns("rh");
    let dsts: Vec<Ipv4Addr> = (10..18).map(|i| Ipv4Addr::new(10, 2, 0, i)).collect();
    for d in &dsts {
        run_ok(
            Command::new("ip").args(["-n", &rh, "addr", "add", &format!("{d}/24"), "dev", "eth0"]),
            Duration::from_secs(5),
        );
    }
    let mut fwd = Vec::new();
    let mut back = Vec::new();
    for d in &dsts {
        for g in &GWS {
            fwd.push((
                format!("{d}-{}", g.role),
                g.rtr_port,
                LAN_HOST.to_string(),
                d.to_string(),
            ));
            back.push((
                format!("{d}-{}", g.role),
                g.remote_dev,
                d.to_string(),
                LAN_HOST.to_string(),
            ));
        }
    }
    let fwd_c = FlowCounters::install(&rtr, &fwd);
    let back_c = FlowCounters::install(&rem, &back);
    let vti0: Vec<(u64, u64)> = GWS
        .iter()
        .map(|g| link_packets(&lab.topo.ns(g.role), "vti-rem"))
        .collect();
    const PINGS: u16 = 20;
    for d in &dsts {
        let got = ping(
            &lab.topo.ns("lh"),
            *d,
            PINGS,
            pattern_payload(b"ha-ecmp", 56),
            Duration::from_millis(10),
            Duration::from_secs(1),
        )
        .received;
        assert_eq!(got, u32::from(PINGS), "pings to {d}\n{}", lab.logs());
    }
    let vti1: Vec<(u64, u64)> = GWS
        .iter()
        .map(|g| link_packets(&lab.topo.ns(g.role), "vti-rem"))
        .collect();
    let (f, b) = (fwd_c.read(), back_c.read());
    let mut per_gw_fwd = [0usize; 2];
    let mut per_gw_back = [0usize; 2];
    println!("flow            LAN->remote via   remote->LAN via");
    for d in &dsts {
        let on = |m: &std::collections::BTreeMap<String, u64>, what: &str| -> usize {
            let n: Vec<u64> = GWS.iter().map(|g| m[&format!("{d}-{}", g.role)]).collect();
            // Each flow all on one gateway: the hash is per flow, not per packet.
            let i = n
                .iter()
                .position(|&x| x == u64::from(PINGS))
                .unwrap_or_else(|| panic!("{what} flow to {d} split or lost: {n:?}"));
            assert_eq!(n[1 - i], 0, "{what} flow to {d} split: {n:?}");
            i
        };
        let (i, j) = (on(&f, "forward"), on(&b, "reply"));
        per_gw_fwd[i] += 1;
        per_gw_back[j] += 1;
        println!("10.1.0.2<->{d:<10} {:<17} {}", GWS[i].role, GWS[j].role);
    }
    println!(
        "flows per gateway: LAN->remote gwa {} gwb {}, remote->LAN gwa {} gwb {}; vti-rem packets sent/received meanwhile: gwa {}/{}, gwb {}/{} (BFD and BGP included)",
        per_gw_fwd[0],
        per_gw_fwd[1],
        per_gw_back[0],
        per_gw_back[1],
        vti1[0].1 - vti0[0].1,
        vti1[0].0 - vti0[0].0,
        vti1[1].1 - vti0[1].1,
        vti1[1].0 - vti0[1].0
    );
    assert!(
        per_gw_fwd.iter().all(|&n| n > 0),
        "LAN->remote flows not spread: {per_gw_fwd:?}"
    );
    assert!(
        per_gw_back.iter().all(|&n| n > 0),
        "remote->LAN flows not spread: {per_gw_back:?}"
    );
    // Both tunnels carried the flows hashed onto them (each pinged flow is PINGS requests).
    for (i, g) in GWS.iter().enumerate() {
        let sent = vti1[i].1 - vti0[i].1;
        assert!(
            sent >= per_gw_fwd[i] as u64 * u64::from(PINGS),
            "{}: vti-rem sent {sent}",
            g.role
        );
    }
}

// ------------------------------------------------------------------------------------------
// Unplanned failover

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// SIGKILL of the gateway's ironsecd and BIRD ("host dead"), links left up.
    KillAll,
    /// The host goes dark: nothing leaves its namespace any more (nftables drops its output
    /// and forwarding), then its ironsecd and BIRD are SIGKILLed. Unlike a bare SIGKILL, no
    /// TCP FIN/RST closes BGP and no ICMP answers BFD: only BFD's timeout tells its peers.
    HostSilent,
    /// SIGKILL of the gateway's ironsecd only.
    KillIronsecd,
    /// All of the gateway's WAN traffic dropped in the WAN router.
    CutWan,
}

/// What one failover run measured.
struct Failover {
    gw: usize,
    lost: usize,
    outage: Duration,
}

/// Pings LAN host -> remote host at 100/s for `run_secs` with an iperf3 TCP stream (50 Mbit/s)
/// alongside, and applies `fault` to the gateway carrying the ping flow `fault_at` into the
/// run. Prints and checks the figures; returns them.
fn failover_run(lab: &mut AaLab, fault: Fault, run_secs: u64, fault_at: Duration) -> Failover {
    let lh = lab.topo.ns("lh");
    let rh = lab.topo.ns("rh");
    let rtr = lab.topo.ns("rtr");
    let rem = lab.topo.ns("rem");
    let wan = lab.topo.ns("wan");

    // Which gateway carries the flow, each way.
    let (fwd_c, back_c) = main_flow_counters(lab);
    let (f0, b0) = (fwd_c.read(), back_c.read());
    let got = ping(
        &lh,
        REMOTE_HOST,
        10,
        pattern_payload(b"ha-probe", 56),
        Duration::from_millis(10),
        Duration::from_secs(1),
    )
    .received;
    assert_eq!(got, 10, "{}", lab.logs());
    let (f1, b1) = (fwd_c.read(), back_c.read());
    let gw = carrier(&f0, &f1, "LAN->remote");
    let back_gw = carrier(&b0, &b1, "remote->LAN");
    let g = &GWS[gw];
    let other = &GWS[1 - gw];
    println!(
        "[{fault:?}] the LAN->remote flow (pings and iperf3: same addresses, L3 hash) takes {}, its replies {}; {} is the one that fails",
        g.role, GWS[back_gw].role, g.role
    );
    let judges: Vec<WireJudge> = GWS
        .iter()
        .map(|x| WireJudge::install_on(&wan, &[x.rtr_port], "10.0.0.0/8"))
        .collect();

    // The iperf3 stream (the whole run, started first) and the pinger.
    let dir = lab.dir.path.clone();
    let (lh2, rh2) = (lh.clone(), rh.clone());
    let t_arg = run_secs.to_string();
    let iperf = std::thread::spawn(move || {
        iperf3_json(
            &lh2,
            &rh2,
            REMOTE_HOST,
            5201,
            &["-t", &t_arg, "-b", "50M", "-i", "1"],
            &dir,
            "failover",
        )
    });
    std::thread::sleep(Duration::from_millis(500));
    let count = (run_secs * 100 - 100) as u16; // ends with the stream, give or take a second
    let pinger = ping_paced_in_background(
        &lh,
        REMOTE_HOST,
        count,
        pattern_payload(b"ha-failover", 56),
        PING_INTERVAL,
        REPLY_TIMEOUT,
    );
    let iperf_t0 = SystemTime::now() - Duration::from_millis(500);
    std::thread::sleep(fault_at);

    // Both ECMP routes down to the surviving gateway: watched from just before the fault.
    let fault_mono = Instant::now();
    let rtr_watch = watch_nexthops(&rtr, REMOTE_NET, other.rtr_port, fault_mono);
    let rem_watch = watch_nexthops(&rem, LAN_NET, other.remote_dev, fault_mono);

    // The fault.
    let fault_at_wall = SystemTime::now();
    match fault {
        Fault::KillAll => {
            lab.daemons[gw].kill9();
            lab.birds[1 + gw]
                .proc_
                .stop(libc::SIGKILL, Duration::from_secs(5));
        }
        Fault::HostSilent => {
            go_dark(&lab.topo.ns(g.role));
            lab.daemons[gw].kill9();
            lab.birds[1 + gw]
                .proc_
                .stop(libc::SIGKILL, Duration::from_secs(5));
        }
        Fault::KillIronsecd => lab.daemons[gw].kill9(),
        Fault::CutWan => lab.topo.script("cut", g.role),
    }
    let fault_took = fault_mono.elapsed();

    let rtr_moved = rtr_watch.join().unwrap();
    let rem_moved = rem_watch.join().unwrap();
    assert!(
        rtr_moved.is_some() && rem_moved.is_some(),
        "[{fault:?}] ECMP routes not down to {} within 5 s: LAN router {:?}, remote {:?}",
        other.role,
        nexthop_devs(&rtr, REMOTE_NET),
        nexthop_devs(&rem, LAN_NET)
    );
    // How the LAN router's session with the gateway ended (BFD, or the kernel closing a dead
    // BIRD's TCP connection).
    let rtr_session = RTR_SESSIONS[gw];
    let rtr_error = last_error(&lab.birds[RTR], rtr_session);
    // BFD: when each side declared the failed gateway down (BIRD's own clock).
    let mut bfd = Vec::new();
    match fault {
        Fault::KillAll | Fault::HostSilent => {
            bfd.push((
                "LAN router",
                lab.birds[RTR].wait_bfd_not_up(g.lan_addr, Duration::from_secs(5)),
            ));
            bfd.push((
                "remote",
                lab.birds[REM_BIRD].wait_bfd_not_up(g.vti_addr, Duration::from_secs(5)),
            ));
        }
        Fault::KillIronsecd => {
            bfd.push((
                "remote",
                lab.birds[REM_BIRD].wait_bfd_not_up(g.vti_addr, Duration::from_secs(5)),
            ));
        }
        Fault::CutWan => {
            bfd.push((
                g.role,
                lab.bird(gw)
                    .wait_bfd_not_up(g.remote_vti_addr, Duration::from_secs(5)),
            ));
            bfd.push((
                "remote",
                lab.birds[REM_BIRD].wait_bfd_not_up(g.vti_addr, Duration::from_secs(5)),
            ));
        }
    }
    let run = pinger.join().unwrap();
    let report = iperf.join().unwrap();

    // Pings: how many lost, when, the longest run of consecutive losses.
    let lost = run.lost();
    let mut longest = 0usize;
    let mut cur = 0usize;
    for r in &run.records {
        if r.rtt.is_none() {
            cur += 1;
            longest = longest.max(cur);
        } else {
            cur = 0;
        }
    }
    let outage = PING_INTERVAL * longest as u32;
    let first = lost.first().map(|r| since(fault_at_wall, r.sent_at));
    let last = lost.last().map(|r| since(fault_at_wall, r.sent_at));
    // Lost well before the fault (a ping sent a moment before it may still be in flight).
    let before: usize = lost
        .iter()
        .filter(|r| r.sent_at + Duration::from_millis(200) < fault_at_wall)
        .count();

    // iperf3: bytes per 1 s interval at the receiver.
    let intervals: Vec<(f64, u64)> = report["intervals"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|iv| {
            (
                iv["sum"]["start"].as_f64().unwrap_or(0.0),
                iv["sum"]["bytes"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let fault_in_iperf = since(iperf_t0, fault_at_wall);
    let after: Vec<u64> = intervals
        .iter()
        .filter(|(s, _)| *s >= fault_in_iperf + 1.0)
        .map(|(_, b)| *b)
        .collect();
    let mbit = |b: u64| b as f64 * 8.0 / 1e6;
    let min_after = after.iter().copied().min().unwrap_or(0);
    let received = report
        .pointer("/end/sum_received/bytes")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let (clear, esp) = judges[gw].counts();
    let (clear_other, _) = judges[1 - gw].counts();

    println!(
        "[{fault:?}] fault applied to {} {} after the pinger started (took {})",
        g.role,
        secs(fault_at),
        secs(fault_took)
    );
    for (who, s) in &bfd {
        let at = s.since.map_or(f64::NAN, |t| since(fault_at_wall, t));
        println!(
            "[{fault:?}] {who}: BFD session with {} {} {at:.3} s after the fault (BFD's timeout, or its BGP session closed first)",
            g.role, s.state
        );
    }
    println!(
        "[{fault:?}] ECMP routes down to {}: LAN router after {}, remote after {} (polled every 10 ms); the LAN router's session {rtr_session}: last error {rtr_error:?}",
        other.role,
        secs(rtr_moved.unwrap()),
        secs(rem_moved.unwrap())
    );
    println!(
        "[{fault:?}] pings: {} sent, {} lost ({} before the fault), first lost {} s, last lost {} s from the fault, longest outage {}",
        run.sent(),
        lost.len(),
        before,
        first.map_or("-".into(), |t| format!("{t:.3}")),
        last.map_or("-".into(), |t| format!("{t:.3}")),
        secs(outage)
    );
    println!(
        "[{fault:?}] iperf3 TCP (-b 50M, {run_secs} s): {:.1} MB received; per 1 s interval (Mbit/s): {:?}; lowest after the fault {:.1}",
        received as f64 / 1e6,
        intervals.iter().map(|(_, b)| (mbit(*b) * 10.0).round() / 10.0).collect::<Vec<_>>(),
        mbit(min_after)
    );
    println!(
        "[{fault:?}] WAN router, from {}: {clear} packets in clear to 10.0.0.0/8, {esp} ESP-in-UDP; from {}: {clear_other} in clear",
        g.role, other.role
    );

    assert!(
        lost.len() <= MAX_LOST,
        "[{fault:?}] {} pings lost (limit {MAX_LOST})\n{}",
        lost.len(),
        lab.logs()
    );
    assert!(
        outage < Duration::from_secs(1),
        "[{fault:?}] outage {outage:?}"
    );
    assert_eq!(before, 0, "[{fault:?}] pings lost before the fault");
    // The stream survived: iperf3 completed (iperf3_json asserts its exit status) and moved
    // data in every second from one second after the fault on.
    assert!(!after.is_empty(), "{report:#}");
    assert!(
        after.iter().all(|&b| b > 0),
        "[{fault:?}] the TCP stream stalled after the fault: {intervals:?}"
    );
    // Fail closed: never anything in clear on the WAN, from either gateway.
    assert_eq!(
        (clear, clear_other),
        (0, 0),
        "[{fault:?}] cleartext on the WAN"
    );
    assert!(esp > 0, "the judge saw no tunnel traffic from {}", g.role);
    Failover {
        gw,
        lost: lost.len(),
        outage,
    }
}

#[test]
#[ignore = "needs root"]
fn killed_gateway_loses_under_a_second() {
    require_root();
    let _s = serial();
    let mut lab = AaLab::start();
    let f = failover_run(&mut lab, Fault::KillAll, 30, Duration::from_secs(10));
    println!(
        "killed_gateway: {} lost {} pings, outage {}",
        GWS[f.gw].role,
        f.lost,
        secs(f.outage)
    );
    // Fail closed on the dead host too: its guard outlived ironsecd.
    let ns = lab.topo.ns(GWS[f.gw].role);
    let r = run_ok(
        Command::new("ip").args(["-n", &ns, "route", "show", "table", "main"]),
        Duration::from_secs(5),
    );
    assert!(
        text(&r.stdout).contains("blackhole 10.0.0.0/8 proto 147 metric 4242"),
        "{}",
        text(&r.stdout)
    );
}

#[test]
#[ignore = "needs root"]
fn dead_silent_host_loses_under_a_second() {
    require_root();
    let _s = serial();
    let mut lab = AaLab::start();
    let f = failover_run(&mut lab, Fault::HostSilent, 20, Duration::from_secs(8));
    println!(
        "dead_silent_host: {} lost {} pings, outage {}",
        GWS[f.gw].role,
        f.lost,
        secs(f.outage)
    );
}

#[test]
#[ignore = "needs root"]
fn killed_ironsecd_only() {
    require_root();
    let _s = serial();
    let mut lab = AaLab::start();
    let f = failover_run(&mut lab, Fault::KillIronsecd, 20, Duration::from_secs(8));
    // BIRD on the gateway stays up, its tunnel session gone with the interface, the LAN
    // router session still established (it announces nothing to the router any more).
    let b = lab.bird(f.gw);
    assert!(
        !b.protocol("remote_site").established(),
        "{:?}",
        b.protocols()
    );
    assert!(
        b.protocol("lan_router").established(),
        "{:?}",
        b.protocols()
    );
}

#[test]
#[ignore = "needs root"]
fn cut_wan_of_a_gateway() {
    require_root();
    let _s = serial();
    let mut lab = AaLab::start();
    let f = failover_run(&mut lab, Fault::CutWan, 20, Duration::from_secs(8));
    // The cut gateway fails closed: the remote's LAN hits its guard, not the default route.
    let ns = lab.topo.ns(GWS[f.gw].role);
    let get = run_timeout(
        Command::new("ip").args(["-n", &ns, "route", "get", "10.2.0.2"]),
        Duration::from_secs(5),
    );
    let get = format!("{}{}", text(&get.stdout), text(&get.stderr));
    println!(
        "cut gateway {}: ip route get 10.2.0.2: {} (EINVAL: a blackhole route, the guard)",
        GWS[f.gw].role,
        get.trim()
    );
    assert!(!get.contains("dev wan"), "{get}");
    // Healed, the pair is whole again: BGP over the tunnel back and both ECMP routes complete.
    let t0 = Instant::now();
    lab.topo.script("heal", GWS[f.gw].role);
    lab.bird(f.gw)
        .wait_established("remote_site", Duration::from_secs(60));
    wait_nexthops(
        &lab.topo.ns("rtr"),
        REMOTE_NET,
        &["gwa", "gwb"],
        Duration::from_secs(30),
    );
    wait_nexthops(
        &lab.topo.ns("rem"),
        LAN_NET,
        &["vti-gwa", "vti-gwb"],
        Duration::from_secs(30),
    );
    println!(
        "healed: both ECMP routes complete again after {}",
        secs(t0.elapsed())
    );
}

/// Polls (every 10 ms, up to 5 s) until `ns` routes `prefix` over `dev` alone; returns how
/// long after `t0` that was first seen.
fn watch_nexthops(
    ns: &str,
    prefix: &'static str,
    dev: &'static str,
    t0: Instant,
) -> std::thread::JoinHandle<Option<Duration>> {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        while t0.elapsed() < Duration::from_secs(5) {
            if nexthop_devs(&ns, prefix) == [dev] {
                return Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    })
}

/// Nothing leaves namespace `ns` any more: its output and forwarding are dropped (a host that
/// died without closing anything; its interfaces stay up).
fn go_dark(ns: &str) {
    let rules = "table inet dark {\n\
         chain out { type filter hook output priority -300; policy drop; }\n\
         chain fw { type filter hook forward priority -300; policy drop; }\n\
         }\n";
    nft_load(ns, "dark", rules);
}

/// The "Last error" BIRD shows for protocol `name` (empty if none).
fn last_error(b: &Bird, name: &str) -> String {
    b.birdc_ok(&["show", "protocols", "all", name])
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Last error:")
                .map(|e| e.trim().to_string())
        })
        .unwrap_or_default()
}

/// Packets (received, sent) by interface `dev` in `ns`.
fn link_packets(ns: &str, dev: &str) -> (u64, u64) {
    let out = run_ok(
        Command::new("ip").args(["-n", ns, "-j", "-s", "link", "show", "dev", dev]),
        Duration::from_secs(5),
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v[0]["stats64"];
    (
        s["rx"]["packets"].as_u64().unwrap_or(0),
        s["tx"]["packets"].as_u64().unwrap_or(0),
    )
}

// ------------------------------------------------------------------------------------------
// Draining by BIRD configuration (what a planned drain builds on)

/// `birdc show protocols`: (name, since) of every BGP session.
///
/// BIRD keeps the time of a state change on its monotonic clock and converts it to wall time
/// when asked, so the same instant may print a millisecond apart in two answers.
fn bgp_since(b: &Bird) -> Vec<(String, SystemTime)> {
    b.birdc_ok(&["show", "protocols"])
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 6 && f[1] == "BGP").then(|| {
                let t = bird_time(f[4], f[5]).unwrap_or_else(|| panic!("since in {l:?}"));
                (f[0].to_string(), t)
            })
        })
        .collect()
}

/// `birdc configure "ha-aa-gw-X-drain.conf"` on the gateway carrying the ping flow, with 100
/// pings/s and an iperf3 stream running, and back: no BGP session on any BIRD restarts (their
/// "since" times stay), the draining gateway's routes arrive with GRACEFUL_SHUTDOWN and
/// local_pref 0, both ECMP routes shrink to the other gateway while it drains and come back
/// after; not one ping is lost.
#[test]
#[ignore = "needs root"]
fn bird_drain_file_moves_traffic_without_a_session_reset() {
    require_root();
    let _s = serial();
    let lab = AaLab::start();
    let lh = lab.topo.ns("lh");
    let rtr = lab.topo.ns("rtr");
    let rem = lab.topo.ns("rem");
    let (fwd_c, _) = main_flow_counters(&lab);
    let f0 = fwd_c.read();
    ping(
        &lh,
        REMOTE_HOST,
        10,
        pattern_payload(b"ha-probe", 56),
        Duration::from_millis(10),
        Duration::from_secs(1),
    );
    let gw = carrier(&f0, &fwd_c.read(), "LAN->remote");
    let (g, other) = (&GWS[gw], &GWS[1 - gw]);
    // The drain file, rewritten as the normal one was (it includes the same .inc).
    let drain_example = g.bird.replace(".conf", "-drain.conf");
    let drain = lab.bird_config_as(
        g.role,
        &drain_example,
        &format!("{}-drain.bird.conf", g.role),
    );
    let normal = lab.bird(gw).config.clone();
    let since0: Vec<Vec<(String, SystemTime)>> = lab.birds.iter().map(bgp_since).collect();

    let dir = lab.dir.path.clone();
    let (lh2, rh2) = (lh.clone(), lab.topo.ns("rh"));
    let iperf = std::thread::spawn(move || {
        iperf3_json(
            &lh2,
            &rh2,
            REMOTE_HOST,
            5201,
            &["-t", "12", "-b", "50M", "-i", "1"],
            &dir,
            "drain",
        )
    });
    std::thread::sleep(Duration::from_millis(500));
    let pinger = ping_paced_in_background(
        &lh,
        REMOTE_HOST,
        1100,
        pattern_payload(b"ha-drain", 56),
        PING_INTERVAL,
        REPLY_TIMEOUT,
    );
    std::thread::sleep(Duration::from_secs(3));
    let t0 = Instant::now();
    let rtr_watch = watch_nexthops(&rtr, REMOTE_NET, other.rtr_port, t0);
    let rem_watch = watch_nexthops(&rem, LAN_NET, other.remote_dev, t0);
    let configured_at = SystemTime::now();
    let out = lab
        .bird(gw)
        .birdc_ok(&["configure", &format!("\"{}\"", drain.display())]);
    assert!(out.contains("Reconfigured"), "{out}");
    let (rtr_moved, rem_moved) = (rtr_watch.join().unwrap(), rem_watch.join().unwrap());
    let f_drain0 = fwd_c.read();
    std::thread::sleep(Duration::from_secs(3));
    let f_drain1 = fwd_c.read();
    // The draining gateway's route at the LAN router: community and local_pref 0.
    let all = lab.birds[RTR].birdc_ok(&[
        "show",
        "route",
        "all",
        REMOTE_NET,
        "protocol",
        RTR_SESSIONS[gw],
    ]);
    let out = lab
        .bird(gw)
        .birdc_ok(&["configure", &format!("\"{}\"", normal.display())]);
    assert!(out.contains("Reconfigured"), "{out}");
    let back_rtr = wait_nexthops(&rtr, REMOTE_NET, &["gwa", "gwb"], Duration::from_secs(5));
    let back_rem = wait_nexthops(
        &rem,
        LAN_NET,
        &["vti-gwa", "vti-gwb"],
        Duration::from_secs(5),
    );
    let run = pinger.join().unwrap();
    let report = iperf.join().unwrap();
    let since1: Vec<Vec<(String, SystemTime)>> = lab.birds.iter().map(bgp_since).collect();

    let moved = |m: &std::collections::BTreeMap<String, u64>,
                 n: &std::collections::BTreeMap<String, u64>,
                 who: &str| { n[who] - m.get(who).copied().unwrap_or(0) };
    println!(
        "drain of {} by `birdc configure` (its -drain file): ECMP down to {} after {} on the LAN router, {} on the remote; back to both {} / {} after configuring the normal file",
        g.role,
        other.role,
        rtr_moved.map_or("-".into(), secs),
        rem_moved.map_or("-".into(), secs),
        secs(back_rtr),
        secs(back_rem)
    );
    println!(
        "while drained (3 s): LAN->remote pings via {} {}, via {} {}; pings {} sent, {} lost; iperf3 {:.1} MB received",
        g.role,
        moved(&f_drain0, &f_drain1, g.role),
        other.role,
        moved(&f_drain0, &f_drain1, other.role),
        run.sent(),
        run.lost().len(),
        report
            .pointer("/end/sum_received/bytes")
            .and_then(Value::as_u64)
            .unwrap_or(0) as f64
            / 1e6
    );
    println!("LAN router's route from {} while drained:\n{all}", g.role);
    println!("BGP sessions (name, since) before: {since0:?}\nafter: {since1:?}");
    assert!(
        rtr_moved.is_some() && rem_moved.is_some(),
        "traffic did not move"
    );
    assert!(all.contains("BGP.community: (65535,0)"), "{all}");
    assert!(all.contains("BGP.local_pref: 0"), "{all}");
    assert_eq!(
        moved(&f_drain0, &f_drain1, g.role),
        0,
        "pings still via the drained gateway"
    );
    assert!(moved(&f_drain0, &f_drain1, other.role) >= 250);
    // No session changed state after the first configure: each one's "since" is the same
    // instant as before (within BIRD's conversion jitter) and earlier than the configure.
    for (b0, b1) in since0.iter().zip(&since1) {
        let names0: Vec<&String> = b0.iter().map(|(n, _)| n).collect();
        let names1: Vec<&String> = b1.iter().map(|(n, _)| n).collect();
        assert_eq!(names0, names1);
        for ((n, t0), (_, t1)) in b0.iter().zip(b1) {
            assert!(
                since(*t0, *t1).abs() < 0.05 && *t1 < configured_at,
                "BGP session {n} changed state: since {:.3} before, {:.3} after; configure at {:.3} (Unix s)",
                unix_secs(*t0),
                unix_secs(*t1),
                unix_secs(configured_at)
            );
        }
    }
    assert_eq!(run.lost().len(), 0, "pings lost during drain and undrain");
}

// ------------------------------------------------------------------------------------------
// Planned maintenance: the daemon's drain (`[drain]` of conf/ha/aa-gw-{a,b}.toml)

/// `ironsecctl --json ARGS` against `sock`, which must succeed.
fn ctl_json(sock: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = ironsecctl(sock, &all);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ironsecctl {args:?}: {e}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    });
    assert!(out.status.success(), "ironsecctl {args:?}: {v:#}");
    v
}

/// Packets per second over `vti-rem` of every gateway (both directions), counted for `over`.
fn tunnel_rates(lab: &AaLab, over: Duration) -> Vec<f64> {
    let count = |g: &Gw| {
        let (rx, tx) = link_packets(&lab.topo.ns(g.role), "vti-rem");
        rx + tx
    };
    let before: Vec<u64> = GWS.iter().map(count).collect();
    let t0 = Instant::now();
    std::thread::sleep(over);
    let after: Vec<u64> = GWS.iter().map(count).collect();
    let secs = t0.elapsed().as_secs_f64();
    before
        .iter()
        .zip(&after)
        .map(|(b, a)| (a - b) as f64 / secs)
        .collect()
}

/// Lost pings, and the longest run of consecutive losses.
fn losses(run: &PingRun) -> (usize, Duration) {
    let mut longest = 0usize;
    let mut cur = 0usize;
    for r in &run.records {
        if r.rtt.is_none() {
            cur += 1;
            longest = longest.max(cur);
        } else {
            cur = 0;
        }
    }
    (run.lost().len(), PING_INTERVAL * longest as u32)
}

/// Receiver's bytes per 1 s interval of an iperf3 JSON report, in Mbit/s.
fn iperf_intervals(report: &Value) -> Vec<f64> {
    report["intervals"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|iv| iv["sum"]["bytes"].as_u64().unwrap_or(0) as f64 * 8.0 / 1e6)
        .collect()
}

/// Which gateway carries the LAN host -> remote host flow (and its replies: the same one in
/// this lab, checked).
fn flow_carrier(lab: &AaLab) -> usize {
    let (fwd_c, back_c) = main_flow_counters(lab);
    let (f0, b0) = (fwd_c.read(), back_c.read());
    let got = ping(
        &lab.topo.ns("lh"),
        REMOTE_HOST,
        10,
        pattern_payload(b"ha-probe", 56),
        Duration::from_millis(10),
        Duration::from_secs(1),
    )
    .received;
    assert_eq!(got, 10, "{}", lab.logs());
    let gw = carrier(&f0, &fwd_c.read(), "LAN->remote");
    let back = carrier(&b0, &back_c.read(), "remote->LAN");
    assert_eq!(gw, back, "the flow's replies take the other gateway");
    gw
}

/// The iperf3 TCP stream LAN host -> remote host (-b 50M, `secs` s, 1 s intervals), in the
/// background.
fn iperf_in_background(
    lab: &AaLab,
    secs: u64,
    tag: &'static str,
) -> std::thread::JoinHandle<Value> {
    let dir = lab.dir.path.clone();
    let (lh, rh) = (lab.topo.ns("lh"), lab.topo.ns("rh"));
    let t = secs.to_string();
    std::thread::spawn(move || {
        iperf3_json(
            &lh,
            &rh,
            REMOTE_HOST,
            5201,
            &["-t", &t, "-b", "50M", "-i", "1"],
            &dir,
            tag,
        )
    })
}

/// Each gateway in turn (the one carrying the flow first), with 100 pings/s and an iperf3 TCP
/// stream (50 Mbit/s) running through the pair all along: `ironsecctl drain` (its withdraw
/// command switches BIRD to the -drain file: GRACEFUL_SHUTDOWN), which reports the traffic
/// moved and the IKE SA deleted; SIGTERM; ironsecd started again with `rejoin_on_start`
/// (tunnel up first, then the rejoin command switches BIRD back); both ECMP routes whole
/// again. Not one ping is lost over the whole sequence, and the stream moves data every
/// second. Also measures what the routing protocols alone send over a tunnel (what
/// `idle_pps` must stay above).
#[test]
#[ignore = "needs root"]
fn drain_and_restart_lose_nothing() {
    require_root();
    let _s = serial();
    let mut lab = AaLab::start_with(true);
    let lh = lab.topo.ns("lh");
    let rtr = lab.topo.ns("rtr");
    let rem = lab.topo.ns("rem");
    // BFD and BGP alone, before any traffic: every tunnel's packet rate.
    let idle = tunnel_rates(&lab, Duration::from_secs(3));
    println!(
        "[drain] idle tunnels (BFD 100 ms x 3 and BGP only, rx + tx): {} {:.1} pps, {} {:.1} pps",
        GWS[0].role, idle[0], GWS[1].role, idle[1]
    );
    let first = flow_carrier(&lab);
    const RUN_SECS: u64 = 40;
    let iperf = iperf_in_background(&lab, RUN_SECS, "drain-restart");
    std::thread::sleep(Duration::from_millis(500));
    let t_start = Instant::now();
    let pinger = ping_paced_in_background(
        &lh,
        REMOTE_HOST,
        (RUN_SECS * 100 - 100) as u16,
        pattern_payload(b"ha-drain-restart", 56),
        PING_INTERVAL,
        REPLY_TIMEOUT,
    );
    std::thread::sleep(Duration::from_secs(2));
    let mut figures = Vec::new();
    for gw in [first, 1 - first] {
        let (g, other) = (&GWS[gw], &GWS[1 - gw]);
        let sock = lab.daemons[gw].socket.clone();
        // Under load: the tunnel of the gateway about to drain, just before.
        let busy = tunnel_rates(&lab, Duration::from_secs(1))[gw];
        let asked = Instant::now();
        let report = ctl_json(&sock, &["drain"]);
        let drain_took = asked.elapsed();
        let r = &report["drain"];
        println!(
            "[drain] {}: ironsecctl drain returned after {} ({busy:.0} pps on its tunnel just before):\n{r:#}",
            g.role,
            secs(drain_took)
        );
        assert_eq!(r["withdraw"]["commands"], 1, "{r:#}");
        assert!(
            r["withdraw"]["failed"].as_array().unwrap().is_empty(),
            "{r:#}\n{}",
            lab.logs()
        );
        assert_eq!(
            r["timed_out"],
            false,
            "traffic never moved: {r:#}\n{}",
            lab.logs()
        );
        // Under the example's idle_pps: BFD and BGP alone, the traffic gone.
        assert!(
            r["last_pps"].as_f64().unwrap() < r["idle_pps"].as_f64().unwrap(),
            "{r:#}"
        );
        assert_eq!(r["ike_sas_deleted"], 1, "{r:#}");
        // Traffic moved: both ECMP routes are down to the other gateway.
        let rtr_gone = wait_nexthops(&rtr, REMOTE_NET, &[other.rtr_port], Duration::from_secs(5));
        let rem_gone = wait_nexthops(&rem, LAN_NET, &[other.remote_dev], Duration::from_secs(5));
        // The drained gateway's tunnel carries nothing now (SA closed, routes elsewhere).
        let drained_rate = tunnel_rates(&lab, Duration::from_secs(1))[gw];
        // SIGTERM: already drained, so it exits at once.
        let t_stop = Instant::now();
        let st = lab.daemons[gw]
            .proc_
            .stop(libc::SIGTERM, Duration::from_secs(30))
            .expect("ironsecd did not exit after SIGTERM");
        let stop_took = t_stop.elapsed();
        assert!(st.success(), "exit status {st}\n{}", lab.logs());
        // Start again: rejoin_on_start brings the tunnel up, then switches BIRD back.
        let t_rejoin = Instant::now();
        let cfg = lab.daemons[gw].config.clone();
        let restarted = Daemon::start(
            g.role,
            &lab.topo.ns(g.role),
            &cfg,
            &sock,
            lab.dir.join(&format!(
                "{}.ironsecd.restarted-{}.log",
                g.role,
                figures.len()
            )),
        );
        lab.daemons[gw] = restarted;
        let rejoined = poll_until(Duration::from_secs(30), || {
            lab.daemons[gw].log_text().contains("rejoined in ")
        });
        assert!(rejoined, "no rejoin at start\n{}", lab.logs());
        let rejoin_line = lab.daemons[gw]
            .log_text()
            .lines()
            .find(|l| l.contains("rejoined in "))
            .unwrap_or_default()
            .to_string();
        let rtr_back = wait_nexthops(&rtr, REMOTE_NET, &["gwa", "gwb"], Duration::from_secs(30));
        let rem_back = wait_nexthops(
            &rem,
            LAN_NET,
            &["vti-gwa", "vti-gwb"],
            Duration::from_secs(30),
        );
        let back = t_rejoin.elapsed();
        lab.birds[REM_BIRD].wait_bfd_up(g.vti_addr, Duration::from_secs(10));
        lab.birds[RTR].wait_bfd_up(g.lan_addr, Duration::from_secs(10));
        let state = std::fs::read_to_string(lab.dir.join(&format!("{}.drain", g.role))).unwrap();
        assert_eq!(state, "0\n");
        println!(
            "[drain] {}: ECMP down to {} ({} / {} after ironsecctl returned); its tunnel then {drained_rate:.1} pps; SIGTERM to exit {}; start to both ECMP routes whole again {} (LAN router {} / remote {} of it); {}",
            g.role,
            other.role,
            secs(rtr_gone),
            secs(rem_gone),
            secs(stop_took),
            secs(back),
            secs(rtr_back),
            secs(rem_back),
            rejoin_line.trim()
        );
        figures.push((
            g.role,
            drain_took,
            r["wait_secs"].as_f64().unwrap_or(f64::NAN),
            r["last_pps"].as_f64().unwrap_or(f64::NAN),
            stop_took,
            back,
        ));
        std::thread::sleep(Duration::from_secs(2));
    }
    let sequence = t_start.elapsed();
    let run = pinger.join().unwrap();
    let report = iperf.join().unwrap();
    let (lost, outage) = losses(&run);
    let mbit = iperf_intervals(&report);
    println!(
        "[drain] whole sequence {} (pings ran {} s): {} pings sent, {lost} lost, longest outage {}; iperf3 {:.1} MB received, per 1 s (Mbit/s): {:?}",
        secs(sequence),
        RUN_SECS - 1,
        run.sent(),
        secs(outage),
        report
            .pointer("/end/sum_received/bytes")
            .and_then(Value::as_u64)
            .unwrap_or(0) as f64
            / 1e6,
        mbit.iter().map(|m| (m * 10.0).round() / 10.0).collect::<Vec<_>>()
    );
    for (role, drain, wait, last, stop, back) in &figures {
        println!(
            "[drain] figures {role}: drain {} (wait {wait:.2} s, last {last:.0} pps), stop {}, rejoin to ECMP {}",
            secs(*drain),
            secs(*stop),
            secs(*back)
        );
    }
    assert!(
        sequence + Duration::from_secs(1) < Duration::from_secs(RUN_SECS - 1),
        "the sequence took {sequence:?}, longer than the pings ran"
    );
    assert_eq!(
        lost,
        0,
        "pings lost during drain, stop and rejoin\n{}",
        lab.logs()
    );
    assert!(
        mbit.iter().all(|&m| m > 0.0),
        "the TCP stream stalled: {mbit:?}"
    );
}

/// SIGTERM to the gateway carrying the flow with `on_stop = true` and no drain before it (what
/// `systemctl stop` does), with 100 pings/s and an iperf3 stream running: the daemon drains
/// first (log order: withdraw, the wait, the close, then exit), exits 0, and not one ping is
/// lost.
#[test]
#[ignore = "needs root"]
fn systemd_stop_path_drains() {
    require_root();
    let _s = serial();
    let mut lab = AaLab::start_with(true);
    let lh = lab.topo.ns("lh");
    let rtr = lab.topo.ns("rtr");
    let rem = lab.topo.ns("rem");
    let gw = flow_carrier(&lab);
    let (g, other) = (&GWS[gw], &GWS[1 - gw]);
    let iperf = iperf_in_background(&lab, 12, "stop-path");
    std::thread::sleep(Duration::from_millis(500));
    let pinger = ping_paced_in_background(
        &lh,
        REMOTE_HOST,
        1000,
        pattern_payload(b"ha-stop-path", 56),
        PING_INTERVAL,
        REPLY_TIMEOUT,
    );
    std::thread::sleep(Duration::from_secs(3));
    let t0 = Instant::now();
    let st = lab.daemons[gw]
        .proc_
        .stop(libc::SIGTERM, Duration::from_secs(30))
        .expect("ironsecd did not exit within 30 s of SIGTERM");
    let took = t0.elapsed();
    let rtr_now = nexthop_devs(&rtr, REMOTE_NET);
    let rem_now = nexthop_devs(&rem, LAN_NET);
    let run = pinger.join().unwrap();
    let report = iperf.join().unwrap();
    let (lost, outage) = losses(&run);
    let mbit = iperf_intervals(&report);
    let log = lab.daemons[gw].log_text();
    let line = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {}'s log:\n{log}", g.role))
            .to_string()
    };
    let at = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in {}'s log:\n{log}", g.role))
    };
    println!(
        "[stop] SIGTERM to {} (carrying the flow): exit {st} after {}; {}; {}",
        g.role,
        secs(took),
        line("drained in ").trim(),
        line("drained: shutting down").trim()
    );
    println!(
        "[stop] pings: {} sent, {lost} lost, longest outage {}; iperf3 per 1 s (Mbit/s): {:?}; routes after: LAN router {rtr_now:?}, remote {rem_now:?}",
        run.sent(),
        secs(outage),
        mbit.iter().map(|m| (m * 10.0).round() / 10.0).collect::<Vec<_>>()
    );
    assert!(st.success(), "exit status {st}\n{log}");
    let order = [
        at("SIGTERM: draining before exit"),
        at("drain: withdraw command done"),
        at("drain: IKE SAs deleted"),
        at("drained in "),
        at("drained: shutting down"),
    ];
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "log out of order {order:?}:\n{log}"
    );
    // The wait ended because traffic moved, not on the timeout.
    assert!(
        line("drained in ").contains("traffic under ") && !line("drained in ").contains("timeout"),
        "{log}"
    );
    assert_eq!(rtr_now, [other.rtr_port], "{}", lab.logs());
    assert_eq!(rem_now, [other.remote_dev], "{}", lab.logs());
    assert_eq!(lost, 0, "pings lost on the stop path\n{}", lab.logs());
    assert!(
        mbit.iter().all(|&m| m > 0.0),
        "the TCP stream stalled: {mbit:?}"
    );
}

// ------------------------------------------------------------------------------------------
// The script, end to end

#[test]
#[ignore = "needs root"]
fn ha_lab_script_up_status_kill_cut_heal_down() {
    require_root();
    let _s = serial();
    let prefix = unique_prefix();
    let tmp = TempDir::new(&format!("ha-script-{prefix}"));
    let state = tmp.join(&format!("ironsec-ha-{prefix}"));
    let cmd = |args: &[&str]| {
        let mut c = Command::new("bash");
        c.arg(script())
            .args(args)
            .env("TMPDIR", &tmp.path)
            .env("IRONSECD", IRONSECD)
            .env("IRONSECCTL", IRONSECCTL);
        c
    };
    // The guard first: a half-built lab is removed too.
    let topo = HaTopo {
        prefix: prefix.clone(),
        tmpdir: tmp.path.clone(),
    };
    let t0 = Instant::now();
    let out = run_timeout(&mut cmd(&["up", &prefix, "aa"]), Duration::from_secs(120));
    assert!(
        out.status.success(),
        "ha-lab.sh up: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    println!("{}(up took {})", text(&out.stderr), secs(t0.elapsed()));
    let status = || {
        text(
            &run_ok(
                &mut cmd(&["status", &prefix, "aa"]),
                Duration::from_secs(30),
            )
            .stdout,
        )
    };
    let st = status();
    println!("{st}");
    // rtr: gw_a gw_b; gwa, gwb: lan_router remote_site; rem: gw_a gw_b.
    assert_eq!(st.matches(" up Established").count(), 8, "{st}");
    assert!(st.contains("ike established"), "{st}");
    for dev in ["dev gwa", "dev gwb", "dev vti-gwa", "dev vti-gwb"] {
        assert!(
            st.contains("nexthop via") && st.contains(dev),
            "{dev}: {st}"
        );
    }
    let got = ping(
        &topo.ns("lh"),
        REMOTE_HOST,
        3,
        pattern_payload(b"ha-script", 32),
        Duration::from_millis(100),
        Duration::from_secs(1),
    );
    assert!(got.received >= 2, "lh -> 10.2.0.2 through the script's lab");

    // A WAN cut takes gwb's tunnel session down (gwb's and the remote's), healing brings it back.
    run_ok(
        &mut cmd(&["cut", &prefix, "aa", "gwb"]),
        Duration::from_secs(20),
    );
    assert!(
        poll_until(Duration::from_secs(5), || status()
            .matches(" up Established")
            .count()
            == 6),
        "{}",
        status()
    );
    run_ok(
        &mut cmd(&["heal", &prefix, "aa", "gwb"]),
        Duration::from_secs(20),
    );
    assert!(
        poll_until(Duration::from_secs(60), || status()
            .matches(" up Established")
            .count()
            == 8),
        "{}",
        status()
    );
    // kill: gwa's ironsecd and BIRD gone, by PID.
    let pid = |g: &str, d: &str| -> String {
        std::fs::read_to_string(state.join(format!("{g}.{d}.pid")))
            .unwrap_or_else(|e| panic!("{g}.{d}.pid: {e}"))
            .trim()
            .to_string()
    };
    let killed = [pid("gwa", "ironsecd"), pid("gwa", "bird")];
    run_ok(
        &mut cmd(&["kill", &prefix, "aa", "gwa"]),
        Duration::from_secs(20),
    );
    for p in &killed {
        assert!(
            poll_until(Duration::from_secs(5), || !Path::new(&format!("/proc/{p}"))
                .exists()
                || std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .is_ok_and(|s| s.contains(") Z "))),
            "pid {p} still runs"
        );
    }
    wait_nexthops(
        &topo.ns("rtr"),
        REMOTE_NET,
        &["gwb"],
        Duration::from_secs(5),
    );

    let pids: Vec<String> = ["gwb", "rem"]
        .iter()
        .flat_map(|g| ["ironsecd", "bird"].map(|d| pid(g, d)))
        .chain([pid("rtr", "bird")])
        .collect();
    drop(topo);
    assert!(
        namespaces_with(&prefix).is_empty(),
        "{:?}",
        namespaces_with(&prefix)
    );
    assert!(!state.exists(), "{} left behind", state.display());
    for p in pids {
        assert!(
            !Path::new(&format!("/proc/{p}")).exists()
                || std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .map_or(true, |c| !c.contains(&prefix)),
            "process {p} still runs"
        );
    }
    // down twice, and down of something that never existed: never fails.
    run_ok(&mut cmd(&["down", &prefix, "aa"]), Duration::from_secs(20));
    run_ok(&mut cmd(&["down", &prefix]), Duration::from_secs(20));
}
