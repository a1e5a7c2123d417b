//! The RADIUS client (RFC 2865, RFC 3579, RFC 2548): known answers, strict response checks,
//! the conversation state machine (State echo, retransmission, giving up), malformed input.

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use ironsec_eap::radius::*;
use md5::{Digest, Md5};
use proptest::prelude::*;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).unwrap()
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut m = Md5::new();
    for p in parts {
        m.update(p);
    }
    m.finalize().into()
}

/// Sets the Response Authenticator of `p` (answering `req_auth`) as a server would.
fn sign(p: &mut [u8], req_auth: &[u8; 16], secret: &[u8]) {
    p[4..20].copy_from_slice(req_auth);
    let d = md5(&[p, secret]);
    p[4..20].copy_from_slice(&d);
}

/// RFC 2865 §7.1: "nemo"/"arctangent" with shared secret "xyzzy5461". The Access-Accept's
/// Response Authenticator is MD5(Code|ID|Length|RequestAuth|Attributes|Secret).
#[test]
fn rfc2865_response_authenticator_known_answer() {
    let secret = Secret::new(b"xyzzy5461".to_vec()).unwrap();
    let request = h("01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb
                     98 f4 22 7a 01 06 6e 65 6d 6f 02 12 0d be 70 8d
                     93 d4 13 ce 31 96 e4 3f 78 2a 0a ee 04 06 c0 a8
                     01 10 05 06 00 00 00 03");
    let accept = h("02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf
                    9b 55 e0 b2 06 06 00 00 00 01 0f 06 00 00 00 00
                    0e 06 c0 a8 01 03");
    let req_auth: [u8; 16] = request[4..20].try_into().unwrap();
    assert!(response_authenticator_ok(&secret, &req_auth, &accept));
    let wrong = Secret::new(b"xyzzy5462".to_vec()).unwrap();
    assert!(!response_authenticator_ok(&wrong, &req_auth, &accept));
    // Authentic, but without Message-Authenticator: BlastRADIUS says drop it.
    let req = Request {
        identifier: 0,
        authenticator: req_auth,
        bytes: request,
    };
    assert_eq!(
        parse_response(&secret, &req, &accept).unwrap_err(),
        Dropped::NoMessageAuthenticator
    );
}

/// An Access-Accept computed independently (Python's hashlib/hmac) with secret
/// "testing123-kat": Message-Authenticator, Response Authenticator, EAP-Success and both
/// MS-MPPE keys (salts 0x8123 and 0x9234). MSK = Recv ‖ Send ‖ 32 zero bytes.
#[test]
fn accept_known_answer_message_authenticator_and_mppe_keys() {
    let secret = Secret::new(b"testing123-kat".to_vec()).unwrap();
    let accept = h(
        "022a0087e8a2f056c592d4f2c1f9c00e215b8add50125b1cb2dcf730b7c00cd37671d4784a2c\
                    4f06030900041a2a000001371124812368d0ee624bb371a61cd8a4a19c100139f2b02ddb5c8b\
                    1042c622d5c4b4c93dbb1a2a00000137102492348935aa3ea2d673af690362ef4e7c01a330a5\
                    04ee667f163295722512f4db1ede0107616c696365",
    );
    let authenticator: [u8; 16] = core::array::from_fn(|i| 0x10 + i as u8);
    let req = Request {
        identifier: 42,
        authenticator,
        bytes: Vec::new(),
    };
    let Answer::Accept { eap, msk } = parse_response(&secret, &req, &accept).unwrap() else {
        panic!("not an Accept")
    };
    assert_eq!(eap, [3, 9, 0, 4]);
    let msk = msk.expect("both keys");
    let mut want: Vec<u8> = (0xa0..0xb0).chain(0xc0..0xd0).collect();
    want.resize(64, 0);
    assert_eq!(msk.bytes(), &want[..]);
    // The salt decryption by itself.
    let vsa = &accept[52..86];
    assert_eq!(
        &decrypt_mppe_key(&secret, &authenticator, vsa).unwrap()[..],
        &want[..16]
    );
    // Any flipped bit anywhere is dropped.
    for i in 0..accept.len() {
        let mut bad = accept.clone();
        bad[i] ^= 0x01;
        assert!(parse_response(&secret, &req, &bad).is_err(), "byte {i}");
    }
    // The wrong secret or another request's authenticator.
    let wrong = Secret::new(b"testing123-kax".to_vec()).unwrap();
    assert_eq!(
        parse_response(&wrong, &req, &accept).unwrap_err(),
        Dropped::BadResponseAuthenticator
    );
}

#[test]
fn mppe_key_decrypt_rfc2548_round_trip_and_refusals() {
    let secret = Secret::new(b"k".to_vec()).unwrap();
    let ra = [7u8; 16];
    for len in [1usize, 15, 16, 32, 40] {
        let key: Vec<u8> = (0..len as u8).collect();
        let enc = encrypt_mppe_key(&secret, &ra, [0x80, 0x01], &key);
        assert_eq!((enc.len() - 2) & 0xf, 0);
        assert_eq!(&decrypt_mppe_key(&secret, &ra, &enc).unwrap()[..], &key[..]);
    }
    let enc = encrypt_mppe_key(&secret, &ra, [0x00, 0x01], b"0123456789abcdef");
    assert!(
        decrypt_mppe_key(&secret, &ra, &enc).is_none(),
        "salt high bit"
    );
    let enc = encrypt_mppe_key(&secret, &ra, [0x80, 0x01], b"0123456789abcdef");
    assert!(decrypt_mppe_key(&secret, &ra, &enc[..enc.len() - 1]).is_none());
    assert!(decrypt_mppe_key(&secret, &ra, &enc[..2]).is_none());
    // A key length past the plaintext.
    let mut forged = enc.clone();
    forged[2] ^= 0xff;
    assert!(decrypt_mppe_key(&secret, &ra, &forged).is_none() || forged[2] != 0);
}

fn secret() -> Secret {
    Secret::new(b"a shared secret".to_vec()).unwrap()
}

fn client(tries: u32) -> Client {
    Client::new(
        ClientConfig {
            nas_identifier: "gw".into(),
            nas_ip: None,
            timeout: Duration::from_secs(2),
            tries,
        },
        secret(),
    )
}

fn sent(bytes: &[u8]) -> (u8, [u8; 16]) {
    (bytes[1], bytes[4..20].try_into().unwrap())
}

fn attrs_of(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    attributes(&bytes[20..])
        .unwrap()
        .into_iter()
        .map(|(t, v)| (t, v.to_vec()))
        .collect()
}

const EAP_ID: [u8; 10] = [2, 1, 0, 10, 1, b'a', b'l', b'i', b'c', b'e'];

#[test]
fn challenge_state_is_echoed_and_accept_ends_the_conversation() {
    let now = Instant::now();
    let mut c = client(3);
    let s = secret();
    c.start(5, b"alice", "gw".into(), "client".into());
    let r1 = c.send(now, 5, &EAP_ID, [1; 16]).unwrap();
    let a = attrs_of(&r1);
    assert_eq!(a[0].0, MESSAGE_AUTHENTICATOR);
    assert!(!a.iter().any(|(t, _)| *t == STATE));
    let (id, ra) = sent(&r1);
    let challenge_eap = [1u8, 2, 0, 6, 26, 1];
    let mut attrs = eap_attrs(&challenge_eap);
    attrs.push((STATE, b"opaque-state".to_vec()));
    let resp = build_response(&s, ACCESS_CHALLENGE, id, &ra, &attrs);
    let (key, Answer::Challenge { eap, state }) = c.receive(&resp).unwrap() else {
        panic!("challenge")
    };
    assert_eq!((key, &eap[..]), (5, &challenge_eap[..]));
    assert_eq!(state.as_deref(), Some(&b"opaque-state"[..]));
    // The same answer again: its request is no longer in flight.
    assert_eq!(c.receive(&resp).unwrap_err(), Dropped::UnknownIdentifier);
    let r2 = c.send(now, 5, &[2, 2, 0, 5, 26], [2; 16]).unwrap();
    assert!(attrs_of(&r2).contains(&(STATE, b"opaque-state".to_vec())));
    let (id2, ra2) = sent(&r2);
    assert_ne!(id2, id);
    let mut attrs = eap_attrs(&[3, 2, 0, 4]);
    attrs.push(mppe_attr(&s, &ra2, MPPE_RECV, [0x80, 1], &[0x11; 16]));
    attrs.push(mppe_attr(&s, &ra2, MPPE_SEND, [0x80, 2], &[0x22; 16]));
    let resp = build_response(&s, ACCESS_ACCEPT, id2, &ra2, &attrs);
    let (_, Answer::Accept { eap, msk }) = c.receive(&resp).unwrap() else {
        panic!("accept")
    };
    assert_eq!(eap, [3, 2, 0, 4]);
    let msk = msk.unwrap();
    assert_eq!(&msk.bytes()[..16], &[0x11; 16]);
    assert_eq!(&msk.bytes()[16..32], &[0x22; 16]);
    assert_eq!(&msk.bytes()[32..], &[0; 32]);
    assert_eq!(
        c.send(now, 5, &EAP_ID, [3; 16]).unwrap_err(),
        SendError::NoConversation
    );
    let st = c.stats();
    assert_eq!(
        (st.requests, st.challenges, st.accepts, st.dropped),
        (2, 1, 1, 1)
    );
}

#[test]
fn reject_with_and_without_eap_failure() {
    let now = Instant::now();
    let mut c = client(3);
    let s = secret();
    c.start(1, b"bob", "gw".into(), "c".into());
    let r = c.send(now, 1, &EAP_ID, [9; 16]).unwrap();
    let (id, ra) = sent(&r);
    let resp = build_response(&s, ACCESS_REJECT, id, &ra, &eap_attrs(&[4, 1, 0, 4]));
    let (_, Answer::Reject { eap }) = c.receive(&resp).unwrap() else {
        panic!()
    };
    assert_eq!(eap.as_deref(), Some(&[4u8, 1, 0, 4][..]));
    c.start(2, b"bob", "gw".into(), "c".into());
    let r = c.send(now, 2, &EAP_ID, [8; 16]).unwrap();
    let (id, ra) = sent(&r);
    let resp = build_response(&s, ACCESS_REJECT, id, &ra, &[]);
    assert!(matches!(
        c.receive(&resp).unwrap(),
        (2, Answer::Reject { eap: None })
    ));
    assert_eq!(c.stats().rejects, 2);
}

#[test]
fn response_without_message_authenticator_dropped() {
    let mut c = client(3);
    c.start(1, b"alice", "gw".into(), "c".into());
    let r = c.send(Instant::now(), 1, &EAP_ID, [4; 16]).unwrap();
    let (id, ra) = sent(&r);
    // A Challenge with a valid Response Authenticator and no Message-Authenticator.
    let mut p = vec![ACCESS_CHALLENGE, id, 0, 0];
    p.extend_from_slice(&[0; 16]);
    p.extend_from_slice(&[EAP_MESSAGE, 6, 1, 2, 0, 4]);
    let len = (p.len() as u16).to_be_bytes();
    p[2..4].copy_from_slice(&len);
    sign(&mut p, &ra, b"a shared secret");
    assert_eq!(c.receive(&p).unwrap_err(), Dropped::NoMessageAuthenticator);
    assert_eq!(c.stats().dropped_message_authenticator, 1);
    // The request is still in flight: the right answer goes through afterwards.
    let good = build_response(
        &secret(),
        ACCESS_CHALLENGE,
        id,
        &ra,
        &eap_attrs(&[1, 2, 0, 4]),
    );
    assert!(c.receive(&good).is_ok());
}

#[test]
fn wrong_message_authenticator_dropped() {
    let mut c = client(3);
    c.start(1, b"alice", "gw".into(), "c".into());
    let r = c.send(Instant::now(), 1, &EAP_ID, [4; 16]).unwrap();
    let (id, ra) = sent(&r);
    let mut p = build_response(
        &secret(),
        ACCESS_CHALLENGE,
        id,
        &ra,
        &eap_attrs(&[1, 2, 0, 4]),
    );
    p[25] ^= 0x40;
    sign(&mut p, &ra, b"a shared secret");
    assert_eq!(c.receive(&p).unwrap_err(), Dropped::BadMessageAuthenticator);
    // A Message-Authenticator that is right for the wrong secret.
    let other = Secret::new(b"another".to_vec()).unwrap();
    let mut p = build_response(&other, ACCESS_CHALLENGE, id, &ra, &eap_attrs(&[1, 2, 0, 4]));
    sign(&mut p, &ra, b"a shared secret");
    assert_eq!(c.receive(&p).unwrap_err(), Dropped::BadMessageAuthenticator);
    // And its HMAC is what we recompute independently.
    let p = build_response(
        &secret(),
        ACCESS_CHALLENGE,
        id,
        &ra,
        &eap_attrs(&[1, 2, 0, 4]),
    );
    let mut z = p.clone();
    z[4..20].copy_from_slice(&ra);
    z[22..38].fill(0);
    let mut mac = Hmac::<Md5>::new_from_slice(b"a shared secret").unwrap();
    mac.update(&z);
    assert_eq!(&mac.finalize().into_bytes()[..], &p[22..38]);
}

#[test]
fn wrong_response_authenticator_identifier_and_length_dropped() {
    let mut c = client(3);
    c.start(1, b"alice", "gw".into(), "c".into());
    let r = c.send(Instant::now(), 1, &EAP_ID, [4; 16]).unwrap();
    let (id, ra) = sent(&r);
    let good = build_response(
        &secret(),
        ACCESS_CHALLENGE,
        id,
        &ra,
        &eap_attrs(&[1, 2, 0, 4]),
    );
    let mut p = good.clone();
    p[10] ^= 1;
    assert_eq!(
        c.receive(&p).unwrap_err(),
        Dropped::BadResponseAuthenticator
    );
    let mut p = good.clone();
    p[1] = id.wrapping_add(1);
    assert_eq!(c.receive(&p).unwrap_err(), Dropped::UnknownIdentifier);
    assert_eq!(
        c.receive(&good[..good.len() - 1]).unwrap_err(),
        Dropped::Malformed
    );
    assert_eq!(c.receive(&good[..3]).unwrap_err(), Dropped::Malformed);
    let mut p = good.clone();
    p[0] = ACCESS_REQUEST;
    assert_eq!(c.receive(&p).unwrap_err(), Dropped::UnexpectedCode);
    // Trailing bytes past Length are ignored (RFC 2865 §3).
    let mut p = good.clone();
    p.extend_from_slice(&[0xde, 0xad]);
    assert!(c.receive(&p).is_ok());
    assert_eq!(c.stats().dropped, 5);
}

#[test]
fn challenge_with_a_broken_eap_message_dropped() {
    let mut c = client(3);
    c.start(1, b"alice", "gw".into(), "c".into());
    let r = c.send(Instant::now(), 1, &EAP_ID, [4; 16]).unwrap();
    let (id, ra) = sent(&r);
    // EAP length 9 in a 4-byte message; and no EAP at all.
    for attrs in [eap_attrs(&[1, 2, 0, 9]), vec![]] {
        let p = build_response(&secret(), ACCESS_CHALLENGE, id, &ra, &attrs);
        assert_eq!(c.receive(&p).unwrap_err(), Dropped::BadAttributes);
    }
}

#[test]
fn retransmits_then_fails() {
    let t0 = Instant::now();
    let mut c = client(3);
    c.start(77, b"alice", "gw".into(), "c".into());
    let r = c.send(t0, 77, &EAP_ID, [4; 16]).unwrap();
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(2)));
    let t = c.handle_timeout(t0 + Duration::from_secs(1));
    assert!(t.resend.is_empty() && t.gave_up.is_empty());
    let t = c.handle_timeout(t0 + Duration::from_secs(2));
    assert_eq!(t.resend, vec![r.clone()], "the very same packet");
    let t = c.handle_timeout(t0 + Duration::from_secs(4));
    assert_eq!(t.resend, vec![r]);
    let t = c.handle_timeout(t0 + Duration::from_secs(6));
    assert_eq!((t.resend.len(), t.gave_up), (0, vec![77]));
    assert_eq!(c.poll_timeout(), None);
    let st = c.stats();
    assert_eq!((st.requests, st.retransmits, st.timeouts), (1, 2, 1));
    assert_eq!(
        c.send(t0, 77, &EAP_ID, [4; 16]).unwrap_err(),
        SendError::NoConversation
    );
}

