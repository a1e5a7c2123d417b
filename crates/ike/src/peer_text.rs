//! [`PeerText`]: the one way text that came from the network (an IKE identity, notify data, a
//! vendor ID, an EAP identity) is shown in a log line or on an operator's terminal.
//!
//! Why: a peer chooses these bytes before it has authenticated. Written raw, a newline forges
//! whole log lines and an ESC sequence clears the operator's screen or retitles the terminal
//! when `ironsecctl status` prints it (issue 19). So every such string is escaped where it is
//! turned into text: control characters (C0, DEL, C1) become `\xNN` (`\n`, `\r`, `\t` for the
//! common three) or `\u{NN}` for the two-byte C1 ones, bidirectional overrides become
//! `\u{NNNN}` (they reorder what the reader sees), invalid UTF-8 becomes `\xNN` per byte, and a
//! backslash becomes `\\` so an escape in the output always means the peer did not send it
//! literally. Long input is cut at a character boundary with `…(+N bytes)`.

use std::fmt;

/// How many bytes of peer text are shown before the rest is elided: an FQDN is at most 255.
pub const DEFAULT_LIMIT: usize = 256;

/// Displays peer-supplied bytes escaped (module doc). `Display` never writes a control
/// character, whatever the bytes.
#[derive(Clone, Copy)]
pub struct PeerText<'a> {
    bytes: &'a [u8],
    limit: usize,
    relayed: bool,
}

impl<'a> PeerText<'a> {
    /// Peer bytes for a log line or a status field, cut after [`DEFAULT_LIMIT`] bytes.
    pub fn new(bytes: &'a [u8]) -> PeerText<'a> {
        PeerText {
            bytes,
            limit: DEFAULT_LIMIT,
            relayed: false,
        }
    }

    /// Text that was escaped once already (a status document from the daemon) on its way to a
    /// terminal: control characters are still escaped, a backslash is left alone (escaping it
    /// again would turn the daemon's `\x1b` into `\\x1b`), and nothing is cut.
    pub fn relayed(text: &'a str) -> PeerText<'a> {
        PeerText {
            bytes: text.as_bytes(),
            limit: usize::MAX,
            relayed: true,
        }
    }

    /// Shows at most `limit` bytes of the input.
    pub fn limit(self, limit: usize) -> PeerText<'a> {
        PeerText { limit, ..self }
    }
}

/// Characters that must not reach a log or a terminal as they are.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

impl fmt::Display for PeerText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (shown, elided) = if self.bytes.len() > self.limit {
            // Cut at a character boundary: back off over UTF-8 continuation bytes (at most 3),
            // so a character split by the limit is not shown as invalid bytes.
            let mut end = self.limit;
            while end > 0
                && self.limit - end < 3
                && self.bytes.get(end).is_some_and(|b| b & 0xc0 == 0x80)
            {
                end -= 1;
            }
            (&self.bytes[..end], self.bytes.len() - end)
        } else {
            (self.bytes, 0)
        };
        for chunk in shown.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\\' if !self.relayed => f.write_str("\\\\")?,
                    '\n' => f.write_str("\\n")?,
                    '\r' => f.write_str("\\r")?,
                    '\t' => f.write_str("\\t")?,
                    c if (c as u32) < 0x80 && needs_escape(c) => write!(f, "\\x{:02x}", c as u32)?,
                    c if needs_escape(c) => write!(f, "\\u{{{:x}}}", c as u32)?,
                    c => fmt::Write::write_char(f, c)?,
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        if elided > 0 {
            write!(f, "…(+{elided} bytes)")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PeerText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn show(b: &[u8]) -> String {
        PeerText::new(b).to_string()
    }

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(show(b"gw-b.example"), "gw-b.example");
        assert_eq!(show("bücher.example".as_bytes()), "bücher.example");
    }

    #[test]
    fn escapes_what_forges_lines_or_drives_terminals() {
        assert_eq!(
            show(b"a\nb\x1b]0;pwned\x07c\x1b[2J\r\t\x7f\\"),
            "a\\nb\\x1b]0;pwned\\x07c\\x1b[2J\\r\\t\\x7f\\\\"
        );
        // C1 CSI, a bidi override, invalid UTF-8.
        assert_eq!(show("x\u{9b}2J".as_bytes()), "x\\u{9b}2J");
        assert_eq!(show("a\u{202e}b".as_bytes()), "a\\u{202e}b");
        assert_eq!(show(b"\xff\xc3"), "\\xff\\xc3");
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        assert_eq!(
            PeerText::new(b"abcdef").limit(4).to_string(),
            "abcd…(+2 bytes)"
        );
        // 'ü' is 2 bytes at 3..5: a limit of 4 would split it.
        let s = "abcüd".as_bytes();
        assert_eq!(PeerText::new(s).limit(4).to_string(), "abc…(+3 bytes)");
        assert_eq!(show(&[b'a'; 300]).len(), 256 + "…(+44 bytes)".len());
    }

    #[test]
    fn relayed_text_keeps_backslashes_and_escapes_controls() {
        let once = show(b"id\x1b[2J\n");
        assert_eq!(PeerText::relayed(&once).to_string(), once);
        assert_eq!(PeerText::relayed("a\x1bb").to_string(), "a\\x1bb");
    }

    #[test]
    fn identities_from_the_wire_are_shown_escaped() {
        use crate::config::Identity;
        use crate::wire::{IdPayload, IdType};
        let fqdn = IdPayload {
            id_type: IdType::Fqdn,
            data: b"gw\n\x1b[2J".to_vec(),
        };
        assert_eq!(Identity::describe(&fqdn), "gw\\n\\x1b[2J");
        let not_utf8 = IdPayload {
            id_type: IdType::Rfc822Addr,
            data: b"a@\xff\n".to_vec(),
        };
        assert_eq!(Identity::describe(&not_utf8), "<ID_RFC822_ADDR a@\\xff\\n>");
        let dn = IdPayload {
            id_type: IdType::DerAsn1Dn,
            data: vec![0x30, 0x1b, 0x0a],
        };
        assert_eq!(Identity::describe(&dn), "<ID_DER_ASN1_DN 0\\x1b\\n>");
        // Configured identities are unchanged.
        assert_eq!(Identity::parse("gw-b.example").to_string(), "gw-b.example");
        assert_eq!(Identity::parse("@#0a1b").to_string(), "@#0a1b");
    }

    proptest! {
        #[test]
        fn output_never_holds_a_control_character(b in proptest::collection::vec(any::<u8>(), 0..600),
                                                  limit in 0usize..400) {
            for s in [PeerText::new(&b).limit(limit).to_string(),
                      PeerText::relayed(&String::from_utf8_lossy(&b)).to_string()] {
                prop_assert!(!s.chars().any(needs_escape), "{s:?}");
            }
        }

        #[test]
        fn escaping_is_reversible_for_printable_ascii(s in "[ -~]{0,100}") {
            // Only the backslash changes, doubled: the escaped text still reads as sent.
            prop_assert_eq!(show(s.as_bytes()), s.replace('\\', "\\\\"));
        }
    }
}
