//! Diffie-Hellman against published known answers, and the checks on peer
//! public values.
//!
//! Sources, transcribed via the search tool:
//! * RFC 5903 §8.1 (256-bit random ECP group, IKE group 19) and §8.2 (384-bit,
//!   group 20): private keys i and r, public values gix||giy and grx||gry, and
//!   the shared secret girx ("The Diffie-Hellman shared secret value is
//!   girx"). The same values appear in strongSwan's and several other
//!   projects' test suites, all agreeing.
//! * RFC 8031 Appendix A (Curve25519 in IKEv2): random_i/random_r, pub_i/pub_r
//!   and SHARED_SECRET, as carried ("From RFC 8031") in strongSwan's
//!   `src/libstrongswan/plugins/test_vectors/test_vectors/curve25519.c`.
//! * RFC 7748 §6.1 (X25519 Diffie-Hellman example), via the same file.
//! * RFC 5903 §8.3 (521-bit random ECP group, IKE group 21): i, g^i, r, g^r
//!   and girx; the same numbers are in strongSwan's, mbed TLS's and LibreSSL's
//!   test suites, and OpenSSL (Python `cryptography`) recomputes g^i, g^r and
//!   girx from i and r.
//! * RFC 5114 Appendix A.3 (2048-bit MODP group with 256-bit prime-order
//!   subgroup, IKE group 24): xA, yA, xB, yB and Z, as carried in strongSwan's
//!   `test_vectors/modpsub.c`; Python's built-in `pow` recomputes yA, yB and Z
//!   from xA and xB with the RFC 5114 §2.3 p and g.
//! * The RFC 3526 / RFC 2409 MODP groups have no published exchange vectors:
//!   `MODP_KATS` were made with Python's built-in `pow` (an implementation
//!   independent of crypto-bigint) from the RFC primes, as SHA-256 digests of
//!   the values to keep this file readable; one group-2 vector is in full, its
//!   exponents chosen so that g^i and g^ir have a leading zero byte (the left
//!   padding of RFC 7296 §3.4 and §2.14).

use ironsec_ike::crypto::{modp_prime, DhError, DhGroup, KeyExchange, Rng, TestRng};
use proptest::prelude::*;
use ring::digest;

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).unwrap()
}

struct Kat {
    source: &'static str,
    group: DhGroup,
    i: &'static str,
    public_i: &'static str,
    r: &'static str,
    public_r: &'static str,
    shared: &'static str,
}

