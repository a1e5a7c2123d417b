//! Secrets stay secret (issue 8): no key ironsec holds ever shows up in what it tells the outside
//! world — its logs (at `trace`, the most verbose level), `ironsecctl` output (text and JSON),
//! the Prometheus metrics, `ironsecd check` and the errors of a refused config or reload — and
//! its control socket is root's only.
//!
//! 1. ironsec <-> strongSwan (PSK): IKE SA + CHILD_SA up, pings through, CHILD_SA and IKE SA
//!    rekeys (strongSwan's, by `swanctl --rekey`, and ironsec's own, by short lifetimes) under
//!    pings, then `ironsecctl terminate`. The negotiated keys are taken from strongSwan's side:
//!    charon logs key material at level 4 (`ike = 4`, `chd = 4` in its filelog), as
//!    `Sk_d secret => 32 bytes @ 0x...` followed by a hex dump, and `encryption initiator key
//!    => 20 bytes @ ...` for each CHILD_SA. Every key found there (SK_d, SK_ei/er, SK_pi/pr of
//!    every IKE SA, the CHILD_SA keys of every CHILD_SA, incl. those of the rekeys; SK_ai/ar
//!    and integrity keys do not exist with the AEAD suites ironsec negotiates) plus the PSK
//!    must not appear in ironsecd's output (see [`Matcher`] for the forms searched).
//! 2. ironsec <-> ironsec with static keys from a keys file the test wrote: the same checks
//!    for both daemons, plus a reload refused for a damaged keys file and `ironsecd check` on
//!    damaged keys files (the parse errors must not quote the key).
//! 3. The control socket is a socket of mode 0600 (srw-------) owned by root, in a directory
//!    the daemon creates 0700, also when the daemon is started with umask 000. That a
//!    `psk_file` (or `keys_file`) that group or others may read is refused is covered by
//!    tests/conf_examples.rs (`bad_configs_are_refused_with_file_key_and_reason`:
//!    "group-readable psk_file", "world-readable psk_file") and the config unit tests
//!    (crates/ironsecd/src/config/tests.rs, keys file 0640); here only the error text such a
//!    refusal prints is searched for the PSK.
//!
//! The matcher itself is checked first (keys planted in strings in every form are found, an
//! unrelated string is clean), and each integration test plants one of its real keys in a copy
//! of a real log to show the search would have caught it, and asserts it parsed enough keys
//! that it cannot pass vacuously.
//!
//! Needs root, the namespaces of netns-scripts/topology.sh and the strongSwan packages of
//! tests/install-deps.sh (all but the matcher's own test are `#[ignore = "needs root"]`, run by
//! tests/run.sh); FAILS (never skips) without them. Everything runs in namespaces the
//! test creates; guards kill what it started (by PID) and remove the namespaces on failure too.
//!
//! Run: `cargo test -p ironsecd --test secrets -- --include-ignored --test-threads=1 --nocapture`

mod common;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::strongswan::*;
use common::*;
use serde_json::Value;

const LAN_A_HOST: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const LAN_B_HOST: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);
const PING_PATTERN: &[u8] = b"\x5a\x17\xc0\xde-IRONSEC-SECRETS-PING!\xa5";
const METRICS_PORT: u16 = 9814;

/// strongSwan's names in conf/strongswan/swanctl.conf: the connection and its CHILD_SA.
const SW_CONN: &str = "gw-a";
const SW_CHILD: &str = "site-a";

// ------------------------------------------------------------------------------------------
// The matcher

/// One secret and where it came from (for the failure message).
#[derive(Clone, Debug)]
struct Secret {
    name: String,
    bytes: Vec<u8>,
}

/// Length of the windows searched for partial dumps: no 8 consecutive bytes of a key may show.
const WINDOW: usize = 8;

/// Searches text for secrets in every form a program is likely to print bytes in:
/// - the whole key as hex, lowercase and uppercase (in fact any case);
/// - the whole key as base64, standard and URL-safe alphabets, with and without padding;
/// - any 8-byte window of a key as hex in any case, also with separators between the bytes
///   (`8a:7e`, `8A 7E`, `8a-7e`, `0x8a, 0x7e`, `\x8a\x7e`) and across lines of a dump;
/// - any 8-byte window as decimal numbers (Rust's `{:?}` of a byte slice, `[138, 126, ...]`,
///   or serde_json's `[138,126,...]`);
/// - any 11-byte window as base64 (both alphabets, any alignment);
/// - any 8-byte window as raw bytes.
struct Matcher {
    secrets: Vec<Secret>,
    /// 16 lowercase hex digits -> (secret, byte offset).
    hex: HashMap<String, (usize, usize)>,
    /// 8 bytes -> (secret, byte offset): raw and decimal forms.
    bytes: HashMap<[u8; WINDOW], (usize, usize)>,
    /// 12 base64 characters -> secret.
    b64: HashMap<String, usize>,
}

#[derive(Debug)]
struct Leak {
    secret: String,
    form: String,
    source: String,
    context: String,
}

const B64_STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

fn upper_hex(b: &[u8]) -> String {
    hex(b).to_ascii_uppercase()
}

/// The whole-key forms searched with a plain substring search: (form, needle, any case).
fn whole_forms(key: &[u8]) -> Vec<(&'static str, String, bool)> {
    vec![
        ("hex (lowercase)", hex(key), true),
        ("hex (uppercase)", upper_hex(key), false),
        ("base64", base64(key, B64_STD, true), false),
        ("base64 without padding", base64(key, B64_STD, false), false),
        ("base64url", base64(key, B64_URL, true), false),
        (
            "base64url without padding",
            base64(key, B64_URL, false),
            false,
        ),
    ]
}

/// `text` lowercased, with the separators and prefixes a hex dump puts between bytes removed.
fn normalize_hex(text: &str) -> String {
    text.to_ascii_lowercase()
        .replace("\\x", "")
        .replace("0x", "")
        .chars()
        .filter(|c| !matches!(c, ' ' | '\t' | ':' | '-' | ',' | '_' | '\n' | '\r' | '.'))
        .collect()
}

