//! Integration tests of a manually keyed ironsec tunnel between two gateways, run for real in
//! network namespaces (netns-scripts/topology.sh):
//!
//!   lanA 10.1.0.2 -- gwA 10.1.0.1 / 192.0.2.1 ===wan=== 192.0.2.2 / gwB 10.2.0.1 -- lanB 10.2.0.2
//!
//! The daemons run from conf/static-gw-{a,b}.toml with the keys file, control socket, suite and
//! ESN rewritten per test. The tests that start daemons need root: they are
//! `#[ignore = "needs root"]` (tests/run.sh runs them) and FAIL (never skip) without root.
//!
//! Run: `cargo test -p ironsecd --test static_tunnel -- --include-ignored --test-threads=1`
//! (they serialize themselves on a lock anyway: two cores, two gateways, iperf3 and the kernel).

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use ironsec_esp::{Integ, OutboundSa, Suite, HEADROOM, MAX_TRAILER, NEXT_HEADER_IPV4};

const LAN_A_HOST: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const LAN_B_HOST: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);
const WAN_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const WAN_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// Ping payload: a pattern that must never show up in clear on the WAN.
const PING_PATTERN: &[u8] = b"\x5a\x17\xc0\xde-IRONSEC-PING!\xa5";
/// TCP payload pattern, likewise.
const TCP_PATTERN: &[u8] = b"IRONSEC-PLAINTEXT-CANARY-0123456789/";

fn ping_ok(ns: &str, dst: Ipv4Addr, count: u16) {
    let r = ping(
        ns,
        dst,
        count,
        pattern_payload(PING_PATTERN, 56),
        Duration::from_millis(100),
        Duration::from_secs(2),
    );
    assert_eq!(
        r.received, r.sent,
        "ping {ns} -> {dst}: {} of {} answered",
        r.received, r.sent
    );
}

fn suite_of(name: &str) -> Suite {
    name.parse()
        .unwrap_or_else(|e| panic!("unknown suite {name}: {e}"))
}

/// Seals `inner` (an IPv4 packet) with a fresh outbound SA and returns the ESP packet.
fn seal(suite: &str, spi: u32, keymat: &[u8], esn: bool, seq: u64, inner: &[u8]) -> Vec<u8> {
    let sa = OutboundSa::new(suite_of(suite), spi, keymat, esn)
        .unwrap_or_else(|e| panic!("OutboundSa::new: {e:?}"))
        .with_next_seq(seq);
    let mut buf = vec![0u8; HEADROOM + inner.len() + MAX_TRAILER];
    buf[HEADROOM..HEADROOM + inner.len()].copy_from_slice(inner);
    let r = sa
        .seal_in_place(&mut buf, inner.len(), NEXT_HEADER_IPV4)
        .unwrap_or_else(|e| panic!("seal_in_place: {e:?}"));
    let buf = buf[r].to_vec();
    assert_eq!(
        &buf[0..4],
        &spi.to_be_bytes(),
        "sealed packet does not start with the SPI"
    );
    buf
}

fn echo_packet(src: Ipv4Addr, dst: Ipv4Addr, id: u16, seq: u16) -> Vec<u8> {
    ipv4_packet(
        src,
        dst,
        1,
        id,
        &icmp_echo(id, seq, &pattern_payload(b"forged-by-ironsec-test;", 40)),
    )
}

/// Pings 5x each way with the known payload and sends a small TCP stream lanA -> lanB.
/// Returns the number of TCP bytes the server received.
fn make_traffic(lab: &Lab, tcp_bytes: usize) -> usize {
    ping_ok(&lab.topo.lan_a, LAN_B_HOST, 5);
    ping_ok(&lab.topo.lan_b, LAN_A_HOST, 5);
    let got = tcp_transfer(
        &lab.topo.lan_a,
        &lab.topo.lan_b,
        SocketAddrV4::new(LAN_B_HOST, 5300),
        TCP_PATTERN,
        tcp_bytes,
        Duration::from_secs(30),
    );
    assert_eq!(
        got, tcp_bytes,
        "TCP transfer lanA -> lanB delivered {got} of {tcp_bytes} bytes"
    );
    got
}

