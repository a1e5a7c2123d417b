//! Round trips: every payload type, whole messages, and SK/SKF layouts, with every length
//! field checked by an independent walk over the bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ironsec_ike::wire::*;

fn t(kind: TransformType, id: u16, key_length: Option<u16>) -> Transform {
    Transform {
        kind,
        id,
        key_length,
        other_attributes: vec![],
    }
}

fn ike_sa() -> SaPayload {
    SaPayload {
        proposals: vec![
            Proposal {
                number: 1,
                protocol: ProtocolId::Ike,
                spi: vec![],
                transforms: vec![
                    t(TransformType::Encr, 20, Some(256)),
                    t(TransformType::Encr, 20, Some(128)),
                    t(TransformType::Prf, 5, None),
                    t(TransformType::Dh, 31, None),
                    t(TransformType::Dh, 19, None),
                ],
            },
            Proposal {
                number: 2,
                protocol: ProtocolId::Ike,
                spi: vec![],
                transforms: vec![
                    t(TransformType::Encr, 28, None),
                    t(TransformType::Prf, 7, None),
                    t(TransformType::Dh, 20, None),
                ],
            },
        ],
    }
}

fn esp_sa() -> SaPayload {
    SaPayload {
        proposals: vec![Proposal {
            number: 1,
            protocol: ProtocolId::Esp,
            spi: vec![0xc0, 0x01, 0xca, 0xfe],
            transforms: vec![
                Transform {
                    kind: TransformType::Encr,
                    id: 20,
                    key_length: Some(256),
                    // One TV and one TLV attribute we do not know: kept for the refusal rule.
                    other_attributes: vec![(0x8000 | 17, vec![0, 5]), (18, vec![1, 2, 3])],
                },
                t(TransformType::Other(9), 1, None),
                t(TransformType::Esn, 0, None),
            ],
        }],
    }
}

fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn sample_payloads() -> Vec<Payload> {
    vec![
        Payload::Sa(ike_sa()),
        Payload::Sa(esp_sa()),
        Payload::Ke(KePayload {
            group: 31,
            data: (0..32).collect(),
        }),
        Payload::IdI(IdPayload {
            id_type: IdType::Fqdn,
            data: b"gw-a.example".to_vec(),
        }),
        Payload::IdR(IdPayload {
            id_type: IdType::Ipv4Addr,
            data: vec![192, 0, 2, 2],
        }),
        Payload::IdR(IdPayload {
            id_type: IdType::Ipv6Addr,
            data: vec![0x20; 16],
        }),
        Payload::IdI(IdPayload {
            id_type: IdType::Other(200),
            data: vec![1],
        }),
        Payload::Cert(CertPayload {
            encoding: 4,
            data: vec![0x30, 0x82, 0x01, 0x00],
        }),
        Payload::CertReq(CertPayload {
            encoding: 4,
            data: vec![],
        }),
        Payload::Auth(AuthPayload {
            method: AuthMethod::SharedKeyMic,
            data: vec![7; 32],
        }),
        Payload::Auth(AuthPayload {
            method: AuthMethod::DigitalSignature,
            data: vec![1, 2, 3],
        }),
        Payload::Nonce(vec![0x5a; 16]),
        Payload::Nonce(vec![0xa5; 256]),
        Payload::Notify(NotifyPayload {
            protocol: 0,
            spi: vec![],
            kind: NotifyType::NatDetectionSourceIp,
            data: vec![0x11; 20],
        }),
        Payload::Notify(NotifyPayload {
            protocol: 3,
            spi: vec![1, 2, 3, 4],
            kind: NotifyType::RekeySa,
            data: vec![],
        }),
        Payload::Notify(NotifyPayload {
            protocol: 0,
            spi: vec![],
            kind: NotifyType::Other(40_000),
            data: vec![9],
        }),
        Payload::Delete(DeletePayload {
            protocol: ProtocolId::Ike,
            spi_size: 0,
            spis: vec![],
        }),
        Payload::Delete(DeletePayload {
            protocol: ProtocolId::Esp,
            spi_size: 4,
            spis: vec![vec![1, 1, 1, 1], vec![2, 2, 2, 2]],
        }),
        Payload::VendorId(b"ironsec".to_vec()),
        Payload::VendorId(vec![]),
        Payload::TsI(vec![
            TrafficSelector {
                ip_protocol: 0,
                start_port: 0,
                end_port: 65535,
                start: v4([10, 1, 0, 0]),
                end: v4([10, 1, 0, 255]),
            },
            TrafficSelector {
                ip_protocol: 6,
                start_port: 443,
                end_port: 443,
                start: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0)),
                end: IpAddr::V6(Ipv6Addr::new(
                    0x2001, 0xdb8, 0, 0, 0xffff, 0xffff, 0xffff, 0xffff,
                )),
            },
        ]),
        // Kept as given even though start > end: the selector logic decides.
        Payload::TsR(vec![TrafficSelector {
            ip_protocol: 17,
            start_port: 9,
            end_port: 1,
            start: v4([10, 2, 0, 9]),
            end: v4([10, 2, 0, 1]),
        }]),
        Payload::TsR(vec![]),
        Payload::Cp(CpPayload {
            cfg_type: CFG_REQUEST,
            attributes: vec![(1, vec![]), (19, vec![0, 0, 0, 0, 0])],
        }),
        // A dual-stack CFG_REPLY: INTERNAL_IP4_ADDRESS, INTERNAL_IP6_ADDRESS (address and
        // prefix length 128), INTERNAL_IP6_DNS, INTERNAL_IP6_SUBNET (address and prefix length).
        Payload::Cp(CpPayload {
            cfg_type: CFG_REPLY,
            attributes: vec![
                (1, vec![10, 99, 0, 1]),
                (
                    8,
                    [
                        Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 1)
                            .octets()
                            .to_vec(),
                        vec![128],
                    ]
                    .concat(),
                ),
                (
                    10,
                    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x53)
                        .octets()
                        .to_vec(),
                ),
                (
                    15,
                    [
                        Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0)
                            .octets()
                            .to_vec(),
                        vec![64],
                    ]
                    .concat(),
                ),
            ],
        }),
        Payload::Eap(EapPayload {
            data: vec![EAP_REQUEST, 7, 0, 10, 1, b'h', b'e', b'l', b'l', b'o'],
        }),
        Payload::Eap(EapPayload {
            data: vec![EAP_SUCCESS, 7, 0, 4],
        }),
        Payload::Unknown {
            kind: 200,
            critical: false,
            data: vec![1, 2, 3],
        },
        Payload::Unknown {
            kind: 201,
            critical: true,
            data: vec![],
        },
    ]
}

/// Walks a chain by its generic headers alone, independently of the parser: returns (type,
/// length) of each payload and checks they tile `bytes` exactly. SK (46) and SKF (53) end the
/// walk: their Next Payload field names the first inner payload.
fn walk_lengths(first: u8, bytes: &[u8]) -> Vec<(u8, usize)> {
    let mut out = vec![];
    let mut at = 0;
    let mut next = first;
    while next != 0 {
        let len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        out.push((next, len));
        let encrypted = next == 46 || next == 53;
        next = if encrypted { 0 } else { bytes[at] };
        at += len;
    }
    assert_eq!(at, bytes.len(), "generic lengths must add up to the chain");
    out
}

#[test]
fn every_payload_type_round_trips_alone() {
    for p in sample_payloads() {
        let (first, bytes) = encode_chain(std::slice::from_ref(&p));
        assert_eq!(first, p.kind().number());
        assert_eq!(walk_lengths(first, &bytes), [(first, bytes.len())]);
        assert_eq!(
            parse_chain(first, &bytes).unwrap(),
            std::slice::from_ref(&p),
            "{p:?}"
        );
    }
}

