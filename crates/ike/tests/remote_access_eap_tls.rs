//! Remote-access clients authenticating with EAP-TLS (RFC 5216 inside RFC 7296 §2.16, issue 24
//! slice S7) between two sans-IO endpoints: A is the client (`LocalAuth::EapTls`, asks for a
//! virtual IP), B the gateway (certificate, `RemoteAuth::EapTls` with the trust store, an
//! address pool). The full exchange with lease and CHILD_SA, and each refusal.

mod ra_common;
use ra_common::*;
use std::sync::Arc;
use std::time::Duration;

use ironsec_ike::config::{VipPool, VipRequest, VipRole};
use ironsec_ike::pki::{Certificate, PrivateKey, TrustStore};
use ironsec_ike::testkit::*;
use ironsec_ike::wire::NotifyType;
use ironsec_ike::{
    Credential, Credentials, Event, Identity, LocalAuth, PeerConfig, PeerTrust, RemoteAuth,
    SendCert,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2060, 1, 1);
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// A certificate by `ca` for the DNS name `dns` or the e-mail address `email`.
fn leaf(ca: &Ca, cn: &str, dns: Option<&str>, email: Option<&str>) -> Credential {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p =
        CertificateParams::new(dns.map(String::from).into_iter().collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    if let Some(e) = email {
        p.subject_alt_names
            .push(SanType::Rfc822Name(e.try_into().unwrap()));
    }
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.not_before = rcgen::date_time_ymd(2021, 1, 1);
    p.not_after = rcgen::date_time_ymd(2055, 1, 1);
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    Credential::new(
        vec![Certificate::from_der(cert.der()).unwrap()],
        PrivateKey::from_pem_or_der(key.serialize_pem().as_bytes()).unwrap(),
        SendCert::IfAsked,
    )
}

fn trust(ca: &Ca) -> Arc<PeerTrust> {
    Arc::new(PeerTrust {
        store: Arc::new(TrustStore::new(
            vec![Certificate::from_der(ca.cert.der()).unwrap()],
            Vec::new(),
        )),
        pinned: None,
    })
}

/// A: EAP-TLS client with IKE identity `ike_id`, EAP identity `eap_id` and a certificate for
/// `cert_email` by `client_ca`. B: the gateway (`gw-b.example` by `root`), clients
/// `*@tls.example.org` of `root`, pool 10.98.0.0/29.
fn client_and_gateway(
    root: &Ca,
    client_ca: &Ca,
    ike_id: &str,
    eap_id: &str,
    cert_email: &str,
) -> (PeerConfig, PeerConfig) {
    let gw = leaf(root, "gw-b.example", Some("gw-b.example"), None);
    let client = leaf(client_ca, "client", None, Some(cert_email));
    let (mut a, mut b) = pair_configs(IKE, ESP);
    a.local_id = Identity::parse(ike_id);
    a.local_auth = LocalAuth::EapTls {
        identity: eap_id.into(),
        cred: Arc::new(client),
    };
    a.remote_auth = RemoteAuth::Pubkey(trust(root));
    a.vip = VipRole::Request(VipRequest::V4);
    a.local_ts = vec![sel("0.0.0.0/0")];
    b.local_auth = LocalAuth::Pubkey(Credentials::one(gw));
    b.remote_auth = RemoteAuth::EapTls(trust(root));
    b.remote_id = Identity::parse("*@tls.example.org");
    b.remote_ts = vec![sel("0.0.0.0/0")];
    b.vip = VipRole::Assign(VipPool {
        ranges: vec!["10.98.0.0/29".into()],
        grace: Duration::from_secs(60),
        dns: vec![],
    });
    (a, b)
}

const ALICE: &str = "alice@tls.example.org";

#[test]
fn eap_tls_full_exchange_lease_and_child() {
    let root = ca("RA Root CA");
    let (a, b) = client_and_gateway(&root, &root, ALICE, ALICE, ALICE);
    let mut n = net(a, b);
    n.initiate_a();
    assert_eq!(up(&n.events_a), 1, "A: {:?}", n.events_a);
    assert_eq!(up(&n.events_b), 1, "B: {:?}", n.events_b);
    let want = ip("10.98.0.1");
    let vip_b: Vec<_> = n
        .events_b
        .iter()
        .filter_map(|e| match e {
            Event::VirtualIp {
                addresses,
                eap_identity,
                ..
            } => Some((addresses[0], eap_identity.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(vip_b, [(want, Some(ALICE.to_string()))]);
    let children: Vec<_> = n
        .events_a
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaUp { child, .. } => Some(child),
            _ => None,
        })
        .collect();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].local_ts, [sel("10.98.0.1/32")]);
    assert_eq!(leases(&n), [(want, ALICE.to_string(), true)]);
    let sa = &n.b.ike_sas()[0];
    assert_eq!(sa.eap_identity.as_deref(), Some(ALICE));
    assert!(sa.established);
    eprintln!(
        "IKE_AUTH requests for EAP-TLS: {}",
        sa.expected_request_id - 1
    );
    assert!(failures(&n.events_a).is_empty() && failures(&n.events_b).is_empty());
    // No key material in what either side reported.
    for e in n.events_a.iter().chain(&n.events_b) {
        let text = format!("{e:?}");
        assert!(!text.contains("PRIVATE KEY"), "{text}");
    }
}

fn assert_refused(n: &Net, want: &str) {
    assert_eq!((up(&n.events_a), up(&n.events_b)), (0, 0));
    let fb = failures(&n.events_b);
    assert_eq!(fb.len(), 1, "{fb:?}");
    assert_eq!(fb[0].0, NotifyType::AuthenticationFailed);
    assert!(
        fb[0].1.contains("EAP-TLS authentication failed"),
        "{}",
        fb[0].1
    );
    assert!(fb[0].1.contains(want), "{}", fb[0].1);
    let fa = failures(&n.events_a);
    assert!(!fa.is_empty(), "A: {:?}", n.events_a);
    assert!(n.b.ike_sas().is_empty() && n.a.ike_sas().is_empty());
    assert!(leases(n).is_empty());
    assert_eq!(n.b.stats().eap_failures, 1);
}

#[test]
fn eap_tls_untrusted_client_certificate_refused() {
    let root = ca("RA Root CA");
    let other = ca("Other CA");
    let (a, b) = client_and_gateway(&root, &other, ALICE, ALICE, ALICE);
    let mut n = net(a, b);
    n.initiate_a();
    assert_refused(&n, "not a trusted CA");
}

#[test]
fn eap_tls_identity_not_in_certificate_refused() {
    let root = ca("RA Root CA");
    let bob = "bob@tls.example.org";
    let (a, b) = client_and_gateway(&root, &root, bob, bob, ALICE);
    let mut n = net(a, b);
    n.initiate_a();
    assert_refused(&n, "does not contain the EAP identity");
}

#[test]
fn eap_tls_certificate_identity_outside_remote_id_refused() {
    // IDi picks the connection, but the certificate proves an identity outside remote_id.
    let root = ca("RA Root CA");
    let eve = "eve@other.example.org";
    let (a, b) = client_and_gateway(&root, &root, "eve@tls.example.org", eve, eve);
    let mut n = net(a, b);
    n.initiate_a();
    assert_refused(&n, "does not match remote_id");
}

/// Two EAP connections on one gateway address: EAP-MSCHAPv2 for anyone (`%any`, configured
/// first) and EAP-TLS for `*@tls.example.org`. A client without AUTH is given the connection
/// whose remote_id names its IDi most specifically: the EAP-TLS client lands on the EAP-TLS
/// connection and an EAP-MSCHAPv2 client with another identity on the other one.
#[test]
fn eap_tls_and_mschapv2_connections_chosen_by_remote_id() {
    use ironsec_ike::eap::{nthash, Users};
    let root = ca("RA Root CA");
    let (a, tls_conn) = client_and_gateway(&root, &root, ALICE, ALICE, ALICE);
    let mut tls_conn = tls_conn;
    tls_conn.name = "to-a-tls".into();
    let mut mschap = tls_conn.clone();
    mschap.name = "to-a".into();
    mschap.remote_id = Identity::Any;
    let mut users = Users::new();
    users.insert("bob", nthash("bob's password"));
    mschap.remote_auth = RemoteAuth::EapMschapv2(Arc::new(users));
    mschap.vip = VipRole::Assign(VipPool {
        ranges: vec!["10.99.0.128/29".into()],
        grace: Duration::from_secs(60),
        dns: vec![],
    });
    let mut n = net(a.clone(), tls_conn.clone());
    n.b.set_peers(vec![mschap.clone(), tls_conn.clone()]);
    n.initiate_a();
    assert_eq!(up(&n.events_b), 1, "B: {:?}", n.events_b);
    let tls_leases = n.b.leases("to-a-tls");
    assert_eq!(tls_leases.len(), 1);
    assert_eq!(tls_leases[0].owner, ALICE);
    assert!(n.b.leases("to-a").is_empty());

    // An EAP-MSCHAPv2 client (IDi outside *@tls.example.org) on the same gateway.
    let mut b_client = a;
    b_client.local_id = Identity::parse("laptop.example");
    b_client.local_auth = LocalAuth::EapMschapv2 {
        user: "bob".into(),
        hash: nthash("bob's password"),
    };
    let mut n = net(b_client, tls_conn.clone());
    n.b.set_peers(vec![mschap, tls_conn]);
    n.initiate_a();
    assert_eq!(up(&n.events_b), 1, "B: {:?}", n.events_b);
    assert_eq!(n.b.leases("to-a")[0].owner, "bob");
    assert!(n.b.leases("to-a-tls").is_empty());
}
