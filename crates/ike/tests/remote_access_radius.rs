//! Remote-access clients whose EAP the gateway relays to a RADIUS server (RFC 3579
//! pass-through; issue 24 slice S8), between two sans-IO endpoints. A is an EAP-MSCHAPv2
//! client, B the gateway with `RemoteAuth::EapRadius`. The test relays B's
//! [`Event::EapRadius`] through the real RADIUS client of `ironsec_eap::radius` (packets built,
//! answered, checked) to a server it plays with the eap crate's MSCHAPv2 server, handing the
//! MSK over in MS-MPPE-Recv-Key / MS-MPPE-Send-Key exactly as freeradius does, and gives the
//! answers back with `Endpoint::eap_radius_answer`.

mod ra_common;
use ra_common::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironsec_ike::config::{VipPool, VipRequest, VipRole};
use ironsec_ike::eap::mschapv2::{Server, ServerStep};
use ironsec_ike::eap::radius::{self, Answer, Client, ClientConfig, Secret};
use ironsec_ike::eap::{nthash, Users};
use ironsec_ike::testkit::*;
use ironsec_ike::wire::NotifyType;
use ironsec_ike::{Credentials, Event, Identity, LocalAuth, PeerConfig, RadiusAnswer, RemoteAuth};

const PASSWORD: &str = "alice's long password";
const SECRET: &[u8] = b"radius shared secret";

fn client_and_gateway(user: &str, password: &str) -> (PeerConfig, PeerConfig) {
    let (cred, trust) = gateway_pki();
    let (mut a, mut b) = pair_configs(IKE, ESP);
    a.local_id = Identity::parse("laptop.example");
    a.local_auth = LocalAuth::EapMschapv2 {
        user: user.into(),
        hash: nthash(password),
    };
    a.remote_auth = RemoteAuth::Pubkey(trust);
    a.vip = VipRole::Request(VipRequest::V4);
    a.local_ts = vec![sel("0.0.0.0/0")];
    b.local_auth = LocalAuth::Pubkey(Credentials::one(cred));
    b.remote_auth = RemoteAuth::EapRadius {
        server: "radius-1".into(),
    };
    b.remote_id = Identity::Any;
    b.remote_ts = vec![sel("0.0.0.0/0")];
    b.vip = VipRole::Assign(VipPool {
        ranges: vec!["10.10.0.0/29".into()],
        grace: Duration::from_secs(60),
        dns: vec![ip("10.2.0.53")],
    });
    (a, b)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Answer,
    /// The server is down: nothing comes back.
    Silent,
    /// Hold the answers until `release`.
    Hold,
    /// Hand over a wrong MS-MPPE-Recv-Key.
    WrongKey,
}

/// The gateway's RADIUS client (the real one) and a RADIUS server the test plays.
struct Radius {
    client: Client,
    sessions: HashMap<u64, Server>,
    mode: Mode,
    seen: usize,
    /// Access-Requests as the server received them.
    requests: Vec<Vec<u8>>,
    held: Vec<(u64, Vec<u8>)>,
    counter: u8,
}

impl Radius {
    fn new(mode: Mode) -> Radius {
        Radius {
            client: Client::new(
                ClientConfig {
                    nas_identifier: "gw-b".into(),
                    nas_ip: Some(ip("192.0.2.2")),
                    timeout: Duration::from_secs(1),
                    tries: 3,
                },
                Secret::new(SECRET.to_vec()).unwrap(),
            ),
            sessions: HashMap::new(),
            mode,
            seen: 0,
            requests: Vec::new(),
            held: Vec::new(),
            counter: 0,
        }
    }

    fn users() -> Arc<Users> {
        let mut u = Users::new();
        u.insert("alice", nthash(PASSWORD));
        u.insert("bob", nthash("bob's password"));
        Arc::new(u)
    }

