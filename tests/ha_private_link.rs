//! The VPN as the backup of a private link (issue 25): two sites joined by a private link and by
//! a route-based IPsec tunnel over the WAN, real ironsecd and BIRD 2 on both gateways in the
//! topology of `netns-scripts/plink-lab.sh` (`--net-only`: the test starts its own daemons),
//! configured from the shipped examples (conf/ha/plink-site-{a,b}.toml,
//! conf/bird/plink-site-{a,b}.conf) with only their paths rewritten. BIRD runs eBGP + BFD over
//! both paths and prefers the private link (local_pref 200 against 100); ironsecd's guard
//! routes (`protect = ["10.0.0.0/8"]`) keep anything of 10/8 from the gateways' default routes.
//!
//! - a silent cut of the private link (nftables drop in its bridge, both interfaces stay up)
//!   moves 100 pings/s and an iperf3 TCP stream to the tunnel in under a second, and healing
//!   it moves them back losing nothing; no packet of 10/8 crosses the WAN router in clear at
//!   any time, while ESP does; BFD times and the path of each phase are printed;
//! - the control: with ironsecd killed, the link cut and the guards removed (`ironsecd
//!   cleanup`), the same pings do cross the WAN in clear and the judge counts them (and with
//!   the guards still there, it counts none): the judge can see a leak;
//! - BIRD 2.0.12 does not wait for BFD before a BGP session carries routes: a link that
//!   passes BGP but not BFD takes the traffic back with its BFD session down (the README's
//!   "partly healed link" caveat, pinned here so that a BIRD that changes this is noticed);
//! - the BIRD examples parse (`bird -p`) and keep their promises (local_pref 200/100, BFD
//!   100 ms x 3 on both paths, filters, metric 32).
//!
//! Needs root (and bird2, iperf3, nftables: tests/install-deps.sh), so its
//! tests are ignored as "needs root"; FAILS, never skips, without them. Run:
//! `cargo test -p ironsecd --test ha_private_link -- --include-ignored --test-threads=1 --nocapture`

mod common;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use common::*;

const A: usize = 0;
const B: usize = 1;
/// Gateway and LAN host namespace roles of plink-lab.sh, by site.
const GW: [&str; 2] = ["gwa", "gwb"];
const LH: [&str; 2] = ["lha", "lhb"];
const TOML: [&str; 2] = ["ha/plink-site-a.toml", "ha/plink-site-b.toml"];
const BIRD_CONF: [&str; 2] = ["plink-site-a.conf", "plink-site-b.conf"];
const PSK: &str = "plink.psk";
/// Per site: the tunnel interface ironsecd creates, and the peer's addresses on the private
/// link and in the tunnel (BFD and BGP neighbours).
const VTI: [&str; 2] = ["vti-b", "vti-a"];
const PL_PEER: [&str; 2] = ["10.255.0.2", "10.255.0.1"];
const VTI_PEER: [&str; 2] = ["169.254.30.2", "169.254.30.1"];
/// BGP protocol names in the BIRD examples.
const S_LINK: &str = "private_link";
const S_VPN: &str = "ipsec";
/// The WAN router's ports (one per gateway): where a packet leaked in clear arrives.
const WAN_PORTS: [&str; 2] = ["gwa", "gwb"];
const PROTECTED: &str = "10.0.0.0/8";

fn lan_net(i: usize) -> String {
    format!("10.{}.0.0/24", i + 1)
}

fn lan_host(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, i as u8 + 1, 0, 2)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// `t - since` in seconds, negative when `t` is earlier.
fn rel(t: SystemTime, since: SystemTime) -> f64 {
    t.duration_since(since)
        .map_or_else(|e| -e.duration().as_secs_f64(), |d| d.as_secs_f64())
}

// ------------------------------------------------------------------------------------------
// Topology and lab

/// Both sites with ironsecd and BIRD, from the shipped examples. Fields drop in order: BIRD
/// first (it removes its kernel routes), then ironsecd, then the namespaces; the directory
/// (logs) last.
struct PlinkLab {
    birds: Vec<Bird>,
    daemons: Vec<Daemon>,
    topo: ScriptTopo,
    dir: TempDir,
}

