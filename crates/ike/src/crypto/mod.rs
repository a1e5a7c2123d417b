//! The cryptographic core of the IKEv2 engine: the transform table, proposal
//! parsing and selection, the PRF and `prf+`, Diffie-Hellman, the key schedule,
//! PSK authentication, NAT detection and cookies, and the SK payload AEAD.
//!
//! Nothing here is a hand-rolled primitive: HMAC, SHA and the AEADs are
//! `ring`'s, Curve25519 is `x25519-dalek`'s, the NIST curves are RustCrypto's
//! `p256`/`p384`/`p521` (which, unlike `ring`, can import a fixed private key, as the
//! RFC 5903 known-answer tests need) and the MODP groups' modular exponentiation is
//! `crypto-bigint`'s constant-time Montgomery ladder. This module only composes them
//! the way RFC 7296, RFC 5282, RFC 5903, RFC 7634, RFC 8031, RFC 3526, RFC 5114 and
//! RFC 6989 say.
//!
//! Like the rest of the crate it is sans-IO: randomness comes in through
//! [`Rng`], so a test can make an exchange byte-for-byte reproducible with
//! [`TestRng`] while the daemon passes [`SystemRng`].
//!
//! Only AEAD ciphers are offered (AES-GCM with a 16-byte ICV and
//! ChaCha20-Poly1305), for the IKE SA's SK payload and for ESP alike; they are
//! the [`Suite`]s of the `ironsec-esp` crate, so one table names them for both.
//! With an AEAD there is no integrity transform and no SK_ai/SK_ar.

mod dh;
mod keys;
mod modp;
mod prf;
mod proposal;
mod rng;
mod sk;
mod transforms;

pub use ironsec_esp::Suite;

pub use dh::{modp_prime, DhError, KeyExchange, SharedSecret};
pub use keys::{
    cookie, derive_child_keys, derive_ike_keys, nat_detection_hash, psk_auth, skeyseed,
    skeyseed_rekey, verify_cookie, verify_psk_auth, ChildKeys, IkeKeys, COOKIE_LEN,
    NAT_DETECTION_HASH_LEN, PSK_KEY_PAD,
};
pub use prf::{prf, prf_plus, PrfPlusTooLong};
pub use proposal::{
    accept_esp_response, accept_ike_response, choose_esp, choose_ike, offer_esp, offer_ike,
    EspAlgorithms, EspProposal, IkeAlgorithms, IkeProposal, OfferedProposal, OfferedTransform,
    ProposalError,
};
pub use rng::{Rng, SystemRng, TestRng};
pub use sk::{AuthError, KeyLenError, SkCipher};
pub use transforms::{
    suite_from_transform, DhGroup, DhStrength, Prf, DH_NONE, ESN_NO, ESN_YES, INTEG_NONE,
    TRANSFORM_DH, TRANSFORM_ENCR, TRANSFORM_ESN, TRANSFORM_INTEG, TRANSFORM_PRF,
};
