//! The IANA numbers of the transforms we implement, and the strongSwan
//! keywords that name them: the one place either appears.
//!
//! Sources: RFC 7296 §3.3.2 and the IANA "Internet Key Exchange Version 2
//! (IKEv2) Parameters" registry (Transform Types; Transform Type 1, 2, 4 and 5
//! Transform IDs), RFC 2104 / RFC 7296 §3.3.2 (PRF_HMAC_SHA1), RFC 4868
//! (PRF_HMAC_SHA2_*), RFC 5903 (ECP groups 19, 20, 21), RFC 8031 (Curve25519,
//! group 31), RFC 2409 and RFC 3526 (MODP groups 2, 5, 14-18), RFC 5114 (group 24).
//! The encryption transforms are the
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
///
/// The order of the variants is the order of the table and of [`DhGroup::ALL`]; the variant
/// names are the RFCs' group names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// 256-bit random ECP group, NIST P-256 (RFC 5903), group 19.
    Ecp256,
    /// 384-bit random ECP group, NIST P-384 (RFC 5903), group 20.
    Ecp384,
    /// Curve25519 (RFC 8031), group 31.
    Curve25519,
    /// 521-bit random ECP group, NIST P-521 (RFC 5903), group 21.
    Ecp521,
    /// 2048-bit MODP group (RFC 3526 §3), group 14: the one group RFC 8247 says every
    /// implementation MUST support, and what most gear offers by default.
    Modp2048,
    /// 3072-bit MODP group (RFC 3526 §4), group 15.
    Modp3072,
    /// 4096-bit MODP group (RFC 3526 §5), group 16.
    Modp4096,
    /// 6144-bit MODP group (RFC 3526 §6), group 17.
    Modp6144,
    /// 8192-bit MODP group (RFC 3526 §7), group 18.
    Modp8192,
    /// 2048-bit MODP group with a 256-bit prime-order subgroup (RFC 5114 §2.3), group 24.
    ///
    /// RFC 8247 §2.4 says SHOULD NOT (the RFC 5114 groups' generation is not verifiable, and a
    /// peer's value must pass a subgroup check, which this implementation does). It stays
    /// [`DhStrength::Allowed`] rather than legacy because Azure VPN Gateway and other gear offer
    /// it by default ("DHGroup24"), and nothing practical is known against it.
    Modp2048s256,
    /// 1024-bit MODP group (RFC 2409 §6.2), group 2. [`DhStrength::Legacy`]: RFC 8247 §2.4
    /// SHOULD NOT; within reach of a well-funded attacker's precomputation (Logjam).
    Modp1024,
    /// 1536-bit MODP group (RFC 3526 §2), group 5. [`DhStrength::Legacy`]: RFC 8247 §2.4
    /// SHOULD NOT.
    Modp1536,
}

/// How ironsec regards a group: the fact the daemon's config check reads to refuse legacy
/// groups unless a connection opts in to them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DhStrength {
    /// Offered and accepted freely: Curve25519, ECP-256, ECP-384 and MODP-2048 (the groups RFC
    /// 8247 §2.4 says MUST or SHOULD, and Curve25519).
    Recommended,
    /// Accepted when configured: sound but slow (MODP-3072 and up) or with a caveat (group 24,
    /// see [`DhGroup::Modp2048s256`]); ECP-521.
    Allowed,
    /// Weak (RFC 8247 §2.4 SHOULD NOT, Logjam-era sizes): groups 2 and 5. Implemented for old
    /// gear, used only where a connection opts in.
    Legacy,
}

impl DhStrength {
    /// The word the README and error messages use: `recommended`, `allowed` or `legacy`.
    pub fn name(self) -> &'static str {
        match self {
            DhStrength::Recommended => "recommended",
            DhStrength::Allowed => "allowed",
            DhStrength::Legacy => "legacy",
        }
    }
}

impl fmt::Display for DhStrength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

