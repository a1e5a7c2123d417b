//! Route-based interop (issue 22): ironsec with a route-based connection against strongSwan 5.9
//! (Debian's charon with kernel-libipsec) with 0.0.0.0/0 selectors, BIRD 2 on both sides doing
//! eBGP through the tunnel, in network namespaces (netns-scripts/topology.sh):
//!
//! ```text
//!   lanA 10.1.0.2 -- gwA 192.0.2.1 ============ wan ============ 192.0.2.2 gwB -- lanB 10.2.0.2
//!                    ironsecd + BIRD (AS 65515)     strongSwan + BIRD (AS 65050)
//!                    vti-sw 169.254.21.1/30 <== 0.0.0.0/0 === 0.0.0.0/0 ==> ipsec0 169.254.21.2/30
//! ```
//!
//! strongSwan runs conf/strongswan/swanctl-route-based.conf with
//! conf/strongswan/strongswan-route-based.conf (its routing rule only matches a mark nothing
//! sets, so libipsec's `default dev ipsec0 table 220` never steers a packet), ipsec0 gets
//! 169.254.21.2/30 once charon runs, and BIRD runs conf/bird/strongswan-peer.conf as is. ironsecd
//! runs conf/strongswan/ironsec-route-based.toml (interface `vti-sw` with 169.254.21.1/30, no
//! `routes`), its BIRD the config of [`ironsec_bird_conf`]. Neither side is told the other's LAN:
//! each learns it over BGP and BIRD installs it via the tunnel interface.
//!
//! Each direction of initiation is one test; each checks: both BGP sessions Established, each
//! LAN prefix learned over BGP (no route to the remote LAN before BIRD, `proto bird` via the
//! tunnel interface after), the peers' WAN addresses still routed over the WAN, pings and a
//! bounded iperf3 TCP transfer LAN host to LAN host both ways, the CHILD_SA counters of both
//! sides (`swanctl --list-sas`, `ironsecctl status --json`) and of `vti-sw` (`ip -s link`)
//! rising by at least what iperf3's receiver counted that way, and a capture on the WAN holding nothing but UDP to port
//! 4500/500 between the gateways (no inner packet in clear).
//!
//! Run: `cargo test -p ironsecd --test interop_route_based -- --include-ignored --test-threads=1 --nocapture`

mod common;

use std::path::Path;

use std::fs;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::strongswan::*;
use common::*;
use serde_json::Value;

const LAN_A_HOST: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const LAN_B_HOST: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);
const GW_A_WAN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const GW_B_WAN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const PING_PATTERN: &[u8] = b"\x5a\x17\xc0\xde-IRONSEC-ROUTE-BASED-PING!\xa5";

/// ironsec's tunnel interface and the /30 of the BGP session (conf/strongswan/ironsec-route-based.toml).
const VTI: &str = "vti-sw";
const B_TUN_ADDR: &str = "169.254.21.2/30";

/// strongSwan's names in conf/strongswan/swanctl-route-based.conf.
const SW_CONN: &str = "gw-a";
/// The BGP protocols' names: in conf/bird/strongswan-peer.conf and in [`ironsec_bird_conf`].
const BGP_B: &str = "ironsec";
const BGP_A: &str = "strongswan";

/// The bounded TCP transfer each way.
const IPERF_BYTES: u64 = 8 << 20;
const PINGS: u16 = 20;

/// Tunnel up on both sides; BGP Established on both (with the timers of the BIRD configs, a
/// failed connect is retried after 2 s).
const UP_TIMEOUT: Duration = Duration::from_secs(20);
const BGP_TIMEOUT: Duration = Duration::from_secs(30);

// ------------------------------------------------------------------------------------------
/// Checks `conf` with `bird -p`, then starts BIRD in `ns` (tests/common/bird.rs); its
/// stdout and stderr (where these configs log) are in `proc_.log_text()`.
fn start_bird(name: &str, ns: &str, conf: &Path, dir: &Path) -> Bird {
    bird_parse_ok(conf);
    Bird::start(name, ns, conf, &dir.join(format!("bird-{name}.log")), dir)
}

