//! `ironsecd check` on every shipped example and on one bad config per kind of error.
//!
//! The examples under conf/ are what operators copy, so each must pass `ironsecd check`: as
//! shipped (from a fresh clone, with the marked example secret files beside them, one warning
//! each), and with secrets of their own. The test lists conf/ itself (a new example is covered
//! without editing this file); for the second run it copies each main file with its conf.d/
//! into a temporary directory, creates every psk_file and keys_file it names (relative ones
//! where the file says, absolute ones rewritten into the temporary directory) and runs the
//! built binary. The bad configs then pin the exact `FILE: KEY: REASON` lines an operator sees,
//! every error of a file in one run.
//!
//! No root, no network: only files under the temporary directory and the built binary.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use ironsecd::config::schema::GATEWAY_KEYS;

const IRONSECD: &str = env!("CARGO_BIN_EXE_ironsecd");

/// The PSK written for every example and case: it must never appear in the output.
const PSK: &str = "conf-examples-psk-5f1d9a7c3e2b";

/// Examples the README and the brief promise; more may exist.
const REQUIRED_EXAMPLES: &[&str] = &[
    "ike-gw-a.toml",
    "ike-gw-b.toml",
    "static-gw-a.toml",
    "static-gw-b.toml",
    "ipv6-gw-a.toml",
    "ipv6-gw-b.toml",
    "multisite-hub.toml",
    "multisite-spoke-b.toml",
    "multisite-spoke-c.toml",
    "two-tunnels.toml",
    "active-standby.toml",
    "active-active.toml",
    "fragment-example/ironsecd.toml",
    "azure-default.toml",
    "azure-bgp.toml",
    "cert-gw-a.toml",
    "cert-gw-b.toml",
    "p2s-gw.toml",
    "ha/plink-site-a.toml",
    "ha/plink-site-b.toml",
    "ha/aa-gw-a.toml",
    "ha/aa-gw-b.toml",
    "ha/aa-remote.toml",
];

fn conf_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conf")
}

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "ironsec-conf-examples-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `ironsecd check --config cfg` with only `env` in its environment (so a developer's own
/// IRONSEC_* variables cannot change the outcome).
fn check(cfg: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(IRONSECD);
    cmd.arg("check").arg("--config").arg(cfg).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run ironsecd check")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Every `*.toml` under `dir`, relative to it.
fn toml_files(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir.join(rel))
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let r = rel.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            toml_files(dir, &r, out);
        } else if r.extension().is_some_and(|x| x == "toml") {
            out.push(r);
        }
    }
}

