//! Hostile input against live endpoints (issue 8, "malformed input table"): each row feeds one
//! kind of bad datagram to an ESTABLISHED pair of sans-IO endpoints (or to a responder with no
//! SA) and checks the RFC 7296 answer.
//!
//! Three outcomes are possible, and each row names the one it expects:
//!
//! * **Dropped**: nothing is sent, no event, exactly one [`EndpointStats`] counter goes up, and
//!   every IKE SA on both sides is as it was: same SPIs, same Message IDs, same CHILD_SAs, and
//!   the peer not counted as heard from. Anything that does not pass the ICV check must end
//!   here (RFC 7296 2.21: unauthenticated input changes no state), and so must anything outside
//!   the Message ID window (2.3), whatever its ICV.
//! * **Answered**: an authenticated request the engine cannot honour gets a protected response
//!   with the right notify (UNSUPPORTED_CRITICAL_PAYLOAD, 2.5) or, for an unknown payload
//!   without the critical bit, the ordinary answer; the IKE SA stays.
//! * **Fatal**: an authenticated request that is badly formatted is answered INVALID_SYNTAX, which
//!   "is considered fatal in both peers, meaning that the IKE SA is deleted without needing an
//!   explicit Delete payload" (2.21.3; 2.21.2 for IKE_AUTH): both IKE SAs end.
//!
//! After a Dropped or Answered row, legitimate exchanges must still complete: DPD from each side
//! and a CHILD_SA rekey, with the Message IDs of the two sides in step.
//!
//! Authenticated hostile input (a message only the peer could send) is forged with the IKE SA's
//! real keys, exported by the `key-export` test feature. Such a request takes the Message ID of
//! a request the peer really has in flight (a DPD the test intercepts), so the peer reads the
//! answer as the response to it, as it would if its own request had been malformed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ironsec_ike::crypto::{SkCipher, TestRng};
use ironsec_ike::endpoint::ExportedIkeKeys;
use ironsec_ike::wire::{
    encode_chain, encode_message, layout_sk, layout_skf, parse_chain, DeletePayload, Encrypted,
    ExchangeType, Flags, Header, Message, NotifyPayload, NotifyType, Payload, ProtocolId, SkLayout,
    SkShape, HEADER_LEN, NON_ESP_MARKER,
};
use ironsec_ike::{CloseReason, Endpoint, EndpointConfig, EndpointStats, Event, Transmit};

use ironsec_ike::testkit::*;

// Payload type numbers for chains built by hand.
const NOTIFY: u8 = 41;
const DELETE: u8 = 42;
const VENDOR_ID: u8 = 43;
const SK: u8 = 46;
const NONCE: u8 = 40;

const IKE: &str = "aes128gcm16-prfsha256-x25519";
const ESP: &str = "aes128gcm16";

// ---- the pair ----------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// The original initiator of the IKE SA.
    A,
    /// The responder.
    B,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
    fn ip(self) -> &'static str {
        match self {
            Side::A => A,
            Side::B => B,
        }
    }
}

/// An established pair: one IKE SA and one CHILD_SA on each side, both on the NAT-T port
/// (the test peers force UDP encapsulation), with the IKE SA's keys at hand.
struct Pair {
    net: Net,
    keys: ExportedIkeKeys,
}

impl Pair {
    fn new() -> Pair {
        let (a, b) = pair_configs(IKE, ESP);
        let mut net = Net::new(a, b);
        net.initiate_a();
        let (sa, sb) = (net.a.ike_sas(), net.b.ike_sas());
        assert_eq!((sa.len(), sb.len()), (1, 1));
        assert!(sa[0].established && sb[0].established);
        assert_eq!((sa[0].children.len(), sb[0].children.len()), (1, 1));
        let keys = net.a.export_ike_keys(sa[0].id).expect("key-export");
        // Time passes, so a forged message that counted as hearing from the peer would show.
        net.now += Duration::from_secs(1);
        Pair { net, keys }
    }

    fn ep(&mut self, side: Side) -> &mut Endpoint {
        match side {
            Side::A => &mut self.net.a,
            Side::B => &mut self.net.b,
        }
    }

    fn ep_ref(&self, side: Side) -> &Endpoint {
        match side {
            Side::A => &self.net.a,
            Side::B => &self.net.b,
        }
    }

    fn sa(&self, side: Side) -> ironsec_ike::IkeSaSummary {
        let sas = self.ep_ref(side).ike_sas();
        assert_eq!(sas.len(), 1, "{side:?}: {sas:?}");
        sas[0].clone()
    }

    /// Hands `datagram` (a whole UDP payload) to `to` as if `to`'s peer sent it to the NAT-T
    /// port; returns what `to` sent back and the events it raised (also kept in the Net).
    fn deliver(&mut self, to: Side, datagram: &[u8]) -> (Vec<Transmit>, Vec<Event>) {
        let now = self.net.now;
        let (local, remote) = (addr(to.ip(), 4500), addr(to.other().ip(), 4500));
        let ep = self.ep(to);
        ep.handle(now, local, remote, datagram);
        let mut sent = Vec::new();
        while let Some(t) = ep.poll_transmit() {
            sent.push(t);
        }
        let mut events = Vec::new();
        while let Some(e) = ep.poll_event() {
            events.push(e);
        }
        match to {
            Side::A => self.net.events_a.extend(events.iter().cloned()),
            Side::B => self.net.events_b.extend(events.iter().cloned()),
        }
        (sent, events)
    }