fn tshark(args: &[&str]) -> String {
    let mut c = Command::new("tshark");
    c.args(args);
    let out = run_ok(&mut c, Duration::from_secs(60));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn count_lines(s: &str) -> usize {
    s.lines().filter(|l| !l.trim().is_empty()).count()
}

// ------------------------------------------------------------------------------------------
// 1. ping through the tunnel, counters, clean shutdown

#[test]
#[ignore = "needs root"]
fn ping_both_ways_and_counters() {
    let _s = serial();
    require_root();
    let mut lab = Lab::start(LabOpts::default());

    ping_ok(&lab.topo.lan_a, LAN_B_HOST, 5);
    ping_ok(&lab.topo.lan_b, LAN_A_HOST, 5);

    let sa = lab.a.status();
    let sb = lab.b.status();
    for (name, st, spi_out, spi_in) in [
        ("gwA", &sa, SPI_A_TO_B, SPI_B_TO_A),
        ("gwB", &sb, SPI_B_TO_A, SPI_A_TO_B),
    ] {
        println!("{name} status: {st}");
        assert_eq!(st["tun"], "ipsec0", "{name}: tun name");
        let t = st
            .pointer(T0)
            .unwrap_or_else(|| panic!("{name}: no tunnel in status: {st:#}"));
        assert_eq!(
            t["outbound"]["spi"],
            format!("0x{spi_out:08x}"),
            "{name}: outbound SPI"
        );
        assert_eq!(
            t["inbound"]["spi"],
            format!("0x{spi_in:08x}"),
            "{name}: inbound SPI"
        );
        assert_eq!(t["outbound"]["suite"], "aes128gcm16");
        assert_eq!(t["outbound"]["esn"], true);
        // 5 requests + 5 replies each way.
        let out_p = num(st, &format!("{T0}/outbound/packets"));
        let in_p = num(st, &format!("{T0}/inbound/packets"));
        assert!(out_p >= 10, "{name}: outbound packets {out_p} < 10");
        assert!(in_p >= 10, "{name}: inbound packets {in_p} < 10");
        assert!(
            num(st, &format!("{T0}/outbound/bytes")) > 0,
            "{name}: outbound bytes"
        );
        assert!(
            num(st, &format!("{T0}/inbound/bytes")) > 0,
            "{name}: inbound bytes"
        );
        assert_eq!(
            num(st, &format!("{T0}/outbound/next_seq")),
            out_p + 1,
            "{name}: next_seq should be one past the packets sent on a fresh static SA"
        );
        // Static SAs cannot rekey: status shows their sequence space (ESN: 2^64 - 1), the
        // highest sequence number sent or received.
        assert_eq!(
            num(st, &format!("{T0}/seq_space/used")),
            out_p.max(num(st, &format!("{T0}/inbound/highest_seq"))),
            "{name}: sequence space used"
        );
        assert_eq!(num(st, &format!("{T0}/seq_space/size")), u64::MAX, "{name}");
        assert_eq!(num(st, &format!("{T0}/seq_space/percent")), 0, "{name}");
        assert!(
            num(st, "/counters/tun_rx_packets") >= 10,
            "{name}: tun_rx_packets"
        );
        assert!(
            num(st, "/counters/udp_tx_packets") >= 10,
            "{name}: udp_tx_packets"
        );
        assert!(
            num(st, "/counters/udp_rx_packets") >= 10,
            "{name}: udp_rx_packets"
        );
        assert!(
            num(st, "/counters/tun_tx_packets") >= 10,
            "{name}: tun_tx_packets"
        );
        for d in [
            "replay",
            "authentication",
            "unknown_spi",
            "malformed",
            "selector",
        ] {
            assert_eq!(
                num(st, &format!("/drops/{d}")),
                0,
                "{name}: drops.{d} on clean traffic"
            );
        }
    }
    // What one side sent is what the other accepted (nothing lost on a veth).
    assert_eq!(
        num(&sa, &format!("{T0}/outbound/packets")),
        num(&sb, &format!("{T0}/inbound/packets"))
    );
    assert_eq!(
        num(&sb, &format!("{T0}/outbound/packets")),
        num(&sa, &format!("{T0}/inbound/packets"))
    );
    assert_eq!(
        num(&sa, &format!("{T0}/outbound/next_seq")) - 1,
        num(&sb, &format!("{T0}/inbound/highest_seq"))
    );

    // Contract: SIGTERM -> exit 0 and the TUN device is gone.
    let gw_a = lab.topo.gw_a.clone();
    let st = lab.a.stop().unwrap_or_else(|| {
        panic!(
            "ironsecd gwA ignored SIGTERM for 5 s; log:\n{}",
            lab.a.log_text()
        )
    });
    assert!(
        st.success(),
        "ironsecd gwA exited with {st} on SIGTERM; log:\n{}",
        lab.a.log_text()
    );
    let out = run_timeout(
        Command::new("ip").args(["-n", &gw_a, "link", "show", "ipsec0"]),
        Duration::from_secs(5),
    );
    assert!(
        !out.status.success(),
        "ipsec0 still exists in {gw_a} after ironsecd exited"
    );
}

// ------------------------------------------------------------------------------------------
// 2. TCP through the tunnel: exact byte counts both ways, and iperf3 (-n, -R) in bounded time

/// One iperf3 TCP run of `bytes` (-n) between lanA (client) and lanB (server, -1).
///
/// iperf3 cannot check an exact byte count: the sender stops the test as soon as it has
/// written its -n bytes and the receiver stops counting on that control message, so data
/// still in flight is left out of the receiver's total (esnet/iperf#382), and with -R the
/// server may overshoot. So iperf3 gives the bounded-time transfer and the throughput; the
/// exact count is checked by `tcp_transfer`, which counts to EOF.
fn iperf3_once(lab: &Lab, reverse: bool, bytes: u64, tag: &str) {
    // Panics with both iperf3 sides' output if the client or the one-shot server fails (the
    // daemons' guards print their logs).
    let r = iperf3_tcp(
        &lab.topo.lan_a,
        &lab.topo.lan_b,
        LAN_B_HOST,
        bytes,
        reverse,
        &lab.dir.path,
        tag,
    );
    let (sent, recv) = (r.sent, r.received);
    println!(
        "iperf3 {tag}: sent {sent} received {recv} bytes in {:.2} s wall, {:.1} Mbit/s",
        r.secs, r.mbit_s
    );
    assert!(
        sent >= bytes,
        "iperf3 {tag}: sender reports {sent} bytes, expected at least {bytes}"
    );
    // Loose on purpose (in-flight data is not counted, see above); exactness is tcp_transfer's.
    assert!(
        recv >= bytes / 4,
        "iperf3 {tag}: receiver counted only {recv} of {sent} bytes"
    );
}

#[test]
#[ignore = "needs root"]
fn tcp_fixed_bytes_both_directions() {
    let _s = serial();
    require_root();
    let lab = Lab::start(LabOpts::default());
    ping_ok(&lab.topo.lan_a, LAN_B_HOST, 1);
    let bytes: usize = 20 * 1024 * 1024;

    // Exact byte counts, counted by the receiver up to EOF.
    for (tag, client, server_ns, server) in [
        (
            "lanA-to-lanB",
            &lab.topo.lan_a,
            &lab.topo.lan_b,
            SocketAddrV4::new(LAN_B_HOST, 5301),
        ),
        (
            "lanB-to-lanA",
            &lab.topo.lan_b,
            &lab.topo.lan_a,
            SocketAddrV4::new(LAN_A_HOST, 5301),
        ),
    ] {
        let t0 = Instant::now();
        let got = tcp_transfer(
            client,
            server_ns,
            server,
            TCP_PATTERN,
            bytes,
            Duration::from_secs(60),
        );
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "tcp {tag}: {got} bytes in {secs:.2} s ({:.1} Mbit/s)",
            got as f64 * 8.0 / secs / 1e6
        );
        assert_eq!(
            got, bytes,
            "TCP {tag}: receiver got {got} bytes, expected {bytes}"
        );
    }

    iperf3_once(&lab, false, bytes as u64, "lanA-to-lanB");
    iperf3_once(&lab, true, bytes as u64, "lanB-to-lanA");

    let sa = lab.a.status();
    let sb = lab.b.status();
    for (name, st) in [("gwA", &sa), ("gwB", &sb)] {
        let o = num(st, &format!("{T0}/outbound/bytes"));
        let i = num(st, &format!("{T0}/inbound/bytes"));
        // Each direction carried at least 20 MiB (TCP) + about 10 MiB (iperf3, see above).
        assert!(
            o as usize > bytes && i as usize > bytes,
            "{name}: tunnel bytes out {o} in {i}, each should exceed {bytes}"
        );
        for d in ["authentication", "unknown_spi", "malformed", "selector"] {
            assert_eq!(
                num(st, &format!("/drops/{d}")),
                0,
                "{name}: drops.{d} under load: {st:#}"
            );
        }
        println!(
            "{name} after the transfers: counters {} drops {}",
            st["counters"], st["drops"]
        );
    }
}

