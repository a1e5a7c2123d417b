//! Sans-IO IKEv2 (RFC 7296) for site-to-site gateways: bytes and `now` in, bytes to send,
//! events and deadlines out. No sockets, threads, clocks or sleeping here.
//!
//! [`Endpoint`] is the entry point: feed it datagrams with [`Endpoint::handle`] and expired
//! deadlines with [`Endpoint::handle_timeout`]; drain [`Endpoint::poll_transmit`] and
//! [`Endpoint::poll_event`]; sleep until [`Endpoint::poll_timeout`].
//!
//! How a datagram travels through the engine and on to the daemon: `ARCHITECTURE.md`, "Life of an
//! IKE message".

// The engine parses hostile bytes and needs no raw memory access: keep it that way.
#![forbid(unsafe_code)]

pub mod authlimit;
pub mod config;
pub mod cookie_secret;
pub mod credentials;
pub mod crypto;
mod deadlines;
pub mod endpoint;
pub mod events;
pub(crate) mod index;
mod invalid_spi;
pub mod peer_text;
pub mod pool;
mod sa;
mod spi;
mod stats;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod ts;
pub mod wire;

pub use config::{EndpointConfig, Identity, Keymat, Lifetimes, PeerConfig, Psk, Retransmit};
pub use credentials::{Credential, Credentials, LocalAuth, PeerTrust, RemoteAuth, SendCert};
pub use endpoint::{ChildSummary, CommandError, Endpoint, IkeSaSummary, PeerLiveness};
pub use events::{
    ChildSaInfo, CloseReason, EapBytes, Event, IkeSaId, NatDetected, RadiusAnswer, Transmit,
};
pub use ironsec_eap as eap;
pub use ironsec_pki as pki;
pub use peer_text::PeerText;
pub use stats::{EapFailure, EapFailureCounts, EndpointStats};