/// BIRD on ironsec's side (gwA): the mirror of conf/bird/strongswan-peer.conf, on `vti-sw`.
fn ironsec_bird_conf() -> String {
    r#"# BIRD on gwA, beside ironsecd (tests/interop_route_based.rs): eBGP over the tunnel interface.
log stderr all;
router id 192.0.2.1;
protocol device {
}
protocol direct lan {
    ipv4;
    interface "lan";
}
protocol kernel {
    ipv4 {
        import none;
        export where source = RTS_BGP;
    };
}
protocol bgp strongswan {
    local 169.254.21.1 as 65515;
    neighbor 169.254.21.2 as 65050;
    hold time 9;
    keepalive time 3;
    connect delay time 1;
    connect retry time 2;
    error wait time 1, 10;
    ipv4 {
        import where net ~ [ 10.0.0.0/8{16,24} ];
        export where proto = "lan";
    };
}
"#
    .to_string()
}

// ------------------------------------------------------------------------------------------
// The lab

/// The shared rewrite ([`common::rewrite_swanctl_template`]) for this file's template.
fn rewrite_swanctl(text: &str, replacements: &[(&str, String)]) -> String {
    common::rewrite_swanctl_template(
        text,
        "conf/strongswan/swanctl-route-based.conf",
        replacements,
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Initiator {
    Ironsec,
    StrongSwan,
}

/// Field order matters: captures and BIRDs stop first, then ironsecd and charon, then the
/// namespaces go; the directory (logs, kept on failure) last.
struct RbLab {
    bird_a: Option<Bird>,
    bird_b: Option<Bird>,
    ironsec: Option<Daemon>,
    sw: Option<StrongSwan>,
    topo: Topology,
    psk: String,
    dir: TempDir,
}

impl RbLab {
    fn new() -> RbLab {
        require_root();
        let prefix = unique_prefix();
        let dir = TempDir::new(&prefix);
        let topo = Topology::up(&prefix);
        RbLab {
            bird_a: None,
            bird_b: None,
            ironsec: None,
            sw: None,
            topo,
            psk: format!("0x{}", hex(&random_bytes(32))),
            dir,
        }
    }

    /// charon in gwB with the route-based files; `start_action` of its CHILD_SA. Adds the BGP
    /// address to ipsec0 as soon as charon runs (it creates ipsec0 when it starts).
    fn start_strongswan(&mut self, start_action: &str) {
        let text = rewrite_swanctl(
            &example_config("strongswan/swanctl-route-based.conf"),
            &[
                ("secret", self.psk.clone()),
                ("start_action", start_action.to_string()),
            ],
        );
        let template = workspace_root().join("conf/strongswan/strongswan-route-based.conf");
        let opts = SwOptions {
            template: Some(&template),
            ..SwOptions::default()
        };
        self.sw = Some(StrongSwan::start_with(
            &self.topo.gw_b,
            &self.dir.join("strongswan"),
            &text,
            opts,
        ));
        run_ok(
            ns_cmd(&self.topo.gw_b, "ip").args(["addr", "add", B_TUN_ADDR, "dev", "ipsec0"]),
            Duration::from_secs(5),
        );
    }

    /// ironsecd in gwA from conf/strongswan/ironsec-route-based.toml.
    fn start_ironsec(&mut self, start_action: &str) {
        let psk = self.dir.join("sw.psk");
        write_secret(&psk, format!("{}\n", self.psk));
        let sock = self.dir.join("a.sock");
        let text = rewrite_toml_lines(
            &example_config("strongswan/ironsec-route-based.toml"),
            &[
                ("control_socket", toml_str(sock.to_str().unwrap())),
                ("psk_file", toml_str(psk.to_str().unwrap())),
                ("start_action", toml_str(start_action)),
            ],
        );
        assert!(
            !text.lines().any(|l| l.trim_start().starts_with("routes")),
            "ironsec must not be told the remote LAN: {text}"
        );
        let cfg = self.dir.join("ironsec-route-based.toml");
        fs::write(&cfg, format!("{text}retransmit_timeout = 0.5\n")).unwrap();
        self.ironsec = Some(Daemon::start(
            "gwA",
            &self.topo.gw_a,
            &cfg,
            &sock,
            self.dir.join("ironsecd-a.log"),
        ));
    }

    fn start_bird_b(&mut self) {
        let conf = workspace_root().join("conf/bird/strongswan-peer.conf");
        self.bird_b = Some(start_bird("b", &self.topo.gw_b, &conf, &self.dir.path));
    }

    fn start_bird_a(&mut self) {
        let conf = self.dir.join("bird-a.conf");
        fs::write(&conf, ironsec_bird_conf()).unwrap();
        self.bird_a = Some(start_bird("a", &self.topo.gw_a, &conf, &self.dir.path));
    }

    fn a(&self) -> &Daemon {
        self.ironsec.as_ref().expect("ironsecd runs")
    }

    fn sw(&self) -> &StrongSwan {
        self.sw.as_ref().expect("strongSwan runs")
    }

    fn logs(&self) -> String {
        let bird = |b: &Option<Bird>| b.as_ref().map(|b| b.proc_.log_text()).unwrap_or_default();
        format!(
            "----- ironsecd (gwA) log -----\n{}\n----- strongSwan (gwB) charon.log -----\n{}\n\
             ----- BIRD gwA -----\n{}\n----- BIRD gwB -----\n{}\n----- gwA routes -----\n{}\n\
             ----- gwB routes (all tables) -----\n{}",
            self.ironsec
                .as_ref()
                .map(Daemon::log_text)
                .unwrap_or_default(),
            self.sw
                .as_ref()
                .map(StrongSwan::log_text)
                .unwrap_or_default(),
            bird(&self.bird_a),
            bird(&self.bird_b),
            ip_text(&self.topo.gw_a, &["route", "show", "table", "all"]),
            ip_text(&self.topo.gw_b, &["route", "show", "table", "all"]),
        )
    }

    /// Waits until ironsec's tunnel is up and strongSwan has the matching ESTABLISHED IKE SA
    /// with the INSTALLED CHILD_SA ironsec sends on; returns both views.
    fn wait_up(&self) -> (Value, SwIke) {
        let (_, st, ike) = wait_both_up(&self.a().socket, self.sw(), SW_CONN, UP_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.logs()));
        (st, ike)
    }

    /// Waits until both BGP sessions are Established.
    fn wait_bgp(&self) {
        let (a, b) = (self.bird_a.as_ref().unwrap(), self.bird_b.as_ref().unwrap());
        let ok = poll_until(BGP_TIMEOUT, || {
            a.protocol(BGP_A).established() && b.protocol(BGP_B).established()
        });
        assert!(
            ok,
            "BGP not Established on both sides within {BGP_TIMEOUT:?}: gwA {:?}, gwB {:?}\n{}",
            a.protocol(BGP_A).info,
            b.protocol(BGP_B).info,
            self.logs()
        );
    }
}

impl Drop for RbLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "[test] route-based lab {} failed; files kept in {}",
                self.topo.prefix,
                self.dir.path.display()
            );
        }
    }
}

