//! Virtual IPs for remote-access clients (RFC 7296 §3.15, issue 24) between two sans-IO
//! endpoints: A is the client (`VipRole::Request`, TSi 0.0.0.0/0), B the gateway with a pool
//! (`VipRole::Assign`). The address, the DNS server and the split-tunnel subnet reach A in the
//! CFG_REPLY, both CHILD_SAs are narrowed to the address, the lease survives an IKE rekey, is
//! released when the client goes and comes back to it within the grace period, and an
//! exhausted pool is answered with INTERNAL_ADDRESS_FAILURE. IPv6 (INTERNAL_IP6_ADDRESS and
//! INTERNAL_IP6_DNS): a /128 from an IPv6 pool, a dual-stack client's one CHILD_SA with its /32
//! and its /128, and a client that asks for one family of a dual-stack connection gets only
//! that family.

use std::net::IpAddr;
use std::time::Duration;

use ironsec_ike::config::{VipPool, VipRequest, VipRole};
use ironsec_ike::pool::LeaseState;
use ironsec_ike::testkit::*;
use ironsec_ike::wire::NotifyType;
use ironsec_ike::{Event, Identity, PeerConfig};

const IKE: &str = "aes128gcm16-prfsha256-x25519";
const ESP: &str = "aes128gcm16";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A asks for an IPv4 address; B hands them out of `range` (DNS 10.2.0.53) to any identity.
fn client_and_gateway(range: &str) -> (PeerConfig, PeerConfig) {
    client_and_gateway_of(&[range], VipRequest::V4)
}

/// A asks for the families of `want`; B hands addresses out of `ranges`, with DNS 10.2.0.53
/// and 2001:db8:2::53, and its LAN is 10.2.0.0/24 and 2001:db8:2::/64.
fn client_and_gateway_of(ranges: &[&str], want: VipRequest) -> (PeerConfig, PeerConfig) {
    let (mut a, mut b) = pair_configs(IKE, ESP);
    a.vip = VipRole::Request(want);
    a.local_ts = vec![sel("0.0.0.0/0"), sel("::/0")];
    a.remote_ts = vec![sel("10.2.0.0/24"), sel("2001:db8:2::/64")];
    b.local_ts = a.remote_ts.clone();
    b.vip = VipRole::Assign(VipPool {
        ranges: ranges.iter().map(|r| r.to_string()).collect(),
        grace: Duration::from_secs(60),
        dns: vec![ip("10.2.0.53"), ip("2001:db8:2::53")],
    });
    b.remote_id = Identity::parse("*.example");
    b.remote_ts = vec![sel("0.0.0.0/0"), sel("::/0")];
    (a, b)
}

