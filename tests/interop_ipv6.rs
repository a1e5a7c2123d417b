//! IPv6 interop with strongSwan 5.9.8 (Debian's charon with kernel-libipsec), issue 26: the
//! outer and inner address families in every mix, in network namespaces
//! (netns-scripts/topology.sh plus the IPv6 addresses of docs/plan-issue-26-ipv6.md section 4):
//!
//!   lanA 10.1.0.2   -- gwA: ironsecd 192.0.2.1 ===wan=== 192.0.2.2 strongSwan: gwB -- lanB 10.2.0.2
//!        2001:db8:1::2        2001:db8:f::1            2001:db8:f::2                2001:db8:2::2
//!
//! The lab is tests/interop_strongswan.rs's ([`SwLab`]): ironsecd from
//! conf/strongswan/ironsec-gw-a.toml and strongSwan from conf/strongswan/swanctl.conf, with a
//! fresh PSK, the tunnel's addresses ([`Setup::endpoints`]) and the CHILD_SA's selectors
//! ([`Setup::selectors`]) rewritten per case. The IPv6-WAN cases remove the WAN's IPv4
//! addresses, so the tunnel cannot be anything but IPv6. Cases:
//!
//! 1. v6-in-v6 (IPv6 WAN, IPv6 selectors), each side initiating; the first one captured on the
//!    WAN and decrypted by tshark with the keys strongSwan logged;
//! 2. v4-in-v6 (IPv6 WAN, IPv4 selectors), each side initiating;
//! 3. v6-in-v4 (IPv4 WAN, IPv6 selectors), each side initiating;
//! 4. dual-stack selectors in one CHILD_SA (10.x.0.0/24 + 2001:db8:x::/64 each side) over the
//!    IPv6 WAN, each side initiating, the first one decrypted by tshark.
//!
//! Every case checks both sides' views (SPIs crossed, algorithms, selectors, strongSwan's idea
//! of the peer's address and port, each side's NAT detection over the case's family), gwB's route into libipsec's TUN through table 220 for each
//! inner family (libipsec sends nothing else into the tunnel), pings both ways, an iperf3 TCP
//! transfer each way per inner family with strongSwan's CHILD_SA byte counters moving (by at
//! least the transfer for what strongSwan sends), ironsec's drop counters at zero, and a wire judge (nftables ingress
//! counters on both gateways' WAN) that saw ESP-in-UDP and not one packet to a protected
//! prefix in clear.
//!
//! These tests need root and the strongSwan packages of tests/install-deps.sh: they are
//! `#[ignore = "needs root"]` (tests/run.sh runs them) and FAIL (never skip) without them.
//!
//! Run: `cargo test -p ironsecd --test interop_ipv6 -- --include-ignored --test-threads=1 --nocapture`

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::strongswan::*;
use common::*;

const IKE: &str = "aes128gcm16-prfsha256-x25519";
const ESP: &str = "aes128gcm16";

const WAN_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const WAN_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const LAN_A_HOST: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const LAN_B_HOST: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);
const LAN_A4: &str = "10.1.0.0/24";
const LAN_B4: &str = "10.2.0.0/24";
const LAN_A6: &str = "2001:db8:1::/64";
const LAN_B6: &str = "2001:db8:2::/64";

/// Pings per direction and inner family.
const PINGS: u32 = 5;

/// The inner families a CHILD_SA carries.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Inner {
    V4,
    V6,
    Dual,
}

impl Inner {
    /// (gwA's selectors, gwB's selectors).
    fn selectors(self) -> (Vec<&'static str>, Vec<&'static str>) {
        match self {
            Inner::V4 => (vec![LAN_A4], vec![LAN_B4]),
            Inner::V6 => (vec![LAN_A6], vec![LAN_B6]),
            Inner::Dual => (vec![LAN_A4, LAN_A6], vec![LAN_B4, LAN_B6]),
        }
    }

