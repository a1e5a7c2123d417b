//! Outer IPv6: two ironsecd gateways whose tunnels run over an IPv6 WAN (issue 26).
//!
//! The two-site topology of netns-scripts/topology.sh, with IPv6 added by the test (`nodad`,
//! forwarding on):
//!
//!   lanA 10.1.0.2    - gwA 192.0.2.1     ===wan===  192.0.2.2     gwB - lanB 10.2.0.2
//!        2001:db8:1::2     2001:db8:f::1            2001:db8:f::2        2001:db8:2::2
//!                          2001:db8:e::1 ===wan2=== 2001:db8:e::2  (two-link tests)
//!
//! - `zero_checksum_udp6_is_refused_unless_accepted`: UDP over IPv6 with a zero checksum
//!   (RFC 6935/6936), crafted on a raw socket in gwA's namespace, is dropped by gwB's kernel
//!   and shown in status (`udp6_checksum_errors`) by default, and reaches ironsecd (ESP and
//!   IKE sockets) with `udp6_zero_checksum = "accept"`; checksummed datagrams reach it always.
//! - `tcp_over_an_ipv6_wan_is_segmented_both_ways`: a TCP stream each way over the v6 WAN
//!   goes out in UDP GSO sends and comes in as UDP GRO receives (status `udp_*_super_packets`),
//!   and every ESP datagram on the wire carries a UDP checksum.
//! - `nat66_between_the_gateways`: gwA behind an nftables `ip6` masquerade (NAT66,
//!   tests/common/nat_lab.rs `NatLab::up_v6`): NAT detection over the 16-byte addresses finds
//!   it, gwA sends keepalives through it, both inner families pass.
//! - `dual_stack_tunnels_fail_over_both_ways_and_share_load`: one connection with an IPv4 and
//!   an IPv6 tunnel; active-standby moves both inner families from the v4 uplink to the v6
//!   one and back when each is cut (pings lost at 100/s are printed), active-active carries
//!   traffic on both.
//!
//! These tests need root: they are `#[ignore = "needs root"]` (tests/run.sh runs them) and FAIL
//! (never skip) without root; everything they start is removed by guards, also on failure.
//!
//! Run: `cargo test -p ironsecd --test ipv6_wan -- --include-ignored --test-threads=1 --nocapture`

mod common;

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;

const LAN_A4: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const LAN_B4: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);
const LAN_A6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
const LAN_B6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 2);
const WAN_A6: &str = "2001:db8:f::1";
const WAN_B6: &str = "2001:db8:f::2";
const WAN2_A6: &str = "2001:db8:e::1";
const WAN2_B6: &str = "2001:db8:e::2";
const WAN_A4: &str = "192.0.2.1";
const WAN_B4: &str = "192.0.2.2";
const PING_PATTERN: &[u8] = b"\x5a\x17\xc0\xde-IRONSEC-WAN6-PING\xa5";
const UP_TIMEOUT: Duration = Duration::from_secs(20);

fn ip_in(ns: &str, args: &[&str]) {
    run_ok(ns_cmd(ns, "ip").args(args), Duration::from_secs(10));
}

fn sysctl_in(ns: &str, kv: &str) {
    run_ok(
        ns_cmd(ns, "sysctl").args(["-qw", kv]),
        Duration::from_secs(10),
    );
}

