//! Configuration: one set of types ([`schema`]) for what the files say, read from the main
//! file, its `conf.d` fragments and the environment ([`load`]), validated into the model below,
//! which is what the daemon runs on. Every error names file, key and reason.

pub mod drain;
pub mod error;
pub mod gateway;
pub mod ike_keying;
pub mod keys;
pub mod load;
mod overlap;
pub mod peer_name;
pub mod pki;
pub mod radius;
pub mod remote_access;
pub mod schema;
pub mod static_keying;
pub mod suggest;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ironsec_dataplane::{Prefix, Selector};

pub use drain::Drain;
pub use error::{ConfigError, ConfigErrors};
pub use gateway::{Applies, Gateway, GatewayKey, MetricsToken, NeedsRestart, SetsUp};
use ironsec_esp::Suite;
pub use keys::Keymat;
use load::{Loaded, SourcedConnection};
pub use load::{ENVIRONMENT, ENV_PREFIX, FRAGMENT_DIR};
use schema::{ConnectionSchema, GatewaySchema, KeyingKind, WordOrNumber};

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The main file, as given.
    pub file: PathBuf,
    /// Every file read: the main file first, then its `conf.d/*.toml` fragments in name order.
    /// Kept so `ironsecd check` and the daemon's logs can show what a config was made of.
    pub sources: Vec<PathBuf>,
    /// The `IRONSEC_GATEWAY__<KEY>` variables that overrode gateway keys, sorted: the file
    /// alone no longer tells what runs, so the daemon should say it.
    pub env_overrides: Vec<String>,
    pub gateway: Gateway,
    pub connections: Vec<Connection>,
    /// `[drain]`: planned maintenance (see [`drain`]).
    pub drain: Drain,
    /// Trust anchors and CRLs read from `gateway.ca_dir` / `gateway.crl_dir`.
    pub trust: pki::Trust,
    /// The shipped example secret files this config names ([`keys::EXAMPLE_MARK`]), one line
    /// each: only [`Config::load_for_check`] accepts them, and `ironsecd check` shows these.
    pub example_secrets: Vec<String>,
}

/// What loading does with a shipped example secret file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Examples {
    /// Refuse it, as any error: the daemon never runs with a key everyone has.
    Refuse,
    /// Accept it and say so ([`Config::example_secrets`]): `ironsecd check` on the shipped
    /// examples, from a fresh clone.
    Accept,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub name: String,
    /// The address prefixes of `local_selectors` (each once, in order): what routes, LAN
    /// checks and the overlap check between connections work on.
    pub local_ts: Vec<Prefix>,
    pub remote_ts: Vec<Prefix>,
    /// `local_ts`/`remote_ts` as written, with their protocol and ports
    /// (`10.2.0.0/24[tcp/443]`): what we propose in TSi/TSr and what the fast path enforces.
    pub local_selectors: Vec<Selector>,
    pub remote_selectors: Vec<Selector>,
    /// Share of gateway.bandwidth under contention, relative to the other connections'.
    pub bandwidth_weight: u32,
    /// This connection's own cap in bits/s.
    pub bandwidth: Option<u64>,
    /// How SYNs through its tunnels get their MSS clamped.
    pub mss_clamp: MssClamp,
    /// The outer path MTU its tunnels are sized for.
    pub path_mtu: PathMtu,
    /// Whether the inner DSCP is copied to the outer header.
    pub copy_dscp: CopyDscp,
    /// A route-based connection's interface; `None` for a policy-based one (the gateway's
    /// shared TUN device, with a route per remote selector).
    pub route_based: Option<RouteBased>,
    pub keying: Keying,
}

impl Connection {
    /// A remote-access connection: its tunnels are its clients' (see `remote_access`).
    pub fn is_remote_access(&self) -> bool {
        matches!(&self.keying, Keying::Ike(k) if k.remote_access.is_some())
    }
}

/// What makes a connection route-based (ARCHITECTURE.md, "Route-based connections").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteBased {
    /// The tunnel interface ironsecd creates for it.
    pub interface: String,
    /// The address put on it: the address itself and its prefix length.
    pub address: Option<(IpAddr, u8)>,
    /// Static routes into the interface.
    pub routes: Vec<Prefix>,
    /// Guarded prefixes (blackhole routes that outlive the daemon).
    pub protect: Vec<Prefix>,
}

impl RouteBased {
    /// `interface_address` as written back: "169.254.21.1/30".
    pub fn address_text(&self) -> Option<String> {
        self.address.map(|(a, l)| format!("{a}/{l}"))
    }
}

/// Whether `name` can be a Linux interface name: 1 to 15 bytes (IFNAMSIZ less the NUL), no
/// '/', ':', whitespace or control characters, and not "." or "..".
pub(crate) fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '/' && c != ':')
}

/// strongSwan's `copy_dscp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CopyDscp {
    /// Inner to outer when sealing (strongSwan's default): the WAN can queue by class.
    #[default]
    Out,
    /// Outer to inner when opening: the WAN's marking reaches the site (anyone on the WAN
    /// path can then remark the site's traffic, hence not the default).
    In,
    /// Both.
    Yes,
    /// Neither: outer headers carry DSCP 0, inner ones are left alone.
    No,
}

impl CopyDscp {
    pub fn outwards(self) -> bool {
        matches!(self, CopyDscp::Out | CopyDscp::Yes)
    }

    pub fn inwards(self) -> bool {
        matches!(self, CopyDscp::In | CopyDscp::Yes)
    }
}

pub use ironsec_dataplane::mtu::MssClamp;

/// The outer path MTU a connection's tunnels are sized for (see `tables::tunnel_mtu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathMtu {
    /// The kernel's route MTU (or learned path MTU) towards the peer, read when tables are
    /// built; 1500 if it cannot be read.
    #[default]
    Auto,
    Fixed(u16),
}

