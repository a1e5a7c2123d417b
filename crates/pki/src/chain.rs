//! Chain building and validation (RFC 5280 §6, the parts IPsec uses): from an end-entity
//! certificate through intermediates (sent by the peer or configured) to a trust anchor.

use crate::cert::Certificate;
use crate::crl::Crl;

/// Trust anchors (every CA certificate configured as trusted, self-signed or not, as
/// strongSwan's x509ca directory) and the CRLs loaded with them.
#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    // chosen by the implementation
}

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
        todo!()
    }
    pub fn anchors(&self) -> &[Certificate] {
        todo!()
    }
    pub fn crls(&self) -> &[Crl] {
        todo!()
    }
    /// SHA-1 SPKI hashes of the anchors, concatenated: a CERTREQ payload's body.
    pub fn certreq_hashes(&self) -> Vec<u8> {
        todo!()
    }
    /// Validates `end` at `now` (Unix seconds) using `intermediates` (any order, may hold
    /// unrelated certificates) to reach an anchor. Returns the chain from `end` to the anchor.
    /// Checks: validity periods of every certificate in the path, signatures, basicConstraints
    /// cA and pathLen and keyCertSign on every issuer, digitalSignature on `end`, revocation of
    /// every non-anchor certificate by a CRL of its issuer whose signature verifies with that
    /// issuer's key (a CRL past nextUpdate is still used). `end` being itself an anchor is
    /// accepted if valid.
    pub fn validate(
        &self,
        end: &Certificate,
        intermediates: &[Certificate],
        now: i64,
    ) -> Result<Vec<Certificate>, ChainError> {
        todo!()
    }
}
