//! Chain building and validation (RFC 5280 §6, the parts IPsec uses): from an end-entity
//! certificate through intermediates (sent by the peer or configured) to a trust anchor.

use crate::cert::{format_time, Certificate};
use crate::crl::Crl;

/// Trust anchors (every CA certificate configured as trusted, self-signed or not, as
/// strongSwan's x509ca directory) and the CRLs loaded with them.
#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    anchors: Vec<Certificate>,
    crls: Vec<Crl>,
}

/// The longest chain, anchor included, tried: deeper hierarchies do not occur in IPsec
/// deployments, and the bound keeps a peer's pile of intermediates from costing much.
pub const MAX_CHAIN_LEN: usize = 8;

/// Why a certificate was refused. Each names the certificate concerned (its subject) so the
/// log line says which one failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    #[error("certificate '{subject}' expired {days} days ago (notAfter {not_after})")]
    Expired {
        subject: String,
        not_after: String,
        days: i64,
    },
    #[error("certificate '{subject}' is not valid before {not_before}")]
    NotYetValid { subject: String, not_before: String },
    #[error("certificate '{subject}': issuer '{issuer}' is not a trusted CA and no intermediate for it was sent")]
    UnknownIssuer { subject: String, issuer: String },
    #[error("certificate '{subject}' (serial {serial}) is revoked by the CRL of '{issuer}'")]
    Revoked {
        subject: String,
        serial: String,
        issuer: String,
    },
    #[error("certificate '{subject}': signature by '{issuer}' does not verify")]
    BadSignature { subject: String, issuer: String },
    #[error("certificate '{subject}' is used as a CA but {reason}")]
    NotCa {
        subject: String,
        reason: &'static str,
    },
    #[error("certificate '{subject}': path length constraint exceeded")]
    PathLen { subject: String },
    #[error("certificate '{subject}': key usage does not allow digitalSignature")]
    KeyUsage { subject: String },
    #[error("certificate chain longer than {0}")]
    TooLong(usize),
}