const KATS: &[Kat] = &[
    Kat {
        source: "RFC 5903 §8.1",
        group: DhGroup::Ecp256,
        i: "C88F01F5 10D9AC3F 70A292DA A2316DE5 44E9AAB8 AFE84049 C62A9C57 862D1433",
        // gix || giy
        public_i: "DAD0B653 94221CF9 B051E1FE CA5787D0 98DFE637 FC90B9EF 945D0C37 72581180
                   5271A046 1CDB8252 D61F1C45 6FA3E59A B1F45B33 ACCF5F58 389E0577 B8990BB3",
        r: "C6EF9C5D 78AE012A 011164AC B397CE20 88685D8F 06BF9BE0 B283AB46 476BEE53",
        // grx || gry
        public_r: "D12DFB52 89C8D4F8 1208B702 70398C34 2296970A 0BCCB74C 736FC755 4494BF63
                   56FBF3CA 366CC23E 8157854C 13C58D6A AC23F046 ADA30F83 53E74F33 039872AB",
        // girx
        shared: "D6840F6B 42F6EDAF D13116E0 E1256520 2FEF8E9E CE7DCE03 812464D0 4B9442DE",
    },
    Kat {
        source: "RFC 5903 §8.2",
        group: DhGroup::Ecp384,
        i: "099F3C70 34D4A2C6 99884D73 A375A67F 7624EF7C 6B3C0F16 0647B674 14DCE655
            E35B5380 41E649EE 3FAEF896 783AB194",
        public_i: "667842D7 D180AC2C DE6F74F3 7551F557 55C7645C 20EF73E3 1634FE72 B4C55EE6
                   DE3AC808 ACB4BDB4 C88732AE E95F41AA
                   9482ED1F C0EEB9CA FC498462 5CCFC23F 65032149 E0E144AD A0241815 35A0F38E
                   EB9FCFF3 C2C947DA E69B4C63 4573A81C",
        r: "41CB0779 B4BDB85D 47846725 FBEC3C94 30FAB46C C8DC5060 855CC9BD A0AA2942
            E0308312 916B8ED2 960E4BD5 5A7448FC",
        public_r: "E558DBEF 53EECDE3 D3FCCFC1 AEA08A89 A987475D 12FD950D 83CFA417 32BC509D
                   0D1AC43A 0336DEF9 6FDA41D0 774A3571
                   DCFBEC7A ACF31964 72169E83 8430367F 66EEBE3C 6E70C416 DD5F0C68 759DD1FF
                   F83FA401 42209DFF 5EAAD96D B9E6386C",
        shared: "11187331 C279962D 93D60424 3FD592CB 9D0A926F 422E4718 7521287E 7156C5C4
                 D6031355 69B9E9D0 9CF5D4A2 70F59746",
    },
    Kat {
        source: "RFC 8031 Appendix A",
        group: DhGroup::Curve25519,
        // random_i: the 32 random octets, clamped on use.
        i: "75 1f b4 30 86 55 b4 76 b6 78 9b 73 25 f9 ea 8c
            dd d1 6a 58 53 3f f6 d9 e6 00 09 46 4a 5f 9d 94",
        public_i: "48 d5 dd d4 06 12 57 ba 16 6f a3 f9 bb db 74 f1
                   a4 e8 1c 08 93 84 fa 77 f7 90 70 9f 0d fb c7 66",
        r: "0a 54 64 52 53 29 0d 60 dd ad d0 e0 30 ba cd 9e
            55 01 ef dc 22 07 55 a1 e9 78 f1 b8 39 a0 56 88",
        public_r: "0b e7 c1 f5 aa d8 7d 7e 44 86 62 67 32 98 a4 43
                   47 8b 85 97 45 17 9e af 56 4c 79 c0 ef 6e ee 25",
        shared: "c7 49 50 60 7a 12 32 7f 32 04 d9 4b 68 25 bf b0
                 68 b7 f8 31 9a 9e 37 08 ed 3d 43 ce 81 30 c9 50",
    },
    Kat {
        source: "RFC 7748 §6.1",
        group: DhGroup::Curve25519,
        i: "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        public_i: "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
        r: "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        public_r: "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
        shared: "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
    },
    Kat {
        source: "RFC 5903 §8.3",
        group: DhGroup::Ecp521,
        i: "0113 F82DA825 735E3D97 276683B2 B74277BA D27335EA 71664AF2 430CC4F3
            3459B966 9EE78B3F FB9B8683 015D344D CBFEF6FB 9AF4C6C4 70BE2545 16CD3C1A
            1FB47362",
        // gix || giy
        public_i: "01EB B34DD757 21ABF8AD C9DBED17 889CBB97 65D90A7C 60F2CEF0 07BB0F2B
                   26E14881 FD4442E6 89D61CB2 DD046EE3 0E3FFD20 F9A45BBD F6413D58 3A2DBF59
                   924FD35C
                   00F6 B632D194 C0388E22 D8437E55 8C552AE1 95ADFD15 3F92D749 08351B2F
                   8C4EDA94 EDB0916D 1B53C020 B5EECAED 1A5FC38A 233E4830 587BB2EE 3489B3B4
                   2A5A86A4",
        r: "00CE E3480D86 45A17D24 9F2776D2 8BAE6169 52D1791F DB4B70F7 C3378732
            AA1B2292 8448BCD1 DC2496D4 35B01048 066EBE4F 72903C36 1B1A9DC1 193DC2C9
            D0891B96",
        // grx || gry
        public_r: "010E BFAFC6E8 5E08D24B FFFCC1A4 511DB0E6 34BEEB1B 6DEC8C59 39AE4476
                   6201AF62 00430BA9 7C8AC6A0 E9F08B33 CE7E9FEE B5BA4EE5 E0D81510 C24295B8
                   A08D0235
                   00A4 A6EC300D F9E257B0 372B5E7A BFEF0934 36719A77 887EBB0B 18CF8099
                   B9F4212B 6E30A141 9C18E029 D36863CC 9D448F4D BA4D2A0E 60711BE5 72915FBD
                   4FEF2695",
        // girx, with its leading zero byte (66 bytes).
        shared: "00CD EA89621C FA46B132 F9E4CFE2 261CDE2D 4368EB56 56634C7C C98C7A00
                 CDE54ED1 866A0DD3 E6126C9D 2F845DAF F82CEB1D A08F5D87 521BB0EB ECA77911
                 169C20CC",
    },
    Kat {
        source: "RFC 5114 Appendix A.3",
        group: DhGroup::Modp2048s256,
        // xA
        i: "0881382C DB87660C 6DC13E61 4938D5B9 C8B2F248 581CC5E3 1B354543 97FCE50E",
        // yA
        public_i: "2E9380C8 323AF975 45BC4941 DEB0EC37 42C62FE0 ECE824A6 ABDBE66C 59BEE024
                   2911BFB9 67235CEB A35AE13E 4EC752BE 630B92DC 4BDE2847 A9C62CB8 15274542
                   1FB7EB60 A63C0FE9 159FCCE7 26CE7CD8 523D7450 667EF840 E4919121 EB5F01C8
                   C9B0D3D6 48A93BFB 75689E82 44AC134A F544711C E79A02DC C3422668 4780DDDC
                   B4985941 06C37F5B C7985648 7AF5AB02 2A2E5E42 F09897C1 A85A11EA 0212AF04
                   D9B4CEBC 937C3C1A 3E15A8A0 342E3376 15C84E7F E3B8B9B8 7FB1E73A 15AF12A3
                   0D746E06 DFC34F29 0D797CE5 1AA13AA7 85BF6658 AFF5E4B0 93003CBE AF665B3C
                   2E113A3A 4E905269 341DC071 1426685F 4EF37E86 8A8126FF 3F2279B5 7CA67E29",
        // xB
        r: "7D62A7E3 EF36DE61 7B13D1AF B82C780D 83A23BD4 EE670564 5121F371 F546A53D",
        // yB
        public_r: "575F0351 BD2B1B81 7448BDF8 7A6C362C 1E289D39 03A30B98 32C5741F A250363E
                   7ACBC7F7 7F3DACBC 1F131ADD 8E03367E FF8FBBB3 E1C57844 24809B25 AFE4D226
                   2A1A6FD2 FAB64105 CA30A674 E07F7809 85208863 2FC04923 3791AD4E DD083A97
                   8B883EE6 18BC5E0D D047415F 2D95E683 CF14826B 5FBE10D3 CE41C6C1 20C78AB2
                   0008C698 BF7F0BCA B9D7F407 BED0F43A FB2970F5 7F8D1204 3963E66D DD320D59
                   9AD9936C 8F44137C 08B180EC 5E985CEB E186F3D5 49677E80 607331EE 17AF3380
                   A725B078 2317D7DD 43F59D7A F9568A9B B63A84D3 65F92244 ED120988 219302F4
                   2924C7CA 90B89D24 F71B0AB6 97823D7D EB1AFF5B 0E8E4A45 D49F7F53 757E1913",
        // Z
        shared: "86C70BF8 D0BB81BB 01078A17 219CB7D2 7203DB2A 19C877F1 D1F19FD7 D77EF225
                 46A68F00 5AD52DC8 4553B78F C60330BE 51EA7C06 72CAC151 5E4B35C0 47B9A551
                 B88F39DC 26DA14A0 9EF74774 D47C762D D177F9ED 5BC2F11E 52C879BD 95098504
                 CD9EECD8 A8F9B3EF BD1F008A C5853097 D9D1837F 2B18F77C D7BE01AF 80A7C7B5
                 EA3CA54C C02D0C11 6FEE3F95 BB873993 85875D7E 86747E67 6E728938 ACBFF709
                 8E05BE4D CFB24052 B83AEFFB 14783F02 9ADBDE7F 53FAE920 84224090 E007CEE9
                 4D4BF2BA CE9FFD4B 57D2AF7C 724D0CAA 19BF0501 F6F17B4A A10F425E 3EA76080
                 B4B9D6B3 CEFEA115 B2CEB878 9BB8A3B0 EA87FEBE 63B6C8F8 46EC6DB0 C26C5D7C",
    },
    Kat {
        source: "group 2, computed with Python: g^i and g^ir start with a zero byte",
        group: DhGroup::Modp1024,
        i: "9c11f9915397e2c6b7c8bc206e4391b196b9d664f32bb8dd0c421f1b9eccad38",
        public_i: "00248dab9e6437cb37368b3ebbaac840285aee49481281cc54a033247f97fd66
                   770d8b7bdaf0f10ba00814c952dde3bb79b0cf04982daf4db93df3335674339a
                   5011235cf61f3cf78ce371a725ff1e8d0926f8f465dc0a96b8a97fc30ba16e2d
                   f8ab12f768ceb0c3638e7736c7b3a1d109f25f00ec85671054d24742184356bc",
        r: "dabc76b89b390cedbb5aec312340309c9eacc699865057b3e3a4996603b2e951",
        public_r: "477868224a9e03126985c110fa18aa43fe76cba2d01623c06d40575174707cf4
                   098ae13db9ccb4bf2b3790b7023f45de935d499d129eed28680e7edc727d89b7
                   0e98d80be1453dc4199534dbf0a7f28652923609d3b142344589778cf40114de
                   9e01d0d3e9ea4d9f7c19e8ae9238837dd4f9bd2eef3166c42e7447924df13876",
        shared: "0074a62246b6aa43889ceada288885658ea2ea603133124a8cfdb7fbb902a3e2
                 01d51c3f46c1cdcd54bda0d43884539c6110674a656741ffdb4e7d08eb8252c8
                 9d4a9953d870fb216c58b7ce0bdcd8c74fc87d8eda5f1ae9e3ab7e232be56c39
                 6335c3c4f48a03aa63ba5b713da3edf5dfaa050dcb3bc724f207612662d13c6b",
    },
];