// One per connection, built at load: size does not matter, and a Box would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Keying {
    Static(StaticKeying),
    Ike(IkeKeying),
}

impl Connection {
    /// The ESP suite with the largest per-packet overhead this connection may run: its static
    /// suite, or the costliest of its ESP proposals. What a tunnel without an SA is sized for
    /// (route MTU, MSS clamp), so the size cannot grow past what an SA will carry once it is
    /// negotiated; a tunnel with an SA is sized for that SA's suite.
    pub fn costliest_suite(&self) -> Suite {
        let suites: Vec<Suite> = match &self.keying {
            Keying::Static(st) => vec![st.suite],
            Keying::Ike(ike) => ike
                .esp_proposals
                .iter()
                .flat_map(|p| {
                    // Every suite the proposal can agree on: an AEAD alone, a CBC cipher
                    // with each of its integrity algorithms.
                    p.encr.iter().flat_map(move |&e| {
                        let integs: Vec<Option<ironsec_esp::Integ>> = if e.is_aead() {
                            vec![None]
                        } else {
                            p.integ.iter().copied().map(Some).collect()
                        };
                        integs
                            .into_iter()
                            .filter_map(move |i| Suite::from_parts(e, i))
                    })
                })
                .collect(),
        };
        // Overhead is ordered the same at every size (AEAD < CBC, then by ICV), so one
        // Ethernet-sized datagram decides.
        suites
            .into_iter()
            .min_by_key(|s| s.max_payload(1472))
            .unwrap_or(Suite::Aes128Gcm16)
    }
}

pub use ike_keying::{IkeKeying, IkeTunnel, VolumeLimits};
pub use schema::{CloseAction, Mode, StartAction};
pub use static_keying::{StaticKeying, StaticTunnel};

impl Keying {
    /// Local addresses of the tunnels: where ESP-in-UDP sockets must be bound.
    pub fn local_ips(&self) -> Vec<IpAddr> {
        match self {
            Keying::Static(s) => s.tunnels.iter().map(|t| t.local).collect(),
            Keying::Ike(i) => i
                .tunnels
                .iter()
                .map(|t| t.local)
                .chain(i.remote_access.as_ref().map(|r| r.local))
                .collect(),
        }
    }

    /// Peer addresses of the tunnels, in `tunnels` order.
    pub fn remote_ips(&self) -> Vec<IpAddr> {
        match self {
            Keying::Static(s) => s.tunnels.iter().map(|t| t.remote.ip()).collect(),
            Keying::Ike(i) => i.tunnels.iter().map(|t| t.remote).collect(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Keying::Static(_) => "static",
            Keying::Ike(_) => "ike",
        }
    }
}

impl Config {
    /// Reads and validates `path`, the `conf.d/*.toml` fragments beside it and the
    /// `IRONSEC_GATEWAY__<KEY>` overrides in the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Config::load_with_env(path, process_env())
    }

    /// [`Config::load`] with the environment given as (name, value) pairs, so tests and tools
    /// need not change the process environment (which is shared by all threads).
    pub fn load_with_env(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigErrors> {
        let mut errs = Vec::new();
        let loaded = load::load(path, env, &mut errs);
        validate(path, loaded, errs, Examples::Refuse)
    }

    /// [`Config::load`] for `ironsecd check`: the same checks, except that the example secret
    /// files shipped under `conf/` are accepted and listed in [`Config::example_secrets`]
    /// instead of refused, so every shipped example can be checked as it is.
    pub fn load_for_check(path: &Path) -> Result<Config, ConfigErrors> {
        Config::load_for_check_with_env(path, process_env())
    }

    /// [`Config::load_for_check`] with the environment given, as [`Config::load_with_env`].
    pub fn load_for_check_with_env(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigErrors> {
        let mut errs = Vec::new();
        let loaded = load::load(path, env, &mut errs);
        validate(path, loaded, errs, Examples::Accept)
    }

    /// One line on what this config is made of: connections, files read, environment
    /// overrides. For `ironsecd check` and the start-up log, so an operator sees that a
    /// fragment or a variable was (or was not) picked up.
    pub fn describe(&self) -> String {
        let n = self.connections.len();
        let files: Vec<String> = self
            .sources
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let mut s = format!(
            "{n} connection{} from {}",
            if n == 1 { "" } else { "s" },
            files.join(", ")
        );
        if !self.env_overrides.is_empty() {
            s.push_str(&format!(
                "; gateway keys from the environment: {}",
                self.env_overrides.join(", ")
            ));
        }
        s
    }

    /// What is valid but worth an operator's look, one line each, naming the connection or
    /// key: the legacy algorithms a connection's proposals use (`IkeKeying::legacy_warnings`)
    /// and a drain state file the unit's sandbox would not let the daemon write.
    /// `ironsecd check` prints them and the daemon logs them at start.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.connections {
            if let Keying::Ike(k) = &c.keying {
                for w in k.legacy_warnings() {
                    out.push(format!("connection '{}': {w}", c.name));
                }
            }
        }
        // A shared address no tunnel uses is bound for nothing: most likely a typo, in the
        // list or in the tunnel that meant it (which then fails at start on the standby).
        let used: Vec<IpAddr> = self.local_addrs().iter().map(|a| a.ip()).collect();
        for a in &self.gateway.shared_addresses {
            if !used.contains(a) {
                out.push(format!(
                    "gateway.shared_addresses: {a} is the local address of no tunnel"
                ));
            }
        }
        out.extend(self.drain.warnings());
        out
    }

    /// Distinct local tunnel addresses, each with the gateway port: the sockets to bind.
    /// The fast path's settings: the `[gateway]` keys that set it up, and a socket per local
    /// tunnel address.
    pub fn dataplane_config(&self) -> ironsec_dataplane::DataplaneConfig {
        self.gateway.dataplane_config(self.local_addrs())
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = Vec::new();
        let mut seen: std::collections::HashSet<SocketAddr> = std::collections::HashSet::new();
        for c in &self.connections {
            for ip in c.keying.local_ips() {
                let a = SocketAddr::new(ip, self.gateway.port);
                if seen.insert(a) {
                    out.push(a);
                }
            }
        }
        out
    }
}

