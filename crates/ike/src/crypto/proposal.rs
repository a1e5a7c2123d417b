//! Proposals: as configured (strongSwan syntax), as offered on the wire, and
//! the choice between them (RFC 7296 §2.7, §3.3).
//!
//! RFC 7296 §3.3 keeps AEAD and non-AEAD ciphers apart: an AEAD proposal has
//! no INTEG transform (or only NONE), a non-AEAD one needs one. We are strict
//! in what we send (a configured proposal naming both kinds is offered as two,
//! [`IkeProposal::split`]) and liberal in what we accept (of a peer's mixed
//! proposal we pick a consistent subset).

use std::fmt;
use std::str::FromStr;

use ironsec_esp::{Encr, Integ, Suite};

use super::legacy::{self, LegacyAlgorithm};
use super::transforms::{
    encr_from_transform, integ_from_transform, DhGroup, Prf, DH_NONE, ESN_NO, ESN_YES, INTEG_NONE,
    TRANSFORM_DH, TRANSFORM_ENCR, TRANSFORM_ESN, TRANSFORM_INTEG, TRANSFORM_PRF,
};

// ---------------------------------------------------------------------------
// Configured proposals
// ---------------------------------------------------------------------------

/// One configured IKE proposal in strongSwan syntax, e.g.
/// `aes256gcm16-prfsha384-ecp384`, `aes256-sha256-ecp256` (PRF derived from
/// the integrity algorithm, as strongSwan does), with alternatives
/// `aes128gcm16-aes256gcm16-prfsha256-x25519-ecp256`, or `default`
/// ([`IkeProposal::strongswan_default`]). Each list is in preference order;
/// `encr`, `prf` and `dh` are non-empty, and `integ` is non-empty exactly when
/// `encr` has a non-AEAD cipher (parsing makes it so; a hand-built value that
/// breaks the rule offers only its consistent part, see [`IkeProposal::split`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IkeProposal {
    /// Encryption algorithms: AEADs, AES-CBC, or both (offered as two proposals).
    pub encr: Vec<Encr>,
    /// Integrity algorithms of the non-AEAD ciphers.
    pub integ: Vec<Integ>,
    /// Pseudorandom functions.
    pub prf: Vec<Prf>,
    /// Diffie-Hellman groups; the first is the one an initiator's KE uses.
    pub dh: Vec<DhGroup>,
}

/// One configured ESP proposal in strongSwan syntax: `aes128gcm16` (no PFS),
/// `aes256-sha256` (AES-CBC with HMAC-SHA-256-128), `aes128gcm16-x25519` (PFS
/// with that group when rekeying or creating further CHILD_SAs), optionally
/// with `esn` and/or `noesn` (default `noesn`, as strongSwan), or `default`
/// ([`EspProposal::strongswan_default`]). The AEAD/non-AEAD rule of
/// [`IkeProposal`] holds for `encr` and `integ`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EspProposal {
    /// Encryption algorithms, non-empty.
    pub encr: Vec<Encr>,
    /// Integrity algorithms of the non-AEAD ciphers.
    pub integ: Vec<Integ>,
    /// PFS groups; empty means no PFS.
    pub dh: Vec<DhGroup>,
    /// Extended sequence numbers: `true` for ESN, `false` for none; non-empty,
    /// in preference order.
    pub esn: Vec<bool>,
}

/// What was agreed for an IKE SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IkeAlgorithms {
    /// SK payload protection: an AEAD, or AES-CBC with its HMAC.
    pub encr: Suite,
    /// PRF of the key schedule and AUTH.
    pub prf: Prf,
    /// Diffie-Hellman group of IKE_SA_INIT (or of the rekey).
    pub dh: DhGroup,
}

/// What was agreed for a CHILD_SA (ESP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EspAlgorithms {
    /// ESP protection: an AEAD, or AES-CBC with its HMAC.
    pub encr: Suite,
    /// PFS group of the exchange, if any.
    pub dh: Option<DhGroup>,
    /// Whether extended sequence numbers are used.
    pub esn: bool,
}

/// strongSwan integrity keywords ironsec does not implement: named as such
/// rather than as unknown words.
const UNSUPPORTED_INTEGRITY: &[&str] = &[
    "md5",
    "md5_128",
    "sha1_160",
    "sha256_96",
    "sha2_256_96",
    "aesxcbc",
    "aescmac",
    "aes128gmac",
    "aes192gmac",
    "aes256gmac",
];