// ------------------------------------------------------------------------------------------
// Views and routes

/// The CHILD_SA of strongSwan's that receives what ironsec sends, from a fresh look.
fn sw_child(lab: &RbLab) -> SwChild {
    let st = lab.a().status();
    let ike = matching_ike(&st, &lab.sw().sas(), SW_CONN)
        .unwrap_or_else(|| panic!("strongSwan has no IKE SA matching ironsec's: {st:#}"));
    let out = bare(
        st.pointer(&format!("{T0}/outbound/spi"))
            .unwrap()
            .as_str()
            .unwrap(),
    );
    ike.children.into_iter().find(|c| c.spi_in == out).unwrap()
}

/// `ip ARGS...` in `ns`: stdout and stderr, whatever the exit status.
fn ip_text(ns: &str, args: &[&str]) -> String {
    let out = run_timeout(ns_cmd(ns, "ip").args(args), Duration::from_secs(5));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `ip route get DST` in `ns`, first line (or the error).
fn route_get(ns: &str, dst: Ipv4Addr) -> String {
    ip_text(ns, &["route", "get", &dst.to_string()])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The kernel route for `prefix` in `ns`'s main table, as `ip route show` prints it.
fn main_route(ns: &str, prefix: &str) -> String {
    ip_text(ns, &["route", "show", "table", "main", prefix])
        .trim()
        .to_string()
}

/// (rx bytes, rx packets, tx bytes, tx packets) of interface `dev` in `ns` (`ip -s link`).
fn link_stats(ns: &str, dev: &str) -> [u64; 4] {
    let text = ip_text(ns, &["-j", "-s", "link", "show", "dev", dev]);
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("ip -j ({e}): {text}"));
    let s = &v[0]["stats64"];
    let n = |p: &str| {
        s.pointer(p)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("no {p} in {text}"))
    };
    [
        n("/rx/bytes"),
        n("/rx/packets"),
        n("/tx/bytes"),
        n("/tx/packets"),
    ]
}

