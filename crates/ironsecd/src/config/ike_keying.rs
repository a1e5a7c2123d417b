//! `keying = "ike"`: IKEv2 with a pre-shared key.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use ironsec_ike::crypto::{EspProposal, IkeProposal, LegacyAlgorithm, LegacyLevel};
use ironsec_ike::{Identity, Psk, Retransmit};
use zeroize::{Zeroize, Zeroizing};

use super::error::ConfigError;
use super::keys;
use super::pki::{AuthConfig, RemoteAuthConfig};
use super::schema::{CloseAction, ConnectionSchema, Mode, StartAction};

/// Proposals used when a connection names none: AEAD with Curve25519. (strongSwan's own
/// default set is the `default` keyword, `ironsec_ike::crypto::IkeProposal::strongswan_default`.)
pub const DEFAULT_IKE_PROPOSALS: &[&str] = &[
    "aes256gcm16-prfsha256-x25519",
    "aes128gcm16-prfsha256-x25519",
];
pub const DEFAULT_ESP_PROPOSALS: &[&str] = &["aes256gcm16", "aes128gcm16"];

#[derive(Debug, Clone, PartialEq)]
pub struct IkeKeying {
    pub local_id: Identity,
    pub remote_id: Identity,
    /// None when both directions use certificates.
    pub psk: Option<Psk>,
    pub auth: AuthConfig,
    /// The file the PSK was read from (None: inline `psk`): `ironsecctl list-conns` names
    /// it, never the key.
    pub psk_file: Option<std::path::PathBuf>,
    pub ike_proposals: Vec<IkeProposal>,
    pub esp_proposals: Vec<EspProposal>,
    /// The proposals may name legacy algorithms that need the opt-in (see
    /// [`IkeKeying::legacy_warnings`]).
    pub allow_legacy_crypto: bool,
    pub start_action: StartAction,
    pub close_action: CloseAction,
    /// What a peer's new IKE SA does to its identity's established ones.
    pub unique: ironsec_ike::config::Unique,
    pub dpd_interval: Option<Duration>,
    /// NAT keepalives (RFC 3948 2.3) this often while we are behind a NAT and the tunnel
    /// sends nothing; None = off.
    pub nat_keepalive: Option<Duration>,
    /// How long a request on an established IKE SA may stay unanswered; None = until the
    /// retransmissions run out.
    pub dpd_timeout: Option<Duration>,
    pub retransmit: Retransmit,
    pub mode: Mode,
    /// A dead tunnel's traffic moves within this time (silence while sending for a sixth of
    /// it starts a probe that gives up after a quarter of it; the rest is margin for the
    /// peer to follow and for timer slack).
    pub failover_after: Duration,
    /// Move back to a higher-priority tunnel that has been up for this long; None = never.
    pub preempt_hold: Option<Duration>,
    pub rekey_time: Duration,
    pub ike_rekey_time: Duration,
    /// Reauthenticate the IKE SA this long after it came up; None = never.
    pub reauth_time: Option<Duration>,
    /// CHILD_SA volume lifetimes.
    pub volume: VolumeLimits,
    pub encap: bool,
    pub tunnels: Vec<IkeTunnel>,
    /// A remote-access connection's listening address and pool: its tunnels are its clients',
    /// made as they connect (`tunnels` is then empty).
    pub remote_access: Option<super::remote_access::RemoteAccess>,
}

/// A CHILD_SA's volume lifetimes, counted per direction (the busier one decides): past
/// `rekey_*` it is rekeyed, past `life_*` deleted. Each pair is both set (rekey < life) or
/// both absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VolumeLimits {
    pub rekey_bytes: Option<u64>,
    pub life_bytes: Option<u64>,
    pub rekey_packets: Option<u64>,
    pub life_packets: Option<u64>,
}