/// strongSwan 5.9.8's default proposals, as strongSwan keywords in its order.
/// Which algorithms: `src/libstrongswan/crypto/proposal/proposal.c`,
/// `proposal_create_default` and `proposal_create_default_aead` (IKE through
/// `proposal_add_supported_ike`, in rounds by strength); the swanctl
/// `default` keyword is both, non-AEAD first (`vici_config.c`,
/// `parse_proposal`). The order within a round is that of strongSwan's crypto
/// factory, the order in which its plugins registered each algorithm
/// (`crypto_factory.c`, `add_entry`), so it depends on the plugins loaded;
/// these lists are the order strongSwan 5.9.8 (Debian 12) prints for
/// `default` with the plugins of `conf/strongswan/strongswan.conf` (the
/// interop lab), where Curve25519 comes before the NIST curves. `default` is
/// the subset of each list that ironsec implements, in this order: every
/// keyword is looked up in the transform tables, so an algorithm added there
/// (e.g. the MODP groups, ECP-521) joins `default` with no change here.
mod strongswan_default {
    /// IKE, non-AEAD proposal: ENCR round 1 (AES-CBC, AES-CTR, Camellia-CBC,
    /// Camellia-CTR, each 128/192/256) and round 2 (3DES).
    pub const IKE_ENCR: &[&str] = &[
        "aes128",
        "aes192",
        "aes256",
        "aes128ctr",
        "aes192ctr",
        "aes256ctr",
        "camellia128",
        "camellia192",
        "camellia256",
        "camellia128ctr",
        "camellia192ctr",
        "camellia256ctr",
        "3des",
    ];
    /// IKE, AEAD proposal: round 1 (16-byte ICVs) and round 2 (12 and 8).
    pub const IKE_AEAD: &[&str] = &[
        "aes128gcm16",
        "aes192gcm16",
        "aes256gcm16",
        "aes128ccm16",
        "aes192ccm16",
        "aes256ccm16",
        "camellia128ccm16",
        "camellia192ccm16",
        "camellia256ccm16",
        "chacha20poly1305",
        "aes128gcm12",
        "aes192gcm12",
        "aes256gcm12",
        "aes128gcm8",
        "aes192gcm8",
        "aes256gcm8",
        "aes128ccm12",
        "aes192ccm12",
        "aes256ccm12",
        "aes128ccm8",
        "aes192ccm8",
        "aes256ccm8",
    ];
    /// IKE, non-AEAD proposal: INTEG round 1 (SHA-2) and round 2.
    pub const IKE_INTEG: &[&str] = &["sha256", "sha384", "sha512", "sha1", "aesxcbc", "aescmac"];
    /// Both IKE proposals: PRF rounds 1 to 3.
    pub const IKE_PRF: &[&str] = &[
        "prfsha256",
        "prfsha384",
        "prfsha512",
        "prfaesxcbc",
        "prfaescmac",
        "prfsha1",
    ];
    /// Both IKE proposals: key exchange round 1 (ECC), round 2 (MODP 3072 and
    /// up), round 3 (MODP 2048). Extend the DH table, not this list.
    pub const IKE_DH: &[&str] = &[
        "curve25519",
        "curve448",
        "ecp256",
        "ecp384",
        "ecp521",
        "ecp256bp",
        "ecp384bp",
        "ecp512bp",
        "modp3072",
        "modp4096",
        "modp6144",
        "modp8192",
        "modp2048",
    ];
    /// ESP, non-AEAD proposal (with `noesn`).
    pub const ESP_ENCR: &[&str] = &["aes128", "aes192", "aes256"];
    /// ESP, non-AEAD proposal.
    pub const ESP_INTEG: &[&str] = &["sha256", "sha384", "sha512", "sha1", "aesxcbc"];
    /// ESP, AEAD proposal (with `noesn`).
    pub const ESP_AEAD: &[&str] = &["aes128gcm16", "aes192gcm16", "aes256gcm16"];
}

fn known<T>(names: &[&str], parse: impl Fn(&str) -> Option<T>) -> Vec<T> {
    names.iter().filter_map(|n| parse(n)).collect()
}

/// The keyword that stands for strongSwan's default proposals.
const DEFAULT_KEYWORD: &str = "default";

impl IkeProposal {
    /// strongSwan 5.9.8's default IKE proposals, as far as ironsec implements
    /// them (see the `strongswan_default` lists): AES-CBC 128/192/256 with
    /// HMAC-SHA-256/384/512/SHA-1, then AES-GCM-16 128/256 and
    /// ChaCha20-Poly1305, each with PRF SHA-256/384/512/SHA-1 and the groups
    /// of strongSwan's list that the DH table has. One value here; offered as
    /// strongSwan offers it, two proposals, non-AEAD first.
    pub fn strongswan_default() -> IkeProposal {
        use strongswan_default::*;
        IkeProposal {
            encr: [
                known(IKE_ENCR, Encr::from_name),
                known(IKE_AEAD, Encr::from_name),
            ]
            .concat(),
            integ: known(IKE_INTEG, Integ::from_name),
            prf: known(IKE_PRF, Prf::from_name),
            dh: known(IKE_DH, DhGroup::from_name),
        }
    }

    /// The proposals this one is offered as: itself when its ciphers are all
    /// AEADs or all not; otherwise an AEAD one and a non-AEAD one, in the
    /// order of the first cipher of each kind (RFC 7296 §3.3: "combined-mode
    /// ciphers ... MUST NOT" share a proposal with an integrity transform).
    /// A non-AEAD part without integrity algorithms is left out, and so is
    /// the integrity list of the AEAD part.
    pub fn split(&self) -> Vec<IkeProposal> {
        split_encr(&self.encr, &self.integ)
            .into_iter()
            .map(|(encr, integ)| IkeProposal {
                encr,
                integ,
                prf: self.prf.clone(),
                dh: self.dh.clone(),
            })
            .collect()
    }

    /// The legacy algorithms this proposal names (see [`LegacyAlgorithm`]),
    /// each once, in proposal order.
    pub fn legacy_algorithms(&self) -> Vec<LegacyAlgorithm> {
        let mut v = Vec::new();
        let found = self
            .encr
            .iter()
            .filter_map(|e| legacy::of_encr(*e))
            .chain(self.integ.iter().filter_map(|i| legacy::of_integ(*i)))
            .chain(self.prf.iter().filter_map(|p| legacy::of_prf(*p)))
            .chain(self.dh.iter().filter_map(|g| legacy::of_group(*g)));
        for l in found {
            push_unique(&mut v, l);
        }
        v
    }
}

