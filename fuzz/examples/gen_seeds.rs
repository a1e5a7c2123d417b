//! Writes the seed corpora under `fuzz/corpus/`: `cargo run --example gen_seeds` from
//! `fuzz/` (a plain build; no sanitizer or nightly flags needed).
//!
//! `ike_responder` seeds are real conversations: an initiator `Endpoint` talks to the fuzz
//! target's own responder (`ironsec_fuzz::Responder`, same config and RNG seed), and every
//! datagram the initiator sends is recorded as a frame. Because the responder is driven by the
//! very same code in the fuzz target, replaying a seed reproduces the conversation exactly:
//! the recorded IKE_AUTH, CREATE_CHILD_SA and INFORMATIONAL requests decrypt, so the fuzzer
//! starts past IKE_SA_INIT. `ike_message` seeds are the individual messages of those
//! conversations (both directions), `esp_open` seeds are packet sequences in that target's
//! format, `config` seeds are the example configs of `conf/` pointing at the fixture files.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ironsec_fuzz::{
    advance, encode_frame, peer, step_for, Responder, CTL_OTHER_ADDR, CTL_PORT_4500, INITIATOR_IP,
    PSK, RESPONDER_IP,
};
use ironsec_ike::crypto::TestRng;
use ironsec_ike::wire::NON_ESP_MARKER;
use ironsec_ike::{Endpoint, EndpointConfig, Event, PeerConfig};

fn a_addr(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(INITIATOR_IP), port)
}
fn b_addr(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(RESPONDER_IP), port)
}

/// The initiator's side of connection "to-a" of the responder.
fn initiator_peer(ike: &str, esp: &str) -> PeerConfig {
    peer(
        "to-b",
        "gw-a.example",
        "gw-b.example",
        "10.1.0.0/24",
        "10.2.0.0/24",
        ike,
        esp,
        PSK,
    )
}

/// A recorded conversation between initiators and the fuzz target's responder.
struct Rec {
    inits: Vec<Endpoint>,
    b: Responder,
    now: Instant,
    frames: Vec<u8>,
    /// Every message seen (either direction), without the non-ESP marker.
    messages: Vec<Vec<u8>>,
    events: Vec<Event>,
    /// Deliver each initiator datagram this many times.
    copies: usize,
    /// Mark the initiator's datagrams as coming from the other address.
    other_addr: bool,
}

impl Rec {
    fn new(inits: Vec<Endpoint>) -> Rec {
        Rec {
            inits,
            b: Responder::new(),
            now: Instant::now(),
            frames: Vec::new(),
            messages: Vec::new(),
            events: Vec::new(),
            copies: 1,
            other_addr: false,
        }
    }

    fn single(peer: PeerConfig, cfg: EndpointConfig, seed: u64) -> Rec {
        Rec::new(vec![Endpoint::new(
            cfg,
            vec![peer],
            Box::new(TestRng::new(seed)),
        )])
    }

    fn note(&mut self, payload: &[u8], port: u16) {
        let m = if port == 4500 {
            payload.strip_prefix(&NON_ESP_MARKER[..]).unwrap_or(payload)
        } else {
            payload
        };
        if !m.is_empty() {
            self.messages.push(m.to_vec());
        }
    }

    /// Hands what the responder sent to every initiator (the one that owns the SPI takes it).
    fn to_initiators(&mut self, out: Vec<ironsec_ike::Transmit>) {
        for t in out {
            self.note(&t.payload, t.local.port());
            for a in &mut self.inits {
                a.handle(self.now, a_addr(t.remote.port()), t.local, &t.payload);
            }
        }
    }

    /// Records a frame and runs it through the responder.
    fn frame(&mut self, ctl: u8, payload: &[u8]) {
        self.frames.extend(encode_frame(ctl, payload));
        let out = self.b.step(ctl, payload);
        self.to_initiators(out);
    }