    /// The server: reads the Access-Request (EAP-Message joined), steps MSCHAPv2, answers.
    fn serve(&mut self, request: &[u8]) -> Vec<u8> {
        let secret = Secret::new(SECRET.to_vec()).unwrap();
        self.requests.push(request.to_vec());
        let (id, ra): (u8, [u8; 16]) = (request[1], request[4..20].try_into().unwrap());
        let attrs = radius::attributes(&request[20..]).unwrap();
        let eap: Vec<u8> = attrs
            .iter()
            .filter(|(t, _)| *t == radius::EAP_MESSAGE)
            .flat_map(|(_, v)| v.to_vec())
            .collect();
        let user = attrs
            .iter()
            .find(|(t, _)| *t == radius::USER_NAME)
            .unwrap()
            .1
            .to_vec();
        let state = attrs.iter().find(|(t, _)| *t == radius::STATE).map(|a| a.1);
        let key = u64::from(user[0]);
        let server = match state {
            None => {
                // RFC 3579 §2.1: the first request carries the EAP-Response/Identity.
                let mut challenge = [0u8; 16];
                self.counter += 1;
                challenge[0] = self.counter;
                let mut s = Server::new(Radius::users(), challenge, eap[1]);
                s.start();
                self.sessions.insert(key, s);
                self.sessions.get_mut(&key).unwrap()
            }
            Some(st) => {
                assert_eq!(st, b"state-of-the-server", "State echoed exactly");
                self.sessions.get_mut(&key).unwrap()
            }
        };
        match server.step(&eap) {
            ServerStep::Continue(next) => {
                let mut a = radius::eap_attrs(&next);
                a.push((radius::STATE, b"state-of-the-server".to_vec()));
                radius::build_response(&secret, radius::ACCESS_CHALLENGE, id, &ra, &a)
            }
            ServerStep::Success { packet, msk, .. } => {
                // freeradius: MS-MPPE-Recv-Key = the MSK's first 16 bytes, Send-Key the next.
                let mut recv = msk.bytes()[..16].to_vec();
                if self.mode == Mode::WrongKey {
                    recv[0] ^= 1;
                }
                let mut a = radius::eap_attrs(&packet);
                a.push(radius::mppe_attr(
                    &secret,
                    &ra,
                    radius::MPPE_RECV,
                    [0x80, 7],
                    &recv,
                ));
                a.push(radius::mppe_attr(
                    &secret,
                    &ra,
                    radius::MPPE_SEND,
                    [0x81, 9],
                    &msk.bytes()[16..32],
                ));
                radius::build_response(&secret, radius::ACCESS_ACCEPT, id, &ra, &a)
            }
            ServerStep::Failure { packet, .. } => radius::build_response(
                &secret,
                radius::ACCESS_REJECT,
                id,
                &ra,
                &radius::eap_attrs(&packet),
            ),
        }
    }

    fn answer_of(&mut self, datagram: &[u8]) -> Option<(u64, RadiusAnswer)> {
        let (ike, a) = self.client.receive(datagram).ok()?;
        Some((
            ike,
            match a {
                Answer::Challenge { eap, .. } => RadiusAnswer::Challenge(eap),
                Answer::Accept {
                    eap,
                    msk: Some(msk),
                } => RadiusAnswer::Accept { eap, msk },
                Answer::Accept { msk: None, .. } => RadiusAnswer::Reject {
                    eap: None,
                    detail: "Access-Accept without MS-MPPE keys".into(),
                },
                Answer::Reject { eap } => RadiusAnswer::Reject {
                    eap,
                    detail: String::new(),
                },
            },
        ))
    }

    /// Relays B's new EapRadius events until the exchange is quiet.
    fn run(&mut self, n: &mut Net) {
        for _ in 0..100 {
            n.pump();
            let new: Vec<Event> = n.events_b[self.seen..].to_vec();
            self.seen = n.events_b.len();
            let mut any = false;
            for e in new {
                let Event::EapRadius {
                    ike,
                    identity,
                    eap,
                    remote,
                    local,
                    ..
                } = e
                else {
                    if let Event::IkeSaDown { ike, .. } = e {
                        self.client.forget(ike);
                    }
                    continue;
                };
                if let Some(user) = identity {
                    self.client
                        .start(ike, &user, local.to_string(), remote.to_string());
                }
                let req = self
                    .client
                    .send(n.now, ike, &eap.0, [self.seen as u8; 16])
                    .unwrap();
                any = true;
                match self.mode {
                    Mode::Silent => {}
                    Mode::Hold => self.held.push((ike, req)),
                    _ => {
                        let resp = self.serve(&req);
                        let (k, answer) = self.answer_of(&resp).unwrap();
                        assert_eq!(k, ike);
                        n.b.eap_radius_answer(n.now, ike, answer).unwrap();
                    }
                }
            }
            if !any {
                return;
            }
        }
    }

