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
//! ```
//!
//! Instructions per packet = the collected total / the count. 64-byte packets, AES-128-GCM,
//! tunnels sized for a 1500-byte path with MSS clamping on (as the daemon installs them), so
//! the counts include the size and SYN checks every packet pays;
//! `split_loop` splits 64 KiB TSO super-packets (46 segments of 1348 bytes each) and seals
//! every segment, count / 46 times.

use std::hint::black_box;

use ironsec_dataplane::counters::GatewayCounters;
use ironsec_dataplane::mtu::{MssClamp, TunnelMtu};
use ironsec_dataplane::offload::{self, VnetHdr};
use ironsec_dataplane::{
    account_sealed, clamp_inbound, one_tunnel, open_one, seal_one, Direction, Inbound, Tables,
    Watch, WatchId,
};
use ironsec_esp::{Suite, HEADROOM, MAX_TRAILER};

#[path = "../benches/packets/mod.rs"]
mod packets;
use packets::{tso_super_packet, udp4};

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
    println!("sealed and opened {n} packets of {SIZE} bytes");
}
