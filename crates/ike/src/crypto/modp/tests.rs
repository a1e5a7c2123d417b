//! The MODP constants against facts that do not come from the same transcription: the RFC
//! formulas (recomputed here with pi from Machin's formula, in `num-bigint` rather than
//! crypto-bigint), primality, and the structure the RFCs state.

use num_bigint::BigUint;

use super::*;

fn big<const L: usize>(n: &Uint<L>) -> BigUint {
    BigUint::from_bytes_be(&to_bytes(n))
}

/// floor(pi * 2^bits), by Machin's formula pi = 16 atan(1/5) - 4 atan(1/239) in fixed point
/// with 64 guard bits (the truncation error of the two series is far below 2^-64).
fn pi_times_2_to(bits: u32) -> BigUint {
    const GUARD: u32 = 64;
    let one = BigUint::from(1u8) << (bits + GUARD);
    // atan(1/x) * one = sum (-1)^k / ((2k+1) x^(2k+1)) * one
    let atan_inv = |x: u32| {
        let x2 = BigUint::from(x * x);
        let mut term = &one / x;
        let (mut plus, mut minus) = (BigUint::default(), BigUint::default());
        let (mut n, mut positive) = (1u32, true);
        while term != BigUint::default() {
            if positive {
                plus += &term / n;
            } else {
                minus += &term / n;
            }
            term /= &x2;
            n += 2;
            positive = !positive;
        }
        plus - minus
    };
    let pi = atan_inv(5) * 16u32 - atan_inv(239) * 4u32;
    pi >> GUARD
}

/// RFC 2409 §6.2 / RFC 3526: p = 2^n - 2^(n-64) - 1 + 2^64 * { [2^(n-130) pi] + k }.
fn rfc3526_prime(n: u32, k: u32) -> BigUint {
    let two = |e: u32| BigUint::from(1u8) << e;
    two(n) - two(n - 64) - 1u8 + two(64) * (pi_times_2_to(n - 130) + k)
}

/// Miller-Rabin with the first few prime bases: for numbers of this size (not chosen to fool
/// these bases) a composite passing even one round is astronomically unlikely.
fn probably_prime(n: &BigUint, bases: &[u32]) -> bool {
    let one = BigUint::from(1u8);
    let n_minus_1 = n - &one;
    let s = n_minus_1.trailing_zeros().unwrap_or(0);
    let d = &n_minus_1 >> s;
    'bases: for &a in bases {
        let mut x = BigUint::from(a).modpow(&d, n);
        if x == one || x == n_minus_1 {
            continue;
        }
        for _ in 1..s {
            x = x.modpow(&BigUint::from(2u8), n);
            if x == n_minus_1 {
                continue 'bases;
            }
        }
        return false;
    }
    true
}

const SAFE_PRIMES: [(Modp, u32, u32); 7] = [
    (Modp::G1024, 1024, 129_093),
    (Modp::G1536, 1536, 741_804),
    (Modp::G2048, 2048, 124_476),
    (Modp::G3072, 3072, 1_690_314),
    (Modp::G4096, 4096, 240_904),
    (Modp::G6144, 6144, 929_484),
    (Modp::G8192, 8192, 4_743_158),
];

fn prime_of(m: Modp) -> BigUint {
    with_group!(m, g => big(&g.p))
}

#[test]
fn rfc3526_primes_match_their_formula() {
    for (m, n, k) in SAFE_PRIMES {
        let p = prime_of(m);
        assert_eq!(p, rfc3526_prime(n, k), "{m:?}");
        assert_eq!(p.bits(), u64::from(n), "{m:?}");
        // The construction fixes the top and bottom 64 bits to ones.
        let ones = (BigUint::from(1u8) << 64) - 1u8;
        assert_eq!(&p & &ones, ones, "{m:?}");
        assert_eq!(&p >> (n - 64), ones, "{m:?}");
        // p = 7 mod 8: 2 is a quadratic residue, so g = 2 generates the subgroup of prime
        // order (p-1)/2 (RFC 3526's generator choice).
        assert_eq!(&p % 8u8, BigUint::from(7u8), "{m:?}");
        assert_eq!(m.prime().len(), n as usize / 8);
    }
}

#[test]
fn rfc3526_primes_are_safe_primes() {
    for (m, _, _) in SAFE_PRIMES {
        let p = prime_of(m);
        let q = (&p - 1u8) >> 1;
        assert!(probably_prime(&p, &[2, 3]), "{m:?}: p");
        assert!(probably_prime(&q, &[2, 3]), "{m:?}: (p-1)/2");
        // g = 2 has order q.
        assert_eq!(
            BigUint::from(2u8).modpow(&q, &p),
            BigUint::from(1u8),
            "{m:?}"
        );
    }
}

