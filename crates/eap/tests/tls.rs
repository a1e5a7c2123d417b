//! EAP-TLS (RFC 5216) between our server and our client, both rustls driven from memory:
//! the MSK equal on both sides, fragmentation and reassembly, each refusal, malformed input.

use std::sync::Arc;

use ironsec_eap::mschapv2::ClientStep;
use ironsec_eap::tls::{self, Client, FailReason, KeyRef, Server, ServerSetup, ServerStep};
use ironsec_pki::{Certificate, PrivateKey, TrustStore};
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

/// An end-entity certificate for `email` (an e-mail SAN) or `dns`, `extra_sans` more DNS
/// names to make it large, valid until `until` (year).
fn leaf(
    ca: &Ca,
    cn: &str,
    email: Option<&str>,
    extra_sans: usize,
    until: i32,
) -> (Vec<Certificate>, KeyRef) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::new(vec![format!("{cn}.example")]).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    if let Some(e) = email {
        p.subject_alt_names
            .push(SanType::Rfc822Name(e.try_into().unwrap()));
    }
    for i in 0..extra_sans {
        p.subject_alt_names.push(SanType::DnsName(
            format!("host-{i:04}.a-rather-long-domain-name.example")
                .try_into()
                .unwrap(),
        ));
    }
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.not_before = rcgen::date_time_ymd(2021, 1, 1);
    p.not_after = rcgen::date_time_ymd(until, 1, 1);
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    let key: KeyRef =
        Arc::new(PrivateKey::from_pem_or_der(key.serialize_pem().as_bytes()).unwrap());
    (vec![Certificate::from_der(cert.der()).unwrap()], key)
}

fn store(ca: &Ca) -> Arc<TrustStore> {
    Arc::new(TrustStore::new(
        vec![Certificate::from_der(ca.cert.der()).unwrap()],
        Vec::new(),
    ))
}

const NOW: i64 = 1_800_000_000; // 2027-01-15

struct Run {
    server: Result<(ironsec_eap::Msk, String), FailReason>,
    client_msk: Option<ironsec_eap::Msk>,
    rounds: usize,
    /// EAP-TLS packets with data in each direction, and those with M set.
    server_fragments: usize,
    client_fragments: usize,
    server_more: usize,
    client_more: usize,
    /// EAP packet bytes each way (EAP headers and EAP-TLS flags/lengths included).
    server_bytes: usize,
    client_bytes: usize,
}

fn tls_flags(packet: &[u8]) -> Option<(u8, usize)> {
    (packet.len() > 5 && packet[4] == 13).then(|| (packet[5], packet.len()))
}

fn run(server: &mut Server, client: &mut Client) -> Run {
    let mut req = server.start();
    let mut r = Run {
        server: Err(FailReason::Unexpected("not finished")),
        client_msk: None,
        rounds: 0,
        server_fragments: 0,
        client_fragments: 0,
        server_more: 0,
        client_more: 0,
        server_bytes: 0,
        client_bytes: 0,
    };
    for _ in 0..100 {
        r.rounds += 1;
        r.server_bytes += req.len();
        if let Some((f, len)) = tls_flags(&req) {
            if len > 6 {
                r.server_fragments += 1;
            }
            if f & tls::FLAG_MORE != 0 {
                r.server_more += 1;
            }
        }
        let resp = match client.step(&req).expect("client step") {
            ClientStep::Respond(p) => p,
            ClientStep::Success(m) => {
                r.client_msk = Some(m);
                return r;
            }
            ClientStep::Failure => return r,
        };
        r.client_bytes += resp.len();
        if let Some((f, len)) = tls_flags(&resp) {
            if len > 6 {
                r.client_fragments += 1;
            }
            if f & tls::FLAG_MORE != 0 {
                r.client_more += 1;
            }
        }
        match server.step(&resp) {
            ServerStep::Continue(p) => req = p,
            ServerStep::Success { packet, msk, user } => {
                r.server = Ok((msk, user));
                req = packet;
            }
            ServerStep::Failure { packet, reason } => {
                r.server = Err(reason);
                req = packet;
            }
        }
    }
    panic!("no end after 100 rounds");
}

fn setup(ca: &Ca) -> ServerSetup {
    let (chain, key) = leaf(ca, "gw", None, 0, 2055);
    ServerSetup {
        trust: store(ca),
        chain,
        key,
    }
}

