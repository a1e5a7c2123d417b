//! Why a datagram or payload chain was refused.
//!
//! Each variant carries what was being read and where (offsets are into the buffer handed to
//! the public parse function: the IKE message for [`super::Message::parse`], the decrypted
//! chain for [`super::parse_chain`]), so a dropped packet can be explained from a log line and a
//! capture. The state machine mostly only needs to know that parsing failed; the variants it acts
//! on are [`ParseError::BadVersion`] (answer INVALID_MAJOR_VERSION) and, inside an encrypted
//! message, any error at all (answer INVALID_SYNTAX, RFC 7296 section 2.21.2).

use super::numbers::PayloadType;

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// A field or structure runs past the end of the bytes that contain it.
    #[error("truncated {what} at offset {offset}: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        offset: usize,
        need: usize,
        have: usize,
    },

    /// A length field disagrees with the bytes actually there (header length vs datagram,
    /// substructure lengths vs their container, counts vs contents).
    #[error("{what} at offset {offset} declares {declared} bytes but {actual} are there")]
    LengthMismatch {
        what: &'static str,
        offset: usize,
        declared: usize,
        actual: usize,
    },

    /// Major version other than 2. RFC 7296 section 2.5: the receiver answers
    /// INVALID_MAJOR_VERSION (use [`super::Header::decode`] to get the SPIs and message ID).
    #[error("IKE major version {major}.{minor} is not 2")]
    BadVersion { major: u8, minor: u8 },

    /// Bytes follow the Encrypted (SK) or Encrypted Fragment (SKF) payload, which RFC 7296
    /// section 3.14 and RFC 7383 section 2.5 require to be last.
    #[error("{extra} bytes follow the {payload:?} payload at offset {offset}; it must be last")]
    PayloadAfterSk {
        payload: PayloadType,
        offset: usize,
        extra: usize,
    },

    /// An SK or SKF payload inside an already decrypted chain (RFC 7296 section 3: "an
    /// Encrypted payload MUST NOT contain another Encrypted payload").
    #[error("{payload:?} payload at offset {offset} inside an encrypted chain")]
    NestedEncrypted { payload: PayloadType, offset: usize },

    /// Bytes left over after a structure that should have filled its container: after the last
    /// payload of a chain, after the last proposal, selector or SPI of a payload.
    #[error("{extra} stray bytes after the {what} at offset {offset}")]
    TrailingBytes {
        what: &'static str,
        offset: usize,
        extra: usize,
    },

    /// More payloads in one chain than [`super::MAX_PAYLOADS`].
    #[error("more than {limit} payloads in one chain")]
    ChainTooLong { limit: usize },

    /// More items of one kind (proposals, transforms, selectors, attributes, SPIs) than we
    /// accept in one payload.
    #[error("more than {limit} {what} in the payload at offset {offset}")]
    TooMany {
        what: &'static str,
        offset: usize,
        limit: usize,
    },

    /// The generic payload header's length is below 4 or past the end of the message.
    #[error("payload {payload:?} at offset {offset} has length {length}, {reason}")]
    BadPayloadLength {
        payload: PayloadType,
        offset: usize,
        length: usize,
        reason: &'static str,
    },

    /// The payload body breaks a rule of its format (RFC 7296 section 3.x).
    #[error("invalid {payload:?} payload at offset {offset}: {reason}")]
    InvalidSyntax {
        payload: PayloadType,
        offset: usize,
        reason: &'static str,
    },

    /// A traffic selector type this gateway cannot represent (only TS_IPV4_ADDR_RANGE and
    /// TS_IPV6_ADDR_RANGE are). Refused rather than skipped: dropping a selector would widen or
    /// change what the peer asked for.
    #[error("unsupported traffic selector type {ts_type} at offset {offset}")]
    UnsupportedTsType { ts_type: u8, offset: usize },
}