impl EspProposal {
    /// strongSwan 5.9.8's default ESP proposals, as far as ironsec implements
    /// them: AES-CBC 128/192/256 with HMAC-SHA-256/384/512/SHA-1, then
    /// AES-GCM-16 128/256, no PFS, no ESN. Offered as two proposals,
    /// non-AEAD first, as strongSwan does.
    pub fn strongswan_default() -> EspProposal {
        use strongswan_default::*;
        EspProposal {
            encr: [
                known(ESP_ENCR, Encr::from_name),
                known(ESP_AEAD, Encr::from_name),
            ]
            .concat(),
            integ: known(ESP_INTEG, Integ::from_name),
            dh: Vec::new(),
            esn: vec![false],
        }
    }

    /// As [`IkeProposal::split`].
    pub fn split(&self) -> Vec<EspProposal> {
        split_encr(&self.encr, &self.integ)
            .into_iter()
            .map(|(encr, integ)| EspProposal {
                encr,
                integ,
                dh: self.dh.clone(),
                esn: self.esn.clone(),
            })
            .collect()
    }

    /// The legacy algorithms this proposal names, each once.
    pub fn legacy_algorithms(&self) -> Vec<LegacyAlgorithm> {
        let mut v = Vec::new();
        let found = self
            .encr
            .iter()
            .filter_map(|e| legacy::of_encr(*e))
            .chain(self.integ.iter().filter_map(|i| legacy::of_integ(*i)))
            .chain(self.dh.iter().filter_map(|g| legacy::of_group(*g)));
        for l in found {
            push_unique(&mut v, l);
        }
        v
    }
}

/// The consistent (cipher list, integrity list) pairs of a configured
/// proposal, in the order of each kind's first cipher.
fn split_encr(encr: &[Encr], integ: &[Integ]) -> Vec<(Vec<Encr>, Vec<Integ>)> {
    let aead: Vec<Encr> = encr.iter().copied().filter(|e| e.is_aead()).collect();
    let cbc: Vec<Encr> = encr.iter().copied().filter(|e| !e.is_aead()).collect();
    let mut parts = Vec::new();
    let aead_first = encr.first().is_some_and(|e| e.is_aead());
    let aead_part = (!aead.is_empty()).then(|| (aead, Vec::new()));
    let cbc_part = (!cbc.is_empty() && !integ.is_empty()).then(|| (cbc, integ.to_vec()));
    if aead_first {
        parts.extend(aead_part);
        parts.extend(cbc_part);
    } else {
        parts.extend(cbc_part);
        parts.extend(aead_part);
    }
    parts
}

/// Every proposal of `ours` as offered, in order: what the numbers of an
/// offer and of the answer to it count.
fn split_all<P>(ours: &[P], split: impl Fn(&P) -> Vec<P>) -> Vec<P> {
    ours.iter().flat_map(split).collect()
}

/// A proposal string that cannot be used.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ProposalError {
    /// Nothing but whitespace.
    #[error("empty {kind} proposal: expected keywords joined by '-', e.g. {example}")]
    Empty {
        /// "IKE" or "ESP".
        kind: &'static str,
        /// A valid proposal of that kind.
        example: &'static str,
    },
    /// Two '-' in a row, or one at either end.
    #[error("empty keyword in {kind} proposal {proposal:?}: keywords are joined by a single '-'")]
    EmptyKeyword {
        /// "IKE" or "ESP".
        kind: &'static str,
        /// The proposal as given.
        proposal: String,
    },
    /// A keyword naming no algorithm we know.
    #[error("unknown keyword {token:?} in {kind} proposal {proposal:?}; valid keywords: {valid}")]
    Unknown {
        /// "IKE" or "ESP".
        kind: &'static str,
        /// The proposal as given.
        proposal: String,
        /// The offending keyword.
        token: String,
        /// Every keyword valid in this kind of proposal.
        valid: String,
    },
    /// A strongSwan cipher or group keyword that ironsec deliberately does not
    /// implement: named as such, with the reason and what to use instead, so
    /// an operator copying a swanctl.conf proposal is not told it is a typo.
    #[error("{token:?} in {kind} proposal {proposal:?}: {why}; use {instead}")]
    NotImplemented {
        /// "IKE" or "ESP".
        kind: &'static str,
        /// The proposal as given.
        proposal: String,
        /// The offending keyword.
        token: String,
        /// What the algorithm is and why ironsec leaves it out.
        why: &'static str,
        /// The keywords to use in its place.
        instead: &'static str,
    },
    /// A strongSwan integrity keyword that ironsec does not implement.
    #[error(
        "{token:?} in {kind} proposal {proposal:?} is an integrity algorithm ironsec does not \
         implement; use one of: {valid}"
    )]
    Integrity {
        /// "IKE" or "ESP".
        kind: &'static str,
        /// The proposal as given.
        proposal: String,
        /// The offending keyword.
        token: String,
        /// The integrity keywords that are valid.
        valid: String,
    },
    /// A non-AEAD cipher without an integrity algorithm: RFC 7296 §3.3 needs
    /// one for IKE, and ironsec never runs ESP without one (RFC 8221 §5).
    #[error(
        "{kind} proposal {proposal:?} has the non-AEAD cipher {cipher:?} but no integrity \
         algorithm; add one of: {valid} (or use an AEAD such as aes256gcm16)"
    )]
    NoIntegrity {
        /// "IKE" or "ESP".
        kind: &'static str,
        /// The proposal as given.
        proposal: String,
        /// The first non-AEAD cipher.
        cipher: &'static str,
        /// The integrity keywords that are valid.
        valid: String,
    },
    /// A known keyword that belongs to the other kind of proposal (a PRF in
    /// an ESP proposal, ESN in an IKE proposal).
    #[error("{token:?} in {kind} proposal {proposal:?}: {reason} (valid keywords: {valid})")]
    Misplaced {
        /// "IKE" or "ESP".
        kind: &'static str,
        /// The proposal as given.
        proposal: String,
        /// The offending keyword.
        token: String,
        /// Why it does not belong.
        reason: &'static str,
        /// Every keyword valid in this kind of proposal.
        valid: String,
    },
    /// A mandatory algorithm type is missing.
    #[error("{kind} proposal {proposal:?} names no {what}; add one of: {valid}")]
    Missing {
        /// "IKE" or "ESP".
        kind: &'static str,
        /// The proposal as given.
        proposal: String,
        /// "encryption algorithm", "PRF" or "DH group".
        what: &'static str,
        /// The keywords that would do.
        valid: String,
    },
}

