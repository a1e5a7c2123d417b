//! Interop with strongSwan 5.9 (Debian's charon with kernel-libipsec), both directions, in
//! network namespaces (netns-scripts/topology.sh):
//!
//!   lanA 10.1.0.2 -- gwA: ironsecd 192.0.2.1 ===wan=== 192.0.2.2 strongSwan: gwB -- lanB 10.2.0.2
//!
//! ironsecd runs from conf/strongswan/ironsec-gw-a.toml, strongSwan from
//! conf/strongswan/swanctl.conf (started by netns-scripts/strongswan.sh in its own directory,
//! mount namespace and VICI socket), both with a fresh random PSK and, per test, other
//! proposals, subnets or start actions. Every test checks data (pings both ways, iperf3 where
//! it says so) and both sides' own view: `ironsecctl status --json` and strongSwan's
//! `swanctl --list-sas` (CHILD_SA INSTALLED, SPIs crossed with ironsec's, bytes counted).
//!
//! Each test has its own namespace prefix and temporary directory and is torn down by its
//! guards (ironsecd and charon killed by PID, namespaces removed), also when it fails. These
//! tests need root and the strongSwan packages of tests/install-deps.sh: they are
//! `#[ignore = "needs root"]` (tests/run.sh runs them) and FAIL (never skip) without them.
//!
//! Run: `cargo test -p ironsecd --test interop_strongswan -- --include-ignored --test-threads=1 --nocapture`

mod common;

use std::fs;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::strongswan::*;
use common::*;
use serde_json::Value;

const LAN_A_HOST: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const LAN_B_HOST: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);
const PING_PATTERN: &[u8] = b"\x5a\x17\xc0\xde-IRONSEC-STRONGSWAN-PING!\xa5";

// ------------------------------------------------------------------------------------------
// Configs from conf/strongswan/ (the lab itself, `SwLab` and `Setup`, with the checks of both
// sides' views and counters, is tests/common/strongswan.rs's, shared with tests/interop_ipv6.rs)

/// A copy of the `children { NAME { ... } }` block of CHILD_SA `name`, renamed to `new` and
/// with `replacements` applied, inserted after it (a second CHILD_SA on the same IKE SA).
fn add_child(text: &str, name: &str, new: &str, replacements: &[(&str, String)]) -> String {
    let open = format!("{name} {{");
    let start = text
        .find(&open)
        .unwrap_or_else(|| panic!("no child {name}"));
    let start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let indent = &text[start..text[start..].find(&open).unwrap() + start];
    let close = format!("\n{indent}}}\n");
    let end = text[start..]
        .find(&close)
        .map(|i| start + i + close.len())
        .unwrap_or_else(|| panic!("child {name} not closed"));
    let block = text[start..end].replacen(&open, &format!("{new} {{"), 1);
    let block = rewrite_swanctl(&block, replacements);
    format!("{}{}{}", &text[..end], block, &text[end..])
}

// ------------------------------------------------------------------------------------------
// Traffic

fn ping_run(ns: &str, dst: Ipv4Addr, count: u16) -> PingRun {
    ping_paced(
        ns,
        dst,
        count,
        pattern_payload(PING_PATTERN, 56),
        Duration::from_millis(20),
        Duration::from_secs(2),
    )
}

fn ping_ok(lab: &SwLab, ns: &str, dst: Ipv4Addr, count: u16) {
    let r = ping_run(ns, dst, count);
    assert_eq!(
        r.received(),
        r.sent(),
        "ping {ns} -> {dst}: {} of {} answered\n{}",
        r.received(),
        r.sent(),
        lab.logs()
    );
}

fn ping_both_ways(lab: &SwLab, count: u16) {
    ping_ok(lab, &lab.topo.lan_a, LAN_B_HOST, count);
    ping_ok(lab, &lab.topo.lan_b, LAN_A_HOST, count);
}

/// A short iperf3 TCP run each way through the tunnel; returns Mbit/s (A->B, B->A).
fn iperf_both_ways(lab: &SwLab, bytes: u64) -> (f64, f64) {
    let mut rates = [0.0; 2];
    for (i, (reverse, tag)) in [(false, "lanA-to-lanB"), (true, "lanB-to-lanA")]
        .into_iter()
        .enumerate()
    {
        let r = iperf3_tcp(
            &lab.topo.lan_a,
            &lab.topo.lan_b,
            LAN_B_HOST,
            bytes,
            reverse,
            &lab.dir.path,
            tag,
        );
        println!(
            "  iperf3 {tag}: {} bytes sent in {:.2} s, {:.0} Mbit/s",
            r.sent, r.secs, r.mbit_s
        );
        assert!(r.sent >= bytes, "iperf3 {tag}: sent only {}", r.sent);
        rates[i] = r.mbit_s;
    }
    (rates[0], rates[1])
}

/// The usual checks once up: both views, pings both ways, strongSwan and ironsec counting.
fn check_tunnel(lab: &SwLab, ike_algs: &str, esp_algs: &str, pings: u16) -> (Value, SwChild) {
    let (_, st, ike) = lab.wait_up();
    check_views(&st, &ike, ike_algs, esp_algs);
    check_gw_b_routes(lab, "10.1.0.2");
    ping_both_ways(lab, pings);
    let c = sw_counts_traffic(lab);
    let st = lab.a().status();
    for dir in ["outbound", "inbound"] {
        assert!(
            num(&st, &format!("{T0}/{dir}/packets")) >= u64::from(pings) * 2,
            "ironsec {dir} packets: {st:#}"
        );
    }
    for d in [
        "authentication",
        "unknown_spi",
        "malformed",
        "selector",
        "replay",
    ] {
        assert_eq!(num(&st, &format!("/drops/{d}")), 0, "drops.{d}: {st:#}");
    }
    (st, c)
}

// ------------------------------------------------------------------------------------------
// 1. Both directions

#[test]
#[ignore = "needs root"]
fn ironsec_initiates_strongswan_responds() {
    let _s = serial();
    require_root();
    let s = Setup::ironsec_initiates();
    let mut lab = SwLab::new();
    let t0 = Instant::now();
    lab.start_strongswan(&s);
    let charon = t0.elapsed();
    lab.start_ironsec(&s);
    let (_, st, ike) = lab.wait_up();
    println!(
        "ironsec -> strongSwan: charon started and configured in {charon:.2?}; IKE_SA_INIT + \
         IKE_AUTH with the CHILD_SA took {} (ironsec's log: 'initiating IKE SA' to 'CHILD_SA up')",
        exchange_time(&lab.a().log_text())
    );
    assert_eq!(ike_of(&st).unwrap()["initiator"], true);
    assert!(!ike.initiator, "strongSwan responded: {ike:#?}");
    let (_, c) = check_tunnel(&lab, "aes128gcm16-prfsha256-x25519", "aes128gcm16", 10);
    println!(
        "  strongSwan CHILD_SA {}: in {} bytes / {} packets, out {} bytes / {} packets",
        c.name, c.bytes_in, c.packets_in, c.bytes_out, c.packets_out
    );
    let before = sw_counts_traffic(&lab);
    let (ab, ba) = iperf_both_ways(&lab, 16 << 20);
    let after = sw_counts_traffic(&lab);
    // strongSwan counts what its CHILD_SA carried each way (the data of one run plus the ACKs
    // of the other; libipsec may drop some under load, which TCP resends).
    let (d_in, d_out) = (
        after.bytes_in - before.bytes_in,
        after.bytes_out - before.bytes_out,
    );
    println!("  strongSwan's CHILD_SA counted {d_in} bytes in, {d_out} bytes out during iperf3");
    assert!(
        d_in > 8 << 20 && d_out > 8 << 20,
        "strongSwan's CHILD_SA counted the iperf3 runs: before {before:#?} after {after:#?}"
    );
    println!("  iperf3 through ironsec <-> strongSwan: A->B {ab:.0} Mbit/s, B->A {ba:.0} Mbit/s");
}

#[test]
#[ignore = "needs root"]
fn strongswan_initiates_ironsec_responds() {
    let _s = serial();
    require_root();
    let lab = SwLab::start(&Setup::strongswan_initiates());
    // ironsec waits: nothing happens until strongSwan initiates.
    let st = lab.a().status();
    assert!(ike_of(&st).is_none(), "ironsec must not initiate: {st:#}");
    let t0 = Instant::now();
    let out = lab.sw().swanctl_ok(&["--initiate", "--child", SW_CHILD]);
    let initiate = t0.elapsed();
    assert!(
        out.contains("initiate completed successfully"),
        "swanctl --initiate: {out}"
    );
    let (took, st, ike) = lab.wait_up();
    println!(
        "strongSwan -> ironsec: swanctl --initiate returned after {initiate:.2?}, both sides up \
         {:.2?} after it was run",
        initiate + took
    );
    assert_eq!(ike_of(&st).unwrap()["initiator"], false);
    assert!(ike.initiator, "strongSwan initiated: {ike:#?}");
    check_tunnel(&lab, "aes128gcm16-prfsha256-x25519", "aes128gcm16", 10);
    let (ab, ba) = iperf_both_ways(&lab, 16 << 20);
    println!("  iperf3 through strongSwan <-> ironsec: A->B {ab:.0} Mbit/s, B->A {ba:.0} Mbit/s");
}

// ------------------------------------------------------------------------------------------
// 2. Proposals

#[test]
#[ignore = "needs root"]
fn proposals_suites_and_groups() {
    let _s = serial();
    require_root();
    // (IKE, ESP, who initiates). The ECP-384 ESP proposal asks for PFS: the first CHILD_SA
    // comes with IKE_AUTH (no KE), every rekey does a fresh ECP-384 exchange.
    let cases = [
        ("aes128gcm16-prfsha256-x25519", "aes128gcm16", true),
        ("aes256gcm16-prfsha384-ecp384", "aes256gcm16-ecp384", false),
        ("aes256gcm16-prfsha384-ecp384", "aes256gcm16-ecp384", true),
        (
            "chacha20poly1305-prfsha256-x25519",
            "chacha20poly1305",
            false,
        ),
    ];
    let mut lab = SwLab::new();
    for (ike, esp, ironsec_first) in cases {
        let who = if ironsec_first {
            "ironsec"
        } else {
            "strongSwan"
        };
        println!("{ike} / {esp}, {who} initiates:");
        let setup = if ironsec_first {
            Setup::ironsec_initiates()
        } else {
            Setup::strongswan_initiates()
        }
        .proposals(ike, esp);
        lab.start_strongswan(&setup);
        lab.start_ironsec(&setup);
        if ironsec_first {
            lab.wait_up();
            println!(
                "  IKE SA + CHILD_SA in {} (ironsec's log)",
                exchange_time(&lab.a().log_text())
            );
        } else {
            let t0 = Instant::now();
            lab.sw().swanctl_ok(&["--initiate", "--child", SW_CHILD]);
            let initiate = t0.elapsed();
            lab.wait_up();
            println!("  swanctl --initiate completed in {initiate:.2?}");
        }
        // The first CHILD_SA never has a DH group (it comes with IKE_AUTH).
        let first_esp = esp.trim_end_matches("-ecp384");
        check_tunnel(&lab, ike, first_esp, 5);
        let (ab, ba) = iperf_both_ways(&lab, 4 << 20);
        println!("  iperf3 A->B {ab:.0} Mbit/s, B->A {ba:.0} Mbit/s");
        if esp.ends_with("-ecp384") {
            // strongSwan rekeys the CHILD_SA: CREATE_CHILD_SA with KE (PFS).
            let old = str_at(&lab.a().status(), &format!("{T0}/outbound/spi")).to_string();
            lab.sw().swanctl_ok(&["--rekey", "--child", SW_CHILD]);
            let mut st = Value::Null;
            let rekeyed = poll_until(Duration::from_secs(10), || {
                st = lab.a().status();
                st.pointer(&format!("{T0}/child/algorithms"))
                    .is_some_and(|a| a == esp)
                    && st
                        .pointer(&format!("{T0}/outbound/spi"))
                        .is_some_and(|s| s != old.as_str())
            });
            assert!(
                rekeyed,
                "no PFS rekey on ironsec's side: {st:#}\n{}",
                lab.logs()
            );
            let (_, st, ike_sa) = lab.wait_up();
            check_views(&st, &ike_sa, ike, esp);
            ping_both_ways(&lab, 5);
            let c = sw_counts_traffic(&lab);
            println!(
                "  after strongSwan's PFS rekey: CHILD_SA {} {} with {} packets in, {} out",
                c.name, c.algorithms, c.packets_in, c.packets_out
            );
            assert_eq!(
                num(&st, "/connections/0/counters/child_rekeys"),
                1,
                "{st:#}"
            );
        }
        lab.stop_both();
    }
}

