//! Protocol tests: two endpoints wired in memory, a fake clock, and a network that can lose,
//! duplicate or stall datagrams. Everything is deterministic (seeded RNG, no real time).

use std::time::{Duration, Instant};

use ironsec_ike::crypto::TestRng;
use ironsec_ike::wire::{NotifyType, TrafficSelector};
use ironsec_ike::{CloseReason, Endpoint, EndpointConfig, Event, LocalAuth, Psk, RemoteAuth};

use ironsec_ike::testkit::*;

fn ike_up(ev: &[Event]) -> usize {
    ev.iter()
        .filter(|e| matches!(e, Event::IkeSaUp { .. }))
        .count()
}

fn children_up(ev: &[Event]) -> Vec<&ironsec_ike::ChildSaInfo> {
    ev.iter()
        .filter_map(|e| match e {
            Event::ChildSaUp { child, .. } => Some(child),
            _ => None,
        })
        .collect()
}

fn failures(ev: &[Event]) -> Vec<NotifyType> {
    ev.iter()
        .filter_map(|e| match e {
            Event::Failure { notify, .. } => Some(*notify),
            _ => None,
        })
        .collect()
}

/// Both sides have one IKE SA and one CHILD_SA whose keys and SPIs mirror each other.
fn assert_tunnel(net: &Net) {
    assert_eq!(ike_up(&net.events_a), 1, "A: {:?}", net.events_a);
    assert_eq!(ike_up(&net.events_b), 1, "B: {:?}", net.events_b);
    let (ca, cb) = (children_up(&net.events_a), children_up(&net.events_b));
    assert_eq!(
        (ca.len(), cb.len()),
        (1, 1),
        "A: {:?}\nB: {:?}",
        net.events_a,
        net.events_b
    );
    let (a, b) = (ca[0], cb[0]);
    assert_eq!(a.spi_out, b.spi_in);
    assert_eq!(a.spi_in, b.spi_out);
    assert_eq!(a.key_out, b.key_in);
    assert_eq!(a.key_in, b.key_out);
    assert_ne!(a.key_in, a.key_out);
    assert_eq!(a.algorithms, b.algorithms);
    assert_eq!(a.local_ts, b.remote_ts);
    assert!(a.encap && b.encap, "encapsulation forced");
    assert_eq!(a.remote.port(), 4500, "floated to the NAT-T port");
    assert_eq!(a.key_out.bytes().len(), a.algorithms.encr.keymat_len());
}

#[test]
fn handshake_for_each_suite_and_group() {
    for (ike, esp) in [
        ("aes128gcm16-prfsha256-x25519", "aes128gcm16"),
        ("aes256gcm16-prfsha384-ecp384", "aes256gcm16-ecp384"),
        ("chacha20poly1305-prfsha256-x25519", "chacha20poly1305"),
        ("aes128gcm16-prfsha512-ecp256", "aes128gcm16-esn"),
    ] {
        let (a, b) = pair_configs(ike, esp);
        let mut net = Net::new(a, b);
        net.initiate_a();
        assert_tunnel(&net);
        let Event::IkeSaUp { algorithms, .. } = net
            .events_a
            .iter()
            .find(|e| matches!(e, Event::IkeSaUp { .. }))
            .unwrap()
        else {
            unreachable!()
        };
        assert_eq!(algorithms.to_string(), ike);
    }
}

#[test]
fn invalid_ke_payload_is_retried_in_the_peers_group() {
    let (a, _) = pair_configs("aes128gcm16-prfsha256-x25519-ecp256", "aes128gcm16");
    let (_, b) = pair_configs("aes128gcm16-prfsha256-ecp256", "aes128gcm16");
    let mut net = Net::new(a, b);
    net.initiate_a();
    assert_tunnel(&net);
    let Event::IkeSaUp { algorithms, .. } = &net.events_b[0] else {
        panic!("{:?}", net.events_b)
    };
    assert_eq!(algorithms.dh.name(), "ecp256");
}