impl PlinkLab {
    /// Namespaces from plink-lab.sh, a fresh PSK, the examples rewritten into the test
    /// directory, the daemons started; returns once all four BGP sessions are established,
    /// all four BFD sessions are up and both sites route the other's LAN over the private
    /// link.
    fn start() -> PlinkLab {
        require_root();
        let prefix = unique_prefix();
        let dir = TempDir::new(&format!("plink-{prefix}"));
        let topo = ScriptTopo::up(
            "plink-lab.sh",
            &prefix,
            &["--net-only"],
            &[("TMPDIR", dir.path.to_str().unwrap())],
            Duration::from_secs(60),
        );
        write_psk(&dir, PSK);
        let mut lab = PlinkLab {
            birds: Vec::new(),
            daemons: Vec::new(),
            topo,
            dir,
        };
        let t0 = Instant::now();
        for i in [A, B] {
            let cfg = lab.ironsec_config(i);
            let d = Daemon::start(
                GW[i],
                &lab.gw(i),
                &cfg,
                &lab.dir.join(&format!("{}.sock", GW[i])),
                lab.dir.join(&format!("{}.ironsecd.log", GW[i])),
            );
            lab.daemons.push(d);
        }
        for (i, name) in GW.iter().enumerate() {
            let conf = lab.bird_config(i);
            let log = lab.dir.join(&format!("{name}.bird.log"));
            let b = Bird::start(name, &lab.gw(i), &conf, &log, &lab.dir.path);
            lab.birds.push(b);
        }
        for b in &lab.birds {
            for s in [S_LINK, S_VPN] {
                b.wait_established(s, Duration::from_secs(30));
            }
        }
        // BFD on every path before anything is cut: a session that never was up declares
        // nothing, and its BGP session would then last until the hold timer.
        for i in [A, B] {
            for peer in [PL_PEER[i], VTI_PEER[i]] {
                lab.birds[i].wait_bfd_up(peer, Duration::from_secs(15));
            }
        }
        for i in [A, B] {
            wait_kernel_route(&lab.gw(i), &lan_net(1 - i), "pl", Duration::from_secs(10));
        }
        println!(
            "[lab] {prefix}: ironsecd and BIRD started; 4 BGP sessions established, 4 BFD sessions up, both sites on the private link {} after the first daemon started",
            secs(t0.elapsed())
        );
        lab
    }

    fn gw(&self, i: usize) -> String {
        self.topo.ns(GW[i])
    }

    fn lh(&self, i: usize) -> String {
        self.topo.ns(LH[i])
    }

    /// conf/<example> with the control socket and the PSK file in the test directory.
    fn ironsec_config(&self, i: usize) -> PathBuf {
        let mut t = example_config(TOML[i]);
        let sock = self.dir.join(&format!("{}.sock", GW[i]));
        for (from, to) in [
            (
                "control_socket = \"/run/ironsec/ironsecd.sock\"".to_string(),
                format!("control_socket = {}", toml_str(sock.to_str().unwrap())),
            ),
            (
                format!("psk_file = \"psk/{PSK}\""),
                format!(
                    "psk_file = {}",
                    toml_str(self.dir.join(PSK).to_str().unwrap())
                ),
            ),
        ] {
            assert!(t.contains(&from), "{}: no `{from}`", TOML[i]);
            t = t.replace(&from, &to);
        }
        let out = self.dir.join(&format!("{}.toml", GW[i]));
        std::fs::write(&out, t).unwrap();
        out
    }

