//! Inputs found by the `ike_responder` fuzz target (fuzz/fuzz_targets/ike_responder.rs), each
//! replayed as the fuzzer fed it, plus the same bug written as a readable scenario.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ironsec_ike::crypto::TestRng;
use ironsec_ike::testkit::responder::{peer, run_responder};
use ironsec_ike::wire::{ExchangeType, Flags, Header, Message, NON_ESP_MARKER};
use ironsec_ike::{Endpoint, EndpointConfig, Transmit};

/// Every datagram an endpoint sends is an IKE message it can parse itself, behind the non-ESP
/// marker exactly when it leaves from the NAT-T port (RFC 3948 2.2): without the marker the
/// peer takes it for ESP (its first four bytes, the initiator's SPI, read as an ESP SPI).
fn assert_well_framed(t: &Transmit) {
    let bytes = if t.local.port() == 4500 {
        t.payload
            .strip_prefix(&NON_ESP_MARKER[..])
            .unwrap_or_else(|| {
                panic!(
                    "sent {} -> {} without the non-ESP marker: {:02x?}",
                    t.local,
                    t.remote,
                    &t.payload[..t.payload.len().min(32)]
                )
            })
    } else {
        &t.payload[..]
    };
    Message::parse(bytes).expect("the endpoint sent a message it cannot parse");
}

/// Fuzz crash 1 (minimized, 447 bytes, two frames): an IKE_SA_INIT request on port 500, then on port 4500 an
/// IKE_AUTH-typed request with Message ID 0 and the right SPIs (it cannot be decrypted). The
/// responder floats the half-open SA's local address to port 4500 on that unauthenticated
/// datagram, takes it for a retransmission of request 0 and resends its cached IKE_SA_INIT
/// response, framed for port 500, from port 4500: without the non-ESP marker.
#[test]
fn fuzz_crash_1_cached_init_response_resent_on_4500_without_marker() {
    run_responder(include_bytes!("data/fuzz-crash-1-ike-responder.bin"));
}

/// The same bug without the fuzz harness: after IKE_SA_INIT, one unauthenticated 28-byte
/// datagram on port 4500 carrying the SA's SPIs and Message ID 0 makes the responder send
/// its IKE_SA_INIT response from port 4500 with no non-ESP marker.
#[test]
fn request_id_0_on_natt_port_does_not_resend_init_response_unframed() {
    let a_addr = |p| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), p);
    let b_addr = |p| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)), p);
    let psk = b"secret-shared-by-both-sites";
    let ike = "aes128gcm16-prfsha256-x25519";
    let pa = peer(
        "to-b",
        "gw-a.example",
        "gw-b.example",
        "10.1.0.0/24",
        "10.2.0.0/24",
        ike,
        "aes128gcm16",
        psk,
    );
    let pb = peer(
        "to-a",
        "gw-b.example",
        "gw-a.example",
        "10.2.0.0/24",
        "10.1.0.0/24",
        ike,
        "aes128gcm16",
        psk,
    );
    let mut a = Endpoint::new(
        EndpointConfig::default(),
        vec![pa],
        Box::new(TestRng::new(1)),
    );
    let mut b = Endpoint::new(
        EndpointConfig::default(),
        vec![pb],
        Box::new(TestRng::new(2)),
    );
    let now = Instant::now();
    a.initiate(now, "to-b", a_addr(500), b_addr(500)).unwrap();
    let init = a.poll_transmit().expect("IKE_SA_INIT request");
    b.handle(now, init.remote, init.local, &init.payload);
    let resp = b.poll_transmit().expect("IKE_SA_INIT response");
    assert_well_framed(&resp);
    let h = Header::parse(&resp.payload).unwrap();

    // Not a real request: the SPIs of the half-open SA, Message ID 0, no payloads.
    let forged = Header {
        spi_i: h.spi_i,
        spi_r: h.spi_r,
        next_payload: 0,
        major: 2,
        minor: 0,
        exchange: ExchangeType::Informational,
        flags: Flags {
            initiator: true,
            version: false,
            response: false,
        },
        message_id: 0,
        length: 28,
    };
    let mut datagram = NON_ESP_MARKER.to_vec();
    datagram.extend_from_slice(&forged.encode());
    b.handle(now, b_addr(4500), a_addr(4500), &datagram);
    while let Some(t) = b.poll_transmit() {
        assert_well_framed(&t);
    }
}

/// Found while writing the `config` fuzz target (not by the fuzzer): the daemon's loader
/// accepts any `ike_rekey_time` / `rekey_time` up to i64::MAX seconds, and the engine adds
/// lifetimes to `now` unchecked (`sa/mod.rs` `established`: `ctx.now + jittered(..)`;
/// `sa/child.rs`: `ctx.now + l.child_rekey/child_hard`), so the IKE SA coming up panics with
/// "overflow when adding duration to instant".
#[test]
fn huge_lifetimes_do_not_panic_when_the_sa_comes_up() {
    let a_addr = |p| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), p);
    let b_addr = |p| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)), p);
    let psk = b"secret-shared-by-both-sites";
    let ike = "aes128gcm16-prfsha256-x25519";
    let mut pa = peer(
        "to-b",
        "gw-a.example",
        "gw-b.example",
        "10.1.0.0/24",
        "10.2.0.0/24",
        ike,
        "aes128gcm16",
        psk,
    );
    // What ironsecd builds from `ike_rekey_time = rekey_time = 9223372036854775807`.
    let big = Duration::from_secs(i64::MAX as u64);
    pa.lifetimes.ike_rekey = big;
    pa.lifetimes.child_rekey = big;
    pa.lifetimes.child_hard = big + big / 10 + Duration::from_secs(60);
    let pb = peer(
        "to-a",
        "gw-b.example",
        "gw-a.example",
        "10.2.0.0/24",
        "10.1.0.0/24",
        ike,
        "aes128gcm16",
        psk,
    );
    let mut a = Endpoint::new(
        EndpointConfig::default(),
        vec![pa],
        Box::new(TestRng::new(1)),
    );
    let mut b = Endpoint::new(
        EndpointConfig::default(),
        vec![pb],
        Box::new(TestRng::new(2)),
    );
    let now = Instant::now();
    a.initiate(now, "to-b", a_addr(500), b_addr(500)).unwrap();
    for _ in 0..8 {
        while let Some(t) = a.poll_transmit() {
            b.handle(now, t.remote, t.local, &t.payload);
        }
        while let Some(t) = b.poll_transmit() {
            a.handle(now, t.remote, t.local, &t.payload);
        }
    }
    assert!(a.ike_sas().iter().any(|s| s.established));
}
