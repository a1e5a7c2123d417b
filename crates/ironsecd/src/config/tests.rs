use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("ironsec-cfg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn write(&self, name: &str, body: &str, mode: u32) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const KEYS: &str = "0xc0000102 = \"000102030405060708090a0b0c0d0e0f10111213\"\n\
                    0xc0000201 = \"202122232425262728292a2b2c2d2e2f30313233\"\n";

/// The shipped example for gateway A, pointed at a keys file in `d`.
fn example(d: &Dir, which: &str) -> String {
    let keys = d.write("site.keys", KEYS, 0o600);
    let src = format!(
        "{}/../../conf/static-gw-{which}.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(src)
        .unwrap()
        .replace("keys/site-b.keys", keys.to_str().unwrap())
        .replace("keys/site-a.keys", keys.to_str().unwrap())
}

fn errors(d: &Dir, toml: &str) -> Vec<ConfigError> {
    let p = d.write("c.toml", toml, 0o644);
    Config::load(&p).expect_err("config should be refused").0
}

#[test]
fn shipped_examples_are_valid() {
    let d = Dir::new("examples");
    for which in ["a", "b"] {
        let p = d.write("c.toml", &example(&d, which), 0o644);
        let c = Config::load(&p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.connections.len(), 1);
        let Keying::Static(st) = &c.connections[0].keying else {
            panic!("static example")
        };
        assert_eq!(st.suite, Suite::Aes128Gcm16);
        assert_eq!(st.tunnels[0].key_out.len(), 20);
        assert_eq!(c.local_addrs().len(), 1);
    }
}

#[test]
fn unknown_key_names_file_and_path() {
    let d = Dir::new("unknown");
    let t = example(&d, "a").replace("esn = true", "esn = true\nfrobnicate = 1");
    let e = errors(&d, &t);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].key, "connection[0].frobnicate");
    assert!(
        e[0].reason
            .starts_with("unknown key; connection keys are name, keying, local_ts,"),
        "{}",
        e[0]
    );
    assert!(e[0]
        .to_string()
        .starts_with(&format!("{}: ", d.0.join("c.toml").display())));
}

#[test]
fn bad_cidrs_are_named() {
    let d = Dir::new("cidr");
    let t = example(&d, "a")
        .replace("\"10.1.0.0/24\"", "\"10.1.0.1/24\"")
        .replace("\"10.2.0.0/24\"", "\"10.2.0.0/33\"");
    let e = errors(&d, &t);
    let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        ["connection[0].local_ts[0]", "connection[0].remote_ts[0]"]
    );
    assert!(e[0].reason.contains("did you mean 10.1.0.0/24"), "{}", e[0]);
}

#[test]
fn key_length_must_match_suite() {
    let d = Dir::new("keylen");
    let t = example(&d, "a").replace("aes128gcm16", "aes256gcm16");
    let e = errors(&d, &t);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].file.ends_with("site.keys"));
    assert!(
        e[0].reason
            .contains("needs 36 bytes of key material (32-byte key + 4-byte salt)"),
        "{}",
        e[0]
    );
    // The message names the SPI, never the key.
    assert!(!e[0].to_string().contains("00010203"));
}

/// AES-CBC + HMAC for static SAs: the key file holds the AES key then the HMAC key
/// (RFC 7296 2.17), and a wrong length says so.
#[test]
fn cbc_suites_take_aes_key_then_hmac_key() {
    let d = Dir::new("cbc");
    let t = example(&d, "a").replace("\"aes128gcm16\"", "\"aes256-sha256\"");
    let e = errors(&d, &t);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].reason.contains(
            "aes256-sha256 needs 64 bytes of key material (32-byte AES key + 32-byte HMAC key), \
             this key has 20"
        ),
        "{}",
        e[0]
    );
    // With 16 + 20 bytes, aes128-sha1 loads.
    let t = example(&d, "a").replace("\"aes128gcm16\"", "\"aes128-sha1\"");
    let k36 = |b: u8| {
        (0..36u8)
            .map(|i| format!("{:02x}", b + i))
            .collect::<String>()
    };
    d.write(
        "site.keys",
        &format!(
            "0xc0000102 = \"{}\"\n0xc0000201 = \"{}\"\n",
            k36(0),
            k36(0x40)
        ),
        0o600,
    );
    let p = d.write("c.toml", &t, 0o644);
    let cfg = Config::load(&p).unwrap_or_else(|e| panic!("{e}"));
    let Keying::Static(st) = &cfg.connections[0].keying else {
        panic!("static example")
    };
    assert_eq!(st.suite.name(), "aes128-sha1");
    assert_eq!(st.tunnels[0].key_out.len(), 36);
    assert_eq!(cfg.connections[0].costliest_suite(), st.suite);
}

#[test]
fn readable_keys_file_is_refused() {
    let d = Dir::new("perm");
    let t = example(&d, "a");
    d.write("site.keys", KEYS, 0o640);
    let e = errors(&d, &t);
    assert!(e[0].reason.contains("chmod 600"), "{}", e[0]);
    assert_eq!(e[0].key, "connection[0].keys_file", "{}", e[0]);
    assert!(
        e[0].reason.contains("site.keys: permissions 0640"),
        "{}",
        e[0]
    );
}

#[test]
fn missing_key_unknown_suite_and_reserved_spi() {
    let d = Dir::new("misc");
    let t = example(&d, "a")
        .replace("\"0xc0000201\"", "\"0xc0000999\"")
        .replace("\"0xc0000102\"", "\"0x10\"");
    let e = errors(&d, &t);
    assert!(e
        .iter()
        .any(|e| e.key.ends_with("spi_out") && e.reason.contains("reserved")));
    let t = example(&d, "a").replace("\"0xc0000201\"", "\"0xc0000999\"");
    let e = errors(&d, &t);
    assert!(
        e[0].reason.contains("no key for SPI 0xc0000999"),
        "{}",
        e[0]
    );
    let t = example(&d, "a").replace("aes128gcm16", "aes128cbc");
    let e = errors(&d, &t);
    assert_eq!(e[0].key, "connection[0].esp");
    let t = example(&d, "a").replace("esn = true", "esn = false");
    assert_eq!(errors(&d, &t)[0].key, "connection[0].esn");
}

#[test]
fn overlapping_remotes_and_duplicate_spis_between_connections() {
    let d = Dir::new("overlap");
    let a = example(&d, "a");
    let second = a[a.find("[[connection]]").unwrap()..]
        .replace("site-b", "site-c")
        .replace("\"10.2.0.0/24\"", "\"10.2.0.128/25\"");
    let e = errors(&d, &format!("{a}\n{second}"));
    assert!(
        e.iter().any(|e| e
            .reason
            .contains("overlaps 10.2.0.0/24 of connection 'site-b'")),
        "{e:?}"
    );
    assert!(
        e.iter().any(|e| e.key == "connection[1].tunnels[0].spi_in"),
        "{e:?}"
    );
}

#[test]
fn gateway_limits_and_syntax_errors() {
    let d = Dir::new("gw");
    let t = example(&d, "a")
        .replace("tun = \"ipsec0\"", "tun = \"this-name-is-too-long\"")
        .replace("tun_mtu = 1400", "tun_mtu = 100");
    let keys: Vec<String> = errors(&d, &t).into_iter().map(|e| e.key).collect();
    assert_eq!(keys, ["gateway.tun", "gateway.tun_mtu"]);
    let e = errors(&d, &(example(&d, "a") + "\nx = ["));
    assert!(e[0].reason.contains("line"), "{}", e[0]);
    assert_eq!(
        Config::load(&d.0.join("absent.toml")).unwrap_err().0[0].key,
        ""
    );
}

