//! What `ironsecctl certs` shows and the certificate metrics are made of: every certificate
//! and CRL of the daemon's running config (so what the last reload read, not what the files
//! say now), as one set of serde types the daemon fills ([`list`]) and the CLI renders
//! ([`render`]) or prints as JSON.
//!
//! Only public material gets in: certificates and CRLs are public by nature; a private key
//! is named by nothing here (`list-conns` names its file).
//!
//! Roles: `anchor` (a trust anchor of `gateway.ca_dir`), `local` (a connection's own
//! certificate, the first of its `local_cert` file), `intermediate` (the other certificates of
//! that file, sent with it) and `pinned` (a connection's `remote_cert`). A certificate that
//! several connections use is listed once with all their names; an anchor is used by every
//! connection that checks the peer's certificate against the trust anchors (remote_auth
//! pubkey without remote_cert).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ironsec_ike::pki::cert::format_time;
use ironsec_ike::pki::{Certificate, Crl};
use serde::{Deserialize, Serialize};

use crate::config::pki::{LocalAuthConfig, RemoteAuthConfig};
use crate::config::{Config, Keying};

/// Why a certificate is loaded.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum CertRole {
    Anchor,
    Local,
    Intermediate,
    Pinned,
}

impl CertRole {
    pub fn name(self) -> &'static str {
        match self {
            CertRole::Anchor => "anchor",
            CertRole::Local => "local",
            CertRole::Intermediate => "intermediate",
            CertRole::Pinned => "pinned",
        }
    }
}

/// Every certificate and CRL the daemon has loaded.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct CertList {
    /// When the list was made, Unix seconds: `days_left` counts from here.
    pub now_unix: i64,
    /// Anchors first (in `ca_dir` order), then each connection's certificates in config
    /// order (local, intermediates, pinned).
    pub certificates: Vec<CertInfo>,
    pub crls: Vec<CrlInfo>,
}

/// One loaded certificate.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub role: CertRole,
    /// The file it was read from.
    pub file: String,
    pub subject: String,
    pub issuer: String,
    /// subjectAltNames: `dns:NAME`, `email:ADDR`, `ip:ADDR`.
    #[serde(default)]
    pub san: Vec<String>,
    /// Colon-separated lowercase hex (`openssl x509 -serial` shows the same digits without
    /// colons, in uppercase).
    pub serial: String,
    /// `YYYY-MM-DD HH:MM:SS UTC`.
    pub not_before: String,
    pub not_after: String,
    pub not_before_unix: i64,
    pub not_after_unix: i64,
    /// Whole days from `now_unix` to notAfter, rounded down; negative once expired.
    pub days_left: i64,
    /// SHA-256 of the DER, uppercase colon-separated hex, as `openssl x509 -noout
    /// -fingerprint -sha256` prints it.
    pub fingerprint_sha256: String,
    /// The connections that use it, in config order.
    #[serde(default)]
    pub connections: Vec<String>,
}

/// One loaded CRL.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CrlInfo {
    pub file: String,
    pub issuer: String,
    pub this_update: String,
    pub this_update_unix: i64,
    /// Absent when the CRL names no nextUpdate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_update: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_update_unix: Option<i64>,
    /// Whole days from `now_unix` to nextUpdate; negative once it is overdue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_update_days_left: Option<i64>,
    /// How many certificates it revokes.
    pub revoked: usize,
}

