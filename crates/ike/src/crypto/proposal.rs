//! Proposals: as configured (strongSwan syntax), as offered on the wire, and
//! the choice between them (RFC 7296 §2.7, §3.3).

use std::fmt;
use std::str::FromStr;

use ironsec_esp::Suite;

use super::transforms::{
    suite_from_transform, DhGroup, Prf, DH_NONE, ESN_NO, ESN_YES, INTEG_NONE, TRANSFORM_DH,
    TRANSFORM_ENCR, TRANSFORM_ESN, TRANSFORM_INTEG, TRANSFORM_PRF,
};

// ---------------------------------------------------------------------------
// Configured proposals
// ---------------------------------------------------------------------------

/// One configured IKE proposal in strongSwan syntax, e.g.
/// `aes256gcm16-prfsha384-ecp384`, or with alternatives
/// `aes128gcm16-aes256gcm16-prfsha256-x25519-ecp256`. Each list is non-empty
/// and in preference order. Only AEAD ciphers exist here, so integrity
/// algorithms are refused when parsing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IkeProposal {
    /// Encryption (AEAD) suites.
    pub encr: Vec<Suite>,
    /// Pseudorandom functions.
    pub prf: Vec<Prf>,
    /// Diffie-Hellman groups; the first is the one an initiator's KE uses.
    pub dh: Vec<DhGroup>,
}

/// One configured ESP proposal in strongSwan syntax: `aes128gcm16` (no PFS),
/// `aes128gcm16-x25519` (PFS with that group when rekeying or creating
/// further CHILD_SAs), optionally with `esn` and/or `noesn` (default `noesn`,
/// as strongSwan).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EspProposal {
    /// Encryption (AEAD) suites, non-empty.
    pub encr: Vec<Suite>,
    /// PFS groups; empty means no PFS.
    pub dh: Vec<DhGroup>,
    /// Extended sequence numbers: `true` for ESN, `false` for none; non-empty,
    /// in preference order.
    pub esn: Vec<bool>,
}

/// What was agreed for an IKE SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IkeAlgorithms {
    /// SK payload AEAD.
    pub encr: Suite,
    /// PRF of the key schedule and AUTH.
    pub prf: Prf,
    /// Diffie-Hellman group of IKE_SA_INIT (or of the rekey).
    pub dh: DhGroup,
}

/// What was agreed for a CHILD_SA (ESP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EspAlgorithms {
    /// ESP AEAD.
    pub encr: Suite,
    /// PFS group of the exchange, if any.
    pub dh: Option<DhGroup>,
    /// Whether extended sequence numbers are used.
    pub esn: bool,
}

