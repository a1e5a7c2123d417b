//! Key exchange material: the KE payload (RFC 7296 section 3.4) and the Nonce payload
//! (section 3.9).
//!
//! ```text
//! KE    = Diffie-Hellman Group Num(2) | RESERVED(2) | Key Exchange Data
//! Nonce = Nonce Data                                  (16 to 256 bytes)
//! ```

use super::error::ParseError;
use super::numbers::PayloadType;
use super::reader::{Reader, Writer};

/// RFC 7296 section 3.9: "The size of the Nonce Data MUST be between 16 and 256 octets,
/// inclusive."
pub const NONCE_MIN: usize = 16;
pub const NONCE_MAX: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KePayload {
    pub group: u16,
    /// The public value; its length depends on the group and is checked by the crypto
    /// module, which also answers INVALID_SYNTAX / INVALID_KE_PAYLOAD.
    pub data: Vec<u8>,
}

impl KePayload {
    pub(crate) fn parse(mut r: Reader) -> Result<KePayload, ParseError> {
        let group = r.u16("KE header")?;
        r.skip(2, "KE header")?;
        let data = r.rest().to_vec();
        Ok(KePayload { group, data })
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.u16(self.group);
        w.zeros(2);
        w.bytes(&self.data);
    }
}

pub(crate) fn parse_nonce(mut r: Reader) -> Result<Vec<u8>, ParseError> {
    let offset = r.offset();
    let data = r.rest();
    if !(NONCE_MIN..=NONCE_MAX).contains(&data.len()) {
        return Err(ParseError::InvalidSyntax {
            payload: PayloadType::Nonce,
            offset,
            reason: "nonce is not 16 to 256 bytes",
        });
    }
    Ok(data.to_vec())
}
