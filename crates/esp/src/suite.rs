//! The encryption and integrity algorithms of ESP (and of the IKE SK payload,
//! which uses the same transforms) and every fact about them, in one table per
//! IANA registry, so that proposal parsing, key sizing and IKE transform
//! numbers cannot disagree.
//!
//! Three types, because IKE negotiates two transform types but an SA needs a
//! consistent pair:
//! * [`Encr`]: IKEv2 Transform Type 1 (encryption), an AEAD or AES-CBC;
//! * [`Integ`]: IKEv2 Transform Type 3 (integrity), the HMACs;
//! * [`Suite`]: what one SA runs, an AEAD alone or AES-CBC with an HMAC. An
//!   AEAD with an integrity transform, or CBC without one, cannot be built
//!   (RFC 7296 §3.3: an AEAD proposal has no INTEG transform or only NONE; a
//!   non-AEAD cipher needs one).
//!
//! Sources: IANA "IKEv2 Transform Type 1 / Type 3 Transform IDs"; RFC 4106
//! (AES-GCM in ESP), RFC 7634 (ChaCha20-Poly1305), RFC 3602 (AES-CBC in ESP),
//! RFC 2404 (HMAC-SHA-1-96), RFC 4868 (HMAC-SHA-256/384/512 truncated to
//! half), RFC 8221 / RFC 8247 (which of them to implement). Keywords are
//! strongSwan 5.9's (`src/libstrongswan/crypto/proposal/proposal_keywords_static.txt`),
//! so that proposals copy over from swanctl.conf.

use std::fmt;
use std::str::FromStr;

use ring::{aead, hmac};

/// Length of the salt that RFC 4106 §8.1 and RFC 7634 §2 append to the AEAD
/// key in the IKE keying material; it becomes the fixed part of every nonce.
pub(crate) const SALT_LEN: usize = 4;

/// IANA "IKEv2 Transform Type 1" numbers.
const ENCR_AES_CBC: u16 = 12;
const ENCR_AES_GCM_16: u16 = 20;
const ENCR_CHACHA20_POLY1305: u16 = 28;

/// The AES key size of an AES-CBC transform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CbcCipher {
    /// AES-128-CBC.
    Aes128,
    /// AES-192-CBC.
    Aes192,
    /// AES-256-CBC.
    Aes256,
}

impl CbcCipher {
    /// Every key size, smallest first.
    pub const ALL: [CbcCipher; 3] = [CbcCipher::Aes128, CbcCipher::Aes192, CbcCipher::Aes256];

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            CbcCipher::Aes128 => 16,
            CbcCipher::Aes192 => 24,
            CbcCipher::Aes256 => 32,
        }
    }
}

/// An encryption transform (IKEv2 Transform Type 1) that ESP and the IKE SK
/// payload can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encr {
    /// AES-128 in GCM with a 16-byte ICV (RFC 4106, RFC 5282).
    Aes128Gcm16,
    /// AES-256 in GCM with a 16-byte ICV (RFC 4106, RFC 5282).
    Aes256Gcm16,
    /// ChaCha20-Poly1305 (RFC 7634): fast where AES has no hardware support.
    ChaCha20Poly1305,
    /// AES in CBC mode (RFC 3602); needs an [`Integ`].
    Cbc(CbcCipher),
}

struct EncrFacts {
    encr: Encr,
    name: &'static str,
    aliases: &'static [&'static str],
    key_len: usize,
    transform_id: u16,
    key_length_attribute: Option<u16>,
    /// `ring`'s AEAD, or `None` for a cipher that needs an integrity transform.
    aead: Option<&'static aead::Algorithm>,
}