/// The process environment as (name, value) pairs. vars() would panic on a variable that is
/// not UTF-8; such a variable cannot be one of ours, so a lossy copy is enough.
fn process_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().map(|(k, v)| {
        (
            k.to_string_lossy().into_owned(),
            v.to_string_lossy().into_owned(),
        )
    })
}

/// The config crate appends where it was (`in FILE`, `for key K`); our errors say that in
/// their own fields, so drop the suffix.
fn strip_location(msg: &str) -> String {
    let mut m = msg.trim_end();
    for marker in [" for key `", "\n in ", " in "] {
        if let Some(i) = m.rfind(marker) {
            // Only a trailing location, not " in " inside the message itself.
            let tail = &m[i + marker.len()..];
            if !tail.contains(' ') || marker != " in " {
                m = m[..i].trim_end();
            }
        }
    }
    m.to_string()
}

/// The reason for a required key that is absent.
pub(crate) const MISSING: &str = "required key is missing";

/// Whether two key paths are the same entry or one holds the other (`connection[0].tunnels`
/// holds `connection[0].tunnels[1].local`).
fn related(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    long.strip_prefix(short)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// Orders errors the way an operator reads the files: the environment's first, then file by
/// file (the main file, then the fragments) and within a file table by table (`[gateway]`,
/// then each connection in order). Within a table the order found stays (what was refused
/// while reading, then validation's findings). An error about another file (a keys file)
/// stays after the error it came with.
fn in_file_order(errs: &mut [ConfigError], sources: &[PathBuf]) {
    let table = |key: &str| -> usize {
        key.strip_prefix("connection[")
            .and_then(|r| r.split(']').next())
            .and_then(|i| i.parse::<usize>().ok())
            .map_or(0, |i| i + 1)
    };
    // File -> its place in `sources` (the first, as a search would find it).
    let mut place_of: HashMap<&Path, usize> = HashMap::with_capacity(sources.len());
    for (i, s) in sources.iter().enumerate() {
        place_of.entry(s.as_path()).or_insert(i);
    }
    let mut last = (0, 0);
    let mut ranked: Vec<((usize, usize), ConfigError)> = errs
        .iter()
        .cloned()
        .map(|e| {
            let rank = if e.file == Path::new(ENVIRONMENT) {
                (0, 0)
            } else if let Some(&i) = place_of.get(e.file.as_path()) {
                (i + 1, table(&e.key))
            } else {
                last
            };
            last = rank;
            (rank, e)
        })
        .collect();
    ranked.sort_by_key(|(rank, _)| *rank);
    for (slot, (_, e)) in errs.iter_mut().zip(ranked) {
        *slot = e;
    }
}

/// Where a connection (or one of its keys) was defined, as seen from an error in `here`: the
/// file is named only when it is another one.
fn place(here: &Path, file: &Path, key: &str) -> String {
    if here == file {
        key.to_string()
    } else {
        format!("{}: {key}", file.display())
    }
}

fn validate(
    main: &Path,
    loaded: Loaded,
    mut errs: Vec<ConfigError>,
    examples: Examples,
) -> Result<Config, ConfigErrors> {
    tracing::debug!(
        fragments = loaded.sources.len().saturating_sub(1),
        parsed = loaded.fragments_parsed,
        "conf.d fragments read (those not parsed had the same bytes as at the last load)"
    );
    // What validation finds below about a key the loader refused and set aside (now absent
    // or defaulted) is a consequence of that error, not news: dropped at the end.
    let from_loader = errs.len();
    let gateway = loaded
        .gateway
        .map(|g| validate_gateway(main, g, &loaded.env, &mut errs));
    let drain = loaded
        .drain
        .map(|d| drain::validate(main, d, &mut errs))
        .unwrap_or_default();
    let trust = gateway
        .as_ref()
        .map(|g| pki::load_trust(main, g, &mut errs))
        .unwrap_or_default();
    // Without a gateway (main file unreadable) connections are still checked, against the
    // default port.
    let port = gateway
        .as_ref()
        .map_or_else(|| GatewaySchema::default().port, |g| g.port);
    let mut connections = Vec::new();
    // (file, key) of each entry of `connections`.
    let mut origins: Vec<(PathBuf, String)> = Vec::new();
    let mut names: HashMap<String, (PathBuf, String)> = HashMap::new();
    let mut spis_in: HashMap<u32, (PathBuf, String)> = HashMap::new();
    let mut example_secrets = Vec::new();
    for SourcedConnection { file, key, schema } in loaded.connections {
        // What an example secret file is for decides how to replace it.
        #[derive(Clone, Copy)]
        enum Secret {
            Psk,
            StaticKeys,
            PrivateKey,
            EapUsers,
        }
        let more_keys = schema.local_certs.iter().flatten().enumerate();
        let secret_files = [
            ("psk_file".to_string(), Secret::Psk, schema.psk_file.clone()),
            (
                "keys_file".to_string(),
                Secret::StaticKeys,
                schema.keys_file.clone(),
            ),
            (
                "local_key".to_string(),
                Secret::PrivateKey,
                schema.local_key.clone(),
            ),
            (
                "eap_users_file".to_string(),
                Secret::EapUsers,
                schema.eap_users_file.clone(),
            ),
            (
                "radius_secret_file".to_string(),
                Secret::Psk,
                schema.radius_secret_file.clone(),
            ),
        ]
        .into_iter()
        .chain(more_keys.map(|(i, e)| {
            (
                format!("local_certs[{i}].key"),
                Secret::PrivateKey,
                e.key.clone(),
            )
        }));
        for (name, kind, path) in secret_files {
            let Some(path) = path.as_deref().filter(|p| keys::is_example(p)) else {
                continue;
            };
            let how = match kind {
                Secret::Psk => format!("rm {0} && ironsecctl genpsk {0}", path.display()),
                Secret::PrivateKey => "make a key and certificate of your own (README, \
                                       \"Certificates\": conf/pki/make-pki.sh) and point \
                                       local_cert and local_key at them"
                    .to_string(),
                Secret::EapUsers => "write your users' lines into a file of your own with \
                                     `ironsecctl nthash USER >> FILE` (chmod 600) and point \
                                     eap_users_file at it (this one's password is in it)"
                    .to_string(),
                Secret::StaticKeys => "put keys of your own in it (README, keying = \"static\") \
                                       and chmod 600 it"
                    .to_string(),
            };
            let e = ConfigError::new(
                &file,
                format!("{key}.{name}"),
                format!(
                    "{} is an example shipped with ironsec, not a secret (everyone has it): \
                     ironsecd does not run with it; replace it: {how}",
                    path.display()
                ),
            );
            match examples {
                Examples::Refuse => errs.push(e),
                Examples::Accept => example_secrets.push(e.to_string()),
            }
        }
        match schema.name.as_ref().map(|n| (n, names.get(n))) {
            Some((name, Some((pf, pk)))) => errs.push(ConfigError::new(
                &file,
                format!("{key}.name"),
                format!(
                    "connection name '{name}' is already used by {}",
                    place(&file, pf, pk)
                ),
            )),
            Some((name, None)) => {
                names.insert(name.clone(), (file.clone(), key.clone()));
            }
            None => {}
        }
        if let Some(conn) = validate_connection(&file, &key, schema, port, &mut errs) {
            let tunnels = match &conn.keying {
                Keying::Static(st) => &st.tunnels[..],
                Keying::Ike(_) => &[],
            };
            for (j, t) in tunnels.iter().enumerate() {
                let here = format!("{key}.tunnels[{j}].spi_in");
                if let Some((pf, pk)) = spis_in.get(&t.spi_in) {
                    errs.push(ConfigError::new(
                        &file,
                        &here,
                        format!(
                            "inbound SPI 0x{:08x} is also used by {}",
                            t.spi_in,
                            place(&file, pf, pk)
                        ),
                    ));
                } else {
                    spis_in.insert(t.spi_in, (file.clone(), here));
                }
            }
            connections.push(conn);
            origins.push((file, key));
        }
    }
    if gateway.is_some() {
        for (c, (f, k)) in connections.iter().zip(&origins) {
            if let Keying::Ike(ike) = &c.keying {
                errs.extend(pki::eap_tls_without_anchors(f, k, &ike.auth.remote, &trust));
            }
        }
    }
    if let Some(g) = &gateway {
        errs.extend(inner_v6_mtu(main, g, &loaded.env, &connections, &origins));
    }
    // Two connections claiming the same remote addresses would make routing ambiguous and let
    // one site receive another's traffic. Selectors that differ in protocol or ports may
    // share addresses (`10.2.0.0/24[tcp/443]` on one, `10.2.0.0/24` on another): the fast
    // path tries the narrower first, so each connection gets exactly its own part.
    // Route-based connections are apart: their selectors apply to their own interface's
    // packets only, so they overlap nothing; their interfaces and static routes must be
    // their own, though.
    errs.extend(overlap::between_connections(
        gateway.as_ref().map(|g| g.tun.as_str()),
        &connections,
        &origins,
    ));
    // `psk` and `psk_file` are alternatives: with one set aside, the other looks required.
    // File -> its keys set aside (and their alternatives), so each finding looks at its own
    // file's few keys only.
    let mut refused: HashMap<&Path, Vec<String>> = HashMap::new();
    for (f, k) in &loaded.refused {
        let other = k
            .strip_suffix(".psk_file")
            .map(|c| format!("{c}.psk"))
            .or_else(|| k.strip_suffix(".psk").map(|c| format!("{c}.psk_file")));
        let keys = refused.entry(f.as_path()).or_default();
        keys.push(k.clone());
        keys.extend(other);
    }
    let findings = errs.split_off(from_loader);
    errs.extend(findings.into_iter().filter(|e| {
        !refused
            .get(e.file.as_path())
            .is_some_and(|keys| keys.iter().any(|k| related(k, &e.key)))
    }));
    in_file_order(&mut errs, &loaded.sources);
    match gateway {
        Some(gateway) if errs.is_empty() => {
            let mut env_overrides: Vec<String> = loaded.env.into_values().collect();
            env_overrides.sort();
            Ok(Config {
                file: main.to_path_buf(),
                sources: loaded.sources,
                env_overrides,
                gateway,
                connections,
                drain,
                trust,
                example_secrets,
            })
        }
        _ => Err(ConfigErrors(errs)),
    }
}

/// The TUN devices' MTU (`gateway.tun_mtu`: the shared device's and every route-based
/// interface's) against IPv6's minimum link MTU, 1280 (RFC 8200 §5): a connection with an
/// IPv6 selector on either side would carry IPv6 over a link no IPv6 host may be told is
/// smaller (the fast path never sends a Packet Too Big below 1280, `mtu::TunnelMtu::limit`),
/// so the kernel would drop what the site's hosts rightly send. Refused, one error per such
/// connection, at `gateway.tun_mtu` (or its environment variable) naming the selector.
fn inner_v6_mtu(
    main: &Path,
    g: &Gateway,
    env: &BTreeMap<String, String>,
    connections: &[Connection],
    origins: &[(PathBuf, String)],
) -> Vec<ConfigError> {
    use ironsec_dataplane::mtu::MIN_PATH_MTU;
    if g.tun_mtu >= MIN_PATH_MTU {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (c, (f, k)) in connections.iter().zip(origins) {
        let sides = [
            ("local_ts", &c.local_selectors),
            ("remote_ts", &c.remote_selectors),
        ];
        let Some((side, i, sel)) = sides.iter().find_map(|(side, sels)| {
            sels.iter()
                .enumerate()
                .find(|(_, s)| !s.prefix.is_v4())
                .map(|(i, s)| (*side, i, s))
        }) else {
            continue;
        };
        let how = if c.route_based.is_some() {
            " (a route-based connection carries ::/0 unless local_ts/remote_ts say otherwise: \
             write local_ts = remote_ts = [\"0.0.0.0/0\"] to keep it IPv4-only)"
        } else {
            ""
        };
        let reason = format!(
            "{} is below 1280, IPv6's minimum MTU, and connection '{}' carries IPv6 ({} is \
             {sel}){how}; raise tun_mtu to 1280 or more",
            g.tun_mtu,
            c.name,
            place(main, f, &format!("{k}.{side}[{i}]")),
        );
        out.push(match env.get("tun_mtu") {
            Some(var) => ConfigError::new(Path::new(ENVIRONMENT), var.as_str(), reason),
            None => ConfigError::new(main, "gateway.tun_mtu", reason),
        });
    }
    out
}

/// `env` maps gateway keys set by the environment to their variables: a bad value from there
/// is reported against the variable, since the file does not hold it.
fn validate_gateway(
    file: &Path,
    g: GatewaySchema,
    env: &BTreeMap<String, String>,
    errs: &mut Vec<ConfigError>,
) -> Gateway {
    let base = file.parent().unwrap_or(Path::new("")).to_path_buf();
    let mut bad = |k: GatewayKey, r: String| {
        errs.push(match env.get(k.name()) {
            Some(var) => ConfigError::new(Path::new(ENVIRONMENT), var.as_str(), r),
            None => ConfigError::new(file, format!("gateway.{k}"), r),
        })
    };
    if g.tun.is_empty() || g.tun.len() > 15 || g.tun.contains(['/', ' ', '%']) {
        bad(
            GatewayKey::Tun,
            format!(
                "'{}' is not a valid interface name (1-15 characters, no '/', ' ' or '%')",
                g.tun
            ),
        );
    }
    if !(576..=9000).contains(&g.tun_mtu) {
        bad(
            GatewayKey::TunMtu,
            format!("{} is outside 576..=9000", g.tun_mtu),
        );
    }
    if g.port == 0 {
        bad(GatewayKey::Port, "port 0 is not a port".into());
    }
    if !(64..=65536).contains(&g.replay_window) {
        bad(
            GatewayKey::ReplayWindow,
            format!("{} is outside 64..=65536 packets", g.replay_window),
        );
    }
    if g.workers > 256 {
        bad(
            GatewayKey::Workers,
            format!("{} is more than 256", g.workers),
        );
    }
    if !(1..=1024).contains(&g.batch) {
        bad(
            GatewayKey::Batch,
            format!("{} is outside 1..=1024", g.batch),
        );
    }
    if g.control_socket.as_os_str().is_empty() || !g.control_socket.is_absolute() {
        bad(GatewayKey::ControlSocket, "must be an absolute path".into());
    }
    let metrics = match g.metrics.as_str() {
        "off" => None,
        m => match m.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                bad(
                    GatewayKey::Metrics,
                    format!(
                        "'{m}' is not ADDRESS:PORT (e.g. \"{}\" or \"[::1]:14500\") or \"off\"",
                        schema::DEFAULT_METRICS
                    ),
                );
                None
            }
        },
    };
    let metrics_token = match &g.metrics_token_file {
        None => None,
        Some(path) => {
            let read = keys::check_private(path)
                .map_err(|e| e.reason)
                .and_then(|()| {
                    std::fs::read_to_string(path)
                        .map(zeroize::Zeroizing::new)
                        .map_err(|e| format!("cannot read: {e}"))
                })
                .and_then(|text| {
                    MetricsToken::new(&text).ok_or_else(|| "holds no token".to_string())
                });
            match read {
                Ok(t) if metrics.is_some() => Some((path.clone(), t)),
                Ok(_) => {
                    bad(
                        GatewayKey::MetricsTokenFile,
                        "set, but metrics = \"off\": nothing would use it".into(),
                    );
                    None
                }
                Err(reason) => {
                    bad(
                        GatewayKey::MetricsTokenFile,
                        format!("{}: {reason}", path.display()),
                    );
                    None
                }
            }
        }
    };
    if g.cookie_threshold > 1_000_000 {
        bad(
            GatewayKey::CookieThreshold,
            format!("{} is more than 1000000", g.cookie_threshold),
        );
    }
    if !(1..=1_000_000).contains(&g.half_open_limit) {
        bad(
            GatewayKey::HalfOpenLimit,
            format!("{} is outside 1..=1000000", g.half_open_limit),
        );
    } else if g.half_open_limit <= g.cookie_threshold {
        bad(
            GatewayKey::HalfOpenLimit,
            format!(
                "{} is not above cookie_threshold ({}): requests would be dropped before cookies are ever asked for",
                g.half_open_limit, g.cookie_threshold
            ),
        );
    }
    if !(576..=65000).contains(&g.ike_fragment_size) {
        bad(
            GatewayKey::IkeFragmentSize,
            format!(
                "{} is outside 576..=65000 bytes (576: the smallest datagram IPv4 hosts must accept)",
                g.ike_fragment_size
            ),
        );
    }
    let shared_addresses = shared_addresses(&g.shared_addresses, &mut bad);
    let mut protect: Vec<Prefix> = Vec::new();
    for (i, s) in g.protect.iter().enumerate() {
        match s.parse::<Prefix>() {
            Err(e) => bad(GatewayKey::Protect, format!("[{i}] '{s}': {e}")),
            // The same reason as a connection's `protect`: a catch-all blackhole would replace
            // the host's default route and cut the way to the peers.
            Ok(p) if p.is_catch_all() => bad(
                GatewayKey::Protect,
                format!(
                    "[{i}] {p} would replace this host's default route (and cut the way to the \
                     peers)"
                ),
            ),
            Ok(p) if protect.contains(&p) => {}
            Ok(p) => protect.push(p),
        }
    }
    Gateway {
        tun: g.tun,
        tun_mtu: g.tun_mtu,
        tun_txqueuelen: g.tun_txqueuelen,
        port: g.port,
        ike_port: g.ike_port,
        control_socket: g.control_socket,
        workers: g.workers,
        replay_window: g.replay_window,
        socket_buffer: g.socket_buffer,
        batch: g.batch,
        metrics,
        metrics_token,
        bandwidth: g.bandwidth.map(|b| b.0),
        udp_offload: g.udp_offload,
        tun_offload: g.tun_offload,
        udp6_zero_checksum: g.udp6_zero_checksum,
        cookie_threshold: g.cookie_threshold,
        half_open_limit: g.half_open_limit,
        ike_fragment_size: g.ike_fragment_size,
        ca_dir: g.ca_dir.map(|d| base.join(d)),
        crl_dir: g.crl_dir.map(|d| base.join(d)),
        shared_addresses,
        protect,
    }
}