/// IKE SAs with AES-CBC + HMAC (issue 20): strongSwan's classic `aes256-sha256` and
/// `aes128-sha1` proposals, each side initiating, with an AEAD CHILD_SA (ESP with AES-CBC
/// comes with the fast path's CBC SAs). The PRF is named as strongSwan would derive it.
/// Last, `default` on both sides: strongSwan's and ironsec's default sets meet on the first
/// algorithms of strongSwan's non-AEAD proposal.
#[test]
#[ignore = "needs root"]
fn cbc_hmac_ike_sas() {
    let _s = serial();
    require_root();
    // (ironsec's IKE proposal, strongSwan's, the IKE algorithms expected, ESP, who initiates)
    let cases = [
        (
            "aes256-sha256-prfsha256-ecp256",
            "aes256-sha256-prfsha256-ecp256",
            "aes256-sha256-prfsha256-ecp256",
            "aes256gcm16",
            true,
        ),
        (
            "aes256-sha256-prfsha256-ecp256",
            "aes256-sha256-prfsha256-ecp256",
            "aes256-sha256-prfsha256-ecp256",
            "aes256gcm16",
            false,
        ),
        (
            "aes128-sha1-prfsha1-x25519",
            "aes128-sha1-prfsha1-x25519",
            "aes128-sha1-prfsha1-x25519",
            "aes128gcm16",
            false,
        ),
        (
            "default",
            "default",
            "aes128-sha256-prfsha256-x25519",
            "aes256gcm16",
            true,
        ),
        (
            "default",
            "default",
            "aes128-sha256-prfsha256-x25519",
            "aes256gcm16",
            false,
        ),
        // strongSwan offers its default (KE for Curve25519); ironsec takes the CBC proposal's
        // AES-256 and SHA-256 (with the PRF strongSwan derives from it) and answers
        // INVALID_KE_PAYLOAD for ECP-256.
        (
            "aes256-sha256-ecp256",
            "default",
            "aes256-sha256-prfsha256-ecp256",
            "aes256gcm16",
            false,
        ),
    ];
    let mut lab = SwLab::new();
    for (ours, theirs, ike, esp, ironsec_first) in cases {
        println!("ironsec {ours}, strongSwan {theirs} / {esp}, ironsec initiates: {ironsec_first}");
        let mut setup = if ironsec_first {
            Setup::ironsec_initiates()
        } else {
            Setup::strongswan_initiates()
        }
        .proposals(ours, esp);
        setup.swanctl.retain(|(k, _)| *k != "proposals");
        setup.swanctl.push(("proposals", theirs.to_string()));
        lab.start_strongswan(&setup);
        lab.start_ironsec(&setup);
        if !ironsec_first {
            lab.sw().swanctl_ok(&["--initiate", "--child", SW_CHILD]);
        }
        lab.wait_up();
        check_tunnel(&lab, ike, esp, 5);
        // An IKE SA rekey from strongSwan: new SK_* for the same CBC suite, then traffic
        // and a CHILD_SA rekey over the new IKE SA.
        lab.sw().swanctl_ok(&["--rekey", "--ike", SW_CONN]);
        let mut st = Value::Null;
        let rekeyed = poll_until(Duration::from_secs(10), || {
            st = lab.a().status();
            st.pointer("/connections/0/counters/ike_rekeys")
                .and_then(Value::as_u64)
                .is_some_and(|n| n >= 1)
        });
        assert!(
            rekeyed,
            "no IKE rekey on ironsec's side: {st:#}\n{}",
            lab.logs()
        );
        let (_, st, ike_sa) = lab.wait_up();
        check_views(&st, &ike_sa, ike, esp);
        lab.sw().swanctl_ok(&["--rekey", "--child", SW_CHILD]);
        ping_both_ways(&lab, 3);
        lab.stop_both();
    }
}

// ------------------------------------------------------------------------------------------
// 3. Several subnets, several CHILD_SAs

/// Second subnets on both sites, only inside this test's namespaces: lanA 10.1.1.2 (gwA
/// 10.1.1.1), lanB 10.2.1.2 (gwB 10.2.1.1).
fn add_second_subnets(lab: &SwLab) {
    for (ns, addr, dev) in [
        (&lab.topo.lan_a, "10.1.1.2/24", "a-lan"),
        (&lab.topo.gw_a, "10.1.1.1/24", "lan"),
        (&lab.topo.lan_b, "10.2.1.2/24", "b-lan"),
        (&lab.topo.gw_b, "10.2.1.1/24", "lan"),
    ] {
        run_ok(
            Command::new("ip").args(["-n", ns, "addr", "add", addr, "dev", dev]),
            Duration::from_secs(5),
        );
    }
}

#[test]
#[ignore = "needs root"]
fn two_subnets_per_side_in_one_child_sa() {
    let _s = serial();
    require_root();
    let mut s = Setup::ironsec_initiates();
    s.ironsec
        .push(("local_ts", toml_array(&["10.1.0.0/24", "10.1.1.0/24"])));
    s.ironsec
        .push(("remote_ts", toml_array(&["10.2.0.0/24", "10.2.1.0/24"])));
    s.swanctl
        .push(("local_ts", "10.2.0.0/24,10.2.1.0/24".into()));
    s.swanctl
        .push(("remote_ts", "10.1.0.0/24,10.1.1.0/24".into()));
    let mut lab = SwLab::new();
    add_second_subnets(&lab);
    lab.start_strongswan(&s);
    lab.start_ironsec(&s);
    let (_, st, ike) = lab.wait_up();
    check_views(&st, &ike, "aes128gcm16-prfsha256-x25519", "aes128gcm16");
    assert_eq!(ike.children.len(), 1, "one CHILD_SA: {ike:#?}");
    assert_eq!(ike_of(&st).unwrap()["children"], 1);
    assert_eq!(
        strs_at(&st, &format!("{T0}/child/local_ts")),
        ["10.1.0.0/24", "10.1.1.0/24"]
    );
    assert_eq!(
        strs_at(&st, &format!("{T0}/child/remote_ts")),
        ["10.2.0.0/24", "10.2.1.0/24"]
    );
    check_gw_b_routes(&lab, "10.1.1.2");
    // Every pair of subnets, both ways.
    let mut n = 0;
    for a in ["10.1.0.2", "10.1.1.2"] {
        for b in ["10.2.0.2", "10.2.1.2"] {
            assert_eq!(
                ping_from(&lab.topo.lan_a, a, b, 5),
                5,
                "{a} -> {b}\n{}",
                lab.logs()
            );
            assert_eq!(
                ping_from(&lab.topo.lan_b, b, a, 5),
                5,
                "{b} -> {a}\n{}",
                lab.logs()
            );
            n += 10;
        }
    }
    let c = sw_counts_traffic(&lab);
    assert!(c.packets_in >= n && c.packets_out >= n, "{c:#?}");
    println!(
        "two subnets per side in one CHILD_SA: {n} pings answered; strongSwan counted {} in / {} out",
        c.packets_in, c.packets_out
    );
}

/// strongSwan with two CHILD_SAs on one IKE SA: site-a (10.2.0.0/24 === 10.1.0.0/24) and
/// site-a2 (10.2.1.0/24 === 10.1.1.0/24); ironsec's one connection covers both.
fn second_child_setup() -> Setup {
    let mut s = Setup::strongswan_initiates();
    s.ironsec
        .push(("local_ts", toml_array(&["10.1.0.0/24", "10.1.1.0/24"])));
    s.ironsec
        .push(("remote_ts", toml_array(&["10.2.0.0/24", "10.2.1.0/24"])));
    s.swanctl_edit = Some(|t| {
        add_child(
            &t,
            SW_CHILD,
            "site-a2",
            &[
                ("local_ts", "10.2.1.0/24".into()),
                ("remote_ts", "10.1.1.0/24".into()),
            ],
        )
    });
    s
}

/// Brings up site-a with IKE_AUTH and site-a2 with CREATE_CHILD_SA, both initiated by strongSwan.
fn bring_up_two_children(lab: &SwLab) -> SwIke {
    lab.sw().swanctl_ok(&["--initiate", "--child", SW_CHILD]);
    lab.wait_up();
    let out = lab.sw().swanctl_ok(&["--initiate", "--child", "site-a2"]);
    assert!(out.contains("initiate completed successfully"), "{out}");
    let mut last = (Value::Null, Vec::new());
    let ok = poll_until(UP_TIMEOUT, || {
        let st = lab.a().status();
        let sas = lab.sw().sas();
        let two = ike_of(&st).is_some_and(|i| i["children"] == 2)
            && sas.len() == 1
            && sas[0]
                .children
                .iter()
                .filter(|c| c.state == "INSTALLED")
                .count()
                == 2;
        last = (st, sas);
        two
    });
    let (st, sas) = last;
    assert!(
        ok,
        "second CHILD_SA not up on both sides: ironsec {st:#}\nstrongSwan {sas:#?}\n{}",
        lab.logs()
    );
    sas[0].clone()
}

#[test]
#[ignore = "needs root"]
fn second_child_sa_on_the_same_ike_sa() {
    let _s = serial();
    require_root();
    let s = second_child_setup();
    let mut lab = SwLab::new();
    add_second_subnets(&lab);
    lab.start_strongswan(&s);
    lab.start_ironsec(&s);
    let ike = bring_up_two_children(&lab);
    let names: Vec<&str> = ike.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, [SW_CHILD, "site-a2"], "{ike:#?}");
    let st = lab.a().status();
    // ironsec accepted the peer's CREATE_CHILD_SA and sends on both CHILD_SAs, each for its
    // own selectors; status lists both, the first one as the tunnel's main CHILD_SA.
    let c1 = &ike.children[0];
    assert_eq!(c1.spi_in, bare(str_at(&st, &format!("{T0}/outbound/spi"))));
    assert_eq!(
        strs_at(&st, &format!("{T0}/children/1/local_ts")),
        ["10.1.1.0/24"]
    );
    assert_eq!(
        strs_at(&st, &format!("{T0}/children/1/remote_ts")),
        ["10.2.1.0/24"]
    );
    assert_eq!(
        strs_at(&st, &format!("{T0}/children/0/remote_ts")),
        ["10.2.0.0/24"]
    );
}

