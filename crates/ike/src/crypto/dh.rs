//! Diffie-Hellman key exchange for the groups we implement.
//!
//! * ECP groups 19 and 20 (RFC 5903 §7): the KE data is `x || y`, each
//!   coordinate the group's field size, without the SEC 1 `0x04` tag; the
//!   shared secret is the x coordinate of the shared point. The peer's point is
//!   validated (on the curve, coordinates below p, not the identity) before
//!   use, as RFC 6989 requires for ECP groups.
//! * Curve25519, group 31 (RFC 8031 §2): the KE data is the 32-byte X25519
//!   public value and the shared secret the 32-byte X25519 output, which must
//!   not be all zero (the peer sent a low-order point).
//! * ECP group 21 (P-521) the same way as 19 and 20, with 66-byte coordinates.
//! * MODP groups 2, 5, 14-18 and 24: in `modp.rs` (constants, exponent sizes,
//!   RFC 6989 checks); this module only dispatches to it.

use std::fmt;

use p256::elliptic_curve::sec1::ToEncodedPoint;
use zeroize::{Zeroize, Zeroizing};

use super::modp::{self, Modp};
use super::rng::Rng;
use super::transforms::DhGroup;

/// Tag of an uncompressed SEC 1 point, which RFC 5903 leaves off the wire.
const SEC1_UNCOMPRESSED: u8 = 0x04;

/// Why a key exchange could not be completed.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum DhError {
    /// The peer's KE data is not the group's length.
    #[error("{group} public value must be {expected} bytes, got {got}")]
    PublicLength {
        /// The group of this exchange.
        group: DhGroup,
        /// Bytes the group's public value has.
        expected: usize,
        /// Bytes received.
        got: usize,
    },
    /// The peer's ECP public value is not a point of the group (not on the
    /// curve, a coordinate out of range, or the identity).
    #[error("{group} public value is not a valid point of the group")]
    InvalidPublic {
        /// The group of this exchange.
        group: DhGroup,
    },
    /// The peer's MODP public value y is not 1 < y < p-1 (RFC 6989 §2.1):
    /// 0, 1 and p-1 would force the shared secret into {0, 1, p-1}, and a value
    /// not below p is not a reduced group element.
    #[error("{group} public value is out of range (must be 1 < y < p-1)")]
    PublicOutOfRange {
        /// The group of this exchange.
        group: DhGroup,
    },
    /// The peer's MODP public value is not in the prime-order subgroup
    /// (y^q != 1; RFC 6989 §2.2), in a group whose p-1 has small factors
    /// (group 24): such a value would leak our exponent modulo those factors.
    #[error("{group} public value is not in the prime-order subgroup")]
    NotInSubgroup {
        /// The group of this exchange.
        group: DhGroup,
    },
    /// The result carries nothing from our private key: an all-zero X25519
    /// output (the peer sent a low-order point, RFC 8031 §2) or a MODP g^ir of
    /// 1 (RFC 6989 §2.1).
    #[error("{group} shared secret is degenerate (peer sent a low-order value)")]
    NonContributory {
        /// The group of this exchange.
        group: DhGroup,
    },
    /// A fixed private key given to [`KeyExchange::from_private`] is not valid
    /// for the group (wrong length, zero, or not below the group order).
    #[error("invalid {group} private key")]
    InvalidPrivate {
        /// The group of the key.
        group: DhGroup,
    },
}

/// The shared secret g^ir of a completed exchange; wiped when dropped.
pub struct SharedSecret(Zeroizing<Vec<u8>>);

impl SharedSecret {
    /// Wraps an already computed shared secret. The engine gets its secrets
    /// from [`KeyExchange::agree`]; this exists for known-answer tests of the
    /// key schedule.
    pub fn new(bytes: Vec<u8>) -> SharedSecret {
        SharedSecret(Zeroizing::new(bytes))
    }

    /// The secret bytes, as they enter SKEYSEED and KEYMAT.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedSecret(<{} bytes redacted>)", self.0.len())
    }
}

enum Private {
    P256(p256::SecretKey),
    P384(p384::SecretKey),
    P521(p521::SecretKey),
    X25519(x25519_dalek::StaticSecret),
    Modp(Modp, modp::Secret),
}

/// How a group's exchange is computed; one exhaustive match, so a new
/// [`DhGroup`] cannot be forgotten here.
enum Kind {
    Ecp256,
    Ecp384,
    Ecp521,
    X25519,
    Modp(Modp),
}

fn kind(group: DhGroup) -> Kind {
    match group {
        DhGroup::Ecp256 => Kind::Ecp256,
        DhGroup::Ecp384 => Kind::Ecp384,
        DhGroup::Ecp521 => Kind::Ecp521,
        DhGroup::Curve25519 => Kind::X25519,
        DhGroup::Modp1024 => Kind::Modp(Modp::G1024),
        DhGroup::Modp1536 => Kind::Modp(Modp::G1536),
        DhGroup::Modp2048 => Kind::Modp(Modp::G2048),
        DhGroup::Modp3072 => Kind::Modp(Modp::G3072),
        DhGroup::Modp4096 => Kind::Modp(Modp::G4096),
        DhGroup::Modp6144 => Kind::Modp(Modp::G6144),
        DhGroup::Modp8192 => Kind::Modp(Modp::G8192),
        DhGroup::Modp2048s256 => Kind::Modp(Modp::G2048s256),
    }
}