/// `gateway.shared_addresses`: unicast IPv4 addresses, each once. IPv4 only, because the
/// address watch follows IPv4 addresses (RTNLGRP_IPV4_IFADDR); a bad entry is refused, not
/// skipped, since skipping it would make its tunnels fail at start on the standby.
fn shared_addresses(v: &[String], bad: &mut impl FnMut(GatewayKey, String)) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for (i, text) in v.iter().enumerate() {
        let reason = match text.trim().parse::<IpAddr>() {
            Err(_) => Some(format!("[{i}] '{text}' is not an IP address")),
            Ok(IpAddr::V6(_)) => Some(format!(
                "[{i}] {text}: only IPv4 addresses can be shared (the address watch follows IPv4)"
            )),
            Ok(IpAddr::V4(a))
                if a.is_unspecified()
                    || a.is_multicast()
                    || a.is_broadcast()
                    || a.is_loopback() =>
            {
                Some(format!(
                    "[{i}] {a} is not a unicast address another host could take over"
                ))
            }
            Ok(a) if out.contains(&a) => Some(format!("[{i}] {a} is listed twice")),
            Ok(a) => {
                out.push(a);
                None
            }
        };
        if let Some(r) = reason {
            bad(GatewayKey::SharedAddresses, r);
        }
    }
    out
}

