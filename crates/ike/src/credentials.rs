//! How each end of a connection proves who it is: a pre-shared key or a certificate and its
//! private key (RFC 7296 §2.15, RFC 7427). The two directions are independent, as in
//! strongSwan: we may sign with a certificate and accept the peer's PSK MIC, or the other way.

use std::fmt;
use std::sync::Arc;

use ironsec_pki::{Certificate, PrivateKey, TrustStore};

use crate::config::{Identity, Psk};

/// How we authenticate ourselves.
#[derive(Clone, Debug)]
pub enum LocalAuth {
    Psk(Psk),
    Pubkey(Credentials),
    /// As a remote-access client: EAP-MSCHAPv2 as `user` (RFC 7296 §2.16). The gateway proves
    /// itself with a certificate (`remote_auth` pubkey); our AUTH is keyed by the EAP MSK.
    /// The NT hash is zeroed on drop and never shown.
    EapMschapv2 {
        user: String,
        hash: ironsec_eap::NtHash,
    },
    /// As a remote-access client: EAP-TLS (RFC 5216) as `identity` (the EAP identity, one
    /// the certificate speaks for) with this certificate and key. The gateway's TLS
    /// certificate is checked against the connection's `RemoteAuth::Pubkey` trust store.
    EapTls {
        identity: String,
        cred: Arc<Credential>,
    },
}

/// A connection's certificates, in configured order; never empty. Several are for a peer
/// population that trusts different CAs (a CA migration, two partners' PKIs): each negotiation
/// uses the first whose CA the peer named in its CERTREQ (RFC 7296 §3.7), else the first.
#[derive(Clone, Debug)]
pub struct Credentials(Arc<[Choice]>);

#[derive(Debug)]
struct Choice {
    cred: Arc<Credential>,
    /// The CAs above the certificate as a peer names them in a CERTREQ (SHA-1 of their
    /// SubjectPublicKeyInfo): its intermediates and the trust anchors that issued the topmost.
    ca_hashes: Vec<[u8; 20]>,
}

impl Credentials {
    /// One certificate: nothing to choose.
    pub fn one(c: Credential) -> Credentials {
        Credentials::new(vec![Arc::new(c)], &[]).expect("one credential")
    }

    /// `all` in order of preference, matched against CERTREQs by their intermediates and by
    /// those of `anchors` (our trust anchors: usually our own root is among them) that issued
    /// their topmost certificate. None when `all` is empty.
    pub fn new(all: Vec<Arc<Credential>>, anchors: &[Certificate]) -> Option<Credentials> {
        if all.is_empty() {
            return None;
        }
        let choices: Vec<Choice> = all
            .into_iter()
            .map(|cred| {
                let mut ca_hashes: Vec<[u8; 20]> =
                    cred.chain.iter().skip(1).map(|c| c.spki_sha1()).collect();
                if let Some(top) = cred.chain.last() {
                    ca_hashes.extend(
                        anchors
                            .iter()
                            .filter(|a| a.subject() == top.issuer() && top.signed_by(a).is_ok())
                            .map(|a| a.spki_sha1()),
                    );
                }
                Choice { cred, ca_hashes }
            })
            .collect();
        Some(Credentials(choices.into()))
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Credential>> {
        self.0.iter().map(|c| &c.cred)
    }

    /// The default: the first configured.
    pub fn first(&self) -> &Arc<Credential> {
        &self.0[0].cred
    }

    /// The credential for a peer whose CERTREQs named the CAs `hashes`: the first that chains
    /// to one of them, else the first.
    pub fn for_certreq(&self, hashes: &[[u8; 20]]) -> &Arc<Credential> {
        self.0
            .iter()
            .find(|c| c.ca_hashes.iter().any(|h| hashes.contains(h)))
            .map_or(self.first(), |c| &c.cred)
    }
}

/// How the peer must authenticate itself.
#[derive(Clone, Debug)]
pub enum RemoteAuth {
    Psk(Psk),
    Pubkey(Arc<PeerTrust>),
    /// Remote-access clients authenticate with EAP-MSCHAPv2 (RFC 7296 §2.16) against these
    /// users, checked by the engine itself. Needs `local_auth` pubkey: the gateway always
    /// proves itself with its certificate first. (EAP-TLS and EAP via RADIUS will be variants
    /// of their own.)
    EapMschapv2(Arc<ironsec_eap::Users>),
    /// Remote-access clients authenticate with EAP through the RADIUS server named `server`
    /// (RFC 3579 pass-through): the engine sends EAP-Request/Identity itself, then hands each
    /// EAP response out ([`crate::Event::EapRadius`]) and takes the server's answers back
    /// ([`crate::Endpoint::eap_radius_answer`]). Needs `local_auth` pubkey.
    EapRadius {
        server: Arc<str>,
    },
    /// Remote-access clients authenticate with EAP-TLS (RFC 5216): a client certificate
    /// checked against this trust (anchors and CRLs at the engine's clock; `pinned` is not
    /// used), and an EAP identity the certificate speaks for. The TLS server certificate and
    /// key are our `local_auth` pubkey credential's first.
    EapTls(Arc<PeerTrust>),
}

/// Our certificate chain and the key that signs for it.
pub struct Credential {
    /// End-entity certificate first, then intermediates (sent in this order, RFC 7296 §3.6).
    pub chain: Vec<Certificate>,
    pub key: PrivateKey,
    pub send_cert: SendCert,
    /// An RSA key signs RFC 7427 AUTH with RSASSA-PSS rather than PKCS#1 v1.5 (strongSwan's
    /// `charon.rsa_pss`). Off by default: PKCS#1 v1.5 is what every peer verifies.
    pub rsa_pss: bool,
}

impl Credential {
    pub fn new(chain: Vec<Certificate>, key: PrivateKey, send_cert: SendCert) -> Credential {
        Credential {
            chain,
            key,
            send_cert,
            rsa_pss: false,
        }
    }