#[test]
fn handshake_with_rustls_client_msk_equal_both_sides() {
    let root = ca("Root");
    let s = setup(&root);
    let (chain, key) = leaf(&root, "alice", Some("alice@tls.example.org"), 0, 2055);
    let mut server = Server::new(&s, NOW, 7).unwrap();
    let mut client = Client::new("alice@tls.example.org", &chain, key, store(&root), NOW).unwrap();
    let r = run(&mut server, &mut client);
    let (msk, user) = r.server.expect("server success");
    assert_eq!(user, "alice@tls.example.org");
    let cm = r.client_msk.expect("client success");
    assert_eq!(msk.bytes().len(), 64);
    assert_eq!(msk, cm, "both ends derive one MSK");
    assert_ne!(msk.bytes(), &[0u8; 64][..]);
    eprintln!(
        "P-256, one certificate each way: rounds {} server fragments {} ({} EAP bytes) client \
         fragments {} ({} EAP bytes)",
        r.rounds, r.server_fragments, r.server_bytes, r.client_fragments, r.client_bytes
    );
}

#[test]
fn fragmented_1024_reassembled() {
    // A client certificate with many SANs and a server chain with an intermediate: both
    // flights exceed 1024 bytes.
    let root = ca("Root");
    let (chain, key) = leaf(&root, "alice", Some("alice@tls.example.org"), 60, 2055);
    let mut s = setup(&root);
    let (big, _) = leaf(&root, "pad", None, 60, 2055);
    s.chain.extend(big); // unrelated extra certificate: only makes the flight long
    let mut server = Server::new(&s, NOW, 0).unwrap();
    let mut client = Client::new("alice@tls.example.org", &chain, key, store(&root), NOW).unwrap();
    let r = run(&mut server, &mut client);
    let (msk, _) = r.server.expect("server success");
    assert_eq!(Some(msk), r.client_msk);
    assert!(
        r.server_more >= 2,
        "server flight fragmented: {}",
        r.server_more
    );
    assert!(
        r.client_more >= 2,
        "client flight fragmented: {}",
        r.client_more
    );
    assert!(r.rounds as u32 <= tls::MAX_ROUNDS);
    eprintln!(
        "large flights: rounds {} server fragments {} (M {}, {} EAP bytes) client fragments {} \
         (M {}, {} EAP bytes)",
        r.rounds,
        r.server_fragments,
        r.server_more,
        r.server_bytes,
        r.client_fragments,
        r.client_more,
        r.client_bytes
    );
}