    /// The held requests answered now.
    fn release(&mut self, n: &mut Net) {
        self.mode = Mode::Answer;
        for (ike, req) in std::mem::take(&mut self.held) {
            let resp = self.serve(&req);
            let (_, answer) = self.answer_of(&resp).unwrap();
            n.b.eap_radius_answer(n.now, ike, answer).unwrap();
        }
        self.run(n);
    }

    /// The RADIUS client's timers until it gives up; the gateway told for each.
    fn time_out(&mut self, n: &mut Net, now: Instant) {
        let t = self.client.handle_timeout(now);
        for ike in t.gave_up {
            n.b.eap_radius_answer(n.now, ike, RadiusAnswer::Unreachable)
                .unwrap();
        }
        self.run(n);
    }
}

fn radius_events(n: &Net) -> usize {
    n.events_b
        .iter()
        .filter(|e| matches!(e, Event::EapRadius { .. }))
        .count()
}

fn assert_no_secret(n: &Net, password: &str) {
    let hash: String = nthash(password)
        .bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let secret = String::from_utf8_lossy(SECRET).to_lowercase();
    for e in n.events_a.iter().chain(&n.events_b) {
        let text = format!("{e:?}").to_lowercase();
        assert!(!text.contains(&password.to_lowercase()), "{text}");
        assert!(!text.contains(&hash), "{text}");
        assert!(!text.contains(&secret), "{text}");
    }
}

#[test]
fn eap_radius_full_exchange_lease_and_child() {
    let (a, b) = client_and_gateway("alice", PASSWORD);
    let mut n = net(a, b);
    let mut r = Radius::new(Mode::Answer);
    n.initiate_a();
    r.run(&mut n);
    assert_eq!(up(&n.events_a), 1, "A: {:?}", n.events_a);
    assert_eq!(up(&n.events_b), 1, "B: {:?}", n.events_b);
    let want = ip("10.10.0.1");
    assert_eq!(leases(&n), [(want, "alice".to_string(), true)]);
    let sa = &n.b.ike_sas()[0];
    assert_eq!(sa.eap_identity.as_deref(), Some("alice"));
    assert!(failures(&n.events_a).is_empty() && failures(&n.events_b).is_empty());
    // Identity response, MSCHAPv2 Response, Success acknowledgement: three Access-Requests.
    assert_eq!(r.requests.len(), 3);
    let first = radius::attributes(&r.requests[0][20..]).unwrap();
    assert_eq!(first[0].0, radius::MESSAGE_AUTHENTICATOR);
    assert!(first.contains(&(radius::USER_NAME, &b"alice"[..])));
    let eap: Vec<u8> = first
        .iter()
        .filter(|(t, _)| *t == radius::EAP_MESSAGE)
        .flat_map(|(_, v)| v.to_vec())
        .collect();
    assert_eq!(
        (eap[0], eap[4], &eap[5..]),
        (2, 1, &b"alice"[..]),
        "Response/Identity"
    );
    let st = r.client.stats();
    assert_eq!((st.challenges, st.accepts, st.dropped), (2, 1, 0));
    assert_no_secret(&n, PASSWORD);
}