/// The shipped IKE example for gateway `which`, pointed at a PSK file in `d`.
fn ike_example(d: &Dir, which: &str) -> String {
    let psk = d.write(
        "site.psk",
        "0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
        0o600,
    );
    let src = format!(
        "{}/../../conf/ike-gw-{which}.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(src)
        .unwrap()
        .replace(
            "\"psk/site-b.psk\"",
            &format!("{:?}", psk.to_str().unwrap()),
        )
        .replace(
            "\"psk/site-a.psk\"",
            &format!("{:?}", psk.to_str().unwrap()),
        )
}

#[test]
fn shipped_ike_examples_are_valid() {
    let d = Dir::new("ike-examples");
    for which in ["a", "b"] {
        let p = d.write("c.toml", &ike_example(&d, which), 0o644);
        let c = Config::load(&p).unwrap_or_else(|e| panic!("{e}"));
        let Keying::Ike(k) = &c.connections[0].keying else {
            panic!("ike example")
        };
        assert_eq!(k.psk.as_ref().unwrap().bytes().len(), 32);
        assert_eq!(
            k.ike_proposals[0].to_string(),
            "aes256gcm16-prfsha256-x25519"
        );
        assert_eq!(k.tunnels.len(), 1);
        assert!(
            !format!("{k:?}").contains("000102"),
            "PSK must not show in Debug"
        );
    }
}

#[test]
fn ike_keying_errors_name_the_key() {
    let d = Dir::new("ike-errors");
    let base = ike_example(&d, "a");
    let e = errors(
        &d,
        &base.replace(
            "ike_proposals = [\"aes256gcm16-prfsha256-x25519\"]",
            "ike_proposals = [\"aes256gcm16-prfmd5-x25519\"]",
        ),
    );
    assert_eq!(e[0].key, "connection[0].ike_proposals[0]", "{e:?}");
    let no_local_id: String = base
        .lines()
        .filter(|l| !l.starts_with("local_id"))
        .map(|l| format!("{l}\n"))
        .collect();
    let e = errors(&d, &no_local_id);
    assert_eq!(e[0].key, "connection[0].local_id");
    let e = errors(
        &d,
        &base.replace("keying = \"ike\"", "keying = \"ike\"\nkeys_file = \"/x\""),
    );
    assert_eq!(e[0].key, "connection[0].keys_file");
    assert!(e[0].reason.contains("not used with keying"), "{}", e[0]);
    d.write("site.psk", "short", 0o600);
    let e = errors(
        &d,
        &ike_example(&d, "a").replace(
            &format!("{}", d.0.join("site.psk").display()),
            &format!("{}", d.0.join("short.psk").display()),
        ),
    );
    assert!(
        e[0].reason.contains("cannot read") || e[0].key.contains("psk_file"),
        "{e:?}"
    );
    let short = d.write("short.psk", "tooshort\n", 0o600);
    let t = base.replace(
        &format!("{}", d.0.join("site.psk").display()),
        short.to_str().unwrap(),
    );
    let e = errors(&d, &t);
    assert!(e[0].reason.contains("shorter than 16 bytes"), "{e:?}");
    let open = d.write("open.psk", "a-long-enough-secret-phrase\n", 0o644);
    let t = base.replace(
        &format!("{}", d.0.join("site.psk").display()),
        open.to_str().unwrap(),
    );
    let e = errors(&d, &t);
    assert!(e[0].reason.contains("chmod 600"), "{e:?}");
}

#[test]
fn cbc_proposals_and_default_load_and_sha1_is_warned_about() {
    let d = Dir::new("ike-cbc");
    let base: String = ike_example(&d, "a")
        .lines()
        .filter(|l| !l.starts_with("esp_proposals"))
        .map(|l| format!("{l}\n"))
        .collect();
    let aead = "ike_proposals = [\"aes256gcm16-prfsha256-x25519\"]";
    assert!(base.contains(aead), "the example's proposal line moved");
    let with = |ike: &str, esp: &str| {
        base.replace(
            aead,
            &format!("ike_proposals = [{ike}]\nesp_proposals = [{esp}]"),
        )
    };
    let load = |toml: String| {
        let p = d.write("c.toml", &toml, 0o644);
        Config::load(&p).unwrap_or_else(|e| panic!("{e}"))
    };
    // strongSwan's `aes256-sha256-modp2048` with a group we have: no warnings.
    let c = load(with("\"aes256-sha256-ecp256\"", "\"aes256-sha256\""));
    let Keying::Ike(k) = &c.connections[0].keying else {
        panic!("ike")
    };
    assert_eq!(
        k.ike_proposals[0].to_string(),
        "aes256-sha256-prfsha256-ecp256"
    );
    assert!(!k.allow_legacy_crypto);
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    // SHA-1 loads without the opt-in, and each use is warned about by name.
    let c = load(with("\"aes128-sha1-ecp256\"", "\"aes128-sha1\""));
    let w = c.warnings();
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(
        w[0].starts_with("connection '") && w[0].contains("ike_proposals[0]"),
        "{w:?}"
    );
    assert!(
        w[0].contains("legacy sha1") && w[1].contains("legacy prfsha1"),
        "{w:?}"
    );
    assert!(
        w[2].contains("esp_proposals[0] 'aes128-sha1' uses legacy sha1"),
        "{w:?}"
    );
    // strongSwan's default set, both kinds.
    let c = load(with("\"default\"", "\"default\", \"aes256gcm16\""));
    let Keying::Ike(k) = &c.connections[0].keying else {
        panic!("ike")
    };
    assert_eq!(
        k.ike_proposals[0],
        ironsec_ike::crypto::IkeProposal::strongswan_default()
    );
    assert_eq!(k.esp_proposals.len(), 2);
    // A CBC cipher without integrity is refused with the key and the fix.
    let e = errors(&d, &with("\"aes256-prfsha256-ecp256\"", "\"aes256gcm16\""));
    assert_eq!(e[0].key, "connection[0].ike_proposals[0]", "{e:?}");
    assert!(e[0].reason.contains("integrity algorithm"), "{}", e[0]);
    let e = errors(&d, &with("\"aes256gcm16-prfsha256-ecp256\"", "\"aes128\""));
    assert_eq!(e[0].key, "connection[0].esp_proposals[0]", "{e:?}");
    // The opt-in is an IKE key.
    let c = load(base.replace(aead, &format!("{aead}\nallow_legacy_crypto = true")));
    let Keying::Ike(k) = &c.connections[0].keying else {
        panic!("ike")
    };
    assert!(k.allow_legacy_crypto);
}

#[test]
fn allow_legacy_crypto_is_not_a_static_key() {
    let d = Dir::new("static-legacy");
    let e = errors(
        &d,
        &example(&d, "a").replace(
            "keying = \"static\"",
            "keying = \"static\"\nallow_legacy_crypto = true",
        ),
    );
    assert!(
        e.iter().any(|e| e.key.ends_with("allow_legacy_crypto")),
        "{e:?}"
    );
}

// ------------------------------------------------------------------------------------------
// Main file + conf.d fragments + environment overrides.

const PSK: &str = "a-long-enough-secret-phrase-0123";

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An IKE connection table; its psk_file is written as given (relative or absolute).
fn ike_conn(name: &str, remote_ts: &str, psk_file: &str, peer: &str) -> String {
    format!(
        "[[connection]]\nname = \"{name}\"\nkeying = \"ike\"\nlocal_id = \"gw-a.example\"\n\
         remote_id = \"{name}.example\"\npsk_file = \"{psk_file}\"\nlocal_ts = [\"10.1.0.0/24\"]\n\
         remote_ts = [\"{remote_ts}\"]\ntunnels = [ {{ local = \"192.0.2.1\", remote = \"{peer}\" }} ]\n"
    )
}

const GATEWAY: &str = "[gateway]\ntun = \"ipsec0\"\n\n";

/// `d/main.toml` with `main_conns`, and `d/conf.d/<name>` for each fragment; every psk_file
/// the connections name relative to their file lives in `psk/` beside it.
fn tree(d: &Dir, main_conns: &str, fragments: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(d.0.join("psk")).unwrap();
    std::fs::create_dir_all(d.0.join("conf.d/psk")).unwrap();
    for dir in ["psk", "conf.d/psk"] {
        for n in ["b", "c", "d", "e"] {
            d.write(&format!("{dir}/{n}.psk"), &format!("{PSK}\n"), 0o600);
        }
    }
    for (name, body) in fragments {
        d.write(&format!("conf.d/{name}"), body, 0o644);
    }
    d.write("main.toml", &format!("{GATEWAY}{main_conns}"), 0o644)
}

fn refused(p: &Path, env: Vec<(String, String)>) -> Vec<String> {
    Config::load_with_env(p, env)
        .expect_err("config should be refused")
        .0
        .iter()
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn fragments_are_appended_in_file_name_order() {
    let d = Dir::new("frag-order");
    let main = tree(
        &d,
        &ike_conn("b", "10.2.0.0/24", "psk/b.psk", "192.0.2.2"),
        &[
            (
                "20-d.toml",
                &ike_conn("d", "10.4.0.0/24", "psk/d.psk", "192.0.2.4"),
            ),
            (
                "10-c.toml",
                &ike_conn("c", "10.3.0.0/24", "psk/c.psk", "192.0.2.3"),
            ),
            // Not fragments: other extensions, hidden (editor) files.
            ("README", "not toml at all ["),
            ("30-e.toml.bak", "[gateway]\n"),
            (".10-c.toml.swp", "[gateway]\n"),
            (".#x.toml", "[gateway]\n"),
        ],
    );
    let c = Config::load_with_env(&main, no_env()).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = c.connections.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["b", "c", "d"]);
    assert_eq!(
        c.sources,
        [
            main.clone(),
            d.0.join("conf.d/10-c.toml"),
            d.0.join("conf.d/20-d.toml")
        ]
    );
    assert_eq!(c.file, main);
    assert!(c.env_overrides.is_empty());
    let text = c.describe();
    assert!(text.starts_with("3 connections from "), "{text}");
    assert!(text.contains("conf.d/20-d.toml"), "{text}");
}

#[test]
fn no_conf_d_is_fine_but_an_unreadable_one_is_not() {
    let d = Dir::new("frag-none");
    let main = d.write("main.toml", &example(&d, "a"), 0o644);
    let c = Config::load_with_env(&main, no_env()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.sources.len(), 1);
    assert_eq!(c.sources[0], main);
    assert_eq!(
        c.describe(),
        format!("1 connection from {}", main.display())
    );
    // conf.d that is not a directory: named, not ignored.
    d.write("conf.d", "", 0o644);
    let e = refused(&main, no_env());
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(&format!("{}: cannot list: ", d.0.join("conf.d").display())),
        "{e:?}"
    );
}

#[test]
fn a_fragment_holds_connections_only() {
    let d = Dir::new("frag-gateway");
    let main = tree(
        &d,
        "",
        &[(
            "c.toml",
            &format!(
                "nonsense = 1\n[gateway]\ntun = \"ipsec9\"\n\n{}",
                ike_conn("c", "10.3.0.0/24", "psk/c.psk", "192.0.2.3")
            ),
        )],
    );
    let frag = d.0.join("conf.d/c.toml");
    assert_eq!(
        refused(&main, no_env()),
        [
            format!(
                "{}: gateway: only the main file sets gateway keys (move them to {}); a conf.d fragment holds [[connection]] tables only",
                frag.display(),
                main.display()
            ),
            format!(
                "{}: nonsense: unknown key; a conf.d fragment holds [[connection]] tables only",
                frag.display()
            ),
        ]
    );
}

#[test]
fn errors_name_the_file_and_index_that_defined_the_connection() {
    let d = Dir::new("frag-errors");
    let main = tree(
        &d,
        &ike_conn("b", "10.2.0.0/24", "psk/b.psk", "192.0.2.2"),
        &[
            (
                "c.toml",
                &format!(
                    "{}\n{}",
                    ike_conn("c", "10.3.0.0/24", "psk/c.psk", "192.0.2.3"),
                    ike_conn("d", "10.4.0.1/24", "psk/d.psk", "192.0.2.4")
                        .replace("keying = \"ike\"", "keying = \"ike\"\nfrobnicate = 1")
                ),
            ),
            (
                "e.toml",
                &ike_conn("e", "10.5.0.1/24", "psk/e.psk", "192.0.2.5"),
            ),
        ],
    );
    // An unknown key hides nothing: the rest of its connection and file are still checked.
    // (The list of valid keys grows with the schema: only its start is pinned here.)
    let errs = refused(&main, no_env());
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(
        errs[0].starts_with(&format!(
            "{}: connection[1].frobnicate: unknown key; connection keys are name, keying,",
            d.0.join("conf.d/c.toml").display()
        )),
        "{errs:?}"
    );
    assert_eq!(
        errs[1],
        format!(
            "{}: connection[1].remote_ts[0]: '10.4.0.1/24': host bits are set; did you mean 10.4.0.0/24?",
            d.0.join("conf.d/c.toml").display()
        )
    );
    assert_eq!(
        errs[2],
        format!(
            "{}: connection[0].remote_ts[0]: '10.5.0.1/24': host bits are set; did you mean 10.5.0.0/24?",
            d.0.join("conf.d/e.toml").display()
        )
    );
}

#[test]
fn duplicates_and_overlaps_across_files_name_both_places() {
    let d = Dir::new("frag-dup");
    let main = tree(
        &d,
        &format!(
            "{}\n{}",
            ike_conn("b", "10.2.0.0/24", "psk/b.psk", "192.0.2.2"),
            ike_conn("c", "10.3.0.0/24", "psk/c.psk", "192.0.2.3")
        ),
        &[(
            "x.toml",
            &format!(
                "{}\n{}",
                ike_conn("d", "10.4.0.0/24", "psk/d.psk", "192.0.2.4")
                    .replace("[\"10.4.0.0/24\"]", "[\"10.4.0.0/24\", \"10.3.0.128/25\"]"),
                ike_conn("b", "10.5.0.0/24", "psk/b.psk", "192.0.2.5")
            ),
        )],
    );
    let frag = d.0.join("conf.d/x.toml");
    assert_eq!(
        refused(&main, no_env()),
        // In the order of the file: connection[0]'s error, then connection[1]'s.
        [
            format!(
                "{}: connection[0].remote_ts[1]: 10.3.0.128/25 overlaps 10.3.0.0/24 of connection 'c' ({}: connection[1].remote_ts[0])",
                frag.display(),
                main.display()
            ),
            format!(
                "{}: connection[1].name: connection name 'b' is already used by {}: connection[0]",
                frag.display(),
                main.display()
            ),
        ]
    );
    // Within one file the other place is just the key.
    let main = d.write(
        "main.toml",
        &format!(
            "{GATEWAY}{}\n{}",
            ike_conn("b", "10.2.0.0/24", "psk/b.psk", "192.0.2.2"),
            ike_conn("b", "10.2.0.0/25", "psk/b.psk", "192.0.2.3")
        ),
        0o644,
    );
    std::fs::remove_file(&frag).unwrap();
    assert_eq!(
        refused(&main, no_env()),
        [
            format!(
                "{}: connection[1].name: connection name 'b' is already used by connection[0]",
                main.display()
            ),
            format!(
                "{}: connection[1].remote_ts[0]: 10.2.0.0/25 overlaps 10.2.0.0/24 of connection 'b' (connection[0].remote_ts[0])",
                main.display()
            ),
        ]
    );
}

#[test]
fn duplicate_inbound_spi_across_files() {
    let d = Dir::new("frag-spi");
    d.write("site.keys", KEYS, 0o600);
    let a = example(&d, "a");
    let conn = a[a.find("[[connection]]").unwrap()..].to_string();
    let main = d.write("main.toml", &a, 0o644);
    std::fs::create_dir_all(d.0.join("conf.d")).unwrap();
    let frag = d.write(
        "conf.d/c.toml",
        &conn
            .replace("site-b", "site-c")
            .replace("\"10.2.0.0/24\"", "\"10.3.0.0/24\""),
        0o644,
    );
    assert_eq!(
        refused(&main, no_env()),
        [format!(
            "{}: connection[0].tunnels[0].spi_in: inbound SPI 0xc0000201 is also used by {}: connection[0].tunnels[0].spi_in",
            frag.display(),
            main.display()
        )]
    );
}

#[test]
fn relative_secret_files_are_found_beside_the_file_that_names_them() {
    let d = Dir::new("relative");
    std::fs::create_dir_all(d.0.join("keys")).unwrap();
    d.write("keys/site.keys", KEYS, 0o600);
    let main = tree(
        &d,
        &example(&d, "a")
            .replace("[gateway]\n", "")
            .replace(d.0.join("site.keys").to_str().unwrap(), "keys/site.keys")
            .replace("tun = \"ipsec0\"", "")
            .replace("\"10.2.0.0/24\"", "\"10.9.0.0/24\""),
        &[(
            "c.toml",
            &ike_conn("c", "10.3.0.0/24", "psk/c.psk", "192.0.2.3"),
        )],
    );
    // psk/c.psk exists in both d/psk and d/conf.d/psk: make the wrong one unusable.
    d.write("psk/c.psk", "short\n", 0o600);
    let c = Config::load_with_env(&main, no_env()).unwrap_or_else(|e| panic!("{e}"));
    let Keying::Ike(k) = &c.connections[1].keying else {
        panic!("ike")
    };
    assert_eq!(k.psk.as_ref().unwrap().bytes(), PSK.as_bytes());
    // Absolute paths are used as written, and errors show the resolved path.
    std::fs::remove_file(d.0.join("conf.d/psk/c.psk")).unwrap();
    let e = refused(&main, no_env());
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(&format!(
            "{}: connection[0].psk_file: {}: cannot read: ",
            d.0.join("conf.d/c.toml").display(),
            d.0.join("conf.d/psk/c.psk").display()
        )),
        "{e:?}"
    );
}

