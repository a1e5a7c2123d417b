//! Known answers: RFC 2759 §9.2 (MSCHAPv2), RFC 3079 §3.5.3 (MPPE master and start keys), the
//! MSK layout strongSwan 5.9.8 uses, and client/server dialogues.

use std::sync::Arc;

use ironsec_eap::mschapv2::{
    authenticator_response, challenge_hash, master_key, msk, nt_response, start_keys,
};
use ironsec_eap::{nthash, Client, ClientStep, FailReason, Server, ServerStep, Users};

fn h<const N: usize>(s: &str) -> [u8; N] {
    hex::decode(s.replace(' ', "")).unwrap().try_into().unwrap()
}

// RFC 2759 §9.2.
const USER: &[u8] = b"User";
const PASSWORD: &str = "clientPass";
const AUTH_CHALLENGE: &str = "5B 5D 7C 7D 7B 3F 2F 3E 3C 2C 60 21 32 26 26 28";
const PEER_CHALLENGE: &str = "21 40 23 24 25 5E 26 2A 28 29 5F 2B 3A 33 7C 7E";
const CHALLENGE: &str = "D0 2E 43 86 BC E9 12 26";
const PASSWORD_HASH: &str = "44 EB BA 8D 53 12 B8 D6 11 47 44 11 F5 69 89 AE";
const NT_RESPONSE: &str = "82 30 9E CD 8D 70 8B 5E A0 8F AA 39 81 CD 83 54 42 33 11 4A 3D 85 D6 DF";
const AUTH_RESPONSE: &str = "S=407A5589115FD0D6209F510FE9C04566932CDA56";
// RFC 3079 §3.5.3.
const MASTER_KEY: &str = "FD EC E3 71 7A 8C 83 8C B3 88 E5 27 AE 3C DD 31";
const SEND_START_KEY_128: &str = "8B 7C DC 14 9B 99 3A 1B A1 18 CB 15 3F 56 DC CB";

#[test]
fn rfc2759_9_2_vectors() {
    let hash = nthash(PASSWORD);
    assert_eq!(hash.bytes(), &h::<16>(PASSWORD_HASH));
    let (ac, pc) = (h::<16>(AUTH_CHALLENGE), h::<16>(PEER_CHALLENGE));
    assert_eq!(challenge_hash(&pc, &ac, USER), h::<8>(CHALLENGE));
    let nt = nt_response(&hash, &ac, &pc, USER);
    assert_eq!(nt, h::<24>(NT_RESPONSE));
    assert_eq!(
        authenticator_response(&hash, &nt, &pc, &ac, USER),
        AUTH_RESPONSE
    );
}

#[test]
fn rfc3079_3_5_3_master_and_start_keys() {
    let hash = nthash(PASSWORD);
    let master = master_key(&hash, &h::<24>(NT_RESPONSE));
    assert_eq!(*master, h::<16>(MASTER_KEY));
    let (_recv, send) = start_keys(&master);
    // The RFC's SendStartKey128 is the server's send key (Magic3).
    assert_eq!(*send, h::<16>(SEND_START_KEY_128));
}

#[test]
fn msk_layout_matches_strongswan() {
    // strongSwan GenerateMSK: receive key (Magic2) | send key (Magic3) | 32 zero bytes.
    let hash = nthash(PASSWORD);
    let nt = h::<24>(NT_RESPONSE);
    let (recv, send) = start_keys(&master_key(&hash, &nt));
    let m = msk(&hash, &nt);
    assert_eq!(m.bytes().len(), 64);
    assert_eq!(&m.bytes()[..16], &recv[..]);
    assert_eq!(&m.bytes()[16..32], &h::<16>(SEND_START_KEY_128));
    assert_eq!(&m.bytes()[32..], &[0u8; 32]);
    assert_ne!(&recv[..], &send[..]);
    assert_eq!(format!("{m:?}"), "Msk(<64 bytes redacted>)");
}

#[test]
fn username_domain_stripped() {
    let (ac, pc) = (h::<16>(AUTH_CHALLENGE), h::<16>(PEER_CHALLENGE));
    assert_eq!(
        challenge_hash(&pc, &ac, b"EXAMPLE\\User"),
        h::<8>(CHALLENGE)
    );
    let hash = nthash(PASSWORD);
    assert_eq!(
        nt_response(&hash, &ac, &pc, b"EXAMPLE\\User"),
        h::<24>(NT_RESPONSE)
    );
}

fn users() -> Arc<Users> {
    let mut u = Users::new();
    u.insert("alice", nthash("correct horse"));
    u.insert("User", nthash(PASSWORD));
    Arc::new(u)
}