/// Adds the IPv6 side of the topology (module doc): LANs, the first WAN and, with `links` = 2,
/// the second WAN. Duplicate address detection is off (a fresh address would be unusable for
/// a second or two).
fn add_ipv6(topo: &Topology, links: u8) {
    for ns in [&topo.lan_a, &topo.gw_a, &topo.gw_b, &topo.lan_b] {
        sysctl_in(ns, "net.ipv6.conf.all.accept_dad=0");
        sysctl_in(ns, "net.ipv6.conf.default.accept_dad=0");
        // Linux removes an interface's IPv6 addresses when it goes down (IPv4 ones stay):
        // the uplink cut by `ip link set down` must come back with its address, as a
        // real link that loses carrier does.
        sysctl_in(ns, "net.ipv6.conf.all.keep_addr_on_down=1");
        sysctl_in(ns, "net.ipv6.conf.default.keep_addr_on_down=1");
    }
    let addr = |ns: &str, a: &str, dev: &str| ip_in(ns, &["addr", "add", a, "dev", dev, "nodad"]);
    addr(&topo.lan_a, "2001:db8:1::2/64", "a-lan");
    addr(&topo.gw_a, "2001:db8:1::1/64", "lan");
    addr(&topo.gw_a, &format!("{WAN_A6}/64"), "wan");
    addr(&topo.gw_b, &format!("{WAN_B6}/64"), "wan");
    addr(&topo.gw_b, "2001:db8:2::1/64", "lan");
    addr(&topo.lan_b, "2001:db8:2::2/64", "b-lan");
    if links == 2 {
        addr(&topo.gw_a, &format!("{WAN2_A6}/64"), "wan2");
        addr(&topo.gw_b, &format!("{WAN2_B6}/64"), "wan2");
    }
    ip_in(
        &topo.lan_a,
        &["-6", "route", "add", "default", "via", "2001:db8:1::1"],
    );
    ip_in(
        &topo.lan_b,
        &["-6", "route", "add", "default", "via", "2001:db8:2::1"],
    );
    for ns in [&topo.gw_a, &topo.gw_b] {
        sysctl_in(ns, "net.ipv6.conf.all.forwarding=1");
    }
    // The link-local addresses came with the interfaces, before DAD was turned off: until
    // their DAD ends, neighbour discovery on that link waits.
    let namespaces = [&topo.lan_a, &topo.gw_a, &topo.gw_b, &topo.lan_b];
    let settled = poll_until(Duration::from_secs(5), || {
        namespaces.iter().all(|ns| {
            let out = run_ok(
                ns_cmd(ns, "ip").args(["-6", "addr", "show", "tentative"]),
                Duration::from_secs(5),
            );
            out.stdout.is_empty()
        })
    });
    assert!(settled, "IPv6 addresses still tentative after 5 s");
}

/// One side's config: `[gateway]` with `gateway_extra`, one IKE connection carrying both inner
/// families (DPD every 2 s so a dead uplink is found quickly), with `tunnels` (the TOML list's
/// items) and `extra` connection lines.
#[allow(clippy::too_many_arguments)]
fn side_toml(
    a: bool,
    sock: &Path,
    psk: &Path,
    gateway_extra: &str,
    start: &str,
    tunnels: &str,
    extra: &str,
) -> String {
    let (lid, rid, lts, rts) = if a {
        (
            "gw-a.example",
            "gw-b.example",
            r#"["10.1.0.0/24", "2001:db8:1::/64"]"#,
            r#"["10.2.0.0/24", "2001:db8:2::/64"]"#,
        )
    } else {
        (
            "gw-b.example",
            "gw-a.example",
            r#"["10.2.0.0/24", "2001:db8:2::/64"]"#,
            r#"["10.1.0.0/24", "2001:db8:1::/64"]"#,
        )
    };
    format!(
        r#"{gateway}
[[connection]]
name = "site"
keying = "ike"
local_id = "{lid}"
remote_id = "{rid}"
psk_file = {psk}
local_ts = {lts}
remote_ts = {rts}
ike_proposals = ["aes128gcm16-prfsha256-x25519"]
esp_proposals = ["aes128gcm16"]
start_action = "{start}"
dpd_interval = 2
retransmit_timeout = 0.5
retransmit_tries = 2
{extra}
tunnels = [ {tunnels} ]
"#,
        gateway = gateway_toml(sock, gateway_extra),
        psk = toml_str(psk.to_str().unwrap()),
    )
}

fn tunnel(local: &str, remote: &str, more: &str) -> String {
    format!("{{ local = \"{local}\", remote = \"{remote}\"{more} }}")
}