struct DhFacts {
    group: DhGroup,
    id: u16,
    name: &'static str,
    aliases: &'static [&'static str],
    /// Bytes of Key Exchange Data.
    public_len: usize,
    /// Bytes of g^ir.
    shared_len: usize,
    strength: DhStrength,
    /// Where the group is defined.
    rfc: &'static str,
}

/// Indexed by `DhGroup as usize`.
static GROUPS: [DhFacts; 12] = [
    DhFacts {
        group: DhGroup::Ecp256,
        id: 19,
        name: "ecp256",
        aliases: &[],
        // RFC 5903 §7: x || y, each 32 bytes; the secret is x.
        public_len: 64,
        shared_len: 32,
        strength: DhStrength::Recommended,
        rfc: "RFC 5903",
    },
    DhFacts {
        group: DhGroup::Ecp384,
        id: 20,
        name: "ecp384",
        aliases: &[],
        public_len: 96,
        shared_len: 48,
        strength: DhStrength::Recommended,
        rfc: "RFC 5903",
    },
    DhFacts {
        group: DhGroup::Curve25519,
        id: 31,
        name: "x25519",
        // strongSwan's own keyword is "curve25519"; it accepts "x25519" too.
        aliases: &["curve25519"],
        // RFC 8031 §2: the 32-byte u-coordinate, and the 32-byte X25519 output.
        public_len: 32,
        shared_len: 32,
        strength: DhStrength::Recommended,
        rfc: "RFC 8031",
    },
    DhFacts {
        group: DhGroup::Ecp521,
        id: 21,
        name: "ecp521",
        aliases: &[],
        // RFC 5903 §7: each coordinate ceil(521 / 8) = 66 bytes.
        public_len: 132,
        shared_len: 66,
        strength: DhStrength::Allowed,
        rfc: "RFC 5903",
    },
    // MODP: KE data and g^ir are the prime's length, left-padded (RFC 7296 §3.4, §2.14).
    DhFacts {
        group: DhGroup::Modp2048,
        id: 14,
        name: "modp2048",
        aliases: &[],
        public_len: 256,
        shared_len: 256,
        strength: DhStrength::Recommended,
        rfc: "RFC 3526",
    },
    DhFacts {
        group: DhGroup::Modp3072,
        id: 15,
        name: "modp3072",
        aliases: &[],
        public_len: 384,
        shared_len: 384,
        strength: DhStrength::Allowed,
        rfc: "RFC 3526",
    },
    DhFacts {
        group: DhGroup::Modp4096,
        id: 16,
        name: "modp4096",
        aliases: &[],
        public_len: 512,
        shared_len: 512,
        strength: DhStrength::Allowed,
        rfc: "RFC 3526",
    },
    DhFacts {
        group: DhGroup::Modp6144,
        id: 17,
        name: "modp6144",
        aliases: &[],
        public_len: 768,
        shared_len: 768,
        strength: DhStrength::Allowed,
        rfc: "RFC 3526",
    },
    DhFacts {
        group: DhGroup::Modp8192,
        id: 18,
        name: "modp8192",
        aliases: &[],
        public_len: 1024,
        shared_len: 1024,
        strength: DhStrength::Allowed,
        rfc: "RFC 3526",
    },
    DhFacts {
        group: DhGroup::Modp2048s256,
        id: 24,
        name: "modp2048s256",
        aliases: &[],
        public_len: 256,
        shared_len: 256,
        strength: DhStrength::Allowed,
        rfc: "RFC 5114",
    },
    DhFacts {
        group: DhGroup::Modp1024,
        id: 2,
        name: "modp1024",
        aliases: &[],
        public_len: 128,
        shared_len: 128,
        strength: DhStrength::Legacy,
        rfc: "RFC 2409",
    },
    DhFacts {
        group: DhGroup::Modp1536,
        id: 5,
        name: "modp1536",
        aliases: &[],
        public_len: 192,
        shared_len: 192,
        strength: DhStrength::Legacy,
        rfc: "RFC 3526",
    },
];