/// Sequences of decimal numbers separated only by commas, semicolons and blanks.
fn decimal_runs(text: &str) -> Vec<Vec<u32>> {
    let mut runs = Vec::new();
    let mut cur: Vec<u32> = Vec::new();
    let mut num: Option<u32> = None;
    let mut gap = String::new();
    for c in text.chars().chain(std::iter::once('\0')) {
        if let Some(d) = c.to_digit(10) {
            if num.is_none() {
                let joins = !cur.is_empty()
                    && !gap.is_empty()
                    && gap.len() <= 3
                    && gap.chars().all(|g| matches!(g, ',' | ';' | ' ' | '\t'));
                if !joins && !cur.is_empty() {
                    runs.push(std::mem::take(&mut cur));
                }
            }
            num = Some(num.unwrap_or(0).saturating_mul(10).saturating_add(d));
            gap.clear();
        } else {
            if let Some(n) = num.take() {
                cur.push(n);
            }
            gap.push(c);
        }
    }
    if !cur.is_empty() {
        runs.push(cur);
    }
    runs
}

/// The line of `text` around byte offset `at`, shortened.
fn context_at(text: &str, at: usize) -> String {
    let at = at.min(text.len());
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let line = &text[start..end];
    if line.len() > 300 {
        let mut cut = 300;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &line[..cut])
    } else {
        line.to_string()
    }
}

impl Matcher {
    fn new(secrets: Vec<Secret>) -> Matcher {
        let mut hexw = HashMap::new();
        let mut bytes = HashMap::new();
        let mut b64 = HashMap::new();
        for (i, s) in secrets.iter().enumerate() {
            assert!(
                s.bytes.len() >= WINDOW,
                "secret {} is shorter than {WINDOW} bytes",
                s.name
            );
            for (off, w) in s.bytes.windows(WINDOW).enumerate() {
                hexw.insert(hex(w), (i, off));
                bytes.insert(<[u8; WINDOW]>::try_from(w).unwrap(), (i, off));
            }
            // Every base64 encoding of a stretch of >= 11 key bytes contains one of these:
            // for each alignment, the 4-character groups of whole 3-byte groups, 3 at a time.
            for off in 0..3 {
                let tail = &s.bytes[off..];
                let whole = tail.len() / 3 * 3;
                for alphabet in [B64_STD, B64_URL] {
                    let enc = base64(&tail[..whole], alphabet, false);
                    let mut g = 0;
                    while g + 12 <= enc.len() {
                        b64.insert(enc[g..g + 12].to_string(), i);
                        g += 4;
                    }
                }
            }
        }
        Matcher {
            secrets,
            hex: hexw,
            bytes,
            b64,
        }
    }

    fn leak(&self, i: usize, form: impl Into<String>, source: &str, context: String) -> Leak {
        Leak {
            secret: self.secrets[i].name.clone(),
            form: form.into(),
            source: source.to_string(),
            context,
        }
    }

    /// Every secret found in `raw` (the bytes of source `source`), in every form.
    fn scan(&self, source: &str, raw: &[u8]) -> Vec<Leak> {
        let mut leaks = Vec::new();
        let text = String::from_utf8_lossy(raw);
        let lower = text.to_ascii_lowercase();
        // Whole keys.
        for (i, s) in self.secrets.iter().enumerate() {
            for (form, needle, any_case) in whole_forms(&s.bytes) {
                let hay: &str = if any_case { &lower } else { &text };
                if let Some(at) = hay.find(&needle) {
                    leaks.push(self.leak(i, form, source, context_at(&text, at)));
                }
            }
        }
        // 8-byte windows as hex, separators removed, any case.
        let norm = normalize_hex(&text);
        let nb = norm.as_bytes();
        let mut seen = HashSet::new();
        let mut p = 0;
        while p < nb.len() {
            if !nb[p].is_ascii_hexdigit() {
                p += 1;
                continue;
            }
            let start = p;
            while p < nb.len() && nb[p].is_ascii_hexdigit() {
                p += 1;
            }
            for q in start..p.saturating_sub(2 * WINDOW - 1) {
                if let Some(&(i, off)) = self.hex.get(&norm[q..q + 2 * WINDOW]) {
                    if seen.insert(("hex", i)) {
                        let ctx = norm[start..p.min(start + 200)].to_string();
                        leaks.push(self.leak(
                            i,
                            format!("hex window (bytes {off}..{})", off + WINDOW),
                            source,
                            format!("(separators removed) {ctx}"),
                        ));
                    }
                }
            }
        }
        // 8-byte windows as decimal numbers.
        for run in decimal_runs(&text) {
            for w in run.windows(WINDOW) {
                if w.iter().any(|&n| n > 255) {
                    continue;
                }
                let k: [u8; WINDOW] = std::array::from_fn(|j| w[j] as u8);
                if let Some(&(i, off)) = self.bytes.get(&k) {
                    if seen.insert(("decimal", i)) {
                        leaks.push(self.leak(
                            i,
                            format!("decimal window (bytes {off}..{})", off + WINDOW),
                            source,
                            format!("{w:?}"),
                        ));
                    }
                }
            }
        }
        // 8-byte windows as raw bytes.
        for (at, w) in raw.windows(WINDOW).enumerate() {
            if let Some(&(i, off)) = self.bytes.get(<&[u8; WINDOW]>::try_from(w).unwrap()) {
                if seen.insert(("raw", i)) {
                    leaks.push(self.leak(
                        i,
                        format!("raw bytes (bytes {off}..{})", off + WINDOW),
                        source,
                        format!("at byte {at}"),
                    ));
                }
            }
        }
        // 11-byte windows as base64.
        let tb = text.as_bytes();
        let is_b64 = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'-' | b'_');
        let mut p = 0;
        while p < tb.len() {
            if !is_b64(tb[p]) {
                p += 1;
                continue;
            }
            let start = p;
            while p < tb.len() && is_b64(tb[p]) {
                p += 1;
            }
            for q in start..p.saturating_sub(11) {
                if let Some(&i) = self.b64.get(&text[q..q + 12]) {
                    if seen.insert(("base64", i)) {
                        leaks.push(self.leak(i, "base64 window", source, context_at(&text, q)));
                    }
                }
            }
        }
        leaks
    }
}

/// What a test collected from ironsecd: (source name, bytes).
#[derive(Default)]
struct Collected {
    sources: Vec<(String, Vec<u8>)>,
}

impl Collected {
    fn add(&mut self, name: impl Into<String>, data: impl Into<Vec<u8>>) {
        self.sources.push((name.into(), data.into()));
    }

    /// An ironsecctl/ironsecd run: its stdout and stderr as two sources.
    fn add_output(&mut self, name: &str, out: &Output) {
        self.add(format!("{name} (stdout)"), out.stdout.clone());
        self.add(format!("{name} (stderr)"), out.stderr.clone());
    }

    fn total_bytes(&self) -> usize {
        self.sources.iter().map(|(_, d)| d.len()).sum()
    }