    /// Delivers the fragments of a request but the last, which must draw nothing yet, and
    /// returns the last.
    fn deliver_all_but_last<'d>(&mut self, to: Side, datagrams: &'d [Vec<u8>]) -> &'d [u8] {
        let (last, first) = datagrams.split_last().expect("a request");
        for d in first {
            let (sent, events) = self.deliver(to, d);
            assert!(sent.is_empty() && events.is_empty(), "{sent:?} {events:?}");
        }
        last
    }

    /// A header for a message of this IKE SA as `from` sends it.
    fn header(&self, from: Side, exchange: ExchangeType, response: bool, id: u32) -> Header {
        Header {
            spi_i: self.keys.spi_i,
            spi_r: self.keys.spi_r,
            next_payload: 0,
            major: 2,
            minor: 0,
            exchange,
            flags: Flags {
                initiator: from == Side::A,
                version: false,
                response,
            },
            message_id: id,
            length: 0,
        }
    }

    fn cipher(&self, from: Side) -> SkCipher {
        let (e, a) = match from {
            Side::A => (&self.keys.sk_ei, &self.keys.sk_ai),
            Side::B => (&self.keys.sk_er, &self.keys.sk_ar),
        };
        SkCipher::new(self.keys.encr, e, a).unwrap()
    }

    /// An SK message holding `inner` (raw bytes of an inner chain whose first payload type is
    /// `first`), sealed with `from`'s real key so it passes the ICV check. `tweak` may alter
    /// the plaintext (inner chain and Pad Length byte) before sealing.
    fn seal_raw(&self, header: &Header, first: u8, inner: &[u8], tweak: fn(&mut [u8])) -> Vec<u8> {
        let from = if header.flags.initiator {
            Side::A
        } else {
            Side::B
        };
        self.seal_with(from, header, first, inner, tweak)
    }

    /// [`Pair::seal_raw`] with the key of `key`'s direction, whatever the header says.
    fn seal_with(
        &self,
        key: Side,
        header: &Header,
        first: u8,
        inner: &[u8],
        tweak: fn(&mut [u8]),
    ) -> Vec<u8> {
        let l = layout_sk(header, &[], first, inner, self.shape());
        self.seal_layout(key, l, tweak)
    }

    /// One SKF fragment (RFC 7383 2.5) holding `chunk`, sealed with `from`'s real key.
    fn seal_skf(
        &self,
        header: &Header,
        first: u8,
        number: u16,
        total: u16,
        chunk: &[u8],
    ) -> Vec<u8> {
        let from = if header.flags.initiator {
            Side::A
        } else {
            Side::B
        };
        let l = layout_skf(header, first, number, total, chunk, self.shape());
        self.seal_layout(from, l, |_| {})
    }

    /// The SK payload sizes of this SA's suite.
    fn shape(&self) -> SkShape {
        let c = self.cipher(Side::A);
        SkShape {
            iv_len: c.iv_len(),
            icv_len: c.icv_len(),
            block_len: c.block_len(),
        }
    }

    fn seal_layout(&self, key: Side, mut l: SkLayout, tweak: fn(&mut [u8])) -> Vec<u8> {
        static IV: AtomicU64 = AtomicU64::new(1 << 63);
        tweak(&mut l.bytes[l.plaintext.clone()]);
        // Far from the engine's own IV counter, so no nonce is used twice under one key.
        let n = IV.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        let c = self.cipher(key);
        let iv: Vec<u8> = n.iter().copied().cycle().take(c.iv_len()).collect();
        c.seal_with_iv(&iv, &mut l.bytes, l.aad.end).unwrap();
        l.bytes
    }

    fn seal(&self, header: &Header, payloads: &[Payload]) -> Vec<u8> {
        let (first, inner) = encode_chain(payloads);
        self.seal_raw(header, first, &inner, |_| {})
    }

    /// Opens a message `from` sent (a whole UDP payload from the NAT-T port).
    fn open(&self, from: Side, datagram: &[u8]) -> (Header, Vec<Payload>) {
        let bytes = datagram
            .strip_prefix(&NON_ESP_MARKER[..])
            .expect("sent from the NAT-T port");
        let m = Message::parse(bytes).expect("the endpoint sent a parseable message");
        let Some(Encrypted::Sk {
            first_inner,
            aad,
            body,
        }) = m.encrypted
        else {
            panic!("not an SK message: {m:?}")
        };
        let mut ct = self
            .cipher(from)
            .open(&bytes[aad], &bytes[body])
            .expect("ICV of the endpoint's own message")
            .to_vec();
        let pad = usize::from(*ct.last().unwrap());
        ct.truncate(ct.len() - pad - 1);
        (m.header, parse_chain(first_inner, &ct).unwrap())
    }

    /// Makes `side` start a DPD exchange and intercepts its request: the Message ID it returns
    /// is one `side` waits an answer for, so a forged request with it stands in for the real
    /// one (which is discarded).
    fn take_request_slot(&mut self, side: Side) -> u32 {
        let (now, id) = (self.net.now, self.sa(side).id);
        assert!(self
            .ep(side)
            .probe(now, id, Duration::from_secs(60))
            .unwrap());
        let t = self.ep(side).poll_transmit().expect("a DPD request");
        assert!(self.ep(side).poll_transmit().is_none());
        let (h, payloads) = self.open(side, &t.payload);
        assert!(!h.flags.response && payloads.is_empty(), "{payloads:?}");
        h.message_id
    }
}

/// Adds the non-ESP marker: what an IKE message on port 4500 looks like (RFC 3948 2.2).
fn framed(ike: &[u8]) -> Vec<u8> {
    [&NON_ESP_MARKER[..], ike].concat()
}

/// A generic payload header (RFC 7296 3.2) naming `next`, with a correct length, and `body`.
fn raw_payload(next: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![next, 0];
    p.extend(((body.len() + 4) as u16).to_be_bytes());
    p.extend_from_slice(body);
    p
}

/// `header` with `first` as first payload type and a length field that matches `chain`.
fn raw_message(header: &Header, first: u8, chain: &[u8]) -> Vec<u8> {
    let h = Header {
        next_payload: first,
        length: (HEADER_LEN + chain.len()) as u32,
        ..header.clone()
    };
    let mut m = h.encode().to_vec();
    m.extend_from_slice(chain);
    m
}

/// A notify body (protocol 0, no SPI).
fn notify_body(kind: u16, data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0];
    b.extend(kind.to_be_bytes());
    b.extend_from_slice(data);
    b
}

// ---- state that must not change ----------------------------------------------------------

/// Everything about one IKE SA that hostile input must leave alone.
#[derive(Debug, PartialEq, Eq)]
struct SaState {
    id: u64,
    spi_i: u64,
    spi_r: u64,
    established: bool,
    local: SocketAddr,
    remote: SocketAddr,
    next_request_id: u32,
    expected_request_id: u32,
    children: Vec<(u32, u32)>,
    last_heard: Instant,
    probing: bool,
}

fn snapshot(ep: &Endpoint) -> Vec<SaState> {
    let mut v: Vec<SaState> = ep
        .ike_sas()
        .into_iter()
        .map(|s| {
            let l = ep.liveness(s.id).unwrap();
            SaState {
                id: s.id,
                spi_i: s.spi_i,
                spi_r: s.spi_r,
                established: s.established,
                local: s.local,
                remote: s.remote,
                next_request_id: s.next_request_id,
                expected_request_id: s.expected_request_id,
                children: s.children.iter().map(|c| (c.spi_in, c.spi_out)).collect(),
                last_heard: l.last_heard,
                probing: l.probing,
            }
        })
        .collect();
    v.sort_by_key(|s| s.id);
    v
}

#[derive(Clone, Copy, Debug)]
enum Counter {
    Malformed,
    UnknownSpi,
    IntegrityFailed,
    WrongMessageId,
}

impl Counter {
    fn bump(self, s: &mut EndpointStats) {
        match self {
            Counter::Malformed => s.malformed += 1,
            Counter::UnknownSpi => s.unknown_spi += 1,
            Counter::IntegrityFailed => s.integrity_failed += 1,
            Counter::WrongMessageId => s.wrong_message_id += 1,
        }
    }
}

/// Legitimate exchanges still complete after the hostile input: DPD from each side, then a
/// CHILD_SA rekey from A, and the two sides' Message IDs agree throughout.
fn still_works(p: &mut Pair) {
    for side in [Side::A, Side::B] {
        p.net.now += Duration::from_secs(1);
        let (now, id) = (p.net.now, p.sa(side).id);
        assert!(p.ep(side).probe(now, id, Duration::from_secs(10)).unwrap());
        p.net.pump();
        let l = p.ep_ref(side).liveness(id).unwrap();
        assert!(!l.probing && l.last_heard == now, "{side:?} DPD unanswered");
    }
    let rekeyed = |ev: &[Event]| {
        ev.iter()
            .filter(|e| matches!(e, Event::ChildSaRekeyed { .. }))
            .count()
    };
    let before = (rekeyed(&p.net.events_a), rekeyed(&p.net.events_b));
    let s = p.sa(Side::A);
    p.net
        .a
        .rekey_child(p.net.now, s.id, s.children[0].spi_in)
        .unwrap();
    p.net.pump();
    assert_eq!(
        (rekeyed(&p.net.events_a), rekeyed(&p.net.events_b)),
        (before.0 + 1, before.1 + 1),
        "CHILD_SA rekey: A {:?}\nB {:?}",
        p.net.events_a,
        p.net.events_b
    );
    let (sa, sb) = (p.sa(Side::A), p.sa(Side::B));
    assert_eq!((sa.spi_i, sa.spi_r), (sb.spi_i, sb.spi_r));
    assert_eq!(sa.next_request_id, sb.expected_request_id);
    assert_eq!(sb.next_request_id, sa.expected_request_id);
    assert_eq!((sa.children.len(), sb.children.len()), (1, 1));
    assert_eq!(sa.children[0].spi_in, sb.children[0].spi_out);
    assert_eq!(sa.children[0].spi_out, sb.children[0].spi_in);
    for ev in [&p.net.events_a, &p.net.events_b] {
        assert!(
            !ev.iter().any(|e| matches!(e, Event::IkeSaDown { .. })),
            "{ev:?}"
        );
    }
}