/// A MODP exchange whose values are given as SHA-256 digests (see the module
/// doc); exponents are big-endian, each the length `KeyExchange::new` draws.
struct ModpKat {
    group: DhGroup,
    i: &'static str,
    r: &'static str,
    public_i_sha256: &'static str,
    public_r_sha256: &'static str,
    shared_sha256: &'static str,
}

const MODP_KATS: &[ModpKat] = &[
    ModpKat {
        group: DhGroup::Modp1024,
        i: "980db856450513723a1454d7cdaec9c62812ad98004adcfc74309a334dcb5424",
        r: "cd975bc786e7a7091e03436d9992e49d878e5ca447a0027eef6b66e831446b79",
        public_i_sha256: "f43b36ff0d76161b4b4d0914de27df3767076fae6c555a9c8a9333d292968ca0",
        public_r_sha256: "aecb6fa6528d0614d4f929eb90168e37bc68063e2108c380a56da28963d2e3bc",
        shared_sha256: "b565072d53084a23b6fe91def8ea09c799f7d32bc1c9f32e3dcdedbfea2062d3",
    },
    ModpKat {
        group: DhGroup::Modp1536,
        i: "e47b6746d659331108066967164be590bdb4184af4ea30b1bca902d361784c3e",
        r: "89c59044e83f32a906f1425c8bdb0d334f33d1c2ae4f6b2abd22e55756747535",
        public_i_sha256: "7f10bfc2debd67fe383207e13ce3603db411940d1a8b0332a286622b9c5c3b07",
        public_r_sha256: "66379bd67446d87d168705e57b635a9f583b299158f001661102303c0290053d",
        shared_sha256: "b3062d95e9dd81ad00e2fd2ffee96a16a0acebd3ae1cb113aec74805e2d4eeb1",
    },
    ModpKat {
        group: DhGroup::Modp2048,
        i: "8267465288bf0edb730dcf0baa56858d0c18d12bf3b8c624eb92e38234021429f85ab44b09f971690fbac99ecb9193bb",
        r: "ef2b19d2b9c8d5268c597c2bbc0b66f0e29285dc65f2648a1f599735cd535393e76d28818793b9a81d66dbc1a4fc5e2d",
        public_i_sha256: "b05e3379327617dc9f60cbfb2eeff2a8f25f4c706e2ea155776db93f98998ace",
        public_r_sha256: "f139119df306b4d97981b10822df37d5f98f653ef959c40566cf997998c71d3b",
        shared_sha256: "fd6d5503c387d391398978ef3e3b4b441e9b617964ef7d0d4e1a40a23e8e8d74",
    },
    ModpKat {
        group: DhGroup::Modp3072,
        i: "dfaf9366fb7d09e7a46fb67b51f16eebc7ebcacb467e374d96e3fc524ef51364f66ab14c467f0efb9d05c21e7d979aa2cd773ecd926e637b",
        r: "bc809c863c931cdc83ac0640669696e5ca6bba0f98589c5122133847f190109f4c9782e75002f13c6013a61241b9d4a326cefa58238a70a1",
        public_i_sha256: "176bff322977035817f94a5169422252966667ce136d642c1245c1df5721ae0b",
        public_r_sha256: "5f7d6f2031c85190f71c8944e06db3fdb717734df0da149e4f2314c35806011f",
        shared_sha256: "9abc69bd94784e27f2669e6369deae157390ee8c27d7baaccb462da62a62d0e1",
    },
    ModpKat {
        group: DhGroup::Modp4096,
        i: "c5bb4324df7d3e12453e89303c7675b67a82288b24d1f3bd3b97e466de13693c4074c3a228ff51a0e88480e11269b944732eb0c4f53bc05b7ff9aa1dbf6b62e4",
        r: "9c0557154f60a8c5930b35b815ba961908b40d41ec6f8e7c428ee39a5b1951705d3d9d212e3f973e4a5469600f0ca3ee0904188098376f3916bfd5187008ed61",
        public_i_sha256: "0499dd3b9bd41419bbfef5a4d7bca7260e42825d211bfe632046956ef1bf41f8",
        public_r_sha256: "679433de87bbbac2fb1c175cac4e6b2857676b0b0f4600aba674207cf5854083",
        shared_sha256: "747d0926e3f73a4ef26152260411dbb0b19e6a494d162a97c2c00309f09e68cb",
    },
    ModpKat {
        group: DhGroup::Modp6144,
        i: "f7f7c4bc1e2eca5926a2e4ca9f68ff832893144fc63aa05f666b6f534ea74302b0d8b9f1b212a803a1c27e39b1504965cbd4b1bc4c3fa4a013b05300fa6318fe1fd0665776f790cb",
        r: "a72fc743f0f48332d07202184b21cb36b8940027a89d056273b3145b1d3617d635d8b656f7af3a6a146e9182721572012569e99afb7023d6e5e84c18d3bd6601573ad76defbeb31f",
        public_i_sha256: "f26ded053255c45ed91074e8ceeb3c44b1b789ccffcedbdc6a89b1aab494400c",
        public_r_sha256: "7dfb0121b5d87d5dc9ae4130ccf14ef9d52663fe43320801e9b9394ee19efbf5",
        shared_sha256: "0f589b7d8d4532ad137c3c6885d3b7b1a3135736560d5599f2c3b1aa17cc496c",
    },
    ModpKat {
        group: DhGroup::Modp8192,
        i: "a633a60f2720498ca6c7fd8f0dce51f53fcf3073ae098901de26172c057127bcbac37ce3313b0ec9c79d12969b38d32bf5d4bb781316271cf48e465dc213f01aba7274930945e0424de01eab8674582c",
        r: "cd4e8d0696f01d13cad4d47d973312036cb442a3c90ec7af087e7908c08615faef5cc7c25a15e9e0a82a094df5a7702ac9adf9bdfe63b4b9ecd6360e6d3c582bdcff96f3bef9ca23aa43976e20788309",
        public_i_sha256: "bdc4d7fcf47f068131937a75b4777aa41e8601b22e0bffec5573af1a3d367c94",
        public_r_sha256: "ff8a359ab0e838e2abd4edf8153f6ce54e6dc7afc11c9c96b0762361f5e50a61",
        shared_sha256: "f9053625de675189b098175fbeb61cc180dd9e1f486cefc7edb64170bf401e32",
    },
];

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, b))
}

