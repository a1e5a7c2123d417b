//! The IKE wire codec: `Message::parse` and `parse_chain` on arbitrary bytes never panic, and
//! what they accept survives re-encoding: parse(encode(parse(x))) == parse(x).

#![no_main]

use ironsec_ike::wire::{encode_chain, encode_message, parse_chain, Header, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data) {
        // Encrypted messages cannot be rebuilt without keys; cleartext ones can.
        if m.encrypted.is_none() {
            let again = encode_message(&m.header, &m.payloads);
            let m2 = Message::parse(&again).unwrap_or_else(|e| {
                panic!("re-encoded message does not parse: {e}\n{m:?}\n{again:02x?}")
            });
            assert_eq!(m2.payloads, m.payloads, "payloads changed by re-encoding");
            assert_eq!(m2.encrypted, None);
            let strip = |h: &Header| Header {
                next_payload: 0,
                length: 0,
                ..h.clone()
            };
            assert_eq!(strip(&m2.header), strip(&m.header), "header changed");
            assert_eq!(m2.header.length as usize, again.len());
        }
    }
    if let Some((&first, rest)) = data.split_first() {
        if let Ok(payloads) = parse_chain(first, rest) {
            let (first2, bytes) = encode_chain(&payloads);
            let again = parse_chain(first2, &bytes).unwrap_or_else(|e| {
                panic!("re-encoded chain does not parse: {e}\n{payloads:?}\n{bytes:02x?}")
            });
            assert_eq!(again, payloads, "chain changed by re-encoding");
        }
    }
});