#[test]
fn readable_secret_files_need_allow_readable_secret_file() {
    let d = Dir::new("readable");
    let main = tree(
        &d,
        &ike_conn("b", "10.2.0.0/24", "psk/b.psk", "192.0.2.2"),
        &[],
    );
    let psk = d.0.join("psk/b.psk");
    let chmod = |mode| {
        std::fs::set_permissions(&psk, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let prefix = format!(
        "{}: connection[0].psk_file: {}: ",
        main.display(),
        psk.display()
    );
    for (mode, who) in [
        (0o640, "its group"),
        (0o604, "all local users"),
        (0o644, "its group and all local users"),
    ] {
        chmod(mode);
        assert_eq!(
            refused(&main, no_env()),
            [format!(
                "{prefix}permissions {mode:04o} let {who} read this secret file; run chmod 600 on it, or set allow_readable_secret_file = true in this connection to accept that"
            )]
        );
    }
    let allowing = d.write(
        "main.toml",
        &format!(
            "{GATEWAY}{}",
            ike_conn("b", "10.2.0.0/24", "psk/b.psk", "192.0.2.2").replace(
                "keying = \"ike\"",
                "keying = \"ike\"\nallow_readable_secret_file = true"
            )
        ),
        0o644,
    );
    let c = Config::load_with_env(&allowing, no_env()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.connections.len(), 1);
    // Writable by others: refused even when reading is allowed.
    chmod(0o664);
    assert_eq!(
        refused(&allowing, no_env()),
        [format!(
            "{prefix}permissions 0664 let its group change this secret file; run chmod 600 on it (allow_readable_secret_file permits reading by others, never writing)"
        )]
    );
    // The static keying takes the key too.
    chmod(0o600);
    let t = example(&d, "a");
    d.write("site.keys", KEYS, 0o640);
    let p = d.write("static.toml", &t, 0o644);
    assert!(Config::load_with_env(&p, no_env()).is_err());
    let p = d.write(
        "static.toml",
        &t.replace(
            "esn = true",
            "esn = true\nallow_readable_secret_file = true",
        ),
        0o644,
    );
    Config::load_with_env(&p, no_env()).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn environment_overrides_gateway_keys() {
    let d = Dir::new("env-ok");
    let main = tree(
        &d,
        &ike_conn("b", "10.2.0.0/24", "psk/b.psk", "192.0.2.2"),
        &[],
    );
    let c = Config::load_with_env(
        &main,
        env(&[
            ("IRONSEC_GATEWAY__TUN", "ipsec1"),
            ("IRONSEC_GATEWAY__workers", "2"),
            ("ironsec_gateway__Metrics", "127.0.0.1:9814"),
            ("IRONSEC_GATEWAY__CONTROL_SOCKET", "/run/x.sock"),
            // Not config: the log filter, the scripts' namespace prefix, other programs'.
            ("IRONSEC_LOG", "debug"),
            ("IRONSEC_NS_PREFIX", "lab"),
            ("GATEWAY__TUN", "nope"),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.gateway.tun, "ipsec1");
    assert_eq!(c.gateway.workers, 2);
    assert_eq!(c.gateway.metrics, Some("127.0.0.1:9814".parse().unwrap()));
    assert_eq!(c.gateway.control_socket, Path::new("/run/x.sock"));
    assert_eq!(
        c.gateway.tun_mtu, 1400,
        "untouched keys keep the file's values"
    );
    assert_eq!(
        c.env_overrides,
        [
            "IRONSEC_GATEWAY__CONTROL_SOCKET",
            "IRONSEC_GATEWAY__TUN",
            "IRONSEC_GATEWAY__workers",
            "ironsec_gateway__Metrics"
        ]
    );
    assert!(c.describe().ends_with(
        "; gateway keys from the environment: IRONSEC_GATEWAY__CONTROL_SOCKET, IRONSEC_GATEWAY__TUN, IRONSEC_GATEWAY__workers, ironsec_gateway__Metrics"
    ));
    // A number is text where the key wants text.
    let c = Config::load_with_env(&main, env(&[("IRONSEC_GATEWAY__TUN", "1234")])).unwrap();
    assert_eq!(c.gateway.tun, "1234");
    // Without overrides, the file's values.
    let c = Config::load_with_env(&main, no_env()).unwrap();
    assert_eq!(c.gateway.tun, "ipsec0");
}

#[test]
fn bad_environment_overrides_name_the_variable() {
    let d = Dir::new("env-bad");
    let main = tree(
        &d,
        &ike_conn("b", "10.2.0.0/24", "psk/b.psk", "192.0.2.2"),
        &[],
    );
    let keys = schema::GATEWAY_KEYS.join(", ");
    assert_eq!(
        refused(
            &main,
            env(&[
                ("IRONSEC_GATEWAY__TUNN", "ipsec1"),
                ("IRONSEC_GATEWAY__WORKERS", "many"),
                ("IRONSEC_GATEWAY__TUN", "this-name-is-too-long"),
                ("IRONSEC_GATEWAY__METRICS", "localhost"),
                ("IRONSEC_GATEWAY_PORT", "4501"),
                ("IRONSEC_GATEWAY__", "x"),
            ])
        ),
        [
            "environment: IRONSEC_GATEWAY_PORT: not a gateway override: they are named IRONSEC_GATEWAY__<KEY>, with two underscores before the key".to_string(),
            format!("environment: IRONSEC_GATEWAY__: unknown key ''; gateway keys are {keys}"),
            "environment: IRONSEC_GATEWAY__TUNN: unknown key 'tunn' (did you mean IRONSEC_GATEWAY__TUN?)".to_string(),
            "environment: IRONSEC_GATEWAY__WORKERS: 'many': invalid type: string \"many\", expected an integer".to_string(),
            "environment: IRONSEC_GATEWAY__TUN: 'this-name-is-too-long' is not a valid interface name (1-15 characters, no '/', ' ' or '%')".to_string(),
            "environment: IRONSEC_GATEWAY__METRICS: 'localhost' is not ADDRESS:PORT (e.g. \"127.0.0.1:14500\" or \"[::1]:14500\") or \"off\"".to_string(),
        ]
    );
    assert_eq!(
        refused(
            &main,
            env(&[
                ("IRONSEC_GATEWAY__TUN", "ipsec1"),
                ("IRONSEC_GATEWAY__tun", "ipsec2")
            ])
        ),
        ["environment: IRONSEC_GATEWAY__tun: gateway.tun is already set by IRONSEC_GATEWAY__TUN"]
    );
}

/// The environment's variables may name only gateway keys: the list must match the schema.
#[test]
fn gateway_keys_list_matches_the_schema() {
    let raw = config::Config::builder()
        .set_override("gateway.no_such_key", 1)
        .unwrap()
        .build()
        .unwrap();
    let e = serde_path_to_error::deserialize::<_, schema::FileSchema>(raw).unwrap_err();
    let msg = strip_location(&e.into_inner().to_string());
    let listed: Vec<&str> = msg
        .split("expected one of ")
        .nth(1)
        .unwrap_or_else(|| panic!("{msg}"))
        .split(", ")
        .map(|k| k.trim().trim_matches('`'))
        .collect();
    assert_eq!(listed, schema::GATEWAY_KEYS);
}

#[test]
fn secrets_never_appear_in_errors() {
    let d = Dir::new("secret-errors");
    let secret = "hunter2-but-much-longer-9f8e7d";
    // A TOML error on the line that holds an inline PSK: position only, not the line.
    let p = d.write(
        "c.toml",
        &format!("{GATEWAY}[[connection]]\nname = \"b\"\npsk = \"{secret}\n"),
        0o644,
    );
    let e = refused(&p, no_env());
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(&format!(
            "{}: not valid TOML at line 6, column",
            p.display()
        )),
        "{e:?}"
    );
    // A mistyped PSK is not echoed either.
    let t = ike_conn("b", "10.2.0.0/24", "x", "192.0.2.2")
        .replace("psk_file = \"x\"", &format!("psk = [\"{secret}\"]"));
    let p = d.write("c.toml", &format!("{GATEWAY}{t}"), 0o644);
    let e = refused(&p, no_env());
    assert_eq!(
        e,
        [format!(
            "{}: connection[0].psk: expected a quoted string (the value is not shown: it is a secret)",
            p.display()
        )]
    );
    // A short PSK in a file: the file's key, not the value.
    std::fs::create_dir_all(d.0.join("psk")).unwrap();
    d.write("psk/b.psk", "0x0011223344\n", 0o600);
    let p = d.write(
        "c.toml",
        &format!(
            "{GATEWAY}{}",
            ike_conn("b", "10.2.0.0/24", "psk/b.psk", "192.0.2.2")
        ),
        0o644,
    );
    let e = refused(&p, no_env());
    assert_eq!(
        e,
        [format!(
            "{}: connection[0].psk_file: a PSK shorter than 16 bytes can be guessed offline from one captured handshake",
            p.display()
        )]
    );
    for text in e {
        assert!(!text.contains("0011223344") && !text.contains(secret));
    }
}

#[test]
fn bandwidth_rates_in_operator_units() {
    use super::schema::parse_bandwidth;
    assert_eq!(parse_bandwidth("200M"), Ok(200_000_000));
    assert_eq!(parse_bandwidth("200 Mbit"), Ok(200_000_000));
    assert_eq!(parse_bandwidth("1.5Gbit/s"), Ok(1_500_000_000));
    assert_eq!(parse_bandwidth("500k"), Ok(500_000));
    assert_eq!(parse_bandwidth("64000"), Ok(64_000));
    assert!(parse_bandwidth("fast")
        .unwrap_err()
        .contains("'fast' is not a rate"));
    assert!(parse_bandwidth("-5M").is_err());
}

/// A value for each gateway key that differs from the shipped example's and the default.
/// `d` holds the files a key names.
fn sample(d: &Dir, k: GatewayKey) -> String {
    if k == GatewayKey::MetricsTokenFile {
        let p = d.write("metrics.token", "t0ken\n", 0o600);
        return format!("\"{}\"", p.display());
    }
    if matches!(k, GatewayKey::CaDir | GatewayKey::CrlDir) {
        // An empty directory: no anchors or CRLs, but a different value.
        let p = d.0.join(format!("empty-{}", k.name()));
        std::fs::create_dir_all(&p).unwrap();
        return format!("\"{}\"", p.display());
    }
    match k {
        GatewayKey::Tun => "\"ipsec9\"",
        GatewayKey::TunMtu => "1300",
        GatewayKey::TunTxqueuelen => "2000",
        GatewayKey::Port => "4600",
        GatewayKey::IkePort => "600",
        GatewayKey::ControlSocket => "\"/run/ironsec/other.sock\"",
        GatewayKey::Workers => "3",
        GatewayKey::ReplayWindow => "2048",
        GatewayKey::SocketBuffer => "2097152",
        GatewayKey::Batch => "32",
        GatewayKey::Metrics => "\"127.0.0.1:9814\"",
        GatewayKey::Bandwidth => "\"100M\"",
        GatewayKey::UdpOffload => "false",
        GatewayKey::TunOffload => "false",
        GatewayKey::Udp6ZeroChecksum => "\"accept\"",
        GatewayKey::CookieThreshold => "20",
        GatewayKey::HalfOpenLimit => "500",
        GatewayKey::IkeFragmentSize => "576",
        GatewayKey::SharedAddresses => "[\"192.0.2.1\"]",
        GatewayKey::Protect => "[\"10.128.0.0/10\"]",
        GatewayKey::MetricsTokenFile | GatewayKey::CaDir | GatewayKey::CrlDir => unreachable!(),
    }
    .to_string()
}

/// The shipped example with one gateway key set to `value` (its own line replaced).
fn example_with(d: &Dir, key: GatewayKey, value: &str) -> Config {
    let t: String = example(d, "a")
        .lines()
        .filter(|l| {
            l.split('=')
                .next()
                .is_none_or(|lhs| lhs.trim() != key.name())
        })
        .map(|l| {
            if l.trim() == "[gateway]" {
                format!("{l}\n{} = {value}\n", key.name())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let p = d.write("c.toml", &t, 0o644);
    Config::load(&p).unwrap_or_else(|e| panic!("{key} = {value}: {e}"))
}

/// The one list of gateway keys ties the file's schema, the model, the reload diff and the
/// fast path's settings together: each key, set in a file, changes its own value in the model
/// and nothing else; a reload refuses it exactly when it applies at start; and the fast path's
/// settings change exactly for the keys that set the fast path up.
#[test]
fn each_gateway_key_reaches_model_reload_diff_and_fast_path() {
    let d = Dir::new("gw-keys");
    let base = {
        let p = d.write("c.toml", &example(&d, "a"), 0o644);
        Config::load(&p).unwrap()
    };
    let dp = |c: &Config| format!("{:?}", c.dataplane_config());
    for key in GatewayKey::ALL {
        let changed = example_with(&d, key, &sample(&d, key));
        for other in GatewayKey::ALL {
            let (a, b) = (base.gateway.shown(other), changed.gateway.shown(other));
            if other == key {
                assert_ne!(a, b, "setting {key} did not change gateway.{key}");
            } else {
                assert_eq!(a, b, "setting {key} changed gateway.{other}");
            }
        }
        let refused: Vec<GatewayKey> = base
            .gateway
            .restart_changes(&changed.gateway)
            .into_iter()
            .map(|n| n.key)
            .collect();
        match key.applies() {
            Applies::Live => assert!(refused.is_empty(), "{key}: {refused:?}"),
            Applies::AtStart(_) => assert_eq!(refused, [key]),
        }
        assert_eq!(
            dp(&base) != dp(&changed),
            key.applies() == Applies::AtStart(SetsUp::FastPath),
            "{key}: the fast path's settings and the key's declared role disagree"
        );
    }
}

/// Defaults live in the schema's serde attributes and in `GatewaySchema::default()` (used when
/// the file has no `[gateway]` table): both must say the same.
#[test]
fn gateway_defaults_agree_with_or_without_the_table() {
    let with: schema::FileSchema = toml::from_str("[gateway]\n").unwrap();
    let without: schema::FileSchema = toml::from_str("").unwrap();
    assert_eq!(
        format!("{:?}", with.gateway),
        format!("{:?}", without.gateway)
    );
    assert_eq!(
        format!("{:?}", without.gateway),
        format!("{:?}", schema::GatewaySchema::default())
    );
}

/// The metrics endpoint is on by default on loopback, `"off"` turns it off, and a token file
/// must be private, hold a token and serve an endpoint that is on; the token never shows.
#[test]
fn metrics_default_on_off_and_token_file() {
    let d = Dir::new("metrics");
    let c = example_with(&d, GatewayKey::Bandwidth, "\"100M\"");
    assert_eq!(c.gateway.metrics, Some("127.0.0.1:14500".parse().unwrap()));
    assert!(c.gateway.metrics_token.is_none());
    let off = example_with(&d, GatewayKey::Metrics, "\"off\"");
    assert_eq!(off.gateway.metrics, None);
    let tok = d.write("tok", "  correct horse\n", 0o600);
    let c = example_with(
        &d,
        GatewayKey::MetricsTokenFile,
        &format!("\"{}\"", tok.display()),
    );
    let (path, t) = c.gateway.metrics_token.as_ref().unwrap();
    assert_eq!(path, &tok);
    assert!(t.matches(b"correct horse"));
    assert!(!format!("{:?}", c.gateway).contains("horse"));
    assert!(!c
        .gateway
        .shown(GatewayKey::MetricsTokenFile)
        .contains("horse"));
    let load = |body: &str| {
        let t = example(&d, "a").replace("[gateway]", &format!("[gateway]\n{body}"));
        let p = d.write("bad.toml", &t, 0o644);
        Config::load(&p).unwrap_err().to_string()
    };
    let open = d.write("open", "t0ken\n", 0o644);
    let e = load(&format!("metrics_token_file = \"{}\"", open.display()));
    assert!(
        e.contains("gateway.metrics_token_file") && e.contains("chmod 600"),
        "{e}"
    );
    let empty = d.write("empty", "\n", 0o600);
    let e = load(&format!("metrics_token_file = \"{}\"", empty.display()));
    assert!(e.contains("holds no token"), "{e}");
    let e = load(&format!(
        "metrics = \"off\"\nmetrics_token_file = \"{}\"",
        tok.display()
    ));
    assert!(e.contains("nothing would use it"), "{e}");
    assert!(!e.contains("horse"));
}

/// What a refused reload tells the operator for a start-only key.
#[test]
fn restart_change_message() {
    let d = Dir::new("gw-msg");
    let base = example_with(&d, GatewayKey::Workers, "0");
    let new = example_with(&d, GatewayKey::Workers, "3");
    assert_eq!(
        base.gateway.restart_changes(&new.gateway)[0].to_string(),
        "gateway.workers: changed from 0 to 3; gateway settings apply at start (restart ironsecd)"
    );
}

#[test]
fn volumes_in_operator_units() {
    use schema::parse_volume;
    assert_eq!(parse_volume("500MB"), Ok(500_000_000));
    assert_eq!(parse_volume("2GiB"), Ok(2 << 30));
    assert_eq!(parse_volume("102400000KB"), Ok(102_400_000_000));
    assert_eq!(parse_volume("1.5 M"), Ok(1_500_000));
    assert_eq!(parse_volume("100k"), Ok(100_000));
    assert_eq!(parse_volume("12345"), Ok(12345));
    assert!(parse_volume("lots")
        .unwrap_err()
        .contains("'lots' is not an amount"));
    assert!(parse_volume("MB").is_err());
    assert!(parse_volume("-5MB").is_err());
    assert!(parse_volume("99999999999TiB").is_err(), "overflow");
}

/// The IKE example with `extra` lines added to its connection.
fn ike_with(d: &Dir, extra: &str) -> String {
    ike_example(d, "a").replace(
        "rekey_time = 3600 ",
        &format!("{extra}\nrekey_time = 3600 "),
    )
}

fn volume_of(d: &Dir, extra: &str) -> (VolumeLimits, Option<std::time::Duration>) {
    let p = d.write("c.toml", &ike_with(d, extra), 0o644);
    let c = Config::load(&p).unwrap_or_else(|e| panic!("{extra}: {e}"));
    let Keying::Ike(k) = &c.connections[0].keying else {
        panic!("ike example")
    };
    (k.volume, k.reauth_time)
}

#[test]
fn volume_lifetimes_default_like_strongswan_and_rekey_comes_first() {
    let d = Dir::new("volume");
    let none = volume_of(&d, "");
    assert_eq!(none, (VolumeLimits::default(), None));
    // rekey alone: life 10% later (strongSwan's default).
    let (v, _) = volume_of(&d, "rekey_bytes = \"100MB\"\nrekey_packets = 1000000");
    assert_eq!(v.rekey_bytes, Some(100_000_000));
    assert_eq!(v.life_bytes, Some(110_000_000));
    assert_eq!(v.rekey_packets, Some(1_000_000));
    assert_eq!(v.life_packets, Some(1_100_000));
    // life alone: rekey at 90%, so the SA is replaced before it is deleted.
    let (v, _) = volume_of(&d, "life_bytes = \"102400000KiB\"");
    assert_eq!(v.life_bytes, Some(102_400_000 * 1024));
    assert_eq!(v.rekey_bytes, Some(102_400_000 * 1024 / 10 * 9));
    assert_eq!(v.rekey_packets, None);
    // 0 = none, as in swanctl.conf.
    assert_eq!(volume_of(&d, "rekey_bytes = 0").0, VolumeLimits::default());
    let (v, reauth) = volume_of(
        &d,
        "rekey_bytes = \"4MB\"\nlife_bytes = \"16MB\"\nreauth_time = 7200",
    );
    assert_eq!(
        (v.rekey_bytes, v.life_bytes),
        (Some(4_000_000), Some(16_000_000))
    );
    assert_eq!(reauth, Some(std::time::Duration::from_secs(7200)));
    assert_eq!(volume_of(&d, "reauth_time = 0").1, None);

    let e = errors(
        &d,
        &ike_with(&d, "rekey_bytes = \"2GB\"\nlife_bytes = \"1GB\""),
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].key, "connection[0].rekey_bytes");
    assert_eq!(
        e[0].reason,
        "2000000000 is not below life_bytes (1000000000): the SA must be rekeyed before its hard limit deletes it"
    );
    let e = errors(
        &d,
        &ike_with(&d, "rekey_packets = 10\nlife_bytes = \"1kB\""),
    );
    let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        ["connection[0].rekey_bytes", "connection[0].rekey_packets"],
        "{e:?}"
    );
    assert!(e[1].reason.starts_with("10 is below 1000"), "{}", e[1]);
    let e = errors(&d, &ike_with(&d, "life_bytes = \"lots\""));
    assert!(
        e[0].to_string().contains("'lots' is not an amount"),
        "{e:?}"
    );
    let e = errors(&d, &ike_with(&d, "reauth_time = 999999999999"));
    assert_eq!(e[0].key, "connection[0].reauth_time");
}

#[test]
fn volume_keys_are_refused_for_static_keying() {
    let d = Dir::new("volume-static");
    let t = example(&d, "a").replace(
        "keying = \"static\"",
        "keying = \"static\"\nrekey_bytes = \"10MB\"\nreauth_time = 60",
    );
    let keys: Vec<String> = errors(&d, &t).into_iter().map(|e| e.key).collect();
    assert!(
        keys.contains(&"connection[0].rekey_bytes".to_string()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"connection[0].reauth_time".to_string()),
        "{keys:?}"
    );
}

#[test]
fn engine_settings_are_range_checked() {
    let d = Dir::new("gw-engine");
    let with =
        |extra: &str| example(&d, "a").replace("[gateway]\n", &format!("[gateway]\n{extra}\n"));
    let e = errors(&d, &with("ike_fragment_size = 500"));
    assert_eq!(e[0].key, "gateway.ike_fragment_size");
    assert!(
        e[0].reason.starts_with("500 is outside 576..=65000"),
        "{}",
        e[0]
    );
    let e = errors(&d, &with("cookie_threshold = 50\nhalf_open_limit = 50"));
    assert_eq!(e[0].key, "gateway.half_open_limit");
    assert_eq!(
        e[0].reason,
        "50 is not above cookie_threshold (50): requests would be dropped before cookies are ever asked for"
    );
    let e = errors(&d, &with("half_open_limit = 0"));
    assert_eq!(e[0].reason, "0 is outside 1..=1000000");
    let p = d.write(
        "c.toml",
        &with("cookie_threshold = 0\nike_fragment_size = 576"),
        0o644,
    );
    let c = Config::load(&p).unwrap();
    assert_eq!(c.gateway.cookie_threshold, 0, "0 = cookies always");
    assert_eq!(c.gateway.ike_fragment_size, 576);
}

#[test]
fn catch_all_remote_selectors_are_refused_with_a_pointer_to_route_based() {
    let d = Dir::new("catch-all");
    for (ts, idx) in [("0.0.0.0/0", 1), ("::/0", 1)] {
        let t = example(&d, "a").replace(
            "remote_ts = [\"10.2.0.0/24\"]",
            &format!("remote_ts = [\"10.2.0.0/24\", \"{ts}\"]"),
        );
        let e = errors(&d, &t);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].key, format!("connection[0].remote_ts[{idx}]"));
        assert!(
            e[0].reason.starts_with(&format!("{ts} as a policy-based")),
            "{}",
            e[0]
        );
        assert!(e[0].reason.contains("default route"), "{}", e[0]);
        assert!(e[0].reason.contains("route-based"), "{}", e[0]);
        assert!(e[0].reason.contains("interface = "), "{}", e[0]);
    }
    // Halves of the address space are ordinary selectors, as long as they leave the peer
    // (192.0.2.2 in the example) out.
    let t = example(&d, "a").replace(
        "remote_ts = [\"10.2.0.0/24\"]",
        "remote_ts = [\"0.0.0.0/1\", \"128.0.0.0/2\"]",
    );
    let p = d.write("c.toml", &t, 0o644);
    Config::load(&p).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_remote_selector_holding_the_peer_is_refused() {
    let d = Dir::new("peer-inside");
    let t = example(&d, "a").replace(
        "remote_ts = [\"10.2.0.0/24\"]",
        "remote_ts = [\"0.0.0.0/1\", \"128.0.0.0/1\"]",
    );
    let e = errors(&d, &t);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].key, "connection[0].remote_ts[1]");
    assert_eq!(
        e[0].reason,
        "128.0.0.0/1 contains 192.0.2.2, the peer of tunnels[0]: the tunnel's own IKE and ESP \
         packets would be routed into the tunnel; list the remote site's subnets without the \
         peer's address"
    );
}

#[test]
fn mss_clamp_path_mtu_and_copy_dscp() {
    let d = Dir::new("mtu");
    let load = |extra: &str| {
        let t = example(&d, "a").replace("esn = true", &format!("esn = true\n{extra}"));
        let p = d.write("c.toml", &t, 0o644);
        Config::load(&p)
    };
    let c = load("").unwrap();
    assert_eq!(c.connections[0].mss_clamp, MssClamp::Auto, "on by default");
    assert_eq!(c.connections[0].path_mtu, PathMtu::Auto);
    let c = load("mss_clamp = 1350\npath_mtu = 1280").unwrap();
    assert_eq!(c.connections[0].mss_clamp, MssClamp::Fixed(1350));
    assert_eq!(c.connections[0].path_mtu, PathMtu::Fixed(1280));
    let c = load("mss_clamp = \"off\"\npath_mtu = \"auto\"").unwrap();
    assert_eq!(c.connections[0].mss_clamp, MssClamp::Off);
    assert_eq!(
        c.connections[0].copy_dscp,
        CopyDscp::Out,
        "strongSwan's default"
    );
    let c = load("copy_dscp = \"no\"").unwrap();
    assert_eq!(c.connections[0].copy_dscp, CopyDscp::No);
    for (w, v) in [("in", CopyDscp::In), ("yes", CopyDscp::Yes)] {
        let c = load(&format!("copy_dscp = \"{w}\"")).unwrap();
        assert_eq!(c.connections[0].copy_dscp, v);
    }
    for (extra, key, why) in [
        ("mss_clamp = 100", "mss_clamp", "536..=9000"),
        ("mss_clamp = \"yes\"", "mss_clamp", "\"auto\", \"off\""),
        ("path_mtu = 1000", "path_mtu", "1280..=9000"),
        ("path_mtu = \"off\"", "path_mtu", "\"auto\""),
        (
            "copy_dscp = \"maybe\"",
            "copy_dscp",
            "\"out\", \"in\", \"yes\" or \"no\"",
        ),
    ] {
        let e = load(extra).expect_err(extra).0;
        assert_eq!(e.len(), 1, "{extra}");
        assert_eq!(e[0].key, format!("connection[0].{key}"));
        assert!(e[0].reason.contains(why), "{}", e[0]);
    }
}

#[test]
fn selectors_with_protocol_and_ports() {
    let d = Dir::new("selectors");
    let main = tree(
        &d,
        &format!(
            "{}\n{}",
            ike_conn("web", "10.2.0.0/24[tcp/443]", "psk/b.psk", "192.0.2.2")
                .replace("[\"10.1.0.0/24\"]", "[\"10.1.0.0/24[tcp]\"]"),
            // The same subnet for everything else, on another connection: allowed, the
            // narrower selector wins in the fast path.
            ike_conn("rest", "10.2.0.0/24", "psk/c.psk", "192.0.2.3")
        ),
        &[],
    );
    let c = Config::load_with_env(&main, no_env()).unwrap_or_else(|e| panic!("{e}"));
    let web = &c.connections[0];
    assert_eq!(web.remote_ts, ["10.2.0.0/24".parse().unwrap()]);
    assert_eq!(
        web.remote_selectors,
        ["10.2.0.0/24[tcp/443]".parse::<Selector>().unwrap()]
    );
    assert_eq!(web.remote_selectors[0].ports.proto, 6);
    assert_eq!(
        (
            web.remote_selectors[0].ports.start,
            web.remote_selectors[0].ports.end
        ),
        (443, 443)
    );
    assert_eq!(web.local_selectors[0].to_string(), "10.1.0.0/24[tcp]");
    assert!(c.connections[1].remote_selectors[0].ports.is_any());

    // Bad selectors are refused with file, key and reason; the same subnet with the same
    // protocol and ports on two connections is still an overlap.
    let main = d.write(
        "main.toml",
        &format!(
            "{GATEWAY}{}\n{}\n{}",
            ike_conn("a", "10.2.0.0/24[tcp/99999]", "psk/b.psk", "192.0.2.2"),
            ike_conn("b", "10.3.0.0/24[udp/53]", "psk/c.psk", "192.0.2.3"),
            ike_conn("c", "10.3.0.0/25[udp/53]", "psk/c.psk", "192.0.2.4")
        ),
        0o644,
    );
    assert_eq!(
        refused(&main, no_env()),
        [
            format!(
                "{}: connection[0].remote_ts[0]: '10.2.0.0/24[tcp/99999]': '99999' is not a port, a port range like 1024-65535, %any or opaque",
                main.display()
            ),
            format!(
                "{}: connection[2].remote_ts[0]: 10.3.0.0/25[udp/53] overlaps 10.3.0.0/24[udp/53] of connection 'b' (connection[1].remote_ts[0])",
                main.display()
            ),
        ]
    );
}

#[test]
fn nat_keepalive_defaults_to_20_s_and_0_turns_it_off() {
    let d = Dir::new("nat-keepalive");
    let base = ike_example(&d, "a");
    let with =
        |extra: &str| base.replace("keying = \"ike\"", &format!("keying = \"ike\"\n{extra}"));
    let keepalive = |toml: &str| {
        let p = d.write("c.toml", toml, 0o644);
        let c = Config::load(&p).unwrap_or_else(|e| panic!("{e}"));
        let Keying::Ike(k) = &c.connections[0].keying else {
            panic!("ike example")
        };
        k.nat_keepalive
    };
    assert_eq!(keepalive(&base), Some(std::time::Duration::from_secs(20)));
    assert_eq!(keepalive(&with("nat_keepalive = 0")), None);
    assert_eq!(
        keepalive(&with("nat_keepalive = 5")),
        Some(std::time::Duration::from_secs(5))
    );
    let e = errors(&d, &with("nat_keepalive = 7200"));
    assert_eq!(e[0].key, "connection[0].nat_keepalive", "{e:?}");
    assert!(e[0].reason.contains("1..=3600"), "{}", e[0]);
}

#[test]
fn a_peer_given_by_name_is_resolved_or_refused_with_the_reason() {
    let d = Dir::new("peer-name");
    let base = ike_example(&d, "a");
    let named = |name: &str| {
        base.lines()
            .map(|l| {
                if l.starts_with("tunnels = ") {
                    format!("tunnels = [ {{ local = \"127.0.0.1\", remote = \"{name}\" }} ]\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect::<String>()
    };
    let p = d.write("c.toml", &named("localhost"), 0o644);
    let c = Config::load(&p).unwrap_or_else(|e| panic!("{e}"));
    let Keying::Ike(k) = &c.connections[0].keying else {
        panic!("ike example")
    };
    assert_eq!(
        k.tunnels[0].remote,
        "127.0.0.1".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(k.tunnels[0].remote_name.as_deref(), Some("localhost"));
    let e = errors(&d, &named("no-such-peer.invalid"));
    assert_eq!(e[0].key, "connection[0].tunnels[0].remote", "{e:?}");
    assert!(
        e[0].reason
            .contains("cannot resolve 'no-such-peer.invalid'"),
        "{}",
        e[0]
    );
    let e = errors(&d, &named("10.0.0.300"));
    assert!(e[0].reason.contains("not an IP address"), "{}", e[0]);
}

// ------------------------------------------------------------------------------------------
// Every error of a file in one run (serde alone stops at the first), with "did you mean".

/// The lines of a refused config, with the temporary directory shown as `D`.
fn refused_in(d: &Dir, p: &Path, env: Vec<(String, String)>) -> Vec<String> {
    let dir = d.0.display().to_string();
    refused(p, env)
        .into_iter()
        .map(|l| l.replace(&dir, "D"))
        .collect()
}

#[test]
fn four_kinds_of_error_in_four_tables_are_all_reported() {
    let d = Dir::new("four-errors");
    let main = tree(
        &d,
        &format!(
            "{}\n{}\n{}",
            ike_conn("b", "10.2.0.0/24", "psk/b.psk", "192.0.2.2")
                .replace("remote_ts =", "remote_tss ="),
            ike_conn("c", "10.3.0.0/24", "psk/c.psk", "192.0.2.3")
                .replace("keying = \"ike\"", "keying = \"ikev2\""),
            ike_conn("d", "10.4.0.1/24", "psk/d.psk", "192.0.2.4"),
        ),
        &[],
    );
    std::fs::write(
        &main,
        std::fs::read_to_string(&main)
            .unwrap()
            .replace("[gateway]\n", "[gateway]\ntun_mtu = \"big\"\n"),
    )
    .unwrap();
    assert_eq!(
        refused_in(&d, &main, no_env()),
        [
            "D/main.toml: gateway.tun_mtu: invalid type: string \"big\", expected an integer",
            "D/main.toml: connection[0].remote_tss: unknown key (did you mean \"remote_ts\"?)",
            // The misspelt key leaves remote_ts absent: that is reported too, it is the fix.
            "D/main.toml: connection[0].remote_ts: required key is missing",
            "D/main.toml: connection[1].keying: 'ikev2' is not a keying: expected \"static\", \"ike\" (did you mean \"ike\"?)",
            "D/main.toml: connection[2].remote_ts[0]: '10.4.0.1/24': host bits are set; did you mean 10.4.0.0/24?",
        ]
    );
}

#[test]
fn one_connection_with_many_problems_shows_them_all() {
    let d = Dir::new("many-in-one");
    let conn = "[[connection]]\nkeying = \"ike\"\nlocal_id = \"gw-a.example\"\nremote_id = \"c.example\"\n\
                psk_file = \"psk/c.psk\"\nstart_action = \"trapp\"\nmode = \"active-activ\"\n\
                rekey_bytes = \"lots\"\nlocal_ts = [\"10.1.0.0/24\"]\n\
                tunnels = [ { local = \"192.0.2.1\", remot = \"192.0.2.3\", weight = \"x\" }, 5 ]\n";
    let main = tree(&d, conn, &[]);
    assert_eq!(
        refused_in(&d, &main, no_env()),
        [
            "D/main.toml: connection[0].tunnels[0].remot: unknown key (did you mean \"remote\"?)",
            "D/main.toml: connection[0].tunnels[1]: expected a table such as { local = \"192.0.2.1\", remote = \"198.51.100.1\" }",
            "D/main.toml: connection[0].mode: 'active-activ' is not a mode: expected \"active-standby\", \"active-active\" (did you mean \"active-active\"?)",
            "D/main.toml: connection[0].rekey_bytes: 'lots' is not an amount: expected an integer or a number with k, M, G, T (x1000) or Ki, Mi, Gi, Ti (x1024), e.g. \"500MB\"",
            "D/main.toml: connection[0].start_action: 'trapp' is not a start_action: expected \"start\", \"trap\", \"none\" (did you mean \"trap\"?)",
            "D/main.toml: connection[0].name: required key is missing",
            "D/main.toml: connection[0].remote_ts: required key is missing",
        ]
    );
}

#[test]
fn errors_in_the_main_file_and_fragments_come_together() {
    let d = Dir::new("frag-and-main");
    let main = tree(
        &d,
        &ike_conn("b", "10.2.0.0/24", "psk/b.psk", "192.0.2.2").replace(
            "keying = \"ike\"",
            "keying = \"ike\"\nesp_proposal = [\"aes128gcm16\"]",
        ),
        &[
            (
                "c.toml",
                &format!(
                    "[[connections]]\nname = \"x\"\n\n{}",
                    ike_conn("c", "10.3.0.0/24", "psk/c.psk", "192.0.2.3")
                        .replace("keying = \"ike\"", "keying = \"statc\"")
                ),
            ),
            (
                "d.toml",
                &ike_conn("d", "10.4.0.0/24", "psk/d.psk", "192.0.2.4")
                    .replace("tunnels =", "tunnels = 5\n#"),
            ),
        ],
    );
    assert_eq!(
        refused_in(&d, &main, no_env()),
        [
            "D/main.toml: connection[0].esp_proposal: unknown key (did you mean \"esp_proposals\"?)",
            "D/conf.d/c.toml: connections: unknown key (did you mean \"connection\"?); a conf.d fragment holds [[connection]] tables only",
            "D/conf.d/c.toml: connection[0].keying: 'statc' is not a keying: expected \"static\", \"ike\" (did you mean \"static\"?)",
            "D/conf.d/d.toml: connection[0].tunnels: invalid type: integer `5`, expected a sequence",
        ]
    );
    // The main file's own top level gets suggestions as well.
    let d = Dir::new("top-level");
    let p = d.write(
        "top.toml",
        "[gateways]\ntun = \"ipsec0\"\n[[conection]]\nname = \"x\"\n[[zzz]]\n",
        0o644,
    );
    assert_eq!(
        refused_in(&d, &p, no_env()),
        [
            "D/top.toml: conection: unknown key (did you mean \"connection\"?)",
            "D/top.toml: gateways: unknown key (did you mean \"gateway\"?)",
            "D/top.toml: zzz: unknown key; the top-level keys are gateway, connection, drain",
        ]
    );
}

#[test]
fn a_misspelt_environment_variable_is_answered_with_the_right_one() {
    let d = Dir::new("env-typo");
    let main = tree(
        &d,
        &ike_conn("b", "10.2.0.0/24", "psk/b.psk", "192.0.2.2"),
        &[],
    );
    assert_eq!(
        refused_in(
            &d,
            &main,
            env(&[
                ("IRONSEC_GATEWAY__METRIC", "127.0.0.1:9814"),
                ("IRONSEC_GATEWAY__TUN_MUT", "1400"),
            ])
        ),
        [
            "environment: IRONSEC_GATEWAY__METRIC: unknown key 'metric' (did you mean IRONSEC_GATEWAY__METRICS?)",
            "environment: IRONSEC_GATEWAY__TUN_MUT: unknown key 'tun_mut' (did you mean IRONSEC_GATEWAY__TUN_MTU?)",
        ]
    );
}

/// Values of the other words a key takes get a suggestion too; a far-off one gets the list only.
#[test]
fn misspelt_words_get_a_suggestion() {
    let d = Dir::new("words");
    let main = tree(
        &d,
        &ike_conn("b", "10.2.0.0/24", "psk/b.psk", "192.0.2.2").replace(
            "keying = \"ike\"",
            "keying = \"ike\"\nclose_action = \"sometimes\"\nmss_clamp = \"of\"\npath_mtu = \"aut\"",
        ),
        &[],
    );
    assert_eq!(
        refused_in(&d, &main, no_env()),
        [
            "D/main.toml: connection[0].close_action: 'sometimes' is not a close_action: expected \"none\", \"trap\", \"restart\"",
            "D/main.toml: connection[0].mss_clamp: 'of' is not an MSS clamp: expected \"auto\", \"off\" or an MSS in 536..=9000 (did you mean \"off\"?)",
            "D/main.toml: connection[0].path_mtu: 'aut' is not a path MTU: expected \"auto\" or bytes in 1280..=9000 (did you mean \"auto\"?)",
        ]
    );
}

/// The key lists unknown keys are checked against are the ones serde itself refuses unknown
/// keys with: the same derive, no second list to keep in step.
#[test]
fn key_lists_are_the_schema_types_own() {
    fn serde_list<T: serde::de::DeserializeOwned + std::fmt::Debug>() -> Vec<String> {
        let raw = config::Config::builder()
            .set_override("no_such_key", 1)
            .unwrap()
            .build()
            .unwrap();
        let msg = raw.try_deserialize::<T>().unwrap_err().to_string();
        msg.split("expected one of ")
            .nth(1)
            .unwrap_or_else(|| panic!("{msg}"))
            .split(", ")
            .map(|k| k.trim().trim_matches('`').to_string())
            .collect()
    }
    use schema::{keys_of, ConnectionSchema, DrainSchema, FileSchema, GatewaySchema, TunnelSchema};
    assert_eq!(
        serde_list::<ConnectionSchema>(),
        keys_of::<ConnectionSchema>()
    );
    assert_eq!(serde_list::<TunnelSchema>(), keys_of::<TunnelSchema>());
    assert_eq!(serde_list::<GatewaySchema>(), keys_of::<GatewaySchema>());
    assert_eq!(keys_of::<GatewaySchema>(), schema::GATEWAY_KEYS);
    assert_eq!(keys_of::<FileSchema>(), ["gateway", "connection", "drain"]);
    assert_eq!(serde_list::<DrainSchema>(), keys_of::<DrainSchema>());
    assert!(keys_of::<ConnectionSchema>().contains(&"esp_proposals"));
}

/// A value refused while reading is not blamed twice: a bad `tunnels` entry does not also
/// make the connection "need at least one tunnel", a bad `psk` not "require psk_file".
#[test]
fn a_refused_value_is_reported_once() {
    let d = Dir::new("once");
    let main = tree(
        &d,
        &ike_conn("b", "10.2.0.0/24", "psk/b.psk", "192.0.2.2")
            .replace(
                "psk_file = \"psk/b.psk\"",
                "psk = [\"hunter2-but-much-longer-9f8e7d\"]",
            )
            .replace("tunnels = [", "tunnels = [ 7, "),
        &[],
    );
    let got = refused_in(&d, &main, no_env());
    assert_eq!(
        got,
        [
            "D/main.toml: connection[0].tunnels[0]: expected a table such as { local = \"192.0.2.1\", remote = \"198.51.100.1\" }",
            "D/main.toml: connection[0].psk: expected a quoted string (the value is not shown: it is a secret)",
        ]
    );
    assert!(!got.concat().contains("hunter2"));
}

/// The secret files shipped under conf/ are examples ([`keys::EXAMPLE_MARK`]): `ironsecd
/// check` accepts them (readable as git leaves them) and says so, the daemon refuses them.
#[test]
fn shipped_example_secrets_pass_check_but_not_the_daemon() {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conf");
    for (example, key, secret) in [
        ("ike-gw-a.toml", "connection[0].psk_file", "psk/site-b.psk"),
        (
            "static-gw-a.toml",
            "connection[0].keys_file",
            "keys/site-b.keys",
        ),
    ] {
        let p = conf.join(example);
        let checked =
            Config::load_for_check_with_env(&p, no_env()).unwrap_or_else(|e| panic!("{e}"));
        let secret = conf.join(secret);
        let how = if key.ends_with("psk_file") {
            format!("rm {0} && ironsecctl genpsk {0}", secret.display())
        } else {
            "put keys of your own in it (README, keying = \"static\") and chmod 600 it".into()
        };
        let why = format!(
            "{} is an example shipped with ironsec, not a secret (everyone has it): ironsecd \
             does not run with it; replace it: {how}",
            secret.display()
        );
        assert_eq!(
            checked.example_secrets,
            [format!("{}: {key}: {why}", p.display())]
        );
        let refused = Config::load_with_env(&p, no_env()).unwrap_err().0;
        assert_eq!(refused, [ConfigError::new(&p, key, why)]);
    }
    // A real secret in the same place is no example: nothing to say about it.
    let d = Dir::new("not-example");
    let main = tree(
        &d,
        &ike_conn("b", "10.2.0.0/24", "psk/b.psk", "192.0.2.2"),
        &[],
    );
    let c = Config::load_for_check_with_env(&main, no_env()).unwrap();
    assert!(c.example_secrets.is_empty());
    assert!(Config::load_with_env(&main, no_env()).is_ok());
    // The mark anywhere in a PSK file makes it an example, whatever its permissions.
    d.write("psk/b.psk", &format!("{}: x\n", keys::EXAMPLE_MARK), 0o644);
    assert!(Config::load_for_check_with_env(&main, no_env()).is_ok());
    assert!(Config::load_with_env(&main, no_env()).unwrap_err().0[0]
        .reason
        .contains("is an example shipped with ironsec"));
}

#[test]
fn policy_based_routes_take_a_host_address_inside_the_local_selectors() {
    let d = Dir::new("routes-src");
    let p = d.write("c.toml", &example(&d, "a"), 0o644);
    let cfg = Config::load(&p).unwrap_or_else(|e| panic!("{e}"));
    let mut reads = 0;
    let routes = crate::daemon::wanted_routes(&cfg, || {
        reads += 1;
        vec!["192.0.2.1".parse().unwrap(), "10.1.0.1".parse().unwrap()]
    });
    assert_eq!(reads, 1);
    let (dev, src) = &routes["10.2.0.0/24"];
    assert_eq!(dev, &cfg.gateway.tun);
    assert_eq!(*src, Some("10.1.0.1".parse().unwrap()));
}

/// A hub that owns a share of many sites guards all of them: each route-based connection may
/// carry the same `protect` prefix (guarded once), and `[gateway] protect` keeps that guard when
/// the last connection goes (a share moved away); it is reloadable, and a catch-all or a
/// malformed prefix there is refused with the key.
#[test]
fn protect_may_repeat_across_connections_and_gateway_protect_outlives_them() {
    let d = Dir::new("gw-protect");
    let route_based = |name: &str, iface: &str, route: &str| {
        ike_conn(name, "10.2.0.0/24", "psk/b.psk", "198.51.100.2").replace(
            "local_ts = [\"10.1.0.0/24\"]\nremote_ts = [\"10.2.0.0/24\"]\n",
            &format!(
                "interface = \"{iface}\"\nroutes = [\"{route}\"]\nprotect = [\"10.128.0.0/10\"]\n"
            ),
        )
    };
    let conns = format!(
        "{}\n{}",
        route_based("b", "vti1", "10.128.0.0/24"),
        route_based("c", "vti2", "10.128.1.0/24").replace("c.example", "c2.example")
    );
    let main = tree(&d, &conns, &[]);
    let cfg = Config::load(&main).unwrap_or_else(|e| panic!("{e}"));
    let guarded = |cfg: &Config| -> Vec<String> {
        crate::guards::wanted(cfg)
            .iter()
            .map(|p| p.to_string())
            .collect()
    };
    assert_eq!(
        guarded(&cfg),
        ["10.128.0.0/24", "10.128.0.0/10", "10.128.1.0/24"]
    );
    assert!(cfg.gateway.protect.is_empty());

    // Without connections the per-connection guard is gone; the gateway's stays.
    let gw = "[gateway]\ntun = \"ipsec0\"\nprotect = [\"10.128.0.0/10\", \"10.128.0.0/10\"]\n\n";
    let p = d.write("main.toml", &format!("{gw}{conns}"), 0o644);
    let cfg = Config::load(&p).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.gateway.protect, vec!["10.128.0.0/10".parse().unwrap()]);
    assert_eq!(
        guarded(&cfg),
        ["10.128.0.0/10", "10.128.0.0/24", "10.128.1.0/24"]
    );
    assert_eq!(cfg.gateway.shown(GatewayKey::Protect), "10.128.0.0/10");
    assert_eq!(GatewayKey::Protect.applies(), Applies::Live);
    let p = d.write(
        "main.toml",
        &format!("{gw}{}", route_based("b", "vti1", "10.128.0.0/24")),
        0o644,
    );
    let cfg = Config::load(&p).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(guarded(&cfg), ["10.128.0.0/10", "10.128.0.0/24"]);

    let p = d.write(
        "main.toml",
        &format!(
            "[gateway]\ntun = \"ipsec0\"\nprotect = [\"0.0.0.0/0\", \"10.300.0.0/8\"]\n\n{conns}"
        ),
        0o644,
    );
    let e = refused(&p, no_env());
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with(&format!(
            "{}: gateway.protect: [0] 0.0.0.0/0 would replace",
            p.display()
        )),
        "{e:?}"
    );
    assert!(
        e[1].starts_with(&format!(
            "{}: gateway.protect: [1] '10.300.0.0/8'",
            p.display()
        )),
        "{e:?}"
    );
}

#[test]
fn route_based_connections_default_to_any_selectors_and_check_their_keys() {
    let d = Dir::new("route-based");
    // Route-based: no selectors written, 0.0.0.0/0 and ::/0 both ways; its routes (of both
    // families) and guards parsed.
    let t = example(&d, "a")
        .replace("local_ts = [\"10.1.0.0/24\"]\n", "")
        .replace(
            "remote_ts = [\"10.2.0.0/24\"]",
            "interface = \"vti-b\"\ninterface_address = \"169.254.21.1/30\"\n\
             routes = [\"10.2.0.0/24\", \"10.20.0.0/16\", \"2001:db8:2::/64\"]\n\
             protect = [\"10.0.0.0/8\", \"2001:db8::/32\"]",
        );
    let p = d.write("rb.toml", &t, 0o644);
    let cfg = Config::load(&p).unwrap_or_else(|e| panic!("{e}"));
    let c = &cfg.connections[0];
    let any: Vec<Prefix> = vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()];
    assert_eq!(c.remote_ts, any);
    assert_eq!(c.local_ts, any);
    let rb = c.route_based.as_ref().expect("route-based");
    assert_eq!(rb.interface, "vti-b");
    assert_eq!(rb.address_text().as_deref(), Some("169.254.21.1/30"));
    assert_eq!(rb.routes.len(), 3);
    assert_eq!(
        rb.protect,
        vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8::/32".parse().unwrap()
        ]
    );
    // Guards for both families: an IPv6 route's traffic is as protected as an IPv4 one's.
    let guarded: Vec<String> = crate::guards::wanted(&cfg)
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(
        guarded,
        [
            "10.2.0.0/24",
            "10.20.0.0/16",
            "2001:db8:2::/64",
            "10.0.0.0/8",
            "2001:db8::/32"
        ]
    );
    // Its routes go into its interface with no source address: the host's addresses (every
    // interface dumped, after every table change) are not read for them.
    let routes = crate::daemon::wanted_routes(&cfg, || {
        panic!("host addresses read for a route-based connection's routes")
    });
    let routes: Vec<(&str, &str)> = routes
        .iter()
        .map(|(p, (dev, src))| {
            assert_eq!(*src, None);
            (p.as_str(), dev.as_str())
        })
        .collect();
    assert_eq!(
        routes,
        [
            ("10.2.0.0/24", "vti-b"),
            ("10.20.0.0/16", "vti-b"),
            ("2001:db8:2::/64", "vti-b")
        ]
    );
    // Selectors written are taken as written: an IPv4-only route-based connection.
    let v4 = t.replace(
        "interface = \"vti-b\"",
        "local_ts = [\"0.0.0.0/0\"]\nremote_ts = [\"0.0.0.0/0\"]\ninterface = \"vti-b\"",
    );
    let p = d.write("rb4.toml", &v4, 0o644);
    let cfg = Config::load(&p).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.connections[0].remote_ts, any[..1]);
    assert_eq!(cfg.connections[0].local_ts, any[..1]);
    // An IPv6 catch-all is no static route either.
    let e = errors(&d, &t.replace("\"2001:db8:2::/64\"", "\"::/0\""));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].key, "connection[0].routes[2]");
    assert!(e[0].reason.contains("default route"), "{}", e[0]);

    // Bad values, all reported at once, each at its key.
    let bad = t
        .replace("\"vti-b\"", "\"vti-much-too-long-name\"")
        .replace("169.254.21.1/30", "169.254.21.1")
        .replace("\"10.20.0.0/16\"", "\"0.0.0.0/0\", \"192.0.2.0/24\"");
    let e = errors(&d, &bad);
    let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "connection[0].interface",
            "connection[0].interface_address",
            "connection[0].routes[1]",
            "connection[0].routes[2]",
        ],
        "{e:?}"
    );
    assert!(
        e[3].reason.contains("a peer of this connection"),
        "{}",
        e[3]
    );

    // The route-based keys need `interface`.
    let policy = example(&d, "a").replace(
        "remote_ts = [\"10.2.0.0/24\"]",
        "remote_ts = [\"10.2.0.0/24\"]\nroutes = [\"10.9.0.0/16\"]",
    );
    let e = errors(&d, &policy);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].key, "connection[0].routes");
    assert!(e[0].reason.contains("set `interface`"), "{}", e[0]);

    // The gateway's own device, or another connection's, is not an interface of its own.
    let shared = t.replace("\"vti-b\"", "\"ipsec0\"");
    let e = errors(&d, &shared);
    assert!(
        e.iter()
            .any(|e| e.key == "connection[0].interface" && e.reason.contains("gateway.tun")),
        "{e:?}"
    );
}