    /// (lanA host, lanB host) of each family carried.
    fn hosts(self) -> Vec<(IpAddr, IpAddr)> {
        let v4 = (LAN_A_HOST.into(), LAN_B_HOST.into());
        let v6 = (LAN6_A_HOST.into(), LAN6_B_HOST.into());
        match self {
            Inner::V4 => vec![v4],
            Inner::V6 => vec![v6],
            Inner::Dual => vec![v4, v6],
        }
    }
}

/// One case: the WAN's family, the inner families, who initiates, whether tshark judges the
/// captured ESP, and how many bytes each iperf3 run sends.
#[derive(Clone, Copy, Debug)]
struct Case {
    name: &'static str,
    wan6: bool,
    inner: Inner,
    ironsec_first: bool,
    tshark: bool,
    tcp_bytes: u64,
}

impl Case {
    fn wan(&self) -> (IpAddr, IpAddr) {
        if self.wan6 {
            (WAN6_A.into(), WAN6_B.into())
        } else {
            (WAN_A.into(), WAN_B.into())
        }
    }

    fn setup(&self) -> Setup {
        let mut s = if self.ironsec_first {
            Setup::ironsec_initiates()
        } else {
            Setup::strongswan_initiates()
        };
        let (a, b) = self.wan();
        let (ts_a, ts_b) = self.inner.selectors();
        s = s.endpoints(a, b).selectors(&ts_a, &ts_b);
        if self.tshark {
            s.sw_settings = Some(sw_chd_keys);
        }
        s
    }
}

/// The wire judges of one lab: ingress counters on both gateways' WAN for packets to the
/// other side's protected prefixes (both families) and for ESP-in-UDP. Installed once per lab
/// (the counts only grow), checked after every case.
struct Judges {
    at_b: WireJudge,
    at_a: WireJudge,
}

impl Judges {
    fn install(lab: &SwLab) -> Judges {
        Judges {
            at_b: WireJudge::install_prefixes(&lab.topo.gw_b, &["wan"], &[LAN_B4, LAN_B6]),
            at_a: WireJudge::install_prefixes(&lab.topo.gw_a, &["wan"], &[LAN_A4, LAN_A6]),
        }
    }

    /// Nothing in clear so far on either side; returns the ESP-in-UDP packets each gateway
    /// received (gwB from ironsec, gwA from strongSwan).
    fn check(&self, label: &str) -> (u64, u64) {
        let (clear_b, esp_b) = self.at_b.counts();
        let (clear_a, esp_a) = self.at_a.counts();
        assert_eq!(
            (clear_b, clear_a),
            (0, 0),
            "{label}: packets to a protected prefix in clear on the WAN (into gwB, into gwA)"
        );
        (esp_b, esp_a)
    }
}

/// What one case measured.
#[derive(Debug)]
struct Figures {
    charon_start: Duration,
    up: Duration,
    exchange: String,
    rates: Vec<String>,
}

