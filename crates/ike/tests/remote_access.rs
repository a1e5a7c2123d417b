//! Remote-access clients authenticating with EAP-MSCHAPv2 (RFC 7296 §2.16, issue 24 slice
//! S3) between two sans-IO endpoints: A is the client (`LocalAuth::EapMschapv2`, asks for a
//! virtual IP), B the gateway (certificate, `RemoteAuth::EapMschapv2` with a users list, an
//! address pool). The full exchange, each refusal, the lease owned by the EAP user, the
//! response cache and the half-open timeout during the dialogue.

mod ra_common;
use ra_common::*;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ironsec_ike::config::{VipPool, VipRequest, VipRole};
use ironsec_ike::eap::{nthash, Users};
use ironsec_ike::testkit::*;
use ironsec_ike::wire::NotifyType;
use ironsec_ike::{Credentials, Event, Identity, LocalAuth, PeerConfig, RemoteAuth};

const PASSWORD: &str = "alice's long password";

fn users() -> Arc<Users> {
    let mut u = Users::new();
    u.insert("alice", nthash(PASSWORD));
    u.insert("bob", nthash("bob's password"));
    Arc::new(u)
}

/// A: EAP client `user` with `password`, IKE identity `ike_id`. B: the gateway, pool
/// 10.10.0.0/29, DNS 10.2.0.53.
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
    b.remote_auth = RemoteAuth::EapMschapv2(users());
    b.remote_id = Identity::Any;
    b.remote_ts = vec![sel("0.0.0.0/0")];
    b.vip = VipRole::Assign(VipPool {
        ranges: vec!["10.10.0.0/29".into()],
        grace: Duration::from_secs(60),
        dns: vec![ip("10.2.0.53")],
    });
    (a, b)
}

fn vips(events: &[Event]) -> Vec<(IpAddr, bool, Option<String>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::VirtualIp {
                addresses,
                to_peer,
                eap_identity,
                ..
            } => Some((addresses[0], *to_peer, eap_identity.clone())),
            _ => None,
        })
        .collect()
}

fn children(events: &[Event]) -> Vec<&ironsec_ike::ChildSaInfo> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaUp { child, .. } => Some(child),
            _ => None,
        })
        .collect()
}

/// Nothing either side reported holds the password or its NT hash (any case).
fn assert_no_secret(n: &Net, password: &str) {
    let hash: String = nthash(password)
        .bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    for e in n.events_a.iter().chain(&n.events_b) {
        let text = format!("{e:?}").to_lowercase();
        assert!(!text.contains(&password.to_lowercase()), "{text}");
        assert!(!text.contains(&hash), "{text}");
    }
    let sas = format!("{:?} {:?}", n.a.ike_sas(), n.b.ike_sas()).to_lowercase();
    assert!(!sas.contains(&hash) && !sas.contains(&password.to_lowercase()));
}

#[test]
fn eap_mschapv2_full_exchange_lease_and_child() {
    let (a, b) = client_and_gateway("alice", PASSWORD);
    let mut n = net(a, b);
    n.initiate_a();
    assert_eq!(up(&n.events_a), 1, "A: {:?}", n.events_a);
    assert_eq!(up(&n.events_b), 1, "B: {:?}", n.events_b);
    let want = ip("10.10.0.1");
    assert_eq!(vips(&n.events_a), [(want, false, None)]);
    assert_eq!(vips(&n.events_b), [(want, true, Some("alice".into()))]);
    let (ca, cb) = (children(&n.events_a), children(&n.events_b));
    assert_eq!((ca.len(), cb.len()), (1, 1));
    assert_eq!(ca[0].local_ts, [sel("10.10.0.1/32")]);
    assert_eq!(cb[0].remote_ts, [sel("10.10.0.1/32")]);
    assert_eq!(cb[0].local_ts, [sel("10.2.0.0/24")]);
    assert_eq!(cb[0].spi_in, ca[0].spi_out);
    assert_eq!(leases(&n), [(want, "alice".to_string(), true)]);
    let sa = &n.b.ike_sas()[0];
    assert_eq!(sa.eap_identity.as_deref(), Some("alice"));
    assert!(sa.established);
    // IKE_SA_INIT, then IKE_AUTH with IDi, EAP Identity, EAP Response, Success ack, AUTH.
    assert_eq!(sa.expected_request_id, 6);
    assert_eq!(n.a.ike_sas()[0].eap_identity.as_deref(), Some("alice"));
    assert!(failures(&n.events_a).is_empty() && failures(&n.events_b).is_empty());
    assert_no_secret(&n, PASSWORD);
}

