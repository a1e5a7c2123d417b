//! Network namespaces: the topologies of netns-scripts/topology.sh under guard, and running
//! code or binding sockets inside a namespace from the test process.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{conn_toml, require_root, run_timeout, workspace_root, Conn};

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
}

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