    /// Moves datagrams until all sides are quiet.
    fn pump(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            for i in 0..self.inits.len() {
                while let Some(t) = self.inits[i].poll_transmit() {
                    moved = true;
                    assert_eq!(t.remote.ip(), IpAddr::V4(RESPONDER_IP));
                    self.note(&t.payload, t.remote.port());
                    let mut ctl = if t.remote.port() == 4500 {
                        CTL_PORT_4500
                    } else {
                        0
                    };
                    if self.other_addr {
                        ctl |= CTL_OTHER_ADDR;
                    }
                    for _ in 0..self.copies {
                        self.frame(ctl, &t.payload);
                    }
                }
                while let Some(e) = self.inits[i].poll_event() {
                    self.events.push(e);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("datagrams never stopped flowing");
    }

    /// Advances both clocks by at least `d` (a step the framing can express).
    fn wait(&mut self, d: Duration) {
        let t = step_for(d);
        let ctl = t << 2;
        self.now += advance(ctl);
        self.frame(ctl, &[]);
        for a in &mut self.inits {
            a.handle_timeout(self.now);
        }
        self.pump();
    }

    fn initiate(&mut self, i: usize) -> u64 {
        let id = self.inits[i]
            .initiate(self.now, "to-b", a_addr(500), b_addr(500))
            .expect("initiate");
        self.pump();
        id
    }

    fn up(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::ChildSaUp { .. } | Event::ChildSaRekeyed { .. }))
            .count()
    }

