//! pcap files: reading captures, writing raw-IP ones, classifying Ethernet frames and picking
//! out ESP-in-UDP datagrams.

use std::fs;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;

pub struct PcapRecord {
    pub data: Vec<u8>,
}

pub struct Pcap {
    pub linktype: u32,
    pub records: Vec<PcapRecord>,
}

pub fn parse_pcap(b: &[u8]) -> Pcap {
    assert!(b.len() >= 24, "pcap too short ({} bytes)", b.len());
    let magic = u32::from_le_bytes(b[0..4].try_into().unwrap());
    let le = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        m => panic!("not a classic pcap file (magic {m:#x})"),
    };
    let rd = |o: usize| -> u32 {
        let a: [u8; 4] = b[o..o + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let linktype = rd(20);
    let mut records = Vec::new();
    let mut off = 24;
    while off + 16 <= b.len() {
        let incl = rd(off + 8) as usize;
        let start = off + 16;
        assert!(
            start + incl <= b.len(),
            "truncated pcap record at offset {off}"
        );
        records.push(PcapRecord {
            data: b[start..start + incl].to_vec(),
        });
        off = start + incl;
    }
    Pcap { linktype, records }
}

/// Writes a pcap of raw IPv4 packets (LINKTYPE_RAW = 101).
pub fn write_raw_ip_pcap(path: &Path, packets: &[Vec<u8>]) {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&0i32.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&101u32.to_le_bytes());
    for (i, p) in packets.iter().enumerate() {
        f.extend_from_slice(&(i as u32).to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(p);
    }
    fs::write(path, f).unwrap();
}

/// A UDP datagram seen in an Ethernet capture.
#[derive(Clone, Debug)]
pub struct UdpDatagram {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub payload: Vec<u8>,
}

/// What one Ethernet frame of a capture is.
#[derive(Debug)]
pub enum Frame {
    Udp(UdpDatagram),
    /// IPv4 but not UDP (protocol number, src, dst).
    OtherIpv4(u8, Ipv4Addr, Ipv4Addr),
    /// Not IPv4 (ethertype).
    NonIpv4(u16),
}

pub fn classify_ethernet(f: &[u8]) -> Frame {
    assert!(f.len() >= 14, "short Ethernet frame");
    let et = u16::from_be_bytes([f[12], f[13]]);
    if et != 0x0800 {
        return Frame::NonIpv4(et);
    }
    let ip = &f[14..];
    assert!(ip.len() >= 20 && ip[0] >> 4 == 4, "bad IPv4 header");
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    let tot = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    let proto = ip[9];
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    if proto != 17 {
        return Frame::OtherIpv4(proto, src, dst);
    }
    let udp = &ip[ihl..tot.min(ip.len())];
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    let ulen = u16::from_be_bytes([udp[4], udp[5]]) as usize;
    Frame::Udp(UdpDatagram {
        src: SocketAddrV4::new(src, sport),
        dst: SocketAddrV4::new(dst, dport),
        payload: udp[8..ulen.min(udp.len())].to_vec(),
    })
}

/// ESP-in-UDP payloads (not IKE with its zero marker, not a 0xFF keepalive) sent from `src` to
/// `dst` in an Ethernet capture.
pub fn esp_datagrams(pcap: &Pcap, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<UdpDatagram> {
    assert_eq!(pcap.linktype, 1, "expected an Ethernet capture");
    pcap.records
        .iter()
        .filter_map(|r| match classify_ethernet(&r.data) {
            Frame::Udp(d) if *d.src.ip() == src && *d.dst.ip() == dst && d.dst.port() == 4500 => {
                let p = &d.payload;
                if p.len() > 8 && p[0..4] != [0, 0, 0, 0] {
                    Some(d)
                } else {
                    None
                }
            }
            _ => None,
        })
        .collect()
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}