    /// Panics listing every secret found in any source.
    fn assert_clean(&self, m: &Matcher) {
        let mut leaks = Vec::new();
        for (name, data) in &self.sources {
            leaks.extend(m.scan(name, data));
        }
        assert!(
            leaks.is_empty(),
            "{} secret(s) found in ironsecd's output:\n{}",
            leaks.len(),
            leaks
                .iter()
                .map(|l| format!(
                    "  {} as {} in {}: {}",
                    l.secret, l.form, l.source, l.context
                ))
                .collect::<Vec<_>>()
                .join("\n")
        );
        println!(
            "  searched {} sources ({} bytes) for {} secrets: none found",
            self.sources.len(),
            self.total_bytes(),
            m.secrets.len()
        );
    }
}

/// "N lines (D DEBUG, T TRACE)" for a daemon log.
fn log_levels(log: &[u8]) -> String {
    let text = String::from_utf8_lossy(log);
    let n = |lvl: &str| text.lines().filter(|l| l.contains(lvl)).count();
    format!(
        "{} lines ({} DEBUG, {} TRACE)",
        text.lines().count(),
        n(" DEBUG "),
        n(" TRACE ")
    )
}

/// Plants `key` in a copy of `real` (a real log) in one form and checks the matcher finds it:
/// proof that a clean result on that log means something.
fn assert_planted_found(m: &Matcher, real: &[u8], key: &Secret) {
    let mid = key.bytes.len() / 2 - WINDOW / 2;
    let plants = [
        ("lowercase hex", hex(&key.bytes)),
        (
            "8 bytes from the middle, uppercase, spaced",
            key.bytes[mid..mid + WINDOW]
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        ("base64url", base64(&key.bytes, B64_URL, false)),
    ];
    for (what, text) in plants {
        let mut planted = real.to_vec();
        let at = planted.len() / 2;
        let line = format!("\n2099-01-01T00:00:00.000000Z TRACE planted {text} here\n");
        planted.splice(at..at, line.bytes());
        let found = m.scan("planted", &planted);
        assert!(
            found.iter().any(|l| l.secret == key.name),
            "the matcher missed {} ({what}) planted in a copy of a real log",
            key.name
        );
    }
}

#[test]
fn matcher_finds_planted_keys_in_every_form() {
    let key = random_bytes(20);
    let other = random_bytes(32);
    let m = Matcher::new(vec![
        Secret {
            name: "key".into(),
            bytes: key.clone(),
        },
        Secret {
            name: "other".into(),
            bytes: other,
        },
    ]);
    let w = &key[5..5 + WINDOW];
    let mut cases: Vec<(String, String)> = whole_forms(&key)
        .into_iter()
        .map(|(form, needle, _)| (form.to_string(), format!("key: {needle} end")))
        .collect();
    cases.extend([
        ("mixed-case hex".to_string(), {
            let h = hex(&key);
            let (a, b) = h.split_at(10);
            format!("k={a}{}", b.to_ascii_uppercase())
        }),
        (
            "window, hex with colons".into(),
            format!(
                "SPI x {}",
                w.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            ),
        ),
        (
            "window, strongSwan-style dump over two lines".into(),
            format!(
                "   0: {} \n  16: {}  ....",
                upper_hex(&key[..4])
                    .as_bytes()
                    .chunks(2)
                    .map(|c| std::str::from_utf8(c).unwrap())
                    .collect::<Vec<_>>()
                    .join(" "),
                upper_hex(&key[4..12])
                    .as_bytes()
                    .chunks(2)
                    .map(|c| std::str::from_utf8(c).unwrap())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ),
        (
            "window, {:#x?}-style".into(),
            w.iter()
                .map(|b| format!("0x{b:02x}"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        (
            "window, Rust {:?}".into(),
            format!("key_in: {:?}", &key[3..]),
        ),
        (
            "window, serde_json".into(),
            serde_json::to_string(&serde_json::json!({ "k": w })).unwrap(),
        ),
        (
            "window, base64 of a slice".into(),
            format!("x={}", base64(&key[1..14], B64_STD, true)),
        ),
        ("window, raw bytes".into(), {
            let mut s = String::from("raw:");
            s.push_str(&String::from_utf8_lossy(w));
            s
        }),
    ]);
    for (what, text) in &cases {
        let found = if what == "window, raw bytes" {
            let mut raw = b"raw:".to_vec();
            raw.extend_from_slice(w);
            raw.extend_from_slice(b" end");
            m.scan(what, &raw)
        } else {
            m.scan(what, text.as_bytes())
        };
        assert!(
            found.iter().any(|l| l.secret == "key"),
            "not found: {what}: {text}"
        );
        assert!(
            found.iter().all(|l| l.secret == "key"),
            "{what}: false positive {found:?}"
        );
    }
    // 7 bytes are not a leak; unrelated hex, numbers and base64 are not either.
    let clean = format!(
        "{} {} {:?} {} spi_i=0x{}",
        hex(&key[..WINDOW - 1]),
        hex(&random_bytes(64)),
        &random_bytes(40)[..],
        base64(&random_bytes(40), B64_STD, true),
        hex(&random_bytes(8))
    );
    let found = m.scan("clean", clean.as_bytes());
    assert!(found.is_empty(), "false positive: {found:?} in {clean}");
}

// ------------------------------------------------------------------------------------------
// strongSwan's key material (charon at log level 4)

/// One `LABEL => N bytes @ 0x...` dump of charon's log, in order of appearance.
#[derive(Clone, Debug)]
struct Dump {
    label: String,
    bytes: Vec<u8>,
}

/// The message part of a charon filelog line: after `TIME THREAD[GROUP] ` and `<name|id> `.
fn charon_message(line: &str) -> &str {
    let Some(i) = line.find("] ") else {
        return line;
    };
    let rest = &line[i + 2..];
    if rest.starts_with('<') {
        if let Some(j) = rest.find("> ") {
            return &rest[j + 2..];
        }
    }
    rest
}

/// Every `%B` hex dump of charon's log: a line `LABEL => N bytes @ 0xADDR` followed by lines
/// `OFFSET: XX XX ... (16 a line)  ascii`. Panics on a dump whose lines do not add up.
fn charon_dumps(log: &str) -> Vec<Dump> {
    let lines: Vec<&str> = log.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let msg = charon_message(lines[i]);
        i += 1;
        let Some((label, rest)) = msg.split_once(" => ") else {
            continue;
        };
        let Some((n, _)) = rest.split_once(" bytes @ ") else {
            continue;
        };
        let Ok(n) = n.trim().parse::<usize>() else {
            continue;
        };
        let mut bytes = Vec::with_capacity(n);
        while bytes.len() < n {
            let line = lines.get(i).copied().unwrap_or_default();
            let data = charon_message(line).trim_start();
            let (off, hexes) = data.split_once(": ").unwrap_or_else(|| {
                panic!(
                    "dump of {label:?} ({n} bytes) ends after {} bytes at {line:?}",
                    bytes.len()
                )
            });
            assert_eq!(
                off.parse::<usize>().ok(),
                Some(bytes.len()),
                "dump of {label:?}: unexpected offset in {line:?}"
            );
            let take = (n - bytes.len()).min(16);
            for tok in hexes.split(' ').take(take) {
                let b = u8::from_str_radix(tok, 16)
                    .ok()
                    .filter(|_| tok.len() == 2)
                    .unwrap_or_else(|| panic!("dump of {label:?}: bad byte {tok:?} in {line:?}"));
                bytes.push(b);
            }
            i += 1;
        }
        out.push(Dump {
            label: label.trim().to_string(),
            bytes,
        });
    }
    out
}

/// The key dumps: IKE SA keys (`Sk_*`; `SK_p` when charon computes AUTH) and CHILD_SA keys
/// (`encryption|integrity ... key`), plus what is just as secret: the DH shared secret,
/// SKEYSEED, the PSK (`secret`, when charon computes a PSK AUTH) and prf(PSK, "Key Pad for
/// IKEv2"), with which anyone could compute a valid AUTH.
fn is_key_label(label: &str) -> bool {
    label.starts_with("Sk_")
        || label == "SK_p"
        || label == "secret"
        || label == "prf(secret, keypad)"
        || label.starts_with("SKEYSEED")
        || label.contains("Diffie Hellman secret")
        || ((label.starts_with("encryption ") || label.starts_with("integrity "))
            && label.ends_with(" key"))
}

// ------------------------------------------------------------------------------------------
// Helpers

fn ctl(socket: &Path, args: &[&str]) -> Output {
    ironsecctl(socket, args)
}

fn ctl_ok(socket: &Path, args: &[&str]) -> Output {
    let out = ctl(socket, args);
    assert!(
        out.status.success(),
        "ironsecctl {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `GET /metrics` on 127.0.0.1:METRICS_PORT inside namespace `ns` (the whole HTTP response).
fn metrics(ns: &str) -> Vec<u8> {
    in_netns(ns, || {
        use std::io::{Read, Write};
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], METRICS_PORT));
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("metrics connect {addr}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        out
    })
}

/// `ironsecctl status --json`, `ironsecctl status` and the metrics, as sources `label: ...`.
fn snapshot(c: &mut Collected, label: &str, d: &Daemon) {
    let j = ctl_ok(&d.socket, &["status", "--json"]);
    serde_json::from_slice::<Value>(&j.stdout).unwrap_or_else(|e| {
        panic!(
            "status --json ({label}) is not JSON ({e}): {}",
            String::from_utf8_lossy(&j.stdout)
        )
    });
    c.add_output(&format!("{} {label}: ironsecctl status --json", d.name), &j);
    let t = ctl_ok(&d.socket, &["status"]);
    assert!(!t.stdout.is_empty(), "empty ironsecctl status ({label})");
    c.add_output(&format!("{} {label}: ironsecctl status", d.name), &t);
    let m = metrics(&d.ns);
    let text = String::from_utf8_lossy(&m);
    assert!(
        text.starts_with("HTTP/1.") && text.contains("ironsec_uptime_seconds"),
        "metrics ({label}): {text}"
    );
    c.add(format!("{} {label}: GET /metrics", d.name), m);
}

/// `ironsecd check --config CFG` (whatever its exit status).
fn ironsecd_check(cfg: &Path) -> Output {
    run_timeout(
        Command::new(IRONSECD).arg("check").arg("--config").arg(cfg),
        Duration::from_secs(30),
    )
}

/// A run that must fail with a message (an empty message would make the search vacuous).
fn assert_refused(out: &Output, what: &str) {
    assert!(
        !out.status.success(),
        "accepted: {what}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.stdout.is_empty() || !out.stderr.is_empty(),
        "refused without a message: {what}"
    );
}

/// Adds `metrics = "127.0.0.1:9814"` to the [gateway] table of a config text.
fn with_metrics(text: &str) -> String {
    assert!(text.contains("[gateway]\n"), "no [gateway] table:\n{text}");
    text.replacen(
        "[gateway]\n",
        &format!("[gateway]\nmetrics = \"127.0.0.1:{METRICS_PORT}\"\n"),
        1,
    )
}

/// The daemon at `trace`, the most verbose level its logging knows (IRONSEC_LOG; RUST_LOG too,
/// in case anything reads that).
fn start_traced(name: &str, ns: &str, cfg: &Path, sock: &Path, log: PathBuf) -> Daemon {
    Daemon::start_with_env(
        name,
        ns,
        cfg,
        sock,
        log,
        Some("trace"),
        &[("RUST_LOG", "trace".to_string())],
    )
}

/// Item 3: the control socket is a socket, mode 0600, owned by root, in a directory the daemon
/// created with mode 0700.
fn check_control_socket(sock: &Path, who: &str) {
    let meta = fs::symlink_metadata(sock)
        .unwrap_or_else(|e| panic!("{who}: control socket {}: {e}", sock.display()));
    assert!(
        meta.file_type().is_socket(),
        "{who}: {} is not a socket",
        sock.display()
    );
    assert_eq!(
        meta.mode() & 0o7777,
        0o600,
        "{who}: control socket {} has mode {:04o}, want 0600 (srw-------)",
        sock.display(),
        meta.mode() & 0o7777
    );
    assert_eq!(
        meta.uid(),
        0,
        "{who}: control socket owned by uid {}",
        meta.uid()
    );
    assert_eq!(meta.gid(), 0, "{who}: control socket group {}", meta.gid());
    let dir = sock.parent().unwrap();
    let dmeta = fs::metadata(dir).unwrap();
    assert_eq!(
        dmeta.mode() & 0o7777,
        0o700,
        "{who}: the directory the daemon created for its control socket, {}, has mode {:04o}",
        dir.display(),
        dmeta.mode() & 0o7777
    );
    assert_eq!(
        dmeta.uid(),
        0,
        "{who}: {} owned by uid {}",
        dir.display(),
        dmeta.uid()
    );
    // `ls -l` says the same (what an operator sees).
    let ls = run_ok(
        Command::new("ls").arg("-ld").arg(sock),
        Duration::from_secs(5),
    );
    let ls = String::from_utf8_lossy(&ls.stdout);
    assert!(ls.starts_with("srw------- "), "{who}: ls -ld: {ls}");
    assert!(
        ls.split_whitespace().nth(2) == Some("root"),
        "{who}: ls -ld: {ls}"
    );
    println!("  {who}: {}", ls.trim());
}

/// Runs `f` with the process umask set to `mask` (restored after): children started in `f`
/// inherit it.
fn with_umask<T>(mask: libc::mode_t, f: impl FnOnce() -> T) -> T {
    struct Restore(libc::mode_t);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: umask(2) only swaps the process's file mode mask; it touches no memory.
            unsafe { libc::umask(self.0) };
        }
    }
    // SAFETY: as above.
    let _r = Restore(unsafe { libc::umask(mask) });
    f()
}

fn ping_ok(ns: &str, dst: Ipv4Addr, count: u16, logs: impl Fn() -> String) {
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
        logs()
    );
}

// ------------------------------------------------------------------------------------------
// 1. ironsec <-> strongSwan

/// conf/strongswan/strongswan.conf with charon's IKE and CHILD_SA logging at level 4, where it
/// dumps the key material it derives.
fn strongswan_keylog_template() -> String {
    let t = example_config("strongswan/strongswan.conf");
    assert!(
        t.contains("            ike = 2\n"),
        "strongswan.conf template changed:\n{t}"
    );
    t.replacen(
        "            ike = 2\n",
        "            ike = 4\n            chd = 4\n",
        1,
    )
}

/// conf/strongswan/swanctl.conf with `secret` replaced.
fn swanctl_with_secret(psk: &str) -> String {
    let t = example_config("strongswan/swanctl.conf");
    let mut found = false;
    let lines: Vec<String> = t
        .lines()
        .map(|l| {
            let body = l.trim_start();
            if body.starts_with("secret = ") {
                found = true;
                format!("{}secret = {psk}", &l[..l.len() - body.len()])
            } else {
                l.to_string()
            }
        })
        .collect();
    assert!(found, "no `secret =` in conf/strongswan/swanctl.conf");
    lines.join("\n") + "\n"
}

/// Field order: ironsecd and charon stop before the namespaces go, the directory goes last.
struct SwLab {
    a: Option<Daemon>,
    sw: Option<StrongSwan>,
    topo: Topology,
    dir: TempDir,
}

impl SwLab {
    fn a(&self) -> &Daemon {
        self.a.as_ref().expect("ironsecd runs")
    }

    fn sw(&self) -> &StrongSwan {
        self.sw.as_ref().expect("charon runs")
    }

    fn logs(&self) -> String {
        format!(
            "----- ironsecd (gwA) log -----\n{}\n----- charon (gwB) log: {} -----",
            self.a.as_ref().map(Daemon::log_text).unwrap_or_default(),
            self.sw
                .as_ref()
                .map(|s| s.dir.join("charon.log").display().to_string())
                .unwrap_or_default()
        )
    }

    /// Both sides up: ironsec's tunnel has an IKE SA with a CHILD_SA, strongSwan an
    /// ESTABLISHED IKE SA with the same SPIs and an INSTALLED CHILD_SA.
    fn wait_up(&self, timeout: Duration) {
        let mut last = (Value::Null, Vec::new());
        let ok = poll_until(timeout, || {
            let Ok(st) = ctl_status(&self.a().socket) else {
                return false;
            };
            let sas = self.sw().sas();
            let up = tunnel_up(&st)
                && ike_of(&st).is_some_and(|ike| {
                    let i = bare(ike["spi_i"].as_str().unwrap_or_default());
                    sas.iter().any(|s| {
                        s.name == SW_CONN
                            && s.state == "ESTABLISHED"
                            && s.spi_i == i
                            && s.children.iter().any(|c| c.state == "INSTALLED")
                    })
                });
            last = (st, sas);
            up
        });
        assert!(
            ok,
            "not up on both sides within {timeout:?}\nironsec: {:#}\nstrongSwan: {:#?}\n{}",
            last.0,
            last.1,
            self.logs()
        );
    }
}

impl Drop for SwLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "[test] secrets lab {} failed; files kept in {}",
                self.topo.prefix,
                self.dir.path.display()
            );
        }
    }
}