/// Starts one gateway from `text` (file DIR/gw-TAG.toml, socket DIR/TAG.sock).
fn start_gw(
    dir: &TempDir,
    name: &str,
    ns: &str,
    tag: &str,
    text: impl Fn(&Path) -> String,
) -> Daemon {
    let sock = dir.join(&format!("{tag}.sock"));
    let cfg = dir.join(&format!("gw-{tag}.toml"));
    fs::write(&cfg, text(&sock)).unwrap();
    Daemon::start(
        name,
        ns,
        &cfg,
        &sock,
        dir.join(&format!("ironsecd-{tag}.log")),
    )
}

fn wait_for(a: &Daemon, b: &Daemon, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    assert!(
        poll_until(timeout, &mut f),
        "{what}: not within {timeout:?}\nstatus gwA: {:#}\nstatus gwB: {:#}\n{}",
        a.status(),
        b.status(),
        Daemon::both_logs(a, b)
    );
}

fn wait_up(a: &Daemon, b: &Daemon) {
    wait_for(a, b, "tunnel up on both", UP_TIMEOUT, || {
        tunnel_up(&a.status()) && tunnel_up(&b.status())
    });
}

fn ping_payload() -> Vec<u8> {
    pattern_payload(PING_PATTERN, 56)
}

/// Pings `dst4` and `dst6` from `ns`, `count` each, 20 ms apart: how many answered of each.
fn ping_both(ns: &str, dst4: Ipv4Addr, dst6: Ipv6Addr, count: u16) -> (usize, usize) {
    let iv = Duration::from_millis(20);
    let t = Duration::from_secs(1);
    let v4 = ping_paced_in_background(ns, dst4, count, ping_payload(), iv, t);
    let v6 = ping6_paced(ns, dst6, count, ping_payload(), iv, t);
    (v4.join().unwrap().received(), v6.received())
}

// ------------------------------------------------------------------------------------------
// 1. Zero UDP checksums over IPv6

/// Sends `n` UDP datagrams carrying `payload` from `src` to `dst`:`port` in namespace `ns`
/// through a raw IPv6 socket, which (unlike a UDP socket) lets the test choose the checksum:
/// zero when `zero`, else the correct one, which the kernel computes for a raw socket told
/// where the checksum field is (IPV6_CHECKSUM, RFC 3542 3.1).
fn send_raw_udp6(
    ns: &str,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    port: u16,
    payload: &[u8],
    n: usize,
    zero: bool,
) {
    let payload = payload.to_vec();
    in_netns(ns, move || {
        // SAFETY: socket(2) takes no pointers; the result is checked below.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET6,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_UDP,
            )
        };
        assert!(
            fd >= 0,
            "raw UDP/IPv6 socket: {}",
            std::io::Error::last_os_error()
        );
        let sa = |ip: Ipv6Addr| {
            // SAFETY: sockaddr_in6 is plain old data; all zeroes is a valid value.
            let mut s: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            s.sin6_addr = libc::in6_addr {
                s6_addr: ip.octets(),
            };
            s
        };
        let len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        let from = sa(src);
        // SAFETY: `from` outlives the call and its length is passed with it.
        let r = unsafe {
            libc::bind(
                fd,
                &from as *const libc::sockaddr_in6 as *const libc::sockaddr,
                len,
            )
        };
        assert_eq!(r, 0, "bind {src}: {}", std::io::Error::last_os_error());
        if !zero {
            let offset: libc::c_int = 6;
            // SAFETY: setsockopt with a valid fd and a pointer to a c_int of the given size.
            let r = unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_IPV6,
                    libc::IPV6_CHECKSUM,
                    &offset as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            assert_eq!(r, 0, "IPV6_CHECKSUM: {}", std::io::Error::last_os_error());
        }
        let mut dgram = Vec::with_capacity(8 + payload.len());
        dgram.extend_from_slice(&port.to_be_bytes()); // source port
        dgram.extend_from_slice(&port.to_be_bytes());
        dgram.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        dgram.extend_from_slice(&[0, 0]); // checksum: zero, or filled in by the kernel
        dgram.extend_from_slice(&payload);
        let to = sa(dst);
        for _ in 0..n {
            // SAFETY: `dgram` and `to` outlive the call and their lengths are passed with them.
            let r = unsafe {
                libc::sendto(
                    fd,
                    dgram.as_ptr() as *const libc::c_void,
                    dgram.len(),
                    0,
                    &to as *const libc::sockaddr_in6 as *const libc::sockaddr,
                    len,
                )
            };
            assert_eq!(
                r as usize,
                dgram.len(),
                "sendto: {}",
                std::io::Error::last_os_error()
            );
        }
        // SAFETY: `fd` is this function's own socket, closed once.
        unsafe { libc::close(fd) };
    });
}

