//! The static-key lab: topology + keys + two daemons configured from
//! conf/static-gw-{a,b}.toml.

use std::fs;
use std::path::Path;

use super::{
    example_config, keymat_len, random_bytes, require_root, rewrite_toml_lines, toml_str,
    unique_prefix, write_keys_file, Capture, Daemon, TempDir, Topology, SPI_A_TO_B, SPI_B_TO_A,
};

pub struct LabOpts {
    pub suite: &'static str,
    pub esn: bool,
    /// UDP GSO/GRO. A capture on a host with segmentation offload sees the super-packets
    /// before the kernel splits them, so tests that judge captured ESP packet by packet turn
    /// it off.
    pub udp_offload: bool,
    /// More `key = value` rewrites of gwB's config (e.g. narrower `local_ts`).
    pub b_rewrites: Vec<(&'static str, String)>,
}

impl Default for LabOpts {
    fn default() -> Self {
        LabOpts {
            suite: "aes128gcm16",
            esn: true,
            udp_offload: true,
            b_rewrites: Vec::new(),
        }
    }
}

/// Field order matters: daemons stop before the namespaces go, the directory (logs) goes last.
pub struct Lab {
    pub a: Daemon,
    pub b: Daemon,
    pub topo: Topology,
    pub suite: &'static str,
    pub esn: bool,
    /// Key material gwA -> gwB (SPI_A_TO_B) and gwB -> gwA (SPI_B_TO_A).
    pub key_ab: Vec<u8>,
    pub key_ba: Vec<u8>,
    pub dir: TempDir,
}

impl Lab {
    pub fn start(opts: LabOpts) -> Lab {
        require_root();
        let prefix = unique_prefix();
        let dir = TempDir::new(&prefix);
        let topo = Topology::up(&prefix);
        let key_ab = random_bytes(keymat_len(opts.suite));
        let key_ba = random_bytes(keymat_len(opts.suite));
        let keys = dir.join("site.keys");
        write_keys_file(&keys, &[(SPI_A_TO_B, &key_ab), (SPI_B_TO_A, &key_ba)]);

        let mk = |example: &str, sock: &Path, out: &Path, more: &[(&str, String)]| {
            let mut rw = vec![
                ("control_socket", toml_str(sock.to_str().unwrap())),
                ("keys_file", toml_str(keys.to_str().unwrap())),
                ("esp", toml_str(opts.suite)),
                ("esn", opts.esn.to_string()),
                ("udp_offload", opts.udp_offload.to_string()),
            ];
            rw.extend(more.iter().cloned());
            let text = rewrite_toml_lines(&example_config(example), &rw);
            fs::write(out, text).unwrap();
        };
        let (sock_a, sock_b) = (dir.join("a.sock"), dir.join("b.sock"));
        let (cfg_a, cfg_b) = (dir.join("gw-a.toml"), dir.join("gw-b.toml"));
        mk("static-gw-a.toml", &sock_a, &cfg_a, &[]);
        mk("static-gw-b.toml", &sock_b, &cfg_b, &opts.b_rewrites);

        let a = Daemon::start(
            "gwA",
            &topo.gw_a,
            &cfg_a,
            &sock_a,
            dir.join("ironsecd-a.log"),
        );
        let b = Daemon::start(
            "gwB",
            &topo.gw_b,
            &cfg_b,
            &sock_b,
            dir.join("ironsecd-b.log"),
        );
        Lab {
            a,
            b,
            topo,
            suite: opts.suite,
            esn: opts.esn,
            key_ab,
            key_ba,
            dir,
        }
    }

    /// Starts tcpdump on `iface` in `ns`, writing `file`; returns once it is capturing.
    pub fn capture(&self, ns: &str, iface: &str, file: &Path, filter: &[&str]) -> Capture {
        Capture::start(
            ns,
            iface,
            file,
            filter,
            self.dir.join(&format!("tcpdump-{ns}-{iface}.log")),
        )
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "[test] lab {} failed; daemon logs follow (from their guards)",
                self.topo.prefix
            );
        }
    }
}
