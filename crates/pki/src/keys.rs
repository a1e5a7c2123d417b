//! Private keys from PEM or DER files: PKCS#8 (`PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`), PKCS#1
//! (`RSA PRIVATE KEY`). Encrypted keys are refused with a clear error. `Debug` never shows key
//! material; the key bytes are zeroed when dropped where the backing library allows.

use crate::signature::SignatureScheme;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Rsa { bits: usize },
    EcP256,
    EcP384,
    EcP521,
    Ed25519,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("no private key found (expected PEM PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY, or DER)")]
    NotFound,
    #[error(
        "encrypted private keys are not supported; decrypt it (e.g. `openssl pkey -in K -out K2`)"
    )]
    Encrypted,
    #[error("malformed private key: {0}")]
    Malformed(String),
    #[error("unsupported key: {0}")]
    Unsupported(String),
    #[error("{0:?} cannot sign with a {1:?} key")]
    WrongScheme(SignatureScheme, KeyKind),
    #[error("signing failed")]
    SignFailed,
}

/// A private key able to sign IKE AUTH data.
pub struct PrivateKey {
    // chosen by the implementation
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({:?}, <redacted>)", self.kind())
    }
}

impl PrivateKey {
    /// Parses a key file's bytes: PEM (first key block) or DER.
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<PrivateKey, KeyError> {
        todo!()
    }

    pub fn kind(&self) -> KeyKind {
        todo!()
    }

    /// The DER SubjectPublicKeyInfo of the public half, to check a certificate belongs to
    /// this key.
    pub fn public_key_spki(&self) -> Vec<u8> {
        todo!()
    }

    /// The schemes this key can sign with, strongest-first preference for RFC 7427 (RSA:
    /// PKCS#1 SHA-256/384/512, then PSS; ECDSA: the curve's hash, DER; Ed25519).
    pub fn schemes(&self) -> Vec<SignatureScheme> {
        todo!()
    }

    /// Signs `data`. RSA PKCS#1 v1.5 SHA-1 is available for AUTH method 1 (peers without
    /// RFC 7427).
    pub fn sign(&self, scheme: SignatureScheme, data: &[u8]) -> Result<Vec<u8>, KeyError> {
        todo!()
    }
}