#[test]
fn all_payloads_round_trip_as_one_chain() {
    let payloads = sample_payloads();
    let (first, bytes) = encode_chain(&payloads);
    let kinds: Vec<u8> = walk_lengths(first, &bytes)
        .iter()
        .map(|(k, _)| *k)
        .collect();
    let expected: Vec<u8> = payloads.iter().map(|p| p.kind().number()).collect();
    assert_eq!(kinds, expected);
    assert_eq!(parse_chain(first, &bytes).unwrap(), payloads);
    // Only the unknown critical payload carries the critical bit.
    let mut at = 0;
    for p in &payloads {
        let critical = bytes[at + 1] & 0x80 != 0;
        assert_eq!(
            critical,
            matches!(p, Payload::Unknown { critical: true, .. })
        );
        at += usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
    }
}

#[test]
fn empty_chain() {
    assert_eq!(encode_chain(&[]), (0, vec![]));
    assert_eq!(parse_chain(0, &[]).unwrap(), []);
}

fn init_header() -> Header {
    Header {
        spi_i: 0xdead_beef_0000_0001,
        spi_r: 0,
        next_payload: 99, // wrong on purpose: the encoder computes it
        major: 2,
        minor: 0,
        exchange: ExchangeType::IkeSaInit,
        flags: Flags {
            initiator: true,
            ..Flags::default()
        },
        message_id: 0,
        length: 12345, // likewise
    }
}

#[test]
fn ike_sa_init_request_round_trips_with_exact_lengths() {
    let payloads = vec![
        Payload::Sa(ike_sa()),
        Payload::Ke(KePayload {
            group: 31,
            data: vec![0x42; 32],
        }),
        Payload::Nonce(vec![0x17; 32]),
        Payload::Notify(NotifyPayload {
            protocol: 0,
            spi: vec![],
            kind: NotifyType::NatDetectionSourceIp,
            data: vec![1; 20],
        }),
        Payload::Notify(NotifyPayload {
            protocol: 0,
            spi: vec![],
            kind: NotifyType::NatDetectionDestinationIp,
            data: vec![2; 20],
        }),
        Payload::VendorId(b"ironsec-0.1".to_vec()),
    ];
    let bytes = encode_message(&init_header(), &payloads);
    let m = Message::parse(&bytes).unwrap();
    assert_eq!(m.header.length as usize, bytes.len());
    assert_eq!(m.header.next_payload, 33);
    assert_eq!(
        m.header,
        Header {
            next_payload: 33,
            length: bytes.len() as u32,
            ..init_header()
        }
    );
    assert_eq!(m.payloads, payloads);
    assert_eq!(m.encrypted, None);
    let lengths = walk_lengths(33, &bytes[HEADER_LEN..]);
    // SA: 4 + proposal 1 (8 + 12 + 12 + 8 + 8 + 8 = 56) + proposal 2 (8 + 3*8 = 32).
    assert_eq!(
        lengths,
        [(33, 92), (34, 40), (40, 36), (41, 28), (41, 28), (43, 15)]
    );
    assert_eq!(bytes.len(), HEADER_LEN + 92 + 40 + 36 + 28 + 28 + 15);
}

#[test]
fn message_with_no_payloads() {
    let bytes = encode_message(&init_header(), &[]);
    assert_eq!(bytes.len(), HEADER_LEN);
    let m = Message::parse(&bytes).unwrap();
    assert_eq!((m.header.next_payload, m.header.length), (0, 28));
    assert!(m.payloads.is_empty());
}

fn auth_header() -> Header {
    Header {
        spi_i: 1,
        spi_r: 2,
        next_payload: 0,
        major: 2,
        minor: 0,
        exchange: ExchangeType::IkeAuth,
        flags: Flags {
            initiator: true,
            ..Flags::default()
        },
        message_id: 1,
        length: 0,
    }
}

