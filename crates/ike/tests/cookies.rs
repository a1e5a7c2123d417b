//! The cookie challenge (RFC 7296 2.6) under an IKE_SA_INIT flood from spoofed addresses that
//! no connection accepts: such requests create no half-open SA, so the half-open count never
//! engages cookies; the request rate does. The flood then costs the responder no state and no
//! logged failure per packet, and a real initiator still gets through by answering the
//! challenge. Fake clock, no sockets.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use ironsec_ike::testkit::*;
use ironsec_ike::wire::{ExchangeType, Message, NotifyType, Payload};
use ironsec_ike::{EndpointConfig, Event, PeerConfig};

const SUITE: (&str, &str) = ("aes128gcm16-prfsha256-x25519", "aes128gcm16");

/// A's first IKE_SA_INIT request, as B would receive it on port 500.
fn an_init_request(net: &mut Net) -> Vec<u8> {
    net.a
        .initiate(net.now, "to-b", addr(A, 500), addr(B, 500))
        .unwrap();
    let t = net.a.poll_transmit().expect("IKE_SA_INIT");
    let m = Message::parse(&t.payload).unwrap();
    assert_eq!(m.header.exchange, ExchangeType::IkeSaInit);
    t.payload
}

fn spoofed(i: u32) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0xac10_0000 + 1 + i)), 500)
}

fn failures(net: &mut Net) -> usize {
    let mut n = 0;
    while let Some(e) = net.b.poll_event() {
        n += usize::from(matches!(e, Event::Failure { .. }));
    }
    n
}

/// Cookie challenges among B's pending transmits (drained).
fn cookie_replies(net: &mut Net) -> usize {
    let mut n = 0;
    while let Some(t) = net.b.poll_transmit() {
        let m = Message::parse(&t.payload).unwrap();
        n += usize::from(matches!(
            m.payloads.first(),
            Some(Payload::Notify(p)) if p.kind == NotifyType::Cookie
        ));
    }
    n
}

#[test]
fn spoofed_init_flood_engages_cookies_by_rate_and_a_real_peer_still_connects() {
    let (a, mut b) = pair_configs(SUITE.0, SUITE.1);
    // As the daemon configures it: B accepts this connection from A's address only.
    b.remote_addrs = vec![addr(A, 500).ip()];
    let mut net = Net::new(a.clone(), b.clone());
    let template = an_init_request(&mut net);
    // Start over with fresh endpoints (A's half-made SA is not wanted).
    let mut net = Net::new(a, b);
    let rate = EndpointConfig::default().cookie_rate_threshold;
    let flood = 10 * rate as u32;
    for i in 0..flood {
        let mut m = template.clone();
        m[..8].copy_from_slice(&(u64::from(i) + 0x1000).to_be_bytes());
        net.b.handle(net.now, addr(B, 500), spoofed(i), &m);
        if i % 16 == 0 {
            net.now += Duration::from_millis(1);
        }
    }
    let st = net.b.stats();
    let (fails, cookies) = (failures(&mut net), cookie_replies(&mut net));
    // Up to the rate threshold the requests are answered as usual (no connection for that
    // address: NO_PROPOSAL_CHOSEN, a failure event); past it, only cookies.
    assert_eq!(fails as u64, rate, "failures logged: {fails}");
    assert_eq!(st.cookies_sent, u64::from(flood) - rate, "{st:?}");
    assert_eq!(cookies as u64, st.cookies_sent);
    assert!(net.b.ike_sas().is_empty(), "no state for spoofed peers");

    // A real initiator during the flood: challenged, it answers with the cookie and the
    // tunnel comes up.
    let before = net.b.stats().cookies_sent;
    net.initiate_a();
    assert_eq!(
        net.b.stats().cookies_sent,
        before + 1,
        "A was challenged once"
    );
    assert_eq!(
        net.count(|e| matches!(e, Event::IkeSaUp { .. })),
        (1, 1),
        "A: {:?}\nB: {:?}",
        net.events_a,
        net.events_b
    );
    // The first request A sent carried no cookie; its second did, first of all payloads.
    let inits: Vec<Message> = net
        .wire
        .iter()
        .filter(|c| c.from == addr(A, 500))
        .filter_map(|c| Message::parse(&c.payload).ok())
        .filter(|m| m.header.exchange == ExchangeType::IkeSaInit)
        .collect();
    assert_eq!(inits.len(), 2);
    assert!(matches!(
        inits[1].payloads.first(),
        Some(Payload::Notify(n)) if n.kind == NotifyType::Cookie
    ));
    assert_eq!(inits[0].header.spi_i, inits[1].header.spi_i);

    // Two quiet seconds later the rate trigger is off again: a new IKE SA needs no cookie.
    net.now += Duration::from_secs(2);
    let before = net.b.stats().cookies_sent;
    net.a
        .initiate(net.now, "to-b", addr(A, 500), addr(B, 500))
        .unwrap();
    net.pump();
    assert_eq!(
        net.b.stats().cookies_sent,
        before,
        "no cookie once the flood is over"
    );
    assert_eq!(net.count(|e| matches!(e, Event::IkeSaUp { .. })), (2, 2));
}

