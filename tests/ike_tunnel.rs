//! Integration tests of IKEv2 (PSK) tunnels between two ironsecd gateways, run for real in
//! network namespaces (netns-scripts/topology.sh):
//!
//!   lanA 10.1.0.2 -- gwA 10.1.0.1 / 192.0.2.1 ===wan=== 192.0.2.2 / gwB 10.2.0.1 -- lanB 10.2.0.2
//!
//! The daemons run from conf/ike-gw-{a,b}.toml (A initiates, start_action = "start"; B waits,
//! "none") with the control socket, PSK file, proposals and timers rewritten per test. Each
//! lab has its own namespace prefix and is torn down by its guards, also when a test fails.
//! These tests need root: they are `#[ignore = "needs root"]` (tests/run.sh runs them) and FAIL
//! (never skip) without root.
//!
//! Run: `cargo test -p ironsecd --test ike_tunnel -- --include-ignored --test-threads=1 --nocapture`
//! (they serialize themselves on a lock anyway; --nocapture shows the measured numbers).

mod common;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use serde_json::Value;

const LAN_A_HOST: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const LAN_B_HOST: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);

const PING_PATTERN: &[u8] = b"\x5a\x17\xc0\xde-IRONSEC-IKE-PING!\xa5";
const TCP_PATTERN: &[u8] = b"IRONSEC-IKE-PLAINTEXT-CANARY-0123456789/";

/// How long an IKE_SA_INIT + IKE_AUTH between two local daemons may take.
const UP_TIMEOUT: Duration = Duration::from_secs(15);

fn ping_n(ns: &str, dst: Ipv4Addr, count: u16) -> PingResult {
    ping(
        ns,
        dst,
        count,
        pattern_payload(PING_PATTERN, 56),
        Duration::from_millis(100),
        Duration::from_secs(2),
    )
}

fn ping_ok(lab: &IkeLab, ns: &str, dst: Ipv4Addr, count: u16) {
    let r = ping_n(ns, dst, count);
    assert_eq!(
        r.received,
        r.sent,
        "ping {ns} -> {dst}: {} of {} answered\n{}",
        r.received,
        r.sent,
        lab.logs()
    );
}

fn ping_both_ways(lab: &IkeLab, count: u16) {
    ping_ok(lab, &lab.topo.lan_a, LAN_B_HOST, count);
    ping_ok(lab, &lab.topo.lan_b, LAN_A_HOST, count);
}

fn wait_up(lab: &IkeLab) -> Duration {
    lab.wait_up(UP_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("status has no string at {ptr}: {v:#}"))
}

fn lines_with<'a>(log: &'a str, needles: &[&str]) -> Vec<&'a str> {
    log.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .collect()
}

fn count_lines_with(log: &str, needle: &str) -> usize {
    lines_with(log, &[needle]).len()
}

/// Checks that the two sides describe the same IKE SA and cross-wired CHILD_SAs.
fn check_pair(sa: &Value, sb: &Value) {
    let (ia, ib) = (ike_of(sa).unwrap(), ike_of(sb).unwrap());
    // Whoever started the exchange that made this IKE SA is its initiator: gwA for the
    // first one; after an IKE SA rekey, whichever side rekeyed (RFC 7296 2.18).
    assert!(
        ia["initiator"].is_boolean() && ia["initiator"] != ib["initiator"],
        "exactly one side is the initiator: {ia} vs {ib}"
    );
    assert_eq!(ia["spi_i"], ib["spi_i"], "IKE SPIi differs: {ia} vs {ib}");
    assert_eq!(ia["spi_r"], ib["spi_r"], "IKE SPIr differs: {ia} vs {ib}");
    assert_eq!(
        ia["algorithms"], ib["algorithms"],
        "IKE algorithms differ: {ia} vs {ib}"
    );
    assert_eq!(
        str_at(sa, &format!("{T0}/outbound/spi")),
        str_at(sb, &format!("{T0}/inbound/spi")),
        "gwA's outbound SPI is not gwB's inbound SPI"
    );
    assert_eq!(
        str_at(sb, &format!("{T0}/outbound/spi")),
        str_at(sa, &format!("{T0}/inbound/spi")),
        "gwB's outbound SPI is not gwA's inbound SPI"
    );
}

// ------------------------------------------------------------------------------------------
// 1. PSK tunnel: up, ping both ways, iperf3, counters