fn encr_names() -> Vec<&'static str> {
    let mut v: Vec<&str> = Encr::ALL.iter().map(|e| e.name()).collect();
    v.push("aes");
    v
}
fn integ_names() -> Vec<&'static str> {
    Integ::ALL.iter().map(|i| i.name()).collect()
}
fn prf_names() -> Vec<&'static str> {
    Prf::ALL.iter().map(|p| p.name()).collect()
}
fn group_names() -> Vec<&'static str> {
    let mut v: Vec<&str> = DhGroup::ALL.iter().map(|g| g.name()).collect();
    v.push("curve25519");
    v
}
fn ike_keywords() -> String {
    [
        encr_names(),
        integ_names(),
        prf_names(),
        group_names(),
        vec![DEFAULT_KEYWORD],
    ]
    .concat()
    .join(", ")
}
fn esp_keywords() -> String {
    [
        encr_names(),
        integ_names(),
        group_names(),
        vec!["esn", "noesn", DEFAULT_KEYWORD],
    ]
    .concat()
    .join(", ")
}

/// strongSwan keywords of algorithms ironsec leaves out on purpose, with the
/// reason and the replacement an operator should configure (README, "Proposal
/// keywords"). Matched case-insensitively; `None` for anything else.
fn not_implemented(token: &str) -> Option<(&'static str, &'static str)> {
    let t = token.to_ascii_lowercase();
    const AES_CBC: &str =
        "AES-CBC with HMAC (e.g. aes256-sha256, aes128-sha1) or an AEAD (aes256gcm16)";
    if t == "3des" || t == "des" {
        return Some((
            "3DES-CBC is not implemented: RFC 8221 says SHOULD NOT (a 64-bit block, Sweet32), \
             ironsec keeps DES code out of the IPsec path, and every peer default that offers \
             3DES (Azure's, Windows') also offers AES",
            AES_CBC,
        ));
    }
    if t == "modp768" {
        return Some((
            "the 768-bit MODP group (1) is not implemented: RFC 8247 says MUST NOT (breakable)",
            "modp2048 or stronger, ecp256, x25519 (or modp1024 with allow_legacy_crypto = true)",
        ));
    }
    if t.starts_with("camellia")
        || (t.starts_with("aes") && (t.ends_with("ctr") || t.contains("ccm")))
        || (t.starts_with("aes") && (t.ends_with("gcm8") || t.ends_with("gcm12")))
    {
        return Some((
            "AES-CTR, AES-CCM, AES-GCM with 8- or 12-byte ICVs and Camellia are not implemented",
            AES_CBC,
        ));
    }
    if t.ends_with("bp") || t == "ecp192" || t == "ecp224" || t == "curve448" || t == "x448" {
        return Some((
            "the Brainpool, NIST P-192/P-224 and 448 groups are not implemented",
            "x25519, ecp256, ecp384, ecp521 or modp2048 and stronger",
        ));
    }
    None
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// Splits a proposal into keywords, refusing empty ones.
fn tokens<'a>(
    s: &'a str,
    kind: &'static str,
    example: &'static str,
) -> Result<Vec<&'a str>, ProposalError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(ProposalError::Empty { kind, example });
    }
    let t: Vec<&str> = s.split('-').collect();
    if t.iter().any(|x| x.is_empty()) {
        return Err(ProposalError::EmptyKeyword {
            kind,
            proposal: s.to_owned(),
        });
    }
    Ok(t)
}

fn is_unsupported_integrity(token: &str) -> bool {
    UNSUPPORTED_INTEGRITY
        .iter()
        .any(|k| k.eq_ignore_ascii_case(token))
}

/// strongSwan's cipher/integrity rule (`check_proposal`): with only AEADs the
/// integrity algorithms are dropped (they may have served to derive the PRF),
/// and a non-AEAD cipher needs one. Unlike strongSwan, both kinds may share a
/// configured proposal: it is offered as two ([`IkeProposal::split`]).
fn check_integrity(
    kind: &'static str,
    proposal: &str,
    encr: &[Encr],
    integ: &mut Vec<Integ>,
) -> Result<(), ProposalError> {
    match encr.iter().find(|e| !e.is_aead()) {
        None => integ.clear(),
        Some(cipher) if integ.is_empty() => {
            return Err(ProposalError::NoIntegrity {
                kind,
                proposal: proposal.to_owned(),
                cipher: cipher.name(),
                valid: integ_names().join(", "),
            })
        }
        Some(_) => {}
    }
    Ok(())
}