#[test]
fn identifiers_run_out_at_256_in_flight() {
    let now = Instant::now();
    let mut c = client(3);
    for k in 0..256u64 {
        c.start(k, b"u", "gw".into(), "c".into());
        c.send(now, k, &EAP_ID, [k as u8; 16]).unwrap();
    }
    c.start(999, b"u", "gw".into(), "c".into());
    assert_eq!(
        c.send(now, 999, &EAP_ID, [0; 16]).unwrap_err(),
        SendError::Busy
    );
    c.forget(3);
    assert!(c.send(now, 999, &EAP_ID, [0; 16]).is_ok());
    assert_eq!(c.in_flight(), 256);
}

#[test]
fn debug_shows_no_secret() {
    let s = Secret::new(b"hunter2-secret".to_vec()).unwrap();
    assert!(!format!("{s:?}").contains("hunter2"));
    let c = Client::new(
        ClientConfig {
            nas_identifier: "gw".into(),
            nas_ip: None,
            timeout: Duration::from_secs(1),
            tries: 1,
        },
        s,
    );
    assert!(!format!("{c:?}").contains("hunter2"));
    assert!(Secret::new(Vec::new()).is_none());
}

proptest! {
    #[test]
    fn arbitrary_datagrams_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600), id in any::<u8>()) {
        let mut c = client(2);
        c.start(1, b"alice", "gw".into(), "c".into());
        let _ = c.send(Instant::now(), 1, &EAP_ID, [4; 16]);
        let mut d = data;
        if d.len() > 1 { d[1] = id; }
        let _ = c.receive(&d);
        let _ = attributes(&d);
        let _ = decrypt_mppe_key(&secret(), &[0; 16], &d);
    }
}
