//! The AEAD of the SK (Encrypted) payload: AES-GCM with a 16-byte ICV
//! (RFC 5282) or ChaCha20-Poly1305 (RFC 7634).
//!
//! SK_e is the cipher key followed by a 4-byte salt; each message carries an
//! 8-byte explicit IV after the SK payload header, and the nonce is
//! `salt || IV` (RFC 5282 §3.1, RFC 7634 §2). The additional data is the IKE
//! header and the SK payload header, up to the IV (RFC 5282 §5.1); the caller
//! hands those bytes in as `aad`. There is no separate integrity key.
//!
//! [`super::SkCipher`] dispatches here for the AEAD suites; this type is the
//! bare AEAD with an explicit IV, which is what the known-answer tests need.

use std::fmt;

use ironsec_esp::Suite;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroizing;

const SALT_LEN: usize = 4;

use super::sk::{AuthError, KeyLenError};

/// One direction's SK payload AEAD key (SK_ei or SK_er).
pub struct SkAead {
    suite: Suite,
    key: LessSafeKey,
    salt: Zeroizing<[u8; SALT_LEN]>,
}

impl fmt::Debug for SkAead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SkAead")
            .field("suite", &self.suite)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl SkAead {
    /// Bytes of the explicit IV that precedes the ciphertext.
    pub const IV_LEN: usize = 8;
    /// Bytes of the ICV (tag) that follows it.
    pub const ICV_LEN: usize = 16;

    /// A cipher for AEAD `suite` from SK_ei or SK_er (key || 4-byte salt).
    /// A CBC suite is refused as a key of the wrong shape: it is
    /// [`super::SkCbc`]'s.
    pub fn new(suite: Suite, keymat: &[u8]) -> Result<SkAead, KeyLenError> {
        let err = KeyLenError {
            suite,
            what: "SK_e (key + 4-byte salt)",
            expected: suite.keymat_len(),
            got: keymat.len(),
        };
        let algorithm = suite.encr().aead_algorithm().ok_or(err.clone())?;
        if keymat.len() != suite.keymat_len() {
            return Err(err);
        }
        let (key, salt_bytes) = keymat.split_at(suite.key_len());
        // ring only refuses a key of the wrong length, checked just above.
        let key = UnboundKey::new(algorithm, key).map_err(|_| err)?;
        let mut salt = Zeroizing::new([0u8; SALT_LEN]);
        salt.copy_from_slice(salt_bytes);
        Ok(SkAead {
            suite,
            key: LessSafeKey::new(key),
            salt,
        })
    }

    /// The suite of this key.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    fn nonce(&self, iv: [u8; 8]) -> Nonce {
        let mut n = [0u8; SALT_LEN + Self::IV_LEN];
        n[..SALT_LEN].copy_from_slice(&self.salt[..]);
        n[SALT_LEN..].copy_from_slice(&iv);
        Nonce::assume_unique_for_key(n)
    }

    /// Encrypts `in_out` (the padded inner payloads) in place with nonce
    /// `salt || iv` and returns the ICV. `iv` must never repeat under one key:
    /// a message counter is the usual choice (RFC 5282 §3.1).
    ///
    /// # Panics
    ///
    /// If `in_out` is longer than the AEAD can take in one message (64 GiB for
    /// AES-GCM); an IKE message is at most 4 GiB by its length field.
    pub fn seal(&self, iv: [u8; 8], aad: &[u8], in_out: &mut [u8]) -> [u8; 16] {
        let tag = self
            .key
            .seal_in_place_separate_tag(self.nonce(iv), Aad::from(aad), in_out)
            .expect("ring refuses only messages over 64 GiB, which no IKE message can be");
        let mut out = [0u8; Self::ICV_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Checks and decrypts `ciphertext_and_tag` in place; on success the
    /// plaintext is its first `n` bytes, `n` being returned. Nothing of the
    /// plaintext may be used on failure.
    pub fn open(
        &self,
        iv: [u8; 8],
        aad: &[u8],
        ciphertext_and_tag: &mut [u8],
    ) -> Result<usize, AuthError> {
        self.key
            .open_in_place(self.nonce(iv), Aad::from(aad), ciphertext_and_tag)
            .map(|plain| plain.len())
            .map_err(|_| AuthError)
    }
}
