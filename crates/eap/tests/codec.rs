//! The EAP codec on hostile input: malformed lengths refused, nothing panics, valid packets
//! round-trip byte for byte.

use ironsec_eap::codec::{Body, Code, MsChapV2, Packet};
use ironsec_eap::{Users, UsersErrorKind};
use proptest::prelude::*;

#[test]
fn malformed_lengths_refused() {
    // Length field larger / smaller than the bytes.
    assert!(Packet::parse(&[2, 1, 0, 9, 1, b'a']).is_err());
    assert!(Packet::parse(&[2, 1, 0, 5, 1, b'a']).is_err());
    // Shorter than the header; Success with data; unknown code.
    assert!(Packet::parse(&[3, 1, 0]).is_err());
    assert!(Packet::parse(&[3, 1, 0, 5, 0]).is_err());
    assert!(Packet::parse(&[5, 1, 0, 4]).is_err());
    // Request without a type.
    assert!(Packet::parse(&[1, 1, 0, 4]).is_err());
    // Nak in a request, and an empty Nak.
    assert!(Packet::parse(&[1, 1, 0, 6, 3, 26]).is_err());
    assert!(Packet::parse(&[2, 1, 0, 5, 3]).is_err());
    assert_eq!(Packet::parse(&[3, 7, 0, 4]).unwrap().code, Code::Success);
}

fn response(ms_len: u16, value_size: u8, reserved: u8) -> Vec<u8> {
    let mut v = vec![2, 5, 0, 0, 26, 2, 4];
    v.extend(ms_len.to_be_bytes());
    v.push(value_size);
    v.extend([0x11; 16]);
    v.extend([reserved; 8]);
    v.extend([0x22; 24]);
    v.push(0);
    v.extend(b"bob");
    let l = v.len() as u16;
    v[2..4].copy_from_slice(&l.to_be_bytes());
    v
}

#[test]
fn ms_length_mismatch_refused() {
    let good = response(4 + 1 + 49 + 3, 49, 0);
    let p = Packet::parse(&good).unwrap();
    let Body::MsChapV2(MsChapV2::Response { ms_id, name, .. }) = &p.body else {
        panic!("{p:?}")
    };
    assert_eq!((*ms_id, name.as_slice()), (4, &b"bob"[..]));
    assert_eq!(p.encode(), good);
    assert!(Packet::parse(&response(4 + 1 + 49 + 2, 49, 0)).is_err());
    assert!(Packet::parse(&response(4 + 1 + 49 + 3, 48, 0)).is_err());
    assert!(Packet::parse(&response(4 + 1 + 49 + 3, 49, 1)).is_err());
    // A Success acknowledgement is the OpCode alone.
    assert!(Packet::parse(&[2, 1, 0, 6, 26, 3]).is_ok());
    assert!(Packet::parse(&[2, 1, 0, 7, 26, 3, 0]).is_err());
    // A Response in a request, a Challenge in a response.
    let mut r = good.clone();
    r[0] = 1;
    assert!(Packet::parse(&r).is_err());
}

#[test]
fn debug_shows_no_peer_bytes() {
    let p = Packet::parse(&response(57, 49, 0)).unwrap();
    let d = format!("{p:?}");
    assert!(!d.contains("bob") && !d.contains("34"), "{d}");
}

#[test]
fn users_file() {
    let text = "# users\n\nalice:8846F7EAEE8FB117AD06BDD830B7586C\n  bob : 8846f7eaee8fb117ad06bdd830b7586c \n";
    let u = Users::parse(text).unwrap();
    assert_eq!(u.len(), 2);
    assert_eq!(u.get("alice"), u.get("bob"));
    assert_eq!(u.get("alice"), Some(&ironsec_eap::nthash("password")));
    let dbg = format!("{u:?} {:?}", u.get("alice").unwrap());
    assert!(!dbg.to_lowercase().contains("8846"), "{dbg}");
    let err = |t: &str| Users::parse(t).unwrap_err();
    assert_eq!(err("a:00\n").kind, UsersErrorKind::BadHash);
    assert_eq!(err("\n\nnohash\n").line, 3);
    assert_eq!(
        err(":8846F7EAEE8FB117AD06BDD830B7586C").kind,
        UsersErrorKind::EmptyName
    );
    assert_eq!(
        err("a b:8846F7EAEE8FB117AD06BDD830B7586C").kind,
        UsersErrorKind::BadName
    );
    let dup = err("a:8846F7EAEE8FB117AD06BDD830B7586C\na:8846F7EAEE8FB117AD06BDD830B7586D");
    assert_eq!(dup.line, 2);
    assert_eq!(
        dup.kind,
        UsersErrorKind::Duplicate {
            name: "a".into(),
            first: 1
        }
    );
    assert!(!dup.to_string().contains("8846"));
}

fn packet() -> impl Strategy<Value = Packet> {
    let name = proptest::collection::vec(any::<u8>(), 0..40);
    let body = prop_oneof![
        name.clone().prop_map(Body::Identity),
        proptest::collection::vec(any::<u8>(), 1..4).prop_map(Body::Nak),
        (any::<u8>(), any::<[u8; 16]>(), name.clone()).prop_map(|(ms_id, challenge, name)| {
            Body::MsChapV2(MsChapV2::Challenge {
                ms_id,
                challenge,
                name,
            })
        }),
        (
            any::<u8>(),
            any::<[u8; 16]>(),
            any::<[u8; 24]>(),
            any::<u8>(),
            name.clone()
        )
            .prop_map(|(ms_id, peer_challenge, nt_response, flags, name)| {
                Body::MsChapV2(MsChapV2::Response {
                    ms_id,
                    peer_challenge,
                    nt_response,
                    flags,
                    name,
                })
            }),
        (any::<u8>(), name.clone())
            .prop_map(|(ms_id, message)| Body::MsChapV2(MsChapV2::Success { ms_id, message })),
        (any::<u8>(), name.clone())
            .prop_map(|(ms_id, message)| Body::MsChapV2(MsChapV2::Failure { ms_id, message })),
        Just(Body::MsChapV2(MsChapV2::SuccessAck)),
        Just(Body::MsChapV2(MsChapV2::FailureAck)),
        (4u8..=25, name).prop_map(|(typ, data)| Body::Other { typ, data }),
        Just(Body::Empty),
    ];
    (body, any::<u8>()).prop_map(|(body, identifier)| {
        let code = match &body {
            Body::Empty => Code::Success,
            Body::Nak(_)
            | Body::MsChapV2(
                MsChapV2::Response { .. } | MsChapV2::SuccessAck | MsChapV2::FailureAck,
            ) => Code::Response,
            Body::MsChapV2(_) => Code::Request,
            _ => Code::Response,
        };
        Packet::new(code, identifier, body)
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        if let Ok(p) = Packet::parse(&bytes) {
            prop_assert_eq!(p.encode(), bytes);
        }
    }

    #[test]
    fn mutated_valid_packets_never_panic(p in packet(), at in any::<usize>(), to in any::<u8>()) {
        let mut bytes = p.encode();
        let i = at % bytes.len();
        bytes[i] = to;
        if let Ok(q) = Packet::parse(&bytes) {
            prop_assert_eq!(q.encode(), bytes);
        }
    }

    #[test]
    fn valid_packets_round_trip(p in packet()) {
        let bytes = p.encode();
        prop_assert_eq!(Packet::parse(&bytes).unwrap(), p);
    }
}
