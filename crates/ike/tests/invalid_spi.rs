//! INVALID_SPI outside an IKE SA (RFC 7296 1.5, 2.21.4) between two sans-IO endpoints on a
//! fake clock: a restarted gateway tells the peer still sending on the old SPIs, the peer
//! checks liveness at once (rather than after its DPD interval) and, the check failing, closes
//! its stale SAs; a forged notification changes nothing while the peer is alive.

use std::time::Duration;

use ironsec_ike::crypto::TestRng;
use ironsec_ike::testkit::*;
use ironsec_ike::wire::{ExchangeType, Message, NotifyType, Payloads, NON_ESP_MARKER};
use ironsec_ike::{CloseReason, Endpoint, EndpointConfig, Event};

const SUITE: (&str, &str) = ("aes128gcm16-prfsha256-x25519", "aes128gcm16");

fn established(give_up: Option<Duration>) -> (Net, ironsec_ike::PeerConfig) {
    let (mut ca, cb) = pair_configs(SUITE.0, SUITE.1);
    ca.retransmit.give_up_after = give_up;
    let mut net = Net::new(ca, cb.clone());
    net.initiate_a();
    assert_eq!(net.count(|e| matches!(e, Event::IkeSaUp { .. })), (1, 1));
    (net, cb)
}

fn downs(events: &[Event]) -> Vec<CloseReason> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaDown { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn restarted_peer_reports_the_spi_and_the_survivor_gives_up_after_its_dpd_timeout() {
    let (mut net, cb) = established(Some(Duration::from_secs(8)));
    // B restarts: same configuration, no SAs.
    net.b = Endpoint::new(
        EndpointConfig::default(),
        vec![cb],
        Box::new(TestRng::new(3)),
    );
    // ESP from A on the old SPI reaches the new B; a burst of it yields one notification.
    for _ in 0..5 {
        net.b
            .unknown_esp_spi(net.now, addr(B, 4500), addr(A, 4500), 0x1234_5678);
    }
    assert_eq!(net.b.stats().invalid_spi_sent, 1);
    // The owner hears of it once, as an event (to log), not by comparing counters.
    let sent: Vec<Event> = std::iter::from_fn(|| net.b.poll_event()).collect();
    assert!(
        matches!(sent.as_slice(), [Event::InvalidSpiSent { remote, spi: 0x1234_5678 }] if *remote == addr(A, 4500)),
        "{sent:?}"
    );
    let t = net.b.poll_transmit().expect("an INVALID_SPI notification");
    assert_eq!(t.remote, addr(A, 4500));
    let bytes = t
        .payload
        .strip_prefix(&NON_ESP_MARKER[..])
        .expect("framed for 4500");
    let m = Message::parse(bytes).unwrap();
    assert_eq!(m.header.exchange, ExchangeType::Informational);
    assert!(m.header.flags.initiator && !m.header.flags.response);
    assert_eq!(m.header.spi_r, 0);
    let n = m
        .payloads
        .notify(NotifyType::InvalidSpi)
        .expect("INVALID_SPI notify");
    assert_eq!(n.data, 0x1234_5678u32.to_be_bytes());

    // A takes it as a hint: it starts a liveness check now (DPD interval is 30 s), answers
    // nothing, and keeps its SA until the check fails.
    let before = net.a.stats().requests_sent;
    net.a
        .handle(net.now, addr(A, 4500), addr(B, 4500), &t.payload);
    assert_eq!(net.a.stats().invalid_spi_hints, 1);
    assert_eq!(net.a.ike_sas().len(), 1, "a hint alone closes nothing");
    net.pump();
    let hints = net
        .events_a
        .iter()
        .filter(|e| matches!(e, Event::InvalidSpiHint { remote } if *remote == addr(B, 4500)))
        .count();
    assert_eq!(hints, 1, "{:?}", net.events_a);
    assert_eq!(
        net.a.stats().requests_sent,
        before + 1,
        "one liveness check"
    );
    assert!(downs(&net.events_a).is_empty());
    net.run_for(Duration::from_secs(7));
    assert!(
        downs(&net.events_a).is_empty(),
        "gave up before dpd_timeout"
    );
    net.run_for(Duration::from_secs(2));
    assert_eq!(downs(&net.events_a), [CloseReason::PeerUnreachable]);
}

#[test]
fn a_forged_notification_changes_nothing_while_the_peer_is_alive() {
    let (mut net, cb) = established(Some(Duration::from_secs(8)));
    // Someone without SAs (here: a third endpoint) sends A an INVALID_SPI as if from B.
    let mut forger = Endpoint::new(
        EndpointConfig::default(),
        vec![cb],
        Box::new(TestRng::new(9)),
    );
    forger.unknown_esp_spi(net.now, addr(B, 4500), addr(A, 4500), 7);
    let t = forger.poll_transmit().unwrap();
    let sas = net.a.ike_sas();
    net.a
        .handle(net.now, addr(A, 4500), addr(B, 4500), &t.payload);
    net.pump();
    net.run_for(Duration::from_secs(60));
    assert!(downs(&net.events_a).is_empty(), "{:?}", net.events_a);
    assert!(downs(&net.events_b).is_empty(), "{:?}", net.events_b);
    let after = net.a.ike_sas();
    assert_eq!(
        sas.iter().map(|s| s.id).collect::<Vec<_>>(),
        after.iter().map(|s| s.id).collect::<Vec<_>>()
    );
    assert_eq!(net.a.stats().invalid_spi_hints, 1);
    // A answered nothing to the unprotected message: everything A sent after it was a
    // protected request of its own (the liveness check) on the SA's SPIs.
    let (ispi, rspi) = (sas[0].spi_i, sas[0].spi_r);
    for c in net.wire.iter().filter(|c| c.from.ip() == addr(A, 0).ip()) {
        let b = c
            .payload
            .strip_prefix(&NON_ESP_MARKER[..])
            .unwrap_or(&c.payload);
        let m = Message::parse(b).unwrap();
        if m.header.spi_r == 0 {
            continue; // the IKE_SA_INIT of the setup
        }
        assert_eq!((m.header.spi_i, m.header.spi_r), (ispi, rspi));
    }
}

#[test]
fn no_notification_while_an_ike_sa_with_that_peer_lives() {
    let (mut net, _) = established(None);
    // A straggler on a CHILD_SA B already deleted: B still has its IKE SA with A.
    net.b
        .unknown_esp_spi(net.now, addr(B, 4500), addr(A, 4500), 0xabcd);
    assert_eq!(net.b.stats().invalid_spi_sent, 0);
    assert!(net.b.poll_transmit().is_none());
    assert!(
        net.b.poll_event().is_none(),
        "nothing sent, nothing to report"
    );
}
