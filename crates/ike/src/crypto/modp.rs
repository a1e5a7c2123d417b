//! Finite-field ("MODP") Diffie-Hellman: groups 2 and 5 (legacy), 14 to 18 (RFC 3526) and 24
//! (RFC 5114 §2.3), which is what much deployed gear offers by default.
//!
//! * **KE data** is g^x mod p, big-endian and left-padded with zeros to the prime's length
//!   (RFC 7296 §3.4); so is the shared secret g^xy (RFC 7296 §2.14).
//! * **Peer values are validated** as RFC 6989 asks: exactly the prime's length, 1 < y < p-1
//!   (refuses 0, 1, p-1 and anything not reduced mod p); for group 24, whose p-1 has small
//!   factors, also y^q = 1 (y lies in the order-q subgroup, §2.2), since a value outside it would
//!   leak the private exponent modulo those factors. A shared secret of 1 is refused too.
//! * **Private exponents** are random, from the engine's [`Rng`], and long enough for the group:
//!   at least twice RFC 3526 §8's larger strength estimate ("Estimate 2": 240 bits for group 5
//!   up to 620 for group 18), whole bytes, top bit set so that the exponentiation always runs
//!   over the same number of bits. For group 24 the exponent is uniform in [1, q-1] (NIST SP
//!   800-56A §5.6.1.1.3: 64 extra random bits reduced mod q-1, plus one), so g^x stays in the
//!   subgroup. Exponents are wiped on drop.
//! * **Arithmetic** is crypto-bigint's constant-time Montgomery exponentiation on fixed-size
//!   integers (`DynResidue::pow_bounded_exp`, U1024 to U8192): its running time depends on the
//!   exponent's bit length, which is public (fixed per group), never on its value. Nothing here
//!   is hand-rolled beyond choosing the operands.

use std::sync::OnceLock;

use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
use crypto_bigint::{NonZero, Uint, U1024, U1536, U2048, U256, U3072, U4096, U6144, U8192};
use zeroize::Zeroizing;

use super::rng::Rng;

mod primes;

/// The integer type private exponents are held in. The longest we draw is 640 bits (group 18);
/// [`with_private`](Modp::with_private) accepts up to 1024.
type Exponent = U1024;

/// Decodes hex text as the RFCs print it (words separated by spaces and newlines) into `N`
/// bytes. `const`, so the constants below are decoded by the compiler: a character that is not
/// a hex digit, or a digit too many or too few, fails the build.
const fn hex<const N: usize>(s: &str) -> [u8; N] {
    let b = s.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    let mut nibbles = 0;
    while i < b.len() {
        let c = b[i];
        i += 1;
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            b' ' | b'\n' => continue,
            _ => panic!("MODP constant: not a hex digit"),
        };
        if nibbles == 2 * N {
            panic!("MODP constant: too many hex digits");
        }
        out[nibbles / 2] |= if nibbles % 2 == 0 { v << 4 } else { v };
        nibbles += 1;
    }
    if nibbles != 2 * N {
        panic!("MODP constant: too few hex digits");
    }
    out
}

/// The order q of a small prime-order subgroup, and q-1 for drawing exponents below q.
struct Subgroup {
    q: U256,
    q_minus_1: NonZero<Exponent>,
}

impl Subgroup {
    /// `const`: q-1 is checked to be non-zero by the compiler.
    const fn new(q: U256) -> Subgroup {
        Subgroup {
            q,
            q_minus_1: NonZero::from_uint(q.resize().wrapping_sub(&Exponent::ONE)),
        }
    }
}

/// One MODP group: its constants and its Montgomery parameters, computed on first use.
struct Group<const L: usize> {
    p: Uint<L>,
    g: Uint<L>,
    /// The prime-order subgroup `g` generates, where it is much smaller than p (group 24);
    /// `None` for the safe primes, where every 1 < y < p-1 has order (p-1)/2 or p-1.
    q: Option<Subgroup>,
    /// Bits of a fresh private exponent (see the module doc).
    exponent_bits: usize,
    params: OnceLock<DynResidueParams<L>>,
}

impl<const L: usize> Group<L> {
    const fn safe_prime(p: Uint<L>, exponent_bits: usize) -> Group<L> {
        Group {
            p,
            g: Uint::from_u8(2),
            q: None,
            exponent_bits,
            params: OnceLock::new(),
        }
    }

    /// Montgomery parameters of p: computed once per process (a few divisions of p-sized
    /// numbers), then shared by every exchange in the group.
    fn params(&self) -> DynResidueParams<L> {
        *self.params.get_or_init(|| DynResidueParams::new(&self.p))
    }