/// Every encryption transform, in the order of [`Encr::ALL`].
static ENCRS: [EncrFacts; 6] = [
    EncrFacts {
        encr: Encr::Aes128Gcm16,
        name: "aes128gcm16",
        // strongSwan accepts the ICV length in bits as well as in bytes.
        aliases: &["aes128gcm128"],
        key_len: 16,
        transform_id: ENCR_AES_GCM_16,
        key_length_attribute: Some(128),
        aead: Some(&aead::AES_128_GCM),
    },
    EncrFacts {
        encr: Encr::Aes256Gcm16,
        name: "aes256gcm16",
        aliases: &["aes256gcm128"],
        key_len: 32,
        transform_id: ENCR_AES_GCM_16,
        key_length_attribute: Some(256),
        aead: Some(&aead::AES_256_GCM),
    },
    EncrFacts {
        encr: Encr::ChaCha20Poly1305,
        name: "chacha20poly1305",
        aliases: &[],
        key_len: 32,
        transform_id: ENCR_CHACHA20_POLY1305,
        // RFC 7634 §2: the transform has a fixed key size and must be sent
        // without a Key Length attribute.
        key_length_attribute: None,
        aead: Some(&aead::CHACHA20_POLY1305),
    },
    EncrFacts {
        encr: Encr::Cbc(CbcCipher::Aes128),
        name: "aes128",
        // strongSwan: `aes` alone is AES-128-CBC.
        aliases: &["aes"],
        key_len: 16,
        transform_id: ENCR_AES_CBC,
        // RFC 3602 §5 / RFC 7296 §3.3.5: AES-CBC always carries its key length.
        key_length_attribute: Some(128),
        aead: None,
    },
    EncrFacts {
        encr: Encr::Cbc(CbcCipher::Aes192),
        name: "aes192",
        aliases: &[],
        key_len: 24,
        transform_id: ENCR_AES_CBC,
        key_length_attribute: Some(192),
        aead: None,
    },
    EncrFacts {
        encr: Encr::Cbc(CbcCipher::Aes256),
        name: "aes256",
        aliases: &[],
        key_len: 32,
        transform_id: ENCR_AES_CBC,
        key_length_attribute: Some(256),
        aead: None,
    },
];

impl Encr {
    /// Every encryption transform we implement, AEADs first.
    pub const ALL: [Encr; 6] = [
        Encr::Aes128Gcm16,
        Encr::Aes256Gcm16,
        Encr::ChaCha20Poly1305,
        Encr::Cbc(CbcCipher::Aes128),
        Encr::Cbc(CbcCipher::Aes192),
        Encr::Cbc(CbcCipher::Aes256),
    ];

    fn facts(self) -> &'static EncrFacts {
        let i = match self {
            Encr::Aes128Gcm16 => 0,
            Encr::Aes256Gcm16 => 1,
            Encr::ChaCha20Poly1305 => 2,
            Encr::Cbc(CbcCipher::Aes128) => 3,
            Encr::Cbc(CbcCipher::Aes192) => 4,
            Encr::Cbc(CbcCipher::Aes256) => 5,
        };
        &ENCRS[i]
    }

    /// Parses a strongSwan encryption keyword, case-insensitively because
    /// swanctl accepts either case.
    pub fn from_name(s: &str) -> Option<Encr> {
        ENCRS
            .iter()
            .find(|f| {
                f.name.eq_ignore_ascii_case(s)
                    || f.aliases.iter().any(|a| a.eq_ignore_ascii_case(s))
            })
            .map(|f| f.encr)
    }

    /// The canonical strongSwan keyword.
    pub fn name(self) -> &'static str {
        self.facts().name
    }

    /// Whether this is an AEAD (no integrity transform with it).
    pub fn is_aead(self) -> bool {
        self.facts().aead.is_some()
    }

    /// Cipher key length in bytes, without an AEAD's salt.
    pub fn key_len(self) -> usize {
        self.facts().key_len
    }

    /// Bytes of keying material the cipher takes: an AEAD's key followed by
    /// its 4-byte salt (RFC 4106 §8.1, RFC 5282 §7.1, RFC 7634 §2), or the
    /// CBC key alone.
    pub fn keymat_len(self) -> usize {
        self.key_len() + if self.is_aead() { SALT_LEN } else { 0 }
    }

    /// IANA IKEv2 encryption transform ID; the AES sizes share one ID and are
    /// told apart by [`Encr::key_length_attribute`].
    pub fn transform_id(self) -> u16 {
        self.facts().transform_id
    }

    /// Value of the IKEv2 Key Length transform attribute in bits, or `None`
    /// when the transform must be sent without one.
    pub fn key_length_attribute(self) -> Option<u16> {
        self.facts().key_length_attribute
    }

    /// The transform with this ID and Key Length attribute, if we implement
    /// it. AES needs the attribute (RFC 3602, RFC 5282 §8) and
    /// ChaCha20-Poly1305 must not carry one (RFC 7634 §2), so any other
    /// combination names nothing.
    pub fn from_transform(id: u16, key_length: Option<u16>) -> Option<Encr> {
        ENCRS
            .iter()
            .find(|f| f.transform_id == id && f.key_length_attribute == key_length)
            .map(|f| f.encr)
    }

    /// `ring`'s AEAD algorithm, `None` for CBC.
    pub fn aead_algorithm(self) -> Option<&'static aead::Algorithm> {
        self.facts().aead
    }
}