#[test]
fn domain_prefixed_user_is_the_plain_user() {
    let (a, b) = client_and_gateway("CORP\\alice", PASSWORD);
    let mut n = net(a, b);
    n.initiate_a();
    assert_eq!(up(&n.events_b), 1, "B: {:?}", n.events_b);
    assert_eq!(leases(&n)[0].1, "alice");
}

#[test]
fn eap_wrong_password_eap_failure_sa_closed() {
    let wrong = "alice's wrong password";
    let (a, b) = client_and_gateway("alice", wrong);
    let mut n = net(a, b);
    n.initiate_a();
    assert_eq!((up(&n.events_a), up(&n.events_b)), (0, 0));
    let fb = failures(&n.events_b);
    assert_eq!(fb.len(), 1, "{fb:?}");
    assert_eq!(fb[0].0, NotifyType::AuthenticationFailed);
    assert!(
        fb[0]
            .1
            .contains("EAP-MSCHAPv2 authentication failed for user 'alice'")
            && fb[0].1.contains("wrong password"),
        "{}",
        fb[0].1
    );
    let fa = failures(&n.events_a);
    assert!(fa.iter().any(|(_, d)| d.contains("EAP-Failure")), "{fa:?}");
    assert!(n.b.ike_sas().is_empty() && n.a.ike_sas().is_empty());
    assert!(leases(&n).is_empty());
    assert_eq!(n.b.stats().eap_failures, 1);
    assert_eq!(n.b.stats().eap_failure_reasons.wrong_password, 1);
    assert_no_secret(&n, wrong);
    assert_no_secret(&n, PASSWORD);
}

#[test]
fn unknown_user_fails_like_a_wrong_password() {
    let (a, b) = client_and_gateway("mallory\n2000-01-01 forged line", "x");
    let mut n = net(a, b);
    n.initiate_a();
    let fb = failures(&n.events_b);
    assert_eq!(fb.len(), 1, "{fb:?}");
    // The peer's name reaches the log escaped.
    assert!(fb[0].1.contains("mallory\\n2000"), "{}", fb[0].1);
    assert!(fb[0].1.contains("unknown user"), "{}", fb[0].1);
    assert!(n.b.ike_sas().is_empty());
}

#[test]
fn eap_final_auth_with_wrong_msk_refused() {
    let (a, b) = client_and_gateway("alice", PASSWORD);
    let mut n = net(a, b);
    eap_hooks::corrupt_msk(true);
    n.initiate_a();
    eap_hooks::corrupt_msk(false);
    assert_eq!((up(&n.events_a), up(&n.events_b)), (0, 0));
    let fb = failures(&n.events_b);
    assert_eq!(fb.len(), 1, "{fb:?}");
    assert_eq!(fb[0].0, NotifyType::AuthenticationFailed);
    assert!(
        fb[0]
            .1
            .contains("does not verify with the EAP-MSCHAPv2 MSK"),
        "{}",
        fb[0].1
    );
    assert!(
        failures(&n.events_a)
            .iter()
            .any(|(k, _)| *k == NotifyType::AuthenticationFailed),
        "{:?}",
        n.events_a
    );
    assert!(n.b.ike_sas().is_empty() && leases(&n).is_empty());
}

#[test]
fn eap_nak_logged_and_failed() {
    let (a, b) = client_and_gateway("alice", PASSWORD);
    let mut n = net(a, b);
    eap_hooks::nak_with(Some(13));
    n.initiate_a();
    eap_hooks::nak_with(None);
    let fb = failures(&n.events_b);
    assert_eq!(fb.len(), 1, "{fb:?}");
    assert!(
        fb[0].1.contains("refused EAP-MSCHAPv2 (Nak)") && fb[0].1.contains("EAP-TLS"),
        "{}",
        fb[0].1
    );
    assert!(n.b.ike_sas().is_empty() && n.a.ike_sas().is_empty());
}