/// UDP super-packets from the LAN reach gwA's TUN device whole (USO) and gwA splits them into
/// their datagrams, each with its own lengths, IP ID and checksums. Here lanA's sender makes
/// them with UDP_SEGMENT; a LAN interface's GRO makes the same of forwarded floods
/// (`rx-udp-gro-forwarding`). lanB must receive every datagram, intact (the kernel drops a
/// datagram with a bad checksum before the socket), and gwA must have read super-packets.
#[test]
#[ignore = "needs root"]
fn udp_super_packets_are_split_into_datagrams() {
    const UDP_SEGMENT: libc::c_int = 103;
    const BURSTS: u32 = 20;
    const PER_BURST: u32 = 10;
    const SIZE: usize = 200;
    const LAST: usize = 77;
    let _s = serial();
    require_root();
    let lab = Lab::start(LabOpts::default());
    ping_ok(&lab.topo.lan_a, LAN_B_HOST, 1);
    let rx = udp_socket_in(&lab.topo.lan_b, SocketAddr::from((LAN_B_HOST, 5310)));
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let tx = udp_socket_in(&lab.topo.lan_a, SocketAddr::from((LAN_A_HOST, 0)));
    let seg = SIZE as libc::c_int;
    // SAFETY: UDP_SEGMENT takes an int; `tx` is an open UDP socket.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&tx),
            libc::SOL_UDP,
            UDP_SEGMENT,
            (&seg as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "UDP_SEGMENT: {}", std::io::Error::last_os_error());
    let datagram = |burst: u32, i: u32| -> Vec<u8> {
        let len = if i + 1 == PER_BURST { LAST } else { SIZE };
        let mut d = Vec::with_capacity(len);
        d.extend_from_slice(&burst.to_be_bytes());
        d.extend_from_slice(&i.to_be_bytes());
        d.extend((8..len).map(|k| (k as u32 * 7 + burst + i) as u8));
        d
    };
    let super_rx = |st: &serde_json::Value| num(st, "/counters/tun_rx_super_packets");
    let super_tx = |st: &serde_json::Value| num(st, "/counters/tun_tx_super_packets");
    let (a0, b0) = (super_rx(&lab.a.status()), super_tx(&lab.b.status()));

    let udp_stats = |ns: &str| {
        let o = run_timeout(
            ns_cmd(ns, "nstat").args(["-az", "Udp*", "Ip*Discards"]),
            Duration::from_secs(5),
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // One burst at a time, read back before the next: the receiver's socket buffer holds
    // fewer than BURSTS * PER_BURST datagrams.
    let mut buf = vec![0u8; 2048];
    for burst in 0..BURSTS {
        let mut expected = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for i in 0..PER_BURST {
            let d = datagram(burst, i);
            out.extend_from_slice(&d);
            expected.insert(d);
        }
        let n = tx
            .send_to(&out, SocketAddr::from((LAN_B_HOST, 5310)))
            .unwrap_or_else(|e| panic!("UDP_SEGMENT send of {} bytes: {e}", out.len()));
        assert_eq!(n, out.len());
        while !expected.is_empty() {
            match rx.recv(&mut buf) {
                Ok(n) => assert!(
                    expected.remove(&buf[..n]),
                    "burst {burst}: unexpected or repeated datagram of {n} bytes: {:02x?}",
                    &buf[..n.min(16)]
                ),
                Err(e) => panic!(
                    "burst {burst}: {} of {PER_BURST} datagrams missing, then: {e}\n\
                     gwA: {}\ngwB: {}\nlanB:\n{}\ngwB:\n{}",
                    expected.len(),
                    lab.a.status(),
                    lab.b.status(),
                    udp_stats(&lab.topo.lan_b),
                    udp_stats(&lab.topo.gw_b),
                ),
            }
        }
    }
    let (sa, sb) = (lab.a.status(), lab.b.status());
    let (a1, b1) = (super_rx(&sa), super_tx(&sb));
    println!(
        "gwA super-packets read: {}; gwB coalesced writes: {}",
        a1 - a0,
        b1 - b0
    );
    assert!(
        a1 - a0 >= u64::from(BURSTS),
        "gwA read {} UDP super-packets for {BURSTS} bursts: the TUN device split them (no USO?)\n{sa:#}",
        a1 - a0
    );
    assert!(
        b1 > b0,
        "gwB coalesced none of the same-size datagrams\n{sb:#}"
    );
    for (name, st) in [("gwA", &sa), ("gwB", &sb)] {
        assert_eq!(num(st, "/drops/malformed"), 0, "{name}: {st:#}");
    }
}

/// An IPv4/UDP datagram lanA -> lanB:5311 with DF (so its ID need not follow), UDP checksum
/// filled in, then spoiled if `corrupt` (as if the remote LAN flipped a bit before gwA
/// encrypted it).
fn udp_with_checksum(id: u16, payload: &[u8], corrupt: bool) -> Vec<u8> {
    let len = 28 + payload.len();
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&LAN_A_HOST.octets());
    p[16..20].copy_from_slice(&LAN_B_HOST.octets());
    p[20..22].copy_from_slice(&40311u16.to_be_bytes());
    p[22..24].copy_from_slice(&5311u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    let pseudo = ironsec_dataplane::checksum::sum(&p[12..20], 0) + 17 + (len - 20) as u64;
    let mut c =
        ironsec_dataplane::checksum::fold(ironsec_dataplane::checksum::sum(&p[20..], pseudo));
    if c == 0 {
        c = 0xffff;
    }
    if corrupt {
        c ^= 0x0101;
    }
    p[26..28].copy_from_slice(&c.to_be_bytes());
    p
}

/// Issue 19: gwB's coalescer merges decrypted datagrams of one flow into one TUN write with a
/// fresh checksum; a datagram whose UDP checksum was already wrong must not be merged (that
/// would launder it) but reach lanB unchanged, where its stack drops it. Bursts of same-size
/// datagrams of one flow, the middle one with a bad checksum, sent from lanA through a raw
/// socket: lanB's socket gets every good datagram and never a bad one, lanB's stack counts
/// every bad one (UdpInCsumErrors), and gwB counts those it refused to merge (it must have had
/// the chance at least once: the bursts do get coalesced).
#[test]
#[ignore = "needs root"]
fn bad_inner_checksums_are_not_laundered_by_coalescing() {
    const BURSTS: u16 = 30;
    const PER_BURST: u16 = 9;
    const BAD: u16 = 4;
    let _s = serial();
    require_root();
    let lab = Lab::start(LabOpts::default());
    ping_ok(&lab.topo.lan_a, LAN_B_HOST, 1);
    let rx = udp_socket_in(&lab.topo.lan_b, SocketAddr::from((LAN_B_HOST, 5311)));
    rx.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let csum_errors = |ns: &str| -> u64 {
        let o = run_timeout(
            ns_cmd(ns, "nstat").args(["-az", "UdpInCsumErrors"]),
            Duration::from_secs(5),
        );
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some("UdpInCsumErrors")).then(|| w.next()?.parse().ok())?
            })
            .unwrap_or(0)
    };
    let bad_b = |st: &serde_json::Value| num(st, "/counters/gro_bad_checksums");
    let (e0, g0, s0) = (
        csum_errors(&lab.topo.lan_b),
        bad_b(&lab.b.status()),
        num(&lab.b.status(), "/counters/tun_tx_super_packets"),
    );
    let bursts: Vec<Vec<Vec<u8>>> = (0..BURSTS)
        .map(|b| {
            (0..PER_BURST)
                .map(|i| {
                    let payload: Vec<u8> = [b.to_be_bytes(), i.to_be_bytes()]
                        .concat()
                        .into_iter()
                        .chain((4..120u16).map(|k| (k * 3 + b + i) as u8))
                        .collect();
                    udp_with_checksum(b * PER_BURST + i + 1, &payload, i == BAD)
                })
                .collect()
        })
        .collect();
    let lan_a = lab.topo.lan_a.clone();
    let mut buf = vec![0u8; 2048];
    for (b, burst) in bursts.into_iter().enumerate() {
        let sent = burst.clone();
        in_netns(&lan_a, move || {
            // SAFETY: plain socket(2); the descriptor is owned and closed below.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
            assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
            let dst = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from(LAN_B_HOST).to_be(),
                },
                sin_zero: [0; 8],
            };
            for p in &burst {
                // SAFETY: `p` and `dst` outlive the call; the lengths are theirs.
                let n = unsafe {
                    libc::sendto(
                        fd,
                        p.as_ptr().cast(),
                        p.len(),
                        0,
                        (&dst as *const libc::sockaddr_in).cast(),
                        std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    )
                };
                assert_eq!(n, p.len() as isize, "{}", std::io::Error::last_os_error());
            }
            // SAFETY: `fd` is ours and not used after.
            unsafe { libc::close(fd) };
        });
        let mut expected: std::collections::BTreeSet<Vec<u8>> = sent
            .iter()
            .enumerate()
            .filter(|(i, _)| *i as u16 != BAD)
            .map(|(_, p)| p[28..].to_vec())
            .collect();
        while !expected.is_empty() {
            let n = rx.recv(&mut buf).unwrap_or_else(|e| {
                panic!(
                    "burst {b}: {} good datagrams missing: {e}\ngwB: {}",
                    expected.len(),
                    lab.b.status()
                )
            });
            assert!(
                expected.remove(&buf[..n]),
                "burst {b}: a datagram lanB's stack should have dropped (bad checksum, \
                 laundered?) or a repeat: {:02x?}",
                &buf[..n.min(8)]
            );
        }
    }
    // Nothing more: the bad ones never reach the socket.
    if let Ok(n) = rx.recv(&mut buf) {
        panic!(
            "a bad-checksum datagram was delivered: {:02x?}",
            &buf[..n.min(8)]
        );
    }
    let sb = lab.b.status();
    let (e1, g1, s1) = (
        csum_errors(&lab.topo.lan_b),
        bad_b(&sb),
        num(&sb, "/counters/tun_tx_super_packets"),
    );
    println!(
        "lanB UdpInCsumErrors +{}, gwB coalesced writes +{}, refused to merge (bad checksum) +{}",
        e1 - e0,
        s1 - s0,
        g1 - g0
    );
    assert_eq!(
        e1 - e0,
        u64::from(BURSTS),
        "lanB dropped every bad datagram itself"
    );
    assert!(
        s1 > s0,
        "gwB coalesced no burst: the test checked nothing\n{sb:#}"
    );
    assert!(
        g1 > g0,
        "gwB never refused a bad datagram from a run\n{sb:#}"
    );
}

// ------------------------------------------------------------------------------------------
// 3. nothing but ESP-in-UDP on the WAN