#[test]
fn modp_known_answers() {
    for k in MODP_KATS {
        let g = k.group;
        let ki = KeyExchange::from_private(g, &unhex(k.i)).unwrap();
        let kr = KeyExchange::from_private(g, &unhex(k.r)).unwrap();
        assert_eq!(ki.public().len(), g.public_len(), "{g}");
        assert_eq!(sha256_hex(ki.public()), k.public_i_sha256, "{g}: g^i");
        assert_eq!(sha256_hex(kr.public()), k.public_r_sha256, "{g}: g^r");
        let si = ki.agree(kr.public()).unwrap();
        let sr = kr.agree(ki.public()).unwrap();
        assert_eq!(sha256_hex(si.as_bytes()), k.shared_sha256, "{g}: g^ir");
        assert_eq!(si.as_bytes(), sr.as_bytes(), "{g}");
        assert_eq!(si.as_bytes().len(), g.shared_len(), "{g}");
    }
    // Every RFC 3526 / RFC 2409 group has one.
    for g in DhGroup::ALL {
        if modp_prime(g).is_some() && g != DhGroup::Modp2048s256 {
            assert!(MODP_KATS.iter().any(|k| k.group == g), "{g}");
        }
    }
}

#[test]
fn published_known_answers() {
    for k in KATS {
        let ki = KeyExchange::from_private(k.group, &unhex(k.i)).unwrap();
        let kr = KeyExchange::from_private(k.group, &unhex(k.r)).unwrap();
        assert_eq!(ki.group(), k.group);
        assert_eq!(
            hex::encode(ki.public()),
            hex::encode(unhex(k.public_i)),
            "{}: initiator public",
            k.source
        );
        assert_eq!(
            hex::encode(kr.public()),
            hex::encode(unhex(k.public_r)),
            "{}: responder public",
            k.source
        );
        assert_eq!(ki.public().len(), k.group.public_len());
        let si = ki.agree(&unhex(k.public_r)).unwrap();
        let sr = kr.agree(&unhex(k.public_i)).unwrap();
        assert_eq!(
            hex::encode(si.as_bytes()),
            hex::encode(unhex(k.shared)),
            "{}: g^ir at initiator",
            k.source
        );
        assert_eq!(
            hex::encode(sr.as_bytes()),
            hex::encode(unhex(k.shared)),
            "{}: g^ir at responder",
            k.source
        );
        assert_eq!(si.as_bytes().len(), k.group.shared_len());
    }
}

