//! Distinguished names: from DER (a certificate's subject, an ID_DER_ASN1_DN payload) and from
//! strongSwan-style text (`C=CH, O=ironsec, CN=gw-a`, also `/`-separated is not needed), and
//! strongSwan's wildcard match: same number of RDNs, same attribute types in the same order,
//! each value equal (case-insensitive for printable strings, as strongSwan compares) or `*`
//! in the pattern.

use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

/// One name: its attributes in order, and the DER encoding when it came from DER (a name
/// parsed from text has none; it can only be compared and matched).
#[derive(Clone, Debug)]
pub struct DistinguishedName {
    /// (attribute type as a dotted OID, value bytes). Multi-valued RDNs are flattened in
    /// their encoded order, as strongSwan compares them.
    attrs: Vec<(String, Vec<u8>)>,
    der: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DnError {
    #[error("malformed distinguished name: {0}")]
    Malformed(String),
    #[error("unknown attribute type '{0}' (known: C, ST, L, O, OU, CN, E/emailAddress, DC, serialNumber, UID, ...)")]
    UnknownAttribute(String),
}

/// Text names (strongSwan's, case-insensitive on input) and OIDs; the first name for an OID is
/// the one Display prints.
const ATTRIBUTES: &[(&str, &str)] = &[
    ("C", "2.5.4.6"),
    ("ST", "2.5.4.8"),
    ("L", "2.5.4.7"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("CN", "2.5.4.3"),
    ("E", "1.2.840.113549.1.9.1"),
    ("emailAddress", "1.2.840.113549.1.9.1"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("serialNumber", "2.5.4.5"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("SN", "2.5.4.4"),
    ("GN", "2.5.4.42"),
    ("givenName", "2.5.4.42"),
    ("T", "2.5.4.12"),
    ("title", "2.5.4.12"),
    ("I", "2.5.4.43"),
    ("initials", "2.5.4.43"),
    ("street", "2.5.4.9"),
    ("postalCode", "2.5.4.17"),
    ("dnQualifier", "2.5.4.46"),
    ("pseudonym", "2.5.4.65"),
];

fn oid_for(name: &str) -> Option<String> {
    if let Some((_, oid)) = ATTRIBUTES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
    {
        return Some((*oid).to_string());
    }
    // A dotted OID (what Display prints for attribute types without a name).
    let arcs: Vec<&str> = name.split('.').collect();
    (arcs.len() >= 2
        && arcs
            .iter()
            .all(|a| !a.is_empty() && a.len() <= 10 && a.bytes().all(|b| b.is_ascii_digit())))
    .then(|| name.to_string())
}

fn name_for(oid: &str) -> &str {
    ATTRIBUTES
        .iter()
        .find(|(_, o)| *o == oid)
        .map(|(n, _)| *n)
        .unwrap_or(oid)
}

/// strongSwan's value comparison: byte-wise, ASCII letters case-insensitive.
fn value_eq(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl DistinguishedName {
    pub fn from_der(der: &[u8]) -> Result<DistinguishedName, DnError> {
        let (rest, name) =
            X509Name::from_der(der).map_err(|e| DnError::Malformed(format!("DER: {e}")))?;
        if !rest.is_empty() {
            return Err(DnError::Malformed("trailing data after the name".into()));
        }
        Ok(Self::from_x509(&name))
    }

    /// From x509-parser's name (a certificate's or CRL's), keeping its DER.
    pub(crate) fn from_x509(name: &X509Name<'_>) -> DistinguishedName {
        let attrs = name
            .iter_attributes()
            .map(|a| {
                let v = a.attr_value();
                let value = match v.tag() {
                    // UCS-2/UTF-16 big-endian: to UTF-8 so it compares with the same text in
                    // a UTF8String; raw bytes if it does not decode.
                    Tag::BmpString => {
                        let units: Vec<u16> = v
                            .data
                            .chunks(2)
                            .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                            .collect();
                        match (v.data.len() % 2, String::from_utf16(&units)) {
                            (0, Ok(s)) => s.into_bytes(),
                            _ => v.data.to_vec(),
                        }
                    }
                    _ => v.data.to_vec(),
                };
                (a.attr_type().to_id_string(), value)
            })
            .collect();
        DistinguishedName {
            attrs,
            der: Some(name.as_raw().to_vec()),
        }
    }

    /// Parses `C=CH, O=ironsec, CN=gw-a` (commas, optional spaces; `+` multi-valued RDNs are
    /// not needed). Values may be `*` (a wildcard when used as a pattern).
    ///
    /// In values, `\,` is a comma, `\\` a backslash and `\xNN` a byte: what Display writes,
    /// so a logged name can be pasted back into a configuration.
    pub fn parse(text: &str) -> Result<DistinguishedName, DnError> {
        let mut attrs = Vec::new();
        for part in split_unescaped_commas(text) {
            let part = part.trim();
            if part.is_empty() {
                return Err(DnError::Malformed(format!("empty RDN in '{text}'")));
            }
            let (name, value) = part.split_once('=').ok_or_else(|| {
                DnError::Malformed(format!("'{part}' is not of the form TYPE=value"))
            })?;
            let name = name.trim();
            let oid = oid_for(name).ok_or_else(|| DnError::UnknownAttribute(name.to_string()))?;
            attrs.push((oid, unescape(value.trim())?));
        }
        Ok(DistinguishedName { attrs, der: None })
    }

    /// The DER encoding, if this name came from DER.
    pub fn der(&self) -> Option<&[u8]> {
        self.der.as_deref()
    }

    /// True if any value is `*`.
    pub fn has_wildcards(&self) -> bool {
        self.attrs.iter().any(|(_, v)| v == b"*")
    }

    /// `self` as a pattern (may hold `*`) matches `name`.
    pub fn matches(&self, name: &DistinguishedName) -> bool {
        self.attrs.len() == name.attrs.len()
            && self
                .attrs
                .iter()
                .zip(&name.attrs)
                .all(|((pt, pv), (nt, nv))| pt == nt && (pv == b"*" || value_eq(pv, nv)))
    }

    /// The number of attributes (0 for the empty name some end-entity certificates have).
    pub fn len(&self) -> usize {
        self.attrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty()
    }
}

fn split_unescaped_commas(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn unescape(value: &str) -> Result<Vec<u8>, DnError> {
    let mut out = Vec::with_capacity(value.len());
    let b = value.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'x') => {
                let byte = b
                    .get(i + 2..i + 4)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| DnError::Malformed(format!("bad \\x escape in '{value}'")))?;
                out.push(byte);
                i += 4;
            }
            Some(&c) => {
                out.push(c);
                i += 2;
            }
            None => {
                return Err(DnError::Malformed(format!(
                    "trailing backslash in '{value}'"
                )))
            }
        }
    }
    Ok(out)
}

/// Equal attribute types and values (values compared as strongSwan does), whatever the
/// string encodings in DER.
impl PartialEq for DistinguishedName {
    fn eq(&self, other: &DistinguishedName) -> bool {
        self.attrs.len() == other.attrs.len()
            && self
                .attrs
                .iter()
                .zip(&other.attrs)
                .all(|((at, av), (bt, bv))| at == bt && value_eq(av, bv))
    }
}
impl Eq for DistinguishedName {}

impl std::hash::Hash for DistinguishedName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // What Eq compares: types, and values with ASCII case folded.
        state.write_usize(self.attrs.len());
        for (t, v) in &self.attrs {
            t.hash(state);
            state.write_usize(v.len());
            for b in v {
                state.write_u8(b.to_ascii_lowercase());
            }
        }
    }
}