#[test]
#[ignore = "needs root"]
fn ike_psk_tunnel_carries_traffic() {
    let _s = serial();
    require_root();
    let lab = IkeLab::start(IkeLabOpts::default());
    let took = wait_up(&lab);
    println!(
        "IKE SA and CHILD_SA established on both sides {took:.2?} after both daemons were ready"
    );

    let (sa, sb) = (lab.a.status(), lab.b.status());
    println!("gwA ike: {}", ike_of(&sa).unwrap());
    println!("gwB ike: {}", ike_of(&sb).unwrap());
    check_pair(&sa, &sb);
    assert_eq!(ike_of(&sa).unwrap()["initiator"], true, "gwA initiated");
    for (name, st) in [("gwA", &sa), ("gwB", &sb)] {
        let ike = ike_of(st).unwrap();
        assert_eq!(ike["state"], "established", "{name}: {ike}");
        assert_eq!(ike["children"], 1, "{name}: one CHILD_SA: {ike}");
        assert_eq!(
            ike["algorithms"], "aes256gcm16-prfsha256-x25519",
            "{name}: {ike}"
        );
        assert_eq!(str_at(st, &format!("{T0}/outbound/suite")), "aes256gcm16");
        assert!(
            ike["rekey_in_secs"].as_u64().is_some_and(|s| s > 3600),
            "{name}: IKE rekey should be hours away: {ike}"
        );
    }

    ping_both_ways(&lab, 5);

    let bytes: u64 = 20 * 1024 * 1024;
    for (reverse, tag) in [(false, "lanA-to-lanB"), (true, "lanB-to-lanA")] {
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
            "iperf3 {tag}: sent {} received {} bytes in {:.2} s wall, {:.1} Mbit/s",
            r.sent, r.received, r.secs, r.mbit_s
        );
        assert!(r.sent >= bytes, "iperf3 {tag}: sent only {}", r.sent);
        assert!(
            r.received >= bytes / 4,
            "iperf3 {tag}: receiver counted only {} of {}",
            r.received,
            r.sent
        );
    }
    // An exact count too (iperf3's receiver total is not exact, see iperf3_tcp).
    let exact = 4 * 1024 * 1024;
    let got = tcp_transfer(
        &lab.topo.lan_a,
        &lab.topo.lan_b,
        SocketAddrV4::new(LAN_B_HOST, 5301),
        TCP_PATTERN,
        exact,
        Duration::from_secs(60),
    );
    assert_eq!(got, exact, "TCP lanA -> lanB delivered {got} of {exact}");

    // Traffic has stopped: what one side sent, the other received (no ESP without traffic,
    // DPD is IKE). Poll until both directions settle, bounded.
    let pkts = |st: &Value, dir: &str| num(st, &format!("{T0}/{dir}/packets"));
    let mut last = (Value::Null, Value::Null);
    let settled = poll_until(Duration::from_secs(5), || {
        let (sa, sb) = (lab.a.status(), lab.b.status());
        let eq = pkts(&sa, "outbound") == pkts(&sb, "inbound")
            && pkts(&sb, "outbound") == pkts(&sa, "inbound");
        last = (sa, sb);
        eq
    });
    let (sa, sb) = last;
    for (name, st) in [("gwA", &sa), ("gwB", &sb)] {
        for dir in ["outbound", "inbound"] {
            let b = num(st, &format!("{T0}/{dir}/bytes"));
            let p = pkts(st, dir);
            println!("{name} {dir}: {p} packets, {b} bytes");
            // Each direction carried one iperf3 run's data (and, A->B, the exact transfer).
            assert!(b > bytes, "{name}: {dir} bytes {b} (> {bytes} expected)");
        }
        println!("{name} counters {} drops {}", st["counters"], st["drops"]);
        for d in ["authentication", "unknown_spi", "malformed", "selector"] {
            assert_eq!(
                num(st, &format!("/drops/{d}")),
                0,
                "{name}: drops.{d} on clean traffic: {st:#}"
            );
        }
    }
    let (ao, bi, bo, ai) = (
        pkts(&sa, "outbound"),
        pkts(&sb, "inbound"),
        pkts(&sb, "outbound"),
        pkts(&sa, "inbound"),
    );
    println!(
        "A->B: gwA sent {ao}, gwB accepted {bi}; B->A: gwB sent {bo}, gwA accepted {ai} (settled: {settled})"
    );
    // Roughly equal: the receiving UDP socket may drop a few under iperf3 load (TCP resends).
    for (what, sent, got) in [("A->B", ao, bi), ("B->A", bo, ai)] {
        assert!(
            got <= sent && sent - got <= sent / 100,
            "{what}: sent {sent} ESP packets but {got} were accepted"
        );
    }
}

