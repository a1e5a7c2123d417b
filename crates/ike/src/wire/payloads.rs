//! Typed lookups in a payload chain: "the Nonce", "the SA payload", "the INITIAL_CONTACT
//! notify", written once here rather than as a `find_map` at every place a message is read.

use super::auth::{AuthPayload, CertPayload};
use super::cp::CpPayload;
use super::eap::EapPayload;
use super::id::IdPayload;
use super::ke::KePayload;
use super::notify::NotifyPayload;
use super::numbers::NotifyType;
use super::payload::Payload;
use super::sa::SaPayload;
use super::ts::TrafficSelector;

/// The first payload of each kind in a chain (RFC 7296 allows one of each in the messages the
/// engine reads; when a peer sends two, the first counts). Implemented for `[Payload]`, so it
/// reads `msg.payloads.nonce()` on a parsed message and on a decrypted inner chain alike.
pub trait Payloads {
    fn sa(&self) -> Option<&SaPayload>;
    fn ke(&self) -> Option<&KePayload>;
    fn nonce(&self) -> Option<&Vec<u8>>;
    /// IDi.
    fn id_i(&self) -> Option<&IdPayload>;
    /// IDr.
    fn id_r(&self) -> Option<&IdPayload>;
    fn auth(&self) -> Option<&AuthPayload>;
    /// The first Configuration payload (RFC 7296 §3.15).
    fn cp(&self) -> Option<&CpPayload>;
    /// The first EAP payload (RFC 7296 §3.16).
    fn eap(&self) -> Option<&EapPayload>;
    /// Every CERT payload, in order (end-entity certificate first, RFC 7296 §3.6).
    fn certs(&self) -> Vec<&CertPayload>;
    /// Every CERTREQ payload; empty when the peer asked for none.
    fn certreqs(&self) -> Vec<&CertPayload>;
    /// TSi.
    fn ts_i(&self) -> Option<&Vec<TrafficSelector>>;
    /// TSr.
    fn ts_r(&self) -> Option<&Vec<TrafficSelector>>;
    /// The first notify of type `kind`.
    fn notify(&self, kind: NotifyType) -> Option<&NotifyPayload>;
    /// The first error notify (type below 16384).
    fn error_notify(&self) -> Option<&NotifyPayload>;
    /// The type of the first unknown payload with the critical bit set: what an
    /// UNSUPPORTED_CRITICAL_PAYLOAD answer carries (RFC 7296 2.5).
    fn unsupported_critical(&self) -> Option<u8>;
}

impl Payloads for [Payload] {
    fn sa(&self) -> Option<&SaPayload> {
        self.iter().find_map(|p| match p {
            Payload::Sa(s) => Some(s),
            _ => None,
        })
    }

    fn ke(&self) -> Option<&KePayload> {
        self.iter().find_map(|p| match p {
            Payload::Ke(k) => Some(k),
            _ => None,
        })
    }

    fn nonce(&self) -> Option<&Vec<u8>> {
        self.iter().find_map(|p| match p {
            Payload::Nonce(n) => Some(n),
            _ => None,
        })
    }

    fn id_i(&self) -> Option<&IdPayload> {
        self.iter().find_map(|p| match p {
            Payload::IdI(i) => Some(i),
            _ => None,
        })
    }

    fn id_r(&self) -> Option<&IdPayload> {
        self.iter().find_map(|p| match p {
            Payload::IdR(i) => Some(i),
            _ => None,
        })
    }

    fn auth(&self) -> Option<&AuthPayload> {
        self.iter().find_map(|p| match p {
            Payload::Auth(a) => Some(a),
            _ => None,
        })
    }

    fn cp(&self) -> Option<&CpPayload> {
        self.iter().find_map(|p| match p {
            Payload::Cp(c) => Some(c),
            _ => None,
        })
    }

    fn eap(&self) -> Option<&EapPayload> {
        self.iter().find_map(|p| match p {
            Payload::Eap(e) => Some(e),
            _ => None,
        })
    }

    fn certs(&self) -> Vec<&CertPayload> {
        self.iter()
            .filter_map(|p| match p {
                Payload::Cert(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    fn certreqs(&self) -> Vec<&CertPayload> {
        self.iter()
            .filter_map(|p| match p {
                Payload::CertReq(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    fn ts_i(&self) -> Option<&Vec<TrafficSelector>> {
        self.iter().find_map(|p| match p {
            Payload::TsI(t) => Some(t),
            _ => None,
        })
    }

    fn ts_r(&self) -> Option<&Vec<TrafficSelector>> {
        self.iter().find_map(|p| match p {
            Payload::TsR(t) => Some(t),
            _ => None,
        })
    }

    fn notify(&self, kind: NotifyType) -> Option<&NotifyPayload> {
        self.iter().find_map(|p| match p {
            Payload::Notify(n) if n.kind == kind => Some(n),
            _ => None,
        })
    }

    fn error_notify(&self) -> Option<&NotifyPayload> {
        self.iter().find_map(|p| match p {
            Payload::Notify(n) if n.kind.is_error() => Some(n),
            _ => None,
        })
    }

    fn unsupported_critical(&self) -> Option<u8> {
        self.iter().find_map(|p| match p {
            Payload::Unknown {
                kind,
                critical: true,
                ..
            } => Some(*kind),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_find_the_first_of_each_kind() {
        let chain = [
            Payload::Unknown {
                kind: 200,
                critical: false,
                data: vec![],
            },
            Payload::notify(NotifyType::InitialContact, vec![]),
            Payload::Nonce(vec![1; 16]),
            Payload::notify(NotifyType::NoProposalChosen, vec![]),
            Payload::Nonce(vec![2; 16]),
            Payload::Unknown {
                kind: 201,
                critical: true,
                data: vec![],
            },
            Payload::TsR(vec![]),
        ];
        assert_eq!(chain.nonce(), Some(&vec![1; 16]));
        assert_eq!(
            chain.notify(NotifyType::InitialContact).map(|n| n.kind),
            Some(NotifyType::InitialContact)
        );
        assert!(chain.notify(NotifyType::Cookie).is_none());
        assert_eq!(
            chain.error_notify().map(|n| n.kind),
            Some(NotifyType::NoProposalChosen)
        );
        assert_eq!(chain.unsupported_critical(), Some(201));
        assert!(chain.ts_r().is_some() && chain.ts_i().is_none());
        assert!(chain.sa().is_none() && chain.ke().is_none() && chain.auth().is_none());
        assert!(chain.id_i().is_none() && chain.id_r().is_none());
    }
}
