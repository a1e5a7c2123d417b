//! Certificate revocation lists (RFC 5280 §5), from PEM `X509 CRL` or DER.

use crate::dn::DistinguishedName;

#[derive(Clone, Debug)]
pub struct Crl {
    // chosen by the implementation
}

impl Crl {
    /// Every CRL in a file's bytes (PEM blocks or one DER).
    pub fn all_from_pem_or_der(bytes: &[u8]) -> Result<Vec<Crl>, crate::CertError> {
        todo!()
    }
    pub fn issuer(&self) -> &DistinguishedName {
        todo!()
    }
    /// thisUpdate / nextUpdate (Unix seconds).
    pub fn this_update(&self) -> i64 {
        todo!()
    }
    pub fn next_update(&self) -> Option<i64> {
        todo!()
    }
    /// Whether `serial` (big-endian, no leading zeros) is listed.
    pub fn revokes(&self, serial: &[u8]) -> bool {
        todo!()
    }
    /// The CRL's signature, made by `issuer`'s key.
    pub fn signed_by(&self, issuer: &crate::Certificate) -> Result<(), crate::SigError> {
        todo!()
    }
}