// ------------------------------------------------------------------------------------------
// 2. Every suite pair

#[test]
#[ignore = "needs root"]
fn ike_each_suite() {
    let _s = serial();
    require_root();
    for (ike, esp, esp_suite) in [
        ("aes128gcm16-prfsha256-x25519", "aes128gcm16", "aes128gcm16"),
        (
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16-ecp384",
            "aes256gcm16",
        ),
        (
            "chacha20poly1305-prfsha256-x25519",
            "chacha20poly1305",
            "chacha20poly1305",
        ),
    ] {
        let opts = IkeLabOpts::default().both(|s| {
            s.ike_proposals = vec![ike.into()];
            s.esp_proposals = vec![esp.into()];
        });
        let lab = IkeLab::start(opts);
        let took = wait_up(&lab);
        ping_both_ways(&lab, 3);
        let (sa, sb) = (lab.a.status(), lab.b.status());
        check_pair(&sa, &sb);
        for (name, st, log) in [("gwA", &sa, lab.log_a()), ("gwB", &sb, lab.log_b())] {
            let i = ike_of(st).unwrap();
            assert_eq!(i["algorithms"], ike, "{name} IKE algorithms: {i}");
            for dir in ["outbound", "inbound"] {
                assert_eq!(
                    str_at(st, &format!("{T0}/{dir}/suite")),
                    esp_suite,
                    "{name} {dir} suite"
                );
                assert!(num(st, &format!("{T0}/{dir}/packets")) >= 6, "{name} {dir}");
            }
            let child = lines_with(&log, &["CHILD_SA up"]);
            assert!(
                child.iter().any(|l| l.contains(esp_suite)),
                "{name}: no CHILD_SA up line naming {esp_suite}:\n{log}"
            );
        }
        println!(
            "{ike} / {esp}: up in {took:.2?}, pings crossed; status ike.algorithms = {}, ESP suite {esp_suite}",
            ike_of(&sa).unwrap()["algorithms"]
        );
    }
}

// ------------------------------------------------------------------------------------------
// 3. Failures are logged (and the PSK never is)

/// Ways a PSK could show up in text: raw bytes, hex either case, a Debug list of its bytes.
fn psk_forms(side: &IkeSide) -> Vec<(String, Vec<u8>)> {
    let raw = side.psk_bytes();
    let h = hex(&raw);
    let dbg = format!("{:?}", &raw[..8]);
    vec![
        ("raw bytes".into(), raw.clone()),
        ("lowercase hex".into(), h.as_bytes().to_vec()),
        ("uppercase hex".into(), h.to_uppercase().into_bytes()),
        (
            "Debug list".into(),
            dbg.trim_end_matches(']').as_bytes().to_vec(),
        ),
        ("PSK file text".into(), side.psk_text.as_bytes().to_vec()),
    ]
}

/// The daemons really run with IRONSEC_LOG=trace (read from /proc, not assumed).
fn assert_trace_level(lab: &IkeLab) {
    for d in [&lab.a, &lab.b] {
        let env = std::fs::read(format!("/proc/{}/environ", d.proc_.pid()))
            .unwrap_or_else(|e| panic!("read environ of {}: {e}", d.name));
        assert!(
            env.split(|b| *b == 0).any(|kv| kv == b"IRONSEC_LOG=trace"),
            "{} does not run with IRONSEC_LOG=trace",
            d.name
        );
    }
}

fn assert_no_psk(lab: &IkeLab, what: &str) {
    assert_trace_level(lab);
    let texts = [
        ("gwA log", lab.log_a().into_bytes()),
        ("gwB log", lab.log_b().into_bytes()),
        (
            "gwA status --json",
            serde_json::to_vec(&lab.a.status()).unwrap(),
        ),
        (
            "gwB status --json",
            serde_json::to_vec(&lab.b.status()).unwrap(),
        ),
    ];
    for (side_name, side) in [("A's PSK", &lab.opts.a), ("B's PSK", &lab.opts.b)] {
        for (form, needle) in psk_forms(side) {
            for (tname, text) in &texts {
                assert!(
                    !contains(text, &needle),
                    "{what}: {side_name} ({form}) appears in {tname}"
                );
            }
        }
    }
    let sizes: Vec<String> = texts
        .iter()
        .map(|(n, t)| format!("{n} {} bytes", t.len()))
        .collect();
    println!("{what}: no PSK in {}", sizes.join(", "));
}