    /// The responder's own view must agree: replay the frames from scratch and compare.
    fn verify_replay(&self) {
        let mut r = Responder::new();
        for (ctl, d) in ironsec_fuzz::frames(&self.frames) {
            r.step(ctl, d);
        }
        let ups = |ev: &[Event]| {
            ev.iter()
                .filter(|e| matches!(e, Event::IkeSaUp { .. } | Event::ChildSaUp { .. }))
                .count()
        };
        assert_eq!(
            ups(&r.events),
            ups(&self.b.events),
            "a replay of the seed does not reproduce the conversation"
        );
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn responder_seeds(root: &Path) -> Vec<Vec<u8>> {
    let dir = root.join("ike_responder");
    let default_ike = "aes256gcm16-prfsha256-x25519";
    let default_esp = "aes256gcm16-x25519";
    let mut messages = Vec::new();
    let mut save = |name: &str, rec: &Rec, want_children: usize| {
        assert!(
            rec.up() >= want_children,
            "{name}: {} CHILD_SAs up, wanted {want_children}: {:?}",
            rec.up(),
            rec.events
        );
        rec.verify_replay();
        assert!(rec.frames.len() < 65536);
        write(&dir, &format!("seed-{name}"), &rec.frames);
        let count = |f: fn(&Event) -> bool| rec.b.events.iter().filter(|e| f(e)).count();
        eprintln!(
            "ike_responder/seed-{name}: {} bytes, {} frames; responder: {} IKE SA up, {} CHILD_SA up/rekeyed, {} failures; {:?}",
            rec.frames.len(),
            ironsec_fuzz::frames(&rec.frames).count(),
            count(|e| matches!(e, Event::IkeSaUp { .. } | Event::IkeSaRekeyed { .. })),
            count(|e| matches!(e, Event::ChildSaUp { .. } | Event::ChildSaRekeyed { .. })),
            count(|e| matches!(e, Event::Failure { .. })),
            rec.b.ep.stats(),
        );
        messages.extend(rec.messages.iter().cloned());
    };

    // 1. The plain handshake: IKE_SA_INIT on 500, IKE_AUTH on 4500.
    let mut r = Rec::single(
        initiator_peer(default_ike, default_esp),
        EndpointConfig::default(),
        101,
    );
    r.initiate(0);
    save("handshake", &r, 1);

    // 2. Lifecycle: DPD, CHILD_SA rekey (with PFS), IKE SA rekey, delete.
    let mut r = Rec::single(
        initiator_peer(default_ike, default_esp),
        EndpointConfig::default(),
        102,
    );
    let ike = r.initiate(0);
    r.wait(Duration::from_secs(40));
    let spi_in = r.inits[0].ike_sas()[0].children[0].spi_in;
    r.inits[0].rekey_child(r.now, ike, spi_in).unwrap();
    r.pump();
    r.inits[0].rekey_ike(r.now, ike).unwrap();
    r.pump();
    let ike = r.inits[0].ike_sas()[0].id;
    r.wait(Duration::from_secs(5));
    r.inits[0].terminate(r.now, ike).unwrap();
    r.pump();
    save("lifecycle", &r, 2);

    // 3. Lifetimes: let the clock run through CHILD_SA and IKE SA rekeys.
    let mut r = Rec::single(
        initiator_peer(default_ike, default_esp),
        EndpointConfig::default(),
        103,
    );
    r.initiate(0);
    for _ in 0..20 {
        r.wait(Duration::from_secs(1000));
    }
    if std::env::var_os("GEN_VERBOSE").is_some() {
        eprintln!(
            "lifetimes: initiator {:#?}\nresponder {:#?}",
            r.events, r.b.events
        );
    }
    save("lifetimes", &r, 1);

    // 4. The second connection: another identity, ChaCha20-Poly1305 and ECP-384.
    let mut c = peer(
        "to-b",
        "gw-c@example.org",
        "gw-b.example",
        "10.3.0.0/24",
        "10.2.0.0/24",
        "chacha20poly1305-prfsha384-ecp384",
        "chacha20poly1305",
        PSK,
    );
    c.dpd_interval = None;
    let mut r = Rec::single(c, EndpointConfig::default(), 104);
    r.initiate(0);
    save("to-c-chacha-ecp384", &r, 1);

    // 5. INVALID_KE_PAYLOAD: the initiator guesses ECP-256, the responder wants X25519 first.
    let mut r = Rec::single(
        initiator_peer("aes128gcm16-prfsha256-ecp256-x25519", "aes128gcm16-esn"),
        EndpointConfig::default(),
        105,
    );
    r.initiate(0);
    save("ke-retry-esn", &r, 0);

    // 6. IKE fragmentation (RFC 7383): the initiator sends IKE_AUTH in small fragments.
    let mut r = Rec::single(
        initiator_peer(default_ike, default_esp),
        EndpointConfig {
            fragment_size: 200,
            ..Default::default()
        },
        106,
    );
    r.initiate(0);
    save("fragments", &r, 0);

    // 7. Wrong PSK: AUTHENTICATION_FAILED.
    let mut bad = initiator_peer(default_ike, default_esp);
    bad.local_auth = ironsec_ike::LocalAuth::Psk(ironsec_ike::Psk::new(
        b"not-the-right-pre-shared-key-0000".to_vec(),
    ));
    let mut r = Rec::single(bad, EndpointConfig::default(), 107);
    r.initiate(0);
    save("wrong-psk", &r, 0);

    // 8. Retransmissions: every datagram arrives twice.
    let mut r = Rec::single(
        initiator_peer(default_ike, default_esp),
        EndpointConfig::default(),
        108,
    );
    r.copies = 2;
    r.initiate(0);
    r.wait(Duration::from_secs(40));
    save("duplicates", &r, 1);

    // 9. Cookies: eleven initiators, the eleventh is asked for a cookie (threshold 10).
    let inits = (0..11)
        .map(|i| {
            Endpoint::new(
                EndpointConfig::default(),
                vec![initiator_peer(default_ike, default_esp)],
                Box::new(TestRng::new(200 + i)),
            )
        })
        .collect();
    let mut r = Rec::new(inits);
    for i in 0..10 {
        r.inits[i]
            .initiate(r.now, "to-b", a_addr(500), b_addr(500))
            .unwrap();
        // Deliver only IKE_SA_INIT: keep these half-open.
        if let Some(t) = r.inits[i].poll_transmit() {
            r.frame(0, &t.payload);
        }
        // Their IKE_AUTH requests are never sent.
        while r.inits[i].poll_transmit().is_some() {}
    }
    r.inits.drain(..10);
    r.initiate(0);
    assert!(r.b.ep.stats().cookies_sent >= 1, "no cookie asked");
    save("cookie", &r, 1);

    // 10. A NAT rebinding: after the handshake the initiator's address changes.
    let mut r = Rec::single(
        initiator_peer(default_ike, default_esp),
        EndpointConfig::default(),
        110,
    );
    r.initiate(0);
    r.other_addr = true;
    r.wait(Duration::from_secs(40));
    save("rebinding", &r, 1);

    // 11. The second connection with AES-CBC + HMAC-SHA-256 for IKE and ESP (issue 20).
    let mut c = peer(
        "to-b",
        "gw-c@example.org",
        "gw-b.example",
        "10.3.0.0/24",
        "10.2.0.0/24",
        "aes256-sha256-prfsha384-ecp384",
        "aes256-sha256",
        PSK,
    );
    c.dpd_interval = None;
    let mut r = Rec::single(c, EndpointConfig::default(), 111);
    r.initiate(0);
    save("to-c-cbc-sha256", &r, 1);

    // 12. IPv6 traffic selectors (issue 26): the initiator proposes both families, the
    // responder (IPv4 only) narrows to the IPv4 ranges; then IPv6 alone, refused with
    // TS_UNACCEPTABLE after the IKE SA is up. The TS_IPV6_ADDR_RANGE selectors travel in the
    // IKE_AUTH request, which the target's responder decrypts and parses.
    let mixed = peer(
        "to-b",
        "gw-a.example",
        "gw-b.example",
        "10.1.0.0/24,2001:db8:1::/64",
        "10.2.0.0/24,2001:db8:2::/64",
        default_ike,
        default_esp,
        PSK,
    );
    let mut r = Rec::single(mixed, EndpointConfig::default(), 112);
    r.initiate(0);
    save("ts-ipv6-mixed", &r, 1);
    let only6 = peer(
        "to-b",
        "gw-a.example",
        "gw-b.example",
        "2001:db8:1::/64",
        "2001:db8:2::/64",
        default_ike,
        default_esp,
        PSK,
    );
    let mut r = Rec::single(only6, EndpointConfig::default(), 113);
    r.initiate(0);
    save("ts-ipv6-only", &r, 0);

    messages
}

/// IPv6 payload chains for the `ike_message` target's `parse_chain` half (`[first payload]
/// ++ payloads`, as `seed-chain-*`), encoded by the crate's own writer: what an IKE_AUTH
/// exchange carries inside SK, where the message seeds cannot show it: ID_IPV6_ADDR,
/// TS_IPV6_ADDR_RANGE (alone, mixed with IPv4, a single address, port and ICMPv6 type
/// ranges, inverted), NAT detection notifies hashed over IPv6 addresses, and a
/// CFG_REQUEST for INTERNAL_IP6_ADDRESS and INTERNAL_IP6_DNS (attributes 8 and 10).
fn ipv6_chain_seeds(root: &Path) {
    use ironsec_ike::wire::{
        encode_chain, IdPayload, IdType, NotifyType, Payload, TrafficSelector,
    };
    use std::net::Ipv6Addr;
    let dir = root.join("ike_message");
    let a6 = |s: &str| IpAddr::V6(s.parse::<Ipv6Addr>().unwrap());
    let range = |proto: u8, ports: (u16, u16), start: &str, end: &str| TrafficSelector {
        ip_protocol: proto,
        start_port: ports.0,
        end_port: ports.1,
        start: a6(start),
        end: a6(end),
    };
    let any = (0, 65535);
    let site1 = range(0, any, "2001:db8:1::", "2001:db8:1::ffff:ffff:ffff:ffff");
    let site2 = range(0, any, "2001:db8:2::", "2001:db8:2::ffff:ffff:ffff:ffff");
    let v4 = TrafficSelector {
        ip_protocol: 0,
        start_port: 0,
        end_port: 65535,
        start: IpAddr::V4([10, 1, 0, 0].into()),
        end: IpAddr::V4([10, 1, 0, 255].into()),
    };
    let id6 = Payload::IdI(IdPayload {
        id_type: IdType::Ipv6Addr,
        data: "2001:db8:f::1"
            .parse::<Ipv6Addr>()
            .unwrap()
            .octets()
            .to_vec(),
    });
    let natd = |spi_r: u64, addr: &str| {
        let a: SocketAddr = addr.parse().unwrap();
        ironsec_ike::crypto::nat_detection_hash(0x1111_1111_1111_1111, spi_r, a).to_vec()
    };
    // CFG_REQUEST (1), reserved, then attributes: INTERNAL_IP6_ADDRESS (8) empty,
    // INTERNAL_IP6_DNS (10) empty.
    let cp6 = Payload::Unknown {
        kind: 47,
        critical: false,
        data: vec![1, 0, 0, 0, 0, 8, 0, 0, 0, 10, 0, 0],
    };
    let chains: Vec<(&str, Vec<Payload>)> = vec![
        (
            "auth",
            vec![
                id6.clone(),
                Payload::TsI(vec![site1.clone()]),
                Payload::TsR(vec![site2.clone()]),
            ],
        ),
        (
            "mixed",
            vec![
                Payload::TsI(vec![v4.clone(), site1.clone()]),
                Payload::TsR(vec![site2.clone(), v4.clone()]),
            ],
        ),
        (
            "narrow",
            vec![
                Payload::TsI(vec![
                    range(6, (443, 443), "2001:db8:1::2", "2001:db8:1::2"),
                    range(
                        58,
                        (0x8000, 0x80ff),
                        "::",
                        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                    ),
                    range(17, (65535, 0), "2001:db8:1::", "2001:db8:1::ff"),
                ]),
                Payload::TsR(vec![range(0, any, "::", "::")]),
            ],
        ),
        (
            "inverted",
            vec![Payload::TsI(vec![
                range(0, any, "2001:db8:1::ff", "2001:db8:1::"),
                range(6, (2000, 1000), "2001:db8:1::", "2001:db8:1::ff"),
            ])],
        ),
        (
            "natd",
            vec![
                Payload::notify(
                    NotifyType::NatDetectionSourceIp,
                    natd(0, "[2001:db8:f::1]:500"),
                ),
                Payload::notify(
                    NotifyType::NatDetectionDestinationIp,
                    natd(0, "[2001:db8:f::2]:500"),
                ),
            ],
        ),
        ("cp", vec![id6, cp6]),
    ];
    for (name, payloads) in chains {
        let (first, bytes) = encode_chain(&payloads);
        let mut seed = vec![first];
        seed.extend_from_slice(&bytes);
        write(&dir, &format!("seed-v6-chain-{name}"), &seed);
    }
}

fn message_seeds(root: &Path, messages: &[Vec<u8>]) {
    let dir = root.join("ike_message");
    let mut seen = std::collections::HashSet::new();
    let mut n = 0;
    for m in messages {
        if !seen.insert(m.clone()) {
            continue;
        }
        write(&dir, &format!("seed-msg-{n:03}"), m);
        // The cleartext chain behind the header, for the parse_chain path (cleartext messages
        // only: behind an encrypted one's header there is just the SK payload).
        if m.len() > 28 && m[16] != 46 && m[16] != 53 {
            let mut chain = vec![m[16]];
            chain.extend_from_slice(&m[28..]);
            write(&dir, &format!("seed-chain-{n:03}"), &chain);
        }
        n += 1;
    }
    eprintln!("ike_message: {n} messages");
}

fn esp_seeds(root: &Path) {
    let dir = root.join("esp_open");
    let ipv4 = {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&40u16.to_be_bytes());
        p[9] = 17;
        p[12..16].copy_from_slice(&[10, 1, 0, 1]);
        p[16..20].copy_from_slice(&[10, 2, 0, 1]);
        p
    };
    let ipv6 = {
        let mut p = vec![0u8; 48];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&8u16.to_be_bytes());
        p
    };
    let sealed = |v: &mut Vec<u8>, abs: bool, seq: u64, nh: u8, inner: &[u8]| {
        v.push(2);
        v.push(u8::from(abs));
        v.extend_from_slice(&seq.to_be_bytes());
        v.push(nh);
        v.extend_from_slice(&(inner.len() as u16).to_be_bytes());
        v.extend_from_slice(inner);
    };
    let body = |v: &mut Vec<u8>, seq: u64, b: &[u8]| {
        v.push(1);
        v.push(1);
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&(b.len() as u16).to_be_bytes());
        v.extend_from_slice(b);
    };
    for flags in 0u8..32 {
        // Only some combinations: every suite, ESN on/off, every window.
        if flags % 3 != 0 && flags != 1 && flags != 8 && flags != 25 {
            continue;
        }
        let mut v = vec![flags];
        sealed(&mut v, true, 1, 4, &ipv4);
        sealed(&mut v, true, 3, 41, &ipv6);
        sealed(&mut v, true, 2, 4, &ipv4);
        sealed(&mut v, true, 2, 4, &ipv4); // replay
        sealed(&mut v, false, 100, 4, &ipv4); // jump ahead
        sealed(&mut v, true, 1, 4, &ipv4); // too old for small windows? (not for 1024)
        sealed(&mut v, true, 5, 59, &[]); // dummy
        let mut b = ipv4.clone();
        b.extend_from_slice(&[1, 2, 2, 4]); // padding 1, 2; pad length 2; next header 4
        body(&mut v, 7, &b);
        // A forgery with the right SPI.
        v.push(4);
        v.extend_from_slice(&(40u16).to_be_bytes());
        v.extend_from_slice(&[0xc0, 0, 2, 1, 0, 0, 0, 9]);
        v.extend_from_slice(&[0u8; 32]);
        if flags & 1 != 0 {
            // ESN: cross a 2^32 boundary.
            sealed(&mut v, true, (1 << 32) - 2, 4, &ipv4);
            sealed(&mut v, true, (1 << 32) + 3, 4, &ipv4);
            sealed(&mut v, true, (1 << 32) - 1, 4, &ipv4);
        }
        // classify-only records: NAT keepalive and IKE behind the marker.
        v.push(3);
        v.extend_from_slice(&1u16.to_be_bytes());
        v.push(0xff);
        v.push(3);
        v.extend_from_slice(&32u16.to_be_bytes());
        v.extend_from_slice(&[0u8; 32]);
        write(&dir, &format!("seed-flags{flags:02}"), &v);
    }

    // IPv6 inside ESP (issue 26): well-formed IPv6 inner packets (plain UDP, hop-by-hop and
    // destination options, routing and fragment headers, TFC padding) and the malformed
    // ones of crates/esp/tests/malformed.rs (jumbogram, payload length past the data, a
    // chain past the payload length, version and next header disagreeing, next headers
    // that are not tunnel mode), for an AEAD and AES-CBC, with and without ESN.
    let v6 = |next: u8, ext: &[u8], upper: usize, payload: Option<u16>| {
        let mut p = vec![0u8; 40 + ext.len() + upper];
        p[0] = 0x60;
        let n = payload.unwrap_or((ext.len() + upper) as u16);
        p[4..6].copy_from_slice(&n.to_be_bytes());
        p[6] = next;
        p[7] = 64;
        p[8..24].copy_from_slice(&0x2001_0db8_0002_0000_0000_0000_0000_0002u128.to_be_bytes());
        p[24..40].copy_from_slice(&0x2001_0db8_0001_0000_0000_0000_0000_0002u128.to_be_bytes());
        p[40..40 + ext.len()].copy_from_slice(ext);
        p
    };
    let hbh_dst = [
        60, 0, 1, 4, 0, 0, 0, 0, 17, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let rh_frag = [44, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 1, 0, 0, 0, 7];
    let udp6 = v6(17, &[], 24, None);
    for flags in [0x00u8, 0x01, 0x20, 0x21] {
        let mut v = vec![flags];
        sealed(&mut v, true, 1, 41, &udp6);
        sealed(&mut v, true, 2, 41, &v6(0, &hbh_dst, 8, None));
        sealed(&mut v, true, 3, 41, &v6(43, &rh_frag, 8, None));
        let mut tfc = udp6.clone();
        tfc.extend_from_slice(&[0; 24]);
        sealed(&mut v, true, 4, 41, &tfc);
        sealed(
            &mut v,
            true,
            5,
            41,
            &v6(0, &[17, 0, 0xc2, 4, 0, 0, 0, 16], 8, Some(0)),
        );
        sealed(&mut v, true, 6, 41, &v6(17, &[], 24, Some(25)));
        sealed(&mut v, true, 7, 41, &v6(0, &hbh_dst, 8, Some(20)));
        sealed(&mut v, true, 8, 4, &udp6);
        sealed(&mut v, true, 9, 41, &ipv4);
        for (i, nh) in [0u8, 43, 44, 60, 255].into_iter().enumerate() {
            sealed(&mut v, true, 10 + i as u64, nh, &udp6);
        }
        // A hand-framed body: the IPv6 packet, default padding to 16 bytes, next header 41.
        let mut b = udp6.clone();
        let pad = (b.len() + 2).next_multiple_of(16) - 2 - b.len();
        b.extend((1..=pad).map(|i| i as u8));
        b.extend([pad as u8, 41]);
        body(&mut v, 20, &b);
        if flags & 1 != 0 {
            sealed(&mut v, true, (1 << 32) + 1, 41, &udp6);
        }
        write(&dir, &format!("seed-v6-flags{flags:02}"), &v);
    }
}