/// A remote-access connection (PSK here: the config checks do not depend on the method).
fn rw_conn(extra: &str, tunnels: &str) -> String {
    format!(
        "[[connection]]\nname = \"rw\"\nkeying = \"ike\"\nlocal_id = \"gw-a.example\"\n\
         remote_id = \"laptop.example\"\npsk_file = \"psk/b.psk\"\nlocal_ts = [\"10.1.0.0/24\"]\n\
         {extra}\ntunnels = [ {tunnels} ]\n"
    )
}

const RW_TUNNEL: &str = "{ local = \"192.0.2.1\", remote = \"%any\" }";

#[test]
fn remote_access_connection_takes_its_remote_side_from_the_pool() {
    let d = Dir::new("rw-ok");
    let p = tree(
        &d,
        &format!(
            "{}{}",
            rw_conn(
                "pool = \"10.99.0.0/24\"\npool_dns = [\"10.1.0.53\"]\nlease_grace = 60",
                RW_TUNNEL
            ),
            ike_conn("b", "10.2.0.0/24", "psk/b.psk", "192.0.2.2")
        ),
        &[],
    );
    let c = Config::load_with_env(&p, no_env()).unwrap_or_else(|e| panic!("{e}"));
    let rw = &c.connections[0];
    assert!(rw.is_remote_access() && !c.connections[1].is_remote_access());
    assert_eq!(rw.remote_ts, ["10.99.0.0/24".parse::<Prefix>().unwrap()]);
    let Keying::Ike(k) = &rw.keying else {
        panic!("ike")
    };
    assert!(k.tunnels.is_empty(), "clients' tunnels come at run time");
    assert_eq!(k.start_action, StartAction::None);
    let ra = k.remote_access.as_ref().unwrap();
    assert_eq!(ra.local, "192.0.2.1".parse::<std::net::IpAddr>().unwrap());
    assert_eq!(ra.dns, ["10.1.0.53".parse::<std::net::IpAddr>().unwrap()]);
    assert_eq!(ra.lease_grace, std::time::Duration::from_secs(60));
    assert_eq!(ra.vip_pool().ranges, ["10.99.0.0/24"]);
    assert_eq!(c.local_addrs().len(), 1, "one socket for both connections");
}