impl fmt::Display for Encr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An integrity transform (IKEv2 Transform Type 3): an HMAC truncated to the
/// ICV length its RFC gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Integ {
    /// AUTH_HMAC_SHA1_96 (RFC 2404), transform ID 2: a 20-byte key, 12-byte ICV.
    HmacSha1_96,
    /// AUTH_HMAC_SHA2_256_128 (RFC 4868), transform ID 12.
    HmacSha256_128,
    /// AUTH_HMAC_SHA2_384_192 (RFC 4868), transform ID 13.
    HmacSha384_192,
    /// AUTH_HMAC_SHA2_512_256 (RFC 4868), transform ID 14.
    HmacSha512_256,
}

struct IntegFacts {
    integ: Integ,
    id: u16,
    name: &'static str,
    aliases: &'static [&'static str],
    key_len: usize,
    icv_len: usize,
    hmac: hmac::Algorithm,
}

/// Indexed by `Integ as usize`.
static INTEGS: [IntegFacts; 4] = [
    IntegFacts {
        integ: Integ::HmacSha1_96,
        id: 2,
        name: "sha1",
        aliases: &["sha"],
        key_len: 20,
        icv_len: 12,
        hmac: hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
    },
    IntegFacts {
        integ: Integ::HmacSha256_128,
        id: 12,
        name: "sha256",
        aliases: &["sha2_256"],
        key_len: 32,
        icv_len: 16,
        hmac: hmac::HMAC_SHA256,
    },
    IntegFacts {
        integ: Integ::HmacSha384_192,
        id: 13,
        name: "sha384",
        aliases: &["sha2_384"],
        key_len: 48,
        icv_len: 24,
        hmac: hmac::HMAC_SHA384,
    },
    IntegFacts {
        integ: Integ::HmacSha512_256,
        id: 14,
        name: "sha512",
        aliases: &["sha2_512"],
        key_len: 64,
        icv_len: 32,
        hmac: hmac::HMAC_SHA512,
    },
];

impl Integ {
    /// Every integrity transform we implement.
    pub const ALL: [Integ; 4] = [
        Integ::HmacSha1_96,
        Integ::HmacSha256_128,
        Integ::HmacSha384_192,
        Integ::HmacSha512_256,
    ];