    /// The same, signing with RSASSA-PSS when the key is RSA (`rsa_pss`).
    pub fn with_rsa_pss(mut self, on: bool) -> Credential {
        self.rsa_pss = on;
        self
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field(
                "subject",
                &self.chain.first().map(|c| c.subject().to_string()),
            )
            .field("chain", &self.chain.len())
            .field("key", &self.key)
            .field("send_cert", &self.send_cert)
            .field("rsa_pss", &self.rsa_pss)
            .finish()
    }
}

/// EAP-TLS signs with the credential's key where it lies.
impl AsRef<PrivateKey> for Credential {
    fn as_ref(&self) -> &PrivateKey {
        &self.key
    }
}

/// When CERT payloads go out (strongSwan's `send_cert`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SendCert {
    /// When the peer sent a CERTREQ (any; an empty one too).
    #[default]
    IfAsked,
    Always,
    /// The peer holds our certificate already.
    Never,
}

/// What a peer's certificate is checked against.
#[derive(Debug)]
pub struct PeerTrust {
    /// Trust anchors and CRLs (the gateway's `ca_dir` and `crl_dir`).
    pub store: Arc<TrustStore>,
    /// The peer's own certificate, configured (`remote_cert`): the peer need not send it, and a
    /// certificate it sends must be this one. Trusted as it is (its validity period and the
    /// CRLs still apply).
    pub pinned: Option<Certificate>,
}

impl LocalAuth {
    pub fn psk(&self) -> Option<&Psk> {
        match self {
            LocalAuth::Psk(p) => Some(p),
            _ => None,
        }
    }
    pub fn credentials(&self) -> Option<&Credentials> {
        match self {
            LocalAuth::Pubkey(c) => Some(c),
            _ => None,
        }
    }
}

impl RemoteAuth {
    pub fn psk(&self) -> Option<&Psk> {
        match self {
            RemoteAuth::Psk(p) => Some(p),
            _ => None,
        }
    }
    pub fn trust(&self) -> Option<&Arc<PeerTrust>> {
        match self {
            RemoteAuth::Pubkey(t) => Some(t),
            _ => None,
        }
    }
    /// The peer authenticates with EAP: its first IKE_AUTH request carries no AUTH.
    pub fn is_eap(&self) -> bool {
        matches!(
            self,
            RemoteAuth::EapMschapv2(_) | RemoteAuth::EapRadius { .. } | RemoteAuth::EapTls(_)
        )
    }
}

/// Whether a certificate speaks for an identity (RFC 4945 §3.1, as strongSwan checks it): a DN
/// equal to the subject; an FQDN, e-mail address or IP address among the subjectAltNames.
pub fn id_in_certificate(id: &Identity, cert: &Certificate) -> bool {
    match id {
        Identity::Dn(dn) => cert.subject() == dn,
        Identity::Fqdn(name) => cert.san_dns().iter().any(|d| d.eq_ignore_ascii_case(name)),
        Identity::Email(addr) => cert
            .san_email()
            .iter()
            .any(|e| e.eq_ignore_ascii_case(addr)),
        Identity::Ipv4(a) => cert.san_ip().contains(&std::net::IpAddr::V4(*a)),
        Identity::Ipv6(a) => cert.san_ip().contains(&std::net::IpAddr::V6(*a)),
        Identity::KeyId(_) | Identity::Any => false,
    }
}
