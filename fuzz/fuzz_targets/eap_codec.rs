//! The EAP codec and the EAP-MSCHAPv2 state machines on arbitrary bytes: `Packet::parse`
//! never panics and what it accepts encodes back to the same bytes; a server past its
//! Identity request and a client take any input as their next packet without panicking.

#![no_main]

use std::sync::{Arc, OnceLock};

use ironsec_ike::eap::codec::Packet;
use ironsec_ike::eap::{nthash, Client, Server, Users};
use libfuzzer_sys::fuzz_target;

fn users() -> Arc<Users> {
    static USERS: OnceLock<Arc<Users>> = OnceLock::new();
    USERS
        .get_or_init(|| {
            let mut u = Users::new();
            u.insert("alice", nthash("password"));
            Arc::new(u)
        })
        .clone()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packet::parse(data) {
        assert_eq!(p.encode(), data, "accepted packet does not re-encode to its bytes");
    }
    // The same bytes as each round's input: Identity, then (after a valid identity) more.
    let mut server = Server::new(users(), [7; 16], 1);
    let _ = server.start();
    let _ = server.step(data);
    let mut client = Client::new("alice", nthash("password"), [9; 16]);
    let _ = client.step(data);
    let _ = client.step(data);
});