/// Uppercase, colon-separated: as `openssl x509 -noout -fingerprint -sha256` prints it.
fn hex_colons(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn days(secs: i64, now: i64) -> i64 {
    (secs - now).div_euclid(86_400)
}

fn info(c: &Certificate, role: CertRole, file: &std::path::Path, now: i64) -> CertInfo {
    let san = c
        .san_dns()
        .iter()
        .map(|d| format!("dns:{d}"))
        .chain(c.san_email().iter().map(|e| format!("email:{e}")))
        .chain(c.san_ip().iter().map(|i| format!("ip:{i}")))
        .collect();
    CertInfo {
        role,
        file: file.display().to_string(),
        subject: c.subject().to_string(),
        issuer: c.issuer().to_string(),
        san,
        serial: c.serial_hex(),
        not_before: format_time(c.not_before()),
        not_after: format_time(c.not_after()),
        not_before_unix: c.not_before(),
        not_after_unix: c.not_after(),
        days_left: c.days_left(now),
        fingerprint_sha256: hex_colons(&c.fingerprint()),
        connections: Vec::new(),
    }
}

fn crl_info(c: &Crl, file: &std::path::Path, now: i64) -> CrlInfo {
    CrlInfo {
        file: file.display().to_string(),
        issuer: c.issuer().to_string(),
        this_update: format_time(c.this_update()),
        this_update_unix: c.this_update(),
        next_update: c.next_update().map(format_time),
        next_update_unix: c.next_update(),
        next_update_days_left: c.next_update().map(|n| days(n, now)),
        revoked: c.revoked_count(),
    }
}

/// Collects certificates, merging the same certificate (role, file and DER) used by several
/// connections into one entry.
#[derive(Default)]
struct Collect {
    out: Vec<CertInfo>,
    index: BTreeMap<(CertRole, String, String), usize>,
}

impl Collect {
    fn add(
        &mut self,
        c: &Certificate,
        role: CertRole,
        file: &std::path::Path,
        conn: Option<&str>,
        now: i64,
    ) {
        let i = info(c, role, file, now);
        let key = (role, i.file.clone(), i.fingerprint_sha256.clone());
        let at = *self.index.entry(key).or_insert_with(|| {
            self.out.push(i);
            self.out.len() - 1
        });
        if let Some(name) = conn {
            let conns = &mut self.out[at].connections;
            if !conns.iter().any(|n| n == name) {
                conns.push(name.to_string());
            }
        }
    }
}

/// The running config's certificates and CRLs, `days_left` counted from `now` (Unix seconds).
pub fn list(cfg: &Config, now: i64) -> CertList {
    let mut col = Collect::default();
    // Connections that check the peer against the anchors: remote pubkey, nothing pinned.
    let anchor_users: Vec<&str> = cfg
        .connections
        .iter()
        .filter(|c| match &c.keying {
            Keying::Ike(k) => matches!(k.auth.remote, RemoteAuthConfig::Pubkey { pinned: None }),
            Keying::Static(_) => false,
        })
        .map(|c| c.name.as_str())
        .collect();
    for (cert, file) in cfg
        .trust
        .store
        .anchors()
        .iter()
        .zip(&cfg.trust.anchor_files)
    {
        col.add(cert, CertRole::Anchor, file, None, now);
        let last = col.out.len() - 1;
        col.out[last].connections = anchor_users.iter().map(|s| s.to_string()).collect();
    }
    for c in &cfg.connections {
        let Keying::Ike(k) = &c.keying else { continue };
        if let LocalAuthConfig::Pubkey(certs) = &k.auth.local {
            for lc in certs.iter() {
                for (i, cert) in lc.credential.chain.iter().enumerate() {
                    let role = if i == 0 {
                        CertRole::Local
                    } else {
                        CertRole::Intermediate
                    };
                    col.add(cert, role, &lc.cert_file, Some(&c.name), now);
                }
            }
        }
        if let RemoteAuthConfig::Pubkey { pinned: Some(p) } = &k.auth.remote {
            col.add(&p.cert, CertRole::Pinned, &p.file, Some(&c.name), now);
        }
    }
    let crls = cfg
        .trust
        .store
        .crls()
        .iter()
        .zip(&cfg.trust.crl_files)
        .map(|(c, f)| crl_info(c, f, now))
        .collect();
    CertList {
        now_unix: now,
        certificates: col.out,
        crls,
    }
}

/// Seconds since the Unix epoch now (0 if the clock is before it).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn left(days: i64, what: &str) -> String {
    match days {
        d if d < 0 => format!("{what} {} day(s) ago", -d),
        0 => "less than a day left".to_string(),
        d => format!("{d} day(s) left"),
    }
}