/// Our half of one Diffie-Hellman exchange: the private key (wiped when
/// dropped, by the curve crates) and the public value we send.
pub struct KeyExchange {
    group: DhGroup,
    private: Private,
    public: Vec<u8>,
}

impl fmt::Debug for KeyExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyExchange")
            .field("group", &self.group)
            .field("public_len", &self.public.len())
            .field("private", &"<redacted>")
            .finish()
    }
}

/// How many candidate scalars to draw before deciding the RNG is broken. A
/// random 32- or 48-byte string is a valid P-256/P-384 scalar except with
/// probability below 2^-32 (a 66-byte one with its top 7 bits cleared, P-521,
/// below 2^-259), so even two failures in a row mean a broken RNG.
const MAX_SCALAR_TRIES: usize = 64;

impl KeyExchange {
    /// A fresh key pair for `group`, its private key drawn from `rng`.
    ///
    /// # Panics
    ///
    /// If `rng` produces 64 invalid ECP scalars in a row (zero, or not below
    /// the group order, as all-zero or all-0xff output is), which only a
    /// broken RNG does; going on with such an RNG would make predictable keys.
    /// MODP exponents need no retry (see `modp.rs`).
    pub fn new(group: DhGroup, rng: &mut dyn Rng) -> KeyExchange {
        match kind(group) {
            Kind::Modp(m) => {
                let (secret, public) = m.generate(rng);
                Self::modp(group, m, secret, public)
            }
            Kind::X25519 => {
                let mut bytes = Zeroizing::new([0u8; 32]);
                rng.fill(&mut bytes[..]);
                Self::x25519(x25519_dalek::StaticSecret::from(*bytes))
            }
            Kind::Ecp256 => {
                let mut bytes = Zeroizing::new([0u8; 32]);
                for _ in 0..MAX_SCALAR_TRIES {
                    rng.fill(&mut bytes[..]);
                    if let Ok(k) = p256::SecretKey::from_slice(&bytes[..]) {
                        return Self::p256(k);
                    }
                }
                panic!("the random number generator produced {MAX_SCALAR_TRIES} invalid P-256 scalars in a row");
            }
            Kind::Ecp384 => {
                let mut bytes = Zeroizing::new([0u8; 48]);
                for _ in 0..MAX_SCALAR_TRIES {
                    rng.fill(&mut bytes[..]);
                    if let Ok(k) = p384::SecretKey::from_slice(&bytes[..]) {
                        return Self::p384(k);
                    }
                }
                panic!("the random number generator produced {MAX_SCALAR_TRIES} invalid P-384 scalars in a row");
            }
            Kind::Ecp521 => {
                let mut bytes = Zeroizing::new([0u8; 66]);
                for _ in 0..MAX_SCALAR_TRIES {
                    rng.fill(&mut bytes[..]);
                    // The order n is just below 2^521: keep 521 bits, so a
                    // draw is refused only when it is not below n (< 2^-259).
                    bytes[0] &= 0x01;
                    if let Ok(k) = p521::SecretKey::from_slice(&bytes[..]) {
                        return Self::p521(k);
                    }
                }
                panic!("the random number generator produced {MAX_SCALAR_TRIES} invalid P-521 scalars in a row");
            }
        }
    }

    /// A key pair from a fixed private key: the big-endian scalar for ECP
    /// groups (32, 48 or 66 bytes), the 32 random bytes (clamped on use, RFC
    /// 7748 §5) for Curve25519, the big-endian exponent for MODP groups (1 to
    /// 128 bytes, at least 2; for group 24 below q; the exponentiation runs
    /// over `8 * bytes.len()` bits). For known-answer tests; the engine uses
    /// [`new`].
    ///
    /// [`new`]: KeyExchange::new
    #[doc(hidden)]
    pub fn from_private(group: DhGroup, bytes: &[u8]) -> Result<KeyExchange, DhError> {
        let invalid = DhError::InvalidPrivate { group };
        match kind(group) {
            Kind::Modp(m) => {
                let (secret, public) = m.with_private(bytes).ok_or(invalid)?;
                Ok(Self::modp(group, m, secret, public))
            }
            Kind::X25519 => {
                let mut b: [u8; 32] = bytes.try_into().map_err(|_| invalid)?;
                let secret = x25519_dalek::StaticSecret::from(b);
                b.zeroize();
                Ok(Self::x25519(secret))
            }
            // from_slice would accept (and left-pad) shorter scalars; insist on
            // the field size so a truncated test vector is caught.
            Kind::Ecp256 if bytes.len() == 32 => p256::SecretKey::from_slice(bytes)
                .map(Self::p256)
                .map_err(|_| invalid),
            Kind::Ecp384 if bytes.len() == 48 => p384::SecretKey::from_slice(bytes)
                .map(Self::p384)
                .map_err(|_| invalid),
            Kind::Ecp521 if bytes.len() == 66 => p521::SecretKey::from_slice(bytes)
                .map(Self::p521)
                .map_err(|_| invalid),
            Kind::Ecp256 | Kind::Ecp384 | Kind::Ecp521 => Err(invalid),
        }
    }