fn ike_auth_inner() -> Vec<Payload> {
    vec![
        Payload::IdI(IdPayload {
            id_type: IdType::Fqdn,
            data: b"gw-a.example".to_vec(),
        }),
        Payload::IdR(IdPayload {
            id_type: IdType::Fqdn,
            data: b"gw-b.example".to_vec(),
        }),
        Payload::Auth(AuthPayload {
            method: AuthMethod::SharedKeyMic,
            data: vec![3; 32],
        }),
        Payload::Notify(NotifyPayload {
            protocol: 0,
            spi: vec![],
            kind: NotifyType::InitialContact,
            data: vec![],
        }),
        Payload::Sa(esp_sa()),
        Payload::TsI(vec![TrafficSelector {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            start: v4([10, 1, 0, 0]),
            end: v4([10, 1, 0, 255]),
        }]),
        Payload::TsR(vec![TrafficSelector {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            start: v4([10, 2, 0, 0]),
            end: v4([10, 2, 0, 255]),
        }]),
    ]
}

#[test]
fn ike_auth_via_layout_sk() {
    let inner = ike_auth_inner();
    let (first, chain) = encode_chain(&inner);
    let l = layout_sk(&auth_header(), &[], first, &chain, SkShape::AEAD);

    // The ranges tile the message, and the plaintext is the chain plus a zero Pad Length.
    assert_eq!(l.aad, 0..HEADER_LEN + 4);
    assert_eq!(l.iv, l.aad.end..l.aad.end + 8);
    assert_eq!(l.plaintext, l.iv.end..l.iv.end + chain.len() + 1);
    assert_eq!(l.icv, l.plaintext.end..l.plaintext.end + 16);
    assert_eq!(l.icv.end, l.bytes.len());
    assert_eq!(l.bytes[l.plaintext.clone()], [&chain[..], &[0]].concat());

    // Stand-in for the crypto: fill IV and ICV with something; the parser must not care.
    let mut bytes = l.bytes.clone();
    bytes[l.iv.clone()].fill(0xee);
    bytes[l.icv.clone()].fill(0xcc);

    let m = Message::parse(&bytes).unwrap();
    assert_eq!(m.header.length as usize, bytes.len());
    assert_eq!(m.header.next_payload, 46);
    assert!(m.payloads.is_empty());
    assert_eq!(
        walk_lengths(46, &bytes[HEADER_LEN..]),
        [(46, bytes.len() - HEADER_LEN)]
    );
    let Some(Encrypted::Sk {
        first_inner,
        aad,
        body,
    }) = m.encrypted
    else {
        panic!("{:?}", m.encrypted)
    };
    assert_eq!(first_inner, 35);
    assert_eq!(aad, l.aad);
    assert_eq!(body, l.iv.start..l.icv.end);

    // What the state machine does after decrypting: strip Pad Length (0) and parse.
    let pt = &bytes[l.plaintext.clone()];
    let pad = usize::from(*pt.last().unwrap());
    assert_eq!(
        parse_chain(first_inner, &pt[..pt.len() - 1 - pad]).unwrap(),
        inner
    );
}

#[test]
fn layout_sk_after_cleartext_payloads() {
    let clear = vec![Payload::Notify(NotifyPayload {
        protocol: 0,
        spi: vec![],
        kind: NotifyType::Cookie,
        data: vec![5; 16],
    })];
    let inner = vec![Payload::Delete(DeletePayload {
        protocol: ProtocolId::Ike,
        spi_size: 0,
        spis: vec![],
    })];
    let (first, chain) = encode_chain(&inner);
    let l = layout_sk(&auth_header(), &clear, first, &chain, SkShape::AEAD);
    let m = Message::parse(&l.bytes).unwrap();
    assert_eq!(m.header.next_payload, 41);
    assert_eq!(m.payloads, clear);
    // The cleartext notify names SK as its successor.
    assert_eq!(l.bytes[HEADER_LEN], 46);
    let lengths = walk_lengths(41, &l.bytes[HEADER_LEN..]);
    assert_eq!(lengths[0], (41, 24));
    assert_eq!(lengths[1].0, 46);
    let Some(Encrypted::Sk {
        first_inner, aad, ..
    }) = m.encrypted
    else {
        panic!()
    };
    assert_eq!(first_inner, 42);
    assert_eq!(aad, 0..HEADER_LEN + 24 + 4);
    assert_eq!(l.aad, aad);
}

