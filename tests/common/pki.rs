//! A test PKI made at test time with strongSwan's `pki` tool (Debian package strongswan-pki,
//! which tests/install-deps.sh installs): for certificate authentication between ironsec and
//! strongSwan (tests/interop_certs.rs).
//!
//! One PKI per key type ([`KeyKind::Rsa3072`], [`KeyKind::EcdsaP256`]); every key of a PKI is
//! of that type, every signature made with SHA-256 (RSA: PKCS#1 v1.5, `pki`'s default):
//!
//! ```text
//! root CA  "C=CH, O=ironsec test, CN=ironsec test root CA <kind>"        self-signed, CA
//!  └ intermediate CA "C=CH, O=ironsec test, CN=ironsec test intermediate CA <kind>"   CA
//!     ├ gw-a          "C=CH, O=ironsec test, CN=gw-a.example"     SAN gw-a.example
//!     ├ gw-b          "C=CH, O=ironsec test, CN=gw-b.example"     SAN gw-b.example
//!     ├ gw-a-revoked  same identity (and key) as gw-a, listed in the intermediate's CRL
//!     ├ gw-b-revoked  same identity (and key) as gw-b, listed in the intermediate's CRL
//!     ├ gw-b-expired  same identity (and key) as gw-b, valid 2021-01-01 .. 2022-01-01 only
//!     └ gw-b-wrongid  "C=CH, O=ironsec test, CN=mallory.example"  SAN mallory.example,
//!                     validly issued (gw-b's key)
//! ```
//!
//! The CAs are valid from 2020-01-01 for 5000 days (so the expired certificate lies inside its
//! issuer's validity); the gateway certificates from now for `pki`'s default 1095 days; the
//! CRLs (the intermediate's with both revoked certificates, the root's empty, so that
//! strongSwan's `revocation = strict` finds one for every certificate of a chain) from now
//! for 15 days. Only four keys are generated (root, intermediate, gw-a, gw-b): the revoked,
//! expired and wrong-identity certificates reuse their gateway's key, as a re-issued
//! certificate would.
//!
//! Files in the PKI's directory (all PEM; keys mode 0600, as ironsec and strongSwan want them):
//!
//! | file | what |
//! |---|---|
//! | `root.pem`, `root.key` | root CA certificate and key |
//! | `int.pem`, `int.key` | intermediate CA certificate and key |
//! | `NAME.pem` | the end-entity certificate alone (what swanctl's `x509/` takes: it loads the first certificate of a file) |
//! | `NAME.chain.pem` | the end-entity certificate followed by the intermediate: ironsec's `local_cert` (all of it is sent in CERT payloads) |
//! | `NAME.key` | its private key (PKCS#1 `RSA PRIVATE KEY` or SEC1 `EC PRIVATE KEY`, as `pki --gen` writes them): ironsec's `local_key` |
//! | `int.crl.pem`, `root.crl.pem` | the CRLs |
//! | `cacerts/root.pem` | ironsec's `ca_dir`: the root only (the intermediate comes with the peer's chain) |
//! | `crls/int.crl.pem`, `crls/root.crl.pem` | ironsec's `crl_dir` |
//!
//! NAME is one of gw-a, gw-b, gw-a-revoked, gw-b-revoked, gw-b-expired, gw-b-wrongid; the
//! revoked, expired and wrong-identity certificates share their gateway's key file
//! (`gw-b-expired.key` is a copy of `gw-b.key`).
//!
//! Cost measured here (2 cores): an RSA-3072 key takes ~1 s of CPU (the prime search varies,
//! 0.3 to 3 s), a P-256 key ~10 ms, each `pki --issue` or `--signcrl` ~15-30 ms; the four keys
//! are generated at once. The whole RSA PKI took 2.7 s here (6.7-9.5 s with the keys made one
//! after the other), the ECDSA one 0.4-0.5 s, on a machine with other builds running.
//! [`Pki::shared`] makes each kind once per test binary (in a directory removed when the
//! process exits) and [`Pki::copy_to`] gives each test its own copy (kept with the test's
//! directory when it fails).

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::run_timeout;

