//! Property tests: no input makes the parser panic, and every valid payload list survives
//! encode -> parse unchanged.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ironsec_ike::wire::*;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

fn bytes(range: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), range)
}

/// A transform attribute other than Key Length: TV (AF bit, 2-byte value) or TLV.
fn attribute() -> impl Strategy<Value = (u16, Vec<u8>)> {
    let t = (0u16..0x8000).prop_filter("not Key Length", |t| *t != ATTR_KEY_LENGTH);
    prop_oneof![
        (t.clone(), any::<[u8; 2]>()).prop_map(|(t, v)| (ATTR_FORMAT_TV | t, v.to_vec())),
        (t, bytes(0..=8)),
    ]
}

fn transform() -> impl Strategy<Value = Transform> {
    (
        any::<u8>(),
        any::<u16>(),
        option::of(any::<u16>()),
        vec(attribute(), 0..=3),
    )
        .prop_map(|(kind, id, key_length, other_attributes)| Transform {
            kind: TransformType::from(kind),
            id,
            key_length,
            other_attributes,
        })
}

/// (protocol, SPI) pairs that pass the SPI size rule.
fn protocol_and_spi() -> impl Strategy<Value = (ProtocolId, Vec<u8>)> {
    prop_oneof![
        Just((ProtocolId::Ike, vec![])),
        any::<[u8; 8]>().prop_map(|s| (ProtocolId::Ike, s.to_vec())),
        any::<[u8; 4]>().prop_map(|s| (ProtocolId::Esp, s.to_vec())),
        any::<[u8; 4]>().prop_map(|s| (ProtocolId::Ah, s.to_vec())),
        (4u8..=255, bytes(0..=8)).prop_map(|(p, s)| (ProtocolId::from(p), s)),
    ]
}

fn sa() -> impl Strategy<Value = SaPayload> {
    let proposal = (protocol_and_spi(), vec(transform(), 1..=6));
    (1u8..=200, vec(proposal, 1..=4)).prop_map(|(first, list)| SaPayload {
        proposals: list
            .into_iter()
            .enumerate()
            .map(|(i, ((protocol, spi), transforms))| Proposal {
                number: first + i as u8,
                protocol,
                spi,
                transforms,
            })
            .collect(),
    })
}

fn selector() -> impl Strategy<Value = TrafficSelector> {
    let addrs = prop_oneof![
        (any::<u32>(), any::<u32>())
            .prop_map(|(a, b)| (IpAddr::V4(Ipv4Addr::from(a)), IpAddr::V4(Ipv4Addr::from(b)))),
        (any::<u128>(), any::<u128>())
            .prop_map(|(a, b)| (IpAddr::V6(Ipv6Addr::from(a)), IpAddr::V6(Ipv6Addr::from(b)))),
    ];
    (any::<u8>(), any::<u16>(), any::<u16>(), addrs).prop_map(
        |(ip_protocol, start_port, end_port, (start, end))| TrafficSelector {
            ip_protocol,
            start_port,
            end_port,
            start,
            end,
        },
    )
}

fn id() -> impl Strategy<Value = IdPayload> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|a| IdPayload {
            id_type: IdType::Ipv4Addr,
            data: a.to_vec()
        }),
        any::<[u8; 16]>().prop_map(|a| IdPayload {
            id_type: IdType::Ipv6Addr,
            data: a.to_vec()
        }),
        (
            any::<u8>().prop_filter("not an address type", |t| *t != 1 && *t != 5),
            bytes(1..=40)
        )
            .prop_map(|(t, data)| IdPayload {
                id_type: IdType::from(t),
                data
            }),
    ]
}

fn delete() -> impl Strategy<Value = DeletePayload> {
    prop_oneof![
        Just(DeletePayload {
            protocol: ProtocolId::Ike,
            spi_size: 0,
            spis: vec![]
        }),
        (
            prop_oneof![Just(ProtocolId::Esp), Just(ProtocolId::Ah)],
            vec(any::<[u8; 4]>(), 0..=5)
        )
            .prop_map(|(protocol, spis)| DeletePayload {
                protocol,
                spi_size: 4,
                spis: spis.into_iter().map(|s| s.to_vec()).collect()
            }),
        (4u8..=255, 1u8..=8, 0usize..=4).prop_flat_map(|(p, size, n)| {
            vec(bytes(usize::from(size)..=usize::from(size)), n..=n).prop_map(move |spis| {
                DeletePayload {
                    protocol: ProtocolId::from(p),
                    spi_size: size,
                    spis,
                }
            })
        }),
    ]
}

fn eap() -> impl Strategy<Value = EapPayload> {
    prop_oneof![
        (1u8..=2, any::<u8>(), any::<u8>(), bytes(0..=20)).prop_map(|(code, ident, t, rest)| {
            let len = (5 + rest.len()) as u16;
            let mut data = vec![code, ident];
            data.extend(len.to_be_bytes());
            data.push(t);
            data.extend(rest);
            EapPayload { data }
        }),
        (3u8..=4, any::<u8>()).prop_map(|(code, ident)| EapPayload {
            data: vec![code, ident, 0, 4]
        }),
    ]
}

