//! One-line summaries of IKE datagrams for debug logs: exchange, request or response, message
//! ID, SPIs and size. Only the cleartext header is read; encrypted payloads stay unread here,
//! so a debug log shows the conversation without ever holding a key or a decrypted byte.

use ironsec_ike::wire::{Header, PayloadType, HEADER_LEN};

/// `datagram` is a UDP payload from port 500, or from 4500 with its 4-byte non-ESP marker.
pub fn summary(datagram: &[u8]) -> String {
    let msg = match datagram {
        [0, 0, 0, 0, rest @ ..] => rest,
        d => d,
    };
    match Header::parse(msg) {
        Ok(h) => {
            let first = match h.next_payload {
                0 => "none".to_string(),
                n => PayloadType::from(n).to_string(),
            };
            format!(
                "{} {} #{} ({}) spi_i=0x{:016x} spi_r=0x{:016x} first={first} {} bytes",
                h.exchange,
                if h.flags.response {
                    "response"
                } else {
                    "request"
                },
                h.message_id,
                if h.flags.initiator {
                    "from original initiator"
                } else {
                    "from original responder"
                },
                h.spi_i,
                h.spi_r,
                msg.len()
            )
        }
        Err(e) if msg.len() < HEADER_LEN => format!("{} bytes, too short: {e}", msg.len()),
        Err(e) => format!("{} bytes, unparseable header: {e}", msg.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_the_header_only() {
        let mut m = vec![0u8; 4];
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(&0x1122334455667788u64.to_be_bytes());
        h[16] = 46; // SK
        h[17] = 0x20;
        h[18] = 35; // IKE_AUTH
        h[19] = 0x08; // initiator
        h[20..24].copy_from_slice(&1u32.to_be_bytes());
        h[24..28].copy_from_slice(&(HEADER_LEN as u32 + 4).to_be_bytes());
        m.extend_from_slice(&h);
        m.extend_from_slice(&[0, 0, 0, 4]);
        let s = summary(&m);
        assert!(
            s.starts_with("IKE_AUTH request #1 (from original initiator) spi_i=0x1122334455667788"),
            "{s}"
        );
        assert!(s.contains("first=SK"), "{s}");
        assert!(summary(&[1, 2, 3]).contains("too short"));
    }
}