fn counter(st: &Value, name: &str) -> u64 {
    num(st, &format!("/counters/{name}"))
}

#[test]
#[ignore = "needs root"]
fn zero_checksum_udp6_is_refused_unless_accepted() {
    let _s = serial();
    let prefix = unique_prefix();
    let dir = TempDir::new(&prefix);
    let topo = Topology::up(&prefix);
    add_ipv6(&topo, 1);
    let psk = write_psk(&dir, "ab.psk");
    let (src, dst): (Ipv6Addr, Ipv6Addr) = (WAN_A6.parse().unwrap(), WAN_B6.parse().unwrap());
    // ESP of an SPI nobody has: counted on arrival (udp_rx) and dropped as unknown.
    let mut esp = vec![0x0b, 0xad, 0xf0, 0x0d, 0, 0, 0, 1];
    esp.extend_from_slice(&[0x42; 48]);
    // Not a valid IKE message: what matters is whether the kernel hands it to the socket.
    let ike = [0x11u8; 28];
    const N: u64 = 10;
    for (mode, line) in [
        ("refuse", ""),
        ("accept", "udp6_zero_checksum = \"accept\""),
    ] {
        // gwB alone, waiting (start_action none): nothing but the test's datagrams arrive.
        let b = start_gw(&dir, "gwB", &topo.gw_b, &format!("b-{mode}"), |sock| {
            side_toml(
                false,
                sock,
                &psk,
                line,
                "none",
                &tunnel(WAN_B6, WAN_A6, ""),
                "",
            )
        });
        let st0 = b.status();
        assert!(
            st0.pointer("/counters/udp6_checksum_errors").is_some(),
            "status shows the kernel's counter: {st0:#}"
        );
        send_raw_udp6(&topo.gw_a, src, dst, 4500, &esp, N as usize, false);
        send_raw_udp6(&topo.gw_a, src, dst, 4500, &esp, N as usize, true);
        send_raw_udp6(&topo.gw_a, src, dst, 500, &ike, 1, true);
        let expect_rx = if mode == "accept" { 2 * N } else { N };
        let mut st = st0.clone();
        poll_until(Duration::from_secs(3), || {
            st = b.status();
            counter(&st, "udp_rx_packets") - counter(&st0, "udp_rx_packets") >= expect_rx
        });
        // Whatever was still on its way has arrived by now.
        std::thread::sleep(Duration::from_millis(300));
        let st = b.status();
        let rx = counter(&st, "udp_rx_packets") - counter(&st0, "udp_rx_packets");
        let csum = counter(&st, "udp6_checksum_errors") - counter(&st0, "udp6_checksum_errors");
        println!(
            "udp6_zero_checksum = {mode}: {N} checksummed + {N} zero-checksum ESP datagrams and 1 \
             zero-checksum IKE datagram sent; ironsecd received {rx} ESP, the kernel dropped {csum} \
             for their checksum"
        );
        if mode == "refuse" {
            assert_eq!(rx, N, "only the checksummed ESP arrives\n{st:#}");
            assert_eq!(csum, N + 1, "the zero ones are dropped and counted\n{st:#}");
        } else {
            assert_eq!(rx, 2 * N, "all ESP arrives\n{st:#}");
            // The IKE socket (port 500) accepts it too: a socket without UDP_NO_CHECK6_RX, or
            // none, would have the kernel count it here.
            assert_eq!(csum, 0, "nothing dropped for its checksum\n{st:#}");
        }
        let text = String::from_utf8_lossy(&ironsecctl(&b.socket, &["status"]).stdout).into_owned();
        if mode == "refuse" {
            assert!(
                text.contains("dropped by the kernel for a bad or zero checksum"),
                "{text}"
            );
        }
    }
}

