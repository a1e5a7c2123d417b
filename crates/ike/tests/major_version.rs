//! A request from a later IKE major version (RFC 7296 2.5): dropped, and answered with an
//! unprotected INVALID_MAJOR_VERSION response in a 2.0 header carrying the request's SPIs,
//! exchange type and Message ID (1.5), at most once a second per address; responses, IKEv1
//! (major 1) and malformed headers get no answer, and nothing is created.

use std::time::{Duration, Instant};

use ironsec_ike::crypto::TestRng;
use ironsec_ike::testkit::*;
use ironsec_ike::wire::{
    ExchangeType, Flags, Header, Message, NotifyType, Payload, HEADER_LEN, NON_ESP_MARKER,
};
use ironsec_ike::{Endpoint, EndpointConfig};

/// A bare header of `major`.0 with no payloads: all a responder needs to see the version.
fn request(major: u8, exchange: ExchangeType, response: bool, message_id: u32) -> Vec<u8> {
    let h = Header {
        spi_i: 0x1122_3344_5566_7788,
        spi_r: if exchange == ExchangeType::IkeSaInit {
            0
        } else {
            0x99aa_bbcc_ddee_ff00
        },
        next_payload: 0,
        major,
        minor: 0,
        exchange,
        flags: Flags {
            initiator: true,
            version: false,
            response,
        },
        message_id,
        length: HEADER_LEN as u32,
    };
    h.encode().to_vec()
}

fn responder() -> Endpoint {
    let (_, cb) = pair_configs("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    Endpoint::new(
        EndpointConfig::default(),
        vec![cb],
        Box::new(TestRng::new(7)),
    )
}

#[test]
fn later_major_version_is_answered_once_a_second() {
    let mut b = responder();
    let t0 = Instant::now();
    let from = addr(A, 500);
    b.handle(
        t0,
        addr(B, 500),
        from,
        &request(3, ExchangeType::IkeSaInit, false, 0),
    );
    let t = b
        .poll_transmit()
        .expect("an INVALID_MAJOR_VERSION response");
    assert_eq!(t.remote, from);
    let m = Message::parse(&t.payload).expect("a well-formed IKEv2 message");
    let h = &m.header;
    assert_eq!((h.major, h.minor), (2, 0), "the version we speak");
    assert_eq!(h.exchange, ExchangeType::IkeSaInit);
    assert_eq!(
        (h.spi_i, h.spi_r, h.message_id),
        (0x1122_3344_5566_7788, 0, 0)
    );
    assert!(h.flags.response && !h.flags.initiator);
    assert!(matches!(
        m.payloads.as_slice(),
        [Payload::Notify(n)] if n.kind == NotifyType::InvalidMajorVersion && n.data.is_empty()
    ));
    let s = b.stats();
    assert_eq!((s.invalid_major_version_sent, s.malformed), (1, 1));
    assert!(
        b.ike_sas().is_empty(),
        "no state for a message we cannot read"
    );

    // A burst from the same address within the second: dropped silently.
    for i in 0..5 {
        b.handle(
            t0,
            addr(B, 500),
            from,
            &request(3, ExchangeType::IkeSaInit, false, i),
        );
    }
    assert!(b.poll_transmit().is_none());
    // Another address, or the same one a second later, is answered again; on the NAT-T port
    // the answer carries the non-ESP marker and copies an INFORMATIONAL's SPIs and Message ID.
    let later = t0 + Duration::from_secs(1);
    let on_4500 = [
        &NON_ESP_MARKER[..],
        &request(4, ExchangeType::Informational, false, 9),
    ]
    .concat();
    b.handle(later, addr(B, 4500), addr(A, 4500), &on_4500);
    let t = b.poll_transmit().expect("answered again after a second");
    let bytes = t
        .payload
        .strip_prefix(&NON_ESP_MARKER[..])
        .expect("framed for 4500");
    let h = Message::parse(bytes).unwrap().header;
    assert_eq!(h.exchange, ExchangeType::Informational);
    assert_eq!((h.spi_r, h.message_id), (0x99aa_bbcc_ddee_ff00, 9));
    assert_eq!(b.stats().invalid_major_version_sent, 2);
}

#[test]
fn responses_ikev1_and_short_headers_get_no_answer() {
    let mut b = responder();
    let now = Instant::now();
    let local = addr(B, 500);
    b.handle(
        now,
        local,
        addr(A, 500),
        &request(3, ExchangeType::IkeSaInit, true, 0),
    );
    b.handle(
        now,
        local,
        addr(A, 501),
        &request(1, ExchangeType::IkeSaInit, false, 0),
    );
    b.handle(
        now,
        local,
        addr(A, 502),
        &request(3, ExchangeType::IkeSaInit, false, 0)[..20],
    );
    assert!(b.poll_transmit().is_none());
    let s = b.stats();
    assert_eq!((s.invalid_major_version_sent, s.malformed), (0, 3));
}
