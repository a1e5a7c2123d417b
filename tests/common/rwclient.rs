//! Remote-access (point-to-site) labs: road-warrior clients, each a strongSwan 5.9.8 charon
//! (kernel-libipsec) in a namespace of its own, and the topology they live in. Used by
//! tests/interop_remote_access.rs; meant for any test that points clients at a gateway
//! (strongSwan's or ironsec's).
//!
//! ```text
//!   lan 10.1.0.2 --lan-- gw 10.1.0.1 | 192.0.2.1 --wan-- [switch "wan": bridge br0]
//!                                                           |-- c0 192.0.2.11   (direct clients)
//!                                                           |-- c1 192.0.2.12 ...
//!                                                           `-- nat 192.0.2.254 (masquerade)
//!                                                                 | 172.16.0.1 (bridge "inbr")
//!                                                                 |-- n0 172.16.0.11
//!                                                                 `-- n1 172.16.0.12 ...
//! ```
//!
//! The gateway namespace forwards between WAN and LAN; what runs in it (a strongSwan gateway,
//! ironsecd) is the test's business. Direct clients have no default route (only the WAN
//! prefix); clients behind the NAT route everything to it, and it masquerades them all to
//! 192.0.2.254, so the gateway sees them at one address with different ports (UDP 500 and
//! 4500 of the second client are moved to other ports by the NAT).
//!
//! A client ([`RwClient`]) runs conf/strongswan/swanctl-rw-client.conf (profiles = emulated
//! clients' proposals, [`Profile`]) with conf/strongswan/strongswan-rw.conf (the EAP plugins),
//! rewritten for one authentication ([`ClientAuth`]): EAP-MSCHAPv2 user and password, or a
//! certificate and key from tests/common/pki.rs for pubkey or EAP-TLS. Its virtual IP is read
//! from `swanctl --list-sas` (`local-vips`) and found on an interface of its namespace: with
//! kernel-libipsec charon puts it on the TUN device ipsec0 (the plugin sets
//! `charon.install_virtual_ip_on` to it), and its routes in table 220 carry `src <vip>`.
//!
//! Cleanup: every charon is stopped by its guard (by PID, netns-scripts/strongswan.sh);
//! dropping the [`RaTopology`] kills what still runs in its namespaces and deletes them.
#![allow(dead_code)]

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::pki::{Cert, Pki};
use super::strongswan::{StrongSwan, SwIke, SwOptions};
use super::{example_config, ns_cmd, require_root, run_ok, run_timeout, workspace_root};

/// The gateway's WAN address: what clients' `remote_addrs` names.
pub const RA_GW_WAN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The gateway's LAN address and prefix, and a host on that LAN.
pub const RA_GW_LAN: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
pub const RA_LAN_NET: &str = "10.1.0.0/24";
pub const RA_LAN_HOST: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
/// The NAT's public address (the source address the gateway sees for every client behind it).
pub const RA_NAT_PUBLIC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
/// The NAT's inside address (clients' default gateway).
pub const RA_NAT_INSIDE: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 1);
/// The gateway's identity in the test PKI (certificate gw-a).
pub const RA_GW_ID: &str = "gw-a.example";
/// The virtual IP pool of the lab's gateways (conf/strongswan/swanctl-rw-gateway.conf).
pub const RA_POOL: &str = "10.99.0.0/24";

/// The client template's names: the CHILD_SA every profile has.
pub const RW_CHILD: &str = "rw";

/// The EAP plugins conf/strongswan/strongswan-rw.conf loads. charon starts without a plugin
/// it cannot find (it only logs it), and EAP then fails in the middle of IKE_AUTH; this says
/// which package is missing instead.
pub fn require_eap_plugins() {
    for (plugin, package) in [
        ("eap-mschapv2", "libcharon-extauth-plugins"),
        ("eap-identity", "libcharon-extra-plugins"),
        ("eap-tls", "libcharon-extra-plugins"),
    ] {
        let so = format!("/usr/lib/ipsec/plugins/libstrongswan-{plugin}.so");
        assert!(
            Path::new(&so).exists(),
            "{so} missing: install {package} (tests/install-deps.sh)"
        );
    }
}