    fn facts(self) -> &'static IntegFacts {
        &INTEGS[self as usize]
    }

    /// IANA Transform Type 3 ID.
    pub fn id(self) -> u16 {
        self.facts().id
    }

    /// The transform with IANA Type 3 ID `id`, if we implement it.
    pub fn from_id(id: u16) -> Option<Integ> {
        INTEGS.iter().find(|f| f.id == id).map(|f| f.integ)
    }

    /// Parses a strongSwan integrity keyword, case-insensitively.
    pub fn from_name(s: &str) -> Option<Integ> {
        INTEGS
            .iter()
            .find(|f| {
                f.name.eq_ignore_ascii_case(s)
                    || f.aliases.iter().any(|a| a.eq_ignore_ascii_case(s))
            })
            .map(|f| f.integ)
    }

    /// The canonical strongSwan keyword.
    pub fn name(self) -> &'static str {
        self.facts().name
    }

    /// HMAC key length in bytes (RFC 2404 §3, RFC 4868 §2.1.1: the hash's
    /// output length).
    pub fn key_len(self) -> usize {
        self.facts().key_len
    }

    /// Bytes of the truncated ICV on the wire.
    pub fn icv_len(self) -> usize {
        self.facts().icv_len
    }

    /// `ring`'s HMAC of this transform.
    pub fn hmac_algorithm(self) -> hmac::Algorithm {
        self.facts().hmac
    }
}

impl fmt::Display for Integ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one SA (ESP, or the IKE SK payload) runs: an AEAD suite, or AES-CBC
/// with an HMAC, encrypt-then-MAC. Named as strongSwan names it
/// (`aes128gcm16`, `aes256-sha256`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Suite {
    /// AES-128 in GCM with a 16-byte ICV (RFC 4106).
    Aes128Gcm16,
    /// AES-256 in GCM with a 16-byte ICV (RFC 4106).
    Aes256Gcm16,
    /// ChaCha20-Poly1305 (RFC 7634).
    ChaCha20Poly1305,
    /// AES-CBC (RFC 3602) with an HMAC (RFC 2404, RFC 4868).
    Cbc(CbcCipher, Integ),
}

impl Suite {
    /// Every suite, so callers can list or test them all without repeating
    /// the set: the AEADs, then each AES-CBC size with each HMAC.
    pub const ALL: [Suite; 15] = [
        Suite::Aes128Gcm16,
        Suite::Aes256Gcm16,
        Suite::ChaCha20Poly1305,
        Suite::Cbc(CbcCipher::Aes128, Integ::HmacSha1_96),
        Suite::Cbc(CbcCipher::Aes128, Integ::HmacSha256_128),
        Suite::Cbc(CbcCipher::Aes128, Integ::HmacSha384_192),
        Suite::Cbc(CbcCipher::Aes128, Integ::HmacSha512_256),
        Suite::Cbc(CbcCipher::Aes192, Integ::HmacSha1_96),
        Suite::Cbc(CbcCipher::Aes192, Integ::HmacSha256_128),
        Suite::Cbc(CbcCipher::Aes192, Integ::HmacSha384_192),
        Suite::Cbc(CbcCipher::Aes192, Integ::HmacSha512_256),
        Suite::Cbc(CbcCipher::Aes256, Integ::HmacSha1_96),
        Suite::Cbc(CbcCipher::Aes256, Integ::HmacSha256_128),
        Suite::Cbc(CbcCipher::Aes256, Integ::HmacSha384_192),
        Suite::Cbc(CbcCipher::Aes256, Integ::HmacSha512_256),
    ];

    /// The AEAD suites alone: what the IKE SK payload and ESP offered before
    /// CBC existed, and what a proposal without an integrity keyword means.
    pub const AEAD: [Suite; 3] = [
        Suite::Aes128Gcm16,
        Suite::Aes256Gcm16,
        Suite::ChaCha20Poly1305,
    ];

    /// The suite of an encryption transform and, for a non-AEAD one, its
    /// integrity transform; `None` for an AEAD with an integrity transform or
    /// CBC without one (RFC 7296 §3.3).
    pub fn from_parts(encr: Encr, integ: Option<Integ>) -> Option<Suite> {
        match (encr, integ) {
            (Encr::Aes128Gcm16, None) => Some(Suite::Aes128Gcm16),
            (Encr::Aes256Gcm16, None) => Some(Suite::Aes256Gcm16),
            (Encr::ChaCha20Poly1305, None) => Some(Suite::ChaCha20Poly1305),
            (Encr::Cbc(c), Some(i)) => Some(Suite::Cbc(c, i)),
            _ => None,
        }
    }