/// Before BGP: neither gateway has a route to the other's LAN (ironsec installs none for a
/// route-based connection; strongSwan's `default dev ipsec0 table 220` is never looked up),
/// though the tunnel is up.
fn check_no_route_before_bgp(lab: &RbLab) {
    let a = route_get(&lab.topo.gw_a, LAN_B_HOST);
    let b = route_get(&lab.topo.gw_b, LAN_A_HOST);
    println!("  before BGP: gwA route get {LAN_B_HOST}: {a}\n              gwB route get {LAN_A_HOST}: {b}");
    assert!(
        a.contains("unreachable"),
        "gwA routes {LAN_B_HOST} before BGP taught it: {a}\n{}",
        lab.logs()
    );
    assert!(
        b.contains("unreachable"),
        "gwB routes {LAN_A_HOST} before BGP taught it (libipsec's table 220 consulted?): {b}\n{}",
        lab.logs()
    );
    // What libipsec installed, and why it does not matter: its rule needs a mark.
    let t220 = ip_text(&lab.topo.gw_b, &["route", "show", "table", "220"]);
    let rules = ip_text(&lab.topo.gw_b, &["rule", "show"]);
    println!("  gwB table 220 (libipsec's, inert):\n{t220}  gwB rules:\n{rules}");
    assert!(
        t220.contains("default dev ipsec0"),
        "libipsec's route for 0.0.0.0/0 not in table 220 (strongSwan changed?):\n{t220}"
    );
    assert!(
        rules.contains("fwmark 0x220 lookup 220") && !rules.contains("from all lookup 220"),
        "gwB's rule for table 220 must need fwmark 0x220:\n{rules}"
    );
}

/// After BGP: each side's kernel has the other's LAN via the tunnel interface, put there by
/// BIRD (proto bird), and the peer's WAN address still goes over the WAN.
fn check_learned_routes(lab: &RbLab) {
    let mut last = (String::new(), String::new());
    let ok = poll_until(Duration::from_secs(10), || {
        last = (
            main_route(&lab.topo.gw_a, "10.2.0.0/24"),
            main_route(&lab.topo.gw_b, "10.1.0.0/24"),
        );
        last.0
            .contains(&format!("via 169.254.21.2 dev {VTI} proto bird"))
            && last.1.contains("via 169.254.21.1 dev ipsec0 proto bird")
    });
    assert!(
        ok,
        "LAN prefixes not learned over BGP into the tunnel interfaces: gwA {:?}, gwB {:?}\n{}",
        last.0,
        last.1,
        lab.logs()
    );
    println!("  learned: gwA {}\n           gwB {}", last.0, last.1);
    for (ns, dst, want) in [
        (&lab.topo.gw_a, LAN_B_HOST, format!("dev {VTI}")),
        (&lab.topo.gw_b, LAN_A_HOST, "dev ipsec0".to_string()),
        (&lab.topo.gw_a, GW_B_WAN, "dev wan".to_string()),
        (&lab.topo.gw_b, GW_A_WAN, "dev wan".to_string()),
    ] {
        let r = route_get(ns, dst);
        assert!(
            r.contains(&want) && !r.contains("table 220"),
            "{ns}: route get {dst} = {r} (want {want}, main table)"
        );
    }
    let a = lab.bird_a.as_ref().unwrap();
    let b = lab.bird_b.as_ref().unwrap();
    let ra = a
        .birdc(&["show", "route", "protocol", BGP_A])
        .unwrap_or_else(|e| e);
    let rb = b
        .birdc(&["show", "route", "protocol", BGP_B])
        .unwrap_or_else(|e| e);
    assert!(ra.contains("10.2.0.0/24"), "gwA BIRD: {ra}");
    assert!(rb.contains("10.1.0.0/24"), "gwB BIRD: {rb}");
}

