//! Certificate authentication (issue 23: RFC 7427 signatures, CERT/CERTREQ, chain validation,
//! CRLs) against strongSwan 5.9 (Debian's charon with kernel-libipsec), in network namespaces
//! (netns-scripts/topology.sh):
//!
//!   lanA 10.1.0.2 -- gwA: ironsecd 192.0.2.1 ===wan=== 192.0.2.2 strongSwan: gwB -- lanB 10.2.0.2
//!
//! The PKI is made at test time with strongSwan's `pki` (tests/common/pki.rs: root CA ->
//! intermediate CA -> gateway certificates, plus revoked, expired and wrong-identity ones and
//! the CAs' CRLs), once per key type and test binary, copied into each test's directory.
//! ironsecd runs conf/strongswan/ironsec-certs-gw-a.toml (ca_dir = the root, crl_dir = both
//! CRLs, local_cert = gw-a + intermediate, local_key), strongSwan
//! conf/strongswan/swanctl-certs.conf (its own directory as swanctl's: x509/, x509ca/ with
//! root and intermediate, x509crl/, private/), both rewritten per test.
//!
//! - The matrix: {RSA-3072, ECDSA P-256} x {subject DNs, subjectAltName FQDNs as identities}
//!   x {ironsec initiates, strongSwan initiates}; each checks both sides' SAs (SPIs crossed),
//!   that strongSwan received ironsec's certificate and intermediate and verified its
//!   signature for the expected identity, and pings LAN to LAN both ways.
//! - Refusals: strongSwan presents a revoked, an expired or a wrong-identity certificate and
//!   ironsec refuses it (its log has an AUTHENTICATION_FAILED line saying why: the
//!   `IRONSEC_*` substrings below); ironsec presents a revoked certificate and strongSwan
//!   refuses it (strongSwan's `SW_*` lines below, measured strongSwan against strongSwan).
//! - The example pair conf/cert-gw-a.toml / conf/cert-gw-b.toml: two ironsecds.
//!
//! Each test has its own namespace prefix, directory and PKI copy and is torn down by its
//! guards (ironsecd and charon killed by PID, namespaces removed), also when it fails; the
//! tests are independent and may run in parallel (`--test-threads=N`). They need root, the
//! strongSwan packages and strongswan-pki of tests/install-deps.sh: `#[ignore = "needs root"]`
//! (tests/run.sh runs them) and FAIL (never skip) without them.
//!
//! Run: `cargo test -p ironsecd --test interop_certs -- --include-ignored --nocapture`

mod common;

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::pki::*;
use common::strongswan::*;
use common::*;
use serde_json::Value;

// ------------------------------------------------------------------------------------------
// What the logs must say. ironsec's wording is its own: adjust these if it changes. Each is
// looked for (case-insensitively) on the same ironsecd log line as IRONSEC_AUTH_FAILED.

/// The notify on every refusal line of ironsec's.
const IRONSEC_AUTH_FAILED: &str = "AUTHENTICATION_FAILED";
/// ironsec refused the peer's certificate: listed in its issuer's CRL.
const IRONSEC_REVOKED: &str = "revoked";
/// ironsec refused the peer's certificate: past its notAfter.
const IRONSEC_EXPIRED: &str = "expired";
/// ironsec refused the peer's identity (IDi/IDr or certificate vs. remote_id).
const IRONSEC_WRONG_ID: &str = "does not match";

/// strongSwan 5.9.8 refusing a revoked certificate (found in a loaded CRL), e.g.
/// `certificate was revoked on Dec 07 07:00:28 UTC 2026, reason: key compromise`, then
/// `no trusted ECDSA public key found for 'gw-a.example'` and N(AUTH_FAILED).
const SW_REVOKED: &str = "certificate was revoked on";
const SW_NO_TRUSTED_KEY: &str = "public key found for";

const LAN_A_HOST: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const LAN_B_HOST: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);
const PING_PATTERN: &[u8] = b"\x5a\x17\xc0\xde-IRONSEC-CERTS-PING!\xa5";

/// strongSwan's names in conf/strongswan/swanctl-certs.conf.
const SW_CONN: &str = "gw-a";
const SW_CHILD: &str = "site-a";
/// The identities as conf/strongswan/swanctl-certs.conf spells them (local, remote).
const SW_LOCAL_ID: &str = "id = \"C=CH, O=ironsec test, CN=gw-b.example\"";
const SW_REMOTE_ID: &str = "id = \"C=CH, O=ironsec test, CN=gw-a.example\"";

