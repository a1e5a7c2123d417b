//! What `ironsecctl status` shows, as one set of serde types: the daemon serializes them, the
//! CLI deserializes them and renders a table, `--json` prints them as they are.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub version: String,
    pub tun: String,
    pub workers: usize,
    pub uptime_secs: u64,
    pub counters: Counters,
    /// Gateway-wide drop totals by reason (including the per-SA ones).
    pub drops: BTreeMap<String, u64>,
    pub connections: Vec<ConnectionStatus>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Counters {
    pub tun_rx_packets: u64,
    pub tun_tx_packets: u64,
    pub udp_rx_packets: u64,
    pub udp_tx_packets: u64,
    pub ike_packets: u64,
    pub keepalives: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ConnectionStatus {
    pub name: String,
    pub keying: String,
    pub local_ts: Vec<String>,
    pub remote_ts: Vec<String>,
    pub tunnels: Vec<TunnelStatus>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TunnelStatus {
    pub local: String,
    pub remote: String,
    /// The IKE SA serving the tunnel (negotiated tunnels only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ike: Option<IkeStatus>,
    pub outbound: Option<OutboundStatus>,
    pub inbound: Option<InboundStatus>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct IkeStatus {
    pub state: String,
    pub initiator: bool,
    pub spi_i: String,
    pub spi_r: String,
    pub algorithms: Option<String>,
    pub established_secs: Option<u64>,
    pub rekey_in_secs: Option<u64>,
    pub children: usize,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct OutboundStatus {
    pub spi: String,
    pub suite: String,
    pub esn: bool,
    pub packets: u64,
    pub bytes: u64,
    pub next_seq: u64,
    pub drops: BTreeMap<String, u64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct InboundStatus {
    pub spi: String,
    pub suite: String,
    pub esn: bool,
    pub packets: u64,
    pub bytes: u64,
    pub highest_seq: u64,
    pub drops: BTreeMap<String, u64>,
}

pub fn spi_string(spi: u32) -> String {
    format!("0x{spi:08x}")
}

fn nonzero(drops: &BTreeMap<String, u64>) -> String {
    let v: Vec<String> = drops
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(" ")
    }
}

impl Status {
    /// Human-readable rendering for `ironsecctl status`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let c = &self.counters;
        let _ = writeln!(
            s,
            "ironsecd {}  tun {}  workers {}  up {}s",
            self.version, self.tun, self.workers, self.uptime_secs
        );
        let _ = writeln!(
            s,
            "  packets: tun rx {} tx {}, udp rx {} tx {}, ike {}, keepalives {}",
            c.tun_rx_packets,
            c.tun_tx_packets,
            c.udp_rx_packets,
            c.udp_tx_packets,
            c.ike_packets,
            c.keepalives
        );
        let _ = writeln!(s, "  drops: {}", nonzero(&self.drops));
        for conn in &self.connections {
            let _ = writeln!(
                s,
                "{}: {} keying, {} === {}",
                conn.name,
                conn.keying,
                conn.local_ts.join(","),
                conn.remote_ts.join(",")
            );
            for t in &conn.tunnels {
                let _ = writeln!(s, "  tunnel {} -> {}", t.local, t.remote);
                if let Some(i) = &t.ike {
                    let _ = writeln!(
                        s,
                        "    ike {} {}, {} {}/{}, up {}s, rekey in {}s, {} child SA(s)",
                        i.state,
                        if i.initiator {
                            "(initiator)"
                        } else {
                            "(responder)"
                        },
                        i.algorithms.as_deref().unwrap_or("-"),
                        i.spi_i,
                        i.spi_r,
                        i.established_secs.unwrap_or(0),
                        i.rekey_in_secs.map_or("-".to_string(), |x| x.to_string()),
                        i.children
                    );
                }
                match &t.outbound {
                    Some(o) => {
                        let _ = writeln!(
                            s,
                            "    out spi {} {}{}: {} packets, {} bytes, next seq {}, drops: {}",
                            o.spi,
                            o.suite,
                            if o.esn { "/esn" } else { "" },
                            o.packets,
                            o.bytes,
                            o.next_seq,
                            nonzero(&o.drops)
                        );
                    }
                    None => {
                        let _ = writeln!(s, "    out: no SA");
                    }
                }
                match &t.inbound {
                    Some(i) => {
                        let _ = writeln!(
                            s,
                            "    in  spi {} {}{}: {} packets, {} bytes, highest seq {}, drops: {}",
                            i.spi,
                            i.suite,
                            if i.esn { "/esn" } else { "" },
                            i.packets,
                            i.bytes,
                            i.highest_seq,
                            nonzero(&i.drops)
                        );
                    }
                    None => {
                        let _ = writeln!(s, "    in: no SA");
                    }
                }
            }
        }
        s
    }
}
