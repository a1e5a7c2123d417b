//! Certificate authentication between two sans-IO endpoints (RFC 7296 §2.15, RFC 7427): a
//! PKI built with rcgen at test time (root -> intermediate -> gateways), both directions,
//! mixed PSK/certificate, patterns, pinned certificates, and each refusal with its reason.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ironsec_ike::pki::{Certificate, Crl, PrivateKey, TrustStore};
use ironsec_ike::testkit::*;
use ironsec_ike::wire::NotifyType;
use ironsec_ike::{
    CloseReason, Credential, Credentials, Event, Identity, LocalAuth, PeerConfig, PeerTrust, Psk,
    RemoteAuth, SendCert,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber, SignatureAlgorithm,
};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A test PKI: root -> intermediate; gateways issued by the intermediate.
struct Pki {
    root: Ca,
    int: Ca,
    alg: &'static SignatureAlgorithm,
}

fn dn(cn: &str) -> rcgen::DistinguishedName {
    let mut d = rcgen::DistinguishedName::new();
    d.push(DnType::CountryName, "CH");
    d.push(DnType::OrganizationName, "ironsec test");
    d.push(DnType::CommonName, cn);
    d
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name = dn(cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2060, 1, 1);
    p
}

impl Pki {
    fn new(alg: &'static SignatureAlgorithm) -> Pki {
        Pki::named(alg, "")
    }

    /// A PKI whose CA names start with `prefix`.
    fn named(alg: &'static SignatureAlgorithm, prefix: &str) -> Pki {
        let root_key = KeyPair::generate_for(alg).unwrap();
        let root = ca_params(&format!("{prefix}Root CA"))
            .self_signed(&root_key)
            .unwrap();
        let int_key = KeyPair::generate_for(alg).unwrap();
        let int = ca_params(&format!("{prefix}Intermediate CA"))
            .signed_by(&int_key, &root, &root_key)
            .unwrap();
        Pki {
            root: Ca {
                cert: root,
                key: root_key,
            },
            int: Ca {
                cert: int,
                key: int_key,
            },
            alg,
        }
    }

