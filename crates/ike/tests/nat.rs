//! NAT detection and following a peer's new address (RFC 7296 2.23) between two sans-IO
//! endpoints: which end NAT detection puts behind a NAT, and that only a peer behind a NAT is
//! followed when a packet of its SA comes from another address.

use std::net::SocketAddr;

use ironsec_ike::testkit::*;
use ironsec_ike::{Event, IkeSaId, NatDetected};

const SUITE: (&str, &str) = ("aes128gcm16-prfsha256-x25519", "aes128gcm16");

/// Both ends' NAT finding and IKE SA, once up.
fn up(
    force_encap_a: bool,
    force_encap_b: bool,
) -> (Net, (NatDetected, IkeSaId), (NatDetected, IkeSaId)) {
    let (mut ca, mut cb) = pair_configs(SUITE.0, SUITE.1);
    ca.force_encap = force_encap_a;
    cb.force_encap = force_encap_b;
    let mut net = Net::new(ca, cb);
    net.initiate_a();
    let found = |events: &[Event]| {
        events
            .iter()
            .find_map(|e| match e {
                Event::IkeSaUp { nat, ike, .. } => Some((*nat, *ike)),
                _ => None,
            })
            .expect("IKE SA up")
    };
    let (a, b) = (found(&net.events_a), found(&net.events_b));
    (net, a, b)
}

fn moved(events: &[Event]) -> Vec<SocketAddr> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::PeerAddressChanged { remote, .. } => Some(*remote),
            _ => None,
        })
        .collect()
}

#[test]
fn without_a_nat_nobody_is_behind_one_and_the_peer_is_not_moved() {
    let (mut net, (nat_a, _), (nat_b, ike_b)) = up(false, false);
    assert_eq!(nat_a, NatDetected::default());
    assert_eq!(nat_b, NatDetected::default());
    // An ESP packet of A's SA from elsewhere (as the fast path would report it): a peer with
    // a fixed address is not followed.
    let now = net.now;
    assert_eq!(
        net.b.peer_moved(now, ike_b, addr("198.51.100.9", 4500)),
        Ok(false)
    );
    net.pump();
    while let Some(e) = net.b.poll_event() {
        net.events_b.push(e);
    }
    assert!(moved(&net.events_b).is_empty());
}

#[test]
fn a_faked_source_hash_puts_the_peer_behind_a_nat_and_it_is_followed() {
    // A forces encapsulation the way strongSwan's encap=yes does: its NAT_DETECTION_SOURCE_IP
    // is random, so B sees A behind a NAT; A's own view (the destination hash) stays clean.
    let (mut net, (nat_a, _), (nat_b, ike_b)) = up(true, false);
    assert_eq!(nat_a, NatDetected::default());
    assert_eq!(
        nat_b,
        NatDetected {
            local: false,
            remote: true
        }
    );
    let now = net.now;
    let new = addr("198.51.100.9", 4500);
    assert_eq!(net.b.peer_moved(now, ike_b, new), Ok(true));
    assert_eq!(
        net.b.peer_moved(now, ike_b, new),
        Ok(false),
        "already there"
    );
    while let Some(e) = net.b.poll_event() {
        net.events_b.push(e);
    }
    assert_eq!(moved(&net.events_b), vec![new]);
    // B's next request goes to the new address.
    let _ = net.b.probe(now, ike_b, std::time::Duration::from_secs(5));
    let t = net.b.poll_transmit().expect("a probe");
    assert_eq!(t.remote, new);
}
