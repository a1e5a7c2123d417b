//! Certificate revocation lists (RFC 5280 §5), from PEM `X509 CRL` or DER.

use std::collections::HashSet;
use std::sync::Arc;

use crate::cert::{name, normalize_serial, pem_blocks, sig_alg_after, CertError};
use crate::dn::DistinguishedName;
use crate::signature::{verify, SignatureScheme};

#[derive(Clone, Debug)]
pub struct Crl {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    issuer: DistinguishedName,
    this_update: i64,
    next_update: Option<i64>,
    /// Normalised serials (see [`crate::Certificate::serial`]).
    revoked: HashSet<Vec<u8>>,
    tbs: Vec<u8>,
    sig_alg: Vec<u8>,
    signature: Vec<u8>,
}

impl Crl {
    /// One CRL from DER.
    pub fn from_der(der: &[u8]) -> Result<Crl, CertError> {
        let (rest, crl) = x509_parser::parse_x509_crl(der)
            .map_err(|e| CertError::Malformed(format!("CRL: {e}")))?;
        if !rest.is_empty() {
            return Err(CertError::Malformed("trailing data after the CRL".into()));
        }
        let der = &der[..der.len() - rest.len()];
        let tbs = &crl.tbs_cert_list;
        if tbs.signature != crl.signature_algorithm {
            return Err(CertError::Malformed(
                "CRL signature algorithm differs inside and outside the signed part".into(),
            ));
        }
        let inner = Inner {
            issuer: name(&tbs.issuer),
            this_update: tbs.this_update.timestamp(),
            next_update: tbs.next_update.map(|t| t.timestamp()),
            revoked: tbs
                .revoked_certificates
                .iter()
                .map(|r| normalize_serial(r.raw_serial()))
                .collect(),
            tbs: tbs.as_ref().to_vec(),
            sig_alg: sig_alg_after(der, tbs.as_ref())?,
            signature: crl.signature_value.data.to_vec(),
        };
        Ok(Crl {
            inner: Arc::new(inner),
        })
    }

    /// Every CRL in a file's bytes (PEM blocks or one DER).
    pub fn all_from_pem_or_der(bytes: &[u8]) -> Result<Vec<Crl>, crate::CertError> {
        match pem_blocks(bytes, &["X509 CRL"]) {
            None if bytes.is_empty() => Err(CertError::NotFound),
            None => Ok(vec![Crl::from_der(bytes)?]),
            Some(Err(e)) => Err(CertError::Malformed(e)),
            Some(Ok(blocks)) if blocks.is_empty() => Err(CertError::NotFound),
            Some(Ok(blocks)) => blocks.iter().map(|b| Crl::from_der(b)).collect(),
        }
    }
    pub fn issuer(&self) -> &DistinguishedName {
        &self.inner.issuer
    }
    /// thisUpdate / nextUpdate (Unix seconds).
    pub fn this_update(&self) -> i64 {
        self.inner.this_update
    }
    pub fn next_update(&self) -> Option<i64> {
        self.inner.next_update
    }
    /// How many certificates it lists as revoked (for `ironsecctl certs`).
    pub fn revoked_count(&self) -> usize {
        self.inner.revoked.len()
    }
    /// Whether `serial` (big-endian, no leading zeros) is listed.
    pub fn revokes(&self, serial: &[u8]) -> bool {
        self.inner.revoked.contains(&normalize_serial(serial))
    }
    /// The CRL's signature, made by `issuer`'s key.
    pub fn signed_by(&self, issuer: &crate::Certificate) -> Result<(), crate::SigError> {
        let scheme = SignatureScheme::from_algorithm_identifier(&self.inner.sig_alg)
            .ok_or(crate::SigError::Unsupported)?;
        verify(
            issuer.spki(),
            scheme,
            &self.inner.tbs,
            &self.inner.signature,
        )
    }
}