// ------------------------------------------------------------------------------------------
// Traffic and counters

/// Counters of one moment: strongSwan's CHILD_SA, ironsec's SAs, `vti-sw`.
#[derive(Debug, Clone)]
struct Counters {
    sw_in: u64,
    sw_out: u64,
    a_out: u64,
    a_in: u64,
    /// rx bytes, rx packets, tx bytes, tx packets of vti-sw.
    vti: [u64; 4],
}

fn counters(lab: &RbLab) -> Counters {
    let c = sw_child(lab);
    let st = lab.a().status();
    Counters {
        sw_in: c.bytes_in,
        sw_out: c.bytes_out,
        a_out: num(&st, &format!("{T0}/outbound/bytes")),
        a_in: num(&st, &format!("{T0}/inbound/bytes")),
        vti: link_stats(&lab.topo.gw_a, VTI),
    }
}

fn ping_ok(lab: &RbLab, ns: &str, dst: Ipv4Addr) {
    let r = ping_paced(
        ns,
        dst,
        PINGS,
        pattern_payload(PING_PATTERN, 56),
        Duration::from_millis(20),
        Duration::from_secs(2),
    );
    assert_eq!(
        r.received(),
        r.sent(),
        "ping {ns} -> {dst}: {} of {} answered\n{}",
        r.received(),
        r.sent(),
        lab.logs()
    );
}

/// What the traffic moved: iperf3's receivers' byte counts and rates each way.
struct Moved {
    /// Bytes the receiver counted, A->B and B->A. iperf3 stops counting at the sender's
    /// end-of-test message (esnet/iperf#382), so this may fall short of IPERF_BYTES: it is
    /// what surely crossed the tunnel.
    received: [u64; 2],
    mbit_s: [f64; 2],
}

/// Pings and a bounded iperf3 TCP run LAN host to LAN host each way.
fn traffic_both_ways(lab: &RbLab) -> Moved {
    ping_ok(lab, &lab.topo.lan_a, LAN_B_HOST);
    ping_ok(lab, &lab.topo.lan_b, LAN_A_HOST);
    let mut m = Moved {
        received: [0; 2],
        mbit_s: [0.0; 2],
    };
    for (i, (reverse, tag)) in [(false, "lanA-to-lanB"), (true, "lanB-to-lanA")]
        .into_iter()
        .enumerate()
    {
        let r = iperf3_tcp(
            &lab.topo.lan_a,
            &lab.topo.lan_b,
            LAN_B_HOST,
            IPERF_BYTES,
            reverse,
            &lab.dir.path,
            tag,
        );
        println!(
            "  iperf3 {tag}: {} bytes sent, {} received, in {:.2} s, {:.0} Mbit/s",
            r.sent, r.received, r.secs, r.mbit_s
        );
        assert!(r.sent >= IPERF_BYTES, "iperf3 {tag}: sent only {}", r.sent);
        assert!(
            r.received >= IPERF_BYTES / 2,
            "iperf3 {tag}: received only {} of {}",
            r.received,
            r.sent
        );
        m.received[i] = r.received;
        m.mbit_s[i] = r.mbit_s;
    }
    m
}

