//! IP prefixes: the unit of traffic selectors and of the outbound policy table.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address with a prefix length, host bits zero. Keeping the host bits zero at construction
/// makes equality and overlap checks plain comparisons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Prefix {
    V4 { addr: u32, len: u8 },
    V6 { addr: u128, len: u8 },
}

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum PrefixError {
    #[error("expected ADDRESS/LENGTH, e.g. 10.1.0.0/24")]
    MissingLength,
    #[error("'{0}' is not an IP address")]
    BadAddress(String),
    #[error("'{0}' is not a prefix length")]
    BadLength(String),
    #[error("prefix length {len} is longer than {max}")]
    TooLong { len: u8, max: u8 },
    #[error("host bits are set; did you mean {0}?")]
    HostBits(Prefix),
}

impl Prefix {
    pub fn new(addr: IpAddr, len: u8) -> Result<Prefix, PrefixError> {
        let p = match addr {
            IpAddr::V4(a) => {
                if len > 32 {
                    return Err(PrefixError::TooLong { len, max: 32 });
                }
                Prefix::V4 {
                    addr: u32::from(a) & mask32(len),
                    len,
                }
            }
            IpAddr::V6(a) => {
                if len > 128 {
                    return Err(PrefixError::TooLong { len, max: 128 });
                }
                Prefix::V6 {
                    addr: u128::from(a) & mask128(len),
                    len,
                }
            }
        };
        if p.addr() != addr {
            return Err(PrefixError::HostBits(p));
        }
        Ok(p)
    }

    pub fn host(addr: IpAddr) -> Prefix {
        match addr {
            IpAddr::V4(a) => Prefix::V4 {
                addr: a.into(),
                len: 32,
            },
            IpAddr::V6(a) => Prefix::V6 {
                addr: a.into(),
                len: 128,
            },
        }
    }

    pub fn addr(&self) -> IpAddr {
        match *self {
            Prefix::V4 { addr, .. } => IpAddr::V4(Ipv4Addr::from(addr)),
            Prefix::V6 { addr, .. } => IpAddr::V6(Ipv6Addr::from(addr)),
        }
    }

    pub fn len(&self) -> u8 {
        match *self {
            Prefix::V4 { len, .. } | Prefix::V6 { len, .. } => len,
        }
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// 0.0.0.0/0 or ::/0: every address of its family.
    pub fn is_catch_all(&self) -> bool {
        matches!(self, Prefix::V4 { len: 0, .. } | Prefix::V6 { len: 0, .. })
    }

    pub fn is_v4(&self) -> bool {
        matches!(self, Prefix::V4 { .. })
    }

    /// Fast-path containment test on an address already pulled out of a packet header.
    #[inline]
    pub fn contains_v4(&self, ip: u32) -> bool {
        match *self {
            Prefix::V4 { addr, len } => ip & mask32(len) == addr,
            Prefix::V6 { .. } => false,
        }
    }

    #[inline]
    pub fn contains_v6(&self, ip: u128) -> bool {
        match *self {
            Prefix::V6 { addr, len } => ip & mask128(len) == addr,
            Prefix::V4 { .. } => false,
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.contains_v4(a.into()),
            IpAddr::V6(a) => self.contains_v6(a.into()),
        }
    }

    /// Two prefixes overlap when one contains the other (prefixes never partially overlap).
    pub fn overlaps(&self, other: &Prefix) -> bool {
        match (*self, *other) {
            (Prefix::V4 { addr: a, len: la }, Prefix::V4 { addr: b, len: lb }) => {
                let m = mask32(la.min(lb));
                a & m == b & m
            }
            (Prefix::V6 { addr: a, len: la }, Prefix::V6 { addr: b, len: lb }) => {
                let m = mask128(la.min(lb));
                a & m == b & m
            }
            _ => false,
        }
    }
}

#[inline]
fn mask32(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

#[inline]
fn mask128(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Prefix, PrefixError> {
        let (a, l) = s.split_once('/').ok_or(PrefixError::MissingLength)?;
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| PrefixError::BadAddress(a.to_string()))?;
        let len: u8 = l
            .trim()
            .parse()
            .map_err(|_| PrefixError::BadLength(l.to_string()))?;
        Prefix::new(addr, len)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len())
    }
}

impl serde::Serialize for Prefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        let p: Prefix = "10.1.0.0/24".parse().unwrap();
        assert_eq!(p.to_string(), "10.1.0.0/24");
        let p: Prefix = "2001:db8::/32".parse().unwrap();
        assert_eq!(p.to_string(), "2001:db8::/32");
        let p: Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(p.contains("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            "10.1.0.0".parse::<Prefix>(),
            Err(PrefixError::MissingLength)
        );
        assert!(matches!(
            "10.1.0/24".parse::<Prefix>(),
            Err(PrefixError::BadAddress(_))
        ));
        assert!(matches!(
            "10.1.0.0/33".parse::<Prefix>(),
            Err(PrefixError::TooLong { .. })
        ));
        assert!(matches!(
            "10.1.0.1/24".parse::<Prefix>(),
            Err(PrefixError::HostBits(_))
        ));
        assert!(matches!(
            "10.1.0.0/x".parse::<Prefix>(),
            Err(PrefixError::BadLength(_))
        ));
    }

    #[test]
    fn containment_and_overlap() {
        let a: Prefix = "10.1.0.0/16".parse().unwrap();
        let b: Prefix = "10.1.2.0/24".parse().unwrap();
        let c: Prefix = "10.2.0.0/24".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
        assert!(a.contains("10.1.200.3".parse().unwrap()));
        assert!(!b.contains("10.1.3.1".parse().unwrap()));
        let v6: Prefix = "::/0".parse().unwrap();
        assert!(!v6.overlaps(&a));
        assert!(!v6.contains("10.1.0.1".parse().unwrap()));
    }
}
