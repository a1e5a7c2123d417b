//! The SK (Encrypted) payload's protection, whichever suite the IKE SA runs:
//! [`SkCipher`] dispatches to an AEAD ([`SkAead`], RFC 5282 / RFC 7634) or to
//! AES-CBC with an HMAC ([`SkCbc`], RFC 7296 §3.14), so the SA and the
//! fragment code (RFC 7383) never look at which.
//!
//! Both work on a laid-out message (see `wire::layout_sk`):
//!
//! ```text
//! message[..header_end]   IKE header, cleartext payloads, SK/SKF payload header
//! then iv_len bytes       IV
//! then                    plaintext: inner payloads, padding, Pad Length
//!                         (a multiple of block_len bytes)
//! then icv_len bytes      ICV, to the end
//! ```
//!
//! With an AEAD the header is the associated data; with CBC the ICV covers
//! header, IV and ciphertext.

use std::fmt;

use ironsec_esp::Suite;
use zeroize::Zeroizing;

use super::rng::Rng;
use super::sk_aead::SkAead;
use super::sk_cbc::{SkCbc, CBC_BLOCK_LEN};

/// Keying material that does not fit the suite.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("{suite} needs {expected} bytes of {what}, got {got}")]
pub struct KeyLenError {
    /// The suite the key was for.
    pub suite: Suite,
    /// Which key: "SK_e", "SK_a", ...
    pub what: &'static str,
    /// Bytes the suite needs.
    pub expected: usize,
    /// Bytes that were given.
    pub got: usize,
}

/// An SK payload failed authentication: wrong key, or altered in transit.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
#[error("SK payload failed its integrity check")]
pub struct AuthError;

/// Why a received SK/SKF body could not be opened. Only `Integrity` says
/// anything about the key; the others are visible without it, so anyone can
/// cause them.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than IV, one plaintext unit and ICV.
    #[error("encrypted payload of {got} bytes is shorter than the {need} its suite needs")]
    TooShort {
        /// Bytes at least needed.
        need: usize,
        /// Bytes received.
        got: usize,
    },
    /// CBC ciphertext that is not a whole number of blocks.
    #[error("CBC ciphertext of {len} bytes is not a whole number of 16-byte blocks")]
    NotBlockAligned {
        /// Bytes of ciphertext.
        len: usize,
    },
    /// The ICV did not verify.
    #[error(transparent)]
    Integrity(#[from] AuthError),
}

/// A laid-out message that does not fit the suite: a bug in the caller,
/// reported rather than sealed wrongly.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
#[error(
    "cannot seal {suite}: message of {len} bytes with header to {header_end} leaves no \
     {iv_len}-byte IV, block-aligned plaintext and {icv_len}-byte ICV"
)]
pub struct SealError {
    /// The suite.
    pub suite: Suite,
    /// Bytes of the message.
    pub len: usize,
    /// Where the header ended.
    pub header_end: usize,
    /// The suite's IV length.
    pub iv_len: usize,
    /// The suite's ICV length.
    pub icv_len: usize,
}

/// One direction's SK payload protection: SK_ei (+ SK_ai) or SK_er (+ SK_ar).
pub enum SkCipher {
    /// An AEAD; `last_iv` counts the explicit IVs used, which need only be
    /// unique under the key (RFC 5282 §3.1).
    Aead {
        /// The AEAD key (boxed: ring's AES key schedule is three times an HMAC key's size).
        aead: Box<SkAead>,
        /// The last IV used.
        last_iv: u64,
    },
    /// AES-CBC with an HMAC; each IV is drawn at random.
    Cbc(SkCbc),
}

impl fmt::Debug for SkCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkCipher::Aead { aead, .. } => aead.fmt(f),
            SkCipher::Cbc(c) => c.fmt(f),
        }
    }
}

impl SkCipher {
    /// Keys for `suite`: `sk_e` is SK_ei or SK_er (an AEAD's key with its
    /// 4-byte salt, or the AES-CBC key), `sk_a` SK_ai or SK_ar (empty for an
    /// AEAD).
    pub fn new(suite: Suite, sk_e: &[u8], sk_a: &[u8]) -> Result<SkCipher, KeyLenError> {
        if suite.is_aead() {
            if !sk_a.is_empty() {
                return Err(KeyLenError {
                    suite,
                    what: "SK_a (an AEAD has no integrity key)",
                    expected: 0,
                    got: sk_a.len(),
                });
            }
            Ok(SkCipher::Aead {
                aead: Box::new(SkAead::new(suite, sk_e)?),
                last_iv: 0,
            })
        } else {
            Ok(SkCipher::Cbc(SkCbc::new(suite, sk_e, sk_a)?))
        }
    }

    /// The suite of these keys.
    pub fn suite(&self) -> Suite {
        match self {
            SkCipher::Aead { aead, .. } => aead.suite(),
            SkCipher::Cbc(c) => c.suite(),
        }
    }

    /// Bytes of IV after the SK/SKF payload header.
    pub fn iv_len(&self) -> usize {
        match self {
            SkCipher::Aead { .. } => SkAead::IV_LEN,
            SkCipher::Cbc(_) => CBC_BLOCK_LEN,
        }
    }