fn vips(events: &[Event]) -> Vec<(Vec<IpAddr>, Vec<IpAddr>, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::VirtualIp {
                addresses,
                dns,
                to_peer,
                ..
            } => Some((addresses.clone(), dns.clone(), *to_peer)),
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

fn lease_states(n: &Net) -> Vec<(IpAddr, String, bool)> {
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
    // Only the IPv4 resolver: the client has no IPv6 address to reach the other with.
    assert_eq!(
        vips(&n.events_a),
        [(vec![want], vec![ip("10.2.0.53")], false)]
    );
    assert_eq!(
        vips(&n.events_b),
        [(vec![want], vec![ip("10.2.0.53")], true)]
    );
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
    assert_eq!(vips(&n.events_a)[0].0[0], ip("10.10.0.1"));
}

#[test]
fn an_exhausted_pool_answers_internal_address_failure() {
    // One address, held by another client within its grace period... by a connected one:
    // the gateway's pool is a /32 and A connects twice under two identities.
    let (a, b) = client_and_gateway("10.10.0.9/32");
    let mut n = Net::new(a.clone(), b);
    n.initiate_a();
    assert_eq!(vips(&n.events_a)[0].0[0], ip("10.10.0.9"));
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
    client.vip = VipRole::Request(VipRequest::V4);
    client.local_ts = vec![sel("0.0.0.0/0")];
    let mut n = Net::new(client, site.clone());
    n.b.set_peers(vec![ra, site]);
    n.initiate_a();
    assert_eq!(up_conn(&n.events_b), "clients");
    assert_eq!(vips(&n.events_a)[0].0[0], ip("10.10.0.1"));
}

#[test]
fn an_ipv6_client_gets_a_128_an_ipv6_resolver_and_narrowed_selectors() {
    let (a, b) = client_and_gateway_of(&["2001:db8:99::/112"], VipRequest::V6);
    let mut n = Net::new(a, b);
    n.initiate_a();
    let want = ip("2001:db8:99::1");
    assert_eq!(
        vips(&n.events_a),
        [(vec![want], vec![ip("2001:db8:2::53")], false)]
    );
    assert_eq!(
        vips(&n.events_b),
        [(vec![want], vec![ip("2001:db8:2::53")], true)]
    );
    let (ca, cb) = (children(&n.events_a), children(&n.events_b));
    assert_eq!(ca.len(), 1, "{:?}", n.events_a);
    assert_eq!(ca[0].local_ts, [sel("2001:db8:99::1/128")]);
    assert_eq!(ca[0].remote_ts, [sel("2001:db8:2::/64")]);
    assert_eq!(cb[0].remote_ts, [sel("2001:db8:99::1/128")]);
    assert_eq!(cb[0].local_ts, [sel("2001:db8:2::/64")]);
    assert_eq!(lease_states(&n), [(want, "gw-a.example".to_string(), true)]);
}

#[test]
fn a_dual_stack_client_gets_both_in_one_child_sa_and_keeps_both_across_reconnects() {
    let (a, b) = client_and_gateway_of(&["10.10.0.0/29", "2001:db8:99::/112"], VipRequest::DUAL);
    let mut n = Net::new(a, b);
    n.initiate_a();
    let (v4, v6) = (ip("10.10.0.1"), ip("2001:db8:99::1"));
    let dns = vec![ip("10.2.0.53"), ip("2001:db8:2::53")];
    assert_eq!(vips(&n.events_a), [(vec![v4, v6], dns.clone(), false)]);
    assert_eq!(vips(&n.events_b), [(vec![v4, v6], dns, true)]);
    let (ca, cb) = (children(&n.events_a), children(&n.events_b));
    assert_eq!(ca.len(), 1, "one CHILD_SA: {:?}", n.events_a);
    assert_eq!(
        ca[0].local_ts,
        [sel("10.10.0.1/32"), sel("2001:db8:99::1/128")]
    );
    assert_eq!(
        cb[0].remote_ts,
        [sel("10.10.0.1/32"), sel("2001:db8:99::1/128")]
    );
    assert_eq!(cb[0].local_ts, [sel("10.2.0.0/24"), sel("2001:db8:2::/64")]);
    let owner = "gw-a.example".to_string();
    assert_eq!(
        lease_states(&n),
        [(v4, owner.clone(), true), (v6, owner.clone(), true)]
    );
    // The client goes: both are kept for it, and it gets both again.
    let ike = n.a.ike_sas()[0].id;
    n.a.terminate(n.now, ike).unwrap();
    n.pump();
    assert_eq!(
        lease_states(&n),
        [(v4, owner.clone(), false), (v6, owner, false)]
    );
    n.run_for(Duration::from_secs(10));
    n.events_a.clear();
    n.initiate_a();
    assert_eq!(vips(&n.events_a)[0].0, [v4, v6]);
}

#[test]
fn one_family_asked_of_a_dual_stack_pool_is_one_family_given() {
    let pools = ["10.10.0.0/29", "2001:db8:99::/112"];
    for (want, addr, dns, local, remote) in [
        (
            VipRequest::V4,
            "10.10.0.1",
            "10.2.0.53",
            "10.10.0.1/32",
            "10.2.0.0/24",
        ),
        (
            VipRequest::V6,
            "2001:db8:99::1",
            "2001:db8:2::53",
            "2001:db8:99::1/128",
            "2001:db8:2::/64",
        ),
    ] {
        let (a, b) = client_and_gateway_of(&pools, want);
        let mut n = Net::new(a, b);
        n.initiate_a();
        assert_eq!(
            vips(&n.events_a),
            [(vec![ip(addr)], vec![ip(dns)], false)],
            "{want:?}"
        );
        let ca = children(&n.events_a);
        assert_eq!(ca[0].local_ts, [sel(local)], "{want:?}");
        assert_eq!(ca[0].remote_ts, [sel(remote)], "{want:?}");
        assert_eq!(n.b.leases("to-a").len(), 1, "{want:?}: one lease");
    }
}

#[test]
fn ipv6_asked_of_an_ipv4_only_pool_answers_internal_address_failure() {
    let (a, b) = client_and_gateway_of(&["10.10.0.0/29"], VipRequest::V6);
    let mut n = Net::new(a, b);
    n.initiate_a();
    let detail = n
        .events_b
        .iter()
        .find_map(|e| match e {
            Event::Failure { notify, detail, .. }
                if *notify == NotifyType::InternalAddressFailure =>
            {
                Some(detail.clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("B: {:?}", n.events_b));
    assert!(detail.contains("of the family asked for"), "{detail}");
    assert!(children(&n.events_a).is_empty() && vips(&n.events_a).is_empty());
    assert!(n.b.leases("to-a").is_empty());
}
