//! The IANA numbers of the transforms we implement, and the strongSwan
//! keywords that name them: the one place either appears.
//!
//! Sources: RFC 7296 §3.3.2 and the IANA "Internet Key Exchange Version 2
//! (IKEv2) Parameters" registry (Transform Types; Transform Type 1, 2, 4 and 5
//! Transform IDs), RFC 2104 / RFC 7296 §3.3.2 (PRF_HMAC_SHA1), RFC 4868
//! (PRF_HMAC_SHA2_*), RFC 5903 (ECP groups 19, 20),
//! RFC 8031 (Curve25519, group 31). The encryption transforms are the
//! [`Encr`]s of `ironsec-esp` (RFC 5282 AES-GCM, RFC 7634 ChaCha20-Poly1305,
//! RFC 3602 AES-CBC) and the integrity transforms its [`Integ`]s (RFC 2404,
//! RFC 4868); an SA runs a consistent pair of them, a
//! [`Suite`](ironsec_esp::Suite).

use std::fmt;

use ironsec_esp::{Encr, Integ};
use ring::hmac;

/// Transform Type 1: encryption algorithm (ENCR).
pub const TRANSFORM_ENCR: u8 = 1;
/// Transform Type 2: pseudorandom function (PRF), IKE only.
pub const TRANSFORM_PRF: u8 = 2;
/// Transform Type 3: integrity algorithm (INTEG); absent or NONE with an AEAD.
pub const TRANSFORM_INTEG: u8 = 3;
/// Transform Type 4: Diffie-Hellman group (D-H), also called Key Exchange Method.
pub const TRANSFORM_DH: u8 = 4;
/// Transform Type 5: Extended Sequence Numbers (ESN), ESP/AH only.
pub const TRANSFORM_ESN: u8 = 5;

/// INTEG transform ID 0, "NONE": the only integrity transform an AEAD accepts.
pub const INTEG_NONE: u16 = 0;
/// D-H transform ID 0, "NONE": in an ESP proposal, no PFS.
pub const DH_NONE: u16 = 0;
/// ESN transform ID 0: no extended sequence numbers.
pub const ESN_NO: u16 = 0;
/// ESN transform ID 1: extended (64-bit) sequence numbers.
pub const ESN_YES: u16 = 1;

/// The encryption transform named by an ENCR transform ID and its Key Length
/// attribute (in bits). AES (GCM and CBC) needs the attribute (RFC 5282 §8,
/// RFC 3602 §5) and ChaCha20-Poly1305 must not carry one (RFC 7634 §2), so
/// any other combination names nothing we implement.
pub fn encr_from_transform(id: u16, key_length: Option<u16>) -> Option<Encr> {
    Encr::from_transform(id, key_length)
}

/// The integrity transform named by an INTEG transform ID; these take no Key
/// Length attribute (RFC 7296 §3.3.5), so one that carries it names nothing.
/// [`INTEG_NONE`] is not a transform we run and names nothing either.
pub fn integ_from_transform(id: u16, key_length: Option<u16>) -> Option<Integ> {
    key_length.is_none().then(|| Integ::from_id(id)).flatten()
}

/// A negotiated pseudorandom function (IKEv2 Transform Type 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Prf {
    /// PRF_HMAC_SHA2_256 (RFC 4868), transform ID 5.
    HmacSha256,
    /// PRF_HMAC_SHA2_384 (RFC 4868), transform ID 6.
    HmacSha384,
    /// PRF_HMAC_SHA2_512 (RFC 4868), transform ID 7.
    HmacSha512,
    /// PRF_HMAC_SHA1 (RFC 2104, RFC 7296 §3.3.2), transform ID 2: what gear
    /// configured with `sha1` integrity uses, since strongSwan derives the PRF
    /// from the integrity algorithm when none is named.
    HmacSha1,
}

struct PrfFacts {
    prf: Prf,
    id: u16,
    name: &'static str,
    output_len: usize,
    hmac: hmac::Algorithm,
}

/// Indexed by `Prf as usize`.
static PRFS: [PrfFacts; 4] = [
    PrfFacts {
        prf: Prf::HmacSha256,
        id: 5,
        name: "prfsha256",
        output_len: 32,
        hmac: hmac::HMAC_SHA256,
    },
    PrfFacts {
        prf: Prf::HmacSha384,
        id: 6,
        name: "prfsha384",
        output_len: 48,
        hmac: hmac::HMAC_SHA384,
    },
    PrfFacts {
        prf: Prf::HmacSha512,
        id: 7,
        name: "prfsha512",
        output_len: 64,
        hmac: hmac::HMAC_SHA512,
    },
    PrfFacts {
        prf: Prf::HmacSha1,
        id: 2,
        name: "prfsha1",
        output_len: 20,
        hmac: hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
    },
];

impl Prf {
    /// Every PRF we implement, strongest first within SHA-2, SHA-1 last.
    pub const ALL: [Prf; 4] = [
        Prf::HmacSha256,
        Prf::HmacSha384,
        Prf::HmacSha512,
        Prf::HmacSha1,
    ];