/// IKE_SA_INIT + IKE_AUTH (RSA-3072 IKE_AUTH messages are fragmented: a few more packets).
const UP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a refusal may take to show in ironsec's log.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(15);

// ------------------------------------------------------------------------------------------
// The lab

/// Which form of identity both sides use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ids {
    /// The certificates' subject DNs: `C=CH, O=ironsec test, CN=gw-a.example`.
    Dn,
    /// The FQDNs in their subjectAltName: `gw-a.example`.
    Fqdn,
}

impl Ids {
    fn of(self, id: Identity) -> &'static str {
        match self {
            Ids::Dn => id.dn,
            Ids::Fqdn => id.fqdn,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Initiator {
    Ironsec,
    StrongSwan,
}

/// Replaces `from` (which must be in `text`) by `to`, once.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "`{from}` not found in conf/strongswan/swanctl-certs.conf"
    );
    text.replacen(from, to, 1)
}

/// Replaces the value of every `key = ...` line of a swanctl.conf, keeping the indentation;
/// panics if the key is not there so template drift is noticed.
fn rewrite_swanctl(text: &str, replacements: &[(&str, String)]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for (key, value) in replacements {
        let mut found = false;
        for l in lines.iter_mut() {
            let t = l.trim_start();
            if t.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
            {
                let indent = &l[..l.len() - t.len()];
                *l = format!("{indent}{key} = {value}");
                found = true;
            }
        }
        assert!(found, "key `{key}` not found in swanctl-certs.conf");
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// swanctl-certs.conf with `local.id` and `remote.id` set.
fn set_ids(text: &str, local_id: &str, remote_id: &str) -> String {
    // Through placeholders: one side's new id may be the other's old one.
    let text = replace_once(text, SW_LOCAL_ID, "id = @LOCAL_ID@");
    let text = replace_once(&text, SW_REMOTE_ID, "id = @REMOTE_ID@");
    text.replace("@LOCAL_ID@", &format!("\"{local_id}\""))
        .replace("@REMOTE_ID@", &format!("\"{remote_id}\""))
}

/// Field order matters: ironsecds and charon stop before the namespaces go, the directory
/// (logs, configs and the PKI copy, kept on failure) last.
struct CertLab {
    ironsec: Option<Daemon>,
    ironsec_b: Option<Daemon>,
    sw: Option<StrongSwan>,
    /// strongSwan on gwA instead of ironsec (the strongSwan-only checks).
    sw_a: Option<StrongSwan>,
    topo: Topology,
    pki: Pki,
    dir: TempDir,
}

impl CertLab {
    /// The topology and this test's copy of the `kind` PKI; nothing runs yet.
    fn new(kind: KeyKind) -> CertLab {
        require_root();
        let prefix = unique_prefix();
        let dir = TempDir::new(&prefix);
        let pki = Pki::shared(kind).copy_to(&dir.join("pki"));
        let topo = Topology::up(&prefix);
        CertLab {
            ironsec: None,
            ironsec_b: None,
            sw: None,
            sw_a: None,
            topo,
            pki,
            dir,
        }
    }

    /// charon in gwB presenting `own` with identity `local_id`, expecting ironsec as
    /// `remote_id`.
    fn start_strongswan(&mut self, own: &Cert, local_id: &str, remote_id: &str, start: &str) {
        let sw_dir = self.dir.join("strongswan");
        fs::create_dir_all(&sw_dir).unwrap();
        let file = self.pki.install_swanctl(&sw_dir, own);
        let text = example_config("strongswan/swanctl-certs.conf");
        let text = set_ids(&text, local_id, remote_id);
        let text = rewrite_swanctl(
            &text,
            &[("certs", file), ("start_action", start.to_string())],
        );
        self.sw = Some(StrongSwan::start(&self.topo.gw_b, &sw_dir, &text));
    }

    /// charon in gwA instead of ironsecd: swanctl-certs.conf mirrored (addresses, subnets,
    /// identities), presenting `own` as `local_id`.
    fn start_strongswan_a(&mut self, own: &Cert, local_id: &str, remote_id: &str) {
        let sw_dir = self.dir.join("strongswan-a");
        fs::create_dir_all(&sw_dir).unwrap();
        let file = self.pki.install_swanctl(&sw_dir, own);
        let text = example_config("strongswan/swanctl-certs.conf");
        let text = set_ids(&text, local_id, remote_id);
        let text = rewrite_swanctl(
            &text,
            &[
                ("certs", file),
                ("local_addrs", "192.0.2.1".into()),
                ("remote_addrs", "192.0.2.2".into()),
                ("local_ts", "10.1.0.0/24".into()),
                ("remote_ts", "10.2.0.0/24".into()),
            ],
        );
        self.sw_a = Some(StrongSwan::start(&self.topo.gw_a, &sw_dir, &text));
    }

    /// ironsecd in gwA presenting `own` (its chain file) as `local_id`, expecting `remote_id`.
    fn start_ironsec(&mut self, own: &Cert, local_id: &str, remote_id: &str, start: &str) {
        let sock = self.dir.join("a.sock");
        let p = |p: &Path| toml_str(p.to_str().unwrap());
        let text = rewrite_toml_lines(
            &example_config("strongswan/ironsec-certs-gw-a.toml"),
            &[
                ("control_socket", p(&sock)),
                ("ca_dir", p(&self.pki.ca_dir)),
                ("crl_dir", p(&self.pki.crl_dir)),
                ("local_cert", p(&own.chain)),
                ("local_key", p(&own.key)),
                ("local_id", toml_str(local_id)),
                ("remote_id", toml_str(remote_id)),
                ("start_action", toml_str(start)),
            ],
        );
        let cfg = self.dir.join("ironsec-certs-gw-a.toml");
        fs::write(&cfg, format!("{text}retransmit_timeout = 0.5\n")).unwrap();
        self.ironsec = Some(Daemon::start(
            "gwA",
            &self.topo.gw_a,
            &cfg,
            &sock,
            self.dir.join("ironsecd-a.log"),
        ));
    }

    /// Both gateways as `init` says: the responder first. strongSwan presents `b`, ironsec
    /// `a`; each expects the other's certificate identity (`expect_a`, `expect_b`) in `ids`.
    fn start(&mut self, a: &Cert, b: &Cert, ids: Ids, init: Initiator) {
        let (id_a, id_b) = (ids.of(a.id), ids.of(b.id));
        let (expect_a, expect_b) = (ids.of(GW_A), ids.of(GW_B));
        match init {
            Initiator::Ironsec => {
                self.start_strongswan(b, id_b, expect_a, "none");
                self.start_ironsec(a, id_a, expect_b, "start");
            }
            Initiator::StrongSwan => {
                self.start_ironsec(a, id_a, expect_b, "none");
                self.start_strongswan(b, id_b, expect_a, "none");
            }
        }
    }

    fn a(&self) -> &Daemon {
        self.ironsec.as_ref().expect("ironsecd runs")
    }

    fn sw(&self) -> &StrongSwan {
        self.sw.as_ref().expect("strongSwan runs")
    }

    fn logs(&self) -> String {
        let d = |d: &Option<Daemon>| d.as_ref().map(Daemon::log_text).unwrap_or_default();
        let s = |s: &Option<StrongSwan>| s.as_ref().map(StrongSwan::log_text).unwrap_or_default();
        format!(
            "----- ironsecd (gwA) log -----\n{}\n----- ironsecd (gwB) log -----\n{}\n\
             ----- strongSwan (gwB) charon.log -----\n{}\n\
             ----- strongSwan (gwA) charon.log -----\n{}",
            d(&self.ironsec),
            d(&self.ironsec_b),
            s(&self.sw),
            s(&self.sw_a),
        )
    }

    /// strongSwan's `swanctl --initiate` (its outcome, not checked).
    fn sw_initiate(&self) -> String {
        let out = self
            .sw()
            .swanctl(&["--initiate", "--child", SW_CHILD, "--timeout", "10"]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    fn wait_up(&self) -> (Duration, Value, SwIke) {
        wait_both_up(&self.a().socket, self.sw(), SW_CONN, UP_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.logs()))
    }

    /// Waits for an ironsecd (gwA) log line with IRONSEC_AUTH_FAILED and `why`
    /// (case-insensitive); returns it.
    fn wait_refusal(&self, why: &str) -> String {
        let why_lc = why.to_lowercase();
        let mut found = None;
        let ok = poll_until(REFUSAL_TIMEOUT, || {
            found = self
                .a()
                .log_text()
                .lines()
                .find(|l| l.contains(IRONSEC_AUTH_FAILED) && l.to_lowercase().contains(&why_lc))
                .map(str::to_string);
            found.is_some()
        });
        assert!(
            ok,
            "ironsecd logged no line with {IRONSEC_AUTH_FAILED:?} and {why:?} within \
             {REFUSAL_TIMEOUT:?}\n{}",
            self.logs()
        );
        found.unwrap()
    }

    /// Waits for a charon log line with all of `needles`; returns it.
    fn wait_sw_line(&self, needles: &[&str]) -> String {
        let mut found = None;
        let ok = poll_until(REFUSAL_TIMEOUT, || {
            found = self
                .sw()
                .log_text()
                .lines()
                .find(|l| needles.iter().all(|n| l.contains(n)))
                .map(str::to_string);
            found.is_some()
        });
        assert!(
            ok,
            "strongSwan logged no line with {needles:?}\n{}",
            self.logs()
        );
        found.unwrap()
    }

    /// Neither side has an established IKE SA (within a few seconds: a responder whose
    /// certificate the initiator refuses had its IKE SA up until the INFORMATIONAL with
    /// AUTHENTICATION_FAILED arrived).
    fn no_established_sa(&self) {
        let mut last = (Value::Null, Vec::new());
        let ok = poll_until(Duration::from_secs(5), || {
            let st = self.a().status();
            let sas = self.sw().sas();
            let none = !tunnel_up(&st)
                && ike_of(&st).is_none_or(|i| i["state"] != "established")
                && sas.iter().all(|s| s.state != "ESTABLISHED");
            last = (st, sas);
            none
        });
        assert!(
            ok,
            "an IKE SA is up: ironsec {:#}\nstrongSwan {:#?}\n{}",
            last.0,
            last.1,
            self.logs()
        );
    }
}

impl Drop for CertLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "[test] certificate lab {} failed; files kept in {}",
                self.topo.prefix,
                self.dir.path.display()
            );
        }
    }
}

