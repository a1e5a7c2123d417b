//! Seal and open cost per suite (the AEADs and the AES-CBC + HMAC suites
//! gear proposes most), next to raw `ring` AES-128-GCM on the same sizes, so
//! the ESP framing overhead (header, trailer, AAD, replay window) shows as a
//! ratio rather than an absolute number that depends on the machine.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use ironsec_esp::{
    CbcCipher, InboundSa, Integ, OutboundSa, Suite, HEADROOM, MAX_TRAILER, NEXT_HEADER_IPV4,
};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};

const SIZES: [usize; 2] = [64, 1400];
/// The AEADs, then AES-CBC with the HMACs most configurations name.
const SUITES: [Suite; 5] = [
    Suite::Aes128Gcm16,
    Suite::Aes256Gcm16,
    Suite::ChaCha20Poly1305,
    Suite::Cbc(CbcCipher::Aes128, Integ::HmacSha1_96),
    Suite::Cbc(CbcCipher::Aes256, Integ::HmacSha256_128),
];
const SPI: u32 = 0x0100_0001;
/// Inputs prepared per timed batch when a packet can only be opened once:
/// enough to amortise the timer, few enough to stay in cache.
const BATCH: u64 = 128;

fn keymat(suite: Suite) -> Vec<u8> {
    (0..suite.keymat_len()).map(|i| i as u8).collect()
}

/// A buffer holding an IPv4 packet of `len` bytes at `HEADROOM`.
fn inner_buffer(len: usize) -> Vec<u8> {
    let mut buf = vec![0xa5u8; HEADROOM + len + MAX_TRAILER];
    buf[HEADROOM] = 0x45;
    buf[HEADROOM + 2..HEADROOM + 4].copy_from_slice(&(len as u16).to_be_bytes());
    buf
}

fn seal(c: &mut Criterion) {
    let mut group = c.benchmark_group("seal");
    for suite in SUITES {
        // ESN so that no run of the benchmark can exhaust the counter.
        let sa = OutboundSa::new(suite, SPI, &keymat(suite), true).unwrap();
        for size in SIZES {
            group.throughput(Throughput::Bytes(size as u64));
            let mut buf = inner_buffer(size);
            group.bench_function(BenchmarkId::new(suite.name(), size), |b| {
                b.iter(|| {
                    black_box(sa.seal_in_place(black_box(&mut buf), size, NEXT_HEADER_IPV4))
                        .unwrap()
                })
            });
        }
    }
    group.finish();
}

fn open(c: &mut Criterion) {
    let mut group = c.benchmark_group("open");
    for suite in SUITES {
        let out = OutboundSa::new(suite, SPI, &keymat(suite), true).unwrap();
        let inb = InboundSa::new(suite, SPI, &keymat(suite), true, 0).unwrap();
        for size in SIZES {
            group.throughput(Throughput::Bytes(size as u64));
            let template = inner_buffer(size);
            // Each packet is sealed untimed with the next sequence number, so
            // the timed opens arrive in order and none is a replay.
            group.bench_function(BenchmarkId::new(suite.name(), size), |b| {
                b.iter_batched_ref(
                    || {
                        let mut buf = template.clone();
                        let r = out.seal_in_place(&mut buf, size, NEXT_HEADER_IPV4).unwrap();
                        buf[r].to_vec()
                    },
                    |packet| inb.open_in_place(black_box(packet)).unwrap(),
                    BatchSize::NumIterations(BATCH),
                )
            });
        }
    }
    group.finish();
}

/// The floor: one AEAD call on the payload alone, nonce and AAD fixed.
fn ring_baseline(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring_aes128gcm");
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[7u8; 16]).unwrap());
    let nonce = [1u8; 12];
    let aad = [2u8; 8];
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let mut buf = vec![0xa5u8; size];
        group.bench_function(BenchmarkId::new("seal", size), |b| {
            b.iter(|| {
                key.seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(&aad),
                    black_box(&mut buf[..]),
                )
                .unwrap()
            })
        });

        let mut sealed = vec![0xa5u8; size];
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad),
                &mut sealed,
            )
            .unwrap();
        sealed.extend_from_slice(tag.as_ref());
        group.bench_function(BenchmarkId::new("open", size), |b| {
            b.iter_batched_ref(
                || sealed.clone(),
                |ct| {
                    key.open_in_place(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(&aad),
                        black_box(&mut ct[..]),
                    )
                    .map(|p| p.len())
                    .unwrap()
                },
                BatchSize::NumIterations(BATCH),
            )
        });
    }
    group.finish();
}

criterion_group!(benches, seal, open, ring_baseline);
criterion_main!(benches);