#[test]
fn a_rate_threshold_of_zero_challenges_every_new_ike_sa() {
    let (a, b) = pair_configs(SUITE.0, SUITE.1);
    let cb = EndpointConfig {
        cookie_rate_threshold: 0,
        ..Default::default()
    };
    let mut net = Net::with_config(a, b, EndpointConfig::default(), cb);
    net.initiate_a();
    assert_eq!(net.b.stats().cookies_sent, 1);
    assert_eq!(net.count(|e| matches!(e, Event::IkeSaUp { .. })), (1, 1));
}

/// B's cookie challenge to A's first IKE_SA_INIT (B demands cookies for every new IKE SA),
/// and A's second request carrying it, made but not yet delivered.
fn challenged_request(net: &mut Net) -> (u8, Vec<u8>) {
    let request = an_init_request(net);
    net.b.handle(net.now, addr(B, 500), addr(A, 500), &request);
    let reply = net.b.poll_transmit().expect("a cookie challenge");
    let m = Message::parse(&reply.payload).unwrap();
    let version = match m.payloads.first() {
        Some(Payload::Notify(n)) if n.kind == NotifyType::Cookie => n.data[0],
        other => panic!("expected a cookie, got {other:?}"),
    };
    net.a
        .handle(net.now, addr(A, 500), addr(B, 500), &reply.payload);
    let again = net.a.poll_transmit().expect("IKE_SA_INIT with the cookie");
    (version, again.payload)
}

/// What B answers to `request` at `now`: the version byte of a new cookie challenge, or None
/// if it went on with the exchange.
fn answer(net: &mut Net, request: &[u8]) -> Option<u8> {
    net.b.handle(net.now, addr(B, 500), addr(A, 500), request);
    let reply = net.b.poll_transmit().expect("an answer");
    let m = Message::parse(&reply.payload).unwrap();
    match m.payloads.first() {
        Some(Payload::Notify(n)) if n.kind == NotifyType::Cookie => Some(n.data[0]),
        _ => None,
    }
}

fn always_challenging(a: PeerConfig, b: PeerConfig) -> Net {
    let cb = EndpointConfig {
        cookie_rate_threshold: 0,
        ..Default::default()
    };
    Net::with_config(a, b, EndpointConfig::default(), cb)
}

#[test]
fn the_cookie_secret_rotates_and_the_previous_one_verifies_only_during_its_grace_period() {
    use ironsec_ike::cookie_secret::{GRACE, ROTATION};
    let (a, b) = pair_configs(SUITE.0, SUITE.1);

    // Answered within the grace period after a rotation: accepted, no second challenge.
    let mut net = always_challenging(a.clone(), b.clone());
    let (v1, request) = challenged_request(&mut net);
    net.now += ROTATION + GRACE / 2;
    assert_eq!(
        answer(&mut net, &request),
        None,
        "accepted during the grace period"
    );
    assert_eq!(net.b.stats().cookies_sent, 1);

    // The same answer (the endpoints are seeded alike) after the grace period: challenged
    // again, with a cookie of the new secret's version.
    let mut net = always_challenging(a, b);
    let (v1_again, request) = challenged_request(&mut net);
    assert_eq!(v1, v1_again, "same seeds, same exchange");
    net.now += ROTATION + GRACE;
    let v2 = answer(&mut net, &request).expect("challenged again after the grace period");
    assert_ne!(v1, v2, "the version byte changes with the secret");
    assert_eq!(net.b.stats().cookies_sent, 2);
}