    /// conf/bird/<example> logging to the test directory, with BIRD's events (each connection
    /// attempt) in the log too, for a failure's diagnosis.
    fn bird_config(&self, i: usize) -> PathBuf {
        let path = workspace_root().join("conf/bird").join(BIRD_CONF[i]);
        let t = std::fs::read_to_string(&path).unwrap();
        let log = self.dir.join(&format!("{}.bird.log", GW[i]));
        let t = bird_example_for_test(&t, &path, &log);
        let out = self.dir.join(&format!("{}.bird.conf", GW[i]));
        std::fs::write(&out, t).unwrap();
        out
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

    /// Packets sent by site `i`'s gateway on the private link and into the tunnel so far.
    fn tx(&self, i: usize) -> (u64, u64) {
        (
            link_packets(&self.gw(i), "pl").1,
            link_packets(&self.gw(i), VTI[i]).1,
        )
    }

    /// The first line of `ip route get` for the other site's LAN host, on gateway `i`.
    fn route_get(&self, i: usize) -> String {
        let o = run_timeout(
            Command::new("ip").args([
                "-n",
                &self.gw(i),
                "route",
                "get",
                &lan_host(1 - i).to_string(),
            ]),
            Duration::from_secs(5),
        );
        format!("{}{}", text(&o.stdout), text(&o.stderr))
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string()
    }
}

/// When BIRD's log first says `protocol: State changed to STATE` (UTC, the examples' time
/// format), at or after `after`.
fn bird_state_change(
    log: &str,
    protocol: &str,
    state: &str,
    after: SystemTime,
) -> Option<SystemTime> {
    let needle = format!("{protocol}: State changed to {state}");
    log.lines()
        .filter(|l| l.trim_end().ends_with(&needle))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            bird_time(f.next()?, f.next()?)
        })
        .find(|t| *t >= after)
}

/// Sleeps until `start + at`.
fn sleep_until(start: Instant, at: Duration) {
    let now = Instant::now();
    if start + at > now {
        std::thread::sleep(start + at - now);
    }
}

// ------------------------------------------------------------------------------------------
// The BIRD examples on their own

#[test]
#[ignore = "needs bird2 (tests/install-deps.sh)"]
fn bird_examples_parse_and_prefer_the_private_link() {
    for n in BIRD_CONF {
        let path = workspace_root().join("conf/bird").join(n);
        bird_parse_ok(&path);
        let t = std::fs::read_to_string(&path).unwrap();
        let code: String = t
            .lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        for must in [
            "define PREF_PRIVATE_LINK = 200;",
            "define PREF_VPN = 100;",
            "bgp_local_pref = PREF_PRIVATE_LINK;",
            "bgp_local_pref = PREF_VPN;",
            "import filter bgp_in_private_link;",
            "import filter bgp_in_vpn;",
            "export filter bgp_out;",
            "export filter to_kernel;",
            "metric 32;",
            "interface \"pl\" {",
            "interface \"vti-*\" {",
            "min rx interval 100 ms;",
            "min tx interval 100 ms;",
            "multiplier 3;",
            "bfd on;",
            "if net = 0.0.0.0/0 then return false;",
            "if net ~ [ 169.254.0.0/16+ ] then return false;",
            "interface \"lan\";",
        ] {
            assert!(code.contains(must), "{n}: no `{must}`");
        }
        // Each session takes its own preference: the link's filter on the link's session.
        for (proto, filter) in [(S_LINK, "bgp_in_private_link"), (S_VPN, "bgp_in_vpn")] {
            let at = code
                .find(&format!("protocol bgp {proto} from"))
                .unwrap_or_else(|| panic!("{n}: no protocol bgp {proto}"));
            let body = &code[at..];
            let body = &body[..body.find("\n}").unwrap()];
            assert!(
                body.contains(&format!("import filter {filter};")),
                "{n}: {proto} does not import with {filter}"
            );
        }
        // Different preferences never form an ECMP route: no merging.
        assert!(!code.contains("merge paths"), "{n}: merge paths");
        assert!(!code.contains("multihop"), "{n}: multihop");
    }
}

// ------------------------------------------------------------------------------------------
// ironsecd + BIRD on both sites

