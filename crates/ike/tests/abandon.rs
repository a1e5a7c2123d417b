//! `Endpoint::abandon`: an IKE SA forgotten locally when our address went away (a shared
//! address taken over by the other gateway of an active-standby pair). The down events come
//! out as for any close, and not one datagram leaves: no DELETE, no retransmission, no DPD.

use std::time::Duration;

use ironsec_ike::testkit::*;
use ironsec_ike::{CloseReason, Event};

fn downs(ev: &[Event]) -> Vec<(&'static str, CloseReason)> {
    ev.iter()
        .filter_map(|e| match e {
            Event::IkeSaDown { reason, .. } => Some(("ike", reason.clone())),
            Event::ChildSaDown { reason, .. } => Some(("child", reason.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn abandon_sends_nothing_and_emits_down() {
    let (mut a, mut b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    // DPD on A, so an SA that were still alive would send within the run below; none on B,
    // so whatever A sends is A's own doing, not an answer.
    a.dpd_interval = Some(Duration::from_secs(10));
    b.dpd_interval = None;
    let mut net = Net::new(a, b);
    let ike = net.initiate_a();
    assert_eq!(net.a.ike_sas().len(), 1);
    assert_eq!(net.a.ike_sas()[0].children.len(), 1);
    let (sent_a, sent_b) = (net.sent[0], net.sent[1]);
    let before = net.events_a.len();

    net.a.abandon(net.now, ike).unwrap();
    net.run_for(Duration::from_secs(120));

    // Both down events, CHILD_SA first, with the reason that says why.
    assert_eq!(
        downs(&net.events_a[before..]),
        [
            ("child", CloseReason::Abandoned),
            ("ike", CloseReason::Abandoned)
        ]
    );
    assert!(net.a.ike_sas().is_empty());
    assert_eq!(net.sent[0], sent_a, "A sent after abandoning");
    // The peer heard nothing: it still has its SA and CHILD_SA (it learns from the next owner
    // of the address, by INITIAL_CONTACT).
    assert!(downs(&net.events_b).is_empty(), "{:?}", net.events_b);
    assert_eq!(net.b.ike_sas().len(), 1);
    assert_eq!(net.sent[1], sent_b);
    // Abandoning twice is an error, not a second set of events.
    assert!(net.a.abandon(net.now, ike).is_err());
    assert_eq!(downs(&net.events_a[before..]).len(), 2);
}

#[test]
fn abandoning_a_half_open_sa_stops_its_retransmissions() {
    let (a, b) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    let mut net = Net::new(a, b);
    // The peer never answers: IKE_SA_INIT stays pending and would be sent again.
    net.filter = Box::new(
        |from_a, _, _| {
            if from_a {
                Fate::Drop
            } else {
                Fate::Deliver
            }
        },
    );
    let ike = net.initiate_a();
    assert_eq!(net.sent[0], 1);
    net.a.abandon(net.now, ike).unwrap();
    net.run_for(Duration::from_secs(60));
    assert_eq!(net.sent[0], 1, "a retransmission left after abandon");
    assert_eq!(
        downs(&net.events_a),
        [("ike", CloseReason::Abandoned)],
        "an initiator's half-open SA reports its end too"
    );
    assert!(net.a.ike_sas().is_empty());
}