/// Every counter rose by at least what iperf3's receiver got in its direction.
fn check_counters(lab: &RbLab, before: &Counters, after: &Counters, moved: &Moved) {
    let d = |a: u64, b: u64| a.saturating_sub(b);
    let vti = [0, 1, 2, 3].map(|i| d(after.vti[i], before.vti[i]));
    println!(
        "  during the traffic: strongSwan CHILD_SA +{} bytes in, +{} out; ironsec outbound \
         +{} bytes, inbound +{}; {VTI} rx +{} bytes / {} packets, tx +{} bytes / {} packets",
        d(after.sw_in, before.sw_in),
        d(after.sw_out, before.sw_out),
        d(after.a_out, before.a_out),
        d(after.a_in, before.a_in),
        vti[0],
        vti[1],
        vti[2],
        vti[3],
    );
    let [ab, ba] = moved.received;
    for (what, delta, floor) in [
        ("strongSwan bytes in", d(after.sw_in, before.sw_in), ab),
        ("strongSwan bytes out", d(after.sw_out, before.sw_out), ba),
        ("ironsec outbound bytes", d(after.a_out, before.a_out), ab),
        ("ironsec inbound bytes", d(after.a_in, before.a_in), ba),
        // The kernel's view of the TUN: tx = what it routed into vti-sw (ironsec's outbound),
        // rx = what ironsec wrote into it from the CHILD_SA (its inbound).
        ("vti-sw tx bytes", vti[2], ab),
        ("vti-sw rx bytes", vti[0], ba),
    ] {
        assert!(
            delta >= floor,
            "{what} rose by {delta} only (< {floor}, what iperf3 received that way): \
             before {before:?}, after {after:?}\n{}",
            lab.logs()
        );
    }
}

/// The WAN capture holds only UDP between the gateways' WAN addresses to or from port 4500
/// (ESP in UDP, IKE) or 500 (IKE_SA_INIT): no inner packet (TCP, ICMP, BGP, the ping pattern)
/// in clear, and ESP both ways.
fn check_wan_capture(pcap_bytes: &[u8]) {
    let pcap = parse_pcap(pcap_bytes);
    assert_eq!(pcap.linktype, 1, "expected an Ethernet capture");
    let wan = [GW_A_WAN, GW_B_WAN];
    let mut udp = 0usize;
    for (i, r) in pcap.records.iter().enumerate() {
        match classify_ethernet(&r.data) {
            Frame::Udp(d) => {
                let ports = [d.src.port(), d.dst.port()];
                assert!(
                    wan.contains(d.src.ip())
                        && wan.contains(d.dst.ip())
                        && (ports.contains(&4500) || ports.contains(&500)),
                    "frame {i} on the WAN is not IKE/ESP between the gateways: {} -> {}",
                    d.src,
                    d.dst
                );
                assert!(
                    !contains(&d.payload, PING_PATTERN),
                    "frame {i}: the ping payload in clear on the WAN"
                );
                udp += 1;
            }
            Frame::OtherIpv4(proto, src, dst) => {
                panic!("frame {i} on the WAN: IPv4 protocol {proto} {src} -> {dst} in clear")
            }
            // ARP, IPv6 neighbour discovery: the veth's own chatter.
            Frame::NonIpv4(_) => {}
        }
    }
    let ab = esp_datagrams(&pcap, GW_A_WAN, GW_B_WAN).len();
    let ba = esp_datagrams(&pcap, GW_B_WAN, GW_A_WAN).len();
    println!(
        "  WAN capture: {} frames, {udp} UDP (IKE/ESP), ESP A->B {ab}, B->A {ba}",
        pcap.records.len()
    );
    let floor = usize::from(PINGS) * 2;
    assert!(
        ab >= floor && ba >= floor,
        "too few ESP datagrams on the WAN: A->B {ab}, B->A {ba}"
    );
}

// ------------------------------------------------------------------------------------------
// The scenario

