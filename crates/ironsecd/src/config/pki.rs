//! Certificate authentication in the config: the gateway's trust anchors and CRLs (`ca_dir`,
//! `crl_dir`), and a connection's `local_cert`/`local_key`, `remote_cert`, `local_auth`,
//! `remote_auth` and `send_cert`. Files are read here (the daemon's I/O); the IKE engine gets
//! parsed certificates and keys.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ironsec_ike::credentials::id_in_certificate;
use ironsec_ike::pki::{Certificate, Crl, PrivateKey, TrustStore};
use ironsec_ike::{Credential, Identity, SendCert};
use zeroize::Zeroizing;

use super::error::ConfigError;
use super::gateway::Gateway;
use super::keys;
use super::schema::ConnectionSchema;

/// The loaded trust anchors and CRLs. Equal when the same certificates and CRLs were loaded,
/// so a reload that read the same files changes nothing.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    pub store: Arc<TrustStore>,
    /// Each anchor's file, in the order of `store.anchors()`.
    pub anchor_files: Vec<PathBuf>,
    /// Each CRL's file, in the order of `store.crls()`.
    pub crl_files: Vec<PathBuf>,
}

impl PartialEq for Trust {
    fn eq(&self, other: &Trust) -> bool {
        let ders = |t: &Trust| -> Vec<Vec<u8>> {
            t.store.anchors().iter().map(|c| c.der().to_vec()).collect()
        };
        ders(self) == ders(other)
            && self.crl_files == other.crl_files
            && self.store.crls().len() == other.store.crls().len()
    }
}

/// Files of a directory, sorted by name; hidden files skipped.
fn files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Reads `ca_dir` and `crl_dir`. Every file in `ca_dir` must hold CA certificates; every file
/// in `crl_dir` CRLs. Errors name the file.
pub fn load_trust(file: &Path, g: &Gateway, errs: &mut Vec<ConfigError>) -> Trust {
    let mut anchors = Vec::new();
    let mut anchor_files = Vec::new();
    if let Some(dir) = &g.ca_dir {
        match files_in(dir) {
            Err(e) => errs.push(ConfigError::new(
                file,
                "gateway.ca_dir",
                format!("{}: cannot read: {e}", dir.display()),
            )),
            Ok(paths) => {
                for p in paths {
                    let certs = std::fs::read(&p)
                        .map_err(|e| format!("cannot read: {e}"))
                        .and_then(|b| {
                            Certificate::all_from_pem_or_der(&b).map_err(|e| e.to_string())
                        });
                    match certs {
                        Err(e) => errs.push(ConfigError::new(
                            file,
                            "gateway.ca_dir",
                            format!("{}: {e}", p.display()),
                        )),
                        Ok(certs) => {
                            for c in certs {
                                if !c.is_ca() {
                                    errs.push(ConfigError::new(
                                        file,
                                        "gateway.ca_dir",
                                        format!(
                                            "{}: '{}' is not a CA certificate (no basicConstraints \
                                             cA); a peer's own certificate goes in its \
                                             connection's remote_cert",
                                            p.display(),
                                            c.subject()
                                        ),
                                    ));
                                    continue;
                                }
                                anchors.push(c);
                                anchor_files.push(p.clone());
                            }
                        }
                    }
                }
            }
        }
    }
    let mut crls = Vec::new();
    let mut crl_files = Vec::new();
    if let Some(dir) = &g.crl_dir {
        match files_in(dir) {
            Err(e) => errs.push(ConfigError::new(
                file,
                "gateway.crl_dir",
                format!("{}: cannot read: {e}", dir.display()),
            )),
            Ok(paths) => {
                for p in paths {
                    let read = std::fs::read(&p)
                        .map_err(|e| format!("cannot read: {e}"))
                        .and_then(|b| Crl::all_from_pem_or_der(&b).map_err(|e| e.to_string()));
                    match read {
                        Err(e) => errs.push(ConfigError::new(
                            file,
                            "gateway.crl_dir",
                            format!("{}: {e}", p.display()),
                        )),
                        Ok(v) => {
                            for crl in v {
                                crls.push(crl);
                                crl_files.push(p.clone());
                            }
                        }
                    }
                }
            }
        }
    }
    Trust {
        store: Arc::new(TrustStore::new(anchors, crls)),
        anchor_files,
        crl_files,
    }
}

/// How a connection authenticates, as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    pub local: LocalAuthConfig,
    pub remote: RemoteAuthConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LocalAuthConfig {
    Psk,
    Pubkey(LocalCerts),
}