// ------------------------------------------------------------------------------------------
// 2. UDP GSO/GRO on the IPv6 sockets

#[test]
#[ignore = "needs root"]
fn tcp_over_an_ipv6_wan_is_segmented_both_ways() {
    let _s = serial();
    let prefix = unique_prefix();
    let dir = TempDir::new(&prefix);
    let topo = Topology::up(&prefix);
    add_ipv6(&topo, 1);
    // What arrives on gwB's WAN: ESP-in-UDP over IPv6, and any of it with a zero checksum.
    let wire = IngressCounters::install(
        &topo.gw_b,
        "wan6judge",
        &["wan"],
        &[
            ("esp6", "ip6 nexthdr udp udp sport 4500"),
            (
                "esp6_zero_csum",
                "ip6 nexthdr udp udp sport 4500 udp checksum 0",
            ),
        ],
    );
    let psk = write_psk(&dir, "ab.psk");
    let b = start_gw(&dir, "gwB", &topo.gw_b, "b", |s| {
        side_toml(false, s, &psk, "", "none", &tunnel(WAN_B6, WAN_A6, ""), "")
    });
    let a = start_gw(&dir, "gwA", &topo.gw_a, "a", |s| {
        side_toml(true, s, &psk, "", "start", &tunnel(WAN_A6, WAN_B6, ""), "")
    });
    wait_up(&a, &b);
    const BYTES: usize = 48 << 20;
    for (from, to, (src_ns, dst_ns), dst) in [
        (
            "gwA",
            "gwB",
            (&topo.lan_a, &topo.lan_b),
            SocketAddr::new(IpAddr::V6(LAN_B6), 5301),
        ),
        (
            "gwB",
            "gwA",
            (&topo.lan_b, &topo.lan_a),
            SocketAddr::new(IpAddr::V6(LAN_A6), 5302),
        ),
    ] {
        let (tx, rx) = if from == "gwA" { (&a, &b) } else { (&b, &a) };
        let (t0, r0) = (tx.status(), rx.status());
        let got = tcp_transfer(
            src_ns,
            dst_ns,
            dst,
            PING_PATTERN,
            BYTES,
            Duration::from_secs(60),
        );
        assert_eq!(got, BYTES, "{from} -> {to}: TCP over the v6 WAN");
        let (t1, r1) = (tx.status(), rx.status());
        let d = |a: &Value, b: &Value, k: &str| counter(b, k) - counter(a, k);
        let (sent, sent_super) = (
            d(&t0, &t1, "udp_tx_packets"),
            d(&t0, &t1, "udp_tx_super_packets"),
        );
        let (got_dg, got_super) = (
            d(&r0, &r1, "udp_rx_packets"),
            d(&r0, &r1, "udp_rx_super_packets"),
        );
        println!(
            "TCP {BYTES} bytes {from} -> {to} (inner IPv6, outer IPv6): {from} sent {sent} ESP \
             datagrams in {sent_super} GSO sends, TUN super-packets read {}; {to} received \
             {got_dg} in {got_super} GRO receives, TUN coalesced writes {}",
            d(&t0, &t1, "tun_rx_super_packets"),
            d(&r0, &r1, "tun_tx_super_packets"),
        );
        assert!(
            sent_super > 0,
            "{from} sent no GSO message over IPv6\n{t1:#}"
        );
        assert!(got_super > 0, "{to} got no GRO receive over IPv6\n{r1:#}");
    }
    let (esp, zero) = (wire.packets("esp6"), wire.packets("esp6_zero_csum"));
    println!("gwB's WAN: {esp} ESP-in-UDP/IPv6 datagrams from gwA, {zero} with a zero checksum");
    assert!(esp > 1000, "the judge saw the tunnel's traffic: {esp}");
    assert_eq!(zero, 0, "ironsecd always sends UDP checksums over IPv6");
}