// ---- the table: established pair ---------------------------------------------------------

/// What a row expects.
enum Expect {
    /// Each datagram is dropped unanswered and counted once under this counter; nothing else
    /// changes on either side.
    Dropped(Counter),
    /// The (single, authenticated) request is answered with exactly these payloads and the
    /// IKE SA stays.
    Answered(Vec<Payload>),
    /// The (single, authenticated) request is answered INVALID_SYNTAX and both IKE SAs end
    /// (RFC 7296 2.21.3).
    Fatal,
    /// The (single) datagram is dropped, counted as malformed, and answered with an
    /// unprotected response holding only this notify, with the datagram's SPIs and Message ID
    /// (RFC 7296 1.5); nothing else changes on either side.
    Unprotected(NotifyType),
}

/// A row: the side that receives, and the datagrams (whole UDP payloads) it receives. `slot` is
/// the Message ID of a request the sender has in flight, for rows that forge an authenticated
/// request (see [`Pair::take_request_slot`]); other rows get None.
struct Row {
    to: Side,
    needs_slot: bool,
    build: fn(&Pair, Option<u32>) -> Vec<Vec<u8>>,
    expect: Expect,
}

fn run(row: Row) {
    let mut p = Pair::new();
    let slot = row.needs_slot.then(|| p.take_request_slot(row.to.other()));
    let datagrams = (row.build)(&p, slot);
    assert!(!datagrams.is_empty());
    match row.expect {
        Expect::Dropped(counter) => {
            for d in datagrams {
                let before = (snapshot(&p.net.a), snapshot(&p.net.b));
                let mut stats = p.ep_ref(row.to).stats();
                let other_stats = p.ep_ref(row.to.other()).stats();
                let (sent, events) = p.deliver(row.to, &d);
                assert!(sent.is_empty(), "answered {d:02x?}: {sent:02x?}");
                assert!(events.is_empty(), "events for {d:02x?}: {events:?}");
                stats.received += 1;
                counter.bump(&mut stats);
                assert_eq!(p.ep_ref(row.to).stats(), stats, "counters for {d:02x?}");
                assert_eq!(p.ep_ref(row.to.other()).stats(), other_stats);
                assert_eq!(
                    (snapshot(&p.net.a), snapshot(&p.net.b)),
                    before,
                    "state changed by {d:02x?}"
                );
            }
            if slot.is_some() {
                // The intercepted request is lost: the retransmission gets it through.
                p.net.run_for(Duration::from_secs(3));
            }
            still_works(&mut p);
        }
        Expect::Answered(want) => {
            let d = p.deliver_all_but_last(row.to, &datagrams);
            let id = slot.expect("an authenticated request takes a slot");
            let victim = p.sa(row.to);
            let (sent, events) = p.deliver(row.to, d);
            assert!(events.is_empty(), "{events:?}");
            let [t] = &sent[..] else {
                panic!("one response expected: {sent:?}")
            };
            let (h, payloads) = p.open(row.to, &t.payload);
            assert!(h.flags.response && h.message_id == id, "{h:?}");
            assert_eq!(payloads, want);
            let after = p.sa(row.to);
            assert_eq!((after.spi_i, after.spi_r), (victim.spi_i, victim.spi_r));
            assert_eq!(after.expected_request_id, victim.expected_request_id + 1);
            assert_eq!(after.next_request_id, victim.next_request_id);
            assert_eq!(after.children.len(), 1);
            // The answer completes the exchange the sender had open.
            let (back, _) = p.deliver(row.to.other(), &t.payload);
            assert!(back.is_empty(), "{back:?}");
            still_works(&mut p);
        }
        Expect::Unprotected(kind) => {
            let [d] = &datagrams[..] else {
                panic!("one datagram expected")
            };
            let before = (snapshot(&p.net.a), snapshot(&p.net.b));
            let malformed = p.ep_ref(row.to).stats().malformed;
            let (sent, events) = p.deliver(row.to, d);
            assert!(events.is_empty(), "{events:?}");
            let [t] = &sent[..] else {
                panic!("one answer expected: {sent:?}")
            };
            let strip = |b: &'static [u8], x: &[u8]| x.strip_prefix(b).map(<[u8]>::to_vec);
            let asked = Header::decode(&strip(&NON_ESP_MARKER, d).unwrap()).unwrap();
            let m = Message::parse(&strip(&NON_ESP_MARKER, &t.payload).unwrap()).unwrap();
            let h = &m.header;
            assert!(h.flags.response && (h.major, h.minor) == (2, 0), "{h:?}");
            assert_eq!(
                (h.spi_i, h.spi_r, h.message_id, h.exchange),
                (asked.spi_i, asked.spi_r, asked.message_id, asked.exchange)
            );
            assert!(
                matches!(m.payloads.as_slice(), [Payload::Notify(n)] if n.kind == kind),
                "{:?}",
                m.payloads
            );
            assert_eq!(p.ep_ref(row.to).stats().malformed, malformed + 1);
            assert_eq!((snapshot(&p.net.a), snapshot(&p.net.b)), before);
            still_works(&mut p);
        }
        Expect::Fatal => {
            let d = p.deliver_all_but_last(row.to, &datagrams);
            let id = slot.expect("an authenticated request takes a slot");
            let malformed = p.ep_ref(row.to).stats().malformed;
            let (sent, events) = p.deliver(row.to, d);
            let [t] = &sent[..] else {
                panic!("one response expected: {sent:?}")
            };
            let (h, payloads) = p.open(row.to, &t.payload);
            assert!(h.flags.response && h.message_id == id, "{h:?}");
            assert_eq!(
                payloads,
                [Payload::Notify(NotifyPayload {
                    protocol: 0,
                    spi: vec![],
                    kind: NotifyType::InvalidSyntax,
                    data: vec![],
                })],
                "INVALID_SYNTAX and nothing else (RFC 7296 2.21.2)"
            );
            assert_eq!(p.ep_ref(row.to).stats().malformed, malformed + 1);
            assert!(p.ep_ref(row.to).ike_sas().is_empty(), "{events:?}");
            assert!(
                events.iter().any(|e| matches!(
                    e,
                    Event::IkeSaDown {
                        reason: CloseReason::ProtocolError(_),
                        ..
                    }
                )),
                "{events:?}"
            );
            assert!(
                events
                    .iter()
                    .any(|e| matches!(e, Event::ChildSaDown { .. })),
                "{events:?}"
            );
            // The sender reads the answer to its request and deletes its side too.
            let (back, events) = p.deliver(row.to.other(), &t.payload);
            assert!(back.is_empty(), "no Delete needed: {back:?}");
            assert!(p.ep_ref(row.to.other()).ike_sas().is_empty(), "{events:?}");
            assert!(
                events.iter().any(|e| matches!(
                    e,
                    Event::IkeSaDown {
                        reason: CloseReason::Refused(NotifyType::InvalidSyntax),
                        ..
                    }
                )),
                "{events:?}"
            );
            // A retransmission of the malformed request finds no SA any more.
            let unknown = p.ep_ref(row.to).stats().unknown_spi;
            let (sent, _) = p.deliver(row.to, d);
            assert!(sent.is_empty());
            assert_eq!(p.ep_ref(row.to).stats().unknown_spi, unknown + 1);
        }
    }
}