    fn facts(self) -> &'static PrfFacts {
        &PRFS[self as usize]
    }

    /// IANA Transform Type 2 ID.
    pub fn id(self) -> u16 {
        self.facts().id
    }

    /// The PRF with IANA Transform Type 2 ID `id`, if we implement it.
    pub fn from_id(id: u16) -> Option<Prf> {
        PRFS.iter().find(|f| f.id == id).map(|f| f.prf)
    }

    /// strongSwan keyword, e.g. `prfsha256`.
    pub fn name(self) -> &'static str {
        self.facts().name
    }

    /// Parses a strongSwan PRF keyword, case-insensitively.
    pub fn from_name(s: &str) -> Option<Prf> {
        PRFS.iter()
            .find(|f| f.name.eq_ignore_ascii_case(s))
            .map(|f| f.prf)
    }

    /// Bytes of PRF output.
    pub fn output_len(self) -> usize {
        self.facts().output_len
    }

    /// Preferred key length in bytes: the length of SK_d, SK_pi and SK_pr
    /// (RFC 7296 §2.13, §2.14). For the HMAC PRFs it equals the output length:
    /// RFC 4868 §2.1.2 for SHA-2, and for HMAC-SHA1 the 20-byte digest (RFC 2104
    /// §3 recommends a key of at least the output length; strongSwan and the
    /// Linux kernel use 20).
    pub fn key_len(self) -> usize {
        self.output_len()
    }

    /// The PRF strongSwan adds for integrity algorithm `integ` to an IKE
    /// proposal that names no PRF (strongSwan 5.9.8,
    /// `src/libstrongswan/crypto/proposal/proposal.c`, `check_proposal` and its
    /// `integ_prf_map`): `sha1` gives `prfsha1`, `sha256` gives `prfsha256`, ...
    pub fn for_integ(integ: Integ) -> Prf {
        match integ {
            Integ::HmacSha1_96 => Prf::HmacSha1,
            Integ::HmacSha256_128 => Prf::HmacSha256,
            Integ::HmacSha384_192 => Prf::HmacSha384,
            Integ::HmacSha512_256 => Prf::HmacSha512,
        }
    }

    pub(crate) fn hmac(self) -> hmac::Algorithm {
        self.facts().hmac
    }
}

impl fmt::Display for Prf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A Diffie-Hellman group (IKEv2 Transform Type 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// 256-bit random ECP group, NIST P-256 (RFC 5903), group 19.
    Ecp256,
    /// 384-bit random ECP group, NIST P-384 (RFC 5903), group 20.
    Ecp384,
    /// Curve25519 (RFC 8031), group 31.
    Curve25519,
}

struct DhFacts {
    group: DhGroup,
    id: u16,
    name: &'static str,
    aliases: &'static [&'static str],
    public_len: usize,
}

/// Indexed by `DhGroup as usize`.
static GROUPS: [DhFacts; 3] = [
    DhFacts {
        group: DhGroup::Ecp256,
        id: 19,
        name: "ecp256",
        aliases: &[],
        // RFC 5903 §7: x || y, each 32 bytes.
        public_len: 64,
    },
    DhFacts {
        group: DhGroup::Ecp384,
        id: 20,
        name: "ecp384",
        aliases: &[],
        public_len: 96,
    },
    DhFacts {
        group: DhGroup::Curve25519,
        id: 31,
        name: "x25519",
        // strongSwan's own keyword is "curve25519"; it accepts "x25519" too.
        aliases: &["curve25519"],
        // RFC 8031 §2: the 32-byte u-coordinate.
        public_len: 32,
    },
];

impl DhGroup {
    /// Every group we implement.
    pub const ALL: [DhGroup; 3] = [DhGroup::Ecp256, DhGroup::Ecp384, DhGroup::Curve25519];

    fn facts(self) -> &'static DhFacts {
        &GROUPS[self as usize]
    }

    /// IANA Transform Type 4 ID (the group number in a KE payload).
    pub fn id(self) -> u16 {
        self.facts().id
    }

    /// The group with IANA Transform Type 4 ID `id`, if we implement it.
    pub fn from_id(id: u16) -> Option<DhGroup> {
        GROUPS.iter().find(|f| f.id == id).map(|f| f.group)
    }

    /// Canonical strongSwan keyword: `ecp256`, `ecp384` or `x25519`.
    pub fn name(self) -> &'static str {
        self.facts().name
    }

    /// Parses a strongSwan group keyword (or alias, e.g. `curve25519`),
    /// case-insensitively.
    pub fn from_name(s: &str) -> Option<DhGroup> {
        GROUPS
            .iter()
            .find(|f| {
                f.name.eq_ignore_ascii_case(s)
                    || f.aliases.iter().any(|a| a.eq_ignore_ascii_case(s))
            })
            .map(|f| f.group)
    }

    /// Bytes of Key Exchange Data in a KE payload for this group.
    pub fn public_len(self) -> usize {
        self.facts().public_len
    }

    /// Bytes of the shared secret g^ir: the x coordinate for ECP groups
    /// (RFC 5903 §7), the u-coordinate for Curve25519 (RFC 8031 §2).
    pub fn shared_len(self) -> usize {
        match self {
            DhGroup::Ecp256 | DhGroup::Ecp384 => self.public_len() / 2,
            DhGroup::Curve25519 => self.public_len(),
        }
    }
}

impl fmt::Display for DhGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_indexed_by_discriminant() {
        for (i, p) in Prf::ALL.iter().enumerate() {
            assert_eq!(PRFS[i].prf, *p);
            assert_eq!(p.hmac().digest_algorithm().output_len(), p.output_len());
        }
        for (i, g) in DhGroup::ALL.iter().enumerate() {
            assert_eq!(GROUPS[i].group, *g);
        }
    }
}