impl TrustStore {
    pub fn new(anchors: Vec<Certificate>, crls: Vec<Crl>) -> TrustStore {
        TrustStore { anchors, crls }
    }
    pub fn anchors(&self) -> &[Certificate] {
        &self.anchors
    }
    pub fn crls(&self) -> &[Crl] {
        &self.crls
    }
    /// SHA-1 SPKI hashes of the anchors, concatenated: a CERTREQ payload's body.
    pub fn certreq_hashes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.anchors.len() * 20);
        for a in &self.anchors {
            let h = a.spki_sha1();
            // Two anchors with one key (a re-issued root) need one hash.
            if !out.chunks(20).any(|c: &[u8]| c == h) {
                out.extend_from_slice(&h);
            }
        }
        out
    }

    /// Validates `end` at `now` (Unix seconds) using `intermediates` (any order, may hold
    /// unrelated certificates) to reach an anchor. Returns the chain from `end` to the anchor.
    /// Checks: validity periods of every certificate in the path, signatures, basicConstraints
    /// cA and pathLen and keyCertSign on every issuer, digitalSignature on `end`, revocation of
    /// every non-anchor certificate by a CRL of its issuer whose signature verifies with that
    /// issuer's key (a CRL past nextUpdate is still used). `end` being itself an anchor is
    /// accepted if valid.
    ///
    /// Paths are built by name (issuer DN = subject DN) and signature; when several issuers
    /// fit, each is tried. If no path passes, the error is the first complete path's (so an
    /// expired or revoked certificate is reported as such), else a signature failure, else
    /// the missing issuer.
    pub fn validate(
        &self,
        end: &Certificate,
        intermediates: &[Certificate],
        now: i64,
    ) -> Result<Vec<Certificate>, ChainError> {
        if self.anchors.iter().any(|a| a.der() == end.der()) {
            check_time(end, now)?;
            return Ok(vec![end.clone()]);
        }
        let mut best: Option<(u8, ChainError)> = None;
        let mut path = vec![end.clone()];
        match self.search(&mut path, intermediates, now, &mut best) {
            Some(chain) => Ok(chain),
            None => Err(best.map(|(_, e)| e).unwrap_or(ChainError::UnknownIssuer {
                subject: end.subject().to_string(),
                issuer: end.issuer().to_string(),
            })),
        }
    }

    /// Depth-first search from the last certificate of `path`. Keeps in `best` the most
    /// telling error seen (ranked: a complete path's check 3, bad signature 2, too long 1,
    /// unknown issuer 0; the first of a rank wins).
    fn search(
        &self,
        path: &mut Vec<Certificate>,
        intermediates: &[Certificate],
        now: i64,
        best: &mut Option<(u8, ChainError)>,
    ) -> Option<Vec<Certificate>> {
        let cur = path.last()?.clone();
        let anchors = self.anchors.iter().map(|c| (c, true));
        let others = intermediates.iter().map(|c| (c, false));
        let candidates: Vec<(&Certificate, bool)> = anchors
            .chain(others)
            .filter(|(c, _)| c.subject() == cur.issuer())
            .filter(|(c, _)| !path.iter().any(|p| p.der() == c.der()))
            .collect();
        if candidates.is_empty() {
            note(
                best,
                0,
                ChainError::UnknownIssuer {
                    subject: cur.subject().to_string(),
                    issuer: cur.issuer().to_string(),
                },
            );
            return None;
        }
        for (candidate, is_anchor) in candidates {
            if cur.signed_by(candidate).is_err() {
                note(
                    best,
                    2,
                    ChainError::BadSignature {
                        subject: cur.subject().to_string(),
                        issuer: candidate.subject().to_string(),
                    },
                );
                continue;
            }
            if path.len() + 1 > MAX_CHAIN_LEN {
                note(best, 1, ChainError::TooLong(MAX_CHAIN_LEN));
                continue;
            }
            path.push(candidate.clone());
            if is_anchor {
                match self.check_path(path, now) {
                    Ok(()) => return Some(path.clone()),
                    Err(e) => note(best, 3, e),
                }
            } else if let Some(chain) = self.search(path, intermediates, now, best) {
                return Some(chain);
            }
            path.pop();
        }
        None
    }

    /// The checks on a complete path (end first, anchor last), in the order that names the
    /// most useful reason: validity periods (end first), then CA constraints, then the end's
    /// key usage, then revocation.
    fn check_path(&self, path: &[Certificate], now: i64) -> Result<(), ChainError> {
        for cert in path {
            check_time(cert, now)?;
        }
        for (i, issuer) in path.iter().enumerate().skip(1) {
            let subject = issuer.subject().to_string();
            let is_anchor = i == path.len() - 1;
            let legacy_root = is_anchor && !issuer.has_basic_constraints() && issuer.is_self_signed();
            if !issuer.is_ca() && !legacy_root {
                return Err(ChainError::NotCa {
                    subject,
                    reason: "its basicConstraints do not say cA",
                });
            }
            if !issuer.may_sign_certs() {
                return Err(ChainError::NotCa {
                    subject,
                    reason: "its keyUsage lacks keyCertSign",
                });
            }
            // CA certificates below this one (the end entity does not count).
            if let Some(max) = issuer.path_len() {
                if (i - 1) as u64 > u64::from(max) {
                    return Err(ChainError::PathLen { subject });
                }
            }
        }
        if !path[0].may_sign_data() {
            return Err(ChainError::KeyUsage {
                subject: path[0].subject().to_string(),
            });
        }
        for pair in path.windows(2) {
            let (cert, issuer) = (&pair[0], &pair[1]);
            let revoked = issuer.may_sign_crls()
                && self.crls.iter().any(|crl| {
                    crl.issuer() == cert.issuer()
                        && crl.revokes(cert.serial())
                        && crl.signed_by(issuer).is_ok()
                });
            if revoked {
                return Err(ChainError::Revoked {
                    subject: cert.subject().to_string(),
                    serial: cert.serial_hex(),
                    issuer: issuer.subject().to_string(),
                });
            }
        }
        Ok(())
    }
}

fn note(best: &mut Option<(u8, ChainError)>, rank: u8, e: ChainError) {
    if best.as_ref().map_or(true, |(r, _)| rank > *r) {
        *best = Some((rank, e));
    }
}

fn check_time(cert: &Certificate, now: i64) -> Result<(), ChainError> {
    if now < cert.not_before() {
        return Err(ChainError::NotYetValid {
            subject: cert.subject().to_string(),
            not_before: format_time(cert.not_before()),
        });
    }
    if now > cert.not_after() {
        return Err(ChainError::Expired {
            subject: cert.subject().to_string(),
            not_after: format_time(cert.not_after()),
            days: (now - cert.not_after()).div_euclid(86_400),
        });
    }
    Ok(())
}
