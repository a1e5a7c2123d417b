//! Known-answer tests for the wire codec: a real IKE_SA_INIT request from a public capture,
//! and hand-built encodings laid out field by field from RFC 7296 section 3.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ironsec_ike::wire::*;

fn unhex(parts: &[&str]) -> Vec<u8> {
    hex::decode(parts.concat()).expect("test hex")
}

/// The first IKE_SA_INIT request of Wireshark's sample capture "Dissection of encrypted (and
/// UDP-encapsulated) IKEv2 and ESP messages" (wiki.wireshark.org/SampleCaptures), a
/// strongSwan initiator, split here along the RFC 7296 field layout.
#[rustfmt::skip]
const CAPTURE: &[&str] = &[
    // IKE header: SPIi, SPIr, Next Payload SA (33), version 2.0, IKE_SA_INIT (34),
    // flags Initiator, Message ID 0, Length 300.
    "89922c915f35570e", "0000000000000000", "21", "20", "22", "08", "00000000", "0000012c",
    // SA: next KE, length 40.
    "22000028",
    //   Proposal: last, length 36; #1, IKE, SPI size 0, 3 transforms.
    "00000024", "01010003",
    //     Transform: more, length 12; ENCR 20 (AES-GCM 16-byte ICV), Key Length (TV) 256.
    "0300000c", "01000014", "800e0100",
    //     Transform: more, length 8; PRF 5 (HMAC-SHA2-256).
    "03000008", "02000005",
    //     Transform: last, length 8; D-H 19 (256-bit ECP).
    "00000008", "04000013",
    // KE: next Nonce, length 72; group 19, RESERVED, 64 bytes of public value.
    "28000048", "00130000",
    "db253178440ce776a794133cb8b69e5eb074733536570c64d7b630549c899c07",
    "12d828b37168500885e051024578afc75c101f73b8943cad62d74a30f2be1fca",
    // Nonce: next V, length 44; 40 bytes.
    "2b00002c", "09cb538b2c3dbd4d0bb0eec8d318cb801a9b4715b207828d9b5ff1f4ec64ed58863707bcf14ccf05",
    // Four Vendor IDs.
    "2b000014", "eb4c1b788afd4a9cb7730a68d56c5321",
    "2b000014", "c61baca1f1a60cc10800000000000000",
    "2b000018", "4048b7d56ebce88525e7de7f00d6c2d3c0000000",
    "29000014", "4048b7d56ebce88525e7de7f00d6c2d3",
    // N(IKEV2_FRAGMENTATION_SUPPORTED): protocol 0, SPI size 0, type 16430.
    "29000008", "0000402e",
    // N(REDIRECT_SUPPORTED): type 16406.
    "29000008", "00004016",
    // N(SIGNATURE_HASH_ALGORITHMS), last: type 16431, hashes 1, 2, 3, 4.
    "00000010", "0000402f", "0001000200030004",
];

