//! Runs the fast path's per-packet verdict functions a fixed number of times, for counting
//! instructions under callgrind (wall-clock benches are too noisy on a shared machine to show
//! a change of a few instructions per packet):
//!
//! ```text
//! cargo build --release -p ironsec-dataplane --example path_instructions
//! valgrind --tool=callgrind --toggle-collect='*seal_loop*' target/release/examples/path_instructions 100000
//! valgrind --tool=callgrind --toggle-collect='*open_loop*' target/release/examples/path_instructions 100000
//! valgrind --tool=callgrind --toggle-collect='*watch_loop*' target/release/examples/path_instructions 100000
//! valgrind --tool=callgrind --toggle-collect='*split_loop*' target/release/examples/path_instructions 100000
//! valgrind --tool=callgrind --toggle-collect='*hosts_seal_loop*' target/release/examples/path_instructions 100000
//! valgrind --tool=callgrind --toggle-collect='*route_site_loop*' target/release/examples/path_instructions 100000
//! valgrind --tool=callgrind --toggle-collect='*route_last_site_loop*' target/release/examples/path_instructions 100000
//! ```
//!
//! Instructions per packet = the collected total / the count. 64-byte packets, AES-128-GCM,
//! tunnels sized for a 1500-byte path with MSS clamping on (as the daemon installs them), so
//! the counts include the size and SYN checks every packet pays;
//! `split_loop` splits 64 KiB TSO super-packets (46 segments of 1348 bytes each) and seals
//! every segment, count / 46 times.
//!
//! With remote-access clients beside a site (`packets::site_and_hosts`: 1,000 clients, a /32
//! policy each): `hosts_seal_loop` seals site packets, `route_site_loop`,
//! `route_client_loop` and `route_back_loop` time the policy lookup alone, of a site packet,
//! of a packet to the last client and of a site packet arriving (the route back).
//!
//! With [`SITES`] policy-based sites, a /24 each (`packets::many_sites`):
//! `route_first_site_loop` and `route_last_site_loop` time the lookup of a packet to the
//! first and to the last site in table order, `sites_seal_loop` seals packets to the last.

use std::hint::black_box;

use ironsec_dataplane::counters::GatewayCounters;
use ironsec_dataplane::mtu::{MssClamp, TunnelMtu};
use ironsec_dataplane::offload::{self, VnetHdr};
use ironsec_dataplane::packet::inner_addrs;
use ironsec_dataplane::{
    account_sealed, clamp_inbound, one_tunnel, open_one, seal_one, Direction, Inbound, Tables,
    Watch, WatchId,
};
use ironsec_esp::{Suite, HEADROOM, MAX_TRAILER};

#[path = "../benches/packets/mod.rs"]
mod packets;
use packets::{host, many_sites, site_and_hosts, site_net, tso_super_packet, udp4};

const SIZE: usize = 64;

/// Seals `n` packets, each into its own buffer (kept for [`open_loop`]), and notes where
/// each sealed packet starts in it.
#[inline(never)]
fn seal_loop(
    a: &Tables,
    gw: &GatewayCounters,
    pkt: &[u8],
    bufs: &mut [Vec<u8>],
    starts: &mut [usize],
) {
    for (buf, start) in bufs.iter_mut().zip(starts.iter_mut()) {
        buf[HEADROOM..HEADROOM + pkt.len()].copy_from_slice(pkt);
        let verdict = seal_one(a, buf, pkt.len());
        let sealed = account_sealed(0, verdict, gw, None).expect("sealed");
        buf.truncate(sealed.start + sealed.len);
        *start = sealed.start;
    }
}

/// Opens every datagram of `bufs`.
#[inline(never)]
fn open_loop(b: &Tables, bufs: &mut [Vec<u8>], starts: &[usize]) {
    for (d, &start) in bufs.iter_mut().zip(starts) {
        let d = &mut d[start..];
        let v = open_one(b, d);
        let Inbound::Deliver(range, _, _) = &v else {
            panic!("not delivered")
        };
        black_box(clamp_inbound(b, &mut d[range.clone()]));
        black_box(v);
    }
}

/// What a worker adds per delivered packet of a watched SA that is not armed: the check of
/// [`Watch::packet`] (unwatched SAs skip even that).
#[inline(never)]
fn watch_loop(w: &Option<std::sync::Arc<Watch>>, n: usize) {
    for _ in 0..n {
        if let Some(w) = black_box(w) {
            black_box(w.packet(Direction::Inbound));
        }
    }
}

/// Splits super-packet `sup` and seals each segment, `rounds` times, as a worker does after
/// a read from an offloading TUN device.
#[inline(never)]
fn split_loop(a: &Tables, gw: &GatewayCounters, sup: &mut [u8], h: &VnetHdr, rounds: usize) {
    let mut buf = vec![0u8; HEADROOM + 1400 + MAX_TRAILER];
    for _ in 0..rounds {
        let offload::Read::Segments(split) = offload::prepare(sup, h) else {
            panic!("not a super-packet");
        };
        for i in 0..split.count() {
            let len = split.segment(sup, i, &mut buf[HEADROOM..HEADROOM + 1400]);
            let verdict = seal_one(a, &mut buf, len);
            black_box(account_sealed(0, verdict, gw, None));
        }
    }
}

/// How many remote-access clients sit beside the site in the `*hosts*` and `route_*` loops.
const HOSTS: usize = 1000;

