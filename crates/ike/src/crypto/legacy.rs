//! Which algorithms a configured proposal may name only with a warning, or
//! only with the connection's opt-in (`allow_legacy_crypto = true`).
//!
//! The policy, with RFC 8247 (IKEv2) and RFC 8221 (ESP) as the yardstick:
//! * **Discouraged** (allowed, `ironsecd check` warns): HMAC-SHA1 as integrity
//!   (`sha1`) or PRF (`prfsha1`). Both RFCs still list AUTH_HMAC_SHA1_96 as
//!   MUST- (and RFC 8247 PRF_HMAC_SHA1 as MUST-): mandatory today, expected to
//!   be demoted. Much gear in the field still offers `aes128-sha1-modp2048`,
//!   so refusing it would cost interop that the RFCs still ask for; where a
//!   SHA-2 choice exists the operator should take it.
//! * **Opt-in** (refused unless `allow_legacy_crypto = true`): MODP-768,
//!   MODP-1024 and MODP-1536 (RFC 8247 §2.4: groups 1 MUST NOT, 2 and 5
//!   SHOULD NOT; under 128-bit security) and 3DES (RFC 8221 §5: SHOULD NOT, a
//!   64-bit block). These are matched by strongSwan keyword, so the groups and
//!   ciphers count as legacy as soon as the transform tables implement them.

use std::fmt;

use ironsec_esp::{Encr, Integ};

use super::transforms::{DhGroup, Prf};

/// How strongly ironsec discourages an algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LegacyLevel {
    /// Usable without opt-in; `ironsecd check` warns about it.
    Discouraged,
    /// Refused unless the connection sets `allow_legacy_crypto = true`.
    OptIn,
}

/// A legacy algorithm a proposal names, with why it is one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LegacyAlgorithm {
    /// The strongSwan keyword, as the operator would write it.
    pub keyword: &'static str,
    /// Whether it needs the opt-in.
    pub level: LegacyLevel,
    /// One line on why, for the operator.
    pub reason: &'static str,
}

impl fmt::Display for LegacyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.keyword, self.reason)
    }
}

const SHA1: &str = "SHA-1 is MUST- in RFC 8247/8221: still interoperable, but prefer SHA-2";

/// Opt-in groups by strongSwan keyword: `DhGroup` may not implement them yet.
const LEGACY_GROUPS: &[(&str, &str)] = &[
    (
        "modp768",
        "768-bit MODP group (1): RFC 8247 MUST NOT, breakable",
    ),
    (
        "modp1024",
        "1024-bit MODP group (2): RFC 8247 SHOULD NOT, under 80-bit security",
    ),
    (
        "modp1536",
        "1536-bit MODP group (5): RFC 8247 SHOULD NOT, under 128-bit security",
    ),
];

/// Opt-in ciphers by strongSwan keyword.
const LEGACY_ENCRS: &[(&str, &str)] = &[(
    "3des",
    "3DES: RFC 8221 SHOULD NOT, a 64-bit block (Sweet32)",
)];

fn by_name(table: &[(&'static str, &'static str)], name: &str) -> Option<LegacyAlgorithm> {
    table
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(keyword, reason)| LegacyAlgorithm {
            keyword,
            level: LegacyLevel::OptIn,
            reason,
        })
}

pub(crate) fn of_encr(e: Encr) -> Option<LegacyAlgorithm> {
    by_name(LEGACY_ENCRS, e.name())
}

pub(crate) fn of_integ(i: Integ) -> Option<LegacyAlgorithm> {
    (i == Integ::HmacSha1_96).then_some(LegacyAlgorithm {
        keyword: "sha1",
        level: LegacyLevel::Discouraged,
        reason: SHA1,
    })
}

pub(crate) fn of_prf(p: Prf) -> Option<LegacyAlgorithm> {
    (p == Prf::HmacSha1).then_some(LegacyAlgorithm {
        keyword: "prfsha1",
        level: LegacyLevel::Discouraged,
        reason: SHA1,
    })
}

pub(crate) fn of_group(g: DhGroup) -> Option<LegacyAlgorithm> {
    by_name(LEGACY_GROUPS, g.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_is_discouraged_and_sha2_is_not() {
        assert_eq!(
            of_integ(Integ::HmacSha1_96).map(|l| l.level),
            Some(LegacyLevel::Discouraged)
        );
        assert_eq!(of_prf(Prf::HmacSha1).map(|l| l.keyword), Some("prfsha1"));
        assert!(of_integ(Integ::HmacSha256_128).is_none());
        assert!(Prf::ALL
            .iter()
            .filter(|p| **p != Prf::HmacSha1)
            .all(|p| of_prf(*p).is_none()));
        assert!(Encr::ALL.iter().all(|e| of_encr(*e).is_none()));
    }

    #[test]
    fn legacy_groups_are_found_by_keyword() {
        let g = by_name(LEGACY_GROUPS, "MODP1024").unwrap();
        assert_eq!((g.keyword, g.level), ("modp1024", LegacyLevel::OptIn));
        assert!(by_name(LEGACY_GROUPS, "modp2048").is_none());
        for g in DhGroup::ALL {
            let legacy = of_group(g).is_some();
            assert_eq!(
                legacy,
                ["modp768", "modp1024", "modp1536"].contains(&g.name()),
                "{g}"
            );
        }
    }
}