/// The lease belongs to the EAP user, not to the IKE identity: alice comes back from another
/// device (another IDi) within the grace period and gets her address again, though bob took
/// the next one meanwhile.
#[test]
fn lease_owner_is_the_eap_identity() {
    let (alice, b) = client_and_gateway("alice", PASSWORD);
    let mut bob = alice.clone();
    bob.name = "bob".into();
    bob.local_id = Identity::parse("bobs-laptop.example");
    bob.local_auth = LocalAuth::EapMschapv2 {
        user: "bob".into(),
        hash: nthash("bob's password"),
    };
    let mut n = net(alice.clone(), b);
    n.initiate_a();
    let ike = n.a.ike_sas()[0].id;
    n.a.terminate(n.now, ike).unwrap();
    n.pump();
    assert_eq!(leases(&n), [(ip("10.10.0.1"), "alice".to_string(), false)]);
    n.a.set_peers(vec![bob]);
    n.a.initiate(n.now, "bob", addr(A, 500), addr(B, 500))
        .unwrap();
    n.pump();
    let mut phone = alice;
    phone.local_id = Identity::parse("alices-phone.example");
    n.a.set_peers(vec![phone]);
    n.events_b.clear();
    n.run_for(Duration::from_secs(5));
    n.initiate_a();
    assert_eq!(
        vips(&n.events_b),
        [(ip("10.10.0.1"), true, Some("alice".into()))],
        "{:?}",
        n.events_b
    );
    let mut l = leases(&n);
    l.sort();
    assert_eq!(
        l,
        [
            (ip("10.10.0.1"), "alice".to_string(), true),
            (ip("10.10.0.2"), "bob".to_string(), true)
        ]
    );
}