    /// base^exponent mod p, in time that depends on `bits` but not on the exponent's value.
    fn pow(&self, base: &Uint<L>, exponent: &Exponent, bits: usize) -> Uint<L> {
        DynResidue::new(base, self.params())
            .pow_bounded_exp(exponent, bits)
            .retrieve()
    }

    /// A fresh private exponent and its public value g^x.
    fn generate(&self, rng: &mut dyn Rng) -> (Secret, Vec<u8>) {
        let x = match self.q {
            Some(ref sub) => uniform_below(&sub.q_minus_1, rng),
            None => random_bits(self.exponent_bits, rng),
        };
        self.keypair(Secret {
            x,
            bits: self.exponent_bits,
        })
    }

    /// A private exponent given as big-endian bytes (for known-answer tests): at most
    /// [`Exponent`]'s size, at least 2; for group 24 also below q.
    fn with_private(&self, bytes: &[u8]) -> Option<(Secret, Vec<u8>)> {
        if bytes.is_empty() || bytes.len() > Exponent::BYTES {
            return None;
        }
        let mut padded = Zeroizing::new([0u8; Exponent::BYTES]);
        padded[Exponent::BYTES - bytes.len()..].copy_from_slice(bytes);
        let x = Zeroizing::new(Exponent::from_be_slice(&padded[..]));
        let in_range = match self.q {
            Some(ref sub) => *x < sub.q.resize() && *x > Exponent::ZERO,
            None => *x > Exponent::ONE,
        };
        if !in_range {
            return None;
        }
        Some(self.keypair(Secret {
            x,
            bits: bytes.len() * 8,
        }))
    }

    fn keypair(&self, secret: Secret) -> (Secret, Vec<u8>) {
        let public = to_bytes(&self.pow(&self.g, &secret.x, secret.bits));
        (secret, public)
    }

    /// The shared secret g^xy from the peer's KE data, after RFC 6989's checks.
    fn agree(&self, secret: &Secret, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, Refusal> {
        if peer.len() != Uint::<L>::BYTES {
            return Err(Refusal::Length);
        }
        let y = Uint::<L>::from_be_slice(peer);
        let p_minus_1 = self.p.wrapping_sub(&Uint::ONE);
        if y <= Uint::ONE || y >= p_minus_1 {
            return Err(Refusal::OutOfRange);
        }
        if let Some(sub) = &self.q {
            if self.pow(&y, &sub.q.resize(), U256::BITS) != Uint::ONE {
                return Err(Refusal::NotInSubgroup);
            }
        }
        let z = Zeroizing::new(self.pow(&y, &secret.x, secret.bits));
        if *z == Uint::ONE {
            return Err(Refusal::SharedIsOne);
        }
        Ok(Zeroizing::new(to_bytes(&z)))
    }
}

/// Big-endian bytes of `n`, left-padded to the type's full size (the prime's length).
fn to_bytes<const L: usize>(n: &Uint<L>) -> Vec<u8> {
    let mut out = Vec::with_capacity(Uint::<L>::BYTES);
    for word in n.as_words().iter().rev() {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out
}

/// A random exponent of exactly `bits` bits (top bit set; `bits` a multiple of 8, at most
/// [`Exponent::BITS`]).
fn random_bits(bits: usize, rng: &mut dyn Rng) -> Zeroizing<Exponent> {
    let len = bits / 8;
    let mut buf = Zeroizing::new([0u8; Exponent::BYTES]);
    let start = Exponent::BYTES - len;
    rng.fill(&mut buf[start..]);
    buf[start] |= 0x80;
    Zeroizing::new(Exponent::from_be_slice(&buf[..]))
}

/// A random exponent uniform in [1, q-1] for a 256-bit q: 256 + 64 random bits, reduced mod
/// q-1 (in time independent of their value), plus one (NIST SP 800-56A §5.6.1.1.3; the bias is
/// below 2^-64).
fn uniform_below(q_minus_1: &NonZero<Exponent>, rng: &mut dyn Rng) -> Zeroizing<Exponent> {
    let len = (U256::BITS + 64) / 8;
    let mut buf = Zeroizing::new([0u8; Exponent::BYTES]);
    rng.fill(&mut buf[Exponent::BYTES - len..]);
    let c = Zeroizing::new(Exponent::from_be_slice(&buf[..]));
    Zeroizing::new(c.rem(q_minus_1).wrapping_add(&Exponent::ONE))
}

/// Why a peer's public value or the result was refused; `dh.rs` turns it into a `DhError`
/// naming the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Not the prime's length.
    Length,
    /// Not 1 < y < p-1.
    OutOfRange,
    /// y^q != 1 in a group with a small prime-order subgroup.
    NotInSubgroup,
    /// g^xy = 1.
    SharedIsOne,
}

/// A private exponent and the number of bits the exponentiation runs over. Wiped on drop
/// (`Zeroizing`); never printed.
pub(super) struct Secret {
    x: Zeroizing<Exponent>,
    bits: usize,
}

/// The MODP groups, each naming its constants below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Modp {
    /// Group 2, MODP-1024 (RFC 2409 §6.2). Legacy.
    G1024,
    /// Group 5, MODP-1536 (RFC 3526 §2). Legacy.
    G1536,
    /// Group 14, MODP-2048 (RFC 3526 §3).
    G2048,
    /// Group 15, MODP-3072 (RFC 3526 §4).
    G3072,
    /// Group 16, MODP-4096 (RFC 3526 §5).
    G4096,
    /// Group 17, MODP-6144 (RFC 3526 §6).
    G6144,
    /// Group 18, MODP-8192 (RFC 3526 §7).
    G8192,
    /// Group 24, MODP-2048 with a 256-bit prime-order subgroup (RFC 5114 §2.3).
    G2048s256,
}

