//! Chain building and validation (RFC 5280 §6, the parts IPsec uses): from an end-entity
//! certificate through intermediates (sent by the peer or configured) to a trust anchor.

use crate::cert::{format_time, Certificate};
use crate::crl::Crl;

/// Trust anchors (every CA certificate configured as trusted, self-signed or not, as
/// strongSwan's x509ca directory) and the CRLs loaded with them.
#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    anchors: Vec<Certificate>,
    crls: Vec<Crl>,
}

/// The longest chain, anchor included, tried: deeper hierarchies do not occur in IPsec
/// deployments, and the bound keeps a peer's pile of intermediates from costing much.
pub const MAX_CHAIN_LEN: usize = 8;

/// Why a certificate was refused. Each names the certificate concerned (its subject) so the
/// log line says which one failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    #[error("certificate '{subject}' expired {days} days ago (notAfter {not_after})")]
    Expired {
        subject: String,
        not_after: String,
        days: i64,
    },
    #[error("certificate '{subject}' is not valid before {not_before}")]
    NotYetValid { subject: String, not_before: String },
    #[error("certificate '{subject}': issuer '{issuer}' is not a trusted CA and no intermediate for it was sent")]
    UnknownIssuer { subject: String, issuer: String },
    #[error("certificate '{subject}' (serial {serial}) is revoked by the CRL of '{issuer}'")]
    Revoked {
        subject: String,
        serial: String,
        issuer: String,
    },
    #[error("certificate '{subject}': signature by '{issuer}' does not verify")]
    BadSignature { subject: String, issuer: String },
    #[error("certificate '{subject}' is used as a CA but {reason}")]
    NotCa {
        subject: String,
        reason: &'static str,
    },
    #[error("certificate '{subject}': path length constraint exceeded")]
    PathLen { subject: String },
    #[error("certificate '{subject}': key usage does not allow digitalSignature")]
    KeyUsage { subject: String },
    #[error("certificate '{subject}' has a critical extension ironsec does not enforce ({oid})")]
    UnsupportedCritical { subject: String, oid: String },
    #[error("certificate chain longer than {0}")]
    TooLong(usize),
}

