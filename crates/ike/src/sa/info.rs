//! INFORMATIONAL exchanges (RFC 7296 1.4): liveness checks and deletes.

use super::{Ctx, IkeSa, Request, State};
use crate::events::CloseReason;
use crate::wire::{DeletePayload, ExchangeType, Payload, ProtocolId};

impl IkeSa {
    pub(crate) fn informational_request(&mut self, ctx: &mut Ctx, id: u32, payloads: &[Payload]) {
        let mut response = Vec::new();
        let mut delete_ike = false;
        let mut ours = Vec::new();
        for p in payloads {
            let Payload::Delete(d) = p else { continue };
            match d.protocol {
                ProtocolId::Ike => delete_ike = true,
                ProtocolId::Esp => {
                    for spi in &d.spis {
                        let Ok(b) = <[u8; 4]>::try_from(&spi[..]) else {
                            continue;
                        };
                        let out = u32::from_be_bytes(b);
                        // The peer names its inbound SPI, which is our outbound one.
                        if let Some(c) = self.children.iter().find(|c| c.info.spi_out == out) {
                            ours.push(c.info.spi_in);
                        }
                    }
                }
                _ => {}
            }
        }
        if delete_ike {
            self.send_response(ctx, ExchangeType::Informational, id, &[]);
            self.close(ctx, CloseReason::PeerDeleted);
            return;
        }
        if !ours.is_empty() {
            response.push(Payload::Delete(DeletePayload {
                protocol: ProtocolId::Esp,
                spi_size: 4,
                spis: ours.iter().map(|s| s.to_be_bytes().to_vec()).collect(),
            }));
        }
        self.send_response(ctx, ExchangeType::Informational, id, &response);
        for spi in ours {
            self.remove_child(ctx, spi, CloseReason::PeerDeleted);
        }
    }

    pub(crate) fn start_delete_ike(&mut self, ctx: &mut Ctx) {
        let d = Payload::Delete(DeletePayload {
            protocol: ProtocolId::Ike,
            spi_size: 0,
            spis: Vec::new(),
        });
        self.send_request(ctx, ExchangeType::Informational, &[d], Request::DeleteIke);
        self.state = State::Closing;
    }
}