impl FromStr for IkeProposal {
    type Err = ProposalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const KIND: &str = "IKE";
        let proposal = s.trim().to_owned();
        if proposal.eq_ignore_ascii_case(DEFAULT_KEYWORD) {
            return Ok(IkeProposal::strongswan_default());
        }
        let mut p = IkeProposal {
            encr: Vec::new(),
            integ: Vec::new(),
            prf: Vec::new(),
            dh: Vec::new(),
        };
        for token in tokens(s, KIND, "aes256gcm16-prfsha256-x25519")? {
            if let Some(x) = Encr::from_name(token) {
                push_unique(&mut p.encr, x);
            } else if let Some(x) = Integ::from_name(token) {
                push_unique(&mut p.integ, x);
            } else if let Some(x) = Prf::from_name(token) {
                push_unique(&mut p.prf, x);
            } else if let Some(x) = DhGroup::from_name(token) {
                push_unique(&mut p.dh, x);
            } else if token.eq_ignore_ascii_case("esn") || token.eq_ignore_ascii_case("noesn") {
                return Err(ProposalError::Misplaced {
                    kind: KIND,
                    proposal,
                    token: token.to_owned(),
                    reason: "extended sequence numbers are an ESP setting; put it in esp_proposals",
                    valid: ike_keywords(),
                });
            } else if is_unsupported_integrity(token) {
                return Err(ProposalError::Integrity {
                    kind: KIND,
                    proposal,
                    token: token.to_owned(),
                    valid: integ_names().join(", "),
                });
            } else if let Some((why, instead)) = not_implemented(token) {
                return Err(ProposalError::NotImplemented {
                    kind: KIND,
                    proposal,
                    token: token.to_owned(),
                    why,
                    instead,
                });
            } else {
                return Err(ProposalError::Unknown {
                    kind: KIND,
                    proposal,
                    token: token.to_owned(),
                    valid: ike_keywords(),
                });
            }
        }
        let missing = |what, names: Vec<&str>| ProposalError::Missing {
            kind: KIND,
            proposal: proposal.clone(),
            what,
            valid: names.join(", "),
        };
        // strongSwan's `check_proposal`: no PRF named, so each integrity
        // algorithm brings its own (`sha256` -> `prfsha256`), before the
        // integrity algorithms of an AEAD-only proposal are dropped.
        if p.prf.is_empty() {
            for i in &p.integ {
                push_unique(&mut p.prf, Prf::for_integ(*i));
            }
        }
        if p.encr.is_empty() {
            return Err(missing("encryption algorithm", encr_names()));
        }
        if p.prf.is_empty() {
            return Err(missing(
                "PRF (or integrity algorithm to derive it from)",
                prf_names(),
            ));
        }
        if p.dh.is_empty() {
            return Err(missing("DH group", group_names()));
        }
        check_integrity(KIND, &proposal, &p.encr, &mut p.integ)?;
        Ok(p)
    }
}

impl FromStr for EspProposal {
    type Err = ProposalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const KIND: &str = "ESP";
        let proposal = s.trim().to_owned();
        if proposal.eq_ignore_ascii_case(DEFAULT_KEYWORD) {
            return Ok(EspProposal::strongswan_default());
        }
        let mut p = EspProposal {
            encr: Vec::new(),
            integ: Vec::new(),
            dh: Vec::new(),
            esn: Vec::new(),
        };
        for token in tokens(s, KIND, "aes256gcm16-x25519")? {
            if let Some(x) = Encr::from_name(token) {
                push_unique(&mut p.encr, x);
            } else if let Some(x) = Integ::from_name(token) {
                push_unique(&mut p.integ, x);
            } else if let Some(x) = DhGroup::from_name(token) {
                push_unique(&mut p.dh, x);
            } else if token.eq_ignore_ascii_case("esn") {
                push_unique(&mut p.esn, true);
            } else if token.eq_ignore_ascii_case("noesn") {
                push_unique(&mut p.esn, false);
            } else if Prf::from_name(token).is_some() {
                return Err(ProposalError::Misplaced {
                    kind: KIND,
                    proposal,
                    token: token.to_owned(),
                    reason: "a PRF is negotiated for the IKE SA only; put it in ike_proposals",
                    valid: esp_keywords(),
                });
            } else if is_unsupported_integrity(token) {
                return Err(ProposalError::Integrity {
                    kind: KIND,
                    proposal,
                    token: token.to_owned(),
                    valid: integ_names().join(", "),
                });
            } else if let Some((why, instead)) = not_implemented(token) {
                return Err(ProposalError::NotImplemented {
                    kind: KIND,
                    proposal,
                    token: token.to_owned(),
                    why,
                    instead,
                });
            } else {
                return Err(ProposalError::Unknown {
                    kind: KIND,
                    proposal,
                    token: token.to_owned(),
                    valid: esp_keywords(),
                });
            }
        }
        if p.encr.is_empty() {
            return Err(ProposalError::Missing {
                kind: KIND,
                proposal,
                what: "encryption algorithm",
                valid: encr_names().join(", "),
            });
        }
        check_integrity(KIND, &proposal, &p.encr, &mut p.integ)?;
        if p.esn.is_empty() {
            p.esn.push(false);
        }
        Ok(p)
    }
}

fn write_joined(
    f: &mut fmt::Formatter<'_>,
    names: impl IntoIterator<Item = &'static str>,
) -> fmt::Result {
    for (i, n) in names.into_iter().enumerate() {
        if i > 0 {
            f.write_str("-")?;
        }
        f.write_str(n)?;
    }
    Ok(())
}

impl fmt::Display for IkeProposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = self
            .encr
            .iter()
            .map(|s| s.name())
            .chain(self.integ.iter().map(|i| i.name()))
            .chain(self.prf.iter().map(|p| p.name()))
            .chain(self.dh.iter().map(|g| g.name()));
        write_joined(f, names)
    }
}

impl fmt::Display for EspProposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `noesn` alone is the default and is left out, as strongSwan does.
        let esn: &[bool] = if self.esn == [false] { &[] } else { &self.esn };
        let names = self
            .encr
            .iter()
            .map(|s| s.name())
            .chain(self.integ.iter().map(|i| i.name()))
            .chain(self.dh.iter().map(|g| g.name()))
            .chain(esn.iter().map(|e| if *e { "esn" } else { "noesn" }));
        write_joined(f, names)
    }
}