/// A lost response in the middle of the dialogue: the client retransmits, the gateway answers
/// from its response cache (without running the EAP step again) and the exchange completes.
#[test]
fn retransmitted_request_during_eap_answered_from_cache() {
    let (a, b) = client_and_gateway("alice", PASSWORD);
    let mut n = net(a, b);
    // B's datagrams: 0 IKE_SA_INIT, 1 IDr/AUTH/EAP-Identity, 2 the Challenge: lost once.
    n.filter = Box::new(|from_a, i, _| {
        if !from_a && i == 2 {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    n.initiate_a();
    assert_eq!(up(&n.events_a), 0);
    n.run_for(Duration::from_secs(5));
    assert_eq!(n.b.stats().retransmits_answered, 1);
    assert_eq!(
        (up(&n.events_a), up(&n.events_b)),
        (1, 1),
        "{:?}",
        n.events_b
    );
    assert_eq!(leases(&n), [(ip("10.10.0.1"), "alice".to_string(), true)]);
}

/// A client that stops answering mid-dialogue: the gateway's half-open timeout ends it.
#[test]
fn eap_dialogue_times_out_as_half_open() {
    let (a, b) = client_and_gateway("alice", PASSWORD);
    let mut n = net(a, b);
    // A's datagrams: 0 IKE_SA_INIT, 1 IKE_AUTH with IDi, then nothing gets through.
    n.filter = Box::new(|from_a, i, _| {
        if from_a && i >= 2 {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    n.initiate_a();
    assert_eq!(n.b.ike_sas().len(), 1);
    n.run_for(Duration::from_secs(31));
    assert!(n.b.ike_sas().is_empty(), "{:?}", n.b.ike_sas());
    assert_eq!(up(&n.events_b), 0);
}

/// An EAP connection needs a certificate of its own: with a PSK the gateway refuses.
#[test]
fn eap_gateway_without_certificate_refuses() {
    let (a, mut b) = client_and_gateway("alice", PASSWORD);
    b.local_auth = LocalAuth::Psk(ironsec_ike::Psk::new(b"not a certificate".to_vec()));
    let mut n = net(a, b);
    n.initiate_a();
    let fb = failures(&n.events_b);
    assert!(
        fb.iter()
            .any(|(_, d)| d.contains("local_auth must be pubkey")),
        "{fb:?}"
    );
    assert!(n.b.ike_sas().is_empty());
}

/// A client that sends AUTH (a certificate or PSK client) does not match an EAP connection.
#[test]
fn auth_in_first_request_does_not_match_an_eap_connection() {
    let (_, b) = client_and_gateway("alice", PASSWORD);
    let (a, _) = pair_configs(IKE, ESP);
    let mut n = net(a, b);
    n.initiate_a();
    let fb = failures(&n.events_b);
    assert!(
        fb.iter()
            .any(|(k, d)| *k == NotifyType::AuthenticationFailed
                && d.contains("no connection for peer identity")),
        "{fb:?}"
    );
    assert_eq!(up(&n.events_b), 0);
}

/// An IKE rekey of an EAP client's SA keeps its EAP identity and its lease.
#[test]
fn ike_rekey_keeps_the_eap_identity_and_lease() {
    let (mut a, b) = client_and_gateway("alice", PASSWORD);
    a.lifetimes.ike_rekey = Duration::from_secs(100);
    a.lifetimes.jitter = Duration::ZERO;
    let mut n = net(a, b);
    n.initiate_a();
    let first = n.b.ike_sas()[0].id;
    n.run_for(Duration::from_secs(150));
    let rekeys = n.count(|e| matches!(e, Event::IkeSaRekeyed { .. }));
    assert!(rekeys.1 >= 1, "no IKE rekey: {rekeys:?}");
    let sas = n.b.ike_sas();
    assert_eq!(sas.len(), 1);
    assert_ne!(sas[0].id, first);
    assert_eq!(sas[0].eap_identity.as_deref(), Some("alice"));
    assert_eq!(leases(&n), [(ip("10.10.0.1"), "alice".to_string(), true)]);
}

/// A laptop that lost its IKE state (sleep, crash, network change) connects again as the
/// same EAP user from another address, with INITIAL_CONTACT: its old session is replaced
/// (strongSwan's default `unique = no`), whatever address it came from, and it keeps its
/// address; another user's session is untouched.
#[test]
fn initial_contact_replaces_the_same_eap_users_session_from_any_address() {
    let (alice, b) = client_and_gateway("alice", PASSWORD);
    let mut bob = alice.clone();
    bob.local_auth = LocalAuth::EapMschapv2 {
        user: "bob".into(),
        hash: nthash("bob's password"),
    };
    let mut n = net(bob, b);
    n.initiate_a();
    // Alice on a laptop of her own: a fresh endpoint (no SA of the earlier session).
    let fresh = |n: &Net, peer: PeerConfig| {
        let mut e = ironsec_ike::Endpoint::new(
            Default::default(),
            vec![peer],
            Box::new(ironsec_ike::crypto::TestRng::new(7)),
        );
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        e.set_wall_clock(n.now, t);
        e
    };
    n.a = fresh(&n, alice.clone());
    n.a.initiate(n.now, "to-b", addr("192.0.2.7", 500), addr(B, 500))
        .unwrap();
    n.pump();
    let first: Vec<_> =
        n.b.ike_sas()
            .iter()
            .filter(|s| s.established)
            .map(|s| s.id)
            .collect();
    assert_eq!(first.len(), 2, "bob and alice");
    n.events_b.clear();
    // Alice again, from another address, having forgotten the first session.
    n.a = fresh(&n, alice);
    n.a.initiate(n.now, "to-b", addr("198.51.100.9", 4500), addr(B, 4500))
        .unwrap();
    n.pump();
    let replaced = n
        .events_b
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::IkeSaDown {
                    reason: ironsec_ike::CloseReason::Replaced,
                    ..
                }
            )
        })
        .count();
    assert_eq!(replaced, 1, "{:?}", n.events_b);
    let sas: Vec<_> =
        n.b.ike_sas()
            .into_iter()
            .filter(|s| s.established)
            .collect();
    assert_eq!(sas.len(), 2, "bob's session and alice's new one: {sas:?}");
    let mut who: Vec<_> = sas
        .iter()
        .map(|s| s.eap_identity.clone().unwrap())
        .collect();
    who.sort();
    assert_eq!(who, ["alice", "bob"]);
    assert_eq!(
        vips(&n.events_b),
        [(ip("10.10.0.2"), true, Some("alice".into()))],
        "alice keeps her address"
    );
}

/// Password guessing: after 5 wrong passwords for alice, her next login is refused at its EAP
/// identity, before any challenge (no password check, nothing to learn), and counted; bob,
/// from the same address, still gets in; a minute later alice may try again.
#[test]
fn wrong_passwords_are_limited_per_user_without_locking_out_others() {
    let wrong = "alice's wrong password";
    let (a, b) = client_and_gateway("alice", wrong);
    let mut bob = a.clone();
    bob.local_auth = LocalAuth::EapMschapv2 {
        user: "bob".into(),
        hash: nthash("bob's password"),
    };
    let mut alice_right = a.clone();
    alice_right.local_auth = LocalAuth::EapMschapv2 {
        user: "alice".into(),
        hash: nthash(PASSWORD),
    };
    let mut n = net(a, b);
    for _ in 0..5 {
        n.initiate_a();
    }
    assert_eq!(n.b.stats().eap_failures, 5);
    assert_eq!(n.b.stats().auth_rate_limited, 0);
    // The sixth try, now with the right password: refused without a challenge.
    n.a.set_peers(vec![alice_right.clone()]);
    n.events_b.clear();
    n.initiate_a();
    assert_eq!(up(&n.events_b), 0);
    assert_eq!(n.b.stats().auth_rate_limited, 1);
    assert_eq!(n.b.stats().eap_failures, 5, "no password was checked");
    let fb = failures(&n.events_b);
    assert!(
        fb.iter()
            .any(|(_, d)| d.contains("user 'alice'") && d.contains("too many failed logins")),
        "{fb:?}"
    );
    // Bob, from the same address (6 failures there, under its limit of 10), gets in.
    n.a.set_peers(vec![bob]);
    n.events_b.clear();
    n.initiate_a();
    assert_eq!(up(&n.events_b), 1, "{:?}", failures(&n.events_b));
    // A minute later alice may try again, and gets in.
    n.run_for(Duration::from_secs(61));
    n.a.set_peers(vec![alice_right]);
    n.events_b.clear();
    n.initiate_a();
    assert_eq!(up(&n.events_b), 1, "{:?}", failures(&n.events_b));
}

/// `unique` (strongSwan's words): alice opens a second session from the same laptop (no
/// INITIAL_CONTACT: it has one already), then from a fresh one (INITIAL_CONTACT). Which of
/// her sessions the gateway keeps after each.
#[test]
fn unique_policies_decide_which_sessions_of_a_user_stay() {
    use ironsec_ike::config::Unique;
    let run = |policy: Unique| -> (usize, usize, bool) {
        let (alice, mut b) = client_and_gateway("alice", PASSWORD);
        b.unique = policy;
        let mut n = net(alice.clone(), b);
        let first = n.initiate_a();
        let first_b = n.b.ike_sas()[0].id;
        let _ = first;
        // A second session from the same endpoint: no INITIAL_CONTACT.
        n.initiate_a();
        let after_second = n.b.ike_sas().iter().filter(|s| s.established).count();
        // A fresh endpoint (the laptop restarted): INITIAL_CONTACT.
        let mut e = ironsec_ike::Endpoint::new(
            Default::default(),
            vec![alice],
            Box::new(ironsec_ike::crypto::TestRng::new(9)),
        );
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        e.set_wall_clock(n.now, t);
        n.a = e;
        n.initiate_a();
        let sas = n.b.ike_sas();
        let after_third = sas.iter().filter(|s| s.established).count();
        let first_stays = sas.iter().any(|s| s.id == first_b && s.established);
        (after_second, after_third, first_stays)
    };
    // no: the second stays beside the first; the third (INITIAL_CONTACT) replaces both.
    assert_eq!(run(Unique::No), (2, 1, false));
    // never: all three.
    assert_eq!(run(Unique::Never), (2, 3, true));
    // replace: always the newest only.
    assert_eq!(run(Unique::Replace), (1, 1, false));
    // keep: the first only; each newcomer is deleted once up.
    assert_eq!(run(Unique::Keep), (1, 1, true));
}
