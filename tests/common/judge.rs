//! The outside judge of fail-closed tests: nftables counters on the far end of a WAN wire
//! (netdev ingress hook on `wan` in the peer gateway's namespace), counting packets that arrive
//! with an inner destination in the protected prefix, i.e. in clear (ESP is addressed to the
//! gateway's WAN address), and ESP-in-UDP, to show the same wire carries the tunnel.

use std::time::Duration;

use super::{ns_cmd, run_ok};

pub struct WireJudge {
    ns: String,
    table: String,
}

impl WireJudge {
    /// Counters on `wan` in `ns` for packets to `clear_dst` and for UDP to port 4500.
    pub fn install(ns: &str, clear_dst: &str) -> WireJudge {
        WireJudge::install_table(ns, "wan", "wire_judge", clear_dst)
    }

    /// The same counters on interface `device` of `ns`, e.g. a WAN router's port facing one
    /// gateway (several judges may watch several ports of one namespace).
    pub fn install_on(ns: &str, device: &str, clear_dst: &str) -> WireJudge {
        let table = format!("wire_judge_{}", device.replace(['-', '.'], "_"));
        WireJudge::install_table(ns, device, &table, clear_dst)
    }

    fn install_table(ns: &str, device: &str, table: &str, clear_dst: &str) -> WireJudge {
        let rules = format!(
            "table netdev {table} {{\n\
               chain wire {{\n\
                 type filter hook ingress device \"{device}\" priority 0; policy accept;\n\
                 ip daddr {clear_dst} counter comment \"cleartext\"\n\
                 udp dport 4500 counter comment \"esp\"\n\
               }}\n\
             }}\n"
        );
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
            table: table.to_string(),
        }
    }

    /// (cleartext packets to the protected prefix, ESP-in-UDP packets) seen on the wire so far.
    pub fn counts(&self) -> (u64, u64) {
        let o = run_ok(
            ns_cmd(&self.ns, "nft").args(["list", "chain", "netdev", &self.table, "wire"]),
            Duration::from_secs(5),
        );
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let count = |tag: &str| -> u64 {
            let line = out
                .lines()
                .find(|l| l.contains(&format!("comment \"{tag}\"")))
                .unwrap_or_else(|| panic!("no {tag} rule in:\n{out}"));
            let mut w = line.split_whitespace();
            w.find(|x| *x == "packets")
                .and_then(|_| w.next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no packet count in {line:?}"))
        };
        (count("cleartext"), count("esp"))
    }
}