/// A dual-stack pool: both prefixes are the remote side (each its route into the TUN
/// device), IPv4 first whatever the order written; resolvers of both families.
#[test]
fn remote_access_connection_with_an_ipv4_and_an_ipv6_pool() {
    let d = Dir::new("rw-dual");
    let p = tree(
        &d,
        &rw_conn(
            "pool = [\"2001:db8:99::/112\", \"10.99.0.0/24\"]\n\
             pool_dns = [\"2001:db8:1::53\", \"10.1.0.53\"]",
            RW_TUNNEL,
        ),
        &[],
    );
    let c = Config::load_with_env(&p, no_env()).unwrap_or_else(|e| panic!("{e}"));
    let rw = &c.connections[0];
    let pre = |s: &str| s.parse::<Prefix>().unwrap();
    let mut remote = rw.remote_ts.clone();
    remote.sort_by_key(|p| !p.is_v4());
    assert_eq!(remote, [pre("10.99.0.0/24"), pre("2001:db8:99::/112")]);
    let Keying::Ike(k) = &rw.keying else {
        panic!("ike")
    };
    let ra = k.remote_access.as_ref().unwrap();
    assert_eq!(ra.pools, [pre("10.99.0.0/24"), pre("2001:db8:99::/112")]);
    assert_eq!(ra.pools_text(), "10.99.0.0/24, 2001:db8:99::/112");
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    assert_eq!(ra.dns, [ip("2001:db8:1::53"), ip("10.1.0.53")]);
    assert_eq!(ra.vip_pool().ranges, ["10.99.0.0/24", "2001:db8:99::/112"]);
    // An IPv6 pool alone is a connection too.
    let p = tree(
        &d,
        &rw_conn("pool = [\"2001:db8:99::/64\"]", RW_TUNNEL),
        &[],
    );
    let c = Config::load_with_env(&p, no_env()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.connections[0].remote_ts, [pre("2001:db8:99::/64")]);
}

