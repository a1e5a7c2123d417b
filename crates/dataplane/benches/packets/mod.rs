//! Inner packets shared by the criterion bench (`benches/path.rs`) and the instruction-count
//! example (`examples/path_instructions.rs`), so both measure the same bytes.

use ironsec_dataplane::offload::VnetHdr;

/// An IPv4/UDP packet of `len` bytes, 10.1.0.2 -> 10.2.0.2.
pub fn udp4(len: usize) -> Vec<u8> {
    let mut p = vec![0x5au8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 1, 0, 2]);
    p[16..20].copy_from_slice(&[10, 2, 0, 2]);
    p
}

/// A 64 KiB TCP super-packet as an offloading TUN device hands it over: 46 segments of 1348
/// bytes (1400-byte packets: 20 bytes of IP, 32 of TCP with timestamps).
pub fn tso_super_packet() -> (Vec<u8>, VnetHdr) {
    let mss = 1348usize;
    let mut sup = vec![0x33u8; 52 + 46 * mss];
    sup[0] = 0x45;
    sup[9] = 6;
    sup[12..16].copy_from_slice(&[10, 1, 0, 2]);
    sup[16..20].copy_from_slice(&[10, 2, 0, 2]);
    sup[32] = 8 << 4;
    sup[33] = 0x10;
    let h = VnetHdr {
        flags: 1,
        gso_type: 1,
        hdr_len: 52,
        gso_size: mss as u16,
        csum_start: 20,
        csum_offset: 16,
    };
    (sup, h)
}

/// The tables of a gateway with one site-to-site tunnel (10.1.0.0/16 <-> 10.2.0.0/24,
/// AES-128-GCM, sending with `out`) and `hosts` remote-access clients beside it: a tunnel per
/// client (no SA; only its policy matters here) and a policy 10.1.0.0/16 <-> 10.9.x.y/32 for
/// its virtual IP, the [`host`]th. [`udp4`] is a site packet of these tables.
#[allow(dead_code)] // each of the bench and the example uses its own part of this module
pub fn site_and_hosts(hosts: usize, out: (u32, &[u8])) -> ironsec_dataplane::Tables {
    use std::sync::Arc;

    use ironsec_dataplane::{OutboundEntry, PerWorker, Policy, Tables, Tunnel};
    let wan = |host: u8| std::net::SocketAddr::from(([192, 0, 2, host], 4500));
    let sa = ironsec_esp::OutboundSa::new(ironsec_esp::Suite::Aes128Gcm16, out.0, out.1, true)
        .expect("key");
    let site = Tunnel::new(
        "site".into(),
        0,
        wan(1),
        wan(2),
        Some(Arc::new(OutboundEntry {
            sa,
            counters: PerWorker::new(1),
            watch: None,
        })),
    );
    let local: ironsec_dataplane::Prefix = "10.1.0.0/16".parse().expect("prefix");
    let policy = |remote: std::net::Ipv4Addr, len: u8, tunnel| Policy {
        local,
        remote: ironsec_dataplane::Prefix::new(remote.into(), len).expect("prefix"),
        tunnel,
        ports: None,
        scope: None,
    };
    let mut tunnels = vec![site];
    let mut policies = vec![policy([10, 2, 0, 0].into(), 24, 0)];
    for i in 0..hosts {
        tunnels.push(Tunnel::new("client".into(), 0, wan(1), wan(3), None));
        policies.push(policy(host(i), 32, i + 1));
    }
    Tables::new(tunnels, policies, vec![]).expect("tables")
}

/// `sites` site-to-site connections from 10.1.0.0/16, each to a /24 of its own (site `i`:
/// [`site_net`]`(i)`), every one a policy-based tunnel sharing one outbound SA.
#[allow(dead_code)]
pub fn many_sites(sites: usize, out: (u32, &[u8])) -> ironsec_dataplane::Tables {
    use std::sync::Arc;

    use ironsec_dataplane::{OutboundEntry, PerWorker, Policy, Tables, Tunnel};
    let wan = |host: u8| std::net::SocketAddr::from(([192, 0, 2, host], 4500));
    let sa = ironsec_esp::OutboundSa::new(ironsec_esp::Suite::Aes128Gcm16, out.0, out.1, true)
        .expect("key");
    let entry = Arc::new(OutboundEntry {
        sa,
        counters: PerWorker::new(1),
        watch: None,
    });
    let local: ironsec_dataplane::Prefix = "10.1.0.0/16".parse().expect("prefix");
    let mut tunnels = Vec::with_capacity(sites);
    let mut policies = Vec::with_capacity(sites);
    for i in 0..sites {
        tunnels.push(Tunnel::new(
            "site".into(),
            0,
            wan(1),
            wan(2),
            Some(entry.clone()),
        ));
        policies.push(Policy {
            local,
            remote: ironsec_dataplane::Prefix::new(site_net(i).into(), 24).expect("prefix"),
            tunnel: i,
            ports: None,
            scope: None,
        });
    }
    Tables::new(tunnels, policies, vec![]).expect("tables")
}

/// The /24 of site `i` in [`many_sites`]: 10.128.0.0/24 on (up to 32,768 sites).
#[allow(dead_code)]
pub fn site_net(i: usize) -> std::net::Ipv4Addr {
    let n = u32::from(std::net::Ipv4Addr::new(10, 128, 0, 0)) + ((i as u32) << 8);
    n.into()
}

/// The virtual IP of remote-access client `i` in [`site_and_hosts`]: 10.9.0.1 on.
#[allow(dead_code)]
pub fn host(i: usize) -> std::net::Ipv4Addr {
    let n = u32::from(std::net::Ipv4Addr::new(10, 9, 0, 1)) + i as u32;
    n.into()
}