/// One `#[test]` per row: `name: Side [slot 1], build => expect;`, where `slot 1` marks a row
/// that forges an authenticated request and so needs a Message ID slot of the sender.
macro_rules! rows {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident: $to:ident $(slot $slot:tt)?, $build:expr => $expect:expr;
    )*) => {
        $(
            $(#[doc = $doc])*
            #[test]
            fn $name() {
                run(Row {
                    to: Side::$to,
                    needs_slot: rows!(@slot $($slot)?),
                    build: $build,
                    expect: $expect,
                });
            }
        )*
    };
    (@slot) => { false };
    (@slot $s:tt) => { true };
}

/// A valid empty INFORMATIONAL request (a DPD) from `to`'s peer with the Message ID `to`
/// expects next: every field right, so a row that breaks one thing breaks only that.
fn good_request(p: &Pair, to: Side) -> Vec<u8> {
    let id = p.sa(to).expected_request_id;
    p.seal(
        &p.header(to.other(), ExchangeType::Informational, false, id),
        &[],
    )
}

/// [`good_request`] to B once per length in `lens`, its Header Length field set to it.
fn with_header_lengths(p: &Pair, lens: &[u32]) -> Vec<Vec<u8>> {
    let m = good_request(p, Side::B);
    lens.iter()
        .map(|l| {
            let mut m = m.clone();
            m[24..28].copy_from_slice(&l.to_be_bytes());
            framed(&m)
        })
        .collect()
}

/// [`good_request`] with bytes `at` replaced by `with`.
fn patched(p: &Pair, to: Side, at: usize, with: &[u8]) -> Vec<Vec<u8>> {
    let mut m = good_request(p, to);
    m[at..at + with.len()].copy_from_slice(with);
    vec![framed(&m)]
}

/// Offset of the SK payload's Payload Length field in [`good_request`].
const SK_LEN_AT: usize = HEADER_LEN + 2;

/// An INFORMATIONAL request header from `to`'s peer with the Message ID `to` expects.
fn request_header(p: &Pair, to: Side) -> Header {
    p.header(
        to.other(),
        ExchangeType::Informational,
        false,
        p.sa(to).expected_request_id,
    )
}

/// An authenticated request in the slot `id` whose plaintext is `inner` raw bytes.
fn sealed_inner(p: &Pair, slot: Option<u32>, first: u8, inner: &[u8]) -> Vec<Vec<u8>> {
    let h = p.header(Side::A, ExchangeType::Informational, false, slot.unwrap());
    vec![framed(&p.seal_raw(&h, first, inner, |_| {}))]
}

