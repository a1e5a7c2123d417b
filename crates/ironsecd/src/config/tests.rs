use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

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
        .replace("/etc/ironsec/site-b.keys", keys.to_str().unwrap())
        .replace("/etc/ironsec/site-a.keys", keys.to_str().unwrap())
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
    assert!(e[0].reason.contains("unknown field"), "{}", e[0]);
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
    assert!(e[0].reason.contains("needs 36 bytes"), "{}", e[0]);
    // The message names the SPI, never the key.
    assert!(!e[0].to_string().contains("00010203"));
}

#[test]
fn readable_keys_file_is_refused() {
    let d = Dir::new("perm");
    let t = example(&d, "a");
    d.write("site.keys", KEYS, 0o640);
    let e = errors(&d, &t);
    assert!(e[0].reason.contains("chmod 600"), "{}", e[0]);
    assert!(e[0].key.contains("keys_file of connection[0]"), "{}", e[0]);
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
        .replace("/etc/ironsec/site-b.psk", psk.to_str().unwrap())
        .replace("/etc/ironsec/site-a.psk", psk.to_str().unwrap())
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
        assert_eq!(k.psk.bytes().len(), 32);
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
    let e = errors(&d, &base.replace("local_id = \"gw-a.example\"\n", ""));
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
