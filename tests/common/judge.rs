//! The outside judge of fail-closed tests: nftables counters on the far end of a WAN wire
//! (netdev ingress hook on `wan` in the peer gateway's namespace, or on a WAN router's ports),
//! counting packets that arrive with an inner destination in the protected prefix, i.e. in
//! clear (ESP is addressed to the gateway's WAN address), and ESP-in-UDP, to show the same wire
//! carries the tunnel.

use std::time::Duration;

use super::{ns_cmd, run_ok};

pub struct WireJudge {
    ns: String,
    table: String,
}

impl WireJudge {
    /// Counters on `wan` in `ns` for packets to `clear_dst` and for UDP to port 4500.
    pub fn install(ns: &str, clear_dst: &str) -> WireJudge {
        WireJudge::install_on(ns, &["wan"], clear_dst)
    }

    /// The same counters on each of `devices` in `ns` (one ingress chain per device), summed
    /// by [`WireJudge::counts`]: for a WAN router whose ports face several gateways, where a
    /// packet leaked by any of them arrives (the router has no route for it, so only its
    /// ingress sees it). Each judge has a table of its own, named after its devices, so several
    /// judges may watch several ports of one namespace apart (e.g. one per gateway).
    pub fn install_on(ns: &str, devices: &[&str], clear_dst: &str) -> WireJudge {
        let table = if devices == ["wan"] {
            "wire_judge".to_string()
        } else {
            format!("wire_judge_{}", devices.join("_").replace(['-', '.'], "_"))
        };
        let mut rules = format!("table netdev {table} {{\n");
        for (i, dev) in devices.iter().enumerate() {
            rules += &format!(
                "  chain wire{i} {{\n\
                   type filter hook ingress device \"{dev}\" priority 0; policy accept;\n\
                   ip daddr {clear_dst} counter comment \"cleartext\"\n\
                   udp dport 4500 counter comment \"esp\"\n\
                 }}\n"
            );
        }
        rules += "}\n";
        let path = std::env::temp_dir().join(format!(
            "ironsec-judge-{}-{ns}-{table}.nft",
            std::process::id()
        ));
        std::fs::write(&path, rules).unwrap();
        run_ok(
            ns_cmd(ns, "nft").args(["-f", path.to_str().unwrap()]),
            Duration::from_secs(5),
        );
        let _ = std::fs::remove_file(&path);
        WireJudge {
            ns: ns.to_string(),
            table,
        }
    }

    /// (cleartext packets to the protected prefix, ESP-in-UDP packets) seen on the wire so far,
    /// over every device judged.
    pub fn counts(&self) -> (u64, u64) {
        let o = run_ok(
            ns_cmd(&self.ns, "nft").args(["list", "table", "netdev", &self.table]),
            Duration::from_secs(5),
        );
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let count = |tag: &str| -> u64 {
            let lines: Vec<&str> = out
                .lines()
                .filter(|l| l.contains(&format!("comment \"{tag}\"")))
                .collect();
            assert!(!lines.is_empty(), "no {tag} rule in:\n{out}");
            lines
                .iter()
                .map(|line| {
                    let mut w = line.split_whitespace();
                    w.find(|x| *x == "packets")
                        .and_then(|_| w.next())
                        .and_then(|n| n.parse::<u64>().ok())
                        .unwrap_or_else(|| panic!("no packet count in {line:?}"))
                })
                .sum()
        };
        (count("cleartext"), count("esp"))
    }
}