/// Subject DNs and SAN FQDNs of the gateway certificates.
pub const ORG: &str = "C=CH, O=ironsec test";
pub const GW_A: Identity = Identity {
    dn: "C=CH, O=ironsec test, CN=gw-a.example",
    fqdn: "gw-a.example",
};
pub const GW_B: Identity = Identity {
    dn: "C=CH, O=ironsec test, CN=gw-b.example",
    fqdn: "gw-b.example",
};
pub const MALLORY: Identity = Identity {
    dn: "C=CH, O=ironsec test, CN=mallory.example",
    fqdn: "mallory.example",
};

/// The expired certificate's validity, in `pki`'s default --dateform (%d.%m.%y %T).
const EXPIRED_FROM: &str = "01.01.21 00:00:00";
const EXPIRED_UNTIL: &str = "01.01.22 00:00:00";
/// The CAs' notBefore and lifetime in days (to 2033-09).
const CA_FROM: &str = "01.01.20 00:00:00";
const ROOT_DAYS: &str = "5000";
const INT_DAYS: &str = "4900";

/// The key type of a whole PKI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    Rsa3072,
    EcdsaP256,
}

impl KeyKind {
    pub const ALL: [KeyKind; 2] = [KeyKind::Rsa3072, KeyKind::EcdsaP256];

    /// "rsa" or "ecdsa": in file and CA names.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Rsa3072 => "rsa",
            KeyKind::EcdsaP256 => "ecdsa",
        }
    }

    fn gen_args(self) -> [&'static str; 4] {
        match self {
            KeyKind::Rsa3072 => ["--type", "rsa", "--size", "3072"],
            KeyKind::EcdsaP256 => ["--type", "ecdsa", "--size", "256"],
        }
    }
}

/// An identity in both flavours: the certificate's subject DN and the FQDN in its SAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub dn: &'static str,
    pub fqdn: &'static str,
}

/// One end-entity certificate of the PKI.
#[derive(Clone, Debug)]
pub struct Cert {
    /// NAME (gw-a, gw-b-revoked, ...).
    pub name: String,
    /// NAME.pem: the end-entity certificate alone (swanctl's x509/).
    pub cert: PathBuf,
    /// NAME.chain.pem: end-entity certificate + intermediate (ironsec's local_cert).
    pub chain: PathBuf,
    /// NAME.key, mode 0600.
    pub key: PathBuf,
    pub id: Identity,
}

/// A generated PKI: see the module documentation for the files.
#[derive(Clone, Debug)]
pub struct Pki {
    pub kind: KeyKind,
    pub dir: PathBuf,
    pub root: PathBuf,
    pub root_key: PathBuf,
    pub int: PathBuf,
    pub int_key: PathBuf,
    pub int_crl: PathBuf,
    pub root_crl: PathBuf,
    /// ironsec's `ca_dir`: the root certificate only.
    pub ca_dir: PathBuf,
    /// ironsec's `crl_dir`: both CRLs.
    pub crl_dir: PathBuf,
    pub gw_a: Cert,
    pub gw_b: Cert,
    pub gw_a_revoked: Cert,
    pub gw_b_revoked: Cert,
    pub gw_b_expired: Cert,
    pub gw_b_wrongid: Cert,
    /// How long generating it took (not a copy's).
    pub took: Duration,
}

/// strongswan.conf for `pki`: only the plugins it needs here (Debian's default list tries the
/// TPM and PKCS#11 plugins and complains on stderr about the TPM).
const PKI_CONF: &str =
    "pki {\n    load = random openssl gmp sha1 sha2 pem pkcs1 pkcs8 x509 pubkey\n}\n";

fn set_mode(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

/// Runs `pki ARGS...` with `conf`, writes its stdout to `out` (mode `mode`).
fn pki(conf: &Path, args: &[&str], out: &Path, mode: u32) {
    let o = run_timeout(
        Command::new("pki").env("STRONGSWAN_CONF", conf).args(args),
        Duration::from_secs(60),
    );
    assert!(
        o.status.success() && !o.stdout.is_empty(),
        "pki {args:?} failed ({}); is strongswan-pki installed (tests/install-deps.sh)?\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    fs::write(out, &o.stdout).unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
    set_mode(out, mode);
}

fn concat(parts: &[&Path], out: &Path) {
    let mut text = Vec::new();
    for p in parts {
        text.extend(fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())));
    }
    fs::write(out, text).unwrap();
    set_mode(out, 0o644);
}