/// Smallest `rekey_bytes`: each rekey is an exchange with a key derivation, and below about a
/// megabyte a busy tunnel would do little else.
pub const MIN_REKEY_BYTES: u64 = 1_000_000;
/// Smallest `rekey_packets`, for the same reason.
pub const MIN_REKEY_PACKETS: u64 = 1_000;

/// One volume pair (`rekey_<what>`, `life_<what>`) as strongSwan reads it: 0 or absent =
/// none; only `rekey_*` = life 10% later; only `life_*` = rekey at 90% of it (so that a
/// make-before-break rekey replaces the SA before the hard limit deletes it); both = rekey
/// must come first.
fn volume_pair(
    file: &Path,
    key: &str,
    what: &str,
    min_rekey: u64,
    rekey: Option<u64>,
    life: Option<u64>,
    errs: &mut Vec<ConfigError>,
) -> (Option<u64>, Option<u64>) {
    let (rekey, life) = (rekey.filter(|v| *v > 0), life.filter(|v| *v > 0));
    let (rekey, life) = match (rekey, life) {
        (None, None) => return (None, None),
        (Some(r), None) => (r, r.saturating_add(r / 10)),
        (None, Some(l)) => (l - l / 10, l),
        (Some(r), Some(l)) => {
            if r >= l {
                errs.push(ConfigError::new(
                    file,
                    format!("{key}.rekey_{what}"),
                    format!(
                        "{r} is not below life_{what} ({l}): the SA must be rekeyed before its hard limit deletes it"
                    ),
                ));
            }
            (r, l)
        }
    };
    if rekey < min_rekey {
        errs.push(ConfigError::new(
            file,
            format!("{key}.rekey_{what}"),
            format!(
                "{rekey} is below {min_rekey}: the tunnel would spend its time rekeying (life_{what} alone rekeys at 90% of it)"
            ),
        ));
    }
    (Some(rekey), Some(life))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeTunnel {
    pub local: IpAddr,
    /// The peer's address; for a peer given by name, what the name resolved to when the
    /// config was loaded.
    pub remote: IpAddr,
    /// The DNS name the peer was given by, resolved again on every reconnect (see
    /// `config::peer_name`); None for an address.
    pub remote_name: Option<std::sync::Arc<str>>,
    /// Higher is preferred (active-standby); ties go to the earlier tunnel.
    pub priority: u32,
    /// Share of the flows (active-active), at least 1.
    pub weight: u32,
}

/// Parses a list of proposals (or takes `default`), refusing each that does not parse and
/// each that names a legacy algorithm needing the opt-in when `allow_legacy` is false.
fn proposals<T: std::str::FromStr>(
    file: &Path,
    key: &str,
    given: Option<Vec<String>>,
    default: &[&str],
    legacy: impl Fn(&T) -> Vec<LegacyAlgorithm>,
    allow_legacy: bool,
    errs: &mut Vec<ConfigError>,
) -> Vec<T>
where
    T::Err: std::fmt::Display,
{
    let list = given.unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect());
    if list.is_empty() {
        errs.push(ConfigError::new(file, key, "needs at least one proposal"));
    }
    list.iter()
        .enumerate()
        .filter_map(|(i, p)| match p.parse::<T>() {
            Ok(x) => {
                let refused: Vec<LegacyAlgorithm> = legacy(&x)
                    .into_iter()
                    .filter(|l| l.level == LegacyLevel::OptIn && !allow_legacy)
                    .collect();
                for l in &refused {
                    errs.push(ConfigError::new(
                        file,
                        format!("{key}[{i}]"),
                        format!(
                            "'{p}': {} is legacy ({}); remove it, or set allow_legacy_crypto = true on this connection to use it anyway",
                            l.keyword, l.reason
                        ),
                    ));
                }
                refused.is_empty().then_some(x)
            }
            Err(e) => {
                errs.push(ConfigError::new(
                    file,
                    format!("{key}[{i}]"),
                    format!("'{p}': {e}"),
                ));
                None
            }
        })
        .collect()
}