    /// A gateway certificate for `name` (CN and DNS SAN) with `serial`, valid in
    /// [not_before, not_after].
    fn gateway(
        &self,
        name: &str,
        serial: u64,
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> Credential {
        let key = KeyPair::generate_for(self.alg).unwrap();
        self.gateway_with_key(name, serial, not_before, not_after, key)
    }

    /// [`Pki::gateway`] for a given key (RSA from a fixture: rcgen cannot make RSA keys).
    fn gateway_with_key(
        &self,
        name: &str,
        serial: u64,
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
        key: KeyPair,
    ) -> Credential {
        let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
        p.distinguished_name = dn(name);
        p.serial_number = Some(SerialNumber::from(serial));
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.not_before = not_before;
        p.not_after = not_after;
        let cert = p.signed_by(&key, &self.int.cert, &self.int.key).unwrap();
        Credential::new(
            vec![
                Certificate::from_der(cert.der()).unwrap(),
                Certificate::from_der(self.int.cert.der()).unwrap(),
            ],
            PrivateKey::from_pem_or_der(key.serialize_pem().as_bytes()).unwrap(),
            SendCert::IfAsked,
        )
    }

    fn valid(&self, name: &str, serial: u64) -> Credential {
        self.gateway(
            name,
            serial,
            rcgen::date_time_ymd(2021, 1, 1),
            rcgen::date_time_ymd(2055, 1, 1),
        )
    }

    /// A CRL by the intermediate revoking `serials`.
    fn crl(&self, serials: &[u64]) -> Crl {
        let crl = CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(2050, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: rcgen::date_time_ymd(2024, 1, 1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.int.cert, &self.int.key)
        .unwrap();
        Crl::all_from_pem_or_der(crl.der()).unwrap().remove(0)
    }

    fn trust(&self, crls: Vec<Crl>) -> Arc<PeerTrust> {
        Arc::new(PeerTrust {
            store: Arc::new(TrustStore::new(
                vec![Certificate::from_der(self.root.cert.der()).unwrap()],
                crls,
            )),
            pinned: None,
        })
    }
}

fn children_up(ev: &[Event]) -> Vec<&ironsec_ike::ChildSaInfo> {
    ev.iter()
        .filter_map(|e| match e {
            Event::ChildSaUp { child, .. } => Some(child),
            _ => None,
        })
        .collect()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Connections A -> B and B -> A authenticating with `cred_a` / `cred_b`, both trusting the
/// PKI's root; identities are each certificate's subject DN unless overridden.
fn cert_pair(
    pki: &Pki,
    cred_a: Credential,
    cred_b: Credential,
    crls: Vec<Crl>,
) -> (PeerConfig, PeerConfig) {
    let (mut a, mut b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    a.local_id = Identity::Dn(cred_a.chain[0].subject().clone());
    b.local_id = Identity::Dn(cred_b.chain[0].subject().clone());
    a.remote_id = b.local_id.clone();
    b.remote_id = a.local_id.clone();
    a.local_auth = LocalAuth::Pubkey(Credentials::one(cred_a));
    b.local_auth = LocalAuth::Pubkey(Credentials::one(cred_b));
    a.remote_auth = RemoteAuth::Pubkey(pki.trust(crls.clone()));
    b.remote_auth = RemoteAuth::Pubkey(pki.trust(crls));
    (a, b)
}

fn net(a: PeerConfig, b: PeerConfig) -> Net {
    let mut net = Net::new(a, b);
    let t = unix_now();
    net.a.set_wall_clock(net.now, t);
    net.b.set_wall_clock(net.now, t);
    net
}

fn failure_details(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Failure { detail, notify, .. }
                if *notify == NotifyType::AuthenticationFailed =>
            {
                Some(detail.clone())
            }
            _ => None,
        })
        .collect()
}

fn up_ids(events: &[Event]) -> Vec<Identity> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaUp { remote_id, .. } => Some(remote_id.clone()),
            _ => None,
        })
        .collect()
}

fn assert_up(net: &Net) {
    assert_eq!(
        up_ids(&net.events_a).len(),
        1,
        "A: {:?}",
        failure_details(&net.events_a)
    );
    assert_eq!(
        up_ids(&net.events_b).len(),
        1,
        "B: {:?}",
        failure_details(&net.events_b)
    );
    assert_eq!(children_up(&net.events_a).len(), 1);
    assert_eq!(children_up(&net.events_b).len(), 1);
}

fn assert_refused_by(events: &[Event], needle: &str) {
    let d = failure_details(events);
    assert!(
        d.iter().any(|x| x.contains(needle)),
        "no AUTHENTICATION_FAILED with '{needle}' in {d:?}"
    );
}

#[test]
fn ecdsa_p256_chain_with_dn_identities() {
    let pki = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (a, b) = cert_pair(
        &pki,
        pki.valid("gw-a.example", 10),
        pki.valid("gw-b.example", 11),
        vec![],
    );
    let want_b = a.remote_id.clone();
    let mut net = net(a, b);
    net.initiate_a();
    assert_up(&net);
    assert_eq!(up_ids(&net.events_a), [want_b]);
}

#[test]
fn ecdsa_p384_and_ed25519_sign_with_rfc7427() {
    for alg in [&rcgen::PKCS_ECDSA_P384_SHA384, &rcgen::PKCS_ED25519] {
        let pki = Pki::new(alg);
        let (a, b) = cert_pair(
            &pki,
            pki.valid("gw-a.example", 10),
            pki.valid("gw-b.example", 11),
            vec![],
        );
        let mut net = net(a, b);
        net.initiate_a();
        assert_up(&net);
    }
}