#[test]
fn untrusted_client_cert_eap_failure() {
    let root = ca("Root");
    let other = ca("Other");
    let s = setup(&root);
    let (chain, key) = leaf(&other, "mallory", Some("mallory@tls.example.org"), 0, 2055);
    let mut server = Server::new(&s, NOW, 0).unwrap();
    // The client trusts the gateway's CA; only its own certificate is foreign.
    let mut client =
        Client::new("mallory@tls.example.org", &chain, key, store(&root), NOW).unwrap();
    let r = run(&mut server, &mut client);
    match r.server {
        Err(FailReason::Certificate(why)) => assert!(why.contains("not a trusted CA"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(r.client_msk.is_none());
}

#[test]
fn expired_client_cert_refused_at_engine_now() {
    let root = ca("Root");
    let s = setup(&root);
    let (chain, key) = leaf(&root, "alice", Some("alice@tls.example.org"), 0, 2026);
    let mut server = Server::new(&s, NOW, 0).unwrap();
    let mut client = Client::new("alice@tls.example.org", &chain, key, store(&root), NOW).unwrap();
    match run(&mut server, &mut client).server {
        Err(FailReason::Certificate(why)) => assert!(why.contains("expired"), "{why}"),
        other => panic!("{other:?}"),
    }
    // The same certificate at a clock before its end passes.
    let (chain, key) = leaf(&root, "alice", Some("alice@tls.example.org"), 0, 2026);
    let early = 1_700_000_000;
    let mut server = Server::new(&s, early, 0).unwrap();
    let mut client =
        Client::new("alice@tls.example.org", &chain, key, store(&root), early).unwrap();
    assert!(run(&mut server, &mut client).server.is_ok());
}

#[test]
fn identity_not_in_certificate_refused() {
    let root = ca("Root");
    let s = setup(&root);
    let (chain, key) = leaf(&root, "alice", Some("alice@tls.example.org"), 0, 2055);
    let mut server = Server::new(&s, NOW, 0).unwrap();
    let mut client = Client::new("bob@tls.example.org", &chain, key, store(&root), NOW).unwrap();
    assert_eq!(
        run(&mut server, &mut client).server.err(),
        Some(FailReason::IdentityMismatch)
    );
    // The certificate's DNS name and its subject DN are identities it speaks for too.
    let cert = &leaf(&root, "alice", None, 0, 2055).0[0];
    assert!(tls::identity_in_certificate("alice.example", cert));
    assert!(tls::identity_in_certificate("CN=alice", cert));
    assert!(!tls::identity_in_certificate("CN=bob", cert));
    assert!(!tls::identity_in_certificate("10.0.0.1", cert));
}

#[test]
fn nak_and_other_types_fail_cleanly() {
    let root = ca("Root");
    let s = setup(&root);
    let mut server = Server::new(&s, NOW, 0).unwrap();
    let _ = server.start();
    let ServerStep::Continue(start) = server.step(&[2, 0, 0, 10, 1, b'a', b'@', b'b', b'.', b'c'])
    else {
        panic!("no Start")
    };
    assert_eq!(&start[4..], &[13, tls::FLAG_START]);
    let id = start[1];
    match server.step(&[2, id, 0, 6, 3, 26]) {
        ServerStep::Failure { reason, packet } => {
            assert_eq!(reason, FailReason::Nak { wanted: vec![26] });
            assert_eq!(packet[0], 4);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn oversized_and_malformed_fragments_refused_without_panic() {
    let root = ca("Root");
    let s = setup(&root);
    let started = || {
        let mut server = Server::new(&s, NOW, 0).unwrap();
        let _ = server.start();
        let ServerStep::Continue(start) = server.step(&[2, 0, 0, 6, 1, b'x']) else {
            panic!()
        };
        (server, start[1])
    };
    // L announces more than 64 KiB.
    let (mut server, id) = started();
    let p = [2, id, 0, 14, 13, 0xc0, 0x00, 0x02, 0x00, 0x00, 1, 2, 3, 4];
    assert!(matches!(
        server.step(&p),
        ServerStep::Failure {
            reason: FailReason::TooLarge,
            ..
        }
    ));
    // L flag but no length.
    let (mut server, id) = started();
    assert!(matches!(
        server.step(&[2, id, 0, 8, 13, 0x80, 0, 0]),
        ServerStep::Failure {
            reason: FailReason::Malformed(_),
            ..
        }
    ));
    // More data than announced.
    let (mut server, id) = started();
    assert!(matches!(
        server.step(&[2, id, 0, 13, 13, 0x80, 0, 0, 0, 1, 1, 2, 3]),
        ServerStep::Failure {
            reason: FailReason::Malformed(_),
            ..
        }
    ));
    // Garbage TLS: a failure, not a panic.
    let (mut server, id) = started();
    assert!(matches!(
        server.step(&[2, id, 0, 10, 13, 0, 0x16, 3, 3, 0xff]),
        ServerStep::Failure { .. }
    ));
    // Fragments that never end: the round limit.
    let (mut server, mut id) = started();
    let mut failed = false;
    for _ in 0..100 {
        match server.step(&[2, id, 0, 8, 13, 0x40, 0x16, 0x03]) {
            ServerStep::Continue(p) => id = p[1],
            ServerStep::Failure { reason, .. } => {
                assert_eq!(reason, FailReason::TooManyRounds);
                failed = true;
                break;
            }
            ServerStep::Success { .. } => panic!(),
        }
    }
    assert!(failed);
    // Every prefix of a valid exchange's packets, and random bytes: no panic.
    for n in 0..12 {
        let (mut server, id) = started();
        let p = [2, id, 0, 12, 13, 0x80, 0, 0, 0, 2, 0x16, 3];
        let _ = server.step(&p[..n]);
    }
}

mod prop {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn shared_setup() -> &'static ServerSetup {
        static S: OnceLock<ServerSetup> = OnceLock::new();
        S.get_or_init(|| setup(&ca("Root")))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any sequence of responses (each given the Identifier the server expects, so that
        /// they reach the EAP-TLS and TLS layers): a step, never a panic, and after a Failure
        /// nothing but more Failures.
        #[test]
        fn arbitrary_responses_never_panic(
            bodies in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..300), 1..12),
            tls_typed in any::<bool>(),
        ) {
            let mut server = Server::new(shared_setup(), NOW, 0).unwrap();
            let first = server.start();
            let mut id = first[1];
            let mut over = false;
            for (i, body) in bodies.into_iter().enumerate() {
                // The Identity first, then EAP-TLS type-data (or anything, when not tls_typed).
                let (typ, data) = if i == 0 {
                    (1u8, b"x@y.example".to_vec())
                } else if tls_typed {
                    (13u8, body)
                } else {
                    (*body.first().unwrap_or(&0), body.get(1..).unwrap_or_default().to_vec())
                };
                let mut p = vec![2, id, 0, 0, typ];
                p.extend_from_slice(&data);
                let len = p.len().min(usize::from(u16::MAX)) as u16;
                p[2..4].copy_from_slice(&len.to_be_bytes());
                match server.step(&p) {
                    ServerStep::Continue(next) => {
                        prop_assert!(!over);
                        id = next[1];
                    }
                    ServerStep::Failure { packet, .. } => {
                        prop_assert_eq!(packet[0], 4);
                        over = true;
                    }
                    ServerStep::Success { .. } => prop_assert!(false, "success from noise"),
                }
            }
        }
    }
}