    /// The encryption transform.
    pub fn encr(self) -> Encr {
        match self {
            Suite::Aes128Gcm16 => Encr::Aes128Gcm16,
            Suite::Aes256Gcm16 => Encr::Aes256Gcm16,
            Suite::ChaCha20Poly1305 => Encr::ChaCha20Poly1305,
            Suite::Cbc(c, _) => Encr::Cbc(c),
        }
    }

    /// The integrity transform, `None` for an AEAD.
    pub fn integ(self) -> Option<Integ> {
        match self {
            Suite::Cbc(_, i) => Some(i),
            _ => None,
        }
    }

    /// Whether the suite is an AEAD.
    pub fn is_aead(self) -> bool {
        self.integ().is_none()
    }

    /// Parses a strongSwan ESP keyword list naming exactly one suite:
    /// `aes128gcm16`, or `aes256-sha256` (cipher then integrity),
    /// case-insensitively.
    pub fn from_name(s: &str) -> Option<Suite> {
        let mut parts = s.split('-');
        let encr = Encr::from_name(parts.next()?)?;
        let integ = match parts.next() {
            Some(i) => Some(Integ::from_name(i)?),
            None => None,
        };
        if parts.next().is_some() {
            return None;
        }
        Suite::from_parts(encr, integ)
    }

    /// The canonical strongSwan name, e.g. `aes128gcm16` or `aes256-sha256`.
    pub fn name(self) -> &'static str {
        use CbcCipher::*;
        use Integ::*;
        match self {
            Suite::Aes128Gcm16 | Suite::Aes256Gcm16 | Suite::ChaCha20Poly1305 => self.encr().name(),
            Suite::Cbc(Aes128, HmacSha1_96) => "aes128-sha1",
            Suite::Cbc(Aes128, HmacSha256_128) => "aes128-sha256",
            Suite::Cbc(Aes128, HmacSha384_192) => "aes128-sha384",
            Suite::Cbc(Aes128, HmacSha512_256) => "aes128-sha512",
            Suite::Cbc(Aes192, HmacSha1_96) => "aes192-sha1",
            Suite::Cbc(Aes192, HmacSha256_128) => "aes192-sha256",
            Suite::Cbc(Aes192, HmacSha384_192) => "aes192-sha384",
            Suite::Cbc(Aes192, HmacSha512_256) => "aes192-sha512",
            Suite::Cbc(Aes256, HmacSha1_96) => "aes256-sha1",
            Suite::Cbc(Aes256, HmacSha256_128) => "aes256-sha256",
            Suite::Cbc(Aes256, HmacSha384_192) => "aes256-sha384",
            Suite::Cbc(Aes256, HmacSha512_256) => "aes256-sha512",
        }
    }

    /// Cipher key length in bytes (without salt or integrity key).
    pub fn key_len(self) -> usize {
        self.encr().key_len()
    }

    /// Bytes of keying material one direction of an SA consumes: an AEAD's
    /// key and 4-byte salt, or the CBC key followed by the HMAC key (RFC 7296
    /// §2.17: "the encryption key is taken from the first octets of KEYMAT
    /// and the authentication key is taken from the next octets").
    pub fn keymat_len(self) -> usize {
        self.encr().keymat_len() + self.integ().map_or(0, Integ::key_len)
    }

    /// Bytes of the explicit IV in each packet: 8 for the AEADs (RFC 4106
    /// §3.1, RFC 7634 §2), the 16-byte cipher block for AES-CBC (RFC 3602 §3).
    pub fn iv_len(self) -> usize {
        if self.is_aead() {
            8
        } else {
            16
        }
    }

    /// Bytes of the ICV: 16 for the AEADs, the truncated HMAC otherwise.
    pub fn icv_len(self) -> usize {
        self.integ().map_or(16, Integ::icv_len)
    }

    /// What the encrypted part (payload, padding, pad length, next header)
    /// must be a multiple of: 4 (RFC 4303 §2.4) for the AEADs, which are
    /// stream-like, the AES block of 16 for CBC (RFC 3602 §2.4).
    pub fn block_len(self) -> usize {
        if self.is_aead() {
            4
        } else {
            16
        }
    }

    /// Bytes in front of the encrypted body: SPI, the low 32 bits of the
    /// sequence number and the explicit IV. At most [`HEADROOM`](crate::HEADROOM).
    pub fn header_len(self) -> usize {
        crate::SPI_SEQ_LEN + self.iv_len()
    }

    /// Length of the ESP packet (from the SPI to the end of the ICV) that
    /// carries `payload_len` bytes, padded as RFC 4303 §2.4 asks: payload, pad
    /// length and next header to a multiple of [`Suite::block_len`]. `None`
    /// if that overflows.
    pub fn sealed_len(self, payload_len: usize) -> Option<usize> {
        crate::trailer::body_len(payload_len, self.block_len())?
            .checked_add(self.header_len() + self.icv_len())
    }

    /// The largest payload whose ESP packet is at most `esp_len` bytes (the
    /// inverse of [`Suite::sealed_len`]), 0 if not even an empty one fits:
    /// what the MTU arithmetic of the fast path solves for.
    pub fn max_payload(self, esp_len: usize) -> usize {
        let room = esp_len.saturating_sub(self.header_len() + self.icv_len());
        (room / self.block_len() * self.block_len()).saturating_sub(2)
    }

    /// The shortest ESP packet this suite could have sent: header, pad length
    /// and next header, ICV. Anything shorter is truncated; anything whose
    /// body is not a whole number of [`Suite::block_len`] is malformed.
    pub fn min_packet_len(self) -> usize {
        self.header_len() + 2 + self.icv_len()
    }

    /// IANA IKEv2 encryption transform ID of [`Suite::encr`].
    pub fn transform_id(self) -> u16 {
        self.encr().transform_id()
    }

    /// Key Length attribute of [`Suite::encr`].
    pub fn key_length_attribute(self) -> Option<u16> {
        self.encr().key_length_attribute()
    }
}