#[test]
fn fqdn_identities_in_the_san_and_wildcard_patterns() {
    let pki = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (mut a, mut b) = cert_pair(
        &pki,
        pki.valid("gw-a.example", 10),
        pki.valid("gw-b.example", 11),
        vec![],
    );
    a.local_id = Identity::parse("gw-a.example");
    b.local_id = Identity::parse("gw-b.example");
    a.remote_id = Identity::parse("*.example");
    b.remote_id = Identity::parse("C=CH, O=ironsec test, CN=*");
    // B's pattern is a DN: A must then identify by its DN.
    a.local_id = Identity::Dn(match &a.local_auth {
        LocalAuth::Pubkey(c) => c.first().chain[0].subject().clone(),
        _ => unreachable!(),
    });
    let mut net = net(a, b);
    net.initiate_a();
    assert_up(&net);
    assert_eq!(up_ids(&net.events_a), [Identity::parse("gw-b.example")]);
}

#[test]
fn certificate_one_way_psk_the_other() {
    let pki = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (mut a, mut b) = cert_pair(
        &pki,
        pki.valid("gw-a.example", 10),
        pki.valid("gw-b.example", 11),
        vec![],
    );
    // B proves itself with the PSK, A with its certificate.
    let psk = Psk::new(b"a long enough pre-shared key".to_vec());
    b.local_auth = LocalAuth::Psk(psk.clone());
    a.remote_auth = RemoteAuth::Psk(psk);
    b.local_id = Identity::parse("gw-b.example");
    a.remote_id = b.local_id.clone();
    let mut net = net(a, b);
    net.initiate_a();
    assert_up(&net);
}

#[test]
fn pinned_peer_certificate_without_cert_payloads() {
    let pki = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256);
    let mut cred_b = pki.valid("gw-b.example", 11);
    cred_b.send_cert = SendCert::Never;
    let b_cert = cred_b.chain[0].clone();
    let (mut a, b) = cert_pair(&pki, pki.valid("gw-a.example", 10), cred_b, vec![]);
    // A holds B's certificate and trusts no CA at all.
    a.remote_auth = RemoteAuth::Pubkey(Arc::new(PeerTrust {
        store: Arc::new(TrustStore::default()),
        pinned: Some(b_cert),
    }));
    let mut net = net(a, b);
    net.initiate_a();
    assert_up(&net);
}

#[test]
fn revoked_certificate_is_refused_with_the_reason() {
    let pki = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (a, b) = cert_pair(
        &pki,
        pki.valid("gw-a.example", 10),
        pki.valid("gw-b.example", 66),
        vec![pki.crl(&[66])],
    );
    let mut net = net(a, b);
    net.initiate_a();
    assert!(up_ids(&net.events_a).is_empty());
    assert_refused_by(&net.events_a, "revoked");
    assert_refused_by(&net.events_a, "CN=gw-b.example");
    // B, the responder, had its IKE SA up after its IKE_AUTH response; A's INFORMATIONAL
    // with AUTHENTICATION_FAILED (RFC 7296 2.21.2) takes it down at once, not at DPD.
    assert_refused_by(&net.events_b, "peer rejected our authentication");
    assert!(
        net.events_b.iter().any(|e| matches!(
            e,
            Event::IkeSaDown {
                reason: CloseReason::Refused(NotifyType::AuthenticationFailed),
                ..
            }
        )),
        "B's IKE SA is not down: {:?}",
        net.events_b
    );
}

#[test]
fn revoked_initiator_is_refused_by_the_responder() {
    let pki = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (a, b) = cert_pair(
        &pki,
        pki.valid("gw-a.example", 66),
        pki.valid("gw-b.example", 11),
        vec![pki.crl(&[66])],
    );
    let mut net = net(a, b);
    net.initiate_a();
    assert!(up_ids(&net.events_b).is_empty());
    assert_refused_by(&net.events_b, "revoked");
    // A hears AUTHENTICATION_FAILED.
    assert!(failure_details(&net.events_a)
        .iter()
        .any(|d| d.contains("rejected")));
}