#[test]
#[ignore = "needs root"]
fn wan_carries_only_esp_in_udp() {
    let _s = serial();
    require_root();
    let lab = Lab::start(LabOpts::default());
    let file = lab.dir.join("wan-a.pcap");
    let cap = lab.capture(&lab.topo.gw_a, "wan", &file, &[]);
    make_traffic(&lab, 64 * 1024);
    let raw = cap.stop();
    let pcap = parse_pcap(&raw);

    let mut esp = 0usize;
    for (i, r) in pcap.records.iter().enumerate() {
        match classify_ethernet(&r.data) {
            Frame::Udp(d) => {
                let ends = [*d.src.ip(), *d.dst.ip()];
                assert!(
                    ends.contains(&WAN_A)
                        && ends.contains(&WAN_B)
                        && d.src.port() == 4500
                        && d.dst.port() == 4500,
                    "frame {}: UDP {} -> {} is not gateway-to-gateway ESP-in-UDP on 4500",
                    i + 1,
                    d.src,
                    d.dst
                );
                assert!(
                    d.payload.len() > 8 && d.payload[0..4] != [0, 0, 0, 0],
                    "frame {}: UDP 4500 payload is not ESP ({} bytes)",
                    i + 1,
                    d.payload.len()
                );
                esp += 1;
            }
            Frame::OtherIpv4(p, s, d) => {
                panic!("frame {}: IPv4 protocol {p} {s} -> {d} on the WAN", i + 1)
            }
            // ARP between the gateways and IPv6 link-local chatter (ND/MLD) are not tunnel traffic.
            Frame::NonIpv4(0x0806) | Frame::NonIpv4(0x86dd) => {}
            Frame::NonIpv4(et) => panic!("frame {}: unexpected ethertype {et:#06x}", i + 1),
        }
    }
    // 20 ICMP packets plus a TCP stream of 64 KiB.
    assert!(esp >= 20 + 10, "only {esp} ESP frames captured");

    let f = file.to_str().unwrap();
    let plain = tshark(&[
        "-r",
        f,
        "-n",
        "-d",
        "udp.port==4500,udpencap",
        "-Y",
        "icmp || tcp || ip.addr==10.0.0.0/8",
    ]);
    assert!(plain.trim().is_empty(), "plaintext on the WAN:\n{plain}");
    let fields = tshark(&[
        "-r",
        f,
        "-n",
        "-d",
        "udp.port==4500,udpencap",
        "-Y",
        "ip",
        "-T",
        "fields",
        "-e",
        "udp.srcport",
        "-e",
        "udp.dstport",
        "-e",
        "esp.spi",
    ]);
    let mut tshark_esp = 0;
    for l in fields.lines().filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = l.split('\t').collect();
        assert!(
            cols.len() == 3 && cols[0] == "4500" && cols[1] == "4500" && !cols[2].is_empty(),
            "tshark: IPv4 frame that is not ESP in UDP/4500: {l:?}"
        );
        tshark_esp += 1;
    }
    assert_eq!(
        tshark_esp, esp,
        "tshark and the test disagree on the number of ESP frames"
    );

    assert!(
        !contains(&raw, PING_PATTERN),
        "ping payload pattern found in clear in the WAN capture"
    );
    assert!(
        !contains(&raw, &TCP_PATTERN[..24]),
        "TCP payload pattern found in clear in the WAN capture"
    );
    println!("{esp} ESP frames on the WAN, no plaintext");
}

// ------------------------------------------------------------------------------------------
// 4. replay

#[test]
#[ignore = "needs root"]
fn replayed_esp_is_counted_and_dropped() {
    let _s = serial();
    require_root();
    let lab = Lab::start(LabOpts::default());
    let file = lab.dir.join("replay.pcap");
    let cap = lab.capture(&lab.topo.gw_a, "wan", &file, &["udp", "port", "4500"]);
    ping_ok(&lab.topo.lan_a, LAN_B_HOST, 5);
    let raw = cap.stop();
    let pcap = parse_pcap(&raw);
    let to_b = esp_datagrams(&pcap, WAN_A, WAN_B);
    assert_eq!(
        to_b.len(),
        5,
        "expected the 5 echo requests as ESP gwA -> gwB, found {}",
        to_b.len()
    );
    for d in &to_b {
        assert_eq!(
            &d.payload[0..4],
            &SPI_A_TO_B.to_be_bytes(),
            "captured ESP with an unexpected SPI"
        );
    }

    let before = lab.b.status();
    let sock = udp_socket_in(&lab.topo.gw_a, SocketAddr::V4(SocketAddrV4::new(WAN_A, 0)));
    for d in &to_b {
        sock.send_to(&d.payload, SocketAddrV4::new(WAN_B, 4500))
            .expect("send replayed ESP");
    }
    let n = to_b.len() as u64;
    let want = num(&before, "/drops/replay") + n;
    let mut after = before.clone();
    let ok = poll_until(Duration::from_secs(5), || {
        after = lab.b.status();
        num(&after, "/drops/replay") >= want
    });
    assert!(
        ok,
        "gwB drops.replay went {} -> {} after replaying {n} packets; status: {after:#}\ngwB log:\n{}",
        num(&before, "/drops/replay"),
        num(&after, "/drops/replay"),
        lab.b.log_text()
    );
    std::thread::sleep(Duration::from_millis(200));
    let after = lab.b.status();
    assert_eq!(num(&after, "/drops/replay"), want, "drops.replay overshot");
    assert_eq!(
        num(&after, &format!("{T0}/inbound/drops/replay")),
        num(&before, &format!("{T0}/inbound/drops/replay")) + n
    );
    assert_eq!(
        num(&after, &format!("{T0}/inbound/packets")),
        num(&before, &format!("{T0}/inbound/packets")),
        "replayed packets were accepted by gwB's inbound SA"
    );
    assert_eq!(
        num(&after, "/counters/tun_tx_packets"),
        num(&before, "/counters/tun_tx_packets"),
        "replayed packets were written to gwB's TUN"
    );
    assert_eq!(num(&after, "/drops/authentication"), 0);
    // The tunnel still works afterwards.
    ping_ok(&lab.topo.lan_a, LAN_B_HOST, 2);
}

// ------------------------------------------------------------------------------------------
// 5. forged packets: spoofed inner source, unknown SPI, corrupted ICV