/// Runs a dialogue; returns the server's last step and what the client made of it.
fn dialogue(user: &str, password: &str) -> (ServerStep, Option<ClientStep>) {
    let mut server = Server::new(users(), [7; 16], 40);
    let mut client = Client::new(user, nthash(password), [9; 16]);
    let mut request = server.start();
    loop {
        let ClientStep::Respond(resp) = client.step(&request).unwrap() else {
            panic!("client ended early");
        };
        match server.step(&resp) {
            ServerStep::Continue(next) => request = next,
            done @ (ServerStep::Success { .. } | ServerStep::Failure { .. }) => {
                let packet = match &done {
                    ServerStep::Success { packet, .. } | ServerStep::Failure { packet, .. } => {
                        packet.clone()
                    }
                    _ => unreachable!(),
                };
                let c = client.step(&packet).ok();
                return (done, c);
            }
        }
    }
}

#[test]
fn round_trip_msks_match() {
    let (s, c) = dialogue("alice", "correct horse");
    let (
        ServerStep::Success {
            msk: ms,
            user,
            packet,
        },
        Some(ClientStep::Success(mc)),
    ) = (s, c)
    else {
        panic!("no success")
    };
    assert_eq!(user, "alice");
    assert_eq!(packet[0], 3);
    assert_eq!(ms, mc);
    assert_eq!(ms.bytes().len(), 64);
}

#[test]
fn domain_user_maps_to_the_plain_entry() {
    let (s, c) = dialogue("CORP\\alice", "correct horse");
    assert!(
        matches!(s, ServerStep::Success { ref user, .. } if user == "alice"),
        "{s:?}"
    );
    assert!(matches!(c, Some(ClientStep::Success(_))));
}

#[test]
fn wrong_password_fails() {
    let (s, c) = dialogue("alice", "Correct horse");
    assert!(
        matches!(&s, ServerStep::Failure { reason: FailReason::WrongPassword, packet } if packet[0] == 4),
        "{s:?}"
    );
    assert!(matches!(c, Some(ClientStep::Failure)));
    let (s, _) = dialogue("mallory", "x");
    assert!(matches!(
        s,
        ServerStep::Failure {
            reason: FailReason::UnknownUser,
            ..
        }
    ));
}

#[test]
fn failure_message_has_no_retry() {
    let mut server = Server::new(users(), [0xab; 16], 1);
    let mut client = Client::new("alice", nthash("nope"), [1; 16]);
    let r = server.start();
    let ClientStep::Respond(id) = client.step(&r).unwrap() else {
        panic!()
    };
    let ServerStep::Continue(ch) = server.step(&id) else {
        panic!()
    };
    let ClientStep::Respond(resp) = client.step(&ch).unwrap() else {
        panic!()
    };
    let ServerStep::Continue(fail) = server.step(&resp) else {
        panic!()
    };
    let text = String::from_utf8_lossy(&fail[9..]).to_string();
    assert_eq!(
        text,
        format!(
            "E=691 R=0 C={} V=3 M=Authentication failed",
            "AB".repeat(16)
        )
    );
}

#[test]
fn nak_fails_with_the_wanted_methods() {
    let mut server = Server::new(users(), [0; 16], 1);
    let r = server.start();
    let mut client = Client::new("alice", nthash("x"), [1; 16]);
    let ClientStep::Respond(id) = client.step(&r).unwrap() else {
        panic!()
    };
    let ServerStep::Continue(_) = server.step(&id) else {
        panic!()
    };
    // Nak (type 3) wanting EAP-TLS (13), identifier 2.
    let nak = [2, 2, 0, 6, 3, 13];
    let s = server.step(&nak);
    let ServerStep::Failure { reason, .. } = s else {
        panic!("{s:?}")
    };
    assert_eq!(reason, FailReason::Nak { wanted: vec![13] });
    assert!(reason.to_string().contains("EAP-TLS"), "{reason}");
}

#[test]
fn client_refuses_a_forged_success() {
    let mut server = Server::new(users(), [3; 16], 1);
    let mut client = Client::new("alice", nthash("correct horse"), [1; 16]);
    let r = server.start();
    let ClientStep::Respond(id) = client.step(&r).unwrap() else {
        panic!()
    };
    let ServerStep::Continue(ch) = server.step(&id) else {
        panic!()
    };
    let ClientStep::Respond(_) = client.step(&ch).unwrap() else {
        panic!()
    };
    let mut forged = b"S=".to_vec();
    forged.extend(b"0".repeat(40));
    forged.extend(b" M=hi");
    let p = ironsec_eap::Packet::new(
        ironsec_eap::Code::Request,
        3,
        ironsec_eap::Body::MsChapV2(ironsec_eap::MsChapV2::Success {
            ms_id: 2,
            message: forged,
        }),
    );
    assert!(client.step(&p.encode()).is_err());
    // EAP-Success without a verified Success is refused too.
    assert!(client.step(&[3, 3, 0, 4]).is_err());
}