    fn modp(group: DhGroup, m: Modp, secret: modp::Secret, public: Vec<u8>) -> KeyExchange {
        KeyExchange {
            group,
            private: Private::Modp(m, secret),
            public,
        }
    }

    fn x25519(secret: x25519_dalek::StaticSecret) -> KeyExchange {
        let public = x25519_dalek::PublicKey::from(&secret).as_bytes().to_vec();
        KeyExchange {
            group: DhGroup::Curve25519,
            private: Private::X25519(secret),
            public,
        }
    }

    fn p256(secret: p256::SecretKey) -> KeyExchange {
        let point = secret.public_key().to_encoded_point(false);
        KeyExchange {
            group: DhGroup::Ecp256,
            public: point.as_bytes()[1..].to_vec(),
            private: Private::P256(secret),
        }
    }

    fn p384(secret: p384::SecretKey) -> KeyExchange {
        let point = secret.public_key().to_encoded_point(false);
        KeyExchange {
            group: DhGroup::Ecp384,
            public: point.as_bytes()[1..].to_vec(),
            private: Private::P384(secret),
        }
    }

    fn p521(secret: p521::SecretKey) -> KeyExchange {
        let point = secret.public_key().to_encoded_point(false);
        KeyExchange {
            group: DhGroup::Ecp521,
            public: point.as_bytes()[1..].to_vec(),
            private: Private::P521(secret),
        }
    }

    /// The group of this exchange.
    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// Our public value: the Key Exchange Data of our KE payload.
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// Completes the exchange with the peer's Key Exchange Data, after
    /// checking it as RFC 6989 says (length; ECP: a point of the group; MODP:
    /// 1 < y < p-1, and in the subgroup for group 24; no degenerate result).
    pub fn agree(&self, peer_public: &[u8]) -> Result<SharedSecret, DhError> {
        let group = self.group;
        if peer_public.len() != group.public_len() {
            return Err(DhError::PublicLength {
                group,
                expected: group.public_len(),
                got: peer_public.len(),
            });
        }
        match &self.private {
            Private::X25519(secret) => {
                let mut u = [0u8; 32];
                u.copy_from_slice(peer_public);
                let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(u));
                // Constant-time all-zero check (RFC 8031 §2).
                if !shared.was_contributory() {
                    return Err(DhError::NonContributory { group });
                }
                Ok(SharedSecret::new(shared.as_bytes().to_vec()))
            }
            Private::P256(secret) => {
                let peer = p256::PublicKey::from_sec1_bytes(&sec1(peer_public))
                    .map_err(|_| DhError::InvalidPublic { group })?;
                let shared =
                    p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine());
                Ok(SharedSecret::new(shared.raw_secret_bytes().to_vec()))
            }
            Private::P384(secret) => {
                let peer = p384::PublicKey::from_sec1_bytes(&sec1(peer_public))
                    .map_err(|_| DhError::InvalidPublic { group })?;
                let shared =
                    p384::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine());
                Ok(SharedSecret::new(shared.raw_secret_bytes().to_vec()))
            }
            Private::P521(secret) => {
                let peer = p521::PublicKey::from_sec1_bytes(&sec1(peer_public))
                    .map_err(|_| DhError::InvalidPublic { group })?;
                let shared =
                    p521::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine());
                Ok(SharedSecret::new(shared.raw_secret_bytes().to_vec()))
            }
            Private::Modp(m, secret) => match m.agree(secret, peer_public) {
                Ok(shared) => Ok(SharedSecret(shared)),
                Err(modp::Refusal::Length) => Err(DhError::PublicLength {
                    group,
                    expected: group.public_len(),
                    got: peer_public.len(),
                }),
                Err(modp::Refusal::OutOfRange) => Err(DhError::PublicOutOfRange { group }),
                Err(modp::Refusal::NotInSubgroup) => Err(DhError::NotInSubgroup { group }),
                Err(modp::Refusal::SharedIsOne) => Err(DhError::NonContributory { group }),
            },
        }
    }
}

/// The prime p of a MODP group, big-endian and the group's KE data length;
/// `None` for the ECP groups and Curve25519. For tests of the edge values RFC
/// 6989 says to refuse (p-1, p, ...).
#[doc(hidden)]
pub fn modp_prime(group: DhGroup) -> Option<Vec<u8>> {
    match kind(group) {
        Kind::Modp(m) => Some(m.prime()),
        Kind::Ecp256 | Kind::Ecp384 | Kind::Ecp521 | Kind::X25519 => None,
    }
}

/// RFC 5903's `x || y` as an uncompressed SEC 1 point.
fn sec1(xy: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + xy.len());
    v.push(SEC1_UNCOMPRESSED);
    v.extend_from_slice(xy);
    v
}