/// strongswan.conf template of every charon in these labs.
pub fn rw_strongswan_template() -> PathBuf {
    workspace_root().join("conf/strongswan/strongswan-rw.conf")
}

// ------------------------------------------------------------------------------------------
// Topology

/// One client namespace.
#[derive(Clone, Debug)]
pub struct ClientNs {
    pub ns: String,
    /// Its own address (a WAN address, or a private one behind the NAT).
    pub addr: Ipv4Addr,
    pub behind_nat: bool,
}

/// The namespaces of a remote-access lab (module documentation). Dropping it kills what still
/// runs in them and deletes them.
pub struct RaTopology {
    pub prefix: String,
    pub gw: String,
    pub lan: String,
    /// The WAN switch (a bridge): no addresses, no processes.
    pub wan: String,
    pub nat: Option<String>,
    /// Direct clients first, then those behind the NAT.
    pub clients: Vec<ClientNs>,
    /// A second site on the WAN switch ([`RaTopology::up_with_site`]): its gateway
    /// (192.0.2.2, LAN 10.2.0.1/24) and its LAN host (10.2.0.2).
    pub site_b: Option<(String, String)>,
}

/// The second site's gateway WAN address, LAN and LAN host (see [`RaTopology::up_with_site`]).
pub const RA_SITE_B_WAN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
pub const RA_SITE_B_NET: &str = "10.2.0.0/24";
pub const RA_SITE_B_HOST: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);

fn ip(args: &[&str]) {
    run_ok(Command::new("ip").args(args), Duration::from_secs(10));
}

fn sysctl(ns: &str, kv: &str) {
    run_ok(
        ns_cmd(ns, "sysctl").args(["-qw", kv]),
        Duration::from_secs(10),
    );
}

/// The gateway's IPv6 WAN address ([`RaTopology::add_ipv6_wan`]); direct client `i` is
/// 2001:db8:f::(0x11 + i).
pub const RA_GW_WAN6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 1);

/// The gateway's IPv6 LAN ([`RaTopology::add_ipv6_lan`]): the gateway ::1, the host ::2.
pub const RA_LAN6_NET: &str = "2001:db8:1::/64";
pub const RA_GW_LAN6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
pub const RA_LAN6_HOST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);

impl RaTopology {
    /// Adds IPv6 to the LAN side (issue 26's addresses): 2001:db8:1::1/64 on the gateway's
    /// `lan` (IPv6 forwarding on), 2001:db8:1::2/64 on the LAN host with its default route via
    /// the gateway. `nodad`: duplicate address detection would hold a fresh address unusable
    /// for a second or two. The WAN stays IPv4.
    pub fn add_ipv6_lan(&self) {
        sysctl(&self.gw, "net.ipv6.conf.all.forwarding=1");
        for ns in [&self.gw, &self.lan] {
            sysctl(ns, "net.ipv6.conf.all.accept_dad=0");
            sysctl(ns, "net.ipv6.conf.default.accept_dad=0");
        }
        let addr = |ns: &str, a: String| ip(&["-n", ns, "addr", "add", &a, "dev", "lan", "nodad"]);
        addr(&self.gw, format!("{RA_GW_LAN6}/64"));
        addr(&self.lan, format!("{RA_LAN6_HOST}/64"));
        ip(&[
            "-n",
            &self.lan,
            "-6",
            "route",
            "add",
            "default",
            "via",
            &RA_GW_LAN6.to_string(),
        ]);
    }