impl IkeKeying {
    /// One line per legacy algorithm the proposals use, for `ironsecd check` and the start-up
    /// log: SHA-1 (allowed, but a SHA-2 choice is better) and, with `allow_legacy_crypto`, the
    /// opt-in ones. The ironsec-ike crate's `crypto::LegacyAlgorithm` says which and why.
    pub fn legacy_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let lists = [
            (
                "ike_proposals",
                self.ike_proposals
                    .iter()
                    .map(|p| (p.to_string(), p.legacy_algorithms()))
                    .collect::<Vec<_>>(),
            ),
            (
                "esp_proposals",
                self.esp_proposals
                    .iter()
                    .map(|p| (p.to_string(), p.legacy_algorithms()))
                    .collect(),
            ),
        ];
        for (key, list) in lists {
            for (i, (text, legacy)) in list.iter().enumerate() {
                for l in legacy {
                    let how = match l.level {
                        LegacyLevel::Discouraged => "",
                        LegacyLevel::OptIn => " (allowed by allow_legacy_crypto = true)",
                    };
                    out.push(format!(
                        "{key}[{i}] '{text}' uses legacy {}{how}: {}",
                        l.keyword, l.reason
                    ));
                }
            }
        }
        out
    }
}

/// A PSK as written: text, or `0x` followed by hex for binary keys. Zeroed on drop, so a
/// config refused for another reason leaves no copy behind either.
fn psk_bytes(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    match text.strip_prefix("0x") {
        Some(h) => hex::decode(h).ok(),
        None => Some(text.as_bytes().to_vec()),
    }
    .map(Zeroizing::new)
}