/// Parses `local_ts`/`remote_ts`: each entry a prefix with an optional `[proto/port]`.
fn selectors(file: &Path, key: &str, v: &[String], errs: &mut Vec<ConfigError>) -> Vec<Selector> {
    if v.is_empty() {
        errs.push(ConfigError::new(file, key, "needs at least one subnet"));
    }
    v.iter()
        .enumerate()
        .filter_map(|(i, s)| match s.parse::<Selector>() {
            Ok(p) => Some(p),
            Err(e) => {
                errs.push(ConfigError::new(
                    file,
                    format!("{key}[{i}]"),
                    format!("'{s}': {e}"),
                ));
                None
            }
        })
        .collect()
}

/// The distinct prefixes of `sel`, in order.
fn prefixes_of(sel: &[Selector]) -> Vec<Prefix> {
    let mut out: Vec<Prefix> = Vec::with_capacity(sel.len());
    for s in sel {
        if !out.contains(&s.prefix) {
            out.push(s.prefix);
        }
    }
    out
}

fn validate_connection(
    file: &Path,
    key: &str,
    c: ConnectionSchema,
    port: u16,
    errs: &mut Vec<ConfigError>,
) -> Option<Connection> {
    let before = errs.len();
    let mut c = c;
    let missing = |errs: &mut Vec<ConfigError>, name: &str| {
        errs.push(ConfigError::new(file, format!("{key}.{name}"), MISSING));
    };
    let route_based = route_based(file, key, &c, errs);
    if c.interface.is_some() {
        // Route-based: the routing table decides what enters the tunnel, so by default the
        // tunnel carries anything of either family (narrowable in config), as an operator
        // expects of a tunnel interface (Azure's route-based gateways too). A peer configured
        // for one family narrows the pair to it (RFC 7296 2.9; ike's `ts::narrow` and
        // strongSwan both do), so offering both costs nothing against an IPv4-only peer.
        let any = || Some(vec!["0.0.0.0/0".to_string(), "::/0".to_string()]);
        c.local_ts = c.local_ts.take().or_else(any);
        c.remote_ts = c.remote_ts.take().or_else(any);
    }
    remote_access::default_remote_ts(file, key, &mut c, errs);
    remote_access::refuse_on_site(file, key, &c, errs);
    match &c.name {
        None => missing(errs, "name"),
        Some(name)
            if name.is_empty()
                || !name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch)) =>
        {
            errs.push(ConfigError::new(
                file,
                format!("{key}.name"),
                format!("'{name}' is not a valid name (letters, digits, '.', '_', '-')"),
            ));
        }
        Some(_) => {}
    }
    for (name, present) in [
        ("keying", c.keying.is_some()),
        ("local_ts", c.local_ts.is_some()),
        // A remote-access connection's is its pool (missing: said about `pool`).
        (
            "remote_ts",
            c.remote_ts.is_some() || remote_access::is_remote_access(&c),
        ),
        ("tunnels", c.tunnels.is_some()),
    ] {
        if !present {
            missing(errs, name);
        }
    }
    let remote_ts_written = c.remote_ts.as_deref().unwrap_or_default();
    let local_selectors = c
        .local_ts
        .as_ref()
        .map(|v| selectors(file, &format!("{key}.local_ts"), v, errs))
        .unwrap_or_default();
    let remote_selectors = c
        .remote_ts
        .as_ref()
        .map(|v| selectors(file, &format!("{key}.remote_ts"), v, errs))
        .unwrap_or_default();
    // The remote prefixes with the index of the entry that gave each (for error keys).
    let remote_ts: Vec<(usize, Prefix)> = remote_ts_written
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.parse::<Selector>().ok().map(|sel| (i, sel.prefix)))
        .collect();
    for &(i, p) in &remote_ts {
        // Routes into the TUN device (and the guard routes that outlive the daemon) are made
        // for each remote selector: a catch-all one would take over the host's default route,
        // including the way to the peers and, once the daemon stops, everything.
        if p.is_catch_all() && c.interface.is_none() {
            errs.push(ConfigError::new(
                file,
                format!("{key}.remote_ts[{i}]"),
                format!(
                    "{p} as a policy-based remote selector would replace this host's default \
                     route (and cut the way to the peers); to send any traffic through a tunnel, \
                     make the connection route-based (`interface = \"vti-...\"`: a tunnel \
                     interface of its own, where the routing table decides), or list the \
                     remote site's subnets"
                ),
            ));
        }
    }
    if c.tunnels.as_ref().is_some_and(Vec::is_empty) {
        errs.push(ConfigError::new(
            file,
            format!("{key}.tunnels"),
            "needs at least one tunnel",
        ));
    }
    let name = c.name.clone().unwrap_or_default();
    let bandwidth_weight = c.bandwidth_weight.unwrap_or(1);
    if !(1..=1000).contains(&bandwidth_weight) {
        errs.push(ConfigError::new(
            file,
            format!("{key}.bandwidth_weight"),
            format!("{bandwidth_weight} is outside 1..=1000"),
        ));
    }
    let bandwidth = c.bandwidth.map(|b| b.0);
    if bandwidth == Some(0) {
        errs.push(ConfigError::new(
            file,
            format!("{key}.bandwidth"),
            "a cap of 0 would block the connection; remove it or give a rate",
        ));
    }
    let mss_clamp = match &c.mss_clamp {
        None => MssClamp::Auto,
        Some(WordOrNumber::Word(w)) if w == "auto" => MssClamp::Auto,
        Some(WordOrNumber::Word(w)) if w == "off" => MssClamp::Off,
        Some(WordOrNumber::Number(n)) if (536..=9000).contains(n) => MssClamp::Fixed(*n as u16),
        Some(other) => {
            errs.push(ConfigError::new(
                file,
                format!("{key}.mss_clamp"),
                format!(
                    "{} is not an MSS clamp: expected \"auto\", \"off\" or an MSS in 536..=9000{}",
                    show(other),
                    word_hint(other, &["auto", "off"])
                ),
            ));
            MssClamp::Auto
        }
    };
    let path_mtu = match &c.path_mtu {
        None => PathMtu::Auto,
        Some(WordOrNumber::Word(w)) if w == "auto" => PathMtu::Auto,
        Some(WordOrNumber::Number(n)) if (1280..=9000).contains(n) => PathMtu::Fixed(*n as u16),
        Some(other) => {
            errs.push(ConfigError::new(
                file,
                format!("{key}.path_mtu"),
                format!(
                    "{} is not a path MTU: expected \"auto\" or bytes in 1280..=9000{}",
                    show(other),
                    word_hint(other, &["auto"])
                ),
            ));
            PathMtu::Auto
        }
    };
    let copy_dscp = match c.copy_dscp.as_deref() {
        None | Some("out") => CopyDscp::Out,
        Some("no") => CopyDscp::No,
        Some("in") => CopyDscp::In,
        Some("yes") => CopyDscp::Yes,
        Some(w) => {
            errs.push(ConfigError::new(
                file,
                format!("{key}.copy_dscp"),
                format!(
                    "'{w}' is not a copy_dscp: expected \"out\", \"in\", \"yes\" or \"no\"{}",
                    suggest::did_you_mean(w, ["out", "in", "yes", "no"])
                ),
            ));
            CopyDscp::Out
        }
    };
    let policy_based = c.interface.is_none();
    let keying = match c.keying {
        Some(KeyingKind::Static) => {
            static_keying::validate(file, key, c, port, errs).map(Keying::Static)
        }
        Some(KeyingKind::Ike) => ike_keying::validate(file, key, c, errs).map(Keying::Ike),
        None => None,
    };
    if let (Some(k), true) = (&keying, policy_based) {
        // Routing a peer's own address into the TUN device would send the tunnel's IKE and
        // ESP packets into the tunnel itself (and, with the daemon stopped, into its guard).
        for &(i, p) in &remote_ts {
            if p.is_catch_all() {
                continue;
            }
            if let Some((j, peer)) = k
                .remote_ips()
                .into_iter()
                .enumerate()
                .find(|(_, a)| p.contains(*a))
            {
                errs.push(ConfigError::new(
                    file,
                    format!("{key}.remote_ts[{i}]"),
                    format!(
                        "{p} contains {peer}, the peer of tunnels[{j}]: the tunnel's own IKE and \
                         ESP packets would be routed into the tunnel; list the remote site's \
                         subnets without the peer's address"
                    ),
                ));
            }
        }
    }
    if errs.len() > before {
        return None;
    }
    Some(Connection {
        name,
        local_ts: prefixes_of(&local_selectors),
        remote_ts: prefixes_of(&remote_selectors),
        local_selectors,
        remote_selectors,
        bandwidth_weight,
        bandwidth,
        mss_clamp,
        path_mtu,
        copy_dscp,
        route_based: route_based?,
        keying: keying?,
    })
}

