//! Shared pieces of the fuzz targets. The `ike_responder` target's responder, input framing
//! and replay driver live in `ironsec_ike::testkit::responder` (feature `testkit`), shared
//! with the ike crate's regression tests; this crate re-exports them and adds the `config`
//! target's fixtures.

pub use ironsec_ike::testkit::responder::*;

/// Directory of the `config` target's fixed secret files (created once per process, 0600,
/// written atomically so that parallel fuzzing processes never see a half-written file).
pub const CONFIG_DIR: &str = "/tmp/ironsec-fuzz-config";

/// Keys for the SPIs the seed configs use: 20 bytes (aes128gcm16) and 36 bytes (aes256gcm16,
/// chacha20poly1305) of key || salt.
pub const STATIC_KEYS: &str = "\
0xc0000102 = \"000102030405060708090a0b0c0d0e0f10111213\"
0xc0000201 = \"202122232425262728292a2b2c2d2e2f30313233\"
0xc0000103 = \"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223\"
0xc0000301 = \"202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f40414243\"
";
pub const SITE_PSK: &str = "a pre-shared key long enough for the loader\n";

pub fn config_fixture_dir() -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    static DONE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let dir = std::path::PathBuf::from(CONFIG_DIR);
        std::fs::create_dir_all(&dir).expect("create the fixture directory");
        for (name, body) in [("static.keys", STATIC_KEYS), ("site.psk", SITE_PSK)] {
            let tmp = dir.join(format!(".{name}.{}", std::process::id()));
            std::fs::write(&tmp, body).expect("write a fixture");
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
                .expect("chmod 600");
            std::fs::rename(&tmp, dir.join(name)).expect("install a fixture");
        }
        dir
    })
    .clone()
}

pub mod tun_offload;

/// The `ike_auth_certs` target's wall clock: 2027-06-01 00:00:00 UTC, inside every fixture
/// certificate's validity period.
pub const CERT_AUTH_UNIX: i64 = 1_811_808_000;

/// The `ike_auth_certs` target's responder check: the fixture trust anchors (ECDSA and RSA
/// roots) and their intermediates' CRLs (fuzz/fixtures/certauth/).
pub fn cert_auth() -> &'static ironsec_ike::testkit::certauth::CertAuth {
    use ironsec_ike::pki::{Certificate, Crl, TrustStore};
    static AUTH: std::sync::OnceLock<ironsec_ike::testkit::certauth::CertAuth> =
        std::sync::OnceLock::new();
    AUTH.get_or_init(|| {
        let anchors = [
            &include_bytes!("../fixtures/certauth/ecdsa-root.der")[..],
            &include_bytes!("../fixtures/certauth/rsa-root.der")[..],
        ]
        .iter()
        .map(|d| Certificate::from_der(d).expect("fixture root"))
        .collect();
        let crls = [
            &include_bytes!("../fixtures/certauth/ecdsa-int.crl.der")[..],
            &include_bytes!("../fixtures/certauth/rsa-int.crl.der")[..],
        ]
        .iter()
        .map(|d| Crl::from_der(d).expect("fixture CRL"))
        .collect();
        ironsec_ike::testkit::certauth::CertAuth::new(TrustStore::new(anchors, crls), None)
    })
}

/// One `ike_auth_certs` input: never a panic, and a refusal's reason (it is logged) never
/// carries a control character, whatever the certificates and identities say.
pub fn run_cert_auth(data: &[u8]) {
    if let Some(Err(why)) = cert_auth().check(CERT_AUTH_UNIX, data) {
        assert!(
            !why.chars().any(char::is_control),
            "control character in a refusal reason: {why:?}"
        );
    }
}
