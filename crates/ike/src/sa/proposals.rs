//! Between the wire's SA payload and the crypto module's neutral proposal form.

use crate::crypto::{OfferedProposal, OfferedTransform};
use crate::wire::{Proposal, ProtocolId, SaPayload, Transform, TransformType};

pub(crate) fn offered(sa: &SaPayload, protocol: ProtocolId) -> Vec<OfferedProposal> {
    sa.proposals
        .iter()
        .filter(|p| p.protocol == protocol)
        .map(|p| OfferedProposal {
            number: p.number,
            transforms: p
                .transforms
                .iter()
                .map(|t| OfferedTransform {
                    kind: t.kind.number(),
                    id: t.id,
                    key_length: t.key_length,
                    has_unknown_attributes: !t.other_attributes.is_empty(),
                })
                .collect(),
        })
        .collect()
}

pub(crate) fn to_wire(o: &OfferedProposal, protocol: ProtocolId, spi: Vec<u8>) -> Proposal {
    Proposal {
        number: o.number,
        protocol,
        spi,
        transforms: o
            .transforms
            .iter()
            .map(|t| Transform {
                kind: TransformType::from(t.kind),
                id: t.id,
                key_length: t.key_length,
                other_attributes: Vec::new(),
            })
            .collect(),
    }
}

/// The proposal (by number) of the SPI it carries, for picking the peer's SPI out of an SA.
pub(crate) fn spi_of(sa: &SaPayload, number: u8, protocol: ProtocolId) -> Option<&[u8]> {
    sa.proposals
        .iter()
        .find(|p| p.number == number && p.protocol == protocol)
        .map(|p| &p.spi[..])
}