/// Two CHILD_SAs on one IKE SA: each carries its own selectors' traffic, both ways, and
/// strongSwan counts packets on both.
#[test]
#[ignore = "needs root"]
fn second_child_sa_carries_its_own_traffic() {
    let _s = serial();
    require_root();
    let s = second_child_setup();
    let mut lab = SwLab::new();
    add_second_subnets(&lab);
    lab.start_strongswan(&s);
    lab.start_ironsec(&s);
    bring_up_two_children(&lab);
    for (a, b) in [("10.1.0.2", "10.2.0.2"), ("10.1.1.2", "10.2.1.2")] {
        assert_eq!(
            ping_from(&lab.topo.lan_a, a, b, 5),
            5,
            "{a} -> {b}\n{}",
            lab.logs()
        );
        assert_eq!(
            ping_from(&lab.topo.lan_b, b, a, 5),
            5,
            "{b} -> {a}\n{}",
            lab.logs()
        );
    }
    let sas = lab.sw().sas();
    for c in &sas[0].children {
        assert!(c.packets_in >= 10 && c.packets_out >= 10, "{c:#?}");
    }
}

// ------------------------------------------------------------------------------------------
// 4. Rekeys from both sides under traffic

/// Pings both ways at 20/s for `secs` seconds on two threads.
fn ping_both_ways_paced(
    lab: &SwLab,
    secs: u16,
) -> (
    std::thread::JoinHandle<PingRun>,
    std::thread::JoinHandle<PingRun>,
) {
    let spawn = |ns: &str, dst: Ipv4Addr| {
        ping_paced_in_background(
            ns,
            dst,
            secs * 20,
            pattern_payload(PING_PATTERN, 56),
            Duration::from_millis(50),
            Duration::from_secs(2),
        )
    };
    (
        spawn(&lab.topo.lan_a, LAN_B_HOST),
        spawn(&lab.topo.lan_b, LAN_A_HOST),
    )
}

fn report_pings(lab: &SwLab, label: &str, run: &PingRun) {
    let lost: Vec<u16> = run.lost().iter().map(|r| r.seq).collect();
    println!(
        "  {label}: {} pings at 20/s, {} answered, lost {:?}, max rtt {:.2?}",
        run.sent(),
        run.received(),
        lost,
        run.max_rtt()
    );
    assert!(
        lost.is_empty(),
        "{label}: pings lost {lost:?}\n{}",
        lab.logs()
    );
}

#[test]
#[ignore = "needs root"]
fn child_and_ike_rekeys_from_both_sides_lose_no_ping() {
    let _s = serial();
    require_root();
    // strongSwan initiates, so the IKE SA ironsec rekeys itself shows as initiator = true.
    // ironsec rekeys its CHILD_SA every 4.5-5 s and its IKE SA every 5.4-6 s; strongSwan (hours)
    // only when told to.
    let mut s = Setup::strongswan_initiates();
    s.ironsec.push(("rekey_time", "5".into()));
    s.ironsec.push(("ike_rekey_time", "6".into()));
    let lab = SwLab::start(&s);
    lab.sw().swanctl_ok(&["--initiate", "--child", SW_CHILD]);
    let (_, st0, ike0) = lab.wait_up();
    assert_eq!(ike_of(&st0).unwrap()["initiator"], false);
    let (ab, ba) = ping_both_ways_paced(&lab, 12);
    // strongSwan rekeys the CHILD_SA at ~1 s and the IKE SA at ~2.5 s; ironsec's own rekeys
    // follow from its lifetimes (CHILD_SA ~5.5-6 s, IKE SA ~8-8.5 s).
    std::thread::sleep(Duration::from_millis(1000));
    lab.sw().swanctl_ok(&["--rekey", "--child", SW_CHILD]);
    std::thread::sleep(Duration::from_millis(1500));
    lab.sw().swanctl_ok(&["--rekey", "--ike", SW_CONN]);
    let (ab, ba) = (ab.join().unwrap(), ba.join().unwrap());
    println!("CHILD_SA and IKE SA rekeys, each side initiating, under pings:");
    report_pings(&lab, "lanA -> lanB", &ab);
    report_pings(&lab, "lanB -> lanA", &ba);
    let log = lab.a().log_text();
    let by_sw = log
        .lines()
        .filter(|l| l.contains("CHILD_SA rekeyed") && l.contains("initiated=false"))
        .count();
    let by_us = log
        .lines()
        .filter(|l| l.contains("CHILD_SA rekeyed") && l.contains("initiated=true"))
        .count();
    let ike_rekeys = log.lines().filter(|l| l.contains("IKE SA rekeyed")).count();
    println!(
        "  ironsec log: CHILD_SA rekeyed by strongSwan {by_sw}, by ironsec {by_us}; IKE SA rekeyed {ike_rekeys}"
    );
    assert!(
        by_sw >= 1 && by_us >= 1,
        "CHILD_SA rekeys by each side\n{}",
        lab.logs()
    );
    assert!(
        ike_rekeys >= 2,
        "IKE SA rekeys by each side\n{}",
        lab.logs()
    );
    let (_, st, ike) = lab.wait_up();
    // The last IKE SA rekey was ironsec's: the new IKE SA's initiator is ironsec (RFC 7296 2.18).
    assert_eq!(ike_of(&st).unwrap()["initiator"], true, "{st:#}");
    assert!(!ike.initiator, "{ike:#?}");
    assert_ne!(ike.spi_i, ike0.spi_i, "IKE SA was rekeyed");
    assert!(
        num(&st, "/connections/0/counters/child_rekeys") >= 2,
        "{st:#}"
    );
    assert!(
        num(&st, "/connections/0/counters/ike_rekeys") >= 2,
        "{st:#}"
    );
    let sas = lab.sw().sas();
    assert_eq!(sas.len(), 1, "strongSwan keeps one IKE SA: {sas:#?}");
    for d in ["authentication", "unknown_spi", "replay"] {
        assert_eq!(num(&st, &format!("/drops/{d}")), 0, "drops.{d}: {st:#}");
    }
}

// ------------------------------------------------------------------------------------------
// 5. Dead peer detection and restart

#[test]
#[ignore = "needs root"]
fn dpd_notices_killed_strongswan_and_restart_reconnects() {
    let _s = serial();
    require_root();
    let (interval, timeout) = (2u64, 4u64);
    let mut s = Setup::ironsec_initiates();
    s.ironsec.push(("dpd_interval", interval.to_string()));
    s.ironsec.push(("dpd_timeout", timeout.to_string()));
    s.ironsec_extra.push("close_action = \"restart\"".into());
    let mut lab = SwLab::start(&s);
    let (_, st0, _) = lab.wait_up();
    ping_both_ways(&lab, 5);
    let old_spi = ike_of(&st0).unwrap()["spi_i"].clone();

    lab.sw.as_mut().unwrap().kill9();
    let killed = Instant::now();
    let mut st = Value::Null;
    let noticed = poll_until(Duration::from_secs(interval + timeout + 10), || {
        st = lab.a().status();
        num(&st, "/connections/0/counters/dpd_failures") >= 1
    });
    let took = killed.elapsed();
    assert!(
        noticed,
        "ironsec never noticed strongSwan's death: {st:#}\n{}",
        lab.logs()
    );
    println!(
        "strongSwan killed: ironsec's DPD noticed after {took:.2?} (dpd_interval {interval} s + \
         dpd_timeout {timeout} s)"
    );
    assert!(
        took <= Duration::from_secs(interval + timeout) + Duration::from_millis(1500),
        "DPD took {took:?}, configured {interval} + {timeout} s"
    );
    assert!(
        first_line_with(&lab.a().log_text(), &["IKE SA down", "PeerUnreachable"]).is_some(),
        "{}",
        lab.logs()
    );

    // strongSwan comes back (same directory, fresh state): close_action restart reconnects.
    lab.sw = None;
    let back = Instant::now();
    lab.start_strongswan(&s);
    let (_, st, _) = lab.wait_up();
    println!(
        "strongSwan restarted: tunnel up again {:.2?} after charon was started",
        back.elapsed()
    );
    assert_ne!(ike_of(&st).unwrap()["spi_i"], old_spi, "a new IKE SA");
    ping_both_ways(&lab, 5);
    sw_counts_traffic(&lab);
}

// ------------------------------------------------------------------------------------------
// 6. Terminate from each side

/// Waits until neither side has an SA; returns when the IKE SAs were gone on both sides and
/// when ironsec's retired CHILD_SAs were too (it keeps a deleted SA for packets in flight for
/// 2 s).
fn wait_both_down(lab: &SwLab, label: &str) -> (Duration, Duration) {
    let t0 = Instant::now();
    let mut ike_gone = None;
    let mut last = (Value::Null, Vec::new());
    let ok = poll_until(Duration::from_secs(10), || {
        let st = lab.a().status();
        let sas = lab.sw().sas();
        if ike_gone.is_none() && ike_of(&st).is_none() && sas.is_empty() {
            ike_gone = Some(t0.elapsed());
        }
        let down = ike_of(&st).is_none()
            && st
                .pointer(&format!("{T0}/outbound"))
                .is_none_or(Value::is_null)
            && st
                .pointer(&format!("{T0}/inbound"))
                .is_none_or(Value::is_null)
            && sas.is_empty();
        last = (st, sas);
        down
    });
    let (st, sas) = last;
    assert!(
        ok,
        "{label}: SAs remain: ironsec {st:#}\nstrongSwan {sas:#?}\n{}",
        lab.logs()
    );
    (ike_gone.unwrap_or_default(), t0.elapsed())
}