/// The traffic of one inner family: pings both ways, gwB's route, then an iperf3 TCP run each
/// way with strongSwan's CHILD_SA counting at least the bytes sent each way.
fn traffic(lab: &SwLab, case: &Case, a: IpAddr, b: IpAddr, fig: &mut Figures) {
    let fam = if a.is_ipv6() { "IPv6" } else { "IPv4" };
    check_gw_b_routes(lab, &a.to_string());
    for (ns, src, dst) in [(&lab.topo.lan_a, a, b), (&lab.topo.lan_b, b, a)] {
        let got = ping_from(ns, &src.to_string(), &dst.to_string(), PINGS);
        assert_eq!(
            got,
            PINGS,
            "{}: ping {src} -> {dst}: {got} of {PINGS} answered\n{}",
            case.name,
            lab.logs()
        );
    }
    for (reverse, dir) in [(false, "lanA->lanB"), (true, "lanB->lanA")] {
        let before = sw_counts_traffic(lab);
        let tag = format!("{}-{fam}-{}", case.name, if reverse { "ba" } else { "ab" });
        let r = iperf3_tcp(
            &lab.topo.lan_a,
            &lab.topo.lan_b,
            b,
            case.tcp_bytes,
            reverse,
            &lab.dir.path,
            &tag,
        );
        let after = sw_counts_traffic(lab);
        assert!(
            r.sent >= case.tcp_bytes,
            "iperf3 {tag}: sent only {}",
            r.sent
        );
        // The data went out of ironsec (strongSwan's bytes in) or out of strongSwan (bytes out).
        let moved = if reverse {
            after.bytes_out - before.bytes_out
        } else {
            after.bytes_in - before.bytes_in
        };
        // What strongSwan sends it reads from its own TUN and counts in full (104-107 % of the
        // bytes sent, with the headers, in the first runs): that direction is the one a
        // leftover route could bypass, so it must count the whole transfer. libipsec's
        // inbound counters fall short of what demonstrably arrived (36-88 % here, with lanB's
        // iperf3 having received every byte): they must only move.
        if reverse {
            assert!(
                moved >= case.tcp_bytes,
                "{tag}: strongSwan's CHILD_SA counted {moved} bytes out for {} sent: before {before:#?} after {after:#?}",
                case.tcp_bytes
            );
        } else {
            assert!(
                moved > 0 && after.packets_in > before.packets_in,
                "{tag}: strongSwan's CHILD_SA counted nothing in: before {before:#?} after {after:#?}"
            );
        }
        println!(
            "  {fam} TCP {dir}: {} bytes in {:.2} s, {:.0} Mbit/s (iperf3); strongSwan's CHILD_SA \
             counted {moved} bytes that way",
            r.sent, r.secs, r.mbit_s
        );
        fig.rates
            .push(format!("{fam} {dir} {:.0} Mbit/s", r.mbit_s));
    }
}