fn wait_log(lab: &IkeLab, side: char, needles: &[&str], timeout: Duration) -> String {
    let found = poll_until(timeout, || {
        let log = if side == 'a' {
            lab.log_a()
        } else {
            lab.log_b()
        };
        !lines_with(&log, needles).is_empty()
    });
    let log = if side == 'a' {
        lab.log_a()
    } else {
        lab.log_b()
    };
    assert!(
        found,
        "gw{}: no log line with all of {needles:?} within {timeout:?}\n{}",
        side.to_ascii_uppercase(),
        lab.logs()
    );
    lines_with(&log, needles)[0].to_string()
}

fn assert_no_tunnel(lab: &IkeLab, what: &str) {
    for (name, st) in [("gwA", lab.a.status()), ("gwB", lab.b.status())] {
        assert!(
            ike_of(&st).is_none_or(|i| i["state"] != "established"),
            "{what}: {name} shows an established IKE SA: {st:#}"
        );
        assert!(
            st.pointer(&format!("{T0}/outbound"))
                .is_none_or(Value::is_null),
            "{what}: {name} has an outbound SA: {st:#}"
        );
    }
    let r = ping(
        &lab.topo.lan_a,
        LAN_B_HOST,
        1,
        pattern_payload(PING_PATTERN, 56),
        Duration::ZERO,
        Duration::from_secs(1),
    );
    assert_eq!(r.received, 0, "{what}: a ping crossed without a tunnel");
}

#[test]
#[ignore = "needs root"]
fn ike_wrong_psk_and_no_common_proposal_are_logged() {
    let _s = serial();
    require_root();
    let bound = Duration::from_secs(15);

    // (a) Wrong PSK on B: A's is text, B's binary (0x hex), so both forms are checked.
    {
        let mut opts = IkeLabOpts::default().log_level("trace");
        opts.a.psk_text = format!("A-text-psk-{}", hex(&random_bytes(12)));
        opts.b.psk_text = format!("0x{}", hex(&random_bytes(32)));
        let lab = IkeLab::start(opts);
        let a_line = wait_log(&lab, 'a', &["AUTHENTICATION_FAILED"], bound);
        let b_line = wait_log(&lab, 'b', &["AUTHENTICATION_FAILED", "gw-a.example"], bound);
        println!("wrong PSK, gwA: {a_line}");
        println!("wrong PSK, gwB: {b_line}");
        assert_no_tunnel(&lab, "wrong PSK");
        // A keeps trying (start action) after its restart delay; still no tunnel, still no PSK.
        std::thread::sleep(Duration::from_secs(6));
        assert!(
            count_lines_with(&lab.log_b(), "AUTHENTICATION_FAILED") >= 2,
            "gwA should have retried after 5 s:\n{}",
            lab.logs()
        );
        assert_no_tunnel(&lab, "wrong PSK, after a retry");
        assert_no_psk(&lab, "wrong PSK");
    }

    // (b) No IKE proposal in common.
    {
        let mut opts = IkeLabOpts::default().log_level("trace");
        opts.a.ike_proposals = vec!["aes128gcm16-prfsha256-x25519".into()];
        opts.b.ike_proposals = vec!["aes256gcm16-prfsha384-ecp384".into()];
        let lab = IkeLab::start(opts);
        let a_line = wait_log(
            &lab,
            'a',
            &["NO_PROPOSAL_CHOSEN", "aes128gcm16-prfsha256-x25519"],
            bound,
        );
        let b_line = wait_log(
            &lab,
            'b',
            &[
                "NO_PROPOSAL_CHOSEN",
                "aes128gcm16",
                "x25519",
                "aes256gcm16-prfsha384-ecp384",
            ],
            bound,
        );
        println!("no common IKE proposal, gwA: {a_line}");
        println!("no common IKE proposal, gwB: {b_line}");
        assert_no_tunnel(&lab, "no common IKE proposal");
        assert_no_psk(&lab, "no common IKE proposal");
    }

    // (c) IKE agrees, ESP does not: the IKE SA comes up without a CHILD_SA.
    {
        let mut opts = IkeLabOpts::default().log_level("trace");
        opts.a.esp_proposals = vec!["aes128gcm16".into()];
        opts.b.esp_proposals = vec!["chacha20poly1305".into()];
        let lab = IkeLab::start(opts);
        let a_line = wait_log(&lab, 'a', &["NO_PROPOSAL_CHOSEN", "aes128gcm16"], bound);
        let b_line = wait_log(
            &lab,
            'b',
            &["NO_PROPOSAL_CHOSEN", "aes128gcm16", "chacha20poly1305"],
            bound,
        );
        println!("no common ESP proposal, gwA: {a_line}");
        println!("no common ESP proposal, gwB: {b_line}");
        for (name, st) in [("gwA", lab.a.status()), ("gwB", lab.b.status())] {
            assert!(
                st.pointer(&format!("{T0}/outbound"))
                    .is_none_or(Value::is_null),
                "no common ESP proposal: {name} has an outbound SA: {st:#}"
            );
            if let Some(i) = ike_of(&st) {
                assert_eq!(i["children"], 0, "{name}: {i}");
            }
        }
        assert_no_psk(&lab, "no common ESP proposal");
    }

    // (d) The right PSK at trace level: the key derivation runs, and still no PSK in logs.
    {
        let opts = IkeLabOpts::default().log_level("trace");
        let lab = IkeLab::start(opts);
        wait_up(&lab);
        ping_both_ways(&lab, 3);
        assert_no_psk(&lab, "successful handshake");
    }
}

