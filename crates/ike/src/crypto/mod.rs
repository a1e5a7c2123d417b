//! The cryptographic core of the IKEv2 engine: the transform table, proposal
//! parsing and selection, the PRF and `prf+`, Diffie-Hellman, the key schedule,
//! PSK authentication, NAT detection and cookies, the SK payload's protection
//! (AEAD, or AES-CBC with an HMAC), and which configured algorithms are legacy.
//!
//! Nothing here is a hand-rolled primitive: HMAC, SHA and the AEADs are
//! `ring`'s, AES-CBC is RustCrypto's `aes` + `cbc` (`ring` has no CBC), the
//! truncated-ICV comparison is `subtle`'s, Curve25519 is `x25519-dalek`'s, the NIST
//! curves are RustCrypto's `p256`/`p384`/`p521` (which, unlike `ring`, can import a
//! fixed private key, as the RFC 5903 known-answer tests need) and the MODP groups'
//! modular exponentiation is `crypto-bigint`'s constant-time Montgomery ladder. This
//! module only composes them the way RFC 7296, RFC 5282, RFC 5903, RFC 7634, RFC 8031,
//! RFC 3602, RFC 2404, RFC 4868, RFC 3526, RFC 5114 and RFC 6989 say.
//!
//! Like the rest of the crate it is sans-IO: randomness comes in through
//! [`Rng`], so a test can make an exchange byte-for-byte reproducible with
//! [`TestRng`] while the daemon passes [`SystemRng`].
//!
//! The IKE SA's SK payload and ESP run the same [`Suite`]s, from the
//! `ironsec-esp` crate's one table: AEADs (AES-GCM with a 16-byte ICV,
//! ChaCha20-Poly1305), which have no integrity transform and no SK_ai/SK_ar,
//! and AES-CBC with an HMAC (`aes` + `cbc` for the cipher, `ring` for the MAC),
//! which have both. Proposals keep the two apart as RFC 7296 §3.3 wants.

mod dh;
mod keys;
mod legacy;
mod modp;
mod prf;
mod proposal;
mod rng;
mod sk;
mod sk_aead;
mod sk_cbc;
mod transforms;

pub use ironsec_esp::{CbcCipher, Encr, Integ, Suite};

pub use dh::{modp_prime, DhError, KeyExchange, SharedSecret};
pub use keys::{
    cookie, derive_child_keys, derive_ike_keys, nat_detection_hash, psk_auth, skeyseed,
    skeyseed_rekey, verify_cookie, verify_psk_auth, ChildKeys, IkeKeys, COOKIE_LEN,
    NAT_DETECTION_HASH_LEN, PSK_KEY_PAD,
};
pub(crate) use legacy::of_group as legacy_group;
pub use legacy::{LegacyAlgorithm, LegacyLevel};
pub use prf::{prf, prf_plus, PrfPlusTooLong};
pub use proposal::{
    accept_esp_response, accept_ike_response, choose_esp, choose_ike, offer_esp, offer_ike,
    EspAlgorithms, EspProposal, IkeAlgorithms, IkeProposal, OfferedProposal, OfferedTransform,
    ProposalError,
};
pub use rng::{Rng, SystemRng, TestRng};
pub use sk::{AuthError, KeyLenError, OpenError, SealError, SkCipher};
pub use sk_aead::SkAead;
pub use sk_cbc::{NotBlockAligned, SkCbc, CBC_BLOCK_LEN};
pub use transforms::{
    encr_from_transform, integ_from_transform, DhGroup, DhStrength, Prf, DH_NONE, ESN_NO, ESN_YES,
    INTEG_NONE, TRANSFORM_DH, TRANSFORM_ENCR, TRANSFORM_ESN, TRANSFORM_INTEG, TRANSFORM_PRF,
};