#[test]
fn remote_access_mistakes_are_refused_all_at_once() {
    let d = Dir::new("rw-bad");
    let bad = [
        (
            rw_conn(
                "pool = \"10.99.0.0/24\"\nremote_ts = [\"10.99.0.0/24\"]\nstart_action = \"start\"",
                RW_TUNNEL,
            ),
            vec![
                ("connection[0].remote_ts", "remote side is its pool"),
                ("connection[0].start_action", "must be \"none\""),
            ],
        ),
        (
            rw_conn("", RW_TUNNEL),
            vec![("connection[0].pool", "required with remote = \"%any\"")],
        ),
        (
            rw_conn(
                "pool = \"10.99.0.0/24\"",
                &format!("{RW_TUNNEL}, {{ local = \"192.0.2.1\", remote = \"192.0.2.9\" }}"),
            ),
            vec![("connection[0].tunnels", "exactly one tunnel")],
        ),
        (
            rw_conn("pool = \"2001:db8::/48\"", RW_TUNNEL),
            vec![("connection[0].pool", "shorter than /64")],
        ),
        (
            rw_conn(
                "pool = [\"10.99.0.0/24\", \"10.98.0.0/24\", \"2001:db8:99::7/112\", \"fd00::/64\"]",
                RW_TUNNEL,
            ),
            vec![
                ("connection[0].pool[1]", "one pool per family"),
                ("connection[0].pool[2]", "did you mean 2001:db8:99::/112"),
            ],
        ),
        (
            rw_conn("pool = []", RW_TUNNEL),
            vec![("connection[0].pool", "required with remote = \"%any\"")],
        ),
        (
            rw_conn(
                "pool = \"10.99.0.0/24\"\npool_dns = [\"10.1.0.53\", \"2001:db8:1::53\"]",
                RW_TUNNEL,
            ),
            vec![("connection[0].pool_dns[1]", "no IPv6 pool")],
        ),
        (
            rw_conn("pool = \"10.99.0.7/24\"", RW_TUNNEL),
            vec![("connection[0].pool", "did you mean 10.99.0.0/24")],
        ),
        (
            rw_conn("pool = \"192.0.2.0/24\"", RW_TUNNEL),
            vec![("connection[0].pool", "contains 192.0.2.1")],
        ),
        (
            rw_conn("pool = \"10.0.0.0/8\"", RW_TUNNEL),
            vec![("connection[0].pool", "10.0.0.0/8")],
        ),
        (
            rw_conn(
                "pool = \"10.99.0.0/24\"\npool_dns = [\"dns.example\"]\nlease_grace = 9999999",
                RW_TUNNEL,
            ),
            vec![
                ("connection[0].pool_dns[0]", "not an IP address"),
                ("connection[0].lease_grace", "more than a week"),
            ],
        ),
        (
            // A pool must not overlap another connection's remote side.
            format!(
                "{}{}",
                rw_conn("pool = \"10.2.0.0/24\"", RW_TUNNEL),
                ike_conn("b", "10.2.0.0/24", "psk/b.psk", "192.0.2.2")
            ),
            vec![("remote_ts", "10.2.0.0/24")],
        ),
        (
            format!(
                "{}pool_dns = [\"10.1.0.53\"]\n",
                ike_conn("b", "10.2.0.0/24", "psk/b.psk", "192.0.2.2")
            ),
            vec![(
                "connection[0].pool_dns",
                "only for a remote-access connection",
            )],
        ),
    ];
    for (toml, want) in bad {
        let p = tree(&d, &toml, &[]);
        let errs = refused(&p, no_env());
        for (key, reason) in &want {
            assert!(
                errs.iter().any(|e| e.contains(key) && e.contains(reason)),
                "want {key}: {reason} in {errs:#?}\n{toml}"
            );
        }
        assert_eq!(errs.len(), want.len(), "{errs:#?}\n{toml}");
    }
}