#[test]
#[ignore = "needs root"]
fn forged_packets_are_dropped_and_counted() {
    let _s = serial();
    require_root();
    let lab = Lab::start(LabOpts::default());
    // Some real traffic first so the SA is past sequence 1.
    ping_ok(&lab.topo.lan_a, LAN_B_HOST, 2);

    let sock = udp_socket_in(&lab.topo.gw_a, SocketAddr::V4(SocketAddrV4::new(WAN_A, 0)));
    let to_b = SocketAddrV4::new(WAN_B, 4500);
    let lan_b_cap = lab.capture(
        &lab.topo.lan_b,
        "b-lan",
        &lab.dir.join("lanb-spoof.pcap"),
        &["host", "10.9.9.9"],
    );
    let inbound_pkts = format!("{T0}/inbound/packets");

    // (a) valid ESP, spoofed inner source 10.9.9.9 (not in gwB's remote_ts 10.1.0.0/24).
    let before = lab.b.status();
    let spoofed = echo_packet(Ipv4Addr::new(10, 9, 9, 9), LAN_B_HOST, 0x4242, 1);
    let esp = seal(
        lab.suite,
        SPI_A_TO_B,
        &lab.key_ab,
        lab.esn,
        1_000_000,
        &spoofed,
    );
    sock.send_to(&esp, to_b).unwrap();
    let mut after = before.clone();
    let ok = poll_until(Duration::from_secs(5), || {
        after = lab.b.status();
        num(&after, "/drops/selector") > num(&before, "/drops/selector")
    });
    assert!(
        ok,
        "gwB did not count drops.selector for a spoofed inner source; status {after:#}\nlog:\n{}",
        lab.b.log_text()
    );
    std::thread::sleep(Duration::from_millis(200));
    let after = lab.b.status();
    assert_eq!(
        num(&after, "/drops/selector"),
        num(&before, "/drops/selector") + 1
    );
    assert_eq!(
        num(&after, &format!("{T0}/inbound/drops/selector")),
        num(&before, &format!("{T0}/inbound/drops/selector")) + 1
    );
    assert_eq!(
        num(&after, "/counters/tun_tx_packets"),
        num(&before, "/counters/tun_tx_packets"),
        "spoofed packet written to TUN"
    );
    assert_eq!(
        num(&after, "/drops/authentication"),
        num(&before, "/drops/authentication"),
        "forged packet failed authentication: test forging is wrong"
    );
    let leaked = parse_pcap(&lan_b_cap.stop());
    assert_eq!(
        leaked.records.len(),
        0,
        "packets from/to 10.9.9.9 reached lanB"
    );

    // (b) positive control: the same forging with a legitimate inner source is accepted, which
    // shows (a) was dropped for its selector and not because the test forges badly.
    let before = lab.b.status();
    let good = echo_packet(LAN_A_HOST, LAN_B_HOST, 0x4243, 1);
    sock.send_to(
        &seal(
            lab.suite,
            SPI_A_TO_B,
            &lab.key_ab,
            lab.esn,
            1_000_001,
            &good,
        ),
        to_b,
    )
    .unwrap();
    let mut after = before.clone();
    let ok = poll_until(Duration::from_secs(5), || {
        after = lab.b.status();
        num(&after, &inbound_pkts) > num(&before, &inbound_pkts)
    });
    assert!(
        ok,
        "gwB did not accept a correctly forged packet (control); status {after:#}\nlog:\n{}",
        lab.b.log_text()
    );

    // (c) unknown SPI.
    let before = lab.b.status();
    let bogus_spi =
        0x7e57_0000 | (u32::from_be_bytes(random_bytes(4).try_into().unwrap()) & 0xffff);
    let km = random_bytes(keymat_len(lab.suite));
    sock.send_to(&seal(lab.suite, bogus_spi, &km, lab.esn, 1, &good), to_b)
        .unwrap();
    let mut after = before.clone();
    let ok = poll_until(Duration::from_secs(5), || {
        after = lab.b.status();
        num(&after, "/drops/unknown_spi") > num(&before, "/drops/unknown_spi")
    });
    assert!(
        ok,
        "gwB did not count drops.unknown_spi for SPI {bogus_spi:#x}; status {after:#}\nlog:\n{}",
        lab.b.log_text()
    );
    assert_eq!(num(&after, &inbound_pkts), num(&before, &inbound_pkts));

    // (d) a valid packet with one ciphertext bit flipped fails authentication ...
    let before = lab.b.status();
    let valid = seal(
        lab.suite,
        SPI_A_TO_B,
        &lab.key_ab,
        lab.esn,
        1_000_002,
        &good,
    );
    let mut corrupt = valid.clone();
    corrupt[HEADROOM + 10] ^= 0x01;
    sock.send_to(&corrupt, to_b).unwrap();
    let mut after = before.clone();
    let ok = poll_until(Duration::from_secs(5), || {
        after = lab.b.status();
        num(&after, "/drops/authentication") > num(&before, "/drops/authentication")
    });
    assert!(
        ok,
        "gwB did not count drops.authentication for a corrupted packet; status {after:#}\nlog:\n{}",
        lab.b.log_text()
    );
    assert_eq!(
        num(&after, "/drops/authentication"),
        num(&before, "/drops/authentication") + 1
    );
    assert_eq!(
        num(&after, &format!("{T0}/inbound/drops/authentication")),
        num(&before, &format!("{T0}/inbound/drops/authentication")) + 1
    );
    assert_eq!(num(&after, &inbound_pkts), num(&before, &inbound_pkts));
    assert_eq!(num(&after, "/drops/replay"), num(&before, "/drops/replay"));

    // ... and must not have advanced the replay window (RFC 4303 3.4.3: update only after the
    // ICV verified): the intact packet with the same sequence number is still accepted.
    sock.send_to(&valid, to_b).unwrap();
    let mut after2 = after.clone();
    let ok = poll_until(Duration::from_secs(5), || {
        after2 = lab.b.status();
        num(&after2, &inbound_pkts) > num(&after, &inbound_pkts)
    });
    assert!(
        ok,
        "after a corrupted copy, the intact packet with the same sequence number was not accepted \
         (replay window updated before authentication?); status {after2:#}\nlog:\n{}",
        lab.b.log_text()
    );
    assert_eq!(num(&after2, "/drops/replay"), num(&before, "/drops/replay"));
}

// ------------------------------------------------------------------------------------------
// 6. outside judges: tshark decrypts the capture; an independent AEAD implementation
//    (RustCrypto aes-gcm / chacha20poly1305, not ring) verifies every ICV and decrypts.

/// Verifies and decrypts one AES-CBC + HMAC ESP packet with RustCrypto (HMAC: `hmac` with
/// `sha1` / `sha2`, where ironsecd uses ring): the truncated HMAC over SPI, sequence number, IV
/// and ciphertext, with the high sequence bits (0 here) appended under ESN (RFC 4303
/// 3.3.2.1), then AES-CBC with the 16-byte IV from the packet (RFC 3602). Returns the
/// decrypted body (payload, padding, pad length, next header).
fn independent_open_cbc(
    suite: Suite,
    keymat: &[u8],
    esn: bool,
    esp: &[u8],
) -> Result<Vec<u8>, String> {
    use aes::cipher::block_padding::NoPadding;
    use aes::cipher::{BlockDecryptMut, KeyIvInit};
    use hmac::{Mac, SimpleHmac};
    let Suite::Cbc(cipher, integ) = suite else {
        unreachable!("an AEAD")
    };
    let icv_len = integ.icv_len();
    if esp.len() < 24 + 16 + icv_len {
        return Err(format!("ESP packet too short ({} bytes)", esp.len()));
    }
    let (enc, mac) = keymat.split_at(cipher.key_len());
    let (auth, icv) = esp.split_at(esp.len() - icv_len);
    let hi: &[u8] = if esn { &[0u8; 4] } else { &[] };
    fn tag<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key).unwrap();
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().to_vec()
    }
    let full = match integ.key_len() {
        20 => tag::<SimpleHmac<sha1::Sha1>>(mac, &[auth, hi]),
        32 => tag::<SimpleHmac<sha2::Sha256>>(mac, &[auth, hi]),
        48 => tag::<SimpleHmac<sha2::Sha384>>(mac, &[auth, hi]),
        _ => tag::<SimpleHmac<sha2::Sha512>>(mac, &[auth, hi]),
    };
    if full[..icv_len] != *icv {
        return Err("ICV does not verify".into());
    }
    let iv = &auth[8..24];
    let mut pt = auth[24..].to_vec();
    if pt.len() % 16 != 0 {
        return Err("ciphertext is not whole AES blocks".into());
    }
    let r = match enc.len() {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(enc, iv)
            .unwrap()
            .decrypt_padded_mut::<NoPadding>(&mut pt)
            .map(|_| ()),
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(enc, iv)
            .unwrap()
            .decrypt_padded_mut::<NoPadding>(&mut pt)
            .map(|_| ()),
        _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(enc, iv)
            .unwrap()
            .decrypt_padded_mut::<NoPadding>(&mut pt)
            .map(|_| ()),
    };
    r.map_err(|_| "AES-CBC refused the ciphertext".to_string())?;
    Ok(pt)
}

/// Verifies and decrypts one ESP packet with RustCrypto; returns the inner IPv4 packet.
fn independent_open(suite: &str, keymat: &[u8], esn: bool, esp: &[u8]) -> Result<Vec<u8>, String> {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    let s = suite_of(suite);
    if !s.is_aead() {
        let pt = independent_open_cbc(s, keymat, esn, esp)?;
        return check_trailer(pt, 16);
    }
    if esp.len() < 16 + 2 + 16 {
        return Err(format!("ESP packet too short ({} bytes)", esp.len()));
    }
    let (key, salt) = keymat.split_at(keymat.len() - 4);
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(salt);
    nonce[4..].copy_from_slice(&esp[8..16]);
    // AAD: SPI || seq (RFC 4106 5), or SPI || seq_hi || seq_lo with ESN; the packets of these
    // tests are far below 2^32, so seq_hi is 0.
    let aad: Vec<u8> = if esn {
        [&esp[0..4], &[0u8; 4][..], &esp[4..8]].concat()
    } else {
        esp[0..8].to_vec()
    };
    let payload = Payload {
        msg: &esp[16..],
        aad: &aad,
    };
    let pt = match suite {
        "aes128gcm16" => aes_gcm::Aes128Gcm::new_from_slice(key)
            .unwrap()
            .decrypt(nonce.as_slice().into(), payload),
        "aes256gcm16" => aes_gcm::Aes256Gcm::new_from_slice(key)
            .unwrap()
            .decrypt(nonce.as_slice().into(), payload),
        "chacha20poly1305" => chacha20poly1305::ChaCha20Poly1305::new_from_slice(key)
            .unwrap()
            .decrypt(nonce.as_slice().into(), payload),
        s => panic!("unknown suite {s}"),
    }
    .map_err(|_| "ICV does not verify".to_string())?;
    check_trailer(pt, 4)
}