impl TrustStore {
    pub fn new(anchors: Vec<Certificate>, crls: Vec<Crl>) -> TrustStore {
        TrustStore { anchors, crls }
    }
    pub fn anchors(&self) -> &[Certificate] {
        &self.anchors
    }
    pub fn crls(&self) -> &[Crl] {
        &self.crls
    }
    /// SHA-1 SPKI hashes of the anchors, concatenated: a CERTREQ payload's body.
    pub fn certreq_hashes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.anchors.len() * 20);
        for a in &self.anchors {
            let h = a.spki_sha1();
            // Two anchors with one key (a re-issued root) need one hash.
            if !out.chunks(20).any(|c: &[u8]| c == h) {
                out.extend_from_slice(&h);
            }
        }
        out
    }

    /// Validates `end` at `now` (Unix seconds) using `intermediates` (any order, may hold
    /// unrelated certificates) to reach an anchor. Returns the chain from `end` to the anchor.
    /// Checks: validity periods of every certificate in the path, signatures, basicConstraints
    /// cA and pathLen and keyCertSign on every issuer, digitalSignature on `end`, revocation of
    /// every non-anchor certificate by a CRL of its issuer whose signature verifies with that
    /// issuer's key (a CRL past nextUpdate is still used). `end` being itself an anchor is
    /// accepted if valid.
    ///
    /// Paths are built by name (issuer DN = subject DN) and signature; when several issuers
    /// fit, each is tried. If no path passes, the error is the first complete path's (so an
    /// expired or revoked certificate is reported as such), else a signature failure, else
    /// the missing issuer.
    pub fn validate(
        &self,
        end: &Certificate,
        intermediates: &[Certificate],
        now: i64,
    ) -> Result<Vec<Certificate>, ChainError> {
        if self.anchors.iter().any(|a| a.der() == end.der()) {
            check_time(end, now)?;
            return Ok(vec![end.clone()]);
        }
        let mut best: Option<(u8, ChainError)> = None;
        let mut path = vec![end.clone()];
        match self.search(&mut path, intermediates, now, &mut best) {
            Some(chain) => Ok(chain),
            None => Err(best.map(|(_, e)| e).unwrap_or(ChainError::UnknownIssuer {
                subject: end.subject().to_string(),
                issuer: end.issuer().to_string(),
            })),
        }
    }

    /// Depth-first search from the last certificate of `path`. Keeps in `best` the most
    /// telling error seen (ranked: a complete path's check 3, bad signature 2, too long 1,
    /// unknown issuer 0; the first of a rank wins).
    fn search(
        &self,
        path: &mut Vec<Certificate>,
        intermediates: &[Certificate],
        now: i64,
        best: &mut Option<(u8, ChainError)>,
    ) -> Option<Vec<Certificate>> {
        let cur = path.last()?.clone();
        let anchors = self.anchors.iter().map(|c| (c, true));
        let others = intermediates.iter().map(|c| (c, false));
        let candidates: Vec<(&Certificate, bool)> = anchors
            .chain(others)
            .filter(|(c, _)| c.subject() == cur.issuer())
            .filter(|(c, _)| !path.iter().any(|p| p.der() == c.der()))
            .collect();
        if candidates.is_empty() {
            note(
                best,
                0,
                ChainError::UnknownIssuer {
                    subject: cur.subject().to_string(),
                    issuer: cur.issuer().to_string(),
                },
            );
            return None;
        }
        for (candidate, is_anchor) in candidates {
            if cur.signed_by(candidate).is_err() {
                note(
                    best,
                    2,
                    ChainError::BadSignature {
                        subject: cur.subject().to_string(),
                        issuer: candidate.subject().to_string(),
                    },
                );
                continue;
            }
            if path.len() + 1 > MAX_CHAIN_LEN {
                note(best, 1, ChainError::TooLong(MAX_CHAIN_LEN));
                continue;
            }
            path.push(candidate.clone());
            if is_anchor {
                match self.check_path(path, now) {
                    Ok(()) => return Some(path.clone()),
                    Err(e) => note(best, 3, e),
                }
            } else if let Some(chain) = self.search(path, intermediates, now, best) {
                return Some(chain);
            }
            path.pop();
        }
        None
    }

    /// The checks on a complete path (end first, anchor last), in the order that names the
    /// most useful reason: validity periods (end first), then CA constraints, then the end's
    /// key usage, then revocation.
    fn check_path(&self, path: &[Certificate], now: i64) -> Result<(), ChainError> {
        for cert in path {
            check_time(cert, now)?;
        }
        // RFC 5280 §4.2; the anchor is configured, not checked.
        for cert in &path[..path.len() - 1] {
            if let Some(oid) = cert.unsupported_critical_extensions().first() {
                return Err(ChainError::UnsupportedCritical {
                    subject: cert.subject().to_string(),
                    oid: oid.clone(),
                });
            }
        }
        for (i, issuer) in path.iter().enumerate().skip(1) {
            let subject = issuer.subject().to_string();
            let is_anchor = i == path.len() - 1;
            let legacy_root =
                is_anchor && !issuer.has_basic_constraints() && issuer.is_self_signed();
            if !issuer.is_ca() && !legacy_root {
                return Err(ChainError::NotCa {
                    subject,
                    reason: "its basicConstraints do not say cA",
                });
            }
            if !issuer.may_sign_certs() {
                return Err(ChainError::NotCa {
                    subject,
                    reason: "its keyUsage lacks keyCertSign",
                });
            }
            // CA certificates below this one (the end entity does not count).
            if let Some(max) = issuer.path_len() {
                if (i - 1) as u64 > u64::from(max) {
                    return Err(ChainError::PathLen { subject });
                }
            }
        }
        if !path[0].may_sign_data() {
            return Err(ChainError::KeyUsage {
                subject: path[0].subject().to_string(),
            });
        }
        for pair in path.windows(2) {
            let (cert, issuer) = (&pair[0], &pair[1]);
            let revoked = issuer.may_sign_crls()
                && self.crls.iter().any(|crl| {
                    crl.issuer() == cert.issuer()
                        && crl.revokes(cert.serial())
                        && crl.signed_by(issuer).is_ok()
                });
            if revoked {
                return Err(ChainError::Revoked {
                    subject: cert.subject().to_string(),
                    serial: cert.serial_hex(),
                    issuer: issuer.subject().to_string(),
                });
            }
        }
        Ok(())
    }
}

fn note(best: &mut Option<(u8, ChainError)>, rank: u8, e: ChainError) {
    if best.as_ref().map_or(true, |(r, _)| rank > *r) {
        *best = Some((rank, e));
    }
}