static MODP1024: Group<{ U1024::LIMBS }> = Group::safe_prime(
    U1024::from_be_slice(&hex::<{ U1024::BYTES }>(primes::MODP1024_P)),
    256,
);
static MODP1536: Group<{ U1536::LIMBS }> = Group::safe_prime(
    U1536::from_be_slice(&hex::<{ U1536::BYTES }>(primes::MODP1536_P)),
    256,
);
static MODP2048: Group<{ U2048::LIMBS }> = Group::safe_prime(
    U2048::from_be_slice(&hex::<{ U2048::BYTES }>(primes::MODP2048_P)),
    384,
);
static MODP3072: Group<{ U3072::LIMBS }> = Group::safe_prime(
    U3072::from_be_slice(&hex::<{ U3072::BYTES }>(primes::MODP3072_P)),
    448,
);
static MODP4096: Group<{ U4096::LIMBS }> = Group::safe_prime(
    U4096::from_be_slice(&hex::<{ U4096::BYTES }>(primes::MODP4096_P)),
    512,
);
static MODP6144: Group<{ U6144::LIMBS }> = Group::safe_prime(
    U6144::from_be_slice(&hex::<{ U6144::BYTES }>(primes::MODP6144_P)),
    576,
);
static MODP8192: Group<{ U8192::LIMBS }> = Group::safe_prime(
    U8192::from_be_slice(&hex::<{ U8192::BYTES }>(primes::MODP8192_P)),
    640,
);
static MODP2048S256: Group<{ U2048::LIMBS }> = Group {
    p: U2048::from_be_slice(&hex::<{ U2048::BYTES }>(primes::MODP2048S256_P)),
    g: U2048::from_be_slice(&hex::<{ U2048::BYTES }>(primes::MODP2048S256_G)),
    q: Some(Subgroup::new(U256::from_be_slice(&hex::<{ U256::BYTES }>(
        primes::MODP2048S256_Q,
    )))),
    exponent_bits: 256,
    params: OnceLock::new(),
};

/// Runs `$body` with `$g` bound to the group's constants (each arm its own integer size).
macro_rules! with_group {
    ($modp:expr, $g:ident => $body:expr) => {
        match $modp {
            Modp::G1024 => {
                let $g = &MODP1024;
                $body
            }
            Modp::G1536 => {
                let $g = &MODP1536;
                $body
            }
            Modp::G2048 => {
                let $g = &MODP2048;
                $body
            }
            Modp::G3072 => {
                let $g = &MODP3072;
                $body
            }
            Modp::G4096 => {
                let $g = &MODP4096;
                $body
            }
            Modp::G6144 => {
                let $g = &MODP6144;
                $body
            }
            Modp::G8192 => {
                let $g = &MODP8192;
                $body
            }
            Modp::G2048s256 => {
                let $g = &MODP2048S256;
                $body
            }
        }
    };
}

impl Modp {
    /// The prime p, big-endian.
    pub(super) fn prime(self) -> Vec<u8> {
        with_group!(self, g => to_bytes(&g.p))
    }

    /// A fresh private exponent from `rng`, and g^x as KE data.
    pub(super) fn generate(self, rng: &mut dyn Rng) -> (Secret, Vec<u8>) {
        with_group!(self, g => g.generate(rng))
    }

    /// A fixed private exponent (big-endian, 1 to 128 bytes, at least 2; for group 24 in
    /// [1, q-1]), and g^x. `None` if out of range.
    pub(super) fn with_private(self, bytes: &[u8]) -> Option<(Secret, Vec<u8>)> {
        with_group!(self, g => g.with_private(bytes))
    }

    /// g^xy from the peer's KE data, or why it was refused.
    pub(super) fn agree(self, secret: &Secret, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, Refusal> {
        with_group!(self, g => g.agree(secret, peer))
    }
}

// After `with_group!`, which the tests use.
#[cfg(test)]
mod tests;