#[test]
fn fresh_exchanges_agree_in_every_group() {
    let mut rng = TestRng::new(7);
    for group in DhGroup::ALL {
        let a = KeyExchange::new(group, &mut rng);
        let b = KeyExchange::new(group, &mut rng);
        assert_eq!(a.public().len(), group.public_len());
        assert_ne!(a.public(), b.public());
        let sa = a.agree(b.public()).unwrap();
        let sb = b.agree(a.public()).unwrap();
        assert_eq!(sa.as_bytes(), sb.as_bytes(), "{group}");
        assert_eq!(sa.as_bytes().len(), group.shared_len());
    }
}

#[test]
fn same_seed_same_keys() {
    for group in DhGroup::ALL {
        let a = KeyExchange::new(group, &mut TestRng::new(42));
        let b = KeyExchange::new(group, &mut TestRng::new(42));
        let c = KeyExchange::new(group, &mut TestRng::new(43));
        assert_eq!(a.public(), b.public());
        assert_ne!(a.public(), c.public());
    }
}

#[test]
fn wrong_length_public_values_are_refused() {
    let mut rng = TestRng::new(1);
    for group in DhGroup::ALL {
        let ours = KeyExchange::new(group, &mut rng);
        let peer = KeyExchange::new(group, &mut rng);
        let n = group.public_len();
        // Including the SEC 1 tagged form of a real point, which RFC 5903
        // does not put on the wire.
        let mut tagged = vec![0x04];
        tagged.extend_from_slice(peer.public());
        for bad in [vec![], vec![1; n - 1], vec![1; n + 1], tagged] {
            assert_eq!(
                ours.agree(&bad).unwrap_err(),
                DhError::PublicLength {
                    group,
                    expected: n,
                    got: bad.len()
                },
                "{group}"
            );
        }
    }
}