// ------------------------------------------------------------------------------------------
// 4. Rekeying loses no packet

/// What the status polls saw during a ping run.
#[derive(Default)]
struct Observed {
    out_spis_a: BTreeSet<String>,
    out_spis_b: BTreeSet<String>,
    ike_spis_a: BTreeSet<String>,
    ike_spis_b: BTreeSet<String>,
    not_up: Vec<String>,
    polls: usize,
}

/// Pings lanA -> lanB at 20/s for `secs` while polling both statuses; asserts no ping lost
/// (reporting each loss against both logs), and returns what the polls saw.
fn ping_through(lab: &IkeLab, secs: u32, label: &str) -> (PingRun, Observed) {
    let interval = Duration::from_millis(50);
    let count = (secs * 20) as u16;
    let pinger = ping_paced_in_background(
        &lab.topo.lan_a,
        LAN_B_HOST,
        count,
        pattern_payload(PING_PATTERN, 56),
        interval,
        Duration::from_secs(2),
    );
    let mut obs = Observed::default();
    let deadline = Instant::now() + Duration::from_secs(u64::from(secs) + 20);
    while !pinger.is_finished() {
        assert!(
            Instant::now() < deadline,
            "{label}: the pinger did not finish in time"
        );
        let t = utc_string(SystemTime::now());
        for (name, d, outs, ikes) in [
            ("gwA", &lab.a, &mut obs.out_spis_a, &mut obs.ike_spis_a),
            ("gwB", &lab.b, &mut obs.out_spis_b, &mut obs.ike_spis_b),
        ] {
            let st = d.status();
            if !tunnel_up(&st) {
                obs.not_up
                    .push(format!("{t} {name}: {}", st.pointer(T0).unwrap()));
            }
            if let Some(s) = st
                .pointer(&format!("{T0}/outbound/spi"))
                .and_then(Value::as_str)
            {
                outs.insert(s.to_string());
            }
            if let Some(i) = ike_of(&st) {
                ikes.insert(format!("{}/{}", i["spi_i"], i["spi_r"]));
            }
        }
        obs.polls += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    let run = pinger.join().unwrap();
    let lost = run.lost();
    println!(
        "{label}: {} pings sent at 20/s, {} answered, {} lost, {} late, {} duplicates, max rtt {:.2?}",
        run.sent(),
        run.received(),
        lost.len(),
        run.records.iter().filter(|r| r.late).count(),
        run.duplicates,
        run.max_rtt()
    );
    if !lost.is_empty() {
        let (la, lb) = (lab.log_a(), lab.log_b());
        let mut report = String::new();
        for r in &lost {
            let t = unix_secs(r.sent_at);
            report.push_str(&format!(
                "\nlost ping seq {} sent at {}; log lines within 1 s:\n  gwA:\n    {}\n  gwB:\n    {}",
                r.seq,
                utc_string(r.sent_at),
                log_lines_between(&la, t - 1.0, t + 1.0).join("\n    "),
                log_lines_between(&lb, t - 1.0, t + 1.0).join("\n    "),
            ));
        }
        panic!(
            "{label}: {} of {} pings lost:{report}\nstatus gwA: {:#}\nstatus gwB: {:#}\n{}",
            lost.len(),
            run.sent(),
            lab.a.status(),
            lab.b.status(),
            lab.logs()
        );
    }
    for (name, st) in [("gwA", lab.a.status()), ("gwB", lab.b.status())] {
        println!("{label}: {name} drops {}", st["drops"]);
        for d in ["authentication", "unknown_spi", "replay", "malformed"] {
            assert_eq!(
                num(&st, &format!("/drops/{d}")),
                0,
                "{label}: {name} drops.{d} across rekeys: {st:#}\n{}",
                lab.logs()
            );
        }
    }
    (run, obs)
}

#[test]
#[ignore = "needs root"]
fn ike_rekeys_lose_no_packet() {
    let _s = serial();
    require_root();
    let secs = 60;

    // (a) CHILD_SA rekeys every ~20 s (18-20 s with jitter), both sides.
    {
        let opts = IkeLabOpts::default().log_level("debug").both(|s| {
            s.rekey_time = 20;
            s.dpd_interval = 5;
        });
        let lab = IkeLab::start(opts);
        wait_up(&lab);
        let (_run, obs) = ping_through(&lab, secs, "CHILD_SA rekey");
        let (la, lb) = (lab.log_a(), lab.log_b());
        let (ra, rb) = (
            count_lines_with(&la, "CHILD_SA rekeyed"),
            count_lines_with(&lb, "CHILD_SA rekeyed"),
        );
        println!(
            "CHILD_SA rekey: 'CHILD_SA rekeyed' lines gwA {ra} gwB {rb}; outbound SPIs seen gwA {:?} gwB {:?}; status polls {}",
            obs.out_spis_a, obs.out_spis_b, obs.polls
        );
        for l in lines_with(&la, &["CHILD_SA rekeyed"]) {
            println!("  gwA: {l}");
        }
        for l in lines_with(&lb, &["CHILD_SA rekeyed"]) {
            println!("  gwB: {l}");
        }
        assert!(
            ra >= 2 && rb >= 2,
            "expected at least two CHILD_SA rekeys per side in {secs} s, saw gwA {ra} gwB {rb}\n{}",
            lab.logs()
        );
        assert!(
            obs.out_spis_a.len() >= 3 && obs.out_spis_b.len() >= 3,
            "outbound SPIs should have changed at least twice: gwA {:?} gwB {:?}",
            obs.out_spis_a,
            obs.out_spis_b
        );
        assert!(
            obs.not_up.is_empty(),
            "tunnel not up at some status polls:\n{}",
            obs.not_up.join("\n")
        );
        assert_eq!(
            obs.ike_spis_a.len(),
            1,
            "the IKE SA should not change: {:?}",
            obs.ike_spis_a
        );
        let (sa, sb) = (lab.a.status(), lab.b.status());
        check_pair(&sa, &sb);
        for (name, st) in [("gwA", &sa), ("gwB", &sb)] {
            assert_eq!(
                ike_of(st).unwrap()["children"],
                1,
                "{name}: old CHILD_SAs should be gone: {st:#}"
            );
        }
    }

    // (b) The same, and the IKE SA rekeyed every ~30 s (28-30 s with jitter) too.
    {
        let opts = IkeLabOpts::default().log_level("debug").both(|s| {
            s.rekey_time = 20;
            s.ike_rekey_time = 30;
            s.dpd_interval = 5;
        });
        let lab = IkeLab::start(opts);
        wait_up(&lab);
        let (_run, obs) = ping_through(&lab, secs, "IKE SA rekey");
        let (la, lb) = (lab.log_a(), lab.log_b());
        let (ia, ib) = (
            count_lines_with(&la, "IKE SA rekeyed"),
            count_lines_with(&lb, "IKE SA rekeyed"),
        );
        let (ca, cb) = (
            count_lines_with(&la, "CHILD_SA rekeyed"),
            count_lines_with(&lb, "CHILD_SA rekeyed"),
        );
        println!(
            "IKE SA rekey: 'IKE SA rekeyed' lines gwA {ia} gwB {ib}, 'CHILD_SA rekeyed' gwA {ca} gwB {cb}; IKE SPIs seen gwA {:?} gwB {:?}",
            obs.ike_spis_a, obs.ike_spis_b
        );
        for l in lines_with(&la, &["rekeyed"]) {
            println!("  gwA: {l}");
        }
        for l in lines_with(&lb, &["rekeyed"]) {
            println!("  gwB: {l}");
        }
        assert!(
            ia >= 1 && ib >= 1,
            "expected the IKE SA to be rekeyed in {secs} s, saw gwA {ia} gwB {ib}\n{}",
            lab.logs()
        );
        assert!(
            obs.ike_spis_a.len() >= 2,
            "IKE SPIs in status should have changed: {:?}",
            obs.ike_spis_a
        );
        assert!(
            obs.not_up.is_empty(),
            "tunnel not up at some status polls:\n{}",
            obs.not_up.join("\n")
        );
        for (name, log) in [("gwA", &la), ("gwB", &lb)] {
            let down: Vec<&str> = lines_with(log, &["IKE SA down"])
                .into_iter()
                .filter(|l| !l.contains("Rekeyed"))
                .collect();
            assert!(
                down.is_empty(),
                "{name}: IKE SA went down other than by a rekey:\n{}",
                down.join("\n")
            );
        }
        let (sa, sb) = (lab.a.status(), lab.b.status());
        assert!(tunnel_up(&sa) && tunnel_up(&sb), "tunnel down at the end");
        check_pair(&sa, &sb);
    }
}

// ------------------------------------------------------------------------------------------
// 5. kill -9 and restart

/// Pings lanA -> lanB once every 250 ms until one is answered; returns when (bounded).
fn wait_ping(lab: &IkeLab, timeout: Duration) -> Option<Instant> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let r = ping(
            &lab.topo.lan_a,
            LAN_B_HOST,
            1,
            pattern_payload(PING_PATTERN, 56),
            Duration::ZERO,
            Duration::from_millis(250),
        );
        if r.received == 1 {
            return Some(Instant::now());
        }
    }
    None
}