#[test]
#[ignore = "needs root"]
fn vpn_takes_over_and_gives_back_without_clear_packets() {
    require_root();
    let _s = serial();
    let lab = PlinkLab::start();
    let wan = lab.topo.ns("wan");
    let judge = WireJudge::install_on(&wan, &WAN_PORTS, PROTECTED);

    // Timeline (seconds from the first ping): the private link cut at 10, healed at 25, pings
    // until 40. 100 pings/s; iperf3 TCP at 50 Mbit/s for the whole run (survival, not
    // throughput: two gateways, BIRD and iperf3 share two cores).
    const RUN: u64 = 40;
    const CUT_AT: Duration = Duration::from_secs(10);
    const HEAL_AT: Duration = Duration::from_secs(25);
    let interval = Duration::from_millis(10);
    let count = (RUN * 100) as u16;
    let (lha, lhb) = (lab.lh(A), lab.lh(B));
    let iperf_dir = lab.dir.path.clone();
    let iperf = std::thread::spawn(move || {
        iperf3_json(
            &lha,
            &lhb,
            lan_host(B),
            5201,
            &["-t", &(RUN + 1).to_string(), "-b", "50M", "-i", "1"],
            &iperf_dir,
            "plink",
        )
    });
    // iperf3's connection first, then the pings.
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    let pinger = ping_paced_in_background(
        &lab.lh(A),
        lan_host(B),
        count,
        pattern_payload(b"plink-failover", 56),
        interval,
        Duration::from_secs(1),
    );

    // Which path carries the traffic: packets each gateway sends on the link and into the
    // tunnel in one second of each phase, and `ip route get`.
    let sample = |label: &str| -> [(u64, u64); 2] {
        let t0 = [lab.tx(A), lab.tx(B)];
        std::thread::sleep(Duration::from_secs(1));
        let t1 = [lab.tx(A), lab.tx(B)];
        let d = [
            (t1[A].0 - t0[A].0, t1[A].1 - t0[A].1),
            (t1[B].0 - t0[B].0, t1[B].1 - t0[B].1),
        ];
        for i in [A, B] {
            println!(
                "[{label}] {} sent in 1 s: {} on the private link, {} into {}; route: {}",
                GW[i],
                d[i].0,
                d[i].1,
                VTI[i],
                lab.route_get(i)
            );
        }
        d
    };
    sleep_until(start, Duration::from_secs(5));
    let before = sample("before the cut");

    sleep_until(start, CUT_AT);
    let cut_at = SystemTime::now();
    let cut_mono = Instant::now();
    lab.topo.run("cut", &["link"]);
    let mut bfd_down = Vec::new();
    for i in [A, B] {
        let s = lab.birds[i].wait_bfd_not_up(PL_PEER[i], Duration::from_secs(5));
        let at = s.since.unwrap_or_else(|| panic!("no since in {s:?}"));
        bfd_down.push(rel(at, cut_at));
    }
    let mut moved = Vec::new();
    for i in [A, B] {
        wait_kernel_route(&lab.gw(i), &lan_net(1 - i), VTI[i], Duration::from_secs(5));
        moved.push(cut_mono.elapsed());
    }
    println!(
        "[failover] BFD declared the private link down {:.3} s (site A) and {:.3} s (site B) after the cut (BIRD's clock); the kernel routes into the tunnel seen {} and {} after it (polling)",
        bfd_down[A],
        bfd_down[B],
        secs(moved[A]),
        secs(moved[B])
    );

    sleep_until(start, Duration::from_secs(17));
    let during = sample("link cut");

    sleep_until(start, HEAL_AT);
    let heal_at = SystemTime::now();
    let heal_mono = Instant::now();
    lab.topo.run("heal", &[]);
    let mut back = Vec::new();
    for i in [A, B] {
        wait_kernel_route(&lab.gw(i), &lan_net(1 - i), "pl", Duration::from_secs(10));
        back.push(heal_mono.elapsed());
    }
    for i in [A, B] {
        lab.birds[i].wait_established(S_LINK, Duration::from_secs(5));
        lab.birds[i].wait_bfd_up(PL_PEER[i], Duration::from_secs(10));
    }
    let mut failback = Vec::new();
    for i in [A, B] {
        let bgp = bird_state_change(&lab.birds[i].log_text(), S_LINK, "up", heal_at)
            .map(|t| rel(t, heal_at));
        let bfd = lab.birds[i]
            .bfd_session(PL_PEER[i])
            .and_then(|s| s.since)
            .map(|t| rel(t, heal_at));
        failback.push((bgp, bfd));
    }
    let at = |t: Option<f64>| t.map_or("(not found)".to_string(), |t| format!("{t:.3} s"));
    println!(
        "[failback] after the heal: site A's BGP session over the link up at {}, its BFD session up at {}; site B's at {} and {} (BIRD's clock); kernel routes back on the link seen {} and {} after the heal (polling)",
        at(failback[A].0),
        at(failback[A].1),
        at(failback[B].0),
        at(failback[B].1),
        secs(back[A]),
        secs(back[B])
    );

    sleep_until(start, Duration::from_secs(35));
    let after = sample("after the heal");

    let run = pinger.join().expect("pinger");
    let iperf = iperf.join();
    let (clear, esp) = judge.counts();

    // Losses, by send time from the cut.
    let lost: Vec<f64> = run.lost().iter().map(|r| rel(r.sent_at, cut_at)).collect();
    let heal_rel = rel(heal_at, cut_at);
    let lost_before = lost.iter().filter(|&&t| t < 0.0).count();
    let lost_failover: Vec<f64> = lost
        .iter()
        .copied()
        .filter(|&t| (0.0..heal_rel).contains(&t))
        .collect();
    let lost_after_heal = lost.iter().filter(|&&t| t >= heal_rel).count();
    // The longest run of consecutive lost pings, as time.
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
    let outage = interval * longest as u32;
    println!(
        "[pings] {} sent, {} answered; lost before the cut {lost_before}, during failover {} (sent {:.3}..{:.3} s after the cut), after the heal {lost_after_heal}; longest outage {} ({longest} pings); max RTT {}",
        run.sent(),
        run.received(),
        lost_failover.len(),
        lost_failover.first().copied().unwrap_or(0.0),
        lost_failover.last().copied().unwrap_or(0.0),
        secs(outage),
        secs(run.max_rtt())
    );
    println!("[judge] WAN router ports: {clear} packets to {PROTECTED} in clear, {esp} ESP-in-UDP");

    // iperf3: the client exited 0 (iperf3_json panics otherwise) after the whole run.
    let iperf = match iperf {
        Ok(v) => v,
        Err(_) => panic!(
            "iperf3 did not survive (its panic is above)\n{}",
            lab.logs()
        ),
    };
    let intervals = iperf3_interval_mbits(&iperf);
    let zero = intervals.iter().filter(|&&m| m < 0.01).count();
    let min = intervals.iter().copied().fold(f64::INFINITY, f64::min);
    let retr = iperf3_retransmits(&iperf);
    let recv_bytes = iperf
        .pointer("/end/sum_received/bytes")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    println!(
        "[iperf3] TCP -b 50M for {} s: {} intervals of 1 s, {zero} with nothing sent, slowest {:.1} Mbit/s; {:.1} MB received, {retr} retransmits",
        RUN + 1,
        intervals.len(),
        min,
        recv_bytes as f64 / 1e6
    );

    // Which path, per phase: the link before the cut and after the heal, the tunnel between.
    // BFD and BGP alone are about 10 packets/s per path; 100 pings/s (plus the TCP stream)
    // are far above that.
    for i in [A, B] {
        assert!(
            before[i].0 >= 100 && before[i].1 < 50,
            "{} before the cut: {:?} (link, tunnel)\n{}",
            GW[i],
            before[i],
            lab.logs()
        );
        assert!(
            during[i].1 >= 100 && during[i].0 < 50,
            "{} with the link cut: {:?}\n{}",
            GW[i],
            during[i],
            lab.logs()
        );
        assert!(
            after[i].0 >= 100 && after[i].1 < 50,
            "{} after the heal: {:?}\n{}",
            GW[i],
            after[i],
            lab.logs()
        );
    }
    for (i, d) in bfd_down.iter().enumerate() {
        assert!(
            (0.0..1.0).contains(d),
            "{}: BFD took {d} s\n{}",
            GW[i],
            lab.logs()
        );
    }
    assert_eq!(
        lost_before,
        0,
        "pings lost before the cut: {lost:?}\n{}",
        lab.logs()
    );
    assert!(
        outage < Duration::from_secs(1),
        "failover outage {outage:?} (lost at {lost:?} s from the cut)\n{}",
        lab.logs()
    );
    assert!(
        lost_failover.iter().all(|&t| t < 1.0),
        "pings lost later than 1 s after the cut: {lost_failover:?}"
    );
    assert_eq!(
        lost_after_heal,
        0,
        "failback lost pings (at {lost:?} s from the cut; heal at {heal_rel:.3} s)\n{}",
        lab.logs()
    );
    assert_eq!(
        clear, 0,
        "{clear} packets of {PROTECTED} crossed the WAN in clear"
    );
    assert!(
        esp >= 1000,
        "only {esp} ESP packets on the WAN: did the tunnel carry the traffic?"
    );
    assert!(
        recv_bytes > 0 && intervals.last().is_some_and(|&m| m > 1.0),
        "iperf3: {intervals:?}"
    );
}