pub(super) fn validate(
    file: &Path,
    key: &str,
    mut c: ConnectionSchema,
    errs: &mut Vec<ConfigError>,
) -> Option<IkeKeying> {
    super::refuse_keys(
        file,
        key,
        &[
            ("esp", c.esp.is_some()),
            ("esn", c.esn.is_some()),
            ("keys_file", c.keys_file.is_some()),
        ],
        "ike",
        errs,
    );
    let need = |errs: &mut Vec<ConfigError>, name: &str| {
        errs.push(ConfigError::new(
            file,
            format!("{key}.{name}"),
            "required with keying = \"ike\"",
        ));
    };
    let parse_id = |errs: &mut Vec<ConfigError>, name: &str, v: Option<&str>| {
        let v = v?;
        Identity::try_parse(v)
            .map_err(|e| {
                errs.push(ConfigError::new(
                    file,
                    format!("{key}.{name}"),
                    format!("'{v}': {e}"),
                ))
            })
            .ok()
    };
    let local_id = parse_id(errs, "local_id", c.local_id.as_deref());
    let remote_id = parse_id(errs, "remote_id", c.remote_id.as_deref());
    // With a certificate, local_id defaults to its subject (pki::validate_auth).
    if c.local_id.is_none() && c.local_cert.is_none() {
        need(errs, "local_id");
    }
    if c.remote_id.is_none() {
        need(errs, "remote_id");
    }
    let psk = match (&c.psk, &c.psk_file) {
        (Some(_), Some(_)) => {
            errs.push(ConfigError::new(
                file,
                format!("{key}.psk"),
                "give psk or psk_file, not both",
            ));
            None
        }
        (Some(p), None) => psk_bytes(p).or_else(|| {
            errs.push(ConfigError::new(
                file,
                format!("{key}.psk"),
                "0x must be followed by hex digits",
            ));
            None
        }),
        (None, Some(path)) => {
            let pk = format!("{key}.psk_file");
            let allow = c.allow_readable_secret_file.unwrap_or(false);
            let read = keys::check_secret_file(file, &pk, path, allow).and_then(|()| {
                let fail = |reason: String| {
                    ConfigError::new(file, &pk, format!("{}: {reason}", path.display()))
                };
                let text = Zeroizing::new(
                    std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?,
                );
                psk_bytes(text.trim_end_matches(['\n', '\r']))
                    .ok_or_else(|| fail("0x must be followed by hex digits".into()))
            });
            read.map_err(|e| errs.push(e)).ok()
        }
        // Required unless both directions use certificates (pki::validate_auth says so).
        (None, None) => None,
    };
    let auth = super::pki::validate_auth(
        file,
        key,
        &c,
        local_id.clone(),
        c.psk.is_some() || c.psk_file.is_some(),
        errs,
    );
    let (auth, local_id) = match auth {
        Some((auth, id, _)) => (Some(auth), id),
        None => (None, None),
    };
    if let (
        Some(AuthConfig {
            remote: RemoteAuthConfig::Psk,
            ..
        }),
        Some(id),
    ) = (&auth, &remote_id)
    {
        if id.is_pattern() {
            errs.push(ConfigError::new(
                file,
                format!("{key}.remote_id"),
                format!(
                    "'{id}' is a pattern; a PSK peer must be named exactly (patterns need \
                     remote_auth = \"pubkey\")"
                ),
            ));
        }
    }
    if psk.as_ref().is_some_and(|p| p.len() < 16) {
        errs.push(ConfigError::new(
            file,
            format!(
                "{key}.{}",
                if c.psk_file.is_some() {
                    "psk_file"
                } else {
                    "psk"
                }
            ),
            "a PSK shorter than 16 bytes can be guessed offline from one captured handshake",
        ));
    }
    // An inline `psk` is read: clear the schema's copy rather than free it as it is.
    c.psk.zeroize();
    let remote_access = super::remote_access::validate(file, key, &c, errs);
    let allow_legacy_crypto = c.allow_legacy_crypto.unwrap_or(false);
    let ike_proposals = proposals(
        file,
        &format!("{key}.ike_proposals"),
        c.ike_proposals,
        DEFAULT_IKE_PROPOSALS,
        IkeProposal::legacy_algorithms,
        allow_legacy_crypto,
        errs,
    );
    let esp_proposals = proposals(
        file,
        &format!("{key}.esp_proposals"),
        c.esp_proposals,
        DEFAULT_ESP_PROPOSALS,
        EspProposal::legacy_algorithms,
        allow_legacy_crypto,
        errs,
    );
    let mut tunnels = Vec::new();
    for (j, t) in c.tunnels.iter().flatten().enumerate() {
        if t.remote.as_deref() == Some(super::remote_access::ANY) {
            // A remote-access connection's (checked above): its tunnels are its clients'.
            continue;
        }
        let tk = format!("{key}.tunnels[{j}]");
        if t.spi_in.is_some() || t.spi_out.is_some() {
            errs.push(ConfigError::new(
                file,
                &tk,
                "spi_in/spi_out are for keying = \"static\"; IKE chooses SPIs",
            ));
        }
        if t.remote_port.is_some() {
            errs.push(ConfigError::new(
                file,
                format!("{tk}.remote_port"),
                "not used with keying = \"ike\" (IKE uses gateway.ike_port, then gateway.port)",
            ));
        }
        // A peer given by name: resolved now (start, reload) and on every reconnect.
        let remote_name = t
            .remote
            .as_deref()
            .filter(|r| super::peer_name::is_dns_name(r))
            .map(std::sync::Arc::<str>::from);
        let local_ip = t.local.as_deref().map(str::parse::<IpAddr>);
        let resolved = match (&remote_name, local_ip) {
            (Some(name), Some(Ok(local))) => match super::peer_name::resolve(name, local) {
                Ok(a) => Some(a.to_string()),
                Err(reason) => {
                    errs.push(ConfigError::new(file, format!("{tk}.remote"), reason));
                    continue;
                }
            },
            _ => t.remote.clone(),
        };
        if let Some((local, remote)) =
            super::tunnel_addrs(file, &tk, t.local.as_deref(), resolved.as_deref(), errs)
        {
            if t.weight == Some(0) || t.weight.is_some_and(|w| w > 1000) {
                errs.push(ConfigError::new(
                    file,
                    format!("{tk}.weight"),
                    "must be 1..=1000",
                ));
            }
            tunnels.push(IkeTunnel {
                local,
                remote,
                remote_name,
                priority: t.priority.unwrap_or(0),
                weight: t.weight.unwrap_or(1),
            });
        }
    }
    // Ten years: longer lifetimes only invite arithmetic trouble and mean "never" anyway.
    const MAX_SECS: u64 = 10 * 365 * 86400;
    for (name, v) in [
        ("dpd_interval", c.dpd_interval),
        ("dpd_timeout", c.dpd_timeout),
        ("rekey_time", c.rekey_time),
        ("ike_rekey_time", c.ike_rekey_time),
        ("reauth_time", c.reauth_time),
    ] {
        match v {
            Some(x) if x > MAX_SECS => errs.push(ConfigError::new(
                file,
                format!("{key}.{name}"),
                format!("{x} s is more than ten years"),
            )),
            Some(0) if name != "dpd_interval" && name != "reauth_time" => errs.push(
                ConfigError::new(file, format!("{key}.{name}"), "must be at least 1 second"),
            ),
            _ => {}
        }
    }
    // A NAT forgets a UDP mapping after 30 s to a few minutes; a keepalive rarer than an
    // hour keeps nothing alive.
    if c.nat_keepalive.is_some_and(|k| k > 3600) {
        errs.push(ConfigError::new(
            file,
            format!("{key}.nat_keepalive"),
            "must be 0 (off) or 1..=3600 seconds",
        ));
    }
    if c.dpd_timeout == Some(0) {
        errs.push(ConfigError::new(
            file,
            format!("{key}.dpd_timeout"),
            "must be at least 1 second",
        ));
    }
    let mut retransmit = Retransmit::default();
    if let Some(t) = c.retransmit_timeout {
        if !(0.1..=60.0).contains(&t) {
            errs.push(ConfigError::new(
                file,
                format!("{key}.retransmit_timeout"),
                format!("{t} s is outside 0.1..=60"),
            ));
        } else {
            retransmit.initial = Duration::from_secs_f64(t);
        }
    }
    if let Some(n) = c.retransmit_tries {
        if n > 20 {
            errs.push(ConfigError::new(
                file,
                format!("{key}.retransmit_tries"),
                format!("{n} is more than 20"),
            ));
        } else {
            retransmit.tries = n;
        }
    }
    if let Some(b) = c.retransmit_base {
        if !(1.0..=4.0).contains(&b) {
            errs.push(ConfigError::new(
                file,
                format!("{key}.retransmit_base"),
                format!("{b} is outside 1.0..=4.0"),
            ));
        } else {
            retransmit.factor = b;
        }
    }
    let start_action =
        c.start_action
            .unwrap_or(if remote_access.as_ref().is_some_and(Option::is_some) {
                StartAction::None
            } else {
                StartAction::Start
            });
    let failover_after = match c.failover_after {
        None => Duration::from_secs(3),
        Some(f) if (0.3..=600.0).contains(&f) => Duration::from_secs_f64(f),
        Some(f) => {
            errs.push(ConfigError::new(
                file,
                format!("{key}.failover_after"),
                format!("{f} s is outside 0.3..=600"),
            ));
            Duration::from_secs(3)
        }
    };
    if c.preempt_hold.is_some() && c.preempt != Some(true) {
        errs.push(ConfigError::new(
            file,
            format!("{key}.preempt_hold"),
            "only means something with preempt = true",
        ));
    }
    let (rekey_bytes, life_bytes) = volume_pair(
        file,
        key,
        "bytes",
        MIN_REKEY_BYTES,
        c.rekey_bytes.map(|v| v.0),
        c.life_bytes.map(|v| v.0),
        errs,
    );
    let (rekey_packets, life_packets) = volume_pair(
        file,
        key,
        "packets",
        MIN_REKEY_PACKETS,
        c.rekey_packets.map(|v| v.0),
        c.life_packets.map(|v| v.0),
        errs,
    );
    let volume = VolumeLimits {
        rekey_bytes,
        life_bytes,
        rekey_packets,
        life_packets,
    };
    let secs =
        |v: Option<u64>, default: u64| Duration::from_secs(v.unwrap_or(default).min(MAX_SECS));
    Some(IkeKeying {
        local_id: local_id?,
        remote_id: remote_id?,
        // The bytes move into the Psk (zeroed on drop); what is left behind is empty.
        psk: psk.map(|mut p| Psk::new(std::mem::take(&mut *p))),
        auth: auth?,
        psk_file: c.psk_file.clone(),
        ike_proposals,
        esp_proposals,
        allow_legacy_crypto,
        start_action,
        unique: c.unique.map(Into::into).unwrap_or_default(),
        close_action: c.close_action.unwrap_or(match start_action {
            StartAction::Start => CloseAction::Restart,
            StartAction::Trap => CloseAction::Trap,
            StartAction::None => CloseAction::None,
        }),
        dpd_timeout: c
            .dpd_timeout
            .filter(|t| *t > 0)
            .map(|t| Duration::from_secs(t.min(MAX_SECS))),
        retransmit,
        dpd_interval: match c.dpd_interval {
            Some(0) => None,
            v => Some(secs(v, 30)),
        },
        nat_keepalive: match c.nat_keepalive {
            Some(0) => None,
            v => Some(secs(v, 20)),
        },
        rekey_time: secs(c.rekey_time, 3600),
        ike_rekey_time: secs(c.ike_rekey_time, 4 * 3600),
        reauth_time: c
            .reauth_time
            .filter(|t| *t > 0)
            .map(|t| Duration::from_secs(t.min(MAX_SECS))),
        volume,
        encap: c.encap.unwrap_or(true),
        mode: c.mode.unwrap_or(Mode::ActiveStandby),
        failover_after,
        preempt_hold: (c.preempt == Some(true))
            .then(|| Duration::from_secs(c.preempt_hold.unwrap_or(10).min(MAX_SECS))),
        tunnels,
        remote_access: remote_access?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No algorithm needs the opt-in yet (MODP-1024/1536 and 3DES come with their tables), so
    /// the refusal is shown with a stand-in legacy list.
    #[test]
    fn opt_in_algorithms_are_refused_without_allow_legacy_crypto() {
        let modp1024 = |_: &IkeProposal| {
            vec![LegacyAlgorithm {
                keyword: "modp1024",
                level: LegacyLevel::OptIn,
                reason: "1024-bit MODP group",
            }]
        };
        let given = || Some(vec!["aes128-sha1-ecp256".to_string()]);
        let file = Path::new("/etc/ironsec/ironsec.toml");
        let mut errs = Vec::new();
        let p = proposals(
            file,
            "connection[0].ike_proposals",
            given(),
            &[],
            modp1024,
            false,
            &mut errs,
        );
        assert!(p.is_empty());
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].key, "connection[0].ike_proposals[0]");
        let msg = errs[0].to_string();
        assert!(
            msg.contains("modp1024 is legacy") && msg.contains("allow_legacy_crypto = true"),
            "{msg}"
        );
        let mut errs = Vec::new();
        let p = proposals(file, "k", given(), &[], modp1024, true, &mut errs);
        assert_eq!((p.len(), errs.len()), (1, 0));
        // Discouraged ones (SHA-1) never need the opt-in.
        let mut errs = Vec::new();
        let p: Vec<IkeProposal> = proposals(
            file,
            "k",
            given(),
            &[],
            IkeProposal::legacy_algorithms,
            false,
            &mut errs,
        );
        assert_eq!((p.len(), errs.len()), (1, 0));
    }
}