rows! {
    // -- the IKE header (RFC 7296 3.1) --

    /// 0 to 27 bytes after the non-ESP marker: not even a whole IKE header.
    truncated_ike_header: B, |p, _| {
        let m = good_request(p, Side::B);
        (0..HEADER_LEN).map(|n| framed(&m[..n])).collect()
    } => Expect::Dropped(Counter::Malformed);

    /// The same at the initiator.
    truncated_ike_header_at_initiator: A, |p, _| {
        let m = good_request(p, Side::A);
        (0..HEADER_LEN).map(|n| framed(&m[..n])).collect()
    } => Expect::Dropped(Counter::Malformed);

    /// Datagrams on port 4500 too short to hold the non-ESP marker (a 1-byte 0xFF is a NAT
    /// keepalive, which the dataplane takes before IKE ever sees it).
    shorter_than_the_non_esp_marker: B, |_, _| {
        vec![vec![], vec![0], vec![0, 0, 0], vec![0xff]]
    } => Expect::Dropped(Counter::Malformed);

    /// Header Length larger than the datagram (a truncated message), by 1 and by a lot.
    header_length_beyond_the_datagram: B, |p, _| {
        let len = good_request(p, Side::B).len() as u32;
        with_header_lengths(p, &[len + 1, u32::MAX])
    } => Expect::Dropped(Counter::Malformed);

    /// Header Length smaller than the 28-byte header itself.
    header_length_below_the_header: B, |p, _| with_header_lengths(p, &[0, 1, 27])
        => Expect::Dropped(Counter::Malformed);

    /// Header Length shorter than the datagram: trailing bytes that belong to no message.
    header_length_short_of_the_datagram: B, |p, _| {
        let len = good_request(p, Side::B).len() as u32;
        with_header_lengths(p, &[len - 1])
    } => Expect::Dropped(Counter::Malformed);

    /// Major version 3: not IKEv2, dropped and counted, and answered with an unprotected
    /// INVALID_MAJOR_VERSION (RFC 7296 2.5); the SA is left alone.
    major_version_not_2: B, |p, _| patched(p, Side::B, 17, &[0x30])
        => Expect::Unprotected(NotifyType::InvalidMajorVersion);

    // -- the outer payload chain (RFC 7296 3.2), before anything can be authenticated --

    /// SK payload with Payload Length 0, and 1 to 3: shorter than its own generic header.
    zero_length_payload: B, |p, _| {
        (0u16..4)
            .flat_map(|l| patched(p, Side::B, SK_LEN_AT, &l.to_be_bytes()))
            .collect()
    } => Expect::Dropped(Counter::Malformed);

    /// SK Payload Length one byte past the end of the message, and the maximum.
    payload_length_overrunning_the_message: B, |p, _| {
        let l = (good_request(p, Side::B).len() - HEADER_LEN + 1) as u16;
        [l, u16::MAX]
            .iter()
            .flat_map(|l| patched(p, Side::B, SK_LEN_AT, &l.to_be_bytes()))
            .collect()
    } => Expect::Dropped(Counter::Malformed);

    /// SK Payload Length one byte short: a byte after the SK payload, which must be last
    /// (3.14).
    payload_followed_by_stray_bytes: B, |p, _| {
        let l = (good_request(p, Side::B).len() - HEADER_LEN - 1) as u16;
        patched(p, Side::B, SK_LEN_AT, &l.to_be_bytes())
    } => Expect::Dropped(Counter::Malformed);

    /// A cleartext payload whose length reaches beyond its parent (the message): a Nonce
    /// claiming 8 bytes more than are left.
    overlong_payload_beyond_its_parent: B, |p, _| {
        let h = request_header(p, Side::B);
        let mut nonce = raw_payload(0, &[7; 32]);
        nonce[2..4].copy_from_slice(&(36u16 + 8).to_be_bytes());
        vec![framed(&raw_message(&h, NONCE, &nonce))]
    } => Expect::Dropped(Counter::Malformed);

    /// A chain that never ends: the last payload names a Notify after it, and the message
    /// ends there.
    payload_chain_that_never_ends: B, |p, _| {
        let h = request_header(p, Side::B);
        let n = raw_payload(NOTIFY, &notify_body(16384, &[]));
        vec![framed(&raw_message(&h, NOTIFY, &n))]
    } => Expect::Dropped(Counter::Malformed);

    /// Next Payload pointing past the end: a Nonce that fills the message names an SK payload
    /// after it.
    next_payload_pointing_past_the_end: B, |p, _| {
        let h = request_header(p, Side::B);
        let n = raw_payload(SK, &[7; 32]);
        vec![framed(&raw_message(&h, NONCE, &n))]
    } => Expect::Dropped(Counter::Malformed);

    /// As near a loop as a linear chain gets: 65 empty Vendor ID payloads each naming another,
    /// one more than the chain limit (wire::MAX_PAYLOADS).
    payload_chain_that_loops: B, |p, _| {
        let h = request_header(p, Side::B);
        let mut chain = Vec::new();
        for i in 0..65 {
            chain.extend(raw_payload(if i == 64 { 0 } else { VENDOR_ID }, &[]));
        }
        vec![framed(&raw_message(&h, VENDOR_ID, &chain))]
    } => Expect::Dropped(Counter::Malformed);

    /// Inconsistent Next Payload values: an SK payload followed by a second SK payload (the
    /// first names the second as its "first inner payload").
    repeated_sk_payloads: B, |p, _| {
        let m = good_request(p, Side::B);
        let sk = &m[HEADER_LEN..];
        let mut first = sk.to_vec();
        first[0] = SK;
        let chain = [&first[..], sk].concat();
        vec![framed(&raw_message(&request_header(p, Side::B), SK, &chain))]
    } => Expect::Dropped(Counter::Malformed);

    /// An SK payload too short to hold IV, ICV and the Pad Length byte: refused before any
    /// cryptography.
    sk_payload_too_short_for_iv_and_icv: B, |p, _| {
        let h = request_header(p, Side::B);
        (0..25)
            .map(|n| framed(&raw_message(&h, SK, &raw_payload(0, &vec![0; n]))))
            .collect()
    } => Expect::Dropped(Counter::Malformed);

    /// A cleartext INFORMATIONAL with a Delete of the IKE SA and no SK payload: after
    /// IKE_SA_INIT every message is protected (3.14), so this must not delete anything.
    cleartext_delete_is_ignored: B, |p, _| {
        let h = request_header(p, Side::B);
        let d = Payload::Delete(DeletePayload {
            protocol: ProtocolId::Ike,
            spi_size: 0,
            spis: vec![],
        });
        vec![framed(&encode_message(&h, &[d]))]
    } => Expect::Dropped(Counter::Malformed);

    /// SKF fragments numbered 0, or above their total (RFC 7383 2.5): refused on parsing.
    skf_fragment_numbering_invalid: B, |p, _| {
        let h = request_header(p, Side::B);
        [(0u16, 2u16), (3, 2), (1, 0)]
            .iter()
            .map(|(n, t)| framed(&p.seal_skf(&h, 0, *n, *t, &[1; 8])))
            .collect()
    } => Expect::Dropped(Counter::Malformed);

    /// An SKF fragment claiming more fragments than a message may have here (64): refused
    /// before its ICV is checked, so nothing is kept for reassembly.
    skf_too_many_fragments: B, |p, _| {
        let h = request_header(p, Side::B);
        vec![framed(&p.seal_skf(&h, NOTIFY, 1, 65, &[1; 8]))]
    } => Expect::Dropped(Counter::Malformed);

    // -- the ICV --

    /// The last ICV byte flipped.
    corrupted_icv: B, |p, _| {
        let mut m = good_request(p, Side::B);
        *m.last_mut().unwrap() ^= 1;
        vec![framed(&m)]
    } => Expect::Dropped(Counter::IntegrityFailed);

    /// The same at the initiator.
    corrupted_icv_at_initiator: A, |p, _| {
        let mut m = good_request(p, Side::A);
        *m.last_mut().unwrap() ^= 0x80;
        vec![framed(&m)]
    } => Expect::Dropped(Counter::IntegrityFailed);

    /// A ciphertext byte flipped, and the IV changed: the ICV no longer matches.
    corrupted_ciphertext_or_iv: B, |p, _| {
        let m = good_request(p, Side::B);
        let mut c = m.clone();
        c[HEADER_LEN + 4 + 8] ^= 1;
        let mut i = m.clone();
        i[HEADER_LEN + 4] ^= 1;
        vec![framed(&c), framed(&i)]
    } => Expect::Dropped(Counter::IntegrityFailed);

    /// The associated data altered: the SK payload's Next Payload and the header's exchange
    /// type are both covered by the ICV (RFC 5282 5.1).
    corrupted_associated_data: B, |p, _| {
        let m = good_request(p, Side::B);
        let mut np = m.clone();
        np[HEADER_LEN] = NOTIFY;
        let mut ex = m.clone();
        ex[18] = ExchangeType::CreateChildSa.number();
        vec![framed(&np), framed(&ex)]
    } => Expect::Dropped(Counter::IntegrityFailed);

    /// An SKF fragment with a flipped ICV bit: dropped, and not kept for reassembly.
    corrupted_icv_on_a_fragment: B, |p, _| {
        let h = request_header(p, Side::B);
        let mut m = p.seal_skf(&h, NOTIFY, 1, 2, &raw_payload(0, &notify_body(16384, &[])));
        *m.last_mut().unwrap() ^= 4;
        vec![framed(&m)]
    } => Expect::Dropped(Counter::IntegrityFailed);

    /// Sealed with the other direction's key (a reflected message): fails the ICV.
    sealed_with_the_wrong_direction_key: B, |p, _| {
        // Claims to come from A, sealed with SK_er (B's own sending key).
        let h = request_header(p, Side::B);
        vec![framed(&p.seal_with(Side::B, &h, 0, &[], |_| {}))]
    } => Expect::Dropped(Counter::IntegrityFailed);

    // -- the IKE SPIs (RFC 7296 2.21.4: an unknown SPI MAY get INVALID_IKE_SPI; this engine
    //    sends nothing, and creates nothing) --

    /// An unknown responder SPI.
    unknown_responder_spi: B, |p, _| {
        let mut h = request_header(p, Side::B);
        h.spi_r ^= 0x0101_0101_0101_0101;
        vec![framed(&p.seal(&h, &[]))]
    } => Expect::Dropped(Counter::UnknownSpi);

    /// Our responder SPI with someone else's initiator SPI.
    wrong_initiator_spi: B, |p, _| {
        let mut h = request_header(p, Side::B);
        h.spi_i ^= 1;
        vec![framed(&p.seal(&h, &[]))]
    } => Expect::Dropped(Counter::UnknownSpi);

    /// A zero responder SPI on a request that is not IKE_SA_INIT.
    zero_responder_spi: B, |p, _| {
        let mut h = request_header(p, Side::B);
        h.spi_r = 0;
        vec![framed(&p.seal(&h, &[]))]
    } => Expect::Dropped(Counter::UnknownSpi);

    /// The Initiator flag flipped: the message names the initiator's SPI as the receiver's.
    initiator_flag_flipped: B, |p, _| {
        let mut h = request_header(p, Side::B);
        h.flags.initiator = false;
        vec![framed(&p.seal(&h, &[]))]
    } => Expect::Dropped(Counter::UnknownSpi);

    /// An unknown initiator SPI at the initiator.
    unknown_spi_at_initiator: A, |p, _| {
        let mut h = request_header(p, Side::A);
        h.spi_i = !h.spi_i;
        vec![framed(&p.seal(&h, &[]))]
    } => Expect::Dropped(Counter::UnknownSpi);

    // -- Message IDs (RFC 7296 2.2, 2.3) --

    /// A request far ahead of the window, with a valid ICV: dropped before decryption, and
    /// INVALID_MESSAGE_ID is not sent (optional, 3.10.1).
    message_id_far_ahead: B, |p, _| {
        let next = p.sa(Side::B).expected_request_id;
        [next + 1, next + 1000, u32::MAX]
            .iter()
            .map(|id| {
                let h = p.header(Side::A, ExchangeType::Informational, false, *id);
                framed(&p.seal(&h, &[]))
            })
            .collect()
    } => Expect::Dropped(Counter::WrongMessageId);

    /// An old request that is not the last one answered (IKE_SA_INIT's Message ID 0): no
    /// cached response for it, and never processed again.
    message_id_old_and_not_cached: B, |p, _| {
        let h = p.header(Side::A, ExchangeType::Informational, false, 0);
        vec![framed(&p.seal(&h, &[]))]
    } => Expect::Dropped(Counter::WrongMessageId);

    /// A response (valid ICV) to a request the receiver never sent: its next Message ID,
    /// and one far ahead. RFC 7296 2.21.4: never answer a response.
    response_to_a_request_never_sent: B, |p, _| {
        let next = p.sa(Side::B).next_request_id;
        [next, next + 7]
            .iter()
            .map(|id| {
                let h = p.header(Side::A, ExchangeType::Informational, true, *id);
                framed(&p.seal(&h, &[]))
            })
            .collect()
    } => Expect::Dropped(Counter::WrongMessageId);

    /// The same at the initiator, including the Message ID of its last, answered, request.
    response_to_a_request_never_sent_at_initiator: A, |p, _| {
        let next = p.sa(Side::A).next_request_id;
        [next, next - 1, u32::MAX]
            .iter()
            .map(|id| {
                let h = p.header(Side::B, ExchangeType::Informational, true, *id);
                framed(&p.seal(&h, &[]))
            })
            .collect()
    } => Expect::Dropped(Counter::WrongMessageId);

    // -- unknown payloads inside SK (RFC 7296 2.5) --

    /// An unknown payload with the critical bit: the whole request is refused with
    /// UNSUPPORTED_CRITICAL_PAYLOAD naming its type; the IKE SA stays.
    unknown_critical_payload_in_sk: B slot 1, |p, slot| {
        let h = p.header(Side::A, ExchangeType::Informational, false, slot.unwrap());
        let u = Payload::Unknown { kind: 200, critical: true, data: vec![1, 2, 3] };
        vec![framed(&p.seal(&h, &[u]))]
    } => Expect::Answered(vec![Payload::Notify(NotifyPayload {
        protocol: 0,
        spi: vec![],
        kind: NotifyType::UnsupportedCriticalPayload,
        data: vec![200],
    })]);

    /// Without the critical bit it is skipped: the request is an ordinary DPD and gets the
    /// ordinary, empty, answer.
    unknown_noncritical_payload_in_sk_is_ignored: B slot 1, |p, slot| {
        let h = p.header(Side::A, ExchangeType::Informational, false, slot.unwrap());
        let u = Payload::Unknown { kind: 200, critical: false, data: vec![1, 2, 3] };
        vec![framed(&p.seal(&h, &[u]))]
    } => Expect::Answered(vec![]);

    /// The same towards the initiator, in a request from the responder.
    unknown_critical_payload_at_initiator: A slot 1, |p, slot| {
        let h = p.header(Side::B, ExchangeType::Informational, false, slot.unwrap());
        let u = Payload::Unknown { kind: 250, critical: true, data: vec![] };
        vec![framed(&p.seal(&h, &[u]))]
    } => Expect::Answered(vec![Payload::Notify(NotifyPayload {
        protocol: 0,
        spi: vec![],
        kind: NotifyType::UnsupportedCriticalPayload,
        data: vec![250],
    })]);

    // -- authenticated, badly formatted (RFC 7296 2.21.3: INVALID_SYNTAX, fatal in both) --

    /// The inner chain cut off in the middle of its last payload.
    inner_chain_truncated: B slot 1, |p, slot| {
        let n = raw_payload(0, &notify_body(16384, &[9; 8]));
        sealed_inner(p, slot, NOTIFY, &n[..n.len() - 3])
    } => Expect::Fatal;

    /// An inner payload of length 0.
    inner_zero_length_payload: B slot 1, |p, slot| {
        sealed_inner(p, slot, NOTIFY, &[0, 0, 0, 0])
    } => Expect::Fatal;

    /// An inner payload whose length runs past the SK payload that holds it.
    inner_payload_overrunning_its_parent: B slot 1, |p, slot| {
        let mut n = raw_payload(0, &notify_body(16384, &[]));
        n[2..4].copy_from_slice(&16u16.to_be_bytes());
        sealed_inner(p, slot, NOTIFY, &n)
    } => Expect::Fatal;

    /// A substructure beyond its payload: a Delete that counts three ESP SPIs and holds one.
    inner_substructure_overrunning_its_payload: B slot 1, |p, slot| {
        let body = [3, 4, 0, 3, 1, 2, 3, 4];
        sealed_inner(p, slot, DELETE, &raw_payload(0, &body))
    } => Expect::Fatal;

    /// An inner chain that never ends: its last payload names another.
    inner_chain_that_never_ends: B slot 1, |p, slot| {
        let n = raw_payload(NOTIFY, &notify_body(16384, &[]));
        sealed_inner(p, slot, NOTIFY, &n)
    } => Expect::Fatal;

    /// An inner chain past the payload limit.
    inner_chain_that_loops: B slot 1, |p, slot| {
        let mut chain = Vec::new();
        for i in 0..65 {
            chain.extend(raw_payload(if i == 64 { 0 } else { VENDOR_ID }, &[]));
        }
        sealed_inner(p, slot, VENDOR_ID, &chain)
    } => Expect::Fatal;

    /// An SK payload inside the SK payload (3.14: MUST NOT).
    inner_nested_sk_payload: B slot 1, |p, slot| {
        sealed_inner(p, slot, SK, &raw_payload(0, &[0; 30]))
    } => Expect::Fatal;

    /// A Pad Length larger than the plaintext before it.
    inner_pad_length_beyond_the_plaintext: B slot 1, |p, slot| {
        let h = p.header(Side::A, ExchangeType::Informational, false, slot.unwrap());
        let n = raw_payload(0, &notify_body(16384, &[]));
        vec![framed(&p.seal_raw(&h, NOTIFY, &n, |pt| *pt.last_mut().unwrap() = 200))]
    } => Expect::Fatal;

    /// The same in fragments (RFC 7383): each of the two fragments authenticates, the
    /// reassembled chain does not parse.
    inner_chain_truncated_in_fragments: B slot 1, |p, slot| {
        let h = p.header(Side::A, ExchangeType::Informational, false, slot.unwrap());
        let n = raw_payload(0, &notify_body(16384, &[9; 16]));
        let cut = &n[..n.len() - 3];
        vec![
            framed(&p.seal_skf(&h, NOTIFY, 1, 2, &cut[..10])),
            framed(&p.seal_skf(&h, 0, 2, 2, &cut[10..])),
        ]
    } => Expect::Fatal;

    /// The initiator gets the same treatment from its side.
    inner_chain_truncated_at_initiator: A slot 1, |p, slot| {
        let h = p.header(Side::B, ExchangeType::Informational, false, slot.unwrap());
        let n = raw_payload(0, &notify_body(16384, &[9; 8]));
        vec![framed(&p.seal_raw(&h, NOTIFY, &n[..n.len() - 1], |_| {}))]
    } => Expect::Fatal;
}

