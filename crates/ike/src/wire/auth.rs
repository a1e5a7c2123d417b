//! What proves an identity: AUTH (RFC 7296 section 3.8), CERT and CERTREQ (sections 3.6,
//! 3.7).
//!
//! ```text
//! AUTH          = Auth Method | RESERVED(3) | Authentication Data
//! CERT, CERTREQ = Cert Encoding | Certificate Data / Certification Authority
//! ```

use super::error::ParseError;
use super::numbers::{AuthMethod, PayloadType};
use super::reader::{Reader, Writer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthPayload {
    pub method: AuthMethod,
    /// The MIC or signature; never empty (checked on parse).
    pub data: Vec<u8>,
}

impl AuthPayload {
    pub(crate) fn parse(mut r: Reader) -> Result<AuthPayload, ParseError> {
        let offset = r.offset();
        let method = AuthMethod::from(r.u8("AUTH header")?);
        r.skip(3, "AUTH header")?;
        let data = r.rest().to_vec();
        if data.is_empty() {
            return Err(ParseError::InvalidSyntax {
                payload: PayloadType::Auth,
                offset,
                reason: "empty authentication data",
            });
        }
        Ok(AuthPayload { method, data })
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.u8(self.method.number());
        w.zeros(3);
        w.bytes(&self.data);
    }
}

/// Certificate Encoding "X.509 Certificate - Signature" (RFC 7296 §3.6): a DER certificate in
/// CERT, concatenated SHA-1 hashes of trust anchors' SubjectPublicKeyInfo in CERTREQ. The only
/// encoding ironsec sends or reads; others are ignored.
pub const CERT_X509_SIGNATURE: u8 = 4;

/// A CERT payload (a certificate, `encoding` 4 for X.509 signature) or a CERTREQ payload (the
/// SHA-1 hashes of acceptable CA keys, possibly none). Both are kept opaque here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertPayload {
    pub encoding: u8,
    pub data: Vec<u8>,
}

impl CertPayload {
    pub(crate) fn parse(mut r: Reader) -> Result<CertPayload, ParseError> {
        let encoding = r.u8("certificate encoding")?;
        let data = r.rest().to_vec();
        Ok(CertPayload { encoding, data })
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.u8(self.encoding);
        w.bytes(&self.data);
    }
}
