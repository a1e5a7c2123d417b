//! The negotiated PRF and `prf+` (RFC 7296 §2.13).

use ring::hmac;
use zeroize::Zeroizing;

use super::transforms::Prf;

/// `prf+` asked for more than RFC 7296 §2.13 defines: it "is not defined
/// beyond 255 times the size of the prf output".
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("prf+ with {prf} is defined for at most {max} bytes, {requested} were requested")]
pub struct PrfPlusTooLong {
    /// The PRF in use.
    pub prf: Prf,
    /// Bytes asked for.
    pub requested: usize,
    /// 255 × the PRF's output length.
    pub max: usize,
}

/// `prf(key, data[0] | data[1] | ...)`: the negotiated PRF over the
/// concatenation of `data`, without building the concatenation.
///
/// The output is wrapped for zeroization because it is usually a key (SKEYSEED,
/// the PSK pad); where it is public (an AUTH value) the caller copies it out.
pub fn prf(alg: Prf, key: &[u8], data: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    let key = hmac::Key::new(alg.hmac(), key);
    let mut ctx = hmac::Context::with_key(&key);
    for part in data {
        ctx.update(part);
    }
    Zeroizing::new(ctx.sign().as_ref().to_vec())
}

/// `prf+(key, seed[0] | seed[1] | ...)` truncated to `len` bytes:
///
/// ```text
/// T1 = prf(K, S | 0x01),  Tn = prf(K, Tn-1 | S | n),  prf+ = T1 | T2 | ...
/// ```
pub fn prf_plus(
    alg: Prf,
    key: &[u8],
    seed: &[&[u8]],
    len: usize,
) -> Result<Zeroizing<Vec<u8>>, PrfPlusTooLong> {
    let max = 255 * alg.output_len();
    if len > max {
        return Err(PrfPlusTooLong {
            prf: alg,
            requested: len,
            max,
        });
    }
    Ok(expand(alg, key, seed, len))
}

/// `prf+` for lengths the caller knows to be within 255 blocks (every key
/// schedule in this module asks for a few hundred bytes at most).
pub(crate) fn expand(alg: Prf, key: &[u8], seed: &[&[u8]], len: usize) -> Zeroizing<Vec<u8>> {
    debug_assert!(len <= 255 * alg.output_len());
    let key = hmac::Key::new(alg.hmac(), key);
    let mut out = Zeroizing::new(Vec::with_capacity(len + alg.output_len()));
    let mut previous: Option<hmac::Tag> = None;
    for counter in 1..=255u8 {
        if out.len() >= len {
            break;
        }
        let mut ctx = hmac::Context::with_key(&key);
        if let Some(t) = &previous {
            ctx.update(t.as_ref());
        }
        for part in seed {
            ctx.update(part);
        }
        ctx.update(&[counter]);
        let t = ctx.sign();
        out.extend_from_slice(t.as_ref());
        previous = Some(t);
    }
    out.truncate(len);
    out
}