/// Seals packet `pkt` `n` times into `buf` (unlike [`seal_loop`], which keeps every sealed
/// packet for [`open_loop`]): on the tables of a site with [`HOSTS`] clients beside it.
#[inline(never)]
fn hosts_seal_loop(a: &Tables, gw: &GatewayCounters, pkt: &[u8], buf: &mut [u8], n: usize) {
    for _ in 0..n {
        buf[HEADROOM..HEADROOM + pkt.len()].copy_from_slice(pkt);
        let verdict = seal_one(a, buf, pkt.len());
        black_box(account_sealed(0, verdict, gw, None).expect("sealed"));
    }
}

/// The outbound policy lookup of packet `pkt`, `n` times.
#[inline(never)]
fn route_loop(t: &Tables, pkt: &[u8], n: usize) {
    let (src, dst) = inner_addrs(pkt).expect("an IP packet");
    for _ in 0..n {
        black_box(t.route_id(black_box(pkt), black_box(src), black_box(dst)));
    }
}

#[inline(never)]
fn route_site_loop(t: &Tables, pkt: &[u8], n: usize) {
    // A label of its own, or the compiler folds identical loops into one symbol.
    black_box("site");
    route_loop(t, pkt, n)
}

#[inline(never)]
fn route_client_loop(t: &Tables, pkt: &[u8], n: usize) {
    black_box("client");
    route_loop(t, pkt, n)
}

/// How many policy-based sites the `*_site_loop` loops on [`many_sites`] see.
const SITES: usize = 10_000;

#[inline(never)]
fn route_first_site_loop(t: &Tables, pkt: &[u8], n: usize) {
    black_box("first site");
    route_loop(t, pkt, n)
}

#[inline(never)]
fn route_last_site_loop(t: &Tables, pkt: &[u8], n: usize) {
    black_box("last site");
    route_loop(t, pkt, n)
}

/// Seals packet `pkt` `n` times into `buf` on the tables of [`SITES`] sites.
#[inline(never)]
fn sites_seal_loop(a: &Tables, gw: &GatewayCounters, pkt: &[u8], buf: &mut [u8], n: usize) {
    black_box("sites");
    for _ in 0..n {
        buf[HEADROOM..HEADROOM + pkt.len()].copy_from_slice(pkt);
        let verdict = seal_one(a, buf, pkt.len());
        black_box(account_sealed(0, verdict, gw, None).expect("sealed"));
    }
}

/// The route back of packet `pkt` arriving from a peer, `n` times.
#[inline(never)]
fn route_back_loop(t: &Tables, pkt: &[u8], n: usize) {
    let (src, dst) = inner_addrs(pkt).expect("an IP packet");
    for _ in 0..n {
        black_box(t.route_back(black_box(pkt), black_box(src), black_box(dst)));
    }
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("a packet count"))
        .unwrap_or(100_000);
    let (k1, k2) = ([1u8; 20], [2u8; 20]);
    let mtu = TunnelMtu::for_path(1500, false, 1400, MssClamp::Auto, Suite::Aes128Gcm16);
    let a = one_tunnel("10.1.0.0/24", "10.2.0.0/24", (0x1000, &k1), (0x2000, &k2)).with_mtu(mtu);
    let b = one_tunnel("10.2.0.0/24", "10.1.0.0/24", (0x2000, &k2), (0x1000, &k1)).with_mtu(mtu);
    let gw = GatewayCounters::default();
    let pkt = udp4(SIZE);
    let mut bufs: Vec<Vec<u8>> = (0..n)
        .map(|_| vec![0u8; HEADROOM + SIZE + MAX_TRAILER])
        .collect();
    let mut starts = vec![0usize; n];
    seal_loop(&a, &gw, &pkt, &mut bufs, &mut starts);
    open_loop(&b, &mut bufs, &starts);
    watch_loop(&Some(std::sync::Arc::new(Watch::new(WatchId(1)))), n);
    let (mut sup, h) = tso_super_packet();
    split_loop(&a, &gw, &mut sup, &h, n / 46);

    let hosts = site_and_hosts(HOSTS, (0x3000, &k1)).with_mtu(mtu);
    let mut buf = vec![0u8; HEADROOM + SIZE + MAX_TRAILER];
    hosts_seal_loop(&hosts, &gw, &pkt, &mut buf, n);
    route_site_loop(&hosts, &pkt, n);
    let mut to_client = pkt.clone();
    to_client[16..20].copy_from_slice(&host(HOSTS - 1).octets());
    route_client_loop(&hosts, &to_client, n);
    let mut arriving = pkt.clone();
    arriving[12..16].copy_from_slice(&pkt[16..20]);
    arriving[16..20].copy_from_slice(&pkt[12..16]);
    route_back_loop(&hosts, &arriving, n);

    let sites = many_sites(SITES, (0x4000, &k1)).with_mtu(mtu);
    let to_site = |i: usize| {
        let mut p = pkt.clone();
        let mut a = site_net(i).octets();
        a[3] = 7;
        p[16..20].copy_from_slice(&a);
        // The header checksum does not matter to the lookup, and seal_one does not check it.
        p
    };
    route_first_site_loop(&sites, &to_site(0), n);
    let last = to_site(SITES - 1);
    route_last_site_loop(&sites, &last, n);
    sites_seal_loop(&sites, &gw, &last, &mut buf, n);
    println!("sealed and opened {n} packets of {SIZE} bytes");
}