fn route_based(who: Initiator) {
    let mut lab = RbLab::new();
    let t0 = Instant::now();
    // When the initiator was started (ironsecd, or charon with start_action = start): from
    // there to both sides up is the start-up of that daemon plus the exchanges.
    let t_init = match who {
        Initiator::Ironsec => {
            // The responder first: strongSwan and its BIRD, then ironsecd, which initiates.
            lab.start_strongswan("none");
            lab.start_bird_b();
            let t = Instant::now();
            lab.start_ironsec("start");
            t
        }
        Initiator::StrongSwan => {
            // ironsecd waits; charon initiates when its config is loaded (start_action = start).
            lab.start_ironsec("none");
            let st = lab.a().status();
            assert!(ike_of(&st).is_none(), "ironsec must not initiate: {st:#}");
            let t = Instant::now();
            lab.start_strongswan("start");
            lab.start_bird_b();
            t
        }
    };
    let (st, ike) = lab.wait_up();
    let t_up = t_init.elapsed();
    assert_eq!(
        ike_of(&st).unwrap()["initiator"],
        who == Initiator::Ironsec,
        "ironsec's role: {st:#}"
    );
    assert_eq!(
        ike.initiator,
        who == Initiator::StrongSwan,
        "strongSwan's role: {ike:#?}"
    );
    let c = ike
        .children
        .iter()
        .find(|c| c.state == "INSTALLED")
        .unwrap();
    assert_eq!(c.local_ts, ["0.0.0.0/0"], "strongSwan CHILD_SA: {c:#?}");
    assert_eq!(c.remote_ts, ["0.0.0.0/0"], "strongSwan CHILD_SA: {c:#?}");
    // ironsec's route-based default is both families; strongSwan, configured for IPv4 only,
    // narrows to it (initiator) or proposes only it (responder), and ironsec's CHILD_SA is the
    // narrowed pair, not a refusal.
    for side in ["local_ts", "remote_ts"] {
        assert_eq!(
            st["connections"][0][side],
            serde_json::json!(["0.0.0.0/0", "::/0"]),
            "ironsec's configured {side}: {st:#}"
        );
        assert_eq!(
            st.pointer(&format!("{T0}/child/{side}")),
            Some(&serde_json::json!(["0.0.0.0/0"])),
            "ironsec's CHILD_SA {side}: {st:#}"
        );
    }
    println!(
        "{who:?} initiates: tunnel up on both sides {t_up:.2?} after the initiator's start began \
         (ironsecd: its start-up; charon: strongswan.sh start, ipsec0's address, gwB's BIRD)"
    );
    let link = ip_text(&lab.topo.gw_a, &["addr", "show", "dev", VTI]);
    assert!(
        link.contains("inet 169.254.21.1/30"),
        "ironsec's interface {VTI} lacks its address:\n{link}"
    );

    check_no_route_before_bgp(&lab);

    let t_bird = Instant::now();
    lab.start_bird_a();
    lab.wait_bgp();
    let bgp = t_bird.elapsed();
    println!(
        "  BGP Established on both sides {bgp:.2?} after gwA's BIRD started ({:.2?} after the \
         first daemon started)",
        t0.elapsed()
    );
    check_learned_routes(&lab);

    let cap = Capture::start(
        &lab.topo.gw_a,
        "wan",
        &lab.dir.join("wan.pcap"),
        &[],
        lab.dir.join("tcpdump-wan.log"),
    );
    let before = counters(&lab);
    let moved = traffic_both_ways(&lab);
    let after = counters(&lab);
    let pcap = cap.stop();
    check_counters(&lab, &before, &after, &moved);
    check_wan_capture(&pcap);
    println!(
        "  iperf3 through ironsec <-> strongSwan (route-based): A->B {:.0} Mbit/s, B->A {:.0} Mbit/s",
        moved.mbit_s[0], moved.mbit_s[1]
    );

    // Still Established after the traffic (no flap under load).
    let (a, b) = (lab.bird_a.as_ref().unwrap(), lab.bird_b.as_ref().unwrap());
    assert!(
        a.protocol(BGP_A).established() && b.protocol(BGP_B).established(),
        "BGP dropped during the traffic: gwA {:?}, gwB {:?}\n{}",
        a.protocol(BGP_A).info,
        b.protocol(BGP_B).info,
        lab.logs()
    );
}

#[test]
#[ignore = "needs root"]
fn route_based_ironsec_initiates() {
    let _s = serial();
    require_root();
    route_based(Initiator::Ironsec);
}

#[test]
#[ignore = "needs root"]
fn route_based_strongswan_initiates() {
    let _s = serial();
    require_root();
    route_based(Initiator::StrongSwan);
}