impl Pki {
    /// The layout of a PKI in `dir` (no file is touched).
    fn layout(kind: KeyKind, dir: &Path, took: Duration) -> Pki {
        let cert = |name: &str, key: &str, id: Identity| Cert {
            name: name.to_string(),
            cert: dir.join(format!("{name}.pem")),
            chain: dir.join(format!("{name}.chain.pem")),
            key: dir.join(format!("{key}.key")),
            id,
        };
        Pki {
            kind,
            dir: dir.to_path_buf(),
            root: dir.join("root.pem"),
            root_key: dir.join("root.key"),
            int: dir.join("int.pem"),
            int_key: dir.join("int.key"),
            int_crl: dir.join("int.crl.pem"),
            root_crl: dir.join("root.crl.pem"),
            ca_dir: dir.join("cacerts"),
            crl_dir: dir.join("crls"),
            gw_a: cert("gw-a", "gw-a", GW_A),
            gw_b: cert("gw-b", "gw-b", GW_B),
            gw_a_revoked: cert("gw-a-revoked", "gw-a-revoked", GW_A),
            gw_b_revoked: cert("gw-b-revoked", "gw-b-revoked", GW_B),
            gw_b_expired: cert("gw-b-expired", "gw-b-expired", GW_B),
            gw_b_wrongid: cert("gw-b-wrongid", "gw-b-wrongid", MALLORY),
            took,
        }
    }

    /// Every end-entity certificate.
    pub fn certs(&self) -> [&Cert; 6] {
        [
            &self.gw_a,
            &self.gw_b,
            &self.gw_a_revoked,
            &self.gw_b_revoked,
            &self.gw_b_expired,
            &self.gw_b_wrongid,
        ]
    }

    /// Generates the whole PKI of `kind` into `dir` (created; mode 0700).
    pub fn generate(kind: KeyKind, dir: &Path) -> Pki {
        let t0 = Instant::now();
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        set_mode(dir, 0o700);
        let conf = dir.join("pki.conf");
        fs::write(&conf, PKI_CONF).unwrap();
        let p = Pki::layout(kind, dir, Duration::ZERO);
        let s = |p: &Path| p.to_str().unwrap().to_string();

        // Keys: root, intermediate, gw-a, gw-b, at once (RSA prime searches use a core each).
        std::thread::scope(|scope| {
            for key in [&p.root_key, &p.int_key, &p.gw_a.key, &p.gw_b.key] {
                let conf = &conf;
                scope.spawn(move || {
                    let mut args = vec!["--gen"];
                    args.extend(kind.gen_args());
                    args.extend(["--outform", "pem"]);
                    pki(conf, &args, key, 0o600);
                });
            }
        });
        let root_dn = format!("{ORG}, CN=ironsec test root CA {}", kind.name());
        let int_dn = format!("{ORG}, CN=ironsec test intermediate CA {}", kind.name());
        pki(
            &conf,
            &[
                "--self",
                "--type",
                "priv",
                "--in",
                &s(&p.root_key),
                "--ca",
                "--dn",
                &root_dn,
                "--not-before",
                CA_FROM,
                "--lifetime",
                ROOT_DAYS,
                "--outform",
                "pem",
            ],
            &p.root,
            0o644,
        );
        pki(
            &conf,
            &[
                "--issue",
                "--type",
                "priv",
                "--in",
                &s(&p.int_key),
                "--cacert",
                &s(&p.root),
                "--cakey",
                &s(&p.root_key),
                "--ca",
                "--dn",
                &int_dn,
                "--not-before",
                CA_FROM,
                "--lifetime",
                INT_DAYS,
                "--outform",
                "pem",
            ],
            &p.int,
            0o644,
        );

        // End-entity certificates, issued by the intermediate.
        let issue = |c: &Cert, key: &Path, extra: &[&str]| {
            p.issue_end_entity(&conf, c, key, extra, &c.cert);
            concat(&[&c.cert, &p.int], &c.chain);
            if c.key != key {
                fs::copy(key, &c.key).unwrap();
                set_mode(&c.key, 0o600);
            }
        };
        issue(&p.gw_a, &p.gw_a.key, &[]);
        issue(&p.gw_b, &p.gw_b.key, &[]);
        issue(&p.gw_a_revoked, &p.gw_a.key, &[]);
        issue(&p.gw_b_revoked, &p.gw_b.key, &[]);
        issue(
            &p.gw_b_expired,
            &p.gw_b.key,
            &["--not-before", EXPIRED_FROM, "--not-after", EXPIRED_UNTIL],
        );
        issue(&p.gw_b_wrongid, &p.gw_b.key, &[]);

        // CRLs: the intermediate's lists both revoked certificates; the root's is empty.
        p.sign_int_crl(&conf, &[], &p.int_crl);
        pki(
            &conf,
            &[
                "--signcrl",
                "--cacert",
                &s(&p.root),
                "--cakey",
                &s(&p.root_key),
                "--outform",
                "pem",
            ],
            &p.root_crl,
            0o644,
        );

        // ironsec's ca_dir and crl_dir.
        fs::create_dir_all(&p.ca_dir).unwrap();
        fs::copy(&p.root, p.ca_dir.join("root.pem")).unwrap();
        fs::create_dir_all(&p.crl_dir).unwrap();
        fs::copy(&p.int_crl, p.crl_dir.join("int.crl.pem")).unwrap();
        fs::copy(&p.root_crl, p.crl_dir.join("root.crl.pem")).unwrap();
        Pki {
            took: t0.elapsed(),
            ..p
        }
    }