/// `C=CH, O=ironsec, CN=gw-a`, with control characters and non-ASCII escaped so a peer's name
/// cannot forge a log line.
impl std::fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (t, v)) in self.attrs.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}=", name_for(t))?;
            for &b in v {
                match b {
                    b'\\' => f.write_str("\\\\")?,
                    b',' => f.write_str("\\,")?,
                    0x20..=0x7e => write!(f, "{}", b as char)?,
                    _ => write!(f, "\\x{b:02x}")?,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn dn(s: &str) -> DistinguishedName {
        DistinguishedName::parse(s).unwrap()
    }

    /// DER of `C=CH, O=ironsec, CN=gw-a` with PrintableString C, UTF8String O and CN.
    fn der_name(cn_tag: u8, cn: &[u8]) -> Vec<u8> {
        fn rdn(oid_last: u8, tag: u8, v: &[u8]) -> Vec<u8> {
            let mut atv = vec![0x06, 0x03, 0x55, 0x04, oid_last, tag, v.len() as u8];
            atv.extend_from_slice(v);
            let mut seq = vec![0x30, atv.len() as u8];
            seq.extend(atv);
            let mut set = vec![0x31, seq.len() as u8];
            set.extend(seq);
            set
        }
        let mut body = rdn(6, 0x13, b"CH");
        body.extend(rdn(10, 0x0c, b"ironsec"));
        body.extend(rdn(3, cn_tag, cn));
        let mut out = vec![0x30, body.len() as u8];
        out.extend(body);
        out
    }

    #[test]
    fn parse_and_display() {
        let n = dn("C=CH,  O=ironsec ,CN=gw-a");
        assert_eq!(n.to_string(), "C=CH, O=ironsec, CN=gw-a");
        assert_eq!(n.der(), None);
        assert_eq!(n.len(), 3);
        assert_eq!(
            dn("c=CH, emailAddress=a@b, givenName=x, 2.5.4.99=y").to_string(),
            "C=CH, E=a@b, GN=x, 2.5.4.99=y"
        );
        assert_eq!(
            DistinguishedName::parse("C=CH, XX=1"),
            Err(DnError::UnknownAttribute("XX".into()))
        );
        assert!(matches!(
            DistinguishedName::parse("C=CH,,CN=a"),
            Err(DnError::Malformed(_))
        ));
        assert!(matches!(
            DistinguishedName::parse("CN"),
            Err(DnError::Malformed(_))
        ));
        assert!(matches!(
            DistinguishedName::parse("CN=a\\"),
            Err(DnError::Malformed(_))
        ));
    }

    #[test]
    fn der_equals_text_case_insensitively() {
        let der = der_name(0x0c, b"GW-A");
        let n = DistinguishedName::from_der(&der).unwrap();
        assert_eq!(n.der(), Some(&der[..]));
        assert_eq!(n, dn("C=CH, O=ironsec, CN=gw-a"));
        assert_ne!(n, dn("C=CH, O=ironsec, CN=gw-b"));
        assert_ne!(n, dn("C=CH, CN=gw-a, O=ironsec"));
        assert_ne!(n, dn("C=CH, O=ironsec"));
        // The same name as a PrintableString is equal, and hashes the same.
        let printable = DistinguishedName::from_der(&der_name(0x13, b"gw-a")).unwrap();
        assert_eq!(n, printable);
        let set: HashSet<DistinguishedName> =
            [n.clone(), printable, dn("c=ch, o=IRONSEC, cn=Gw-A")]
                .into_iter()
                .collect();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn bmp_string_compares_as_text() {
        let bmp: Vec<u8> = "gw-a"
            .encode_utf16()
            .flat_map(|u| u.to_be_bytes())
            .collect();
        let n = DistinguishedName::from_der(&der_name(0x1e, &bmp)).unwrap();
        assert_eq!(n, dn("C=CH, O=ironsec, CN=gw-a"));
    }

    #[test]
    fn wildcards() {
        let pattern = dn("C=CH, O=ironsec, CN=*");
        assert!(pattern.has_wildcards());
        assert!(!dn("C=CH, O=ironsec, CN=gw-a").has_wildcards());
        assert!(pattern.matches(&dn("C=CH, O=ironsec, CN=gw-a")));
        assert!(pattern.matches(&dn("c=ch, o=IRONSEC, CN=anything at all")));
        assert!(!pattern.matches(&dn("C=DE, O=ironsec, CN=gw-a")));
        assert!(!pattern.matches(&dn("C=CH, O=ironsec, OU=x, CN=gw-a")));
        assert!(!pattern.matches(&dn("C=CH, O=ironsec, OU=gw-a")));
        // Not a wildcard the other way round.
        assert!(!dn("C=CH, O=ironsec, CN=gw-a").matches(&pattern));
        assert!(dn("C=CH, O=ironsec, CN=gw-a").matches(&dn("C=CH, O=ironsec, CN=GW-A")));
    }

    #[test]
    fn display_escapes_control_and_non_ascii() {
        let n =
            DistinguishedName::from_der(&der_name(0x0c, "x\n\u{1b}[31mü,\\".as_bytes())).unwrap();
        let shown = n.to_string();
        assert_eq!(
            shown,
            "C=CH, O=ironsec, CN=x\\x0a\\x1b[31m\\xc3\\xbc\\,\\\\"
        );
        assert!(shown.bytes().all(|b| (0x20..0x7f).contains(&b)));
        // Display output parses back to the same name.
        assert_eq!(dn(&shown), n);
    }

    #[test]
    fn malformed_der_never_panics() {
        let der = der_name(0x0c, b"gw-a");
        for cut in 0..der.len() {
            assert!(DistinguishedName::from_der(&der[..cut]).is_err());
        }
        for i in 0..der.len() {
            for bit in 0..8 {
                let mut v = der.clone();
                v[i] ^= 1 << bit;
                if let Ok(n) = DistinguishedName::from_der(&v) {
                    let _ = n.to_string();
                }
            }
        }
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(DistinguishedName::from_der(&trailing).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_der(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100)) {
            if let Ok(n) = DistinguishedName::from_der(&bytes) {
                let _ = n.to_string();
            }
        }

        #[test]
        fn arbitrary_text(text in "\\PC{0,40}") {
            let _ = DistinguishedName::parse(&text);
        }
    }
}
