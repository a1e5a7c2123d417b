//! The Internet checksum (RFC 1071) for the offload paths, which recompute TCP checksums for
//! every segment they split or merge.

/// Ones'-complement sum of `data` as big-endian 16-bit words, added to `sum`, not yet folded.
/// Reads eight bytes at a time: a ones'-complement sum is the same modulo 2^16 - 1 whatever
/// the word size (2^16 = 1 there), so wide words sum the same as 16-bit ones, 4x faster.
#[inline]
pub fn sum(data: &[u8], sum: u64) -> u64 {
    let mut acc: u128 = u128::from(sum);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        acc += u128::from(u64::from_be_bytes(w));
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for c in &mut rest {
        acc += u128::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = rest.remainder() {
        acc += u128::from(u16::from_be_bytes([*last, 0]));
    }
    // Fold to 16 bits, then back into a u64 the callers can keep adding to.
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u64
}

/// The checksum: the folded sum, complemented.
#[inline]
pub fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain 16-bit definition, to check the wide one against.
    fn reference(data: &[u8]) -> u16 {
        let mut s: u64 = 0;
        for c in data.chunks(2) {
            s += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        fold(s)
    }

    #[test]
    fn wide_sum_equals_the_16_bit_definition() {
        // RFC 1071's example bytes, then every length 0..80 of a pseudo-random buffer.
        assert_eq!(
            fold(sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0)),
            !0xddf2
        );
        let buf: Vec<u8> = (0..80u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for n in 0..buf.len() {
            assert_eq!(fold(sum(&buf[..n], 0)), reference(&buf[..n]), "len {n}");
        }
        assert_eq!(fold(sum(&[0xff; 4096], 0)), reference(&[0xff; 4096]));
    }
}