const INTEGRITY_KEYWORDS: &[&str] = &[
    "md5",
    "md5_128",
    "sha",
    "sha1",
    "sha1_160",
    "sha256",
    "sha2_256",
    "sha256_96",
    "sha2_256_96",
    "sha384",
    "sha2_384",
    "sha512",
    "sha2_512",
    "aesxcbc",
    "aescmac",
    "aes128gmac",
    "aes192gmac",
    "aes256gmac",
];

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
    /// An integrity algorithm: we only implement AEAD ciphers, which need none.
    #[error(
        "{token:?} in {kind} proposal {proposal:?} is an integrity algorithm, but only AEAD \
         ciphers are supported and they need none: remove it (valid keywords: {valid})"
    )]
    Integrity {
        /// "IKE" or "ESP".
        kind: &'static str,
        /// The proposal as given.
        proposal: String,
        /// The offending keyword.
        token: String,
        /// Every keyword valid in this kind of proposal.
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

fn suite_names() -> Vec<&'static str> {
    Suite::AEAD.iter().map(|s| s.name()).collect()
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
    [suite_names(), prf_names(), group_names()]
        .concat()
        .join(", ")
}
fn esp_keywords() -> String {
    [suite_names(), group_names(), vec!["esn", "noesn"]]
        .concat()
        .join(", ")
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

fn is_integrity(token: &str) -> bool {
    INTEGRITY_KEYWORDS
        .iter()
        .any(|k| k.eq_ignore_ascii_case(token))
}

impl FromStr for IkeProposal {
    type Err = ProposalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const KIND: &str = "IKE";
        let proposal = s.trim().to_owned();
        let mut p = IkeProposal {
            encr: Vec::new(),
            prf: Vec::new(),
            dh: Vec::new(),
        };
        for token in tokens(s, KIND, "aes256gcm16-prfsha256-x25519")? {
            if let Some(x) = Suite::from_name(token) {
                push_unique(&mut p.encr, x);
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
            } else if is_integrity(token) {
                return Err(ProposalError::Integrity {
                    kind: KIND,
                    proposal,
                    token: token.to_owned(),
                    valid: ike_keywords(),
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
        if p.encr.is_empty() {
            return Err(missing("encryption algorithm", suite_names()));
        }
        if p.prf.is_empty() {
            return Err(missing("PRF", prf_names()));
        }
        if p.dh.is_empty() {
            return Err(missing("DH group", group_names()));
        }
        Ok(p)
    }
}

impl FromStr for EspProposal {
    type Err = ProposalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const KIND: &str = "ESP";
        let proposal = s.trim().to_owned();
        let mut p = EspProposal {
            encr: Vec::new(),
            dh: Vec::new(),
            esn: Vec::new(),
        };
        for token in tokens(s, KIND, "aes256gcm16-x25519")? {
            if let Some(x) = Suite::from_name(token) {
                push_unique(&mut p.encr, x);
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
            } else if is_integrity(token) {
                return Err(ProposalError::Integrity {
                    kind: KIND,
                    proposal,
                    token: token.to_owned(),
                    valid: esp_keywords(),
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
                valid: suite_names().join(", "),
            });
        }
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

fn encr_transform(s: Suite) -> OfferedTransform {
    transform(TRANSFORM_ENCR, s.transform_id(), s.key_length_attribute())
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
/// from 1: ENCR, PRF and D-H transforms in configured order, no INTEG (AEAD).
pub fn offer_ike(ours: &[IkeProposal]) -> Vec<OfferedProposal> {
    numbered(ours, |p| {
        p.encr
            .iter()
            .map(|s| encr_transform(*s))
            .chain(p.prf.iter().map(|x| transform(TRANSFORM_PRF, x.id(), None)))
            .chain(p.dh.iter().map(|g| transform(TRANSFORM_DH, g.id(), None)))
            .collect()
    })
}

/// Our ESP proposals as transforms, numbered from 1: ENCR, D-H (only with
/// PFS) and ESN transforms in configured order, no INTEG (AEAD). For the
/// CHILD_SA of IKE_AUTH, which has no KE, pass proposals without DH groups.
pub fn offer_esp(ours: &[EspProposal]) -> Vec<OfferedProposal> {
    numbered(ours, |p| {
        p.encr
            .iter()
            .map(|s| encr_transform(*s))
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

/// INTEG must be absent or offer NONE: AEAD needs no integrity transform
/// (RFC 5282 §8).
fn integ_ok(p: &OfferedProposal) -> bool {
    !has_kind(p, TRANSFORM_INTEG)
        || of_kind(p, TRANSFORM_INTEG).any(|(_, t)| t.id == INTEG_NONE && t.key_length.is_none())
}

/// The initiator's first ENCR transform that `allowed` contains, and its
/// position.
fn pick_encr(p: &OfferedProposal, allowed: &[Suite]) -> Option<(usize, Suite)> {
    of_kind(p, TRANSFORM_ENCR)
        .filter_map(|(i, t)| Some((i, suite_from_transform(t.id, t.key_length)?)))
        .find(|(_, s)| allowed.contains(s))
}

/// The initiator's first fixed-length transform of `kind` that `accept` maps
/// to something, and its position. PRF, D-H and ESN transforms take no Key
/// Length attribute (RFC 7296 §3.3.5), so one that carries it is not one we
/// understand.
fn pick<T>(p: &OfferedProposal, kind: u8, accept: impl Fn(u16) -> Option<T>) -> Option<(usize, T)> {
    of_kind(p, kind)
        .filter(|(_, t)| t.key_length.is_none())
        .find_map(|(i, t)| Some((i, accept(t.id)?)))
}

/// How much the initiator prefers a selection: the positions of the chosen
/// transforms, most significant type first. Lower is preferred.
type Rank = [usize; 3];

fn select_ike(p: &OfferedProposal, q: &IkeProposal) -> Option<(Rank, IkeAlgorithms)> {
    let (ie, encr) = pick_encr(p, &q.encr)?;
    let (ip, prf) = pick(p, TRANSFORM_PRF, |id| {
        Prf::from_id(id).filter(|x| q.prf.contains(x))
    })?;
    let (id, dh) = pick(p, TRANSFORM_DH, |id| {
        DhGroup::from_id(id).filter(|g| q.dh.contains(g))
    })?;
    Some(([ie, ip, id], IkeAlgorithms { encr, prf, dh }))
}

fn select_esp(p: &OfferedProposal, q: &EspProposal) -> Option<(Rank, EspAlgorithms)> {
    let (ie, encr) = pick_encr(p, &q.encr)?;
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
    Some(([ie, id, in_], EspAlgorithms { encr, dh, esn }))
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
        .filter(|p| types_understood(p, allowed_types) && integ_ok(p))
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
/// more preferred cipher, then PRF, then group). Returns the proposal's
/// number and the algorithms, or `None` for NO_PROPOSAL_CHOSEN.
///
/// A proposal is skipped if it has a Transform Type not defined for IKE, lacks
/// ENCR, PRF or D-H, or has INTEG transforms none of which is NONE. A
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
/// the ESP Transform Types: ENCR is required; no D-H transform (or D-H NONE)
/// means no PFS and matches only a proposal of ours without groups, while a
/// group matches only one listing it; no ESN transform means no ESN.
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

/// The proposal of ours a response's number refers to: `ours` must be the
/// list that was passed to [`offer_ike`]/[`offer_esp`].
fn answered<'a, P>(resp: &OfferedProposal, ours: &'a [P]) -> Option<&'a P> {
    ours.get(usize::from(resp.number).checked_sub(1)?)
}

/// Initiator's check of the responder's choice (RFC 7296 §3.3.6: the accepted
/// offer must be consistent with one of our proposals): the response must
/// name one of our proposals by number and carry exactly one ENCR, PRF and
/// D-H transform, each one we offered in that proposal, and nothing else.
pub fn accept_ike_response(resp: &OfferedProposal, ours: &[IkeProposal]) -> Option<IkeAlgorithms> {
    let q = answered(resp, ours)?;
    if !resp
        .transforms
        .iter()
        .all(|t| [TRANSFORM_ENCR, TRANSFORM_PRF, TRANSFORM_DH].contains(&t.kind))
    {
        return None;
    }
    let e = exactly_one(resp, TRANSFORM_ENCR).ok()??;
    let p = exactly_one(resp, TRANSFORM_PRF).ok()??;
    let d = exactly_one(resp, TRANSFORM_DH).ok()??;
    let encr = suite_from_transform(e.id, e.key_length).filter(|s| q.encr.contains(s))?;
    let prf = Prf::from_id(p.id).filter(|x| q.prf.contains(x) && p.key_length.is_none())?;
    let dh = DhGroup::from_id(d.id).filter(|g| q.dh.contains(g) && d.key_length.is_none())?;
    Some(IkeAlgorithms { encr, prf, dh })
}

/// Initiator's check of an ESP response: it must name one of our proposals
/// and carry exactly one ENCR and one ESN transform, and one D-H transform
/// exactly when that proposal offered groups, each one we offered.
pub fn accept_esp_response(resp: &OfferedProposal, ours: &[EspProposal]) -> Option<EspAlgorithms> {
    let q = answered(resp, ours)?;
    if !resp
        .transforms
        .iter()
        .all(|t| [TRANSFORM_ENCR, TRANSFORM_DH, TRANSFORM_ESN].contains(&t.kind))
    {
        return None;
    }
    let e = exactly_one(resp, TRANSFORM_ENCR).ok()??;
    let encr = suite_from_transform(e.id, e.key_length).filter(|s| q.encr.contains(s))?;
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