/// The decrypted body `pt` of a suite that pads to `block` bytes: the default padding, next
/// header 4, a whole IPv4 packet before it.
fn check_trailer(pt: Vec<u8>, block: usize) -> Result<Vec<u8>, String> {
    if pt.len() < 2 {
        return Err("empty body".into());
    }
    let nh = pt[pt.len() - 1];
    let pad = pt[pt.len() - 2] as usize;
    if nh != NEXT_HEADER_IPV4 {
        return Err(format!("next header {nh}, expected 4"));
    }
    if pad + 2 > pt.len() {
        return Err(format!("pad length {pad} exceeds plaintext"));
    }
    let body = pt.len() - 2 - pad;
    // RFC 4303 2.4: default padding bytes are 1, 2, 3, ...
    for (i, b) in pt[body..body + pad].iter().enumerate() {
        if *b as usize != i + 1 {
            return Err(format!("padding byte {i} is {b}, expected {}", i + 1));
        }
    }
    if !pt.len().is_multiple_of(block) {
        return Err(format!(
            "ciphertext does not end on a {block}-byte boundary"
        ));
    }
    let inner = pt[..body].to_vec();
    if inner.len() < 20
        || inner[0] >> 4 != 4
        || u16::from_be_bytes([inner[2], inner[3]]) as usize != inner.len()
    {
        return Err(format!(
            "inner packet is not a whole IPv4 packet ({} bytes)",
            inner.len()
        ));
    }
    Ok(inner)
}

/// tshark 4.0's names for an ESP suite's encryption and authentication algorithms and the
/// key material split between them, or None where it has none.
/// Wireshark 4.0 (Debian bookworm) knows AES-GCM but not ChaCha20-Poly1305 for ESP, and it has
/// no ESN setting: with ESN it still decrypts (GCM's keystream does not depend on the AAD) but
/// computes the ICV over the 8-byte AAD, so every ICV shows as bad. ironsecd requires ESN for
/// static keys, so tshark's ICV check is requested only for non-ESN SAs (never, today) and the
/// independent AEAD implementation verifies every ICV with the ESN AAD instead.
fn tshark_algorithms(suite: &str) -> Option<(&'static str, &'static str, usize)> {
    let s = suite_of(suite);
    let auth = match s.integ() {
        None => "NULL",
        Some(Integ::HmacSha1_96) => "HMAC-SHA-1-96 [RFC2404]",
        Some(Integ::HmacSha256_128) => "HMAC-SHA-256-128 [RFC4868]",
        Some(Integ::HmacSha384_192) => "HMAC-SHA-384-192 [RFC4868]",
        Some(Integ::HmacSha512_256) => "HMAC-SHA-512-256 [RFC4868]",
    };
    match s {
        Suite::Aes128Gcm16 | Suite::Aes256Gcm16 => {
            Some(("AES-GCM with 16 octet ICV [RFC4106]", auth, s.keymat_len()))
        }
        Suite::Cbc(..) => Some(("AES-CBC [RFC3602]", auth, s.key_len())),
        _ => None,
    }
}