#[test]
fn rfc5114_group_24_structure() {
    let g24 = &MODP2048S256;
    let (p, g) = (big(&g24.p), big(&g24.g));
    let sub = g24.q.as_ref().unwrap();
    let q = big(&sub.q);
    assert_eq!(p.bits(), 2048);
    assert_eq!(q.bits(), 256);
    assert!(probably_prime(&p, &[2, 3]));
    assert!(probably_prime(&q, &[2, 3, 5, 7, 11]));
    assert_eq!((&p - 1u8) % &q, BigUint::default(), "q divides p-1");
    assert_ne!(g, BigUint::from(1u8));
    assert_eq!(g.modpow(&q, &p), BigUint::from(1u8), "g has order q");
    assert_eq!(big(&sub.q_minus_1.as_ref().clone()), &q - 1u8);
    // RFC 5114 §2.3's first and last words, as a check on the transcription's ends.
    let hex = hex::encode_upper(to_bytes(&g24.p));
    assert!(hex.starts_with("87A8E61DB4B6663CFFBBD19C65195999"));
    assert!(hex.ends_with("693877FAD7EF09CADB094AE91E1A1597"));
    assert_eq!(
        hex::encode_upper(to_bytes(&sub.q)),
        "8CF83642A709A097B447997640129DA299B1A47D1EB3750BA308B0FE64F5FBD3"
    );
}

/// RFC 3526 §8, "Strength Estimate 2": the larger of its two estimates, in bits.
#[test]
fn exponents_are_at_least_twice_the_groups_strength() {
    let estimate_2 = [
        (Modp::G1536, 120),
        (Modp::G2048, 160),
        (Modp::G3072, 210),
        (Modp::G4096, 240),
        (Modp::G6144, 270),
        (Modp::G8192, 310),
    ];
    for (m, strength) in estimate_2 {
        let bits = with_group!(m, g => g.exponent_bits);
        assert!(bits >= 2 * strength, "{m:?}: {bits}");
        assert!(bits % 8 == 0 && bits <= Exponent::BITS, "{m:?}");
    }
    // Group 2: about 80 bits of strength.
    assert!(MODP1024.exponent_bits >= 160);
    assert_eq!(MODP2048S256.exponent_bits, 256);
}

#[test]
fn fresh_exponents_have_their_full_length() {
    let mut rng = crate::crypto::TestRng::new(5);
    for (m, _, _) in SAFE_PRIMES {
        let bits = with_group!(m, g => g.exponent_bits);
        for _ in 0..4 {
            let (secret, _) = m.generate(&mut rng);
            assert_eq!(secret.x.bits(), bits, "{m:?}");
            assert_eq!(secret.bits, bits);
        }
    }
}

/// Exponents for group 24 are in [1, q-1], also from an RNG stuck at 0x00 or 0xff.
#[test]
fn group_24_exponents_are_below_q() {
    struct Fixed(u8);
    impl Rng for Fixed {
        fn fill(&mut self, dest: &mut [u8]) {
            dest.fill(self.0);
        }
    }
    let q: Exponent = MODP2048S256.q.as_ref().unwrap().q.resize();
    for byte in [0x00, 0xff, 0x8c, 0x01] {
        let x = uniform_below(
            &MODP2048S256.q.as_ref().unwrap().q_minus_1,
            &mut Fixed(byte),
        );
        assert!(*x >= Exponent::ONE && *x < q, "{byte:#x}");
    }
    let mut rng = crate::crypto::TestRng::new(6);
    for _ in 0..16 {
        let (secret, _) = Modp::G2048s256.generate(&mut rng);
        assert!(*secret.x >= Exponent::ONE && *secret.x < q);
    }
}

#[test]
fn hex_decodes_rfc_layout() {
    assert_eq!(hex::<4>("0a0B \n Ff10"), [0x0a, 0x0b, 0xff, 0x10]);
    assert_eq!(hex::<2>("\n    ABCD"), [0xab, 0xcd]);
}

#[test]
#[should_panic(expected = "too few hex digits")]
fn hex_refuses_too_few_digits() {
    hex::<2>("ABC");
}

#[test]
#[should_panic(expected = "not a hex digit")]
fn hex_refuses_other_characters() {
    hex::<2>("AB-C");
}