impl DhGroup {
    /// Every group we implement, in table order.
    pub const ALL: [DhGroup; 12] = [
        DhGroup::Ecp256,
        DhGroup::Ecp384,
        DhGroup::Curve25519,
        DhGroup::Ecp521,
        DhGroup::Modp2048,
        DhGroup::Modp3072,
        DhGroup::Modp4096,
        DhGroup::Modp6144,
        DhGroup::Modp8192,
        DhGroup::Modp2048s256,
        DhGroup::Modp1024,
        DhGroup::Modp1536,
    ];

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

    /// Canonical strongSwan keyword, e.g. `ecp256`, `x25519`, `modp2048`, `modp2048s256`.
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
    /// (RFC 5903 §7), the u-coordinate for Curve25519 (RFC 8031 §2), the
    /// prime's length for MODP groups (RFC 7296 §2.14).
    pub fn shared_len(self) -> usize {
        self.facts().shared_len
    }

    /// How ironsec regards the group (see [`DhStrength`]).
    pub fn strength(self) -> DhStrength {
        self.facts().strength
    }

    /// Whether the group is too weak to use unless a connection opts in: groups 2 and 5.
    pub fn is_legacy(self) -> bool {
        self.strength() == DhStrength::Legacy
    }

    /// The RFC that defines the group, e.g. `RFC 3526`.
    pub fn rfc(self) -> &'static str {
        self.facts().rfc
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

    #[test]
    fn group_ids_and_names_are_unique() {
        for (i, a) in GROUPS.iter().enumerate() {
            for b in &GROUPS[i + 1..] {
                assert_ne!(a.id, b.id);
                assert!(!a.name.eq_ignore_ascii_case(b.name));
            }
        }
    }

    /// Exactly groups 2 and 5 are legacy (the daemon refuses them without an opt-in); group 24
    /// is allowed, though RFC 8247 says SHOULD NOT, because Azure offers it by default.
    #[test]
    fn only_groups_2_and_5_are_legacy() {
        let legacy: Vec<u16> = DhGroup::ALL
            .iter()
            .filter(|g| g.is_legacy())
            .map(|g| g.id())
            .collect();
        assert_eq!(legacy, [2, 5]);
        assert_eq!(DhGroup::Modp1024.strength(), DhStrength::Legacy);
        assert_eq!(DhGroup::Modp1536.strength(), DhStrength::Legacy);
        assert_eq!(DhGroup::Modp2048s256.strength(), DhStrength::Allowed);
        assert!(!DhGroup::Modp2048s256.is_legacy());
        for g in [
            DhGroup::Curve25519,
            DhGroup::Ecp256,
            DhGroup::Ecp384,
            DhGroup::Modp2048,
        ] {
            assert_eq!(g.strength(), DhStrength::Recommended, "{g}");
        }
        assert_eq!(DhStrength::Legacy.to_string(), "legacy");
    }

    /// strongSwan 5.9's keywords and the IANA numbers, as its `key_exchange.c` and the IANA
    /// registry spell them.
    #[test]
    fn strongswan_keywords_and_iana_numbers() {
        let expected = [
            ("modp1024", 2),
            ("modp1536", 5),
            ("modp2048", 14),
            ("modp3072", 15),
            ("modp4096", 16),
            ("modp6144", 17),
            ("modp8192", 18),
            ("ecp256", 19),
            ("ecp384", 20),
            ("ecp521", 21),
            ("modp2048s256", 24),
            ("x25519", 31),
            ("curve25519", 31),
        ];
        for (name, id) in expected {
            let g = DhGroup::from_name(name).unwrap();
            assert_eq!(g.id(), id, "{name}");
            assert_eq!(DhGroup::from_id(id), Some(g));
        }
        // Groups we do not implement: 768-bit MODP, the other RFC 5114 groups, Curve448.
        for id in [1, 22, 23, 25, 26, 32] {
            assert_eq!(DhGroup::from_id(id), None, "{id}");
        }
        for name in ["modp768", "modp1024s160", "modp2048s224", "curve448"] {
            assert_eq!(DhGroup::from_name(name), None, "{name}");
        }
    }
}
