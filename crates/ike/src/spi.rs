//! Random SPIs and nonces: what the SA state machines, the endpoint and the stateless
//! INVALID_SPI notification all draw from the endpoint's [`Rng`].

use crate::crypto::Rng;

/// `n` random bytes (nonces).
pub(crate) fn random_bytes(rng: &mut dyn Rng, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill(&mut v);
    v
}

/// A random nonzero IKE SPI (zero means "not yet known" on the wire).
pub(crate) fn random_ike_spi(rng: &mut dyn Rng) -> u64 {
    loop {
        let mut b = [0u8; 8];
        rng.fill(&mut b);
        let s = u64::from_be_bytes(b);
        if s != 0 {
            return s;
        }
    }
}

/// A random SPI for an inbound CHILD_SA: never in the reserved 0..=255 range.
pub(crate) fn random_child_spi(rng: &mut dyn Rng) -> u32 {
    loop {
        let mut b = [0u8; 4];
        rng.fill(&mut b);
        let spi = u32::from_be_bytes(b);
        if spi > 255 {
            return spi;
        }
    }
}
