//! One X.509 certificate, parsed once, with what IKE needs from it.

use std::net::IpAddr;
use std::sync::Arc;

use crate::dn::DistinguishedName;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertError {
    #[error("no certificate found (expected PEM CERTIFICATE or DER)")]
    NotFound,
    #[error("malformed certificate: {0}")]
    Malformed(String),
}

/// A parsed certificate. Cheap to clone (the DER and parsed fields are shared).
#[derive(Clone, Debug)]
pub struct Certificate {
    // chosen by the implementation; holds Arc'd DER and the parsed fields below
    _inner: Arc<()>,
}

impl Certificate {
    /// One certificate from DER.
    pub fn from_der(der: &[u8]) -> Result<Certificate, CertError> {
        todo!()
    }

    /// Every certificate in a file's bytes: all PEM CERTIFICATE blocks in order, or one DER.
    pub fn all_from_pem_or_der(bytes: &[u8]) -> Result<Vec<Certificate>, CertError> {
        todo!()
    }

    pub fn der(&self) -> &[u8] {
        todo!()
    }
    pub fn subject(&self) -> &DistinguishedName {
        todo!()
    }
    pub fn issuer(&self) -> &DistinguishedName {
        todo!()
    }
    /// Serial number, big-endian bytes without leading zeros.
    pub fn serial(&self) -> &[u8] {
        todo!()
    }
    /// notBefore / notAfter, seconds since the Unix epoch.
    pub fn not_before(&self) -> i64 {
        todo!()
    }
    pub fn not_after(&self) -> i64 {
        todo!()
    }
    /// subjectAltName entries.
    pub fn san_dns(&self) -> &[String] {
        todo!()
    }
    pub fn san_email(&self) -> &[String] {
        todo!()
    }
    pub fn san_ip(&self) -> &[IpAddr] {
        todo!()
    }
    /// DER SubjectPublicKeyInfo.
    pub fn spki(&self) -> &[u8] {
        todo!()
    }
    /// SHA-1 of the DER SubjectPublicKeyInfo: what CERTREQ lists for a trust anchor
    /// (RFC 7296 §3.7; strongSwan's KEYID_PUBKEY_INFO_SHA1).
    pub fn spki_sha1(&self) -> [u8; 20] {
        todo!()
    }
    /// basicConstraints cA, and its pathLenConstraint.
    pub fn is_ca(&self) -> bool {
        todo!()
    }
    pub fn path_len(&self) -> Option<u32> {
        todo!()
    }
    /// keyUsage allows keyCertSign (true when the extension is absent).
    pub fn may_sign_certs(&self) -> bool {
        todo!()
    }
    /// keyUsage allows cRLSign (true when absent).
    pub fn may_sign_crls(&self) -> bool {
        todo!()
    }
    /// keyUsage allows digitalSignature (true when absent): an end-entity key signing AUTH.
    pub fn may_sign_data(&self) -> bool {
        todo!()
    }
    /// Self-issued and self-signed (the signature verifies with its own key).
    pub fn is_self_signed(&self) -> bool {
        todo!()
    }
    /// Days from `now` (Unix seconds) to notAfter, rounded down; negative once expired.
    pub fn days_left(&self, now: i64) -> i64 {
        todo!()
    }
    /// The certificate's own signature, made by `issuer`'s key.
    pub fn signed_by(&self, issuer: &Certificate) -> Result<(), crate::SigError> {
        todo!()
    }
    /// SHA-256 fingerprint of the DER, for logs and `ironsecctl certs`.
    pub fn fingerprint(&self) -> [u8; 32] {
        todo!()
    }
}