#[test]
fn layout_skf_fragments() {
    let (first, chain) = encode_chain(&ike_auth_inner());
    let (a, b) = chain.split_at(chain.len() / 2);
    let f1 = layout_skf(&auth_header(), first, 1, 2, a, SkShape::AEAD);
    let f2 = layout_skf(&auth_header(), first, 2, 2, b, SkShape::AEAD);
    for (f, number, chunk, inner) in [(&f1, 1u16, a, first), (&f2, 2, b, 0)] {
        assert_eq!(f.aad, 0..HEADER_LEN + 8);
        assert_eq!(f.iv, f.aad.end..f.aad.end + 8);
        assert_eq!(f.bytes[f.plaintext.clone()], [chunk, &[0]].concat());
        assert_eq!(f.icv.end, f.bytes.len());
        let m = Message::parse(&f.bytes).unwrap();
        assert_eq!(m.header.next_payload, 53);
        assert_eq!(m.header.length as usize, f.bytes.len());
        assert_eq!(
            m.encrypted,
            Some(Encrypted::Skf {
                first_inner: inner,
                fragment_number: number,
                total_fragments: 2,
                aad: f.aad.clone(),
                body: f.iv.start..f.icv.end,
            })
        );
    }
}

#[test]
fn id_body_bytes_is_rest_of_id_payload() {
    let id = IdPayload {
        id_type: IdType::Fqdn,
        data: b"gw-a".to_vec(),
    };
    assert_eq!(id.body_bytes(), [2, 0, 0, 0, b'g', b'w', b'-', b'a']);
    // It is exactly the ID payload's body on the wire.
    let (_, bytes) = encode_chain(&[Payload::IdI(id.clone())]);
    assert_eq!(bytes[GENERIC_HEADER_LEN..], id.body_bytes()[..]);
}

#[test]
fn numbers_round_trip_and_unknown_values_survive() {
    for n in 0..=u8::MAX {
        assert_eq!(PayloadType::from(n).number(), n);
        assert_eq!(ExchangeType::from(n).number(), n);
        assert_eq!(IdType::from(n).number(), n);
        assert_eq!(AuthMethod::from(n).number(), n);
        assert_eq!(ProtocolId::from(n).number(), n);
        assert_eq!(TransformType::from(n).number(), n);
        assert_eq!(TsType::from(n).number(), n);
    }
    for n in 0..=u16::MAX {
        assert_eq!(NotifyType::from(n).number(), n);
        assert_eq!(NotifyType::from(n).is_error(), n < 16384);
    }
    // A hand-built Other with a known number is the same value as the named variant.
    assert_eq!(NotifyType::Other(24), NotifyType::AuthenticationFailed);
    assert_eq!(NotifyType::from(24), NotifyType::AuthenticationFailed);
    assert!(matches!(
        NotifyType::from(24),
        NotifyType::AuthenticationFailed
    ));
    assert_eq!(
        NotifyType::AuthenticationFailed.to_string(),
        "AUTHENTICATION_FAILED"
    );
    assert_eq!(NotifyType::from(40_000).to_string(), "NotifyType(40000)");
}

