//! ESP (RFC 4303) carried in UDP (RFC 3948) for a userspace gateway.
//!
//! The crate is sans-IO: it turns buffers into buffers and never touches a
//! socket, a thread, a clock or a logger, so the dataplane decides batching and
//! threading and every rule here is a plain unit test. Packets are processed in
//! place because the fast path must not allocate per packet: an outbound inner
//! packet is written [`HEADROOM`] bytes into its buffer with [`MAX_TRAILER`]
//! spare bytes after it, and an inbound ESP packet is decrypted where it lies.
//!
//! Suites ([`Suite`]): the AEADs with a 16-byte ICV (AES-GCM, RFC 4106;
//! ChaCha20-Poly1305, RFC 7634), which are what strongSwan proposes by default,
//! and AES-CBC (RFC 3602) with HMAC-SHA-1-96 (RFC 2404) or HMAC-SHA-2 truncated
//! to half (RFC 4868), encrypt-then-MAC, which is what most other gear proposes.
//! The AEADs and the HMACs are `ring`'s; AES-CBC is RustCrypto's `aes` and
//! `cbc` (ring has no CBC mode).
//!
//! The suites differ in header (IV of 8 or 16 bytes), padding (to 4 or 16
//! bytes) and ICV (12 to 32 bytes), so the buffer constants are the maxima
//! over all suites and every SA answers for its own sizes
//! ([`Suite::header_len`], [`Suite::sealed_len`]): an inner packet always sits
//! at [`HEADROOM`], and the sealed packet starts wherever its SA's header has
//! to (`HEADROOM - header_len`), which [`OutboundSa::seal_in_place`] returns.
//! The AEAD path pays nothing for this: one subtraction.
//!
//! No input bytes can make this crate panic: malformed, forged or replayed
//! packets come back as error values for the caller to count.
//!
//! Where this crate sits among the others: `ARCHITECTURE.md` at the repository root.

#![forbid(unsafe_code)]

mod cbc;
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
/// Longest explicit per-packet IV of any suite: the AES block of AES-CBC
/// (RFC 3602 §3). The AEADs' is 8 bytes (RFC 4106 §3.1, RFC 7634 §2).
pub const MAX_IV_LEN: usize = 16;
/// Longest ICV of any suite: HMAC-SHA-512-256 (RFC 4868). The AEADs' is 16;
/// shorter GCM ICVs are not offered because they weaken forgery resistance
/// for no real saving.
pub const MAX_ICV_LEN: usize = 32;
/// Largest unit the encrypted body is padded to: the AES block for CBC.
pub const MAX_BLOCK_LEN: usize = 16;
/// Bytes an inner packet must be preceded by in its buffer so that sealing
/// can write any suite's ESP header in front of it without moving the
/// packet. A suite with a shorter header starts its packet further in.
pub const HEADROOM: usize = SPI_SEQ_LEN + MAX_IV_LEN;
/// Worst-case bytes sealing appends after the inner packet, over all suites:
/// up to 15 padding bytes (to a 16-byte block), pad length, next header and
/// the longest ICV.
pub const MAX_TRAILER: usize = MAX_BLOCK_LEN - 1 + 2 + MAX_ICV_LEN;
/// Smallest ESP packet that any suite could accept (an AEAD's: 16-byte
/// header, pad length and next header, 16-byte ICV); each SA checks its own
/// [`Suite::min_packet_len`].
pub const MIN_ESP_LEN: usize = SPI_SEQ_LEN + 8 + 2 + 16;

/// Next header of a tunnelled IPv4 packet (IP-in-IP protocol number).
pub const NEXT_HEADER_IPV4: u8 = 4;
/// Next header of a tunnelled IPv6 packet.
pub const NEXT_HEADER_IPV6: u8 = 41;
/// "No next header": marks a dummy packet sent for traffic flow
/// confidentiality (RFC 4303 §2.6), which the receiver must discard.
pub const NEXT_HEADER_NONE: u8 = 59;