/// `shared_addresses`: IPv4 unicast addresses, each once; each bad entry is refused with its
/// index and why; one that no tunnel uses is only a warning (`ironsecd check` shows it), and
/// the fast path's sockets on a listed address are the ones bound with IP_FREEBIND.
#[test]
fn shared_addresses_are_checked_and_an_unused_one_is_a_warning() {
    let d = Dir::new("shared-addrs");
    let main = tree(
        &d,
        &ike_conn("b", "10.2.0.0/24", "psk/b.psk", "192.0.2.2"),
        &[],
    );
    let body = std::fs::read_to_string(&main).unwrap();
    let with = |list: &str| {
        let p = d.write(
            "main.toml",
            &body.replace(
                "[gateway]\n",
                &format!("[gateway]\nshared_addresses = {list}\n"),
            ),
            0o644,
        );
        Config::load_with_env(&p, no_env())
    };
    let c = with("[\"192.0.2.1\"]").unwrap();
    assert_eq!(
        c.gateway.shared_addresses,
        ["192.0.2.1".parse::<IpAddr>().unwrap()]
    );
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    assert_eq!(
        c.dataplane_config().freebind_addrs,
        ["192.0.2.1".parse::<IpAddr>().unwrap()]
    );
    let c = with("[\"192.0.2.1\", \"192.0.2.10\"]").unwrap();
    assert_eq!(
        c.warnings(),
        ["gateway.shared_addresses: 192.0.2.10 is the local address of no tunnel"]
    );
    let e: Vec<String> = with(
        "[\"192.0.2.1\", \"gw-a\", \"2001:db8::1\", \"192.0.2.1\", \"0.0.0.0\", \"224.0.0.18\"]",
    )
    .unwrap_err()
    .0
    .iter()
    .map(|e| e.to_string())
    .collect();
    let m = main.display();
    assert_eq!(
        e,
        [
            format!("{m}: gateway.shared_addresses: [1] 'gw-a' is not an IP address"),
            format!("{m}: gateway.shared_addresses: [2] 2001:db8::1: only IPv4 addresses can be shared (the address watch follows IPv4)"),
            format!("{m}: gateway.shared_addresses: [3] 192.0.2.1 is listed twice"),
            format!("{m}: gateway.shared_addresses: [4] 0.0.0.0 is not a unicast address another host could take over"),
            format!("{m}: gateway.shared_addresses: [5] 224.0.0.18 is not a unicast address another host could take over"),
        ]
    );
    // Not a list: the schema says so, naming the key.
    let e = with("\"192.0.2.1\"").unwrap_err().to_string();
    assert!(e.contains("gateway.shared_addresses"), "{e}");
}

