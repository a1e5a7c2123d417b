//! Distinguished names: from DER (a certificate's subject, an ID_DER_ASN1_DN payload) and from
//! strongSwan-style text (`C=CH, O=ironsec, CN=gw-a`, also `/`-separated is not needed), and
//! strongSwan's wildcard match: same number of RDNs, same attribute types in the same order,
//! each value equal (case-insensitive for printable strings, as strongSwan compares) or `*`
//! in the pattern.

/// One name: its attributes in order, and the DER encoding when it came from DER (a name
/// parsed from text has none; it can only be compared and matched).
#[derive(Clone, Debug)]
pub struct DistinguishedName {
    // chosen by the implementation: Vec<(attribute type, value)>, Option<Vec<u8>> DER
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DnError {
    #[error("malformed distinguished name: {0}")]
    Malformed(String),
    #[error("unknown attribute type '{0}' (known: C, ST, L, O, OU, CN, E/emailAddress, DC, serialNumber, UID, ...)")]
    UnknownAttribute(String),
}

impl DistinguishedName {
    pub fn from_der(der: &[u8]) -> Result<DistinguishedName, DnError> {
        todo!()
    }

    /// Parses `C=CH, O=ironsec, CN=gw-a` (commas, optional spaces; `+` multi-valued RDNs are
    /// not needed). Values may be `*` (a wildcard when used as a pattern).
    pub fn parse(text: &str) -> Result<DistinguishedName, DnError> {
        todo!()
    }

    /// The DER encoding, if this name came from DER.
    pub fn der(&self) -> Option<&[u8]> {
        todo!()
    }

    /// True if any value is `*`.
    pub fn has_wildcards(&self) -> bool {
        todo!()
    }

    /// `self` as a pattern (may hold `*`) matches `name`.
    pub fn matches(&self, name: &DistinguishedName) -> bool {
        todo!()
    }
}

/// Equal attribute types and values (values compared as strongSwan does), whatever the
/// string encodings in DER.
impl PartialEq for DistinguishedName {
    fn eq(&self, other: &DistinguishedName) -> bool {
        todo!()
    }
}
impl Eq for DistinguishedName {}

impl std::hash::Hash for DistinguishedName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        todo!()
    }
}

/// `C=CH, O=ironsec, CN=gw-a`, with control characters and non-ASCII escaped so a peer's name
/// cannot forge a log line.
impl std::fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        todo!()
    }
}