#[test]
fn capture_ike_sa_init_parses_field_by_field() {
    let bytes = unhex(CAPTURE);
    assert_eq!(bytes.len(), 300);
    let m = Message::parse(&bytes).unwrap();
    assert_eq!(
        m.header,
        Header {
            spi_i: 0x8992_2c91_5f35_570e,
            spi_r: 0,
            next_payload: 33,
            major: 2,
            minor: 0,
            exchange: ExchangeType::IkeSaInit,
            flags: Flags {
                initiator: true,
                version: false,
                response: false
            },
            message_id: 0,
            length: 300,
        }
    );
    assert_eq!(m.encrypted, None);
    let kinds: Vec<PayloadType> = m.payloads.iter().map(Payload::kind).collect();
    use PayloadType as T;
    assert_eq!(
        kinds,
        [
            T::Sa,
            T::Ke,
            T::Nonce,
            T::VendorId,
            T::VendorId,
            T::VendorId,
            T::VendorId,
            T::Notify,
            T::Notify,
            T::Notify
        ]
    );
    let Payload::Sa(sa) = &m.payloads[0] else {
        panic!()
    };
    assert_eq!(
        sa.proposals,
        [Proposal {
            number: 1,
            protocol: ProtocolId::Ike,
            spi: vec![],
            transforms: vec![
                Transform {
                    kind: TransformType::Encr,
                    id: 20,
                    key_length: Some(256),
                    other_attributes: vec![]
                },
                Transform {
                    kind: TransformType::Prf,
                    id: 5,
                    key_length: None,
                    other_attributes: vec![]
                },
                Transform {
                    kind: TransformType::Dh,
                    id: 19,
                    key_length: None,
                    other_attributes: vec![]
                },
            ],
        }]
    );
    let Payload::Ke(ke) = &m.payloads[1] else {
        panic!()
    };
    assert_eq!(ke.group, 19);
    assert_eq!(ke.data.len(), 64);
    assert_eq!(ke.data[..4], [0xdb, 0x25, 0x31, 0x78]);
    let Payload::Nonce(n) = &m.payloads[2] else {
        panic!()
    };
    assert_eq!(n.len(), 40);
    let Payload::VendorId(v) = &m.payloads[5] else {
        panic!()
    };
    assert_eq!(v.len(), 20);
    let notifies: Vec<(NotifyType, Vec<u8>)> = m
        .payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Notify(n) => Some((n.kind, n.data.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        notifies,
        [
            (NotifyType::Ikev2FragmentationSupported, vec![]),
            (NotifyType::RedirectSupported, vec![]),
            (
                NotifyType::SignatureHashAlgorithms,
                vec![0, 1, 0, 2, 0, 3, 0, 4]
            ),
        ]
    );
}

#[test]
fn capture_ike_sa_init_reencodes_byte_for_byte() {
    let bytes = unhex(CAPTURE);
    let m = Message::parse(&bytes).unwrap();
    // The encoder computes length and next payload itself: feed it wrong ones.
    let header = Header {
        length: 0,
        next_payload: 0,
        ..m.header.clone()
    };
    assert_eq!(
        hex::encode(encode_message(&header, &m.payloads)),
        hex::encode(&bytes)
    );
}

/// Built by hand from RFC 7296 sections 3.5, 3.8, 3.10, 3.11 and 3.13 (no public capture of
/// these payloads in clear exists: they travel encrypted).
#[test]
fn hand_built_inner_chain() {
    let payloads = vec![
        Payload::IdI(IdPayload {
            id_type: IdType::Fqdn,
            data: b"gw-a".to_vec(),
        }),
        Payload::Auth(AuthPayload {
            method: AuthMethod::SharedKeyMic,
            data: vec![0xaa; 4],
        }),
        Payload::Notify(NotifyPayload {
            protocol: 3,
            spi: vec![1, 2, 3, 4],
            kind: NotifyType::RekeySa,
            data: vec![],
        }),
        Payload::Delete(DeletePayload {
            protocol: ProtocolId::Esp,
            spi_size: 4,
            spis: vec![vec![9, 9, 9, 9], vec![8, 8, 8, 8]],
        }),
        Payload::TsI(vec![TrafficSelector {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            start: IpAddr::V4(Ipv4Addr::new(10, 1, 0, 0)),
            end: IpAddr::V4(Ipv4Addr::new(10, 1, 0, 255)),
        }]),
        Payload::TsR(vec![TrafficSelector {
            ip_protocol: 17,
            start_port: 500,
            end_port: 500,
            start: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            end: IpAddr::V6(Ipv6Addr::from(u128::MAX)),
        }]),
    ];
    #[rustfmt::skip]
    let expected = unhex(&[
        // IDi: next AUTH (39), length 12; ID_FQDN, RESERVED, "gw-a".
        "2700000c", "02000000", "67772d61",
        // AUTH: next N (41), length 12; Shared Key MIC, RESERVED, 4 bytes.
        "2900000c", "02000000", "aaaaaaaa",
        // N: next D (42), length 12; ESP, SPI size 4, REKEY_SA (16393), SPI.
        "2a00000c", "03044009", "01020304",
        // D: next TSi (44), length 16; ESP, SPI size 4, 2 SPIs.
        "2c000010", "03040002", "09090909", "08080808",
        // TSi: next TSr (45), length 24; 1 selector, RESERVED;
        //   TS_IPV4_ADDR_RANGE, any protocol, length 16, ports 0-65535, 10.1.0.0-10.1.0.255.
        "2d000018", "01000000", "07000010", "0000ffff", "0a010000", "0a0100ff",
        // TSr: last, length 48; 1 selector; TS_IPV6_ADDR_RANGE, UDP, length 40, ports 500-500,
        //   :: to ffff:...:ffff.
        "00000030", "01000000", "08110028", "01f401f4",
        "00000000000000000000000000000000", "ffffffffffffffffffffffffffffffff",
    ]);
    let (first, bytes) = encode_chain(&payloads);
    assert_eq!(first, 35);
    assert_eq!(hex::encode(&bytes), hex::encode(&expected));
    assert_eq!(parse_chain(35, &expected).unwrap(), payloads);
}

/// An SK message laid out by hand from RFC 7296 section 3.14 with RFC 5282's AEAD layout
/// (8-byte IV, 16-byte ICV, no padding).
#[test]
fn hand_built_sk_layout() {
    let header = Header {
        spi_i: 0x0102_0304_0506_0708,
        spi_r: 0x1112_1314_1516_1718,
        next_payload: 0,
        major: 2,
        minor: 0,
        exchange: ExchangeType::Informational,
        flags: Flags {
            initiator: true,
            version: false,
            response: false,
        },
        message_id: 2,
        length: 0,
    };
    // An empty INFORMATIONAL (a liveness check): SK with Next Payload 0.
    let l = layout_sk(&header, &[], 0, &[], SkShape::AEAD);
    #[rustfmt::skip]
    let expected = unhex(&[
        "0102030405060708", "1112131415161718",
        // Next Payload SK (46), version 2.0, INFORMATIONAL (37), Initiator, Message ID 2, length 57.
        "2e202508", "00000002", "00000039",
        // SK: no inner payload, length 29 = 4 + IV 8 + Pad Length 1 + ICV 16.
        "0000001d",
        "0000000000000000", "00", "00000000000000000000000000000000",
    ]);
    assert_eq!(hex::encode(&l.bytes), hex::encode(&expected));
    assert_eq!(
        (l.aad, l.iv, l.plaintext, l.icv),
        (0..32, 32..40, 40..41, 41..57)
    );
}