/// The route-based keys of a connection: `Some(None)` for a policy-based one, `None` (with
/// errors pushed) when they are wrong. A peer's own address routed into the interface would
/// send the tunnel's IKE and ESP into the tunnel itself, so `routes` may not contain one;
/// catch-all prefixes are refused in `routes` and `protect` for the same reason as in a
/// policy-based `remote_ts`.
fn route_based(
    file: &Path,
    key: &str,
    c: &ConnectionSchema,
    errs: &mut Vec<ConfigError>,
) -> Option<Option<RouteBased>> {
    let before = errs.len();
    let Some(interface) = &c.interface else {
        for (name, present) in [
            ("interface_address", c.interface_address.is_some()),
            ("routes", c.routes.is_some()),
            ("protect", c.protect.is_some()),
        ] {
            if present {
                errs.push(ConfigError::new(
                    file,
                    format!("{key}.{name}"),
                    "only for a route-based connection: set `interface` too",
                ));
            }
        }
        return (errs.len() == before).then_some(None);
    };
    if !valid_ifname(interface) {
        errs.push(ConfigError::new(
            file,
            format!("{key}.interface"),
            format!(
                "'{interface}' is not an interface name: 1 to 15 characters, none of them '/', \
                 ':', a space or a control character"
            ),
        ));
    }
    let address = match &c.interface_address {
        None => None,
        Some(a) => match parse_if_address(a) {
            Some(v) => Some(v),
            None => {
                errs.push(ConfigError::new(
                    file,
                    format!("{key}.interface_address"),
                    format!(
                        "'{a}' is not an address with a prefix length, e.g. \"169.254.21.1/30\""
                    ),
                ));
                None
            }
        },
    };
    let peers: Vec<IpAddr> = c
        .tunnels
        .iter()
        .flatten()
        .filter_map(|t| t.remote.as_deref()?.parse().ok())
        .collect();
    let mut list = |name: &str, v: &Option<Vec<String>>| -> Vec<Prefix> {
        let mut out = Vec::new();
        for (i, s) in v.iter().flatten().enumerate() {
            let k = format!("{key}.{name}[{i}]");
            match s.parse::<Prefix>() {
                Err(e) => errs.push(ConfigError::new(file, k, format!("'{s}': {e}"))),
                Ok(p) if p.is_catch_all() => errs.push(ConfigError::new(
                    file,
                    k,
                    format!(
                        "{p} would replace this host's default route (and cut the way to the \
                         peers); a default route into a tunnel belongs to the routing daemon"
                    ),
                )),
                Ok(p) => match peers.iter().find(|a| p.contains(**a)) {
                    Some(peer) if name == "routes" => errs.push(ConfigError::new(
                        file,
                        k,
                        format!(
                            "{p} contains {peer}, a peer of this connection: its IKE and ESP \
                             packets would be routed into the tunnel"
                        ),
                    )),
                    _ if out.contains(&p) => {}
                    _ => out.push(p),
                },
            }
        }
        out
    };
    let routes = list("routes", &c.routes);
    let protect = list("protect", &c.protect);
    (errs.len() == before).then(|| {
        Some(RouteBased {
            interface: interface.clone(),
            address,
            routes,
            protect,
        })
    })
}

