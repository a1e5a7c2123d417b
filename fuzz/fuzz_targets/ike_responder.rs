//! An IKEv2 responder with a fixed configuration fed a conversation of datagrams (framing in
//! `src/lib.rs`), with a fake clock: it must never panic, and whatever it sends must be an
//! IKE message it can parse itself.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ironsec_fuzz::run_responder(data);
});