/// Writes the secret files `file`'s connections name (relative to `file`'s directory; absolute
/// ones are moved under `abs_dir` and `file` rewritten to point there). Returns the number of
/// connections and every secret written (PSK text, key hex, private key PEM), to look for in the
/// output.
///
/// A connection with a `local_key` gets a new private key and a certificate for it in place of
/// the shipped example PKI's (conf/pki/): subject `C=CH, O=ironsec test, CN=NAME` and
/// subjectAltName NAME, where NAME is the shipped certificate's file name without `.pem`, as
/// conf/pki/make-pki.sh names them, issued by a new CA that is the gateway's only trust anchor
/// (`ca_dir`); `crl_dir` is an empty directory. Every one of these paths is rewritten to one
/// under `abs_dir`, relative or not.
fn supply_secrets(file: &Path, abs_dir: &Path, secrets: &mut Vec<String>) -> usize {
    let mut text = std::fs::read_to_string(file).unwrap();
    let table: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let conns = table
        .get("connection")
        .and_then(|c| c.as_array())
        .cloned()
        .unwrap_or_default();
    let base = file.parent().unwrap();
    let place = |named: &str, text: &mut String| -> PathBuf {
        if Path::new(named).is_absolute() {
            let n = std::fs::read_dir(abs_dir).map_or(0, |d| d.count());
            let to = abs_dir.join(format!(
                "{n}-{}",
                Path::new(named).file_name().unwrap().to_str().unwrap()
            ));
            let quoted = format!("\"{named}\"");
            assert!(
                text.contains(&quoted),
                "{}: {quoted} not found",
                file.display()
            );
            *text = text.replace(&quoted, &format!("\"{}\"", to.display()));
            std::fs::create_dir_all(abs_dir).unwrap();
            // Reserve the name so the next one gets another.
            std::fs::write(&to, "").unwrap();
            to
        } else {
            base.join(named)
        }
    };
    // (name, PEM) of each certificate made for a local_key: the gateway's trust anchors.
    let mut anchors: Vec<(String, String)> = Vec::new();
    for c in &conns {
        if let Some(p) = c.get("psk_file").and_then(|v| v.as_str()) {
            let to = place(p, &mut text);
            write(&to, &format!("{PSK}\n"), 0o600);
            secrets.push(PSK.to_string());
        }
        if let Some(p) = c.get("radius_secret_file").and_then(|v| v.as_str()) {
            let to = place(p, &mut text);
            write(&to, &format!("{PSK}\n"), 0o600);
            secrets.push(PSK.to_string());
        }
        if let Some(p) = c.get("eap_users_file").and_then(|v| v.as_str()) {
            let to = place(p, &mut text);
            // The NT hash of the PSK string as a password.
            let line = ironsecd::nthash::users_line("alice", PSK).unwrap();
            write(&to, &format!("{line}\n"), 0o600);
            secrets.push(line.split(':').nth(1).unwrap().to_string());
        }
        if let Some(p) = c.get("keys_file").and_then(|v| v.as_str()) {
            let to = place(p, &mut text);
            let suite: ironsec_esp::Suite = c["esp"].as_str().unwrap().parse().unwrap();
            let mut body = String::new();
            for t in c["tunnels"].as_array().unwrap() {
                for k in ["spi_out", "spi_in"] {
                    let spi = match &t[k] {
                        toml::Value::String(s) => {
                            u32::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
                        }
                        toml::Value::Integer(i) => *i as u32,
                        v => panic!("{}: {k} = {v}", file.display()),
                    };
                    let key: String = (0..suite.keymat_len())
                        .map(|i| format!("{:02x}", (i as u32 * 29 + spi) as u8))
                        .collect();
                    body.push_str(&format!("0x{spi:08x} = \"{key}\"\n"));
                    secrets.push(key);
                }
            }
            write(&to, &body, 0o600);
        }
        // A key (and certificate) named by several connections is made once: the first
        // rewrite changed every mention.
        let local_key = c.get("local_key").and_then(|v| v.as_str());
        if let Some(p) = local_key.filter(|p| text.contains(&format!("\"{p}\""))) {
            let cert_named = c["local_cert"]
                .as_str()
                .expect("local_key without local_cert");
            let name = Path::new(cert_named)
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .trim_end_matches(".pem")
                .to_string();
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(vec![name.clone()]).unwrap();
            let mut dn = rcgen::DistinguishedName::new();
            dn.push(rcgen::DnType::CountryName, "CH");
            dn.push(rcgen::DnType::OrganizationName, "ironsec test");
            dn.push(rcgen::DnType::CommonName, name.as_str());
            params.distinguished_name = dn;
            let ca_key = rcgen::KeyPair::generate().unwrap();
            let mut ca_params = rcgen::CertificateParams::new(vec![]).unwrap();
            ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            ca_params
                .distinguished_name
                .push(rcgen::DnType::CommonName, format!("{name} test CA"));
            let ca = ca_params.self_signed(&ca_key).unwrap();
            let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
            let key_pem = key.serialize_pem();
            let key_to = rewrite_path(&mut text, p, abs_dir, file);
            write(&key_to, &key_pem, 0o600);
            secrets.extend(
                key_pem
                    .lines()
                    .filter(|l| !l.starts_with("-----"))
                    .map(str::to_string),
            );
            let cert_to = rewrite_path(&mut text, cert_named, abs_dir, file);
            write(&cert_to, &cert.pem(), 0o644);
            anchors.push((name, ca.pem()));
        }
    }
    if !anchors.is_empty() {
        let gateway = table.get("gateway").and_then(|g| g.as_table());
        let dir_named = |k: &str| gateway.and_then(|g| g.get(k)).and_then(|v| v.as_str());
        for (k, certs) in [("ca_dir", &anchors[..]), ("crl_dir", &[][..])] {
            if let Some(named) = dir_named(k) {
                let to = rewrite_path(&mut text, named, abs_dir, file);
                std::fs::remove_file(&to).unwrap();
                std::fs::create_dir(&to).unwrap();
                for (name, pem) in certs {
                    write(&to.join(format!("{name}.pem")), pem, 0o644);
                }
            }
        }
    }
    std::fs::write(file, text).unwrap();
    conns.len()
}

/// Rewrites the value `"named"` in `text` to a new path under `abs_dir`, reserved as an empty
/// file, and returns it.
fn rewrite_path(text: &mut String, named: &str, abs_dir: &Path, file: &Path) -> PathBuf {
    std::fs::create_dir_all(abs_dir).unwrap();
    let n = std::fs::read_dir(abs_dir).map_or(0, |d| d.count());
    let to = abs_dir.join(format!(
        "{n}-{}",
        Path::new(named).file_name().unwrap().to_str().unwrap()
    ));
    let quoted = format!("\"{named}\"");
    assert!(
        text.contains(&quoted),
        "{}: {quoted} not found",
        file.display()
    );
    *text = text.replace(&quoted, &format!("\"{}\"", to.display()));
    std::fs::write(&to, "").unwrap();
    to
}

/// The main files under conf/ (a file in a conf.d directory is a fragment, checked with its
/// main file), relative to conf/; panics if one the README promises is missing.
fn main_examples() -> Vec<PathBuf> {
    let mut all = Vec::new();
    toml_files(&conf_dir(), Path::new(""), &mut all);
    let mains: Vec<PathBuf> = all
        .into_iter()
        .filter(|p| p.parent().and_then(|d| d.file_name()) != Some("conf.d".as_ref()))
        .collect();
    let found: BTreeSet<String> = mains.iter().map(|p| p.display().to_string()).collect();
    for r in REQUIRED_EXAMPLES {
        assert!(found.contains(*r), "conf/{r} is missing (found {found:?})");
    }
    mains
}

/// The secret files `file`'s connections name, resolved as the loader does (relative to the
/// file's directory), with the config key that names each.
fn named_secrets(file: &Path) -> Vec<(String, PathBuf)> {
    let table: toml::Table = std::fs::read_to_string(file)
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let conns = table
        .get("connection")
        .and_then(|c| c.as_array())
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for (i, c) in conns.iter().enumerate() {
        for k in ["psk_file", "keys_file", "local_key"] {
            if let Some(p) = c.get(k).and_then(|v| v.as_str()) {
                out.push((
                    format!("connection[{i}].{k}"),
                    file.parent().unwrap().join(p),
                ));
            }
        }
    }
    out
}