// ------------------------------------------------------------------------------------------
// 3. NAT66

#[test]
#[ignore = "needs root"]
fn nat66_between_the_gateways() {
    let _s = serial();
    let prefix = unique_prefix();
    let dir = TempDir::new(&prefix);
    let lab = NatLab::up_v6(&prefix);
    let psk = write_psk(&dir, "ab.psk");
    // gwB knows gwA by the NAT's public address; gwA keeps its mapping alive every 2 s (the
    // NAT forgets an idle one after NAT_UDP_TIMEOUT_S). Both force UDP encapsulation (a
    // faked NAT_DETECTION_SOURCE_IP, as strongSwan's encap=yes), so each also sees the other
    // "behind a NAT"; what only a real NAT shows is gwA finding its own address rewritten.
    let b = start_gw(&dir, "gwB", &lab.gw_b, "b", |s| {
        side_toml(
            false,
            s,
            &psk,
            "",
            "none",
            &tunnel(GW_B_PUBLIC6, NAT6_PUBLIC, ""),
            "",
        )
    });
    let a = start_gw(&dir, "gwA", &lab.gw_a, "a", |s| {
        side_toml(
            true,
            s,
            &psk,
            "",
            "start",
            &tunnel(GW_A_PRIVATE6, GW_B_PUBLIC6, ""),
            "nat_keepalive = 2",
        )
        // DPD off, so that nothing but keepalives crosses the idle NAT.
        .replace("dpd_interval = 2", "dpd_interval = 0")
    });
    wait_up(&a, &b);
    let (sa, sb) = (a.status(), b.status());
    println!(
        "NAT66: gwA nat {}, gwB nat {}",
        sa.pointer(&format!("{T0}/nat")).unwrap_or(&Value::Null),
        sb.pointer(&format!("{T0}/nat")).unwrap_or(&Value::Null)
    );
    assert_eq!(
        sa.pointer(&format!("{T0}/nat/we_are_behind_nat")),
        Some(&Value::Bool(true)),
        "{sa:#}"
    );
    assert_eq!(
        sb.pointer(&format!("{T0}/nat/peer_is_behind_nat")),
        Some(&Value::Bool(true)),
        "{sb:#}"
    );
    // Idle longer than the NAT's UDP timeout: only keepalives hold the mapping.
    let idle = Duration::from_secs(u64::from(NAT_UDP_TIMEOUT_S) + 2);
    let sent = |st: &Value| num(st, "/connections/0/counters/nat_keepalives");
    let (k0, s0) = (lab.counter("keepalive_out"), sent(&a.status()));
    std::thread::sleep(idle);
    let crossed = lab.counter("keepalive_out") - k0;
    let sent = sent(&a.status()) - s0;
    println!(
        "NAT66: in {idle:?} idle gwA sent {sent} keepalives (nat_keepalive = 2), {crossed} \
         crossed the NAT"
    );
    assert!(crossed >= 3, "keepalives every 2 s: {crossed}");
    assert!(crossed <= sent, "the NAT counts only gwA's keepalives");
    for (ns, d4, d6, what) in [
        // First from the public side: only a mapping kept alive lets gwB's ESP in.
        (&lab.lan_b, LAN_A4, LAN_A6, "lanB -> lanA (into the NAT)"),
        (&lab.lan_a, LAN_B4, LAN_B6, "lanA -> lanB"),
    ] {
        let (r4, r6) = ping_both(ns, d4, d6, 20);
        println!("NAT66 after the idle time, {what}: IPv4 {r4}/20, IPv6 {r6}/20 answered");
        assert_eq!((r4, r6), (20, 20), "{what}\n{}", Daemon::both_logs(&a, &b));
    }
}