/// A suite's sizes, worked out once per SA so that the packet path does no
/// table lookups and no division (every block length is a power of two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// [`Suite::header_len`].
    pub(crate) header: usize,
    /// [`Suite::icv_len`].
    pub(crate) icv: usize,
    /// [`Suite::block_len`] - 1.
    block_mask: usize,
}

impl Layout {
    pub(crate) fn of(suite: Suite) -> Layout {
        debug_assert!(suite.block_len().is_power_of_two());
        Layout {
            header: suite.header_len(),
            icv: suite.icv_len(),
            block_mask: suite.block_len() - 1,
        }
    }

    /// Payload, padding, pad length and next header: `payload_len + 2`
    /// rounded up to the block ([`trailer::body_len`](crate::trailer::body_len)).
    #[inline]
    pub(crate) fn body_len(self, payload_len: usize) -> Option<usize> {
        Some(payload_len.checked_add(2 + self.block_mask)? & !self.block_mask)
    }

    /// Whether a body of `len` bytes is whole blocks.
    #[inline]
    pub(crate) fn aligned(self, len: usize) -> bool {
        len & self.block_mask == 0
    }

    /// [`Suite::min_packet_len`].
    #[inline]
    pub(crate) fn min_packet(self) -> usize {
        self.header + 2 + self.icv
    }
}

fn valid_names() -> String {
    let names: Vec<&str> = Suite::ALL.iter().map(|s| s.name()).collect();
    names.join(", ")
}

/// A proposal keyword that names no supported ESP suite.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("unknown ESP suite {name:?}: expected one of {valid}", valid = valid_names())]
pub struct UnknownSuite {
    /// The keyword as given.
    pub name: String,
}

