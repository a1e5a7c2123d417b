//! The sequence space of static (manually keyed) SAs, for status: they cannot rekey, so the
//! operator should see how much of it is used. The config requires ESN for them
//! (`config/static_keying.rs`): 2^64 - 1 sequence numbers, which no SA ever reaches (at ten
//! million packets a second, 58,000 years), whereas the 2^32 - 1 of an SA without ESN last
//! 72 minutes at one million. What the operator must know is in README "Static SAs and the
//! sequence space".

use super::Plane;
use crate::tables::{StaticSas, TunnelKey};

/// How much of an SA's sequence space is used: the highest sequence number sent or received
/// (the peer's counts too: at its end our replay window refuses its packets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqSpace {
    pub used: u64,
    /// 2^32 - 1 without ESN, 2^64 - 1 with.
    pub size: u64,
    pub esn: bool,
}

impl SeqSpace {
    pub fn of(sas: &StaticSas) -> SeqSpace {
        let esn = sas.outbound.sa.esn();
        SeqSpace {
            used: sas
                .outbound
                .sa
                .next_seq()
                .saturating_sub(1)
                .max(sas.inbound.sa.highest_seq()),
            size: if esn { u64::MAX } else { u64::from(u32::MAX) },
            esn,
        }
    }

    /// Whole percent used, rounded down.
    pub fn percent(&self) -> u8 {
        (u128::from(self.used) * 100 / u128::from(self.size.max(1))).min(100) as u8
    }
}

impl Plane {
    /// A static tunnel's sequence space, for status.
    pub fn static_seq_space(&self, key: &TunnelKey) -> Option<SeqSpace> {
        self.store.statics_of(key).map(SeqSpace::of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_of_the_space() {
        let space = |used, esn| SeqSpace {
            used,
            size: if esn { u64::MAX } else { u64::from(u32::MAX) },
            esn,
        };
        assert_eq!(space(0, false).percent(), 0);
        assert_eq!(space(u64::from(u32::MAX) / 2, false).percent(), 49);
        assert_eq!(space(3_221_225_472, false).percent(), 75);
        assert_eq!(space(u64::from(u32::MAX), false).percent(), 100);
        // With ESN, what a 32-bit space could hold is nothing.
        assert_eq!(space(u64::from(u32::MAX), true).percent(), 0);
        assert_eq!(space(u64::MAX / 2, true).percent(), 49);
    }
}