#[test]
fn invalid_ecp_points_are_refused() {
    let mut rng = TestRng::new(2);
    for group in [DhGroup::Ecp256, DhGroup::Ecp384, DhGroup::Ecp521] {
        let ours = KeyExchange::new(group, &mut rng);
        let peer = KeyExchange::new(group, &mut rng);
        let n = group.public_len();
        // Off the curve: a real point with y changed.
        let mut off = peer.public().to_vec();
        off[n - 1] ^= 1;
        // All zero: (0, 0) is not on either curve; the identity has no x||y form.
        let zero = vec![0u8; n];
        // Coordinates not below p.
        let ff = vec![0xff; n];
        for bad in [off, zero, ff] {
            assert_eq!(
                ours.agree(&bad).unwrap_err(),
                DhError::InvalidPublic { group },
                "{group}"
            );
        }
        // The untouched point still works.
        assert!(ours.agree(peer.public()).is_ok());
    }
}

/// RFC 8031 §2: an all-zero X25519 result (a low-order peer point) must be
/// refused. u = 0 and u = 1 are points of small order.
#[test]
fn x25519_low_order_points_are_refused() {
    let ours = KeyExchange::new(DhGroup::Curve25519, &mut TestRng::new(3));
    let mut one = [0u8; 32];
    one[0] = 1;
    for bad in [[0u8; 32], one] {
        assert_eq!(
            ours.agree(&bad).unwrap_err(),
            DhError::NonContributory {
                group: DhGroup::Curve25519
            }
        );
    }
}

#[test]
fn invalid_private_keys_are_refused() {
    let cases: &[(DhGroup, Vec<u8>)] = &[
        (DhGroup::Ecp256, vec![0; 32]),
        (DhGroup::Ecp256, vec![0xff; 32]),
        (DhGroup::Ecp256, vec![1; 31]),
        (DhGroup::Ecp256, vec![1; 48]),
        (DhGroup::Ecp384, vec![0; 48]),
        (DhGroup::Ecp384, vec![0xff; 48]),
        (DhGroup::Ecp384, vec![1; 32]),
        (DhGroup::Curve25519, vec![1; 31]),
        (DhGroup::Curve25519, vec![1; 33]),
        (DhGroup::Ecp521, vec![0; 66]),
        (DhGroup::Ecp521, vec![0xff; 66]),
        (DhGroup::Ecp521, vec![1; 65]),
        (DhGroup::Ecp521, vec![1; 67]),
        // MODP: empty, 0, 1, longer than the 1024-bit exponents we hold.
        (DhGroup::Modp2048, vec![]),
        (DhGroup::Modp2048, vec![0; 48]),
        (DhGroup::Modp2048, [vec![0; 47], vec![1]].concat()),
        (DhGroup::Modp8192, vec![1; 129]),
        (DhGroup::Modp1024, vec![0]),
        // Group 24: 0, q, and all-ones (above q); exponents must be in [1, q-1].
        (DhGroup::Modp2048s256, vec![0; 32]),
        (DhGroup::Modp2048s256, unhex(GROUP_24_Q)),
        (DhGroup::Modp2048s256, vec![0xff; 32]),
    ];
    for (group, bytes) in cases {
        assert_eq!(
            KeyExchange::from_private(*group, bytes).unwrap_err(),
            DhError::InvalidPrivate { group: *group },
            "{group} {}",
            bytes.len()
        );
    }
}

/// A generator that first returns invalid ECP scalars (all 0xff, above the
/// group order), to show `new` draws again rather than failing or looping.
struct BadThenGood(usize, TestRng);
impl Rng for BadThenGood {
    fn fill(&mut self, dest: &mut [u8]) {
        if self.0 > 0 {
            self.0 -= 1;
            dest.fill(0xff);
        } else {
            self.1.fill(dest);
        }
    }
}

#[test]
fn invalid_random_scalars_are_redrawn() {
    for group in [DhGroup::Ecp256, DhGroup::Ecp384, DhGroup::Ecp521] {
        let k = KeyExchange::new(group, &mut BadThenGood(3, TestRng::new(9)));
        let peer = KeyExchange::new(group, &mut TestRng::new(10));
        assert!(k.agree(peer.public()).is_ok());
    }
}

#[test]
fn debug_shows_no_private_key() {
    for k in KATS {
        let kx = KeyExchange::from_private(k.group, &unhex(k.i)).unwrap();
        let dbg = format!("{kx:?}");
        assert!(dbg.contains("redacted"), "{dbg}");
        let private = hex::encode(unhex(k.i));
        assert!(!dbg.to_lowercase().contains(&private[..8]), "{dbg}");
        let shared = kx.agree(&unhex(k.public_r)).unwrap();
        let dbg = format!("{shared:?}");
        assert!(
            !dbg.contains(&hex::encode(&shared.as_bytes()[..4])),
            "{dbg}"
        );
    }
}