#[test]
fn eap_radius_reject_fails_the_client() {
    let wrong = "alice's wrong password";
    let (a, b) = client_and_gateway("alice", wrong);
    let mut n = net(a, b);
    let mut r = Radius::new(Mode::Answer);
    n.initiate_a();
    r.run(&mut n);
    assert_eq!((up(&n.events_a), up(&n.events_b)), (0, 0));
    let fb = failures(&n.events_b);
    // strongSwan-like clients give up on the MSCHAPv2 Failure request; ours answers it, and
    // the server's Reject then ends the dialogue.
    assert_eq!(fb.len(), 1, "{fb:?}");
    assert_eq!(fb[0].0, NotifyType::AuthenticationFailed);
    assert!(
        fb[0]
            .1
            .contains("RADIUS server 'radius-1' rejected EAP user 'alice' (Access-Reject)"),
        "{}",
        fb[0].1
    );
    assert!(n.b.ike_sas().is_empty() && leases(&n).is_empty());
    assert_eq!(n.b.stats().eap_failures, 1);
    assert_eq!(r.client.stats().rejects, 1);
    assert_no_secret(&n, wrong);
}

#[test]
fn eap_radius_unreachable_fails_the_client_after_the_tries() {
    let (a, b) = client_and_gateway("alice", PASSWORD);
    let mut n = net(a, b);
    let mut r = Radius::new(Mode::Silent);
    n.initiate_a();
    r.run(&mut n);
    let t0 = n.now;
    for s in 1..=3 {
        r.time_out(&mut n, t0 + Duration::from_secs(s));
    }
    assert_eq!(r.client.stats().retransmits, 2);
    assert_eq!(r.client.stats().timeouts, 1);
    let fb = failures(&n.events_b);
    assert_eq!(fb.len(), 1, "{fb:?}");
    assert!(fb[0].1.contains("radius server unreachable"), "{}", fb[0].1);
    assert!(n.b.ike_sas().is_empty());
    n.pump();
    assert!(
        failures(&n.events_a)
            .iter()
            .any(|(_, d)| d.contains("EAP-Failure")),
        "{:?}",
        n.events_a
    );
}

/// The client retransmits while the server has not answered yet: the request is neither
/// relayed twice nor answered from the cache of the previous round; once the answer is
/// there, it goes out and the exchange completes.
#[test]
fn retransmissions_while_the_server_thinks_are_not_relayed_twice() {
    let (a, b) = client_and_gateway("alice", PASSWORD);
    let mut n = net(a, b);
    let mut r = Radius::new(Mode::Hold);
    n.initiate_a();
    r.run(&mut n);
    assert_eq!(radius_events(&n), 1);
    // A's retransmission timer fires a few times.
    n.run_for(Duration::from_secs(3));
    assert!(n.b.stats().eap_radius_retransmits >= 1, "{:?}", n.b.stats());
    assert_eq!(radius_events(&n), 1, "relayed once");
    r.release(&mut n);
    assert_eq!(
        (up(&n.events_a), up(&n.events_b)),
        (1, 1),
        "{:?}",
        n.events_b
    );
    assert_eq!(radius_events(&n), 3);
    assert_eq!(leases(&n), [(ip("10.10.0.1"), "alice".to_string(), true)]);
}

#[test]
fn eap_radius_wrong_msk_refused_at_the_final_auth() {
    let (a, b) = client_and_gateway("alice", PASSWORD);
    let mut n = net(a, b);
    let mut r = Radius::new(Mode::WrongKey);
    n.initiate_a();
    r.run(&mut n);
    assert_eq!((up(&n.events_a), up(&n.events_b)), (0, 0));
    let fb = failures(&n.events_b);
    assert!(
        fb.iter()
            .any(|(_, d)| d.contains("does not verify with the MSK from RADIUS server")),
        "{fb:?}"
    );
    assert!(n.b.ike_sas().is_empty() && leases(&n).is_empty());
}

/// An answer for an SA that waits for none (late, duplicated) changes nothing.
#[test]
fn late_answers_are_ignored() {
    let (a, b) = client_and_gateway("alice", PASSWORD);
    let mut n = net(a, b);
    let mut r = Radius::new(Mode::Answer);
    n.initiate_a();
    r.run(&mut n);
    let ike = n.b.ike_sas()[0].id;
    n.b.eap_radius_answer(n.now, ike, RadiusAnswer::Unreachable)
        .unwrap();
    n.pump();
    assert_eq!(n.b.ike_sas().len(), 1);
    assert!(n.b.ike_sas()[0].established);
    assert!(n
        .b
        .eap_radius_answer(n.now, 12345, RadiusAnswer::Unreachable)
        .is_err());
}