// ---- rows that need more than one datagram in a given order ------------------------------

/// RFC 7296 2.1: a retransmitted request gets the cached response, byte for byte, and is not
/// processed again (a second CHILD_SA rekey would make a second CHILD_SA).
#[test]
fn retransmitted_request_gets_the_cached_response_and_is_not_processed_again() {
    let mut p = Pair::new();
    let s = p.sa(Side::A);
    p.net
        .a
        .rekey_child(p.net.now, s.id, s.children[0].spi_in)
        .unwrap();
    let req = p.net.a.poll_transmit().expect("CREATE_CHILD_SA request");
    let (first, events) = p.deliver(Side::B, &req.payload);
    assert_eq!(first.len(), 1);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::ChildSaRekeyed { .. }))
            .count(),
        1,
        "{events:?}"
    );
    let before = snapshot(&p.net.b);
    let answered = p.net.b.stats().retransmits_answered;
    for _ in 0..3 {
        let (again, events) = p.deliver(Side::B, &req.payload);
        assert_eq!(again, first, "the cached response, unchanged");
        assert!(events.is_empty(), "processed again: {events:?}");
        assert_eq!(snapshot(&p.net.b), before);
    }
    assert_eq!(p.net.b.stats().retransmits_answered, answered + 3);
    // A gets the answer; the exchange (and the DELETE of the old CHILD_SA) completes.
    let t = &first[0];
    p.net.a.handle(p.net.now, t.remote, t.local, &t.payload);
    p.net.pump();
    assert_eq!(p.sa(Side::B).children.len(), 1);
    still_works(&mut p);
}