#[test]
fn error_messages_name_the_group() {
    let e = DhError::PublicLength {
        group: DhGroup::Ecp256,
        expected: 64,
        got: 65,
    };
    let s = e.to_string();
    assert!(
        s.contains("ecp256") && s.contains("64") && s.contains("65"),
        "{s}"
    );
}

/// RFC 5114 §2.3: the order of group 24's subgroup.
const GROUP_24_Q: &str = "8CF83642 A709A097 B4479976 40129DA2 99B1A47D 1EB3750B A308B0FE 64F5FBD3";

/// `n` plus `delta` as a big-endian number of the same length (wrapping).
fn add(n: &[u8], delta: i64) -> Vec<u8> {
    let mut out = n.to_vec();
    let mut carry = delta;
    for b in out.iter_mut().rev() {
        let v = i64::from(*b) + carry;
        *b = v.rem_euclid(256) as u8;
        carry = v.div_euclid(256);
        if carry == 0 {
            break;
        }
    }
    out
}

/// RFC 6989 §2.1: a MODP public value must be 1 < y < p-1, exactly the prime's
/// length. Every edge is refused with its own error, and the values just
/// inside are accepted.
#[test]
fn modp_edge_values_are_refused() {
    let mut rng = TestRng::new(11);
    for group in DhGroup::ALL {
        let Some(p) = modp_prime(group) else { continue };
        assert_eq!(p.len(), group.public_len(), "{group}");
        let ours = KeyExchange::new(group, &mut rng);
        let n = p.len();
        let zero = vec![0u8; n];
        let one = add(&zero, 1);
        let out_of_range = [
            zero.clone(),
            one,
            add(&p, -1),
            p.clone(),
            add(&p, 1),
            vec![0xff; n],
        ];
        for bad in out_of_range {
            assert_eq!(
                ours.agree(&bad).unwrap_err(),
                DhError::PublicOutOfRange { group },
                "{group}: {}...",
                hex::encode(&bad[n - 4..])
            );
        }
        // Left-padded is the only form: the right value one byte short or long
        // (with or without a leading zero) is refused for its length.
        let peer = KeyExchange::new(group, &mut rng);
        let mut padded = vec![0];
        padded.extend_from_slice(peer.public());
        for bad in [padded, peer.public()[1..].to_vec()] {
            assert!(
                matches!(ours.agree(&bad), Err(DhError::PublicLength { .. })),
                "{group}"
            );
        }
        // 2 and p-2 are in range; in the safe-prime groups they are accepted
        // (group 24 refuses them below: they are outside its subgroup).
        if group != DhGroup::Modp2048s256 {
            for ok in [add(&zero, 2), add(&p, -2)] {
                let s = ours.agree(&ok).unwrap();
                assert_eq!(s.as_bytes().len(), n, "{group}");
            }
        }
    }
}

/// RFC 6989 §2.2: in group 24 (p-1 has small factors) a value must be in the
/// order-q subgroup. 2, p-2 and g^x * (p-1) are in range but outside it.
#[test]
fn group_24_refuses_values_outside_the_subgroup() {
    let group = DhGroup::Modp2048s256;
    let p = modp_prime(group).unwrap();
    let mut rng = TestRng::new(12);
    let ours = KeyExchange::new(group, &mut rng);
    let peer = KeyExchange::new(group, &mut rng);
    let mut two = vec![0u8; p.len()];
    two[p.len() - 1] = 2;
    for bad in [two, add(&p, -2), negate(peer.public(), &p)] {
        assert_eq!(
            ours.agree(&bad).unwrap_err(),
            DhError::NotInSubgroup { group }
        );
    }
    assert!(ours.agree(peer.public()).is_ok());
}

/// p - y: the product of y with p-1 (= -1), which has order 2, so it leaves
/// the odd-order subgroup.
fn negate(y: &[u8], p: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; p.len()];
    let mut borrow = 0i16;
    for i in (0..p.len()).rev() {
        let v = i16::from(p[i]) - i16::from(y[i]) - borrow;
        out[i] = v.rem_euclid(256) as u8;
        borrow = i16::from(v < 0);
    }
    out
}

/// The legacy groups work like any other (the daemon decides whether a
/// connection may use them); only the table marks them.
#[test]
fn legacy_groups_exchange_and_are_marked() {
    let mut rng = TestRng::new(13);
    for group in [DhGroup::Modp1024, DhGroup::Modp1536] {
        assert!(group.is_legacy());
        let a = KeyExchange::new(group, &mut rng);
        let b = KeyExchange::new(group, &mut rng);
        assert_eq!(
            a.agree(b.public()).unwrap().as_bytes(),
            b.agree(a.public()).unwrap().as_bytes()
        );
    }
    assert!(!DhGroup::Modp2048.is_legacy());
    assert!(!DhGroup::Modp2048s256.is_legacy());
}

