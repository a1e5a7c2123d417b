//! A topology with a NAT router between the two gateways, under guard:
//!
//!   lanA 10.1.0.2 -- gwA 172.16.0.2 --in-- nat --out-- 192.0.2.2 gwB -- lanB 10.2.0.2
//!                                     172.16.0.1  192.0.2.254
//!
//! gwA sits behind the NAT (a private WAN address, default route via the NAT); gwB is in front
//! of it and sees gwA as 192.0.2.254. The NAT masquerades gwA's traffic with nftables and
//! forgets an idle UDP mapping after [`NAT_UDP_TIMEOUT_S`] seconds (its own namespace's
//! conntrack timeouts), so an idle tunnel only survives if something keeps the mapping alive.
//! A `judge` table in the NAT namespace counts what crosses it: NAT keepalives (one 0xFF
//! byte to UDP/4500) in each direction, and datagrams to the re-mapped port range.
//!
//! [`NatLab::up_both`] puts gwB behind a NAT of its own too (`natB`, which forwards UDP 500
//! and 4500 on its public address 192.0.2.2 to gwB at 172.17.0.2, as a site's router does
//! for its VPN gateway, and masquerades the rest):
//!
//!   gwA 172.16.0.2 -- nat 192.0.2.254 ====== 192.0.2.2 natB 172.17.0.1 -- 172.17.0.2 gwB
//!
//! [`NatLab::up_v6`] builds the same shape over IPv6 (NAT66: nftables `ip6` masquerade), with
//! both LANs dual-stack:
//!
//!   lanA 2001:db8:1::2 -- gwA fd00:a::2 --in-- nat --out-- 2001:db8:f::2 gwB -- lanB 2001:db8:2::2
//!                                     fd00:a::1  2001:db8:f::254
//!
//! Dropping it kills whatever still runs in its namespaces (processes the test started are
//! stopped by their own guards first) and deletes them.

use std::process::Command;
use std::time::Duration;

use super::{ns_cmd, require_root, run_ok, run_timeout};

/// Seconds an idle UDP mapping lives in the NAT (conntrack's default is 30 s, and 120 s
/// for a "stream"; short here so a test's idle minute outlasts it several times).
pub const NAT_UDP_TIMEOUT_S: u32 = 10;
/// The NAT's public address: what gwB sees as gwA's.
pub const NAT_PUBLIC: &str = "192.0.2.254";
pub const GW_A_PRIVATE: &str = "172.16.0.2";
pub const GW_B_PUBLIC: &str = "192.0.2.2";
/// gwB's address behind natB ([`NatLab::up_both`]).
pub const GW_B_PRIVATE: &str = "172.17.0.2";
/// The IPv6 lab's ([`NatLab::up_v6`]) NAT public address, gwA's private (ULA) WAN address and
/// gwB's address.
pub const NAT6_PUBLIC: &str = "2001:db8:f::254";
pub const GW_A_PRIVATE6: &str = "fd00:a::2";
pub const GW_B_PUBLIC6: &str = "2001:db8:f::2";
/// Where [`NatLab::remap`] moves the NAT's source ports.
pub const REMAP_PORTS: (u16, u16) = (30000, 30999);

pub struct NatLab {
    pub prefix: String,
    pub lan_a: String,
    pub gw_a: String,
    pub nat: String,
    pub gw_b: String,
    pub lan_b: String,
    /// gwB's own NAT, with [`NatLab::up_both`].
    pub nat_b: Option<String>,
    /// The nftables family of the NAT and judge tables: `ip`, or `ip6` ([`NatLab::up_v6`]).
    family: &'static str,
}

fn ip(args: &[&str]) {
    run_ok(Command::new("ip").args(args), Duration::from_secs(10));
}