// ------------------------------------------------------------------------------------------
// 4. Dual-stack connections

fn active(d: &Daemon) -> Vec<String> {
    active_tunnels(&d.status())
}

fn both_up(d: &Daemon) -> bool {
    two_tunnels_up(&d.status())
}

fn link(ns: &str, iface: &str, up: bool) {
    ip_in(ns, &["link", "set", iface, if up { "up" } else { "down" }]);
}

/// Pings both inner families at 100/s for `secs` while `cut` runs `after` into the run:
/// lost pings of each family.
fn pings_across(ns: &str, secs: u16, after: Duration, cut: impl FnOnce()) -> (PingRun, PingRun) {
    let iv = Duration::from_millis(10);
    let t = Duration::from_secs(1);
    let n = secs * 100;
    let v4 = ping_paced_in_background(ns, LAN_B4, n, ping_payload(), iv, t);
    let v6 = ping6_paced_in_background(ns, LAN_B6, n, ping_payload(), iv, t);
    std::thread::sleep(after);
    cut();
    (v4.join().unwrap(), v6.join().unwrap())
}

/// The lost pings' sequence numbers as ranges ("101-236, 400"), for the report.
fn lost_spans(run: &PingRun) -> String {
    let mut spans: Vec<(u16, u16)> = Vec::new();
    for r in run.lost() {
        match spans.last_mut() {
            Some((_, hi)) if *hi + 1 == r.seq => *hi = r.seq,
            _ => spans.push((r.seq, r.seq)),
        }
    }
    let v: Vec<String> = spans
        .iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    v.join(", ")
}

/// How long traffic stopped: from the first lost ping to the last, plus one interval.
fn outage(run: &PingRun) -> Duration {
    let lost = run.lost();
    match (lost.first(), lost.last()) {
        (Some(f), Some(l)) => {
            l.sent_at.duration_since(f.sent_at).unwrap_or_default() + Duration::from_millis(10)
        }
        _ => Duration::ZERO,
    }
}

fn dual_stack_pair(
    topo: &Topology,
    dir: &TempDir,
    psk: &Path,
    tag: &str,
    mode_lines: &str,
) -> (Daemon, Daemon) {
    let tunnels = |a: bool| {
        let (l4, r4, l6, r6) = if a {
            (WAN_A4, WAN_B4, WAN2_A6, WAN2_B6)
        } else {
            (WAN_B4, WAN_A4, WAN2_B6, WAN2_A6)
        };
        format!(
            "{}, {}",
            tunnel(l4, r4, ", priority = 100"),
            tunnel(l6, r6, ", priority = 50")
        )
    };
    let b = start_gw(dir, "gwB", &topo.gw_b, &format!("b-{tag}"), |s| {
        side_toml(false, s, psk, "", "none", &tunnels(false), mode_lines)
    });
    let a = start_gw(dir, "gwA", &topo.gw_a, &format!("a-{tag}"), |s| {
        side_toml(true, s, psk, "", "start", &tunnels(true), mode_lines)
    });
    wait_for(&a, &b, "both tunnels up on gwA", UP_TIMEOUT, || both_up(&a));
    wait_for(&a, &b, "both tunnels up on gwB", UP_TIMEOUT, || both_up(&b));
    (a, b)
}