fn tshark_judge(opts: LabOpts) {
    let _s = serial();
    require_root();
    let lab = Lab::start(opts);
    let file = lab.dir.join("judge.pcap");
    let cap = lab.capture(&lab.topo.gw_a, "wan", &file, &["udp", "port", "4500"]);
    make_traffic(&lab, 32 * 1024);
    let raw = cap.stop();
    let pcap = parse_pcap(&raw);
    let ab = esp_datagrams(&pcap, WAN_A, WAN_B);
    let ba = esp_datagrams(&pcap, WAN_B, WAN_A);
    let total = ab.len() + ba.len();
    assert_eq!(
        total,
        pcap.records.len(),
        "non-ESP datagrams on UDP 4500 in the capture"
    );

    // Independent AEAD: every packet verifies and decrypts to a whole IPv4 packet.
    let mut inner = Vec::new();
    for (dir, list, spi, key) in [
        ("gwA->gwB", &ab, SPI_A_TO_B, &lab.key_ab),
        ("gwB->gwA", &ba, SPI_B_TO_A, &lab.key_ba),
    ] {
        for (i, d) in list.iter().enumerate() {
            assert_eq!(
                &d.payload[0..4],
                &spi.to_be_bytes(),
                "{dir} packet {i}: SPI"
            );
            let p = independent_open(lab.suite, key, lab.esn, &d.payload).unwrap_or_else(|e| {
                panic!("{dir} ESP packet {i} (seq {:?}): {e}", &d.payload[4..8])
            });
            inner.push(p);
        }
    }
    let icmp_inner = inner.iter().filter(|p| p[9] == 1).count();
    let tcp_inner = inner.iter().filter(|p| p[9] == 6).count();
    assert_eq!(icmp_inner, 20, "decrypted ICMP packets");
    assert_eq!(
        icmp_inner + tcp_inner,
        total,
        "decrypted packets that are neither ICMP nor TCP"
    );
    assert!(
        inner.iter().any(|p| contains(p, PING_PATTERN)),
        "decrypted ICMP does not carry the ping payload"
    );
    assert!(
        inner.iter().any(|p| contains(p, &TCP_PATTERN[..24])),
        "decrypted TCP does not carry the TCP payload"
    );

    // tshark dissects the independently decrypted packets.
    let inner_file = lab.dir.join("inner.pcap");
    write_raw_ip_pcap(&inner_file, &inner);
    let f = inner_file.to_str().unwrap();
    assert_eq!(
        count_lines(&tshark(&[
            "-r",
            f,
            "-n",
            "-Y",
            "icmp",
            "-T",
            "fields",
            "-e",
            "frame.number"
        ])),
        20
    );
    assert_eq!(
        count_lines(&tshark(&[
            "-r",
            f,
            "-n",
            "-Y",
            "tcp",
            "-T",
            "fields",
            "-e",
            "frame.number"
        ])),
        tcp_inner
    );
    let bad = tshark(&[
        "-r",
        f,
        "-n",
        "-Y",
        "_ws.malformed || _ws.expert.severity == error",
    ]);
    assert!(
        bad.trim().is_empty(),
        "tshark finds malformed inner packets:\n{bad}"
    );

    // tshark decrypts the capture itself with its ESP SA table.
    let Some((enc, auth_alg, enc_len)) = tshark_algorithms(lab.suite) else {
        println!(
            "tshark 4.0 cannot decrypt {}: checked with the independent AEAD only",
            lab.suite
        );
        return;
    };
    let uat = |src: Ipv4Addr, dst: Ipv4Addr, spi: u32, key: &[u8]| {
        let (enc_key, auth_key) = key.split_at(enc_len);
        let auth_key = if auth_key.is_empty() {
            String::new()
        } else {
            format!("0x{}", hex(auth_key))
        };
        format!(
            "uat:esp_sa:\"IPv4\",\"{src}\",\"{dst}\",\"0x{spi:08x}\",\"{enc}\",\"0x{}\",\"{auth_alg}\",\"{auth_key}\"",
            hex(enc_key)
        )
    };
    let sa1 = uat(WAN_A, WAN_B, SPI_A_TO_B, &lab.key_ab);
    let sa2 = uat(WAN_B, WAN_A, SPI_B_TO_A, &lab.key_ba);
    let auth = if lab.esn { "FALSE" } else { "TRUE" };
    let f = file.to_str().unwrap();
    let base: Vec<String> = [
        "-r",
        f,
        "-n",
        "-d",
        "udp.port==4500,udpencap",
        "-o",
        "esp.enable_encryption_decode:TRUE",
        "-o",
        &format!("esp.enable_authentication_check:{auth}"),
        "-o",
        &sa1,
        "-o",
        &sa2,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let run = |filter: &str| -> String {
        let mut a: Vec<&str> = base.iter().map(String::as_str).collect();
        a.extend(["-Y", filter, "-T", "fields", "-e", "frame.number"]);
        tshark(&a)
    };
    let esp_n = count_lines(&run("esp"));
    let icmp_n = count_lines(&run("esp && icmp"));
    let tcp_n = count_lines(&run("esp && tcp"));
    let bad = run("_ws.malformed || _ws.expert.severity == error");
    println!(
        "tshark: {esp_n} ESP frames, {icmp_n} ICMP and {tcp_n} TCP inside, {} with errors",
        count_lines(&bad)
    );
    assert_eq!(esp_n, total, "tshark ESP frame count");
    assert_eq!(icmp_n, 20, "tshark: decrypted ICMP frames");
    assert_eq!(tcp_n, tcp_inner, "tshark: decrypted TCP frames");
    assert_eq!(
        count_lines(&bad),
        0,
        "tshark reports malformed/error frames in the decrypted capture (frames {bad})"
    );
    let pat: Vec<String> = PING_PATTERN.iter().map(|b| format!("{b:02x}")).collect();
    let plain_ping = run(&format!("icmp contains {}", pat.join(":")));
    assert_eq!(
        count_lines(&plain_ping),
        20,
        "tshark's decrypted ICMP does not carry the ping payload"
    );
    if !lab.esn {
        let good = count_lines(&run("esp.icv_good == 1"));
        assert_eq!(good, total, "tshark: frames whose ICV verified");
    }
}

#[test]
#[ignore = "needs root"]
fn tshark_judges_aes128gcm16_esn() {
    tshark_judge(LabOpts {
        suite: "aes128gcm16",
        esn: true,
        udp_offload: false,
        ..LabOpts::default()
    });
}

#[test]
#[ignore = "needs root"]
fn tshark_judges_aes256gcm16() {
    tshark_judge(LabOpts {
        suite: "aes256gcm16",
        esn: true,
        udp_offload: false,
        ..LabOpts::default()
    });
}

/// tshark 4.0 has no ChaCha20-Poly1305 for ESP: the independent RustCrypto implementation
/// verifies and decrypts, and tshark dissects the result.
#[test]
#[ignore = "needs root"]
fn independent_judge_chacha20poly1305() {
    tshark_judge(LabOpts {
        suite: "chacha20poly1305",
        esn: true,
        udp_offload: false,
        ..LabOpts::default()
    });
}

/// AES-CBC + HMAC-SHA2-256-128: tshark (its own AES-CBC, libgcrypt) decrypts every packet,
/// RustCrypto verifies every ICV (ESN: tshark cannot) and decrypts.
#[test]
#[ignore = "needs root"]
fn tshark_judges_aes256_sha256() {
    tshark_judge(LabOpts {
        suite: "aes256-sha256",
        esn: true,
        udp_offload: false,
        ..LabOpts::default()
    });
}

/// AES-CBC + HMAC-SHA1-96, likewise.
#[test]
#[ignore = "needs root"]
fn tshark_judges_aes128_sha1() {
    tshark_judge(LabOpts {
        suite: "aes128-sha1",
        esn: true,
        udp_offload: false,
        ..LabOpts::default()
    });
}

/// A static tunnel with an AES-CBC + HMAC suite, with UDP GSO/GRO and TUN offload as
/// shipped: pings both ways (their payload pattern checked), 8 MiB of TCP lanA -> lanB within
/// 30 s (`tcp_transfer`'s bound), both gateways' status names the suite, and nothing is
/// dropped as a replay, forgery or malformed packet.
fn cbc_tunnel_carries_ping_and_tcp(suite: &'static str) {
    let _s = serial();
    require_root();
    let lab = Lab::start(LabOpts {
        suite,
        ..LabOpts::default()
    });
    let started = Instant::now();
    let mib = 8 * 1024 * 1024;
    make_traffic(&lab, mib);
    println!(
        "{suite}: 10 pings and {} MiB of TCP in {:.1} s",
        mib >> 20,
        started.elapsed().as_secs_f64()
    );
    for (name, d) in [("gwA", &lab.a), ("gwB", &lab.b)] {
        let st = d.status();
        let t = st
            .pointer(T0)
            .unwrap_or_else(|| panic!("{name}: no tunnel in status: {st:#}"));
        assert_eq!(t["outbound"]["suite"], suite, "{name}: {st:#}");
        for drop in ["authentication", "malformed", "replay", "selector"] {
            assert_eq!(
                num(&st, &format!("/drops/{drop}")),
                0,
                "{name}: drops.{drop}: {st:#}"
            );
        }
    }
}

#[test]
#[ignore = "needs root"]
fn cbc_aes256_sha256_ping_and_tcp() {
    cbc_tunnel_carries_ping_and_tcp("aes256-sha256");
}

#[test]
#[ignore = "needs root"]
fn cbc_aes128_sha1_ping_and_tcp() {
    cbc_tunnel_carries_ping_and_tcp("aes128-sha1");
}

// ------------------------------------------------------------------------------------------
// 7. `ironsecd check`

struct CheckCase {
    dir: TempDir,
}

impl CheckCase {
    fn new(tag: &str) -> CheckCase {
        CheckCase {
            dir: TempDir::new(&format!("{}-{tag}", unique_prefix())),
        }
    }

    /// Writes the example config with keys_file/control_socket moved into the temp dir, and a
    /// keys file copied from conf/static.keys.example. Returns (config path, keys path).
    fn write(
        &self,
        example: &str,
        edit: impl Fn(String) -> String,
        keys_text: Option<String>,
        keys_mode: u32,
    ) -> (String, String) {
        use std::os::unix::fs::PermissionsExt;
        let keys = self.dir.join("site.keys");
        let cfg = self.dir.join(example);
        let text = rewrite_toml_lines(
            &example_config(example),
            &[
                (
                    "control_socket",
                    toml_str(self.dir.join("ctl.sock").to_str().unwrap()),
                ),
                ("keys_file", toml_str(keys.to_str().unwrap())),
            ],
        );
        std::fs::write(&cfg, edit(text)).unwrap();
        std::fs::write(
            &keys,
            keys_text.unwrap_or_else(|| example_config("static.keys.example")),
        )
        .unwrap();
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(keys_mode)).unwrap();
        (
            cfg.to_str().unwrap().to_string(),
            keys.to_str().unwrap().to_string(),
        )
    }
}

