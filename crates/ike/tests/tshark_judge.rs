//! An outside judge: two endpoints wired in memory run a whole IKE SA life (IKE_SA_INIT,
//! IKE_AUTH with the first CHILD_SA, a CHILD_SA rekey, an IKE SA rekey, a DPD check and a
//! DELETE), every datagram goes into a pcap, and Wireshark's dissector (`tshark`) must decode
//! all of it: no malformed frame, no error, every SK payload decrypted with the exported keys
//! and its ICV verified (the AEAD tag, or for AES-CBC the truncated HMAC under SK_ai/SK_ar).
//!
//! The IKE SA keys come from `Endpoint::export_ike_keys` (feature `key-export`, enabled for this
//! crate's tests by the self dev-dependency in Cargo.toml) and go to tshark's
//! `ikev2_decryption_table` UAT.
//!
//! tshark (Debian bookworm: Wireshark 4.0) is installed by tests/install-deps.sh. A missing
//! tshark is a failure, never a skip.
//!
//! ChaCha20-Poly1305 is not covered: Wireshark 4.0's IKEv2 decryption table only knows 3DES,
//! AES-CBC, AES-CTR, AES-GCM and AES-CCM (`vs_ikev2_encr_algs` in packet-isakmp.c), so it
//! cannot decrypt an SK payload sealed with ENCR_CHACHA20_POLY1305.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ironsec_ike::crypto::{CbcCipher, Encr, Integ, Suite};
use ironsec_ike::endpoint::ExportedIkeKeys;
use ironsec_ike::Event;

use ironsec_ike::testkit::{pair_configs, Captured, Net, A, B};

/// Exports an IKE SA's keys from both ends and checks they agree.
fn keys_of(net: &Net) -> ExportedIkeKeys {
    let (sa, sb) = (net.a.ike_sas(), net.b.ike_sas());
    assert_eq!((sa.len(), sb.len()), (1, 1), "one IKE SA on each side");
    let ka = net.a.export_ike_keys(sa[0].id).expect("A's keys");
    let kb = net.b.export_ike_keys(sb[0].id).expect("B's keys");
    assert_eq!((ka.spi_i, ka.spi_r), (kb.spi_i, kb.spi_r));
    assert_eq!((ka.spi_i, ka.spi_r), (sa[0].spi_i, sa[0].spi_r));
    assert_eq!(ka.sk_ei, kb.sk_ei);
    assert_eq!(ka.sk_er, kb.sk_er);
    assert_eq!((&ka.sk_ai, &ka.sk_ar), (&kb.sk_ai, &kb.sk_ar));
    assert_eq!(ka.encr, kb.encr);
    assert_ne!(ka.sk_ei, ka.sk_er);
    ka
}