fn unknown() -> impl Strategy<Value = Payload> {
    let kind = any::<u8>().prop_filter("not a parsed type", |k| {
        *k != 0 && matches!(PayloadType::from(*k), PayloadType::Other(_))
    });
    (kind, any::<bool>(), bytes(0..=32)).prop_map(|(kind, critical, data)| Payload::Unknown {
        kind,
        critical,
        data,
    })
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        sa().prop_map(Payload::Sa),
        (any::<u16>(), bytes(0..=64))
            .prop_map(|(group, data)| Payload::Ke(KePayload { group, data })),
        id().prop_map(Payload::IdI),
        id().prop_map(Payload::IdR),
        (any::<u8>(), bytes(0..=64))
            .prop_map(|(encoding, data)| Payload::Cert(CertPayload { encoding, data })),
        (any::<u8>(), bytes(0..=64))
            .prop_map(|(encoding, data)| Payload::CertReq(CertPayload { encoding, data })),
        (any::<u8>(), bytes(1..=64)).prop_map(|(m, data)| Payload::Auth(AuthPayload {
            method: AuthMethod::from(m),
            data
        })),
        bytes(NONCE_MIN..=NONCE_MAX).prop_map(Payload::Nonce),
        (any::<u8>(), bytes(0..=8), any::<u16>(), bytes(0..=32)).prop_map(
            |(protocol, spi, kind, data)| {
                Payload::Notify(NotifyPayload {
                    protocol,
                    spi,
                    kind: NotifyType::from(kind),
                    data,
                })
            }
        ),
        delete().prop_map(Payload::Delete),
        bytes(0..=32).prop_map(Payload::VendorId),
        vec(selector(), 0..=4).prop_map(Payload::TsI),
        vec(selector(), 0..=4).prop_map(Payload::TsR),
        (any::<u8>(), vec((0u16..0x8000, bytes(0..=8)), 0..=4)).prop_map(
            |(cfg_type, attributes)| Payload::Cp(CpPayload {
                cfg_type,
                attributes
            })
        ),
        eap().prop_map(Payload::Eap),
        unknown(),
    ]
}

fn header() -> impl Strategy<Value = Header> {
    (
        any::<u64>(),
        any::<u64>(),
        0u8..16,
        any::<u8>(),
        any::<[bool; 3]>(),
        any::<u32>(),
    )
        .prop_map(
            |(spi_i, spi_r, minor, exchange, [initiator, version, response], message_id)| Header {
                spi_i,
                spi_r,
                next_payload: 0,
                major: 2,
                minor,
                exchange: ExchangeType::from(exchange),
                flags: Flags {
                    initiator,
                    version,
                    response,
                },
                message_id,
                length: 0,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(b in bytes(0..=600)) {
        let _ = Message::parse(&b);
        let _ = Header::decode(&b);
    }

    #[test]
    fn arbitrary_chains_never_panic(first in any::<u8>(), b in bytes(0..=600)) {
        let _ = parse_chain(first, &b);
    }

    /// Past a valid header, so the payload parsers get exercised rather than the length check.
    #[test]
    fn arbitrary_chains_behind_a_valid_header_never_panic(h in header(), first in any::<u8>(), b in bytes(0..=600)) {
        let mut m = h.encode().to_vec();
        m.extend_from_slice(&b);
        let len = m.len() as u32;
        m[16] = first;
        m[24..28].copy_from_slice(&len.to_be_bytes());
        let _ = Message::parse(&m);
    }

    /// Valid messages with a few bytes changed: reaches deep into every payload format.
    #[test]
    fn mutated_messages_never_panic(
        h in header(),
        payloads in vec(payload(), 0..=6),
        edits in vec((any::<usize>(), any::<u8>()), 1..=6),
    ) {
        let mut m = encode_message(&h, &payloads);
        for (at, v) in edits {
            let i = HEADER_LEN + at % (m.len() - HEADER_LEN + 1);
            if let Some(b) = m.get_mut(i) {
                *b = v;
            }
        }
        let _ = Message::parse(&m);
        let _ = parse_chain(m.get(16).copied().unwrap_or(0), m.get(HEADER_LEN..).unwrap_or(&[]));
    }

    #[test]
    fn valid_chains_round_trip(payloads in vec(payload(), 0..=8)) {
        let (first, b) = encode_chain(&payloads);
        prop_assert_eq!(parse_chain(first, &b).unwrap(), payloads);
    }

    #[test]
    fn valid_messages_round_trip(h in header(), payloads in vec(payload(), 0..=8)) {
        let b = encode_message(&h, &payloads);
        let m = Message::parse(&b).unwrap();
        prop_assert_eq!(m.header.length as usize, b.len());
        prop_assert_eq!(m.header.next_payload, payloads.first().map_or(0, |p| p.kind().number()));
        prop_assert_eq!(Header { next_payload: 0, length: 0, ..m.header }, h);
        prop_assert_eq!(m.payloads, payloads);
        prop_assert_eq!(m.encrypted, None);
    }

    #[test]
    fn sk_layouts_round_trip(
        h in header(),
        clear in vec(payload(), 0..=3),
        inner in vec(payload(), 0..=6),
        iv_len in 0usize..=16,
        icv_len in 0usize..=16,
        block_len in prop_oneof![Just(1usize), Just(8), Just(16)],
    ) {
        let (first, chain) = encode_chain(&inner);
        let shape = SkShape { iv_len, icv_len, block_len };
        let l = layout_sk(&h, &clear, first, &chain, shape);
        let m = Message::parse(&l.bytes).unwrap();
        prop_assert_eq!(m.header.length as usize, l.bytes.len());
        prop_assert_eq!(&m.payloads, &clear);
        prop_assert_eq!(
            m.encrypted,
            Some(Encrypted::Sk { first_inner: first, aad: l.aad.clone(), body: l.iv.start..l.icv.end })
        );
        let pt = &l.bytes[l.plaintext.clone()];
        prop_assert_eq!(pt.len() % block_len, 0);
        let pad = usize::from(*pt.last().unwrap());
        prop_assert!(pad < block_len);
        prop_assert_eq!(pad, pt.len() - 1 - chain.len());
        prop_assert_eq!(parse_chain(first, &pt[..pt.len() - 1 - pad]).unwrap(), inner);
    }
}
