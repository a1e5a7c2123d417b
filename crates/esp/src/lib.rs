//! ESP (RFC 4303) carried in UDP (RFC 3948) for a userspace gateway.
//!
//! The crate is sans-IO: it turns buffers into buffers and never touches a
//! socket, a thread, a clock or a logger, so the dataplane decides batching and
//! threading and every rule here is a plain unit test. Packets are processed in
//! place because the fast path must not allocate per packet: an outbound inner
//! packet is written [`HEADROOM`] bytes into its buffer with [`MAX_TRAILER`]
//! spare bytes after it, and an inbound ESP packet is decrypted where it lies.
//!
//! Only AEAD suites with a 16-byte ICV are offered (AES-GCM, RFC 4106;
//! ChaCha20-Poly1305, RFC 7634): they need no separate integrity transform and
//! are what strongSwan proposes by default for ESP. All cryptography is
//! `ring`'s.
//!
//! No input bytes can make this crate panic: malformed, forged or replayed
//! packets come back as error values for the caller to count.
//!
//! Where this crate sits among the others: `ARCHITECTURE.md` at the repository root.

#![forbid(unsafe_code)]

mod cipher;
mod classify;
mod inbound;
mod outbound;
mod replay;
mod suite;
mod trailer;

#[cfg(test)]
mod kat;

pub use classify::{classify, Datagram, MalformedKind};
pub use inbound::{peek_spi, InboundSa, OpenError, Opened};
pub use outbound::{OutboundSa, SealError};
pub use replay::{ReplayError, ReplayWindow, DEFAULT_REPLAY_WINDOW, MAX_REPLAY_WINDOW};
pub use suite::{CbcCipher, Encr, Integ, KeyError, Suite, UnknownSuite};

/// SPI plus the low 32 bits of the sequence number: the part of the header
/// that is always on the wire, ESN or not.
pub const SPI_SEQ_LEN: usize = 8;
/// Explicit per-packet IV of the AEAD suites (RFC 4106 §3.1, RFC 7634 §2).
pub const IV_LEN: usize = 8;
/// All offered suites use the full 16-byte tag; shorter GCM ICVs are not
/// offered because they weaken forgery resistance for no real saving.
pub const ICV_LEN: usize = 16;
/// Bytes an inner packet must be preceded by in its buffer so that sealing
/// can write the ESP header in front of it without moving the packet.
pub const HEADROOM: usize = SPI_SEQ_LEN + IV_LEN;
/// Worst-case bytes sealing appends after the inner packet: up to 3 padding
/// bytes (to 4-byte alignment), pad length, next header and the ICV.
pub const MAX_TRAILER: usize = 3 + 2 + ICV_LEN;
/// Smallest ESP packet that can be valid: header, IV, an empty payload's pad
/// length and next header, and the ICV.
pub const MIN_ESP_LEN: usize = HEADROOM + 2 + ICV_LEN;

/// Next header of a tunnelled IPv4 packet (IP-in-IP protocol number).
pub const NEXT_HEADER_IPV4: u8 = 4;
/// Next header of a tunnelled IPv6 packet.
pub const NEXT_HEADER_IPV6: u8 = 41;
/// "No next header": marks a dummy packet sent for traffic flow
/// confidentiality (RFC 4303 §2.6), which the receiver must discard.
pub const NEXT_HEADER_NONE: u8 = 59;