// ------------------------------------------------------------------------------------------
// Traffic

fn ping_ok(lab: &CertLab, ns: &str, dst: Ipv4Addr, count: u16) {
    let r = ping_paced(
        ns,
        dst,
        count,
        pattern_payload(PING_PATTERN, 56),
        Duration::from_millis(20),
        Duration::from_secs(2),
    );
    assert_eq!(
        r.received(),
        r.sent(),
        "ping {ns} -> {dst}: {} of {} answered\n{}",
        r.received(),
        r.sent(),
        lab.logs()
    );
}

fn ping_both_ways(lab: &CertLab, count: u16) {
    ping_ok(lab, &lab.topo.lan_a, LAN_B_HOST, count);
    ping_ok(lab, &lab.topo.lan_b, LAN_A_HOST, count);
}

// ------------------------------------------------------------------------------------------
// 1. The matrix: key type x identity form x initiator

fn authenticates(kind: KeyKind, ids: Ids, init: Initiator) {
    let mut lab = CertLab::new(kind);
    let (a, b) = (lab.pki.gw_a.clone(), lab.pki.gw_b.clone());
    lab.start(&a, &b, ids, init);
    if init == Initiator::StrongSwan {
        let out = lab.sw_initiate();
        assert!(
            out.contains("initiate completed successfully"),
            "swanctl --initiate: {out}\n{}",
            lab.logs()
        );
    }
    let (took, st, ike) = lab.wait_up();
    let ours = ike_of(&st).unwrap();
    assert_eq!(
        ours["initiator"].as_bool(),
        Some(init == Initiator::Ironsec),
        "ironsec's IKE SA: {ours}"
    );
    assert_eq!(ike.initiator, init == Initiator::StrongSwan, "{ike:#?}");

    // strongSwan got ironsec's certificate and its intermediate (local_cert holds both), built
    // the chain to the root and verified ironsec's AUTH for the identity it expects.
    let log = lab.sw().log_text();
    let has = |s: &str| log.lines().any(|l| l.contains(s));
    let ee = format!("received end entity cert \"{}\"", GW_A.dn);
    let int = format!(
        "received issuer cert \"{ORG}, CN=ironsec test intermediate CA {}\"",
        kind.name()
    );
    assert!(has(&ee), "strongSwan did not log `{ee}`\n{}", lab.logs());
    assert!(has(&int), "strongSwan did not log `{int}`\n{}", lab.logs());
    let auth = format!("authentication of '{}' with ", ids.of(GW_A));
    let line = log
        .lines()
        .find(|l| l.contains(&auth) && l.contains(" successful"))
        .unwrap_or_else(|| {
            panic!(
                "strongSwan did not log `{auth}... successful`\n{}",
                lab.logs()
            )
        });
    assert!(
        log.contains("certificate status is good"),
        "strongSwan did not check ironsec's certificate against the CRL\n{}",
        lab.logs()
    );

    ping_both_ways(&lab, 5);
    let scheme = line
        .split(" with ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or("?");
    println!(
        "{} {ids:?} ids, {init:?} initiates: up in {took:.2?}; strongSwan verified ironsec's \
         AUTH with {scheme}",
        kind.name()
    );
}

#[test]
#[ignore = "needs root"]
fn rsa_dn_ironsec_initiates() {
    authenticates(KeyKind::Rsa3072, Ids::Dn, Initiator::Ironsec);
}

#[test]
#[ignore = "needs root"]
fn rsa_dn_strongswan_initiates() {
    authenticates(KeyKind::Rsa3072, Ids::Dn, Initiator::StrongSwan);
}

#[test]
#[ignore = "needs root"]
fn rsa_fqdn_ironsec_initiates() {
    authenticates(KeyKind::Rsa3072, Ids::Fqdn, Initiator::Ironsec);
}

#[test]
#[ignore = "needs root"]
fn rsa_fqdn_strongswan_initiates() {
    authenticates(KeyKind::Rsa3072, Ids::Fqdn, Initiator::StrongSwan);
}

#[test]
#[ignore = "needs root"]
fn ecdsa_dn_ironsec_initiates() {
    authenticates(KeyKind::EcdsaP256, Ids::Dn, Initiator::Ironsec);
}

#[test]
#[ignore = "needs root"]
fn ecdsa_dn_strongswan_initiates() {
    authenticates(KeyKind::EcdsaP256, Ids::Dn, Initiator::StrongSwan);
}

#[test]
#[ignore = "needs root"]
fn ecdsa_fqdn_ironsec_initiates() {
    authenticates(KeyKind::EcdsaP256, Ids::Fqdn, Initiator::Ironsec);
}

#[test]
#[ignore = "needs root"]
fn ecdsa_fqdn_strongswan_initiates() {
    authenticates(KeyKind::EcdsaP256, Ids::Fqdn, Initiator::StrongSwan);
}

// ------------------------------------------------------------------------------------------
// 2. Refusals

/// strongSwan presents `pick(pki)`; ironsec must refuse it with a log line containing `why`.
fn ironsec_refuses(kind: KeyKind, ids: Ids, init: Initiator, pick: fn(&Pki) -> &Cert, why: &str) {
    let mut lab = CertLab::new(kind);
    let (a, b) = (lab.pki.gw_a.clone(), pick(&lab.pki).clone());
    lab.start(&a, &b, ids, init);
    if init == Initiator::StrongSwan {
        let out = lab.sw_initiate();
        assert!(
            !out.contains("initiate completed successfully"),
            "strongSwan got a tunnel with {}: {out}\n{}",
            b.name,
            lab.logs()
        );
    }
    let line = lab.wait_refusal(why);
    lab.no_established_sa();
    println!(
        "{} {ids:?} ids, {init:?} initiates, strongSwan presents {}: ironsec logs\n  {line}",
        kind.name(),
        b.name
    );
}

#[test]
#[ignore = "needs root"]
fn revoked_strongswan_cert_refused_ironsec_initiates() {
    ironsec_refuses(
        KeyKind::Rsa3072,
        Ids::Dn,
        Initiator::Ironsec,
        |p| &p.gw_b_revoked,
        IRONSEC_REVOKED,
    );
}

#[test]
#[ignore = "needs root"]
fn revoked_strongswan_cert_refused_strongswan_initiates() {
    ironsec_refuses(
        KeyKind::EcdsaP256,
        Ids::Fqdn,
        Initiator::StrongSwan,
        |p| &p.gw_b_revoked,
        IRONSEC_REVOKED,
    );
}

#[test]
#[ignore = "needs root"]
fn expired_strongswan_cert_refused_ironsec_initiates() {
    ironsec_refuses(
        KeyKind::EcdsaP256,
        Ids::Dn,
        Initiator::Ironsec,
        |p| &p.gw_b_expired,
        IRONSEC_EXPIRED,
    );
}

#[test]
#[ignore = "needs root"]
fn expired_strongswan_cert_refused_strongswan_initiates() {
    ironsec_refuses(
        KeyKind::Rsa3072,
        Ids::Fqdn,
        Initiator::StrongSwan,
        |p| &p.gw_b_expired,
        IRONSEC_EXPIRED,
    );
}

/// strongSwan initiates as mallory.example (its validly issued certificate says so): ironsec
/// expects gw-b. (With ironsec initiating, strongSwan itself refuses first: ironsec's IDr
/// names gw-b, and strongSwan has no config for that identity, "no matching peer config
/// found".)
#[test]
#[ignore = "needs root"]
fn wrong_identity_refused_dn() {
    ironsec_refuses(
        KeyKind::EcdsaP256,
        Ids::Dn,
        Initiator::StrongSwan,
        |p| &p.gw_b_wrongid,
        IRONSEC_WRONG_ID,
    );
}

#[test]
#[ignore = "needs root"]
fn wrong_identity_refused_fqdn() {
    ironsec_refuses(
        KeyKind::Rsa3072,
        Ids::Fqdn,
        Initiator::StrongSwan,
        |p| &p.gw_b_wrongid,
        IRONSEC_WRONG_ID,
    );
}

/// ironsec presents gw-a-revoked: strongSwan finds it in the intermediate's CRL and refuses.
fn strongswan_refuses_revoked(kind: KeyKind, ids: Ids, init: Initiator) {
    let mut lab = CertLab::new(kind);
    let (a, b) = (lab.pki.gw_a_revoked.clone(), lab.pki.gw_b.clone());
    lab.start(&a, &b, ids, init);
    if init == Initiator::StrongSwan {
        let out = lab.sw_initiate();
        assert!(
            !out.contains("initiate completed successfully"),
            "strongSwan accepted a revoked certificate: {out}\n{}",
            lab.logs()
        );
    }
    let revoked = lab.wait_sw_line(&[SW_REVOKED]);
    let no_key = lab.wait_sw_line(&[SW_NO_TRUSTED_KEY, &format!("'{}'", ids.of(GW_A))]);
    // ironsec hears of it: strongSwan's AUTHENTICATION_FAILED (in its IKE_AUTH response, or
    // an INFORMATIONAL after its own IKE_AUTH response when ironsec responded).
    let line = lab.wait_refusal("");
    lab.no_established_sa();
    println!(
        "{} {ids:?} ids, {init:?} initiates, ironsec presents gw-a-revoked: strongSwan logs\n  \
         {revoked}\n  {no_key}\nironsec logs\n  {line}",
        kind.name()
    );
}

#[test]
#[ignore = "needs root"]
fn revoked_ironsec_cert_refused_by_strongswan_ironsec_initiates() {
    strongswan_refuses_revoked(KeyKind::EcdsaP256, Ids::Dn, Initiator::Ironsec);
}

#[test]
#[ignore = "needs root"]
fn revoked_ironsec_cert_refused_by_strongswan_strongswan_initiates() {
    strongswan_refuses_revoked(KeyKind::Rsa3072, Ids::Fqdn, Initiator::StrongSwan);
}

// ------------------------------------------------------------------------------------------
// 3. The example pair: two ironsecds with conf/cert-gw-a.toml and conf/cert-gw-b.toml

/// `conf/NAME` with its /etc/ironsec paths pointing into this test's PKI copy.
fn cert_example(lab: &CertLab, name: &str, own: &Cert, sock: &Path) -> PathBuf {
    let p = |p: &Path| toml_str(p.to_str().unwrap());
    let text = rewrite_toml_lines(
        &example_config(name),
        &[
            ("control_socket", p(sock)),
            ("ca_dir", p(&lab.pki.ca_dir)),
            ("crl_dir", p(&lab.pki.crl_dir)),
            ("local_cert", p(&own.chain)),
            ("local_key", p(&own.key)),
        ],
    );
    let cfg = lab.dir.join(name);
    fs::write(&cfg, format!("{text}retransmit_timeout = 0.5\n")).unwrap();
    cfg
}

#[test]
#[ignore = "needs root"]
fn example_pair_cert_gw_a_and_b() {
    let mut lab = CertLab::new(KeyKind::EcdsaP256);
    let (a, b) = (lab.pki.gw_a.clone(), lab.pki.gw_b.clone());
    let (sock_a, sock_b) = (lab.dir.join("a.sock"), lab.dir.join("b.sock"));
    let cfg_b = cert_example(&lab, "cert-gw-b.toml", &b, &sock_b);
    let cfg_a = cert_example(&lab, "cert-gw-a.toml", &a, &sock_a);
    lab.ironsec_b = Some(Daemon::start(
        "gwB",
        &lab.topo.gw_b,
        &cfg_b,
        &sock_b,
        lab.dir.join("ironsecd-b.log"),
    ));
    lab.ironsec = Some(Daemon::start(
        "gwA",
        &lab.topo.gw_a,
        &cfg_a,
        &sock_a,
        lab.dir.join("ironsecd-a.log"),
    ));
    let up = poll_until(UP_TIMEOUT, || {
        [&sock_a, &sock_b]
            .iter()
            .all(|s| ctl_status(s).is_ok_and(|st| tunnel_up(&st)))
    });
    assert!(
        up,
        "cert-gw-a.toml <-> cert-gw-b.toml: not up within {UP_TIMEOUT:?}\n{}",
        lab.logs()
    );
    ping_both_ways(&lab, 5);
}

// ------------------------------------------------------------------------------------------
// 4. strongSwan against strongSwan: the PKI and swanctl-certs.conf alone, without ironsec (so
//    that a failure above can be told apart from a broken PKI or strongSwan config)

/// charon on gwA (presenting `a`) initiates to charon on gwB (presenting `b`); returns gwA's
/// `swanctl --initiate` output.
fn strongswan_pair(lab: &mut CertLab, a: &Cert, b: &Cert, ids: Ids) -> String {
    let (expect_a, expect_b) = (ids.of(GW_A), ids.of(GW_B));
    lab.start_strongswan(b, ids.of(b.id), expect_a, "none");
    lab.start_strongswan_a(a, ids.of(a.id), expect_b);
    let out =
        lab.sw_a
            .as_ref()
            .unwrap()
            .swanctl(&["--initiate", "--child", SW_CHILD, "--timeout", "10"]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn strongswan_pair_up(kind: KeyKind, ids: Ids) {
    let mut lab = CertLab::new(kind);
    let (a, b) = (lab.pki.gw_a.clone(), lab.pki.gw_b.clone());
    let out = strongswan_pair(&mut lab, &a, &b, ids);
    assert!(
        out.contains("initiate completed successfully"),
        "swanctl --initiate: {out}\n{}",
        lab.logs()
    );
    for (side, sw) in [("gwA", lab.sw_a.as_ref().unwrap()), ("gwB", lab.sw())] {
        let log = sw.log_text();
        assert!(
            log.contains("certificate status is good"),
            "strongSwan on {side} checked no CRL\n{}",
            lab.logs()
        );
    }
    ping_both_ways(&lab, 5);
}

#[test]
#[ignore = "needs root"]
fn strongswan_pair_rsa_dn() {
    strongswan_pair_up(KeyKind::Rsa3072, Ids::Dn);
}

#[test]
#[ignore = "needs root"]
fn strongswan_pair_ecdsa_fqdn() {
    strongswan_pair_up(KeyKind::EcdsaP256, Ids::Fqdn);
}

#[test]
#[ignore = "needs root"]
fn strongswan_pair_refuses_revoked() {
    let mut lab = CertLab::new(KeyKind::EcdsaP256);
    let (a, b) = (lab.pki.gw_a.clone(), lab.pki.gw_b_revoked.clone());
    let out = strongswan_pair(&mut lab, &a, &b, Ids::Dn);
    assert!(
        !out.contains("initiate completed successfully"),
        "strongSwan accepted a revoked certificate: {out}\n{}",
        lab.logs()
    );
    let log = lab.sw_a.as_ref().unwrap().log_text();
    assert!(log.contains(SW_REVOKED), "{}", lab.logs());
}
