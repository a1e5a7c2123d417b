//! X.509 for IKEv2 authentication (RFC 7296 §2.15, RFC 7427, RFC 4754, RFC 5280).
//!
//! Pure functions of bytes, keys, trust anchors and `now` (seconds since the Unix epoch, handed
//! in by the caller): the daemon reads the files, the `ike` engine decides. Parsing is
//! `x509-parser`; every signature is checked by `ring` (RSA, Ed25519) or RustCrypto (ECDSA).

pub mod cert;
pub mod chain;
pub mod crl;
pub mod dn;
pub mod keys;
pub mod signature;
#[cfg(test)]
mod test_pki;

pub use cert::{CertError, Certificate};
pub use chain::{ChainError, TrustStore};
pub use crl::Crl;
pub use dn::{DistinguishedName, DnError};
pub use keys::{KeyError, KeyKind, PrivateKey};
pub use signature::{SigError, SignatureScheme};