fn config_seeds(root: &Path, conf: &Path) {
    let dir = root.join("config");
    let keys = format!("{}/static.keys", ironsec_fuzz::CONFIG_DIR);
    let psk = format!("{}/site.psk", ironsec_fuzz::CONFIG_DIR);
    for e in std::fs::read_dir(conf).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let text = text
            .replace("keys/site-b.keys", &keys)
            .replace("keys/site-a.keys", &keys)
            .replace("/etc/ironsec/site-b.psk", &psk)
            .replace("/etc/ironsec/site-a.psk", &psk);
        let name = p.file_stem().unwrap().to_str().unwrap();
        write(&dir, &format!("seed-{name}"), text.as_bytes());
    }
    // Two connections: static (aes256) and IKE with an inline PSK and every option.
    let both = format!(
        r#"[gateway]
tun = "ipsec9"
tun_mtu = 1400
tun_txqueuelen = 500
port = 4500
ike_port = 500
control_socket = "/run/ironsec/x.sock"
workers = 2
replay_window = 128
socket_buffer = 1048576
batch = 32

[[connection]]
name = "static-256"
keying = "static"
local_ts = ["10.1.0.0/24", "fd00:1::/64"]
remote_ts = ["10.3.0.0/24"]
esp = "aes256gcm16"
esn = true
keys_file = "{keys}"
tunnels = [
  {{ local = "192.0.2.1", remote = "192.0.2.3", remote_port = 4501, spi_out = "0xc0000103", spi_in = 3221226241 }},
]

[[connection]]
name = "ike-inline"
keying = "ike"
local_id = "192.0.2.1"
remote_id = "@#0a0b0c"
psk = "0x000102030405060708090a0b0c0d0e0f10"
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.4.0.0/16", "0.0.0.0/0"]
ike_proposals = ["aes128gcm16-prfsha384-ecp256", "chacha20poly1305-prfsha512-ecp384"]
esp_proposals = ["aes128gcm16-ecp256-esn", "chacha20poly1305-noesn"]
start_action = "start"
dpd_interval = 0
rekey_time = 600
ike_rekey_time = 7200
encap = false
tunnels = [ {{ local = "2001:db8::1", remote = "2001:db8::2" }}, {{ local = "192.0.2.1", remote = "192.0.2.4" }} ]
"#
    );
    write(&dir, "seed-two-connections", both.as_bytes());
}

fn main() {
    let fuzz_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = fuzz_dir.join("corpus");
    let messages = responder_seeds(&root);
    message_seeds(&root, &messages);
    ipv6_chain_seeds(&root);
    esp_seeds(&root);
    config_seeds(&root, &fuzz_dir.join("../conf"));
}