/// The list as text: one block per certificate, then one per CRL.
pub fn render(l: &CertList) -> String {
    let mut s = String::new();
    if l.certificates.is_empty() && l.crls.is_empty() {
        s.push_str("no certificates loaded (no ca_dir, crl_dir, local_cert or remote_cert)\n");
        return s;
    }
    for (i, c) in l.certificates.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        let _ = writeln!(s, "{} certificate {}", c.role.name(), c.file);
        let _ = writeln!(s, "  subject:     {}", c.subject);
        let _ = writeln!(s, "  issuer:      {}", c.issuer);
        if !c.san.is_empty() {
            let _ = writeln!(s, "  altNames:    {}", c.san.join(", "));
        }
        let _ = writeln!(s, "  serial:      {}", c.serial);
        let _ = writeln!(s, "  notBefore:   {}", c.not_before);
        let when = if c.not_before_unix > l.now_unix {
            "not valid yet".to_string()
        } else {
            left(c.days_left, "expired")
        };
        let _ = writeln!(s, "  notAfter:    {} ({when})", c.not_after);
        let _ = writeln!(s, "  sha256:      {}", c.fingerprint_sha256);
        let users = if c.connections.is_empty() {
            "no connection".to_string()
        } else {
            c.connections.join(", ")
        };
        let _ = writeln!(s, "  used by:     {users}");
    }
    for c in &l.crls {
        if !s.is_empty() {
            s.push('\n');
        }
        let _ = writeln!(s, "CRL {}", c.file);
        let _ = writeln!(s, "  issuer:      {}", c.issuer);
        let _ = writeln!(s, "  thisUpdate:  {}", c.this_update);
        match (&c.next_update, c.next_update_days_left) {
            (Some(n), Some(d)) => {
                let _ = writeln!(s, "  nextUpdate:  {n} ({})", left(d, "overdue"));
            }
            _ => {
                let _ = writeln!(s, "  nextUpdate:  none");
            }
        }
        let _ = writeln!(s, "  revoked:     {} certificate(s)", c.revoked);
    }
    s
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn conf(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../conf")
            .join(name)
    }

    /// conf/cert-gw-a.toml with the example PKI of conf/pki (its keys are marked examples:
    /// loading warns, only the daemon refuses them).
    fn example() -> Config {
        Config::load_for_check_with_env(&conf("cert-gw-a.toml"), [])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_example_pair_lists_anchor_chain_and_crls() {
        let cfg = example();
        let now = 1_800_000_000; // 2027-01-15
        let l = list(&cfg, now);
        let roles: Vec<CertRole> = l.certificates.iter().map(|c| c.role).collect();
        assert_eq!(
            roles,
            [CertRole::Anchor, CertRole::Local, CertRole::Intermediate]
        );
        let (anchor, local, int) = (&l.certificates[0], &l.certificates[1], &l.certificates[2]);
        assert_eq!(
            anchor.subject,
            "C=CH, O=ironsec test, CN=ironsec example root CA"
        );
        assert_eq!(anchor.subject, anchor.issuer);
        assert!(
            anchor.file.ends_with("pki/cacerts/root.pem"),
            "{}",
            anchor.file
        );
        assert_eq!(anchor.connections, ["site-b"]);
        assert_eq!(local.subject, "C=CH, O=ironsec test, CN=gw-a.example");
        assert_eq!(
            local.issuer,
            "C=CH, O=ironsec test, CN=ironsec example intermediate CA"
        );
        assert_eq!(int.subject, local.issuer);
        assert_eq!(int.issuer, anchor.subject);
        assert!(
            local.san.contains(&"dns:gw-a.example".to_string()),
            "{:?}",
            local.san
        );
        assert!(local.file.ends_with("pki/certs/gw-a.example.pem"));
        assert_eq!(int.file, local.file);
        assert_eq!(local.connections, ["site-b"]);
        assert_eq!(int.connections, ["site-b"]);
        for c in &l.certificates {
            assert_eq!(c.days_left, (c.not_after_unix - now).div_euclid(86_400));
            assert_eq!(c.not_after, format_time(c.not_after_unix));
            assert_eq!(c.fingerprint_sha256.len(), 32 * 3 - 1);
            assert!(c.not_before_unix < c.not_after_unix);
            assert!(!c.serial.is_empty());
        }
        assert_eq!(l.crls.len(), 2);
        assert!(l
            .crls
            .iter()
            .all(|c| c.revoked == 0 && c.next_update.is_some()));
        assert!(l
            .crls
            .iter()
            .any(|c| c.issuer == anchor.subject && c.file.ends_with("crls/root.crl.pem")));

        // Text: every field, and the round trip of the JSON form.
        let text = render(&l);
        for want in [
            "anchor certificate ",
            "local certificate ",
            "intermediate certificate ",
            "  subject:     C=CH, O=ironsec test, CN=gw-a.example",
            "  altNames:    dns:gw-a.example",
            &format!("  serial:      {}", local.serial),
            &format!("  sha256:      {}", local.fingerprint_sha256),
            &format!(
                "  notAfter:    {} ({} day(s) left)",
                local.not_after, local.days_left
            ),
            "  used by:     site-b",
            "CRL ",
            "  revoked:     0 certificate(s)",
        ] {
            assert!(text.contains(want), "no {want:?} in\n{text}");
        }
        let json = serde_json::to_string(&l).unwrap();
        assert!(json.contains(r#""role":"intermediate""#), "{json}");
        let back: CertList = serde_json::from_str(&json).unwrap();
        assert_eq!(back, l);
        // No private key material: not the key file's name, not its contents.
        let key = std::fs::read_to_string(conf("pki/private/gw-a.example.key")).unwrap();
        for line in key
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 16)
        {
            assert!(!json.contains(line) && !text.contains(line));
        }
        assert!(!json.contains("private") && !text.contains("private"));
    }

    #[test]
    fn expiry_is_counted_from_now() {
        let cfg = example();
        let l = list(&cfg, 0);
        let local = &l.certificates[1];
        let after = list(&cfg, local.not_after_unix + 3 * 86_400 + 5);
        let text = render(&after);
        assert_eq!(after.certificates[1].days_left, -4);
        assert!(text.contains("(expired 4 day(s) ago)"), "{text}");
        let before = render(&list(&cfg, local.not_before_unix - 1));
        assert!(before.contains("(not valid yet)"), "{before}");
        let last_day = list(&cfg, local.not_after_unix - 10);
        assert_eq!(last_day.certificates[1].days_left, 0);
        assert!(render(&last_day).contains("(less than a day left)"));
    }

    #[test]
    fn nothing_loaded_says_so() {
        let l = CertList::default();
        assert!(render(&l).starts_with("no certificates loaded"));
    }
}
