//! The IKEv2 wire codec (RFC 7296 section 3, RFC 7383, RFC 5282): bytes to typed payloads and
//! back, with nothing else. It never panics on any input: every read is bounds-checked (see
//! `reader`), every count is bounded before anything is allocated for it, and every length
//! field is checked against the bytes that are there.
//!
//! Parsing is strict where the RFC says MUST and the check costs nothing (lengths, counts,
//! substructure flags, nonce size), because a message that is malformed on the outside is
//! dropped without an answer, whereas a well-formed message with unexpected content is the
//! state machine's to answer. Unknown payload types, notify types, transform types and IDs pass
//! through as `Other` / [`Payload::Unknown`] so the caller can apply the RFC's rules (skip,
//! refuse the transform, answer UNSUPPORTED_CRITICAL_PAYLOAD).
//!
//! Encrypted messages are handled in two steps: [`Message::parse`] reports where the SK (or
//! SKF) payload is as byte ranges ([`Encrypted`]); the caller authenticates and decrypts, strips
//! the padding and feeds the inner chain to [`parse_chain`]. For sending, [`encode_chain`] the
//! inner payloads, then [`layout_sk`] gives the final message with room for IV and ICV.
//!
//! Module map: `numbers` (IANA registries), `header`, `payload` (generic header, chains,
//! [`Payload`]), one module per payload family (`sa`, `ke`, `id`, `auth`, `notify`, `delete`,
//! `ts`, `cp`, `eap`), `payloads` (typed lookups in a chain), `message` (whole messages), `sk` (encrypted layouts), `reader` (the
//! bounds-checked cursor), `error`.

mod auth;
mod cp;
mod delete;
mod eap;
mod error;
mod header;
mod id;
mod ke;
mod message;
mod notify;
mod numbers;
mod payload;
mod payloads;
mod reader;
mod sa;
mod sk;
mod ts;

pub use auth::{AuthPayload, CertPayload, CERT_X509_SIGNATURE};
pub use cp::{CpPayload, CFG_ACK, CFG_REPLY, CFG_REQUEST, CFG_SET};
pub use delete::DeletePayload;
pub use eap::{EapPayload, EAP_FAILURE, EAP_REQUEST, EAP_RESPONSE, EAP_SUCCESS};
pub use error::ParseError;
pub use header::{Flags, Header, HEADER_LEN};
pub use id::IdPayload;
pub use ke::{KePayload, NONCE_MAX, NONCE_MIN};
pub use message::{encode_message, Encrypted, Message, SKF_HEADER_LEN};
pub use notify::NotifyPayload;
pub use numbers::{
    AuthMethod, ExchangeType, IdType, NotifyType, PayloadType, ProtocolId, TransformType, TsType,
    ATTR_FORMAT_TV, ATTR_KEY_LENGTH,
};
pub use payload::{encode_chain, parse_chain, Payload, GENERIC_HEADER_LEN};
pub use payloads::Payloads;
pub use sa::{Proposal, SaPayload, Transform};
pub use sk::{layout_sk, layout_skf, SkLayout, SkShape};
pub use ts::{TrafficSelector, TS_IPV4_LEN, TS_IPV6_LEN};

/// The four zero bytes before an IKE message on UDP port 4500 (RFC 3948 section 2.2), which
/// tell it from ESP (whose SPI is never 0). Not part of the IKE message or any length.
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// At most this many payloads in one chain (the cleartext part of a message, or one decrypted
/// inner chain). Real messages carry a dozen at most; the bound keeps a hostile datagram full
/// of 4-byte empty payloads from costing more than a small allocation.
pub const MAX_PAYLOADS: usize = 64;
/// At most this many proposals in an SA payload.
pub const MAX_PROPOSALS: usize = 64;
/// At most this many transforms in a proposal.
pub const MAX_TRANSFORMS: usize = 64;
/// At most this many traffic selectors in a TS payload.
pub const MAX_SELECTORS: usize = 64;
/// At most this many attributes in a transform or a CP payload.
pub const MAX_ATTRIBUTES: usize = 64;
/// At most this many SPIs in a Delete payload.
pub const MAX_DELETE_SPIS: usize = 1024;
