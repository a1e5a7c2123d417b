//! The EAP payload (RFC 7296 section 3.16): one EAP message (RFC 3748 section 4), kept
//! opaque after a sanity check of its own header.
//!
//! ```text
//! EAP message = Code | Identifier | Length(2) | Type | Type-Data     (Type only in 1 and 2)
//! ```

use super::error::ParseError;
use super::numbers::PayloadType;
use super::reader::{Reader, Writer};

pub const EAP_REQUEST: u8 = 1;
pub const EAP_RESPONSE: u8 = 2;
pub const EAP_SUCCESS: u8 = 3;
pub const EAP_FAILURE: u8 = 4;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EapPayload {
    /// The whole EAP message, its header included.
    pub data: Vec<u8>,
}

impl EapPayload {
    /// EAP Code (1 request, 2 response, 3 success, 4 failure).
    pub fn code(&self) -> Option<u8> {
        self.data.first().copied()
    }

    pub fn identifier(&self) -> Option<u8> {
        self.data.get(1).copied()
    }

    pub(crate) fn parse(mut r: Reader) -> Result<EapPayload, ParseError> {
        let offset = r.offset();
        let data = r.rest().to_vec();
        let mut h = Reader::new(&data, offset);
        let code = h.u8("EAP header")?;
        h.skip(1, "EAP header")?;
        let length = usize::from(h.u16("EAP header")?);
        if length != data.len() {
            return Err(ParseError::LengthMismatch {
                what: "EAP message",
                offset,
                declared: length,
                actual: data.len(),
            });
        }
        let ok = match code {
            EAP_REQUEST | EAP_RESPONSE => length >= 5,
            EAP_SUCCESS | EAP_FAILURE => length == 4,
            _ => false,
        };
        if !ok {
            return Err(ParseError::InvalidSyntax {
                payload: PayloadType::Eap,
                offset,
                reason: "EAP code unknown or its length wrong for the code",
            });
        }
        Ok(EapPayload { data })
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.bytes(&self.data);
    }
}
