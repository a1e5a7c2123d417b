//! Network namespaces: the topologies of netns-scripts/topology.sh under guard, and running
//! code or binding sockets inside a namespace from the test process.

use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{conn_toml, ns_cmd, require_root, run_ok, run_timeout, workspace_root, Conn};

/// `ip ARGS` in namespace `ns` (5 s at most); panics unless it succeeds; its stdout.
pub fn ip(ns: &str, args: &[&str]) -> String {
    let o = run_ok(ns_cmd(ns, "ip").args(args), Duration::from_secs(5));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `sysctl -qw KEY=VALUE` in namespace `ns`; panics unless it succeeds.
pub fn sysctl(ns: &str, kv: &str) {
    run_ok(
        ns_cmd(ns, "sysctl").args(["-qw", kv]),
        Duration::from_secs(5),
    );
}

pub fn topology_script() -> PathBuf {
    workspace_root().join("netns-scripts/topology.sh")
}

/// The four-namespace topology of netns-scripts/topology.sh under a private prefix. Dropping it
/// runs `topology.sh down`, which kills what still runs inside and deletes the namespaces.
pub struct Topology {
    pub prefix: String,
    pub lan_a: String,
    pub gw_a: String,
    pub gw_b: String,
    pub lan_b: String,
}

impl Topology {
    pub fn up(prefix: &str) -> Topology {
        Topology::up_links(prefix, 1)
    }

    /// With `links` = 2, a second WAN veth `wan2`: gwA 198.51.100.1 === 198.51.100.2 gwB.
    pub fn up_links(prefix: &str, links: u8) -> Topology {
        require_root();
        let t = Topology {
            prefix: prefix.to_string(),
            lan_a: format!("{prefix}-lanA"),
            gw_a: format!("{prefix}-gwA"),
            gw_b: format!("{prefix}-gwB"),
            lan_b: format!("{prefix}-lanB"),
        };
        // The guard exists before `up` so a half-built topology is removed too.
        topology_up(prefix, &[("IRONSEC_WAN_LINKS", links.to_string())]);
        for ns in [&t.lan_a, &t.gw_a, &t.gw_b, &t.lan_b] {
            assert!(
                Path::new(&format!("/var/run/netns/{ns}")).exists(),
                "namespace {ns} missing after topology.sh up"
            );
        }
        t
    }

    /// The two-site topology with `mtu` on the WAN veth (both gateways' `wan`).
    pub fn up_wan_mtu(prefix: &str, mtu: u16) -> Topology {
        require_root();
        let t = Topology {
            prefix: prefix.to_string(),
            lan_a: format!("{prefix}-lanA"),
            gw_a: format!("{prefix}-gwA"),
            gw_b: format!("{prefix}-gwB"),
            lan_b: format!("{prefix}-lanB"),
        };
        topology_up(prefix, &[("IRONSEC_WAN_MTU", mtu.to_string())]);
        t
    }

    fn down(&self) {
        topology_down(&self.prefix);
    }

    /// Adds the IPv6 addresses of docs/plan-issue-26-ipv6.md section 4 beside the IPv4 ones
    /// of a two-site topology: WAN 2001:db8:f::1 (gwA) / ::2 (gwB), LAN i 2001:db8:i::/64 with
    /// the gateway at ::1 and the host at ::2 (default route via ::1), IPv6 forwarding on the
    /// gateways. Duplicate address detection is off everywhere (`accept_dad=0` on every
    /// interface, also those created later such as the TUN devices, and `nodad`): DAD keeps a
    /// fresh address unusable for 1-2 s.
    pub fn add_ipv6(&self) {
        // (namespace, LAN device, its address, default route, link-local address on each
        // device): the link-local addresses the kernel gave the veths when topology.sh made
        // them are still in DAD, and a router cannot resolve a neighbour (its solicitations
        // come from the link-local address) until that ends: they are replaced by fixed ones
        // without DAD.
        let hosts = [
            (
                &self.lan_a,
                "a-lan",
                "2001:db8:1::2/64",
                Some("2001:db8:1::1"),
                &[("a-lan", "fe80::2")][..],
            ),
            (
                &self.gw_a,
                "lan",
                "2001:db8:1::1/64",
                None,
                &[("lan", "fe80::1"), ("wan", "fe80::1")][..],
            ),
            (
                &self.gw_b,
                "lan",
                "2001:db8:2::1/64",
                None,
                &[("lan", "fe80::1"), ("wan", "fe80::2")][..],
            ),
            (
                &self.lan_b,
                "b-lan",
                "2001:db8:2::2/64",
                Some("2001:db8:2::1"),
                &[("b-lan", "fe80::2")][..],
            ),
        ];
        for (ns, dev, addr, gw, lls) in hosts {
            let mut script = String::from(
                "set -e; for c in /proc/sys/net/ipv6/conf/*/accept_dad; do echo 0 >\"$c\"; done; ",
            );
            for (d, ll) in lls {
                script += &format!(
                    "ip -6 addr flush dev {d} scope link; ip -6 addr add {ll}/64 dev {d} nodad; "
                );
            }
            script += &format!("ip -6 addr add {addr} dev {dev} nodad; ");
            if let Some(gw) = gw {
                script += &format!("ip -6 route add default via {gw} dev {dev}; ");
            } else {
                let wan = if ns == &self.gw_a { WAN6_A } else { WAN6_B };
                script += &format!(
                    "ip -6 addr add {wan}/64 dev wan nodad; sysctl -qw net.ipv6.conf.all.forwarding=1; "
                );
            }
            run_ok(
                ns_cmd(ns, "sh").args(["-c", &script]),
                Duration::from_secs(10),
            );
        }
    }

    /// Removes the IPv4 addresses of the WAN link (192.0.2.1 and .2): what crosses it after
    /// that can only be IPv6.
    pub fn remove_wan_ipv4(&self) {
        for (ns, addr) in [(&self.gw_a, "192.0.2.1/24"), (&self.gw_b, "192.0.2.2/24")] {
            run_ok(
                ns_cmd(ns, "ip").args(["addr", "del", addr, "dev", "wan"]),
                Duration::from_secs(5),
            );
        }
    }
}

/// The IPv6 addresses [`Topology::add_ipv6`] gives the two-site topology.
pub const WAN6_A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 1);
pub const WAN6_B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 2);
pub const LAN6_A_HOST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
pub const LAN6_B_HOST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 2);

