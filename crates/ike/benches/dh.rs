//! What one side's Diffie-Hellman costs in an IKE_SA_INIT (or a CREATE_CHILD_SA with PFS):
//! making a key pair and agreeing on the secret with the peer's value, per group. The README's
//! DH table quotes these (`cargo bench -p ironsec-ike --bench dh`).
//!
//! `exchange` is the figure that matters (keygen + agree, what a responder spends per
//! IKE_SA_INIT); `keygen` and `agree` split it.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ironsec_ike::crypto::{DhGroup, KeyExchange, TestRng};

fn dh(c: &mut Criterion) {
    let mut rng = TestRng::new(1);
    for (what, per_group) in [("exchange", 0), ("keygen", 1), ("agree", 2)] {
        let mut group = c.benchmark_group(format!("dh_{what}"));
        // MODP-8192 takes tens of milliseconds per operation: fewer, longer samples.
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(3));
        group.warm_up_time(Duration::from_millis(500));
        for g in DhGroup::ALL {
            let peer = KeyExchange::new(g, &mut rng);
            let ours = KeyExchange::new(g, &mut rng);
            group.bench_function(BenchmarkId::from_parameter(g.name()), |b| match per_group {
                0 => b.iter(|| {
                    let k = KeyExchange::new(g, &mut rng);
                    black_box(k.agree(black_box(peer.public())).unwrap())
                }),
                1 => b.iter(|| black_box(KeyExchange::new(g, &mut rng))),
                _ => b.iter(|| black_box(ours.agree(black_box(peer.public())).unwrap())),
            });
        }
        group.finish();
    }
}

criterion_group!(benches, dh);
criterion_main!(benches);
