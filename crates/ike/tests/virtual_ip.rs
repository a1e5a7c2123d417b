//! Virtual IPs for remote-access clients (RFC 7296 §3.15, issue 24) between two sans-IO
//! endpoints: A is the client (`VipRole::Request`, TSi 0.0.0.0/0), B the gateway with a pool
//! (`VipRole::Assign`). The address, the DNS server and the split-tunnel subnet reach A in the
//! CFG_REPLY, both CHILD_SAs are narrowed to the address, the lease survives an IKE rekey, is
//! released when the client goes and comes back to it within the grace period, and an
//! exhausted pool is answered with INTERNAL_ADDRESS_FAILURE.

use std::net::Ipv4Addr;
use std::time::Duration;

use ironsec_ike::config::{VipPool, VipRole};
use ironsec_ike::pool::LeaseState;
use ironsec_ike::testkit::*;
use ironsec_ike::wire::NotifyType;
use ironsec_ike::{Event, Identity, PeerConfig};

const IKE: &str = "aes128gcm16-prfsha256-x25519";
const ESP: &str = "aes128gcm16";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// A asks for an address; B hands them out of `range` (DNS 10.2.0.53) to any identity.
fn client_and_gateway(range: &str) -> (PeerConfig, PeerConfig) {
    let (mut a, mut b) = pair_configs(IKE, ESP);
    a.vip = VipRole::Request;
    a.local_ts = vec![sel("0.0.0.0/0")];
    b.vip = VipRole::Assign(VipPool {
        range: range.into(),
        grace: Duration::from_secs(60),
        dns: vec![ip("10.2.0.53")],
    });
    b.remote_id = Identity::parse("*.example");
    b.remote_ts = vec![sel("0.0.0.0/0")];
    (a, b)
}

fn vips(events: &[Event]) -> Vec<(Ipv4Addr, Vec<Ipv4Addr>, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::VirtualIp {
                address,
                dns,
                to_peer,
                ..
            } => Some((*address, dns.clone(), *to_peer)),
            _ => None,
        })
        .collect()
}

fn children(events: &[Event]) -> Vec<&ironsec_ike::ChildSaInfo> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaUp { child, .. } => Some(child),
            _ => None,
        })
        .collect()
}

fn lease_states(n: &Net) -> Vec<(Ipv4Addr, String, bool)> {
    n.b.leases("to-a")
        .into_iter()
        .map(|l| {
            let active = matches!(l.state, LeaseState::Active { .. });
            (l.address, l.owner, active)
        })
        .collect()
}

#[test]
fn the_client_gets_an_address_dns_and_narrowed_selectors() {
    let (a, b) = client_and_gateway("10.10.0.0/29");
    let mut n = Net::new(a, b);
    n.initiate_a();
    let want = ip("10.10.0.1");
    assert_eq!(vips(&n.events_a), [(want, vec![ip("10.2.0.53")], false)]);
    assert_eq!(vips(&n.events_b), [(want, vec![ip("10.2.0.53")], true)]);
    let (ca, cb) = (children(&n.events_a), children(&n.events_b));
    assert_eq!(ca.len(), 1, "{:?}", n.events_a);
    assert_eq!(ca[0].local_ts, [sel("10.10.0.1/32")]);
    assert_eq!(ca[0].remote_ts, [sel("10.2.0.0/24")]);
    assert_eq!(cb[0].remote_ts, [sel("10.10.0.1/32")]);
    assert_eq!(cb[0].local_ts, [sel("10.2.0.0/24")]);
    assert_eq!(lease_states(&n), [(want, "gw-a.example".to_string(), true)]);
}

#[test]
fn the_lease_survives_an_ike_rekey_and_waits_for_the_client_after_it_left() {
    let (mut a, b) = client_and_gateway("10.10.0.0/29");
    a.lifetimes.ike_rekey = Duration::from_secs(100);
    a.lifetimes.jitter = Duration::ZERO;
    let mut n = Net::new(a, b);
    n.initiate_a();
    n.run_for(Duration::from_secs(150));
    let rekeys = n.count(|e| matches!(e, Event::IkeSaRekeyed { .. }));
    assert!(rekeys.0 >= 1 && rekeys.1 >= 1, "no IKE rekey: {rekeys:?}");
    assert_eq!(
        lease_states(&n),
        [(ip("10.10.0.1"), "gw-a.example".to_string(), true)],
        "the rekey released the lease"
    );
    // The client goes: the lease is kept for it.
    let ike = n.a.ike_sas()[0].id;
    n.a.terminate(n.now, ike).unwrap();
    n.pump();
    assert_eq!(
        lease_states(&n),
        [(ip("10.10.0.1"), "gw-a.example".to_string(), false)]
    );
    // ... and it gets the same address when it comes back within the grace period.
    n.run_for(Duration::from_secs(10));
    n.events_a.clear();
    n.initiate_a();
    assert_eq!(vips(&n.events_a)[0].0, ip("10.10.0.1"));
}

#[test]
fn an_exhausted_pool_answers_internal_address_failure() {
    // One address, held by another client within its grace period... by a connected one:
    // the gateway's pool is a /32 and A connects twice under two identities.
    let (a, b) = client_and_gateway("10.10.0.9/32");
    let mut n = Net::new(a.clone(), b);
    n.initiate_a();
    assert_eq!(vips(&n.events_a)[0].0, ip("10.10.0.9"));
    let mut other = a;
    other.local_id = Identity::parse("laptop.example");
    n.a.set_peers(vec![other]);
    n.events_a.clear();
    n.events_b.clear();
    n.initiate_a();
    let failed = |ev: &[Event]| {
        ev.iter().any(|e| {
            matches!(e, Event::Failure { notify, .. } if *notify == NotifyType::InternalAddressFailure)
        })
    };
    assert!(failed(&n.events_b), "B: {:?}", n.events_b);
    let detail = n
        .events_b
        .iter()
        .find_map(|e| match e {
            Event::Failure { detail, .. } => Some(detail.clone()),
            _ => None,
        })
        .unwrap();
    assert!(detail.contains("exhausted"), "{detail}");
    assert!(children(&n.events_a).is_empty() && vips(&n.events_a).is_empty());
    assert!(failed(&n.events_a), "A: {:?}", n.events_a);
}

/// A gateway with a remote-access connection for `*.example` listed before a site's own
/// connection for `gw-a.example`: the site gets its own connection (the most specific
/// `remote_id`), another identity the remote-access one.
#[test]
fn the_most_specific_remote_id_wins() {
    let (a, site) = pair_configs(IKE, ESP);
    let (_, mut ra) = client_and_gateway("10.10.0.0/29");
    ra.name = "clients".into();
    let mut n = Net::new(a.clone(), site.clone());
    n.b.set_peers(vec![ra.clone(), site.clone()]);
    n.initiate_a();
    let up_conn = |ev: &[Event]| {
        ev.iter()
            .find_map(|e| match e {
                Event::IkeSaUp { conn, .. } => Some(conn.to_string()),
                _ => None,
            })
            .unwrap_or_default()
    };
    assert_eq!(up_conn(&n.events_b), "to-a");
    // The same gateway, a client under another name: the remote-access connection.
    let mut client = a;
    client.local_id = Identity::parse("laptop.example");
    client.vip = VipRole::Request;
    client.local_ts = vec![sel("0.0.0.0/0")];
    let mut n = Net::new(client, site.clone());
    n.b.set_peers(vec![ra, site]);
    n.initiate_a();
    assert_eq!(up_conn(&n.events_b), "clients");
    assert_eq!(vips(&n.events_a)[0].0, ip("10.10.0.1"));
}