impl fmt::Display for IkeAlgorithms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.encr, self.prf, self.dh)
    }
}

impl fmt::Display for EspAlgorithms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.encr)?;
        if let Some(g) = self.dh {
            write!(f, "-{g}")?;
        }
        if self.esn {
            f.write_str("-esn")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Proposals on the wire, in a form independent of the wire codec
// ---------------------------------------------------------------------------

/// One transform of an SA payload proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OfferedTransform {
    /// Transform Type ([`TRANSFORM_ENCR`], ...).
    pub kind: u8,
    /// Transform ID.
    pub id: u16,
    /// The Key Length attribute in bits, if present.
    pub key_length: Option<u16>,
    /// Whether the transform carries attributes other than Key Length, which
    /// we do not understand.
    pub has_unknown_attributes: bool,
}

/// One proposal of an SA payload (SPI and protocol are the caller's).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OfferedProposal {
    /// Proposal Num: 1 for the first proposal, increasing; a response carries
    /// the number of the proposal it accepted (RFC 7296 §3.3.1).
    pub number: u8,
    /// The transforms, alternatives of one type in preference order.
    pub transforms: Vec<OfferedTransform>,
}

fn transform(kind: u8, id: u16, key_length: Option<u16>) -> OfferedTransform {
    OfferedTransform {
        kind,
        id,
        key_length,
        has_unknown_attributes: false,
    }
}

fn encr_transform(e: Encr) -> OfferedTransform {
    transform(TRANSFORM_ENCR, e.transform_id(), e.key_length_attribute())
}

/// Numbers proposals from 1. More than 255 proposals cannot be numbered, so
/// any beyond that are not offered (configuration validation should refuse
/// them long before).
fn numbered<P>(
    ours: &[P],
    transforms: impl Fn(&P) -> Vec<OfferedTransform>,
) -> Vec<OfferedProposal> {
    ours.iter()
        .zip(1..=u8::MAX)
        .map(|(p, number)| OfferedProposal {
            number,
            transforms: transforms(p),
        })
        .collect()
}

/// Our IKE proposals as transforms for the initiator's SA payload, numbered
/// from 1, each configured proposal [`IkeProposal::split`] into its AEAD and
/// non-AEAD parts: ENCR, INTEG (non-AEAD only), PRF and D-H transforms in
/// configured order.
pub fn offer_ike(ours: &[IkeProposal]) -> Vec<OfferedProposal> {
    numbered(&split_all(ours, IkeProposal::split), |p| {
        p.encr
            .iter()
            .map(|e| encr_transform(*e))
            .chain(
                p.integ
                    .iter()
                    .map(|i| transform(TRANSFORM_INTEG, i.id(), None)),
            )
            .chain(p.prf.iter().map(|x| transform(TRANSFORM_PRF, x.id(), None)))
            .chain(p.dh.iter().map(|g| transform(TRANSFORM_DH, g.id(), None)))
            .collect()
    })
}

/// Our ESP proposals as transforms, numbered from 1 and split as
/// [`offer_ike`] does: ENCR, INTEG (non-AEAD only), D-H (only with PFS) and
/// ESN transforms in configured order. For the CHILD_SA of IKE_AUTH, which
/// has no KE, pass proposals without DH groups.
pub fn offer_esp(ours: &[EspProposal]) -> Vec<OfferedProposal> {
    numbered(&split_all(ours, EspProposal::split), |p| {
        p.encr
            .iter()
            .map(|e| encr_transform(*e))
            .chain(
                p.integ
                    .iter()
                    .map(|i| transform(TRANSFORM_INTEG, i.id(), None)),
            )
            .chain(p.dh.iter().map(|g| transform(TRANSFORM_DH, g.id(), None)))
            .chain(
                p.esn
                    .iter()
                    .map(|e| transform(TRANSFORM_ESN, esn_id(*e), None)),
            )
            .collect()
    })
}

fn esn_id(esn: bool) -> u16 {
    if esn {
        ESN_YES
    } else {
        ESN_NO
    }
}

// ---------------------------------------------------------------------------
// Selection
// ---------------------------------------------------------------------------

/// Transform Types RFC 7296 §3.3.3 allows in an IKE proposal, and in an ESP one.
const IKE_TYPES: &[u8] = &[TRANSFORM_ENCR, TRANSFORM_PRF, TRANSFORM_INTEG, TRANSFORM_DH];
const ESP_TYPES: &[u8] = &[TRANSFORM_ENCR, TRANSFORM_INTEG, TRANSFORM_DH, TRANSFORM_ESN];

/// The transforms of one type that we can parse at all, with their position
/// in the proposal: RFC 7296 §3.3.6 has an unknown transform (here also one
/// with attributes we do not understand) "unacceptable", while the others of
/// the same type "are processed as usual".
fn of_kind(p: &OfferedProposal, kind: u8) -> impl Iterator<Item = (usize, &OfferedTransform)> {
    p.transforms
        .iter()
        .enumerate()
        .filter(move |(_, t)| t.kind == kind && !t.has_unknown_attributes)
}

fn has_kind(p: &OfferedProposal, kind: u8) -> bool {
    p.transforms.iter().any(|t| t.kind == kind)
}

/// RFC 7296 §3.3.6: a proposal with a Transform Type we do not understand is
/// unacceptable (other proposals are processed as usual).
fn types_understood(p: &OfferedProposal, allowed: &[u8]) -> bool {
    p.transforms.iter().all(|t| allowed.contains(&t.kind))
}

