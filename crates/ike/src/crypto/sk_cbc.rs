//! The SK payload with a non-AEAD suite (RFC 7296 §3.14): AES-CBC (RFC 3602)
//! and a truncated HMAC (RFC 2404, RFC 4868), encrypt-then-MAC.
//!
//! ```text
//! IKE header | cleartext payloads | SK header | IV (16) | ciphertext | ICV
//! \_____________________ integrity-protected (SK_a) ______/            |
//!                                   encrypted (SK_e) ____/             |
//! ```
//!
//! The IV is a fresh random block per message (§3.14: "MUST be chosen at
//! random and MUST be unpredictable"), the plaintext (inner payloads, padding,
//! Pad Length) is a whole number of blocks, and the ICV is the HMAC under SK_ai
//! or SK_ar of everything from the first byte of the IKE header to the last
//! byte of the ciphertext, truncated to the transform's length. On receipt the
//! ICV is checked, in constant time, before a single block is decrypted: CBC
//! without a MAC check first is a padding oracle.
//!
//! AES-CBC is RustCrypto's (`aes` + `cbc`; `ring` has no CBC), the HMAC is
//! `ring`'s, the comparison `subtle`'s.

use std::fmt;

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use ironsec_esp::{CbcCipher, Integ, Suite};
use ring::hmac;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::sk::{AuthError, KeyLenError};

/// Bytes of the IV and of a cipher block: the AES block.
pub const CBC_BLOCK_LEN: usize = 16;

/// A CBC buffer that is not a whole number of blocks.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
#[error("{len} bytes are not a whole number of {CBC_BLOCK_LEN}-byte AES blocks")]
pub struct NotBlockAligned {
    /// Bytes that were given.
    pub len: usize,
}

/// One direction's SK payload keys for an AES-CBC + HMAC suite: SK_ei with
/// SK_ai, or SK_er with SK_ar.
pub struct SkCbc {
    cipher: CbcCipher,
    integ: Integ,
    key: Zeroizing<Vec<u8>>,
    mac: hmac::Key,
}

impl fmt::Debug for SkCbc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SkCbc")
            .field("suite", &self.suite())
            .field("key", &"<redacted>")
            .field("mac", &"<redacted>")
            .finish()
    }
}

/// Runs `$body` with `$mode` the RustCrypto CBC type for the key size.
macro_rules! with_aes {
    ($cipher:expr, $dir:ident, |$mode:ident| $body:expr) => {
        match $cipher {
            CbcCipher::Aes128 => {
                type $mode = cbc::$dir<aes::Aes128>;
                $body
            }
            CbcCipher::Aes192 => {
                type $mode = cbc::$dir<aes::Aes192>;
                $body
            }
            CbcCipher::Aes256 => {
                type $mode = cbc::$dir<aes::Aes256>;
                $body
            }
        }
    };
}

impl SkCbc {
    /// Keys for CBC `suite` from SK_e (the AES key) and SK_a (the HMAC key).
    /// An AEAD suite is refused as a key of the wrong shape: it is
    /// [`super::SkAead`]'s.
    pub fn new(suite: Suite, sk_e: &[u8], sk_a: &[u8]) -> Result<SkCbc, KeyLenError> {
        let Suite::Cbc(cipher, integ) = suite else {
            return Err(KeyLenError {
                suite,
                what: "SK_a (an AEAD has no integrity key)",
                expected: 0,
                got: sk_a.len(),
            });
        };
        if sk_e.len() != cipher.key_len() {
            return Err(KeyLenError {
                suite,
                what: "SK_e",
                expected: cipher.key_len(),
                got: sk_e.len(),
            });
        }
        if sk_a.len() != integ.key_len() {
            return Err(KeyLenError {
                suite,
                what: "SK_a",
                expected: integ.key_len(),
                got: sk_a.len(),
            });
        }
        Ok(SkCbc {
            cipher,
            integ,
            key: Zeroizing::new(sk_e.to_vec()),
            mac: hmac::Key::new(integ.hmac_algorithm(), sk_a),
        })
    }

    /// The suite of these keys.
    pub fn suite(&self) -> Suite {
        Suite::Cbc(self.cipher, self.integ)
    }

    /// Bytes of the truncated ICV.
    pub fn icv_len(&self) -> usize {
        self.integ.icv_len()
    }

    /// Encrypts `in_out`, a whole number of blocks, in place.
    pub fn encrypt(
        &self,
        iv: &[u8; CBC_BLOCK_LEN],
        in_out: &mut [u8],
    ) -> Result<(), NotBlockAligned> {
        let len = in_out.len();
        if !len.is_multiple_of(CBC_BLOCK_LEN) {
            return Err(NotBlockAligned { len });
        }
        with_aes!(self.cipher, Encryptor, |Mode| {
            Mode::new_from_slices(&self.key, iv)
                .map_err(|_| NotBlockAligned { len })?
                .encrypt_padded_mut::<aes::cipher::block_padding::NoPadding>(in_out, len)
                .map(|_| ())
                .map_err(|_| NotBlockAligned { len })
        })
    }

    /// Decrypts `in_out`, a whole number of blocks, in place. Call it only on
    /// a message whose ICV [`SkCbc::verify`] accepted.
    pub fn decrypt(
        &self,
        iv: &[u8; CBC_BLOCK_LEN],
        in_out: &mut [u8],
    ) -> Result<(), NotBlockAligned> {
        let len = in_out.len();
        if !len.is_multiple_of(CBC_BLOCK_LEN) {
            return Err(NotBlockAligned { len });
        }
        with_aes!(self.cipher, Decryptor, |Mode| {
            Mode::new_from_slices(&self.key, iv)
                .map_err(|_| NotBlockAligned { len })?
                .decrypt_padded_mut::<aes::cipher::block_padding::NoPadding>(in_out)
                .map(|_| ())
                .map_err(|_| NotBlockAligned { len })
        })
    }

    fn full_mac(&self, parts: &[&[u8]]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.mac);
        for p in parts {
            ctx.update(p);
        }
        ctx.sign()
    }

    /// The ICV of the concatenation of `parts` (the message from the IKE
    /// header to the end of the ciphertext): the HMAC truncated to
    /// [`SkCbc::icv_len`] bytes.
    pub fn icv(&self, parts: &[&[u8]]) -> Vec<u8> {
        self.full_mac(parts).as_ref()[..self.icv_len()].to_vec()
    }

    /// Checks `icv` against the ICV of `parts` in constant time (a wrong
    /// length fails too, without comparing).
    pub fn verify(&self, parts: &[&[u8]], icv: &[u8]) -> Result<(), AuthError> {
        let tag = self.full_mac(parts);
        let expected = &tag.as_ref()[..self.icv_len()];
        if icv.len() == expected.len() && bool::from(expected.ct_eq(icv)) {
            Ok(())
        } else {
            Err(AuthError)
        }
    }
}
