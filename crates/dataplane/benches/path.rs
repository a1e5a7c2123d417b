//! The fast path's per-packet work without the kernel: policy lookup + seal (TUN side to UDP
//! side), classify + open + selector check (UDP side to TUN side), TSO splitting of a 64 KiB
//! super-packet and USO splitting of 64 merged 64-byte datagrams, in packets per second on one
//! core at 64, 512 and 1400 bytes. The
//! difference to `ironsec-esp`'s `seal_open` bench is what the tables and checks cost; the
//! difference to the through-the-tunnel figures (netns-scripts/bench.sh) is the kernel.

use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use ironsec_dataplane::counters::GatewayCounters;
use ironsec_dataplane::gro::Coalescers;
use ironsec_dataplane::offload::{self, VnetHdr};
use ironsec_dataplane::{account_sealed, one_tunnel, open_one, seal_one, Inbound, Tables};
use ironsec_esp::{HEADROOM, MAX_TRAILER};

mod packets;
use packets::{tso_super_packet, udp4};

const SIZES: [usize; 3] = [64, 512, 1400];
const BATCH: u64 = 128;

fn path(c: &mut Criterion) {
    let (k1, k2) = ([1u8; 20], [2u8; 20]);
    let a = one_tunnel("10.1.0.0/24", "10.2.0.0/24", (0x1000, &k1), (0x2000, &k2));
    let b = one_tunnel("10.2.0.0/24", "10.1.0.0/24", (0x2000, &k2), (0x1000, &k1));
    let gw = GatewayCounters::default();
    let mut group = c.benchmark_group("tun_to_udp");
    for size in SIZES {
        group.throughput(Throughput::Elements(1));
        let pkt = udp4(size);
        let mut buf = vec![0u8; HEADROOM + size + MAX_TRAILER];
        group.bench_function(BenchmarkId::new("aes128gcm16", size), |bch| {
            bch.iter(|| {
                // The copy stands for the TUN read that puts each packet in place.
                buf[HEADROOM..HEADROOM + size].copy_from_slice(&pkt);
                let verdict = seal_one(&a, &mut buf, size);
                black_box(account_sealed(0, verdict, &gw, None))
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("udp_to_tun");
    for size in SIZES {
        group.throughput(Throughput::Elements(BATCH));
        let pkt = udp4(size);
        group.bench_function(BenchmarkId::new("aes128gcm16", size), |bch| {
            bch.iter_batched(
                || {
                    (0..BATCH)
                        .map(|_| {
                            let mut buf = vec![0u8; HEADROOM + size + MAX_TRAILER];
                            buf[HEADROOM..HEADROOM + size].copy_from_slice(&pkt);
                            let verdict = seal_one(&a, &mut buf, size);
                            let sealed = account_sealed(0, verdict, &gw, None).unwrap();
                            buf.truncate(sealed.start + sealed.len);
                            buf.drain(..sealed.start);
                            buf
                        })
                        .collect::<Vec<_>>()
                },
                |mut batch| {
                    for d in batch.iter_mut() {
                        let v = open_one(&b, d);
                        assert!(matches!(v, Inbound::Deliver(..)));
                        black_box(v);
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();

    // TSO: one 64 KiB super-packet from the TUN device split into 1400-byte segments.
    let mut group = c.benchmark_group("tso_split_and_seal");
    let (mut sup, h) = tso_super_packet();
    split_and_seal(&mut group, "aes128gcm16/1400", &mut sup, &h, &a, &gw);
    group.finish();

    // USO: 64 datagrams of 64 bytes that the LAN interface's GRO merged, split and sealed.
    let mut group = c.benchmark_group("uso_split_and_seal");
    let (size, count) = (64usize, 64usize);
    let mut sup = udp4(28 + size * count);
    sup[24..26].copy_from_slice(&((8 + size * count) as u16).to_be_bytes());
    let h = VnetHdr {
        flags: 1,
        gso_type: 5,
        hdr_len: 28,
        gso_size: size as u16,
        csum_start: 20,
        csum_offset: 6,
    };
    assert_eq!(offload::segment_count(&sup, &h), count);
    split_and_seal(&mut group, "aes128gcm16/64", &mut sup, &h, &a, &gw);
    group.finish();

    coalesce(c);
}

/// GRO: 46 decrypted 1400-byte TCP segments of one flow merged into one TUN write (each
/// segment's checksums verified on the way, issue 19), next to `copy_only`, the payload copies
/// alone that the merge cannot avoid: the difference is what the checksum check costs.
fn coalesce(c: &mut Criterion) {
    let (mut sup, h) = tso_super_packet();
    // An atomic datagram (DF, not a fragment), as a real TSO packet is.
    sup[6..8].copy_from_slice(&[0x40, 0]);
    let offload::Read::Segments(split) = offload::prepare(&mut sup, &h) else {
        panic!("not a super-packet");
    };
    let segs: Vec<Vec<u8>> = (0..split.count())
        .map(|i| {
            let mut b = vec![0u8; 1400];
            let n = split.segment(&sup, i, &mut b);
            b.truncate(n);
            b
        })
        .collect();
    let mut co = Coalescers::default();
    let mut runs = Vec::new();
    for s in &segs {
        assert!(co.offer(s, |_, n| runs.push(n)));
    }
    co.flush(|_, n| runs.push(n));
    assert_eq!(
        runs,
        [segs.len()],
        "the bench's segments merge into one run"
    );
    let mut group = c.benchmark_group("gro_coalesce");
    group.throughput(Throughput::Elements(segs.len() as u64));
    group.bench_function("tcp/1400", |bch| {
        bch.iter(|| {
            for s in &segs {
                black_box(co.offer(s, |w, n| {
                    black_box((w.len(), n));
                }));
            }
            co.flush(|w, n| {
                black_box((w.len(), n));
            });
        })
    });
    let mut out = vec![0u8; 65_535 + 52];
    group.bench_function("copy_only/1400", |bch| {
        bch.iter(|| {
            let mut at = 0;
            for s in &segs {
                let payload = &s[52..];
                out[at..at + payload.len()].copy_from_slice(payload);
                at += payload.len();
            }
            black_box(&out);
        })
    });
    group.finish();
}

/// Classifies super-packet `sup`, splits it into its segments and seals each, as a worker
/// does after a read.
fn split_and_seal(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    sup: &mut [u8],
    h: &VnetHdr,
    tables: &Tables,
    gw: &GatewayCounters,
) {
    let n = offload::segment_count(sup, h);
    group.throughput(Throughput::Elements(n as u64));
    let mut buf = vec![0u8; HEADROOM + 1400 + MAX_TRAILER];
    group.bench_function(name, |bch| {
        bch.iter(|| {
            let offload::Read::Segments(split) = offload::prepare(sup, h) else {
                panic!("not a super-packet");
            };
            for i in 0..split.count() {
                let len = split.segment(sup, i, &mut buf[HEADROOM..HEADROOM + 1400]);
                let verdict = seal_one(tables, &mut buf, len);
                black_box(account_sealed(0, verdict, gw, None));
            }
        })
    });
}

criterion_group!(benches, path);
criterion_main!(benches);