fn check(cfg: &str) -> (bool, String) {
    let out = run_timeout(
        Command::new(IRONSECD).args(["check", "--config", cfg]),
        Duration::from_secs(10),
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_the_examples() {
    for ex in ["static-gw-a.toml", "static-gw-b.toml"] {
        let c = CheckCase::new("ok");
        let (cfg, _) = c.write(ex, |t| t, None, 0o600);
        let (ok, err) = check(&cfg);
        assert!(
            ok,
            "ironsecd check refused {ex} (copied with temp paths):\n{err}"
        );
    }
}

/// (name, config edit, keys file text, keys file mode, what the error must mention)
type BadCase = (
    &'static str,
    Box<dyn Fn(String) -> String>,
    Option<String>,
    u32,
    &'static [&'static str],
);

#[test]
fn check_rejects_bad_configs_naming_file_and_key() {
    // (name, config edit, keys text, keys mode, strings the error must contain besides the file)
    let cases: Vec<BadCase> = vec![
        (
            "unknown key",
            Box::new(|t: String| t.replace("[gateway]\n", "[gateway]\nbogus_setting = 1\n")),
            None,
            0o600,
            &["bogus_setting"],
        ),
        (
            "bad CIDR",
            Box::new(|t: String| {
                t.replace(
                    "remote_ts = [\"10.2.0.0/24\"]",
                    "remote_ts = [\"10.2.0.0/33\"]",
                )
            }),
            None,
            0o600,
            &["remote_ts"],
        ),
        (
            "wrong key length",
            Box::new(|t: String| t),
            Some(format!(
                "0xc0000102 = \"{}\"\n0xc0000201 = \"{}\"\n",
                "000102030405060708090a0b0c0d0e0f101112", // 19 bytes, aes128gcm16 needs 20
                "202122232425262728292a2b2c2d2e2f30313233"
            )),
            0o600,
            &["c0000102"],
        ),
        (
            "keys file mode 0644",
            Box::new(|t: String| t),
            None,
            0o644,
            &["keys_file"],
        ),
    ];
    let mut failures = Vec::new();
    for (name, edit, keys, mode, needles) in cases {
        let c = CheckCase::new("bad");
        let (cfg, keys_path) = c.write("static-gw-a.toml", edit, keys, mode);
        let text = std::fs::read_to_string(&cfg).unwrap();
        if name == "unknown key" {
            assert!(text.contains("bogus_setting"), "edit did not apply");
        }
        if name == "bad CIDR" {
            assert!(text.contains("/33"), "edit did not apply");
        }
        let (ok, err) = check(&cfg);
        println!("--- {name}: exit ok={ok}\n{err}");
        if ok {
            failures.push(format!("{name}: ironsecd check accepted it"));
            continue;
        }
        // The message names the file (the config, or for key problems the keys file) and the key.
        let names_file = err.contains(&cfg) || err.contains(&keys_path);
        if !names_file {
            failures.push(format!(
                "{name}: stderr does not name {cfg} or {keys_path}:\n{err}"
            ));
        }
        for n in needles {
            if !err.contains(n) {
                failures.push(format!("{name}: stderr does not mention `{n}`:\n{err}"));
            }
        }
        if !err.lines().any(|l| l.matches(": ").count() >= 2) {
            failures.push(format!("{name}: no `FILE: KEY: REASON` line:\n{err}"));
        }
    }
    assert!(
        failures.is_empty(),
        "ironsecd check:\n{}",
        failures.join("\n")
    );
}

/// A LAN interface without UDP GRO forwarding gets one log line at startup with the `ethtool`
/// command that turns on what is off (the TUN device takes USO on this kernel), naming only the
/// LAN interface (the one local_ts is routed out of), and nothing once it is all on. Checked by
/// restarting gwA after each `ethtool -K` on its LAN veth (GRO and UDP GRO forwarding start
/// off on a veth).
#[test]
#[ignore = "needs root"]
fn startup_advises_udp_gro_forwarding_on_the_lan_interface() {
    let _s = serial();
    require_root();
    let mut lab = Lab::start(LabOpts::default());
    let advice = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.contains("turn on UDP GRO forwarding"))
            .map(str::to_string)
            .collect()
    };
    let restart = |lab: &mut Lab, run: u32| {
        lab.a.stop();
        lab.a = Daemon::start(
            "gwA",
            &lab.topo.gw_a,
            &lab.dir.join("gw-a.toml"),
            &lab.dir.join("a.sock"),
            lab.dir.join(&format!("ironsecd-a-{run}.log")),
        );
    };
    let log = lab.a.log_text();
    assert!(
        log.contains("udp_segmentation=true"),
        "the TUN device did not take USO, so no advice is due:\n{log}"
    );
    let got = advice(&log);
    assert_eq!(got.len(), 1, "one advice line expected:\n{log}");
    assert!(
        got[0].contains("interface=lan")
            && got[0].contains("ethtool -K lan gro on rx-udp-gro-forwarding on"),
        "{}",
        got[0]
    );

    let gw_a = lab.topo.gw_a.clone();
    let ethtool = |args: &[&str]| {
        run_ok(
            ns_cmd(&gw_a, "ethtool").args(["-K", "lan"]).args(args),
            Duration::from_secs(5),
        );
    };
    ethtool(&["gro", "on"]);
    restart(&mut lab, 2);
    let log = lab.a.log_text();
    let got = advice(&log);
    assert_eq!(got.len(), 1, "one advice line expected:\n{log}");
    assert!(
        got[0].contains("ethtool -K lan rx-udp-gro-forwarding on") && !got[0].contains("gro on "),
        "only rx-udp-gro-forwarding is off now: {}",
        got[0]
    );

    ethtool(&["rx-udp-gro-forwarding", "on"]);
    restart(&mut lab, 3);
    let log = lab.a.log_text();
    assert!(log.contains("TUN device up"), "{log}");
    assert!(advice(&log).is_empty(), "advice with all on:\n{log}");
}

// ------------------------------------------------------------------------------------------
// 8. Protocol and port selectors

/// gwB's selectors say `10.2.0.0/24[tcp/5201]` on its side while gwA's whole-subnet policy
/// sends everything: gwB's inbound check delivers TCP to 5201 and drops the rest as `selector`
/// (counted on the gateway and the SA), and its outbound policy sends only TCP from 5201.
#[test]
#[ignore = "needs root"]
fn port_selectors_are_enforced_by_the_receiving_gateway() {
    let _s = serial();
    require_root();
    let lab = Lab::start(LabOpts {
        b_rewrites: vec![("local_ts", "[\"10.2.0.0/24[tcp/5201]\"]".to_string())],
        ..LabOpts::default()
    });
    let sb = lab.b.status();
    assert_eq!(
        sb.pointer("/connections/0/local_ts")
            .and_then(|v| v.as_array())
            .map(|v| v.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>()),
        Some(vec!["10.2.0.0/24[tcp/5201]"]),
        "{sb:#}"
    );
    // TCP to 5201 crosses both ways (gwB's replies leave from port 5201). 8 MiB, not less: the
    // receiver's count leaves out what is in flight when the sender stops (see iperf3_once),
    // up to about 0.8 MiB on a busy machine, which 1 MiB transfers once fell below a quarter of.
    iperf3_once(&lab, false, 8 << 20, "tcp5201");
    iperf3_once(&lab, true, 8 << 20, "tcp5201-reverse");

    let (a0, b0) = (lab.a.status(), lab.b.status());
    // ICMP from lanA: gwA seals it (its policy is the whole subnet), gwB opens and drops it.
    let r = ping(
        &lab.topo.lan_a,
        LAN_B_HOST,
        5,
        pattern_payload(PING_PATTERN, 56),
        Duration::from_millis(50),
        Duration::from_secs(2),
    );
    assert_eq!(r.received, 0, "ICMP must not enter gwB's site");
    // ICMP from lanB: gwB has no policy for it.
    let r = ping(
        &lab.topo.lan_b,
        LAN_A_HOST,
        3,
        pattern_payload(PING_PATTERN, 56),
        Duration::from_millis(50),
        Duration::from_secs(2),
    );
    assert_eq!(r.received, 0, "ICMP must not leave gwB's site");
    let (a1, b1) = (lab.a.status(), lab.b.status());
    let d = |x: &serde_json::Value, y: &serde_json::Value, k: &str| num(y, k) - num(x, k);
    println!(
        "outside [tcp/5201]: gwA sent {} ESP; gwB drops.selector +{} (SA +{}), \
         drops.no_policy +{}, delivered +{}",
        d(&a0, &a1, &format!("{T0}/outbound/packets")),
        d(&b0, &b1, "/drops/selector"),
        d(&b0, &b1, &format!("{T0}/inbound/drops/selector")),
        d(&b0, &b1, "/drops/no_policy"),
        d(&b0, &b1, &format!("{T0}/inbound/packets")),
    );
    assert_eq!(d(&a0, &a1, &format!("{T0}/outbound/packets")), 5);
    assert_eq!(d(&b0, &b1, "/drops/selector"), 5, "{b1:#}");
    assert_eq!(d(&b0, &b1, &format!("{T0}/inbound/drops/selector")), 5);
    assert_eq!(d(&b0, &b1, &format!("{T0}/inbound/packets")), 0);
    assert_eq!(d(&b0, &b1, "/drops/no_policy"), 3, "{b1:#}");
    assert_eq!(d(&b0, &b1, &format!("{T0}/outbound/packets")), 0);
}