    /// Bytes of ICV at the end of the message.
    pub fn icv_len(&self) -> usize {
        match self {
            SkCipher::Aead { .. } => SkAead::ICV_LEN,
            SkCipher::Cbc(c) => c.icv_len(),
        }
    }

    /// What the plaintext (inner payloads, padding, Pad Length) must be a
    /// multiple of: 1 for an AEAD, which needs no padding (RFC 5282 §3.2
    /// allows none), the AES block for CBC.
    pub fn block_len(&self) -> usize {
        match self {
            SkCipher::Aead { .. } => 1,
            SkCipher::Cbc(_) => CBC_BLOCK_LEN,
        }
    }

    /// Seals a laid-out message in place: picks the IV (the next counter
    /// value for an AEAD, a random block from `rng` for CBC, RFC 7296 §3.14),
    /// then as [`SkCipher::seal_with_iv`].
    pub fn seal(
        &mut self,
        rng: &mut dyn Rng,
        message: &mut [u8],
        header_end: usize,
    ) -> Result<(), SealError> {
        let iv: Vec<u8> = match self {
            SkCipher::Aead { last_iv, .. } => {
                *last_iv = last_iv.wrapping_add(1);
                last_iv.to_be_bytes().to_vec()
            }
            SkCipher::Cbc(_) => {
                let mut iv = vec![0u8; CBC_BLOCK_LEN];
                rng.fill(&mut iv);
                iv
            }
        };
        self.seal_with_iv(&iv, message, header_end)
    }

    /// Seals a laid-out message in place with the given IV: writes the IV,
    /// encrypts the plaintext and writes the ICV. The IV must never repeat
    /// under an AEAD key and must be unpredictable for CBC; outside tests,
    /// use [`SkCipher::seal`].
    pub fn seal_with_iv(
        &self,
        iv: &[u8],
        message: &mut [u8],
        header_end: usize,
    ) -> Result<(), SealError> {
        let (iv_len, icv_len) = (self.iv_len(), self.icv_len());
        let err = SealError {
            suite: self.suite(),
            len: message.len(),
            header_end,
            iv_len,
            icv_len,
        };
        let pt_start = header_end.checked_add(iv_len).ok_or(err)?;
        let icv_start = message.len().checked_sub(icv_len).ok_or(err)?;
        if iv.len() != iv_len
            || pt_start > icv_start
            || !(icv_start - pt_start).is_multiple_of(self.block_len())
        {
            return Err(err);
        }
        message[header_end..pt_start].copy_from_slice(iv);
        let (head, rest) = message.split_at_mut(pt_start);
        let (plaintext, icv) = rest.split_at_mut(icv_start - pt_start);
        match self {
            SkCipher::Aead { aead, .. } => {
                let iv: [u8; SkAead::IV_LEN] = iv.try_into().map_err(|_| err)?;
                let tag = aead.seal(iv, &head[..header_end], plaintext);
                icv.copy_from_slice(&tag);
            }
            SkCipher::Cbc(c) => {
                let iv: [u8; CBC_BLOCK_LEN] = iv.try_into().map_err(|_| err)?;
                c.encrypt(&iv, plaintext).map_err(|_| err)?;
                icv.copy_from_slice(&c.icv(&[head, plaintext]));
            }
        }
        Ok(())
    }

    /// Opens a received SK or SKF payload: `header` is the message from the
    /// IKE header to the end of the SK/SKF payload header, `body` the IV,
    /// ciphertext and ICV after it. Returns the plaintext, padding and Pad
    /// Length included. For CBC the ICV is verified before anything is
    /// decrypted.
    pub fn open(&self, header: &[u8], body: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let (iv_len, icv_len) = (self.iv_len(), self.icv_len());
        // At least one plaintext unit: the Pad Length byte, or one block.
        let need = iv_len + self.block_len() + icv_len;
        if body.len() < need {
            return Err(OpenError::TooShort {
                need,
                got: body.len(),
            });
        }
        let (iv, rest) = body.split_at(iv_len);
        match self {
            SkCipher::Aead { aead, .. } => {
                let iv: [u8; SkAead::IV_LEN] = iv.try_into().map_err(|_| AuthError)?;
                let mut buf = Zeroizing::new(rest.to_vec());
                let n = aead.open(iv, header, &mut buf)?;
                buf.truncate(n);
                Ok(buf)
            }
            SkCipher::Cbc(c) => {
                let (ciphertext, icv) = rest.split_at(rest.len() - icv_len);
                if ciphertext.len() % CBC_BLOCK_LEN != 0 {
                    return Err(OpenError::NotBlockAligned {
                        len: ciphertext.len(),
                    });
                }
                c.verify(&[header, iv, ciphertext], icv)?;
                let iv: [u8; CBC_BLOCK_LEN] = iv.try_into().map_err(|_| AuthError)?;
                let mut buf = Zeroizing::new(ciphertext.to_vec());
                c.decrypt(&iv, &mut buf)
                    .map_err(|e| OpenError::NotBlockAligned { len: e.len })?;
                Ok(buf)
            }
        }
    }
}