/// "169.254.21.1/30" as an address and prefix length (the host bits stay: it is the
/// interface's own address, not a network).
fn parse_if_address(s: &str) -> Option<(IpAddr, u8)> {
    let (a, l) = s.split_once('/')?;
    let a: IpAddr = a.trim().parse().ok()?;
    let l: u8 = l.trim().parse().ok()?;
    let max = if a.is_ipv4() { 32 } else { 128 };
    (l <= max && !a.is_unspecified()).then_some((a, l))
}

/// " (did you mean ...)" for a misspelt word among `words`; nothing for a number.
fn word_hint(v: &WordOrNumber, words: &[&str]) -> String {
    match v {
        WordOrNumber::Word(w) => suggest::did_you_mean(w, words.iter().copied()),
        WordOrNumber::Number(_) => String::new(),
    }
}

/// A word-or-number value as the operator wrote it, for an error message.
fn show(v: &WordOrNumber) -> String {
    match v {
        WordOrNumber::Word(w) => format!("'{w}'"),
        WordOrNumber::Number(n) => n.to_string(),
    }
}

/// Parses a tunnel's two addresses, which must be of one IP version.
pub(crate) fn tunnel_addrs(
    file: &Path,
    tk: &str,
    local: Option<&str>,
    remote: Option<&str>,
    errs: &mut Vec<ConfigError>,
) -> Option<(IpAddr, IpAddr)> {
    let addr = |name: &str, v: Option<&str>| {
        let k = format!("{tk}.{name}");
        match v {
            None => Err(ConfigError::new(file, k, MISSING)),
            Some(v) => v
                .parse::<IpAddr>()
                .map_err(|_| ConfigError::new(file, k, format!("'{v}' is not an IP address"))),
        }
    };
    let l = addr("local", local);
    let r = addr("remote", remote);
    match (l, r) {
        (Ok(l), Ok(r)) if l.is_ipv4() == r.is_ipv4() => Some((l, r)),
        (Ok(_), Ok(_)) => {
            errs.push(ConfigError::new(
                file,
                tk,
                "local and remote must be the same IP version",
            ));
            None
        }
        (l, r) => {
            errs.extend(l.err());
            errs.extend(r.err());
            None
        }
    }
}

/// Refuses keys that belong to the other keying, so a typo is not silently ignored.
pub(crate) fn refuse_keys(
    file: &Path,
    key: &str,
    present: &[(&str, bool)],
    keying: &str,
    errs: &mut Vec<ConfigError>,
) {
    for (name, is) in present {
        if *is {
            errs.push(ConfigError::new(
                file,
                format!("{key}.{name}"),
                format!("not used with keying = \"{keying}\""),
            ));
        }
    }
}

#[cfg(test)]
mod bench;
#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;