    /// Adds IPv6 to the WAN switch (issue 26's WAN prefix, 2001:db8:f::/64): the gateway ::1,
    /// direct client `i` ::(0x11 + i), `nodad`. Clients behind the NAT stay IPv4-only.
    pub fn add_ipv6_wan(&self) {
        let direct: Vec<&ClientNs> = self.clients.iter().filter(|c| !c.behind_nat).collect();
        for ns in std::iter::once(&self.gw).chain(direct.iter().map(|c| &c.ns)) {
            sysctl(ns, "net.ipv6.conf.all.accept_dad=0");
            sysctl(ns, "net.ipv6.conf.default.accept_dad=0");
        }
        let addr = |ns: &str, a: String| ip(&["-n", ns, "addr", "add", &a, "dev", "wan", "nodad"]);
        addr(&self.gw, format!("{RA_GW_WAN6}/64"));
        for (i, c) in direct.iter().enumerate() {
            let a = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x11 + i as u16);
            addr(&c.ns, format!("{a}/64"));
        }
    }

    /// `direct` clients on the WAN and `behind_nat` clients behind one masquerading NAT (no NAT
    /// namespace when 0).
    pub fn up(prefix: &str, direct: usize, behind_nat: usize) -> RaTopology {
        require_root();
        require_eap_plugins();
        let mut t = RaTopology {
            prefix: prefix.to_string(),
            gw: format!("{prefix}-gw"),
            lan: format!("{prefix}-lan"),
            wan: format!("{prefix}-wan"),
            nat: (behind_nat > 0).then(|| format!("{prefix}-nat")),
            clients: Vec::new(),
            site_b: None,
        };
        for i in 0..direct {
            t.clients.push(ClientNs {
                ns: format!("{prefix}-c{i}"),
                addr: Ipv4Addr::new(192, 0, 2, 11 + i as u8),
                behind_nat: false,
            });
        }
        for i in 0..behind_nat {
            t.clients.push(ClientNs {
                ns: format!("{prefix}-n{i}"),
                addr: Ipv4Addr::new(172, 16, 0, 11 + i as u8),
                behind_nat: true,
            });
        }
        // The guard exists before the first namespace, so a half-built lab is removed too.
        for ns in t.all() {
            ip(&["netns", "add", &ns]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        let veth = |a: &str, an: &str, b: &str, bn: &str| {
            ip(&[
                "link", "add", an, "netns", a, "type", "veth", "peer", "name", bn, "netns", b,
            ]);
            ip(&["-n", a, "link", "set", an, "up"]);
            ip(&["-n", b, "link", "set", bn, "up"]);
        };
        let addr = |ns: &str, a: &str, dev: &str| ip(&["-n", ns, "addr", "add", a, "dev", dev]);
        let bridge = |ns: &str, br: &str| {
            ip(&["-n", ns, "link", "add", "name", br, "type", "bridge"]);
            ip(&["-n", ns, "link", "set", "dev", br, "up"]);
        };
        let port = |ns: &str, dev: &str, br: &str| {
            ip(&["-n", ns, "link", "set", "dev", dev, "master", br])
        };

        // LAN and gateway.
        veth(&t.lan, "lan", &t.gw, "lan");
        addr(&t.lan, &format!("{RA_LAN_HOST}/24"), "lan");
        addr(&t.gw, &format!("{RA_GW_LAN}/24"), "lan");
        ip(&[
            "-n",
            &t.lan,
            "route",
            "add",
            "default",
            "via",
            &RA_GW_LAN.to_string(),
        ]);
        // The WAN switch.
        bridge(&t.wan, "br0");
        veth(&t.gw, "wan", &t.wan, "p-gw");
        port(&t.wan, "p-gw", "br0");
        addr(&t.gw, &format!("{RA_GW_WAN}/24"), "wan");
        for (i, c) in t.clients.iter().filter(|c| !c.behind_nat).enumerate() {
            let p = format!("p-c{i}");
            veth(&c.ns, "wan", &t.wan, &p);
            port(&t.wan, &p, "br0");
            addr(&c.ns, &format!("{}/24", c.addr), "wan");
        }
        // The NAT and its clients.
        if let Some(nat) = &t.nat {
            veth(nat, "out", &t.wan, "p-nat");
            port(&t.wan, "p-nat", "br0");
            addr(nat, &format!("{RA_NAT_PUBLIC}/24"), "out");
            bridge(nat, "inbr");
            addr(nat, &format!("{RA_NAT_INSIDE}/24"), "inbr");
            for (i, c) in t.clients.iter().filter(|c| c.behind_nat).enumerate() {
                let p = format!("q{i}");
                veth(&c.ns, "wan", nat, &p);
                port(nat, &p, "inbr");
                addr(&c.ns, &format!("{}/24", c.addr), "wan");
                ip(&[
                    "-n",
                    &c.ns,
                    "route",
                    "add",
                    "default",
                    "via",
                    &RA_NAT_INSIDE.to_string(),
                ]);
            }
            load_nft(
                nat,
                "flush ruleset\ntable ip nat {\n    chain post {\n        type nat hook postrouting priority srcnat; policy accept;\n        oifname \"out\" masquerade\n    }\n}\n",
            );
        }
        for ns in std::iter::once(&t.gw).chain(&t.nat) {
            for kv in [
                "net.ipv4.ip_forward=1",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
            ] {
                sysctl(ns, kv);
            }
        }
        t
    }

    /// As [`RaTopology::up`], plus a second site on the WAN switch for site-to-site beside
    /// remote access: gateway B (namespace `PREFIX-gwb`, 192.0.2.2 on the switch, 10.2.0.1/24
    /// on its LAN, forwarding) and its LAN host (`PREFIX-lanb`, 10.2.0.2, default route via B).
    pub fn up_with_site(prefix: &str, direct: usize, behind_nat: usize) -> RaTopology {
        let mut t = RaTopology::up(prefix, direct, behind_nat);
        let (gwb, lanb) = (format!("{prefix}-gwb"), format!("{prefix}-lanb"));
        // In the list before anything can fail, so the guard removes them.
        t.site_b = Some((gwb.clone(), lanb.clone()));
        for ns in [&gwb, &lanb] {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&[
            "link", "add", "wan", "netns", &gwb, "type", "veth", "peer", "name", "p-gwb", "netns",
            &t.wan,
        ]);
        ip(&["-n", &gwb, "link", "set", "wan", "up"]);
        ip(&["-n", &t.wan, "link", "set", "p-gwb", "up"]);
        ip(&["-n", &t.wan, "link", "set", "dev", "p-gwb", "master", "br0"]);
        ip(&[
            "-n",
            &gwb,
            "addr",
            "add",
            &format!("{RA_SITE_B_WAN}/24"),
            "dev",
            "wan",
        ]);
        ip(&[
            "link", "add", "lan", "netns", &lanb, "type", "veth", "peer", "name", "lan", "netns",
            &gwb,
        ]);
        ip(&["-n", &lanb, "link", "set", "lan", "up"]);
        ip(&["-n", &gwb, "link", "set", "lan", "up"]);
        ip(&[
            "-n",
            &lanb,
            "addr",
            "add",
            &format!("{RA_SITE_B_HOST}/24"),
            "dev",
            "lan",
        ]);
        ip(&["-n", &gwb, "addr", "add", "10.2.0.1/24", "dev", "lan"]);
        ip(&["-n", &lanb, "route", "add", "default", "via", "10.2.0.1"]);
        for kv in [
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ] {
            sysctl(&gwb, kv);
        }
        t
    }

    fn all(&self) -> Vec<String> {
        let mut v = vec![self.gw.clone(), self.lan.clone(), self.wan.clone()];
        v.extend(self.nat.iter().cloned());
        if let Some((g, l)) = &self.site_b {
            v.push(g.clone());
            v.push(l.clone());
        }
        v.extend(self.clients.iter().map(|c| c.ns.clone()));
        v
    }
}

/// Loads an nft script in namespace `ns` (from stdin).
fn load_nft(ns: &str, script: &str) {
    let path = std::env::temp_dir().join(format!("ironsec-it-{ns}.nft"));
    fs::write(&path, script).unwrap();
    let out = run_timeout(
        ns_cmd(ns, "nft").arg("-f").arg(&path),
        Duration::from_secs(10),
    );
    let _ = fs::remove_file(&path);
    assert!(
        out.status.success(),
        "nft -f in {ns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for RaTopology {
    fn drop(&mut self) {
        for ns in self.all() {
            if let Ok(o) = Command::new("ip").args(["netns", "pids", &ns]).output() {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    if let Ok(pid) = pid.parse::<libc::pid_t>() {
                        // SAFETY: kill(2) takes no pointers; the PID runs in a namespace
                        // this lab created.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        }
    }
}

// ------------------------------------------------------------------------------------------
// swanctl.conf editing by section

/// Sets `key = value` in the first section named `section` (a line `section {` or
/// `section : ...{`, at any depth) of a swanctl.conf text: replaces the key's line in that
/// section (not in its subsections) or inserts it as the section's first line. Panics if
/// there is no such section, so template drift is noticed.
pub fn set_swanctl_key(text: &str, section: &str, key: &str, value: &str) -> String {
    edit_section(text, section, key, Some(value))
}

/// Removes `key = ...` from the first section named `section` (if it is there).
pub fn remove_swanctl_key(text: &str, section: &str, key: &str) -> String {
    edit_section(text, section, key, None)
}

fn is_section_start(line: &str, section: &str) -> bool {
    let t = line.trim();
    t.ends_with('{')
        && t.strip_prefix(section)
            .is_some_and(|r| r.trim_start().starts_with('{') || r.trim_start().starts_with(':'))
}

fn edit_section(text: &str, section: &str, key: &str, value: Option<&str>) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let start = lines
        .iter()
        .position(|l| !l.trim_start().starts_with('#') && is_section_start(l, section))
        .unwrap_or_else(|| panic!("no section `{section}` in the swanctl.conf text"));
    let indent = {
        let l = &lines[start];
        format!("{}    ", &l[..l.len() - l.trim_start().len()])
    };
    let mut depth = 0usize;
    let mut found = None;
    for (i, l) in lines.iter().enumerate().skip(start + 1) {
        let t = l.trim();
        if t.starts_with('#') {
            continue;
        }
        if t.ends_with('{') {
            depth += 1;
        } else if t == "}" {
            if depth == 0 {
                break;
            }
            depth -= 1;
        } else if depth == 0
            && t.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        {
            found = Some(i);
            break;
        }
    }
    match (found, value) {
        (Some(i), Some(v)) => lines[i] = format!("{indent}{key} = {v}"),
        (Some(i), None) => {
            lines.remove(i);
        }
        (None, Some(v)) => lines.insert(start + 1, format!("{indent}{key} = {v}")),
        (None, None) => {}
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

// ------------------------------------------------------------------------------------------
// Clients

/// An emulated client's proposals: a connection of conf/strongswan/swanctl-rw-client.conf
/// (whose comments give the sources).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// strongSwan's own defaults (`default`, IKE and ESP).
    StrongSwan,
    /// Windows 7 .. 11 registry defaults (MODP1024, 3DES/AES-CBC, SHA-1/SHA-2).
    Win10,
    /// Windows 11: Win10 plus an AES-GCM proposal with MODP1024.
    Win11,
    /// Windows with NegotiateDH2048_AES256 = 2 (AES-256, MODP2048).
    WinDh2048,
    /// macOS 11+ / iOS 14+ defaults (AES-256, SHA2-256, MODP2048; no PFS).
    Apple,
    /// The strongSwan Android app with no proposal configured.
    Android,
}

impl Profile {
    pub const ALL: [Profile; 6] = [
        Profile::StrongSwan,
        Profile::Win10,
        Profile::Win11,
        Profile::WinDh2048,
        Profile::Apple,
        Profile::Android,
    ];

    /// The connection name in swanctl-rw-client.conf (`swanctl --initiate --ike NAME`).
    pub fn conn(self) -> &'static str {
        match self {
            Profile::StrongSwan => "rw",
            Profile::Win10 => "rw-win10",
            Profile::Win11 => "rw-win11",
            Profile::WinDh2048 => "rw-win-dh2048",
            Profile::Apple => "rw-apple",
            Profile::Android => "rw-android",
        }
    }

    /// The IKE key exchange every proposal of the profile has in common, if any (what a
    /// gateway must have chosen): `modp1024` for Windows' defaults, `modp2048` for Windows
    /// with the registry key and for Apple.
    pub fn ike_group(self) -> Option<&'static str> {
        match self {
            Profile::Win10 | Profile::Win11 => Some("modp1024"),
            Profile::WinDh2048 | Profile::Apple => Some("modp2048"),
            Profile::StrongSwan | Profile::Android => None,
        }
    }
}

/// How a client authenticates.
#[derive(Clone, Debug)]
pub enum ClientAuth {
    /// EAP-MSCHAPv2 as `user` with `password`; IDi = the client's IP address.
    EapMschapv2 { user: String, password: String },
    /// An IKE signature with `cert` (its identity: the certificate's SAN).
    Pubkey { cert: Cert },
    /// EAP-TLS with `cert` (IDi and EAP identity: the certificate's SAN).
    EapTls { cert: Cert },
}

impl ClientAuth {
    pub fn eap(user: &str, password: &str) -> ClientAuth {
        ClientAuth::EapMschapv2 {
            user: user.to_string(),
            password: password.to_string(),
        }
    }

    /// The identity the gateway should see for this client: the EAP user, or the
    /// certificate's SAN.
    pub fn identity(&self) -> String {
        match self {
            ClientAuth::EapMschapv2 { user, .. } => user.clone(),
            ClientAuth::Pubkey { cert } | ClientAuth::EapTls { cert } => cert.id.fqdn.to_string(),
        }
    }
}

/// swanctl-rw-client.conf for `auth`, aimed at `gateway` (its WAN address), reaching
/// `remote_ts`; the certificate file (x509/) is `cert_file` for certificate methods.
pub fn client_swanctl_conf(
    auth: &ClientAuth,
    gateway: impl Into<IpAddr>,
    remote_ts: &str,
) -> String {
    let gateway: IpAddr = gateway.into();
    let text = super::rewrite_swanctl_template(
        &example_config("strongswan/swanctl-rw-client.conf"),
        "conf/strongswan/swanctl-rw-client.conf",
        &[
            ("remote_addrs", gateway.to_string()),
            ("remote_ts", remote_ts.to_string()),
        ],
    );
    let quoted = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    match auth {
        ClientAuth::EapMschapv2 { user, password } => {
            let text = set_swanctl_key(&text, "local", "eap_id", &quoted(user));
            let text = set_swanctl_key(&text, "eap-user", "id", &quoted(user));
            set_swanctl_key(&text, "eap-user", "secret", &quoted(password))
        }
        ClientAuth::Pubkey { cert } | ClientAuth::EapTls { cert } => {
            let method = match auth {
                ClientAuth::Pubkey { .. } => "pubkey",
                _ => "eap-tls",
            };
            let text = set_swanctl_key(&text, "local", "auth", method);
            let text = remove_swanctl_key(&text, "local", "eap_id");
            let text = set_swanctl_key(&text, "local", "id", &quoted(cert.id.fqdn));
            let text = set_swanctl_key(&text, "local", "certs", &format!("{}.pem", cert.name));
            // No EAP secret for certificate clients.
            let text = set_swanctl_key(&text, "eap-user", "id", "nobody");
            set_swanctl_key(
                &text,
                "eap-user",
                "secret",
                &quoted(&super::hex(&super::random_bytes(16))),
            )
        }
    }
}

/// Fills swanctl's credential directories under `dir` for a client: the CAs (and CRLs) that
/// vouch for the gateway in x509ca/ (x509crl/), and for certificate methods the client's own
/// certificate in x509/ and key in private/.
pub fn install_client_credentials(dir: &Path, pki: &Pki, auth: &ClientAuth) {
    match auth {
        ClientAuth::Pubkey { cert } | ClientAuth::EapTls { cert } => {
            pki.install_swanctl(dir, cert);
        }
        ClientAuth::EapMschapv2 { .. } => {
            for sub in ["x509ca", "x509crl"] {
                fs::create_dir_all(dir.join(sub)).unwrap();
            }
            fs::copy(&pki.root, dir.join("x509ca/root.pem")).unwrap();
            fs::copy(&pki.int, dir.join("x509ca/int.pem")).unwrap();
            fs::copy(&pki.int_crl, dir.join("x509crl/int.crl.pem")).unwrap();
            fs::copy(&pki.root_crl, dir.join("x509crl/root.crl.pem")).unwrap();
        }
    }
}

/// One road-warrior client: a charon in namespace `ns` running
/// conf/strongswan/swanctl-rw-client.conf for one [`ClientAuth`], every profile loaded.
/// Dropping it stops charon (by PID).
pub struct RwClient {
    pub ns: String,
    pub auth: ClientAuth,
    pub sw: StrongSwan,
}

impl RwClient {
    /// Starts the client (not yet connected) with all its state in `dir`; `remote_ts` is what
    /// it asks to reach (the gateway's LAN, or 0.0.0.0/0).
    pub fn start(
        ns: &str,
        dir: &Path,
        pki: &Pki,
        auth: ClientAuth,
        gateway: Ipv4Addr,
        remote_ts: &str,
    ) -> RwClient {
        RwClient::start_with(
            ns,
            dir,
            pki,
            auth,
            gateway.into(),
            remote_ts,
            "0.0.0.0",
            &rw_strongswan_template(),
        )
    }

    /// [`RwClient::start`] asking for the virtual IPs `vips` (swanctl's `vips`: "0.0.0.0",
    /// "::" or "0.0.0.0,::"), with strongswan.conf template `template`.
    #[allow(clippy::too_many_arguments)]
    pub fn start_with(
        ns: &str,
        dir: &Path,
        pki: &Pki,
        auth: ClientAuth,
        gateway: IpAddr,
        remote_ts: &str,
        vips: &str,
        template: &Path,
    ) -> RwClient {
        fs::create_dir_all(dir).unwrap();
        install_client_credentials(dir, pki, &auth);
        let conf = client_swanctl_conf(&auth, gateway, remote_ts);
        let conf = set_swanctl_key(&conf, "rw", "vips", vips);
        let template = template.to_path_buf();
        let sw = StrongSwan::start_with(
            ns,
            dir,
            &conf,
            SwOptions {
                template: Some(&template),
                ..SwOptions::default()
            },
        );
        RwClient {
            ns: ns.to_string(),
            auth,
            sw,
        }
    }

    /// `swanctl --initiate --ike PROFILE --child rw`: Ok(output) when swanctl reports
    /// success, Err(output) otherwise.
    pub fn initiate(&self, profile: Profile) -> Result<String, String> {
        let out = self.sw.swanctl(&[
            "--initiate",
            "--ike",
            profile.conn(),
            "--child",
            RW_CHILD,
            "--timeout",
            "20",
        ]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() && text.contains("initiate completed successfully") {
            Ok(text)
        } else {
            Err(text)
        }
    }

    /// `swanctl --terminate --ike PROFILE` (waits for the DELETE exchange).
    pub fn terminate(&self, profile: Profile) -> Result<String, String> {
        let out = self
            .sw
            .swanctl(&["--terminate", "--ike", profile.conn(), "--timeout", "10"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }

    /// The client's ESTABLISHED IKE SA of `profile`, if any.
    pub fn ike(&self, profile: Profile) -> Option<SwIke> {
        self.sw
            .sas()
            .into_iter()
            .find(|s| s.name == profile.conn() && s.state == "ESTABLISHED")
    }

    /// The virtual IPv4 address the gateway gave this client on `profile`'s IKE SA.
    pub fn vip(&self, profile: Profile) -> Option<Ipv4Addr> {
        self.ike(profile)?
            .local_vips
            .iter()
            .find_map(|v| v.parse().ok())
    }

    /// The virtual IPv6 address the gateway gave this client on `profile`'s IKE SA.
    pub fn vip6(&self, profile: Profile) -> Option<Ipv6Addr> {
        self.ike(profile)?
            .local_vips
            .iter()
            .find_map(|v| v.parse().ok())
    }

    /// The interface of the client's namespace that holds `addr` (ipsec0 for a virtual IP
    /// with kernel-libipsec).
    pub fn interface_of(&self, addr: impl Into<IpAddr>) -> Option<String> {
        let addr: IpAddr = addr.into();
        let (family, word) = if addr.is_ipv6() {
            ("-6", "inet6")
        } else {
            ("-4", "inet")
        };
        let out = run_ok(
            Command::new("ip").args(["-n", &self.ns, family, "-o", "addr", "show"]),
            Duration::from_secs(10),
        );
        // "5: ipsec0    inet 10.99.0.1/32 scope global ipsec0\ ..."
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let mut w = l.split_whitespace();
            let dev = w.nth(1)?;
            let a = w.skip_while(|x| *x != word).nth(1)?;
            (a.split('/').next()? == addr.to_string()).then(|| dev.to_string())
        })
    }

    /// `ip route show table 220` in the client's namespace (charon's routes).
    pub fn routes_220(&self) -> String {
        let out = run_ok(
            Command::new("ip").args(["-n", &self.ns, "route", "show", "table", "220"]),
            Duration::from_secs(10),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ip -6 route show table 220` in the client's namespace.
    pub fn routes6_220(&self) -> String {
        let out = run_ok(
            Command::new("ip").args(["-n", &self.ns, "-6", "route", "show", "table", "220"]),
            Duration::from_secs(10),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn log_text(&self) -> String {
        self.sw.log_text()
    }
}