/// The control: the judge on the WAN router's ports does count a leak. With ironsecd of site A
/// killed (the VPN is down) and the private link cut, the guard route alone keeps the pings
/// from site A's default route (the judge counts nothing); once `ironsecd cleanup` has
/// removed it, the same pings leave in clear and the judge counts every one.
#[test]
#[ignore = "needs root"]
fn the_judge_bites() {
    require_root();
    let _s = serial();
    let mut lab = PlinkLab::start();
    let wan = lab.topo.ns("wan");
    let judge = WireJudge::install_on(&wan, &WAN_PORTS, PROTECTED);
    let gwa = lab.gw(A);
    let pings = |lab: &PlinkLab| {
        ping(
            &lab.lh(A),
            lan_host(B),
            20,
            pattern_payload(b"plink-judge", 56),
            Duration::from_millis(20),
            Duration::from_millis(100),
        )
    };
    assert_eq!(pings(&lab).received, 20, "{}", lab.logs());

    lab.daemons[A].kill9();
    lab.topo.run("cut", &["link"]);
    lab.birds[A].wait_bfd_not_up(PL_PEER[A], Duration::from_secs(5));
    assert!(
        poll_until(Duration::from_secs(5), || kernel_routes(&gwa, &lan_net(B))
            .is_empty()),
        "site A still routes {}:\n{}",
        lan_net(B),
        route_table(&gwa)
    );
    let guarded = route_table(&gwa);
    assert!(
        guarded.contains("blackhole 10.0.0.0/8 proto 147 metric 4242"),
        "no guard on site A after ironsecd was killed:\n{guarded}"
    );
    let r = pings(&lab);
    let (clear_guarded, _) = judge.counts();
    println!(
        "VPN down, link cut, guard in place: {}/{} pings answered, judge counted {clear_guarded} in clear; route: {}",
        r.received,
        r.sent,
        lab.route_get(A)
    );
    assert_eq!(r.received, 0);
    assert_eq!(clear_guarded, 0, "a leak with the guard in place");

    let o = run_timeout(
        ns_cmd(&gwa, IRONSECD)
            .arg("cleanup")
            .arg("--config")
            .arg(lab.dir.join(&format!("{}.toml", GW[A]))),
        Duration::from_secs(10),
    );
    assert!(
        o.status.success(),
        "ironsecd cleanup: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(
        !route_table(&gwa).contains("blackhole"),
        "{}",
        route_table(&gwa)
    );
    let r = pings(&lab);
    let (clear, _) = judge.counts();
    println!(
        "without the guard: {} pings sent, judge counted {clear} in clear on the WAN; route: {}",
        r.sent,
        lab.route_get(A)
    );
    assert!(
        clear >= u64::from(r.sent),
        "the judge saw {clear} cleartext packets of {} sent without a guard: it cannot see a leak",
        r.sent
    );
}

