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
//! - Operating them, on the example pair: `ironsecctl certs` (text and --json) and the
//!   certificate expiry metric; gw-a's certificate renewed in place and taken by `ironsecctl
//!   reload` with the SAs untouched, gw-b revoking the old one and a new negotiation coming up
//!   (so with the new one); a reload whose local_key no longer matches is refused.
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

/// The shared rewrite ([`common::rewrite_swanctl_template`]) for this file's template.
fn rewrite_swanctl(text: &str, replacements: &[(&str, String)]) -> String {
    common::rewrite_swanctl_template(text, "conf/strongswan/swanctl-certs.conf", replacements)
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
    /// A certificate ironsec names before its own in `local_certs` (instead of
    /// local_cert/local_key): the peer's CERTREQ must make ironsec pass it over.
    decoy_first: Option<Cert>,
    /// strongswan.conf template for gwB's charon instead of conf/strongswan/strongswan.conf.
    sw_template: Option<PathBuf>,
    /// strongSwan's `send_cert` (default: the template's `ifasked`).
    sw_send_cert: Option<&'static str>,
    /// ironsec's `remote_cert`: the peer certificate it holds (pinned).
    pinned_peer: Option<PathBuf>,
    /// ironsec's `rsa_pss = true`.
    ironsec_rsa_pss: bool,
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
            decoy_first: None,
            sw_template: None,
            sw_send_cert: None,
            pinned_peer: None,
            ironsec_rsa_pss: false,
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
        let mut set = vec![("certs", file), ("start_action", start.to_string())];
        if let Some(v) = self.sw_send_cert {
            set.push(("send_cert", v.to_string()));
        }
        let text = rewrite_swanctl(&text, &set);
        let opts = SwOptions {
            template: self.sw_template.as_deref(),
            ..SwOptions::default()
        };
        self.sw = Some(StrongSwan::start_with(
            &self.topo.gw_b,
            &sw_dir,
            &text,
            opts,
        ));
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
        let text = match &self.decoy_first {
            None => text,
            Some(decoy) => {
                let kept: Vec<&str> = text
                    .lines()
                    .filter(|l| !l.starts_with("local_cert =") && !l.starts_with("local_key ="))
                    .collect();
                format!(
                    "{}\nlocal_certs = [{{ cert = {}, key = {} }}, {{ cert = {}, key = {} }}]\n",
                    kept.join("\n"),
                    p(&decoy.chain),
                    p(&decoy.key),
                    p(&own.chain),
                    p(&own.key)
                )
            }
        };
        let text = match &self.pinned_peer {
            None => text,
            Some(cert) => format!("{text}remote_cert = {}\n", p(cert)),
        };
        let text = if self.ironsec_rsa_pss {
            format!("{text}rsa_pss = true\n")
        } else {
            text
        };
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

    /// [`CertLab::start`], then strongSwan's `swanctl --initiate` when it initiates (which
    /// must succeed), then [`CertLab::wait_up`].
    fn connect(
        &mut self,
        a: &Cert,
        b: &Cert,
        ids: Ids,
        init: Initiator,
    ) -> (Duration, Value, SwIke) {
        self.start(a, b, ids, init);
        if init == Initiator::StrongSwan {
            let out = self.sw_initiate();
            assert!(
                out.contains("initiate completed successfully"),
                "swanctl --initiate: {out}\n{}",
                self.logs()
            );
        }
        self.wait_up()
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
    let (took, st, ike) = lab.connect(&a, &b, ids, init);
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

/// ironsec holds two certificates for gw-a (`local_certs`): first one from the RSA PKI, which
/// strongSwan does not trust, then one from the ECDSA PKI, which it does. strongSwan's CERTREQ
/// names the ECDSA CAs, so ironsec presents and signs with the second: the tunnel comes up and
/// strongSwan logs the ECDSA intermediate. (Configured alone, the RSA one is refused: the
/// refusal tests above.)
fn certreq_chooses_among_local_certs(init: Initiator) {
    let mut lab = CertLab::new(KeyKind::EcdsaP256);
    let rsa = Pki::shared(KeyKind::Rsa3072).copy_to(&lab.dir.join("pki-rsa"));
    lab.decoy_first = Some(rsa.gw_a.clone());
    let (a, b) = (lab.pki.gw_a.clone(), lab.pki.gw_b.clone());
    lab.connect(&a, &b, Ids::Fqdn, init);
    let log = lab.sw().log_text();
    let int = format!("received issuer cert \"{ORG}, CN=ironsec test intermediate CA ecdsa\"");
    assert!(
        log.lines().any(|l| l.contains(&int)),
        "strongSwan did not log `{int}`\n{}",
        lab.logs()
    );
    assert!(
        !log.contains("intermediate CA rsa"),
        "ironsec sent the RSA chain\n{}",
        lab.logs()
    );
    ping_both_ways(&lab, 3);
}

#[test]
#[ignore = "needs root"]
fn certreq_chooses_among_local_certs_ironsec_initiates() {
    certreq_chooses_among_local_certs(Initiator::Ironsec);
}

#[test]
#[ignore = "needs root"]
fn certreq_chooses_among_local_certs_strongswan_initiates() {
    certreq_chooses_among_local_certs(Initiator::StrongSwan);
}

/// strongSwan signs its AUTH with RSASSA-PSS (`charon.rsa_pss = yes`, RFC 7427 with the PSS
/// AlgorithmIdentifier and its parameters): ironsec verifies it, each side initiating.
fn strongswan_signs_with_rsa_pss(init: Initiator) {
    let mut lab = CertLab::new(KeyKind::Rsa3072);
    let conf = example_config("strongswan/strongswan.conf");
    assert!(
        conf.contains("\ncharon {\n"),
        "conf/strongswan/strongswan.conf changed"
    );
    let template = lab.dir.join("strongswan-pss.conf");
    fs::write(
        &template,
        conf.replacen("\ncharon {\n", "\ncharon {\n    rsa_pss = yes\n", 1),
    )
    .unwrap();
    lab.sw_template = Some(template);
    let (a, b) = (lab.pki.gw_a.clone(), lab.pki.gw_b.clone());
    lab.connect(&a, &b, Ids::Dn, init);
    let mine = format!("authentication of '{}' (myself) with RSA_EMSA_PSS", GW_B.dn);
    assert!(
        lab.sw().log_text().lines().any(|l| l.contains(&mine)),
        "strongSwan did not sign with PSS (`{mine}`)\n{}",
        lab.logs()
    );
    ping_both_ways(&lab, 3);
}

/// ironsec with `rsa_pss = true` signs its AUTH with RSASSA-PSS: strongSwan verifies it.
#[test]
#[ignore = "needs root"]
fn ironsec_signs_with_rsa_pss() {
    let mut lab = CertLab::new(KeyKind::Rsa3072);
    lab.ironsec_rsa_pss = true;
    let (a, b) = (lab.pki.gw_a.clone(), lab.pki.gw_b.clone());
    lab.connect(&a, &b, Ids::Dn, Initiator::Ironsec);
    let theirs = format!("authentication of '{}' with RSA_EMSA_PSS", GW_A.dn);
    let log = lab.sw().log_text();
    assert!(
        log.lines()
            .any(|l| l.contains(&theirs) && l.contains("successful")),
        "strongSwan did not verify a PSS signature (`{theirs}... successful`)\n{}",
        lab.logs()
    );
    ping_both_ways(&lab, 3);
}

#[test]
#[ignore = "needs root"]
fn strongswan_signs_with_rsa_pss_ironsec_initiates() {
    strongswan_signs_with_rsa_pss(Initiator::Ironsec);
}

#[test]
#[ignore = "needs root"]
fn strongswan_signs_with_rsa_pss_strongswan_initiates() {
    strongswan_signs_with_rsa_pss(Initiator::StrongSwan);
}

/// strongSwan sends no certificate (`send_cert = never`); ironsec holds it (`remote_cert`)
/// and authenticates strongSwan with it, each side initiating.
fn pinned_strongswan_certificate(init: Initiator) {
    let mut lab = CertLab::new(KeyKind::EcdsaP256);
    lab.sw_send_cert = Some("never");
    lab.pinned_peer = Some(lab.pki.gw_b.cert.clone());
    let (a, b) = (lab.pki.gw_a.clone(), lab.pki.gw_b.clone());
    lab.connect(&a, &b, Ids::Fqdn, init);
    let log = lab.sw().log_text();
    assert!(
        !log.contains("sending end entity cert"),
        "strongSwan sent its certificate\n{}",
        lab.logs()
    );
    ping_both_ways(&lab, 3);
}

#[test]
#[ignore = "needs root"]
fn pinned_strongswan_certificate_ironsec_initiates() {
    pinned_strongswan_certificate(Initiator::Ironsec);
}

#[test]
#[ignore = "needs root"]
fn pinned_strongswan_certificate_strongswan_initiates() {
    pinned_strongswan_certificate(Initiator::StrongSwan);
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

/// Starts conf/cert-gw-b.toml and conf/cert-gw-a.toml (ironsecd on both gateways, the lab's
/// PKI) and waits until both have the tunnel up; returns their control sockets (A, B).
fn start_example_pair(lab: &mut CertLab) -> (PathBuf, PathBuf) {
    let (a, b) = (lab.pki.gw_a.clone(), lab.pki.gw_b.clone());
    let (sock_a, sock_b) = (lab.dir.join("a.sock"), lab.dir.join("b.sock"));
    let cfg_b = cert_example(lab, "cert-gw-b.toml", &b, &sock_b);
    let cfg_a = cert_example(lab, "cert-gw-a.toml", &a, &sock_a);
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
    (sock_a, sock_b)
}

#[test]
#[ignore = "needs root"]
fn example_pair_cert_gw_a_and_b() {
    let mut lab = CertLab::new(KeyKind::EcdsaP256);
    start_example_pair(&mut lab);
    ping_both_ways(&lab, 5);
}

// ------------------------------------------------------------------------------------------
// 3b. Operating certificates: `ironsecctl certs`, the expiry metric, renewal by reload

/// `ironsecctl ARGS` that must succeed; its stdout.
fn ctl_ok(sock: &Path, args: &[&str]) -> String {
    let o = ironsecctl(sock, args);
    assert!(
        o.status.success(),
        "ironsecctl {args:?}: {}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ctl_json(sock: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend(args);
    let out = ctl_ok(sock, &all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("ironsecctl {args:?}: {e}: {out}"))
}

/// The one certificate of `role` in an `ironsecctl certs --json` document.
fn cert_of<'a>(certs: &'a Value, role: &str) -> &'a Value {
    let v: Vec<&Value> = certs["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["role"] == role)
        .collect();
    assert_eq!(v.len(), 1, "{role}: {certs:#}");
    v[0]
}

/// `openssl x509 -noout -fingerprint -sha256` of a PEM file: `AB:CD:...`.
fn openssl_fingerprint(pem: &Path) -> String {
    let o = run_timeout(
        std::process::Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(pem),
        Duration::from_secs(10),
    );
    assert!(o.status.success(), "openssl: {o:?}");
    let out = String::from_utf8_lossy(&o.stdout);
    out.trim().split_once('=').unwrap().1.to_string()
}

/// The SAs of the first tunnel: IKE SPIs (i, r) and the CHILD_SA's (out, in).
fn spis(sock: &Path) -> [String; 4] {
    let st = ctl_status(sock).unwrap();
    let t = &st["connections"][0]["tunnels"][0];
    [
        t["ike"]["spi_i"].to_string(),
        t["ike"]["spi_r"].to_string(),
        t["outbound"]["spi"].to_string(),
        t["inbound"]["spi"].to_string(),
    ]
}

/// `GET /metrics` on the default endpoint (127.0.0.1:14500) in namespace `ns`.
fn scrape(ns: &str) -> String {
    in_netns(ns, || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect_timeout(
            &"127.0.0.1:14500".parse().unwrap(),
            Duration::from_secs(2),
        )?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok::<_, std::io::Error>(out)
    })
    .unwrap_or_else(|e| panic!("scrape in {ns}: {e}"))
}

const EXPIRY: &str = "ironsec_certificate_expiry_timestamp_seconds";

/// The expiry series of A's local certificate for site-b, as the daemon must export it.
fn local_expiry_line(local: &Value) -> String {
    format!(
        "{EXPIRY}{{subject=\"{}\",serial=\"{}\",role=\"local\",connection=\"site-b\"}} {}",
        local["subject"].as_str().unwrap(),
        local["serial"].as_str().unwrap(),
        local["not_after_unix"]
    )
}

/// Two ironsecds with the example pair's configs: `ironsecctl certs` lists what they loaded
/// and the metric exports it; gw-a's certificate is renewed in place (same key and identity,
/// another serial and notAfter) and `ironsecctl reload` takes it without touching the SAs;
/// gw-b then revokes the old certificate, and a new negotiation comes up (so with the new
/// one); a reload whose key no longer matches the certificate is refused and changes nothing.
#[test]
#[ignore = "needs root"]
fn certs_listing_metrics_and_renewal_by_reload() {
    let mut lab = CertLab::new(KeyKind::EcdsaP256);
    let (sock_a, sock_b) = start_example_pair(&mut lab);
    let gw_a = lab.pki.gw_a.clone();
    // The private keys' base64 lines: never in a log, a status, a listing or a metric.
    let key_lines: Vec<String> = [&gw_a.key, &lab.pki.gw_b.key]
        .iter()
        .flat_map(|k| {
            fs::read_to_string(k)
                .unwrap()
                .lines()
                .filter(|l| !l.starts_with("-----") && l.len() > 16)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!key_lines.is_empty());

    // --- What A loaded: the root (ca_dir), its certificate and the intermediate, two CRLs.
    let certs = ctl_json(&sock_a, &["certs"]);
    let roles: Vec<&str> = certs["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["anchor", "local", "intermediate"], "{certs:#}");
    let local = cert_of(&certs, "local").clone();
    assert_eq!(local["subject"], GW_A.dn, "{certs:#}");
    assert_eq!(local["connections"], serde_json::json!(["site-b"]));
    assert_eq!(local["file"], gw_a.chain.to_str().unwrap());
    assert_eq!(local["san"], serde_json::json!(["dns:gw-a.example"]));
    // pki's default lifetime: 1095 days from now.
    let days = local["days_left"].as_i64().unwrap();
    assert!((1093..=1095).contains(&days), "days_left {days}");
    assert_eq!(local["fingerprint_sha256"], openssl_fingerprint(&gw_a.cert));
    let int = cert_of(&certs, "intermediate");
    assert_eq!(int["subject"], local["issuer"]);
    assert_eq!(int["connections"], serde_json::json!(["site-b"]));
    let anchor = cert_of(&certs, "anchor");
    assert_eq!(anchor["issuer"], int["issuer"]);
    assert_eq!(anchor["connections"], serde_json::json!(["site-b"]));
    let crls = certs["crls"].as_array().unwrap();
    assert_eq!(crls.len(), 2, "{certs:#}");
    let int_crl = crls
        .iter()
        .find(|c| c["issuer"] == int["subject"])
        .unwrap_or_else(|| panic!("{certs:#}"));
    assert_eq!(int_crl["revoked"], 2);
    assert!(int_crl["next_update_days_left"].as_i64().unwrap() >= 13);
    let text = ctl_ok(&sock_a, &["certs"]);
    eprintln!("----- ironsecctl certs (gwA) -----\n{text}");
    eprintln!(
        "----- ironsecctl --json certs (gwA), the local certificate and the first CRL -----\n{:#}\n{:#}",
        local, crls[0]
    );
    for want in [
        &format!("local certificate {}", gw_a.chain.display()),
        &format!("  subject:     {}", GW_A.dn),
        &format!("  serial:      {}", local["serial"].as_str().unwrap()),
        "  used by:     site-b",
        "  revoked:     2 certificate(s)",
    ] {
        assert!(text.contains(want), "no {want:?} in\n{text}");
    }
    let conns = ctl_ok(&sock_a, &["list-conns"]);
    eprintln!("----- ironsecctl list-conns (gwA) -----\n{conns}");
    assert!(conns.contains("site-b: IKEv2, pubkey auth,"), "{conns}");
    assert!(!conns.contains("BEGIN") && !text.contains("BEGIN"));

    // --- The metric: notAfter of the local certificate, for site-b.
    let m = scrape(&lab.topo.gw_a);
    eprintln!(
        "----- certificate metrics (gwA) -----\n{}",
        m.lines()
            .filter(|l| l.contains("ironsec_certificate_") || l.contains("ironsec_crl_"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let want = local_expiry_line(&local);
    assert!(m.lines().any(|l| l == want), "no {want}\n{m}");
    assert!(
        m.lines()
            .any(|l| l.starts_with(&format!("{EXPIRY}{{")) && l.contains("role=\"anchor\",file=")),
        "{m}"
    );
    assert!(
        m.contains("ironsec_crl_next_update_timestamp_seconds{issuer="),
        "{m}"
    );

    // --- Renewal: a new certificate for the same key over the same file, then reload.
    let before_a = spis(&sock_a);
    let before_b = spis(&sock_b);
    let old_cert = lab.pki.dir.join("gw-a.old.pem");
    fs::copy(&gw_a.cert, &old_cert).unwrap();
    // A second apart at least, so that notBefore differs too.
    std::thread::sleep(Duration::from_millis(1100));
    let renewed = lab.pki.renew(&gw_a, 400);
    let out = ctl_ok(&sock_a, &["reload"]);
    assert!(out.contains("reloaded"), "{out}");
    let certs2 = ctl_json(&sock_a, &["certs"]);
    let local2 = cert_of(&certs2, "local").clone();
    assert_ne!(local2["serial"], local["serial"], "{certs2:#}");
    assert_eq!(local2["subject"], local["subject"]);
    assert_eq!(local2["fingerprint_sha256"], openssl_fingerprint(&renewed));
    let days2 = local2["days_left"].as_i64().unwrap();
    assert!((398..=400).contains(&days2), "days_left {days2}");
    let text2 = ctl_ok(&sock_a, &["certs"]);
    eprintln!("----- ironsecctl certs (gwA) after the renewal -----\n{text2}");
    assert!(
        text2.contains(local2["serial"].as_str().unwrap()),
        "{text2}"
    );
    let m = scrape(&lab.topo.gw_a);
    assert!(m.lines().any(|l| l == local_expiry_line(&local2)), "{m}");
    assert!(
        !m.contains(&local_expiry_line(&local)),
        "old series still there\n{m}"
    );
    // The SAs did not notice.
    assert_eq!(
        spis(&sock_a),
        before_a,
        "A's SAs changed on reload\n{}",
        lab.logs()
    );
    assert_eq!(spis(&sock_b), before_b, "B's SAs changed\n{}", lab.logs());

    // --- B revokes the old certificate (reload: the CRL is reread, the SAs stay) ...
    lab.pki.revoke_also(&[&old_cert]);
    ctl_ok(&sock_b, &["reload"]);
    let b_crl = ctl_json(&sock_b, &["certs"]);
    assert!(
        b_crl["crls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["revoked"] == 3),
        "{b_crl:#}"
    );
    assert_eq!(
        spis(&sock_b),
        before_b,
        "B's SAs changed on reload\n{}",
        lab.logs()
    );
    assert_eq!(spis(&sock_a), before_a);
    // ... so a new negotiation can only succeed with the renewed certificate.
    ctl_ok(&sock_a, &["terminate", "site-b"]);
    ctl_ok(&sock_a, &["initiate", "site-b", "--timeout", "20"]);
    let up = poll_until(UP_TIMEOUT, || {
        [&sock_a, &sock_b]
            .iter()
            .all(|s| ctl_status(s).is_ok_and(|st| tunnel_up(&st)))
    });
    assert!(up, "not up again after the renewal\n{}", lab.logs());
    let after_a = spis(&sock_a);
    assert_ne!(after_a[..2], before_a[..2], "no new IKE SA\n{}", lab.logs());
    assert!(
        !lab.logs().contains(IRONSEC_AUTH_FAILED),
        "an authentication failed\n{}",
        lab.logs()
    );
    ping_both_ways(&lab, 3);

    // --- A bad reload: local_key no longer the key of local_cert. Refused; nothing changes.
    let renewed_a = spis(&sock_a);
    let renewed_b = spis(&sock_b);
    fs::copy(&lab.pki.gw_b.key, &gw_a.key).unwrap();
    let o = ironsecctl(&sock_a, &["reload"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a mismatched key was accepted: {err}");
    assert!(err.contains("reload refused"), "{err}");
    assert!(err.contains("is not the key of"), "{err}");
    let certs3 = ctl_json(&sock_a, &["certs"]);
    assert_eq!(cert_of(&certs3, "local")["serial"], local2["serial"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(spis(&sock_a), renewed_a, "{}", lab.logs());
    assert_eq!(spis(&sock_b), renewed_b, "{}", lab.logs());
    assert!(ctl_status(&sock_a).is_ok_and(|st| tunnel_up(&st)));

    // --- No key material anywhere an operator or a scraper looks.
    let mut seen = lab.logs();
    for sock in [&sock_a, &sock_b] {
        for args in [&["status"][..], &["list-conns"], &["certs"]] {
            seen.push_str(&ctl_json(sock, args).to_string());
            seen.push_str(&ctl_ok(sock, args));
        }
    }
    seen.push_str(&scrape(&lab.topo.gw_a));
    for l in &key_lines {
        assert!(
            !seen.contains(l.as_str()),
            "private key material shown: {l}"
        );
    }
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