/// What an operator gets from a fresh clone: `ironsecd check --config conf/X.toml` on the
/// files as they are, no secret supplied. Each secret file an example names is shipped beside
/// it, marked as an example (ironsecd check warns, one line each; the daemon refuses it).
#[test]
fn every_example_passes_check_as_shipped() {
    let conf = conf_dir();
    let mut failures = Vec::new();
    for rel in main_examples() {
        let cfg = conf.join(&rel);
        let mut files = vec![cfg.clone()];
        let frag_dir = cfg.parent().unwrap().join("conf.d");
        if frag_dir.is_dir() {
            let mut frags = Vec::new();
            toml_files(&frag_dir, Path::new(""), &mut frags);
            files.extend(frags.into_iter().map(|f| frag_dir.join(f)));
        }
        let out = check(&cfg, &[]);
        let (stdout, stderr) = text(&out);
        let rel = rel.display();
        if out.status.code() != Some(0) || !stdout.contains(" OK (") {
            failures.push(format!(
                "conf/{rel}: ironsecd check exited {:?}\nstdout: {stdout}\nstderr: {stderr}",
                out.status.code()
            ));
            continue;
        }
        for f in &files {
            for (key, secret) in named_secrets(f) {
                let body = std::fs::read_to_string(&secret).unwrap_or_else(|e| {
                    panic!(
                        "conf/{rel}: {}: {key} names {}: {e}",
                        f.display(),
                        secret.display()
                    )
                });
                assert!(
                    body.contains("ironsec-example-secret-not-for-use"),
                    "{}: not marked as an example",
                    secret.display()
                );
                let warning = format!(
                    "warning: {}: {key}: {} is an example shipped with ironsec, not a secret",
                    f.display(),
                    secret.display()
                );
                if !stderr.lines().any(|l| l.starts_with(&warning)) {
                    failures.push(format!("conf/{rel}: no `{warning}`\nstderr: {stderr}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The same examples with secrets of their own (0600, in a temporary copy): what an operator
/// gets after replacing the shipped example secrets, with no warning about them.
#[test]
fn every_example_passes_check() {
    let conf = conf_dir();
    let mains = main_examples();
    let mut failures = Vec::new();
    for rel in &mains {
        let dir = TempDir::new("example");
        let name = rel.file_name().unwrap();
        let cfg = dir.0.join(name);
        std::fs::copy(conf.join(rel), &cfg).unwrap();
        let mut secrets = Vec::new();
        let abs = dir.0.join("absolute-secrets");
        let mut n = supply_secrets(&cfg, &abs, &mut secrets);
        let src_frags = conf.join(rel).parent().unwrap().join("conf.d");
        let mut fragments = 0;
        if src_frags.is_dir() {
            for e in std::fs::read_dir(&src_frags).unwrap() {
                let e = e.unwrap();
                if !e.file_type().unwrap().is_file() {
                    // conf.d/psk/ and the like: the secrets, written by supply_secrets.
                    continue;
                }
                let to = dir.0.join("conf.d").join(e.file_name());
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                std::fs::copy(e.path(), &to).unwrap();
                if to.extension().is_some_and(|x| x == "toml") {
                    n += supply_secrets(&to, &abs, &mut secrets);
                    fragments += 1;
                }
            }
        }
        let out = check(&cfg, &[]);
        let (stdout, stderr) = text(&out);
        let rel = rel.display();
        if out.status.code() != Some(0) || !stdout.contains("OK") {
            failures.push(format!(
                "conf/{rel}: ironsecd check exited {:?}\nstdout: {stdout}\nstderr: {stderr}",
                out.status.code()
            ));
            continue;
        }
        let count = format!("OK ({n} connection");
        if !stdout.contains(&count) {
            failures.push(format!("conf/{rel}: stdout lacks `{count}`: {stdout}"));
        }
        if rel.to_string() == "fragment-example/ironsecd.toml" {
            assert!(
                fragments >= 2,
                "the fragment example has its conf.d fragments"
            );
        }
        for s in &secrets {
            if stdout.contains(s.as_str()) || stderr.contains(s.as_str()) {
                failures.push(format!("conf/{rel}: output shows a secret"));
            }
        }
        if stderr.contains("is an example shipped with ironsec") {
            failures.push(format!(
                "conf/{rel}: an example secret is still named: {stderr}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ------------------------------------------------------------------------------------------
// Bad configs: one per kind of error, each with the exact lines `ironsecd check` prints.

/// conf/ike-gw-a.toml copied to a temporary directory, its relative psk_file supplied.
struct Lab {
    dir: TempDir,
    cfg: PathBuf,
    psk: PathBuf,
}

/// Rewrites the config file `cfg` with `f`, which must change it.
fn edit_config(cfg: &Path, f: impl FnOnce(String) -> String) {
    let t = std::fs::read_to_string(cfg).unwrap();
    let new = f(t.clone());
    assert_ne!(new, t, "the edit did not apply");
    std::fs::write(cfg, new).unwrap();
}

/// Sets `key = value` on the first line of `cfg` that sets `key` (the example's comments go
/// too).
fn set_config_key(cfg: &Path, key: &str, value: &str) {
    edit_config(cfg, |t| {
        let mut done = false;
        let lines: Vec<String> = t
            .lines()
            .map(|l| {
                let is = l
                    .strip_prefix(key)
                    .is_some_and(|r| r.trim_start().starts_with('='));
                if is && !done {
                    done = true;
                    format!("{key} = {value}")
                } else {
                    l.to_string()
                }
            })
            .collect();
        assert!(done, "no `{key} =` line in the example");
        lines.join("\n") + "\n"
    });
}

impl Lab {
    fn new() -> Lab {
        let dir = TempDir::new("bad");
        let cfg = dir.0.join("ike-gw-a.toml");
        std::fs::copy(conf_dir().join("ike-gw-a.toml"), &cfg).unwrap();
        let psk = dir.0.join("psk/site-b.psk");
        write(&psk, &format!("{PSK}\n"), 0o600);
        Lab { dir, cfg, psk }
    }

    fn edit(&self, f: impl FnOnce(String) -> String) {
        edit_config(&self.cfg, f);
    }

    fn set(&self, key: &str, value: &str) {
        set_config_key(&self.cfg, key, value);
    }

    /// The example's connection, renamed, for other selectors, with an absolute psk_file.
    fn connection(&self, name: &str, remote_ts: &str) -> String {
        let t = std::fs::read_to_string(conf_dir().join("ike-gw-a.toml")).unwrap();
        let conn = &t[t.find("[[connection]]").unwrap()..];
        conn.lines()
            .map(|l| {
                if l.starts_with("name =") {
                    format!("name = \"{name}\"")
                } else if l.starts_with("remote_ts =") {
                    format!("remote_ts = [\"{remote_ts}\"]")
                } else if l.starts_with("psk_file =") {
                    format!("psk_file = \"{}\"", self.psk.display())
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    }

    fn fragment(&self, name: &str, text: &str) -> String {
        let p = self.dir.0.join("conf.d").join(name);
        write(&p, text, 0o644);
        p.display().to_string()
    }

    fn chmod_psk(&self, mode: u32) {
        std::fs::set_permissions(&self.psk, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

enum Want {
    /// Exit 0 and "OK" on stdout; stderr must contain each of these.
    Ok(Vec<String>),
    /// Exit 1, and exactly these error lines (each `Line`) on stderr.
    Refused(Vec<Line>),
}

enum Line {
    Exact(String),
    /// For messages that end in a long list which other work may extend (serde's "expected
    /// one of ..."): the line must start with this.
    Prefix(String),
}

impl Line {
    fn matches(&self, l: &str) -> bool {
        match self {
            Line::Exact(s) => l == s,
            Line::Prefix(s) => l.starts_with(s.as_str()),
        }
    }
}

fn exact(lines: &[String]) -> Want {
    Want::Refused(lines.iter().cloned().map(Line::Exact).collect())
}

type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    Box<dyn Fn(&Lab) -> Want>,
);

#[test]
fn bad_configs_are_refused_with_file_key_and_reason() {
    let gateway_keys = GATEWAY_KEYS.join(", ");
    let gw_keys_plain = gateway_keys.clone();
    let cases: Vec<Case> = vec![
        (
            "unknown key in gateway",
            &[],
            Box::new(move |l| {
                l.edit(|t| t.replace("[gateway]\n", "[gateway]\nbogus_setting = 1\n"));
                exact(&[format!(
                    "{}: gateway.bogus_setting: unknown key; gateway keys are {gateway_keys}",
                    l.cfg.display()
                )])
            }),
        ),
        (
            "unknown key in connection",
            &[],
            Box::new(|l| {
                l.edit(|t| t.replace("keying = \"ike\"", "keying = \"ike\"\nfrobnicate = 1"));
                Want::Refused(vec![Line::Prefix(format!(
                    "{}: connection[0].frobnicate: unknown key; connection keys are name, keying, ",
                    l.cfg.display()
                ))])
            }),
        ),
        (
            "four errors in four tables, all reported",
            &[],
            Box::new(|l| {
                // A wrong type in [gateway], a misspelt key in connection[0], a bad enum value
                // in connection[1], a bad CIDR in connection[2]: serde used to stop at the first.
                let site_c = l
                    .connection("site-c", "10.3.0.0/24")
                    .replace("keying = \"ike\"", "keying = \"ikev2\"");
                let site_d = l.connection("site-d", "10.4.0.1/24");
                l.edit(|t| {
                    format!(
                        "{}\n{site_c}\n{site_d}",
                        t.replace("[gateway]\n", "[gateway]\nworkers = \"many\"\n")
                            .replace("esp_proposals =", "esp_proposal =")
                    )
                });
                let f = l.cfg.display();
                exact(&[
                    format!("{f}: gateway.workers: invalid type: string \"many\", expected an integer"),
                    format!("{f}: connection[0].esp_proposal: unknown key (did you mean \"esp_proposals\"?)"),
                    format!("{f}: connection[1].keying: 'ikev2' is not a keying: expected \"static\", \"ike\" (did you mean \"ike\"?)"),
                    format!("{f}: connection[2].remote_ts[0]: '10.4.0.1/24': host bits are set; did you mean 10.4.0.0/24?"),
                ])
            }),
        ),
        (
            "several errors in one connection, missing keys included",
            &[],
            Box::new(|l| {
                l.edit(|t| {
                    t.replace("name = \"site-b\"", "").replace(
                        "start_action = \"start\"",
                        "start_action = \"strat\"\nretransmit_tries = \"many\"\ndpd_intervall = 30",
                    )
                });
                let f = l.cfg.display();
                exact(&[
                    format!("{f}: connection[0].dpd_intervall: unknown key (did you mean \"dpd_interval\"?)"),
                    format!("{f}: connection[0].retransmit_tries: invalid type: string \"many\", expected an integer"),
                    format!("{f}: connection[0].start_action: 'strat' is not a start_action: expected \"start\", \"trap\", \"none\" (did you mean \"start\"?)"),
                    format!("{f}: connection[0].name: required key is missing"),
                ])
            }),
        ),
        (
            "errors in the main file and a conf.d fragment together",
            &[],
            Box::new(|l| {
                l.edit(|t| t.replace("[gateway]\n", "[gateway]\ntun_mut = 1400\n"));
                let frag = l.fragment(
                    "site-c.toml",
                    &l.connection("site-c", "10.3.0.0/24").replace(
                        "keying = \"ike\"",
                        "keying = \"ike\"\nclose_action = \"restrat\"",
                    ),
                );
                exact(&[
                    format!("{}: gateway.tun_mut: unknown key (did you mean \"tun_mtu\"?)", l.cfg.display()),
                    format!("{frag}: connection[0].close_action: 'restrat' is not a close_action: expected \"none\", \"trap\", \"restart\" (did you mean \"restart\"?)"),
                ])
            }),
        ),
        (
            "misspelt environment override beside a file error",
            &[("IRONSEC_GATEWAY__TUNN", "ipsec1")],
            Box::new(|l| {
                l.set("esp_proposals", "[\"aes256gcm16\"]\ncopy_dscp = \"yse\"");
                exact(&[
                    "environment: IRONSEC_GATEWAY__TUNN: unknown key 'tunn' (did you mean IRONSEC_GATEWAY__TUN?)".to_string(),
                    format!("{}: connection[0].copy_dscp: 'yse' is not a copy_dscp: expected \"out\", \"in\", \"yes\" or \"no\" (did you mean \"yes\"?)", l.cfg.display()),
                ])
            }),
        ),
        (
            "bad CIDR",
            &[],
            Box::new(|l| {
                l.set("remote_ts", "[\"10.2.0.1/24\"]");
                exact(&[format!(
                    "{}: connection[0].remote_ts[0]: '10.2.0.1/24': host bits are set; did you mean 10.2.0.0/24?",
                    l.cfg.display()
                )])
            }),
        ),
        (
            "overlapping remote selectors",
            &[],
            Box::new(|l| {
                let second = l.connection("site-c", "10.2.0.128/25");
                l.edit(|t| format!("{t}\n{second}"));
                exact(&[format!(
                    "{}: connection[1].remote_ts[0]: 10.2.0.128/25 overlaps 10.2.0.0/24 of connection 'site-b' (connection[0].remote_ts[0])",
                    l.cfg.display()
                )])
            }),
        ),
        (
            "overlapping remote selectors across a conf.d fragment",
            &[],
            Box::new(|l| {
                let f = l.fragment("site-c.toml", &l.connection("site-c", "10.2.0.0/16"));
                exact(&[format!(
                    "{f}: connection[0].remote_ts[0]: 10.2.0.0/16 overlaps 10.2.0.0/24 of connection 'site-b' ({}: connection[0].remote_ts[0])",
                    l.cfg.display()
                )])
            }),
        ),
        (
            "unknown IKE algorithm",
            &[],
            Box::new(|l| {
                l.set("ike_proposals", "[\"aes256gcm16-prfmd5-x25519\"]");
                // The list of valid keywords grows with the algorithms.
                Want::Refused(vec![Line::Prefix(format!(
                    "{}: connection[0].ike_proposals[0]: 'aes256gcm16-prfmd5-x25519': unknown keyword \"prfmd5\" in IKE proposal \"aes256gcm16-prfmd5-x25519\"; valid keywords: aes128gcm16, ",
                    l.cfg.display()
                ))])
            }),
        ),
        (
            "unknown ESP algorithm",
            &[],
            Box::new(|l| {
                l.set("esp_proposals", "[\"aes256cbc\"]");
                Want::Refused(vec![Line::Prefix(format!(
                    "{}: connection[0].esp_proposals[0]: 'aes256cbc': unknown keyword \"aes256cbc\" in ESP proposal \"aes256cbc\"; valid keywords: aes128gcm16, ",
                    l.cfg.display()
                ))])
            }),
        ),
        (
            "group-readable psk_file",
            &[],
            Box::new(|l| {
                l.chmod_psk(0o640);
                exact(&[format!(
                    "{}: connection[0].psk_file: {}: permissions 0640 let its group read this secret file; run chmod 600 on it, or set allow_readable_secret_file = true in this connection to accept that",
                    l.cfg.display(),
                    l.psk.display()
                )])
            }),
        ),
        (
            "world-readable psk_file",
            &[],
            Box::new(|l| {
                l.chmod_psk(0o604);
                exact(&[format!(
                    "{}: connection[0].psk_file: {}: permissions 0604 let all local users read this secret file; run chmod 600 on it, or set allow_readable_secret_file = true in this connection to accept that",
                    l.cfg.display(),
                    l.psk.display()
                )])
            }),
        ),
        (
            "readable psk_file with allow_readable_secret_file",
            &[],
            Box::new(|l| {
                l.chmod_psk(0o640);
                l.edit(|t| {
                    t.replace(
                        "keying = \"ike\"",
                        "keying = \"ike\"\nallow_readable_secret_file = true",
                    )
                });
                Want::Ok(vec!["allow_readable_secret_file = true".into()])
            }),
        ),
        (
            "SHA-1 proposals load, each use warned about",
            &[],
            Box::new(|l| {
                l.set("ike_proposals", "[\"aes128-sha1-ecp256\"]");
                l.set("esp_proposals", "[\"aes128gcm16\", \"aes128-sha1\"]");
                let w = "warning: connection 'site-b': ";
                let why = "SHA-1 is MUST- in RFC 8247/8221: still interoperable, but prefer SHA-2";
                Want::Ok(vec![
                    format!("{w}ike_proposals[0] 'aes128-sha1-prfsha1-ecp256' uses legacy sha1: {why}"),
                    format!("{w}ike_proposals[0] 'aes128-sha1-prfsha1-ecp256' uses legacy prfsha1: {why}"),
                    format!("{w}esp_proposals[1] 'aes128-sha1' uses legacy sha1: {why}"),
                ])
            }),
        ),
        (
            "AES-CBC without integrity",
            &[],
            Box::new(|l| {
                l.set("ike_proposals", "[\"aes256-prfsha256-ecp256\"]");
                exact(&[format!(
                    "{}: connection[0].ike_proposals[0]: 'aes256-prfsha256-ecp256': IKE proposal \"aes256-prfsha256-ecp256\" has the non-AEAD cipher \"aes256\" but no integrity algorithm; add one of: sha1, sha256, sha384, sha512 (or use an AEAD such as aes256gcm16)",
                    l.cfg.display()
                )])
            }),
        ),
        (
            "missing psk_file",
            &[],
            Box::new(|l| {
                std::fs::remove_file(&l.psk).unwrap();
                exact(&[format!(
                    "{}: connection[0].psk_file: {}: cannot read: No such file or directory (os error 2)",
                    l.cfg.display(),
                    l.psk.display()
                )])
            }),
        ),
        (
            "short PSK",
            &[],
            Box::new(|l| {
                write(&l.psk, "0x00112233445566\n", 0o600);
                exact(&[format!(
                    "{}: connection[0].psk_file: a PSK shorter than 16 bytes can be guessed offline from one captured handshake",
                    l.cfg.display()
                )])
            }),
        ),
        (
            "bad metrics address",
            &[],
            Box::new(|l| {
                l.edit(|t| {
                    t.replace(
                        "[gateway]\n",
                        "[gateway]\nmetrics = \"localhost:metrics\"\n",
                    )
                });
                exact(&[format!(
                    "{}: gateway.metrics: 'localhost:metrics' is not ADDRESS:PORT (e.g. \"127.0.0.1:14500\" or \"[::1]:14500\") or \"off\"",
                    l.cfg.display()
                )])
            }),
        ),
        (
            "bad environment override",
            &[("IRONSEC_GATEWAY__NOPE", "1")],
            Box::new(move |_| {
                exact(&[format!(
                    "environment: IRONSEC_GATEWAY__NOPE: unknown key 'nope'; gateway keys are {gw_keys_plain}"
                )])
            }),
        ),
        (
            "bad environment value",
            &[("IRONSEC_GATEWAY__WORKERS", "lots")],
            Box::new(|_| {
                exact(&["environment: IRONSEC_GATEWAY__WORKERS: 'lots': invalid type: string \"lots\", expected an integer".to_string()])
            }),
        ),
        (
            "environment override accepted",
            &[("IRONSEC_GATEWAY__TUN", "ipsec7"), ("IRONSEC_LOG", "debug")],
            Box::new(|_| Want::Ok(vec![])),
        ),
        (
            "IRONSEC_LOG and IRONSEC_NS_PREFIX are not config",
            &[("IRONSEC_LOG", "debug"), ("IRONSEC_NS_PREFIX", "lab")],
            Box::new(|_| Want::Ok(vec![])),
        ),
        (
            "gateway in a fragment",
            &[],
            Box::new(|l| {
                let f = l.fragment(
                    "site-c.toml",
                    &format!(
                        "[gateway]\ntun = \"ipsec9\"\n\n{}",
                        l.connection("site-c", "10.3.0.0/24")
                    ),
                );
                exact(&[format!(
                    "{f}: gateway: only the main file sets gateway keys (move them to {}); a conf.d fragment holds [[connection]] tables only",
                    l.cfg.display()
                )])
            }),
        ),
        (
            "duplicate connection name across files",
            &[],
            Box::new(|l| {
                let f = l.fragment("site-c.toml", &l.connection("site-b", "10.3.0.0/24"));
                exact(&[format!(
                    "{f}: connection[0].name: connection name 'site-b' is already used by {}: connection[0]",
                    l.cfg.display()
                )])
            }),
        ),
        (
            "bad start_action",
            &[],
            Box::new(|l| {
                l.set("start_action", "\"sometimes\"");
                exact(&[format!(
                    "{}: connection[0].start_action: 'sometimes' is not a start_action: expected \"start\", \"trap\", \"none\"",
                    l.cfg.display()
                )])
            }),
        ),
        (
            "retransmit_tries out of range",
            &[],
            Box::new(|l| {
                l.edit(|t| {
                    t.replace(
                        "keying = \"ike\"",
                        "keying = \"ike\"\nretransmit_tries = 21",
                    )
                });
                exact(&[format!(
                    "{}: connection[0].retransmit_tries: 21 is more than 20",
                    l.cfg.display()
                )])
            }),
        ),
        (
            "TOML syntax error",
            &[],
            Box::new(|l| {
                // An unterminated string on a line that holds a secret: the position is
                // reported, the line is not.
                let bad = format!("psk = \"{PSK}");
                l.edit(|t| t.replace("[gateway]\n", &format!("[gateway]\n{bad}\n")));
                let t = std::fs::read_to_string(&l.cfg).unwrap();
                let line = t.lines().position(|x| x == bad).unwrap() + 1;
                exact(&[format!(
                    "{}: not valid TOML at line {line}, column {}: invalid basic string",
                    l.cfg.display(),
                    bad.len() + 1
                )])
            }),
        ),
    ];
    let mut failures = Vec::new();
    for (name, env, setup) in &cases {
        let lab = Lab::new();
        let want = setup(&lab);
        let out = check(&lab.cfg, env);
        let (stdout, stderr) = text(&out);
        let code = out.status.code();
        let show = format!("exit {code:?}\nstdout: {stdout}\nstderr: {stderr}");
        if stdout.contains(PSK) || stderr.contains(PSK) {
            failures.push(format!("{name}: the output shows the PSK\n{show}"));
        }
        match want {
            Want::Ok(needles) => {
                if code != Some(0) || !stdout.contains("OK") {
                    failures.push(format!("{name}: expected exit 0 and OK\n{show}"));
                }
                for n in needles {
                    if !stderr.contains(&n) {
                        failures.push(format!("{name}: stderr lacks `{n}`\n{show}"));
                    }
                }
            }
            Want::Refused(lines) => {
                if code != Some(1) {
                    failures.push(format!("{name}: expected exit 1\n{show}"));
                }
                // The error lines: those naming a file of this lab, or the environment.
                let dir = lab.dir.0.display().to_string();
                let got: Vec<&str> = stderr
                    .lines()
                    .filter(|l| l.starts_with(&dir) || l.starts_with("environment: "))
                    .collect();
                let ok =
                    got.len() == lines.len() && got.iter().zip(&lines).all(|(g, w)| w.matches(g));
                if !ok {
                    let want: Vec<&str> = lines
                        .iter()
                        .map(|l| match l {
                            Line::Exact(s) | Line::Prefix(s) => s.as_str(),
                        })
                        .collect();
                    failures.push(format!(
                        "{name}: expected the lines\n  {}\n{show}",
                        want.join("\n  ")
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ------------------------------------------------------------------------------------------
// Bad certificate configs: conf/cert-gw-a.toml with a PKI of its own (rcgen), one thing broken
// per case, and every error of a file in one run.

/// conf/cert-gw-a.toml in a temporary directory with its own CA, certificate and key.
struct CertLab {
    /// Removed with the lab.
    _dir: TempDir,
    cfg: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    other_key: PathBuf,
    ca_dir: PathBuf,
}

impl CertLab {
    fn new() -> CertLab {
        let dir = TempDir::new("cert");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(vec![]).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "conf-examples CA");
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut ee = rcgen::CertificateParams::new(vec!["gw-a.example".to_string()]).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "CH");
        dn.push(rcgen::DnType::OrganizationName, "ironsec test");
        dn.push(rcgen::DnType::CommonName, "gw-a.example");
        ee.distinguished_name = dn;
        let ee = ee.signed_by(&key, &ca, &ca_key).unwrap();
        let ca_dir = dir.0.join("cacerts");
        std::fs::create_dir(&ca_dir).unwrap();
        write(&ca_dir.join("ca.pem"), &ca.pem(), 0o644);
        std::fs::create_dir(dir.0.join("crls")).unwrap();
        let cert = dir.0.join("gw-a.pem");
        write(&cert, &ee.pem(), 0o644);
        let key_file = dir.0.join("gw-a.key");
        write(&key_file, &key.serialize_pem(), 0o600);
        let other_key = dir.0.join("other.key");
        write(
            &other_key,
            &rcgen::KeyPair::generate().unwrap().serialize_pem(),
            0o600,
        );
        let cfg = dir.0.join("cert-gw-a.toml");
        let text = std::fs::read_to_string(conf_dir().join("cert-gw-a.toml")).unwrap();
        let text = text
            .replace("\"pki/cacerts\"", &format!("\"{}\"", ca_dir.display()))
            .replace(
                "\"pki/crls\"",
                &format!("\"{}\"", dir.0.join("crls").display()),
            )
            .replace(
                "\"pki/certs/gw-a.example.pem\"",
                &format!("\"{}\"", cert.display()),
            )
            .replace(
                "\"pki/private/gw-a.example.key\"",
                &format!("\"{}\"", key_file.display()),
            );
        write(&cfg, &text, 0o644);
        CertLab {
            _dir: dir,
            cfg,
            cert,
            key: key_file,
            other_key,
            ca_dir,
        }
    }

    fn edit(&self, f: impl FnOnce(String) -> String) {
        edit_config(&self.cfg, f);
    }

    /// `local_certs = [ENTRIES]` instead of local_cert/local_key (commented out).
    fn use_local_certs(&self, entries: &str) {
        self.edit(|t| {
            t.replace("local_cert =", "# local_cert =")
                .replace("local_key =", "# local_key =")
                .replace(
                    "[[connection]]\n",
                    &format!("[[connection]]\nlocal_certs = [{entries}]\n"),
                )
        });
    }

    fn set(&self, key: &str, value: &str) {
        set_config_key(&self.cfg, key, value);
    }
}

#[test]
fn bad_certificate_configs_are_refused_with_file_key_and_reason() {
    let lab = CertLab::new();
    let out = check(&lab.cfg, &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let cfg = lab.cfg.display().to_string();
    let q = |p: &Path| format!("\"{}\"", p.display());
    // (what, edit, the error lines expected: each a prefix "FILE: KEY: " and a part of the
    // reason).
    type Edit<'a> = Box<dyn Fn(&CertLab) + 'a>;
    type CertCase<'a> = (&'a str, Edit<'a>, Vec<(&'a str, String)>);
    let cases: Vec<CertCase> = vec![
        (
            "a key that is not the certificate's",
            Box::new(|l| l.set("local_key", &q(&l.other_key))),
            vec![(
                "connection[0].local_key",
                format!(
                    "{} is not the key of {} ('C=CH, O=ironsec test, CN=gw-a.example')",
                    lab.other_key.display(),
                    lab.cert.display()
                ),
            )],
        ),
        (
            "a local_id the certificate does not carry",
            Box::new(|l| l.set("local_id", "\"gw-z.example\"")),
            vec![(
                "connection[0].local_id",
                "'gw-z.example' is neither the subject nor a subjectAltName of local_cert"
                    .to_string(),
            )],
        ),
        (
            "a group-readable private key",
            Box::new(|l| {
                std::fs::set_permissions(&l.key, std::fs::Permissions::from_mode(0o640)).unwrap()
            }),
            vec![(
                "connection[0].local_key",
                format!(
                    "{}: permissions 0640 let its group read this secret file",
                    lab.key.display()
                ),
            )],
        ),
        (
            "a missing certificate file",
            Box::new(|l| std::fs::remove_file(&l.cert).unwrap()),
            vec![(
                "connection[0].local_cert",
                format!("{}", lab.cert.display()),
            )],
        ),
        (
            "an end-entity certificate in ca_dir",
            Box::new(|l| {
                std::fs::copy(&l.cert, l.ca_dir.join("gw-a.pem"))
                    .map(drop)
                    .unwrap()
            }),
            vec![(
                "gateway.ca_dir",
                "'C=CH, O=ironsec test, CN=gw-a.example' is not a CA certificate".to_string(),
            )],
        ),
        (
            "a certificate without its private key",
            Box::new(|l| l.edit(|t| t.replace("local_key =", "# local_key ="))),
            vec![(
                "connection[0].local_key",
                "required with local_auth = \"pubkey\"".to_string(),
            )],
        ),
        (
            "a garbage private key",
            Box::new(|l| write(&l.key, "not a key\n", 0o600)),
            vec![(
                "connection[0].local_key",
                format!("{}: ", lab.key.display()),
            )],
        ),
        (
            "local_certs beside local_cert",
            Box::new(|l| {
                l.edit(|t| {
                    t.replace(
                        "local_key =",
                        &format!(
                            "local_certs = [{{ cert = {}, key = {} }}]\nlocal_key =",
                            q(&l.cert),
                            q(&l.key)
                        ),
                    )
                })
            }),
            vec![(
                "connection[0].local_certs",
                "set together with local_cert/local_key".to_string(),
            )],
        ),
        (
            "a local_certs entry without its key",
            Box::new(|l| {
                l.use_local_certs(&format!(
                    "{{ cert = {c} }}, {{ cert = {c}, key = {k} }}",
                    c = q(&l.cert),
                    k = q(&l.key)
                ))
            }),
            vec![("connection[0].local_certs[0].key", "required".to_string())],
        ),
        (
            "a local_certs entry that does not carry local_id",
            Box::new(|l| {
                l.use_local_certs(&format!(
                    "{{ cert = {c}, key = {k} }}, {{ cert = {c}, key = {k} }}",
                    c = q(&l.cert),
                    k = q(&l.key)
                ));
                l.set("local_id", "\"C=CH, O=ironsec test, CN=gw-z.example\"");
            }),
            vec![
                (
                    "connection[0].local_id",
                    "is neither the subject nor a subjectAltName of connection[0].local_certs[0].cert".to_string(),
                ),
                (
                    "connection[0].local_id",
                    "is neither the subject nor a subjectAltName of connection[0].local_certs[1].cert".to_string(),
                ),
            ],
        ),
        (
            "all at once: wrong key, unknown local_id, end entity in ca_dir",
            Box::new(|l| {
                l.set("local_key", &q(&l.other_key));
                l.set("local_id", "\"gw-z.example\"");
                std::fs::copy(&l.cert, l.ca_dir.join("gw-a.pem")).unwrap();
            }),
            vec![
                ("gateway.ca_dir", "is not a CA certificate".to_string()),
                ("connection[0].local_key", "is not the key of".to_string()),
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (what, edit, want) in cases {
        let lab = CertLab::new();
        edit(&lab);
        let out = check(&lab.cfg, &[]);
        let (stdout, stderr) = text(&out);
        let cfg_here = lab.cfg.display().to_string();
        if out.status.code() != Some(1) {
            failures.push(format!(
                "{what}: exit {:?}\n{stdout}\n{stderr}",
                out.status.code()
            ));
            continue;
        }
        for (key, reason) in &want {
            let prefix = format!("{cfg_here}: {key}: ");
            let reason = reason.replace(&lab_dir(&cfg), &lab_dir(&cfg_here));
            if !stderr
                .lines()
                .any(|l| l.starts_with(&prefix) && l.contains(reason.as_str()))
            {
                failures.push(format!("{what}: no `{prefix}...{reason}...` in\n{stderr}"));
            }
        }
        if stderr.contains("PRIVATE KEY") {
            failures.push(format!("{what}: key material in the output: {stderr}"));
        }
        drop(lab);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The temporary directory of a CertLab's config file, to carry expected paths over.
fn lab_dir(cfg: &str) -> String {
    Path::new(cfg).parent().unwrap().display().to_string()
}