/// Whether BIRD waits for BFD before a BGP session carries routes (the plan's [verify]): it
/// does not. After a cut, a link that passes BGP (and data) but not BFD re-establishes its BGP
/// session and takes the traffic back while its BFD session stays down, and stays so: BIRD
/// only closes a session when BFD goes from Up to Down. Such a link is unprotected against a
/// second silent failure (only BGP's hold timer, 30 s, would notice): the README's caveat.
#[test]
#[ignore = "needs root"]
fn a_link_passing_bgp_but_not_bfd_takes_the_traffic_back() {
    require_root();
    let _s = serial();
    let lab = PlinkLab::start();
    lab.topo.run("cut", &["link"]);
    for i in [A, B] {
        lab.birds[i].wait_bfd_not_up(PL_PEER[i], Duration::from_secs(5));
        wait_kernel_route(&lab.gw(i), &lan_net(1 - i), VTI[i], Duration::from_secs(5));
    }
    // Partly healed: everything but BFD passes.
    let t0 = Instant::now();
    lab.topo.run("cut", &["bfd"]);
    for i in [A, B] {
        lab.birds[i].wait_established(S_LINK, Duration::from_secs(20));
        wait_kernel_route(&lab.gw(i), &lan_net(1 - i), "pl", Duration::from_secs(5));
    }
    let took = t0.elapsed();
    // Some seconds later: still on the link, BFD still not up.
    std::thread::sleep(Duration::from_secs(3));
    let got = ping(
        &lab.lh(A),
        lan_host(B),
        10,
        pattern_payload(b"plink-nobfd", 56),
        Duration::from_millis(20),
        Duration::from_millis(200),
    );
    for i in [A, B] {
        let s = lab.birds[i].bfd_session(PL_PEER[i]);
        println!(
            "{}: BGP over the link {}, route: {}; BFD with {}: {:?}",
            GW[i],
            if lab.birds[i].protocol(S_LINK).established() {
                "established"
            } else {
                "not established"
            },
            lab.route_get(i),
            PL_PEER[i],
            s.as_ref().map(|s| s.state.as_str())
        );
        assert!(lab.birds[i].protocol(S_LINK).established());
        assert!(has_bird_route(&lab.gw(i), &lan_net(1 - i), "pl"));
        assert!(
            s.as_ref().is_some_and(|s| s.state != "Up"),
            "BFD came up through a filter that drops it: {s:?}"
        );
    }
    println!(
        "a link passing BGP but not BFD carried the traffic again {} after the partial heal ({}/10 pings over it)",
        secs(took),
        got.received
    );
    assert!(got.received >= 9, "{}", lab.logs());
}