fn tun_exists(ns: &str) -> bool {
    run_timeout(
        Command::new("ip").args(["-n", ns, "link", "show", "ipsec0"]),
        Duration::from_secs(5),
    )
    .status
    .success()
}

/// After kill -9: the TUN device goes with the process, the control socket file stays.
fn check_killed(ns: &str, socket: &std::path::Path, name: &str) {
    assert!(
        poll_until(Duration::from_secs(5), || !tun_exists(ns)),
        "{name}: ipsec0 still exists 5 s after kill -9"
    );
    println!(
        "{name} killed: ipsec0 gone, stale control socket file left behind: {}",
        socket.exists()
    );
}

/// Seconds from `t0` to the first log line containing all `needles`.
fn log_delay(log: &str, needles: &[&str], t0: SystemTime) -> Option<f64> {
    let t0 = unix_secs(t0);
    lines_with(log, needles)
        .into_iter()
        .filter_map(log_line_time)
        .find(|t| *t >= t0)
        .map(|t| t - t0)
}

#[test]
#[ignore = "needs root"]
fn ike_kill_and_restart_recovers() {
    let _s = serial();
    require_root();
    let mut lab = IkeLab::start(IkeLabOpts::default().both(|s| {
        s.dpd_interval = 2;
        s.dpd_timeout = 8;
    }));
    wait_up(&lab);
    ping_both_ways(&lab, 3);

    // How long A needs to give up on a silent peer: DPD after dpd_interval (2 s) of silence,
    // then dpd_timeout (8 s; without it the retransmission schedule, 2 s x 1.8^n capped at
    // 30 s, 5 retransmissions, would take ~74.7 s), then close action restart's 5 s delay.
    let give_up = 2.0 + 8.0;
    let bound_a = Duration::from_secs_f64(give_up + 5.0 + 20.0);

    // (a) kill -9 B and restart it at once: A's DPD must notice, A re-initiates.
    let t_kill = SystemTime::now();
    let i_kill = Instant::now();
    lab.b.kill9();
    check_killed(&lab.topo.gw_b, &lab.sock_b, "gwB");
    lab.restart_b();
    let restarted = i_kill.elapsed();
    assert!(tun_exists(&lab.topo.gw_b), "restarted gwB has no ipsec0");
    let st = lab.b.status();
    assert!(
        ike_of(&st).is_none(),
        "restarted gwB (start_action none) should have no IKE SA yet: {st:#}"
    );
    println!("gwB restarted {restarted:.2?} after kill -9 (stale control socket replaced)");
    let back = wait_ping(&lab, bound_a).unwrap_or_else(|| {
        panic!(
            "pings did not cross within {bound_a:?} of killing gwB\nstatus gwA: {:#}\nstatus gwB: {:#}\n{}",
            lab.a.status(),
            lab.b.status(),
            lab.logs()
        )
    });
    let recovery_a = back.duration_since(i_kill);
    let la = lab.log_a();
    let down_line = lines_with(&la, &["IKE SA down", "PeerUnreachable"])
        .first()
        .map(|s| s.to_string())
        .unwrap_or_else(|| {
            panic!(
                "gwA did not log 'IKE SA down' with PeerUnreachable\n{}",
                lab.logs()
            )
        });
    let t_down = log_delay(&la, &["IKE SA down", "PeerUnreachable"], t_kill).unwrap();
    let t_init = log_delay(&la, &["initiating IKE SA"], t_kill)
        .unwrap_or_else(|| panic!("gwA did not re-initiate\n{}", lab.logs()));
    let t_up = log_delay(&la, &["IKE SA up"], t_kill)
        .unwrap_or_else(|| panic!("gwA logged no new IKE SA\n{}", lab.logs()));
    println!("gwA: {down_line}");
    println!(
        "kill -9 gwB: gwA declared the peer dead after {t_down:.1} s (expected ~{give_up:.1} s), re-initiated at {t_init:.1} s, IKE SA up at {t_up:.1} s, pings crossed again {:.1} s after the kill (bound {:.0} s)",
        recovery_a.as_secs_f64(),
        bound_a.as_secs_f64()
    );
    assert!(t_init >= t_down, "gwA re-initiated before it gave up");
    wait_up(&lab);
    ping_both_ways(&lab, 3);
    let (sa, sb) = (lab.a.status(), lab.b.status());
    check_pair(&sa, &sb);
    assert_eq!(ike_of(&sa).unwrap()["initiator"], true, "gwA re-initiated");

    // (b) kill -9 A and restart it: it initiates with INITIAL_CONTACT, B replaces the stale SA.
    let old_b = ike_of(&sb).unwrap().clone();
    let t_kill = SystemTime::now();
    let i_kill = Instant::now();
    lab.a.kill9();
    check_killed(&lab.topo.gw_a, &lab.sock_a, "gwA");
    lab.restart_a();
    let bound_b = Duration::from_secs(30);
    let back = wait_ping(&lab, bound_b).unwrap_or_else(|| {
        panic!(
            "pings did not cross within {bound_b:?} of killing gwA\nstatus gwA: {:#}\nstatus gwB: {:#}\n{}",
            lab.a.status(),
            lab.b.status(),
            lab.logs()
        )
    });
    let recovery_b = back.duration_since(i_kill);
    wait_up(&lab);
    let lb = lab.log_b();
    let replaced = log_delay(&lb, &["IKE SA down", "Replaced"], t_kill).unwrap_or_else(|| {
        panic!(
            "gwB did not replace the stale IKE SA (no 'IKE SA down ... Replaced')\n{}",
            lab.logs()
        )
    });
    println!(
        "kill -9 gwA: gwB replaced the stale IKE SA {replaced:.1} s after the kill, pings crossed again after {:.1} s (bound {bound_b:?})",
        recovery_b.as_secs_f64()
    );
    for l in lines_with(&lb, &["IKE SA"]) {
        println!("  gwB: {l}");
    }
    ping_both_ways(&lab, 3);
    // Exactly one IKE SA, the new one, for B's tunnel, with one CHILD_SA.
    std::thread::sleep(Duration::from_secs(3)); // a stale SA's DPD would have fired by now
    let (sa, sb) = (lab.a.status(), lab.b.status());
    check_pair(&sa, &sb);
    assert_eq!(
        ike_of(&sa).unwrap()["initiator"],
        true,
        "restarted gwA initiated"
    );
    let new_b = ike_of(&sb).unwrap();
    assert_ne!(
        new_b["spi_i"], old_b["spi_i"],
        "gwB still shows the stale IKE SA"
    );
    assert_eq!(new_b["children"], 1, "gwB: {new_b}");
    // The running gwB's own log: every IKE SA that came up, less those that went down.
    let cur = std::fs::read_to_string(lab.logs_b.last().unwrap()).unwrap();
    let ups = count_lines_with(&cur, "IKE SA up");
    let downs = count_lines_with(&cur, "IKE SA down");
    println!("gwB (second start) logged {ups} 'IKE SA up' and {downs} 'IKE SA down'");
    assert!(
        ups == downs + 1,
        "gwB should be left with exactly one IKE SA (ups {ups}, downs {downs}):\n{cur}"
    );
}
