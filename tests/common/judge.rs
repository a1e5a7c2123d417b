//! The outside judge of fail-closed tests: nftables counters on the far end of a WAN wire
//! (netdev ingress hook on `wan` in the peer gateway's namespace, or on a WAN router's ports),
//! counting packets that arrive with an inner destination in the protected prefix, i.e. in
//! clear (ESP is addressed to the gateway's WAN address), and ESP-in-UDP, to show the same wire
//! carries the tunnel. The same ingress counters ([`IngressCounters`]) serve any test that
//! must count what a gateway put on a wire (e.g. that a standby sent nothing).

use std::time::Duration;

use super::{ns_cmd, run_ok, run_timeout};

/// `nft -f` of `rules` in `ns` (through a temporary file, removed whatever nft says); panics
/// with nft's message if it refuses them. `tag` keeps concurrent loads' files apart.
pub fn nft_load(ns: &str, tag: &str, rules: &str) {
    let path =
        std::env::temp_dir().join(format!("ironsec-nft-{tag}-{}-{ns}.nft", std::process::id()));
    std::fs::write(&path, rules).unwrap();
    let out = run_timeout(
        ns_cmd(ns, "nft").args(["-f", path.to_str().unwrap()]),
        Duration::from_secs(5),
    );
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "nft -f in {ns}: {}\n{rules}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Packet counters at the ingress of some devices of a namespace, in a netdev table of their
/// own: one counting rule per `(tag, match)` on each device, read back summed over the
/// devices. Ingress sees what arrives on the wire before any routing decision, so a packet
/// the namespace then drops is counted too.
pub struct IngressCounters {
    ns: String,
    table: String,
}

impl IngressCounters {
    /// `rules`: (tag, nftables match expression), e.g. `("esp", "udp dport 4500")`. `table`
    /// must be unique within `ns`.
    pub fn install(
        ns: &str,
        table: &str,
        devices: &[&str],
        rules: &[(&str, &str)],
    ) -> IngressCounters {
        let mut text = format!("table netdev {table} {{\n");
        for (i, dev) in devices.iter().enumerate() {
            text += &format!(
                "  chain wire{i} {{\n    type filter hook ingress device \"{dev}\" priority 0; policy accept;\n"
            );
            for (tag, m) in rules {
                text += &format!("    {m} counter comment \"{tag}\"\n");
            }
            text += "  }\n";
        }
        text += "}\n";
        nft_load(ns, table, &text);
        IngressCounters {
            ns: ns.to_string(),
            table: table.to_string(),
        }
    }

    /// Packets counted so far by the rules tagged `tag`, over every device.
    pub fn packets(&self, tag: &str) -> u64 {
        let o = run_ok(
            ns_cmd(&self.ns, "nft").args(["list", "table", "netdev", &self.table]),
            Duration::from_secs(5),
        );
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
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
    }
}

pub struct WireJudge {
    counters: IngressCounters,
}

impl WireJudge {
    /// Counters on `wan` in `ns` for packets to `clear_dst` and for UDP to port 4500.
    pub fn install(ns: &str, clear_dst: &str) -> WireJudge {
        WireJudge::install_on(ns, &["wan"], clear_dst)
    }

    /// The same counters on each of `devices` in `ns`, summed by [`WireJudge::counts`]: for a
    /// WAN router whose ports face several gateways, where a packet leaked by any of them
    /// arrives (the router has no route for it, so only its ingress sees it). Each judge has a
    /// table of its own, named after its devices, so several judges may watch several ports
    /// of one namespace apart (e.g. one per gateway).
    pub fn install_on(ns: &str, devices: &[&str], clear_dst: &str) -> WireJudge {
        WireJudge::install_prefixes(ns, devices, &[clear_dst])
    }

    /// Like [`WireJudge::install_on`] for several protected prefixes, IPv4 or IPv6 (an
    /// IPv6 prefix is matched as `ip6 daddr`), all counted as cleartext: a dual-stack site's
    /// packets leaking in either family. ESP-in-UDP is counted over either family.
    pub fn install_prefixes(ns: &str, devices: &[&str], clear_dsts: &[&str]) -> WireJudge {
        let table = if devices == ["wan"] {
            "wire_judge".to_string()
        } else {
            format!("wire_judge_{}", devices.join("_").replace(['-', '.'], "_"))
        };
        let clear: Vec<String> = clear_dsts
            .iter()
            .map(|d| {
                if d.contains(':') {
                    format!("ip6 daddr {d}")
                } else {
                    format!("ip daddr {d}")
                }
            })
            .collect();
        let mut rules: Vec<(&str, &str)> =
            clear.iter().map(|m| ("cleartext", m.as_str())).collect();
        rules.push(("esp", "udp dport 4500"));
        WireJudge {
            counters: IngressCounters::install(ns, &table, devices, &rules),
        }
    }

    /// (cleartext packets to the protected prefix, ESP-in-UDP packets) seen on the wire so far,
    /// over every device judged.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.counters.packets("cleartext"),
            self.counters.packets("esp"),
        )
    }
}