/// `topology.sh up` for `prefix` with extra settings in `env`; panics with its output if it
/// fails (it removes what it built before it exits).
fn topology_up(prefix: &str, env: &[(&str, String)]) {
    let mut cmd = Command::new("bash");
    cmd.arg(topology_script())
        .arg("up")
        .env("IRONSEC_NS_PREFIX", prefix);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run_timeout(&mut cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "topology.sh up {env:?} failed (is this root with `ip netns add` allowed?): {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `topology.sh down` for `prefix`: removes every namespace it owns; never fails.
fn topology_down(prefix: &str) {
    let out = Command::new("bash")
        .arg(topology_script())
        .arg("down")
        .env("IRONSEC_NS_PREFIX", prefix)
        .stdin(Stdio::null())
        .output();
    if let Ok(o) = &out {
        if !o.status.success() {
            eprintln!("topology.sh down: {}", String::from_utf8_lossy(&o.stderr));
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.down();
    }
}

/// `topology.sh` with IRONSEC_SITES=n (3 or 4): gateways gwA.. on a WAN bridge, each with its
/// LAN. Site i (0-based) has WAN address 192.0.2.(i+1), LAN 10.(i+1).0.0/24 with the gateway
/// at .1 and a host at .2. Dropping it removes every namespace of the prefix.
pub struct MultiSite {
    pub prefix: String,
    pub sites: usize,
}

impl MultiSite {
    pub fn up(prefix: &str, sites: usize) -> MultiSite {
        require_root();
        let t = MultiSite {
            prefix: prefix.to_string(),
            sites,
        };
        topology_up(prefix, &[("IRONSEC_SITES", sites.to_string())]);
        t
    }

    fn letter(i: usize) -> char {
        (b'A' + i as u8) as char
    }

    pub fn gw(&self, i: usize) -> String {
        format!("{}-gw{}", self.prefix, MultiSite::letter(i))
    }

    pub fn lan(&self, i: usize) -> String {
        format!("{}-lan{}", self.prefix, MultiSite::letter(i))
    }

    pub fn wan_ip(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, i as u8 + 1)
    }

    pub fn lan_host(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, i as u8 + 1, 0, 2)
    }

    pub fn lan_net(i: usize) -> String {
        format!("10.{}.0.0/24", i + 1)
    }

    /// Site `i`'s letter in identities and connection names: the hub is `a`, the spokes `b`,
    /// `c`, `d`.
    pub fn id_letter(i: usize) -> char {
        Self::letter(i).to_ascii_lowercase()
    }

    /// The hub's (site 0) connection `site-<letter>` to spoke `i`, identities `gw-<letter>.example`.
    pub fn hub_conn(i: usize, psk: &Path, start_action: &str, extra: &str) -> String {
        conn_toml(&Conn {
            name: &format!("site-{}", Self::id_letter(i)),
            local_id: "gw-a.example",
            remote_id: &format!("gw-{}.example", Self::id_letter(i)),
            psk_file: psk,
            local_ts: &Self::lan_net(0),
            remote_ts: &Self::lan_net(i),
            local: Self::wan_ip(0),
            remote: Self::wan_ip(i),
            start_action,
            extra,
        })
    }

    /// Spoke `i`'s connection `site-a` to the hub.
    pub fn spoke_conn(i: usize, psk: &Path, start_action: &str, extra: &str) -> String {
        conn_toml(&Conn {
            name: "site-a",
            local_id: &format!("gw-{}.example", Self::id_letter(i)),
            remote_id: "gw-a.example",
            psk_file: psk,
            local_ts: &Self::lan_net(i),
            remote_ts: &Self::lan_net(0),
            local: Self::wan_ip(i),
            remote: Self::wan_ip(0),
            start_action,
            extra,
        })
    }
}

impl Drop for MultiSite {
    fn drop(&mut self) {
        topology_down(&self.prefix);
    }
}

/// Runs `f` on a dedicated thread that has joined network namespace `ns` (setns CLONE_NEWNET);
/// sockets created there stay in that namespace after the thread ends.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    let h = std::thread::spawn(move || {
        let fd = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: `fd` is an open namespace file for the call's duration; setns changes only
        // this (dedicated, short-lived) thread's network namespace.
        let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
        f()
    });
    match h.join() {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e),
    }
}

/// A UDP socket inside namespace `ns`, bound to `bind`.
pub fn udp_socket_in(ns: &str, bind: SocketAddr) -> UdpSocket {
    in_netns(ns, move || {
        UdpSocket::bind(bind).unwrap_or_else(|e| panic!("bind {bind}: {e}"))
    })
}
