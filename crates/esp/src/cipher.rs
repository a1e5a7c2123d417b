//! The ESP framing of an AEAD: how the nonce and the additional data are built
//! from the SA and the packet header. Shared by both directions so that what
//! is sealed and what is opened cannot drift apart.

use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey};
use zeroize::Zeroizing;

use crate::suite::{KeyError, Suite, SALT_LEN};
use crate::IV_LEN;

/// One direction's key. The salt is the only key material we copy (ring keeps
/// and wipes its own copy of the key), so it is wiped when the SA is dropped.
pub(crate) struct SaCipher {
    key: LessSafeKey,
    salt: Zeroizing<[u8; SALT_LEN]>,
}

/// The 4-byte salt is secret but must be combined into every nonce, so the
/// nonce is rebuilt per packet from it and the explicit IV.
fn nonce(salt: &[u8; SALT_LEN], iv: &[u8; IV_LEN]) -> Nonce {
    let mut n = [0u8; SALT_LEN + IV_LEN];
    n[..SALT_LEN].copy_from_slice(salt);
    n[SALT_LEN..].copy_from_slice(iv);
    Nonce::assume_unique_for_key(n)
}

impl SaCipher {
    pub(crate) fn new(suite: Suite, keymat: &[u8]) -> Result<Self, KeyError> {
        let length_error = KeyError::Length {
            suite,
            expected: suite.keymat_len(),
            got: keymat.len(),
        };
        if keymat.len() != suite.keymat_len() {
            return Err(length_error);
        }
        let (key, salt_bytes) = keymat.split_at(suite.key_len());
        let mut salt = Zeroizing::new([0u8; SALT_LEN]);
        salt.copy_from_slice(salt_bytes);
        // ring only refuses a key of the wrong length, which was checked above.
        // ESP with AES-CBC + HMAC is not wired into the SA yet (issue 20, in progress).
        let alg = suite
            .encr()
            .aead_algorithm()
            .ok_or(KeyError::Unsupported { suite })?;
        let key = UnboundKey::new(alg, key).map_err(|_| length_error)?;
        Ok(SaCipher {
            key: LessSafeKey::new(key),
            salt,
        })
    }

    pub(crate) fn seal(
        &self,
        iv: &[u8; IV_LEN],
        aad: &EspAad,
        in_out: &mut [u8],
    ) -> Result<Tag, ring::error::Unspecified> {
        self.key
            .seal_in_place_separate_tag(nonce(&self.salt, iv), aad.get(), in_out)
    }

    /// `in_out` is ciphertext followed by the ICV; on success the plaintext is
    /// its first `len - ICV_LEN` bytes.
    pub(crate) fn open(
        &self,
        iv: &[u8; IV_LEN],
        aad: &EspAad,
        in_out: &mut [u8],
    ) -> Result<usize, ring::error::Unspecified> {
        self.key
            .open_in_place(nonce(&self.salt, iv), aad.get(), in_out)
            .map(|plain| plain.len())
    }

    #[cfg(test)]
    pub(crate) fn algorithm(&self) -> &'static ring::aead::Algorithm {
        self.key.algorithm()
    }
}

/// The ESP header as authenticated data: SPI and sequence number, with the
/// high 32 bits of an extended sequence number between SPI and low bits
/// (RFC 4106 §5, RFC 7634 §2.1). The high bits are authenticated but never
/// sent, which is what makes a wrongly inferred ESN fail authentication.
pub(crate) struct EspAad {
    bytes: [u8; 12],
    len: usize,
}

impl EspAad {
    pub(crate) fn new(spi: u32, seq: u64, esn: bool) -> Self {
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&spi.to_be_bytes());
        if esn {
            bytes[4..].copy_from_slice(&seq.to_be_bytes());
            EspAad { bytes, len: 12 }
        } else {
            bytes[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
            EspAad { bytes, len: 8 }
        }
    }

    fn get(&self) -> Aad<&[u8]> {
        Aad::from(self.bytes.get(..self.len).unwrap_or(&self.bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aad_layout() {
        let a = EspAad::new(0x0102_0304, 0x1122_3344_5566_7788, false);
        assert_eq!(a.get().as_ref(), &[1, 2, 3, 4, 0x55, 0x66, 0x77, 0x88]);
        let a = EspAad::new(0x0102_0304, 0x1122_3344_5566_7788, true);
        assert_eq!(
            a.get().as_ref(),
            &[1, 2, 3, 4, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]
        );
    }

    #[test]
    fn key_length_is_checked() {
        for suite in Suite::AEAD {
            for len in [
                0,
                suite.key_len(),
                suite.keymat_len() - 1,
                suite.keymat_len() + 1,
            ] {
                let err = SaCipher::new(suite, &vec![0u8; len]).err();
                assert_eq!(
                    err,
                    Some(KeyError::Length {
                        suite,
                        expected: suite.keymat_len(),
                        got: len
                    })
                );
            }
            let c = SaCipher::new(suite, &vec![7u8; suite.keymat_len()]).unwrap();
            assert_eq!(Some(c.algorithm()), suite.encr().aead_algorithm());
            assert_eq!(*c.salt, [7u8; 4]);
        }
    }
}
