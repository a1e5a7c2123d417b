//! Writes the `ike_auth_certs` seeds under `fuzz/corpus/ike_auth_certs/` from a full fixture
//! PKI (with private keys) in DIR: `cargo run --example gen_cert_seeds -- DIR` from `fuzz/`.
//! DIR holds, for KIND in ecdsa and rsa, strongSwan `pki` output in DER: `KIND-ee.der`,
//! `KIND-ee.key`, `KIND-int.der`, `KIND-revoked.der` (fixtures/certauth/README.md says how
//! they were made; only the roots and CRLs are committed, under fixtures/certauth/).
//!
//! Each seed is what an initiator would send (IDi, CERTs, AUTH), signed over the target's
//! fixed IKE SA, so the first seeds pass every check and mutations start from a valid
//! exchange; the others are refused for a known reason (revoked, unknown issuer, wrong
//! intermediate). The generator checks each verdict with the target's own responder.

use std::path::Path;

use ironsec_fuzz::{cert_auth, CERT_AUTH_UNIX};
use ironsec_ike::pki::{Certificate, PrivateKey};
use ironsec_ike::testkit::certauth::initiator_payloads;
use ironsec_ike::{Credential, Identity, SendCert};

fn main() {
    let dir = std::env::args().nth(1).expect("usage: gen_cert_seeds DIR");
    let dir = Path::new(&dir);
    let cert = |n: &str| {
        Certificate::from_der(&std::fs::read(dir.join(n)).expect(n)).expect(n)
    };
    let key = |n: &str| PrivateKey::from_pem_or_der(&std::fs::read(dir.join(n)).expect(n)).expect(n);
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/ike_auth_certs");
    std::fs::create_dir_all(&out).unwrap();
    let mut n = 0;
    let mut write = |what: &str, data: Vec<u8>, ok: bool| {
        let verdict = cert_auth().check(CERT_AUTH_UNIX, &data).expect("parses");
        assert_eq!(verdict.is_ok(), ok, "{what}: {verdict:?}");
        std::fs::write(out.join(format!("seed-{n:02}-{what}")), data).unwrap();
        n += 1;
    };
    for kind in ["ecdsa", "rsa"] {
        let other = if kind == "ecdsa" { "rsa" } else { "ecdsa" };
        let ee = cert(&format!("{kind}-ee.der"));
        let int = cert(&format!("{kind}-int.der"));
        let cred = |chain: Vec<Certificate>| {
            Credential::new(chain, key(&format!("{kind}-ee.key")), SendCert::Always)
        };
        let dn = Identity::Dn(ee.subject().clone());
        let fqdn = Identity::parse(&format!("gw.{kind}.example"));
        write(&format!("{kind}-dn-rfc7427"), initiator_payloads(cred(vec![ee.clone(), int.clone()]), dn.clone(), true), true);
        write(&format!("{kind}-fqdn-classic"), initiator_payloads(cred(vec![ee.clone(), int.clone()]), fqdn.clone(), false), true);
        let revoked = cert(&format!("{kind}-revoked.der"));
        write(
            &format!("{kind}-revoked"),
            initiator_payloads(cred(vec![revoked.clone(), int.clone()]), Identity::Dn(revoked.subject().clone()), true),
            false,
        );
        write(&format!("{kind}-no-intermediate"), initiator_payloads(cred(vec![ee.clone()]), dn.clone(), true), false);
        write(
            &format!("{kind}-wrong-intermediate"),
            initiator_payloads(cred(vec![ee.clone(), cert(&format!("{other}-int.der"))]), fqdn, true),
            false,
        );
    }
    println!("{n} seeds in {}", out.display());
}