#[test]
fn expired_and_not_yet_valid_certificates_are_refused() {
    let pki = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256);
    let expired = pki.gateway(
        "gw-b.example",
        11,
        rcgen::date_time_ymd(2020, 6, 1),
        rcgen::date_time_ymd(2021, 6, 1),
    );
    let (a, b) = cert_pair(&pki, pki.valid("gw-a.example", 10), expired, vec![]);
    let mut n = net(a, b);
    n.initiate_a();
    assert_refused_by(&n.events_a, "expired");

    let future = pki.gateway(
        "gw-b.example",
        12,
        rcgen::date_time_ymd(2059, 1, 1),
        rcgen::date_time_ymd(2059, 6, 1),
    );
    let (a, b) = cert_pair(&pki, pki.valid("gw-a.example", 10), future, vec![]);
    let mut n = net(a, b);
    n.initiate_a();
    assert_refused_by(&n.events_a, "not valid before");
}

#[test]
fn the_engine_clock_decides_expiry() {
    // Valid now; ten years on (the wall clock moved with the engine's `now`) it is not.
    let pki = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (a, b) = cert_pair(
        &pki,
        pki.valid("gw-a.example", 10),
        pki.valid("gw-b.example", 11),
        vec![],
    );
    let mut n = net(a, b);
    // Set once, at the start; the engine's `now` then moves on by forty years.
    n.now += Duration::from_secs(40 * 365 * 86400);
    n.initiate_a();
    // B checks A's certificate first (IKE_AUTH request) and refuses it.
    assert_refused_by(&n.events_b, "expired");
}

#[test]
fn unknown_issuer_and_wrong_identity_are_refused() {
    let pki = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256);
    let other = Pki::named(&rcgen::PKCS_ECDSA_P256_SHA256, "Other ");
    // B's certificate comes from another PKI.
    let (a, mut b) = cert_pair(
        &pki,
        pki.valid("gw-a.example", 10),
        other.valid("gw-b.example", 11),
        vec![],
    );
    b.remote_auth = RemoteAuth::Pubkey(pki.trust(vec![]));
    let mut n = net(a, b);
    n.initiate_a();
    assert_refused_by(&n.events_a, "not a trusted CA");

    // Same CA names, other keys: the signature check catches it.
    let same_names = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (a, mut b) = cert_pair(
        &pki,
        pki.valid("gw-a.example", 10),
        same_names.valid("gw-b.example", 11),
        vec![],
    );
    b.remote_auth = RemoteAuth::Pubkey(pki.trust(vec![]));
    let mut n = net(a, b);
    n.initiate_a();
    assert_refused_by(&n.events_a, "does not verify");

    // A valid certificate, but for mallory: A expects gw-b.
    let (a, b) = cert_pair(
        &pki,
        pki.valid("gw-a.example", 10),
        pki.valid("mallory.example", 13),
        vec![],
    );
    let mut a = a;
    a.remote_id = Identity::parse("C=CH, O=ironsec test, CN=gw-b.example");
    let mut n = net(a, b);
    n.initiate_a();
    assert_refused_by(&n.events_a, "does not match");
}

#[test]
fn a_certificate_that_does_not_carry_the_identity_is_refused() {
    // B claims gw-b.example as FQDN but its certificate names only mallory.example.
    let pki = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (mut a, mut b) = cert_pair(
        &pki,
        pki.valid("gw-a.example", 10),
        pki.valid("mallory.example", 13),
        vec![],
    );
    b.local_id = Identity::parse("gw-b.example");
    a.remote_id = Identity::parse("gw-b.example");
    let mut n = net(a, b);
    n.initiate_a();
    assert_refused_by(&n.events_a, "does not match peer identity");
}