/// A dual-stack connection: one IPv4 tunnel and one IPv6 tunnel to the same peer are fine
/// (each tunnel is one outer family); one tunnel whose local and remote are of different
/// families is refused with its file, key and reason.
#[test]
fn tunnels_may_mix_families_across_tunnels_but_not_within_one() {
    let d = Dir::new("dual-stack");
    let conn = |tunnels: &str| {
        format!(
            "{GATEWAY}[[connection]]\nname = \"b\"\nkeying = \"ike\"\nlocal_id = \"gw-a.example\"\n\
             remote_id = \"gw-b.example\"\npsk_file = \"psk/b.psk\"\n\
             local_ts = [\"10.1.0.0/24\", \"2001:db8:1::/64\"]\n\
             remote_ts = [\"10.2.0.0/24\", \"2001:db8:2::/64\"]\nmode = \"active-standby\"\n\
             tunnels = [ {tunnels} ]\n"
        )
    };
    std::fs::create_dir_all(d.0.join("psk")).unwrap();
    d.write("psk/b.psk", &format!("{PSK}\n"), 0o600);
    let p = d.write(
        "main.toml",
        &conn(
            "{ local = \"192.0.2.1\", remote = \"192.0.2.2\" }, \
             { local = \"2001:db8:e::1\", remote = \"2001:db8:e::2\" }",
        ),
        0o644,
    );
    let c = Config::load_with_env(&p, no_env()).unwrap_or_else(|e| panic!("{e}"));
    let Keying::Ike(ike) = &c.connections[0].keying else {
        panic!("an IKE connection")
    };
    let fams: Vec<bool> = ike.tunnels.iter().map(|t| t.remote.is_ipv6()).collect();
    assert_eq!(fams, [false, true]);
    for (l, r) in [
        ("192.0.2.1", "2001:db8:e::2"),
        ("2001:db8:e::1", "192.0.2.2"),
    ] {
        let p = d.write(
            "main.toml",
            &conn(&format!(
                "{{ local = \"192.0.2.1\", remote = \"192.0.2.2\" }}, \
                 {{ local = \"{l}\", remote = \"{r}\" }}"
            )),
            0o644,
        );
        let errs = refused(&p, no_env());
        assert_eq!(errs.len(), 1, "{errs:?}");
        let e = &errs[0];
        assert!(e.contains(&p.display().to_string()), "{e}");
        assert!(e.contains("connection[0].tunnels[1]"), "{e}");
        assert!(e.contains("same IP version"), "{e}");
    }
}

/// `udp6_zero_checksum` takes "refuse" (the default) or "accept"; anything else is refused
/// with the key and the choices.
#[test]
fn udp6_zero_checksum_is_a_word_with_a_safe_default() {
    let d = Dir::new("udp6-csum");
    let base = {
        let p = d.write("c.toml", &example(&d, "a"), 0o644);
        Config::load(&p).unwrap()
    };
    assert_eq!(
        base.gateway.udp6_zero_checksum,
        gateway::Udp6ZeroChecksum::Refuse
    );
    assert!(!base.dataplane_config().udp6_zero_checksum_rx);
    let accept = example_with(&d, GatewayKey::Udp6ZeroChecksum, "\"accept\"");
    assert!(accept.dataplane_config().udp6_zero_checksum_rx);
    let t = example(&d, "a").replace("[gateway]", "[gateway]\nudp6_zero_checksum = \"acept\"");
    let errs: Vec<String> = errors(&d, &t).iter().map(|e| e.to_string()).collect();
    assert!(
        errs.iter().any(|e| e.contains("udp6_zero_checksum")
            && e.contains("\"refuse\", \"accept\"")
            && e.contains("did you mean")),
        "{errs:?}"
    );
}

/// IPv6's minimum link MTU: a TUN device (`gateway.tun_mtu`) below 1280 is refused when a
/// connection carries IPv6, at the key to change, naming the connection's selector; IPv4-only
/// connections keep the old range (576..=9000).
#[test]
fn tun_mtu_below_1280_is_refused_when_a_connection_carries_ipv6() {
    let d = Dir::new("v6-mtu");
    let base = example(&d, "a");
    let small = |t: &str| {
        if t.contains("tun_mtu") {
            t.lines()
                .map(|l| {
                    if l.trim_start().starts_with("tun_mtu") {
                        "tun_mtu = 1200".to_string()
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            t.replacen("[gateway]\n", "[gateway]\ntun_mtu = 1200\n", 1)
        }
    };
    // IPv4 only: 1200 is fine.
    let p = d.write("v4.toml", &small(&base), 0o644);
    let cfg = Config::load(&p).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.gateway.tun_mtu, 1200);
    // A policy-based IPv6 remote selector.
    let v6 = small(&base).replace(
        "remote_ts = [\"10.2.0.0/24\"]",
        "remote_ts = [\"10.2.0.0/24\", \"2001:db8:2::/64\"]",
    );
    let e = errors(&d, &v6);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].key, "gateway.tun_mtu");
    assert!(e[0].file.ends_with("c.toml"), "{}", e[0]);
    assert!(
        e[0].reason.contains("1200 is below 1280")
            && e[0]
                .reason
                .contains("connection[0].remote_ts[1] is 2001:db8:2::/64"),
        "{}",
        e[0]
    );
    // A route-based connection's default selectors carry IPv6: refused, with the way to keep
    // it IPv4-only; written IPv4-only, accepted.
    let rb = small(&base)
        .replace("local_ts = [\"10.1.0.0/24\"]\n", "")
        .replace("remote_ts = [\"10.2.0.0/24\"]", "interface = \"vti-b\"");
    let e = errors(&d, &rb);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].key, "gateway.tun_mtu");
    assert!(
        e[0].reason.contains("local_ts[1] is ::/0") && e[0].reason.contains("IPv4-only"),
        "{}",
        e[0]
    );
    let rb4 = rb.replace(
        "interface = \"vti-b\"",
        "interface = \"vti-b\"\nlocal_ts = [\"0.0.0.0/0\"]\nremote_ts = [\"0.0.0.0/0\"]",
    );
    let p = d.write("rb4.toml", &rb4, 0o644);
    Config::load(&p).unwrap_or_else(|e| panic!("{e}"));
    // 1280 itself is IPv6's minimum, allowed.
    let p = d.write(
        "1280.toml",
        &v6.replace("tun_mtu = 1200", "tun_mtu = 1280"),
        0o644,
    );
    Config::load(&p).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn thousands_of_fragments_validate_and_one_overlap_among_them_is_found_once() {
    use super::fixtures::{fragment, hub, site, TempDir};
    let n = 3000;
    let d = TempDir::new("many-fragments");
    let main = hub(&d.0, n);
    let c = Config::load_with_env(&main, no_env()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.connections.len(), n);
    assert_eq!(c.sources.len(), n + 1);
    // The last site takes the third one's remote subnet as a second selector.
    let last = site(n - 1, 0).replace(
        "remote_ts = [\"10.139.",
        "remote_ts = [\"10.128.3.0/25\", \"10.139.",
    );
    assert_ne!(last, site(n - 1, 0));
    std::fs::write(fragment(&main, n - 1), last).unwrap();
    assert_eq!(
        refused(&main, no_env()),
        [format!(
            "{}: connection[0].remote_ts[0]: 10.128.3.0/25 overlaps 10.128.3.0/24 of connection 's3' ({}: connection[0].remote_ts[0])",
            fragment(&main, n - 1).display(),
            fragment(&main, 3).display()
        )]
    );
}

#[test]
fn a_fragment_is_parsed_again_only_when_its_bytes_change() {
    use super::fixtures::{fragment, hub, site, TempDir};
    let n = 50;
    let d = TempDir::new("fragment-cache");
    let main = hub(&d.0, n);
    let parse = || {
        let mut errs = Vec::new();
        let loaded = load::load(&main, no_env(), &mut errs);
        let parsed = loaded.fragments_parsed;
        (validate(&main, loaded, errs, Examples::Refuse), parsed)
    };
    let (first, parsed) = parse();
    assert_eq!(parsed, n, "the first load parses every fragment");
    let first = first.unwrap_or_else(|e| panic!("{e}"));
    let (again, parsed) = parse();
    assert_eq!(parsed, 0, "nothing changed, nothing parsed");
    assert_eq!(again.unwrap(), first, "the same config from what was kept");
    // Same size, same modification time, other bytes: parsed again all the same.
    let f = fragment(&main, 7);
    let mtime = std::fs::metadata(&f).unwrap().modified().unwrap();
    let edited = site(7, 3);
    assert_eq!(edited.len(), site(7, 0).len());
    std::fs::write(&f, &edited).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let (edited_cfg, parsed) = parse();
    assert_eq!(parsed, 1);
    let edited_cfg = edited_cfg.unwrap();
    let changed: Vec<&str> = edited_cfg
        .connections
        .iter()
        .zip(&first.connections)
        .filter(|(a, b)| a != b)
        .map(|(a, _)| a.name.as_str())
        .collect();
    assert_eq!(changed, ["s7"]);
    // A broken fragment: the same errors whether parsed or kept; a removed one is gone.
    std::fs::write(
        fragment(&main, 9),
        "[[connection]]\nname = 3\nfrobnicate = 1\n",
    )
    .unwrap();
    std::fs::remove_file(fragment(&main, 11)).unwrap();
    let (broken, parsed) = parse();
    assert_eq!(parsed, 1);
    let (kept, parsed) = parse();
    assert_eq!(parsed, 0);
    let broken = broken.unwrap_err();
    assert_eq!(kept.unwrap_err(), broken);
    assert!(
        !broken.0.is_empty() && broken.0.iter().all(|e| e.file == fragment(&main, 9)),
        "{broken}"
    );
    std::fs::write(fragment(&main, 9), site(9, 0)).unwrap();
    let (fixed, parsed) = parse();
    assert_eq!(parsed, 1);
    assert_eq!(fixed.unwrap().connections.len(), n - 1);
}
