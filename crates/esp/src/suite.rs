//! The ESP AEAD suites and every fact about them, in one table, so that
//! proposal parsing, key sizing and IKE transform numbers cannot disagree.

use std::fmt;
use std::str::FromStr;

use ring::aead;

/// Length of the salt that RFC 4106 §8.1 and RFC 7634 §2 append to the AEAD
/// key in the IKE keying material; it becomes the fixed part of every nonce.
pub(crate) const SALT_LEN: usize = 4;

/// IANA "IKEv2 Transform Type 1" numbers.
const ENCR_AES_GCM_16: u16 = 20;
const ENCR_CHACHA20_POLY1305: u16 = 28;

/// An ESP AEAD suite, named as strongSwan names it so that `esp_proposals`
/// copy over from swanctl.conf.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Suite {
    /// AES-128 in GCM with a 16-byte ICV (RFC 4106).
    Aes128Gcm16,
    /// AES-256 in GCM with a 16-byte ICV (RFC 4106).
    Aes256Gcm16,
    /// ChaCha20-Poly1305 (RFC 7634): fast where AES has no hardware support.
    ChaCha20Poly1305,
}

struct Facts {
    suite: Suite,
    name: &'static str,
    aliases: &'static [&'static str],
    key_len: usize,
    transform_id: u16,
    key_length_attribute: Option<u16>,
    algorithm: &'static aead::Algorithm,
}

/// Indexed by `Suite as usize`, in the order of [`Suite::ALL`].
static TABLE: [Facts; 3] = [
    Facts {
        suite: Suite::Aes128Gcm16,
        name: "aes128gcm16",
        // strongSwan accepts the ICV length in bits as well as in bytes.
        aliases: &["aes128gcm128"],
        key_len: 16,
        transform_id: ENCR_AES_GCM_16,
        key_length_attribute: Some(128),
        algorithm: &aead::AES_128_GCM,
    },
    Facts {
        suite: Suite::Aes256Gcm16,
        name: "aes256gcm16",
        aliases: &["aes256gcm128"],
        key_len: 32,
        transform_id: ENCR_AES_GCM_16,
        key_length_attribute: Some(256),
        algorithm: &aead::AES_256_GCM,
    },
    Facts {
        suite: Suite::ChaCha20Poly1305,
        name: "chacha20poly1305",
        aliases: &[],
        key_len: 32,
        transform_id: ENCR_CHACHA20_POLY1305,
        // RFC 7634 §2: the transform has a fixed key size and must be sent
        // without a Key Length attribute.
        key_length_attribute: None,
        algorithm: &aead::CHACHA20_POLY1305,
    },
];

impl Suite {
    /// Every suite, so callers can list or test them all without
    /// repeating the set.
    pub const ALL: [Suite; 3] = [
        Suite::Aes128Gcm16,
        Suite::Aes256Gcm16,
        Suite::ChaCha20Poly1305,
    ];

    fn facts(self) -> &'static Facts {
        &TABLE[self as usize]
    }

    /// Parses a strongSwan ESP encryption keyword, case-insensitively because
    /// swanctl accepts either case.
    pub fn from_name(s: &str) -> Option<Suite> {
        TABLE
            .iter()
            .find(|f| {
                f.name.eq_ignore_ascii_case(s)
                    || f.aliases.iter().any(|a| a.eq_ignore_ascii_case(s))
            })
            .map(|f| f.suite)
    }

    /// The canonical strongSwan keyword.
    pub fn name(self) -> &'static str {
        self.facts().name
    }

    /// AEAD key length in bytes, without the salt.
    pub fn key_len(self) -> usize {
        self.facts().key_len
    }

    /// Bytes of IKE keying material one direction of a CHILD_SA consumes:
    /// the key followed by the 4-byte salt (RFC 4106 §8.1, RFC 7634 §2).
    pub fn keymat_len(self) -> usize {
        self.key_len() + SALT_LEN
    }

    /// IANA IKEv2 encryption transform ID; both AES-GCM sizes share one ID and
    /// are told apart by [`Suite::key_length_attribute`].
    pub fn transform_id(self) -> u16 {
        self.facts().transform_id
    }

    /// Value of the IKEv2 Key Length transform attribute in bits, or `None`
    /// when the transform must be sent without one.
    pub fn key_length_attribute(self) -> Option<u16> {
        self.facts().key_length_attribute
    }

    pub(crate) fn algorithm(self) -> &'static aead::Algorithm {
        self.facts().algorithm
    }
}

fn valid_names() -> String {
    let names: Vec<&str> = TABLE.iter().map(|f| f.name).collect();
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
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// The keying material is not exactly [`Suite::keymat_len`] bytes.
    #[error("{suite} needs {expected} bytes of key material (key + 4-byte salt), got {got}")]
    Length {
        /// Suite the SA was created for.
        suite: Suite,
        /// Bytes the suite needs.
        expected: usize,
        /// Bytes that were given.
        got: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_discriminant() {
        for (i, suite) in Suite::ALL.iter().enumerate() {
            assert_eq!(TABLE[i].suite, *suite);
            assert_eq!(*suite as usize, i);
            assert_eq!(suite.algorithm().key_len(), suite.key_len());
            assert_eq!(suite.algorithm().tag_len(), crate::ICV_LEN);
            assert_eq!(suite.algorithm().nonce_len(), SALT_LEN + crate::IV_LEN);
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
        assert_eq!(Suite::from_name("aes128gcm8"), None);
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
