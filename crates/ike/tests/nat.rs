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

/// An IPv6 socket address (testkit's `addr` writes `ip:port`, which IPv6 needs bracketed).
fn addr6(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

/// NAT66 between two IPv6 endpoints (RFC 7296 2.23 hashes the 16-byte address): A sits at a
/// ULA address behind a NAT that rewrites its source to the NAT's public address and another
/// port, as nftables `ip6 ... masquerade` does. Without forced encapsulation on either side,
/// NAT detection alone must put A behind a NAT (A sees its own address rewritten, B sees A's
/// hash not match), float the exchange to port 4500, and B must answer the mapped address.
#[test]
fn nat66_is_detected_from_the_16_byte_hashes_and_ike_floats_to_4500() {
    let a_private = |port| addr6("fd00:a::2", port);
    let b_addr = |port| addr6("2001:db8:f::2", port);
    // The NAT's mapping: A's private (address, port) -> the NAT's public (address, port).
    let public = |port: u16| addr6("2001:db8:f::254", 30000 + port);
    let (mut ca, mut cb) = pair_configs(SUITE.0, SUITE.1);
    ca.force_encap = false;
    cb.force_encap = false;
    let mut net = Net::new(ca, cb);
    let now = net.now;
    net.a
        .initiate(now, "to-b", a_private(500), b_addr(500))
        .unwrap();
    let mut seen_by_b = Vec::new();
    let mut seen_by_a = Vec::new();
    for _ in 0..100 {
        let mut moved = false;
        while let Some(t) = net.a.poll_transmit() {
            moved = true;
            assert_eq!(
                t.local.ip(),
                a_private(0).ip(),
                "A sends from its own address"
            );
            let from = public(t.local.port());
            seen_by_b.push((from, t.remote));
            net.b.handle(now, t.remote, from, &t.payload);
        }
        while let Some(t) = net.b.poll_transmit() {
            moved = true;
            // The NAT maps the reply back to A's private address and port.
            let to = match [500, 4500].into_iter().find(|p| public(*p) == t.remote) {
                Some(p) => a_private(p),
                None => panic!("B answered {} which is no NAT mapping", t.remote),
            };
            seen_by_a.push((t.local, to));
            net.a.handle(now, to, t.local, &t.payload);
        }
        while let Some(e) = net.a.poll_event() {
            net.events_a.push(e);
        }
        while let Some(e) = net.b.poll_event() {
            net.events_b.push(e);
        }
        if !moved {
            break;
        }
    }
    let found = |events: &[Event]| {
        events
            .iter()
            .find_map(|e| match e {
                Event::IkeSaUp { nat, remote, .. } => Some((*nat, *remote)),
                _ => None,
            })
            .expect("IKE SA up")
    };
    let (nat_a, remote_a) = found(&net.events_a);
    let (nat_b, remote_b) = found(&net.events_b);
    assert_eq!(
        nat_a,
        NatDetected {
            local: true,
            remote: false
        },
        "A finds its own address rewritten"
    );
    assert_eq!(
        nat_b,
        NatDetected {
            local: false,
            remote: true
        },
        "B finds A behind a NAT"
    );
    assert_eq!(remote_a, b_addr(4500), "A floated to B's NAT-T port");
    assert_eq!(
        remote_b,
        public(4500),
        "B talks to A's NAT mapping for 4500"
    );
    assert!(
        seen_by_b.iter().any(|(_, to)| to.port() == 4500),
        "IKE_AUTH went to 4500: {seen_by_b:?}"
    );
    let children = net.count(|e| matches!(e, Event::ChildSaUp { .. }));
    assert_eq!(children, (1, 1), "one CHILD_SA on each side");
}

/// The NAT-D hash of an IPv6 address covers all 16 bytes and the port: a NAT66 that changes
/// only the low bits of the address (a prefix translation, RFC 6296, keeps the rest) or only
/// the port is still seen.
#[test]
fn nat_detection_hash_over_ipv6_sees_any_changed_byte_and_the_port() {
    use ironsec_ike::crypto::nat_detection_hash;
    let base = addr6("2001:db8:f::2", 4500);
    let h = nat_detection_hash(7, 9, base);
    for other in [
        addr6("2001:db8:f::3", 4500),
        addr6("2001:db8:f:1::2", 4500),
        addr6("3001:db8:f::2", 4500),
        addr6("2001:db8:f::2", 4501),
        addr6("::ffff:192.0.2.2", 4500),
    ] {
        assert_ne!(nat_detection_hash(7, 9, other), h, "{other}");
    }
    assert_eq!(nat_detection_hash(7, 9, base), h);
}