#[test]
fn registry_numbers_match_the_iana_tables() {
    use NotifyType as N;
    let notifies = [
        (N::UnsupportedCriticalPayload, 1),
        (N::InvalidIkeSpi, 4),
        (N::InvalidMajorVersion, 5),
        (N::InvalidSyntax, 7),
        (N::InvalidMessageId, 9),
        (N::InvalidSpi, 11),
        (N::NoProposalChosen, 14),
        (N::InvalidKePayload, 17),
        (N::AuthenticationFailed, 24),
        (N::SinglePairRequired, 34),
        (N::NoAdditionalSas, 35),
        (N::InternalAddressFailure, 36),
        (N::FailedCpRequired, 37),
        (N::TsUnacceptable, 38),
        (N::InvalidSelectors, 39),
        (N::TemporaryFailure, 43),
        (N::ChildSaNotFound, 44),
        (N::InitialContact, 16384),
        (N::SetWindowSize, 16385),
        (N::AdditionalTsPossible, 16386),
        (N::IpcompSupported, 16387),
        (N::NatDetectionSourceIp, 16388),
        (N::NatDetectionDestinationIp, 16389),
        (N::Cookie, 16390),
        (N::UseTransportMode, 16391),
        (N::RekeySa, 16393),
        (N::EspTfcPaddingNotSupported, 16394),
        (N::NonFirstFragmentsAlso, 16395),
        (N::MobikeSupported, 16396),
        (N::Ikev2FragmentationSupported, 16430),
        (N::SignatureHashAlgorithms, 16431),
    ];
    for (n, v) in notifies {
        assert_eq!(n.number(), v, "{n:?}");
    }
    use PayloadType as P;
    let payloads = [
        (P::Sa, 33),
        (P::Ke, 34),
        (P::IdI, 35),
        (P::IdR, 36),
        (P::Cert, 37),
        (P::CertReq, 38),
        (P::Auth, 39),
        (P::Nonce, 40),
        (P::Notify, 41),
        (P::Delete, 42),
        (P::VendorId, 43),
        (P::TsI, 44),
        (P::TsR, 45),
        (P::Sk, 46),
        (P::Cp, 47),
        (P::Eap, 48),
        (P::Skf, 53),
    ];
    for (p, v) in payloads {
        assert_eq!(p.number(), v, "{p:?}");
    }
    assert_eq!(
        [
            ExchangeType::IkeSaInit,
            ExchangeType::IkeAuth,
            ExchangeType::CreateChildSa,
            ExchangeType::Informational
        ]
        .map(|e| e.number()),
        [34, 35, 36, 37]
    );
    assert_eq!(
        [
            IdType::Ipv4Addr,
            IdType::Fqdn,
            IdType::Rfc822Addr,
            IdType::Ipv6Addr,
            IdType::DerAsn1Dn,
            IdType::KeyId
        ]
        .map(|i| i.number()),
        [1, 2, 3, 5, 9, 11]
    );
    assert_eq!(
        [
            AuthMethod::RsaSig,
            AuthMethod::SharedKeyMic,
            AuthMethod::EcdsaSha256P256,
            AuthMethod::EcdsaSha384P384,
            AuthMethod::EcdsaSha512P521,
            AuthMethod::DigitalSignature
        ]
        .map(|a| a.number()),
        [1, 2, 9, 10, 11, 14]
    );
    assert_eq!(
        [TsType::Ipv4AddrRange, TsType::Ipv6AddrRange].map(|t| t.number()),
        [7, 8]
    );
    assert_eq!(
        [ProtocolId::Ike, ProtocolId::Ah, ProtocolId::Esp].map(|p| p.number()),
        [1, 2, 3]
    );
    assert_eq!(
        [
            TransformType::Encr,
            TransformType::Prf,
            TransformType::Integ,
            TransformType::Dh,
            TransformType::Esn
        ]
        .map(|t| t.number()),
        [1, 2, 3, 4, 5]
    );
}

#[test]
fn header_flags_and_version_bits() {
    let h = Header {
        spi_i: 1,
        spi_r: 2,
        next_payload: 0,
        major: 2,
        minor: 1,
        exchange: ExchangeType::Other(99),
        flags: Flags {
            initiator: false,
            version: true,
            response: true,
        },
        message_id: 0xffff_ffff,
        length: 28,
    };
    let b = h.encode();
    assert_eq!(b[17], 0x21);
    assert_eq!(b[18], 99);
    assert_eq!(b[19], 0x30);
    assert_eq!(Header::parse(&b).unwrap(), h);
    // Reserved flag bits are ignored on receipt.
    let mut b2 = b;
    b2[19] |= 0xc7;
    assert_eq!(Header::parse(&b2).unwrap(), h);
    assert_eq!(Message::parse(&b).unwrap().header, h);
}
