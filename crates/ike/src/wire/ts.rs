//! Traffic Selector payloads TSi and TSr (RFC 7296 section 3.13).
//!
//! ```text
//! TS payload = Number of TSs | RESERVED(3) | Traffic Selector*
//! Selector   = TS Type | IP Protocol ID | Selector Length(2) | Start Port(2) | End Port(2)
//!              | Starting Address | Ending Address      (4+4 bytes for type 7, 16+16 for type 8)
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::error::ParseError;
use super::numbers::TsType;
use super::reader::{clamp8, Reader, Writer};
use super::MAX_SELECTORS;

/// Length of a TS_IPV4_ADDR_RANGE selector.
pub const TS_IPV4_LEN: usize = 16;
/// Length of a TS_IPV6_ADDR_RANGE selector.
pub const TS_IPV6_LEN: usize = 40;

/// One address range with protocol and port range.
///
/// The wire type (IPv4 or IPv6 range) follows from the addresses: `start` and `end` are of one
/// family whenever the value came from the parser or from `crate::ts`. The range is kept as
/// sent, even if `start > end` (an empty range); what to make of it is the selector logic's
/// call. Port range `0..=65535` means any port, `ip_protocol` 0 any protocol.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    pub ip_protocol: u8,
    pub start_port: u16,
    pub end_port: u16,
    pub start: IpAddr,
    pub end: IpAddr,
}

impl TrafficSelector {
    /// The wire type: that of `start`.
    pub fn ts_type(&self) -> TsType {
        match self.start {
            IpAddr::V4(_) => TsType::Ipv4AddrRange,
            IpAddr::V6(_) => TsType::Ipv6AddrRange,
        }
    }

    /// Both ends in one address family (always so for parsed selectors).
    pub fn same_family(&self) -> bool {
        self.start.is_ipv4() == self.end.is_ipv4()
    }

    pub(crate) fn parse_list(mut r: Reader) -> Result<Vec<TrafficSelector>, ParseError> {
        let offset = r.offset();
        let count = usize::from(r.u8("TS payload header")?);
        r.skip(3, "TS payload header")?;
        if count > MAX_SELECTORS {
            return Err(ParseError::TooMany {
                what: "traffic selectors",
                offset,
                limit: MAX_SELECTORS,
            });
        }
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(TrafficSelector::parse(&mut r)?);
        }
        if !r.is_empty() {
            return Err(ParseError::TrailingBytes {
                what: "last counted traffic selector",
                offset: r.offset(),
                extra: r.remaining(),
            });
        }
        Ok(out)
    }

    fn parse(r: &mut Reader) -> Result<TrafficSelector, ParseError> {
        let offset = r.offset();
        let ts_type = r.u8("traffic selector header")?;
        let ip_protocol = r.u8("traffic selector header")?;
        let length = usize::from(r.u16("traffic selector header")?);
        let expected = match TsType::from(ts_type) {
            TsType::Ipv4AddrRange => TS_IPV4_LEN,
            TsType::Ipv6AddrRange => TS_IPV6_LEN,
            TsType::Other(_) => return Err(ParseError::UnsupportedTsType { ts_type, offset }),
        };
        if length != expected {
            return Err(ParseError::LengthMismatch {
                what: "traffic selector",
                offset,
                declared: length,
                actual: expected,
            });
        }
        let mut s = r.sub(expected - 4, "traffic selector")?;
        let start_port = s.u16("traffic selector ports")?;
        let end_port = s.u16("traffic selector ports")?;
        let (start, end) = if expected == TS_IPV4_LEN {
            (
                IpAddr::V4(Ipv4Addr::from(s.array::<4>("traffic selector address")?)),
                IpAddr::V4(Ipv4Addr::from(s.array::<4>("traffic selector address")?)),
            )
        } else {
            (
                IpAddr::V6(Ipv6Addr::from(s.array::<16>("traffic selector address")?)),
                IpAddr::V6(Ipv6Addr::from(s.array::<16>("traffic selector address")?)),
            )
        };
        Ok(TrafficSelector {
            ip_protocol,
            start_port,
            end_port,
            start,
            end,
        })
    }

    pub(crate) fn encode_list(list: &[TrafficSelector], w: &mut Writer) {
        w.u8(clamp8(list.len()));
        w.zeros(3);
        for ts in list {
            ts.encode(w);
        }
    }

    /// Writes the selector in `start`'s family. An `end` of the other family (which the types
    /// do not rule out) is converted: IPv4 to its IPv4-mapped IPv6 address; an IPv6 address
    /// that is not IPv4-mapped becomes 0.0.0.0, which can only narrow the range, never widen.
    fn encode(&self, w: &mut Writer) {
        w.u8(self.ts_type().number());
        w.u8(self.ip_protocol);
        match self.start {
            IpAddr::V4(start) => {
                w.u16(TS_IPV4_LEN as u16);
                w.u16(self.start_port);
                w.u16(self.end_port);
                let end = match self.end {
                    IpAddr::V4(e) => e,
                    IpAddr::V6(e) => e.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
                };
                w.bytes(&start.octets());
                w.bytes(&end.octets());
            }
            IpAddr::V6(start) => {
                w.u16(TS_IPV6_LEN as u16);
                w.u16(self.start_port);
                w.u16(self.end_port);
                let end = match self.end {
                    IpAddr::V6(e) => e,
                    IpAddr::V4(e) => e.to_ipv6_mapped(),
                };
                w.bytes(&start.octets());
                w.bytes(&end.octets());
            }
        }
    }
}