// ------------------------------------------------------------------------------------------
// The script, end to end

#[test]
#[ignore = "needs root"]
fn plink_lab_script_up_status_cut_heal_down() {
    require_root();
    let _s = serial();
    let lab = ScriptLab::up("plink-lab.sh", "plink", &[], &GW);
    let status = || lab.status();
    let st = status();
    println!("{st}");
    assert_eq!(st.matches(" up Established").count(), 4, "{st}");
    assert!(st.contains("not cut"), "{st}");
    let on_link = |st: &str| st.matches("dev pl src").count() == 2;
    assert!(
        poll_until(Duration::from_secs(10), || on_link(&status())),
        "{}",
        status()
    );

    lab.topo.run("cut", &["link"]);
    assert!(
        poll_until(Duration::from_secs(5), || {
            let st = status();
            st.matches(" up Established").count() == 2
                && st.contains("dev vti-b src")
                && st.contains("dev vti-a src")
        }),
        "{}",
        status()
    );
    let got = ping(
        &lab.topo.ns("lha"),
        lan_host(B),
        3,
        pattern_payload(b"script", 32),
        Duration::from_millis(100),
        Duration::from_secs(1),
    );
    assert!(got.received >= 2, "lha -> 10.2.0.2 over the tunnel");
    lab.topo.run("heal", &[]);
    assert!(
        poll_until(Duration::from_secs(30), || {
            let st = status();
            st.matches(" up Established").count() == 4 && on_link(&st)
        }),
        "{}",
        status()
    );

    lab.down_and_check();
}