/// One key pair per group, made once: MODP key generation is slow in an
/// unoptimised test build, and the properties below only need a fixed "ours".
fn our_keys() -> &'static [KeyExchange] {
    static KEYS: std::sync::OnceLock<Vec<KeyExchange>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let mut rng = TestRng::new(14);
        DhGroup::ALL
            .iter()
            .map(|g| KeyExchange::new(*g, &mut rng))
            .collect()
    })
}

/// Public values built to sit on and near the edges: p + delta, small
/// numbers, all-ones, random bytes; of the right length or not.
fn hostile_public(group: DhGroup) -> impl Strategy<Value = Vec<u8>> {
    let n = group.public_len();
    let p = modp_prime(group).unwrap_or_else(|| vec![0xff; n]);
    prop_oneof![
        (-4i64..=4).prop_map(move |d| add(&p, d)),
        (0i64..=4).prop_map(move |d| add(&vec![0u8; n], d)),
        Just(vec![0xff; n]),
        proptest::collection::vec(any::<u8>(), n),
        proptest::collection::vec(any::<u8>(), 0..2 * n + 2),
    ]
}

fn any_group() -> impl Strategy<Value = DhGroup> {
    proptest::sample::select(DhGroup::ALL.to_vec())
}

proptest! {
    // Each case may run one exponentiation of up to 8192 bits, slow unoptimised.
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any KE data is either accepted (and gives a secret of the group's
    /// length) or refused with a `DhError` naming the group: never a panic.
    #[test]
    fn hostile_public_values_never_panic(
        (group, data) in any_group().prop_flat_map(|g| (Just(g), hostile_public(g)))
    ) {
        let ours = &our_keys()[DhGroup::ALL.iter().position(|g| *g == group).unwrap()];
        match ours.agree(&data) {
            Ok(s) => {
                prop_assert_eq!(data.len(), group.public_len());
                prop_assert_eq!(s.as_bytes().len(), group.shared_len());
            }
            Err(e) => {
                let named = match e {
                    DhError::PublicLength { group: g, expected, got } => {
                        prop_assert_eq!(expected, group.public_len());
                        prop_assert_eq!(got, data.len());
                        prop_assert_ne!(got, expected);
                        g
                    }
                    DhError::InvalidPublic { group: g }
                    | DhError::PublicOutOfRange { group: g }
                    | DhError::NotInSubgroup { group: g }
                    | DhError::NonContributory { group: g }
                    | DhError::InvalidPrivate { group: g } => g,
                };
                prop_assert_eq!(named, group);
            }
        }
    }

    /// Any private key bytes give a key pair or `InvalidPrivate`, never a panic.
    #[test]
    fn hostile_private_keys_never_panic(
        group in any_group(),
        bytes in proptest::collection::vec(any::<u8>(), 0..140),
    ) {
        // Keep the exponentiation short: this is about parsing, not the maths.
        prop_assume!(modp_prime(group).is_none() || bytes.len() <= 32);
        match KeyExchange::from_private(group, &bytes) {
            Ok(k) => prop_assert_eq!(k.public().len(), group.public_len()),
            Err(e) => prop_assert_eq!(e, DhError::InvalidPrivate { group }),
        }
    }
}

/// The strongSwan keywords of the new groups work wherever proposals list DH
/// groups (IKE proposals and ESP PFS), and a responder picks them by number.
#[test]
fn proposals_name_the_new_groups() {
    use ironsec_ike::crypto::{
        choose_esp, choose_ike, offer_esp, offer_ike, EspProposal, IkeProposal,
    };
    let ike: IkeProposal = "aes256gcm16-prfsha256-modp2048-modp3072-modp4096-modp6144-modp8192-\
                            modp2048s256-ecp521-modp1024-modp1536"
        .parse()
        .unwrap();
    assert_eq!(
        ike.dh,
        [
            DhGroup::Modp2048,
            DhGroup::Modp3072,
            DhGroup::Modp4096,
            DhGroup::Modp6144,
            DhGroup::Modp8192,
            DhGroup::Modp2048s256,
            DhGroup::Ecp521,
            DhGroup::Modp1024,
            DhGroup::Modp1536,
        ]
    );
    let esp: EspProposal = "aes128gcm16-MODP2048-ecp521".parse().unwrap();
    assert_eq!(esp.dh, [DhGroup::Modp2048, DhGroup::Ecp521]);

    // An initiator offering MODP-2048 (as strongSwan's defaults and much gear
    // do) to a responder that allows it among others.
    let initiator: IkeProposal = "aes256gcm16-prfsha256-modp2048".parse().unwrap();
    let responder: IkeProposal = "aes256gcm16-prfsha256-x25519-modp2048s256-modp2048"
        .parse()
        .unwrap();
    let (_, algs) = choose_ike(&offer_ike(&[initiator]), &[responder]).unwrap();
    assert_eq!(algs.dh, DhGroup::Modp2048);
    let (_, algs) = choose_esp(&offer_esp(std::slice::from_ref(&esp)), &[esp]).unwrap();
    assert_eq!(algs.dh, Some(DhGroup::Modp2048));
}