fn check_time(cert: &Certificate, now: i64) -> Result<(), ChainError> {
    if now < cert.not_before() {
        return Err(ChainError::NotYetValid {
            subject: cert.subject().to_string(),
            not_before: format_time(cert.not_before()),
        });
    }
    if now > cert.not_after() {
        return Err(ChainError::Expired {
            subject: cert.subject().to_string(),
            not_after: format_time(cert.not_after()),
            days: (now - cert.not_after()).div_euclid(86_400),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki::*;
    use rcgen::{BasicConstraints, IsCa, KeyUsagePurpose, SignatureAlgorithm};
    use rcgen::{PKCS_ECDSA_P256_SHA256 as P256, PKCS_ECDSA_P384_SHA384 as P384, PKCS_ED25519};

    struct Pki {
        root: Ca,
        inter: Ca,
        end_key: rcgen::KeyPair,
        end: Certificate,
    }

    fn pki(
        root_alg: &'static SignatureAlgorithm,
        inter_alg: &'static SignatureAlgorithm,
        end_alg: &'static SignatureAlgorithm,
    ) -> Pki {
        let root = root("root", root_alg);
        let inter = sub_ca(ca_params("inter"), inter_alg, &root);
        let end_key = key(end_alg);
        let end = issue(end_params("gw-a", 0x1234), &end_key, &inter);
        Pki {
            root,
            inter,
            end_key,
            end,
        }
    }

    fn store(p: &Pki, crls: Vec<Crl>) -> TrustStore {
        TrustStore::new(vec![p.root.parsed()], crls)
    }

    fn subjects(chain: &[Certificate]) -> Vec<String> {
        chain.iter().map(|c| c.subject().to_string()).collect()
    }

    #[test]
    fn valid_chains_with_every_key_type() {
        let combos: [(
            &SignatureAlgorithm,
            &SignatureAlgorithm,
            &SignatureAlgorithm,
        ); 4] = [
            (&P256, &P256, &P256),
            (&P384, &P256, &PKCS_ED25519),
            (&PKCS_ED25519, &P384, &P384),
            (&P256, &P384, &PKCS_ED25519),
        ];
        for (r, i, e) in combos {
            let p = pki(r, i, e);
            let chain = store(&p, vec![])
                .validate(&p.end, &[p.inter.parsed()], NOW)
                .unwrap();
            assert_eq!(
                subjects(&chain),
                [
                    "C=CH, O=ironsec, CN=gw-a",
                    "C=CH, O=ironsec, CN=inter",
                    "C=CH, O=ironsec, CN=root"
                ]
            );
        }
    }

    #[test]
    fn rsa_ca_from_fixture_key() {
        let rsa = rsa_key();
        let root = Ca {
            cert: ca_params("rsa-root").self_signed(&rsa).unwrap(),
            key: rsa,
        };
        assert_eq!(
            root.parsed().spki(),
            include_bytes!("../testdata/rsa2048.spki.der")
        );
        let end_key = key(&P256);
        let end = issue(end_params("gw-rsa", 7), &end_key, &root);
        let chain = TrustStore::new(vec![root.parsed()], vec![])
            .validate(&end, &[], NOW)
            .unwrap();
        assert_eq!(chain.len(), 2);
        assert!(root.parsed().is_self_signed());
    }

    #[test]
    fn intermediates_in_any_order_with_unrelated_ones() {
        let p = pki(&P256, &P256, &P256);
        let other = pki(&P256, &P256, &P256);
        let inters = [
            other.inter.parsed(),
            p.end.clone(),
            p.inter.parsed(),
            other.root.parsed(),
        ];
        // `other.inter` has the same name as `p.inter` (CN=inter) but another key: it is tried
        // (or not) and the right one found.
        let chain = store(&p, vec![]).validate(&p.end, &inters, NOW).unwrap();
        assert_eq!(chain[1].der(), p.inter.cert.der().as_ref());
    }

    #[test]
    fn two_anchors_with_one_name_are_both_tried() {
        let p = pki(&P256, &P256, &P256);
        let decoy = root("root", &P256);
        let ts = TrustStore::new(vec![decoy.parsed(), p.root.parsed()], vec![]);
        ts.validate(&p.end, &[p.inter.parsed()], NOW).unwrap();
    }

    #[test]
    fn expired_and_not_yet_valid() {
        let p = pki(&P256, &P256, &P256);
        let ts = store(&p, vec![]);
        let inter = [p.inter.parsed()];
        let old = issue(
            params("old", IsCa::ExplicitNoCa, 2020, 2023),
            &p.end_key,
            &p.inter,
        );
        let err = ts.validate(&old, &inter, NOW).unwrap_err();
        assert_eq!(
            err,
            ChainError::Expired {
                subject: "C=CH, O=ironsec, CN=old".into(),
                not_after: "2023-01-01 00:00:00 UTC".into(),
                days: 882,
            }
        );
        assert_eq!(
            err.to_string(),
            "certificate 'C=CH, O=ironsec, CN=old' expired 882 days ago (notAfter 2023-01-01 00:00:00 UTC)"
        );
        let future = issue(
            params("future", IsCa::ExplicitNoCa, 2026, 2030),
            &p.end_key,
            &p.inter,
        );
        assert_eq!(
            ts.validate(&future, &inter, NOW).unwrap_err(),
            ChainError::NotYetValid {
                subject: "C=CH, O=ironsec, CN=future".into(),
                not_before: "2026-01-01 00:00:00 UTC".into(),
            }
        );
        // An expired intermediate is named.
        let mut ip = ca_params("old-inter");
        ip.not_after = rcgen::date_time_ymd(2024, 6, 1);
        let old_inter = sub_ca(ip, &P256, &p.root);
        let end = issue(end_params("gw-b", 9), &p.end_key, &old_inter);
        assert!(matches!(
            ts.validate(&end, &[old_inter.parsed()], NOW),
            Err(ChainError::Expired { subject, .. }) if subject == "C=CH, O=ironsec, CN=old-inter"
        ));
    }

    #[test]
    fn unknown_issuer() {
        let p = pki(&P256, &P256, &P256);
        let ts = store(&p, vec![]);
        // Intermediate not sent.
        assert_eq!(
            ts.validate(&p.end, &[], NOW).unwrap_err(),
            ChainError::UnknownIssuer {
                subject: "C=CH, O=ironsec, CN=gw-a".into(),
                issuer: "C=CH, O=ironsec, CN=inter".into(),
            }
        );
        // A chain to another root.
        let other = pki(&P256, &P256, &P256);
        let mut other_root_params = ca_params("other-root");
        other_root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let other_root = root("other-root", &P256);
        let end = issue(end_params("gw-x", 1), &other.end_key, &other_root);
        assert!(matches!(
            ts.validate(&end, &[], NOW),
            Err(ChainError::UnknownIssuer { issuer, .. }) if issuer == "C=CH, O=ironsec, CN=other-root"
        ));
    }

    #[test]
    fn wrong_key_behind_the_right_name_is_a_bad_signature() {
        let p = pki(&P256, &P256, &P256);
        let other = pki(&P256, &P256, &P256);
        // other.end is issued by an "inter" whose name matches p.inter, but not its key.
        assert_eq!(
            store(&p, vec![])
                .validate(&other.end, &[p.inter.parsed()], NOW)
                .unwrap_err(),
            ChainError::BadSignature {
                subject: "C=CH, O=ironsec, CN=gw-a".into(),
                issuer: "C=CH, O=ironsec, CN=inter".into(),
            }
        );
    }

    #[test]
    fn flipped_signature_byte() {
        let p = pki(&P256, &P256, &P256);
        let mut der = p.end.der().to_vec();
        let last = der.len() - 5;
        der[last] ^= 0x01;
        let bad = Certificate::from_der(&der).unwrap();
        assert!(bad.signed_by(&p.inter.parsed()).is_err());
        assert!(matches!(
            store(&p, vec![]).validate(&bad, &[p.inter.parsed()], NOW),
            Err(ChainError::BadSignature { .. })
        ));
    }

    #[test]
    fn issuer_without_ca_flag() {
        let p = pki(&P256, &P256, &P256);
        let mut ip = ca_params("not-a-ca");
        ip.is_ca = IsCa::ExplicitNoCa;
        let fake = sub_ca(ip, &P256, &p.root);
        let end = issue(end_params("gw-c", 3), &p.end_key, &fake);
        assert_eq!(
            store(&p, vec![])
                .validate(&end, &[fake.parsed()], NOW)
                .unwrap_err(),
            ChainError::NotCa {
                subject: "C=CH, O=ironsec, CN=not-a-ca".into(),
                reason: "its basicConstraints do not say cA",
            }
        );
        // cA but keyUsage without keyCertSign.
        let mut ip = ca_params("no-certsign");
        ip.key_usages = vec![KeyUsagePurpose::CrlSign];
        let ca = sub_ca(ip, &P256, &p.root);
        let end = issue(end_params("gw-d", 4), &p.end_key, &ca);
        assert!(matches!(
            store(&p, vec![]).validate(&end, &[ca.parsed()], NOW),
            Err(ChainError::NotCa {
                reason: "its keyUsage lacks keyCertSign",
                ..
            })
        ));
    }

    #[test]
    fn path_len_constraint() {
        let mut rp = ca_params("root0");
        rp.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let rk = key(&P256);
        let root = Ca {
            cert: rp.self_signed(&rk).unwrap(),
            key: rk,
        };
        let inter = sub_ca(ca_params("inter"), &P256, &root);
        let end_key = key(&P256);
        let end = issue(end_params("gw-e", 5), &end_key, &inter);
        let ts = TrustStore::new(vec![root.parsed()], vec![]);
        assert_eq!(
            ts.validate(&end, &[inter.parsed()], NOW).unwrap_err(),
            ChainError::PathLen {
                subject: "C=CH, O=ironsec, CN=root0".into()
            }
        );
        // pathLen 0 still allows issuing end entities directly.
        let direct = issue(end_params("gw-f", 6), &end_key, &root);
        ts.validate(&direct, &[], NOW).unwrap();
        assert_eq!(root.parsed().path_len(), Some(0));
    }

    #[test]
    fn end_key_usage_must_allow_signatures() {
        let p = pki(&P256, &P256, &P256);
        let mut ep = end_params("gw-g", 8);
        ep.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
        let end = issue(ep, &p.end_key, &p.inter);
        assert_eq!(
            store(&p, vec![])
                .validate(&end, &[p.inter.parsed()], NOW)
                .unwrap_err(),
            ChainError::KeyUsage {
                subject: "C=CH, O=ironsec, CN=gw-g".into()
            }
        );
    }

    #[test]
    fn unknown_critical_extensions_are_refused_non_critical_ones_ignored() {
        let p = pki(&P256, &P256, &P256);
        let with = |critical: bool| {
            let mut ep = end_params("gw-x", 9);
            let mut ext =
                rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], vec![5, 0]);
            ext.set_criticality(critical);
            ep.custom_extensions = vec![ext];
            issue(ep, &p.end_key, &p.inter)
        };
        let inter = [p.inter.parsed()];
        let critical = with(true);
        assert_eq!(
            critical.unsupported_critical_extensions(),
            ["1.3.6.1.4.1.99999.1".to_string()]
        );
        let err = store(&p, vec![])
            .validate(&critical, &inter, NOW)
            .unwrap_err();
        assert_eq!(
            err,
            ChainError::UnsupportedCritical {
                subject: "C=CH, O=ironsec, CN=gw-x".into(),
                oid: "1.3.6.1.4.1.99999.1".into()
            }
        );
        assert!(err.to_string().contains("critical extension"));
        let plain = with(false);
        assert!(plain.unsupported_critical_extensions().is_empty());
        assert!(store(&p, vec![]).validate(&plain, &inter, NOW).is_ok());
    }

    #[test]
    fn crl_revokes_end_and_wrong_key_crl_is_ignored() {
        let p = pki(&P256, &P256, &P256);
        let inter = [p.inter.parsed()];
        let revoking = crl(&p.inter, &[0x99, 0x1234]);
        assert_eq!(revoking.issuer(), p.end.issuer());
        assert_eq!(revoking.revoked_count(), 2);
        assert!(revoking.revokes(&[0x12, 0x34]));
        assert!(revoking.revokes(&[0x00, 0x12, 0x34]));
        assert!(!revoking.revokes(&[0x12]));
        assert!(revoking.signed_by(&p.inter.parsed()).is_ok());
        assert_eq!(
            store(&p, vec![revoking.clone()])
                .validate(&p.end, &inter, NOW)
                .unwrap_err(),
            ChainError::Revoked {
                subject: "C=CH, O=ironsec, CN=gw-a".into(),
                serial: "12:34".into(),
                issuer: "C=CH, O=ironsec, CN=inter".into(),
            }
        );
        // Same issuer name, another key: must not count.
        let impostor = root("inter", &P256);
        let forged = crl(&impostor, &[0x1234]);
        assert_eq!(forged.issuer(), p.end.issuer());
        assert!(forged.signed_by(&p.inter.parsed()).is_err());
        store(&p, vec![forged])
            .validate(&p.end, &inter, NOW)
            .unwrap();
        // A CRL of the root revoking the intermediate.
        let root_crl = crl(&p.root, &[]);
        store(&p, vec![root_crl])
            .validate(&p.end, &inter, NOW)
            .unwrap();
        // A CRL listing other serials.
        store(&p, vec![crl(&p.inter, &[1, 2, 3])])
            .validate(&p.end, &inter, NOW)
            .unwrap();
        // An issuer whose keyUsage does not allow cRLSign cannot revoke.
        let mut ip = ca_params("no-crlsign");
        ip.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let ca = sub_ca(ip, &P256, &p.root);
        let end = issue(end_params("gw-h", 0x42), &p.end_key, &ca);
        let view = ca_params("no-crlsign").self_signed(&ca.key).unwrap();
        let crl = crl_signed(&view, &ca.key, &[0x42]);
        assert!(crl.signed_by(&ca.parsed()).is_ok());
        store(&p, vec![crl])
            .validate(&end, &[ca.parsed()], NOW)
            .unwrap();
    }

    #[test]
    fn revoked_intermediate() {
        let p = pki(&P256, &P256, &P256);
        let inter = p.inter.parsed();
        let serial: u64 = inter
            .serial()
            .iter()
            .take(8)
            .fold(0, |a, b| (a << 8) | u64::from(*b));
        if inter.serial().len() > 8 {
            return; // rcgen's random serials are shorter; guard anyway
        }
        let root_crl = crl(&p.root, &[serial]);
        assert!(matches!(
            store(&p, vec![root_crl]).validate(&p.end, &[inter], NOW),
            Err(ChainError::Revoked { subject, .. }) if subject == "C=CH, O=ironsec, CN=inter"
        ));
    }

    #[test]
    fn pinned_end_entity_and_self_signed_anchor() {
        let p = pki(&P256, &P256, &P256);
        let ts = TrustStore::new(vec![p.end.clone()], vec![]);
        assert_eq!(ts.validate(&p.end, &[], NOW).unwrap().len(), 1);
        assert!(matches!(
            ts.validate(&p.end, &[], NOW + 3 * 365 * 86_400),
            Err(ChainError::Expired { .. })
        ));
        // A root given as the end entity, trusted.
        let ts = store(&p, vec![]);
        ts.validate(&p.root.parsed(), &[], NOW).unwrap();
    }

    #[test]
    fn loops_and_length_are_bounded() {
        // Two CAs that cross-certify each other, neither trusted: must end, as UnknownIssuer
        // or BadSignature, not loop.
        let a = root("loop-a", &P256);
        let b = root("loop-b", &P256);
        let a_by_b = sub_ca(ca_params("loop-a"), &P256, &b);
        let b_by_a = sub_ca(ca_params("loop-b"), &P256, &a);
        let k = key(&P256);
        let end = issue(end_params("gw-loop", 1), &k, &a);
        let ts = TrustStore::new(vec![root("x", &P256).parsed()], vec![]);
        let r = ts.validate(
            &end,
            &[a_by_b.parsed(), b_by_a.parsed(), a.parsed(), b.parsed()],
            NOW,
        );
        assert!(r.is_err());

        // A chain of 9 intermediates exceeds MAX_CHAIN_LEN.
        let top = root("deep-root", &P256);
        let mut cas = vec![];
        let mut parent = &top;
        for i in 0..9 {
            cas.push(sub_ca(ca_params(&format!("deep-{i}")), &P256, parent));
            parent = cas.last().unwrap();
        }
        let end = issue(end_params("gw-deep", 2), &k, parent);
        let inters: Vec<Certificate> = cas.iter().map(|c| c.parsed()).collect();
        let ts = TrustStore::new(vec![top.parsed()], vec![]);
        assert_eq!(
            ts.validate(&end, &inters, NOW).unwrap_err(),
            ChainError::TooLong(MAX_CHAIN_LEN)
        );
        // 6 intermediates fit.
        let end = issue(end_params("gw-ok", 3), &k, &cas[5]);
        assert_eq!(ts.validate(&end, &inters, NOW).unwrap().len(), 8);
    }

    #[test]
    fn certreq_hashes_are_spki_sha1s() {
        let p = pki(&P256, &P256, &P256);
        let other = root("other", &P384);
        let ts = TrustStore::new(
            vec![p.root.parsed(), other.parsed(), p.root.parsed()],
            vec![],
        );
        let h = ts.certreq_hashes();
        assert_eq!(h.len(), 40);
        let expect = ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            p.root.parsed().spki(),
        );
        assert_eq!(&h[..20], expect.as_ref());
        assert_eq!(&h[20..], other.parsed().spki_sha1());
        assert_eq!(ts.anchors().len(), 3);
        assert!(ts.crls().is_empty());
    }
}
