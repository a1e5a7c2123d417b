//! A responder's IKE_AUTH certificate check fed the decrypted payload chain of an IKE_AUTH
//! request (IDi, CERT, CERTREQ, AUTH, ...): payload parsing, X.509 and CRL decoding, chain
//! building, identity binding, RFC 7427 AUTH decoding and signature verification must never
//! panic, and a refusal's (logged) reason never carries a control character.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ironsec_fuzz::run_cert_auth(data);
});