fn in_ns(ns: &str, prog: &str, args: &[&str]) -> String {
    let out = run_ok(ns_cmd(ns, prog).args(args), Duration::from_secs(10));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The judge and the masquerade rules (`masq` is the first rule's tail: `masquerade`, or a
/// UDP port range followed by more rules), as one nft script, for nftables family `fam`
/// (`ip` or `ip6`: the rules read only the UDP header, so they are the same for both).
fn ruleset(fam: &str, masq: &str) -> String {
    format!(
        r#"
table {fam} nat {{
    chain post {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname "out" {masq}
    }}
}}
table {fam} judge {{
    counter keepalive_out {{ }}
    counter keepalive_in {{ }}
    counter remapped_in {{ }}
    chain count_forward {{
        type filter hook forward priority filter; policy accept;
        iifname "in" udp dport 4500 udp length 9 @th,64,8 0xff counter name keepalive_out
        iifname "out" udp sport 4500 udp length 9 @th,64,8 0xff counter name keepalive_in
    }}
    chain count_prerouting {{
        type filter hook prerouting priority -300; policy accept;
        iifname "out" udp dport {lo}-{hi} counter name remapped_in
    }}
}}
"#,
        lo = REMAP_PORTS.0,
        hi = REMAP_PORTS.1,
    )
}

/// natB: gwB's port forward (UDP 500 and 4500 to gwB), masquerade for the rest, and a judge
/// counter of gwB's keepalives on their way out.
fn ruleset_b() -> String {
    format!(
        r#"
table ip nat {{
    chain pre {{
        type nat hook prerouting priority dstnat; policy accept;
        iifname "out" udp dport {{ 500, 4500 }} dnat to {GW_B_PRIVATE}
    }}
    chain post {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname "out" masquerade
    }}
}}
table ip judge {{
    counter keepalive_out {{ }}
    chain count_forward {{
        type filter hook forward priority filter; policy accept;
        iifname "in" udp dport 4500 udp length 9 @th,64,8 0xff counter name keepalive_out
    }}
}}
"#
    )
}

impl NatLab {
    pub fn up(prefix: &str) -> NatLab {
        NatLab::build(prefix, false)
    }

    /// Both gateways behind NATs of their own.
    pub fn up_both(prefix: &str) -> NatLab {
        NatLab::build(prefix, true)
    }

    /// The lab's namespace names (`{prefix}-lanA` ...; `{prefix}-natB` when gwB is behind a
    /// NAT of its own too) and the nftables family of its NATs; nothing made yet.
    fn named(prefix: &str, both: bool, family: &'static str) -> NatLab {
        NatLab {
            nat_b: both.then(|| format!("{prefix}-natB")),
            prefix: prefix.to_string(),
            lan_a: format!("{prefix}-lanA"),
            gw_a: format!("{prefix}-gwA"),
            nat: format!("{prefix}-nat"),
            gw_b: format!("{prefix}-gwB"),
            lan_b: format!("{prefix}-lanB"),
            family,
        }
    }