/// The initiator's first fixed-length transform of `kind` that `accept` maps
/// to something, and its position. PRF, INTEG, D-H and ESN transforms take no
/// Key Length attribute (RFC 7296 §3.3.5), so one that carries it is not one
/// we understand.
fn pick<T>(p: &OfferedProposal, kind: u8, accept: impl Fn(u16) -> Option<T>) -> Option<(usize, T)> {
    of_kind(p, kind)
        .filter(|(_, t)| t.key_length.is_none())
        .find_map(|(i, t)| Some((i, accept(t.id)?)))
}

/// The cipher and integrity transform to take from `p`, given the ciphers
/// and integrity algorithms one proposal of ours allows: the initiator's
/// first cipher for which a consistent pair exists (RFC 7296 §3.3), with the
/// positions of both (an AEAD's integrity position counts as 0).
///
/// An AEAD is consistent with a proposal that has no INTEG transform or one
/// offering NONE (RFC 5282 §8); with other INTEG transforms only when the
/// proposal also has a non-AEAD cipher they can belong to (a peer's mixed
/// proposal, of which we take a consistent part), never in an AEAD-only
/// proposal that demands integrity. A non-AEAD cipher takes the initiator's
/// first INTEG transform we allow; without one it is not consistent.
fn pick_suite(p: &OfferedProposal, encr: &[Encr], integ: &[Integ]) -> Option<([usize; 2], Suite)> {
    let ciphers: Vec<(usize, Encr)> = of_kind(p, TRANSFORM_ENCR)
        .filter_map(|(i, t)| Some((i, encr_from_transform(t.id, t.key_length)?)))
        .collect();
    let integ_none = of_kind(p, TRANSFORM_INTEG).any(|(_, t)| t.id == INTEG_NONE);
    let aead_ok =
        !has_kind(p, TRANSFORM_INTEG) || integ_none || ciphers.iter().any(|(_, e)| !e.is_aead());
    ciphers
        .iter()
        .filter(|(_, e)| encr.contains(e))
        .find_map(|&(ie, e)| {
            if e.is_aead() {
                aead_ok.then_some(())?;
                Some(([ie, 0], Suite::from_parts(e, None)?))
            } else {
                let (ii, i) = pick(p, TRANSFORM_INTEG, |id| {
                    integ_from_transform(id, None).filter(|i| integ.contains(i))
                })?;
                Some(([ie, ii], Suite::from_parts(e, Some(i))?))
            }
        })
}

/// How much the initiator prefers a selection: the positions of the chosen
/// transforms, most significant type first. Lower is preferred.
type Rank = [usize; 4];

fn select_ike(p: &OfferedProposal, q: &IkeProposal) -> Option<(Rank, IkeAlgorithms)> {
    let ([ie, ii], encr) = pick_suite(p, &q.encr, &q.integ)?;
    let (ip, prf) = pick(p, TRANSFORM_PRF, |id| {
        Prf::from_id(id).filter(|x| q.prf.contains(x))
    })?;
    let (id, dh) = pick(p, TRANSFORM_DH, |id| {
        DhGroup::from_id(id).filter(|g| q.dh.contains(g))
    })?;
    Some(([ie, ii, ip, id], IkeAlgorithms { encr, prf, dh }))
}

fn select_esp(p: &OfferedProposal, q: &EspProposal) -> Option<(Rank, EspAlgorithms)> {
    let ([ie, ii], encr) = pick_suite(p, &q.encr, &q.integ)?;
    // No D-H transform, or D-H NONE, means no PFS: acceptable only to a
    // proposal of ours without PFS; a group only to one listing it.
    let (id, dh) = if has_kind(p, TRANSFORM_DH) {
        pick(p, TRANSFORM_DH, |id| {
            if id == DH_NONE {
                q.dh.is_empty().then_some(None)
            } else {
                DhGroup::from_id(id).filter(|g| q.dh.contains(g)).map(Some)
            }
        })?
    } else if q.dh.is_empty() {
        (0, None)
    } else {
        return None;
    };
    // No ESN transform means no ESN.
    let (in_, esn) = if has_kind(p, TRANSFORM_ESN) {
        pick(p, TRANSFORM_ESN, |id| {
            match id {
                ESN_NO => Some(false),
                ESN_YES => Some(true),
                _ => None,
            }
            .filter(|e| q.esn.contains(e))
        })?
    } else if q.esn.contains(&false) {
        (0, false)
    } else {
        return None;
    };
    // ESP's rank: cipher, integrity, then ESN before D-H is irrelevant; keep
    // the type order of the proposal.
    Some(([ie, ii, id, in_], EspAlgorithms { encr, dh, esn }))
}

/// The first of `offered` that `select` can satisfy with one of `ours`; of
/// the ways to satisfy it, the one with the initiator's most preferred
/// transforms (ties go to our earlier proposal).
fn choose<Q, A>(
    offered: &[OfferedProposal],
    ours: &[Q],
    allowed_types: &[u8],
    select: impl Fn(&OfferedProposal, &Q) -> Option<(Rank, A)>,
) -> Option<(u8, A)> {
    offered
        .iter()
        .filter(|p| types_understood(p, allowed_types))
        .find_map(|p| {
            ours.iter()
                .filter_map(|q| select(p, q))
                .min_by_key(|(rank, _)| *rank)
                .map(|(_, a)| (p.number, a))
        })
}