#[test]
fn without_a_wall_clock_certificates_are_refused() {
    let pki = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (a, b) = cert_pair(
        &pki,
        pki.valid("gw-a.example", 10),
        pki.valid("gw-b.example", 11),
        vec![],
    );
    let mut n = Net::new(a, b);
    n.initiate_a();
    assert_refused_by(&n.events_b, "wall-clock");
}

#[test]
fn a_psk_peer_cannot_pass_where_a_certificate_is_required() {
    let pki = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (mut a, b) = cert_pair(
        &pki,
        pki.valid("gw-a.example", 10),
        pki.valid("gw-b.example", 11),
        vec![],
    );
    a.local_auth = LocalAuth::Psk(Psk::new(b"a long enough pre-shared key".to_vec()));
    a.local_id = Identity::parse("gw-a.example");
    let mut b = b;
    b.remote_id = Identity::parse("gw-a.example");
    let mut n = net(a, b);
    n.initiate_a();
    assert_refused_by(&n.events_b, "expects a certificate");
}

/// A holds certificates from two PKIs; B trusts one of them and names its root in CERTREQ: A
/// picks the certificate that chains to it, whichever order they are configured in. With no
/// CERTREQ match, A uses its first certificate (and B refuses it here).
#[test]
fn the_peers_certreq_chooses_which_certificate_we_send() {
    let old = Pki::named(&rcgen::PKCS_ECDSA_P256_SHA256, "Old ");
    let new = Pki::named(&rcgen::PKCS_ECDSA_P256_SHA256, "New ");
    let other = Pki::named(&rcgen::PKCS_ECDSA_P256_SHA256, "Other ");
    for (trusted, first_old, up) in [
        (&new, true, true),
        (&old, true, true),
        (&new, false, true),
        (&old, false, true),
        (&other, true, false),
    ] {
        let (cred_old, cred_new) = (old.valid("gw-a.example", 10), new.valid("gw-a.example", 20));
        let creds = if first_old {
            vec![cred_old, cred_new]
        } else {
            vec![cred_new, cred_old]
        };
        let (mut a, mut b) = cert_pair(
            trusted,
            trusted.valid("gw-a.example", 30),
            trusted.valid("gw-b.example", 11),
            vec![],
        );
        let roots = [&old, &new].map(|p| Certificate::from_der(p.root.cert.der()).unwrap());
        a.local_auth = LocalAuth::Pubkey(
            Credentials::new(creds.into_iter().map(Arc::new).collect(), &roots).unwrap(),
        );
        // A trusts B's PKI; B trusts only `trusted` (cert_pair set it up so).
        a.remote_auth = RemoteAuth::Pubkey(trusted.trust(vec![]));
        b.remote_auth = RemoteAuth::Pubkey(trusted.trust(vec![]));
        let mut n = net(a, b);
        n.initiate_a();
        if up {
            assert_up(&n);
        } else {
            assert!(up_ids(&n.events_b).is_empty());
            assert_refused_by(&n.events_b, "not a trusted CA");
        }
    }
}

/// An RSA gateway key (the pki crate's OpenSSL-made fixture) signing RFC 7427 AUTH with PKCS#1
/// v1.5 (the default) and with RSASSA-PSS (`rsa_pss`): the peer verifies both.
#[test]
fn rsa_signs_with_pkcs1_or_pss() {
    let pem = include_str!("../../pki/testdata/rsa2048.pkcs8.pem");
    for pss in [false, true] {
        let pki = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256);
        let key = KeyPair::from_pem_and_sign_algo(pem, &rcgen::PKCS_RSA_SHA256).unwrap();
        let rsa = pki
            .gateway_with_key(
                "gw-a.example",
                10,
                rcgen::date_time_ymd(2021, 1, 1),
                rcgen::date_time_ymd(2055, 1, 1),
                key,
            )
            .with_rsa_pss(pss);
        let (a, b) = cert_pair(&pki, rsa, pki.valid("gw-b.example", 11), vec![]);
        let mut n = net(a, b);
        n.initiate_a();
        assert_up(&n);
    }
}