/// `ironsecd check` on broken variants of a working IKE config, each refused, whose messages
/// must not quote the PSK: a psk_file others may read, a psk_file with a stray character, one
/// with the PSK cut short (9 bytes), and the PSK inline in a config that is not valid TOML.
fn check_psk_errors(dir: &TempDir, cfg_text: &str, psk_text: &str, c: &mut Collected) {
    let variants: Vec<(&str, String, u32)> = vec![
        // (what, psk file contents, mode) -- config points at it
        ("world-readable psk_file", format!("{psk_text}\n"), 0o644),
        (
            "psk_file with a stray character",
            format!("{psk_text}g\n"),
            0o600,
        ),
        (
            "psk_file too short",
            format!("{}\n", &psk_text[..20]),
            0o600,
        ),
    ];
    for (i, (what, body, mode)) in variants.iter().enumerate() {
        let psk = dir.join(&format!("bad-{i}.psk"));
        fs::write(&psk, body).unwrap();
        fs::set_permissions(&psk, fs::Permissions::from_mode(*mode)).unwrap();
        let cfg = dir.join(&format!("bad-{i}.toml"));
        fs::write(
            &cfg,
            rewrite_toml_lines(cfg_text, &[("psk_file", toml_str(psk.to_str().unwrap()))]),
        )
        .unwrap();
        let out = ironsecd_check(&cfg);
        assert_refused(&out, &format!("ironsecd check with a {what}"));
        c.add_output(&format!("ironsecd check, {what}"), &out);
    }
    // The PSK inline, in a config with a TOML error on that very line (unterminated string):
    // TOML parsers quote the offending line in their messages.
    let inline = cfg_text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("psk_file") {
                format!("psk = \"{psk_text}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let cfg = dir.join("bad-inline.toml");
    write_secret(&cfg, inline);
    let out = ironsecd_check(&cfg);
    assert_refused(&out, "ironsecd check with broken TOML");
    c.add_output(
        "ironsecd check, inline psk on a line that is not TOML",
        &out,
    );
}

#[test]
#[ignore = "needs root"]
fn strongswan_interop_keys_never_leave_ironsec() {
    let _s = serial();
    require_root();
    let t0 = Instant::now();
    let prefix = unique_prefix();
    let dir = TempDir::new(&prefix);
    let topo = Topology::up(&prefix);
    let mut lab = SwLab {
        a: None,
        sw: None,
        topo,
        dir,
    };
    let psk_text = format!("0x{}", hex(&random_bytes(32)));
    let psk = lab.dir.join("site-b.psk");
    write_secret(&psk, format!("{psk_text}\n"));
    let mut c = Collected::default();

    // strongSwan on gwB, logging its keys.
    let template = lab.dir.join("strongswan-keylog.conf.in");
    fs::write(&template, strongswan_keylog_template()).unwrap();
    lab.sw = Some(StrongSwan::start_with(
        &lab.topo.gw_b,
        &lab.dir.join("strongswan"),
        &swanctl_with_secret(&psk_text),
        SwOptions {
            template: Some(&template),
            utc: true,
        },
    ));

    // ironsecd on gwA: waits for `ironsecctl initiate`, rekeys its CHILD_SA every ~5 s and
    // its IKE SA every ~6 s on its own, metrics on, the control socket in a directory it must
    // create itself.
    let sock = lab.dir.join("ctl-a").join("ironsecd.sock");
    let cfg = lab.dir.join("ironsec-gw-a.toml");
    let mut text = rewrite_toml_lines(
        &example_config("strongswan/ironsec-gw-a.toml"),
        &[
            ("control_socket", toml_str(sock.to_str().unwrap())),
            ("psk_file", toml_str(psk.to_str().unwrap())),
            ("start_action", toml_str("none")),
            ("rekey_time", "5".into()),
            ("ike_rekey_time", "6".into()),
        ],
    );
    text.push_str("retransmit_timeout = 0.5\n");
    let text = with_metrics(&text);
    fs::write(&cfg, &text).unwrap();
    let out = ironsecd_check(&cfg);
    assert!(
        out.status.success(),
        "ironsecd check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.add_output("ironsecd check", &out);
    check_psk_errors(&lab.dir, &text, &psk_text, &mut c);

    let log = lab.dir.join("ironsecd-a.log");
    lab.a = Some(start_traced(
        "gwA",
        &lab.topo.gw_a,
        &cfg,
        &sock,
        log.clone(),
    ));
    println!("ironsec <-> strongSwan, ironsecd at trace:");
    check_control_socket(&sock, "gwA");
    snapshot(&mut c, "before initiate", lab.a());

    // Up, pings through.
    let out = ctl_ok(&sock, &["initiate", "site-b"]);
    c.add_output("ironsecctl initiate site-b", &out);
    lab.wait_up(Duration::from_secs(15));
    let logs = || lab.logs();
    ping_ok(&lab.topo.lan_a, LAN_B_HOST, 10, logs);
    ping_ok(&lab.topo.lan_b, LAN_A_HOST, 10, logs);
    snapshot(&mut c, "up", lab.a());
    let json = ctl_ok(&sock, &["--json", "status"]);
    c.add_output("ironsecctl --json status", &json);

    // Rekeys under pings (20/s each way for 12 s): strongSwan rekeys the CHILD_SA at ~1 s
    // and the IKE SA at ~2.5 s; ironsec its CHILD_SA at ~4.5-5 s and its IKE SA at ~5.4-6 s
    // after each came up.
    let spawn = |ns: &str, dst: Ipv4Addr| {
        ping_paced_in_background(
            ns,
            dst,
            12 * 20,
            pattern_payload(PING_PATTERN, 56),
            Duration::from_millis(50),
            Duration::from_secs(2),
        )
    };
    let ab = spawn(&lab.topo.lan_a, LAN_B_HOST);
    let ba = spawn(&lab.topo.lan_b, LAN_A_HOST);
    std::thread::sleep(Duration::from_millis(1000));
    lab.sw().swanctl_ok(&["--rekey", "--child", SW_CHILD]);
    std::thread::sleep(Duration::from_millis(1000));
    snapshot(&mut c, "after strongSwan's CHILD_SA rekey", lab.a());
    std::thread::sleep(Duration::from_millis(500));
    lab.sw().swanctl_ok(&["--rekey", "--ike", SW_CONN]);
    std::thread::sleep(Duration::from_millis(1000));
    snapshot(&mut c, "after strongSwan's IKE SA rekey", lab.a());
    std::thread::sleep(Duration::from_millis(4000));
    snapshot(&mut c, "around ironsec's own rekeys", lab.a());
    let (ab, ba) = (ab.join().unwrap(), ba.join().unwrap());
    for (what, r) in [("lanA -> lanB", &ab), ("lanB -> lanA", &ba)] {
        println!(
            "  {what}: {} pings during the rekeys, {} answered",
            r.sent(),
            r.received()
        );
        // Loss during rekeys is tests/interop_strongswan.rs's business; here the tunnel must
        // carry traffic throughout.
        assert!(
            r.received() * 100 >= r.sent() * 95,
            "{what}: {} of {} pings answered during the rekeys\n{}",
            r.received(),
            r.sent(),
            lab.logs()
        );
    }
    lab.wait_up(Duration::from_secs(10));
    ping_ok(&lab.topo.lan_a, LAN_B_HOST, 5, logs);
    ping_ok(&lab.topo.lan_b, LAN_A_HOST, 5, logs);
    let st = lab.a().status();
    let (child_rekeys, ike_rekeys) = (
        num(&st, "/connections/0/counters/child_rekeys"),
        num(&st, "/connections/0/counters/ike_rekeys"),
    );
    println!("  ironsec counted {child_rekeys} CHILD_SA and {ike_rekeys} IKE SA rekeys");
    assert!(
        child_rekeys >= 2 && ike_rekeys >= 2,
        "{st:#}\n{}",
        lab.logs()
    );
    snapshot(&mut c, "after the rekeys", lab.a());

    // Terminate.
    let out = ctl_ok(&sock, &["terminate", "site-b"]);
    c.add_output("ironsecctl terminate site-b", &out);
    let down = poll_until(Duration::from_secs(10), || {
        ike_of(&lab.a().status()).is_none() && lab.sw().sas().is_empty()
    });
    assert!(down, "SAs remain after terminate\n{}", lab.logs());
    snapshot(&mut c, "terminated", lab.a());

    // Stop both (ironsecd logs its shutdown too), then read everything.
    let mut a = lab.a.take().unwrap();
    a.stop();
    let mut sw = lab.sw.take().unwrap();
    sw.stop();
    let charon_log = sw.log_text();
    let ironsec_log = fs::read(&log).unwrap();
    assert!(
        String::from_utf8_lossy(&ironsec_log).contains("IKE in:"),
        "ironsecd did not log at debug/trace level (IRONSEC_LOG=trace ignored?)"
    );
    println!("  ironsecd log: {}", log_levels(&ironsec_log));
    c.add("ironsecd gwA log (IRONSEC_LOG=trace)", ironsec_log.clone());

    // The keys, from strongSwan's side.
    let dumps = charon_dumps(&charon_log);
    let keys: Vec<&Dump> = dumps.iter().filter(|d| is_key_label(&d.label)).collect();
    let count = |prefix: &str| keys.iter().filter(|d| d.label.starts_with(prefix)).count();
    let mut labels: Vec<String> = keys.iter().map(|d| d.label.clone()).collect();
    labels.dedup();
    let mut other: Vec<&str> = dumps
        .iter()
        .filter(|d| !is_key_label(&d.label))
        .map(|d| d.label.as_str())
        .collect();
    other.sort_unstable();
    other.dedup();
    println!("  charon's other dumps (not secrets): {other:?}");
    println!(
        "  charon logged {} dumps, {} of them keys: {}",
        dumps.len(),
        keys.len(),
        {
            let mut by: Vec<(String, usize)> = Vec::new();
            for d in &keys {
                match by.iter_mut().find(|(l, _)| *l == d.label) {
                    Some((_, n)) => *n += 1,
                    None => by.push((d.label.clone(), 1)),
                }
            }
            by.iter()
                .map(|(l, n)| format!("{l} x{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    // Not vacuous: the IKE SA and its rekeys (SK_d, SK_ei/er, SK_pi/pr each), the CHILD_SA
    // and its rekeys (both directions), with the lengths aes128gcm16/prfsha256 give.
    let sk = ["Sk_d", "Sk_ei", "Sk_er", "Sk_pi", "Sk_pr"];
    for p in sk {
        assert!(
            count(p) >= 2,
            "charon logged {} {p} keys, want one per IKE SA (initial + rekeys): {labels:?}\n\
             (is charon's ike log level 4?)",
            count(p)
        );
    }
    for p in ["encryption initiator key", "encryption responder key"] {
        assert!(
            count(p) >= 3,
            "charon logged {} '{p}', want one per CHILD_SA (initial + >= 2 rekeys): {labels:?}",
            count(p)
        );
    }
    for d in &keys {
        let want = match d.label.as_str() {
            l if l.starts_with("Sk_d") || l.starts_with("Sk_p") => Some(32),
            l if l.starts_with("Sk_e") || l.starts_with("encryption ") => Some(20),
            _ => None,
        };
        if let Some(w) = want {
            assert_eq!(d.bytes.len(), w, "length of {}: {:?}", d.label, d);
        }
    }
    let psk_bytes: Vec<u8> = (2..psk_text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&psk_text[i..i + 2], 16).unwrap())
        .collect();
    // The parser reads the dumps right: charon's dump of the PSK is the PSK, its `SK_p`
    // dumps (AUTH) are among its `Sk_pi`/`Sk_pr` dumps (key derivation).
    let psk_dumps: Vec<&&Dump> = keys.iter().filter(|d| d.label == "secret").collect();
    assert!(
        !psk_dumps.is_empty(),
        "charon logged no PSK (`secret`): {labels:?}"
    );
    for d in psk_dumps {
        assert_eq!(d.bytes, psk_bytes, "charon's `secret` dump is not the PSK");
    }
    for d in keys.iter().filter(|d| d.label == "SK_p") {
        assert!(
            keys.iter()
                .any(|k| k.label.starts_with("Sk_p") && k.bytes == d.bytes),
            "charon's SK_p dump matches none of its Sk_pi/Sk_pr dumps: {d:?}"
        );
    }
    let mut secrets: Vec<Secret> = Vec::new();
    // The PSK goes last, under its own name.
    let mut seen = HashSet::from([psk_bytes.clone()]);
    for (i, d) in keys.iter().enumerate() {
        if seen.insert(d.bytes.clone()) {
            secrets.push(Secret {
                name: format!("strongSwan dump #{i}: {}", d.label),
                bytes: d.bytes.clone(),
            });
        }
    }
    secrets.push(Secret {
        name: "PSK".into(),
        bytes: psk_bytes,
    });
    let n_keys = secrets.len() - 1;
    assert!(n_keys >= 8, "only {n_keys} distinct keys parsed");
    println!(
        "  {n_keys} distinct keys parsed from charon's log ({} IKE SAs, {} CHILD_SAs), plus the PSK",
        count("Sk_d"),
        count("encryption initiator key")
    );
    let m = Matcher::new(secrets.clone());
    // The search would see a real key in this very log, and it does see the keys in charon's.
    let last_child = secrets
        .iter()
        .rev()
        .find(|s| s.name.contains("encryption"))
        .unwrap();
    assert_planted_found(&m, &ironsec_log, last_child);
    assert_planted_found(&m, &ironsec_log, secrets.last().unwrap());
    let in_charon = m.scan("charon.log", charon_log.as_bytes());
    for s in &secrets[..n_keys] {
        assert!(
            in_charon.iter().any(|l| l.secret == s.name),
            "the matcher does not find {} in charon's log it was parsed from",
            s.name
        );
    }

    c.assert_clean(&m);
    println!(
        "  {} keys + PSK absent from ironsecd's log, status, metrics and messages; {:.1} s",
        n_keys,
        t0.elapsed().as_secs_f64()
    );
}

// ------------------------------------------------------------------------------------------
// 2. Static keys, ironsec <-> ironsec

/// Field order: daemons stop before the namespaces go, the directory goes last.
struct StaticLab {
    a: Daemon,
    b: Daemon,
    topo: Topology,
    dir: TempDir,
}

impl StaticLab {
    fn logs(&self) -> String {
        format!(
            "----- gwA log -----\n{}\n----- gwB log -----\n{}",
            self.a.log_text(),
            self.b.log_text()
        )
    }
}

#[test]
#[ignore = "needs root"]
fn static_keys_never_leave_ironsec() {
    let _s = serial();
    require_root();
    let t0 = Instant::now();
    let prefix = unique_prefix();
    let dir = TempDir::new(&prefix);
    let topo = Topology::up(&prefix);
    let suite = "aes256gcm16";
    let key_ab = random_bytes(keymat_len(suite));
    let key_ba = random_bytes(keymat_len(suite));
    let keys = dir.join("site.keys");
    write_keys_file(&keys, &[(SPI_A_TO_B, &key_ab), (SPI_B_TO_A, &key_ba)]);
    let keys_text = fs::read(&keys).unwrap();
    let mut c = Collected::default();

    let mk = |example: &str, sock: &Path, out: &Path| {
        let text = rewrite_toml_lines(
            &example_config(example),
            &[
                ("control_socket", toml_str(sock.to_str().unwrap())),
                ("keys_file", toml_str(keys.to_str().unwrap())),
                ("esp", toml_str(suite)),
            ],
        );
        fs::write(out, with_metrics(&text)).unwrap();
        text
    };
    let (sock_a, sock_b) = (
        dir.join("ctl-a").join("ironsecd.sock"),
        dir.join("ctl-b").join("ironsecd.sock"),
    );
    let (cfg_a, cfg_b) = (dir.join("gw-a.toml"), dir.join("gw-b.toml"));
    let text_a = mk("static-gw-a.toml", &sock_a, &cfg_a);
    mk("static-gw-b.toml", &sock_b, &cfg_b);
    for (who, cfg) in [("gwA", &cfg_a), ("gwB", &cfg_b)] {
        let out = ironsecd_check(cfg);
        assert!(
            out.status.success(),
            "ironsecd check {who}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        c.add_output(&format!("ironsecd check {who}"), &out);
    }
    // Damaged keys files: parse errors must name the file, line and SPI, never the key.
    let bad_keys: Vec<(&str, String)> = vec![
        (
            "a key one hex digit short",
            format!(
                "0x{SPI_A_TO_B:08x} = \"{}\"\n0x{SPI_B_TO_A:08x} = \"{}\"\n",
                &hex(&key_ab)[1..],
                hex(&key_ba)
            ),
        ),
        (
            "a key one byte short",
            format!(
                "0x{SPI_A_TO_B:08x} = \"{}\"\n0x{SPI_B_TO_A:08x} = \"{}\"\n",
                hex(&key_ab[..key_ab.len() - 1]),
                hex(&key_ba)
            ),
        ),
        (
            "an unterminated string",
            format!(
                "0x{SPI_A_TO_B:08x} = \"{}\n0x{SPI_B_TO_A:08x} = \"{}\"\n",
                hex(&key_ab),
                hex(&key_ba)
            ),
        ),
        (
            "a stray character in the key",
            format!(
                "0x{SPI_A_TO_B:08x} = \"{}z\"\n0x{SPI_B_TO_A:08x} = \"{}\"\n",
                hex(&key_ab),
                hex(&key_ba)
            ),
        ),
        (
            "a key without quotes",
            format!(
                "0x{SPI_A_TO_B:08x} = {}\n0x{SPI_B_TO_A:08x} = \"{}\"\n",
                hex(&key_ab),
                hex(&key_ba)
            ),
        ),
    ];
    for (i, (what, body)) in bad_keys.iter().enumerate() {
        let k = dir.join(&format!("bad-{i}.keys"));
        write_secret(&k, body);
        let cfg = dir.join(&format!("bad-{i}.toml"));
        fs::write(
            &cfg,
            rewrite_toml_lines(&text_a, &[("keys_file", toml_str(k.to_str().unwrap()))]),
        )
        .unwrap();
        let out = ironsecd_check(&cfg);
        assert_refused(&out, &format!("ironsecd check, keys file with {what}"));
        c.add_output(&format!("ironsecd check, keys file with {what}"), &out);
    }

    // Both daemons at trace; gwB started with umask 000: its socket must still be 0600.
    let a = start_traced(
        "gwA",
        &topo.gw_a,
        &cfg_a,
        &sock_a,
        dir.join("ironsecd-a.log"),
    );
    let b = with_umask(0, || {
        start_traced(
            "gwB",
            &topo.gw_b,
            &cfg_b,
            &sock_b,
            dir.join("ironsecd-b.log"),
        )
    });
    let lab = StaticLab { a, b, topo, dir };
    println!("static keys ({suite}), both ironsecd at trace:");
    check_control_socket(&sock_a, "gwA");
    check_control_socket(&sock_b, "gwB (umask 000)");
    for d in [&lab.a, &lab.b] {
        snapshot(&mut c, "before traffic", d);
    }
    let logs = || lab.logs();
    ping_ok(&lab.topo.lan_a, LAN_B_HOST, 10, logs);
    ping_ok(&lab.topo.lan_b, LAN_A_HOST, 10, logs);
    for d in [&lab.a, &lab.b] {
        snapshot(&mut c, "after pings", d);
        let st = d.status();
        assert!(num(&st, &format!("{T0}/outbound/packets")) >= 20, "{st:#}");
    }

    // A reload that re-reads the keys file, then one refused because it is damaged (the
    // running keys stay), then the good file back.
    let out = ctl_ok(&lab.a.socket, &["reload"]);
    c.add_output("gwA ironsecctl reload", &out);
    fs::write(&keys, &bad_keys[1].1).unwrap();
    let out = ctl(&lab.a.socket, &["reload"]);
    assert_refused(&out, "reload with a damaged keys file");
    c.add_output("gwA ironsecctl reload (damaged keys file)", &out);
    let out = ctl(&lab.a.socket, &["--json", "reload"]);
    assert_refused(&out, "reload --json with a damaged keys file");
    c.add_output("gwA ironsecctl --json reload (damaged keys file)", &out);
    fs::write(&keys, &keys_text).unwrap();
    ping_ok(&lab.topo.lan_a, LAN_B_HOST, 5, logs);
    for d in [&lab.a, &lab.b] {
        snapshot(&mut c, "after reloads", d);
    }

    let StaticLab {
        mut a,
        mut b,
        topo,
        dir,
    } = lab;
    a.stop();
    b.stop();
    let log_a = fs::read(dir.join("ironsecd-a.log")).unwrap();
    let log_b = fs::read(dir.join("ironsecd-b.log")).unwrap();
    drop(topo);
    println!(
        "  ironsecd logs: gwA {}, gwB {}",
        log_levels(&log_a),
        log_levels(&log_b)
    );
    c.add("ironsecd gwA log (IRONSEC_LOG=trace)", log_a.clone());
    c.add("ironsecd gwB log (IRONSEC_LOG=trace)", log_b);

    let secrets = vec![
        Secret {
            name: format!("static key 0x{SPI_A_TO_B:08x} (gwA -> gwB)"),
            bytes: key_ab,
        },
        Secret {
            name: format!("static key 0x{SPI_B_TO_A:08x} (gwB -> gwA)"),
            bytes: key_ba,
        },
    ];
    let m = Matcher::new(secrets.clone());
    // The search finds both keys in the keys file, and would find one planted in a real log.
    let in_file = m.scan("keys file", &keys_text);
    assert!(
        secrets
            .iter()
            .all(|s| in_file.iter().any(|l| l.secret == s.name)),
        "the matcher does not find the keys in the keys file: {in_file:?}"
    );
    assert_planted_found(&m, &log_a, &secrets[0]);
    c.assert_clean(&m);
    println!(
        "  2 static keys absent from both daemons' logs, status, metrics and messages; {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}