/// Responder's choice of IKE proposal (RFC 7296 §2.7, §3.3.6): the first of
/// the initiator's proposals that one of `ours` can satisfy entirely, taking
/// within each Transform Type the initiator's first transform that proposal of
/// ours allows (if several of ours fit, the one that gets the initiator the
/// more preferred cipher, then integrity, PRF, group). Returns the proposal's
/// number and the algorithms, or `None` for NO_PROPOSAL_CHOSEN.
///
/// The chosen cipher and integrity transform are consistent (see
/// `pick_suite`): an AEAD alone, a non-AEAD cipher with one integrity
/// algorithm. A proposal is skipped if it has a Transform Type not defined
/// for IKE or lacks a consistent ENCR (+ INTEG), a PRF or a D-H group. A
/// transform we do not understand (unknown ID, attributes we do not know, a
/// Key Length where none belongs) is skipped, and the others of its type still
/// count.
///
/// The D-H group chosen may differ from the initiator's KE payload; the caller
/// then answers INVALID_KE_PAYLOAD naming it (RFC 7296 §1.2).
pub fn choose_ike(
    offered: &[OfferedProposal],
    ours: &[IkeProposal],
) -> Option<(u8, IkeAlgorithms)> {
    choose(offered, ours, IKE_TYPES, select_ike)
}

/// Responder's choice of ESP proposal, by the rules of [`choose_ike`] for
/// the ESP Transform Types: a consistent ENCR (+ INTEG) is required; no D-H
/// transform (or D-H NONE) means no PFS and matches only a proposal of ours
/// without groups, while a group matches only one listing it; no ESN
/// transform means no ESN.
pub fn choose_esp(
    offered: &[OfferedProposal],
    ours: &[EspProposal],
) -> Option<(u8, EspAlgorithms)> {
    choose(offered, ours, ESP_TYPES, select_esp)
}

/// The one transform of `kind` a response carries, if it carries exactly one
/// and we can read it.
fn exactly_one(resp: &OfferedProposal, kind: u8) -> Result<Option<&OfferedTransform>, ()> {
    let mut it = resp.transforms.iter().filter(|t| t.kind == kind);
    match (it.next(), it.next()) {
        (None, _) => Ok(None),
        (Some(t), None) if !t.has_unknown_attributes => Ok(Some(t)),
        _ => Err(()),
    }
}

/// The proposal of ours a response's number refers to: `offered` must be
/// the split list that [`offer_ike`]/[`offer_esp`] numbered.
fn answered<'a, P>(resp: &OfferedProposal, offered: &'a [P]) -> Option<&'a P> {
    offered.get(usize::from(resp.number).checked_sub(1)?)
}

/// The suite of a response's one ENCR and at most one INTEG transform, if
/// consistent and offered in `q`'s lists. We never offer INTEG NONE (an AEAD
/// proposal of ours has no INTEG), so an answer carrying it is refused.
fn answered_suite(resp: &OfferedProposal, encr: &[Encr], integ: &[Integ]) -> Option<Suite> {
    let e = exactly_one(resp, TRANSFORM_ENCR).ok()??;
    let e = encr_from_transform(e.id, e.key_length).filter(|x| encr.contains(x))?;
    let i = match exactly_one(resp, TRANSFORM_INTEG).ok()? {
        None => None,
        Some(t) => Some(integ_from_transform(t.id, t.key_length).filter(|x| integ.contains(x))?),
    };
    Suite::from_parts(e, i)
}

/// Initiator's check of the responder's choice (RFC 7296 §3.3.6: the accepted
/// offer must be consistent with one of our proposals): the response must
/// name one of our (split) proposals by number and carry exactly one ENCR,
/// PRF and D-H transform and, for a non-AEAD cipher, exactly one INTEG
/// transform (an AEAD takes none), each one we offered in that
/// proposal, and nothing else.
pub fn accept_ike_response(resp: &OfferedProposal, ours: &[IkeProposal]) -> Option<IkeAlgorithms> {
    let offered = split_all(ours, IkeProposal::split);
    let q = answered(resp, &offered)?;
    if !types_understood(resp, IKE_TYPES) {
        return None;
    }
    let encr = answered_suite(resp, &q.encr, &q.integ)?;
    let p = exactly_one(resp, TRANSFORM_PRF).ok()??;
    let d = exactly_one(resp, TRANSFORM_DH).ok()??;
    let prf = Prf::from_id(p.id).filter(|x| q.prf.contains(x) && p.key_length.is_none())?;
    let dh = DhGroup::from_id(d.id).filter(|g| q.dh.contains(g) && d.key_length.is_none())?;
    Some(IkeAlgorithms { encr, prf, dh })
}

/// Initiator's check of an ESP response: it must name one of our (split)
/// proposals and carry exactly one ENCR and one ESN transform, INTEG as for
/// [`accept_ike_response`], and one D-H transform exactly when that proposal
/// offered groups, each one we offered.
pub fn accept_esp_response(resp: &OfferedProposal, ours: &[EspProposal]) -> Option<EspAlgorithms> {
    let offered = split_all(ours, EspProposal::split);
    let q = answered(resp, &offered)?;
    if !types_understood(resp, ESP_TYPES) {
        return None;
    }
    let encr = answered_suite(resp, &q.encr, &q.integ)?;
    let dh = match exactly_one(resp, TRANSFORM_DH).ok()? {
        None if q.dh.is_empty() => None,
        Some(d) if d.key_length.is_none() => {
            Some(DhGroup::from_id(d.id).filter(|g| q.dh.contains(g))?)
        }
        _ => return None,
    };
    let n = exactly_one(resp, TRANSFORM_ESN).ok()??;
    let esn = match (n.id, n.key_length) {
        (ESN_NO, None) => false,
        (ESN_YES, None) => true,
        _ => return None,
    };
    if !q.esn.contains(&esn) {
        return None;
    }
    Some(EspAlgorithms { encr, dh, esn })
}
