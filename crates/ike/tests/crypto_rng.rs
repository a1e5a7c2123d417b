//! The randomness sources.

use ironsec_ike::crypto::{Rng, SystemRng, TestRng};

#[test]
fn test_rng_is_deterministic_per_seed() {
    let mut a = TestRng::new(1);
    let mut b = TestRng::new(1);
    let mut c = TestRng::new(2);
    let (mut x, mut y, mut z) = ([0u8; 100], [0u8; 100], [0u8; 100]);
    a.fill(&mut x);
    b.fill(&mut y);
    c.fill(&mut z);
    assert_eq!(x, y);
    assert_ne!(x, z);
    assert_ne!(x, [0u8; 100]);
}

#[test]
fn test_rng_stream_does_not_depend_on_chunking() {
    let mut whole = [0u8; 97];
    TestRng::new(5).fill(&mut whole);
    let mut pieces = [0u8; 97];
    let mut r = TestRng::new(5);
    let (a, rest) = pieces.split_at_mut(1);
    let (b, c) = rest.split_at_mut(40);
    r.fill(a);
    r.fill(&mut []);
    r.fill(b);
    r.fill(c);
    assert_eq!(whole, pieces);
}

#[test]
fn system_rng_fills() {
    let mut r = SystemRng::new();
    let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
    r.fill(&mut x);
    r.fill(&mut y);
    assert_ne!(x, y);
    // Usable as the engine takes it.
    let boxed: Box<dyn Rng + Send> = Box::new(SystemRng::default());
    drop(boxed);
}