    fn build(prefix: &str, both: bool) -> NatLab {
        require_root();
        let lab = NatLab::named(prefix, both, "ip");
        // The guard exists before the first namespace, so a half-built lab is removed too.
        for ns in lab.all() {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        let link = |a: &str, an: &str, b: &str, bn: &str| {
            ip(&[
                "link", "add", an, "netns", a, "type", "veth", "peer", "name", bn, "netns", b,
            ]);
            ip(&["-n", a, "link", "set", an, "up"]);
            ip(&["-n", b, "link", "set", bn, "up"]);
        };
        link(&lab.lan_a, "a-lan", &lab.gw_a, "lan");
        link(&lab.gw_a, "wan", &lab.nat, "in");
        match &lab.nat_b {
            None => link(&lab.nat, "out", &lab.gw_b, "wan"),
            Some(nat_b) => {
                link(&lab.nat, "out", nat_b, "out");
                link(nat_b, "in", &lab.gw_b, "wan");
            }
        }
        link(&lab.gw_b, "lan", &lab.lan_b, "b-lan");
        let addr = |ns: &str, a: &str, dev: &str| ip(&["-n", ns, "addr", "add", a, "dev", dev]);
        addr(&lab.lan_a, "10.1.0.2/24", "a-lan");
        addr(&lab.gw_a, "10.1.0.1/24", "lan");
        addr(&lab.gw_a, &format!("{GW_A_PRIVATE}/24"), "wan");
        addr(&lab.nat, "172.16.0.1/24", "in");
        addr(&lab.nat, &format!("{NAT_PUBLIC}/24"), "out");
        match &lab.nat_b {
            None => addr(&lab.gw_b, &format!("{GW_B_PUBLIC}/24"), "wan"),
            Some(nat_b) => {
                addr(nat_b, &format!("{GW_B_PUBLIC}/24"), "out");
                addr(nat_b, "172.17.0.1/24", "in");
                addr(&lab.gw_b, &format!("{GW_B_PRIVATE}/24"), "wan");
                ip(&[
                    "-n",
                    &lab.gw_b,
                    "route",
                    "add",
                    "default",
                    "via",
                    "172.17.0.1",
                ]);
            }
        }
        addr(&lab.gw_b, "10.2.0.1/24", "lan");
        addr(&lab.lan_b, "10.2.0.2/24", "b-lan");
        ip(&[
            "-n", &lab.lan_a, "route", "add", "default", "via", "10.1.0.1",
        ]);
        ip(&[
            "-n", &lab.lan_b, "route", "add", "default", "via", "10.2.0.1",
        ]);
        // gwA reaches the world through the NAT; gwB knows only its own WAN (it cannot reach
        // 172.16.0.0/24: the NAT is the only way in).
        ip(&[
            "-n",
            &lab.gw_a,
            "route",
            "add",
            "default",
            "via",
            "172.16.0.1",
        ]);
        for ns in [&lab.gw_a, &lab.nat, &lab.gw_b]
            .into_iter()
            .chain(&lab.nat_b)
        {
            for kv in [
                "net.ipv4.ip_forward=1",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
            ] {
                in_ns(ns, "sysctl", &["-qw", kv]);
            }
        }
        lab.set_nat("masquerade");
        if let Some(nat_b) = &lab.nat_b {
            load_ruleset(&lab.prefix, nat_b, &ruleset_b());
        }
        // Loading the NAT ruleset loaded conntrack; its timeouts are per namespace.
        for key in [
            "net.netfilter.nf_conntrack_udp_timeout",
            "net.netfilter.nf_conntrack_udp_timeout_stream",
        ] {
            for ns in std::iter::once(&lab.nat).chain(&lab.nat_b) {
                in_ns(
                    ns,
                    "sysctl",
                    &["-qw", &format!("{key}={NAT_UDP_TIMEOUT_S}")],
                );
                let now = in_ns(ns, "sysctl", &["-n", key]);
                assert_eq!(now.trim(), NAT_UDP_TIMEOUT_S.to_string(), "{key} in {ns}");
            }
        }
        lab
    }

    /// The lab over IPv6 (module doc): gwA behind a NAT66 that masquerades its ULA WAN
    /// address as [`NAT6_PUBLIC`]; both LANs carry IPv4 and IPv6. Addresses skip duplicate
    /// address detection (it would hold a fresh address unusable for a second or two).
    pub fn up_v6(prefix: &str) -> NatLab {
        require_root();
        let lab = NatLab::named(prefix, false, "ip6");
        for ns in lab.all() {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            for kv in [
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            ] {
                in_ns(ns, "sysctl", &["-qw", kv]);
            }
        }
        let link = |a: &str, an: &str, b: &str, bn: &str| {
            ip(&[
                "link", "add", an, "netns", a, "type", "veth", "peer", "name", bn, "netns", b,
            ]);
            ip(&["-n", a, "link", "set", an, "up"]);
            ip(&["-n", b, "link", "set", bn, "up"]);
        };
        link(&lab.lan_a, "a-lan", &lab.gw_a, "lan");
        link(&lab.gw_a, "wan", &lab.nat, "in");
        link(&lab.nat, "out", &lab.gw_b, "wan");
        link(&lab.gw_b, "lan", &lab.lan_b, "b-lan");
        let addr = |ns: &str, a: &str, dev: &str| {
            ip(&["-n", ns, "addr", "add", a, "dev", dev, "nodad"]);
        };
        addr(&lab.lan_a, "10.1.0.2/24", "a-lan");
        addr(&lab.lan_a, "2001:db8:1::2/64", "a-lan");
        addr(&lab.gw_a, "10.1.0.1/24", "lan");
        addr(&lab.gw_a, "2001:db8:1::1/64", "lan");
        addr(&lab.gw_a, &format!("{GW_A_PRIVATE6}/64"), "wan");
        addr(&lab.nat, "fd00:a::1/64", "in");
        addr(&lab.nat, &format!("{NAT6_PUBLIC}/64"), "out");
        addr(&lab.gw_b, &format!("{GW_B_PUBLIC6}/64"), "wan");
        addr(&lab.gw_b, "10.2.0.1/24", "lan");
        addr(&lab.gw_b, "2001:db8:2::1/64", "lan");
        addr(&lab.lan_b, "10.2.0.2/24", "b-lan");
        addr(&lab.lan_b, "2001:db8:2::2/64", "b-lan");
        for (ns, v4, v6) in [
            (&lab.lan_a, "10.1.0.1", "2001:db8:1::1"),
            (&lab.lan_b, "10.2.0.1", "2001:db8:2::1"),
        ] {
            ip(&["-n", ns, "route", "add", "default", "via", v4]);
            ip(&["-n", ns, "-6", "route", "add", "default", "via", v6]);
        }
        // gwA reaches the world through the NAT only; gwB knows only its own WAN.
        ip(&[
            "-n",
            &lab.gw_a,
            "-6",
            "route",
            "add",
            "default",
            "via",
            "fd00:a::1",
        ]);
        for ns in [&lab.gw_a, &lab.nat, &lab.gw_b] {
            for kv in [
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
            ] {
                in_ns(ns, "sysctl", &["-qw", kv]);
            }
        }
        lab.set_nat("masquerade");
        for key in [
            "net.netfilter.nf_conntrack_udp_timeout",
            "net.netfilter.nf_conntrack_udp_timeout_stream",
        ] {
            in_ns(
                &lab.nat,
                "sysctl",
                &["-qw", &format!("{key}={NAT_UDP_TIMEOUT_S}")],
            );
        }
        lab
    }

    fn all(&self) -> Vec<&String> {
        let mut v = vec![&self.lan_a, &self.gw_a, &self.nat, &self.gw_b, &self.lan_b];
        v.extend(&self.nat_b);
        v
    }

    /// Replaces the NAT's ruleset (judge counters start again at zero).
    fn set_nat(&self, masq: &str) {
        load_ruleset(&self.prefix, &self.nat, &ruleset(self.family, masq));
    }

    /// The NAT re-maps its source ports mid-session, as a NAT that rebooted or ran out of
    /// mappings does: masquerade now takes ports in [`REMAP_PORTS`], and the mappings it
    /// holds are forgotten (taking the outside link down makes the kernel drop the
    /// masquerade's conntrack entries, as `conntrack -F` would). The next datagram from
    /// inside gets a new public port.
    pub fn remap(&self) {
        self.set_nat(&format!(
            "meta l4proto udp masquerade to :{}-{}\n        oifname \"out\" masquerade",
            REMAP_PORTS.0, REMAP_PORTS.1
        ));
        in_ns(&self.nat, "ip", &["link", "set", "out", "down"]);
        in_ns(&self.nat, "ip", &["link", "set", "out", "up"]);
    }

    /// A judge counter's packets: `keepalive_out` (gwA -> gwB through the NAT),
    /// `keepalive_in` (gwB -> gwA), `remapped_in` (to the re-mapped ports).
    pub fn counter(&self, name: &str) -> u64 {
        nft_counter(&self.nat, self.family, name)
    }

    /// natB's `keepalive_out` (gwB's keepalives on their way out), with [`NatLab::up_both`].
    pub fn counter_b(&self, name: &str) -> u64 {
        nft_counter(self.nat_b.as_ref().expect("a lab with natB"), "ip", name)
    }
}

/// `flush ruleset` and `script` in namespace `ns`.
fn load_ruleset(prefix: &str, ns: &str, script: &str) {
    let path = std::env::temp_dir().join(format!("ironsec-it-{prefix}-{ns}.nft"));
    std::fs::write(&path, format!("flush ruleset\n{script}")).unwrap();
    let out = run_timeout(
        ns_cmd(ns, "nft").arg("-f").arg(&path),
        Duration::from_secs(10),
    );
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "nft -f in {ns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn nft_counter(ns: &str, family: &str, name: &str) -> u64 {
    let text = in_ns(ns, "nft", &["list", "counter", family, "judge", name]);
    text.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet count in:\n{text}"))
}

impl Drop for NatLab {
    fn drop(&mut self) {
        for ns in self.all() {
            let pids = Command::new("ip").args(["netns", "pids", ns]).output();
            if let Ok(o) = pids {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    if let Ok(pid) = pid.parse::<libc::pid_t>() {
                        // SAFETY: kill(2) takes no pointers; the PID runs in a namespace
                        // this lab created.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}