/// A response with a bad ICV to the request in flight is dropped and counted; the request
/// stays pending and the genuine response then completes it (RFC 7296 2.21).
#[test]
fn corrupted_icv_on_a_response_leaves_the_request_pending() {
    let mut p = Pair::new();
    let (now, id) = (p.net.now, p.sa(Side::A).id);
    assert!(p.net.a.probe(now, id, Duration::from_secs(30)).unwrap());
    let req = p.net.a.poll_transmit().unwrap();
    let (resp, _) = p.deliver(Side::B, &req.payload);
    let mut bad = resp[0].payload.clone();
    *bad.last_mut().unwrap() ^= 1;
    let before = (snapshot(&p.net.a), p.net.a.stats());
    let (sent, events) = p.deliver(Side::A, &bad);
    assert!(sent.is_empty() && events.is_empty());
    let mut stats = before.1;
    stats.received += 1;
    stats.integrity_failed += 1;
    assert_eq!((snapshot(&p.net.a), p.net.a.stats()), (before.0, stats));
    assert!(p.net.a.liveness(id).unwrap().probing, "still waiting");
    let (sent, _) = p.deliver(Side::A, &resp[0].payload);
    assert!(sent.is_empty());
    assert!(!p.net.a.liveness(id).unwrap().probing, "answered");
    still_works(&mut p);
}

/// A response that passes the ICV but does not parse is dropped and counted, never answered
/// (RFC 7296 2.21.4: no answer to a response; 2.21.3 asks for an error notify only in answer
/// to a request). The request stays pending, and its retransmission gets the genuine answer.
#[test]
fn malformed_authenticated_response_leaves_the_request_pending() {
    let mut p = Pair::new();
    let id = p.take_request_slot(Side::A);
    let h = p.header(Side::B, ExchangeType::Informational, true, id);
    let n = raw_payload(0, &notify_body(16384, &[]));
    let forged = framed(&p.seal_raw(&h, NOTIFY, &n[..n.len() - 1], |_| {}));
    let before = (snapshot(&p.net.a), p.net.a.stats());
    let (sent, events) = p.deliver(Side::A, &forged);
    assert!(sent.is_empty() && events.is_empty(), "{sent:?} {events:?}");
    let mut stats = before.1;
    stats.received += 1;
    stats.malformed += 1;
    assert_eq!((snapshot(&p.net.a), p.net.a.stats()), (before.0, stats));
    // The intercepted request is retransmitted and answered.
    p.net.run_for(Duration::from_secs(3));
    let ia = p.sa(Side::A).id;
    assert!(!p.net.a.liveness(ia).unwrap().probing);
    still_works(&mut p);
}

/// RFC 7296 2.21.2: in IKE_AUTH too, a request that is "malformed (rather than just bad
/// payload contents) MUST be rejected in their entirety, and MUST only lead to an ...
/// INVALID_SYNTAX Notification". The half-open responder answers that and nothing else (no
/// AUTH), and both sides drop the IKE SA.
#[test]
fn malformed_ike_auth_request_gets_invalid_syntax_and_ends_both_sides() {
    let (a, b) = pair_configs(IKE, ESP);
    let mut net = Net::new(a, b);
    let now = net.now;
    let ia = net
        .a
        .initiate(now, "to-b", addr(A, 500), addr(B, 500))
        .unwrap();
    let init = net.a.poll_transmit().unwrap();
    net.b.handle(now, init.remote, init.local, &init.payload);
    let resp = net.b.poll_transmit().unwrap();
    net.a.handle(now, resp.remote, resp.local, &resp.payload);
    let auth = net.a.poll_transmit().expect("IKE_AUTH request");
    assert!(net.a.poll_transmit().is_none());
    // Forge A's IKE_AUTH with A's own keys, in place of the real one.
    let keys = net.a.export_ike_keys(ia).unwrap();
    let mut p = Pair { net, keys };
    let h = p.header(Side::A, ExchangeType::IkeAuth, false, 1);
    let n = raw_payload(0, &notify_body(16384, &[1; 4]));
    let forged = framed(&p.seal_raw(&h, NOTIFY, &n[..n.len() - 2], |_| {}));
    let (sent, _) = p.deliver(Side::B, &forged);
    let [t] = &sent[..] else { panic!("{sent:?}") };
    let (h, payloads) = p.open(Side::B, &t.payload);
    assert!(h.flags.response && h.message_id == 1);
    assert_eq!(
        payloads,
        [Payload::Notify(NotifyPayload {
            protocol: 0,
            spi: vec![],
            kind: NotifyType::InvalidSyntax,
            data: vec![],
        })]
    );
    assert!(p.net.b.ike_sas().is_empty(), "half-open SA deleted");
    // The real IKE_AUTH request, delivered late, finds nothing.
    let (sent, _) = p.deliver(Side::B, &auth.payload);
    assert!(sent.is_empty());
    // A reads the answer to its IKE_AUTH: refused, SA gone.
    let (sent, events) = p.deliver(Side::A, &t.payload);
    assert!(sent.is_empty());
    assert!(p.net.a.ike_sas().is_empty(), "{events:?}");
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Failure {
            notify: NotifyType::InvalidSyntax,
            ..
        }
    )));
}

// ---- the table: a responder with no SA ---------------------------------------------------

/// What a lone responder (no SA at all) does with one datagram on port 500.
struct Lone {
    build: fn() -> Vec<Vec<u8>>,
    expect: LoneExpect,
}

enum LoneExpect {
    /// Dropped unanswered, counted, no SA created.
    Dropped(Counter),
    /// Answered statelessly (an unprotected IKE_SA_INIT response) with this notify first, no
    /// SA created.
    Refused(NotifyType),
    /// Answered with an IKE_SA_INIT response and a half-open SA, as a clean request would be.
    Accepted,
}