impl FromStr for Suite {
    type Err = UnknownSuite;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Suite::from_name(s).ok_or_else(|| UnknownSuite { name: s.to_owned() })
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Keying material that does not fit the suite, which means IKE derived the
/// wrong amount: installing such an SA must fail rather than guess.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// The keying material is not exactly [`Suite::keymat_len`] bytes.
    #[error("{suite} needs {expected} bytes of key material, got {got}")]
    Length {
        /// Suite the SA was created for.
        suite: Suite,
        /// Bytes the suite needs.
        expected: usize,
        /// Bytes that were given.
        got: usize,
    },
    /// The operating system gave no random bytes for the key that makes
    /// AES-CBC IVs unpredictable (see `cbc.rs`); the SA cannot send safely.
    #[error("{suite}: no randomness available for the IV key")]
    Random {
        /// Suite the SA was created for.
        suite: Suite,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_indexed_by_variant() {
        for e in Encr::ALL {
            assert_eq!(e.facts().encr, e);
            if let Some(a) = e.aead_algorithm() {
                assert_eq!(a.key_len(), e.key_len());
                assert_eq!(a.tag_len(), 16);
                assert_eq!(a.nonce_len(), SALT_LEN + 8);
            }
        }
        for (k, i) in Integ::ALL.iter().enumerate() {
            assert_eq!(INTEGS[k].integ, *i);
            assert_eq!(
                i.hmac_algorithm().digest_algorithm().output_len(),
                i.key_len()
            );
            // RFC 4868 §2.1.1: the SHA-2 HMACs are truncated to half their output.
            if *i != Integ::HmacSha1_96 {
                assert_eq!(i.icv_len() * 2, i.key_len());
            }
        }
        for s in Suite::ALL {
            assert_eq!(Suite::from_parts(s.encr(), s.integ()), Some(s));
        }
    }

    #[test]
    fn names_round_trip_and_aliases_parse() {
        for suite in Suite::ALL {
            assert_eq!(Suite::from_name(suite.name()), Some(suite));
            assert_eq!(suite.to_string().parse::<Suite>(), Ok(suite));
        }
        assert_eq!(Suite::from_name("AES128GCM16"), Some(Suite::Aes128Gcm16));
        assert_eq!(Suite::from_name("aes128gcm128"), Some(Suite::Aes128Gcm16));
        assert_eq!(Suite::from_name("Aes256Gcm128"), Some(Suite::Aes256Gcm16));
        assert_eq!(
            Suite::from_name("ChaCha20Poly1305"),
            Some(Suite::ChaCha20Poly1305)
        );
        assert_eq!(
            Suite::from_name("aes-sha"),
            Some(Suite::Cbc(CbcCipher::Aes128, Integ::HmacSha1_96))
        );
        assert_eq!(
            Suite::from_name("aes256-sha2_256"),
            Some(Suite::Cbc(CbcCipher::Aes256, Integ::HmacSha256_128))
        );
        assert_eq!(Suite::from_name("aes128gcm8"), None);
        assert_eq!(Suite::from_name("aes128gcm16-sha256"), None);
        assert_eq!(Suite::from_name("aes256"), None);
        assert_eq!(Suite::from_name("aes256-sha256-sha1"), None);
        assert_eq!(Suite::from_name(""), None);
    }

    #[test]
    fn iana_facts() {
        assert_eq!(Suite::Aes128Gcm16.transform_id(), 20);
        assert_eq!(Suite::Aes256Gcm16.transform_id(), 20);
        assert_eq!(Suite::ChaCha20Poly1305.transform_id(), 28);
        assert_eq!(Suite::Aes128Gcm16.keymat_len(), 20);
        assert_eq!(Suite::Aes256Gcm16.keymat_len(), 36);
        assert_eq!(Suite::ChaCha20Poly1305.keymat_len(), 36);
        assert_eq!(Suite::Aes128Gcm16.key_length_attribute(), Some(128));
        assert_eq!(Suite::ChaCha20Poly1305.key_length_attribute(), None);
        let cbc = Suite::Cbc(CbcCipher::Aes256, Integ::HmacSha256_128);
        assert_eq!(cbc.transform_id(), 12);
        assert_eq!(cbc.key_length_attribute(), Some(256));
        assert_eq!(cbc.keymat_len(), 64);
        assert_eq!((cbc.iv_len(), cbc.icv_len(), cbc.block_len()), (16, 16, 16));
        let sha1 = Suite::Cbc(CbcCipher::Aes128, Integ::HmacSha1_96);
        assert_eq!((sha1.keymat_len(), sha1.icv_len()), (36, 12));
        assert_eq!(
            Suite::Cbc(CbcCipher::Aes192, Integ::HmacSha512_256).keymat_len(),
            24 + 64
        );
        assert_eq!(
            [2, 12, 13, 14],
            Integ::ALL.map(Integ::id),
            "RFC 2404 / RFC 4868 transform IDs"
        );
        assert_eq!(
            [12, 16, 24, 32],
            Integ::ALL.map(Integ::icv_len),
            "RFC 2404 / RFC 4868 truncations"
        );
        assert_eq!(
            Encr::from_transform(12, Some(192)),
            Some(Encr::Cbc(CbcCipher::Aes192))
        );
        assert_eq!(Encr::from_transform(12, None), None);
        assert_eq!(Encr::from_transform(28, Some(256)), None);
    }

    #[test]
    fn sizes_per_suite() {
        for s in Suite::ALL {
            assert!(s.header_len() <= crate::HEADROOM, "{s}");
            assert!(s.min_packet_len() >= crate::MIN_ESP_LEN, "{s}");
            assert!(s.icv_len() <= crate::MAX_ICV_LEN, "{s}");
            assert!(s.block_len() <= crate::MAX_BLOCK_LEN, "{s}");
            for payload in 0..100 {
                let len = s.sealed_len(payload).unwrap();
                // The trailer never needs more than MAX_TRAILER after the payload.
                assert!(len - s.header_len() - payload <= crate::MAX_TRAILER, "{s}");
                assert_eq!((len - s.header_len() - s.icv_len()) % s.block_len(), 0);
                // max_payload inverts sealed_len: the largest payload that fits.
                assert!(s.max_payload(len) >= payload, "{s} {payload}");
                assert_eq!(s.sealed_len(s.max_payload(len)), Some(len), "{s} {payload}");
            }
            assert_eq!(s.sealed_len(usize::MAX), None);
            let l = Layout::of(s);
            assert_eq!(l.min_packet(), s.min_packet_len());
            for payload in [0, 1, 13, 14, 15, 16, 1400, usize::MAX - 20, usize::MAX] {
                assert_eq!(
                    l.body_len(payload),
                    crate::trailer::body_len(payload, s.block_len()),
                    "{s} {payload}"
                );
            }
            assert_eq!(s.max_payload(0), 0);
        }
        assert_eq!(
            Suite::ALL.iter().map(|s| s.min_packet_len()).min(),
            Some(crate::MIN_ESP_LEN)
        );
        assert_eq!(
            Suite::ALL.iter().map(|s| s.header_len()).max(),
            Some(crate::HEADROOM)
        );
        // RFC 3602 §3: a 16-byte IV; 1400 bytes of payload take 1402 -> 1408 of body.
        let cbc = Suite::Cbc(CbcCipher::Aes256, Integ::HmacSha256_128);
        assert_eq!(cbc.sealed_len(1400), Some(24 + 1408 + 16));
        assert_eq!(Suite::Aes128Gcm16.sealed_len(1400), Some(16 + 1404 + 16));
    }

    #[test]
    fn unknown_suite_error_lists_valid_names() {
        let err = "3des".parse::<Suite>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"3des\""), "{msg}");
        for suite in Suite::ALL {
            assert!(msg.contains(suite.name()), "{msg}");
        }
    }
}