#[test]
fn cookie_challenge_when_half_open_threshold_is_passed() {
    let (a, b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    let cb = EndpointConfig {
        cookie_threshold: 0,
        ..Default::default()
    };
    let mut net = Net::with_config(a, b, EndpointConfig::default(), cb);
    net.initiate_a();
    assert_tunnel(&net);
    assert_eq!(net.b.stats().cookies_sent, 1);
}

#[test]
fn wrong_psk_fails_authentication_on_both_sides() {
    let (a, mut b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    b.local_auth = LocalAuth::Psk(Psk::new(b"another secret".to_vec()));
    b.remote_auth = RemoteAuth::Psk(Psk::new(b"another secret".to_vec()));
    let mut net = Net::new(a, b);
    net.initiate_a();
    assert_eq!(ike_up(&net.events_a) + ike_up(&net.events_b), 0);
    assert!(children_up(&net.events_a).is_empty() && children_up(&net.events_b).is_empty());
    assert_eq!(failures(&net.events_a), [NotifyType::AuthenticationFailed]);
    assert_eq!(failures(&net.events_b), [NotifyType::AuthenticationFailed]);
    assert!(net.a.ike_sas().is_empty() && net.b.ike_sas().is_empty());
}

#[test]
fn no_common_proposal_is_refused_with_details() {
    let (a, _) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    let (_, b) = pair_configs("aes256gcm16-prfsha384-ecp384", "aes256gcm16");
    let mut net = Net::new(a, b);
    net.initiate_a();
    assert_eq!(failures(&net.events_a), [NotifyType::NoProposalChosen]);
    assert_eq!(failures(&net.events_b), [NotifyType::NoProposalChosen]);
    let Event::Failure { detail, .. } = &net.events_b[0] else {
        unreachable!()
    };
    assert!(
        detail.contains("aes128gcm16-prfsha256-x25519")
            && detail.contains("aes256gcm16-prfsha384-ecp384"),
        "{detail}"
    );
    assert!(net.a.ike_sas().is_empty());
}

/// A peer offering only MODP-1024 to a responder without it: NO_PROPOSAL_CHOSEN, and the
/// failure names the legacy group (for the daemon's opt-in hint); a refusal over modern groups
/// names none.
#[test]
fn refused_legacy_group_is_named_in_the_failure() {
    let (a, _) = pair_configs("aes128-sha256-modp1024", "aes128-sha256");
    let (_, b) = pair_configs("aes128-sha256-modp2048", "aes128-sha256");
    let mut net = Net::new(a, b);
    net.initiate_a();
    assert_eq!(failures(&net.events_b), [NotifyType::NoProposalChosen]);
    let Event::Failure { legacy_refused, .. } = &net.events_b[0] else {
        unreachable!()
    };
    let kws: Vec<&str> = legacy_refused.iter().map(|l| l.keyword).collect();
    assert_eq!(kws, ["modp1024"]);

    let (a, _) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    let (_, b) = pair_configs("aes256gcm16-prfsha384-ecp384", "aes256gcm16");
    let mut net = Net::new(a, b);
    net.initiate_a();
    let Event::Failure { legacy_refused, .. } = &net.events_b[0] else {
        unreachable!()
    };
    assert!(legacy_refused.is_empty());
}

#[test]
fn no_common_esp_proposal_leaves_ike_up_without_child() {
    let (a, _) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    let (_, b) = pair_configs("aes128gcm16-prfsha256-x25519", "chacha20poly1305");
    let mut net = Net::new(a, b);
    net.initiate_a();
    assert_eq!(ike_up(&net.events_a), 1);
    assert!(children_up(&net.events_a).is_empty());
    assert_eq!(failures(&net.events_a), [NotifyType::NoProposalChosen]);
    assert_eq!(failures(&net.events_b), [NotifyType::NoProposalChosen]);
    // The initiator is told the CHILD_SA it asked for was refused (its owner retries); the
    // responder, which refused, is not.
    let refused = |ev: &[Event]| -> Vec<NotifyType> {
        ev.iter()
            .filter_map(|e| match e {
                Event::ChildSaRefused { notify, .. } => Some(*notify),
                _ => None,
            })
            .collect()
    };
    assert_eq!(refused(&net.events_a), [NotifyType::NoProposalChosen]);
    assert!(refused(&net.events_b).is_empty());
}

#[test]
fn every_message_lost_once_is_retransmitted() {
    // The handshake is 4 datagrams: INIT req/resp, AUTH req/resp. Lose each one once.
    for lost in 0..4 {
        let (a, b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
        let mut net = Net::new(a, b);
        let mut seen = 0usize;
        net.filter = Box::new(move |_, _, _| {
            seen += 1;
            if seen == lost + 1 {
                Fate::Drop
            } else {
                Fate::Deliver
            }
        });
        net.initiate_a();
        net.run_for(Duration::from_secs(10));
        assert_tunnel(&net);
    }
}

#[test]
fn every_message_duplicated_once_changes_nothing() {
    for dup in 0..4 {
        let (a, b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
        let mut net = Net::new(a, b);
        let mut seen = 0usize;
        net.filter = Box::new(move |_, _, _| {
            seen += 1;
            if seen == dup + 1 {
                Fate::Duplicate
            } else {
                Fate::Deliver
            }
        });
        net.initiate_a();
        net.run_for(Duration::from_secs(10));
        assert_tunnel(&net);
        assert_eq!(net.b.ike_sas().len(), 1);
    }
}

/// Runs the network in `step`s (at most `steps`) until A reports an IKE SA down; returns how
/// long that took.
fn time_until_a_down(net: &mut Net, step: Duration, steps: usize) -> Option<Duration> {
    let t0 = net.now;
    for _ in 0..steps {
        net.run_for(step);
        if net
            .events_a
            .iter()
            .any(|e| matches!(e, Event::IkeSaDown { .. }))
        {
            return Some(net.now - t0);
        }
    }
    None
}

/// `give_up_after` (the operator's dpd_timeout) ends the wait long before the default
/// schedule (2 s x 1.8^n, 5 retransmissions, about 75 s) would; the retransmissions that did
/// go out are counted.
#[test]
fn dpd_timeout_caps_the_wait_for_a_silent_peer() {
    let (mut a, b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    a.dpd_interval = Some(Duration::from_secs(5));
    a.retransmit.give_up_after = Some(Duration::from_secs(10));
    let mut net = Net::new(a, b);
    net.initiate_a();
    assert_tunnel(&net);
    let before = net.a.stats();
    net.filter = Box::new(|from_a, _, _| if from_a { Fate::Deliver } else { Fate::Drop });
    let down_at = time_until_a_down(&mut net, Duration::from_millis(250), 120)
        .expect("A never declared B dead");
    // DPD request at 5 s of silence, given up 10 s later.
    assert!(
        down_at >= Duration::from_secs(15) && down_at <= Duration::from_millis(15_250),
        "declared dead after {down_at:?}, expected 15 s"
    );
    let after = net.a.stats();
    assert_eq!(
        after.requests_sent,
        before.requests_sent + 1,
        "one DPD request"
    );
    // Retransmits at 2 s and 2 + 3.6 s, then 5.6 + 6.48 > 10: given up.
    assert_eq!(after.retransmits_sent - before.retransmits_sent, 2);
}

/// A probe ends quickly either way: an answering peer clears it, a silent one is declared
/// dead within the probe's time, long before DPD (30 s interval) would even ask.
#[test]
fn probe_checks_liveness_within_its_time() {
    let (a, b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    let mut net = Net::new(a, b);
    let ike = net.initiate_a();
    assert_tunnel(&net);
    // Alive: answered, nothing closes, and the answer counts as hearing from the peer.
    let asked = net.now;
    assert!(net.a.probe(net.now, ike, Duration::from_secs(1)).unwrap());
    assert!(net.a.liveness(ike).unwrap().probing);
    net.run_for(Duration::from_secs(3));
    assert_eq!(net.a.ike_sas().len(), 1, "{:?}", net.events_a);
    let live = net.a.liveness(ike).unwrap();
    assert!(!live.probing && live.last_heard >= asked, "{live:?}");
    // Silent: closed as PeerUnreachable one second after the probe started, with the
    // request resent in between.
    net.filter = Box::new(|from_a, _, _| if from_a { Fate::Deliver } else { Fate::Drop });
    let before = net.a.stats().retransmits_sent;
    assert!(net.a.probe(net.now, ike, Duration::from_secs(1)).unwrap());
    assert!(
        !net.a.probe(net.now, ike, Duration::from_secs(1)).unwrap(),
        "one probe at a time"
    );
    let down_at = time_until_a_down(&mut net, Duration::from_millis(50), 40)
        .expect("silent peer not declared dead");
    assert!(
        down_at >= Duration::from_secs(1) && down_at <= Duration::from_millis(1050),
        "{down_at:?}"
    );
    assert!(net.events_a.iter().any(|e| matches!(
        e,
        Event::IkeSaDown {
            reason: CloseReason::PeerUnreachable,
            ..
        }
    )));
    assert_eq!(
        net.a.stats().retransmits_sent - before,
        3,
        "resent every 250 ms"
    );
}

/// Two tunnels of one connection (two uplinks, one peer identity): the second IKE SA must not
/// carry INITIAL_CONTACT, and even a peer that sends it on one address must not make us drop
/// the IKE SA of the other address: both tunnels stay up.
#[test]
fn a_second_tunnel_of_a_connection_leaves_the_first_up() {
    let (a, b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    let mut net = Net::new(a, b);
    let first = net.initiate_a();
    let second = net
        .a
        .initiate(
            net.now,
            "to-b",
            addr("198.51.100.1", 500),
            addr("198.51.100.2", 500),
        )
        .unwrap();
    net.pump();
    net.run_for(Duration::from_secs(2));
    let ids: Vec<_> = net.a.ike_sas().iter().map(|s| s.id).collect();
    assert!(
        ids.contains(&first) && ids.contains(&second),
        "{:?}",
        net.events_a
    );
    assert_eq!(net.b.ike_sas().len(), 2, "B keeps both: {:?}", net.events_b);
    assert!(
        !net.events_b.iter().any(|e| matches!(
            e,
            Event::IkeSaDown {
                reason: CloseReason::Replaced,
                ..
            }
        )),
        "{:?}",
        net.events_b
    );
    // A restarted A (a fresh endpoint, same config) sends INITIAL_CONTACT on its first
    // tunnel: B drops the stale SA of that address only.
    let (a2, _) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    net.a = ironsec_ike::Endpoint::new(
        Default::default(),
        vec![a2],
        Box::new(ironsec_ike::crypto::TestRng::new(7)),
    );
    net.initiate_a();
    net.run_for(Duration::from_secs(1));
    let replaced = net
        .events_b
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::IkeSaDown {
                    reason: CloseReason::Replaced,
                    ..
                }
            )
        })
        .count();
    assert_eq!(replaced, 1, "{:?}", net.events_b);
    assert_eq!(net.b.ike_sas().len(), 2, "new SA + the other address's SA");
}

/// Two tunnels started at the same moment: whichever sends IKE_AUTH first sees the other
/// and neither sends INITIAL_CONTACT (which would make a strict peer drop the other).
#[test]
fn tunnels_started_together_send_no_initial_contact() {
    let (a, b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    let mut net = Net::new(a, b);
    net.a
        .initiate(net.now, "to-b", addr(A, 500), addr(B, 500))
        .unwrap();
    net.a
        .initiate(
            net.now,
            "to-b",
            addr("198.51.100.1", 500),
            addr("198.51.100.2", 500),
        )
        .unwrap();
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.a.ike_sas().len(), 2, "{:?}", net.events_a);
    assert_eq!(net.b.ike_sas().len(), 2, "{:?}", net.events_b);
    // No IKE_AUTH request from A carried INITIAL_CONTACT: B never replaced anything.
    assert_eq!(net.b.stats().initial_contacts, 0);
    assert!(!net
        .events_b
        .iter()
        .any(|e| matches!(e, Event::IkeSaDown { .. })));
    // A fresh start with one tunnel does say it.
    let (a, b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    let mut net = Net::new(a, b);
    net.initiate_a();
    assert_eq!(net.b.stats().initial_contacts, 1);
}

#[test]
fn dpd_declares_a_silent_peer_dead() {
    let (a, b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    let mut net = Net::new(a, b);
    net.initiate_a();
    assert_tunnel(&net);
    // B falls silent.
    net.filter = Box::new(|from_a, _, _| if from_a { Fate::Deliver } else { Fate::Drop });
    net.run_for(Duration::from_secs(30 + 120));
    let down = net.events_a.iter().find_map(|e| match e {
        Event::IkeSaDown { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(
        down,
        Some(CloseReason::PeerUnreachable),
        "{:?}",
        net.events_a
    );
    assert!(net
        .events_a
        .iter()
        .any(|e| matches!(e, Event::ChildSaDown { .. })));
    assert!(net.a.ike_sas().is_empty());
}

#[test]
fn liveness_checks_keep_a_quiet_tunnel_up() {
    let (a, b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    let mut net = Net::new(a, b);
    net.initiate_a();
    net.run_for(Duration::from_secs(600));
    assert!(!net
        .events_a
        .iter()
        .any(|e| matches!(e, Event::IkeSaDown { .. })));
    assert_eq!(net.a.ike_sas().len(), 1);
}

fn downs(ev: &[Event]) -> (usize, usize) {
    (
        ev.iter()
            .filter(|e| matches!(e, Event::IkeSaDown { .. }))
            .count(),
        ev.iter()
            .filter(|e| matches!(e, Event::ChildSaDown { .. }))
            .count(),
    )
}

#[test]
fn delete_from_either_side_removes_everything() {
    for from_a in [true, false] {
        let (a, b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
        let mut net = Net::new(a, b);
        net.initiate_a();
        if from_a {
            let id = net.a.ike_sas()[0].id;
            net.a.terminate(net.now, id).unwrap();
        } else {
            let id = net.b.ike_sas()[0].id;
            net.b.terminate(net.now, id).unwrap();
        }
        net.pump();
        assert_eq!(downs(&net.events_a), (1, 1), "{:?}", net.events_a);
        assert_eq!(downs(&net.events_b), (1, 1), "{:?}", net.events_b);
        assert!(net.a.ike_sas().is_empty() && net.b.ike_sas().is_empty());
    }
}

fn rekeyed(ev: &[Event]) -> Vec<(u32, &ironsec_ike::ChildSaInfo)> {
    ev.iter()
        .filter_map(|e| match e {
            Event::ChildSaRekeyed {
                old_spi_in, new, ..
            } => Some((*old_spi_in, new)),
            _ => None,
        })
        .collect()
}

#[test]
fn child_rekey_from_either_side_with_and_without_pfs() {
    for esp in ["aes128gcm16", "aes128gcm16-x25519"] {
        for from_a in [true, false] {
            let (a, b) = pair_configs("aes128gcm16-prfsha256-x25519", esp);
            let mut net = Net::new(a, b);
            net.initiate_a();
            let old_a = children_up(&net.events_a)[0].clone();
            let (ep, ike, spi) = if from_a {
                let s = &net.a.ike_sas()[0];
                (&mut net.a, s.id, s.children[0].spi_in)
            } else {
                let s = &net.b.ike_sas()[0];
                (&mut net.b, s.id, s.children[0].spi_in)
            };
            ep.rekey_child(net.now, ike, spi).unwrap();
            net.pump();
            let (ra, rb) = (rekeyed(&net.events_a), rekeyed(&net.events_b));
            assert_eq!(
                (ra.len(), rb.len()),
                (1, 1),
                "{esp} from_a={from_a}: {:?} / {:?}",
                net.events_a,
                net.events_b
            );
            assert_eq!(ra[0].0, old_a.spi_in);
            let (na, nb) = (ra[0].1, rb[0].1);
            assert_eq!(na.spi_out, nb.spi_in);
            assert_eq!(na.key_out, nb.key_in);
            assert_eq!(na.key_in, nb.key_out);
            assert_ne!(na.key_out, old_a.key_out, "fresh keys");
            // The old SA is deleted on both sides; the new one remains.
            assert_eq!(downs(&net.events_a), (0, 1));
            assert_eq!(downs(&net.events_b), (0, 1));
            assert_eq!(net.a.ike_sas()[0].children.len(), 1);
            assert_eq!(net.a.ike_sas()[0].children[0].spi_in, na.spi_in);
        }
    }
}

#[test]
fn ike_rekey_keeps_children_and_the_new_sa_works() {
    for from_a in [true, false] {
        let (a, b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
        let mut net = Net::new(a, b);
        net.initiate_a();
        let child = children_up(&net.events_a)[0].spi_in;
        if from_a {
            let id = net.a.ike_sas()[0].id;
            net.a.rekey_ike(net.now, id).unwrap();
        } else {
            let id = net.b.ike_sas()[0].id;
            net.b.rekey_ike(net.now, id).unwrap();
        }
        net.pump();
        for ev in [&net.events_a, &net.events_b] {
            assert_eq!(
                ev.iter()
                    .filter(|e| matches!(e, Event::IkeSaRekeyed { .. }))
                    .count(),
                1,
                "{ev:?}"
            );
            assert_eq!(downs(ev).1, 0, "children survive: {ev:?}");
        }
        for ev in [&net.events_a, &net.events_b] {
            assert!(
                ev.iter().any(|e| matches!(
                    e,
                    Event::IkeSaDown {
                        reason: CloseReason::Rekeyed,
                        ..
                    }
                )),
                "{ev:?}"
            );
        }
        let sas = net.a.ike_sas();
        assert_eq!(sas.len(), 1, "old SA deleted");
        assert_eq!(sas[0].children[0].spi_in, child);
        assert_eq!(net.b.ike_sas().len(), 1);
        // The new SA carries exchanges: a CHILD_SA rekey over it succeeds.
        let id = sas[0].id;
        net.a.rekey_child(net.now, id, child).unwrap();
        net.pump();
        assert_eq!(rekeyed(&net.events_b).len(), 1, "{:?}", net.events_b);
    }
}

#[test]
fn traffic_selectors_are_narrowed_or_refused() {
    let (a, mut b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    b.local_ts = vec![sel("10.2.0.0/25")];
    let mut net = Net::new(a, b);
    net.initiate_a();
    let c = children_up(&net.events_a)[0];
    assert_eq!(c.remote_ts, vec![sel("10.2.0.0/25")]);
    assert_eq!(c.local_ts, vec![sel("10.1.0.0/24")]);

    let (a, mut b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    b.local_ts = vec![sel("10.3.0.0/24")];
    let mut net = Net::new(a, b);
    net.initiate_a();
    assert!(children_up(&net.events_a).is_empty());
    assert_eq!(failures(&net.events_a), [NotifyType::TsUnacceptable]);
}

/// IPv6 rows of the same: a v6 proposal is narrowed like a v4 one; one whose range is
/// inverted (start after end, which the wire keeps as given) or of a family the responder
/// does not serve gets TS_UNACCEPTABLE and no CHILD_SA on either side.
#[test]
fn ipv6_traffic_selectors_are_narrowed_or_refused() {
    let v6 = |a: &mut EndpointConfigs, b: &mut EndpointConfigs| {
        a.0 = vec![sel("2001:db8:1::/64")];
        a.1 = vec![sel("2001:db8:2::/64")];
        b.0 = vec![sel("2001:db8:2::/80")];
        b.1 = vec![sel("2001:db8:1::/64")];
    };
    type EndpointConfigs = (Vec<TrafficSelector>, Vec<TrafficSelector>);
    let run = |edit: &dyn Fn(&mut EndpointConfigs, &mut EndpointConfigs)| {
        let (mut a, mut b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
        let mut ta = (a.local_ts.clone(), a.remote_ts.clone());
        let mut tb = (b.local_ts.clone(), b.remote_ts.clone());
        v6(&mut ta, &mut tb);
        edit(&mut ta, &mut tb);
        (a.local_ts, a.remote_ts) = ta;
        (b.local_ts, b.remote_ts) = tb;
        let mut net = Net::new(a, b);
        net.initiate_a();
        net
    };
    let net = run(&|_, _| {});
    let c = children_up(&net.events_a)[0];
    assert_eq!(c.remote_ts, vec![sel("2001:db8:2::/80")]);
    assert_eq!(c.local_ts, vec![sel("2001:db8:1::/64")]);

    // Inverted: A proposes 2001:db8:2::ffff .. 2001:db8:2:: as its remote range.
    let net = run(&|a, _| {
        let t = &mut a.1[0];
        std::mem::swap(&mut t.start, &mut t.end);
    });
    assert!(children_up(&net.events_a).is_empty());
    assert!(children_up(&net.events_b).is_empty());
    assert_eq!(failures(&net.events_a), [NotifyType::TsUnacceptable]);

    // IPv4 proposed, IPv6 configured.
    let net = run(&|a, _| a.1 = vec![sel("10.2.0.0/24")]);
    assert!(children_up(&net.events_a).is_empty());
    assert_eq!(failures(&net.events_a), [NotifyType::TsUnacceptable]);
}

#[test]
fn lifetimes_rekey_children_and_ike_sa() {
    let (mut a, mut b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    for c in [&mut a, &mut b] {
        c.lifetimes.child_rekey = Duration::from_secs(600);
        c.lifetimes.child_hard = Duration::from_secs(700);
        c.lifetimes.ike_rekey = Duration::from_secs(1000);
        c.lifetimes.jitter = Duration::from_secs(30);
    }
    let mut net = Net::new(a, b);
    net.initiate_a();
    net.run_for(Duration::from_secs(1100));
    assert!(!rekeyed(&net.events_a).is_empty(), "{:?}", net.events_a);
    assert!(net
        .events_a
        .iter()
        .any(|e| matches!(e, Event::IkeSaRekeyed { .. })));
    assert_eq!(net.a.ike_sas().len(), 1);
    assert_eq!(net.a.ike_sas()[0].children.len(), 1);
    assert!(!net.events_a.iter().any(|e| matches!(
        e,
        Event::IkeSaDown {
            reason: CloseReason::PeerUnreachable,
            ..
        }
    )));
}

#[test]
fn simultaneous_child_rekeys_leave_one_sa_on_each_side() {
    for esp in ["aes128gcm16", "aes128gcm16-x25519"] {
        let (a, b) = pair_configs("aes128gcm16-prfsha256-x25519", esp);
        let mut net = Net::new(a, b);
        net.initiate_a();
        let (sa_a, sa_b) = (net.a.ike_sas()[0].clone(), net.b.ike_sas()[0].clone());
        // Both requests are on the wire before either side sees the other's.
        net.a
            .rekey_child(net.now, sa_a.id, sa_a.children[0].spi_in)
            .unwrap();
        net.b
            .rekey_child(net.now, sa_b.id, sa_b.children[0].spi_in)
            .unwrap();
        net.run_for(Duration::from_secs(5));
        let (ca, cb) = (&net.a.ike_sas()[0].children, &net.b.ike_sas()[0].children);
        assert_eq!(
            (ca.len(), cb.len()),
            (1, 1),
            "{esp}: A {:?}\nB {:?}",
            net.events_a,
            net.events_b
        );
        assert_eq!(ca[0].spi_in, cb[0].spi_out);
        assert_eq!(ca[0].spi_out, cb[0].spi_in);
        assert_ne!(ca[0].spi_in, sa_a.children[0].spi_in, "the old SA is gone");
        // Each side saw two rekeys and two deletes (the old SA and the redundant new one).
        assert_eq!(rekeyed(&net.events_a).len(), 2);
        assert_eq!(downs(&net.events_a), (0, 2));
        assert_eq!(downs(&net.events_b), (0, 2));
    }
}

#[test]
fn simultaneous_ike_rekeys_settle_on_one_ike_sa() {
    let (a, b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    let mut net = Net::new(a, b);
    net.initiate_a();
    let child = net.a.ike_sas()[0].children[0].spi_in;
    let (ia, ib) = (net.a.ike_sas()[0].id, net.b.ike_sas()[0].id);
    net.a.rekey_ike(net.now, ia).unwrap();
    net.b.rekey_ike(net.now, ib).unwrap();
    net.run_for(Duration::from_secs(30));
    let (sa, sb) = (net.a.ike_sas(), net.b.ike_sas());
    assert_eq!(
        (sa.len(), sb.len()),
        (1, 1),
        "A {:?}\nB {:?}",
        net.events_a,
        net.events_b
    );
    assert_ne!(sa[0].id, ia, "rekeyed");
    assert_eq!((sa[0].spi_i, sa[0].spi_r), (sb[0].spi_i, sb[0].spi_r));
    assert_eq!(sa[0].children.len(), 1);
    assert_eq!(sa[0].children[0].spi_in, child);
    assert_eq!(downs(&net.events_a).1, 0, "no CHILD_SA lost");
    assert_eq!(downs(&net.events_b).1, 0, "no CHILD_SA lost");
}

#[test]
fn volume_limits_rekey_then_delete_a_child() {
    let (mut a, b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    a.lifetimes.child_rekey_bytes = Some(1_000_000);
    a.lifetimes.child_hard_packets = Some(5_000);
    let mut net = Net::new(a, b);
    net.initiate_a();
    let s = net.a.ike_sas()[0].clone();
    let spi = s.children[0].spi_in;
    net.a
        .child_traffic(net.now, s.id, spi, 999_999, 10)
        .unwrap();
    net.pump();
    assert!(rekeyed(&net.events_a).is_empty(), "below the soft limit");
    net.a
        .child_traffic(net.now, s.id, spi, 1_000_000, 10)
        .unwrap();
    net.pump();
    let new = rekeyed(&net.events_a)[0].1.spi_in;
    assert_eq!(net.a.ike_sas()[0].children.len(), 1);
    net.a.child_traffic(net.now, s.id, new, 10, 5_000).unwrap();
    net.pump();
    assert!(net.a.ike_sas()[0].children.is_empty(), "hard limit deletes");
    assert!(
        net.events_a.iter().any(|e| matches!(
            e,
            Event::ChildSaDown { spi_in, reason: CloseReason::Expired, .. } if *spi_in == new
        )),
        "the hard limit's delete says Expired: {:?}",
        net.events_a
    );
    assert_eq!(downs(&net.events_b), (0, 2));
    assert_eq!(
        net.a.child_traffic(net.now, s.id, new, 0, 0),
        Err(ironsec_ike::CommandError::NoSuchChild(new))
    );
}

#[test]
fn initial_contact_from_a_restarted_peer_replaces_its_old_sas() {
    let (a, b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    let mut net = Net::new(a.clone(), b);
    net.initiate_a();
    let old = net.b.ike_sas()[0].id;
    // A restarts: a fresh endpoint that knows nothing of the old SA.
    net.a = Endpoint::new(
        EndpointConfig::default(),
        vec![a],
        Box::new(TestRng::new(99)),
    );
    net.initiate_a();
    let sas = net.b.ike_sas();
    assert_eq!(sas.len(), 1, "{:?}", net.events_b);
    assert_ne!(sas[0].id, old);
    assert!(net.events_b.iter().any(
        |e| matches!(e, Event::IkeSaDown { ike, reason: CloseReason::Replaced, .. } if *ike == old)
    ));
    assert_eq!(children_up(&net.events_b).len(), 2);
    assert_eq!(downs(&net.events_b), (1, 1));
}

#[test]
fn reauthentication_makes_the_new_sas_before_breaking_the_old() {
    let (mut a, b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    a.lifetimes.ike_reauth = Some(Duration::from_secs(3000));
    let mut net = Net::new(a, b);
    net.initiate_a();
    let old = net.a.ike_sas()[0].clone();
    net.run_for(Duration::from_secs(3100));
    let (sa, sb) = (net.a.ike_sas(), net.b.ike_sas());
    assert_eq!(
        (sa.len(), sb.len()),
        (1, 1),
        "A {:?}\nB {:?}",
        net.events_a,
        net.events_b
    );
    assert_ne!(sa[0].id, old.id);
    assert_ne!(sa[0].children[0].spi_in, old.children[0].spi_in);
    // Order on each side: the new CHILD_SA came up before the old one went down.
    for ev in [&net.events_a, &net.events_b] {
        let up = ev
            .iter()
            .rposition(|e| matches!(e, Event::ChildSaUp { .. }))
            .unwrap();
        let down = ev
            .iter()
            .position(|e| matches!(e, Event::ChildSaDown { .. }))
            .unwrap();
        assert!(up < down, "{ev:?}");
        assert_eq!(ike_up(ev), 2);
        assert_eq!(downs(ev), (1, 1));
    }
    // No INITIAL_CONTACT on reauthentication: B closed the old SA on A's DELETE.
    assert!(net.events_b.iter().any(|e| matches!(
        e,
        Event::IkeSaDown {
            reason: CloseReason::PeerDeleted,
            ..
        }
    )));
}

#[test]
fn large_messages_are_fragmented_and_reassembled() {
    // Many selectors make IKE_AUTH large; a small fragment size forces several fragments.
    let many: Vec<String> = (0..40).map(|i| format!("10.1.{i}.0/24")).collect();
    let remote: Vec<String> = (0..40).map(|i| format!("10.2.{i}.0/24")).collect();
    let a = peer(
        "to-b",
        "gw-a.example",
        "gw-b.example",
        &many.join(","),
        &remote.join(","),
        "aes128gcm16-prfsha256-x25519",
        "aes128gcm16",
    );
    let b = peer(
        "to-a",
        "gw-b.example",
        "gw-a.example",
        &remote.join(","),
        &many.join(","),
        "aes128gcm16-prfsha256-x25519",
        "aes128gcm16",
    );
    let cfg = EndpointConfig {
        fragment_size: 576,
        ..Default::default()
    };
    for lose in [None, Some(3usize)] {
        let mut net = Net::with_config(a.clone(), b.clone(), cfg.clone(), cfg.clone());
        let mut seen = 0usize;
        net.filter = Box::new(move |_, _, t| {
            seen += 1;
            assert!(
                t.payload.len() <= 576,
                "datagram of {} bytes",
                t.payload.len()
            );
            if Some(seen) == lose {
                Fate::Drop
            } else {
                Fate::Deliver
            }
        });
        net.initiate_a();
        net.run_for(Duration::from_secs(10));
        assert_tunnel(&net);
        assert!(
            net.sent[0] >= 4,
            "IKE_AUTH went out in fragments: {:?}",
            net.sent
        );
        let c = children_up(&net.events_a)[0];
        assert_eq!(c.local_ts.len(), 40);
    }
}

#[test]
fn child_rekey_survives_each_message_lost_or_duplicated_once() {
    // CREATE_CHILD_SA request and response, then the DELETE of the old SA and its answer.
    for step in 0..4 {
        for fate in [Fate::Drop, Fate::Duplicate] {
            let (a, b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16-x25519");
            let mut net = Net::new(a, b);
            net.initiate_a();
            let s = net.a.ike_sas()[0].clone();
            let mut seen = 0usize;
            net.filter = Box::new(move |_, _, _| {
                seen += 1;
                if seen == step + 1 {
                    fate
                } else {
                    Fate::Deliver
                }
            });
            net.a
                .rekey_child(net.now, s.id, s.children[0].spi_in)
                .unwrap();
            net.run_for(Duration::from_secs(20));
            let (ca, cb) = (&net.a.ike_sas()[0].children, &net.b.ike_sas()[0].children);
            assert_eq!(
                (ca.len(), cb.len()),
                (1, 1),
                "step {step} {fate:?}: A {:?}\nB {:?}",
                net.events_a,
                net.events_b
            );
            assert_eq!(ca[0].spi_in, cb[0].spi_out);
            assert_ne!(ca[0].spi_in, s.children[0].spi_in);
            assert_eq!(rekeyed(&net.events_b).len(), 1, "processed once");
        }
    }
}

#[test]
fn unknown_critical_payload_is_refused() {
    use ironsec_ike::wire::{encode_message, ExchangeType, Flags, Header, Message, Payload};
    let (_, b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    let mut ep = Endpoint::new(
        EndpointConfig::default(),
        vec![b],
        Box::new(TestRng::new(5)),
    );
    let header = Header {
        spi_i: 0x1122334455667788,
        spi_r: 0,
        next_payload: 0,
        major: 2,
        minor: 0,
        exchange: ExchangeType::IkeSaInit,
        flags: Flags {
            initiator: true,
            version: false,
            response: false,
        },
        message_id: 0,
        length: 0,
    };
    let msg = encode_message(
        &header,
        &[Payload::Unknown {
            kind: 200,
            critical: true,
            data: vec![1, 2, 3],
        }],
    );
    ep.handle(Instant::now(), addr(B, 500), addr(A, 500), &msg);
    let t = ep.poll_transmit().expect("a refusal");
    let r = Message::parse(&t.payload).unwrap();
    let Payload::Notify(n) = &r.payloads[0] else {
        panic!("{r:?}")
    };
    assert_eq!(n.kind, NotifyType::UnsupportedCriticalPayload);
    assert_eq!(n.data, vec![200]);
    assert!(ep.ike_sas().is_empty());
}

/// The groups real gear offers (issue 20), between two engines: the IKE SA in MODP-2048 or
/// ECP-521 after an INVALID_KE_PAYLOAD retry from x25519, a CHILD_SA rekey with PFS in group 24
/// or ECP-521, and an IKE SA rekey in the SA's group.
#[test]
fn modp_and_ecp521_groups_carry_handshake_and_rekeys() {
    for (ike_a, ike_b, esp, group) in [
        (
            "aes256gcm16-prfsha256-x25519-modp2048",
            "aes256gcm16-prfsha256-modp2048",
            "aes256gcm16-modp2048s256",
            "modp2048",
        ),
        (
            "aes256gcm16-prfsha384-x25519-ecp521",
            "aes256gcm16-prfsha384-ecp521",
            "aes256gcm16-ecp521",
            "ecp521",
        ),
    ] {
        let (a, _) = pair_configs(ike_a, esp);
        let (_, b) = pair_configs(ike_b, esp);
        let mut net = Net::new(a, b);
        net.initiate_a();
        assert_tunnel(&net);
        let Some(Event::IkeSaUp { algorithms, .. }) = net
            .events_b
            .iter()
            .find(|e| matches!(e, Event::IkeSaUp { .. }))
        else {
            panic!("{:?}", net.events_b)
        };
        assert_eq!(algorithms.dh.name(), group);

        // CHILD_SA rekey with PFS.
        let s = &net.a.ike_sas()[0];
        let (ike, spi) = (s.id, s.children[0].spi_in);
        net.a.rekey_child(net.now, ike, spi).unwrap();
        net.pump();
        let (ra, rb) = (rekeyed(&net.events_a), rekeyed(&net.events_b));
        assert_eq!((ra.len(), rb.len()), (1, 1), "{group}: {:?}", net.events_a);
        assert_eq!(ra[0].1.key_out, rb[0].1.key_in);
        assert_eq!(ra[0].1.algorithms.to_string(), esp);

        // IKE SA rekey, its KE in the SA's group.
        net.a.rekey_ike(net.now, ike).unwrap();
        net.pump();
        for ev in [&net.events_a, &net.events_b] {
            assert_eq!(
                ev.iter()
                    .filter(|e| matches!(e, Event::IkeSaRekeyed { .. }))
                    .count(),
                1,
                "{group}: {ev:?}"
            );
        }
        assert_eq!(net.a.ike_sas().len(), 1);
    }
}

/// An IKE SA rekey whose KE group the responder does not pick: it answers INVALID_KE_PAYLOAD
/// naming its group (RFC 7296 §1.3.2), and the initiator retries the rekey in that group.
/// Here b initiated the SA (in its first group, MODP-2048); a's rekey offers its own order
/// (x25519 first) with a KE in the SA's group, and b, taking the initiator's first allowed
/// group, asks for x25519.
#[test]
fn ike_rekey_is_retried_in_the_group_the_responder_asks_for() {
    let (a, _) = pair_configs("aes256gcm16-prfsha256-x25519-modp2048", "aes256gcm16");
    let (_, b) = pair_configs("aes256gcm16-prfsha256-modp2048-x25519", "aes256gcm16");
    let mut net = Net::new(a, b);
    net.b
        .initiate(net.now, "to-a", addr(B, 500), addr(A, 500))
        .unwrap();
    net.pump();
    let Some(Event::IkeSaUp { algorithms, .. }) = net
        .events_a
        .iter()
        .find(|e| matches!(e, Event::IkeSaUp { .. }))
    else {
        panic!("{:?}", net.events_a)
    };
    assert_eq!(algorithms.dh.name(), "modp2048");
    let id = net.a.ike_sas()[0].id;
    net.a.rekey_ike(net.now, id).unwrap();
    net.pump();
    for ev in [&net.events_a, &net.events_b] {
        let rekeyed: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                Event::IkeSaRekeyed { algorithms, .. } => Some(algorithms.dh.name()),
                _ => None,
            })
            .collect();
        assert_eq!(rekeyed, ["x25519"], "{ev:?}");
    }
    assert_eq!(net.a.ike_sas().len(), 1);
}