/// A whole IKE SA life. Returns the capture and the keys of both IKE SAs it used.
fn scenario(ike: &str, esp: &str) -> (Vec<Captured>, Vec<ExportedIkeKeys>) {
    let (a, b) = pair_configs(ike, esp);
    let mut net = Net::new(a, b);
    let a_addr: SocketAddr = format!("{A}:500").parse().unwrap();
    let b_addr: SocketAddr = format!("{B}:500").parse().unwrap();

    // IKE_SA_INIT, IKE_AUTH with the first CHILD_SA.
    net.a.initiate(net.now, "to-b", a_addr, b_addr).unwrap();
    net.pump();
    assert_eq!(
        net.count(|e| matches!(e, Event::IkeSaUp { .. })),
        (1, 1),
        "A {:?}\nB {:?}",
        net.events_a,
        net.events_b
    );
    assert_eq!(net.count(|e| matches!(e, Event::ChildSaUp { .. })), (1, 1));
    let first = keys_of(&net);

    // CHILD_SA rekey (CREATE_CHILD_SA, then INFORMATIONAL deleting the old CHILD_SA).
    net.now += Duration::from_secs(1);
    let s = net.a.ike_sas()[0].clone();
    net.a
        .rekey_child(net.now, s.id, s.children[0].spi_in)
        .unwrap();
    net.pump();
    assert_eq!(
        net.count(|e| matches!(e, Event::ChildSaRekeyed { .. })),
        (1, 1),
        "A {:?}\nB {:?}",
        net.events_a,
        net.events_b
    );

    // IKE SA rekey (CREATE_CHILD_SA, then INFORMATIONAL deleting the old IKE SA).
    net.now += Duration::from_secs(1);
    net.a.rekey_ike(net.now, s.id).unwrap();
    net.pump();
    assert_eq!(
        net.count(|e| matches!(e, Event::IkeSaRekeyed { .. })),
        (1, 1),
        "A {:?}\nB {:?}",
        net.events_a,
        net.events_b
    );
    let second = keys_of(&net);
    assert_ne!(
        (first.spi_i, first.spi_r),
        (second.spi_i, second.spi_r),
        "new SPIs"
    );
    assert_ne!(first.sk_ei, second.sk_ei, "new keys");

    // Silence past the 30 s DPD interval: an empty INFORMATIONAL and its answer.
    let before = net.wire.len();
    net.run_for(Duration::from_secs(31));
    assert!(
        net.wire.len() >= before + 2,
        "DPD exchange expected after 31 s of silence"
    );
    assert_eq!(net.a.ike_sas().len(), 1, "the tunnel survived DPD");

    // DELETE of the IKE SA.
    net.now += Duration::from_secs(1);
    let (id, ike_b) = (net.a.ike_sas()[0].id, net.b.ike_sas()[0].id);
    net.a.terminate(net.now, id).unwrap();
    net.pump();
    let (last_a, last_b) = (id, ike_b);
    assert_eq!(
        net.count(
            |e| matches!(e, Event::IkeSaDown { ike, .. } if *ike == last_a || *ike == last_b)
        ),
        (1, 1),
        "A {:?}\nB {:?}",
        net.events_a,
        net.events_b
    );
    assert!(net.a.ike_sas().is_empty() && net.b.ike_sas().is_empty());

    (net.wire, vec![first, second])
}

// ----- pcap, by hand -----

const LINKTYPE_RAW: u32 = 101;

fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// IPv4 + UDP around one datagram (UDP checksum 0: allowed over IPv4).
fn ip_udp(from: SocketAddr, to: SocketAddr, payload: &[u8], ident: u16) -> Vec<u8> {
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (from.ip(), to.ip()) else {
        panic!("IPv4 only: {from} -> {to}");
    };
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let total16 = u16::try_from(total).expect("datagram fits in IPv4");
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&total16.to_be_bytes());
    p.extend_from_slice(&ident.to_be_bytes());
    p.extend_from_slice(&[0x40, 0]); // DF, no fragment offset
    p.extend_from_slice(&[64, 17, 0, 0]); // TTL, UDP, checksum (below)
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = ipv4_checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&from.port().to_be_bytes());
    p.extend_from_slice(&to.port().to_be_bytes());
    p.extend_from_slice(&(udp_len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

fn write_pcap(path: &Path, wire: &[Captured]) {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    f.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    f.extend_from_slice(&65535u32.to_le_bytes()); // snaplen
    f.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
    // A fixed epoch keeps the file deterministic.
    let epoch = 1_700_000_000u64;
    for (i, c) in wire.iter().enumerate() {
        let pkt = ip_udp(c.from, c.to, &c.payload, i as u16);
        assert!(pkt.len() <= 65535);
        // Frames at the same fake instant get distinct microseconds so the order is plain.
        let t = c.at + Duration::from_micros(i as u64);
        f.extend_from_slice(&((epoch + t.as_secs()) as u32).to_le_bytes());
        f.extend_from_slice(&t.subsec_micros().to_le_bytes());
        f.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        f.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        f.extend_from_slice(&pkt);
    }
    std::fs::write(path, f).unwrap();
}

// ----- tshark -----

/// Wireshark 4.0's names for a suite's encryption and integrity algorithms in
/// `ikev2_decryption_table` (`vs_ikev2_encr_algs` and `vs_ikev2_auth_algs` in
/// packet-isakmp.c; the strings are in libwireshark).
fn wireshark_algs(s: Suite) -> (&'static str, &'static str) {
    let encr = match s.encr() {
        Encr::Aes128Gcm16 => "AES-GCM-128 with 16 octet ICV [RFC5282]",
        Encr::Aes256Gcm16 => "AES-GCM-256 with 16 octet ICV [RFC5282]",
        Encr::Cbc(CbcCipher::Aes128) => "AES-CBC-128 [RFC3602]",
        Encr::Cbc(CbcCipher::Aes192) => "AES-CBC-192 [RFC3602]",
        Encr::Cbc(CbcCipher::Aes256) => "AES-CBC-256 [RFC3602]",
        other => panic!("Wireshark 4.0 cannot decrypt IKEv2 with {other:?}"),
    };
    let integ = match s.integ() {
        None => "NONE [RFC4306]",
        Some(Integ::HmacSha1_96) => "HMAC_SHA1_96 [RFC2404]",
        Some(Integ::HmacSha256_128) => "HMAC_SHA2_256_128 [RFC4868]",
        Some(Integ::HmacSha384_192) => "HMAC_SHA2_384_192 [RFC4868]",
        Some(Integ::HmacSha512_256) => "HMAC_SHA2_512_256 [RFC4868]",
    };
    (encr, integ)
}

/// One `ikev2_decryption_table` record: I-SPI, R-SPI, SK_ei, SK_er (hex, unquoted, as
/// strongSwan's save-keys plugin writes them), encryption algorithm, SK_ai, SK_ar (empty for
/// AEAD), integrity algorithm ("NONE" for AEAD).
fn uat_record(k: &ExportedIkeKeys) -> String {
    let (encr, integ) = wireshark_algs(k.encr);
    format!(
        "uat:ikev2_decryption_table:{:016x},{:016x},{},{},\"{}\",{},{},\"{}\"",
        k.spi_i,
        k.spi_r,
        hex::encode(&k.sk_ei),
        hex::encode(&k.sk_er),
        encr,
        hex::encode(&k.sk_ai),
        hex::encode(&k.sk_ar),
        integ
    )
}

struct Tshark {
    pcap: PathBuf,
    prefs: Vec<String>,
}

impl Tshark {
    /// Runs tshark on the capture with `args`; panics with its stderr on any failure.
    fn run(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("tshark");
        cmd.arg("-n").arg("-r").arg(&self.pcap);
        for p in &self.prefs {
            cmd.arg("-o").arg(p);
        }
        cmd.args(args);
        let out = cmd.output().unwrap_or_else(|e| {
            panic!("cannot run tshark ({e}): install it (tests/install-deps.sh, package tshark)")
        });
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "tshark {args:?} failed ({}):\n{stderr}",
            out.status
        );
        // A refused UAT record already makes tshark exit 1; any other warning fails as well.
        let complaints: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.contains("Running as user \"root\"") && !l.trim().is_empty())
            .collect();
        assert!(
            complaints.is_empty(),
            "tshark {args:?} complained:\n{stderr}"
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Frame numbers matching a display filter.
    fn frames(&self, filter: &str) -> Vec<u32> {
        self.run(&["-Y", filter, "-T", "fields", "-e", "frame.number"])
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect()
    }
}

fn judge(ike: &str, esp: &str) {
    let (wire, keys) = scenario(ike, esp);
    let n = wire.len();
    let dir =
        std::env::temp_dir().join(format!("ironsec-tshark-judge-{}-{ike}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("ike.pcap");
    write_pcap(&pcap, &wire);
    println!("capture: {}", pcap.display());
    let t = Tshark {
        pcap,
        prefs: keys.iter().map(uat_record).collect(),
    };

    // The exchange type we sent in each datagram (all but IKE_SA_INIT carry an SK payload).
    let exchanges: Vec<u8> = wire
        .iter()
        .map(|c| {
            let ike = if c.to.port() == 4500 {
                assert_eq!(&c.payload[..4], &[0; 4], "non-ESP marker");
                &c.payload[4..]
            } else {
                &c.payload[..]
            };
            ike[18]
        })
        .collect();
    let encrypted = exchanges.iter().filter(|&&x| x != 34).count();

    // A readable summary for the test log.
    let summary = t.run(&[]);
    println!("--- {ike}: {n} datagrams ---\n{summary}");

    // Every datagram is one ISAKMP frame, in order, with the exchange type we sent.
    let fields = t.run(&[
        "-T",
        "fields",
        "-E",
        "separator=;",
        "-e",
        "frame.number",
        "-e",
        "isakmp.exchangetype",
        "-e",
        "udp.srcport",
        "-e",
        "udp.dstport",
    ]);
    let rows: Vec<Vec<&str>> = fields.lines().map(|l| l.split(';').collect()).collect();
    assert_eq!(rows.len(), n, "frames in the capture\n{summary}");
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(
            r[1],
            exchanges[i].to_string(),
            "frame {}: exchange type as tshark sees it\n{summary}",
            i + 1
        );
    }
    assert_eq!(t.frames("isakmp").len(), n, "ISAKMP frames\n{summary}");
    assert_eq!(
        t.frames("isakmp.version == 0x20").len(),
        n,
        "IKEv2 frames\n{summary}"
    );
    for x in [34u8, 35, 36, 37] {
        assert!(
            !t.frames(&format!("isakmp.exchangetype == {x}")).is_empty(),
            "no exchange of type {x}\n{summary}"
        );
    }
    // On port 4500 the udpencap dissector found the non-ESP marker.
    let on_4500 = wire
        .iter()
        .filter(|c| c.to.port() == 4500 || c.from.port() == 4500)
        .count();
    assert!(on_4500 > 0, "IKE floated to 4500");
    assert_eq!(t.frames("udpencap.non_esp_marker").len(), on_4500);

    // Nothing malformed and no expert info at all (not even a note: a wrong ICV is a warning,
    // a bad pad length an error).
    let bad = t.frames("_ws.malformed || _ws.expert");
    if !bad.is_empty() {
        let experts = t.run(&["-q", "-z", "expert"]);
        let detail = t.run(&["-Y", "_ws.malformed || _ws.expert", "-V", "-x"]);
        panic!("tshark flagged frames {bad:?}:\n{experts}\n{detail}");
    }
    assert!(t
        .frames("isakmp.ikev2.integrity_checksum || isakmp.enc.pad_length.big")
        .is_empty());

    // Every SK payload decrypted, and its ICV (AEAD tag or HMAC) checked correct.
    assert_eq!(
        t.frames("isakmp.enc.decrypted").len(),
        encrypted,
        "decrypted frames\n{summary}"
    );
    let verbose = t.run(&["-V"]);
    let correct = verbose
        .lines()
        .filter(|l| l.contains("Integrity Checksum Data:") && l.ends_with("[correct]"))
        .count();
    assert_eq!(correct, encrypted, "ICVs verified by tshark");
    assert!(!verbose.contains("[incorrect"), "{verbose}");

    // The inner payloads are there: IDi/IDr, AUTH, SA, TSi/TSr in IKE_AUTH, ...
    let auth = t.frames("isakmp.exchangetype == 35");
    assert_eq!(
        t.frames("isakmp.exchangetype == 35 && isakmp.id.type == 2"),
        auth
    ); // FQDN
    assert_eq!(
        t.frames("isakmp.exchangetype == 35 && isakmp.auth.method == 2"),
        auth
    ); // PSK
    assert_eq!(
        t.frames("isakmp.exchangetype == 35 && isakmp.ts.type == 7"),
        auth
    ); // IPv4 range
    assert_eq!(
        t.frames("isakmp.exchangetype == 35 && isakmp.typepayload == 33"),
        auth
    ); // SA
       // ... nonces and SA in every CREATE_CHILD_SA (CHILD_SA rekey with TS, IKE rekey with KE) ...
    let create = t.frames("isakmp.exchangetype == 36");
    assert_eq!(create.len(), 4, "two rekeys, request and response each");
    assert_eq!(
        t.frames("isakmp.exchangetype == 36 && isakmp.nonce && isakmp.typepayload == 33"),
        create
    );
    assert_eq!(
        t.frames("isakmp.exchangetype == 36 && isakmp.ts.type == 7")
            .len(),
        2,
        "the CHILD_SA rekey carries selectors"
    );
    assert_eq!(
        t.frames("isakmp.exchangetype == 36 && isakmp.key_exchange.dh_group")
            .len(),
        2,
        "the IKE SA rekey carries KE"
    );
    assert_eq!(
        t.frames("isakmp.exchangetype == 36 && isakmp.notify.msgtype == 16393")
            .len(),
        1,
        "REKEY_SA in the CHILD_SA rekey request"
    );
    // ... DELETE of the old CHILD_SA (ESP, protocol 3: in the request and, for the other
    // direction's SPI, in the response), of the old IKE SA and of the last one (IKE, protocol
    // 1: requests only, answered empty) ...
    assert_eq!(
        t.frames("isakmp.exchangetype == 37 && isakmp.delete.protoid == 3")
            .len(),
        2,
        "DELETE of the rekeyed CHILD_SA\n{summary}"
    );
    assert_eq!(
        t.frames("isakmp.exchangetype == 37 && isakmp.delete.protoid == 1")
            .len(),
        2,
        "DELETE of the rekeyed IKE SA and of the last one\n{summary}"
    );
    // ... and an empty INFORMATIONAL both ways for DPD (decrypted, nothing inside).
    let dpd =
        t.frames("isakmp.exchangetype == 37 && isakmp.enc.decrypted && !isakmp.enc.contained");
    assert!(
        dpd.len() >= 2,
        "DPD request and response: {dpd:?}\n{summary}"
    );
    // Frames of both IKE SAs: the old SPIs before the rekey, the new ones after.
    for k in &keys {
        assert!(!t
            .frames(&format!("isakmp.ispi == {:016x}", k.spi_i))
            .is_empty());
    }

    // Kept when an assertion fails, for a look with Wireshark.
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
#[ignore = "needs tshark (tests/install-deps.sh)"]
fn tshark_decodes_aes128gcm16_prfsha256_x25519() {
    judge("aes128gcm16-prfsha256-x25519", "aes128gcm16");
}

#[test]
#[ignore = "needs tshark (tests/install-deps.sh)"]
fn tshark_decodes_aes256gcm16_prfsha384_ecp384() {
    judge("aes256gcm16-prfsha384-ecp384", "aes128gcm16");
}

#[test]
#[ignore = "needs tshark (tests/install-deps.sh)"]
fn tshark_decodes_aes256_sha256_prfsha256_ecp256() {
    judge("aes256-sha256-prfsha256-ecp256", "aes256-sha256");
}

#[test]
#[ignore = "needs tshark (tests/install-deps.sh)"]
fn tshark_decodes_aes128_sha1_prfsha1_ecp256() {
    judge("aes128-sha1-prfsha1-ecp256", "aes128-sha1");
}

#[test]
#[ignore = "needs tshark (tests/install-deps.sh)"]
fn tshark_decodes_aes192_sha512_and_aes256_sha384() {
    // The other HMACs and key sizes, with PRFs that differ from the integrity hash.
    judge("aes192-sha512-prfsha384-x25519", "aes128gcm16");
    judge("aes256-sha384-prfsha512-ecp384", "aes128gcm16");
}
