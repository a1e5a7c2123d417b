//! INFORMATIONAL exchanges (RFC 7296 1.4): liveness checks and deletes.

use super::{Ctx, IkeSa, Request, State};
use crate::events::CloseReason;
use crate::wire::{DeletePayload, ExchangeType, NotifyType, Payload, Payloads, ProtocolId};

impl IkeSa {
    pub(crate) fn informational_request(&mut self, ctx: &mut Ctx, id: u32, payloads: &[Payload]) {
        // RFC 7296 §2.21.2: an initiator that cannot authenticate us (our certificate revoked
        // or expired, or its signature check failed) tells us so in an INFORMATIONAL after our
        // IKE_AUTH response; strongSwan then forgets the IKE SA without waiting for an answer.
        // Without this our half would stay up until DPD noticed.
        if payloads.notify(NotifyType::AuthenticationFailed).is_some() {
            self.send_response(ctx, ExchangeType::Informational, id, &[]);
            let local_id = self
                .conn
                .as_ref()
                .map_or_else(String::new, |c| c.local_id.to_string());
            self.fail(
                ctx,
                NotifyType::AuthenticationFailed,
                format!(
                    "peer rejected our authentication as '{local_id}' after IKE_AUTH \
                     (our certificate, its chain or revocation status, or our signature; \
                     the peer's log says which)"
                ),
            );
            return;
        }
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

    /// Tells the peer, in an INFORMATIONAL request nobody waits for, that we refuse its
    /// authentication (RFC 7296 §2.21.2), so that a responder whose IKE_AUTH response we reject
    /// drops the IKE SA it already considers up. Sent once: the IKE SA is closed right after.
    pub(crate) fn notify_authentication_failed(&mut self, ctx: &mut Ctx) {
        let n = Payload::notify(NotifyType::AuthenticationFailed, Vec::new());
        self.transmit_request(ctx, ExchangeType::Informational, &[n]);
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