/// Runs `case` in `lab` (nothing running yet) and leaves both daemons running.
fn run_case(lab: &mut SwLab, judges: &Judges, case: &Case) -> Figures {
    println!(
        "{}: {} WAN, {:?} selectors, {} initiates",
        case.name,
        if case.wan6 { "IPv6" } else { "IPv4" },
        case.inner,
        if case.ironsec_first {
            "ironsec"
        } else {
            "strongSwan"
        }
    );
    let s = case.setup();
    let t0 = Instant::now();
    lab.start_strongswan(&s);
    let charon_start = t0.elapsed();
    let t1 = Instant::now();
    lab.start_ironsec(&s);
    let mut exchange = String::new();
    if !case.ironsec_first {
        let t = Instant::now();
        let out = lab.sw().swanctl_ok(&["--initiate", "--child", SW_CHILD]);
        assert!(
            out.contains("initiate completed successfully"),
            "swanctl --initiate: {out}"
        );
        exchange = format!(
            "{:.1} ms (swanctl --initiate)",
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    let (_, st, ike) = lab.wait_up();
    let up = t1.elapsed();
    if case.ironsec_first {
        exchange = format!("{} (ironsec's log)", exchange_time(&lab.a().log_text()));
    }
    println!(
        "  charon started and configured in {charon_start:.2?}; both sides up {up:.2?} after \
         ironsecd was started; IKE_SA_INIT + IKE_AUTH {exchange}"
    );
    check_views(&st, &ike, IKE, ESP);
    assert_eq!(
        ike_of(&st).unwrap()["initiator"].as_bool(),
        Some(case.ironsec_first),
        "{st:#}"
    );
    let (wan_a, _) = case.wan();
    assert_eq!(
        (ike.remote_host.as_str(), ike.remote_port.as_str()),
        (wan_a.to_string().as_str(), "4500"),
        "strongSwan's peer address is ironsec's WAN address, floated to 4500: {ike:#?}"
    );
    // NAT detection over this family, judged by each side with the other's hashes: both send
    // a random NAT_DETECTION_SOURCE_IP on purpose (ironsec's force_encap, strongSwan's
    // encap=yes: each then believes the other behind a NAT, which forces ESP in UDP), but the
    // NAT_DETECTION_DESTINATION_IP each computes over the other's address and port must match,
    // or that side would believe itself behind a NAT.
    let (_, wan_b) = case.wan();
    let peer = std::net::SocketAddr::new(wan_b, 4500).to_string();
    assert_eq!(
        (
            st.pointer(&format!("{T0}/nat/we_are_behind_nat")),
            st.pointer(&format!("{T0}/nat/peer"))
                .and_then(|v| v.as_str())
        ),
        (Some(&serde_json::Value::Bool(false)), Some(peer.as_str())),
        "ironsec checked strongSwan's NAT_DETECTION_DESTINATION_IP over {peer}: {st:#}"
    );
    let sw_log = lab.sw().log_text();
    assert!(
        sw_log.contains("remote host is behind NAT") && !sw_log.contains("local host is behind NAT"),
        "strongSwan checked ironsec's NAT_DETECTION_DESTINATION_IP (and saw the forced NAT):\n{sw_log}"
    );
    let (ts_a, ts_b) = case.inner.selectors();
    let c = sw_child_for(&ike, &st);
    assert_eq!(
        (c.local_ts.clone(), c.remote_ts.clone()),
        (
            ts_b.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            ts_a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
        ),
        "the one CHILD_SA carries every selector: {c:#?}"
    );

    let mut fig = Figures {
        charon_start,
        up,
        exchange,
        rates: Vec::new(),
    };
    let (esp_b0, esp_a0) = judges.check(case.name);
    let cap = case.tshark.then(|| {
        let file = lab.dir.join(&format!("wan-{}.pcap", case.name));
        Capture::start(
            &lab.topo.gw_a,
            "wan",
            &file,
            &["udp", "port", "4500"],
            lab.dir.join(&format!("tcpdump-{}.log", case.name)),
        )
    });
    for (a, b) in case.inner.hosts() {
        traffic(lab, case, a, b, &mut fig);
    }
    let (esp_b, esp_a) = judges.check(case.name);
    assert!(
        esp_b > esp_b0 && esp_a > esp_a0,
        "{}: the wire judges saw no ESP-in-UDP ({esp_b0}->{esp_b} into gwB, {esp_a0}->{esp_a} into gwA)",
        case.name
    );
    println!(
        "  wire judge: 0 packets in clear; ESP-in-UDP into gwB {}, into gwA {} (ingress skbs: \
         ironsec's UDP GSO batches cross the veth whole)",
        esp_b - esp_b0,
        esp_a - esp_a0
    );
    let st = lab.a().status();
    for d in [
        "authentication",
        "unknown_spi",
        "malformed",
        "selector",
        "replay",
    ] {
        assert_eq!(num(&st, &format!("/drops/{d}")), 0, "drops.{d}: {st:#}");
    }
    if let Some(cap) = cap {
        let file = cap.file.clone();
        let _ = cap.stop();
        tshark_judge(lab, case, &file);
    }
    fig
}

/// tshark decrypts every ESP frame of the WAN capture with the keys strongSwan logged (and
/// the SPIs both sides agree on) and must find in each an inner ICMP/ICMPv6 or TCP packet of
/// the case's inner families between the two LANs, with no malformed or error frame.
fn tshark_judge(lab: &SwLab, case: &Case, file: &std::path::Path) {
    let log = lab.sw().log_text();
    let key = |n: &str| {
        sw_logged_key(&log, n).unwrap_or_else(|| panic!("no '{n} key' dump in charon.log"))
    };
    let (ei, er) = (key("encryption initiator"), key("encryption responder"));
    let st = lab.a().status();
    let ike = matching_ike(&st, &lab.sw().sas(), SW_CONN).expect("strongSwan's IKE SA");
    let c = sw_child_for(&ike, &st).clone();
    // The CHILD_SA came with IKE_AUTH: its initiator is the IKE SA's, whose outbound SA uses
    // the initiator keys.
    let (sw_out, sw_in) = if ike.initiator {
        (&ei, &er)
    } else {
        (&er, &ei)
    };
    let (a, b) = case.wan();
    let sa_out = esp_sa_uat(b, a, &c.spi_out, ESP, sw_out, &[]);
    let sa_in = esp_sa_uat(a, b, &c.spi_in, ESP, sw_in, &[]);
    let f = file.to_str().unwrap();
    let tshark = |filter: &str, fields: &[&str]| -> String {
        let extra = [
            "-E",
            "separator=|",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
        ];
        tshark_esp_fields(f, &[&sa_out, &sa_in], false, filter, &extra, fields)
    };
    let frames = tshark(
        "esp",
        &[
            "frame.number",
            "ip.src",
            "ipv6.src",
            "icmp.type",
            "icmpv6.type",
            "tcp.srcport",
        ],
    );
    // (inner family, inner protocol) -> frames; a frame with neither LAN's address inside or
    // with no ICMP/ICMPv6/TCP is what tshark could not decrypt.
    let mut kinds: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut undecrypted = Vec::new();
    for l in frames.lines().filter(|l| !l.trim().is_empty()) {
        let col: Vec<&str> = l.split('|').collect();
        let has = |i: usize, pre: &[&str]| {
            col.get(i)
                .is_some_and(|v| v.split(',').any(|a| pre.iter().any(|p| a.starts_with(p))))
        };
        let fam = if has(2, &["2001:db8:1:", "2001:db8:2:"]) {
            "IPv6"
        } else if has(1, &["10.1.0.", "10.2.0."]) {
            "IPv4"
        } else {
            ""
        };
        let non_empty = |i: usize| col.get(i).is_some_and(|v| !v.is_empty());
        let proto = if non_empty(5) {
            "TCP"
        } else if non_empty(4) {
            "ICMPv6"
        } else if non_empty(3) {
            "ICMP"
        } else {
            ""
        };
        if fam.is_empty() || proto.is_empty() {
            undecrypted.push(l.to_string());
        } else {
            *kinds.entry((fam, proto)).or_default() += 1;
        }
    }
    let total: usize = kinds.values().sum::<usize>() + undecrypted.len();
    println!("  tshark: {total} ESP frames on the IPv6 WAN decrypted to {kinds:?}");
    assert!(
        undecrypted.is_empty(),
        "{}: ESP frames tshark did not decrypt to ICMP/ICMPv6/TCP between the LANs:\n{}",
        case.name,
        undecrypted[..undecrypted.len().min(20)].join("\n")
    );
    let pings = 4 * PINGS as usize; // requests and replies, both ways
    for (a, _) in case.inner.hosts() {
        let (fam, icmp) = if a.is_ipv6() {
            ("IPv6", "ICMPv6")
        } else {
            ("IPv4", "ICMP")
        };
        let n_icmp = kinds.get(&(fam, icmp)).copied().unwrap_or(0);
        let n_tcp = kinds.get(&(fam, "TCP")).copied().unwrap_or(0);
        assert!(
            n_icmp >= pings && n_tcp > 0,
            "{}: decrypted {fam}: {n_icmp} {icmp} (>= {pings} expected), {n_tcp} TCP: {kinds:?}",
            case.name
        );
    }
    let bad = tshark(
        "_ws.malformed || _ws.expert.severity == error",
        &["frame.number", "_ws.expert.message", "_ws.col.Info"],
    );
    assert_eq!(
        count_lines(&bad),
        0,
        "{}: tshark reports malformed/error frames:\n{bad}",
        case.name
    );
    let sample = tshark(
        "esp && icmpv6.type == 128",
        &["frame.number", "ipv6.src", "ipv6.dst", "_ws.col.Info"],
    );
    if let Some(l) = sample.lines().next() {
        println!("  tshark, first decrypted ICMPv6 echo request: {l}");
    }
}

fn summary(figs: &[(&str, Figures)]) {
    for (name, f) in figs {
        println!(
            "  summary {name}: charon {:.0} ms, up {:.0} ms after ironsecd start (exchange {}), {}",
            f.charon_start.as_secs_f64() * 1e3,
            f.up.as_secs_f64() * 1e3,
            f.exchange,
            f.rates.join(", ")
        );
    }
}

/// One mix with each side initiating in turn (cases 5 and 6), on one lab: the IPv6-only WAN
/// (`wan6`) or the IPv4 WAN. With `tshark`, ironsec's case is judged by tshark too: a capture
/// on a host with UDP segmentation offload sees ironsec's GSO batches as one super-packet, of
/// which tshark decodes only the first datagram, so gwA's WAN then segments in software.
fn both_initiators(names: [&'static str; 2], wan6: bool, inner: Inner, tshark: bool) {
    let _s = serial();
    require_root();
    let mut lab = SwLab::new_ipv6(!wan6);
    if tshark {
        run_ok(
            ns_cmd(&lab.topo.gw_a, "ethtool").args(["-K", "wan", "tx-udp-segmentation", "off"]),
            Duration::from_secs(10),
        );
    }
    let judges = Judges::install(&lab);
    let mut figs = Vec::new();
    for (name, ironsec_first) in [(names[0], true), (names[1], false)] {
        let tshark = tshark && ironsec_first;
        let case = Case {
            name,
            wan6,
            inner,
            ironsec_first,
            tshark,
            tcp_bytes: if tshark { 512 << 10 } else { 8 << 20 },
        };
        figs.push((name, run_case(&mut lab, &judges, &case)));
        lab.stop_both();
    }
    summary(&figs);
}

/// Case 1 (and 5, 6): IPv6 in IPv6, each side initiating; ironsec's case judged by tshark.
#[test]
#[ignore = "needs root"]
fn v6_in_v6_both_directions_with_tshark() {
    both_initiators(
        ["v6-in-v6-ironsec", "v6-in-v6-strongswan"],
        true,
        Inner::V6,
        true,
    );
}

/// Case 2 (and 5, 6): IPv4 selectors over an IPv6-only WAN, each side initiating.
#[test]
#[ignore = "needs root"]
fn v4_in_v6() {
    both_initiators(
        ["v4-in-v6-ironsec", "v4-in-v6-strongswan"],
        true,
        Inner::V4,
        false,
    );
}

/// Case 3 (and 5, 6): IPv6 selectors over the IPv4 WAN (which has IPv6 addresses too: the
/// tunnel's family is the configured endpoints', checked in strongSwan's view), each side
/// initiating.
#[test]
#[ignore = "needs root"]
fn v6_in_v4() {
    both_initiators(
        ["v6-in-v4-ironsec", "v6-in-v4-strongswan"],
        false,
        Inner::V6,
        false,
    );
}

/// Case 4 (and 5, 6): one CHILD_SA with an IPv4 and an IPv6 selector on each side over the
/// IPv6 WAN, each side initiating; tshark sees both inner families in the one ESP SA.
#[test]
#[ignore = "needs root"]
fn dual_stack_selectors_both_directions_with_tshark() {
    both_initiators(
        ["dual-stack-ironsec", "dual-stack-strongswan"],
        true,
        Inner::Dual,
        true,
    );
}

/// IPv6 traffic selector narrowing (RFC 7296 2.9) both ways over the IPv6 WAN: strongSwan
/// narrows ironsec's proposed 2001:db8:2::/64 to its configured 2001:db8:2::/120, and ironsec
/// narrows strongSwan's proposed 2001:db8:1::/64 to its configured 2001:db8:1::/120. Both sides
/// install the narrowed pair, pings inside it pass, and ironsec sends nothing for a lanB
/// address outside it (2001:db8:2::1:2), counting it as `no_policy`.
#[test]
#[ignore = "needs root"]
fn v6_selectors_narrowed_both_ways() {
    let _s = serial();
    require_root();
    let mut lab = SwLab::new_ipv6(false);
    run_ok(
        ns_cmd(&lab.topo.lan_b, "ip").args([
            "-6",
            "addr",
            "add",
            "2001:db8:2::1:2/64",
            "dev",
            "b-lan",
            "nodad",
        ]),
        Duration::from_secs(5),
    );
    let (a, b) = (IpAddr::from(WAN6_A), IpAddr::from(WAN6_B));
    // (who initiates, gwA's selector, gwB's selector, the pair both must install)
    let cases = [
        (
            true,
            LAN_A6,
            "2001:db8:2::/120",
            (LAN_A6, "2001:db8:2::/120"),
        ),
        (
            false,
            "2001:db8:1::/120",
            LAN_B6,
            ("2001:db8:1::/120", LAN_B6),
        ),
    ];
    for (ironsec_first, ts_a, ts_b, (want_a, want_b)) in cases {
        let mut s = if ironsec_first {
            Setup::ironsec_initiates()
        } else {
            Setup::strongswan_initiates()
        }
        .endpoints(a, b)
        .selectors(&[LAN_A6], &[LAN_B6]);
        // The initiator proposes the /64s; the responder is configured narrower.
        if ironsec_first {
            s.swanctl.push(("local_ts", ts_b.to_string()));
        } else {
            s.ironsec.push(("local_ts", toml_array(&[ts_a])));
        }
        lab.start_strongswan(&s);
        lab.start_ironsec(&s);
        if !ironsec_first {
            lab.sw().swanctl_ok(&["--initiate", "--child", SW_CHILD]);
        }
        let (_, st, ike) = lab.wait_up();
        check_views(&st, &ike, IKE, ESP);
        let ours = (
            strs_at(&st, &format!("{T0}/child/local_ts")),
            strs_at(&st, &format!("{T0}/child/remote_ts")),
        );
        println!(
            "{} initiates: narrowed CHILD_SA, ironsec {:?} === {:?}",
            if ironsec_first {
                "ironsec"
            } else {
                "strongSwan"
            },
            ours.0,
            ours.1
        );
        assert_eq!(ours, (vec![want_a.to_string()], vec![want_b.to_string()]));
        for (ns, src, dst) in [
            (&lab.topo.lan_a, "2001:db8:1::2", "2001:db8:2::2"),
            (&lab.topo.lan_b, "2001:db8:2::2", "2001:db8:1::2"),
        ] {
            assert_eq!(
                ping_from(ns, src, dst, 3),
                3,
                "{src} -> {dst}\n{}",
                lab.logs()
            );
        }
        if ironsec_first {
            let before = lab.a().status();
            let got = ping_from(&lab.topo.lan_a, "2001:db8:1::2", "2001:db8:2::1:2", 3);
            let after = lab.a().status();
            let d = |k: &str| num(&after, k) - num(&before, k);
            println!(
                "  2001:db8:2::1:2, outside: {got} of 3 answered, ironsec drops.no_policy +{}, \
                 outbound packets +{}",
                d("/drops/no_policy"),
                d(&format!("{T0}/outbound/packets"))
            );
            assert_eq!(got, 0, "2001:db8:2::1:2 is outside the narrowed selectors");
            // At least the 3 requests: some runs counted a 4th drop, a packet not identified
            // (the count is of everything the TUN device handed over without a policy).
            assert!(d("/drops/no_policy") >= 3, "{after:#}");
            assert_eq!(d(&format!("{T0}/outbound/packets")), 0, "{after:#}");
        }
        lab.stop_both();
    }
}