    /// The PKI of `kind` for this test binary, generated on first use (threads that ask
    /// meanwhile wait) in /tmp/ironsec-pki-<pid>-<kind>, which is removed when the process
    /// exits. Tests should use a [`Pki::copy_to`] of it.
    pub fn shared(kind: KeyKind) -> &'static Pki {
        static RSA: OnceLock<Pki> = OnceLock::new();
        static ECDSA: OnceLock<Pki> = OnceLock::new();
        let cell = match kind {
            KeyKind::Rsa3072 => &RSA,
            KeyKind::EcdsaP256 => &ECDSA,
        };
        cell.get_or_init(|| {
            let dir = std::env::temp_dir().join(format!(
                "ironsec-pki-{}-{}",
                std::process::id(),
                kind.name()
            ));
            let _ = fs::remove_dir_all(&dir);
            remove_at_exit(&dir);
            let p = Pki::generate(kind, &dir);
            eprintln!(
                "[test] {} PKI generated in {:.2} s ({})",
                kind.name(),
                p.took.as_secs_f64(),
                dir.display()
            );
            p
        })
    }

    /// A copy of every file in `dir` (created), with the same modes; paths point there.
    pub fn copy_to(&self, dir: &Path) -> Pki {
        copy_tree(&self.dir, dir);
        Pki::layout(self.kind, dir, self.took)
    }

    /// Renews `c`: a new certificate for the same identity (DN and SAN) and key, issued by
    /// the intermediate now for `days` days (so another serial and notAfter), written to
    /// `NAME.renewed.pem` and, followed by the intermediate, over `NAME.chain.pem` (the file
    /// ironsec's `local_cert` names). Returns `NAME.renewed.pem`.
    pub fn renew(&self, c: &Cert, days: u32) -> PathBuf {
        let conf = self.dir.join("pki.conf");
        let out = self.dir.join(format!("{}.renewed.pem", c.name));
        let days = days.to_string();
        self.issue_end_entity(&conf, c, &c.key, &["--lifetime", &days], &out);
        concat(&[&out, &self.int], &c.chain);
        out
    }

    /// A certificate for `id` (subject `id.dn`, subjectAltName `id.fqdn`, which may also be an
    /// e-mail address: `pki` makes it an rfc822Name) with a key of its own of the PKI's kind,
    /// issued by the intermediate now for `pki`'s default lifetime: `NAME.pem`,
    /// `NAME.chain.pem`, `NAME.key` in the PKI's directory. For remote-access clients
    /// (tests/common/rwclient.rs); costs one key generation (ECDSA ~10 ms, RSA-3072 ~1 s).
    pub fn issue_extra(&self, name: &str, id: Identity) -> Cert {
        let conf = self.dir.join("pki.conf");
        let c = Cert {
            name: name.to_string(),
            cert: self.dir.join(format!("{name}.pem")),
            chain: self.dir.join(format!("{name}.chain.pem")),
            key: self.dir.join(format!("{name}.key")),
            id,
        };
        let mut args = vec!["--gen"];
        args.extend(self.kind.gen_args());
        args.extend(["--outform", "pem"]);
        pki(&conf, &args, &c.key, 0o600);
        self.issue_end_entity(&conf, &c, &c.key, &[], &c.cert);
        concat(&[&c.cert, &self.int], &c.chain);
        c
    }

    /// Signs the intermediate's CRL anew, revoking `certs` (key compromise) besides the
    /// two revoked certificates, and writes it over `crls/int.crl.pem` (ironsec's crl_dir).
    pub fn revoke_also(&self, certs: &[&Path]) {
        let conf = self.dir.join("pki.conf");
        self.sign_int_crl(&conf, certs, &self.crl_dir.join("int.crl.pem"));
    }

    /// `pki --issue` by the intermediate of a certificate for `c`'s identity (DN and SAN) and
    /// `key`, with `extra` options, written to `out`.
    fn issue_end_entity(&self, conf: &Path, c: &Cert, key: &Path, extra: &[&str], out: &Path) {
        let s = |p: &Path| p.to_str().unwrap().to_string();
        let mut args: Vec<String> = [
            "--issue",
            "--type",
            "priv",
            "--in",
            &s(key),
            "--cacert",
            &s(&self.int),
            "--cakey",
            &s(&self.int_key),
            "--dn",
            c.id.dn,
            "--san",
            c.id.fqdn,
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.extend(extra.iter().map(|x| x.to_string()));
        args.extend(["--outform".into(), "pem".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        pki(conf, &args, out, 0o644);
    }

    /// `pki --signcrl` of the intermediate revoking (key compromise) the two revoked
    /// certificates and `more`, written to `out`.
    fn sign_int_crl(&self, conf: &Path, more: &[&Path], out: &Path) {
        let s = |p: &Path| p.to_str().unwrap().to_string();
        let mut args: Vec<String> = [
            "--signcrl",
            "--cacert",
            &s(&self.int),
            "--cakey",
            &s(&self.int_key),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        for c in [&self.gw_a_revoked.cert, &self.gw_b_revoked.cert]
            .into_iter()
            .map(PathBuf::as_path)
            .chain(more.iter().copied())
        {
            args.extend([
                "--reason".into(),
                "key-compromise".into(),
                "--cert".into(),
                s(c),
            ]);
        }
        args.extend(["--outform".into(), "pem".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        pki(conf, &args, out, 0o644);
    }

    /// Fills swanctl's credential directories under `swanctl_dir` (strongswan.sh's DIR): `own`
    /// into x509/ (the end-entity certificate alone) and private/, the root and the
    /// intermediate into x509ca/, both CRLs into x509crl/. Returns `own`'s file name in x509/,
    /// for swanctl.conf's `certs`.
    pub fn install_swanctl(&self, swanctl_dir: &Path, own: &Cert) -> String {
        for sub in ["x509", "x509ca", "x509crl", "private"] {
            fs::create_dir_all(swanctl_dir.join(sub)).unwrap();
        }
        set_mode(&swanctl_dir.join("private"), 0o700);
        let file = format!("{}.pem", own.name);
        fs::copy(&own.cert, swanctl_dir.join("x509").join(&file)).unwrap();
        let key = swanctl_dir
            .join("private")
            .join(format!("{}.key", own.name));
        fs::copy(&own.key, &key).unwrap();
        set_mode(&key, 0o600);
        fs::copy(&self.root, swanctl_dir.join("x509ca/root.pem")).unwrap();
        fs::copy(&self.int, swanctl_dir.join("x509ca/int.pem")).unwrap();
        fs::copy(&self.int_crl, swanctl_dir.join("x509crl/int.crl.pem")).unwrap();
        fs::copy(&self.root_crl, swanctl_dir.join("x509crl/root.crl.pem")).unwrap();
        file
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    let mode = fs::metadata(from).unwrap().permissions().mode();
    set_mode(to, mode & 0o777);
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            fs::copy(e.path(), &dst).unwrap(); // copies the mode too
        }
    }
}

// ------------------------------------------------------------------------------------------
// Removal of the shared PKI directories when the test binary exits

static AT_EXIT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

extern "C" fn remove_shared_pkis() {
    if let Ok(dirs) = AT_EXIT.lock() {
        for d in dirs.iter() {
            let _ = fs::remove_dir_all(d);
        }
    }
}

fn remove_at_exit(dir: &Path) {
    let mut dirs = AT_EXIT.lock().unwrap_or_else(|e| e.into_inner());
    if dirs.is_empty() {
        // SAFETY: registers a plain extern "C" fn that takes no arguments; it only locks a
        // static Mutex and removes directories.
        unsafe {
            libc::atexit(remove_shared_pkis);
        }
    }
    dirs.push(dir.to_path_buf());
}
