//! One direction's cipher, whatever the suite: [`SaCipher`] dispatches to the
//! AEAD framing below or to AES-CBC + HMAC (`cbc.rs`). Both work on the whole
//! ESP packet (header | body | ICV) in place, so what is sealed and what is
//! opened cannot drift apart and the SA code above is the same for every
//! suite.
//!
//! The AEAD framing: the nonce is the salt and the explicit IV, the additional
//! data the ESP header (RFC 4106, RFC 7634).

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::cbc::CbcHmac;
use crate::suite::{KeyError, Suite, SALT_LEN};
use crate::SPI_SEQ_LEN;

/// The AEADs' explicit IV (RFC 4106 §3.1, RFC 7634 §2).
pub(crate) const AEAD_IV_LEN: usize = 8;
/// The AEADs' tag.
const AEAD_ICV_LEN: usize = 16;

/// One direction's keys. An enum rather than a trait object: the match costs
/// the AEAD path one predictable branch and no indirect call. The CBC keys
/// (AES encryption and decryption round keys and the HMAC's two hash
/// states, about twice an AEAD key) are boxed, allocated once per SA, so the AEAD SAs do not grow; the AEAD key
/// stays inline because boxing it would add a pointer chase to the fast path.
#[allow(clippy::large_enum_variant)]
pub(crate) enum SaCipher {
    Aead(AeadCipher),
    Cbc(Box<CbcHmac>),
}

/// An AEAD key. The salt is the only key material we copy (ring keeps its
/// own copy of the key), so it is wiped when the SA is dropped.
pub(crate) struct AeadCipher {
    key: LessSafeKey,
    salt: Zeroizing<[u8; SALT_LEN]>,
}

/// The packet could not be sealed or did not authenticate; the caller knows
/// which of its errors that is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CryptoError;

/// The 4-byte salt is secret but must be combined into every nonce, so the
/// nonce is rebuilt per packet from it and the explicit IV.
fn nonce(salt: &[u8; SALT_LEN], iv: &[u8; AEAD_IV_LEN]) -> Nonce {
    let mut n = [0u8; SALT_LEN + AEAD_IV_LEN];
    n[..SALT_LEN].copy_from_slice(salt);
    n[SALT_LEN..].copy_from_slice(iv);
    Nonce::assume_unique_for_key(n)
}

impl SaCipher {
    /// `keymat` is [`Suite::keymat_len`] bytes: an AEAD's key then salt, or
    /// the AES-CBC key then the HMAC key.
    pub(crate) fn new(suite: Suite, keymat: &[u8]) -> Result<Self, KeyError> {
        let length_error = KeyError::Length {
            suite,
            expected: suite.keymat_len(),
            got: keymat.len(),
        };
        if keymat.len() != suite.keymat_len() {
            return Err(length_error);
        }
        let alg = match suite {
            Suite::Cbc(cipher, integ) => {
                return CbcHmac::new(cipher, integ, keymat)
                    .map(|c| SaCipher::Cbc(Box::new(c)))
                    .ok_or(length_error)
            }
            _ => suite.encr().aead_algorithm().ok_or(length_error)?,
        };
        let (key, salt_bytes) = keymat.split_at(suite.key_len());
        let mut salt = Zeroizing::new([0u8; SALT_LEN]);
        salt.copy_from_slice(salt_bytes);
        // ring only refuses a key of the wrong length, which was checked above.
        let key = UnboundKey::new(alg, key).map_err(|_| length_error)?;
        Ok(SaCipher::Aead(AeadCipher {
            key: LessSafeKey::new(key),
            salt,
        }))
    }

    /// Seals `packet` = header (SPI, low sequence bits, IV: `header_len`
    /// bytes, already written) | body | room for the ICV: encrypts the body
    /// and writes the ICV.
    #[inline]
    pub(crate) fn seal(
        &self,
        packet: &mut [u8],
        header_len: usize,
        spi: u32,
        seq: u64,
        esn: bool,
    ) -> Result<(), CryptoError> {
        match self {
            SaCipher::Aead(c) => c.seal(packet, header_len, spi, seq, esn),
            SaCipher::Cbc(c) => c.seal(packet, seq, esn).map_err(|_| CryptoError),
        }
    }

    /// Authenticates and decrypts `packet` (header | ciphertext | ICV) in
    /// place; on success the body is the `n` bytes after the header, where
    /// `n` is returned.
    #[inline]
    pub(crate) fn open(
        &self,
        packet: &mut [u8],
        header_len: usize,
        spi: u32,
        seq: u64,
        esn: bool,
    ) -> Result<usize, CryptoError> {
        match self {
            SaCipher::Aead(c) => c.open(packet, header_len, spi, seq, esn),
            SaCipher::Cbc(c) => c.open(packet, seq, esn).map_err(|_| CryptoError),
        }
    }
}

impl AeadCipher {
    #[inline]
    fn seal(
        &self,
        packet: &mut [u8],
        header_len: usize,
        spi: u32,
        seq: u64,
        esn: bool,
    ) -> Result<(), CryptoError> {
        let (header, rest) = packet.split_at_mut_checked(header_len).ok_or(CryptoError)?;
        let body_len = rest.len().checked_sub(AEAD_ICV_LEN).ok_or(CryptoError)?;
        let (body, icv) = rest.split_at_mut(body_len);
        let iv = aead_iv(header).ok_or(CryptoError)?;
        let aad = EspAad::new(spi, seq, esn);
        // ring refuses only inputs longer than the AEAD's limit (about
        // 2^36 bytes), which no buffer handed to a packet path approaches.
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce(&self.salt, &iv), aad.get(), body)
            .map_err(|_| CryptoError)?;
        icv.copy_from_slice(tag.as_ref());
        Ok(())
    }

    #[inline]
    fn open(
        &self,
        packet: &mut [u8],
        header_len: usize,
        spi: u32,
        seq: u64,
        esn: bool,
    ) -> Result<usize, CryptoError> {
        let (header, in_out) = packet.split_at_mut_checked(header_len).ok_or(CryptoError)?;
        let iv = aead_iv(header).ok_or(CryptoError)?;
        let aad = EspAad::new(spi, seq, esn);
        self.key
            .open_in_place(nonce(&self.salt, &iv), aad.get(), in_out)
            .map(|plain| plain.len())
            .map_err(|_| CryptoError)
    }
}

#[inline]
fn aead_iv(header: &[u8]) -> Option<[u8; AEAD_IV_LEN]> {
    header
        .get(SPI_SEQ_LEN..SPI_SEQ_LEN + AEAD_IV_LEN)?
        .try_into()
        .ok()
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
        for suite in Suite::ALL {
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
            match c {
                SaCipher::Aead(a) => {
                    assert_eq!(Some(a.key.algorithm()), suite.encr().aead_algorithm());
                    assert_eq!(*a.salt, [7u8; 4]);
                }
                SaCipher::Cbc(_) => assert!(!suite.is_aead()),
            }
        }
    }
}