#[test]
#[ignore = "needs root"]
fn terminate_from_each_side_removes_the_sas() {
    let _s = serial();
    require_root();
    let mut s = Setup::ironsec_initiates();
    s.ironsec_extra.push("close_action = \"none\"".into());
    let lab = SwLab::start(&s);
    lab.wait_up();
    ping_both_ways(&lab, 3);

    let out = ironsecctl(&lab.a().socket, &["terminate", "site-b"]);
    assert!(
        out.status.success(),
        "ironsecctl terminate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ike, all) = wait_both_down(&lab, "ironsecctl terminate");
    println!(
        "ironsecctl terminate: IKE SAs gone on both sides after {ike:.2?}, ironsec's retired \
         CHILD_SAs after {all:.2?}"
    );
    let st = lab.a().status();
    assert_eq!(str_at(&st, &format!("{T0}/state")), "down");

    let out = ironsecctl(&lab.a().socket, &["initiate", "site-b"]);
    assert!(
        out.status.success(),
        "ironsecctl initiate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lab.wait_up();
    ping_both_ways(&lab, 3);

    lab.sw().swanctl_ok(&["--terminate", "--ike", SW_CONN]);
    let (ike, all) = wait_both_down(&lab, "swanctl --terminate");
    println!(
        "swanctl --terminate --ike: IKE SAs gone on both sides after {ike:.2?}, ironsec's \
         retired CHILD_SAs after {all:.2?}"
    );
    let log = lab.a().log_text();
    assert!(
        first_line_with(&log, &["IKE SA down", "PeerDeleted"]).is_some(),
        "{log}"
    );
    // close_action = "none": it stays down, and traffic for the site is dropped, not leaked.
    let r = ping_run(&lab.topo.lan_a, LAN_B_HOST, 3);
    assert_eq!(r.received(), 0);
    let st = lab.a().status();
    assert!(ike_of(&st).is_none(), "{st:#}");
    assert_eq!(str_at(&st, &format!("{T0}/state")), "down");
}

// ------------------------------------------------------------------------------------------
// 7. Refusals: wrong PSK, no common proposal

/// Waits for an ironsec log line containing all of `needles`.
fn wait_log_line(lab: &SwLab, needles: &[&str]) -> String {
    let mut found = None;
    let ok = poll_until(Duration::from_secs(10), || {
        found = first_line_with(&lab.a().log_text(), needles).map(str::to_string);
        found.is_some()
    });
    assert!(
        ok,
        "ironsec logged no line with {needles:?}\n{}",
        lab.logs()
    );
    found.unwrap()
}

fn no_established_sa(lab: &SwLab) {
    let st = lab.a().status();
    assert!(
        ike_of(&st).is_none_or(|i| i["state"] != "established"),
        "ironsec has an IKE SA: {st:#}"
    );
    let sas = lab.sw().sas();
    assert!(
        sas.iter().all(|s| s.state != "ESTABLISHED"),
        "strongSwan has an IKE SA: {sas:#?}"
    );
}

/// A refused `swanctl --initiate`: fails, and says why.
fn initiate_refused(lab: &SwLab, notify: &str) -> String {
    let out = lab.sw().swanctl(&["--initiate", "--child", SW_CHILD]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "swanctl --initiate succeeded:\n{text}"
    );
    assert!(
        text.contains(&format!("received {notify} notify")),
        "swanctl --initiate output lacks {notify}:\n{text}"
    );
    text
}

#[test]
#[ignore = "needs root"]
fn wrong_psk_is_refused_on_both_sides() {
    let _s = serial();
    require_root();
    let mut s = Setup::ironsec_initiates();
    s.sw_psk = Some(format!("0x{}", hex(&random_bytes(32))));
    let mut lab = SwLab::start(&s);
    // ironsec initiates: strongSwan's AUTH check fails, it answers AUTHENTICATION_FAILED.
    let line = wait_log_line(&lab, &["negotiation failed", "AUTHENTICATION_FAILED"]);
    println!("ironsec initiating with a wrong PSK logs:\n  {line}");
    assert!(line.contains("gw-a.example"), "{line}");
    assert!(
        lab.sw().log_text().contains("N(AUTH_FAILED)"),
        "strongSwan sent no AUTHENTICATION_FAILED\n{}",
        lab.logs()
    );
    no_established_sa(&lab);

    // strongSwan initiates: ironsec's AUTH check fails.
    lab.ironsec.take().unwrap().stop();
    let mut r = Setup::strongswan_initiates();
    r.sw_psk = s.sw_psk.clone();
    lab.start_ironsec(&r);
    initiate_refused(&lab, "AUTHENTICATION_FAILED");
    let line = wait_log_line(&lab, &["negotiation failed", "AUTHENTICATION_FAILED"]);
    println!("strongSwan initiating with a wrong PSK: ironsec logs:\n  {line}");
    assert!(line.contains("gw-b.example"), "{line}");
    no_established_sa(&lab);
}

#[test]
#[ignore = "needs root"]
fn no_common_proposal_is_refused_on_both_sides() {
    let _s = serial();
    require_root();
    let (ours, theirs) = (
        "aes128gcm16-prfsha256-x25519",
        "aes256gcm16-prfsha384-ecp384",
    );
    let mut s = Setup::ironsec_initiates().proposals(ours, "aes128gcm16");
    s.swanctl.push(("proposals", theirs.into()));
    let mut lab = SwLab::start(&s);
    // ironsec initiates: strongSwan answers IKE_SA_INIT with NO_PROPOSAL_CHOSEN.
    let line = wait_log_line(&lab, &["negotiation failed", "NO_PROPOSAL_CHOSEN"]);
    println!("IKE proposals, ironsec initiating:\n  {line}");
    assert!(line.contains(ours), "{line}");
    assert!(
        lab.sw()
            .log_text()
            .contains("received proposals unacceptable"),
        "{}",
        lab.logs()
    );
    no_established_sa(&lab);

    // strongSwan initiates: ironsec refuses, naming what was offered and what it accepts.
    lab.ironsec.take().unwrap().stop();
    let r = Setup::strongswan_initiates().proposals(ours, "aes128gcm16");
    lab.start_ironsec(&r);
    initiate_refused(&lab, "NO_PROPOSAL_CHOSEN");
    let line = wait_log_line(&lab, &["negotiation failed", "NO_PROPOSAL_CHOSEN", theirs]);
    println!("IKE proposals, strongSwan initiating: ironsec logs:\n  {line}");
    assert!(line.contains(ours), "{line}");
    no_established_sa(&lab);

    // The same IKE proposals but no common ESP proposal: the IKE SA comes up (RFC 7296 1.2:
    // a failed first CHILD_SA does not fail the IKE SA), the CHILD_SA does not.
    lab.stop_both();
    let (esp_ours, esp_theirs) = ("aes128gcm16", "chacha20poly1305");
    let mut e = Setup::strongswan_initiates().proposals(ours, esp_ours);
    e.swanctl.push(("esp_proposals", esp_theirs.into()));
    lab.start_strongswan(&e);
    lab.start_ironsec(&e);
    initiate_refused(&lab, "NO_PROPOSAL_CHOSEN");
    let line = wait_log_line(
        &lab,
        &["negotiation failed", "NO_PROPOSAL_CHOSEN", esp_theirs],
    );
    println!("ESP proposals, strongSwan initiating: ironsec logs:\n  {line}");
    assert!(line.contains(&format!("[{esp_ours}]")), "{line}");
    let st = lab.a().status();
    assert!(
        st.pointer(&format!("{T0}/outbound"))
            .is_none_or(Value::is_null),
        "{st:#}"
    );
    let sas = lab.sw().sas();
    assert!(
        sas.iter().all(|s| s.children.is_empty()),
        "strongSwan has a CHILD_SA: {sas:#?}"
    );
}

// ------------------------------------------------------------------------------------------
// 8. Traffic selector narrowing

#[test]
#[ignore = "needs root"]
fn narrowed_traffic_selectors_are_used_and_enforced() {
    let _s = serial();
    require_root();
    // ironsec proposes 10.1.0.0/24 === 10.2.0.0/24; strongSwan allows only 10.2.0.0/25 on its
    // side and narrows (RFC 7296 2.9). lanB also gets 10.2.0.200, outside the narrowed range.
    let mut s = Setup::ironsec_initiates();
    s.swanctl.push(("local_ts", "10.2.0.0/25".into()));
    let mut lab = SwLab::new();
    run_ok(
        Command::new("ip").args([
            "-n",
            &lab.topo.lan_b,
            "addr",
            "add",
            "10.2.0.200/24",
            "dev",
            "b-lan",
        ]),
        Duration::from_secs(5),
    );
    lab.start_strongswan(&s);
    lab.start_ironsec(&s);
    let (_, st, ike) = lab.wait_up();
    check_views(&st, &ike, "aes128gcm16-prfsha256-x25519", "aes128gcm16");
    assert_eq!(
        strs_at(&st, &format!("{T0}/child/local_ts")),
        ["10.1.0.0/24"]
    );
    assert_eq!(
        strs_at(&st, &format!("{T0}/child/remote_ts")),
        ["10.2.0.0/25"]
    );
    println!(
        "narrowed CHILD_SA: ironsec {:?} === {:?}",
        strs_at(&st, &format!("{T0}/child/local_ts")),
        strs_at(&st, &format!("{T0}/child/remote_ts"))
    );
    ping_both_ways(&lab, 5);

    let before = lab.a().status();
    let sw_before = sw_counts_traffic(&lab);
    // lanA -> 10.2.0.200: outside the CHILD_SA, so ironsec does not send it (counted).
    let r = ping_run(&lab.topo.lan_a, Ipv4Addr::new(10, 2, 0, 200), 5);
    assert_eq!(r.received(), 0, "10.2.0.200 must be unreachable");
    // lanB 10.2.0.200 -> lanA: strongSwan has no policy for that source either.
    assert_eq!(ping_from(&lab.topo.lan_b, "10.2.0.200", "10.1.0.2", 3), 0);
    let after = lab.a().status();
    let sw_after = sw_counts_traffic(&lab);
    let d = |k: &str| num(&after, k) - num(&before, k);
    println!(
        "outside the narrowed selectors: ironsec drops.no_policy +{}, outbound packets +{}, \
         inbound +{}; strongSwan packets in +{} out +{}",
        d("/drops/no_policy"),
        d(&format!("{T0}/outbound/packets")),
        d(&format!("{T0}/inbound/packets")),
        sw_after.packets_in - sw_before.packets_in,
        sw_after.packets_out - sw_before.packets_out
    );
    assert_eq!(d("/drops/no_policy"), 5, "{after:#}");
    assert_eq!(d(&format!("{T0}/outbound/packets")), 0, "{after:#}");
    assert_eq!(d(&format!("{T0}/inbound/packets")), 0, "{after:#}");
    assert_eq!(sw_after.packets_in, sw_before.packets_in);
    assert_eq!(sw_after.packets_out, sw_before.packets_out);
    // Inside still works.
    ping_both_ways(&lab, 3);
}

// ------------------------------------------------------------------------------------------
// 9. A refused CHILD_SA is retried

/// The refusal ironsec's status shows for the first tunnel, once it has at least `refusals`.
fn wait_refusals(lab: &SwLab, refusals: u64, within: Duration) -> Value {
    let mut last = Value::Null;
    let ok = poll_until(within, || {
        let Ok(st) = ctl_status(&lab.a().socket) else {
            return false;
        };
        let n = st
            .pointer(&format!("{T0}/child_refused/refusals"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        last = st;
        n >= refusals
    });
    assert!(
        ok,
        "ironsec's status shows no {refusals}th CHILD_SA refusal within {within:?}: {last:#}\n{}",
        lab.logs()
    );
    last
}

/// strongSwan is configured with an ESP proposal ironsec does not offer: the IKE SA comes up,
/// the CHILD_SA is refused (NO_PROPOSAL_CHOSEN), and ironsec's status says so and when it
/// tries again; the try after 5 s (a new IKE SA) is refused too and the next one is 10 s
/// later. Then strongSwan's config is fixed with `swanctl --load-conns` and the tunnel comes up
/// by itself at the next try, with no ironsecctl command: pings pass both ways.
#[test]
#[ignore = "needs root"]
fn refused_child_sa_is_retried_until_strongswan_accepts_it() {
    let _s = serial();
    require_root();
    let (ike, esp_ours, esp_theirs) = (
        "aes128gcm16-prfsha256-x25519",
        "aes128gcm16",
        "chacha20poly1305",
    );
    let mut s = Setup::ironsec_initiates().proposals(ike, esp_ours);
    s.swanctl.push(("esp_proposals", esp_theirs.into()));
    let lab = SwLab::start(&s);

    let st = wait_refusals(&lab, 1, Duration::from_secs(10));
    let t_first = Instant::now();
    let r = st.pointer(&format!("{T0}/child_refused")).unwrap();
    println!("status after the first refusal: {r}");
    assert_eq!(r["notify"], "NO_PROPOSAL_CHOSEN", "{st:#}");
    assert!(
        r["detail"].as_str().unwrap_or("").contains(esp_ours),
        "{st:#}"
    );
    let next = r["next_try_in_secs"]
        .as_u64()
        .expect("a retry is scheduled");
    // Whole seconds, both rounded down: the delay after the refusal is 5 s.
    let delay = next + r["secs_ago"].as_u64().unwrap();
    assert!(
        (4..=5).contains(&delay),
        "first retry {delay} s after the refusal, expected 5: {st:#}"
    );
    assert_ne!(str_at(&st, &format!("{T0}/state")), "up");
    let text =
        String::from_utf8_lossy(&ironsecctl(&lab.a().socket, &["status"]).stdout).into_owned();
    assert!(
        text.contains("child SA refused: NO_PROPOSAL_CHOSEN") && text.contains("next try"),
        "ironsecctl status does not show the refusal:\n{text}"
    );
    let line = wait_log_line(&lab, &["CHILD_SA refused", "NO_PROPOSAL_CHOSEN"]);
    println!("ironsec logs:\n  {line}");

    // The retry 5 s later is a new IKE SA, refused again: the next try is 10 s after it.
    let st = wait_refusals(&lab, 2, Duration::from_secs(15));
    let waited = t_first.elapsed();
    let r = st.pointer(&format!("{T0}/child_refused")).unwrap();
    println!("status after the second refusal ({waited:?} later): {r}");
    let next = r["next_try_in_secs"]
        .as_u64()
        .expect("a retry is scheduled");
    let delay = next + r["secs_ago"].as_u64().unwrap();
    assert!(
        (9..=10).contains(&delay),
        "second retry {delay} s after the refusal, expected 10 (doubled): {st:#}"
    );
    let sw_ikes = lab.sw().sas();
    assert!(
        sw_ikes.len() <= 1,
        "the IKE SA without a CHILD_SA is deleted before the next one: {sw_ikes:#?}"
    );

    // Fix strongSwan's config; nothing is done on ironsec's side.
    let fixed = rewrite_swanctl(
        &fs::read_to_string(lab.sw_dir.join("swanctl.conf")).unwrap(),
        &[("esp_proposals", esp_ours.to_string())],
    );
    let conf = lab.sw_dir.join("swanctl-fixed.conf");
    write_secret(&conf, fixed);
    lab.sw()
        .swanctl_ok(&["--load-conns", "--file", conf.to_str().unwrap()]);
    let t_fix = Instant::now();
    let (_, st, _) = lab.wait_up_within(Duration::from_secs(20));
    println!(
        "tunnel up {:?} after strongSwan's config was fixed (next try was due in {next}s)",
        t_fix.elapsed()
    );
    assert!(
        st.pointer(&format!("{T0}/child_refused")).is_none(),
        "the refusal is cleared once a CHILD_SA is up: {st:#}"
    );
    ping_both_ways(&lab, 5);
    sw_counts_traffic(&lab);
}

/// The first CHILD_SA takes no DH, so a PFS group mismatch shows only at the rekey: ironsec
/// offers `aes128gcm16-x25519`, strongSwan wants `aes128gcm16-ecp384`. The rekey
/// (CREATE_CHILD_SA) is refused and status says so while the old SA carries on; when the old
/// SA's hard lifetime ends, a new IKE SA (whose IKE_AUTH needs no DH) brings the tunnel back by
/// itself.
#[test]
#[ignore = "needs root"]
fn refused_child_rekey_recovers_with_a_new_ike_sa() {
    let _s = serial();
    require_root();
    let ike = "aes128gcm16-prfsha256-x25519";
    let mut s = Setup::ironsec_initiates().proposals(ike, "aes128gcm16-x25519");
    s.swanctl
        .push(("esp_proposals", "aes128gcm16-ecp384".into()));
    // CHILD_SA rekey at 9-10 s, hard lifetime 12 s.
    s.ironsec.push(("rekey_time", "10".into()));
    let lab = SwLab::start(&s);
    let (_, st, _) = lab.wait_up();
    let first_ike = str_at(&st, &format!("{T0}/ike/spi_i")).to_string();
    ping_both_ways(&lab, 3);

    // The rekey is refused; the old SA still carries the traffic.
    let mut last = Value::Null;
    let ok = poll_until(Duration::from_secs(15), || {
        let Ok(st) = ctl_status(&lab.a().socket) else {
            return false;
        };
        let rekey = st
            .pointer(&format!("{T0}/child_refused/rekey"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        last = st;
        rekey
    });
    assert!(ok, "no refused rekey in status: {last:#}\n{}", lab.logs());
    let r = last.pointer(&format!("{T0}/child_refused")).unwrap();
    println!("status after the refused rekey: {r}");
    assert!(
        ["NO_PROPOSAL_CHOSEN", "INVALID_KE_PAYLOAD"].contains(&r["notify"].as_str().unwrap_or("")),
        "{last:#}"
    );
    assert_eq!(str_at(&last, &format!("{T0}/state")), "up", "{last:#}");
    let line = wait_log_line(&lab, &["CHILD_SA rekey refused"]);
    println!("ironsec logs:\n  {line}");

    // The old SA expires; a new IKE SA brings the tunnel back, with no command.
    let t0 = Instant::now();
    let ok = poll_until(Duration::from_secs(30), || {
        let Ok(st) = ctl_status(&lab.a().socket) else {
            return false;
        };
        let back = tunnel_up(&st)
            && st
                .pointer(&format!("{T0}/ike/spi_i"))
                .and_then(Value::as_str)
                != Some(first_ike.as_str())
            && st.pointer(&format!("{T0}/child_refused")).is_none();
        last = st;
        back
    });
    assert!(
        ok,
        "the tunnel did not come back on a new IKE SA: {last:#}\n{}",
        lab.logs()
    );
    println!(
        "tunnel back on a new IKE SA {:?} after the refusal was seen",
        t0.elapsed()
    );
    let line = wait_log_line(&lab, &["CHILD_SA expired, its rekeys refused"]);
    println!("ironsec logs:\n  {line}");
    // How long the tunnel had no CHILD_SA: from the expiry to the next "CHILD_SA up".
    let log = lab.a().log_text();
    let expired_at = log_line_time(&line).unwrap();
    let up_again = log
        .lines()
        .filter(|l| l.contains("CHILD_SA up"))
        .filter_map(log_line_time)
        .find(|t| *t >= expired_at);
    println!(
        "no CHILD_SA for {:.3} s (expiry to the new IKE SA's CHILD_SA up, ironsec's log)",
        up_again.expect("a CHILD_SA up line after the expiry") - expired_at
    );
    ping_both_ways(&lab, 3);
    sw_counts_traffic(&lab);
}

// ------------------------------------------------------------------------------------------
// 10. Protocol and port selectors

/// An nftables counter in gwA for packets to lanB (10.2.0.0/24) that leave by any device
/// but ironsec's TUN: inner packets in clear. It goes with the namespace.
fn count_clear_to_lan_b(lab: &SwLab) {
    for cmd in [
        "add table inet selguard",
        "add chain inet selguard post { type filter hook postrouting priority 0; policy accept; }",
        "add rule inet selguard post oifname != \"ipsec0\" ip daddr 10.2.0.0/24 counter",
    ] {
        run_ok(
            ns_cmd(&lab.topo.gw_a, "nft").arg(cmd),
            Duration::from_secs(5),
        );
    }
}

/// Packets the counter of [`count_clear_to_lan_b`] saw.
fn clear_to_lan_b(lab: &SwLab) -> u64 {
    let out = run_ok(
        ns_cmd(&lab.topo.gw_a, "nft").args(["list", "chain", "inet", "selguard", "post"]),
        Duration::from_secs(5),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_once("counter packets ")
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no counter in gwA's selguard chain:\n{text}"))
}

/// A TCP connection attempt from lanA to 10.2.0.2:`port` for up to 3 s (SYN and its
/// retransmissions); whether it connected.
fn tcp_connects(lab: &SwLab, port: u16) -> bool {
    run_timeout(
        ns_cmd(&lab.topo.lan_a, "timeout").args([
            "3",
            "bash",
            "-c",
            &format!("exec 3<>/dev/tcp/10.2.0.2/{port}"),
        ]),
        Duration::from_secs(10),
    )
    .status
    .success()
}

/// The CHILD_SA is 10.1.0.0/24 === 10.2.0.0/24[tcp/5201]: iperf3 (TCP to 5201) crosses it
/// both ways, counted on both sides; ping and TCP to another port do not cross it, are
/// counted as ironsec's `no_policy` drops and never leave gwA in clear.
fn only_tcp_5201_crosses(lab: &SwLab) {
    let (_, st, ike) = lab.wait_up();
    check_views(&st, &ike, "aes128gcm16-prfsha256-x25519", "aes128gcm16");
    assert_eq!(
        strs_at(&st, &format!("{T0}/child/remote_ts")),
        ["10.2.0.0/24[tcp/5201]"],
        "{st:#}"
    );
    assert_eq!(
        strs_at(&st, &format!("{T0}/child/local_ts")),
        ["10.1.0.0/24"]
    );
    count_clear_to_lan_b(lab);

    let before = lab.a().status();
    let (ab, ba) = iperf_both_ways(lab, 1 << 20);
    println!(
        "  iperf3 TCP/5201 through the narrowed CHILD_SA: A->B {ab:.0} Mbit/s, B->A {ba:.0} Mbit/s"
    );
    let sw_before = sw_counts_traffic(lab);
    let mid = lab.a().status();
    let d = |a: &Value, b: &Value, k: &str| num(b, k) - num(a, k);
    for dir in ["outbound", "inbound"] {
        assert!(
            d(&before, &mid, &format!("{T0}/{dir}/packets")) > 100,
            "TCP/5201 must cross the SA ({dir}): {mid:#}"
        );
    }

    // Outside the selectors: ICMP both ways, TCP to 5202.
    let r = ping_run(&lab.topo.lan_a, LAN_B_HOST, 5);
    assert_eq!(
        r.received(),
        0,
        "ping lanA -> lanB must not cross a TCP/5201 SA"
    );
    assert!(
        !tcp_connects(lab, 5202),
        "TCP/5202 must not cross a TCP/5201 SA"
    );
    assert_eq!(ping_from(&lab.topo.lan_b, "10.2.0.2", "10.1.0.2", 3), 0);
    let after = lab.a().status();
    let sw_after = sw_counts_traffic(lab);
    let no_policy = d(&mid, &after, "/drops/no_policy");
    println!(
        "outside [tcp/5201]: ironsec drops.no_policy +{no_policy}, outbound packets +{}, inbound \
         +{}, drops.selector {}; strongSwan packets in +{} out +{}; in clear on gwA's WAN: {}",
        d(&mid, &after, &format!("{T0}/outbound/packets")),
        d(&mid, &after, &format!("{T0}/inbound/packets")),
        num(&after, "/drops/selector"),
        sw_after.packets_in - sw_before.packets_in,
        sw_after.packets_out - sw_before.packets_out,
        clear_to_lan_b(lab)
    );
    // 5 pings and at least the first SYN (with its retransmissions in 3 s).
    assert!(no_policy >= 6, "{after:#}");
    assert_eq!(
        d(&mid, &after, &format!("{T0}/outbound/packets")),
        0,
        "{after:#}"
    );
    assert_eq!(
        d(&mid, &after, &format!("{T0}/inbound/packets")),
        0,
        "{after:#}"
    );
    assert_eq!(num(&after, "/drops/selector"), 0, "{after:#}");
    assert_eq!(sw_after.packets_in, sw_before.packets_in);
    assert_eq!(sw_after.packets_out, sw_before.packets_out);
    assert_eq!(clear_to_lan_b(lab), 0, "inner packets left gwA in clear");
    // And TCP/5201 still works after all that.
    assert!(tcp_connects_5201_through(lab));
}

/// iperf3 once more, A -> B: the SA is still there for its own traffic.
fn tcp_connects_5201_through(lab: &SwLab) -> bool {
    let r = iperf3_tcp(
        &lab.topo.lan_a,
        &lab.topo.lan_b,
        LAN_B_HOST,
        64 << 10,
        false,
        &lab.dir.path,
        "again",
    );
    r.sent >= 64 << 10
}

#[test]
#[ignore = "needs root"]
fn strongswan_narrows_to_a_port_and_ironsec_sends_only_that() {
    let _s = serial();
    require_root();
    // ironsec initiates 10.1.0.0/24 === 10.2.0.0/24; strongSwan allows only TCP/5201 on its
    // side and narrows (RFC 7296 2.9); ironsec accepts the narrower CHILD_SA and enforces it.
    let mut s = Setup::ironsec_initiates();
    s.swanctl.push(("local_ts", "10.2.0.0/24[tcp/5201]".into()));
    let lab = SwLab::start(&s);
    only_tcp_5201_crosses(&lab);
}

#[test]
#[ignore = "needs root"]
fn ironsec_narrows_strongswan_to_its_configured_port() {
    let _s = serial();
    require_root();
    // strongSwan initiates with whole subnets; ironsec's config says 10.2.0.0/24[tcp/5201],
    // so as responder it narrows, and strongSwan installs exactly that.
    let mut s = Setup::strongswan_initiates();
    s.ironsec
        .push(("remote_ts", toml_array(&["10.2.0.0/24[tcp/5201]"])));
    let lab = SwLab::start(&s);
    let out = lab.sw().swanctl_ok(&["--initiate", "--child", SW_CHILD]);
    assert!(
        out.contains("initiate completed successfully"),
        "swanctl --initiate: {out}"
    );
    let (_, st, ike) = lab.wait_up();
    let c = sw_child_for(&ike, &st);
    assert_eq!(c.local_ts, ["10.2.0.0/24[tcp/5201]"], "strongSwan: {c:#?}");
    only_tcp_5201_crosses(&lab);
}

/// strongSwan's child from `sw.sas()` by name.
fn sw_child_named(lab: &SwLab, name: &str) -> SwChild {
    let sas = lab.sw().sas();
    sas.iter()
        .flat_map(|i| i.children.iter())
        .find(|c| c.name == name && c.state == "INSTALLED")
        .cloned()
        .unwrap_or_else(|| panic!("strongSwan has no INSTALLED child {name}: {sas:#?}"))
}

#[test]
#[ignore = "needs root"]
fn a_port_child_sa_beside_a_subnet_child_sa_takes_only_its_port() {
    let _s = serial();
    require_root();
    // One IKE SA, two CHILD_SAs strongSwan initiates: site-a for the whole subnets, site-a-5201
    // for TCP/5201 on its side only. ironsec's one connection covers both; its fast path must
    // send TCP/5201 on the second and everything else on the first.
    let mut s = Setup::strongswan_initiates();
    s.swanctl_edit = Some(|t| {
        add_child(
            &t,
            SW_CHILD,
            "site-a-5201",
            &[("local_ts", "10.2.0.0/24[tcp/5201]".into())],
        )
    });
    let lab = SwLab::start(&s);
    lab.sw().swanctl_ok(&["--initiate", "--child", SW_CHILD]);
    lab.wait_up();
    let out = lab
        .sw()
        .swanctl_ok(&["--initiate", "--child", "site-a-5201"]);
    assert!(out.contains("initiate completed successfully"), "{out}");
    let up = poll_until(UP_TIMEOUT, || {
        ike_of(&lab.a().status()).is_some_and(|i| i["children"] == 2)
    });
    assert!(up, "second CHILD_SA not up in ironsec\n{}", lab.logs());
    let st = lab.a().status();
    assert_eq!(
        strs_at(&st, &format!("{T0}/children/1/remote_ts")),
        ["10.2.0.0/24[tcp/5201]"],
        "{st:#}"
    );

    let (whole0, port0) = (
        sw_child_named(&lab, SW_CHILD),
        sw_child_named(&lab, "site-a-5201"),
    );
    iperf3_tcp(
        &lab.topo.lan_a,
        &lab.topo.lan_b,
        LAN_B_HOST,
        1 << 20,
        false,
        &lab.dir.path,
        "tcp5201",
    );
    let (whole1, port1) = (
        sw_child_named(&lab, SW_CHILD),
        sw_child_named(&lab, "site-a-5201"),
    );
    ping_ok(&lab, &lab.topo.lan_a, LAN_B_HOST, 5);
    let (whole2, port2) = (
        sw_child_named(&lab, SW_CHILD),
        sw_child_named(&lab, "site-a-5201"),
    );
    println!(
        "strongSwan packets in: TCP/5201 run: site-a +{}, site-a-5201 +{}; 5 pings: site-a +{}, \
         site-a-5201 +{}",
        whole1.packets_in - whole0.packets_in,
        port1.packets_in - port0.packets_in,
        whole2.packets_in - whole1.packets_in,
        port2.packets_in - port1.packets_in
    );
    assert!(port1.packets_in - port0.packets_in > 100, "{port1:#?}");
    assert_eq!(
        whole1.packets_in, whole0.packets_in,
        "TCP/5201 leaked onto site-a"
    );
    assert_eq!(whole2.packets_in - whole1.packets_in, 5, "{whole2:#?}");
    assert_eq!(
        port2.packets_in, port1.packets_in,
        "ICMP leaked onto site-a-5201"
    );
}

#[test]
#[ignore = "needs root"]
fn ironsec_proposes_its_configured_port_and_strongswan_accepts_it() {
    let _s = serial();
    require_root();
    // ironsec initiates with remote_ts 10.2.0.0/24[tcp/5201] in its TSr; strongSwan's whole
    // subnet contains it, so strongSwan answers with exactly that.
    let mut s = Setup::ironsec_initiates();
    s.ironsec
        .push(("remote_ts", toml_array(&["10.2.0.0/24[tcp/5201]"])));
    let lab = SwLab::start(&s);
    only_tcp_5201_crosses(&lab);
}

// ------------------------------------------------------------------------------------------
// 11. Volume lifetimes and IKE fragmentation

/// strongSwan's CHILD_SA rekeyed every 3.5-4 MB (hard limit at 8 MB). rand_bytes is set:
/// its default (life_bytes - rekey_bytes) subtracts up to 4 MB from rekey_bytes, which with
/// kernel-libipsec left the first CHILD_SA without a soft limit (hard expiry, delete, loss)
/// and rekeyed the next one after 300 kB.
fn sw_child_volume(text: String) -> String {
    let out = text.replacen(
        "rekey_time = 1h",
        "rekey_time = 1h\n                rekey_bytes = 4000000\n                life_bytes = 8000000\n                rand_bytes = 500000",
        1,
    );
    assert_ne!(out, text, "no child rekey_time in swanctl.conf");
    out
}

/// 20 s of 8 Mbit/s UDP lanA -> lanB (the volume) with pings every 10 ms both ways beside
/// it (the judge). Asserts that not one ping was lost: a rekey that left a gap of more than
/// 10 ms in either direction would lose some. UDP loss is reported and bounded only loosely
/// (1%): on this 2-core machine shared with other tests a stalled receiver overflows its
/// socket buffer now and then whatever the tunnel does (seen once: 62 datagrams in the second
/// before any rekey). Returns the iperf3 datagram count.
fn sustained_traffic_without_loss(lab: &SwLab, label: &str) -> u64 {
    let spawn = |ns: &str, dst: Ipv4Addr| {
        ping_paced_in_background(
            ns,
            dst,
            2000,
            pattern_payload(PING_PATTERN, 56),
            Duration::from_millis(10),
            Duration::from_secs(2),
        )
    };
    let (ab, ba) = (
        spawn(&lab.topo.lan_a, LAN_B_HOST),
        spawn(&lab.topo.lan_b, LAN_A_HOST),
    );
    let report = iperf3_json(
        &lab.topo.lan_a,
        &lab.topo.lan_b,
        LAN_B_HOST,
        5201,
        &["-u", "-b", "8M", "-l", "1200", "-t", "20"],
        &lab.dir.path,
        label,
    );
    let (ab, ba) = (ab.join().unwrap(), ba.join().unwrap());
    for (dir, run) in [("lanA -> lanB", &ab), ("lanB -> lanA", &ba)] {
        let lost: Vec<u16> = run.lost().iter().map(|r| r.seq).collect();
        println!(
            "  {label}: {dir}: {} pings at 100/s, {} answered, lost {lost:?}, max rtt {:.2?}",
            run.sent(),
            run.received(),
            run.max_rtt()
        );
        assert!(
            lost.is_empty(),
            "{label}: {dir}: pings lost {lost:?}\n{}",
            lab.logs()
        );
    }
    let sum = &report["end"]["sum"];
    let (packets, lost) = (
        sum["packets"].as_u64().unwrap_or(0),
        sum["lost_packets"].as_u64().unwrap_or(u64::MAX),
    );
    println!("  {label}: iperf3 UDP {packets} datagrams, {lost} lost");
    assert!(
        packets > 10_000,
        "{label}: iperf3 sent too little: {report:#}"
    );
    assert!(
        lost * 100 <= packets,
        "{label}: {lost} of {packets} UDP datagrams lost\n{}",
        lab.logs()
    );
    packets
}

#[test]
#[ignore = "needs root"]
fn volume_rekeys_with_strongswan_lose_no_packet() {
    let _s = serial();
    require_root();
    for (label, ours) in [
        ("strongSwan's rekey_bytes", false),
        ("ironsec's rekey_bytes", true),
    ] {
        let mut s = Setup::ironsec_initiates();
        if ours {
            s.ironsec_extra.push("rekey_bytes = \"4MB\"".into());
            s.ironsec_extra.push("life_bytes = \"16MB\"".into());
        } else {
            s.swanctl_edit = Some(sw_child_volume);
        }
        let lab = SwLab::start(&s);
        lab.wait_up();
        println!("{label} (4 MB) under sustained traffic:");
        sustained_traffic_without_loss(&lab, label);
        let log = lab.a().log_text();
        let rekeys = |initiated: bool| {
            log.lines()
                .filter(|l| {
                    l.contains("CHILD_SA rekeyed") && l.contains(&format!("initiated={initiated}"))
                })
                .count()
        };
        let (by_us, by_sw) = (rekeys(true), rekeys(false));
        println!("  ironsec log: CHILD_SA rekeyed by ironsec {by_us}, by strongSwan {by_sw}");
        // About 20 MB each way at 4 MB per CHILD_SA: several rekeys, by the side whose limit
        // it is.
        let (mine, theirs) = if ours { (by_us, by_sw) } else { (by_sw, by_us) };
        assert!(
            mine >= 3,
            "{label}: expected several rekeys by that side, saw {mine} (other side {theirs})\n{}",
            lab.logs()
        );
        assert!(
            !log.contains("hard volume limit"),
            "{label}: ironsec reached a hard limit\n{}",
            lab.logs()
        );
        let st = lab.a().status();
        for d in ["authentication", "unknown_spi", "replay", "no_sa"] {
            assert_eq!(
                st["drops"][d].as_u64().unwrap_or(0),
                0,
                "{label}: drops.{d}: {st:#}"
            );
        }
        let (_, _, ike) = lab.wait_up();
        let installed = ike
            .children
            .iter()
            .filter(|c| c.state == "INSTALLED")
            .count();
        assert_eq!(installed, 1, "{label}: one CHILD_SA in use: {ike:#?}");
    }
}

/// charon's own IKE fragments at most 576 bytes too, so both directions of IKE_AUTH are
/// fragmented.
fn sw_fragment_576(text: String) -> String {
    let out = text.replacen("charon {\n", "charon {\n    fragment_size = 576\n", 1);
    assert_ne!(out, text, "no charon section in strongswan.conf");
    out
}

#[test]
#[ignore = "needs root"]
fn ike_fragments_cross_a_small_wan_mtu_to_strongswan() {
    let _s = serial();
    require_root();
    // IKE_AUTH carries 41 subnets each way (about 700 bytes of selectors alone) over a WAN
    // with an MTU of 576 whose gateways drop IP fragments, as many firewalls do: only IKE
    // fragments (RFC 7383) get it through.
    let lab_subnets: Vec<String> = std::iter::once("10.1.0.0/24".to_string())
        .chain((100..140).map(|i| format!("10.1.{i}.0/24")))
        .collect();
    let refs: Vec<&str> = lab_subnets.iter().map(String::as_str).collect();
    let mut s = Setup::ironsec_initiates();
    s.ironsec.push(("local_ts", toml_array(&refs)));
    // A gateway key beside tun_mtu (the example sets no ike_fragment_size).
    s.ironsec
        .push(("tun_mtu", "1400\nike_fragment_size = 576".to_string()));
    s.swanctl.push(("remote_ts", "10.1.0.0/16".to_string()));
    s.sw_settings = Some(sw_fragment_576);
    let mut lab = SwLab::new();
    for gw in [&lab.topo.gw_a, &lab.topo.gw_b] {
        run_ok(
            ns_cmd(gw, "ip").args(["link", "set", "wan", "mtu", "576"]),
            Duration::from_secs(10),
        );
        run_ok(
            ns_cmd(gw, "nft").args(["add table ip nofrag\n\
             add chain ip nofrag pre { type filter hook prerouting priority -500; }\n\
             add rule ip nofrag pre ip frag-off & 0x3fff != 0 counter drop\n\
             add chain ip nofrag out { type filter hook output priority -500; }\n\
             add rule ip nofrag out ip frag-off & 0x3fff != 0 counter drop"]),
            Duration::from_secs(10),
        );
    }
    let cap_file = lab.dir.join("wan-b.pcap");
    let cap = Capture::start(
        &lab.topo.gw_b,
        "wan",
        &cap_file,
        &["udp", "port", "500", "or", "udp", "port", "4500"],
        lab.dir.join("tcpdump.log"),
    );
    lab.start_strongswan(&s);
    lab.start_ironsec(&s);
    let (took, _, ike) = lab.wait_up();
    ping_both_ways(&lab, 3);
    let _ = cap.stop();
    println!("up over a 576-byte WAN in {took:.2?}");
    assert!(!ike.children.is_empty());
    // tshark, the outside judge: IKE_AUTH (exchange 35) from each side in SKF (53) fragments,
    // no IKE datagram above the MTU.
    let out = run_ok(
        Command::new("tshark").args([
            "-r",
            cap_file.to_str().unwrap(),
            "-Y",
            "isakmp",
            "-T",
            "fields",
            "-e",
            "ip.src",
            "-e",
            "ip.len",
            "-e",
            "isakmp.exchangetype",
            "-e",
            "isakmp.nextpayload",
        ]),
        Duration::from_secs(60),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut skf = [0usize; 2];
    for l in text.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        let len: usize = f.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
        assert!(
            len <= 576,
            "IKE datagram of {len} bytes over a 576-byte WAN: {l}"
        );
        let first_payload = f.get(3).and_then(|v| v.split(',').next()).unwrap_or("");
        if f.get(2) == Some(&"35") && first_payload == "53" {
            skf[usize::from(f[0] == "192.0.2.2")] += 1;
        }
    }
    println!(
        "  tshark: IKE_AUTH in SKF fragments: ironsec {}, strongSwan {}",
        skf[0], skf[1]
    );
    assert!(
        skf[0] >= 2 && skf[1] >= 2,
        "expected IKE_AUTH in several SKF fragments each way, saw {skf:?}:\n{text}\n{}",
        lab.logs()
    );
    for gw in [&lab.topo.gw_a, &lab.topo.gw_b] {
        let rules = run_ok(
            ns_cmd(gw, "nft").args(["list", "table", "ip", "nofrag"]),
            Duration::from_secs(10),
        );
        let rules = String::from_utf8_lossy(&rules.stdout).into_owned();
        assert_eq!(
            rules.matches("packets 0 bytes 0 drop").count(),
            2,
            "IP fragments were sent or received in {gw}:\n{rules}"
        );
    }
}

// ------------------------------------------------------------------------------------------
// Issue 20: the DH groups real gear offers

/// MODP-2048 (what strongSwan and most gear propose by default), MODP-3072 with group 24 for
/// PFS (Azure's "DHGroup24"), and ECP-521: the IKE SA in the group, data through, then
/// strongSwan rekeys the CHILD_SA with a fresh exchange in the ESP proposal's group.
#[test]
#[ignore = "needs root"]
fn modp_and_ecp521_groups_with_strongswan() {
    let _s = serial();
    require_root();
    let cases = [
        (
            "aes256gcm16-prfsha256-modp2048",
            "aes256gcm16-modp2048",
            true,
        ),
        (
            "aes256gcm16-prfsha256-modp3072",
            "aes256gcm16-modp2048s256",
            false,
        ),
        ("aes256gcm16-prfsha512-ecp521", "aes256gcm16-ecp521", true),
    ];
    let mut lab = SwLab::new();
    for (ike, esp, ironsec_first) in cases {
        let who = if ironsec_first {
            "ironsec"
        } else {
            "strongSwan"
        };
        println!("{ike} / {esp}, {who} initiates:");
        let setup = if ironsec_first {
            Setup::ironsec_initiates()
        } else {
            Setup::strongswan_initiates()
        }
        .proposals(ike, esp);
        lab.start_strongswan(&setup);
        lab.start_ironsec(&setup);
        if ironsec_first {
            lab.wait_up();
            println!(
                "  IKE SA + CHILD_SA in {} (ironsec's log)",
                exchange_time(&lab.a().log_text())
            );
        } else {
            let t0 = Instant::now();
            lab.sw().swanctl_ok(&["--initiate", "--child", SW_CHILD]);
            println!("  swanctl --initiate completed in {:.2?}", t0.elapsed());
            lab.wait_up();
        }
        // The first CHILD_SA comes with IKE_AUTH, without a KE.
        let first_esp = "aes256gcm16";
        check_tunnel(&lab, ike, first_esp, 5);

        let old = str_at(&lab.a().status(), &format!("{T0}/outbound/spi")).to_string();
        let t0 = Instant::now();
        lab.sw().swanctl_ok(&["--rekey", "--child", SW_CHILD]);
        let mut st = Value::Null;
        let rekeyed = poll_until(Duration::from_secs(15), || {
            st = lab.a().status();
            st.pointer(&format!("{T0}/child/algorithms"))
                .is_some_and(|a| a == esp)
                && st
                    .pointer(&format!("{T0}/outbound/spi"))
                    .is_some_and(|s| s != old.as_str())
        });
        assert!(
            rekeyed,
            "{esp}: no PFS rekey on ironsec's side: {st:#}\n{}",
            lab.logs()
        );
        println!("  strongSwan's PFS rekey done in {:.2?}", t0.elapsed());
        let (_, st, ike_sa) = lab.wait_up();
        check_views(&st, &ike_sa, ike, esp);
        ping_both_ways(&lab, 5);

        // strongSwan rekeys the IKE SA: a CREATE_CHILD_SA with a KE in the IKE group.
        let spi_i = ike_sa.spi_i.clone();
        lab.sw().swanctl_ok(&["--rekey", "--ike", SW_CONN]);
        let mut st = Value::Null;
        let rekeyed = poll_until(Duration::from_secs(15), || {
            st = lab.a().status();
            matching_ike(&st, &lab.sw().sas(), SW_CONN).is_some_and(|i| i.spi_i != spi_i)
        });
        assert!(rekeyed, "{ike}: no IKE SA rekey: {st:#}\n{}", lab.logs());
        let (_, st, ike_sa) = lab.wait_up();
        check_views(&st, &ike_sa, ike, esp);
        ping_both_ways(&lab, 5);
        println!(
            "  strongSwan's IKE SA rekey in {}: done, pings through",
            ike_sa.algorithms
        );
        lab.stop_both();
    }
}

// ------------------------------------------------------------------------------------------
// Issue 20: the algorithm matrix, judged by tshark with strongSwan's own keys

const WAN_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const WAN_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// Captures the WAN during pings and a bounded iperf3 run each way, then has tshark decrypt
/// every ESP frame with the keys strongSwan logged and check every ICV; returns (ESP frames,
/// decrypted ICMP, decrypted TCP).
fn tshark_decrypts_with_strongswans_keys(lab: &SwLab, esp: &str) -> (usize, usize, usize) {
    let file = lab.dir.join(&format!("wan-{}.pcap", lab.starts));
    let cap = Capture::start(
        &lab.topo.gw_a,
        "wan",
        &file,
        &["udp", "port", "4500"],
        lab.dir.join(&format!("tcpdump-{}.log", lab.starts)),
    );
    ping_both_ways(lab, 5);
    iperf_both_ways(lab, 1 << 20);
    let _ = cap.stop();

    let log = lab.sw().log_text();
    let key = |n: &str| {
        sw_logged_key(&log, n).unwrap_or_else(|| panic!("no '{n} key' dump in charon.log"))
    };
    let (ei, er) = (key("encryption initiator"), key("encryption responder"));
    let aead = esp.contains("gcm16");
    let (ii, ir) = if aead {
        (Vec::new(), Vec::new())
    } else {
        (key("integrity initiator"), key("integrity responder"))
    };
    let st = lab.a().status();
    let ike = matching_ike(&st, &lab.sw().sas(), SW_CONN).expect("strongSwan's IKE SA");
    let c = sw_child_for(&ike, &st).clone();
    // The CHILD_SA came with IKE_AUTH: its initiator is the IKE SA's. The initiator's
    // outbound SA uses the initiator keys.
    let (sw_out, sw_in) = if ike.initiator {
        ((&ei, &ii), (&er, &ir))
    } else {
        ((&er, &ir), (&ei, &ii))
    };
    let (a, b) = (WAN_A.into(), WAN_B.into());
    let sa_out = esp_sa_uat(b, a, &c.spi_out, esp, sw_out.0, sw_out.1);
    let sa_in = esp_sa_uat(a, b, &c.spi_in, esp, sw_in.0, sw_in.1);
    let f = file.to_str().unwrap();
    let sas = [sa_out.as_str(), sa_in.as_str()];
    let fields = |filter: &str, fields: &[&str]| -> String {
        tshark_esp_fields(f, &sas, true, filter, &[], fields)
    };
    let run = |filter: &str| -> usize { count_lines(&fields(filter, &["frame.number"])) };
    let esp_n = run("esp");
    let icmp_n = run("esp && icmp");
    let tcp_n = run("esp && tcp");
    let bad = run("_ws.malformed || _ws.expert.severity == error");
    println!(
        "  tshark: {esp_n} ESP frames, {icmp_n} ICMP and {tcp_n} TCP decrypted, {bad} with errors"
    );
    assert!(esp_n >= 20, "{esp}: tshark saw only {esp_n} ESP frames");
    assert!(icmp_n >= 20, "{esp}: decrypted ICMP frames {icmp_n}");
    assert_eq!(
        icmp_n + tcp_n,
        esp_n,
        "{esp}: frames tshark did not decrypt to ICMP or TCP:\n{}",
        fields(
            "esp && !icmp && !tcp",
            &[
                "frame.number",
                "ip.src",
                "esp.spi",
                "esp.sequence",
                "frame.len",
                "_ws.col.Info"
            ]
        )
    );
    assert_eq!(
        bad,
        0,
        "{esp}: tshark reports malformed/error frames:\n{}",
        fields(
            "_ws.malformed || _ws.expert.severity == error",
            &[
                "frame.number",
                "esp.spi",
                "esp.sequence",
                "_ws.expert.message",
                "_ws.col.Info"
            ]
        )
    );
    if !aead {
        // GCM's tag is checked by the decryption itself; tshark reports ICVs of HMAC SAs.
        let good = run("esp.icv_good == 1");
        assert_eq!(good, esp_n, "{esp}: frames whose ICV tshark verified");
    }
    (esp_n, icmp_n, tcp_n)
}

/// Issue 20's matrix: each suite with each side initiating, pings and iperf3 both ways,
/// strongSwan counting bytes, tshark decrypting every ESP frame with the keys strongSwan
/// derived and verifying every ICV; the PFS case also checks strongSwan's rekeyed CHILD_SA.
#[test]
#[ignore = "needs root"]
fn algorithm_matrix() {
    let _s = serial();
    require_root();
    // (ironsec's IKE proposal, ESP proposal, IKE algorithms expected, first CHILD_SA's ESP)
    let cases = [
        (
            "aes256-sha256-modp2048",
            "aes256-sha256",
            "aes256-sha256-prfsha256-modp2048",
            "aes256-sha256",
        ),
        (
            "aes128-sha1-modp2048",
            "aes128-sha1",
            "aes128-sha1-prfsha1-modp2048",
            "aes128-sha1",
        ),
        (
            "aes256-sha384-ecp384",
            "aes256-sha384-modp3072",
            "aes256-sha384-prfsha384-ecp384",
            "aes256-sha384",
        ),
        (
            "aes256-sha512-ecp521",
            "aes128-sha256",
            "aes256-sha512-prfsha512-ecp521",
            "aes128-sha256",
        ),
        // Both default sets: strongSwan's first non-AEAD algorithms on both SAs.
        (
            "default",
            "default",
            "aes128-sha256-prfsha256-x25519",
            "aes128-sha256",
        ),
        // An AEAD, which tshark decrypts with strongSwan's key and salt.
        (
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
        ),
    ];
    let mut lab = SwLab::new();
    // ironsec sends with UDP GSO: a capture on the veth would see one super-packet per
    // batch, of which tshark decodes only the first datagram. Without the device's UDP
    // segmentation the kernel splits the batch before the capture point.
    run_ok(
        ns_cmd(&lab.topo.gw_a, "ethtool").args(["-K", "wan", "tx-udp-segmentation", "off"]),
        Duration::from_secs(10),
    );
    for (ike, esp, ike_algs, first_esp) in cases {
        for ironsec_first in [true, false] {
            let who = if ironsec_first {
                "ironsec"
            } else {
                "strongSwan"
            };
            println!("{ike} / {esp}, {who} initiates:");
            let mut setup = if ironsec_first {
                Setup::ironsec_initiates()
            } else {
                Setup::strongswan_initiates()
            }
            .proposals(ike, esp);
            setup.sw_settings = Some(sw_chd_keys);
            lab.start_strongswan(&setup);
            let t0 = Instant::now();
            lab.start_ironsec(&setup);
            if !ironsec_first {
                lab.sw().swanctl_ok(&["--initiate", "--child", SW_CHILD]);
            }
            lab.wait_up();
            println!("  up in {:.2?}", t0.elapsed());
            let (_, c) = check_tunnel(&lab, ike_algs, first_esp, 5);
            println!(
                "  strongSwan's CHILD_SA {}: {} bytes in, {} out",
                c.algorithms, c.bytes_in, c.bytes_out
            );
            tshark_decrypts_with_strongswans_keys(&lab, first_esp);
            let c = sw_counts_traffic(&lab);
            assert!(c.bytes_in > 0 && c.bytes_out > 0);
            if esp != first_esp && esp != "default" {
                // PFS: strongSwan rekeys the CHILD_SA with a KE in the ESP proposal's group.
                let old = str_at(&lab.a().status(), &format!("{T0}/outbound/spi")).to_string();
                lab.sw().swanctl_ok(&["--rekey", "--child", SW_CHILD]);
                let mut st = Value::Null;
                let rekeyed = poll_until(Duration::from_secs(15), || {
                    st = lab.a().status();
                    st.pointer(&format!("{T0}/child/algorithms"))
                        .is_some_and(|a| a == esp)
                        && st
                            .pointer(&format!("{T0}/outbound/spi"))
                            .is_some_and(|s| s != old.as_str())
                });
                assert!(rekeyed, "{esp}: no PFS rekey: {st:#}\n{}", lab.logs());
                let (_, st, ike_sa) = lab.wait_up();
                check_views(&st, &ike_sa, ike_algs, esp);
                ping_both_ways(&lab, 3);
                println!("  after strongSwan's PFS rekey: {esp}, pings through");
            }
            lab.stop_both();
        }
    }
}

// ------------------------------------------------------------------------------------------
// Issue 20: legacy groups need the opt-in, and Azure's default policy

/// strongSwan offering only MODP-1024 is refused by ironsec configured without it, which
/// logs the group and the opt-in; with the group and `allow_legacy_crypto = true` the same
/// strongSwan connects.
#[test]
#[ignore = "needs root"]
fn legacy_modp1024_needs_the_opt_in() {
    let _s = serial();
    require_root();
    let mut lab = SwLab::new();
    let mut setup = Setup::strongswan_initiates().proposals("aes128-sha1-modp2048", "aes128-sha1");
    setup.swanctl.retain(|(k, _)| *k != "proposals");
    setup
        .swanctl
        .push(("proposals", "aes128-sha1-modp1024".to_string()));
    lab.start_strongswan(&setup);
    lab.start_ironsec(&setup);
    initiate_refused(&lab, "NO_PROPOSAL_CHOSEN");
    let line = wait_log_line(&lab, &["allow_legacy_crypto", "modp1024"]);
    println!("ironsec: {line}");
    no_established_sa(&lab);
    lab.stop_both();

    let mut setup = Setup::strongswan_initiates().proposals("aes128-sha1-modp1024", "aes128-sha1");
    setup
        .ironsec_extra
        .push("allow_legacy_crypto = true".to_string());
    lab.start_strongswan(&setup);
    lab.start_ironsec(&setup);
    lab.sw().swanctl_ok(&["--initiate", "--child", SW_CHILD]);
    check_tunnel(&lab, "aes128-sha1-prfsha1-modp1024", "aes128-sha1", 5);
    println!("with allow_legacy_crypto = true: aes128-sha1-prfsha1-modp1024 up, pings through");
}

/// strongSwan as Azure VPN Gateway with its default policy: its proposals in Azure's order,
/// its lifetimes (28,800 s IKE SA; 27,000 s and 102,400,000 KB CHILD_SA).
fn sw_azure_lifetimes(text: String) -> String {
    text.replace("rekey_time = 4h", "rekey_time = 28800s")
        .replace(
            "rekey_time = 1h",
            "rekey_time = 27000s\n                rekey_bytes = 104857600000",
        )
}

/// conf/azure-default.toml against a strongSwan offering what Azure's default policy offers,
/// each side initiating: MODP-1024 (with the example's legacy opt-in), AES-256/SHA-1 and
/// AES-256-GCM for ESP, pings both ways.
#[test]
#[ignore = "needs root"]
fn azure_default_policy_with_strongswan() {
    let _s = serial();
    require_root();
    let mut lab = SwLab::new();
    for ironsec_first in [true, false] {
        let mut setup = Setup::strongswan_initiates();
        setup.swanctl = vec![
            (
                "proposals",
                "aes256-sha1-modp1024,aes256-sha256-modp1024,aes128-sha1-modp1024,\
                 aes128-sha256-modp1024,3des-sha1-modp1024,3des-sha256-modp1024"
                    .to_string(),
            ),
            (
                "esp_proposals",
                "aes256gcm16,aes256-sha1,3des-sha1,aes256-sha256,aes128-sha1,3des-sha256"
                    .to_string(),
            ),
        ];
        setup.swanctl_edit = Some(sw_azure_lifetimes);
        lab.start_strongswan(&setup);
        let conns = lab.sw().swanctl_ok(&["--list-conns"]);
        assert!(
            conns.contains("rekeying every 28800s")
                && conns.contains("rekeying every 27000s or 104857600000 bytes"),
            "strongSwan does not have Azure's lifetimes:\n{conns}"
        );
        let psk = lab.dir.join("site-b.psk");
        write_secret(&psk, format!("{}\n", lab.psk));
        let start = if ironsec_first { "start" } else { "none" };
        let rw = vec![
            ("control_socket", toml_str(lab.sock_a.to_str().unwrap())),
            ("psk_file", toml_str(psk.to_str().unwrap())),
            ("local_id", toml_str("gw-a.example")),
            ("remote_id", toml_str("gw-b.example")),
            ("local_ts", toml_array(&["10.1.0.0/24"])),
            ("remote_ts", toml_array(&["10.2.0.0/24"])),
            ("start_action", toml_str(start)),
            (
                "tunnels",
                "[ { local = \"192.0.2.1\", remote = \"192.0.2.2\" } ]".to_string(),
            ),
        ];
        let mut text = rewrite_toml_lines(&example_config("azure-default.toml"), &rw);
        text.push_str("retransmit_timeout = 0.5\n");
        let t0 = Instant::now();
        lab.start_ironsec_text(&text);
        if !ironsec_first {
            lab.sw().swanctl_ok(&["--initiate", "--child", SW_CHILD]);
        }
        lab.wait_up();
        println!(
            "azure-default.toml, {} initiates: up in {:.2?}",
            if ironsec_first {
                "ironsec"
            } else {
                "strongSwan"
            },
            t0.elapsed()
        );
        let (st, c) = check_tunnel(&lab, "aes256-sha1-prfsha1-modp1024", "aes256gcm16", 5);
        println!(
            "  {} / {}: {} packets in, {} out at strongSwan",
            ike_of(&st)
                .map(|i| i["algorithms"].to_string())
                .unwrap_or_default(),
            c.algorithms,
            c.packets_in,
            c.packets_out
        );
        lab.stop_both();
    }
}