/// A connection's certificates: `local_cert`/`local_key`, or the entries of `local_certs` in
/// order (the first is the default; the peer's CERTREQ may choose another).
#[derive(Debug, Clone, PartialEq)]
pub struct LocalCerts {
    pub first: LocalCert,
    pub more: Vec<LocalCert>,
}

impl LocalCerts {
    pub fn iter(&self) -> impl Iterator<Item = &LocalCert> {
        std::iter::once(&self.first).chain(&self.more)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum RemoteAuthConfig {
    Psk,
    Pubkey {
        pinned: Option<PinnedCert>,
    },
    /// Remote-access clients with EAP-MSCHAPv2 against a users file (NT hashes).
    EapMschapv2(EapUsers),
    /// Remote-access clients' EAP relayed to a RADIUS server (RFC 3579).
    EapRadius(super::radius::RadiusConfig),
    /// Remote-access clients with EAP-TLS: a client certificate chaining to `gateway.ca_dir`
    /// (CRLs from `crl_dir`), whose identity is the EAP identity the client gives.
    EapTls,
}

/// The users of `eap_users_file`, as loaded. Equal when the same file is named: a reload
/// that changed its users gives the engine the new list for the next logins without
/// counting the connection as changed (its clients stay connected).
#[derive(Debug, Clone)]
pub struct EapUsers {
    pub file: PathBuf,
    pub users: Arc<ironsec_ike::eap::Users>,
}

impl PartialEq for EapUsers {
    fn eq(&self, other: &Self) -> bool {
        self.file == other.file
    }
}

/// Reads a users file: `name:NT-hash` lines, private like a PSK file.
fn eap_users(
    file: &Path,
    key: &str,
    path: &Path,
    allow_readable: bool,
    errs: &mut Vec<ConfigError>,
) -> Option<EapUsers> {
    let k = format!("{key}.eap_users_file");
    let read = super::keys::check_secret_file(file, &k, path, allow_readable).and_then(|()| {
        let fail =
            |reason: String| ConfigError::new(file, &k, format!("{}: {reason}", path.display()));
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?,
        );
        let users = ironsec_ike::eap::Users::parse(&text).map_err(|e| fail(e.to_string()))?;
        if users.is_empty() {
            return Err(fail("no user in it".into()));
        }
        Ok(users)
    });
    match read {
        Ok(users) => Some(EapUsers {
            file: path.to_path_buf(),
            users: Arc::new(users),
        }),
        Err(e) => {
            errs.push(e);
            None
        }
    }
}

/// Our certificate and key as loaded. Equal when the same files are named with the same
/// `send_cert` and `rsa_pss`: a renewed certificate in the same file is picked up by the next negotiation
/// without the connection counting as changed (its SAs stay).
#[derive(Debug, Clone)]
pub struct LocalCert {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub credential: Arc<Credential>,
}

impl PartialEq for LocalCert {
    fn eq(&self, other: &LocalCert) -> bool {
        self.cert_file == other.cert_file
            && self.key_file == other.key_file
            && self.credential.send_cert == other.credential.send_cert
            && self.credential.rsa_pss == other.credential.rsa_pss
    }
}

/// A pinned peer certificate; equal by file, as [`LocalCert`].
#[derive(Debug, Clone)]
pub struct PinnedCert {
    pub file: PathBuf,
    pub cert: Certificate,
}

impl PartialEq for PinnedCert {
    fn eq(&self, other: &PinnedCert) -> bool {
        self.file == other.file
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Psk,
    Pubkey,
    EapMschapv2,
    EapRadius,
    EapTls,
}

fn method(
    file: &Path,
    key: &str,
    name: &str,
    v: Option<&str>,
    errs: &mut Vec<ConfigError>,
) -> Option<Method> {
    match v? {
        "psk" => Some(Method::Psk),
        "pubkey" => Some(Method::Pubkey),
        "eap-mschapv2" if name == "remote_auth" => Some(Method::EapMschapv2),
        "eap-radius" if name == "remote_auth" => Some(Method::EapRadius),
        "eap-tls" if name == "remote_auth" => Some(Method::EapTls),
        "eap-mschapv2" | "eap-radius" | "eap-tls" => {
            errs.push(ConfigError::new(
                file,
                format!("{key}.{name}"),
                "EAP is how remote-access clients prove themselves (remote_auth); the gateway \
                 proves itself with its certificate (local_auth = \"pubkey\")",
            ));
            None
        }
        other => {
            let choices = if name == "remote_auth" {
                "\"psk\", \"pubkey\", \"eap-mschapv2\", \"eap-radius\", \"eap-tls\""
            } else {
                "\"psk\", \"pubkey\""
            };
            errs.push(ConfigError::new(
                file,
                format!("{key}.{name}"),
                format!("'{other}' is not one of: {choices}"),
            ));
            None
        }
    }
}

/// The connection's authentication, and its `local_id` resolved against its certificate
/// (`local_id` absent with a certificate: the certificate's subject DN). `psk_given`: a PSK
/// was configured. Returns None after pushing errors.
pub fn validate_auth(
    file: &Path,
    key: &str,
    c: &ConnectionSchema,
    local_id: Option<Identity>,
    psk_given: bool,
    errs: &mut Vec<ConfigError>,
) -> Option<(AuthConfig, Option<Identity>, bool)> {
    let before = errs.len();
    let local = method(file, key, "local_auth", c.local_auth.as_deref(), errs).unwrap_or(
        if c.local_cert.is_some() || c.local_certs.is_some() {
            Method::Pubkey
        } else {
            Method::Psk
        },
    );
    let remote = method(file, key, "remote_auth", c.remote_auth.as_deref(), errs).unwrap_or(local);
    if remote != Method::EapMschapv2 && c.eap_users_file.is_some() {
        errs.push(ConfigError::new(
            file,
            format!("{key}.eap_users_file"),
            "set, but remote_auth is not \"eap-mschapv2\": we would not use it",
        ));
    }
    if remote != Method::EapRadius {
        super::radius::unused_keys(file, key, c, errs);
    }
    let send_cert = match c.send_cert.as_deref() {
        None | Some("ifasked") => SendCert::IfAsked,
        Some("always") => SendCert::Always,
        Some("never") => SendCert::Never,
        Some(other) => {
            errs.push(ConfigError::new(
                file,
                format!("{key}.send_cert"),
                format!("'{other}' is not one of: \"ifasked\", \"always\", \"never\""),
            ));
            SendCert::IfAsked
        }
    };
    let needs_psk = local == Method::Psk || remote == Method::Psk;
    let mut local_id = local_id;
    let local_cfg = match local {
        Method::Psk => {
            let given = [
                ("local_cert", c.local_cert.is_some()),
                ("local_key", c.local_key.is_some()),
                ("local_certs", c.local_certs.is_some()),
                ("rsa_pss", c.rsa_pss.is_some()),
            ];
            for (name, set) in given {
                if set {
                    errs.push(ConfigError::new(
                        file,
                        format!("{key}.{name}"),
                        "set, but local_auth = \"psk\": we would not use it",
                    ));
                }
            }
            if matches!(local_id, Some(Identity::Dn(_))) {
                errs.push(ConfigError::new(
                    file,
                    format!("{key}.local_id"),
                    "a distinguished name is sent as the subject of our certificate: it needs \
                     local_auth = \"pubkey\" and local_cert",
                ));
            }
            LocalAuthConfig::Psk
        }
        Method::Pubkey => match local_certs(file, key, c, send_cert, &mut local_id, errs) {
            Some(lc) => LocalAuthConfig::Pubkey(lc),
            None => return None,
        },
        // `method` refuses EAP as local_auth.
        Method::EapMschapv2 | Method::EapRadius | Method::EapTls => return None,
    };
    if matches!(
        remote,
        Method::EapMschapv2 | Method::EapRadius | Method::EapTls
    ) {
        eap_needs(file, key, c, local, remote, errs);
    }
    let remote_cfg = match remote {
        Method::Psk => {
            if c.remote_cert.is_some() {
                errs.push(ConfigError::new(
                    file,
                    format!("{key}.remote_cert"),
                    "set, but remote_auth = \"psk\": we would not use it",
                ));
            }
            RemoteAuthConfig::Psk
        }
        Method::Pubkey => {
            let pinned = match &c.remote_cert {
                None => None,
                Some(p) => Some(PinnedCert {
                    file: p.clone(),
                    cert: read_certs(file, &format!("{key}.remote_cert"), p, errs)?
                        .into_iter()
                        .next()?,
                }),
            };
            RemoteAuthConfig::Pubkey { pinned }
        }
        Method::EapRadius => {
            RemoteAuthConfig::EapRadius(super::radius::validate(file, key, c, errs)?)
        }
        Method::EapTls => RemoteAuthConfig::EapTls,
        Method::EapMschapv2 => {
            let allow = c.allow_readable_secret_file.unwrap_or(false);
            match &c.eap_users_file {
                None => {
                    errs.push(ConfigError::new(
                        file,
                        format!("{key}.eap_users_file"),
                        "required with remote_auth = \"eap-mschapv2\": a file of name:NT-hash \
                         lines (ironsecctl nthash makes them)",
                    ));
                    return None;
                }
                Some(p) => RemoteAuthConfig::EapMschapv2(eap_users(file, key, p, allow, errs)?),
            }
        }
    };
    if needs_psk && !psk_given {
        errs.push(ConfigError::new(
            file,
            format!("{key}.psk_file"),
            "required with keying = \"ike\" unless both local_auth and remote_auth are \"pubkey\"",
        ));
    }
    (errs.len() == before).then_some((
        AuthConfig {
            local: local_cfg,
            remote: remote_cfg,
        },
        local_id,
        needs_psk,
    ))
}

/// What every EAP method needs: our certificate (RFC 7296 2.16: with EAP the gateway
/// authenticates with its certificate first, and clients insist on it; for EAP-TLS it is the
/// TLS server's too) and a pool (EAP is for remote-access clients). EAP-TLS also checks
/// `gateway.ca_dir` (with the gateway, [`eap_tls_without_anchors`]), and a pinned
/// `remote_cert` means nothing to it.
fn eap_needs(
    file: &Path,
    key: &str,
    c: &ConnectionSchema,
    local: Method,
    remote: Method,
    errs: &mut Vec<ConfigError>,
) {
    if local != Method::Pubkey {
        errs.push(ConfigError::new(
            file,
            format!("{key}.local_auth"),
            if remote == Method::EapTls {
                "EAP-TLS clients authenticate the gateway by its certificate, which is also the \
                 TLS server's: needs local_auth = \"pubkey\" and local_cert"
            } else {
                "EAP clients authenticate the gateway by its certificate: needs local_auth = \
                 \"pubkey\" and local_cert"
            },
        ));
    }
    if c.pool.is_none() {
        errs.push(ConfigError::new(
            file,
            format!("{key}.remote_auth"),
            "EAP is for remote-access connections (a `pool` and a tunnel with remote = \"%any\")",
        ));
    }
    if remote == Method::EapTls && c.remote_cert.is_some() {
        errs.push(ConfigError::new(
            file,
            format!("{key}.remote_cert"),
            "set, but remote_auth = \"eap-tls\" accepts any client certificate chaining to \
             gateway.ca_dir: we would not use it",
        ));
    }
}

/// An EAP-TLS connection on a gateway without trust anchors: no client could ever log in.
pub fn eap_tls_without_anchors(
    file: &Path,
    key: &str,
    auth: &RemoteAuthConfig,
    trust: &Trust,
) -> Option<ConfigError> {
    (matches!(auth, RemoteAuthConfig::EapTls) && trust.store.anchors().is_empty()).then(|| {
        ConfigError::new(
            file,
            format!("{key}.remote_auth"),
            "\"eap-tls\" checks client certificates against gateway.ca_dir, which holds no CA \
             certificate (or is not set)",
        )
    })
}

fn read_certs(
    file: &Path,
    key: &str,
    path: &Path,
    errs: &mut Vec<ConfigError>,
) -> Option<Vec<Certificate>> {
    let r = std::fs::read(path)
        .map_err(|e| format!("cannot read: {e}"))
        .and_then(|b| Certificate::all_from_pem_or_der(&b).map_err(|e| e.to_string()));
    match r {
        Ok(v) if !v.is_empty() => Some(v),
        Ok(_) => {
            errs.push(ConfigError::new(
                file,
                key,
                format!("{}: no certificate in it", path.display()),
            ));
            None
        }
        Err(e) => {
            errs.push(ConfigError::new(
                file,
                key,
                format!("{}: {e}", path.display()),
            ));
            None
        }
    }
}

/// `local_cert`/`local_key`, or `local_certs`: every certificate read, its key checked
/// against it, and all of them carrying `local_id` (default: the first one's subject DN).
fn local_certs(
    file: &Path,
    key: &str,
    c: &ConnectionSchema,
    send_cert: SendCert,
    local_id: &mut Option<Identity>,
    errs: &mut Vec<ConfigError>,
) -> Option<LocalCerts> {
    // (cert, key, config key of the cert, config key of the key)
    let mut pairs: Vec<(&Path, &Path, String, String)> = Vec::new();
    match &c.local_certs {
        Some(list) => {
            if c.local_cert.is_some() || c.local_key.is_some() {
                errs.push(ConfigError::new(
                    file,
                    format!("{key}.local_certs"),
                    "set together with local_cert/local_key: name the certificates in one or \
                     the other",
                ));
                return None;
            }
            if list.is_empty() {
                errs.push(ConfigError::new(
                    file,
                    format!("{key}.local_certs"),
                    "empty: name at least one { cert = \"...\", key = \"...\" }",
                ));
                return None;
            }
            let before = errs.len();
            for (i, e) in list.iter().enumerate() {
                let k = format!("{key}.local_certs[{i}]");
                for (name, v) in [("cert", &e.cert), ("key", &e.key)] {
                    if v.is_none() {
                        errs.push(ConfigError::new(file, format!("{k}.{name}"), "required"));
                    }
                }
                if let (Some(cf), Some(kf)) = (&e.cert, &e.key) {
                    pairs.push((cf, kf, format!("{k}.cert"), format!("{k}.key")));
                }
            }
            if errs.len() != before {
                return None;
            }
        }
        None => {
            let (Some(cert_file), Some(key_file)) = (&c.local_cert, &c.local_key) else {
                for (name, v) in [("local_cert", &c.local_cert), ("local_key", &c.local_key)] {
                    if v.is_none() {
                        errs.push(ConfigError::new(
                            file,
                            format!("{key}.{name}"),
                            "required with local_auth = \"pubkey\"",
                        ));
                    }
                }
                return None;
            };
            pairs.push((
                cert_file,
                key_file,
                format!("{key}.local_cert"),
                format!("{key}.local_key"),
            ));
        }
    }
    let allow = c.allow_readable_secret_file.unwrap_or(false);
    let loaded: Vec<Option<LocalCert>> = pairs
        .iter()
        .map(|(cf, kf, ck, kk)| {
            let how = Signing {
                send_cert,
                rsa_pss: c.rsa_pss.unwrap_or(false),
            };
            one_local_cert(file, cf, kf, ck, kk, allow, how, errs)
        })
        .collect();
    let mut loaded: Vec<LocalCert> = loaded.into_iter().collect::<Option<_>>()?;
    let first = loaded.remove(0);
    let first_end = &first.credential.chain[0];
    let id = match local_id.take() {
        None => Identity::Dn(first_end.subject().clone()),
        // Sent as the certificate's own encoding of the name, so the peer's comparison with
        // the subject cannot trip over string types.
        Some(Identity::Dn(dn)) if dn == *first_end.subject() => {
            Identity::Dn(first_end.subject().clone())
        }
        Some(id) => id,
    };
    let mut ok = true;
    for (lc, (_, _, ck, _)) in std::iter::once(&first).chain(&loaded).zip(&pairs) {
        let end = &lc.credential.chain[0];
        if !id_in_certificate(&id, end) {
            ok = false;
            let which = if c.local_certs.is_some() {
                ck.clone()
            } else {
                "local_cert".to_string()
            };
            errs.push(ConfigError::new(
                file,
                format!("{key}.local_id"),
                format!(
                    "'{id}' is neither the subject nor a subjectAltName of {which} '{}' ({}); \
                     the peer would refuse it",
                    end.subject(),
                    lc.cert_file.display()
                ),
            ));
        }
    }
    *local_id = Some(id);
    ok.then_some(LocalCerts {
        first,
        more: loaded,
    })
}

/// A connection's settings for how its certificates are used.
#[derive(Clone, Copy)]
struct Signing {
    send_cert: SendCert,
    rsa_pss: bool,
}

/// One certificate file and its key: read, the key private and matching the certificate.
#[allow(clippy::too_many_arguments)]
fn one_local_cert(
    file: &Path,
    cert_file: &Path,
    key_file: &Path,
    cert_key: &str,
    kk: &str,
    allow: bool,
    how: Signing,
    errs: &mut Vec<ConfigError>,
) -> Option<LocalCert> {
    let chain = read_certs(file, cert_key, cert_file, errs);
    let private = keys::check_secret_file(file, kk, key_file, allow).and_then(|()| {
        let fail = |r: String| ConfigError::new(file, kk, format!("{}: {r}", key_file.display()));
        let bytes =
            Zeroizing::new(std::fs::read(key_file).map_err(|e| fail(format!("cannot read: {e}")))?);
        PrivateKey::from_pem_or_der(&bytes).map_err(|e| fail(e.to_string()))
    });
    let private = private.map_err(|e| errs.push(e)).ok();
    let (chain, private) = (chain?, private?);
    let end = &chain[0];
    if private.public_key_spki() != end.spki() {
        errs.push(ConfigError::new(
            file,
            kk,
            format!(
                "{} is not the key of {} ('{}')",
                key_file.display(),
                cert_file.display(),
                end.subject()
            ),
        ));
        return None;
    }
    Some(LocalCert {
        cert_file: cert_file.to_path_buf(),
        key_file: key_file.to_path_buf(),
        credential: Arc::new(
            Credential::new(chain, private, how.send_cert).with_rsa_pss(how.rsa_pss),
        ),
    })
}