fn lone_responder() -> Endpoint {
    let (_, b) = pair_configs(IKE, ESP);
    Endpoint::new(
        EndpointConfig::default(),
        vec![b],
        Box::new(TestRng::new(9)),
    )
}

fn run_lone(row: Lone) {
    let mut ep = lone_responder();
    let now = Instant::now();
    for d in (row.build)() {
        let mut stats = ep.stats();
        ep.handle(now, addr(B, 500), addr(A, 500), &d);
        let mut sent = Vec::new();
        while let Some(t) = ep.poll_transmit() {
            sent.push(t);
        }
        while ep.poll_event().is_some() {}
        stats.received += 1;
        match row.expect {
            LoneExpect::Dropped(c) => {
                c.bump(&mut stats);
                assert!(sent.is_empty(), "answered {d:02x?}: {sent:?}");
                assert_eq!(ep.stats(), stats, "{d:02x?}");
                assert!(ep.ike_sas().is_empty());
            }
            LoneExpect::Refused(kind) => {
                let [t] = &sent[..] else { panic!("{sent:?}") };
                let m = Message::parse(&t.payload).unwrap();
                assert!(m.header.flags.response && m.header.spi_r == 0);
                let Some(Payload::Notify(n)) = m.payloads.first() else {
                    panic!("{m:?}")
                };
                assert_eq!(n.kind, kind);
                assert_eq!(ep.stats(), stats);
                assert!(ep.ike_sas().is_empty());
            }
            LoneExpect::Accepted => {
                let [t] = &sent[..] else { panic!("{sent:?}") };
                let m = Message::parse(&t.payload).unwrap();
                assert!(m.header.flags.response && m.header.spi_r != 0);
                assert_eq!(ep.ike_sas().len(), 1);
            }
        }
    }
}

macro_rules! lone_rows {
    ($($(#[doc = $doc:literal])* $name:ident: $build:expr => $expect:expr;)*) => {
        $(
            $(#[doc = $doc])*
            #[test]
            fn $name() {
                run_lone(Lone { build: $build, expect: $expect });
            }
        )*
    };
}

/// A genuine IKE_SA_INIT request from A (as the initiator really sends it).
fn init_request() -> Vec<u8> {
    let (a, _) = pair_configs(IKE, ESP);
    let mut ep = Endpoint::new(
        EndpointConfig::default(),
        vec![a],
        Box::new(TestRng::new(3)),
    );
    ep.initiate(Instant::now(), "to-b", addr(A, 500), addr(B, 500))
        .unwrap();
    ep.poll_transmit().unwrap().payload
}

fn lone_header(exchange: ExchangeType, spi_r: u64, response: bool, id: u32) -> Header {
    Header {
        spi_i: 0x1122_3344_5566_7788,
        spi_r,
        next_payload: 0,
        major: 2,
        minor: 0,
        exchange,
        flags: Flags {
            initiator: !response,
            version: false,
            response,
        },
        message_id: id,
        length: 0,
    }
}

/// `init_request()` with the first payload's generic header replaced.
fn init_with_first_payload_length(len: u16) -> Vec<u8> {
    let mut m = init_request();
    m[HEADER_LEN + 2..HEADER_LEN + 4].copy_from_slice(&len.to_be_bytes());
    m
}

lone_rows! {
    /// 0 to 27 bytes: no whole IKE header.
    lone_truncated_ike_header: || {
        let m = init_request();
        (0..HEADER_LEN).map(|n| m[..n].to_vec()).collect()
    } => LoneExpect::Dropped(Counter::Malformed);

    /// Header Length larger or smaller than the datagram, or below the header.
    lone_header_length_mismatch: || {
        let m = init_request();
        [m.len() as u32 + 1, m.len() as u32 - 1, 0, 27]
            .iter()
            .map(|l| {
                let mut m = m.clone();
                m[24..28].copy_from_slice(&l.to_be_bytes());
                m
            })
            .collect()
    } => LoneExpect::Dropped(Counter::Malformed);

    /// IKE_SA_INIT whose first payload has length 0 or runs past the message.
    lone_init_with_bad_payload_length: || {
        let len = init_request().len() as u16;
        [0u16, 3, len, u16::MAX]
            .iter()
            .map(|l| init_with_first_payload_length(*l))
            .collect()
    } => LoneExpect::Dropped(Counter::Malformed);

    /// IKE_SA_INIT whose chain never ends (the last payload names another).
    lone_init_chain_that_never_ends: || {
        let h = lone_header(ExchangeType::IkeSaInit, 0, false, 0);
        vec![raw_message(&h, NONCE, &raw_payload(NOTIFY, &[5; 32]))]
    } => LoneExpect::Dropped(Counter::Malformed);

    /// A DPD-like INFORMATIONAL for an IKE SA that does not exist: RFC 7296 2.21.4 allows an
    /// unprotected INVALID_IKE_SPI answer (MAY); this engine drops and counts.
    lone_request_for_unknown_sa: || {
        let h = lone_header(ExchangeType::Informational, 0x99, false, 5);
        vec![encode_message(&h, &[]), raw_message(&h, SK, &raw_payload(0, &[0; 40]))]
    } => LoneExpect::Dropped(Counter::UnknownSpi);

    /// IKE_SA_INIT request with a nonzero responder SPI: not the start of an IKE SA.
    lone_init_request_with_responder_spi: || {
        let mut m = init_request();
        m[8..16].copy_from_slice(&7u64.to_be_bytes());
        vec![m]
    } => LoneExpect::Dropped(Counter::UnknownSpi);

    /// Responses (IKE_SA_INIT and INFORMATIONAL) to requests never sent: MUST NOT be
    /// answered (2.21.4).
    lone_responses_to_nothing: || {
        vec![
            encode_message(&lone_header(ExchangeType::IkeSaInit, 0x55, true, 0), &[]),
            encode_message(&lone_header(ExchangeType::Informational, 0x55, true, 3), &[]),
        ]
    } => LoneExpect::Dropped(Counter::UnknownSpi);

    /// IKE_SA_INIT with an unknown critical payload: UNSUPPORTED_CRITICAL_PAYLOAD (2.5), no
    /// state.
    lone_init_with_unknown_critical_payload: || {
        let m = init_request();
        let msg = Message::parse(&m).unwrap();
        let mut payloads = msg.payloads.clone();
        payloads.push(Payload::Unknown { kind: 222, critical: true, data: vec![0; 4] });
        vec![encode_message(&msg.header, &payloads)]
    } => LoneExpect::Refused(NotifyType::UnsupportedCriticalPayload);

    /// IKE_SA_INIT with an unknown payload without the critical bit: skipped, and the request
    /// is accepted as if it were not there.
    lone_init_with_unknown_noncritical_payload: || {
        let m = init_request();
        let msg = Message::parse(&m).unwrap();
        let mut payloads = msg.payloads.clone();
        payloads.insert(1, Payload::Unknown { kind: 222, critical: false, data: vec![0; 4] });
        vec![encode_message(&msg.header, &payloads)]
    } => LoneExpect::Accepted;

    /// IKE_SA_INIT without the KE payload: INVALID_SYNTAX, unprotected, no state.
    lone_init_missing_ke: || {
        let m = init_request();
        let msg = Message::parse(&m).unwrap();
        let payloads: Vec<Payload> = msg
            .payloads
            .into_iter()
            .filter(|p| !matches!(p, Payload::Ke(_)))
            .collect();
        vec![encode_message(&msg.header, &payloads)]
    } => LoneExpect::Refused(NotifyType::InvalidSyntax);
}