#[test]
#[ignore = "needs root"]
fn dual_stack_tunnels_fail_over_both_ways_and_share_load() {
    let _s = serial();
    let prefix = unique_prefix();
    let dir = TempDir::new(&prefix);
    let topo = Topology::up_links(&prefix, 2);
    add_ipv6(&topo, 2);
    let psk = write_psk(&dir, "ab.psk");
    let ns_a = topo.gw_a.clone();

    // Active-standby, no preempt: traffic stays where it went until that uplink dies too.
    let (a, b) = dual_stack_pair(&topo, &dir, &psk, "as", "mode = \"active-standby\"");
    assert_eq!(
        active(&a),
        [WAN_B4],
        "the IPv4 tunnel (priority 100) is active"
    );
    for (cut, from, to) in [("wan", WAN_B4, WAN2_B6), ("wan2", WAN2_B6, WAN_B4)] {
        let (r4, r6) = pings_across(&topo.lan_a, 5, Duration::from_secs(1), || {
            link(&ns_a, cut, false)
        });
        wait_for(
            &a,
            &b,
            &format!("gwA moves from {from} to {to}"),
            Duration::from_secs(10),
            || active(&a) == [to],
        );
        let (l4, l6) = (r4.lost().len(), r6.lost().len());
        println!(
            "active-standby, {cut} ({from}) cut: traffic on {to}; pings at 100/s lost: inner \
             IPv4 {l4} of {} (outage {:.2?}; seq {}), inner IPv6 {l6} of {} (outage {:.2?}; \
             seq {})",
            r4.sent(),
            outage(&r4),
            lost_spans(&r4),
            r6.sent(),
            outage(&r6),
            lost_spans(&r6)
        );
        for (fam, run) in [("IPv4", &r4), ("IPv6", &r6)] {
            assert!(
                outage(run) <= Duration::from_secs(3),
                "inner {fam} stopped for {:?} when {cut} was cut\n{}",
                outage(run),
                Daemon::both_logs(&a, &b)
            );
            // Before the cut everything passes (a loss there would be the lab's, not the
            // failover's), and the last second of the run is answered in full.
            assert!(
                run.records[..90].iter().all(|r| r.rtt.is_some()),
                "inner {fam} lost pings before {cut} was cut: seq {}",
                lost_spans(run)
            );
            let tail = &run.records[run.records.len() - 100..];
            assert!(
                tail.iter().all(|r| r.rtt.is_some()),
                "inner {fam} flows again after {cut} was cut"
            );
        }
        // The uplink comes back and its tunnel is re-established (as the standby now).
        link(&ns_a, cut, true);
        wait_for(
            &a,
            &b,
            &format!("{cut}'s tunnel back up"),
            Duration::from_secs(30),
            || both_up(&a) && both_up(&b),
        );
    }
    drop(a);
    drop(b);

    // Active-active: both tunnels carry flows, and both inner families pass.
    let (a, b) = dual_stack_pair(&topo, &dir, &psk, "aa", "mode = \"active-active\"");
    let out =
        |st: &Value, i: usize| num(st, &format!("/connections/0/tunnels/{i}/total_out/packets"));
    let before = a.status();
    // Flows are spread over the two tunnels by a hash of their addresses and ports: with 16
    // streams the chance that all land on one tunnel is 2^-15 (with 4 it was 1/8, and CI saw it).
    let report = iperf3_json(
        &topo.lan_a,
        &topo.lan_b,
        LAN_B4,
        5201,
        &["-t", "3", "-P", "16"],
        &dir.join("").to_path_buf(),
        "aa",
    );
    let (r4, r6) = ping_both(&topo.lan_a, LAN_B4, LAN_B6, 20);
    let after = a.status();
    let grew: Vec<u64> = (0..2).map(|i| out(&after, i) - out(&before, i)).collect();
    let mbit = report
        .pointer("/end/sum_received/bits_per_second")
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
        / 1e6;
    println!(
        "active-active over an IPv4 and an IPv6 tunnel: 16 TCP streams {mbit:.0} Mbit/s, packets \
         out per tunnel (v4, v6) {grew:?}; pings IPv4 {r4}/20, IPv6 {r6}/20"
    );
    assert!(
        grew.iter().all(|g| *g > 1000),
        "both tunnels carry flows: {grew:?}\n{after:#}"
    );
    assert_eq!((r4, r6), (20, 20), "{}", Daemon::both_logs(&a, &b));
}
