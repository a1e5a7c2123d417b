//! EAP for IKEv2 remote access (RFC 7296 §2.16), sans-IO: bytes in, bytes out, randomness
//! handed in by the caller.
//!
//! - [`codec`]: EAP packets and the EAP-MSCHAPv2 type-data, parsed strictly.
//! - [`mschapv2`]: EAP-MSCHAPv2 (RFC 2759 computations, the MSK as strongSwan derives it, the
//!   server and the client state machines).
//! - [`tls`]: EAP-TLS (RFC 5216) over rustls driven from memory, TLS 1.2, client certificates
//!   checked by `ironsec_pki`; server and client.
//! - [`users`]: the users file (`name:NT-hash`) and [`nthash`].
//! - [`radius`]: a RADIUS client for EAP pass-through (RFC 2865, RFC 3579, RFC 2548).
//!
//! A crate of its own so that MD4, DES and rustls (EAP-TLS) (and later MD5 for RADIUS) stay
//! out of the IKE engine's other code; see ARCHITECTURE.md.

#![forbid(unsafe_code)]

pub mod codec;
pub mod mschapv2;
pub mod radius;
pub mod tls;
pub mod users;

pub use codec::{Body, Code, MsChapV2, Packet, ParseError};
pub use mschapv2::{Client, ClientStep, FailReason, Msk, Server, ServerStep};
pub use users::{nthash, NtHash, Users, UsersError, UsersErrorKind};
